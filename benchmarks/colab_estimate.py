"""What the ``colab`` recipe asks of a free Colab GPU (a 16 GB T4), estimated without one.

    python -m benchmarks.colab_estimate --out report/engine/colab_estimate.json

Counted on the ``meta`` device (shapes only, nothing allocated, seconds on any CPU): the FLOPs of one training
step (forward, backward and, with activation checkpointing, the recomputed forward) and what the backward
keeps, at the recipe's batch and crop; the weights, gradients and AdamW moments from the parameter count.
The duration is an **estimate**: the FLOPs over an assumed sustained float16 speed of a T4
(:data:`T4_TFLOPS`, a share of its 65 TFLOP/s tensor-core peak, not measured here), so it says how many
steps and epochs of the course data the 3 h budget buys, not what a T4 does. The activations are counted
at float32 size (an upper bound under float16). Replace it with a measurement: ``scripts/gpu_check.sh`` on the
card. With activation checkpointing, ``activations_gb`` is what the backward keeps between blocks; the block
being recomputed adds its own while its backward runs (not counted: the peak is somewhat higher).
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks._budget import machine, write_result
from hw4lib.config import RECIPES, make_config, parse_duration
from hw4lib.planning import count_on_meta

T4_PEAK_TFLOPS = 65.0  # NVIDIA T4 datasheet: float16 with tensor cores
T4_TFLOPS = (8.0, 16.0)  # assumed sustained training speeds (about 12% to 25% of the peak): not measured
T4_MEMORY_GB = 15.0  # what a 16 GB T4 leaves to PyTorch on Colab (about)
COURSE_TRAIN_PAIRS = 2_880  # 3,200 pairs, 10% of each type held out for validation


def estimate(recipe: str = "colab") -> dict[str, Any]:
    """The recipe's step FLOPs and memory, and what its budget buys at the assumed speeds."""
    config = make_config(recipe, device="cpu")
    side = (config.patch_size, config.patch_size) if config.patch_size else (256, 256)
    saved, forward, params = count_on_meta(config, config.batch_size, side)
    passes = 4 if config.grad_checkpointing else 3
    step_tflop = passes * forward / 1e12
    budget_s = parse_duration(config.time_budget) if config.time_budget else None
    steps_per_epoch = COURSE_TRAIN_PAIRS * config.patches_per_image // config.batch_size
    copies = 4 + (1 if config.ema > 0 else 0)  # weights, gradients, two AdamW moments (, EMA)
    memory = {"activations_gb": saved / 2**30, "model_and_optimiser_gb": copies * params * 4 / 2**30}
    memory["total_gb"] = sum(memory.values())
    out: dict[str, Any] = {
        "recipe": recipe,
        "settings": {k: RECIPES[recipe].get(k) for k in ("preset", "batch_size", "patch_size", "loss",
                     "grad_checkpointing", "time_budget", "patches_per_image")},  # fmt: skip
        "parameters": params,
        "step_tflop": step_tflop,
        "memory": memory,
        "fits_t4": memory["total_gb"] < T4_MEMORY_GB,
        "steps_per_epoch_course": steps_per_epoch,
        "assumed_t4_tflops": list(T4_TFLOPS),
        "t4_peak_tflops": T4_PEAK_TFLOPS,
        "estimate": "FLOPs over an assumed sustained speed; not measured",
    }
    if budget_s is not None:
        steps = [budget_s * rate / step_tflop for rate in T4_TFLOPS]
        out["budget_s"] = budget_s
        out["steps_in_budget"] = [round(s) for s in steps]
        out["epochs_in_budget"] = [s / steps_per_epoch for s in steps]
        out["images_seen_in_budget"] = [round(s * config.batch_size) for s in steps]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="colab")
    parser.add_argument("--out", default="runs/colab_estimate.json")
    args = parser.parse_args(argv)
    result = {"machine": machine(), **estimate(args.recipe)}
    write_result(result, args.out)
    m = result["memory"]
    print(f"{args.recipe}: {result['step_tflop'] * 1e3:,.0f} GFLOP per step, about {m['total_gb']:.1f} GB "
          f"(activations {m['activations_gb']:.1f}); in its budget at an assumed {T4_TFLOPS[0]:g} to "
          f"{T4_TFLOPS[1]:g} TFLOP/s: {result.get('steps_in_budget')} steps -> {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
