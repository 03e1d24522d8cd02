"""Data layer: pairing by name, numeric order, clear errors, stratified split, identical paired crops."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hw4lib.checks import check_data
from hw4lib.data import (
    DataError,
    PairedDataset,
    find_pairs,
    find_test_images,
    load_image,
    load_pair,
    paired_augment,
    paired_random_crop,
    read_split,
    split_by_file,
    split_pairs,
    to_tensor,
    to_uint8,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "rain100l"
OFFSET = 10  # degraded = clean + OFFSET in the fixtures: input PSNR 10*log10(255^2/100) dB


def _save(img: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def make_dataset(root: Path, rain=(1, 2, 3), snow=(1, 2, 3), tests=(0, 1, 2), size=(20, 24), seed=0) -> Path:
    """Course layout with clean images in [0, 200] and degraded = clean + OFFSET (H, W = size)."""
    rng = np.random.default_rng(seed)
    for kind, numbers in (("rain", rain), ("snow", snow)):
        for n in numbers:
            clean = rng.integers(0, 201, size=(*size, 3), dtype=np.uint8)
            _save(clean, root / "train" / "clean" / f"{kind}_clean-{n}.png")
            _save(clean + OFFSET, root / "train" / "degraded" / f"{kind}-{n}.png")
    for k in tests:
        _save(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8), root / "test" / "degraded" / f"{k}.png")
    return root


# ------------------------------------------------------------------------------------------------------------
# pairing and errors


def test_pairs_sorted_numerically_with_kinds(tmp_path):
    root = make_dataset(tmp_path, rain=(10, 2, 1), snow=(20, 3))
    pairs = find_pairs(root)
    assert [p.name for p in pairs] == ["rain-1", "rain-2", "rain-10", "snow-3", "snow-20"]
    assert [p.kind for p in pairs] == ["rain"] * 3 + ["snow"] * 2
    assert all(p.clean.name == p.name.replace("-", "_clean-") + ".png" for p in pairs)
    assert find_pairs(root / "train") == pairs  # the train folder itself is accepted too


def test_test_images_numeric_order(tmp_path):
    root = make_dataset(tmp_path, tests=(10, 2, 0, 1, 11))
    assert [p.name for p in find_test_images(root)] == ["0.png", "1.png", "2.png", "10.png", "11.png"]
    with pytest.raises(DataError, match="test"):
        find_test_images(tmp_path / "nowhere")


def test_missing_root_and_folders(tmp_path):
    with pytest.raises(DataError, match="Expected layout"):
        find_pairs(tmp_path / "does-not-exist")
    root = make_dataset(tmp_path / "d")
    for f in (root / "train" / "clean").iterdir():
        f.unlink()
    (root / "train" / "clean").rmdir()
    with pytest.raises(DataError, match=r"train[/\\]clean.*missing"):
        find_pairs(root)


def test_missing_twins_named(tmp_path):
    root = make_dataset(tmp_path)
    (root / "train" / "clean" / "rain_clean-2.png").unlink()
    (root / "train" / "degraded" / "snow-3.png").unlink()
    with pytest.raises(DataError) as err:
        find_pairs(root)
    msg = str(err.value)
    assert "2 problem(s)" in msg
    assert "rain-2.png: degraded image has no clean twin" in msg and "rain_clean-2.png" in msg
    assert "snow_clean-3.png: clean image has no degraded twin" in msg


def test_unknown_names_warn_or_fail(tmp_path):
    root = make_dataset(tmp_path)
    _save(np.zeros((4, 4, 3), np.uint8), root / "train" / "degraded" / "fog-1.png")
    (root / "train" / "degraded" / ".DS_Store").write_bytes(b"junk")  # hidden: ignored silently
    with pytest.warns(UserWarning, match="fog-1.png"):
        pairs = find_pairs(root)
    assert len(pairs) == 6
    with pytest.raises(DataError, match="fog-1.png"):
        find_pairs(root, strict=True)


def test_size_mismatch_names_both_files(tmp_path):
    root = make_dataset(tmp_path)
    _save(np.zeros((10, 12, 3), np.uint8), root / "train" / "clean" / "snow_clean-2.png")
    pair = next(p for p in find_pairs(root) if p.name == "snow-2")
    with pytest.raises(
        DataError, match=r"snow-2.png is 24x20 but its clean twin .*snow_clean-2.png is 12x10"
    ):
        load_pair(pair)
    with pytest.raises(DataError, match="snow_clean-2.png"):
        PairedDataset([pair])[0]


def test_corrupt_and_truncated_files(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(DataError, match=r"bad.png: cannot read the image.*corrupt"):
        load_image(bad)
    good = _save(np.full((64, 64, 3), 7, np.uint8), tmp_path / "good.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DataError, match="cut.png"):
        load_image(cut)
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_mode_conversions(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = load_image(_save(gray, tmp_path / "l.png"))
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    assert np.array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))

    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").tolist() == [[[255, 0, 0], [0, 0, 255]]]
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    assert load_image(tmp_path / "pt.png").tolist() == [[[255, 0, 0], [0, 0, 255]]]

    rgba = np.array([[[10, 20, 30, 0], [40, 50, 60, 128]]], np.uint8)
    assert load_image(_save(rgba, tmp_path / "rgba.png")).tolist() == [
        [[10, 20, 30], [40, 50, 60]]
    ]  # alpha dropped

    g16 = np.array([[0, 257, 65535, 1000]], np.uint16)  # 1000/257 = 3.89 -> 4
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert load_image(tmp_path / "g16.png")[0, :, 0].tolist() == [0, 1, 255, 4]

    Image.new("LA", (1, 1), (77, 9)).save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").tolist() == [[[77, 77, 77]]]


# ------------------------------------------------------------------------------------------------------------
# split


def test_split_stratified_deterministic_disjoint(tmp_path):
    root = make_dataset(tmp_path, rain=range(1, 21), snow=range(1, 11), tests=())
    pairs = find_pairs(root)
    train, val = split_pairs(pairs, val_fraction=0.1, seed=0)
    assert sorted(p.kind for p in val) == ["rain", "rain", "snow"]  # round(2.0), round(1.0)
    assert not set(train) & set(val) and set(train) | set(val) == set(pairs)
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    assert split_pairs(shuffled, 0.1, seed=0) == (train, val)  # input order does not matter
    vals = {tuple(p.name for p in split_pairs(pairs, 0.1, seed=s)[1]) for s in range(5)}
    assert len(vals) > 1  # the seed matters
    assert split_pairs(pairs, 0.0) == (pairs, [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_pairs(pairs, 1.0)


def test_split_small_kinds(tmp_path):
    root = make_dataset(tmp_path, rain=(1, 2), snow=(1,), tests=())
    train, val = split_pairs(find_pairs(root), val_fraction=0.01)
    assert [p.kind for p in val] == ["rain"]  # at least one per kind with >= 2 pairs
    assert sorted(p.kind for p in train) == ["rain", "snow"]  # a single pair stays in training


def _write_split(root: Path, text: str) -> Path:
    path = root / "split.csv"
    path.write_text(text)
    return path


def test_read_split_and_split_by_file(tmp_path):
    root = make_dataset(tmp_path, rain=(1, 2, 10), snow=(1, 2, 10), tests=())
    assert read_split(root) is None  # no split.csv: the caller draws the split
    rows = ["rain-1,train", "rain-2,val", "rain-10,train", "snow-1,train", "snow-2,val", " snow-10 , train "]
    _write_split(root, "name,split\n" + "\n".join(rows) + "\n\n")
    split = read_split(root)
    assert split == {
        "rain-1": "train", "rain-2": "val", "rain-10": "train", "snow-1": "train", "snow-2": "val",
        "snow-10": "train",
    }  # fmt: skip
    pairs = find_pairs(root)
    train, val = split_by_file(pairs[::-1], split)  # any input order; sorted like find_pairs
    assert [p.name for p in train] == ["rain-1", "rain-10", "snow-1", "snow-10"]
    assert [p.name for p in val] == ["rain-2", "snow-2"]
    assert read_split(root / "train") is None  # the file sits in ROOT, not in ROOT/train


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,kind\nrain-1,train\n", "header must be name,split"),
        ("", "header must be name,split"),
        ("name,split\nrain-1,train\nrain-2,test\n", "line 3: rain-2: unknown split 'test'"),
        ("name,split\nrain-1,train\nrain-1,val\n", "line 3: rain-1 is listed twice"),
        ("name,split\nrain-1,train\nrain-7,val\n", "rain-7: no such pair under"),
        ("name,split\nrain-1,train\n,val\n", "line 3: empty name"),
        ("name,split\nrain-1,val\nrain-2,val\n", "no row has split train"),
    ],
)
def test_read_split_names_the_file_and_the_bad_rows(tmp_path, text, message):
    root = make_dataset(tmp_path, rain=(1, 2), snow=(1,), tests=())
    path = _write_split(root, text)
    with pytest.raises(DataError, match=message) as err:
        read_split(root)
    assert str(path) in str(err.value) and "delete the file" in str(err.value)


def test_split_by_file_needs_every_pair_and_nothing_else(tmp_path):
    root = make_dataset(tmp_path, rain=(1, 2), snow=(1, 2), tests=())
    pairs = find_pairs(root)
    full = {p.name: "train" for p in pairs}
    with pytest.raises(DataError, match=r"1 pair\(s\) not listed: snow-2"):
        split_by_file(pairs, {k: v for k, v in full.items() if k != "snow-2"})
    with pytest.raises(DataError, match=r"1 listed name\(s\) have no pair: fog-1 \(remove those rows\)"):
        split_by_file(pairs, {**full, "fog-1": "val"})
    with pytest.raises(DataError, match="split other than train or val: rain-1"):
        split_by_file(pairs, {**full, "rain-1": "test"})
    assert split_by_file(pairs, full) == (pairs, [])


# ------------------------------------------------------------------------------------------------------------
# tensors and augmentation


def test_to_tensor_to_uint8():
    img = np.random.default_rng(0).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    t = to_tensor(img)
    assert t.shape == (3, 5, 6) and t.dtype == torch.float32 and float(t.max()) <= 1.0
    assert np.array_equal(to_uint8(t), img) and np.array_equal(to_uint8(t[None]), img)
    odd = torch.tensor([-0.2, 1.3, 0.5, 0.3]).view(1, 1, 4)
    assert to_uint8(odd).ravel().tolist() == [0, 255, 128, 76]  # clamp, round(127.5) = 128, round(76.5) = 76
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(img.astype(np.float32))


def _dihedral_windows(img: np.ndarray, patch: int) -> list[np.ndarray]:
    """Every flip/rotation of every patch x patch window of ``img``."""
    h, w = img.shape[:2]
    out = []
    for top in range(h - patch + 1):
        for left in range(w - patch + 1):
            win = img[top : top + patch, left : left + patch]
            for k in range(4):
                r = np.rot90(win, k)
                out += [r, r[:, ::-1]]
    return out


def test_paired_crop_and_augment_identical_on_both_images():
    rng0 = np.random.default_rng(3)
    clean = rng0.integers(0, 200, size=(9, 7, 3), dtype=np.uint8)
    degraded = clean + np.uint8(OFFSET)
    candidates = _dihedral_windows(clean, 5)
    seen = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        d, c = paired_random_crop(degraded, clean, 5, rng, name="x")
        d, c = paired_augment(d, c, rng)
        assert d.shape == c.shape == (5, 5, 3)
        assert np.array_equal(d, c + np.uint8(OFFSET))  # same window, same flip on both
        hit = [i for i, cand in enumerate(candidates) if np.array_equal(cand, c)]
        assert hit, "the patch is not an exact flip/rotation of a window of the image"
        seen.add(hit[0])
    assert len(seen) > 20  # crops and transforms actually vary


def test_augment_covers_all_eight_transforms():
    img = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)  # asymmetric: the 8 results are all different
    results = set()
    for seed in range(200):
        a, b = paired_augment(img, img.copy(), np.random.default_rng(seed))
        assert np.array_equal(a, b)
        results.add((a.shape, a.tobytes()))
    assert len(results) == 8


def test_crop_larger_than_image_is_clear(tmp_path):
    root = make_dataset(tmp_path)
    ds = PairedDataset(find_pairs(root), patch_size=32)
    with pytest.raises(DataError, match=r"rain-1: patch_size 32 is larger than the image \(24x20 WxH\)"):
        ds[0]


# ------------------------------------------------------------------------------------------------------------
# dataset


def test_dataset_items_and_determinism(tmp_path):
    pairs = find_pairs(make_dataset(tmp_path))
    whole = PairedDataset(pairs)
    item = whole[4]
    assert item["kind"] == "snow" and item["name"] == "snow-2"
    assert item["degraded"].shape == (3, 20, 24) and item["degraded"].dtype == torch.float32
    assert torch.allclose(item["degraded"], item["clean"] + OFFSET / 255, atol=1e-6)

    ds = PairedDataset(pairs, patch_size=8, augment=True, repeat=3, seed=5)
    assert len(ds) == 18
    again = PairedDataset(pairs, patch_size=8, augment=True, repeat=3, seed=5)
    for i in range(len(ds)):
        a, b = ds[i], again[i]
        assert torch.equal(a["degraded"], b["degraded"]) and torch.equal(a["clean"], b["clean"])
        assert torch.allclose(a["degraded"], a["clean"] + OFFSET / 255, atol=1e-6)
    assert ds[0]["name"] == ds[6]["name"] == ds[12]["name"]  # repeats of one image ...
    assert not torch.equal(ds[0]["clean"], ds[6]["clean"])  # ... are different patches
    first = ds[0]["clean"]
    ds.set_epoch(1)
    assert ds.epoch == 1 and not torch.equal(ds[0]["clean"], first)
    ds.set_epoch(0)
    assert torch.equal(ds[0]["clean"], first)
    assert ds[-18]["name"] == ds[0]["name"]
    with pytest.raises(IndexError):
        ds[18]


def test_same_batches_with_and_without_workers(tmp_path):
    pairs = find_pairs(make_dataset(tmp_path))

    def batches(workers: int) -> list[torch.Tensor]:
        ds = PairedDataset(pairs, patch_size=8, augment=True, repeat=2, seed=1).preload()
        loader = DataLoader(ds, batch_size=4, num_workers=workers, persistent_workers=workers > 0)
        out = []
        for epoch in (0, 1):
            ds.set_epoch(epoch)  # before iter(): the workers read the shared epoch
            out += [b["clean"] for b in loader]
        return out

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 6
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert not torch.equal(serial[0], serial[3])  # epoch 1 differs from epoch 0


def test_cache_and_preload(tmp_path):
    pairs = find_pairs(make_dataset(tmp_path))
    ds = PairedDataset(pairs)
    ds[0]
    assert list(ds._images) == [0]
    ds.preload(num_threads=2)
    assert sorted(ds._images) == list(range(6))
    nocache = PairedDataset(pairs, cache=False)
    nocache[0]
    assert nocache._images == {}
    with pytest.raises(ValueError, match="cache=True"):
        nocache.preload()
    with pytest.raises(DataError, match="no pairs"):
        PairedDataset([])
    with pytest.raises(ValueError, match="patch_size"):
        PairedDataset(pairs, patch_size=0)


# ------------------------------------------------------------------------------------------------------------
# check-data


def test_check_data_good(tmp_path):
    root = make_dataset(tmp_path, rain=(1, 2, 3, 4), snow=(1, 2), tests=(0, 1, 2, 3, 4))
    report = check_data(root)
    assert report.ok and report.problems == []
    assert report.pairs_per_kind == {"rain": 4, "snow": 2}
    assert report.checked_pairs == 6 and report.sizes == {(24, 20): 6}
    expected = 10 * np.log10(255**2 / OFFSET**2)  # 28.13 dB
    assert report.input_psnr == pytest.approx({"rain": expected, "snow": expected})
    assert report.test_count == 5 and report.test_sizes == {(24, 20): 5}
    limited = check_data(root, max_images=1)
    assert limited.checked_pairs == 2 and sum(limited.test_sizes.values()) == 1
    assert not check_data(root, patch_size=21).ok
    text = report.format()
    assert "training pairs: 6 (rain 4, snow 2)" in text and "input PSNR rain: 28.13 dB" in text
    assert text.endswith("OK")


def test_check_data_reports_every_problem(tmp_path):
    root = make_dataset(tmp_path)
    (root / "train" / "clean" / "rain_clean-1.png").unlink()
    _save(np.zeros((4, 4, 3), np.uint8), root / "train" / "clean" / "snow_clean-2.png")
    (root / "train" / "degraded" / "rain-3.png").write_bytes(b"garbage")
    _save(np.zeros((4, 4, 3), np.uint8), root / "train" / "degraded" / "fog-1.png")
    (root / "test" / "degraded" / "1.png").write_bytes(b"garbage")
    report = check_data(root)
    assert not report.ok
    text = "\n".join(str(p) for p in report.problems)
    for name in ("rain-1.png", "snow_clean-2.png", "rain-3.png", "fog-1.png", "1.png"):
        assert name in text
    assert [p.path.name for p in report.warnings] == ["fog-1.png"]
    assert len(report.errors) == 4
    assert report.format().endswith("NOT OK: fix the errors above before training")
    assert not check_data(tmp_path / "missing").ok


def test_real_rain100l_pairs(tmp_path):
    """Rain100L laid out as the course data (symlinks): pairs decode, input PSNR in the published range."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data/rain100l is absent")
    for sub in ("train/degraded", "train/clean"):
        (tmp_path / sub).mkdir(parents=True)
    for n in range(1, 7):
        (tmp_path / "train/degraded" / f"rain-{n}.png").symlink_to(SHARED / "input" / f"{n}.png")
        (tmp_path / "train/clean" / f"rain_clean-{n}.png").symlink_to(SHARED / "target" / f"{n}.png")
    report = check_data(tmp_path, patch_size=128)
    assert report.errors == [] and report.pairs_per_kind == {"rain": 6}
    assert 18.0 < report.input_psnr["rain"] < 34.0  # README: per-image range 18.6 to 33.5 dB
    assert set(report.sizes) <= {(480, 320), (320, 480)}
    ds = PairedDataset(find_pairs(tmp_path), patch_size=128, augment=True)
    item = ds[0]
    assert item["degraded"].shape == (3, 128, 128)
