"""The report: report.md carries the runs' numbers and leaves out what it has no data for; the snapshot
holds a checkpoint's evaluation and rebuilds without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hw4lib import plots, report, tables
from hw4lib.runs import load_runs
from tests.fabricate import fake_per_image, make_run, tiny_dataset


def test_write_report_fills_in_the_numbers(three_runs: list[Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW4_ROOT", str(tmp_path))
    runs = load_runs([str(p) for p in three_runs])
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
        paired=tables.paired_differences(runs),
        separation=tables.prompt_separation(runs),
        swaps={"L1": tables.prompt_swap_table(runs[0])},
        benchmarks=tables.load_benchmarks(str(bench / "bench-rain100l-*.json")),
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
    md = report.write_report(load_runs([a]), {}, out_dir=tmp_path / "out").read_text()
    assert "Rain100L" not in md and "What the prompts learned" not in md
    assert "No visual comparison" in md and "25.00" in md


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
        transfer = tables.load_transfer(str(tmp_path / "bench-transfer*.json"))
    assert list(transfer.index) == ["bench-transfer"] and transfer.loc["bench-transfer", "steps"] == 321
    runs = load_runs([a])
    md = report.write_report(runs, {}, out_dir=tmp_path / "out", transfer=transfer).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| bench-transfer"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # gain over the input on all pairs, TTA gains over the input of the TTA subset (26.5 - 25.0, 26.1 - 25.0)
    assert cells[1:9] == ["small", "600", "321", "100", "25.52", "26.77", "+1.25", "+1.50"]
    assert cells[9] == "+1.10" and "largest transfer gain is +1.25 dB (small preset)" in md
    assert tables.load_transfer(str(tmp_path / "none*.json")) is None


def test_tta_sentence_reports_the_mean_change_of_each_ensemble(tmp_path: Path) -> None:
    for name, plain, x8, mirror in (("a", 30.0, 27.0, 30.2), ("b", 32.0, 30.0, 32.4)):
        (tmp_path / f"bench-rain100l-{name}.json").write_text(json.dumps(
            {"preset": name, "val_psnr": plain, "val_psnr_tta": x8, "val_psnr_tta_hflip": mirror}
        ))  # fmt: skip
    table = tables.load_benchmarks(str(tmp_path / "bench-rain100l-*.json"))
    runs = load_runs([make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)])
    md = report.write_report(runs, {}, out_dir=tmp_path / "out", benchmarks=table).read_text()
    assert "changes PSNR by -2.50 dB on average" in md  # mean of -3.0 and -2.0
    assert "changes PSNR by +0.30 dB" in md and "PSNR + mirror" in md


def test_collect_runs_evaluates_a_checkpoint(tmp_path: Path) -> None:
    import torch

    from hw4lib.model import build_model

    data = tiny_dataset(tmp_path / "data")
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
    assert plots.plot_visual_grid([collected], "rain") is not None

    # the snapshot alone (no checkpoint, no data) rebuilds the same evaluation
    again = load_runs(str(snap / "*"))
    pd.testing.assert_frame_equal(again[0].per_image, pd.read_csv(snap / "t-l1" / "eval" / "per_image.csv"))


# ------------------------------------------------------------------------------ the template and its context


def _separation(accuracies: dict[str, float]) -> pd.DataFrame:
    """A prompt-separation table as ``tables.prompt_separation`` returns it, with the given accuracies."""
    rows = [
        {"run": run, "level": level, "L1 gap": 0.5, "separation": 1.0, "LOO acc": acc}
        for run, acc in accuracies.items()
        for level in ("prompt1", "all")
    ]
    return pd.DataFrame(rows)


def test_template_uses_exactly_the_context_keys(three_runs: list[Path], tmp_path: Path) -> None:
    import jinja2.meta

    env = report.template_environment()
    source = env.loader.get_source(env, report.TEMPLATE)[0]
    used = jinja2.meta.find_undeclared_variables(env.parse(source))
    runs = load_runs([str(p) for p in three_runs])
    context = report.report_context(runs, {}, tmp_path)
    assert used == set(context)  # none missing, none unused
    del context["run_names"]
    with pytest.raises(jinja2.UndefinedError, match="run_names"):
        report.render_markdown(context)  # strict: a missing variable is an error, not an empty string


def test_every_branch_renders_with_numbered_figures_and_sections(
    three_runs: list[Path], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HW4_ROOT", str(tmp_path))
    runs = load_runs([str(p) for p in three_runs])
    figures = {}
    for key in report.FIGURE_KEYS:
        figures[key] = tmp_path / "figures" / f"{key}.png"
        figures[key].parent.mkdir(exist_ok=True)
        figures[key].write_bytes(b"png")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench-rain100l-a.json").write_text(
        json.dumps({"preset": "a", "val_psnr": 30.0, "val_psnr_tta": 30.5, "val_psnr_tta_hflip": 30.25})
    )
    transfer = {"preset": "small", "real_psnr": 28.0, "gain_db": 2.5}
    (bench / "bench-transfer.json").write_text(json.dumps(transfer))
    labels = tables.run_labels(runs)
    md = report.write_report(
        runs,
        figures,
        out_dir=tmp_path / "report",
        paired=tables.paired_differences(runs),
        separation=_separation({"L1": 0.9, "MSE": 0.5}),
        swaps={label: tables.prompt_swap_table(run) for label, run in zip(labels, runs, strict=True)},
        benchmarks=tables.load_benchmarks(str(bench / "bench-rain100l-*.json")),
        transfer=tables.load_transfer(str(bench / "bench-transfer*.json")),
    ).read_text()
    sections = [line for line in md.splitlines() if line.startswith("### 4.")]
    assert [s.split(" ", 2)[1] for s in sections] == ["4.1", "4.2", "4.3", "4.4", "4.5", "4.6"]
    assert sections[-1] == "### 4.6 Synthetic to real: how realistic is the demo rain?"
    captions = [line for line in md.splitlines() if line.startswith("*Figure ")]
    assert [c.split(":")[0] for c in captions] == [f"*Figure {i}" for i in range(1, 8)]
    assert captions[1] == "*Figure 2: Rain: degraded | L1 | L1+SSIM | MSE | clean.*"
    assert "](../figures/prompt_swap.png)" in md
    assert "Averages hide the spread: L1 improves 4 of 4; L1+SSIM improves 4 of 4; MSE improves 4 of 4" in md
    assert "for 90% of them at best (L1; chance is 50%): the model has learned, without being told" in md
    assert "Differences larger than two standard errors: L1+SSIM - L1, MSE - L1." in md  # s.e. 0
    assert "MSE: rain images -1.00 dB, snow images -1.00 dB. Handing the model the other type's" in md
    assert "changes PSNR by +0.50 dB on average, the left-right mirror alone by +0.25 dB." in md
    assert "gain is +2.50 dB (small preset): the synthetic streaks teach a lasting part" in md
    assert "a different order from theirs" in md
    assert "| L1    | all     |     0.50 |         1.00 |            90% |" in md
    assert md.endswith("quoted for context only.\n") and "\n\n\n" not in md


def test_figure_numbers_follow_the_figures_present(tmp_path: Path) -> None:
    a = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0, per_image=fake_per_image(0.0))
    fig = tmp_path / "psnr.png"
    fig.write_bytes(b"png")
    md = report.write_report(load_runs([a]), {"psnr": fig}, out_dir=tmp_path / "out").read_text()
    assert "### 4.1 Learning curves" in md and "### 4.3 Per-image PSNR" in md and "### 4.4" not in md
    assert "*Figure 1: Per-image validation PSNR by degradation type (box: quartiles).*" in md
    assert "Figure 2" not in md and "No visual comparison" in md


@pytest.mark.parametrize(
    ("accuracy", "verdict"),
    [
        (0.95, "the model has learned, without being told, which degradation it is looking at."),
        (0.9, "the model has learned, without being told, which degradation it is looking at."),
        (0.89, "the prompts partly encode the degradation type."),
        (0.7, "the prompts partly encode the degradation type."),
        (0.69, "at this training scale the prompts do not (yet) encode the degradation type."),
    ],
)
def test_prompt_verdict_follows_the_thresholds(tmp_path: Path, accuracy: float, verdict: str) -> None:
    runs = load_runs([make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)])
    context = report.report_context(runs, {}, tmp_path, separation=_separation({"L1": 0.5, "MSE": accuracy}))
    md = report.render_markdown(context)
    assert f"is right for {accuracy:.0%} of them at best (MSE; chance is 50%): {verdict}\n" in md


def test_small_differences_swaps_and_transfer_take_the_other_sentences(
    three_runs: list[Path], tmp_path: Path
) -> None:
    runs = load_runs([str(p) for p in three_runs])
    rng = np.random.default_rng(0)
    for run in runs[1:]:  # per-image differences of +-1 dB around a mean far below two standard errors
        run.per_image["psnr"] = runs[0].per_image["psnr"] + [1.0, -1.0, 1.1, -1.05] + rng.normal(0, 0.01, 4)
    runs[0].per_image["psnr_other_mean"] = runs[0].per_image["psnr_own_mean"] - 0.2
    (tmp_path / "bench-transfer.json").write_text(
        json.dumps({"preset": "small", "real_psnr": 26.0, "gain_db": 1.99})
    )
    context = report.report_context(
        runs,
        {},
        tmp_path,
        paired=tables.paired_differences(runs),
        swaps={"L1": tables.prompt_swap_table(runs[0])},
        transfer=tables.load_transfer(str(tmp_path / "bench-transfer*.json")),
    )
    assert context["significant"] == [] and context["swap_cost_matters"] is False
    assert context["transfer_best"]["lasting"] is False
    md = report.render_markdown(context)
    assert "None of the differences exceeds two standard errors" in md
    assert "is L1: rain images -0.20 dB, snow images -0.20 dB. The cost is small" in md
    assert "+1.99 dB (small preset): well below what training on real pairs gives" in md


def test_seed_numbers_come_from_seed_results(three_runs: list[Path], tmp_path: Path, monkeypatch) -> None:
    runs = load_runs([str(p) for p in three_runs])  # ours: L1+SSIM > L1 > MSE
    before = report.write_report(runs, {}, out_dir=tmp_path / "a").read_text()
    assert "L1 28.88, L1+SSIM 29.34, MSE 29.74 dB on the hidden test set" in before
    assert "a different order from theirs. Their gaps (0.46 and 0.86 dB over L1)" in before
    monkeypatch.setattr(tables, "SEED_RESULTS", {"l1": 30.0, "l1_ssim": 31.5, "mse": 29.25})
    md = report.write_report(runs, {}, out_dir=tmp_path / "b").read_text()
    assert "reported L1 30.00 dB, L1+SSIM 31.50 dB, MSE 29.25 dB; our runs give the same order as" in md
    assert "Their gaps (1.50 and -0.75 dB over L1)" in md
    assert "L1 30.00, L1+SSIM 31.50, MSE 29.25 dB on the hidden test set" in md
    assert "28.88" not in md and "29.34" not in md and "29.74" not in md
