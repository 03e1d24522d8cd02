"""Training throughput: images per second of one PromptIR train step (forward, loss, backward, AdamW step).

    python -m benchmarks.bench_train --preset tiny --patch 48 --batch 8 --steps 20
    python -m benchmarks.bench_train --preset full --patch 128 --batch 8 --steps 50 --device cuda --compile
    python -m benchmarks.bench_train --preset tiny --patch 48 --batch 8 --data data/demo --workers 0 2

The step is measured on random tensors already on the device, so it is the model's speed alone. With
``--data`` the script also times the training DataLoader of ``hw4lib.train`` (decoded-image cache, random
crops and flips, collation) with each ``--workers`` count: loading must outrun the step, or the GPU waits.
The last line is JSON for scripts. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from hw4lib import paths
from hw4lib.data import PairedDataset, find_pairs
from hw4lib.device import amp_dtype, autocast, precision_name, resolve_device
from hw4lib.losses import build_loss
from hw4lib.model import build_model, count_parameters
from hw4lib.train import _collate, _EpochView, _GlobalOrderBatches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_step(args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model(args.preset).to(device).train()
    criterion = build_loss(args.loss).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-2)
    dtype = amp_dtype(device, args.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    step_model = torch.compile(model) if args.compile else model
    x = torch.rand(args.batch, 3, args.patch, args.patch, device=device)
    y = (x * 0.9).clamp(0, 1)

    def step() -> None:
        with autocast(device, dtype):
            out = step_model(x)
        loss = criterion(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    _sync(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    result = {
        "preset": args.preset,
        "params": count_parameters(model),
        "patch": args.patch,
        "batch": args.batch,
        "steps": args.steps,
        "device": str(device),
        "precision": precision_name(dtype),
        "compile": args.compile,
        "threads": torch.get_num_threads(),
        "seconds_per_step": seconds / args.steps,
        "cpu_seconds_per_step": cpu_seconds / args.steps,
        "images_per_s": args.steps * args.batch / seconds,
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def bench_loader(args: argparse.Namespace, workers: int) -> dict:
    pairs = find_pairs(paths.resolve(args.data))
    dataset = PairedDataset(pairs, patch_size=args.patch, augment=True, cache=True, repeat=4, seed=0)
    t0 = time.perf_counter()
    dataset.preload()
    preload_s = time.perf_counter() - t0
    steps = min(args.loader_batches, len(dataset) // args.batch)
    sampler = _GlobalOrderBatches(len(dataset), args.batch, steps, world=1, rank=0, seed=0)
    loader = DataLoader(
        _EpochView(dataset), batch_sampler=sampler, collate_fn=_collate, num_workers=workers,
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


def main(argv: list[str] | None = None) -> int:
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
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--data", default=None, help="also time the DataLoader on this dataset (e.g. data/demo)")
    p.add_argument("--workers", type=int, nargs="+", default=[0], help="DataLoader worker counts to time")
    p.add_argument("--loader-batches", type=int, default=100, help="batches per loader timing (default 100)")
    args = p.parse_args(argv)

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
        f"{step['device']} {step['precision']}{' compiled' if args.compile else ''}: "
        f"{step['seconds_per_step'] * 1000:.1f} ms/step, {step['images_per_s']:.1f} img/s"
        + (f", peak {step['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in step else "")
    )
    report = {"step": step}
    if args.data:
        report["loader"] = []
        for workers in args.workers:
            res = bench_loader(args, workers)
            report["loader"].append(res)
            print(
                f"loader: {workers} worker(s): {res['images_per_s']:.0f} img/s "
                f"(preload {res['preload_seconds']:.1f} s)"
            )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
