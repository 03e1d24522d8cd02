"""Training throughput: one PromptIR train step (forward, loss, backward, AdamW step), the engine's overhead,
the data loader, and how far the step is from the device's limit.

    python -m benchmarks.bench_train --preset tiny --patch 48 --batch 8 --steps 20
    python -m benchmarks.bench_train --preset tiny --patch 48 --batch 8 --steps 30 --engine --data data/demo
    python -m benchmarks.bench_train --preset full --patch 128 --batch 8 --steps 50 --device cuda --compile
    python -m benchmarks.bench_train --preset tiny --patch 48 --batch 8 --data data/demo --workers 0 2

- The bare step is measured on one batch already on the device: the model's speed alone.
- ``--engine`` runs ``hw4lib.train.fit`` for the same model, loss, batch and crop (no EMA, no clipping; one
  epoch of ``--steps`` steps on ``--data``) and reports its training-loop time per step against the bare
  step's, interleaved over ``--repeats`` rounds (medians): what the engine's data loading, schedule and
  checks cost on top of the model.
- FLOPs: the forward of one batch counted by ``torch.utils.flop_counter`` (exact for the forward); the train
  step is taken as 3 x the forward (backward = 2 x forward), because the counter overcounts the backward of
  depthwise convolutions by about their group count (``../shared/reference/measuring.md``). Achieved FLOP/s
  is that divided by the measured step time; the utilisation is its share of the device's *measured* dense
  matrix-multiply throughput in the same precision (a ``torch.mm`` of 2048^3 on this device), not of a
  datasheet peak.
- ``--data`` with ``--workers`` also times the training DataLoader (decoded-image cache, random crops and
  flips, collation, uint8 batches) with each worker count: loading must outrun the step, or the GPU waits.

The last line is JSON for scripts. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._budget import machine, write_result
from hw4lib import paths
from hw4lib.config import make_config
from hw4lib.data import PairedDataset, find_pairs, to_float
from hw4lib.device import amp_dtype, autocast, precision_name, resolve_device
from hw4lib.loop import EpochView, GlobalOrderBatches, collate
from hw4lib.losses import build_loss
from hw4lib.model import build_model, count_parameters
from hw4lib.synth import ensure_demo_dataset
from hw4lib.train import fit


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float:
    """Peak device memory (CUDA) or the process's peak resident memory (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _real_batch(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of real crops from ``--data`` when given (else random tensors), on the device."""
    if not args.data:
        x = torch.rand(args.batch, 3, args.patch, args.patch, device=device)
        return x, (x * 0.9).clamp(0, 1)
    dataset = PairedDataset(find_pairs(paths.resolve(args.data)), patch_size=args.patch, seed=0, uint8=True)
    items = [dataset[i] for i in range(args.batch)]
    batch = collate(items)
    return to_float(batch["degraded"].to(device)), to_float(batch["clean"].to(device))


