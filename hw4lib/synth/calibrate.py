"""Calibration: statistics that compare synthetic rain and snow with real data.

The presets were tuned with these numbers: :func:`mask_stats` against real Snow100K masks (Liu et al.,
"DesnowNet", IEEE TIP 2018), :func:`rain_stats` and :func:`compare_rain` against Rain100L (Yang et al.,
"Deep Joint Rain Detection and Removal from a Single Image", CVPR 2017); ``notebooks/00_data.ipynb`` shows
them side by side.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from hw4lib.data import load_pair
from hw4lib.importers import find_source_pairs
from hw4lib.metrics import psnr_uint8
from hw4lib.synth.rain import add_rain

__all__ = ["EXPECTED_PSNR", "OPACITY_BINS", "mask_stats", "rain_stats", "compare_rain"]

# Input (degraded vs clean) PSNR in dB that each preset gives on average over the demo photographs (tested).
EXPECTED_PSNR: dict[str, dict[str, tuple[float, float]]] = {
    "rain": {"light": (23.0, 29.0), "heavy": (16.0, 21.0)},  # against Rain100L: compare_rain
    "snow": {"light": (24.0, 30.0), "medium": (20.0, 25.0), "heavy": (15.0, 20.0)},
}
# bin edges of the opacity histogram of mask_stats
OPACITY_BINS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def mask_stats(alpha: np.ndarray, flake_threshold: float = 0.5) -> dict[str, Any]:
    """Simple statistics of a snow alpha mask (float in [0, 1] or uint8), to compare synthetic with real snow.

    ``mean``: mean alpha; ``coverage``: fraction with alpha > 0.1; ``opaque``: fraction > 0.5; ``floor``: 10th
    percentile (the haze under the flakes); flakes are connected components (8-connected) of alpha >
    ``flake_threshold``: ``flakes_per_10k`` px, sizes ``flake_p50``, ``flake_p90`` and ``flake_max`` (px);
    ``hist``: fraction of pixels in each :data:`OPACITY_BINS` bin.
    """
    a = np.asarray(alpha)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if a.ndim == 3:  # a mask file read as RGB
        a = a.mean(axis=2)
    labels, count = ndi.label(a > flake_threshold, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:] if count else np.zeros(1)
    hist, _ = np.histogram(np.clip(a, 0, 1), bins=OPACITY_BINS)
    return {
        "mean": round(float(a.mean()), 4),
        "coverage": round(float((a > 0.1).mean()), 4),
        "opaque": round(float((a > 0.5).mean()), 4),
        "floor": round(float(np.percentile(a, 10)), 4),
        "flakes_per_10k": round(count / a.size * 1e4, 2),
        "flake_p50": round(float(np.percentile(sizes, 50)), 1),
        "flake_p90": round(float(np.percentile(sizes, 90)), 1),
        "flake_max": int(sizes.max()),
        "hist": [round(float(v), 4) for v in hist / a.size],
    }


def rain_stats(
    degraded: np.ndarray, clean: np.ndarray, threshold: float = 10.0, min_size: int = 5
) -> dict[str, Any]:
    """Simple statistics of a rain layer (uint8 ``degraded`` minus ``clean``), to compare synthetic with real
    rain.

    ``psnr``: input PSNR (dB); ``brightened``: fraction of pixels whose channel mean rises by more than
    ``threshold`` grey levels; streaks are connected components (8-connected, at least ``min_size`` px) of
    those pixels: ``streaks_per_10k`` px and ``streak_length_p50`` (px), each streak's extent along its
    principal axis, ``sqrt(12 var + 1)``: exactly ``n`` for a straight run of ``n`` pixels.
    """
    rise = degraded.astype(np.float32).mean(axis=2) - clean.astype(np.float32).mean(axis=2)
    brightened = rise > threshold
    labels, count = ndi.label(brightened, structure=np.ones((3, 3)))
    flat = labels.ravel()
    ys, xs = np.indices(labels.shape).reshape(2, -1).astype(np.float64)
    n = np.bincount(flat, minlength=count + 1)[1:]
    moments = [
        np.bincount(flat, weights=w, minlength=count + 1)[1:] for w in (ys, xs, ys * ys, xs * xs, ys * xs)
    ]
    keep = n >= min_size
    n, (sy, sx, syy, sxx, sxy) = n[keep], [m[keep] for m in moments]
    vy, vx, cxy = syy / n - (sy / n) ** 2, sxx / n - (sx / n) ** 2, sxy / n - sy * sx / n**2
    largest = (vy + vx) / 2 + np.sqrt(((vy - vx) / 2) ** 2 + cxy**2)  # top eigenvalue of each 2x2 covariance
    lengths = np.sqrt(12 * largest + 1)
    return {
        "psnr": round(float(psnr_uint8(degraded, clean)), 2),
        "brightened": round(float(brightened.mean()), 4),
        "streaks_per_10k": round(lengths.size / rise.size * 1e4, 2),
        "streak_length_p50": round(float(np.median(lengths)), 1) if lengths.size else 0.0,
    }


def compare_rain(
    folder: str | os.PathLike[str], level: str = "light", max_pairs: int | None = None, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Mean :func:`rain_stats` of a real rain set (``input/`` + ``target/``, Rain100L's layout) and of the
    ``level`` preset rendered over the same clean photographs:
    ``{"real": {...}, "synthetic <level>": {...}}``."""
    pairs = find_source_pairs(folder, "mirror")[:max_pairs]
    real, synthetic = [], []
    for i, pair in enumerate(pairs):
        degraded, clean = load_pair(pair)  # a misaligned pair: an error naming both files
        real.append(rain_stats(degraded, clean))
        synthetic.append(rain_stats(add_rain(clean, np.random.default_rng([seed, i]), level).degraded, clean))
    return {
        name: {key: round(float(np.mean([row[key] for row in rows])), 4) for key in rows[0]}
        for name, rows in (("real", real), (f"synthetic {level}", synthetic))
    }

