"""The report: report.md carries the runs' numbers and leaves out what it has no data for; the snapshot
holds a checkpoint's evaluation and rebuilds without it; build makes every part from one computation."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hw4lib import paths
from hw4lib.paths import write_text_atomic
from hw4lib.runs import Run, load_runs
from hw4lib.study import context, figures, prompts, quoted, render, snapshot
from hw4lib.study.build import build
from hw4lib.study.images import IMAGES
from hw4lib.study.report_tables import compute_tables
from tests.fabricate import fake_eval_images, fake_per_image, make_run, make_study, tiny_dataset


def _context(
    runs: list[Run],
    out_dir: Path,
    figs: dict[str, Path] | None = None,
    dataset: dict[str, Any] | None = None,
    **tables: Any,
) -> dict[str, Any]:
    """The template's context of ``runs``, their tables computed as ``build`` computes them; ``tables``
    replace some of them (fields of ``ReportTables``)."""
    computed = dataclasses.replace(compute_tables(runs, dataset), **tables)
    return context.report_context(runs, computed, figs or {}, out_dir, dataset=dataset)


def _markdown(runs: list[Run], out_dir: Path, **kwargs: Any) -> str:
    return context.render_markdown(_context(runs, out_dir, **kwargs))


def _write(runs: list[Run], out_dir: Path, **kwargs: Any) -> Path:
    """``<out_dir>/report.md`` as ``build`` writes it (figure links relative to ``out_dir``)."""
    out = paths.output(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(_markdown(runs, out, **kwargs), out / "report.md")


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
    md_path = _write(
        runs,
        tmp_path / "report",
        figs={"curves": fig},
        separation=prompts.prompt_separation(runs),
        swaps={"L1": prompts.prompt_swap_table(runs[0])},
        benchmarks=snapshot.load_benchmarks(str(bench / "bench-rain100l-*.json")),
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
        "L1+SSIM - L1: +0.50 [+0.50, +0.50] dB (better on 4 of 4 images)",
        "rain images -1.00 dB",
        "## References",
        "### 2.3 Hyperparameters",
        "| learning rate (AdamW)",
    ):
        assert text in md, text
    assert "Ranking by best validation PSNR: L1+SSIM (28.46 dB) > L1 (28.12 dB) > MSE (27.80 dB)" in md
    assert "a different order from theirs" in md
    html_path = render.render_html(md_path)
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "28.46" in page
    # self-contained: the figure is embedded, the tables styled
    assert f'<img src="data:image/png;base64,{base64.b64encode(b"png").decode()}"' in page
    assert "../figures" not in page and "border-collapse" in page


def test_report_without_benchmarks_or_evaluation_leaves_sections_out(tmp_path: Path) -> None:
    a = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)
    md = _write(load_runs([a]), tmp_path / "out").read_text()
    assert "Real data: Rain100L" not in md and "What the prompts learned" not in md
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
        transfer = snapshot.load_transfer(str(tmp_path / "bench-transfer*.json"))
    assert list(transfer.index) == ["bench-transfer"] and transfer.loc["bench-transfer", "steps"] == 321
    runs = load_runs([a])
    md = _write(runs, tmp_path / "out", transfer=transfer).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| bench-transfer"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # gain over the input on all pairs, TTA gains over the input of the TTA subset (26.5 - 25.0, 26.1 - 25.0)
    assert cells[1:9] == ["small", "600", "321", "100", "25.52", "26.77", "+1.25", "+1.50"]
    assert cells[9] == "+1.10" and "largest transfer gain is +1.25 dB (small preset)" in md
    assert snapshot.load_transfer(str(tmp_path / "none*.json")) is None


def test_tta_sentence_reports_the_mean_change_of_each_ensemble(tmp_path: Path) -> None:
    for name, plain, x8, mirror in (("a", 30.0, 27.0, 30.2), ("b", 32.0, 30.0, 32.4)):
        (tmp_path / f"bench-rain100l-{name}.json").write_text(json.dumps(
            {"preset": name, "val_psnr": plain, "val_psnr_tta": x8, "val_psnr_tta_hflip": mirror}
        ))  # fmt: skip
    table = snapshot.load_benchmarks(str(tmp_path / "bench-rain100l-*.json"))
    runs = load_runs([make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)])
    md = _write(runs, tmp_path / "out", benchmarks=table).read_text()
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

    [collected] = snapshot.collect_runs([run], dest=snap, n_visual=1, device="cpu", verbose=False)
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
    for name in visual:  # the restored image beside the run's table, the data's images once per snapshot
        assert (snap / "t-l1" / "eval" / f"{name}_restored.png").is_file()
        for tag in ("degraded", "clean"):
            assert (snap / IMAGES / f"{name}_{tag}.png").is_file()

    import matplotlib

    matplotlib.use("Agg")
    assert figures.plot_visual_grid([collected], "rain") is not None

    # the snapshot alone (no checkpoint, no data) rebuilds the same evaluation
    again = load_runs(str(snap / "*"))
    pd.testing.assert_frame_equal(again[0].per_image, pd.read_csv(snap / "t-l1" / "eval" / "per_image.csv"))


# ------------------------------------------------------------------------------ the template and its context


def _separation(accuracies: dict[str, float]) -> pd.DataFrame:
    """A prompt-separation table as ``prompts.prompt_separation`` returns it, with the given accuracies."""
    rows = [
        {"run": run, "level": level, "L1 gap": 0.5, "separation": 1.0, "LOO acc": acc}
        for run, acc in accuracies.items()
        for level in ("prompt1", "all")
    ]
    return pd.DataFrame(rows)


def test_template_uses_exactly_the_context_keys(three_runs: list[Path], tmp_path: Path) -> None:
    import jinja2.meta

    env = context.template_environment()
    source = env.loader.get_source(env, context.TEMPLATE)[0]
    used = jinja2.meta.find_undeclared_variables(env.parse(source))
    runs = load_runs([str(p) for p in three_runs])
    filled = _context(runs, tmp_path)
    assert used == set(filled)  # none missing, none unused
    del filled["run_names"]
    with pytest.raises(jinja2.UndefinedError, match="run_names"):
        context.render_markdown(filled)  # strict: a missing variable is an error, not an empty string


def test_every_branch_renders_with_numbered_figures_and_sections(
    three_runs: list[Path], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HW4_ROOT", str(tmp_path))
    runs = load_runs([str(p) for p in three_runs])
    figs = _figures(tmp_path)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench-rain100l-a.json").write_text(
        json.dumps({"preset": "a", "val_psnr": 30.0, "val_psnr_tta": 30.5, "val_psnr_tta_hflip": 30.25})
    )
    transfer = {"preset": "small", "real_psnr": 28.0, "gain_db": 2.5}
    (bench / "bench-transfer.json").write_text(json.dumps(transfer))
    md = _write(
        runs,
        tmp_path / "report",
        figs=figs,
        separation=_separation({"L1": 0.9, "MSE": 0.5}),
        benchmarks=snapshot.load_benchmarks(str(bench / "bench-rain100l-*.json")),
        transfer=snapshot.load_transfer(str(bench / "bench-transfer*.json")),
    ).read_text()
    sections = [line for line in md.splitlines() if line.startswith("### 4.")]
    assert [s.split(" ", 2)[1] for s in sections] == ["4.1", "4.2", "4.3", "4.4", "4.5", "4.6"]
    assert sections[-1] == "### 4.6 Synthetic to real: how realistic is the demo rain?"
    captions = [line for line in md.splitlines() if line.startswith("*Figure ")]
    # no ablations and no compute series in these runs: those two figures are left out
    # (the prompt-swap bar chart is gone: its swap costs are a sentence)
    assert [c.split(":")[0] for c in captions] == [f"*Figure {i}" for i in range(1, 10)]
    assert captions[0].startswith("*Figure 1: Left: best validation PSNR of each run, a line per seed")
    assert captions[1].startswith("*Figure 2: Per-image PSNR difference against L1 by the image's input PSNR")
    assert captions[2].startswith("*Figure 3: The worst case of each loss (the image it restored furthest")
    assert captions[4] == "*Figure 5: Rain: degraded | L1 | L1+SSIM | MSE | clean.*"
    assert "](../figures/ablations.png)" not in md and "](../figures/compute.png)" not in md
    assert "prompt_swap.png" not in md
    assert "Averages hide the spread: L1 improves 4 of 4; L1+SSIM improves 4 of 4; MSE improves 4 of 4" in md
    assert (
        "for 90% of them at best (L1; chance is 50%); whether that is more than chance is tested below" in md
    )
    # the differences are constant over the images: intervals of zero width, both resolved
    assert "Resolved (the interval excludes 0): L1+SSIM - L1, L1+SSIM better; MSE - L1, MSE worse." in md
    assert "MSE: rain images -1.00 dB, snow images -1.00 dB. Handing the model the other type's" in md
    assert "changes PSNR by +0.50 dB on average, the left-right mirror alone by +0.25 dB." in md
    assert "gain is +2.50 dB (small preset): the synthetic streaks teach a lasting part" in md
    assert "a different order from theirs" in md
    assert "| L1    | all     |     0.50 |         1.00 |            90% |" in md
    assert md.endswith("(Rain100L). CVPR 2017.\n") and "\n\n\n" not in md


def test_figure_numbers_follow_the_figures_present(tmp_path: Path) -> None:
    a = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0, per_image=fake_per_image(0.0))
    fig = tmp_path / "psnr.png"
    fig.write_bytes(b"png")
    md = _write(load_runs([a]), tmp_path / "out", figs={"psnr": fig}).read_text()
    assert "### 4.1 Learning curves" in md and "### 4.3 Per-image PSNR" in md and "### 4.5" not in md
    assert "### 4.4 What the prompts learned" in md and "holds no prompt ablations" in md
    assert "*Figure 1: Per-image validation PSNR by degradation type (box: quartiles).*" in md
    assert "Figure 2" not in md and "No visual comparison" in md


def _type_accuracy(rows: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    """A ``prompts.prompt_type_accuracy`` table: per loss (accuracy, p below, p above) of 40 images, its
    permutation null 50% [35%, 65%]."""
    return pd.DataFrame(
        [
            {"loss": label, "correct": round(acc * 40), "images": 40, "accuracy": acc,
             "accuracy low": acc - 0.15, "accuracy high": acc + 0.15, "side": "includes", "L1 gap": 0.1,
             "null accuracy": 0.5, "null low": 0.35, "null high": 0.65, "p below": below, "p above": above}
            for label, (acc, below, above) in rows.items()
        ]
    ).set_index("loss")  # fmt: skip


@pytest.mark.parametrize(
    ("p_above", "conclusion"),
    [
        (0.01, "The prompts of MSE tell rain from snow beyond what shuffled labels give."),
        (0.024, "The prompts of MSE tell rain from snow beyond what shuffled labels give."),
        (0.025, "So at this training scale the prompts do not (yet) encode the degradation type"),
        (0.3, "So at this training scale the prompts do not (yet) encode the degradation type"),
    ],
)
def test_the_prompt_verdict_is_the_permutation_nulls(tmp_path: Path, p_above: float, conclusion: str) -> None:
    runs = load_runs([make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)])
    table = _type_accuracy({"L1": (0.5, 0.5, 0.5), "MSE": (0.72, 1 - p_above, p_above)})
    md = _markdown(runs, tmp_path, separation=_separation({"L1": 0.5, "MSE": 0.72}), type_accuracy=table)
    assert "is right for 72% of them at best (MSE; chance is 50%); whether that is more than chance" in md
    assert conclusion in md
    word = "above that range" if p_above < 0.025 else "within it"
    null = "MSE: shuffled types give 50% on average (95% of shufflings between 35% and 65%)"
    assert f"{null}, and the observed 72% lies {word}" in md
    # without the null there is no verdict at all, however high the accuracy
    md = _markdown(runs, tmp_path, separation=_separation({"L1": 0.95}), type_accuracy=None)
    assert "right for 95% of them at best (L1; chance is 50%); with no per-image weights to test it" in md
    assert "(yet) encode the degradation type" not in md and "beyond what shuffled labels give" not in md


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
    filled = _context(
        runs,
        tmp_path,
        swaps={"L1": prompts.prompt_swap_table(runs[0])},
        transfer=snapshot.load_transfer(str(tmp_path / "bench-transfer*.json")),
    )
    assert filled["resolved"] == [] and filled["swap_cost_matters"] is False
    assert filled["transfer_best"]["lasting"] is False
    md = context.render_markdown(filled)
    assert "Every interval includes 0: over both types together, the losses are not distinguishable" in md
    assert "One run per loss is a demonstration, not a finding" in md
    assert "is L1: rain images -0.20 dB, snow images -0.20 dB. The cost is small" in md
    assert "+1.99 dB (small preset): well below what training on real pairs gives" in md


def test_seed_numbers_come_from_seed_results(three_runs: list[Path], tmp_path: Path, monkeypatch) -> None:
    runs = load_runs([str(p) for p in three_runs])  # ours: L1+SSIM > L1 > MSE
    before = _write(runs, tmp_path / "a").read_text()
    assert "L1 28.88, L1+SSIM 29.34, MSE 29.74 dB; the MSE figure is its public-leaderboard score" in before
    assert "hidden test set" not in before  # where the seed's L1 and L1+SSIM were scored is not known
    assert "a different order from theirs. Their gaps (0.46 and 0.86 dB over L1)" in before
    monkeypatch.setattr(quoted, "SEED_RESULTS", {"l1": 30.0, "l1_ssim": 31.5, "mse": 29.25})
    md = _write(runs, tmp_path / "b").read_text()
    assert "reported L1 30.00 dB, L1+SSIM 31.50 dB, MSE 29.25 dB; our runs give the same order as" in md
    assert "Their gaps (1.50 and -0.75 dB over L1)" in md
    assert "L1 30.00, L1+SSIM 31.50, MSE 29.25 dB; the MSE figure is its public-leaderboard score" in md
    assert "28.88" not in md and "29.34" not in md and "29.74" not in md


# ----------------------------------------------------------------------------------------------- a study


def _figures(tmp_path: Path) -> dict[str, Path]:
    """A stand-in file for every figure of the report."""
    figs = {}
    for key in figures.FIGURE_KEYS:
        figs[key] = tmp_path / "figures" / f"{key}.png"
        figs[key].parent.mkdir(exist_ok=True)
        figs[key].write_bytes(b"png")
    return figs


STUDY_DATA = {
    "source": "the Rain100L clean photographs", "rain": "real Rain100L rain",
    "snow": "synthetic snow (hw4lib.synth)", "split": "by scene", "note": "made for the loss study",
}  # fmt: skip


def test_study_report_states_seeds_intervals_and_what_it_cannot_resolve(tmp_path: Path) -> None:
    made = make_study(tmp_path / "runs")
    runs = load_runs(made)
    md_path = _write(runs, tmp_path / "out", figs=_figures(tmp_path), dataset=STUDY_DATA)
    md = md_path.read_text()
    for text in (
        "from 21 runs (listed in section 2.4)",
        "with 4 loss functions (L1, MSE, L1+SSIM, L1 + 0.1\\*Edge(Y)), each with 3 training seeds (0, 1, 2)",
        "puts it: the Rain100L clean photographs. Rain: real Rain100L rain. "
        "Snow: synthetic snow (hw4lib.synth). How it is split: by scene. made for the loss study.",
        "| loss | mse | l1, mse, l1_ssim, l1+0.1\\*edge_y | the experiment: the loss is what varies |",
        "| study-steps50-l1-s0 ",
        "| L1                     | 0, 1, 2 | 24.26 [24.01, 24.50] |",
        "then their mean with its 95% Student t interval over the seeds",
        "L1+SSIM - L1 +0.10 [+0.09, +0.11] dB (+0.09, +0.10, +0.10)",
        "L1+SSIM - L1, L1+SSIM better",
        "L1 + 0.1\\*Edge(Y) - L1, L1 + 0.1\\*Edge(Y) worse",  # escaped: two `*` would start emphasis
        "Pooling every image-seed pair gives narrower intervals (MSE - L1 +0.02 [-0.28, +0.32] dB",
        "| MSE - L1 | -1.00 [-1.00, -1.00] | 12 | +0.90 [+0.44, +1.36] (5) |",
        "MSE - L1: r = -1.00 [-1.00, -1.00], an interval below 0: the more degraded the image, the more MSE",
        "A hypothesis for it, not a finding: a squared loss's gradient grows with the error, so it would",
        "L1+SSIM - L1: r = +0.09 [-0.51, +0.63]; the interval includes 0",
        "counted over every image and seed: L1 5 of 36 (14%), MSE 10 of 36 (28%)",
        "| MSE | snow-11 | 0 | 29.75 | 27.96 | -1.79 |",
        "best epoch at the last epoch in 3 of 3 seeds",
        "L1 36 of 36 right (100%, Wilson 95% interval 90% to 100%: above 50%;",
        "and the observed 100% lies above that range: the prompts do tell rain from snow",
        "L1: the prompt zeroed rain -1.00 [-1.04, -0.96] dB, snow -0.80 [-0.84, -0.76] dB",
        "Zeroing the prompt lowers PSNR for every loss and type, each interval below 0",
        "Uniform weights cost PSNR everywhere",
        "| L1                | uniform weights           | -0.20 [-0.24, -0.16] | -0.20 [-0.24, -0.16] |",
        "### 4.5 PSNR per compute",
        "From 200 to 400 steps (1,600 to 3,200 images seen) the best validation PSNR changed by +1.50",
        "still rising at the largest budget, +1.50 dB per doubling of the images seen",
        "the curve does not say where it flattens",
        "| best public solution        |       32.95 |",
        "| ours, L1 + 0.1\\*Edge(Y)     |       24.20 |",
        "trained for 50, 100, 200, 400 steps on cpu",
        "What a result at this scale predicts for the full model on a GPU",
    ):
        assert text in md, text
    assert "One run per loss is a demonstration" not in md and "\n\n\n" not in md
    assert "This is what a squared loss does" not in md  # a mechanism is stated as a hypothesis
    page = render.render_html(md_path).read_text()
    assert "0.1<em>" not in page and "0.1*Edge(Y)" in page  # no stray emphasis from the loss labels
    captions = [line.split(":")[0] for line in md.splitlines() if line.startswith("*Figure ")]
    assert captions == [f"*Figure {i}" for i in range(1, 12)]  # every figure of a study (no swap chart)


def test_study_report_other_decisions(tmp_path: Path) -> None:
    runs = load_runs(make_study(tmp_path / "runs"))
    by_name = {r.name: r for r in runs}
    for seed, shift in enumerate((0.3, -0.3, 0.0)):  # the last step gains nothing resolved
        full, before = by_name[f"study-l1-s{seed}"], by_name[f"study-steps200-l1-s{seed}"]
        full.metrics["best_val_psnr"] = before.metrics["best_val_psnr"] + shift
    for seed in (0, 1, 2):  # MSE now does better the lighter the image; zeroing its prompt does nothing
        pi = by_name[f"study-mse-s{seed}"].per_image
        ref = by_name[f"study-l1-s{seed}"].per_image
        pi["psnr"] = ref["psnr"] + 0.2 * (pi["input_psnr"] - 23.0)
        pi["psnr_zero_prompt"] = pi["psnr"] + [0.3, -0.3, 0.2, -0.2, 0.1, -0.1] * 2
    md = _markdown(runs, tmp_path)
    assert "the interval includes 0, so no further gain is resolved at the largest budget" in md
    # an unresolved last step is no evidence of a plateau: the report must not say more steps would not help
    assert "With 3 seeds the last doubling is not resolved either way" in md
    assert "unlikely to help" not in md
    assert "an interval above 0: MSE does relatively better the lighter the degradation" in md
    assert "This is what a squared loss does" not in md
    assert "Zeroing the prompt has a resolved effect for some losses or types only" in md


def test_dataset_and_benchmarks_travel_with_the_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings = {"size": 64, "train_photos": ["rocket", "camera"], "test_photos": ["coffee"]}
    manifest = {"generator": "hw4lib.synth.generate_demo_dataset", "settings": settings}
    (data / "synth.json").write_text(json.dumps(manifest))
    run = make_run(tmp_path / "runs", "demo-l1", "l1", 25.0, 24.0, 26.0)
    config = json.loads((run / "config.json").read_text()) | {"data_dir": str(data)}
    (run / "config.json").write_text(json.dumps(config))
    first = tmp_path / "first"
    snapshot.collect_runs([run], dest=first, verbose=False)
    assert (first / "dataset.json").read_bytes() == (data / "synth.json").read_bytes()
    (first / "bench").mkdir()
    (first / "bench" / "bench-rain100l-tiny.json").write_text(
        json.dumps({"val_psnr": 30.0, "preset": "tiny"})
    )

    (data / "synth.json").unlink()  # a clone without the data: the snapshot carries both along
    second = tmp_path / "second"
    runs = snapshot.collect_runs(str(first / "*"), dest=second, verbose=False)
    assert snapshot.load_dataset(second) == manifest
    benchmarks, _ = snapshot.collect_benchmarks(str(tmp_path / "none-*.json"), dest=second / "bench")
    assert list(benchmarks.index) == ["bench-rain100l-tiny"]
    md = _write(runs, tmp_path / "out", dataset=snapshot.load_dataset(second)).read_text()
    assert (
        "The data is synthetic: `hw4lib.synth.generate_demo_dataset` drew rain streaks and snowflakes "
        "over random 64 px crops of 2 photographs (rocket, camera); its test split uses other photographs "
        "(coffee)."
    ) in md
    assert "validation measures removal on scenes the model has seen" in md


def test_report_folders_and_defaults() -> None:
    folders = snapshot.report_folders("report/x")
    assert [p.relative_to(folders["root"]).as_posix() for p in folders.values()] == [
        ".", "run-data", "tables", "figures"
    ]  # fmt: skip
    assert snapshot.SNAPSHOT_DIR == "report/demo/run-data" and snapshot.DEFAULT_REPORT == "report/demo"


def test_render_pdf_uses_a_tool_when_there_is_one(tmp_path: Path, monkeypatch) -> None:
    md = tmp_path / "report.md"
    md.write_text("# A report\n\nSome text.\n")
    html = render.render_html(md)
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="no headless Chromium/Chrome or LibreOffice"):
        assert render.render_pdf(html) is None
    assert not (tmp_path / "report.pdf").exists()

    fake = tmp_path / "bin" / "chromium"  # a stand-in browser that writes what --print-to-pdf names
    fake.parent.mkdir()
    script = 'for a in "$@"; do case $a in --print-to-pdf=*) printf \'%%PDF-fake\' > "${a#*=}";; esac; done'
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(render.shutil, "which", lambda name: str(fake) if name == "chromium" else None)
    assert render.pdf_command() == ("browser", str(fake))
    pdf = render.render_pdf(html)
    assert pdf == tmp_path / "report.pdf" and pdf.read_bytes() == b"%PDF-fake"


def test_a_gain_resolved_below_zero_says_more_steps_will_not_help(tmp_path: Path) -> None:
    runs = load_runs(make_study(tmp_path / "runs"))
    by_name = {r.name: r for r in runs}
    for seed, drop in enumerate((0.30, 0.35, 0.32)):  # every seed lost at the last doubling
        full, before = by_name[f"study-l1-s{seed}"], by_name[f"study-steps200-l1-s{seed}"]
        full.metrics["best_val_psnr"] = before.metrics["best_val_psnr"] - drop
    md = _markdown(runs, tmp_path)
    assert "More of the same steps are unlikely to help at this scale" in md
    assert "not resolved either way" not in md


def test_a_split_fixed_by_the_data_set_is_described_as_such(tmp_path: Path) -> None:
    runs = load_runs(make_study(tmp_path / "runs"))
    dataset = {"generator": "hw4lib.study.build_study_dataset", "source": "rain100l",
               "description": "the study set", "split": {"file": "split.csv", "by": "scene"}}  # fmt: skip
    md = _markdown(runs, tmp_path, dataset=dataset)
    assert "The split is fixed by the data set's `split.csv` (by scene" in md
    assert "drawn with each run's seed" not in md and "and the data split" not in md
    assert "| validation fraction | - | fixed by the data set (split.csv, by scene) |" in md
    assert "make study" in md and "make demo " not in md
    plain = _markdown(runs, tmp_path)
    assert "drawn with each run's seed" in plain and "make study DATA=" in plain  # data of one's own


def test_prompt_weights_that_change_nothing_are_called_inert(tmp_path: Path) -> None:
    runs = load_runs(make_study(tmp_path / "runs"))
    md = _markdown(runs, tmp_path)
    assert "The weighting itself carries nothing" not in md  # the fabricated re-weightings move PSNR
    for run in runs:
        pi = run.per_image
        if pi is not None and "psnr_uniform" in pi:  # re-weighted prompts: within 0.001 dB of the plain one
            pi["psnr_uniform"] = pi["psnr"] + 0.001
            pi["psnr_other_mean"] = pi["psnr"] - 0.001
    md = _markdown(runs, tmp_path)
    assert "The weighting itself carries nothing at this scale" in md and "less than 0.01 dB" in md


# ------------------------------------------------------------------------------------------------- build


def test_build_makes_every_part_from_one_computation(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    made = make_study(tmp_path / "runs")
    for path in made[:12]:  # every run of the loss comparison kept images of a visual and of a regression
        fake_eval_images(path, ["rain-0", "snow-11"])
    report = build(str(tmp_path / "runs" / "study-*"), tmp_path / "out", bench=str(tmp_path / "none-*.json"))

    assert report.markdown.read_text().startswith("# Rain and snow removal with PromptIR")
    assert report.html.is_file() and report.pdf is None
    saved = pd.read_csv(report.table_files["loss_summary"]["csv"], index_col=0)  # the tables as computed
    psnr = report.tables.summary.loc["L1", "PSNR (dB)"]
    assert saved.loc["L1", "PSNR (dB)"] == pytest.approx(psnr, abs=1e-4)
    assert "| L1                     | 0, 1, 2 | 24.26 [24.01, 24.50] |" in report.markdown.read_text()
    assert list(report.figures) == [k for k in figures.FIGURE_KEYS if k in report.figures]  # report order
    assert {"loss_seeds", "level", "worst", "compute", "ablations", "visual_rain"} <= set(report.figures)
    assert (report.folder / "figures" / "worst_regressions.jpg").is_file()

    # the snapshot keeps the images the figures draw, once each: clean and degraded of the shown images, the
    # restored ones of the shown runs (seed 0 of each loss) and of the worst regressions
    snap = report.folder / "run-data"
    assert sorted(p.name for p in (snap / IMAGES).iterdir()) == [
        "rain-0_clean.png", "rain-0_degraded.png", "snow-11_clean.png", "snow-11_degraded.png"
    ]  # fmt: skip
    restored = sorted(p.relative_to(snap).as_posix() for p in snap.glob("*/eval/*.png"))
    shown = [f"study-{name}-s0" for name in ("l1", "l1_0.1_edge_y", "l1_ssim", "mse")]
    visual = {f"{run}/eval/{name}_restored.png" for run in shown for name in ("rain-0", "snow-11")}
    assert set(restored) >= visual
    assert len(restored) <= 4 * 2 + 3 and not list(snap.glob("*/eval/*_clean.png"))

    # rebuilt from its own snapshot elsewhere: the same words and the same figures
    again = build(str(snap / "*"), tmp_path / "again", bench=str(tmp_path / "none-*.json"))
    assert again.markdown.read_text() == report.markdown.read_text()
    for name in report.figures.values():
        assert (tmp_path / "again" / "figures" / name.name).read_bytes() == name.read_bytes()
