"""Synthetic snow on a clean image, after Snow100K, and the compositing of real Snow100K masks.

Liu et al., "DesnowNet", IEEE TIP 2018: ``snowy = clean (1 - a) + a c`` with an alpha mask ``a`` made of
flakes at several depths (far: many, tiny, faint; near: few, large, defocused), a little motion blur, and a
veiling haze; or a real Snow100K mask (:func:`load_snow_masks`, :func:`crop_snow_mask`) composited the same
way.
Sizes are in pixels at Snow100K's scale (about 640x480).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from hw4lib.data import IMAGE_SUFFIXES, list_images, quantize
from hw4lib.synth.raster import as_float, splat, uniform

__all__ = [
    "FlakeLayer",
    "SnowParams",
    "SNOW_PRESETS",
    "SnowResult",
    "snow_alpha",
    "composite_snow",
    "add_snow",
    "list_snow_masks",
    "load_snow_masks",
    "crop_snow_mask",
]


@dataclass(frozen=True)
class FlakeLayer:
    """One depth of snow: flakes per 10^4 px, radius (px), opacity, and edge softness (defocus blur, px)."""

    density: float
    radius: tuple[float, float]
    opacity: tuple[float, float]
    softness: float = 0.7


@dataclass(frozen=True)
class SnowParams:
    """A snow image: flake layers far to near, motion streak length (px), fall angle, haze, snow colour."""

    layers: tuple[FlakeLayer, ...]
    density_scale: tuple[float, float] = (0.7, 1.3)  # one multiplier per image on every layer's density
    motion: tuple[float, float] = (0.0, 2.0)  # motion blur: extra length along the fall direction, px
    wind: float = 30.0  # |fall direction| from vertical, degrees (one per image)
    haze: tuple[float, float] = (0.0, 0.0)  # veiling haze alpha (mean), one per image
    haze_variation: float = 0.3  # relative spatial variation of the haze
    grain: tuple[float, float] = (0.0, 0.0)  # std of the alpha of unresolved far flakes (speckle), per image
    grain_size: float = 0.7  # Gaussian sigma of one speckle, px
    colour: tuple[float, float] = (0.88, 1.0)  # snow brightness; a slight blue tint is added per image
    blur: float = 0.0  # final Gaussian blur of the mask (optics), px


# Tuned so that mask_stats of a 480x640 synthetic mask matches three real Snow100K masks (Liu et al.,
# "DesnowNet", IEEE TIP 2018; light ~ beautiful_smile_00008, medium ~ 00001, heavy ~ 00006): mean alpha,
# coverage, opaque fraction, haze floor, flake count and size, opacity histogram (notebooks/00_data.ipynb).
SNOW_PRESETS: dict[str, SnowParams] = {
    # Snow100K-S-like: sparse, soft, mostly vertical flakes, no haze.
    "light": SnowParams(
        layers=(
            FlakeLayer(density=11.0, radius=(1.2, 2.4), opacity=(0.75, 1.0), softness=3.0),
            FlakeLayer(density=2.0, radius=(2.2, 4.0), opacity=(0.85, 1.0), softness=3.0),
        ),
        motion=(1.0, 4.0),
        wind=20.0,
        blur=0.7,
    ),
    # Snow100K-M-like: a speckle of far flakes over a light haze, mid flakes, a few defocused near ones.
    "medium": SnowParams(
        layers=(
            FlakeLayer(density=200.0, radius=(0.3, 0.8), opacity=(0.1, 0.4), softness=1.0),
            FlakeLayer(density=21.0, radius=(0.9, 2.0), opacity=(0.6, 1.0), softness=1.0),
            FlakeLayer(density=0.6, radius=(3.0, 8.0), opacity=(0.2, 0.45), softness=3.0),
        ),
        motion=(0.5, 3.0),
        haze=(0.065, 0.095),
        grain=(0.035, 0.05),
    ),
    # Snow100K-L-like: dense far flakes and speckle over strong haze, many mid flakes, defocused near ones.
    "heavy": SnowParams(
        layers=(
            FlakeLayer(density=600.0, radius=(0.3, 0.8), opacity=(0.1, 0.5), softness=1.0),
            FlakeLayer(density=65.0, radius=(0.8, 1.8), opacity=(0.6, 1.0), softness=1.0),
            FlakeLayer(density=1.0, radius=(3.0, 8.0), opacity=(0.2, 0.45), softness=3.0),
        ),
        motion=(2.0, 5.0),
        haze=(0.14, 0.2),
        grain=(0.05, 0.08),
    ),
}


@dataclass
class SnowResult:
    """A snowy image and the masks that made it (alpha floats in [0, 1], (H, W))."""

    degraded: np.ndarray  # (H, W, 3) uint8
    clean: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray  # total alpha composited over the clean image
    layers: list[np.ndarray] = field(default_factory=list)  # flake alpha per depth, far to near (synthetic)
    haze: np.ndarray | None = None  # the haze alpha (synthetic only)
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    level: str = "custom"  # preset name, "custom", or "real" for a real mask


def _snow_params(level: str | SnowParams, overrides: dict[str, Any]) -> tuple[str, SnowParams]:
    if isinstance(level, SnowParams):
        name, params = "custom", level
    elif level in SNOW_PRESETS:
        name, params = level, SNOW_PRESETS[level]
    else:
        raise ValueError(
            f"unknown snow level {level!r}; choose from {sorted(SNOW_PRESETS)} or pass SnowParams"
        )
    return name, (replace(params, **overrides) if overrides else params)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cell: float = 48.0) -> np.ndarray:
    """Smooth random field in [-1, 1], features about ``cell`` px wide (coarse noise, upsampled)."""
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    coarse = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
    up = Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(up), -1.0, 1.0)


def _flake_layer(
    rng: np.random.Generator,
    shape: tuple[int, int],
    layer: FlakeLayer,
    scale: float,
    motion: float,
    fall: float,
) -> np.ndarray:
    """Alpha of one depth: soft-edged discs stretched into capsules by motion, summed and clipped to 1."""
    h, w = shape
    rmax = layer.radius[1] + layer.softness / 2 + motion / 2 + 1
    n = int(rng.poisson(layer.density * scale * (h + 2 * rmax) * (w + 2 * rmax) / 1e4))
    out = np.zeros(h * w, np.float64)
    if n == 0:
        return out.reshape(h, w).astype(np.float32)
    cy = rng.uniform(-rmax, h + rmax, n)
    cx = rng.uniform(-rmax, w + rmax, n)
    radius = uniform(rng, layer.radius, n)
    opacity = uniform(rng, layer.opacity, n)
    # every flake is stamped on a (k, k) window around its centre, all flakes of the layer at once
    half = int(np.ceil(rmax))
    offsets = np.arange(-half, half + 1)
    y = np.floor(cy).astype(np.int64)[:, None, None] + offsets[None, :, None]
    x = np.floor(cx).astype(np.int64)[:, None, None] + offsets[None, None, :]
    dy, dx = y + 0.5 - cy[:, None, None], x + 0.5 - cx[:, None, None]  # pixel centre relative to flake centre
    uy, ux = np.cos(fall), np.sin(fall)  # fall direction
    along = np.clip(dy * uy + dx * ux, -motion / 2, motion / 2)  # distance to a segment = capsule
    dist = np.hypot(dy - along * uy, dx - along * ux)
    soft = max(layer.softness, 0.5)
    a = np.clip((radius[:, None, None] - dist) / soft + 0.5, 0.0, 1.0)
    a *= opacity[:, None, None] / (1.0 + motion / (2 * radius[:, None, None] + 1))  # motion spreads the light
    ok = (y >= 0) & (y < h) & (x >= 0) & (x < w) & (a > 0)
    idx = (np.broadcast_to(y, a.shape) * w + np.broadcast_to(x, a.shape))[ok]
    out += np.bincount(idx, weights=a[ok], minlength=h * w)
    return np.clip(out, 0.0, 1.0).reshape(h, w).astype(np.float32)


def _line_kernel(length: float, angle: float) -> np.ndarray:
    """Normalised motion-blur kernel: a segment of ``length`` px at ``angle`` (radians from vertical)."""
    half = int(np.ceil(length / 2)) + 1
    t = np.linspace(-0.5, 0.5, max(2, int(np.ceil(length * 2)) + 1)) * length
    kernel = splat(
        (2 * half + 1, 2 * half + 1), half + t * np.cos(angle), half + t * np.sin(angle), np.ones_like(t)
    )
    return kernel / kernel.sum()


def snow_alpha(
    shape: tuple[int, int],
    rng: np.random.Generator | int,
    level: str | SnowParams = "medium",
    **overrides: Any,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """A synthetic snow mask of ``shape``: (total alpha, flake alpha per layer far to near, haze alpha)."""
    rng = np.random.default_rng(rng)
    _, p = _snow_params(level, overrides)
    h, w = shape
    scale = uniform(rng, p.density_scale)
    motion = uniform(rng, p.motion)
    fall = np.deg2rad(uniform(rng, (-p.wind, p.wind)))
    layers = [_flake_layer(rng, (h, w), layer, scale, motion, fall) for layer in p.layers]
    haze_mean = uniform(rng, p.haze) if p.haze[1] > 0 else 0.0
    if haze_mean > 0:
        haze = np.clip(haze_mean * (1.0 + p.haze_variation * _smooth_field(rng, (h, w))), 0.0, 1.0)
    else:
        haze = np.zeros((h, w), np.float32)
    grain = uniform(rng, p.grain) if p.grain[1] > 0 else 0.0
    if grain > 0:  # flakes too far to resolve: positive speckle, smeared by the same motion as the flakes
        speckle = ndi.gaussian_filter(rng.exponential(1.0, (h, w)).astype(np.float32), p.grain_size)
        if motion >= 1:
            speckle = ndi.convolve(speckle, _line_kernel(motion, fall), mode="reflect")
        speckle = (speckle - speckle.mean()) / max(float(speckle.std()), 1e-6)
        haze = np.clip(haze + grain * speckle, 0.0, 1.0)
    transmit = 1.0 - haze  # layers composite "over" each other: alpha = 1 - prod(1 - a_k)
    for a in layers:
        transmit = transmit * (1.0 - a)
    alpha = 1.0 - transmit
    if p.blur > 0:
        alpha = ndi.gaussian_filter(alpha, p.blur)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32), layers, haze.astype(np.float32)


def composite_snow(
    clean: np.ndarray, alpha: np.ndarray, colour: Sequence[float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    """Snow100K's composite ``clean (1 - alpha) + alpha colour`` as (H, W, 3) uint8."""
    b = as_float(clean)
    a = np.asarray(alpha, np.float32)
    if a.shape != b.shape[:2]:
        raise ValueError(f"snow mask shape {a.shape} does not match the image {b.shape[:2]}")
    a = a[..., None]
    return quantize(b * (1.0 - a) + a * np.asarray(colour, np.float32))


