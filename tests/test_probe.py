"""Probing a trained model: the zoom window, a clear message when the data to evaluate is missing, and prompt
ablations that equal models changed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hw4lib import runs
from hw4lib.model import build_model
from hw4lib.runs import load_run
from hw4lib.scoring import samples_from_pairs, score_model
from hw4lib.study import errors, probe, snapshot
from hw4lib.study.tables import ReportError
from tests.fabricate import make_run, tiny_dataset


def test_crop_box_finds_the_strongest_degradation() -> None:
    clean = np.zeros((32, 32, 3), np.uint8)
    degraded = clean.copy()
    degraded[20:28, 4:12] = 200
    top, left, size = probe.zoom_box(degraded, clean)
    assert size == 8 and (top, left) == (20, 4)


def test_evaluation_without_data_says_how_to_get_it(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "t-l1", "l1", 25.0, 24.0, 26.0)
    config = json.loads((run / "config.json").read_text()) | {"data_dir": str(tmp_path / "missing")}
    (run / "config.json").write_text(json.dumps(config))
    (run / "best.pt").write_bytes(b"")
    with pytest.raises(ReportError, match=r"needs its validation images in .*missing.*make demo-data"):
        snapshot.collect_runs([run], dest=tmp_path / "snap", verbose=False)


def _run_with_checkpoint(tmp_path: Path) -> Path:
    """A run on a tiny data set (one validation image per type) with a seeded tiny model whose prompt
    softmax is sharpened, so rain and snow images get different weights."""
    data = tiny_dataset(tmp_path / "data")
    run = make_run(tmp_path / "runs", "t-l1", "l1", 25.0, 24.0, 26.0)
    config = json.loads((run / "config.json").read_text()) | {"data_dir": str(data), "val_fraction": 0.25}
    (run / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = build_model("tiny")
    for i in (1, 2, 3):
        getattr(model, f"prompt{i}").linear_layer.weight.data *= 200
    torch.save({"model": model.state_dict(), "model_config": {"preset": "tiny"}}, run / "best.pt")
    return run


def test_ablations_equal_models_changed_by_hand(tmp_path: Path) -> None:
    run_dir = _run_with_checkpoint(tmp_path)
    run = load_run(run_dir)
    table = probe.evaluate_run(run, tmp_path / "eval", n_visual=1, device="cpu", n_worst=1)
    weights = [f"prompt{level}_{j}" for level in (1, 2, 3) for j in range(5)]
    base = ["name", "kind", "psnr", "ssim", "input_psnr", "input_ssim"]
    assert list(table.columns) == [
        *base,
        *weights,
        *errors.ERROR_COLUMNS,
        *errors.PIXEL_COLUMNS,
        "psnr_own_mean",
        "psnr_other_mean",
        "psnr_uniform",
        *(f"psnr_onehot_{j}" for j in range(5)),
        "psnr_zero_prompt",
    ]
    assert list(pd.read_csv(tmp_path / "eval" / "per_image.csv").columns) == list(table.columns)
    # where the error sits: shares of the error and of the pixels, each summing to 1
    assert np.allclose(table[list(errors.ERROR_COLUMNS)].sum(axis=1), 1.0)
    assert np.allclose(table[list(errors.PIXEL_COLUMNS)].sum(axis=1), 1.0)
    assert (table["px_degradation"] > 0.05).all()  # the tiny data's streaks: every sixth column

    pairs = probe.validation_pairs(run)[2]

    def psnr_of(change) -> np.ndarray:
        model = runs.load_model(run_dir, map_location="cpu")
        with torch.no_grad():
            for level in ("prompt1", "prompt2", "prompt3"):
                change(getattr(model, level))
        return score_model(model, samples_from_pairs(pairs), device="cpu")["psnr"].to_numpy()

    def uniform(block) -> None:  # zero logits: softmax gives 1/5 each
        block.linear_layer.weight.zero_()
        block.linear_layer.bias.zero_()

    def onehot_3(block) -> None:  # logits 60 on component 3: softmax gives (e^-60, ..., 1, e^-60)
        uniform(block)
        block.linear_layer.bias[3] = 60.0

    def no_prompt(block) -> None:  # prompt components zero: the bias-free conv returns zeros
        block.prompt_param.zero_()

    assert np.allclose(psnr_of(uniform), table["psnr_uniform"], atol=1e-4)
    assert np.allclose(psnr_of(onehot_3), table["psnr_onehot_3"], atol=1e-4)
    assert np.allclose(psnr_of(no_prompt), table["psnr_zero_prompt"], atol=1e-4)
    assert (np.abs(table["psnr_zero_prompt"] - table["psnr"]) > 1e-3).all()  # the prompt does something
    # the hooks are gone afterwards: the model restores as before
    again = probe.evaluate_run(
        run, tmp_path / "again", n_visual=1, device="cpu", ablations=False, prompt_swap=False
    )
    assert np.allclose(again["psnr"], table["psnr"]) and "psnr_uniform" not in again.columns
    worst = json.loads((tmp_path / "eval" / "visual.json").read_text())["worst"]
    assert len(worst) == 1 and (tmp_path / "eval" / f"{next(iter(worst))}_restored.png").is_file()


def test_compute_series_runs_are_evaluated_without_ablations(tmp_path: Path, monkeypatch) -> None:
    calls = {}

    def fake(run, out, **kwargs):
        calls[run.name] = kwargs["ablations"]
        out.mkdir(parents=True)
        pd.DataFrame({"name": ["a"], "kind": ["rain"], "psnr": [25.0], "ssim": [0.8], "input_psnr": [20.0],
                      "input_ssim": [0.6]}).to_csv(out / "per_image.csv", index=False)  # fmt: skip

    monkeypatch.setattr(snapshot, "evaluate_run", fake)
    full = make_run(tmp_path / "runs", "s-l1-s0", "l1", 25.0, 24.0, 26.0, metrics={"steps": 400})
    short = make_run(tmp_path / "runs", "s-steps50-l1-s0", "l1", 21.0, 20.0, 22.0, metrics={"steps": 50})
    for run in (full, short):
        (run / "best.pt").write_bytes(b"")
    snapshot.collect_runs([full, short], dest=tmp_path / "snap", verbose=False)
    assert calls == {"s-l1-s0": True, "s-steps50-l1-s0": False}
