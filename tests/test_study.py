"""The study set: Rain100L's real rain and synthetic snow over the same scenes, split by scene; the demo
fallback when no Rain100L copy is found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from hw4lib import synth
from hw4lib.data import find_pairs, load_image, load_pair, read_split, split_by_file
from hw4lib.metrics import psnr_uint8
from hw4lib.synth import datasets
from hw4lib.synth import study_set as study
from tests.fabricate import tiny_dataset, write_png


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fake_rain100l(folder: Path, n: int = 10) -> Path:
    """Rain100L's mirror layout: input/N.png (clean + bright vertical streaks) and target/N.png."""
    rng = np.random.default_rng(1)
    for k in range(1, n + 1):
        clean = ndi.gaussian_filter(rng.uniform(0, 200, (48, 64, 3)), (4, 4, 0)).astype(np.uint8)
        rainy = clean.copy()
        rainy[:, k::7] = np.minimum(255, rainy[:, k::7].astype(int) + 40).astype(np.uint8)
        write_png(folder / "target" / f"{k}.png", clean)
        write_png(folder / "input" / f"{k}.png", rainy)
    return folder


def _scene_sides(split: dict[str, str]) -> dict[str, str]:
    """scene number -> side, checking that both versions of every scene are on the same side."""
    sides: dict[str, str] = {}
    for name, side in split.items():
        number = name.split("-")[1]
        assert sides.setdefault(number, side) == side, f"scene {number} is on both sides"
    return sides


