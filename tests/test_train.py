"""The training engine: run folder contents, resume = uninterrupted, determinism, DDP = big batch, NaN guard.

Every run uses a micro PromptIR (dim 8, one block per level) on a generated set of 12 pairs of 32x32 images,
so each fit takes a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from hw4lib import planning, train
from hw4lib.data import PairedDataset, find_pairs, split_pairs, to_tensor
from hw4lib.loop import GlobalOrderBatches, WarmupCosine
from hw4lib.metrics import psnr
from hw4lib.paths import repo_root
from hw4lib.runs import TIME_COLUMNS, RunExistsError, load_model, load_run
from hw4lib.synth import generate_demo_dataset
from hw4lib.train import (
    TrainConfig,
    TrainingDiverged,
    evaluate,
    fit,
)

MICRO = {
    "dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 2, 4, 8],
    "prompt_dims": [8, 8, 16], "prompt_sizes": [4, 4, 4], "prompt_len": 2,
}  # fmt: skip

METRIC_KEYS = {
    "best_epoch", "best_val_psnr", "best_val_psnr_rain", "best_val_psnr_snow", "best_val_ssim", "input_psnr",
    "input_psnr_rain", "input_psnr_snow", "params", "wall_seconds", "device", "loss", "gain_db",
}  # fmt: skip
HISTORY_COLUMNS = [
    "epoch", "step", "train_loss", "lr", "val_psnr", "val_ssim", "val_psnr_rain", "val_ssim_rain",
    "val_psnr_snow", "val_ssim_snow", "seconds", "images_per_s",
]  # fmt: skip
CHECKPOINT_KEYS = {
    "model", "model_config", "epoch", "optimizer", "scheduler", "scaler", "ema", "rng", "config",
    "train_model",
}  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "demo"
    generate_demo_dataset(root, pairs_per_type=6, test_per_type=1, size=32, seed=0)
    return root


def _config(data_root, run_dir, **overrides) -> TrainConfig:
    values = dict(
        name="t", run_dir=str(run_dir), data_dir=str(data_root), preset="tiny", model_overrides=MICRO,
        loss="l1", epochs=2, batch_size=2, patch_size=16, patches_per_image=1, augment=True, lr=2e-3,
        warmup_epochs=0.5, val_fraction=0.25, device="cpu", save_samples=2, progress=False, seed=3,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


def _numeric(history):
    return history.drop(columns=list(TIME_COLUMNS))


@pytest.fixture(scope="module")
def ema_run(data_root, tmp_path_factory):
    """An uninterrupted 2-epoch run with EMA and gradient clipping on: the reference for resume and
    determinism."""
    config = _config(data_root, tmp_path_factory.mktemp("runs") / "a", ema=0.9, grad_clip=0.5)
    return fit(config)


# ---------------------------------------------------------------------------------------------------------


def test_smoke_run_writes_every_file_with_sane_values(data_root, tmp_path):
    result = fit(_config(data_root, tmp_path / "smoke", epochs=1))
    run = result.path
    for name in ("config.json", "history.csv", "history.json", "metrics.json", "best.pt", "last.pt"):
        assert (run / name).is_file(), name

    metrics = json.loads((run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["best_epoch"] == 1 and metrics["loss"] == "l1" and metrics["device"] == "cpu"
    assert metrics["params"] == sum(p.numel() for p in load_model(run).parameters())
    assert 5 < metrics["best_val_psnr"] < 60 and 0 < metrics["best_val_ssim"] <= 1
    assert metrics["wall_seconds"] > 0

    # the identity baseline, recomputed by hand from the same validation split
    _, val_pairs = split_pairs(find_pairs(data_root), val_fraction=0.25, seed=3)
    by_kind = {"rain": [], "snow": []}
    for pair in val_pairs:
        x = to_tensor(np.asarray(Image.open(pair.degraded).convert("RGB")))
        y = to_tensor(np.asarray(Image.open(pair.clean).convert("RGB")))
        mse = float(((x.double() - y.double()) ** 2).mean())
        by_kind[pair.kind].append(10 * math.log10(1 / mse))
    assert metrics["input_psnr"] == pytest.approx(np.mean(by_kind["rain"] + by_kind["snow"]), abs=1e-4)
    assert metrics["input_psnr_rain"] == pytest.approx(np.mean(by_kind["rain"]), abs=1e-4)
    assert metrics["input_psnr_snow"] == pytest.approx(np.mean(by_kind["snow"]), abs=1e-4)

    history = load_run(run, finished=False).history
    assert list(history.columns) == HISTORY_COLUMNS and len(history) == 1
    assert history["step"].iloc[0] == 4  # 8 training pairs (6 per type, minus 2 for validation) / batch 2
    assert history["train_loss"].iloc[0] > 0 and history["images_per_s"].iloc[0] > 0
    assert history["val_psnr"].iloc[0] == pytest.approx(metrics["best_val_psnr"])
    assert TrainConfig.from_json(run / "config.json") == result.train_config

    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert CHECKPOINT_KEYS <= set(ckpt)
    assert ckpt["epoch"] == 1 and ckpt["model_config"]["preset"] == "tiny"
    assert ckpt["model_config"]["dim"] == 8 and ckpt["train_model"] is None
    assert ckpt["ema"] is None and ckpt["scaler"] is None

    # the checkpoint round-trips: the reloaded model scores exactly what the run recorded, and reproduces the
    # restored sample PNGs pixel for pixel
    model = load_model(run, "best")
    val_set = PairedDataset(val_pairs)
    assert evaluate(model, val_set)["psnr"] == pytest.approx(metrics["best_val_psnr"], abs=1e-9)
    samples = json.loads((run / "samples" / "samples.json").read_text())
    assert [s["kind"] for s in samples] == ["rain", "snow"]
    for s in samples:
        item = val_set[[p.name for p in val_pairs].index(s["name"])]
        with torch.no_grad():
            out = model(item["degraded"][None]).clamp(0, 1)
        expected = train.to_uint8(out[0])
        assert np.array_equal(np.asarray(Image.open(run / "samples" / s["restored"])), expected)
        assert s["psnr_restored"] == pytest.approx(float(psnr(out, item["clean"][None])), abs=1e-6)

    with pytest.raises(RunExistsError, match="resume"):
        fit(_config(data_root, tmp_path / "smoke", epochs=1))


def test_same_config_gives_identical_history(data_root, tmp_path, ema_run):
    again = fit(_config(data_root, tmp_path / "b", ema=0.9, grad_clip=0.5))
    assert _numeric(again.history).equals(_numeric(ema_run.history))
    assert again.history["val_psnr"].iloc[-1] > again.metrics["input_psnr"] - 10  # a real number, not NaN


def test_resume_continues_exactly(data_root, tmp_path, ema_run):
    config = _config(data_root, tmp_path / "r", ema=0.9, grad_clip=0.5)

    def stop_after_first_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, on_epoch_end=stop_after_first_epoch)
    assert torch.load(tmp_path / "r" / "last.pt", weights_only=True)["epoch"] == 1
    resumed = fit(config, resume=True)
    assert _numeric(resumed.history).equals(_numeric(ema_run.history))
    a = torch.load(ema_run.path / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    for key in ("model", "train_model"):  # EMA weights and raw weights
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert a["ema"] == b["ema"] and a["ema"]["num_updates"] == 8

    # resuming a finished run with more epochs stretches the cosine over the new horizon
    longer = fit(dataclasses.replace(config, epochs=4, min_lr=1e-5), resume=True)
    expected = [config.lr * WarmupCosine(2, 16, 1e-5 / config.lr)(k) for k in (11, 15)]  # last steps of 3, 4
    assert longer.history["lr"].iloc[2:].tolist() == pytest.approx(expected, rel=1e-9)


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(data_root, tmp_path, monkeypatch):
    real_build_loss = train.build_loss
    calls = {"n": 0}

    poisoned = train.PROBE_WARMUP + train.PROBE_STEPS + 6  # the 6th training step, after the probe's steps

    class PoisonAtStep6(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = real_build_loss("l1")

        def forward(self, out, target, kinds=None):
            calls["n"] += 1
            loss = self.inner(out, target)
            return loss * float("nan") if calls["n"] == poisoned else loss

    monkeypatch.setattr(train, "build_loss", lambda spec, alpha=0.84: PoisonAtStep6())
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 2 .*last\.pt.*Lower lr"):
        fit(_config(data_root, tmp_path / "nan", epochs=3))
    ckpt = torch.load(tmp_path / "nan" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert len(load_run(tmp_path / "nan", finished=False).history) == 1


def test_two_processes_match_one_process_with_twice_the_batch(data_root, tmp_path):
    """torchrun + gloo: 2 processes x batch 2 take the same steps as 1 process x batch 4."""
    single = fit(_config(data_root, tmp_path / "single", batch_size=4, epochs=2))
    config = _config(data_root, tmp_path / "ddp", batch_size=2, epochs=2)
    config_path = tmp_path / "ddp.json"
    config.to_json(config_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root())}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "hw4lib", "train", "--config", str(config_path)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    double = load_run(tmp_path / "ddp", finished=False)
    assert double.metrics["world_size"] == 2 and single.metrics["world_size"] == 1
    a, b = _numeric(single.history), _numeric(double.history)
    assert list(a["step"]) == list(b["step"]) == [2, 4]  # 8 training pairs / global batch 4
    for column in a.columns:
        np.testing.assert_allclose(a[column], b[column], rtol=1e-5, atol=1e-6, err_msg=column)
    wa = torch.load(tmp_path / "single" / "last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)["model"]
    # Adam divides by sqrt(v): float rounding (all-reduce vs one big mean) moves a weight by far less than one
    # step (lr = 2e-3); a different split of the data would move weights by about a step.
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=5e-5, msg=k)


# ---------------------------------------------------------------------------------------------------------
# pieces


def test_global_batches_split_evenly_across_processes():
    one = GlobalOrderBatches(10, batch_size=4, steps=2, world=1, rank=0, seed=5)
    two = [GlobalOrderBatches(10, batch_size=2, steps=2, world=2, rank=r, seed=5) for r in (0, 1)]
    for epoch in (1, 2):
        for s in (one, *two):
            s.set_epoch(epoch)
        big = list(one)
        halves = [list(s) for s in two]
        assert [b0 + b1 for b0, b1 in zip(*halves, strict=True)] == big
        assert all(e == epoch for batch in big for e, _ in batch)
    epoch2 = list(one)
    one.set_epoch(1)
    assert list(one) != epoch2  # each epoch has its own order
    tiny = GlobalOrderBatches(3, batch_size=4, steps=1, world=1, rank=0, seed=0)
    assert sorted({i for _, i in next(iter(tiny))}) == [0, 1, 2]  # wraps around a set smaller than a batch


def test_identity_init_starts_as_the_identity_map():
    x = torch.rand(2, 3, 20, 28)
    model = train.initial_model(TrainConfig(preset="tiny", model_overrides=MICRO, identity_init=True))
    with torch.no_grad():
        assert torch.equal(model(x), x)
        other = train.initial_model(TrainConfig(preset="tiny", model_overrides=MICRO))
        assert (other(x) - x).abs().max() > 1e-3


def test_warmup_cosine_schedule():
    f = WarmupCosine(warmup=4, total=14, min_ratio=0.01)
    assert [f(k) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == pytest.approx(0.01 + 0.99 * 0.5)  # half way through the cosine
    assert f(14) == pytest.approx(0.01) and f(100) == pytest.approx(0.01)
    assert all(f(k) >= f(k + 1) for k in range(3, 20))


def test_the_plan_is_logged_and_written_before_the_first_step(data_root, tmp_path):
    result = fit(_config(data_root, tmp_path / "p", epochs=2))
    log = (tmp_path / "p" / "log.txt").read_text().splitlines()
    first_epoch = next(i for i, line in enumerate(log) if line.startswith("epoch 1/2"))
    before = log[:first_epoch]
    assert any(line.startswith("plan: 2 epochs x 4 steps of 2 crops of 16 px = 8 steps") for line in before)
    assert any(line.startswith("estimate: ") for line in before)
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert plan == result.plan and plan["sized_by"] == "epochs" and plan["total_steps"] == 8
    assert plan["step_s"] > 0 and plan["estimate_s"] > plan["setup_s"] > 0
    m = result.metrics
    assert (m["steps"], m["steps_planned"], m["images_seen"], m["epochs_planned"]) == (8, 8, 16, 2)


def test_the_probe_leaves_no_trace_in_the_weights(data_root, tmp_path, ema_run, monkeypatch):
    monkeypatch.setattr(train, "PROBE_STEPS", 9)  # more throwaway steps: the same run, bit for bit
    again = fit(_config(data_root, tmp_path / "a", ema=0.9, grad_clip=0.5))
    assert _numeric(again.history).equals(_numeric(ema_run.history))


def test_a_budget_run_plans_its_steps_and_resumes_within_the_same_plan(data_root, tmp_path):
    config = _config(data_root, tmp_path / "b", time_budget="6s", min_lr=1e-5, warmup_epochs=0.5)

    def stop_after_first_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, on_epoch_end=stop_after_first_epoch)
    plan = json.loads((tmp_path / "b" / "plan.json").read_text())
    assert plan["sized_by"] == "time_budget" and plan["budget_s"] == 6.0
    assert plan["horizon_steps"] == plan["total_steps"] == plan["epochs"] * plan["steps_per_epoch"]
    assert plan["warmup_steps"] == round(0.5 / config.epochs * plan["total_steps"])  # the recipe's share
    resumed = fit(config, resume=True)
    assert resumed.plan == plan  # the same plan, not a new one from the time that was left
    m = resumed.metrics
    assert m["complete"] and m["steps"] == m["steps_planned"] == plan["total_steps"]
    assert m["sized_by"] == "time_budget" and m["time_budget_s"] == 6.0
    last = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(config.min_lr, rel=1e-9)  # cosine done


def test_a_cpu_run_estimated_at_hours_is_refused_before_it_starts(data_root, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "refusal", lambda config, plan, device: planning.refusal(
        config, dataclasses.replace(plan, step_s=3600.0), device))  # as if every step took an hour
    with pytest.raises(planning.LongRunRefused) as info:
        fit(_config(data_root, tmp_path / "long", epochs=2))
    message = str(info.value)
    assert "estimated at" in message and "on this CPU" in message
    for option in ("papermill notebooks/train.ipynb", "time_budget 45m", "recipe cpu", "allow_long_cpu"):
        assert option in message, option
    assert not (tmp_path / "long").exists()  # a refused run writes nothing
    run = fit(_config(data_root, tmp_path / "long", epochs=1, allow_long_cpu=True))
    assert run.metrics["complete"]


def test_progress_bars_follow_where_the_run_is_shown(monkeypatch):
    assert train._progress_kind(False) is None
    assert train._progress_kind(True) == "text"  # asked for, outside a notebook
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert train._progress_kind(None) is None  # a log file or an executed notebook
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert train._progress_kind(None) == "text"  # a terminal
    assert train._progress_kind(True) == "text"


def test_a_split_file_decides_the_validation_side(data_root, tmp_path):
    import shutil

    root = tmp_path / "scenes"
    shutil.copytree(data_root, root)
    pairs = find_pairs(root)
    val = {"rain-2", "snow-2"}  # scene 2 with both of its degradations
    (root / "split.csv").write_text(
        "name,split\n" + "".join(f"{p.name},{'val' if p.name in val else 'train'}\n" for p in pairs)
    )
    train_pairs, val_pairs, scored, _ = _config(root, tmp_path / "r").split()
    assert {p.name for p in val_pairs} == val and len(train_pairs) == len(pairs) - 2
    assert {p.name for p in scored} == val


def test_tensorboard_logs_every_epoch_and_is_one_line_without_the_package(data_root, tmp_path, monkeypatch):
    import types

    with pytest.raises(ValueError, match=r"tensorboard=True needs the tensorboard package: pip install"):
        fit(_config(data_root, tmp_path / "none", epochs=1, tensorboard=True))
    assert not (tmp_path / "none").exists()  # refused before anything was written

    logged, folders = [], []

    class Writer:  # stands in for torch.utils.tensorboard.SummaryWriter
        def __init__(self, log_dir, purge_step=None):
            folders.append((log_dir, purge_step))

        def add_scalar(self, tag, value, step):
            logged.append((tag, step))

        def flush(self):
            pass

        def close(self):
            logged.append(("closed", None))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    real_find = train.importlib.util.find_spec
    monkeypatch.setattr(train.importlib.util, "find_spec", lambda name: object() if name == "tensorboard"
                        else real_find(name))  # fmt: skip
    run = fit(_config(data_root, tmp_path / "tb", epochs=2, tensorboard=True))
    steps = list(run.history["step"])
    assert folders == [(str(tmp_path / "tb" / "tb"), None)]
    assert [s for tag, s in logged if tag == "train/loss"] == steps  # one point per epoch, at its step
    assert {tag for tag, _ in logged} >= {"val/psnr", "val/psnr_rain", "val/psnr_snow", "lr", "closed"}
