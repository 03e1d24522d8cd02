"""Image quality metrics as the leaderboard computes them: PSNR per image, then the mean over images.

PSNR of identical images is infinite; it is capped at ``PSNR_CAP`` (100 dB) so averages stay finite.
SSIM uses the Gaussian window of Wang et al. (2004): 11 px, sigma 1.5; both image sides must be at least
11 px (64x64 training crops are fine). Inputs are not clamped: clamp model outputs to [0, 1] first, as
saving an image does.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ssim as _ssim

__all__ = ["PSNR_CAP", "psnr", "ssim", "psnr_uint8"]

PSNR_CAP = 100.0  # dB; what identical images score (an MSE below 1e-10 on [0, 1] images)


def _precise(t: torch.Tensor) -> torch.Tensor:
    """float64 where the device has it: SSIM's variances cancel in float32 (~1e-4 error on flat areas)."""
    return t.float() if t.device.type == "mps" else t.double()


def _batched(pred: torch.Tensor, target: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(
            f"{what}: pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    if pred.ndim == 3:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    if pred.ndim != 4:
        raise ValueError(f"{what}: expected (B, C, H, W) or (C, H, W) tensors, got shape {tuple(pred.shape)}")
    return pred, target


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def psnr(
    pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """PSNR in dB of each image, ``10 log10(data_range^2 / MSE)``, capped at ``PSNR_CAP``.

    ``reduction="mean"``: the mean of the per-image values (a scalar tensor); ``"none"``: a (B,) tensor.
    Computed and returned in float64 (float32 on MPS).
    """
    pred, target = _batched(pred, target, "psnr")
    mse = (_precise(pred) - _precise(target)).pow(2).flatten(1).mean(dim=1)
    values = 10.0 * torch.log10(data_range**2 / mse)
    return _reduce(values.clamp(max=PSNR_CAP), reduction)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    reduction: str = "mean",
    win_size: int = 11,
) -> torch.Tensor:
    """SSIM of each image (mean over channels), by pytorch-msssim with an 11 px Gaussian window (sigma 1.5).

    Both image sides must be at least ``win_size`` px; pass an odd ``win_size`` such as 7 for smaller crops.
    """
    pred, target = _batched(pred, target, "ssim")
    if min(pred.shape[-2:]) < win_size:
        raise ValueError(
            f"ssim: {pred.shape[-1]}x{pred.shape[-2]} px images are smaller than the {win_size} px window; "
            "use larger crops or a smaller odd win_size (e.g. 7)"
        )
    values = _ssim(
        _precise(pred), _precise(target), data_range=data_range, size_average=False, win_size=win_size
    )
    return _reduce(values, reduction)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of the same shape (data range 255), capped at ``PSNR_CAP``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"psnr_uint8 expects uint8 arrays, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"psnr_uint8: images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * float(np.log10(255.0**2 / mse)))