@pytest.fixture(autouse=True)
def _no_rain100l_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``$HW4_RAIN100L``: only explicit sources are found."""
    monkeypatch.delenv("HW4_RAIN100L", raising=False)


def test_rain100l_gives_real_rain_and_synthetic_snow_on_the_same_scenes(tmp_path: Path) -> None:
    src = fake_rain100l(tmp_path / "rain100l")
    out = tmp_path / "study"
    summary = study.build_study_dataset(out, rain100l=src, seed=0)
    pairs = find_pairs(out, strict=True)
    assert [p.name for p in pairs] == [f"{k}-{n}" for k in ("rain", "snow") for n in range(1, 11)]
    for n in range(1, 11):
        rainy, target = load_image(src / "input" / f"{n}.png"), load_image(src / "target" / f"{n}.png")
        assert np.array_equal(load_image(out / "train/degraded" / f"rain-{n}.png"), rainy)  # real rain
        for kind in ("rain", "snow"):
            assert np.array_equal(load_image(out / "train/clean" / f"{kind}_clean-{n}.png"), target)
        snowy = load_image(out / "train/degraded" / f"snow-{n}.png")
        assert snowy.shape == target.shape and not np.array_equal(snowy, target)  # synthetic snow
        assert not np.array_equal(snowy, rainy)

    split = read_split(out)
    sides = _scene_sides(split)
    assert sorted(sides.values()).count("val") == 2  # 8/2 scenes, both types together
    train, val = split_by_file(pairs, split)
    assert (len(train), len(val)) == (16, 4)

    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["source"] == "rain100l" and manifest["generator"] == "hw4lib.synth.build_study_dataset"
    # the rain is Rain100L's own (streaks its authors rendered over real photographs), the snow ours
    assert manifest["rain"].startswith("Rain100L's rain streaks, rendered over real photographs")
    assert manifest["snow"].startswith("synthesized by hw4lib.synth over the same clean photographs")
    counts = {"scenes": 10, "rain": {"train": 8, "val": 2}, "snow": {"train": 8, "val": 2}}
    assert manifest["counts"] == summary["counts"] == counts
    assert summary["source"] == "rain100l" and summary["out"] == str(out) and "note" not in summary
    real = [psnr_uint8(load_image(src / "input" / f"{n}.png"), load_image(src / "target" / f"{n}.png"))
            for n in range(1, 11)]  # fmt: skip
    assert manifest["input_psnr_db"]["rain"]["mean"] == pytest.approx(np.mean(real), abs=0.01)
    assert manifest["input_psnr_db"]["snow"]["n"] == 10

    again = tmp_path / "again"
    study.build_study_dataset(again, rain100l=src, seed=0)
    assert _files(again) == _files(out)  # byte-identical for a seed
    other = tmp_path / "other"
    study.build_study_dataset(other, rain100l=src, seed=1)
    first, second = _files(out), _files(other)
    assert first["train/degraded/rain-3.png"] == second["train/degraded/rain-3.png"]  # real: as it was
    snow = [f"train/degraded/snow-{n}.png" for n in range(1, 11)]
    assert all(first[name] != second[name] for name in snow)  # synthetic: another draw


def test_rain100l_is_found_where_hw4_rain100l_says_and_any_mirror_folder_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert study.default_rain100l() is None
    fake_rain100l(tmp_path / "somewhere" / "rain100l", n=5)
    monkeypatch.setenv("HW4_RAIN100L", str(tmp_path / "somewhere" / "rain100l"))
    assert study.default_rain100l() == tmp_path / "somewhere" / "rain100l"
    summary = study.build_study_dataset(tmp_path / "study", val_fraction=0.4)
    assert summary["source"] == "rain100l" and summary["counts"]["rain"] == {"train": 3, "val": 2}

    other = fake_rain100l(tmp_path / "my_rain", n=3)
    summary = study.build_study_dataset(tmp_path / "mine", rain100l=other)
    assert summary["source"] == "mirror" and summary["rain"].startswith("the degraded images of my_rain")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        study.build_study_dataset(tmp_path / "x", rain100l=tmp_path / "nowhere")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        study.build_study_dataset(tmp_path / "mine", rain100l=other)
    assert study.build_study_dataset(tmp_path / "mine", rain100l=other, overwrite=True)["source"] == "mirror"
    monkeypatch.setenv("HW4_RAIN100L", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"\$HW4_RAIN100L names .*nowhere"):
        study.build_study_dataset(tmp_path / "y")


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    synth.generate_demo_dataset(out, pairs_per_type=6, test_per_type=1, size=24, seed=0)
    return out


def test_without_rain100l_the_demo_set_is_used_and_split_by_photograph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_demo: Path
) -> None:
    monkeypatch.setattr(datasets, "ensure_demo_dataset", lambda path=None: tiny_demo)
    out = tmp_path / "study"
    with pytest.warns(UserWarning, match="runs on synthetic data") as caught:
        summary = study.build_study_dataset(out, seed=0)
    assert "HW4_RAIN100L" in str(caught[0].message)
    assert summary["source"] == "demo" and summary["split"]["by"] == "photo"
    assert "because no Rain100L copy was given" in summary["note"] and "HW4_RAIN100L" in summary["note"]

    assert [p.name for p in find_pairs(out)] == [p.name for p in find_pairs(tiny_demo)]
    assert (out / "test/degraded/0.png").read_bytes() == (tiny_demo / "test/degraded/0.png").read_bytes()
    split = read_split(out)
    photo_of = synth.demo_scenes(json.loads((tiny_demo / "synth.json").read_text()))
    sides: dict[str, str] = {}
    for name, side in split.items():  # every source photograph lies on one side only
        assert sides.setdefault(photo_of[name], side) == side
    n_photos = len(sides)
    assert sorted(sides.values()).count("val") == min(max(round(n_photos * 0.2), 1), n_photos - 1)
    kinds = ("rain", "snow")
    n_val = {kind: sum(v == "val" for k, v in split.items() if k.startswith(kind)) for kind in kinds}
    assert summary["counts"] == {k: {"train": 6 - n_val[k], "val": n_val[k]} for k in kinds}
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["source"] == "demo" and manifest["note"] == summary["note"]
    assert manifest["input_psnr_db"]["rain"]["n"] == 6 and manifest["input_psnr_db"]["snow"]["n"] == 6


def test_a_demo_folder_without_its_manifest_is_split_by_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = tiny_dataset(tmp_path / "demo", per_kind=5)  # no synth.json: the source photos are unknown
    monkeypatch.setattr(datasets, "ensure_demo_dataset", lambda path=None: demo)
    with pytest.warns(UserWarning, match="no Rain100L copy"):
        summary = study.build_study_dataset(tmp_path / "study", val_fraction=0.4)
    assert summary["split"]["by"] == "pair"
    assert summary["counts"] == {"rain": {"train": 3, "val": 2}, "snow": {"train": 3, "val": 2}}
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="must not be the demo set"):
        study.build_study_dataset(demo, overwrite=True)


@pytest.mark.slow
def test_the_real_rain100l_study_set(tmp_path: Path, shared_dir: Path) -> None:
    src = shared_dir / "data" / "rain100l"
    if not src.is_dir():
        pytest.skip("../shared/data/rain100l is absent")
    summary = study.build_study_dataset(tmp_path / "study", rain100l=src)
    assert summary["source"] == "rain100l"
    per_type = {"train": 80, "val": 20}
    assert summary["counts"] == {"scenes": 100, "rain": per_type, "snow": per_type}
    pairs = find_pairs(tmp_path / "study", strict=True)
    assert len(pairs) == 200
    sides = _scene_sides(read_split(tmp_path / "study"))
    assert sorted(sides.values()).count("val") == 20
    rain = summary["input_psnr_db"]["rain"]
    assert rain["n"] == 100 and abs(rain["mean"] - 25.5) <= 0.5  # README: mean 25.5 dB (18.6 to 33.5)
    assert 18.0 < rain["min"] and rain["max"] < 34.0
    assert summary["input_psnr_db"]["snow"]["n"] == 100
    # the central 256 px window of the 480x320 pictures (the course's size), the same on both sides of a pair
    assert summary["settings"]["crop"] == 256 and summary["rain_source"].endswith("rain100l")
    first = next(p for p in pairs if p.name == "rain-1")
    degraded, clean = load_pair(first)
    assert degraded.shape == clean.shape == (256, 256, 3)
    whole = np.asarray(Image.open(src / "target" / "1.png").convert("RGB"))
    top, left = (whole.shape[0] - 256) // 2, (whole.shape[1] - 256) // 2
    assert np.array_equal(clean, whole[top : top + 256, left : left + 256])


def test_the_study_protocol_runs_every_loss_and_seed_at_the_same_compute_and_one_loss_at_four():
    from hw4lib.config import RECIPES
    from hw4lib.study.protocol import COMPUTE_STEPS, STUDY_LOSSES, STUDY_SEEDS, study_jobs

    jobs = study_jobs("data/study")
    main = [j for j in jobs if "-steps" not in j.name]
    series = [j for j in jobs if "-steps" in j.name]
    assert len(main) == len(STUDY_LOSSES) * len(STUDY_SEEDS) == 18
    assert {j.name for j in main} >= {"study-l1-s0", "study-mse-s2", "study-l1_0.1_edge_y-s1",
                                      "study-mse_snow_l1_ssim_rain-s0", "study-berhu-s2"}  # fmt: skip
    assert all(j.parameters["recipe"] == "study" and "max_train_steps" not in j.parameters for j in main)
    assert [j.parameters["seed"] for j in main if j.loss == "mse"] == list(STUDY_SEEDS)
    epochs = RECIPES["study"]["epochs"]
    assert sorted({j.parameters["max_train_steps"] for j in series}) == list(COMPUTE_STEPS)
    assert {j.name for j in series} >= {f"study-steps{COMPUTE_STEPS[0] * epochs}-l1-s0"}
    assert all(j.loss == "l1" and j.parameters["min_gain_db"] is None for j in series)
    assert max(COMPUTE_STEPS) < RECIPES["study"]["max_train_steps"]  # the full runs are the largest point


def test_the_scale_series_runs_the_seed_solutions_losses_at_four_times_the_steps():
    from hw4lib.config import RECIPES
    from hw4lib.study.protocol import SCALE_LOSSES, STUDY_SEEDS, scale_jobs

    jobs = scale_jobs("data/study")
    recipe = RECIPES["study"]
    assert len(jobs) == len(SCALE_LOSSES) * len(STUDY_SEEDS) == 9
    assert {j.loss for j in jobs} == {"l1", "mse", "l1_ssim"}
    assert all(j.parameters["epochs"] == 4 * recipe["epochs"] for j in jobs)
    assert {j.name for j in jobs} >= {f"study-steps{4 * recipe['epochs'] * recipe['max_train_steps']}-mse-s1"}
