"""What is reproducible on a CPU: the demo runs again on the same kernels, and on the kernels of an older CPU.

    python -m benchmarks.reproducibility                   # the three demo losses, about 12 min on 2 cores
    python -m benchmarks.reproducibility --losses l1 mse --out report/engine/reproducibility.json

Each loss of ``make demo`` is trained (``demo`` recipe, seed 0, in a fresh process) three times:

- ``native``: the kernels torch, oneDNN and MKL choose for this CPU (AVX-512 where it has it);
- ``native again``: the same, to show that a rerun on the same CPU and thread count is bit for bit;
- ``avx2``: the same machine told to use the AVX2 code paths (``ATEN_CPU_CAPABILITY=avx2``,
  ``ONEDNN_MAX_CPU_ISA=AVX2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``), i.e. the kernels another x86 CPU of the same
  "2-core" machine kind may run. Vector width changes the order of float sums, hence the last bits.

For each loss it records whether the histories are identical and the largest difference of validation PSNR
(dB) between the runs, epoch by epoch, and writes a JSON file (default ``runs/engine-reproducibility.json``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._budget import machine, write_result
from hw4lib.synth import ensure_demo_dataset

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
SETTINGS = {"native": {}, "native again": {}, "avx2": AVX2}
COMPARED = ("train_loss", "val_psnr", "val_psnr_rain", "val_psnr_snow", "val_ssim")


def train_once(loss: str, data: Path, out: Path, env: dict[str, str]) -> pd.DataFrame:
    """One demo run in a fresh process with ``env`` added; its history."""
    command = [
        sys.executable, "-m", "hw4lib", "train", "--recipe", "demo", "--loss", loss, "--seed", "0",
        "--data-dir", str(data), "--run-dir", str(out), "--progress", "false", "--save-samples", "0",
    ]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    return pd.read_csv(out / "history.csv")


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, Any]:
    """Identical or not, and the largest absolute difference of each compared column."""
    return {
        "identical": bool(a[list(COMPARED)].equals(b[list(COMPARED)])),
        **{f"max_abs_diff_{c}": float((a[c] - b[c]).abs().max()) for c in COMPARED},
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--losses", nargs="+", default=["l1", "l1_ssim", "mse"], help="losses (default: demo's)")
    p.add_argument("--data", default=None, help="dataset (default data/demo, generated if missing)")
    p.add_argument("--out", default="runs/engine-reproducibility.json", help="JSON file to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data = ensure_demo_dataset(args.data or None)
    report: dict[str, Any] = {"machine": machine(), "recipe": "demo", "settings": SETTINGS, "losses": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for loss in args.losses:
            runs = {name: train_once(loss, data, Path(tmp) / f"{loss}-{i}", env)
                    for i, (name, env) in enumerate(SETTINGS.items())}  # fmt: skip
            native = runs["native"]
            report["losses"][loss] = {
                "final_val_psnr": {name: float(h["val_psnr"].iloc[-1]) for name, h in runs.items()},
                "native_again": compare(native, runs["native again"]),
                "avx2": compare(native, runs["avx2"]),
            }
            r = report["losses"][loss]
            print(
                f"{loss}: rerun identical {r['native_again']['identical']}; AVX2 kernels: identical "
                f"{r['avx2']['identical']}, largest val PSNR difference "
                f"{r['avx2']['max_abs_diff_val_psnr']:.2g} dB"
            )
    write_result(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
