"""The GPU check of the training engine, as one script (``scripts/gpu_check.sh`` runs it on a lent GPU).

    bash scripts/gpu_check.sh                                  # on a bare CUDA machine: about 7-8 minutes
    PY=.venv/bin/python DRY_RUN=1 bash scripts/gpu_check.sh    # every part on a CPU, tiny sizes: ~1 minute
    python3 -m benchmarks.gpu_check --out report/gpu           # the check alone (no hard time limit)

0. The demo data (``data/demo``) generated when missing (on a fresh clone it is: ``data/`` is not in git);
   timed, and counted against the deadline like every other part.
1. Throughput and peak memory of one train step of the preset (default: the full model at 128 px) for each
   batch size: eager, and with activation checkpointing (eager).
2. Mixed precision: the outputs of the bfloat16 (or float16) forward against a true float32 forward (TF32
   turned off for it: on Ampere and later, "float32" matmuls and convolutions otherwise run in TF32) on the
   same weights and input. Which dtype, and why (the card's compute capability), is recorded at the top.
3. FLOPs of a train step and an inference (counted on the ``meta`` device: no compute), and the eager steps'
   model FLOPs utilisation against a measured 8192^3 matrix product in the same precision.
4. ``fit``'s loop against the bare step, and the DataLoader's rate (0 and 4 workers): loading must outrun
   the step.
5. The ``strong`` recipe under a time budget (default 4 min) on the demo data: does the run end within its
   budget with its schedule completed, and does the model beat the input? Its small files (config, plan,
   metrics, history, log) are copied to ``<out>/budget-run/``.
6. Last, ``torch.compile`` for the first batch size, when ``--compile-reserve`` (120 s) is left.

Time: ``--deadline`` (default 480 s) counts from ``--started`` (the shell script's start; default: when
``main`` starts). A part starts only when the time it needs is left before the deadline, else it is recorded
as skipped; the budget run is shortened to fit (down to ``--min-budget``), and the compile part runs only
with ``--compile-reserve`` seconds left. A SIGTERM (e.g. ``timeout``'s) stops the check with the running part
recorded as stopped.

Writes, the moment each part ends: ``<out>/gpu_check.json`` (every figure so far, with the device, the
versions and each part's seconds), ``<out>/gpu_check.md`` (tables and sentences) and
``<out>/parts/<part>.json``. A part that fails (e.g. compile) is recorded with its error and the others still
run; the exit status is 1 when a part failed (a part skipped for time is not a failure).
Imports nothing beyond PyTorch, numpy, pandas, pillow, tqdm, einops, scipy, scikit-image and matplotlib (no
pytorch-msssim, papermill or Jupyter: a bare GPU machine has none; a test holds this).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import bench_train
from hw4lib import paths, runs
from hw4lib.config import make_config, parse_duration
from hw4lib.device import amp_dtype, autocast, precision_name, resolve_device
from hw4lib.model import build_model
from hw4lib.paths import write_json_atomic, write_text_atomic
from hw4lib.synth import ensure_demo_dataset
from hw4lib.train import fit

# Seconds a part needs at least to be worth starting (a full-model part on an H100 takes about this much);
# the budget run and the compile part have their own (--budget, --compile-reserve).
NEEDS_S = {"step": 20.0, "precision": 10.0, "flops": 10.0, "engine": 60.0}
BUDGET_SLACK = 1.1  # a budget run counts as within its budget up to 10 % past it
BUDGET_TAIL_S = 20.0  # after the budget: the run's last validation and samples, the summary


class Stopped(BaseException):
    """A SIGTERM arrived (the command's time limit): not an Exception, so no part's guard swallows it."""


class Clock:
    """Seconds since the check started (the shell script's start) and seconds left before the deadline."""

    def __init__(self, started: float, deadline_s: float | None) -> None:
        self.started = started  # time.time() of the start
        self.deadline_s = deadline_s

    def elapsed(self) -> float:
        return time.time() - self.started

    def left(self) -> float:
        return float("inf") if self.deadline_s is None else self.deadline_s - self.elapsed()


def _device_facts(device: torch.device) -> dict[str, Any]:
    """The card, its compute capability and memory, and the versions of what runs on it."""
    facts: dict[str, Any] = {
        "device": "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host_cpus": _cpus(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        major, minor = torch.cuda.get_device_capability(device)
        facts.update(
            device=torch.cuda.get_device_name(device),
            compute_capability=f"{major}.{minor}",
            memory_gib=props.total_memory / 2**30,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    facts["triton"] = None  # torch.compile's GPU code generator: a CPU build has none
    for dist in ("triton", "pytorch-triton"):
        with contextlib.suppress(PackageNotFoundError):
            facts["triton"] = version(dist)
            break
    return facts


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def mixed_precision_policy(device: torch.device) -> dict[str, Any]:
    """The autocast dtype ``hw4lib.device.amp_dtype`` picks on ``device``, and why."""
    dtype = amp_dtype(device, True)
    name = precision_name(dtype)
    if device.type != "cuda":
        return {
            "dtype": name,
            "compute_capability": None,
            "training_dtype": "fp32",
            "why": "CPU: training runs in float32; the precision part compares a bfloat16 autocast forward",
        }
    major, minor = torch.cuda.get_device_capability(device)
    capability = f"{major}.{minor}"
    if dtype == torch.bfloat16:
        why = f"compute capability {capability} >= 8.0: the card computes bfloat16 natively (no loss scaling)"
    elif (major, minor) >= (8, 0):
        why = (
            f"compute capability {capability} >= 8.0, but torch reports no native bfloat16: float16 with a "
            "GradScaler"
        )
    else:
        why = f"compute capability {capability} < 8.0: no native bfloat16, float16 with a GradScaler"
    return {"dtype": name, "compute_capability": capability, "training_dtype": name, "why": why}


def tf32_state() -> dict[str, Any]:
    """What float32 matmuls and cuDNN convolutions run in now (the switches the engine sets)."""
    return {
        "matmul_precision": torch.get_float32_matmul_precision(),  # "high": TF32 on Ampere and later
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
    }


@contextlib.contextmanager
def true_float32() -> Iterator[None]:
    """TF32 off for float32 matrix products and cuDNN convolutions inside the block; restored after (also on
    an error). The same switches ``hw4lib.train`` sets (``torch.set_float32_matmul_precision`` and
    ``torch.backends.cudnn.allow_tf32``): setting ``torch.backends.cuda.matmul.allow_tf32`` after
    ``set_float32_matmul_precision`` mixes torch's two TF32 APIs, and torch >= 2.9 then refuses to read the
    matmul precision (RuntimeError), e.g. inside ``torch.compile``."""
    matmul, conv = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = conv


def _release_memory(device: torch.device) -> None:
    """Give the previous part's cached blocks back to the GPU: a run's memory check (``fit`` refuses a run
    that would not fit in what ``torch.cuda.mem_get_info`` calls free) must not count them as taken."""
    if device.type == "cuda":
        gc.collect()  # models of the previous part caught in reference cycles
        torch.cuda.empty_cache()


def _guard(results: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    """results[key] = fn(), or the error it raised (the check goes on)."""
    try:
        results[key] = fn()
    except Exception as err:  # noqa: BLE001 -- one failing part must not hide the others' figures
        results[key] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=3)}
        print(f"{key}: FAILED {type(err).__name__}: {err}", file=sys.stderr, flush=True)


def data_figures() -> dict[str, Any]:
    """The demo data: generated when missing (a fresh clone has no data/), and how long that took."""
    demo = paths.data_dir("demo")
    existed = demo.is_dir() and any(demo.iterdir())
    started = time.perf_counter()
    root = ensure_demo_dataset()
    seconds = time.perf_counter() - started
    train = root / "train" / "degraded"
    return {
        "path": paths.relative(root),
        "generated": not existed,
        "seconds": seconds,
        "train_pairs": sum(1 for _ in train.iterdir()) if train.is_dir() else 0,
    }


def step_figures(args: argparse.Namespace, device: torch.device, batch: int, **mode: Any) -> dict[str, Any]:
    """Seconds per step, images/s and peak memory of one configuration of the bare train step."""
    ns = bench_train.build_parser().parse_args([
        "--preset", args.preset, "--patch", str(args.patch), "--batch", str(batch),
        "--steps", str(args.steps), "--warmup", "2", "--device", str(device),
    ])  # fmt: skip
    ns.compile = mode.get("compile", False)
    ns.grad_checkpointing = mode.get("checkpointing", False)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    result = bench_train.bench_step(ns, device)
    out = {k: result[k] for k in ("seconds_per_step", "images_per_s", "peak_memory_mb", "precision")}
    out["wall_s"] = time.perf_counter() - started  # model build, warm-up (and compilation) included
    return out


def precision_figures(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Mixed-precision forward against a true float32 one (TF32 off): relative error of the output and of
    the correction (output - input)."""
    torch.manual_seed(0)
    model = build_model(args.preset).to(device).eval()
    x = torch.rand(2, 3, args.patch, args.patch, device=device)
    dtype = amp_dtype(device, True)
    with torch.no_grad():
        with true_float32():
            reference_state = tf32_state()
            ref = model(x).float()
        mixed_state = tf32_state()
        with autocast(device, dtype):
            mixed = model(x).float()
    correction = (ref - x).abs().mean()
    off = not reference_state["cudnn_allow_tf32"] and reference_state["matmul_precision"] == "highest"
    return {
        "dtype": precision_name(dtype),
        "reference": "float32 (TF32 off for matmuls and cuDNN convolutions)" if off else "TF32",
        "reference_tf32": reference_state,
        "mixed_tf32": mixed_state,  # the training state: float32 leftovers of autocast may use TF32
        "max_abs_diff": float((mixed - ref).abs().max()),
        "mean_abs_diff": float((mixed - ref).abs().mean()),
        "mean_abs_diff_over_mean_correction": float((mixed - ref).abs().mean() / correction),
    }


def forward_flops(preset: str, batch: int, side: int) -> int:
    """FLOPs of one forward of ``preset`` on a (batch, 3, side, side) input, counted on the ``meta`` device
    (shapes only: nothing computed; the same count as ``bench_train.forward_flops``' CPU forward)."""
    with torch.device("meta"):
        model = build_model(preset).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(batch, 3, side, side, device="meta"))
    return int(counter.get_total_flops())


def flops_figures(args: argparse.Namespace, device: torch.device, steps: dict[str, Any]) -> dict[str, Any]:
    """FLOPs of one train step and one inference, and the eager steps' share of the measured matmul rate."""
    forward_one = forward_flops(args.preset, 1, args.patch)  # linear in the batch
    infer = forward_flops(args.preset, 1, 256)
    dtype = amp_dtype(device, device.type == "cuda")  # what the timed steps ran in
    peak = bench_train.measured_peak_flops(device, dtype, n=8192 if device.type == "cuda" else 1024)
    out: dict[str, Any] = {
        "forward_gflop_per_image": forward_one / 1e9,
        "train_step_gflop_per_image": 3 * forward_one / 1e9,
        "inference_gflop_256px": infer / 1e9,
        "measured_matmul_tflop_per_s": peak / 1e12,
        "matmul_dtype": str(dtype or torch.float32).replace("torch.", ""),
    }
    for key, r in steps.items():
        if "seconds_per_step" in r:  # model FLOPs (3 x forward), a checkpointed step's recompute not counted
            achieved = 3 * forward_one * int(key.rsplit("-b", 1)[1]) / r["seconds_per_step"]
            out[f"{key}_achieved_tflop_per_s"] = achieved / 1e12
            out[f"{key}_utilisation"] = achieved / peak
    return out


def engine_figures(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """fit()'s loop against the bare step (eager, first batch size), and the loader's rate."""
    ns = bench_train.build_parser().parse_args([
        "--preset", args.preset, "--patch", str(args.patch), "--batch", str(args.batches[0]),
        "--steps", str(args.steps), "--warmup", "2", "--device", str(device),
        "--repeats", str(args.engine_repeats), "--data", str(ensure_demo_dataset()),
        "--loader-batches", str(args.loader_batches),
    ])  # fmt: skip
    engine = bench_train.bench_engine(ns, device)
    loader = [bench_train.bench_loader(ns, w) for w in args.loader_workers]
    return {**engine, "loader": loader}


def budget_seconds(args: argparse.Namespace, clock: Clock) -> tuple[float | None, str | None]:
    """The budget the run gets: ``--budget``, shortened when the deadline leaves less (None: too little for
    ``--min-budget``), and a note when it was shortened or skipped."""
    asked = parse_duration(args.budget)
    left = clock.left()
    fits = (left - BUDGET_TAIL_S) / BUDGET_SLACK
    if fits >= asked:
        return asked, None
    if fits < args.min_budget:
        return None, f"skipped: {left:.0f} s left before the deadline, under a {args.min_budget:.0f} s budget"
    return float(int(fits)), f"shortened from {asked:.0f} s to {int(fits)} s to end before the deadline"


def budget_figures(
    args: argparse.Namespace,
    device: torch.device,
    budget_s: float | None = None,
    out: Path | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """The strong recipe under a time budget (``budget_s``, default ``--budget``) on the demo data; its
    small files copied to ``out/budget-run``; ``note``: why the budget is not ``--budget``."""
    data = ensure_demo_dataset()
    budget = parse_duration(args.budget) if budget_s is None else budget_s
    config = make_config(
        "strong",
        data_dir=str(data),
        run_dir=str(paths.output(args.run_dir)),
        time_budget=f"{budget:g}s",
        device=str(device),
        preset=args.preset,
        patch_size=min(args.patch, 128),
        progress=False,
        val_max_images=args.val_images,
        save_samples=2,
    )
    started = time.perf_counter()
    result = fit(config, overwrite=True)
    wall = time.perf_counter() - started
    m = result.metrics
    copied = []
    if out is not None:
        for name in (*runs.SMALL_FILES, runs.LOG):
            source = config.resolved_run_dir() / name
            if source.is_file():
                (out / "budget-run").mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, out / "budget-run" / name)
                copied.append(name)
    return {
        "budget_s": budget, "budget_asked_s": parse_duration(args.budget), "wall_s": wall,
        "within_budget": wall <= budget * BUDGET_SLACK,
        "schedule_complete": bool(m["complete"]) and m["steps"] == m["steps_planned"],
        "steps": m["steps"], "images_seen": m["images_seen"], "plan_estimate_s": m["estimated_seconds"],
        "best_val_psnr": m["best_val_psnr"], "input_psnr": m["input_psnr"], "gain_db": m["gain_db"],
        "beats_input": m["gain_db"] > 0, "images_per_s": m["images_per_s"], "precision": m["precision"],
        "run_files": copied, **({"note": note} if note else {}),
    }  # fmt: skip


def _markdown(results: dict[str, Any]) -> str:
    mp = results.get("mixed_precision", {})
    cap = f", compute capability {mp['compute_capability']}" if mp.get("compute_capability") else ""
    lines = [
        f"# GPU check on {results['device']}",
        "",
        f"torch {results['torch']}{cap}; preset {results['preset']}, {results['patch']} px crops; "
        f"{results.get('wall_s', 0):.0f} s in all (deadline {results.get('deadline_s') or 0:.0f} s).",
        "",
    ]
    if mp:
        lines += [f"Mixed precision: {mp['dtype']} ({mp['why']}).", ""]
    d = results.get("data", {})
    if d and "path" in d:
        made = f"generated in {d['seconds']:.1f} s" if d["generated"] else "already there"
        lines += [f"Data: {d['path']} ({d['train_pairs']} training pairs), {made}.", ""]
    lines += [
        "| configuration | batch | ms/step | images/s | peak MiB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, r in results["steps"].items():
        mode, batch = key.rsplit("-b", 1)
        if "seconds_per_step" in r:
            lines.append(
                f"| {mode} ({r['precision']}) | {batch} | {r['seconds_per_step'] * 1000:.1f} | "
                f"{r['images_per_s']:.1f} | {r['peak_memory_mb']:.0f} |"
            )
        else:
            lines.append(f"| {mode} | {batch} | {_not_run(r)[:80]} | | |")
    p = results.get("precision", {})
    if p and "max_abs_diff" in p:
        lines += [
            "",
            f"Mixed precision ({p['dtype']}) vs {p['reference']}: max |diff| {p['max_abs_diff']:.2e}, mean "
            f"{p['mean_abs_diff']:.2e} ({p['mean_abs_diff_over_mean_correction']:.2%} of the mean "
            "correction).",
        ]
    f = results.get("flops", {})
    if f and "train_step_gflop_per_image" in f:
        shares = ", ".join(
            f"{k.removesuffix('_utilisation')} {v:.1%}" for k, v in f.items() if k.endswith("_utilisation")
        )
        lines += [
            "",
            f"FLOPs: train step {f['train_step_gflop_per_image']:.1f} GFLOP per image (3 x counted forward), "
            f"inference {f['inference_gflop_256px']:.1f} GFLOP at 256 px; measured {f['matmul_dtype']} "
            f"matmul {f['measured_matmul_tflop_per_s']:.3g} TFLOP/s; model FLOPs utilisation: {shares}.",
        ]
    e = results.get("engine", {})
    if e and "engine_seconds_per_step" in e:
        loaders = ", ".join(f"{r['workers']} workers {r['images_per_s']:.0f} img/s" for r in e["loader"])
        lines += [
            "",
            f"Engine: fit's loop {e['engine_seconds_per_step'] * 1000:.1f} ms/step vs bare "
            f"{e['bare_seconds_per_step'] * 1000:.1f} ms/step (x{e['engine_over_bare']:.3f}); "
            f"loader: {loaders}.",
        ]
    b = results.get("budget", {})
    if b and "wall_s" in b:
        lines += [
            "",
            f"Strong recipe, budget {b['budget_s']:.0f} s: ran {b['wall_s']:.0f} s "
            f"({'within' if b['within_budget'] else 'OVER'} budget), {b['steps']} steps, schedule "
            f"{'completed' if b['schedule_complete'] else 'NOT completed'}; validation PSNR "
            f"{b['best_val_psnr']:.2f} dB vs input {b['input_psnr']:.2f} dB ({b['gain_db']:+.2f} dB).",
        ]
    not_run = {k: _not_run(results[k]) for k in ("precision", "flops", "engine", "budget") if k in results}
    not_run = {k: v for k, v in not_run.items() if v}
    if not_run:
        lines += ["", *(f"- {k}: {v}" for k, v in not_run.items())]
    timeline = results.get("timeline", {})
    if timeline:
        lines += ["", "Time: " + ", ".join(f"{k} {t['seconds']:.0f} s" for k, t in timeline.items()) + "."]
    return "\n".join(lines) + "\n"


def _not_run(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"failed: {r['error']}"
    if "skipped" in r:
        return r["skipped"]
    if "running" in r:
        return "did not finish (the process was stopped)"
    return ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="full")
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--budget", default="4m", help="time budget of the strong-recipe run (default 4m)")
    p.add_argument("--min-budget", type=float, default=60.0, help="seconds; a shorter budget is skipped")
    p.add_argument("--run-dir", default="runs/gpu-check-strong")
    p.add_argument("--val-images", type=int, default=40, help="validation images of the budget run")
    p.add_argument("--engine-repeats", type=int, default=2, help="interleaved rounds of fit vs the bare step")
    p.add_argument("--loader-workers", type=int, nargs="+", default=[0, 4])
    p.add_argument("--loader-batches", type=int, default=100)
    p.add_argument("--out", default="report/gpu")
    p.add_argument("--skip-compile", action="store_true")
    p.add_argument(
        "--deadline", type=float, default=480.0,
        help="seconds from --started by which the check should end (0: none); a part starts only with the "
        "time it needs left, the budget run is shortened to fit, compile needs --compile-reserve",
    )  # fmt: skip
    p.add_argument(
        "--started", type=float, default=None,
        help="time.time() of the start the deadline counts from (the shell script's; default: now)",
    )  # fmt: skip
    p.add_argument(
        "--compile-reserve", type=float, default=120.0,
        help="seconds the compile part needs (compiling the full model's forward and backward: a guess until "
        "measured); it may run past the deadline, a shell's HARD_LIMIT stops it",
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    clock = Clock(args.started if args.started is not None else time.time(), args.deadline or None)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(
            f"gpu_check: torch {torch.__version__} ({build}, {sys.executable}) sees no CUDA GPU: run it on a "
            "GPU machine with a CUDA build of PyTorch, or with --device cpu (DRY_RUN=1) for a dry run",
            file=sys.stderr,
        )
        return 2
    device = resolve_device(args.device)
    if device.type == "cuda":  # what hw4lib.train sets: cuDNN autotuning, TF32 for float32 leftovers
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    results: dict[str, Any] = {
        **_device_facts(device),
        "preset": args.preset,
        "patch": args.patch,
        "mixed_precision": mixed_precision_policy(device),
        "tf32": tf32_state(),  # of the timed steps; the precision part's reference turns it off
        "deadline_s": args.deadline or None,
        "startup_s": clock.elapsed(),  # from the shell script's start: nvidia-smi, python, import torch
        "steps": {},
        "timeline": {},
    }
    out = paths.output(args.out)

    def save(key: str | None = None, into: dict[str, Any] | None = None) -> None:
        """Everything so far, the moment a part ends: a check stopped at its limit keeps its figures."""
        results["wall_s"] = clock.elapsed()
        write_json_atomic(results, out / "gpu_check.json")
        write_text_atomic(_markdown(results), out / "gpu_check.md")
        if key is not None and into is not None:
            write_json_atomic(into[key], out / "parts" / f"{key}.json")

    def part(
        key: str,
        fn: Callable[[], Any],
        need_s: float = 0.0,
        into: dict[str, Any] | None = None,
        skip: str | None = None,
    ) -> None:
        """into[key] = fn(), or why not (skipped for time, failed, stopped); saved the moment it ends."""
        into = results if into is None else into
        left, begun = clock.left(), time.perf_counter()
        try:
            if skip is None and left < need_s:
                skip = f"skipped: {left:.0f} s left before the deadline, the part needs about {need_s:.0f} s"
            if skip is not None:
                into[key] = {"skipped": skip}
            else:
                into[key] = {"running": True, "started_at_s": clock.elapsed()}
                save()  # a process killed during the part leaves this mark
                _release_memory(device)
                _guard(into, key, fn)
        except Stopped:
            into[key] = {"error": f"stopped by SIGTERM (the time limit) {clock.elapsed():.0f} s in"}
            raise
        finally:
            results["timeline"][key] = {"seconds": time.perf_counter() - begun, "ended_at_s": clock.elapsed()}
            save(key, into)
        print(f"[{clock.elapsed():4.0f} s] {key}: {into[key]}", flush=True)

    previous = _stop_on_sigterm()
    mp = results["mixed_precision"]
    print(
        f"GPU check on {results['device']}: torch {results['torch']}, CUDA {results.get('cuda')}; mixed "
        f"precision {mp['dtype']} ({mp['why']}); {clock.elapsed():.0f} s since the start",
        flush=True,
    )
    try:
        part("data", data_figures)
        modes = {"eager": {}, "checkpointed": {"checkpointing": True}}
        for batch in args.batches:
            for name, mode in modes.items():
                fn = lambda b=batch, m=mode: step_figures(args, device, b, **m)
                part(f"{name}-b{batch}", fn, NEEDS_S["step"], into=results["steps"])
        part("precision", lambda: precision_figures(args, device), NEEDS_S["precision"])
        part("flops", lambda: flops_figures(args, device, results["steps"]), NEEDS_S["flops"])
        part("engine", lambda: engine_figures(args, device), NEEDS_S["engine"])
        budget_s, note = budget_seconds(args, clock)
        fn = lambda: budget_figures(args, device, budget_s, out, note)
        part("budget", fn, skip=note if budget_s is None else None)
        if not args.skip_compile:
            fn = lambda: step_figures(args, device, args.batches[0], compile=True)
            part(f"compiled-b{args.batches[0]}", fn, args.compile_reserve, into=results["steps"])
    except Stopped:
        done = f"{out / 'gpu_check.json'} holds the parts done"
        print(f"stopped by SIGTERM after {clock.elapsed():.0f} s; {done}", file=sys.stderr, flush=True)
        return 1
    finally:
        _restore_sigterm(previous)
    print(_markdown(results))
    print(f"written: {out / 'gpu_check.json'} and {out / 'gpu_check.md'}", flush=True)
    parts = [results[k] for k in ("data", "precision", "flops", "engine", "budget")]
    return 1 if any("error" in r for r in [*results["steps"].values(), *parts]) else 0


def _stop_on_sigterm() -> Any:
    """SIGTERM raises :class:`Stopped` in the main thread (so the check records what it was doing)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise Stopped()

    return signal.signal(signal.SIGTERM, stop)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
