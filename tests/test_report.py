"""The report from fabricated run folders: tables hold the runs' numbers, bad runs give a clear message, the
experiment runner skips finished variants and survives a failing one, and report.md carries the numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from hw4lib import experiments, report
from hw4lib.report import ReportError

# ------------------------------------------------------------------------------------------ fabricated runs


def make_run(
    root: Path,
    name: str,
    loss: str,
    psnr: float,
    rain: float,
    snow: float,
    ssim: float = 0.8,
    epochs: int = 3,
    best_epoch: int = 2,
    input_psnr: float = 20.0,
    wall: float = 61.4,
    params: int = 123_456,
    per_image: pd.DataFrame | None = None,
) -> Path:
    """A run folder as hw4lib.train writes it; history's best epoch holds the metrics' numbers."""
    run = root / name
    run.mkdir(parents=True)
    rows = []
    for epoch in range(1, epochs + 1):
        shift = 0.0 if epoch == best_epoch else -0.5 * abs(epoch - best_epoch)
        rows.append(
            {
                "epoch": epoch,
                "train_loss": 0.1 / epoch,
                "lr": 1e-3,
                "val_psnr": psnr + shift,
                "val_psnr_rain": rain + shift,
                "val_psnr_snow": snow + shift,
                "val_ssim": ssim,
                "val_ssim_rain": ssim - 0.01,
                "val_ssim_snow": ssim + 0.01,
                "seconds": 20.0,
            }
        )
    pd.DataFrame(rows).to_csv(run / "history.csv", index=False)
    metrics = {
        "best_epoch": best_epoch,
        "best_val_psnr": psnr,
        "best_val_psnr_rain": rain,
        "best_val_psnr_snow": snow,
        "best_val_ssim": ssim,
        "input_psnr": input_psnr,
        "input_psnr_rain": input_psnr - 1,
        "input_psnr_snow": input_psnr + 1,
        "input_ssim": 0.6,
        "params": params,
        "wall_seconds": wall,
        "device": "cpu",
        "loss": loss,
        "complete": True,
        "epochs_done": epochs,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    config = {
        "loss": loss,
        "epochs": epochs,
        "preset": "tiny",
        "lr": 2e-3,
        "seed": 0,
        "val_fraction": 0.1,
        "data_dir": "data/demo",
        "batch_size": 8,
        "patch_size": 48,
    }
    (run / "config.json").write_text(json.dumps(config))
    if per_image is not None:
        (run / "eval").mkdir()
        per_image.to_csv(run / "eval" / "per_image.csv", index=False)
    return run


def fake_per_image(offset: float, separated: bool = True) -> pd.DataFrame:
    """Four images; prompt weights (2 levels x 2 components) that put rain on component 0, snow on 1."""
    rows = []
    for i, kind in enumerate(["rain", "rain", "snow", "snow"]):
        w = 0.9 if (kind == "rain") == separated else 0.1
        rows.append(
            {
                "name": f"{kind}-{i}",
                "kind": kind,
                "psnr": 25.0 + offset + i,
                "ssim": 0.8,
                "input_psnr": 20.0 + i,
                "input_ssim": 0.6,
                "prompt1_0": w,
                "prompt1_1": 1 - w,
                "prompt2_0": 0.5,
                "prompt2_1": 0.5,
                "psnr_own_mean": 25.0 + offset + i,
                "psnr_other_mean": 24.0 + offset + i,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def three_runs(tmp_path: Path) -> list[Path]:
    return [
        make_run(
            tmp_path,
            "demo-l1",
            "l1",
            28.12,
            27.50,
            28.74,
            ssim=0.81,
            wall=61.4,
            per_image=fake_per_image(0.0),
        ),
        make_run(
            tmp_path,
            "demo-l1_ssim",
            "l1_ssim",
            28.46,
            27.90,
            29.02,
            ssim=0.85,
            wall=75.0,
            per_image=fake_per_image(0.5),
        ),
        make_run(
            tmp_path,
            "demo-mse",
            "mse",
            27.80,
            27.20,
            28.40,
            ssim=0.79,
            epochs=4,
            best_epoch=4,
            wall=58.2,
            per_image=fake_per_image(-0.25),
        ),
    ]


# --------------------------------------------------------------------------------------------------- tables


def test_comparison_table_holds_the_runs_numbers(three_runs: list[Path]) -> None:
    runs = report.load_runs([str(p) for p in three_runs])
    table = report.comparison_table(runs)
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


def test_glob_loads_runs_in_sorted_order(three_runs: list[Path]) -> None:
    runs = report.load_runs(str(three_runs[0].parent / "demo-*"))
    assert [r.name for r in runs] == ["demo-l1", "demo-l1_ssim", "demo-mse"]
    assert runs[0].per_image is not None and len(runs[0].per_image) == 4


def test_save_table_writes_markdown_latex_and_csv(three_runs: list[Path], tmp_path: Path) -> None:
    table = report.comparison_table(report.load_runs([str(p) for p in three_runs]))
    files = report.save_table(table, "loss_comparison", tmp_path / "tables")
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
    tex = report.to_latex(df)
    assert "l1+0.1*edge\\_50\\%" in tex


def test_two_runs_with_the_same_loss_are_labelled_by_name(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a-mse", "mse", 25.0, 24.0, 26.0)
    b = make_run(tmp_path, "b-mse", "mse", 26.0, 25.0, 27.0)
    table = report.comparison_table(report.load_runs([a, b]))
    assert list(table.index)[1:] == ["a-mse", "b-mse"]


def test_runs_on_different_validation_sets_warn(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a-l1", "l1", 25.0, 24.0, 26.0, input_psnr=20.0)
    b = make_run(tmp_path, "b-mse", "mse", 26.0, 25.0, 27.0, input_psnr=22.0)
    with pytest.warns(UserWarning, match="different images"):
        report.comparison_table(report.load_runs([a, b]))


def test_paired_differences_by_hand(three_runs: list[Path]) -> None:
    runs = report.load_runs([str(p) for p in three_runs])
    diff = report.paired_differences(runs)
    # L1+SSIM images are each +0.5 dB over L1: mean 0.5, no spread, better on all 4
    assert diff.loc["L1+SSIM - L1", "mean (dB)"] == pytest.approx(0.5)
    assert diff.loc["L1+SSIM - L1", "s.e. (dB)"] == pytest.approx(0.0, abs=1e-9)
    assert diff.loc["L1+SSIM - L1", "images better"] == 4
    assert diff.loc["MSE - L1", "mean (dB)"] == pytest.approx(-0.25)
    assert diff.loc["MSE - L1", "images better"] == 0


# ------------------------------------------------------------------------------------------------- bad runs


def test_missing_run_folder_names_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"demo-l1 does not exist.*experiments --prefix demo --losses l1"):
        report.load_run(tmp_path / "demo-l1")


def test_glob_without_matches_says_how_to_make_runs(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no run folders match .*make demo"):
        report.load_runs(str(tmp_path / "nothing-*"))


def test_unfinished_run_is_reported(tmp_path: Path) -> None:
    run = make_run(tmp_path, "demo-mse", "mse", 25.0, 24.0, 26.0)
    (run / "metrics.json").unlink()
    with pytest.raises(
        ReportError, match=r"demo-mse has history.csv but no metrics.json \(the run did not finish\)"
    ):
        report.load_run(run)


def test_run_marked_incomplete_is_reported(tmp_path: Path) -> None:
    run = make_run(tmp_path, "demo-mse", "mse", 25.0, 24.0, 26.0)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(complete=False, epochs_done=2)
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ReportError, match="stopped after epoch 2"):
        report.load_run(run)
    assert "stopped after epoch 2" in experiments.unfinished_reason(run)


def test_metrics_missing_keys_are_listed(tmp_path: Path) -> None:
    run = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["best_val_psnr_snow"], metrics["params"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ReportError, match=r"metrics.json lacks best_val_psnr_snow, params"):
        report.load_run(run)


def test_corrupt_metrics_and_missing_history(tmp_path: Path) -> None:
    run = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)
    (run / "history.csv").unlink()
    with pytest.raises(ReportError, match="has no history.csv"):
        report.load_run(run)
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        report.load_run(run)


# -------------------------------------------------------------------------------------------------- prompts


def test_prompt_separation_by_hand(three_runs: list[Path]) -> None:
    runs = report.load_runs([str(p) for p in three_runs])
    sep = report.prompt_separation(runs[:1]).set_index("level")
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
    coords, explained = report._pca_2d(x)
    assert explained[0] > 0.9
    assert (np.sign(coords[:10, 0]) != np.sign(coords[10:, 0])[0]).all()


def test_prompt_swap_table_from_evaluation(three_runs: list[Path]) -> None:
    run = report.load_run(three_runs[0])
    table = report.prompt_swap_table(run)
    assert table.loc["rain", "swap cost (dB)"] == pytest.approx(-1.0)
    assert table.loc["snow", "own prompt"] == pytest.approx(25.0 + 2.5)


def test_crop_box_finds_the_strongest_degradation() -> None:
    clean = np.zeros((32, 32, 3), np.uint8)
    degraded = clean.copy()
    degraded[20:28, 4:12] = 200
    top, left, size = report._crop_box(degraded, clean)
    assert size == 8 and (top, left) == (20, 4)


# ------------------------------------------------------------------------------------------------ report.md


def test_write_report_fills_in_the_numbers(three_runs: list[Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW4_ROOT", str(tmp_path))
    runs = report.load_runs([str(p) for p in three_runs])
    fig = tmp_path / "figures" / "report" / "learning_curves.png"
    fig.parent.mkdir(parents=True)
    fig.write_bytes(b"png")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench-rain100l-full.json").write_text(
        json.dumps(
            {
                "preset": "full",
                "budget_s": 600,
                "val_psnr": 31.23,
                "val_psnr_tta": 31.87,
                "val_ssim": 0.91,
                "input_psnr": 25.5,
                "steps_per_s": 4.2,
                "peak_mem_mb": 9000,
            }
        )
    )
    md_path = report.write_report(
        runs,
        {"curves": fig},
        out_dir=tmp_path / "report",
        paired=report.paired_differences(runs),
        separation=report.prompt_separation(runs),
        swaps={"L1": report.prompt_swap_table(runs[0])},
        benchmarks=report.load_benchmarks(str(bench / "bench-rain100l-*.json")),
    )
    md = md_path.read_text()
    for text in (
        "28.12",
        "28.46",
        "27.80",
        "20.00",
        "+8.46",
        "0.8500",
        "123,456",
        "demo-l1_ssim",
        "L1 28.88",
        "L1+SSIM 29.34",
        "MSE 29.74",
        "their runs, not ours",
        "](../figures/report/learning_curves.png)",
        "Rain100L",
        "31.87",
        "+0.50 ± 0.00 dB",
        "rain images -1.00 dB",
        "## References",
        "### 2.3 Hyperparameters",
        "| learning rate (AdamW)",
    ):
        assert text in md, text
    assert "Ranking by best validation PSNR: L1+SSIM (28.46 dB) > L1 (28.12 dB) > MSE (27.80 dB)" in md
    assert "a different order from theirs" in md
    html_path = report.render_html(md_path)
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "28.46" in page
    assert '<img src="../figures/report/learning_curves.png"' in page


def test_report_without_benchmarks_or_evaluation_leaves_sections_out(tmp_path: Path) -> None:
    a = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)
    md = report.write_report(report.load_runs([a]), {}, out_dir=tmp_path / "out").read_text()
    assert "Rain100L" not in md and "What the prompts learned" not in md
    assert "No visual comparison" in md and "25.00" in md


def test_load_benchmarks_skips_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bench-rain100l-a.json").write_text("{oops")
    (tmp_path / "bench-rain100l-b.json").write_text(json.dumps({"val_psnr": 30.0, "preset": "small"}))
    with pytest.warns(UserWarning, match="bench-rain100l-a.json"):
        table = report.load_benchmarks(str(tmp_path / "bench-rain100l-*.json"))
    assert list(table.index) == ["bench-rain100l-b"] and table.loc["bench-rain100l-b", "val_psnr"] == 30.0
    assert report.load_benchmarks(str(tmp_path / "none-*.json")) is None


def test_transfer_section_from_benchmark_files(tmp_path: Path) -> None:
    a = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)
    result = {
        "preset": "small", "budget_s": 600.0, "input_psnr": 25.52, "real_psnr": 26.77, "gain_db": 1.25,
        "tta_images": 20, "input_psnr_on_tta_subset": 25.0, "real_psnr_tta": 26.5,
        "real_psnr_tta_hflip": 26.1,
        "steps_per_s": 0.5, "n_real": 100, "device": "cpu (2 threads)", "training": {"steps": 321},
    }  # fmt: skip
    (tmp_path / "bench-transfer.json").write_text(json.dumps(result))
    (tmp_path / "bench-transfer-bad.json").write_text(json.dumps({"val_psnr": 30.0}))  # a budget file
    with pytest.warns(UserWarning, match="bench-transfer-bad.json"):
        transfer = report.load_transfer(str(tmp_path / "bench-transfer*.json"))
    assert list(transfer.index) == ["bench-transfer"] and transfer.loc["bench-transfer", "steps"] == 321
    runs = report.load_runs([a])
    md = report.write_report(runs, {}, out_dir=tmp_path / "out", transfer=transfer).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| bench-transfer"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # gain over the input on all pairs, TTA gains over the input of the TTA subset (26.5 - 25.0, 26.1 - 25.0)
    assert cells[1:9] == ["small", "600", "321", "100", "25.52", "26.77", "+1.25", "+1.50"]
    assert cells[9] == "+1.10" and "largest transfer gain is +1.25 dB (small preset)" in md
    assert report.load_transfer(str(tmp_path / "none*.json")) is None


def test_tta_sentence_reports_the_mean_change_of_each_ensemble(tmp_path: Path) -> None:
    for name, plain, x8, mirror in (("a", 30.0, 27.0, 30.2), ("b", 32.0, 30.0, 32.4)):
        (tmp_path / f"bench-rain100l-{name}.json").write_text(json.dumps(
            {"preset": name, "val_psnr": plain, "val_psnr_tta": x8, "val_psnr_tta_hflip": mirror}
        ))  # fmt: skip
    table = report.load_benchmarks(str(tmp_path / "bench-rain100l-*.json"))
    runs = report.load_runs([make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)])
    md = report.write_report(runs, {}, out_dir=tmp_path / "out", benchmarks=table).read_text()
    assert "changes PSNR by -2.50 dB on average" in md  # mean of -3.0 and -2.0
    assert "changes PSNR by +0.30 dB" in md and "PSNR + mirror" in md


def test_figures_render_from_fabricated_runs(three_runs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report.load_runs([str(p) for p in three_runs])
    curves = report.plot_learning_curves(runs)
    assert len(curves.axes) == 3 and len(curves.axes[1].lines) == 3 * 2 + 1  # curve + best star, + baseline
    assert report.plot_psnr_distribution(runs) is not None
    weights = report.plot_prompt_weights(runs)
    assert weights is not None and len(weights.axes) == 3 * 2
    assert report.plot_prompt_projection(runs) is not None
    assert report.plot_visual_grid(runs, "rain") is None  # no eval images in these runs
    plt.close("all")


# --------------------------------------------------------------------------------------------- run_variants


def _stand_in_notebook(path: Path) -> Path:
    """A tiny 'training' notebook: writes a complete metrics.json, or raises for the loss named in fail_on."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'loss = "l1"\nrun_name = "x"\nout_root = "."\nfail_on = ""\nresume = False\noverwrite = False'
    )
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import json, pathlib\n"
        "if loss == fail_on:\n"
        "    raise RuntimeError(f'boom in {loss}')\n"
        "run = pathlib.Path(out_root) / run_name\n"
        "run.mkdir(parents=True, exist_ok=True)\n"
        "log = run / 'executions.txt'\n"
        "log.write_text(log.read_text() + 'x' if log.exists() else 'x')\n"
        "keys = ['best_epoch', 'best_val_psnr', 'best_val_psnr_rain', 'best_val_psnr_snow', "
        "'best_val_ssim',\n"
        "        'input_psnr', 'params', 'wall_seconds', 'device']\n"
        "metrics = {k: 1 for k in keys} | {'loss': loss, 'complete': True, 'overwrite': overwrite}\n"
        "(run / 'metrics.json').write_text(json.dumps(metrics))\n"
    )
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_run_variants_skips_finished_and_survives_a_failure(tmp_path: Path) -> None:
    notebook = _stand_in_notebook(tmp_path / "train.ipynb")
    runs = tmp_path / "runs"
    params = {"out_root": str(runs), "fail_on": "l1_ssim"}
    first = experiments.run_variants(
        ("l1", "l1_ssim", "mse"),
        prefix="t",
        parameters=params,
        notebook=notebook,
        runs_dir=runs,
        verbose=False,
    )
    assert [r.status for r in first] == ["done", "failed", "done"]
    assert "RuntimeError: boom in l1_ssim" in first[1].error and "t-l1_ssim.ipynb" in first[1].error
    assert (runs / "t-l1.ipynb").is_file() and (runs / "t-l1_ssim.ipynb").is_file()
    assert first[2].metrics["loss"] == "mse"

    # again, the failure fixed: finished variants are not executed again, the failed one is
    second = experiments.run_variants(
        ("l1", "l1_ssim", "mse"),
        prefix="t",
        parameters={"out_root": str(runs)},
        notebook=notebook,
        runs_dir=runs,
        verbose=False,
    )
    assert [r.status for r in second] == ["skipped", "done", "skipped"]
    assert (runs / "t-l1" / "executions.txt").read_text() == "x"
    assert second[0].metrics["loss"] == "l1"

    # force re-runs, and tells a notebook that declares `overwrite` to start over
    forced = experiments.run_variants(
        ("mse",),
        prefix="t",
        parameters={"out_root": str(runs)},
        notebook=notebook,
        runs_dir=runs,
        force=True,
        verbose=False,
    )
    assert forced[0].status == "done" and forced[0].metrics["overwrite"] is True
    assert (runs / "t-mse" / "executions.txt").read_text() == "xx"


