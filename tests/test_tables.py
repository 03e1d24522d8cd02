"""Report numbers from fabricated runs: tables hold the runs' numbers, statistics match hand computations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hw4lib import tables
from hw4lib.runs import load_run, load_runs
from tests.fabricate import make_run


def test_comparison_table_holds_the_runs_numbers(three_runs: list[Path]) -> None:
    runs = load_runs([str(p) for p in three_runs])
    table = tables.comparison_table(runs)
    assert list(table.index) == ["input (no restoration)", "L1", "L1+SSIM", "MSE"]
    assert table.loc["L1", "PSNR (dB)"] == pytest.approx(28.12)
    assert table.loc["L1+SSIM", "PSNR rain"] == pytest.approx(27.90)
    assert table.loc["MSE", "PSNR snow"] == pytest.approx(28.40)
    assert table.loc["L1+SSIM", "SSIM"] == pytest.approx(0.85)
    # per-type SSIM is not in metrics.json here: read from history at the best epoch
    assert table.loc["L1", "SSIM rain"] == pytest.approx(0.80)
    assert table.loc["MSE", "gain (dB)"] == pytest.approx(7.80)
    assert table.loc["MSE", "epochs"] == 4 and table.loc["MSE", "best epoch"] == 4
    assert table.loc["L1", "wall time (s)"] == pytest.approx(61.4)
    assert table.loc["L1", "params"] == 123_456
    base = table.loc["input (no restoration)"]
    assert base["PSNR (dB)"] == pytest.approx(20.0)
    assert base["PSNR rain"] == pytest.approx(19.0) and base["PSNR snow"] == pytest.approx(21.0)
    assert base["gain (dB)"] == 0.0 and pd.isna(base["epochs"])


def test_save_table_writes_markdown_latex_and_csv(three_runs: list[Path], tmp_path: Path) -> None:
    table = tables.comparison_table(load_runs([str(p) for p in three_runs]))
    files = tables.save_table(table, "loss_comparison", tmp_path / "tables")
    md = files["md"].read_text()
    assert "| L1+SSIM" in md and "28.46" in md and "0.8500" in md and "123,456" in md and "+8.12" in md
    tex = files["tex"].read_text()
    assert tex.startswith("\\begin{tabular}{lrrrrrrrrrrr}") and "\\toprule" in tex
    assert "input (no restoration) & 20.00 & 19.00 & 21.00" in tex
    assert "wall time (s)" in tex and "\\_" not in tex.split("\\midrule")[0].replace("\\_", "", 0)
    back = pd.read_csv(files["csv"], index_col=0)
    assert back.loc["MSE", "PSNR (dB)"] == pytest.approx(27.80)
    assert back.loc["L1", "wall time (s)"] == pytest.approx(61.4)


def test_latex_escapes_special_characters() -> None:
    df = pd.DataFrame({"PSNR (dB)": [30.0]}, index=pd.Index(["l1+0.1*edge_50%"], name="loss"))
    tex = tables.to_latex(df)
    assert "l1+0.1*edge\\_50\\%" in tex


def test_two_runs_with_the_same_loss_are_labelled_by_name(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a-mse", "mse", 25.0, 24.0, 26.0)
    b = make_run(tmp_path, "b-mse", "mse", 26.0, 25.0, 27.0)
    table = tables.comparison_table(load_runs([a, b]))
    assert list(table.index)[1:] == ["a-mse", "b-mse"]


def test_runs_on_different_validation_sets_warn(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a-l1", "l1", 25.0, 24.0, 26.0, input_psnr=20.0)
    b = make_run(tmp_path, "b-mse", "mse", 26.0, 25.0, 27.0, input_psnr=22.0)
    with pytest.warns(UserWarning, match="different images"):
        tables.comparison_table(load_runs([a, b]))


def test_paired_differences_by_hand(three_runs: list[Path]) -> None:
    runs = load_runs([str(p) for p in three_runs])
    diff = tables.paired_differences(runs)
    # L1+SSIM images are each +0.5 dB over L1: mean 0.5, no spread, better on all 4
    assert diff.loc["L1+SSIM - L1", "mean (dB)"] == pytest.approx(0.5)
    assert diff.loc["L1+SSIM - L1", "s.e. (dB)"] == pytest.approx(0.0, abs=1e-9)
    assert diff.loc["L1+SSIM - L1", "images better"] == 4
    assert diff.loc["MSE - L1", "mean (dB)"] == pytest.approx(-0.25)
    assert diff.loc["MSE - L1", "images better"] == 0


def test_prompt_separation_by_hand(three_runs: list[Path]) -> None:
    runs = load_runs([str(p) for p in three_runs])
    sep = tables.prompt_separation(runs[:1]).set_index("level")
    # prompt1: rain mean (0.9, 0.1), snow mean (0.1, 0.9): L1 gap 1.6, no within-type spread -> perfect split
    assert sep.loc["prompt1", "L1 gap"] == pytest.approx(1.6)
    assert sep.loc["prompt1", "LOO acc"] == 1.0
    assert math.isinf(sep.loc["prompt1", "separation"])
    # prompt2 is uniform for both types: no gap
    assert sep.loc["prompt2", "L1 gap"] == pytest.approx(0.0)
    assert sep.loc["all", "LOO acc"] == 1.0


def test_pca_separates_two_clusters() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.01, (10, 4)) + [1, 0, 0, 0], rng.normal(0, 0.01, (10, 4))])
    coords, explained = tables.pca_2d(x)
    assert explained[0] > 0.9
    assert (np.sign(coords[:10, 0]) != np.sign(coords[10:, 0])[0]).all()


def test_prompt_swap_table_from_evaluation(three_runs: list[Path]) -> None:
    run = load_run(three_runs[0])
    table = tables.prompt_swap_table(run)
    assert table.loc["rain", "swap cost (dB)"] == pytest.approx(-1.0)
    assert table.loc["snow", "own prompt"] == pytest.approx(25.0 + 2.5)


def test_load_benchmarks_skips_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bench-rain100l-a.json").write_text("{oops")
    (tmp_path / "bench-rain100l-b.json").write_text(json.dumps({"val_psnr": 30.0, "preset": "small"}))
    with pytest.warns(UserWarning, match="bench-rain100l-a.json"):
        table = tables.load_benchmarks(str(tmp_path / "bench-rain100l-*.json"))
    assert list(table.index) == ["bench-rain100l-b"] and table.loc["bench-rain100l-b", "val_psnr"] == 30.0
    assert tables.load_benchmarks(str(tmp_path / "none-*.json")) is None


