"""The study's analyses beyond the loss table (``hw4lib.study.analyses``) and the report's words for them
(``hw4lib.study.findings``), on a study built by hand so that every value is known: MSE is 1 dB worse than L1
on rain and 1 dB better on snow, L1+SSIM a little better on both, the loss by type better than either part,
the reverse Huber loss indistinguishable; at four times the steps MSE's rain gap shrinks and its snow gap
grows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hw4lib.runs import Run, load_runs, safe_name
from hw4lib.study import analyses, findings
from hw4lib.study.tables import run_seed, run_steps
from tests.fabricate import make_run

SEEDS = (0, 1, 2)
D = {0: -0.1, 1: 0.0, 2: 0.1}  # a seed's shift of every loss against L1
E = {0: 0.05, 1: -0.05, 2: 0.0}  # the loss by type's own seed shift
F = {0: 0.3, 1: -0.3, 2: 0.1}  # the reverse Huber loss's (large: nothing resolved)
G = {0: 0.05, 1: -0.05, 2: 0.0}  # MSE's shift at the longer length
INPUTS = {
    **{f"rain-{k}": 22.0 + 2 * k for k in range(1, 5)},
    **{f"snow-{k}": 18.0 + 2 * k for k in range(1, 5)},
}
TYPE_MEAN = {"rain": 27.0, "snow": 23.0}  # mean input PSNR of each type's four images


def effect(loss: str, kind: str, name: str, seed: int) -> float:
    """PSNR of ``loss`` minus L1's on one image (same seed)."""
    slope = -0.1 * (INPUTS[name] - TYPE_MEAN[kind])  # within each type: more gain on the more degraded
    mse = {"rain": -1.0, "snow": 1.0}[kind] + D[seed] + slope
    l1_ssim = {"rain": 0.5, "snow": 0.2}[kind] + D[seed]
    return {
        "l1": 0.0,
        "mse": mse,
        "l1_ssim": l1_ssim,
        "mse@snow+l1_ssim@rain": (l1_ssim if kind == "rain" else mse) + 0.3 + E[seed],
        "berhu": 0.1 + F[seed],
    }[loss]


def per_image(loss: str, seed: int) -> pd.DataFrame:
    rows = []
    for name, inp in INPUTS.items():
        kind = name.split("-")[0]
        psnr = inp + 3 + 0.1 * seed + effect(loss, kind, name, seed)
        rows.append(
            {"name": name, "kind": kind, "psnr": psnr, "ssim": 0.8, "input_psnr": inp, "input_ssim": 0.6}
        )
    return pd.DataFrame(rows)


def _run(root: Path, name: str, loss: str, seed: int, steps: int, table: pd.DataFrame, keep: bool) -> Path:
    kinds = table.groupby("kind")["psnr"].mean()
    return make_run(
        root, name, loss, float(table["psnr"].mean()), float(kinds["rain"]), float(kinds["snow"]), seed=seed,
        per_image=table if keep else None, input_psnr=float(table["input_psnr"].mean()),
        metrics={"steps": steps, "images_seen": steps * 8},
    )  # fmt: skip


LOSSES = ("l1", "mse", "l1_ssim", "mse@snow+l1_ssim@rain", "berhu")


@pytest.fixture
def study(tmp_path: Path) -> list[Run]:
    made = []
    for seed in SEEDS:
        for loss in LOSSES:
            made.append(
                _run(
                    tmp_path, f"study-{safe_name(loss)}-s{seed}", loss, seed, 400, per_image(loss, seed), True
                )
            )
        for loss in ("l1", "mse"):  # the scale series: 4x the steps, L1 +1 dB everywhere
            longer = per_image("l1", seed).assign(psnr=lambda t: t["psnr"] + 1.0)
            if loss == "mse":
                shift = {"rain": -0.2 + G[seed], "snow": 1.5 + G[seed]}
                longer["psnr"] += longer["kind"].map(shift)
            made.append(_run(tmp_path, f"study-steps1600-{loss}-s{seed}", loss, seed, 1600, longer, False))
    return load_runs([str(p) for p in made])


