"""Where tensors run and in which precision: one policy for training, inference and evaluation.

- ``resolve_device("auto")`` is a CUDA GPU when torch sees one, else the CPU; ``"cuda"`` on a machine without
  CUDA is an error that says what to pass instead.
- Mixed precision (``amp_dtype``): on CUDA bfloat16 where the GPU computes it natively (compute capability
  8.0 and up: Ampere, Ada, Hopper; same range as float32, so no loss scaling and no overflow), else float16
  (training then scales the loss with a ``GradScaler``). A T4 (7.5) or V100 (7.0) gets float16: PyTorch
  reports bfloat16 as "supported" there because it emulates it, but cuDNN has no bfloat16 convolutions below
  8.0. On the CPU only when asked for, in bfloat16: CPU training stays float32, where runs are reproducible.
"""

from __future__ import annotations

import contextlib
import os

import torch

__all__ = ["resolve_device", "amp_dtype", "autocast", "no_autocast", "precision_name", "free_memory_gb"]


def resolve_device(spec: str | torch.device | None = "auto", local_rank: int | None = None) -> torch.device:
    """A ``torch.device`` from ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...

    ``local_rank`` picks the GPU of a ``torchrun`` process when the spec names no index.
    """
    if spec is None or str(spec) == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {str(spec)!r} asked for, but this torch has no CUDA; use device='cpu' or 'auto'"
            )
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
    return device


def amp_dtype(device: torch.device, enabled: bool | None = None) -> torch.dtype | None:
    """The autocast dtype for ``device``, or ``None`` for full float32.

    ``enabled=None`` means the default: on for CUDA, off elsewhere.
    """
    if enabled is None:
        enabled = device.type == "cuda"
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if _native_bf16(device) else torch.float16
    return torch.bfloat16


def _native_bf16(device: torch.device) -> bool:
    """True when the GPU computes bfloat16 itself (capability >= 8.0), not by emulation."""
    if torch.cuda.get_device_capability(device) < (8, 0):
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no including_emulation: capability 8.0 and up have it natively
        return True


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in ``dtype`` on ``device``; a no-op context for ``dtype=None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast turned off for ``device_type`` (a no-op where autocast does not exist, e.g. ``meta``)."""
    try:
        return torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


def precision_name(dtype: torch.dtype | None) -> str:
    """``"bfloat16"``, ``"float16"`` or ``"fp32"``: what run folders record."""
    return str(dtype).replace("torch.", "") if dtype else "fp32"


def free_memory_gb(device: torch.device) -> float | None:
    """Memory free for a run: on CUDA the GPU's, else the host's (``MemAvailable``); None where unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 2**30
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None
