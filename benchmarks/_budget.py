"""Shared by the real-data benchmarks: train with ``hw4lib.train.fit`` for a wall-clock budget, then score.

``fit`` counts epochs, not seconds, so :func:`train_for_budget` turns seconds into steps: it times a few
training steps of the same model, batch and patch on random tensors (the probe), plans ``epochs`` x
``max_train_steps`` so the cosine schedule ends near the budget, re-plans once from the speed of the first
epochs (a resumed ``fit`` with the new number of epochs), and stops ``fit`` at the first epoch end past the
deadline (the schedule is then cut short; ``schedule_complete`` says so). The budget covers the probe and
``fit`` (data loading, checkpoints, its own end-of-run validation), not the evaluation on real pairs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from hw4lib.config import TrainConfig
from hw4lib.data import Pair, find_pairs, split_pairs
from hw4lib.losses import build_loss
from hw4lib.model import build_model
from hw4lib.paths import relative, resolve
from hw4lib.runs import CONFIG, load_model, load_run
from hw4lib.scoring import ScoreResult, samples_from_pairs, score_model
from hw4lib.train import fit

EPOCHS_TARGET = 10  # epochs per budget: each ends with a checkpoint, few enough to keep that overhead small
SAFETY = 0.9  # share of the remaining budget planned as steps (the probe is optimistic: no data, no saves)
CONFIG_KEYS = ("recipe", "preset", "loss", "lr", "min_lr", "batch_size", "patch_size", "patches_per_image",
               "augment", "warmup_epochs", "ema", "grad_clip", "identity_init", "weight_decay", "seed")
CALIBRATE = 0.2  # share of the first plan's epochs that measures the real speed before the final plan


class _BudgetReached(Exception):
    pass


def peak_mem_mb() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def set_threads(n: int | None) -> None:
    """Use ``n`` intra-op threads (None: torch's default, one per core).

    On cores shared with other busy processes, fewer threads can be much faster: an OpenMP barrier waits for
    its slowest thread, and a thread that lost its core stalls every operator (measured here: a tiny-model
    training step took 7 s with 1 thread and 39 s with 2 while the load average was about 10 on 2 cores).
    """
    if n is not None:
        if n < 1:
            raise ValueError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)


def machine() -> dict[str, Any]:
    """Where the numbers come from: other processes on the same cores slow every figure down."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "device": f"cpu ({torch.get_num_threads()} threads)",
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_start": round(load, 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def probe_seconds_per_step(config: TrainConfig, steps: int = 2) -> float:
    """Seconds per optimizer step of ``config``'s model, loss, batch and patch, on random tensors."""
    torch.manual_seed(config.seed)
    model = build_model(config.preset, **config.model_kwargs()).train()
    criterion = build_loss(config.loss, alpha=config.alpha)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    size = config.patch_size or 128
    x = torch.rand(config.batch_size, 3, size, size)

    def step() -> None:
        loss = criterion(model(x), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, kernel selection
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def plan(total_steps: int, natural_per_epoch: int, epochs_target: int = EPOCHS_TARGET) -> tuple[int, int]:
    """(epochs, steps per epoch) doing about ``total_steps`` steps in about ``epochs_target`` epochs."""
    total_steps = max(1, total_steps)
    per_epoch = min(max(1, natural_per_epoch), max(1, math.ceil(total_steps / epochs_target)))
    return max(1, round(total_steps / per_epoch)), per_epoch


@dataclass
class BudgetRun:
    run_dir: Path
    model: nn.Module
    budget_s: float
    train_wall_s: float  # probe + fit, until the last epoch ended
    steps: int
    epochs: int
    planned_steps: int
    planned_epochs: int  # the final plan (after calibration)
    first_plan_epochs: int  # the plan from the probe
    steps_per_epoch: int
    schedule_complete: bool
    probe_s_per_step: float | None
    n_train: int
    peak_mem_mb: float  # at the end of training (before evaluation)
    loop_steps_per_s: float  # inside fit's training loop only (median over epochs): no startup, saves, probe

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_wall_s if self.train_wall_s > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        d["run_dir"] = relative(self.run_dir)
        d["steps_per_s"] = self.steps_per_s
        config = json.loads((self.run_dir / CONFIG).read_text(encoding="utf-8"))
        d["config"] = {k: config.get(k) for k in CONFIG_KEYS}  # what the recipe actually was
        return d


def replan(done_epochs: int, epoch_seconds: float, remaining_s: float) -> int:
    """Total epochs: ``done_epochs`` plus as many ``epoch_seconds`` epochs as fit in ``remaining_s``."""
    return done_epochs + max(0, int(remaining_s / max(epoch_seconds, 1e-6)))


def train_for_budget(config: TrainConfig, budget_s: float, max_steps: int | None = None) -> BudgetRun:
    """Train ``config`` for about ``budget_s`` seconds of wall time (``max_steps``: plan that many instead).

    With the probe, the first ``CALIBRATE`` share of the planned epochs measures the real speed (data, saves
    and whatever else runs on the machine included); ``fit`` is then resumed with the number of epochs that
    fills the rest of the budget, so the cosine schedule still ends near the deadline when the probe was off.
    Returns the model of the last epoch (``last.pt``: with a cut-short schedule there may be no ``best.pt``).
    """
    start = time.perf_counter()
    deadline = start + budget_s
    pairs = find_pairs(resolve(config.data_dir))
    train_pairs, _ = split_pairs(pairs, val_fraction=config.val_fraction, seed=config.seed)
    natural = max(1, len(train_pairs) * config.patches_per_image // config.batch_size)
    probe = None
    if max_steps is None:
        probe = probe_seconds_per_step(config)
        total = int(SAFETY * (deadline - time.perf_counter()) / probe)
    else:
        total = max_steps
    epochs, per_epoch = plan(total, natural)
    planned_first = epochs
    calibrate_at = max(1, round(CALIBRATE * epochs)) if probe is not None and epochs >= 3 else None
    probe_text = f"probe {probe:.2f} s/step" if probe is not None else f"--max-steps {max_steps}"
    print(f"budget {budget_s:.0f} s, {probe_text} -> {epochs} epochs x {per_epoch} steps "
          f"(batch {config.batch_size}, patch {config.patch_size}) on {len(train_pairs)} pairs", flush=True)

    def run(epochs: int, stop_after: int | None, resume: bool) -> bool:
        """fit for ``epochs``; True when it ran to the end, False when stopped (calibration or deadline)."""
        cfg = dataclasses.replace(config, epochs=epochs, max_train_steps=per_epoch, val_every=epochs)

        def guard(row: dict[str, Any]) -> None:
            if row["epoch"] < epochs and (row["epoch"] == stop_after or time.perf_counter() > deadline):
                raise _BudgetReached

        try:
            fit(cfg, resume=resume, overwrite=not resume, on_epoch_end=guard)
        except _BudgetReached:
            return False
        return True

    run_dir = config.resolved_run_dir()
    complete = run(epochs, calibrate_at, resume=False)
    if not complete and calibrate_at is not None:
        history = load_run(run_dir, finished=False).history
        done = int(history["epoch"].iloc[-1])
        if done == calibrate_at and time.perf_counter() < deadline:
            # a resume reloads the data and re-checks the baseline: count it like one more epoch
            epoch_s = float(history["seconds"].median()) * 1.05
            epochs = max(done + 1, replan(done, epoch_s, deadline - time.perf_counter() - epoch_s))
            print(f"calibrated: {epoch_s:.1f} s per epoch of {per_epoch} steps -> {epochs} epochs in all",
                  flush=True)
            complete = run(epochs, None, resume=True)
    wall = time.perf_counter() - start
    history = load_run(run_dir, finished=False).history
    last = history.iloc[-1]
    loop = float(history["images_per_s"].median()) / config.batch_size
    if not complete:
        print(f"budget reached after epoch {int(last['epoch'])}/{epochs}: the schedule was cut short",
              flush=True)
    return BudgetRun(
        run_dir=run_dir, model=load_model(run_dir, "last"),
        budget_s=budget_s, train_wall_s=wall, steps=int(last["step"]), epochs=int(last["epoch"]),
        planned_steps=epochs * per_epoch, planned_epochs=epochs, first_plan_epochs=planned_first,
        steps_per_epoch=per_epoch, schedule_complete=complete, probe_s_per_step=probe,
        n_train=len(train_pairs), peak_mem_mb=peak_mem_mb(), loop_steps_per_s=loop,
    )


def spread(items: Sequence[Any], n: int | None) -> list[Any]:
    """At most ``n`` items, evenly spaced (all of them when ``n`` is None or large enough)."""
    if n is None or n >= len(items):
        return list(items)
    if n <= 0:
        return []
    return [items[round(i * (len(items) - 1) / max(1, n - 1))] for i in range(n)] if n > 1 else [items[0]]


def score_real(model: nn.Module, pairs: Sequence[Pair], tta_images: int | None = None) -> dict[str, Any]:
    """PSNR/SSIM (uint8-rounded, like a submission) of the identity, the model and the model with TTA.

    TTA costs 8 forwards per image: ``tta_images`` limits it to that many evenly spaced pairs; the plain model
    is then also reported on the same subset (``psnr_on_tta_subset``) so the TTA gain is a paired difference.
    ``psnr_tta_hflip``: the average with the left-right mirror only (2 forwards). Rain streaks have a
    direction: the 90-degree rotations of the 8-way TTA show a model trained without rotations horizontal
    streaks it has never seen, while a mirror keeps them near vertical.
    """
    def evaluate(fn: Any, chosen: Sequence[Pair], tta: Any = False) -> ScoreResult:
        return ScoreResult(score_model(fn, samples_from_pairs(chosen), tta=tta, quantize=True))

    t0 = time.perf_counter()
    identity = evaluate(lambda x: x, pairs)
    plain = evaluate(model, pairs)
    t1 = time.perf_counter()
    subset = spread(pairs, tta_images)
    tta = evaluate(model, subset, tta=True) if subset else None
    t2 = time.perf_counter()
    hflip = evaluate(model, subset, tta="hflip") if subset else None
    names = {p.name for p in subset}
    on_subset = plain.per_image[plain.per_image["name"].isin(names)]
    ident_subset = identity.per_image[identity.per_image["name"].isin(names)]
    return {
        "n": len(pairs),
        "input_psnr": identity.psnr, "input_ssim": identity.ssim,
        "psnr": plain.psnr, "ssim": plain.ssim,
        "gain_db": plain.psnr - identity.psnr,
        "tta_images": len(subset),
        "psnr_tta": tta.psnr if tta else float("nan"), "ssim_tta": tta.ssim if tta else float("nan"),
        "psnr_tta_hflip": hflip.psnr if hflip else float("nan"),
        "ssim_tta_hflip": hflip.ssim if hflip else float("nan"),
        "psnr_on_tta_subset": float(on_subset["psnr"].mean()) if subset else float("nan"),
        "input_psnr_on_tta_subset": float(ident_subset["psnr"].mean()) if subset else float("nan"),
        "eval_s": round(t1 - t0, 1), "eval_tta_s": round(t2 - t1, 1),
    }


def table(rows: Sequence[tuple[str, float, float, int]]) -> str:
    """A small markdown table: method, PSNR, SSIM, images."""
    lines = ["| method | PSNR (dB) | SSIM | images |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {p:.2f} | {s:.4f} | {n} |" for name, p, s, n in rows]
    return "\n".join(lines)
