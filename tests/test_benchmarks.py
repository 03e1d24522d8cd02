"""The real-data benchmarks run end-to-end on a handful of tiny pairs; the budget planner and guard behave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmarks import _budget as budget
from benchmarks import bench_train, rain100l_budget, transfer


def _pair(rng: np.random.Generator, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    clean = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
    streaks = (rng.random((h, w, 1)) < 0.1) * 50
    return np.clip(clean.astype(int) + streaks, 0, 255).astype(np.uint8), clean


@pytest.fixture(scope="module")
def fake_rain100l(tmp_path_factory) -> Path:
    """Rain100L's layout (input/N.png + target/N.png) with 5 small pairs."""
    root = tmp_path_factory.mktemp("rain100l")
    rng = np.random.default_rng(0)
    for sub in ("input", "target"):
        (root / sub).mkdir()
    for k in range(1, 6):
        rainy, clean = _pair(rng)
        Image.fromarray(rainy).save(root / "input" / f"{k}.png")
        Image.fromarray(clean).save(root / "target" / f"{k}.png")
    return root


FAST = ["--preset", "tiny", "--patch-size", "16", "--batch-size", "2"]


def test_spread_picks_evenly_spaced_items():
    assert budget.spread(list(range(10)), 3) == [0, 4, 9]
    assert budget.spread(list(range(4)), None) == [0, 1, 2, 3] and budget.spread([1, 2], 0) == []


