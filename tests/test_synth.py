"""The synthetic rain/snow demo data: image models, layout, determinism, PSNR ranges, CLI, atomic writes."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from hw4lib import paths, synth
from hw4lib.checks import check_data
from hw4lib.data import DataError, PairedDataset, find_pairs, find_test_images, load_image
from hw4lib.metrics import psnr_uint8
from hw4lib.synth import datasets, photos, study_set

REAL_MASKS = paths.env_folder("HW4_SNOW100K_MASKS")  # real Snow100K masks (tests/conftest.py names them)
REAL_RAIN100L = study_set.default_rain100l()  # $HW4_RAIN100L


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _clean(seed: int = 0, size: int = 96, top: int = 255) -> np.ndarray:
    """A real photo crop, optionally darkened so additive models never clip."""
    img = synth.random_crop(np.random.default_rng(seed), size)
    return (img.astype(np.float32) * (top / 255.0)).round().astype(np.uint8)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "set"
    summary = synth.generate_demo_dataset(out, pairs_per_type=3, test_per_type=2, size=48, seed=0)
    return out, summary


# ----------------------------------------------------------------------------------------------------------
# photographs


def test_photos_load_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the synthesizer tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    photos._photo_image.cache_clear()
    assert synth.available_photos() == list(synth.PHOTOS)  # all bundled with the installed wheels
    for name in synth.PHOTOS:
        img = synth.load_photo(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert min(img.shape[:2]) >= 256, name
    assert set(synth.TRAIN_PHOTOS).isdisjoint(synth.TEST_PHOTOS)
    assert set(synth.TRAIN_PHOTOS) | set(synth.TEST_PHOTOS) == set(synth.PHOTOS)


def test_random_crop_is_seeded_and_sized() -> None:
    a = synth.random_crop(np.random.default_rng(3), 40)
    b = synth.random_crop(np.random.default_rng(3), 40)
    c = synth.random_crop(np.random.default_rng(4), 40)
    assert a.shape == (40, 40, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert synth.random_crop(np.random.default_rng(0), (24, 56), photos=["coffee"]).shape == (24, 56, 3)


# ----------------------------------------------------------------------------------------------------------
# rain


def test_rain_is_additive_and_confined_to_the_streaks() -> None:
    clean = _clean(1, top=180)  # no pixel can clip at 255 after adding streaks up to 0.35
    res = synth.add_rain(clean, 5, "light")
    b, o = clean.astype(int), res.degraded.astype(int)
    expected = np.round(np.clip(clean / 255.0 + res.streaks[..., None], 0, 1) * 255).astype(int)
    assert np.abs(o - expected).max() <= 1  # O = B + S
    assert np.abs(o - b)[~res.mask].max() <= 1  # unchanged away from the streaks (within rounding)
    strong = res.streaks > 10 / 255
    assert strong.any() and (o - b)[strong].min() > 0  # brighter on every strong streak pixel
    assert 0.01 < res.mask.mean() < 0.6
    assert res.veil == 0.0 and res.seeds.shape == res.streaks.shape == clean.shape[:2]
    assert 0.0 <= res.streaks.min() and res.streaks.max() <= 1.0


def test_rain_screen_blend_and_veil() -> None:
    clean = _clean(2)
    res = synth.add_rain(clean, 7, "heavy", blend="screen", veil=(0.1, 0.1), veil_light=(0.8, 0.8))
    b, s = clean / 255.0, res.streaks[..., None]
    expected = (1 - 0.1) * (1 - (1 - b) * (1 - s)) + 0.1 * 0.8
    assert res.veil == pytest.approx(0.1)
    assert np.abs(res.degraded.astype(float) - np.round(expected * 255)).max() <= 1
    with pytest.raises(ValueError, match="blend"):
        synth.add_rain(clean, 0, blend="multiply")
    with pytest.raises(ValueError, match="unknown rain level"):
        synth.add_rain(clean, 0, "drizzle")


def test_rain_streaks_follow_the_image_slant() -> None:
    clean = np.full((160, 160, 3), 60, np.uint8)
    res = synth.add_rain(clean, 11, "light", jitter=0.0, density=(4.0, 4.0), length=(40.0, 40.0))
    labels, n = ndi.label(res.streaks > 0.05)
    angles = []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        ys, xs = np.nonzero(labels[sl] == i)
        if ys.size < 40:
            continue
        evals, evecs = np.linalg.eigh(np.cov(np.stack([xs - xs.mean(), ys - ys.mean()])))
        vx, vy = evecs[:, 1]
        angles.append(np.degrees(np.arctan2(vx, vy) if vy >= 0 else np.arctan2(-vx, -vy)))
    assert len(angles) >= 3
    assert abs(float(np.median(angles)) - res.angle) < 3.0
    assert abs(res.angle) <= synth.RAIN_PRESETS["light"].angle


# ----------------------------------------------------------------------------------------------------------
# snow


def test_snow_is_an_alpha_composite_confined_to_the_mask() -> None:
    clean = _clean(3)
    res = synth.add_snow(clean, 9, "light")  # light snow has no haze: alpha is 0 between flakes
    a = res.alpha[..., None]
    expected = np.round((clean / 255.0 * (1 - a) + a * np.asarray(res.colour)) * 255)
    assert np.abs(res.degraded.astype(float) - expected).max() <= 1
    b, o = clean.astype(int), res.degraded.astype(int)
    assert np.abs(o - b)[res.alpha < 0.5 / 255].max() <= 1
    flakes = (res.alpha > 0.5) & (clean.mean(axis=2) < 100)
    assert flakes.any() and (o.mean(axis=2) - b.mean(axis=2))[flakes].min() > 20
    assert (res.alpha >= 0).all() and (res.alpha <= 1).all()
    assert len(res.layers) == len(synth.SNOW_PRESETS["light"].layers) and res.level == "light"


def test_snow_gets_heavier_with_the_level() -> None:
    means = {
        level: np.mean([synth.snow_alpha((96, 96), seed, level)[0].mean() for seed in range(3)])
        for level in ("light", "medium", "heavy")
    }
    assert means["light"] < means["medium"] < means["heavy"]
    alpha, layers, haze = synth.snow_alpha((64, 80), 0, "heavy")
    assert alpha.shape == haze.shape == (64, 80) and haze.min() > 0  # heavy snow has a veiling haze
    # the layers composite "over" each other: the total is at least every single layer
    assert all((alpha >= layer - 1e-6).all() for layer in layers)


def test_real_mask_is_cropped_and_composited(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    mask = np.zeros((120, 160), np.uint8)
    mask[40:60, 50:70] = 255
    Image.fromarray(np.stack([mask] * 3, axis=2)).save(folder / "m.png")  # grayscale stored as RGB
    (folder / "notes.txt").write_text("not a mask")
    masks = synth.load_snow_masks(folder)
    assert list(masks) == ["m"] and masks["m"].shape == (120, 160) and masks["m"].max() == pytest.approx(1.0)
    crop = synth.crop_snow_mask(masks["m"], (64, 64), np.random.default_rng(0))
    assert crop.shape == (64, 64) and 0.0 <= crop.min() and crop.max() <= 1.0
    res = synth.add_snow(_clean(4, size=64), 0, real_mask=masks["m"])
    assert res.level == "real" and res.layers == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no mask images"):
        synth.load_snow_masks(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        synth.load_snow_masks(tmp_path / "nowhere")


def test_generator_composites_real_masks_when_given(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    mask = np.zeros((100, 100), np.uint8)
    mask[::7, ::5] = 200
    Image.fromarray(mask).save(folder / "flakes.png")
    summary = synth.generate_demo_dataset(
        tmp_path / "set", pairs_per_type=2, test_per_type=1, size=32, snow_masks=folder
    )
    assert summary["settings"]["snow_masks"] == ["flakes.png"]
    assert summary["input_psnr_db"]["train/snow/real"]["n"] == 2  # every snow image used the real mask
    with open(tmp_path / "set" / "test" / "labels.csv", newline="") as f:
        assert {r["level"] for r in csv.DictReader(f) if r["kind"] == "snow"} == {"real"}


# ----------------------------------------------------------------------------------------------------------
# mask statistics


def test_mask_stats_on_a_hand_made_mask() -> None:
    alpha = np.full((20, 20), 0.05, np.float32)
    alpha[2:5, 2:5] = 0.8  # flake of 9 px
    alpha[10:12, 10:12] = 0.6  # flake of 4 px
    alpha[15, 15] = 0.3  # faint: counted in coverage, not as a flake
    s = synth.mask_stats(alpha)
    assert s["coverage"] == pytest.approx(14 / 400)
    assert s["opaque"] == pytest.approx(13 / 400)
    assert s["flakes_per_10k"] == pytest.approx(2 / 400 * 1e4)
    assert (s["flake_p50"], s["flake_max"]) == (6.5, 9)
    assert s["mean"] == pytest.approx(float(alpha.mean()), abs=1e-4)
    assert s["floor"] == pytest.approx(0.05)
    # bins [0, .05) [.05, .1) [.1, .2) [.2, .3) [.3, .5) [.5, .7) [.7, 1]
    assert s["hist"] == pytest.approx([0, 386 / 400, 0, 0, 1 / 400, 4 / 400, 9 / 400])
    as_uint8 = np.round(np.stack([alpha] * 3, axis=2) * 255).astype(np.uint8)  # a mask file as read from disk
    assert synth.mask_stats(as_uint8)["flakes_per_10k"] == s["flakes_per_10k"]


@pytest.mark.skipif(REAL_MASKS is None, reason="$HW4_SNOW100K_MASKS (real Snow100K masks) is not set")
def test_snow_presets_match_the_real_snow100k_masks() -> None:
    masks = synth.load_snow_masks(REAL_MASKS)
    real = {
        level: masks[f"beautiful_smile_0000{n}"] for level, n in (("medium", 1), ("heavy", 6), ("light", 8))
    }
    for level, mask in real.items():
        target = synth.mask_stats(mask)
        stats = [synth.mask_stats(synth.snow_alpha((480, 640), seed, level)[0]) for seed in range(2)]
        got = {
            k: float(np.mean([s[k] for s in stats])) for k in ("mean", "coverage", "opaque", "flakes_per_10k")
        }
        assert got["mean"] == pytest.approx(target["mean"], rel=0.25), level
        assert got["coverage"] == pytest.approx(target["coverage"], rel=0.3), level
        assert got["opaque"] == pytest.approx(target["opaque"], rel=0.4), level
        assert got["flakes_per_10k"] == pytest.approx(target["flakes_per_10k"], rel=0.4), level


def _streaked(clean: np.ndarray) -> np.ndarray:
    """``clean`` plus a vertical streak of 20 px, a diagonal one of 12 px (+50 grey) and a 3-px speck."""
    out = clean.astype(np.int16)
    out[5:25, 10] += 50
    for i in range(12):
        out[30 + i, 30 + i] += 50
    out[2, 2:5] += 50
    return np.clip(out, 0, 255).astype(np.uint8)


def test_rain_stats_on_a_hand_made_rain_layer() -> None:
    clean = np.full((50, 60, 3), 100, np.uint8)
    s = synth.rain_stats(_streaked(clean), clean)
    n = 20 + 12 + 3
    assert s["brightened"] == pytest.approx(n / 3000, abs=1e-4)
    assert s["psnr"] == pytest.approx(10 * np.log10(255**2 / (n * 50**2 / 3000)), abs=0.01)
    assert s["streaks_per_10k"] == pytest.approx(2 / 3000 * 1e4, abs=0.01)  # the speck is under min_size
    # principal-axis extent: 20 for the vertical run; the diagonal one spans 12 px on each axis: 12 * sqrt(2)
    assert s["streak_length_p50"] == pytest.approx((20 + np.sqrt(12 * 2 * (12**2 - 1) / 12 + 1)) / 2, abs=0.1)
    assert synth.rain_stats(clean, clean)["streak_length_p50"] == 0.0


def test_compare_rain_measures_the_real_set_and_the_preset_on_its_photographs(tmp_path: Path) -> None:
    for folder in ("input", "target"):
        (tmp_path / folder).mkdir()
    clean = [np.full((50, 60, 3), v, np.uint8) for v in (60, 90)]
    for i, c in enumerate(clean, start=1):
        Image.fromarray(c).save(tmp_path / "target" / f"{i}.png")
        Image.fromarray(_streaked(c)).save(tmp_path / "input" / f"{i}.png")
    got = synth.compare_rain(tmp_path, "light")
    assert got["real"] == synth.rain_stats(_streaked(clean[0]), clean[0])  # both pairs alike: mean = either
    expected = [synth.rain_stats(synth.add_rain(c, np.random.default_rng([0, i]), "light").degraded, c)
                for i, c in enumerate(clean)]  # fmt: skip
    assert got["synthetic light"]["psnr"] == pytest.approx(np.mean([e["psnr"] for e in expected]), abs=1e-4)


def test_compare_rain_names_a_misaligned_pair(tmp_path: Path) -> None:
    for folder, width in (("input", 60), ("target", 50)):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((40, width, 3), 90, np.uint8)).save(tmp_path / folder / "1.png")
    with pytest.raises(DataError, match=r"input/1\.png is 60x40 but its clean twin .*target/1\.png is 50x40"):
        synth.compare_rain(tmp_path, "light")


@pytest.mark.skipif(REAL_RAIN100L is None, reason="$HW4_RAIN100L (a Rain100L copy) is not set")
def test_light_rain_preset_matches_rain100l_on_its_photographs() -> None:
    got = synth.compare_rain(REAL_RAIN100L, "light")
    real, ours = got["real"], got["synthetic light"]
    assert ours["psnr"] == pytest.approx(real["psnr"], abs=1.0)
    assert ours["brightened"] == pytest.approx(real["brightened"], rel=0.3)


# ----------------------------------------------------------------------------------------------------------
# PSNR ranges


@pytest.mark.parametrize(
    ("kind", "level"), [(k, lv) for k in synth.EXPECTED_PSNR for lv in synth.EXPECTED_PSNR[k]]
)
def test_input_psnr_is_in_the_documented_range(kind: str, level: str) -> None:
    values = []
    for i in range(16):
        rng = np.random.default_rng([123, i])
        clean = synth.random_crop(rng, 96)
        degraded = (synth.add_rain if kind == "rain" else synth.add_snow)(clean, rng, level).degraded
        values.append(psnr_uint8(degraded, clean))
    lo, hi = synth.EXPECTED_PSNR[kind][level]
    assert lo <= np.mean(values) <= hi, (kind, level, np.mean(values))


# ----------------------------------------------------------------------------------------------------------
# the generated dataset


def test_layout_and_pairing(small_set: tuple[Path, dict]) -> None:
    out, summary = small_set
    pairs = find_pairs(out)
    assert [(p.kind, p.name) for p in pairs] == [("rain", f"rain-{i}") for i in (1, 2, 3)] + [
        ("snow", f"snow-{i}") for i in (1, 2, 3)
    ]
    for p in pairs:
        assert p.clean == out / "train" / "clean" / f"{p.kind}_clean-{p.name.split('-')[1]}.png"
        degraded, clean = load_image(p.degraded), load_image(p.clean)
        assert degraded.shape == clean.shape == (48, 48, 3)
        assert not np.array_equal(degraded, clean)
    tests = find_test_images(out)
    assert [t.name for t in tests] == ["0.png", "1.png", "2.png", "3.png"]
    assert sorted(p.name for p in (out / "test" / "clean").iterdir()) == ["0.png", "1.png", "2.png", "3.png"]
    with open(out / "test" / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [t.name for t in tests]
    assert sorted(r["kind"] for r in rows) == ["rain", "rain", "snow", "snow"]
    assert summary["counts"] == {"train/rain": 3, "train/snow": 3, "test": 4}
    assert summary["input_psnr_db"]["train/rain"]["n"] == 3
    assert (out / "synth.json").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_the_reader_reads_the_generated_set(small_set: tuple[Path, dict]) -> None:
    out, _ = small_set
    report = check_data(out)
    assert report.ok and report.pairs_per_kind == {"rain": 3, "snow": 3} and report.test_count == 4
    item = PairedDataset(find_pairs(out), patch_size=32, augment=True)[4]
    assert item["kind"] == "snow" and tuple(item["degraded"].shape) == tuple(item["clean"].shape) == (
        3,
        32,
        32,
    )
    assert 0.0 <= float(item["degraded"].min()) and float(item["degraded"].max()) <= 1.0


def test_same_seed_gives_byte_identical_files(small_set: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = small_set
    again = tmp_path / "again"
    synth.generate_demo_dataset(again, pairs_per_type=3, test_per_type=2, size=48, seed=0)
    assert _files(again) == _files(out)
    other = tmp_path / "other"
    synth.generate_demo_dataset(other, pairs_per_type=3, test_per_type=2, size=48, seed=1)
    a, b = _files(out), _files(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith(".png"))
    # a file does not depend on how many others are generated
    grown = tmp_path / "grown"
    synth.generate_demo_dataset(grown, pairs_per_type=4, test_per_type=2, size=48, seed=0)
    for name in ("train/degraded/rain-3.png", "train/clean/snow_clean-2.png"):
        assert (grown / name).read_bytes() == (out / name).read_bytes()


def test_refuses_to_overwrite_and_replaces_only_its_own_sets(tmp_path: Path) -> None:
    out = tmp_path / "set"
    synth.generate_demo_dataset(out, pairs_per_type=1, test_per_type=1, size=32, seed=0)
    first = _files(out)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synth.generate_demo_dataset(out, pairs_per_type=1, test_per_type=1, size=32, seed=1)
    assert _files(out) == first
    synth.generate_demo_dataset(out, pairs_per_type=1, test_per_type=1, size=32, seed=1, overwrite=True)
    assert _files(out) != first and len(_files(out)) == len(first)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not made by demo-data"):
        synth.generate_demo_dataset(foreign, pairs_per_type=1, test_per_type=1, size=32, overwrite=True)
    assert (foreign / "thesis.tex").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    synth.generate_demo_dataset(empty, pairs_per_type=1, test_per_type=0, size=32)
    assert len(find_pairs(empty)) == 2


def test_an_interrupted_run_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "set"
    synth.generate_demo_dataset(out, pairs_per_type=1, test_per_type=1, size=32, seed=0)
    before = _files(out)
    calls = []

    def failing_save(img: np.ndarray, path: Path, compress_level: int | None = None) -> Path:
        calls.append(path)
        if len(calls) > 3:
            raise KeyboardInterrupt
        path.write_bytes(b"partial")
        return path

    monkeypatch.setattr(paths, "save_png_atomic", failing_save)  # every PNG the synthesizer writes
    with pytest.raises(KeyboardInterrupt):
        synth.generate_demo_dataset(out, pairs_per_type=2, test_per_type=1, size=32, seed=5, overwrite=True)
    assert _files(out) == before  # the old set is untouched
    with pytest.raises(KeyboardInterrupt):
        calls.clear()
        synth.generate_demo_dataset(tmp_path / "new", pairs_per_type=2, test_per_type=1, size=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no half set, no temp folder


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="size"):
        synth.generate_demo_dataset("/nonexistent/x", size=8)
    with pytest.raises(ValueError, match="pairs_per_type"):
        synth.generate_demo_dataset("/nonexistent/x", pairs_per_type=-1)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        synth.generate_demo_dataset("/nonexistent/x", snow_masks="/nowhere")


def test_ensure_demo_dataset_generates_only_the_default_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW4_ROOT", str(tmp_path))
    monkeypatch.setenv("HW4_OUTPUT", str(tmp_path))  # outputs in the repository, as outside the tests
    made = []
    monkeypatch.setattr(datasets, "generate_demo_dataset", lambda out, **kw: made.append(Path(out)))
    assert synth.ensure_demo_dataset() == tmp_path / "data" / "demo"
    assert made == [tmp_path / "data" / "demo"]  # missing default folder: generated with the defaults
    with pytest.raises(FileNotFoundError, match="course data"):
        synth.ensure_demo_dataset("data/hw4_realse_dataset")  # never fills another folder with demo data
    course = tmp_path / "data" / "course"
    (course / "train").mkdir(parents=True)
    assert synth.ensure_demo_dataset("data/course") == course and len(made) == 1


def test_a_missing_demo_set_is_generated_where_the_outputs_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the tests ($HW4_OUTPUT elsewhere) a fresh clone's demo set lands in the temporary folder, and
    every later relative read of data/demo finds it there; a set in the repository comes first."""
    repo, out = tmp_path / "repo", tmp_path / "out"
    repo.mkdir()
    monkeypatch.setenv("HW4_ROOT", str(repo))
    monkeypatch.setenv("HW4_OUTPUT", str(out))

    def fake_generate(target, **kw):
        (Path(target) / "train").mkdir(parents=True)

    monkeypatch.setattr(datasets, "generate_demo_dataset", fake_generate)
    assert synth.ensure_demo_dataset("data/demo") == out / "data" / "demo"
    assert not (repo / "data").exists()
    assert paths.resolve("data/demo") == paths.data_dir("demo") == out / "data" / "demo"
    assert paths.relative(out / "data" / "demo") == "data/demo"
    (repo / "data" / "demo" / "train").mkdir(parents=True)  # `make demo-data` made one in the repository
    assert synth.ensure_demo_dataset() == repo / "data" / "demo" == paths.resolve("data/demo")


