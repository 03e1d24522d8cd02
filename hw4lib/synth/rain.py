"""Synthetic rain on a clean image, after the Rain100L / Rain100H image-formation model.

Yang et al., "Deep Joint Rain Detection and Removal from a Single Image", CVPR 2017: ``O = B + S``, an
additive streak layer (optionally ``O = (1 - v) (B + S) + v A`` with an atmospheric veil ``A``). ``S`` is
sparse noise seeds motion-blurred along one slant angle per image (a small jitter per streak), then blurred
across by the streak width. Lengths and widths are in pixels at Rain100L's scale (480x320).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from hw4lib.data import quantize
from hw4lib.synth.raster import as_float, splat, uniform

__all__ = ["RainParams", "RAIN_PRESETS", "RainResult", "add_rain"]


@dataclass(frozen=True)
class RainParams:
    """Ranges a rain image draws from (per image, or per streak where noted); px at Rain100L scale."""

    density: tuple[float, float] = (8.0, 45.0)  # streaks per 10^4 px
    length: tuple[float, float] = (8.0, 50.0)  # streak length in px (per streak)
    width: tuple[float, float] = (0.5, 0.8)  # Gaussian sigma across the streak, px
    brightness: tuple[float, float] = (0.1, 0.35)  # peak added intensity of a streak (per streak)
    angle: float = 25.0  # |slant| from vertical, degrees: one angle per image, drawn in [-angle, angle]
    jitter: float = 2.0  # per-streak deviation from the image's angle, degrees (std)
    veil: tuple[float, float] = (0.0, 0.0)  # atmospheric veil weight v (O = (1 - v)(B + S) + v A)
    veil_light: tuple[float, float] = (0.7, 0.95)  # atmospheric light A (grey)
    blend: str = "add"  # "add": O = B + S (Rain100L); "screen": O = 1 - (1 - B)(1 - S)


RAIN_PRESETS: dict[str, RainParams] = {
    # Rain100L-like: sparse thin streaks, no veil.
    "light": RainParams(),
    # Rain100H-like: dense, long, bright streaks and an atmospheric veil.
    "heavy": RainParams(
        density=(20.0, 50.0),
        length=(15.0, 55.0),
        width=(0.6, 1.0),
        brightness=(0.2, 0.5),
        veil=(0.0, 0.1),
    ),
}


@dataclass
class RainResult:
    """A rainy image and the layers that made it (floats in [0, 1], (H, W) unless noted)."""

    degraded: np.ndarray  # (H, W, 3) uint8
    clean: np.ndarray  # (H, W, 3) uint8
    seeds: np.ndarray  # the sparse noise seeds, each at its streak's brightness
    streaks: np.ndarray  # S: the seeds motion-blurred along the slant and blurred across by the width
    mask: np.ndarray  # bool: where S adds at least half a grey level
    veil: float  # v
    angle: float  # slant of this image, degrees from vertical
    level: str = "custom"


def _rain_params(level: str | RainParams, overrides: dict[str, Any]) -> tuple[str, RainParams]:
    if isinstance(level, RainParams):
        name, params = "custom", level
    elif level in RAIN_PRESETS:
        name, params = level, RAIN_PRESETS[level]
    else:
        raise ValueError(
            f"unknown rain level {level!r}; choose from {sorted(RAIN_PRESETS)} or pass RainParams"
        )
    if overrides:
        params = replace(params, **overrides)
    if params.blend not in ("add", "screen"):
        raise ValueError(f"rain blend must be 'add' or 'screen', got {params.blend!r}")
    return name, params


def add_rain(
    clean: np.ndarray, rng: np.random.Generator | int, level: str | RainParams = "light", **overrides: Any
) -> RainResult:
    """Rain streaks on ``clean`` ((H, W, 3) uint8 or float in [0, 1]); ``overrides`` replace preset fields."""
    rng = np.random.default_rng(rng)
    name, p = _rain_params(level, overrides)
    b = as_float(clean)
    h, w = b.shape[:2]

    # 1. sparse noise seeds over an enlarged frame, so that streaks also enter from outside the picture
    margin = p.length[1] / 2 + 2
    area = (h + 2 * margin) * (w + 2 * margin)
    n = int(rng.poisson(uniform(rng, p.density) * area / 1e4))
    cy = rng.uniform(-margin, h + margin, n)
    cx = rng.uniform(-margin, w + margin, n)
    bright = uniform(rng, p.brightness, n)
    seeds = splat((h, w), np.round(cy), np.round(cx), bright)

    # 2. motion blur along one slant per image: a seed convolved with a line kernel is a segment, so draw the
    #    segments directly (exact, and each streak can have its own length and a small jitter of the angle)
    angle = uniform(rng, (-p.angle, p.angle))
    theta = np.deg2rad(angle + p.jitter * rng.standard_normal(n))
    length = uniform(rng, p.length, n)
    sigma = uniform(rng, p.width)
    step = 0.5  # px between samples along a segment
    counts = np.maximum(2, np.ceil(length / step).astype(np.int64) + 1)
    owner = np.repeat(np.arange(n), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    t = (np.arange(owner.size) - first) / (counts[owner] - 1) - 0.5  # position along the streak, -0.5 .. 0.5
    ys = cy[owner] + t * length[owner] * np.cos(theta[owner])
    xs = cx[owner] + t * length[owner] * np.sin(theta[owner])
    taper = 1.0 - np.abs(2.0 * t) ** 3  # drops fade in and out at the ends of their exposure
    # line density 1/step per unit weight; the blur across divides the peak by sqrt(2 pi) sigma: undo both
    weight = bright[owner] * taper * (length[owner] / (counts[owner] - 1)) * np.sqrt(2 * np.pi) * sigma
    lines = splat((h, w), ys, xs, weight)

    # 3. width: blur across (and slightly along) the streak
    streaks = np.clip(ndi.gaussian_filter(lines, sigma, mode="constant"), 0.0, 1.0)

    # 4. composite: additive (or screen) blend, optional atmospheric veil, clip
    s3 = streaks[..., None]
    rainy = b + s3 if p.blend == "add" else 1.0 - (1.0 - b) * (1.0 - s3)
    veil = uniform(rng, p.veil) if p.veil[1] > 0 else 0.0
    if veil > 0:
        rainy = (1.0 - veil) * rainy + veil * uniform(rng, p.veil_light)
    return RainResult(
        degraded=quantize(rainy),
        clean=quantize(b),
        seeds=seeds,
        streaks=streaks,
        mask=streaks >= 0.5 / 255,
        veil=veil,
        angle=angle,
        level=name,
    )
