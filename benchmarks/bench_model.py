"""Time PromptIR train steps and inference, optionally against the official-style reference.

    .venv/bin/python -m benchmarks.bench_model --preset full --train-size 128 --infer-size 256 --repeats 5 \
        --compare-official

A train step is forward + L1 loss + backward + AdamW step on a random batch; inference is a ``no_grad``
forward. With ``--compare-official`` both models get the same weights, the outputs are compared, and the two
models are timed *interleaved* (ours, official, ours, ...) so that load from other processes hits both alike;
the speed-up is the ratio of the medians. Peak memory: the resident-set high-water mark of the process
(getrusage; both models when comparing), or ``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn as nn

from benchmarks.official_promptir import OfficialPromptIR
from hw4lib.model import DEAD_LAYERS, PRESETS, build_model, count_parameters


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Callable[[], float]:
    """A closure doing one AdamW step of L1 loss on (x, target)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = (model(x) - target).abs().mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def make_inference(model: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    def infer() -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    return infer


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device, warmup: int = 1
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU milliseconds per call of each function, alternating between them on every repeat.

    With one thread on busy cores the CPU time is the steadier figure: the wall time also counts the time the
    scheduler gave to other processes.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            wall[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=sorted(PRESETS))
    parser.add_argument("--train-size", type=int, default=128, help="train crop side (0: skip training)")
    parser.add_argument("--infer-size", type=int, default=256, help="inference image side (0: skip)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compare-official", action="store_true", help="also time the official-style model")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    models: dict[str, nn.Module] = {"ours": build_model(args.preset).to(device)}
    if args.compare_official:
        official = OfficialPromptIR(**PRESETS[args.preset]).to(device)
        state = {k: v for k, v in official.state_dict().items() if k not in DEAD_LAYERS}
        models["ours"].load_state_dict(state)
        models["official"] = official
    print(
        f"preset {args.preset}: {count_parameters(models['ours']):,} parameters; device {device}, "
        f"{torch.get_num_threads()} threads, batch {args.batch}, {args.repeats} interleaved repeats"
    )

    medians: dict[tuple[str, ...], float] = {}
    for task, size in (("train", args.train_size), ("infer", args.infer_size)):
        if not size:
            continue
        x = torch.rand(args.batch, 3, size, size, device=device)
        target = torch.rand_like(x)
        if args.compare_official:
            with torch.no_grad():
                diff = (models["ours"](x) - models["official"](x)).abs().max().item()
            print(f"{task} {size}x{size}: max |ours - official| = {diff:.2e}")
        fns = {
            name: make_train_step(model, x, target) if task == "train" else make_inference(model, x)
            for name, model in models.items()
        }
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        wall, cpu = time_interleaved(fns, args.repeats, device)
        for name, ts in wall.items():
            medians[task, name] = statistics.median(ts)
            medians[task, name, "cpu"] = statistics.median(cpu[name])
            print(
                f"{task} {size}x{size} {name:8s}: median {medians[task, name]:8.1f} ms  (min {min(ts):.1f}; "
                f"process CPU {medians[task, name, 'cpu']:.1f} ms)"
            )
        if args.compare_official:
            ratio = medians[task, "official"] / medians[task, "ours"]
            cpu_ratio = medians[task, "official", "cpu"] / medians[task, "ours", "cpu"]
            print(f"{task} speed-up ours vs official: {ratio:.2f}x (process CPU time: {cpu_ratio:.2f}x)")
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20
            print(f"{task} peak GPU memory (both models): {peak:.0f} MiB")
    print(f"peak resident memory of the process: {_peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