def test_run_variants_flags_a_notebook_that_writes_no_run(tmp_path: Path) -> None:
    notebook = _stand_in_notebook(tmp_path / "train.ipynb")
    # the notebook writes under out_root, but runs_dir points elsewhere: finished notebook, no run folder
    result = experiments.run_variants(
        ("l1",),
        prefix="t",
        parameters={"out_root": str(tmp_path / "elsewhere")},
        notebook=notebook,
        runs_dir=tmp_path / "runs",
        verbose=False,
    )[0]
    assert result.status == "failed" and "metrics.json is missing" in result.error


def test_run_variants_rejects_parameters_it_sets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loss"):
        experiments.run_variants(("l1",), parameters={"loss": "mse"})


def test_variant_names_are_file_safe() -> None:
    assert experiments.variant_name("demo", "l1_ssim") == "demo-l1_ssim"
    assert experiments.variant_name("gpu", "l1+0.1*edge") == "gpu-l1_0.1xedge"


def test_cli_parses_experiment_parameters() -> None:
    from hw4lib.cli import build_parser

    args = build_parser().parse_args(
        ["experiments", "--losses", "l1,mse", "--prefix", "gpu", "-p", "epochs", "25", "-p", "preset", "full"]
    )
    assert args.func is experiments._run_experiments
    assert args.losses == "l1,mse" and args.prefix == "gpu"
    assert {k: experiments._parse_value(v) for k, v in args.parameters} == {"epochs": 25, "preset": "full"}
    assert build_parser().parse_args(["report", "--runs", "runs/gpu-*"]).runs == ["runs/gpu-*"]


