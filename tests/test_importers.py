"""import-pairs: public layouts become the course layout, pixel for pixel; bad sources are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hw4lib.data import DataError
from hw4lib.importers import LAYOUTS, detect_layout, find_source_pairs, import_pairs

SHARED_RAIN100L = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rain100l"


def _img(seed: int, w: int = 12, h: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _mirror(root: Path, keys=("1", "2", "10"), size=(12, 8)) -> Path:
    for k in keys:
        _save(_img(int(k), *size), root / "input" / f"{k}.png")
        _save(_img(1000 + int(k), *size), root / "target" / f"{k}.png")
    return root


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.format == "PNG", path
        return np.asarray(im).copy()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_mirror_layout_copies_pixels_in_natural_order(tmp_path):
    src = _mirror(tmp_path / "rain100l")
    summary = import_pairs(src, kind="rain", out=tmp_path / "ds")
    out = tmp_path / "ds"
    assert summary.layout == "mirror" and (summary.n_train, summary.n_test) == (3, 0)
    assert summary.train_names == ["rain-1", "rain-2", "rain-3"]
    assert _names(out / "train" / "degraded") == ["rain-1.png", "rain-2.png", "rain-3.png"]
    assert _names(out / "train" / "clean") == ["rain_clean-1.png", "rain_clean-2.png", "rain_clean-3.png"]
    assert not (out / "test").exists()
    # natural order: 1, 2, 10 (not 1, 10, 2); pixels identical to the sources
    for number, key in ((1, 1), (2, 2), (3, 10)):
        np.testing.assert_array_equal(_read(out / "train" / "degraded" / f"rain-{number}.png"), _img(key))
        clean = _read(out / "train" / "clean" / f"rain_clean-{number}.png")
        np.testing.assert_array_equal(clean, _img(1000 + key))
    # no staging folder left next to the output
    assert _names(tmp_path) == ["ds", "rain100l"]
    manifest = (out / "sources.csv").read_text().splitlines()
    assert manifest[0].startswith("split,degraded,clean,kind,source_degraded")
    assert manifest[3].endswith("input/10.png," + str((src / "target" / "10.png").resolve()) + ",mirror")


def test_promptir_layout_jpeg_and_grayscale_become_rgb_png(tmp_path):
    src = tmp_path / "Derain"
    gray = np.random.default_rng(3).integers(0, 256, (8, 12), dtype=np.uint8)
    _save(_img(1), src / "rainy" / "rain-1.png")
    _save(_img(2), src / "gt" / "norain-1.png")
    _save(gray, src / "rainy" / "rain-2.png")
    _save(_img(4), src / "gt" / "norain-2.jpg")
    (src / "rainy" / "Thumbs.txt").write_text("not an image")  # ignored
    summary = import_pairs(src, kind="snow", out=tmp_path / "ds")
    assert summary.layout == "promptir" and summary.train_names == ["snow-1", "snow-2"]
    out = tmp_path / "ds" / "train"
    np.testing.assert_array_equal(_read(out / "degraded" / "snow-2.png"), np.stack([gray] * 3, axis=-1))
    with Image.open(src / "gt" / "norain-2.jpg") as im:
        decoded_jpeg = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(_read(out / "clean" / "snow_clean-2.png"), decoded_jpeg)


def test_split_sizes_answers_and_determinism(tmp_path):
    src = _mirror(tmp_path / "src", keys=[str(k) for k in range(1, 11)])
    a = import_pairs(src, out=tmp_path / "a", test_fraction=0.3, seed=0)
    b = import_pairs(src, out=tmp_path / "b", test_fraction=0.3, seed=0)
    c = import_pairs(src, out=tmp_path / "c", test_fraction=0.3, seed=1)
    assert b.test_names == a.test_names and c.n_test == 3
    assert (a.n_train, a.n_test) == (7, 3) and a.test_names == ["0", "1", "2"]
    assert _names(tmp_path / "a" / "test" / "degraded") == ["0.png", "1.png", "2.png"]
    assert _names(tmp_path / "a" / "test" / "clean") == ["0.png", "1.png", "2.png"]
    labels = (tmp_path / "a" / "test" / "labels.csv").read_text().splitlines()
    assert labels == ["name,kind,level", "0.png,rain,", "1.png,rain,", "2.png,rain,"]
    assert (tmp_path / "a" / "sources.csv").read_text() == (tmp_path / "b" / "sources.csv").read_text()
    assert (tmp_path / "a" / "sources.csv").read_text() != (tmp_path / "c" / "sources.csv").read_text()

    # every source pair lands exactly once, degraded and clean still together
    seen = []
    for split, names in (("train", a.train_names), ("test", a.test_names)):
        for name in names:
            degraded = _read(tmp_path / "a" / split / "degraded" / f"{name}.png")
            clean_name = name.replace("rain-", "rain_clean-") if split == "train" else name
            clean = _read(tmp_path / "a" / split / "clean" / f"{clean_name}.png")
            key = next(k for k in range(1, 11) if np.array_equal(degraded, _img(k)))
            np.testing.assert_array_equal(clean, _img(1000 + key))
            seen.append(key)
    assert sorted(seen) == list(range(1, 11))


def test_unpaired_file_is_named_and_nothing_is_written(tmp_path):
    src = _mirror(tmp_path / "src")
    _save(_img(7), src / "input" / "7.png")
    with pytest.raises(DataError, match=r"unpaired: .*input/7\.png has no partner in .*target"):
        import_pairs(src, out=tmp_path / "ds")
    assert _names(tmp_path) == ["src"]
    (src / "input" / "7.png").unlink()
    _save(_img(8), src / "target" / "8.png")
    with pytest.raises(DataError, match=r"target/8\.png has no partner in .*input"):
        import_pairs(src, out=tmp_path / "ds")


def test_misaligned_pair_is_named(tmp_path):
    src = _mirror(tmp_path / "src")
    _save(_img(5, w=10), src / "target" / "2.png")
    message = r"misaligned pair: .*input/2\.png is 12x8 but .*target/2\.png is 10x8"
    with pytest.raises(DataError, match=message):
        import_pairs(src, out=tmp_path / "ds")
    assert _names(tmp_path) == ["src"]  # the half-built staging folder is gone


def test_unknown_layout_lists_supported_ones(tmp_path):
    src = tmp_path / "weird"
    _save(_img(1), src / "hazy" / "1.png")
    _save(_img(2), src / "clear" / "1.png")
    with pytest.raises(DataError, match=r"weird: unknown layout \(it holds clear/, hazy/\)") as err:
        import_pairs(src, out=tmp_path / "ds")
    for name, layout in LAYOUTS.items():
        assert name in str(err.value) and layout.example in str(err.value)
    # one level too high: the error points at the benchmark folder inside
    _mirror(tmp_path / "benchmarks" / "Rain100H")
    with pytest.raises(DataError, match=r"did you mean .*benchmarks/Rain100H\?"):
        import_pairs(tmp_path / "benchmarks", out=tmp_path / "ds")
    with pytest.raises(DataError, match="no such folder"):
        detect_layout(tmp_path / "missing")


def test_badly_named_file_in_promptir_layout_is_named(tmp_path):
    src = tmp_path / "Derain"
    _save(_img(1), src / "rainy" / "rain-1.png")
    _save(_img(2), src / "gt" / "norain-1.png")
    _save(_img(3), src / "rainy" / "img_2.png")
    with pytest.raises(DataError, match=r"rainy/img_2\.png: the 'promptir' layout expects names like rain"):
        find_source_pairs(src)


def test_existing_output_refused_then_append_continues_numbering_and_force_replaces(tmp_path):
    src = _mirror(tmp_path / "src", keys=[str(k) for k in range(1, 6)])
    out = tmp_path / "ds"
    import_pairs(src, out=out, test_fraction=0.4, seed=0)
    with pytest.raises(DataError, match=r"ds: already exists .*--append .*--force"):
        import_pairs(src, out=out)
    summary = import_pairs(src, kind="snow", out=out, test_fraction=0.4, seed=0, mode="append")
    assert summary.mode == "append"
    assert summary.train_names == ["snow-1", "snow-2", "snow-3"] and summary.test_names == ["2", "3"]
    labels = (out / "test" / "labels.csv").read_text().splitlines()
    assert labels == ["name,kind,level", "0.png,rain,", "1.png,rain,", "2.png,snow,", "3.png,snow,"]
    again = import_pairs(src, kind="rain", out=out, mode="append")
    assert again.train_names == ["rain-4", "rain-5", "rain-6", "rain-7", "rain-8"]
    assert len((out / "sources.csv").read_text().splitlines()) == 1 + 5 + 5 + 5
    assert len(list((out / "train" / "degraded").iterdir())) == 3 + 3 + 5

    import_pairs(src, kind="rain", out=out, mode="force")
    assert _names(out / "train" / "degraded") == [f"rain-{k}.png" for k in range(1, 6)]
    assert not (out / "test").exists()
    assert _names(tmp_path) == ["ds", "src"]


def test_output_must_not_be_the_source(tmp_path):
    src = _mirror(tmp_path / "src")
    for out in (src, tmp_path):
        with pytest.raises(DataError, match="must not be the source folder"):
            import_pairs(src, out=out, mode="force")
    assert (src / "input" / "1.png").is_file()


def test_bad_arguments(tmp_path):
    src = _mirror(tmp_path / "src")
    with pytest.raises(DataError, match="unknown --type 'haze'"):
        import_pairs(src, kind="haze", out=tmp_path / "ds")
    with pytest.raises(DataError, match=r"--test-fraction must be in \[0, 1\)"):
        import_pairs(src, out=tmp_path / "ds", test_fraction=1.0)
    with pytest.raises(DataError, match="unknown layout 'rain800'"):
        import_pairs(src, out=tmp_path / "ds", layout="rain800")


@pytest.mark.skipif(not SHARED_RAIN100L.is_dir(), reason="../shared/data/rain100l is absent")
def test_real_rain100l_is_found_as_mirror_layout():
    pairs = find_source_pairs(SHARED_RAIN100L)
    assert detect_layout(SHARED_RAIN100L).name == "mirror"
    assert len(pairs) == 100 and [p.key for p in pairs[:3]] == ["1", "2", "3"] and pairs[-1].key == "100"


def test_append_to_a_demo_style_set_keeps_its_labels_and_extra_columns(tmp_path):
    out = tmp_path / "demo"
    _save(_img(1), out / "test" / "degraded" / "0.png")
    _save(_img(2), out / "test" / "clean" / "0.png")
    (out / "test" / "labels.csv").write_text("name,kind,level,note\n0.png,snow,heavy,x\n")
    _save(_img(3), out / "train" / "degraded" / "rain-1.png")
    _save(_img(4), out / "train" / "clean" / "rain_clean-1.png")
    src = _mirror(tmp_path / "src", keys=["1", "2"])
    summary = import_pairs(src, out=out, test_fraction=0.5, seed=0, mode="append")
    assert summary.train_names == ["rain-2"] and summary.test_names == ["1"]
    assert (out / "test" / "labels.csv").read_text().splitlines() == [
        "name,kind,level,note", "0.png,snow,heavy,x", "1.png,rain,,"
    ]
    np.testing.assert_array_equal(_read(out / "test" / "degraded" / "0.png"), _img(1))  # untouched
