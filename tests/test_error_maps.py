"""Where the remaining error sits (``errors``), each loss's worst case and the visual comparison in numbers
(``images``): on synthetic images whose answer is known, on fabricated studies, and on a real evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hw4lib.metrics import psnr_uint8
from hw4lib.runs import load_runs
from hw4lib.study import errors, images, snapshot
from tests.fabricate import fake_eval_images, make_study, write_png
from tests.test_probe import _run_with_checkpoint

SIDE = 64
EDGE_COLUMNS = [31, 32]  # the clean image steps from 0.3 to 0.7 between columns 31 and 32
STREAK_COLUMNS = [10, 11]  # a bright streak, 2 px wide, over the flat left half
HAZE = (slice(40, 64), slice(44, 64))  # a uniform veil over a 24 x 20 block of the flat right half


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean), (H, W, 3) floats in [0, 1]: a step edge, a streak and a veil, each where known."""
    clean = np.full((SIDE, SIDE, 3), 0.3)
    clean[:, 32:] = 0.7
    degraded = clean.copy()
    degraded[:, STREAK_COLUMNS] += 0.5
    degraded[HAZE] += 0.1
    return degraded, clean


def _error_at(clean: np.ndarray, where: tuple[slice | list[int] | int, ...]) -> np.ndarray:
    restored = clean.copy()
    restored[where] += 0.05
    return restored


def test_the_classes_are_where_the_scene_put_them() -> None:
    degraded, clean = _scene()
    masks = errors.error_classes(degraded, clean)
    assert list(masks) == list(errors.CLASSES)
    assert sum(m.astype(int) for m in masks.values()).tolist() == np.ones((SIDE, SIDE), int).tolist()
    assert np.flatnonzero(masks["edges"].all(axis=0)).tolist() == EDGE_COLUMNS and masks["edges"].sum() == 128
    assert np.flatnonzero(masks["degradation"].all(axis=0)).tolist() == STREAK_COLUMNS
    assert masks["degradation"].sum() == 2 * SIDE
    veil = np.zeros((SIDE, SIDE), bool)
    veil[HAZE] = True
    assert (masks["veil"] == veil).all()


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ((slice(None), EDGE_COLUMNS), "edges"),
        ((slice(5, 20), STREAK_COLUMNS), "degradation"),
        ((slice(50, 52), slice(50, 60)), "veil"),
        ((slice(0, 8), slice(0, 8)), "flat"),
    ],
)
def test_an_error_placed_in_one_class_is_all_that_class(where: tuple, expected: str) -> None:
    degraded, clean = _scene()
    shares = errors.error_shares(_error_at(clean, where), degraded, clean)
    assert shares[f"err_{expected}"] == pytest.approx(1.0)
    assert sum(shares[c] for c in errors.ERROR_COLUMNS) == pytest.approx(1.0)


def test_an_even_error_splits_as_the_pixels_do_and_inputs_may_be_tensors() -> None:
    degraded, clean = _scene()
    shares = errors.error_shares(clean + 0.02, degraded, clean)
    expected = {"edges": 128, "degradation": 128, "veil": 24 * 20}
    expected["flat"] = SIDE * SIDE - sum(expected.values())
    for name, count in expected.items():
        assert shares[f"px_{name}"] == pytest.approx(count / SIDE**2)
        assert shares[f"err_{name}"] == pytest.approx(count / SIDE**2)
    as_tensors = [torch.from_numpy(a).permute(2, 0, 1)[None].float() for a in (clean + 0.02, degraded, clean)]
    again = errors.error_shares(*as_tensors)
    assert again == pytest.approx(shares, abs=1e-6)
    perfect = errors.error_shares(clean, degraded, clean)
    assert all(np.isnan(perfect[c]) for c in errors.ERROR_COLUMNS)


# ------------------------------------------------------------------------------------- per loss, in a study


def _with_shares(paths: list[Path], shares: dict[str, dict[str, float]]) -> None:
    """Add error-location columns to the fabricated per_image.csv of runs whose loss is in ``shares``."""
    for path in paths:
        run = load_runs([str(path)])[0]
        if run.loss in shares and run.per_image is not None:
            table = run.per_image
            err = shares[run.loss]
            for c in errors.CLASSES:
                table[f"err_{c}"] = err[c]
                table[f"px_{c}"] = 0.25
            table.loc[table["name"] == "snow-11", "err_flat"] += 0.1  # the worst case: more on flat pixels
            table.loc[table["name"] == "snow-11", "err_edges"] -= 0.1
            table.to_csv(path / "eval" / "per_image.csv", index=False)


def test_error_location_averages_per_loss_and_names_where_most_error_sits(tmp_path: Path) -> None:
    made = make_study(tmp_path / "runs", series=())
    assert errors.error_location(load_runs(made)) is None  # evaluations before the columns: nothing to say
    _with_shares(made, {
        "l1": {"edges": 0.5, "degradation": 0.3, "veil": 0.0, "flat": 0.2},
        "mse": {"edges": 0.2, "degradation": 0.6, "veil": 0.0, "flat": 0.2},
    })  # fmt: skip
    table = errors.error_location(load_runs(made))
    assert list(table.index) == ["L1", "MSE"]  # the losses without the columns are left out
    l1 = table.loc["L1"]
    assert l1["images"] == 3 * 12 and l1["where"] == "edges" and table.loc["MSE", "where"] == "degradation"
    assert l1["err_edges"] == pytest.approx(0.5 - 0.1 * 3 / 36) and l1["excess_edges"] == pytest.approx(
        l1["err_edges"] / 0.25
    )
    assert (l1["worst_run"], l1["worst_name"]) == ("study-l1-s0", "snow-11")
    assert l1["worst_change"] == pytest.approx(-0.4375) and l1["worst_err_flat"] == pytest.approx(0.3)
    rain = errors.error_location(load_runs(made), kind="rain")
    assert rain.loc["L1", "images"] == 18 and rain.loc["L1", "err_edges"] == pytest.approx(0.5)
    assert rain.loc["L1", "worst_name"] == "rain-10"