def _snow_colour(rng: np.random.Generator, p: SnowParams) -> tuple[float, float, float]:
    value, tint = uniform(rng, p.colour), uniform(rng, (0.0, 0.04))
    return (value * (1 - tint), value * (1 - tint / 2), value)


def add_snow(
    clean: np.ndarray,
    rng: np.random.Generator | int,
    level: str | SnowParams = "medium",
    real_mask: np.ndarray | None = None,
    **overrides: Any,
) -> SnowResult:
    """Snow on ``clean``: a synthetic mask of preset ``level``, or ``real_mask`` (any size, cropped)."""
    rng = np.random.default_rng(rng)
    name, p = _snow_params(level, overrides)
    b = as_float(clean)
    colour = _snow_colour(rng, p)
    if real_mask is not None:
        alpha = crop_snow_mask(real_mask, b.shape[:2], rng)
        return SnowResult(composite_snow(b, alpha, colour), quantize(b), alpha, colour=colour, level="real")
    alpha, layers, haze = snow_alpha(b.shape[:2], rng, p)
    return SnowResult(composite_snow(b, alpha, colour), quantize(b), alpha, layers, haze, colour, name)


# ----------------------------------------------------------------------------------------------------------
# real snow masks


def list_snow_masks(folder: str | os.PathLike[str]) -> list[Path]:
    """The mask images in ``folder`` (natural order); a missing or empty folder is an error that says so."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"snow mask folder {folder} does not exist; pass a folder of mask images")
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"no mask images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def load_snow_masks(folder: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Real snow masks (e.g. Snow100K's, grayscale stored as RGB) in ``folder``: stem -> float32 alpha."""
    masks = {}
    for f in list_snow_masks(folder):
        try:
            with Image.open(f) as im:
                masks[f.stem] = np.asarray(im.convert("L"), np.float32) / 255.0
        except OSError as err:
            raise ValueError(
                f"cannot read snow mask {f}: {err}; remove it or replace it with a PNG/JPEG"
            ) from err
    return masks


def crop_snow_mask(
    mask: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.8, 1.25),
) -> np.ndarray:
    """A random window of ``mask`` resized to ``shape`` (flakes rescaled by ``scale``), maybe flipped.

    The mask is used at about its own resolution, the way Snow100K pasted masks onto its photos: a window of
    ``shape / s`` px, as large as the mask allows, and a left-right flip half of the time.
    """
    h, w = shape
    mh, mw = mask.shape
    factor = min(1.0 / uniform(rng, scale), mh / h, mw / w)
    bh, bw = h * factor, w * factor
    y0, x0 = float(rng.uniform(0, mh - bh)), float(rng.uniform(0, mw - bw))
    im = Image.fromarray(np.asarray(mask, np.float32), mode="F")
    out = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + bw, y0 + bh)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.clip(out, 0.0, 1.0).astype(np.float32)

