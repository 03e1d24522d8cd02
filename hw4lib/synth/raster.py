"""Pixel helpers shared by the rain and snow models: float images, draws from ranges, sub-pixel splatting."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_float", "uniform", "splat"]


def as_float(img: np.ndarray) -> np.ndarray:
    """An (H, W, 3) RGB image (uint8, or float clipped to [0, 1]) as float32 in [0, 1]."""
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def uniform(rng: np.random.Generator, lo_hi: tuple[float, float], n: int | None = None) -> Any:
    """One float drawn uniformly from the range ``lo_hi``, or an array of ``n`` of them."""
    lo, hi = lo_hi
    return rng.uniform(lo, hi, n) if n is not None else float(rng.uniform(lo, hi))


def splat(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Add ``weights`` at sub-pixel points (bilinear), dropping what falls outside: the points as an image."""
    h, w = shape
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    fy, fx = ys - y0, xs - x0
    out = np.zeros(h * w, np.float64)
    for dy, dx, wt in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        out += np.bincount(yy[ok] * w + xx[ok], weights=(weights * wt)[ok], minlength=h * w)
    return out.reshape(h, w).astype(np.float32)
