"""Report numbers from fabricated runs: tables hold the runs' numbers, statistics match hand computations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hw4lib.runs import load_run, load_runs
from hw4lib.study import output, prompts, snapshot, stats, tables
from tests.fabricate import make_run, make_study


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
    files = output.save_table(table, "loss_comparison", tmp_path / "tables")
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
    tex = output.to_latex(df)
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


def test_prompt_separation_by_hand(three_runs: list[Path]) -> None:
    runs = load_runs([str(p) for p in three_runs])
    sep = prompts.prompt_separation(runs[:1]).set_index("level")
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
    coords, explained = stats.pca_2d(x)
    assert explained[0] > 0.9
    assert (np.sign(coords[:10, 0]) != np.sign(coords[10:, 0])[0]).all()


def test_prompt_swap_table_from_evaluation(three_runs: list[Path]) -> None:
    run = load_run(three_runs[0])
    table = prompts.prompt_swap_table(run)
    assert table.loc["rain", "swap cost (dB)"] == pytest.approx(-1.0)
    assert table.loc["snow", "own prompt"] == pytest.approx(25.0 + 2.5)


def test_load_benchmarks_skips_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bench-rain100l-a.json").write_text("{oops")
    (tmp_path / "bench-rain100l-b.json").write_text(json.dumps({"val_psnr": 30.0, "preset": "small"}))
    with pytest.warns(UserWarning, match="bench-rain100l-a.json"):
        table = snapshot.load_benchmarks(str(tmp_path / "bench-rain100l-*.json"))
    assert list(table.index) == ["bench-rain100l-b"] and table.loc["bench-rain100l-b", "val_psnr"] == 30.0
    assert snapshot.load_benchmarks(str(tmp_path / "none-*.json")) is None


# ------------------------------------------------------------------------------------------------ statistics

T2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (a table value)
Z = 1.959963984540054  # standard normal, 97.5% quantile


def test_t_interval_by_hand() -> None:
    ci = stats.mean_interval([1.0, 2.0, 3.0])  # mean 2, sd 1
    assert ci["mean"] == pytest.approx(2.0) and ci["n"] == 3
    assert ci["low"] == pytest.approx(2.0 - T2 / math.sqrt(3)) and ci["high"] == pytest.approx(
        2.0 + T2 / math.sqrt(3)
    )
    assert stats.t_quantile(3) == pytest.approx(T2) and stats.t_quantile(2) == pytest.approx(12.706204736)
    one = stats.mean_interval([5.0, float("nan")])  # NaN dropped; one value: a mean without an interval
    assert one["mean"] == 5.0 and one["n"] == 1 and math.isnan(one["low"]) and math.isnan(one["high"])
    assert stats.excludes_zero(0.1, 0.5) and stats.excludes_zero(-0.5, -0.1)
    assert not stats.excludes_zero(-0.1, 0.5) and not stats.excludes_zero(float("nan"), float("nan"))


def test_fisher_z_interval_by_hand() -> None:
    x = np.array([16.0, 18.0, 20.0, 22.0, 24.0, 26.0, 28.0, 30.0])
    y = np.array([1.2, 1.0, 0.9, 0.1, 0.3, -0.6, -0.4, -1.1])
    dx, dy = x - x.mean(), y - y.mean()
    r = float((dx * dy).sum() / math.sqrt((dx**2).sum() * (dy**2).sum()))
    half = Z / math.sqrt(len(x) - 3)
    ci = stats.pearson_interval(x, y)
    assert ci["r"] == pytest.approx(r) and ci["n"] == 8
    assert ci["low"] == pytest.approx(math.tanh(math.atanh(r) - half))
    assert ci["high"] == pytest.approx(math.tanh(math.atanh(r) + half))
    assert ci["high"] < 0  # a clearly negative relation: the interval excludes 0
    few = stats.pearson_interval([1, 2, 3], [1, 3, 2])  # three pairs: r, but no interval
    assert few["r"] == pytest.approx(0.5) and math.isnan(few["low"])


def test_wilson_interval_by_hand() -> None:
    # 8 of 10: centre (p + z²/2n) / (1 + z²/n), half-width z sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
    z2 = Z * Z
    denom = 1 + z2 / 10
    centre = (0.8 + z2 / 20) / denom
    half = Z * math.sqrt(0.8 * 0.2 / 10 + z2 / 400) / denom
    low, high = stats.wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    zero_low, zero_high = stats.wilson_interval(0, 10)  # stays inside [0, 1] at the edge
    assert zero_low == 0.0 and zero_high == pytest.approx(z2 / 10 / denom)


# --------------------------------------------------------------------------------------------------- a study


@pytest.fixture
def study(tmp_path: Path) -> list:
    return load_runs(make_study(tmp_path / "runs"))


def test_study_arms_and_compute_series(study: list) -> None:
    arms = tables.study_arms(study)
    assert list(arms) == ["l1", "mse", "l1_ssim", "l1+0.1*edge_y"]
    assert [r.name for r in arms["l1"]] == ["study-l1-s0", "study-l1-s1", "study-l1-s2"]  # full length only
    series = tables.compute_series(study)
    assert list(series) == ["l1"] and list(series["l1"]) == [50, 100, 200, 400]
    assert [r.name for r in series["l1"][50]] == [
        "study-steps50-l1-s0",
        "study-steps50-l1-s1",
        "study-steps50-l1-s2",
    ]


def test_loss_summary_is_the_mean_over_seeds_with_a_t_interval(study: list) -> None:
    summary = tables.loss_summary(study)
    # L1 images: input + 3 - 0.25 (input - 16) + 0.1 seed; inputs average 22.875 dB -> 24.15625 + 0.1 seed
    means = [24.15625, 24.25625, 24.35625]
    row = summary.loc["L1"]
    assert row["seeds"] == "0, 1, 2" and row["n"] == 3
    assert row["PSNR (dB)"] == pytest.approx(24.25625)
    assert row["PSNR low"] == pytest.approx(24.25625 - T2 * 0.1 / math.sqrt(3))
    assert row["gain (dB)"] == pytest.approx(np.mean(means) - 22.875)
    assert summary.index[0] == "input (no restoration)" and summary.iloc[0]["PSNR (dB)"] == pytest.approx(
        22.875
    )


def test_paired_differences_per_seed_and_over_seeds_by_hand(study: list) -> None:
    paired = tables.paired_vs_reference(study).set_index(["comparison", "scope"])
    # L1+SSIM - L1 = 0.1 + 0.05 ((7 i + 3 s) % 5 - 2) on image i, seed s
    per_seed = [np.mean([0.1 + 0.05 * ((7 * i + 3 * s) % 5 - 2) for i in range(12)]) for s in (0, 1, 2)]
    for s, expected in enumerate(per_seed):
        assert paired.loc[("L1+SSIM - L1", f"seed {s}"), "mean (dB)"] == pytest.approx(expected)
    over = paired.loc[("L1+SSIM - L1", "over seeds")]
    sd = np.std(per_seed, ddof=1)
    assert over["n"] == 3 and over["mean (dB)"] == pytest.approx(np.mean(per_seed))
    assert over["low (dB)"] == pytest.approx(np.mean(per_seed) - T2 * sd / math.sqrt(3))
    assert bool(over["resolved"]) and over["better"] == 3
    pooled = paired.loc[("L1+SSIM - L1", "all images")]
    assert pooled["n"] == 36 and pooled["mean (dB)"] == pytest.approx(np.mean(per_seed))
    assert paired.loc[("L1 + 0.1*Edge(Y) - L1", "over seeds"), "high (dB)"] < 0  # resolved, worse


def test_level_dependence_by_hand() -> None:
    points = pd.DataFrame({
        "comparison": ["MSE - L1"] * 5, "name": list("abcde"), "kind": ["rain"] * 5,
        "input_psnr": [18.0, 20.0, 24.0, 27.0, 28.0], "diff": [1.0, 0.5, 0.0, -0.5, -1.5], "seeds": [1] * 5,
    })  # fmt: skip
    corr, bands = tables.level_dependence(points, bands=(22, 26))
    assert corr.iloc[0]["r"] == pytest.approx(np.corrcoef(points["input_psnr"], points["diff"])[0, 1])
    assert corr.iloc[0]["n"] == 5
    by_band = bands.set_index("band")
    assert list(by_band.index) == ["< 22 dB", "22-26 dB", ">= 26 dB"]
    low = by_band.loc["< 22 dB"]  # 1.0 and 0.5: mean 0.75, sd 0.3536, t(1) = 12.706
    assert low["n"] == 2 and low["mean (dB)"] == pytest.approx(0.75)
    assert low["high (dB)"] == pytest.approx(0.75 + 12.706204736 * math.sqrt(0.125) / math.sqrt(2))
    assert by_band.loc["22-26 dB", "n"] == 1 and math.isnan(by_band.loc["22-26 dB", "low (dB)"])
    assert by_band.loc[">= 26 dB", "mean (dB)"] == pytest.approx(-1.0)


def test_level_differences_average_the_seeds(study: list) -> None:
    points = tables.level_differences(study)
    mse = points[points["comparison"] == "MSE - L1"].set_index("name")
    # image 0 (input 16 dB): -0.2 (16 - 23) + the mean over seeds of the wobble
    wobble = np.mean([0.05 * ((3 * s) % 5 - 2) for s in (0, 1, 2)])
    assert mse.loc["rain-0", "diff"] == pytest.approx(1.4 + wobble) and mse.loc["rain-0", "seeds"] == 3
    corr, _ = tables.level_dependence(points)
    row = corr.set_index("comparison").loc["MSE - L1"]
    assert row["r"] < -0.99 and bool(row["resolved"])
    assert not bool(corr.set_index("comparison").loc["L1+SSIM - L1", "resolved"])


def test_failure_cases_count_regressions(study: list) -> None:
    summary, worst = tables.failure_cases(study, worst=2)
    # L1 loses 0.4375 - 0.1 s dB on snow-11 (29.75 dB), 0.125 - 0.1 s on rain-10 (28.5 dB): 3 + 2 regressions
    assert summary.loc["L1", "regressed"] == 5 and summary.loc["L1", "evaluated"] == 36
    first = worst[worst["loss"] == "L1"].iloc[0]
    assert (first["name"], first["seed"]) == ("snow-11", 0) and first["change (dB)"] == pytest.approx(-0.4375)
    assert first["input PSNR (dB)"] == pytest.approx(29.75) and len(worst[worst["loss"] == "L1"]) == 2


def test_prompt_ablation_means_by_hand(study: list, three_runs: list[Path]) -> None:
    table = prompts.prompt_ablations(study).set_index(["loss", "kind", "column"])
    zero = table.loc[("L1", "rain", "psnr_zero_prompt")]
    # rain images i = 0, 2, ... 10: -1.0 + 0.1 (i % 3 - 1), three seeds each: 18 values, deviations ±0.1 on 12
    values = [-1.0 + 0.1 * (i % 3 - 1) for i in range(0, 12, 2)] * 3
    half = 2.109815577833 * np.std(values, ddof=1) / math.sqrt(18)  # t(17)
    assert zero["n"] == 18 and zero["mean (dB)"] == pytest.approx(-1.0)
    assert zero["low (dB)"] == pytest.approx(-1.0 - half)
    assert table.loc[("MSE", "snow", "psnr_other_mean"), "mean (dB)"] == pytest.approx(-0.3)
    assert table.loc[("L1", "snow", "psnr_onehot_2"), "ablation"] == "one-hot on component 2"
    assert prompts.prompt_ablations(load_runs([str(p) for p in three_runs])) is None  # swap columns only


def test_prompt_type_accuracy_with_wilson_interval(study: list) -> None:
    acc = prompts.prompt_type_accuracy(study)
    row = acc.loc["L1"]
    assert row["correct"] == 36 and row["images"] == 36 and row["accuracy"] == 1.0
    z2 = Z * Z
    assert row["accuracy low"] == pytest.approx(
        (1 + z2 / 72 - Z * math.sqrt(z2 / (4 * 36 * 36))) / (1 + z2 / 36)
    )
    # per level: rain means (0.61, 0.3, 0.09), snow (0.11, 0.3, 0.59): |0.5| + 0 + |0.5|; two levels
    assert row["side"] == "above" and row["L1 gap"] == pytest.approx(2.0)
    # against the permutation null (types shuffled within each run): far above, no shuffle reaches 36
    assert row["null accuracy"] < 0.6 and row["null high"] < 1.0 and row["p above"] == 0.0


def test_leave_one_out_on_noise_scores_below_half_and_the_permutation_null_says_so() -> None:
    """Nearest-mean leave-one-out classification is biased below 50% on pure noise (leaving a row out moves
    its own class mean away from it): a Wilson interval below 50% is then no finding, the null shows why."""
    from hw4lib.study.stats import centroid_loo_correct

    rng = np.random.default_rng(3)
    kinds = np.array(["rain"] * 5 + ["snow"] * 5)
    scores = [centroid_loo_correct(rng.normal(size=(10, 15)), kinds) / 10 for _ in range(2000)]
    assert np.mean(scores) < 0.47  # below chance on noise (0.44 here; the standard error is 0.005)
    assert np.std(scores) > 1.2 * math.sqrt(0.25 / 10)  # and wider than independent coin flips


def test_compute_table_and_the_gain_of_the_last_step(study: list) -> None:
    table = tables.compute_table(study).set_index("steps")
    assert list(table.index) == [50, 100, 200, 400]
    assert table.loc[400, "PSNR (dB)"] == pytest.approx(24.25625)  # the full-length runs are the last point
    assert table.loc[50, "PSNR (dB)"] == pytest.approx(24.25625 - 1.5 * 3)
    assert table.loc[100, "images seen"] == 800 and table.loc[100, "wall time (s)"] == 50
    gain = tables.compute_gain(study)
    assert (gain["from_steps"], gain["to_steps"], gain["n"]) == (200, 400, 3)
    assert gain["mean"] == pytest.approx(1.5) and gain["per_doubling"] == pytest.approx(1.5)
    one_seed = load_runs([make_run(Path(study[0].path).parent.parent / "x", "a", "l1", 25.0, 24.0, 26.0)])
    assert tables.compute_table(one_seed) is None and tables.compute_gain(one_seed) is None


def test_context_table_labels_each_row_by_its_setting(study: list) -> None:
    context = tables.context_table(study)
    assert context.loc["seed solution, MSE", "PSNR (dB)"] == 29.74
    scored = "course public leaderboard (MSE; the others: not stated)"  # the seed report says no more
    assert context.loc["seed solution, MSE", "scored on"] == scored
    assert context.loc["best public solution", "PSNR (dB)"] == 32.95
    assert context.loc["PromptIR paper, single-task", "PSNR (dB)"] == 37.04
    assert context.loc["PromptIR paper, all-in-one", "PSNR (dB)"] == 36.37
    ours = context.loc["ours, L1"]
    assert ours["PSNR (dB)"] == pytest.approx(24.25625) and ours["hardware"] == "CPU"
    assert ours["model"].startswith("tiny PromptIR") and "3 seeds" in ours["source"]


def test_settings_table_puts_the_seed_solution_beside_ours(study: list) -> None:
    settings = tables.settings_table(study)
    assert settings.loc["loss", "seed solution"] == "mse"
    assert settings.loc["loss", "ours"] == "l1, mse, l1_ssim, l1+0.1*edge_y"
    assert settings.loc["epochs", "seed solution"] == 25 and settings.loc["batch size", "seed solution"] == 1
    assert settings.loc["patch size (px, none = whole image)", "seed solution"] == "whole image"
    assert (
        settings.loc["seed", "ours"] == "0, 1, 2"
        and settings.loc["training steps", "ours"] == "50, 100, 200, 400"
    )
    assert bool(settings.loc["model preset", "differs"]) and not bool(settings.loc["weight decay", "differs"])
    assert settings.loc["device", "seed solution"] == "GPU"


def test_compute_accounting_derives_images_seen(tmp_path: Path) -> None:
    run = make_run(tmp_path, "a-l1", "l1", 25.0, 24.0, 26.0, metrics={"steps": 10})  # batch 8, one process
    table = tables.compute_accounting(load_runs([run]))
    assert table.loc["a-l1", "steps"] == 10 and table.loc["a-l1", "images seen"] == 80
    assert table.loc["a-l1", "device"] == "cpu" and table.loc["a-l1", "wall time (s)"] == pytest.approx(61.4)
