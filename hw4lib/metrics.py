"""Image quality metrics as the leaderboard computes them: PSNR per image, then the mean over images.

PSNR of identical images is infinite; it is capped at ``PSNR_CAP`` (100 dB) so averages stay finite.
SSIM is Wang et al.'s (2004): an 11 px Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, the mean of the map
over the window's valid positions; both image sides must be at least 11 px (64x64 training crops are fine).
It is computed here, in the same steps as pytorch-msssim (a test holds the two equal), because validation
must run where only PyTorch is installed (a bare GPU machine); the SSIM *loss* terms use pytorch-msssim.
Inputs are not clamped: clamp model outputs to [0, 1] first, as saving an image does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PSNR_CAP", "psnr", "ssim", "psnr_uint8"]

PSNR_CAP = 100.0  # dB; what identical images score (an MSE below 1e-10 on [0, 1] images)
SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03  # Wang et al. (2004)


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
    """SSIM of each image (mean over channels) with a ``win_size`` px Gaussian window (sigma 1.5).

    Both image sides must be at least ``win_size`` px; pass an odd ``win_size`` such as 7 for smaller crops.
    """
    pred, target = _batched(pred, target, "ssim")
    if min(pred.shape[-2:]) < win_size:
        raise ValueError(
            f"ssim: {pred.shape[-1]}x{pred.shape[-2]} px images are smaller than the {win_size} px window; "
            "use larger crops or a smaller odd win_size (e.g. 7)"
        )
    x, y = _precise(pred), _precise(target)
    coords = torch.arange(win_size, dtype=torch.float32) - win_size // 2  # float32, as pytorch-msssim has it
    window = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    window = (window / window.sum()).to(x).repeat(x.shape[1], 1, 1, 1)  # one 1-D window per channel

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian (rows, then columns), valid part only
        t = F.conv2d(t, window.view(-1, 1, win_size, 1), groups=t.shape[1])
        return F.conv2d(t, window.view(-1, 1, 1, win_size), groups=t.shape[1])

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    mu_xx, mu_yy, mu_xy = mu_x.pow(2), mu_y.pow(2), mu_x * mu_y
    var_x, var_y, cov = blur(x * x) - mu_xx, blur(y * y) - mu_yy, blur(x * y) - mu_xy
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    values = (((2 * mu_xy + c1) / (mu_xx + mu_yy + c1)) * contrast_structure).flatten(2).mean(-1).mean(1)
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