# -------------------------------------------------------------------------------- evaluation of a checkpoint


def _tiny_dataset(root: Path, per_kind: int = 4, size: int = 32) -> Path:
    """Course layout with noise images; the degraded one has bright streaks."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("train/degraded", "train/clean"):
        (root / sub).mkdir(parents=True)
    for kind in ("rain", "snow"):
        for n in range(1, per_kind + 1):
            clean = rng.integers(60, 190, (size, size, 3), dtype=np.uint8)
            degraded = clean.copy()
            degraded[:, n::6] = 250 if kind == "rain" else 230
            Image.fromarray(clean).save(root / "train" / "clean" / f"{kind}_clean-{n}.png")
            Image.fromarray(degraded).save(root / "train" / "degraded" / f"{kind}-{n}.png")
    return root


def test_collect_runs_evaluates_a_checkpoint(tmp_path: Path) -> None:
    import torch

    from hw4lib.model import build_model

    data = _tiny_dataset(tmp_path / "data")
    run = make_run(tmp_path / "runs", "t-l1", "l1", 25.0, 24.0, 26.0)
    config = json.loads((run / "config.json").read_text()) | {"data_dir": str(data), "val_fraction": 0.25}
    (run / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = build_model("tiny")
    for i in (1, 2, 3):  # sharpen the prompt softmax so that rain and snow images get different weights
        getattr(model, f"prompt{i}").linear_layer.weight.data *= 200
    torch.save({"model": model.state_dict(), "model_config": {"preset": "tiny"}}, run / "best.pt")
    snap = tmp_path / "snap"
    (snap / "old-run").mkdir(parents=True)
    (snap / "old-run" / "metrics.json").write_text("{}")

    [collected] = report.collect_runs([run], dest=snap, n_visual=1, device="cpu", verbose=False)
    assert collected.path == snap / "t-l1" and not (snap / "old-run").exists()  # stale snapshot pruned
    assert not (snap / "t-l1" / "best.pt").exists()  # checkpoints stay out of the snapshot
    pi = collected.per_image
    assert sorted(pi["name"]) == sorted(pi["name"].unique()) and sorted(pi["kind"]) == ["rain", "snow"]
    for level in ("prompt1", "prompt2", "prompt3"):
        cols = [f"{level}_{j}" for j in range(5)]
        assert np.allclose(pi[cols].sum(axis=1), 1.0, atol=1e-5)
    # one validation image per type: its type's mean weights are its own, so the hook must reproduce its PSNR
    assert (np.abs(pi["psnr_own_mean"] - pi["psnr"]) < 2e-5).all()
    assert (np.abs(pi["psnr_other_mean"] - pi["psnr"]) > 2e-4).all()  # the other type's prompt changes it
    assert (pi["input_psnr"] < 30).all()
    visual = json.loads((snap / "t-l1" / "eval" / "visual.json").read_text())["images"]
    assert sorted(v["kind"] for v in visual.values()) == ["rain", "snow"]
    for name in visual:
        for tag in ("degraded", "restored", "clean"):
            assert (snap / "t-l1" / "eval" / f"{name}_{tag}.png").is_file()

    import matplotlib

    matplotlib.use("Agg")
    assert report.plot_visual_grid([collected], "rain") is not None

    # the snapshot alone (no checkpoint, no data) rebuilds the same evaluation
    again = report.load_runs(str(snap / "*"))
    pd.testing.assert_frame_equal(again[0].per_image, pd.read_csv(snap / "t-l1" / "eval" / "per_image.csv"))


def test_evaluation_without_data_says_how_to_get_it(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "t-l1", "l1", 25.0, 24.0, 26.0)
    config = json.loads((run / "config.json").read_text()) | {"data_dir": str(tmp_path / "missing")}
    (run / "config.json").write_text(json.dumps(config))
    (run / "best.pt").write_bytes(b"")
    with pytest.raises(ReportError, match=r"needs its validation images in .*missing.*make demo-data"):
        report.collect_runs([run], dest=tmp_path / "snap", verbose=False)


def test_glob_skips_folders_that_are_not_runs(three_runs: list[Path]) -> None:
    (three_runs[0].parent / "bench").mkdir()
    (three_runs[0].parent / "bench" / "bench-rain100l-tiny.json").write_text("{}")
    unfinished = three_runs[0].parent / "demo-zz"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    with pytest.raises(ReportError, match="demo-zz has no metrics.json"):
        report.load_runs(str(three_runs[0].parent / "*"))
    (unfinished / "config.json").unlink()
    assert [r.name for r in report.load_runs(str(three_runs[0].parent / "*"))] == [
        "demo-l1",
        "demo-l1_ssim",
        "demo-mse",
    ]