def make_bare_step(args: argparse.Namespace, device: torch.device):
    """(model, step function) for forward + loss + backward + AdamW on one fixed batch, nothing else."""
    torch.manual_seed(0)
    model = build_model(args.preset, checkpointing=args.grad_checkpointing).to(device).train()
    criterion = build_loss(args.loss).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-2)
    dtype = amp_dtype(device, args.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    step_model = torch.compile(model) if args.compile else model
    x, y = _real_batch(args, device)

    def step() -> None:
        with autocast(device, dtype):
            out = step_model(x)
        loss = criterion(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return model, step, dtype


def time_steps(step, device: torch.device, steps: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per step over ``steps`` calls."""
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps


def bench_step(args: argparse.Namespace, device: torch.device) -> dict:
    model, step, dtype = make_bare_step(args, device)
    for _ in range(args.warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, cpu_seconds = time_steps(step, device, args.steps)
    return {
        "preset": args.preset,
        "params": count_parameters(model),
        "patch": args.patch,
        "batch": args.batch,
        "steps": args.steps,
        "device": str(device),
        "precision": precision_name(dtype),
        "compile": args.compile,
        "grad_checkpointing": args.grad_checkpointing,
        "threads": torch.get_num_threads(),
        "seconds_per_step": seconds,
        "cpu_seconds_per_step": cpu_seconds,
        "images_per_s": args.batch / seconds,
        "peak_memory_mb": _peak_memory_mb(device),
    }


def forward_flops(preset: str, batch: int, side: int) -> int:
    """FLOPs of one forward pass of ``preset`` on a (batch, 3, side, side) input (the counter's count)."""
    model = build_model(preset).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(batch, 3, side, side))
    return int(counter.get_total_flops())


def measured_peak_flops(
    device: torch.device, dtype: torch.dtype | None, n: int = 2048, repeats: int = 5
) -> float:
    """Dense matrix-multiply FLOP/s measured on ``device`` in ``dtype`` (float32 when None): the ceiling the
    utilisation is reported against."""
    dt = dtype or torch.float32
    a, b = (torch.rand(n, n, device=device, dtype=dt) for _ in range(2))
    torch.mm(a, b)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def bench_flops(args: argparse.Namespace, device: torch.device, step: dict) -> dict:
    forward = forward_flops(args.preset, args.batch, args.patch)
    train_step = 3 * forward  # derived: the counter overcounts depthwise backward (measuring.md)
    infer = forward_flops(args.preset, 1, args.infer_size)
    achieved = train_step / step["seconds_per_step"]
    dtype = amp_dtype(device, args.amp and device.type == "cuda")
    peak = measured_peak_flops(device, dtype)
    return {
        "forward_gflop": forward / 1e9,
        "train_step_gflop": train_step / 1e9,
        "train_step_gflop_method": "3 x counted forward",
        f"inference_gflop_{args.infer_size}px": infer / 1e9,
        "achieved_tflop_per_s": achieved / 1e12,
        "measured_matmul_tflop_per_s": peak / 1e12,
        "utilisation_of_measured_matmul": achieved / peak,
    }


def bench_engine(args: argparse.Namespace, device: torch.device) -> dict:
    """fit()'s training loop against the bare step, interleaved over ``--repeats`` rounds (medians)."""
    data = ensure_demo_dataset(args.data or None)
    args = argparse.Namespace(**{**vars(args), "data": str(data)})  # the bare step gets real crops too
    _, bare, _ = make_bare_step(args, device)
    for _ in range(args.warmup):
        bare()
    base = make_config(
        "smoke",
        data_dir=str(data),
        preset=args.preset,
        loss=args.loss,
        batch_size=args.batch,
        patch_size=args.patch,
        ema=0.0,
        grad_clip=0.0,
        epochs=1,
        max_train_steps=args.steps,
        val_max_images=2,
        save_samples=0,
        device=str(device),
        amp=args.amp,
        compile=args.compile,
        progress=False,
        grad_checkpointing=args.grad_checkpointing,
        num_workers=args.workers[0],
    )
    engine, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            result = fit(dataclasses.replace(base, run_dir=str(Path(tmp) / f"r{i}")), overwrite=True)
            engine.append(args.batch / float(result.history["images_per_s"].iloc[0]))
            plain.append(time_steps(bare, device, args.steps)[0])
    return {
        "engine_seconds_per_step": statistics.median(engine),
        "bare_seconds_per_step": statistics.median(plain),
        "engine_over_bare": statistics.median(engine) / statistics.median(plain),
        "rounds": args.repeats,
        "engine_all": engine,
        "bare_all": plain,
    }


def bench_loader(args: argparse.Namespace, workers: int) -> dict:
    pairs = find_pairs(paths.resolve(args.data))
    dataset = PairedDataset(
        pairs, patch_size=args.patch, augment=True, cache=True, repeat=4, seed=0, uint8=True
    )
    t0 = time.perf_counter()
    dataset.preload()
    preload_s = time.perf_counter() - t0
    steps = min(args.loader_batches, len(dataset) // args.batch)
    sampler = GlobalOrderBatches(len(dataset), args.batch, steps, world=1, rank=0, seed=0)
    loader = DataLoader(
        EpochView(dataset), batch_sampler=sampler, collate_fn=collate, num_workers=workers,
        persistent_workers=workers > 0,
    )  # fmt: skip
    sampler.set_epoch(1)
    for _ in loader:  # first pass starts the workers
        pass
    sampler.set_epoch(2)
    start = time.perf_counter()
    n = sum(batch["degraded"].shape[0] for batch in loader)
    seconds = time.perf_counter() - start
    return {"workers": workers, "images_per_s": n / seconds, "preload_seconds": preload_s}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", help="hw4lib.model preset: tiny, small, full (default tiny)")
    p.add_argument("--patch", type=int, default=128, help="square crop side in pixels (default 128)")
    p.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--loss", default="l1", help="loss spec (default l1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="fp32 on CUDA too")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--grad-checkpointing", action="store_true", help="activation checkpointing of the blocks")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--data", default=None, help="a dataset (e.g. data/demo): real crops, loader timing")
    p.add_argument("--workers", type=int, nargs="+", default=[0], help="DataLoader worker counts to time")
    p.add_argument("--loader-batches", type=int, default=100, help="batches per loader timing (default 100)")
    p.add_argument("--engine", action="store_true", help="also time fit()'s loop against the bare step")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds of --engine (default 3)")
    p.add_argument("--flops", action="store_true", help="count FLOPs and report the utilisation")
    p.add_argument("--infer-size", type=int, default=256, help="image side for the inference FLOPs")
    p.add_argument("--out", default=None, help="also write the JSON report to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    step = bench_step(args, device)
    print(
        f"train step: {step['preset']} ({step['params']:,} parameters), "
        f"{args.batch} x {args.patch}x{args.patch}, "
        f"{step['device']} {step['precision']}{' compiled' if args.compile else ''}"
        f"{' checkpointed' if args.grad_checkpointing else ''}: "
        f"{step['seconds_per_step'] * 1000:.1f} ms/step, {step['images_per_s']:.1f} img/s, "
        f"peak memory {step['peak_memory_mb']:.0f} MiB"
    )
    report: dict = {"step": step}
    if args.flops:
        report["flops"] = f = bench_flops(args, device, step)
        print(
            f"FLOPs: forward {f['forward_gflop']:.1f} GFLOP, train step {f['train_step_gflop']:.1f} GFLOP "
            f"(3 x forward), inference {f[f'inference_gflop_{args.infer_size}px']:.1f} GFLOP at "
            f"{args.infer_size} px; achieved {f['achieved_tflop_per_s'] * 1000:.1f} GFLOP/s = "
            f"{f['utilisation_of_measured_matmul']:.1%} of this device's measured matmul "
            f"({f['measured_matmul_tflop_per_s'] * 1000:.0f} GFLOP/s)"
        )
    if args.engine:
        report["engine"] = e = bench_engine(args, device)
        print(
            f"engine: fit's loop {e['engine_seconds_per_step'] * 1000:.1f} ms/step vs bare "
            f"{e['bare_seconds_per_step'] * 1000:.1f} ms/step: x{e['engine_over_bare']:.3f} "
            f"(medians of {e['rounds']} interleaved rounds)"
        )
    if args.data and not args.engine:
        report["loader"] = []
        for workers in args.workers:
            res = bench_loader(args, workers)
            report["loader"].append(res)
            print(
                f"loader: {workers} worker(s): {res['images_per_s']:.0f} img/s "
                f"(preload {res['preload_seconds']:.1f} s)"
            )
    report["machine"] = machine()
    write_result(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