def test_worst_cases_take_the_smallest_gain_when_nothing_regressed(three_runs: list[Path]) -> None:
    runs = load_runs([str(p) for p in three_runs])  # every image gains 5 dB + offset: no regression
    cases = images.worst_cases(runs)
    assert [c.loss for c in cases] == ["L1", "L1+SSIM", "MSE"]
    assert [c.row["name"] for c in cases] == ["rain-0"] * 3  # equal gains: the first image
    assert [round(c.change, 6) for c in cases] == [5.0, 5.5, 4.75] and not any(c.at_hand for c in cases)


def test_the_snapshot_keeps_each_losss_worst_case(tmp_path: Path) -> None:
    made = make_study(tmp_path / "runs", series=())
    for path in made[::3]:  # the visual images of seed 0
        fake_eval_images(path, ["rain-0", "snow-11"])
    mse_s1 = tmp_path / "runs" / "study-mse-s1"
    table = pd.read_csv(mse_s1 / "eval" / "per_image.csv")
    table.loc[table["name"] == "rain-4", "psnr"] -= 5.0  # seed 1 of MSE: its worst case, rain-4
    table.to_csv(mse_s1 / "eval" / "per_image.csv", index=False)
    fake_eval_images(mse_s1, ["rain-4", "rain-2"])
    runs = load_runs(made)
    mse = next(c for c in images.worst_cases(runs) if c.loss == "MSE")
    assert (mse.run.name, mse.row["name"], mse.at_hand) == ("study-mse-s1", "rain-4", True)
    images.prune_images(runs, tmp_path / "runs")
    kept = sorted(p.name for p in (mse_s1 / "eval").glob("*.png"))
    assert kept == ["rain-4_restored.png"]  # its worst case stays, the image no figure draws goes


# --------------------------------------------------------------------------------- the visual comparison


def test_visual_summary_finds_the_loss_with_least_error_in_the_window(tmp_path: Path) -> None:
    made = make_study(tmp_path / "runs", series=())
    for path in made[::3]:
        fake_eval_images(path, ["rain-0", "snow-11"])  # restored = clean + 12 grey levels, box (2, 2, 8)
    snap = tmp_path / "runs"
    clean = images.read_image(load_runs([str(made[0])])[0], "rain-0", "clean")
    better = np.clip(clean.astype(int) + 12, 0, 255).astype(np.uint8)
    better[2:10, 2:10] = clean[2:10, 2:10]  # MSE restores the magnified window perfectly
    write_png(snap / "study-mse-s0" / "eval" / "rain-0_restored.png", better)

    runs = load_runs(made)
    table = images.visual_summary(runs)
    assert list(table.columns) == [
        "kind", "image", "loss", "run", "window PSNR (dB)", "PSNR (dB)", "input window PSNR (dB)",
        "input PSNR (dB)", "least window error",
    ]  # fmt: skip
    assert sorted(set(zip(table["kind"], table["image"], strict=True))) == [
        ("rain", "all"), ("rain", "rain-0"), ("snow", "all"), ("snow", "snow-11")
    ]  # fmt: skip
    rain0 = table[table["image"] == "rain-0"].set_index("loss")
    assert rain0.loc["MSE", "window PSNR (dB)"] == 100.0  # PSNR_CAP: no error left
    l1 = images.read_image(runs[0], "rain-0", "restored")
    assert rain0.loc["L1", "window PSNR (dB)"] == pytest.approx(psnr_uint8(l1[2:10, 2:10], clean[2:10, 2:10]))
    assert rain0["least window error"].tolist() == [False, True, False, False]
    assert rain0.loc["L1", "PSNR (dB)"] == pytest.approx(19.0)  # as per_image.csv (and the figure) say
    degraded = images.read_image(runs[0], "rain-0", "degraded")
    assert rain0.loc["L1", "input window PSNR (dB)"] == pytest.approx(
        psnr_uint8(degraded[2:10, 2:10], clean[2:10, 2:10])
    )
    rain_all = table[(table["kind"] == "rain") & (table["image"] == "all")]
    assert rain_all.loc[rain_all["least window error"], "loss"].tolist() == ["MSE"]
    snow = table[table["image"] == "snow-11"]
    assert snow["least window error"].tolist() == [True, False, False, False]  # a tie: the first loss


def test_no_visual_comparison_no_summary(three_runs: list[Path]) -> None:
    assert images.visual_summary(load_runs([str(p) for p in three_runs])) is None


# ------------------------------------------------------------------------------------------- end to end


def test_a_real_evaluation_has_the_numbers_and_images_they_need(tmp_path: Path) -> None:
    run = _run_with_checkpoint(tmp_path)
    [collected] = snapshot.collect_runs(
        [run], dest=tmp_path / "snap", n_visual=1, device="cpu", verbose=False
    )
    assert errors.has_error_shares(collected.per_image)
    [case] = images.worst_cases([collected])
    assert case.at_hand and case.run is collected
    location = errors.error_location([collected])
    assert location.loc["L1", "images"] == len(collected.per_image) and location.loc["L1", "where"] in (
        errors.CLASSES
    )
    assert location.loc["L1", "worst_name"] == case.row["name"]
    summary = images.visual_summary([collected])
    assert set(summary["kind"]) == {"rain", "snow"} and summary["least window error"].sum() == 4
