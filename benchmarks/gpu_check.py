"""The GPU check of the training engine, as one script (``scripts/gpu_check.sh`` runs it on a lent GPU).

    python -m benchmarks.gpu_check --out report/gpu                      # on a CUDA GPU: about 10 minutes
    python -m benchmarks.gpu_check --budget 4m --deadline 500 --out report/gpu   # to fit a short lease
    python -m benchmarks.gpu_check --device cpu --preset tiny --patch 32 --batches 2 --steps 2 \\
        --budget 20s --out /tmp/gpu-dry-run                              # a dry run of every step on a CPU

1. Throughput and peak memory of one train step of the preset (default: the full model at 128 px) for each
   batch size: eager, and with activation checkpointing (eager).
2. Mixed precision: the outputs of the bf16 (or fp16) forward against float32 on the same weights and input.
3. FLOPs of a train step and an inference, and the eager steps' model FLOPs utilisation against a measured
   8192^3 matrix product in the same precision.
4. ``fit``'s loop against the bare step, and the DataLoader's rate (0 and 4 workers): loading must outrun
   the step.
5. The ``strong`` recipe under a time budget on the demo data: does the run end within its budget with its
   schedule completed, and does the model beat the input?
6. Last, ``torch.compile`` for the first batch size, skipped when ``--deadline`` leaves too little time.

Writes ``<out>/gpu_check.json`` (every figure, with the device named) and ``<out>/gpu_check.md`` (a table),
after every part.
A part that fails (e.g. compile) is recorded with its error; the others still run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from benchmarks import bench_train
from hw4lib import paths
from hw4lib.config import make_config, parse_duration
from hw4lib.device import amp_dtype, autocast, resolve_device
from hw4lib.model import build_model
from hw4lib.paths import write_json_atomic, write_text_atomic
from hw4lib.synth import ensure_demo_dataset
from hw4lib.train import fit


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _guard(results: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    """results[key] = fn(), or the error it raised (the check goes on)."""
    try:
        results[key] = fn()
    except Exception as err:  # noqa: BLE001 -- one failing part must not hide the others' figures
        results[key] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=3)}
        print(f"{key}: FAILED {type(err).__name__}: {err}", file=sys.stderr, flush=True)


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
    result = bench_train.bench_step(ns, device)
    return {k: result[k] for k in ("seconds_per_step", "images_per_s", "peak_memory_mb", "precision")}


def precision_figures(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Mixed-precision forward against float32: relative error of the output and of the correction."""
    torch.manual_seed(0)
    model = build_model(args.preset).to(device).eval()
    x = torch.rand(2, 3, args.patch, args.patch, device=device, generator=None)
    dtype = amp_dtype(device, True)
    with torch.no_grad():
        ref = model(x).float()
        with autocast(device, dtype):
            mixed = model(x).float()
    correction = (ref - x).abs().mean()
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "max_abs_diff": float((mixed - ref).abs().max()),
        "mean_abs_diff": float((mixed - ref).abs().mean()),
        "mean_abs_diff_over_mean_correction": float((mixed - ref).abs().mean() / correction),
    }


