"""How well a run keeps to its plan: a time-budget run against its budget, an epoch run against its estimate.

    python -m benchmarks.bench_plan                      # 60 s budget + a 6-epoch demo run (about 3 min)
    python -m benchmarks.bench_plan --budget 120s --epochs 4 --out report/engine/plan_accuracy.json

Both runs are the ``demo`` recipe (tiny model) on the demo set, as ``fit`` runs it: the probe before the first
step, validations, checkpoints and the final samples all count. For the budget run: its wall time (measured
around ``fit``) against the budget, and whether the warm-up + cosine schedule completed (every planned step
taken, the last learning rate at the schedule's end). For the epoch run: the plan's estimate (printed before
the first step) against the wall time. Writes a JSON file (default ``runs/engine-plan.json``).

Not a test: timings depend on the machine and on what else runs on it (``machine`` in the JSON).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._budget import machine, set_threads, write_result
from hw4lib import paths
from hw4lib.config import make_config, parse_duration
from hw4lib.loop import lr_curve
from hw4lib.planning import Plan
from hw4lib.synth import ensure_demo_dataset
from hw4lib.train import fit


def _timed_fit(config: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fit(config, overwrite=True)
    return result, time.perf_counter() - start


def budget_run(data: Path, budget: str, run_dir: Path) -> dict[str, Any]:
    """A ``time_budget`` run: wall time against the budget, and the schedule's end."""
    config = make_config("demo", data_dir=str(data), time_budget=budget, run_dir=str(run_dir), progress=False)
    result, wall = _timed_fit(config)
    m, plan = result.metrics, result.plan
    budget_s = parse_duration(budget)
    lr_planned = float(lr_curve(config, Plan.from_dict(plan))[1][-1])
    return {
        "budget_s": budget_s,
        "wall_s": wall,
        "wall_over_budget": wall / budget_s,
        "steps_planned": m["steps_planned"],
        "steps_done": m["steps"],
        "epochs_planned": m["epochs_planned"],
        "epochs_done": m["epochs_done"],
        "schedule_complete": m["steps"] == plan["horizon_steps"],
        "last_lr": float(result.history["lr"].iloc[-1]),
        "last_lr_planned": lr_planned,
        "min_lr": config.min_lr,
        "peak_lr": config.lr,
        "probe_step_s": plan["step_s"],
        "measured_step_s": _measured_step_s(result),
        "gain_db": m["gain_db"],
    }


def epoch_run(data: Path, epochs: int, run_dir: Path) -> dict[str, Any]:
    """An epoch-sized run: the plan's estimate against its wall time."""
    config = make_config("demo", data_dir=str(data), epochs=epochs, run_dir=str(run_dir), progress=False)
    result, wall = _timed_fit(config)
    plan = result.plan
    return {
        "epochs": epochs,
        "steps": result.metrics["steps"],
        "estimate_s": plan["estimate_s"],
        "wall_s": wall,
        "estimate_error": plan["estimate_s"] / wall - 1.0,
        "probe_step_s": plan["step_s"],
        "measured_step_s": _measured_step_s(result),
        "gain_db": result.metrics["gain_db"],
    }


def _measured_step_s(result: Any) -> float:
    """Median seconds per training step over the run's epochs (its images/s at the plan's global batch)."""
    return float(result.plan["global_batch"] / result.history["images_per_s"].median())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="60s", help="time budget of the budget run (default 60s)")
    p.add_argument("--epochs", type=int, default=6, help="epochs of the estimate run (default 6, ~3 min)")
    p.add_argument("--data", default=None, help="dataset (default data/demo, generated if missing)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default="runs/engine-plan.json", help="JSON file (default runs/engine-plan.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_threads(args.threads)
    data = ensure_demo_dataset(args.data or None)
    report: dict[str, Any] = {"machine": machine(), "recipe": "demo", "data": paths.relative(data)}
    with tempfile.TemporaryDirectory() as tmp:
        report["budget"] = b = budget_run(data, args.budget, Path(tmp) / "budget")
        print(
            f"budget run: {b['wall_s']:.1f} s for a {b['budget_s']:.0f} s budget "
            f"({b['wall_over_budget'] - 1:+.1%}); {b['steps_done']} of {b['steps_planned']} planned steps, "
            f"schedule complete: {b['schedule_complete']}, last lr {b['last_lr']:.2e} "
            f"(min_lr {b['min_lr']:.0e})"
        )
        report["estimate"] = e = epoch_run(data, args.epochs, Path(tmp) / "epochs")
        print(
            f"epoch run: estimated {e['estimate_s']:.1f} s before the first step, took {e['wall_s']:.1f} s "
            f"({e['estimate_error']:+.1%}); probe {e['probe_step_s']:.3f} s/step, "
            f"measured {e['measured_step_s']:.3f} s/step"
        )
    write_result(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
