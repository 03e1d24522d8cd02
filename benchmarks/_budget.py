"""Shared by the real-data benchmarks: train with ``hw4lib.train.fit`` for a wall-clock budget, then score.

The budget is the engine's own ``time_budget``: ``fit`` measures its speed on the first (throwaway) steps and
plans the steps so that its warm-up + cosine schedule ends when the budget does (``hw4lib.planning``). The
budget covers ``fit`` (data loading, the probe, checkpoints, its own validation), not the evaluation on real
pairs. ``max_steps`` instead trains a fixed number of steps (tests, reproducible runs).
"""

from __future__ import annotations

import dataclasses
import json
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
from hw4lib.data import Pair
from hw4lib.paths import output, relative, write_json_atomic
from hw4lib.planning import BUDGET_EPOCHS
from hw4lib.runs import CONFIG, load_model
from hw4lib.scoring import ScoreResult, samples_from_pairs, score_model
from hw4lib.train import fit

CONFIG_KEYS = ("recipe", "preset", "loss", "lr", "min_lr", "batch_size", "patch_size", "patches_per_image",
               "augment", "warmup_epochs", "ema", "grad_clip", "identity_init", "weight_decay", "seed")
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


@dataclass
class BudgetRun:
    run_dir: Path
    model: nn.Module
    budget_s: float
    train_wall_s: float  # fit() from start to end (its own wall clock)
    steps: int
    epochs: int
    planned_steps: int
    planned_epochs: int
    steps_per_epoch: int
    schedule_complete: bool
    probe_s_per_step: float | None  # the engine's measured seconds per step (its plan)
    estimated_s: float | None  # the plan's estimate of fit's wall time
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


def train_for_budget(config: TrainConfig, budget_s: float, max_steps: int | None = None) -> BudgetRun:
    """Train ``config`` within ``budget_s`` seconds of wall time (``max_steps``: exactly that many steps, in
    up to ``BUDGET_EPOCHS`` epochs, instead). Returns the model of the last epoch (``last.pt``)."""
    if max_steps is None:
        config = dataclasses.replace(config, time_budget=f"{budget_s}s", val_every=1)
    else:
        epochs = min(BUDGET_EPOCHS, max(1, max_steps))
        config = dataclasses.replace(
            config, time_budget=None, epochs=epochs, max_train_steps=max(1, max_steps // epochs),
            val_every=epochs,
        )
    result = fit(config, overwrite=True)
    m, history = result.metrics, result.history
    return BudgetRun(
        run_dir=result.path, model=load_model(result.path, "last"), budget_s=budget_s,
        train_wall_s=float(m["wall_seconds"]), steps=int(m["steps"]), epochs=int(m["epochs_done"]),
        planned_steps=int(m["steps_planned"]), planned_epochs=int(m["epochs_planned"]),
        steps_per_epoch=int(result.plan["steps_per_epoch"]), schedule_complete=bool(m["complete"]),
        probe_s_per_step=result.plan["step_s"], estimated_s=m["estimated_seconds"],
        n_train=len(config.split()[0]), peak_mem_mb=peak_mem_mb(),
        loop_steps_per_s=float(history["images_per_s"].median()) / config.batch_size,
    )


def write_result(report: dict[str, Any], out: str | os.PathLike[str] | None) -> None:
    """Print ``report`` as the last line (JSON, for scripts) and, when ``out`` is given, write it there
    atomically (relative paths under the output root, as every project file)."""
    if out:
        path = output(out)
        write_json_atomic(report, path)
        print(f"written: {relative(path)}")
    print(json.dumps(report))


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