def _t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student t interval, by hand."""
    v = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def test_each_loss_per_type_over_seeds_with_the_number_of_tests(study: list[Run]) -> None:
    table = analyses.per_type_paired(study).set_index(["loss", "kind"])
    assert set(table["tests"]) == {8}  # 4 losses against L1, on 2 types
    for kind, base in (("rain", -1.0), ("snow", 1.0)):
        row = table.loc[("mse", kind)]
        mean, low, high = _t_interval([base + D[s] for s in SEEDS])
        assert (row["mean"], row["low"], row["high"]) == pytest.approx((mean, low, high))
        assert row["resolved"] and row["per seed"] == ", ".join(f"{base + D[s]:+.2f}" for s in SEEDS)
        wide = _t_interval([base + D[s] for s in SEEDS], level=1 - 0.05 / 8)  # Bonferroni for 8 tests
        assert (row["low corrected"], row["high corrected"]) == pytest.approx(wide[1:])
        assert row["resolved corrected"] == (wide[1] > 0 or wide[2] < 0)
    both = table.loc[("mse", "all")]
    assert both["mean"] == pytest.approx(0.0, abs=1e-12) and not both["resolved"]  # opposite signs cancel
    assert both["low corrected"] == pytest.approx(both["low"])  # the pooled row is not one of the tests


def test_intervals_over_scenes_average_both_views_and_every_seed(study: list[Run]) -> None:
    table = analyses.clustered_paired(study).set_index("comparison")
    row = table.loc["MSE - L1"]
    scenes = [np.mean([effect("mse", kind, f"{kind}-{k}", s) for kind in ("rain", "snow") for s in SEEDS])
              for k in range(1, 5)]  # fmt: skip
    mean, low, high = _t_interval(scenes)
    assert (row["scenes"], row["images"]) == (4, 8)
    assert (row["mean"], row["low"], row["high"]) == pytest.approx((mean, low, high))
    assert analyses.scene_of("rain-15") == analyses.scene_of("snow-15") == "15"
    assert analyses.scene_of("00042") == "00042"


def test_the_level_slope_within_each_type(study: list[Run]) -> None:
    from hw4lib.study.tables import level_differences

    points = level_differences(study)
    table = analyses.level_within_type(points).set_index(["comparison", "kind"])
    for kind in ("rain", "snow"):
        names = [n for n in INPUTS if n.startswith(kind)]
        diffs = [np.mean([effect("mse", kind, n, s) for s in SEEDS]) for n in names]
        r = np.corrcoef([INPUTS[n] for n in names], diffs)[0, 1]
        row = table.loc[("MSE - L1", kind)]
        assert row["r"] == pytest.approx(r) and row["n"] == 4
    assert table.loc[("MSE - L1", "both"), "n"] == 8
    assert (
        table.loc[("L1+SSIM - L1", "rain"), "r"] != table.loc[("L1+SSIM - L1", "rain"), "r"]
    )  # constant: NaN


def test_the_hypothesis_is_predicted_from_the_other_runs_then_tested(study: list[Run]) -> None:
    tests = {t["loss"]: t for t in analyses.hypothesis_tests(study)}
    by_type = tests["mse@snow+l1_ssim@rain"]
    l1 = {}
    for kind in ("rain", "snow"):
        l1[kind] = np.mean([(t := per_image("l1", s))[t["kind"] == kind]["psnr"].mean() for s in SEEDS])
    predicted = {"rain": l1["rain"] + 0.5, "snow": l1["snow"] + 1.0}  # what each part reached alone
    assert by_type["predicted"] == pytest.approx(predicted)
    assert by_type["predicted_all"] == pytest.approx(np.mean(list(predicted.values())))
    assert by_type["best"] == "L1+SSIM"  # the best single loss overall (+0.35 dB)
    against_best = by_type["tests"][0]
    values = [0.7 + E[s] for s in SEEDS]  # rain +0.3 over L1+SSIM, snow +1.1
    assert (against_best["mean"], against_best["low"], against_best["high"]) == pytest.approx(
        _t_interval(values)
    )
    assert against_best["against"] == "L1+SSIM" and by_type["verdict"] == "held"
    on_rain, on_snow = by_type["tests"][1:]
    assert (on_rain["against"], on_rain["kind"], on_snow["against"], on_snow["kind"]) == (
        "L1+SSIM", "rain", "MSE", "snow")  # fmt: skip
    assert on_rain["mean"] == pytest.approx(0.3) and on_snow["mean"] == pytest.approx(0.3)
    berhu = tests["berhu"]
    assert [t["against"] for t in berhu["tests"]] == ["L1", "MSE"]
    assert berhu["tests"][0]["mean"] == pytest.approx(np.mean([0.1 + F[s] for s in SEEDS]))
    assert berhu["verdict"] == "not resolved"


def test_the_ranking_at_four_times_the_steps(study: list[Run]) -> None:
    table = analyses.scale_table(study).set_index(["loss", "kind"])
    assert set(table["short"]) == {400} and set(table["long"]) == {1600}
    rain, snow, both = (table.loc[("MSE", k)] for k in ("rain", "snow", "all"))
    change = _t_interval([(-0.2 + G[s]) - (-1.0 + D[s]) for s in SEEDS])
    assert (rain["change"], rain["change low"], rain["change high"]) == pytest.approx(change)
    assert rain["diff short"] == pytest.approx(-1.0) and rain["diff long"] == pytest.approx(-0.2)
    assert rain["trend"] == "shrinks" and snow["trend"] == "grows" and rain["seeds"] == 3
    assert snow["diff long"] == pytest.approx(1.5)
    assert table.loc[("L1", "all"), "PSNR long"] - table.loc[("L1", "all"), "PSNR short"] == pytest.approx(
        1.0
    )
    assert both["trend"] == "grows"
    scale = findings.scale(analyses.scale_table(study))
    assert scale is not None


def test_the_ranking_at_more_steps_compares_the_same_seeds_at_both_lengths(study: list[Run]) -> None:
    # a scale series cut short (a seed not run at the longer length) must not set the mean of three seeds
    # at the short length against the mean of two at the long one
    long = max(run_steps(r) for r in study)
    dropped = SEEDS[-1]
    kept = [r for r in study if not (run_steps(r) == long and run_seed(r) == dropped)]
    table = analyses.scale_table(kept).set_index(["loss", "kind"])
    row = table.loc[("L1", "all")]
    short = [r for r in kept if r.loss == "l1" and run_steps(r) == row["short"] and run_seed(r) != dropped]
    assert len(short) == len(SEEDS) - 1
    assert row["PSNR short"] == pytest.approx(np.mean([r.metrics["best_val_psnr"] for r in short]))
    assert table.loc[("MSE", "rain"), "seeds"] == len(SEEDS) - 1


def test_a_trend_is_a_flip_only_when_the_change_is_resolved() -> None:
    resolved = {"low": 0.5, "high": 1.5}
    assert analyses._trend([-0.4, -0.5], [0.4, 0.6], resolved) == "flips"
    assert analyses._trend([-0.4, -0.5], [0.4, 0.6], {"low": -0.1, "high": 1.5}) == "holds"
    assert (
        analyses._trend([1.0], [2.0], resolved) == "grows"
        and analyses._trend([2.0], [1.0], resolved) == "shrinks"
    )


def test_the_report_names_what_it_lacked_and_how_to_rerun_it(tmp_path: Path) -> None:
    lim = findings.limits(1_000, "tiny", ["cpu"], own_data=False)["limits"]
    assert lim["lacks"] == ["the course's data", "a leaderboard score", "the full model", "a GPU"]
    assert lim["estimate"] and lim["steps"] == 2_880 * 25  # 90% of 3,200 pairs, 25 epochs at batch 1
    assert lim["hours"][0] == pytest.approx(lim["pflop"] * 1e15 / 25e12 / 3600)
    full = findings.limits(35_000_000, "full", ["cuda"], own_data=True)["limits"]
    assert full["lacks"] == ["a leaderboard score"] and not full["estimate"]

    made = [make_run(tmp_path, f"hw4-seed-full-{loss}-s{seed}", loss, 25.0, 24.0, 26.0, seed=seed)
            for loss in ("l1", "mse") for seed in (0, 1)]  # fmt: skip
    runs = load_runs([str(p) for p in made])
    for run in runs:
        run.config.update({"data_dir": "data/hw4", "recipe": "seed", "preset": "full"})
    again = findings.reproduce(runs, "own")["reproduce"]
    assert (
        again["make"] == "make study DATA=data/hw4 RECIPE=seed SEEDS=0,1 LOSSES=l1,mse"
    )  # full: the recipe's
    assert (
        again["report"]
        == 'python -m hw4lib report --runs "runs/hw4-seed-full-*-s*" --out runs/hw4-seed-full-report'
    )
    assert findings.reproduce(runs, "study")["reproduce"] == {"kind": "study"}