# ----------------------------------------------------------------------------------------------------------
# sets over any folder of clean photographs (demo-data --photos), split by scene


def _photo_folder(folder: Path) -> list[Path]:
    """Five small photographs (two sizes, one JPEG, one grayscale) and two files to skip; returns the photos
    in natural order (img1 before img10)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    shapes = {"img1.png": (40, 48), "img2.jpg": (56, 40), "img3.png": (40, 48), "img10.png": (56, 40)}
    for name, (h, w) in shapes.items():
        smooth = ndi.gaussian_filter(rng.uniform(0, 255, (h, w, 3)), (3, 3, 0)).astype(np.uint8)
        Image.fromarray(smooth).save(folder / name)
    Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8), mode="L").save(folder / "img4.png")
    (folder / "notes.txt").write_text("not a photo")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / ".hidden.png")
    return [folder / n for n in ("img1.png", "img2.jpg", "img3.png", "img4.png", "img10.png")]


def _split_rows(out: Path) -> dict[str, str]:
    with open(out / "split.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len({r["name"] for r in rows}) == len(rows)
    return {r["name"]: r["split"] for r in rows}


def test_photo_set_gives_every_photo_a_rain_and_a_snow_pair(tmp_path: Path) -> None:
    photos = _photo_folder(tmp_path / "photos")
    out = tmp_path / "set"
    summary = synth.generate_photo_dataset(tmp_path / "photos", out, seed=0)
    pairs = find_pairs(out, strict=True)
    assert [p.name for p in pairs] == [f"{k}-{n}" for k in ("rain", "snow") for n in range(1, 6)]
    for p in pairs:
        n = int(p.name.split("-")[1])
        photo = load_image(photos[n - 1])
        degraded, clean = load_image(p.degraded), load_image(p.clean)
        assert np.array_equal(clean, photo)  # the clean twin is the photo itself, at its own size
        assert degraded.shape == photo.shape
        assert not np.array_equal(degraded, clean), p.name
    assert [load_image(out / "train/clean" / f"snow_clean-{n}.png").shape[:2] for n in (1, 2)] == [
        (40, 48),
        (56, 40),
    ]
    split = _split_rows(out)
    assert list(split) == [p.name for p in pairs] and set(split.values()) == {"train", "val"}
    for n in range(1, 6):
        assert split[f"rain-{n}"] == split[f"snow-{n}"]  # both versions of a scene on the same side
    assert sum(v == "val" for v in split.values()) == 2 * round(5 * 0.2)
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["generator"] == "hw4lib.synth.generate_photo_dataset" and manifest["source"] == "photos"
    assert manifest["settings"]["scenes"] == [p.name for p in photos]
    assert manifest["counts"] == {"scenes": 5, "rain": {"train": 4, "val": 1}, "snow": {"train": 4, "val": 1}}
    assert summary["counts"] == manifest["counts"]
    rain = [psnr_uint8(load_image(p.degraded), load_image(p.clean)) for p in pairs[:5]]
    assert manifest["input_psnr_db"]["rain"]["mean"] == pytest.approx(np.mean(rain), abs=0.01)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_photo_set_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    _photo_folder(tmp_path / "photos")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        synth.generate_photo_dataset(tmp_path / "photos", out, seed=seed, val_fraction=0.4)
    assert _files(a) == _files(b)
    fa, fc = _files(a), _files(c)
    assert fa.keys() == fc.keys()
    degraded = [k for k in fa if "degraded" in k]
    assert len(degraded) == 10 and all(fa[k] != fc[k] for k in degraded)
    assert all(fa[k] == fc[k] for k in fa if "/clean/" in k)  # the photos themselves do not change
    for split in (_split_rows(a), _split_rows(c)):
        assert sum(v == "val" for v in split.values()) == 2 * round(5 * 0.4)
        assert all(split[f"rain-{n}"] == split[f"snow-{n}"] for n in range(1, 6))


def test_photo_set_max_side_and_errors(tmp_path: Path) -> None:
    _photo_folder(tmp_path / "photos")
    out = tmp_path / "small"
    synth.generate_photo_dataset(tmp_path / "photos", out, max_side=32, val_fraction=0.0)
    assert load_image(out / "train/clean/rain_clean-1.png").shape == (27, 32, 3)  # 40x48 -> 27x32
    assert load_image(out / "train/degraded/snow-2.png").shape == (32, 23, 3)  # 56x40 -> 32x23
    assert set(_split_rows(out).values()) == {"train"}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synth.generate_photo_dataset(tmp_path / "photos", out)
    synth.generate_photo_dataset(tmp_path / "photos", out, overwrite=True)
    assert load_image(out / "train/clean/rain_clean-1.png").shape == (40, 48, 3)
    with pytest.raises(ValueError, match="must not be the photo folder"):
        synth.generate_photo_dataset(tmp_path / "photos", tmp_path, overwrite=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no photographs"):
        synth.generate_photo_dataset(tmp_path / "empty", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        synth.generate_photo_dataset(tmp_path / "nowhere", tmp_path / "x")
    with pytest.raises(ValueError, match="max_side"):
        synth.generate_photo_dataset(tmp_path / "photos", tmp_path / "x", max_side=4)
    with pytest.raises(ValueError, match="val_fraction"):
        synth.generate_photo_dataset(tmp_path / "photos", tmp_path / "x", val_fraction=1.0)
    assert not (tmp_path / "x").exists()


def test_split_scenes_draws_round_n_times_the_fraction() -> None:
    scenes = list(range(1, 11))
    split = synth.split_scenes(scenes, 0.25, seed=1)
    assert list(split) == scenes and sum(v == "val" for v in split.values()) == round(2.5)
    assert synth.split_scenes(scenes, 0.25, seed=1) == split
    assert len({tuple(synth.split_scenes(scenes, 0.25, seed=s).values()) for s in range(5)}) > 1
    assert set(synth.split_scenes(scenes, 0.0).values()) == {"train"}
    assert list(synth.split_scenes([1, 2], 0.01).values()).count("val") == 1  # at least one, never all
    assert synth.split_scenes(["only"], 0.5) == {"only": "train"}


def test_demo_scenes_names_the_photo_each_crop_came_from(tmp_path: Path, monkeypatch) -> None:
    used = []
    original = photos._photo_image

    def recording(name: str):
        used.append(name)
        return original(name)

    monkeypatch.setattr(photos, "_photo_image", recording)
    out = tmp_path / "set"
    synth.generate_demo_dataset(out, pairs_per_type=4, test_per_type=0, size=24, seed=5)
    scenes = synth.demo_scenes(json.loads((out / "synth.json").read_text()))
    assert scenes is not None and list(scenes.values()) == used  # rain-1..4, snow-1..4: generation order
    assert list(scenes) == [f"{k}-{i}" for k in ("rain", "snow") for i in range(1, 5)]
    assert synth.demo_scenes({"generator": "hw4lib.synth.generate_photo_dataset"}) is None