def test_rain100l_budget_end_to_end(fake_rain100l, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = rain100l_budget.main([
        "--rain100l", str(fake_rain100l), "--data-out", str(tmp_path / "ds"),
        "--run-dir", str(tmp_path / "run"), "--out", str(out),
        "--budget-s", "0.01", "--max-steps", "3", *FAST,
    ])
    assert code == 0
    result = json.loads(out.read_text())
    for key in ("preset", "budget_s", "val_psnr", "val_psnr_tta", "val_ssim", "input_psnr", "steps_per_s",
                "peak_mem_mb"):
        assert key in result, key
    assert result["preset"] == "tiny" and result["budget_s"] == 0.01
    # 5 pairs, 80/20: 4 train (one kept by fit for its own validation), 1 held out and scored
    assert result["n_val"] == 1 and result["tta_images"] == 1 and result["training"]["n_train"] == 3
    # --max-steps: exactly 3 steps (3 epochs of 1), the schedule completed
    assert result["training"]["planned_steps"] == 3 and result["training"]["steps"] == 3
    assert result["training"]["schedule_complete"] is True
    assert result["peak_mem_mb"] > 50 and result["steps_per_s"] > 0
    # the identity baseline is the held-out pair's own PSNR (hand-computed here)
    held = tmp_path / "ds" / "test"
    a = np.asarray(Image.open(held / "degraded" / "0.png"), dtype=np.float64)
    b = np.asarray(Image.open(held / "clean" / "0.png"), dtype=np.float64)
    assert result["input_psnr"] == pytest.approx(10 * np.log10(255**2 / np.mean((a - b) ** 2)), abs=1e-3)
    printed = capsys.readouterr().out
    assert "| identity (rainy input) |" in printed and "tiny model + TTA" in printed

    # re-scoring keeps the training figures and does not train
    code = rain100l_budget.main([
        "--rain100l", str(fake_rain100l), "--data-out", str(tmp_path / "ds"),
        "--run-dir", str(tmp_path / "run"), "--out", str(out), "--score-only", "--preset", "tiny",
    ])
    again = json.loads(out.read_text())
    assert code == 0 and again["training"] == result["training"] and again["budget_s"] == 0.01
    assert again["val_psnr"] == pytest.approx(result["val_psnr"]) and "val_psnr_tta_hflip" in again
    assert " epochs x " not in capsys.readouterr().out  # no training plan, no training log


def test_transfer_end_to_end_trains_on_rain_only(fake_rain100l, tmp_path, capsys):
    demo = tmp_path / "demo"
    rng = np.random.default_rng(1)
    for kind in ("rain", "snow"):
        for i in range(1, 5):
            degraded, clean = _pair(rng)
            files = (("degraded", f"{kind}-{i}", degraded), ("clean", f"{kind}_clean-{i}", clean))
            for sub, name, img in files:
                (demo / "train" / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(demo / "train" / sub / f"{name}.png")
    out = tmp_path / "transfer.json"
    code = transfer.main([
        "--rain100l", str(fake_rain100l), "--demo", str(demo), "--rain-only", str(tmp_path / "rain_only"),
        "--run-dir", str(tmp_path / "run"), "--out", str(out), "--budget-s", "60", "--max-steps", "1",
        "--real-images", "3", "--tta-images", "1", *FAST,
    ])
    assert code == 0
    result = json.loads(out.read_text())
    assert sorted(p.name for p in (tmp_path / "rain_only" / "train" / "degraded").iterdir()) == [
        "rain-1.png", "rain-2.png", "rain-3.png", "rain-4.png"
    ]
    assert result["n_real"] == 3 and result["tta_images"] == 1 and result["training"]["steps"] == 1
    assert result["training"]["schedule_complete"] is True
    trained = result["training"]["config"]
    assert trained["preset"] == "tiny" and trained["patch_size"] == 16
    assert result["gain_db"] == pytest.approx(result["real_psnr"] - result["input_psnr"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data_dir"] == str(tmp_path / "rain_only") and config["preset"] == "tiny"
    printed = capsys.readouterr().out
    assert "transfer gain over identity" in printed
    # labels come from the data given: a hand-made training set is not called synthetic, and the scored set
    # is named after its folder
    assert result["train_synthetic"] is False and result["eval_name"] == fake_rain100l.name
    assert "synthetic" not in result["train_data"] and f"tiny, {demo.name} rain only" in printed
    assert "Rain100L" not in printed and fake_rain100l.name in result["eval_data"]


def test_missing_rain100l_is_a_clear_exit(tmp_path, capsys):
    assert transfer.main(["--rain100l", str(tmp_path / "nowhere")]) == 2
    assert "pass --rain100l DIR" in capsys.readouterr().err
    assert rain100l_budget.main(["--rain100l", str(tmp_path / "nowhere")]) == 2
    assert "pass --rain100l DIR" in capsys.readouterr().err


def test_score_real_identity_model_scores_the_input(fake_rain100l):
    from hw4lib.data import Pair
    from hw4lib.importers import find_source_pairs

    pairs = [Pair(p.degraded, p.clean, "rain", p.key) for p in find_source_pairs(fake_rain100l)]
    scores = budget.score_real(torch.nn.Identity(), pairs, tta_images=2)
    assert scores["psnr"] == pytest.approx(scores["input_psnr"])  # identity restores nothing
    assert scores["psnr_tta"] == pytest.approx(scores["input_psnr_on_tta_subset"])  # flips undo exactly
    assert scores["psnr_tta_hflip"] == pytest.approx(scores["input_psnr_on_tta_subset"])
    assert scores["n"] == 5 and scores["tta_images"] == 2


def test_bench_train_default_device_is_the_cpu_without_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = bench_train.main(["--steps", "2", "--warmup", "1", "--patch", "32", "--batch", "2"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    step = report["step"]
    assert code == 0 and step["device"] == "cpu" and step["precision"] == "fp32"
    assert step["images_per_s"] == pytest.approx(2 / step["seconds_per_step"], rel=1e-6)


def test_bench_train_times_the_engine_against_the_bare_step_and_counts_flops(tmp_path, capsys):
    from hw4lib.synth import generate_demo_dataset

    data = generate_demo_dataset(tmp_path / "demo", pairs_per_type=8, test_per_type=1, size=32, seed=0)["out"]
    code = bench_train.main([
        "--preset", "tiny", "--patch", "16", "--batch", "2", "--steps", "3", "--warmup", "1", "--engine",
        "--repeats", "1", "--flops", "--infer-size", "32", "--data", str(data), "--device", "cpu",
    ])  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    engine, flops = report["engine"], report["flops"]
    assert engine["engine_over_bare"] == pytest.approx(
        engine["engine_seconds_per_step"] / engine["bare_seconds_per_step"]
    )
    assert flops["train_step_gflop"] == pytest.approx(3 * flops["forward_gflop"])
    assert flops["forward_gflop"] == pytest.approx(bench_train.forward_flops("tiny", 2, 16) / 1e9)
    assert 0 < flops["utilisation_of_measured_matmul"] < 1


def test_forward_flops_grow_with_the_pixels():
    small, large = bench_train.forward_flops("tiny", 1, 32), bench_train.forward_flops("tiny", 1, 64)
    assert large == pytest.approx(4 * small, rel=0.05)  # almost all of PromptIR's work is per pixel


def test_reproducibility_compares_histories_exactly():
    from benchmarks import reproducibility

    columns = list(reproducibility.COMPARED)
    a = pd.DataFrame([[0.05, 24.0, 25.0, 23.0, 0.85], [0.04, 24.5, 25.5, 23.5, 0.86]], columns=columns)
    same = reproducibility.compare(a, a.copy())
    assert same["identical"] and same["max_abs_diff_val_psnr"] == 0.0
    b = a.copy()
    b.loc[1, "val_psnr"] += 1e-9  # one last-bit difference is a difference
    moved = reproducibility.compare(a, b)
    assert not moved["identical"] and moved["max_abs_diff_val_psnr"] == pytest.approx(1e-9)
    assert moved["max_abs_diff_train_loss"] == 0.0


def test_the_colab_estimate_counts_on_the_meta_device_and_marks_itself_an_estimate() -> None:
    from benchmarks import colab_estimate

    est = colab_estimate.estimate("colab")
    assert est["settings"]["grad_checkpointing"] and est["parameters"] == 35_376_967  # the full model
    assert est["steps_per_epoch_course"] == 2_880 * 120 // 8
    for rate, steps in zip(colab_estimate.T4_TFLOPS, est["steps_in_budget"], strict=True):
        assert steps == round(3 * 3600 * rate / est["step_tflop"])  # the 3 h budget over the step's FLOPs
    assert est["fits_t4"] and est["memory"]["total_gb"] < 4  # far under the T4's 16 GB
    assert "not measured" in est["estimate"]