def budget_figures(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The strong recipe under a time budget on the demo data."""
    data = ensure_demo_dataset()
    config = make_config(
        "strong",
        data_dir=str(data),
        run_dir=str(paths.output(args.run_dir)),
        time_budget=args.budget,
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
    budget = parse_duration(args.budget)
    return {
        "budget_s": budget, "wall_s": wall, "within_budget": wall <= budget * 1.1,
        "schedule_complete": bool(m["complete"]) and m["steps"] == m["steps_planned"],
        "steps": m["steps"], "images_seen": m["images_seen"], "plan_estimate_s": m["estimated_seconds"],
        "best_val_psnr": m["best_val_psnr"], "input_psnr": m["input_psnr"], "gain_db": m["gain_db"],
        "beats_input": m["gain_db"] > 0, "images_per_s": m["images_per_s"], "precision": m["precision"],
    }  # fmt: skip


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# GPU check on {results['device']}",
        "",
        f"torch {results['torch']}; preset {results['preset']}, {results['patch']} px crops.",
        "",
        "| configuration | batch | ms/step | images/s | peak MiB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, r in results["steps"].items():
        mode, batch = key.rsplit("-b", 1)
        if "error" in r:
            lines.append(f"| {mode} | {batch} | failed: {r['error'][:60]} | | |")
        else:
            lines.append(
                f"| {mode} ({r['precision']}) | {batch} | {r['seconds_per_step'] * 1000:.1f} | "
                f"{r['images_per_s']:.1f} | {r['peak_memory_mb']:.0f} |"
            )
    p = results.get("precision", {})
    if p and "error" not in p:
        lines += [
            "",
            f"Mixed precision ({p['dtype']}) vs float32: max |diff| {p['max_abs_diff']:.2e}, mean "
            f"{p['mean_abs_diff']:.2e} ({p['mean_abs_diff_over_mean_correction']:.2%} of the mean "
            "correction).",
        ]
    f = results.get("flops", {})
    if f and "error" not in f:
        shares = ", ".join(
            f"{k.removesuffix('_utilisation')} {v:.1%}" for k, v in f.items() if k.endswith("_utilisation")
        )
        lines += [
            "",
            f"FLOPs: train step {f['train_step_gflop_per_image']:.1f} GFLOP per image (3 x counted forward), "
            f"inference {f['inference_gflop_256px']:.1f} GFLOP at 256 px; measured {f['matmul_dtype']} "
            f"matmul "
            f"{f['measured_matmul_tflop_per_s']:.0f} TFLOP/s; model FLOPs utilisation: {shares}.",
        ]
    e = results.get("engine", {})
    if e and "error" not in e:
        loaders = ", ".join(f"{r['workers']} workers {r['images_per_s']:.0f} img/s" for r in e["loader"])
        lines += [
            "",
            f"Engine: fit's loop {e['engine_seconds_per_step'] * 1000:.1f} ms/step vs bare "
            f"{e['bare_seconds_per_step'] * 1000:.1f} ms/step (x{e['engine_over_bare']:.3f}); "
            f"loader: {loaders}.",
        ]
    b = results.get("budget", {})
    if b and "error" not in b:
        lines += [
            "",
            f"Strong recipe, budget {b['budget_s']:.0f} s: ran {b['wall_s']:.0f} s "
            f"({'within' if b['within_budget'] else 'OVER'} budget), {b['steps']} steps, schedule "
            f"{'completed' if b['schedule_complete'] else 'NOT completed'}; validation PSNR "
            f"{b['best_val_psnr']:.2f} dB vs input {b['input_psnr']:.2f} dB ({b['gain_db']:+.2f} dB).",
        ]
    return "\n".join(lines) + "\n"


def flops_figures(args: argparse.Namespace, device: torch.device, steps: dict[str, Any]) -> dict[str, Any]:
    """FLOPs of one train step and one inference, and the eager steps' share of the measured matmul rate."""
    forward_one = bench_train.forward_flops(args.preset, 1, args.patch)  # linear in the batch
    infer = bench_train.forward_flops(args.preset, 1, 256)
    dtype = amp_dtype(device, True)
    peak = bench_train.measured_peak_flops(device, dtype, n=8192 if device.type == "cuda" else 1024)
    out: dict[str, Any] = {
        "forward_gflop_per_image": forward_one / 1e9,
        "train_step_gflop_per_image": 3 * forward_one / 1e9,
        "inference_gflop_256px": infer / 1e9,
        "measured_matmul_tflop_per_s": peak / 1e12,
        "matmul_dtype": str(dtype).replace("torch.", ""),
    }
    for key, r in steps.items():
        if "error" not in r:
            achieved = 3 * forward_one * int(key.rsplit("-b", 1)[1]) / r["seconds_per_step"]
            out[f"{key}_achieved_tflop_per_s"] = achieved / 1e12
            out[f"{key}_utilisation"] = achieved / peak
    return out


def engine_figures(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """fit()'s loop against the bare step (eager, first batch size), and the loader's rate."""
    ns = bench_train.build_parser().parse_args([
        "--preset", args.preset, "--patch", str(args.patch), "--batch", str(args.batches[0]),
        "--steps", str(args.steps), "--warmup", "2", "--device", str(device), "--repeats", "2",
        "--data", str(ensure_demo_dataset()),
    ])  # fmt: skip
    engine = bench_train.bench_engine(ns, device)
    loader = [bench_train.bench_loader(ns, w) for w in (0, 4)]
    return {**engine, "loader": loader}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="full")
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--budget", default="6m", help="time budget of the strong-recipe run")
    p.add_argument("--run-dir", default="runs/gpu-check-strong")
    p.add_argument("--val-images", type=int, default=40, help="validation images of the budget run")
    p.add_argument("--out", default="report/gpu")
    p.add_argument("--skip-compile", action="store_true")
    p.add_argument(
        "--deadline", type=float, default=None,
        help="seconds from the start: torch.compile (run last, for the first batch size only) is skipped "
        "when fewer than --compile-reserve seconds are left",
    )  # fmt: skip
    p.add_argument("--compile-reserve", type=float, default=150.0)
    args = p.parse_args(argv)
    started = time.perf_counter()
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    results: dict[str, Any] = {
        "device": _device_name(device),
        "torch": torch.__version__,
        "preset": args.preset,
        "patch": args.patch,
        "steps": {},
    }
    out = paths.output(args.out)

    def save() -> None:  # after every part: a command stopped at its limit still leaves its figures
        results["wall_s"] = time.perf_counter() - started
        write_json_atomic(results, out / "gpu_check.json")
        write_text_atomic(_markdown(results), out / "gpu_check.md")

    print(f"GPU check on {results['device']}", flush=True)
    modes = {"eager": {}, "checkpointed": {"checkpointing": True}}
    for batch in args.batches:
        for name, mode in modes.items():
            key = f"{name}-b{batch}"
            _guard(results["steps"], key, lambda b=batch, m=mode: step_figures(args, device, b, **m))
            print(f"{key}: {results['steps'][key]}", flush=True)
            save()
    parts = {
        "precision": lambda: precision_figures(args, device),
        "flops": lambda: flops_figures(args, device, results["steps"]),
        "engine": lambda: engine_figures(args, device),
        "budget": lambda: budget_figures(args, device),
    }
    for key, fn in parts.items():
        _guard(results, key, fn)
        print(f"{key}: {results[key]}", flush=True)
        save()
    if not args.skip_compile:
        left = None if args.deadline is None else args.deadline - (time.perf_counter() - started)
        key = f"compiled-b{args.batches[0]}"
        if left is not None and left < args.compile_reserve:
            results["steps"][key] = {"error": f"skipped: {left:.0f} s left before the deadline"}
        else:
            _guard(results["steps"], key, lambda: step_figures(args, device, args.batches[0], compile=True))
        print(f"{key}: {results['steps'][key]}", flush=True)
        save()
    print(_markdown(results))
    figures = [*results["steps"].values(), *(results[k] for k in parts)]
    return 1 if any("error" in r for r in figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
