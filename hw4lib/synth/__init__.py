"""Synthetic rain and snow on real photographs: the embedded demo dataset.

The course data cannot be downloaded by the project, so a fresh machine needs pairs it can make itself. The
clean images are random crops of real photographs that ship inside installed packages (scikit-image's sample
images, matplotlib's sample data: read from the package folder, never fetched). The degradations follow the
image-formation models of the benchmarks they imitate:

- **Rain** (Rain100L / Rain100H; Yang et al., "Deep Joint Rain Detection and Removal from a Single Image",
  CVPR 2017): ``O = B + S``, an additive streak layer (optionally ``O = (1 - v) (B + S) + v A`` with an
  atmospheric veil ``A``). ``S`` is sparse noise seeds motion-blurred along one slant angle per image (a small
  jitter per streak), then blurred across by the streak width.
- **Snow** (Snow100K; Liu et al., "DesnowNet", IEEE TIP 2018): ``snowy = clean (1 - a) + a c`` with an alpha
  mask ``a`` made of flakes at several depths (far: many, tiny, faint; near: few, large, defocused), a little
  motion blur, and a veiling haze; or a real Snow100K mask composited the same way (``snow_masks=DIR``).

Parameters are in pixels at the resolution of the benchmarks (Rain100L is 480x320, Snow100K about 640x480): a
128x128 demo image is a patch of such a picture, the way PromptIR trains on 128x128 patches. The presets were
tuned against the real data described in ``../shared/data/README.md`` (Rain100L streak geometry and input
PSNR, statistics of three real Snow100K masks; see :func:`mask_stats` and ``notebooks/00_data.ipynb``).

Everything is seeded: one ``numpy.random.Generator`` per image, derived from ``(seed, kind, split, index)``,
so a file does not change when the set around it grows.

Scene-based sets (:func:`generate_photo_dataset` over any folder of clean photographs, and the study set of
:mod:`hw4lib.study`) use every clean picture twice, once with rain and once with snow, and write
``split.csv``: a train/val split by scene (see :func:`hw4lib.data.read_split`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from hw4lib import paths
from hw4lib.data import (
    IMAGE_SUFFIXES,
    KINDS,
    SPLIT_FILE,
    DataError,
    load_image,
    load_pair,
    most_degraded_window,
    natural_key,
)
from hw4lib.importers import find_source_pairs
from hw4lib.metrics import psnr_uint8

__all__ = [
    "PHOTOS",
    "TRAIN_PHOTOS",
    "TEST_PHOTOS",
    "RAIN_PRESETS",
    "SNOW_PRESETS",
    "EXPECTED_PSNR",
    "OPACITY_BINS",
    "RainParams",
    "FlakeLayer",
    "SnowParams",
    "RainResult",
    "SnowResult",
    "available_photos",
    "load_photo",
    "random_crop",
    "add_rain",
    "snow_alpha",
    "add_snow",
    "composite_snow",
    "load_snow_masks",
    "crop_snow_mask",
    "mask_stats",
    "rain_stats",
    "compare_rain",
    "generate_demo_dataset",
    "ensure_demo_dataset",
    "demo_scenes",
    "Scene",
    "write_scene_dataset",
    "generate_photo_dataset",
    "split_scenes",
    "write_split",
    "staged_dataset",
    "show_images",
    "show_pairs_zoomed",
]

# ----------------------------------------------------------------------------------------------------------
# clean photographs
# ----------------------------------------------------------------------------------------------------------

# name -> (package, file inside the package's data folder). Files only: loading never goes through a fetcher,
# so it cannot touch the network. Photos that are mostly empty (hubble_deep_field, retina) are left out.
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "rocket": ("skimage", "rocket.jpg"),
    "motorcycle": ("skimage", "motorcycle_left.png"),
    "camera": ("skimage", "camera.png"),
    "immunohistochemistry": ("skimage", "ihc.png"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    "coffee": ("skimage", "coffee.png"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg"),
}
# Test images come from photographs never used for training, like the course test set (no shared content).
TEST_PHOTOS: tuple[str, ...] = ("coffee", "grace_hopper")
TRAIN_PHOTOS: tuple[str, ...] = tuple(name for name in PHOTOS if name not in TEST_PHOTOS)


def _photo_path(name: str) -> Path:
    if name not in PHOTOS:
        raise KeyError(f"unknown photo {name!r}; choose from {sorted(PHOTOS)}")
    package, filename = PHOTOS[name]
    if package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent / filename
    if package == "matplotlib":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / filename
    raise KeyError(f"photo {name!r}: unknown package {package!r}")


@cache
def _photo_image(name: str) -> Image.Image:
    path = _photo_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"sample photo {name!r} not found at {path}: this version of the package does not bundle it; "
            "use available_photos() or reinstall scikit-image/matplotlib"
        )
    with Image.open(path) as im:
        return im.convert("RGB")  # grayscale photos become gray RGB


def load_photo(name: str) -> np.ndarray:
    """The photograph ``name`` (a key of :data:`PHOTOS`) as (H, W, 3) uint8 RGB, read from disk only."""
    return np.asarray(_photo_image(name)).copy()


def available_photos(names: Sequence[str] | None = None) -> list[str]:
    """The photographs of ``names`` (default: all of :data:`PHOTOS`) that the installed packages bundle."""
    return [name for name in (PHOTOS if names is None else names) if _photo_path(name).is_file()]


def _pick_photo(rng: np.random.Generator, names: Sequence[str]) -> str:
    """The first draw of a crop: which photograph (:func:`demo_scenes` repeats it to find a crop's photo)."""
    return names[int(rng.integers(len(names)))]


def random_crop(
    rng: np.random.Generator,
    size: int | tuple[int, int],
    photos: Sequence[str] = TRAIN_PHOTOS,
    scale: tuple[float, float] = (0.3, 1.0),
    flip: bool = True,
) -> np.ndarray:
    """A random (size, size, 3) uint8 crop of a random photo, rescaled by a factor drawn from ``scale``.

    A factor ``s`` takes a square window of side ``size / s`` (as large as the photo allows) and resizes it to
    ``size`` (bicubic, antialiased); ``flip`` mirrors it left-right half of the time (never upside down: rain
    falls).
    """
    h, w = (size, size) if isinstance(size, int) else size
    names = available_photos(photos)
    if not names:
        raise RuntimeError(f"none of the sample photos {list(photos)} is installed; reinstall scikit-image")
    image = _photo_image(_pick_photo(rng, names))
    pw, ph = image.size
    largest = min(pw / w, ph / h)  # window scale (window px per output px) that still fits
    lo, hi = 1.0 / scale[1], 1.0 / scale[0]
    factor = float(rng.uniform(min(lo, largest), min(hi, largest)))
    bw, bh = w * factor, h * factor
    x0, y0 = float(rng.uniform(0, pw - bw)), float(rng.uniform(0, ph - bh))
    crop = image.resize((w, h), Image.Resampling.BICUBIC, box=(x0, y0, x0 + bw, y0 + bh))
    arr = np.asarray(crop)
    if flip and rng.random() < 0.5:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr)


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def _as_float(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float], n: int | None = None) -> Any:
    lo, hi = lo_hi
    return rng.uniform(lo, hi, n) if n is not None else float(rng.uniform(lo, hi))


def _splat(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, weights: np.ndarray) -> np.ndarray:
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


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cell: float = 48.0) -> np.ndarray:
    """Smooth random field in [-1, 1], features about ``cell`` px wide (coarse noise, upsampled)."""
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    coarse = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
    up = Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(up), -1.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# rain
# ----------------------------------------------------------------------------------------------------------


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
    b = _as_float(clean)
    h, w = b.shape[:2]

    # 1. sparse noise seeds over an enlarged frame, so that streaks also enter from outside the picture
    margin = p.length[1] / 2 + 2
    area = (h + 2 * margin) * (w + 2 * margin)
    n = int(rng.poisson(_uniform(rng, p.density) * area / 1e4))
    cy = rng.uniform(-margin, h + margin, n)
    cx = rng.uniform(-margin, w + margin, n)
    bright = _uniform(rng, p.brightness, n)
    seeds = _splat((h, w), np.round(cy), np.round(cx), bright)

    # 2. motion blur along one slant per image: a seed convolved with a line kernel is a segment, so draw the
    #    segments directly (exact, and each streak can have its own length and a small jitter of the angle)
    angle = _uniform(rng, (-p.angle, p.angle))
    theta = np.deg2rad(angle + p.jitter * rng.standard_normal(n))
    length = _uniform(rng, p.length, n)
    sigma = _uniform(rng, p.width)
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
    lines = _splat((h, w), ys, xs, weight)

    # 3. width: blur across (and slightly along) the streak
    streaks = np.clip(ndi.gaussian_filter(lines, sigma, mode="constant"), 0.0, 1.0)

    # 4. composite: additive (or screen) blend, optional atmospheric veil, clip
    s3 = streaks[..., None]
    rainy = b + s3 if p.blend == "add" else 1.0 - (1.0 - b) * (1.0 - s3)
    veil = _uniform(rng, p.veil) if p.veil[1] > 0 else 0.0
    if veil > 0:
        rainy = (1.0 - veil) * rainy + veil * _uniform(rng, p.veil_light)
    return RainResult(
        degraded=_to_uint8(rainy),
        clean=_to_uint8(b),
        seeds=seeds,
        streaks=streaks,
        mask=streaks >= 0.5 / 255,
        veil=veil,
        angle=angle,
        level=name,
    )


# ----------------------------------------------------------------------------------------------------------
# snow
# ----------------------------------------------------------------------------------------------------------


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
    grain: tuple[float, float] = (
        0.0,
        0.0,
    )  # std of the alpha of unresolved far flakes (a speckle), per image
    grain_size: float = 0.7  # Gaussian sigma of one speckle, px
    colour: tuple[float, float] = (0.88, 1.0)  # snow brightness; a slight blue tint is added per image
    blur: float = 0.0  # final Gaussian blur of the mask (optics), px


# Tuned so that mask_stats of a 480x640 synthetic mask matches the three real Snow100K masks in
# ../shared/data/snow100k_masks (light ~ beautiful_smile_00008, medium ~ 00001, heavy ~ 00006): mean alpha,
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
    layers: list[np.ndarray] = field(
        default_factory=list
    )  # flake alpha per depth, far to near (synthetic only)
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
    radius = _uniform(rng, layer.radius, n)
    opacity = _uniform(rng, layer.opacity, n)
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
    kernel = _splat(
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
    scale = _uniform(rng, p.density_scale)
    motion = _uniform(rng, p.motion)
    fall = np.deg2rad(_uniform(rng, (-p.wind, p.wind)))
    layers = [_flake_layer(rng, (h, w), layer, scale, motion, fall) for layer in p.layers]
    haze_mean = _uniform(rng, p.haze) if p.haze[1] > 0 else 0.0
    if haze_mean > 0:
        haze = np.clip(haze_mean * (1.0 + p.haze_variation * _smooth_field(rng, (h, w))), 0.0, 1.0)
    else:
        haze = np.zeros((h, w), np.float32)
    grain = _uniform(rng, p.grain) if p.grain[1] > 0 else 0.0
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
    b = _as_float(clean)
    a = np.asarray(alpha, np.float32)
    if a.shape != b.shape[:2]:
        raise ValueError(f"snow mask shape {a.shape} does not match the image {b.shape[:2]}")
    a = a[..., None]
    return _to_uint8(b * (1.0 - a) + a * np.asarray(colour, np.float32))


def _snow_colour(rng: np.random.Generator, p: SnowParams) -> tuple[float, float, float]:
    value, tint = _uniform(rng, p.colour), _uniform(rng, (0.0, 0.04))
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
    b = _as_float(clean)
    colour = _snow_colour(rng, p)
    if real_mask is not None:
        alpha = crop_snow_mask(real_mask, b.shape[:2], rng)
        return SnowResult(composite_snow(b, alpha, colour), _to_uint8(b), alpha, colour=colour, level="real")
    alpha, layers, haze = snow_alpha(b.shape[:2], rng, p)
    return SnowResult(composite_snow(b, alpha, colour), _to_uint8(b), alpha, layers, haze, colour, name)




def _mask_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def load_snow_masks(folder: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Real snow masks (e.g. Snow100K's, grayscale stored as RGB) in ``folder``: stem -> float32 alpha."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"snow mask folder {folder} does not exist; pass a folder of mask images")
    files = _mask_files(folder)
    if not files:
        raise FileNotFoundError(f"no mask images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    masks = {}
    for f in files:
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
    factor = min(1.0 / _uniform(rng, scale), mh / h, mw / w)
    bh, bw = h * factor, w * factor
    y0, x0 = float(rng.uniform(0, mh - bh)), float(rng.uniform(0, mw - bw))
    im = Image.fromarray(np.asarray(mask, np.float32), mode="F")
    out = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + bw, y0 + bh)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# mask statistics (synthetic against real snow)
# ----------------------------------------------------------------------------------------------------------

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
        "psnr": round(_psnr(degraded, clean), 2),
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


# ----------------------------------------------------------------------------------------------------------
# the demo dataset
# ----------------------------------------------------------------------------------------------------------

# Share of each preset in a generated set (rain: mostly Rain100L-like; snow: the three Snow100K sizes).
LEVEL_WEIGHTS: dict[str, dict[str, float]] = {
    "rain": {"light": 0.6, "heavy": 0.4},
    "snow": {"light": 1 / 3, "medium": 1 / 3, "heavy": 1 / 3},
}
# Input (degraded vs clean) PSNR in dB that each preset gives on average over the demo photographs (tested).
EXPECTED_PSNR: dict[str, dict[str, tuple[float, float]]] = {
    "rain": {"light": (23.0, 29.0), "heavy": (16.0, 21.0)},  # against Rain100L: compare_rain
    "snow": {"light": (24.0, 30.0), "medium": (20.0, 25.0), "heavy": (15.0, 20.0)},
}
from hw4lib.data import MANIFEST  # noqa: E402 -- written into every generated set: its settings

PNG_COMPRESS_LEVEL = 1  # explicit, so files are byte-identical for a seed; 1: fastest, as small as 6 here
_KIND_ID = {"rain": 1, "snow": 2}
# random streams: demo train / test images, images of scene-based sets (photos, study), the scene split draw
_SPLIT_ID = {"train": 0, "test": 1, "scenes": 2, "split": 3}


def _image_rng(seed: int, kind: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _KIND_ID[kind], _SPLIT_ID[split], index])


def _synthesize(
    kind: str,
    clean: np.ndarray,
    rng: np.random.Generator,
    masks: list[np.ndarray] | None,
    real_mask_fraction: float,
) -> tuple[np.ndarray, str]:
    """``kind`` on ``clean`` at a level drawn with :data:`LEVEL_WEIGHTS`: (degraded, level)."""
    levels = LEVEL_WEIGHTS[kind]
    level = str(rng.choice(list(levels), p=np.asarray(list(levels.values())) / sum(levels.values())))
    if kind == "rain":
        return add_rain(clean, rng, level).degraded, level
    if masks and rng.random() < real_mask_fraction:
        real = masks[int(rng.integers(len(masks)))]
        return add_snow(clean, rng, real_mask=real).degraded, "real"
    return add_snow(clean, rng, level).degraded, level


def _degrade(
    kind: str,
    rng: np.random.Generator,
    size: int,
    photos: Sequence[str],
    masks: list[np.ndarray] | None,
    real_mask_fraction: float,
) -> tuple[np.ndarray, np.ndarray, str]:
    clean = random_crop(rng, size, photos)
    degraded, level = _synthesize(kind, clean, rng, masks, real_mask_fraction)
    return degraded, clean, level


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr_uint8(a, b))


def _save_png(img: np.ndarray, path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    path.write_bytes(buf.getvalue())


def _summarise(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, np.float64)
    if arr.size == 0:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "mean": round(float(arr.mean()), 2),
        "min": round(float(arr.min()), 2),
        "max": round(float(arr.max()), 2),
    }


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; pass a folder for the demo dataset")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out} already exists and is not empty; pass overwrite=True (CLI: --force)"
            )
        if not (out / MANIFEST).is_file():
            raise FileExistsError(
                f"refusing to replace {out}: it was not made by demo-data (no synth.json); delete it yourself"
            )


@contextmanager
def staged_dataset(out: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder next to ``out`` to build a data set in: renamed to ``out`` when the block ends,
    deleted if it raises. A non-empty ``out`` is replaced only with ``overwrite`` and only when it holds a
    ``synth.json`` (a generated set)."""
    out = Path(out)
    _check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset gets a normal folder's permissions
    try:
        yield tmp
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def generate_demo_dataset(
    out: str | os.PathLike[str],
    pairs_per_type: int = 200,
    test_per_type: int = 20,
    size: int = 128,
    seed: int = 0,
    snow_masks: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    real_mask_fraction: float = 1.0,
) -> dict[str, Any]:
    """Write a rain + snow dataset in the course layout into ``out``; returns a summary (counts, PSNR, time).

    ``out/train/degraded/{rain,snow}-N.png`` with ``out/train/clean/{rain,snow}_clean-N.png`` (N from 1),
    ``out/test/degraded/K.png`` with the answers ``out/test/clean/K.png`` (K from 0, rain and snow shuffled),
    ``out/test/labels.csv`` (name, kind, level) and ``out/synth.json`` (settings and input PSNR per type).
    Train crops come from :data:`TRAIN_PHOTOS`, test crops from :data:`TEST_PHOTOS`. ``snow_masks``: a folder
    of real snow masks composited instead of synthetic ones (for a ``real_mask_fraction`` of the snow images).
    The set is built in a temporary folder next to ``out`` and renamed into place, so an interrupted run
    leaves nothing behind; an existing non-empty ``out`` is replaced only with ``overwrite=True``. Files are
    byte-identical for a seed.
    """
    start = time.perf_counter()
    out = Path(out)
    for label, value in (("pairs_per_type", pairs_per_type), ("test_per_type", test_per_type)):
        if int(value) != value or value < 0:
            raise ValueError(f"{label} must be a whole number >= 0, got {value!r}")
    if int(size) != size or size < 16:
        raise ValueError(f"size must be a whole number of pixels >= 16, got {size!r}")
    if not 0.0 <= real_mask_fraction <= 1.0:
        raise ValueError(f"real_mask_fraction must be in [0, 1], got {real_mask_fraction!r}")
    _check_out(out, overwrite)
    masks = list(load_snow_masks(snow_masks).values()) if snow_masks is not None else None
    train_photos, test_photos = available_photos(TRAIN_PHOTOS), available_photos(TEST_PHOTOS)
    if not train_photos or not test_photos:
        raise RuntimeError(
            "the sample photos of scikit-image/matplotlib are missing; reinstall those packages"
        )

    psnrs: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    with staged_dataset(out, overwrite) as tmp:
        for sub in ("train/degraded", "train/clean", "test/degraded", "test/clean"):
            (tmp / sub).mkdir(parents=True)
        for kind in KINDS:
            for i in range(1, pairs_per_type + 1):
                rng = _image_rng(seed, kind, "train", i)
                degraded, clean, level = _degrade(kind, rng, size, train_photos, masks, real_mask_fraction)
                _save_png(degraded, tmp / "train" / "degraded" / f"{kind}-{i}.png")
                _save_png(clean, tmp / "train" / "clean" / f"{kind}_clean-{i}.png")
                psnrs.setdefault(f"train/{kind}", []).append(_psnr(degraded, clean))
                psnrs.setdefault(f"train/{kind}/{level}", []).append(psnrs[f"train/{kind}"][-1])
            counts[f"train/{kind}"] = pairs_per_type
        # the course test set mixes both kinds under plain numbers: shuffle the kinds, deterministically
        test_kinds = list(
            np.random.default_rng([seed, 0, _SPLIT_ID["test"]]).permutation(
                ["rain"] * test_per_type + ["snow"] * test_per_type
            )
        )
        rows = []
        for k, kind in enumerate(test_kinds):
            rng = _image_rng(seed, kind, "test", k)
            degraded, clean, level = _degrade(kind, rng, size, test_photos, masks, real_mask_fraction)
            _save_png(degraded, tmp / "test" / "degraded" / f"{k}.png")
            _save_png(clean, tmp / "test" / "clean" / f"{k}.png")
            rows.append((f"{k}.png", kind, level))
            psnrs.setdefault(f"test/{kind}", []).append(_psnr(degraded, clean))
        counts["test"] = len(test_kinds)
        with open(tmp / "test" / "labels.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(("name", "kind", "level"))
            writer.writerows(rows)
        summary: dict[str, Any] = {
            "generator": "hw4lib.synth.generate_demo_dataset",
            "settings": {
                "pairs_per_type": pairs_per_type,
                "test_per_type": test_per_type,
                "size": size,
                "seed": seed,
                "snow_masks": [f.name for f in _mask_files(Path(snow_masks))] if snow_masks else None,
                "real_mask_fraction": real_mask_fraction if masks else None,
                "train_photos": train_photos,
                "test_photos": test_photos,
                "level_weights": LEVEL_WEIGHTS,
                "rain_presets": {k: asdict(v) for k, v in RAIN_PRESETS.items()},
                "snow_presets": {k: asdict(v) for k, v in SNOW_PRESETS.items()},
            },
            "counts": counts,
            "input_psnr_db": {
                key: _summarise(psnrs[key]) for key in sorted(psnrs, key=lambda k: (k.startswith("test"), k))
            },
        }
        (tmp / MANIFEST).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    summary["out"] = str(out)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def ensure_demo_dataset(path: str | os.PathLike[str] | None = None) -> Path:
    """The dataset folder ``path`` (default ``data/demo``); the demo set is generated if it is missing.

    Only the default location is generated, with the defaults of ``make demo-data`` (so every notebook sees
    the same files), under the output root (``hw4lib.paths.output``: the repository, or the tests'
    temporary folder, from where ``paths.resolve`` finds it); any other missing folder is an error that says
    where the data should be.
    """
    demo = paths.data_dir("demo")
    root = demo if path is None else paths.resolve(path)
    if root.is_dir() and any(root.iterdir()):
        return root
    if root.resolve() != demo.resolve():
        raise FileNotFoundError(
            f"dataset folder {root} not found: point data_dir at the extracted course data (layout "
            "train/degraded, train/clean, test/degraded), or make one: `python -m hw4lib demo-data --out DIR`"
        )
    target = paths.output(Path("data") / "demo")
    generate_demo_dataset(target, overwrite=False)
    return target


def demo_scenes(manifest: dict[str, Any]) -> dict[str, str] | None:
    """The photograph each training crop of a demo set was cut from (``"rain-3"`` -> ``"chelsea"``), worked
    out from the set's ``synth.json`` (seed, photos, counts); None when ``manifest`` is not a demo set's.

    Crops of one photograph share content: a split that keeps each photograph on one side keeps the
    validation scenes out of training.
    """
    settings = manifest.get("settings") or {}
    seed, photos, n = settings.get("seed"), settings.get("train_photos"), settings.get("pairs_per_type")
    if manifest.get("generator") != "hw4lib.synth.generate_demo_dataset" or not photos:
        return None
    if not isinstance(seed, int) or not isinstance(n, int):
        return None
    return {
        f"{kind}-{i}": _pick_photo(_image_rng(seed, kind, "train", i), photos)
        for kind in KINDS
        for i in range(1, n + 1)
    }


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``; an old ``out`` is moved aside, then deleted."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(old)
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# scene-based sets: every clean picture seen once with rain and once with snow, split by scene


@dataclass(frozen=True)
class Scene:
    """One clean picture of a scene-based set; ``real`` maps a degradation type to a real degraded version
    of it (pixel-aligned) that is kept instead of synthesized."""

    name: str  # where it came from (a file name), recorded in synth.json
    clean: Path
    real: dict[str, Path] = field(default_factory=dict)


def split_scenes(scenes: Sequence[Any], val_fraction: float, seed: int = 0) -> dict[Any, str]:
    """Each scene -> ``"train"`` or ``"val"``: ``round(n * val_fraction)`` scenes, drawn with ``seed``, go to
    val (at least one when there are two or more scenes and ``val_fraction > 0``; never all of them)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n = len(scenes)
    n_val = min(max(round(n * val_fraction), 1), n - 1) if val_fraction > 0 and n >= 2 else 0
    val = set(np.random.default_rng([seed, 0, _SPLIT_ID["split"]]).permutation(n)[:n_val].tolist())
    return {scene: "val" if i in val else "train" for i, scene in enumerate(scenes)}


def write_split(folder: str | os.PathLike[str], split: dict[str, str]) -> Path:
    """Write ``folder/split.csv`` (``name,split`` per degraded file stem, in the order of ``split``)."""
    path = Path(folder) / SPLIT_FILE
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("name", "split"))
        writer.writerows(split.items())
    return path


def _fit(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """``img`` downscaled (Lanczos) so that its longer side is at most ``max_side`` px."""
    h, w = img.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return img
    factor = max_side / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def _center(img: np.ndarray, crop: int | None) -> np.ndarray:
    """The central ``crop`` x ``crop`` window of ``img`` (all of a side shorter than ``crop``)."""
    if crop is None:
        return img
    h, w = img.shape[:2]
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    return img[top : top + crop, left : left + crop]


def write_scene_dataset(
    out: str | os.PathLike[str],
    scenes: Sequence[Scene],
    info: dict[str, Any],
    seed: int = 0,
    val_fraction: float = 0.2,
    max_side: int | None = None,
    crop: int | None = None,
    snow_masks: str | os.PathLike[str] | None = None,
    real_mask_fraction: float = 1.0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write every scene twice into ``out/train``, as ``rain-N`` and ``snow-N`` (N = 1, 2, ... in the order
    given), both with the clean picture as their twin; returns the summary also written as ``synth.json``.

    A degradation the scene has no ``real`` version of is synthesized at a level drawn as in the demo set,
    with one generator per (seed, type, N): byte-identical files for a seed. Pictures larger than
    ``max_side`` are downscaled, then ``crop`` keeps their central ``crop`` x ``crop`` window (both images of
    a pair, before any synthesis). ``split.csv`` puts
    ``val_fraction`` of the scenes (drawn with ``seed``) in val with both their versions. ``info`` (generator,
    source, ...) heads the summary. Built in a temporary folder and renamed into place (see
    :func:`staged_dataset`).
    """
    start = time.perf_counter()
    out = Path(out)
    if not scenes:
        raise ValueError("no scenes to write")
    if max_side is not None and (int(max_side) != max_side or max_side < 16):
        raise ValueError(f"max_side must be a whole number of pixels >= 16, got {max_side!r}")
    if crop is not None and (int(crop) != crop or crop < 16):
        raise ValueError(f"crop must be a whole number of pixels >= 16, got {crop!r}")
    if not 0.0 <= real_mask_fraction <= 1.0:
        raise ValueError(f"real_mask_fraction must be in [0, 1], got {real_mask_fraction!r}")
    split = split_scenes(range(1, len(scenes) + 1), val_fraction, seed)
    _check_out(out, overwrite)
    masks = list(load_snow_masks(snow_masks).values()) if snow_masks is not None else None
    psnrs: dict[str, list[float]] = {}
    counts: dict[str, Any] = {"scenes": len(scenes)}
    for kind in KINDS:
        counts[kind] = {part: sum(v == part for v in split.values()) for part in ("train", "val")}
    with staged_dataset(out, overwrite) as tmp:
        for sub in ("train/degraded", "train/clean"):
            (tmp / sub).mkdir(parents=True)
        for n, scene in enumerate(scenes, 1):
            clean = _center(_fit(load_image(scene.clean), max_side), crop)
            for kind in KINDS:
                if kind in scene.real:
                    real = scene.real[kind]
                    degraded, level = _center(_fit(load_image(real), max_side), crop), None
                    if degraded.shape != clean.shape:
                        (h, w), (ch, cw) = degraded.shape[:2], clean.shape[:2]
                        raise DataError(
                            f"{real} is {w}x{h} but its clean twin {scene.clean} is {cw}x{ch} (WxH): a pair "
                            "must be pixel-aligned; replace or remove the pair"
                        )
                else:
                    rng = _image_rng(seed, kind, "scenes", n)
                    degraded, level = _synthesize(kind, clean, rng, masks, real_mask_fraction)
                _save_png(degraded, tmp / "train" / "degraded" / f"{kind}-{n}.png")
                _save_png(clean, tmp / "train" / "clean" / f"{kind}_clean-{n}.png")
                value = _psnr(degraded, clean)
                psnrs.setdefault(kind, []).append(value)
                if level is not None:
                    psnrs.setdefault(f"{kind}/{level}", []).append(value)
        write_split(tmp, {f"{kind}-{n}": split[n] for kind in KINDS for n in split})
        synthesized = [k for k in KINDS if any(k not in scene.real for scene in scenes)]
        presets: dict[str, dict[str, Any]] = {"rain": RAIN_PRESETS, "snow": SNOW_PRESETS}
        summary: dict[str, Any] = {
            **info,
            "settings": {
                "seed": seed,
                "val_fraction": val_fraction,
                "max_side": max_side,
                "crop": crop,
                "snow_masks": [f.name for f in _mask_files(Path(snow_masks))] if snow_masks else None,
                "real_mask_fraction": real_mask_fraction if masks else None,
                "level_weights": {k: LEVEL_WEIGHTS[k] for k in synthesized},
                "presets": {k: {name: asdict(v) for name, v in presets[k].items()} for k in synthesized},
                "scenes": [scene.name for scene in scenes],
            },
            "counts": counts,
            "split": {"file": SPLIT_FILE, "by": "scene", "val_scenes": counts[KINDS[0]]["val"]},
            "input_psnr_db": {key: _summarise(psnrs[key]) for key in sorted(psnrs)},
        }
        (tmp / MANIFEST).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    summary["out"] = str(out)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _photo_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"photo folder {folder} does not exist; pass a folder of clean photographs")
    files = sorted(
        (f for f in folder.iterdir()
         if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda f: natural_key(f.name),
    )  # fmt: skip
    if not files:
        raise FileNotFoundError(
            f"no photographs ({', '.join(IMAGE_SUFFIXES)}) in {folder}; pass a folder of clean images"
        )
    return files


def generate_photo_dataset(
    photos: str | os.PathLike[str],
    out: str | os.PathLike[str],
    seed: int = 0,
    val_fraction: float = 0.2,
    max_side: int | None = None,
    snow_masks: str | os.PathLike[str] | None = None,
    real_mask_fraction: float = 1.0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Synthetic rain and snow over every clean photograph in ``photos`` (natural order, own size; larger
    than ``max_side`` px: downscaled), written by :func:`write_scene_dataset` with ``split.csv``."""
    folder = Path(photos)
    files = _photo_files(folder)
    o, f = Path(out).resolve(), folder.resolve()
    if o == f or o in f.parents:
        raise ValueError(f"{out}: the output folder must not be the photo folder or hold it; choose another")
    info = {
        "generator": "hw4lib.synth.generate_photo_dataset",
        "source": "photos",
        "photos": paths.relative(folder),
        "rain": "synthetic",
        "snow": "synthetic",
    }
    scenes = [Scene(p.name, p) for p in files]
    return write_scene_dataset(
        out, scenes, info, seed=seed, val_fraction=val_fraction, max_side=max_side, snow_masks=snow_masks,
        real_mask_fraction=real_mask_fraction, overwrite=overwrite,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# figures (notebooks/00_data.ipynb)


def show_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    size: float = 2.4,
) -> Any:
    """A grid of images (uint8 RGB, or float (H, W) maps in [0, 1] shown in grey); returns the figure."""
    import matplotlib.pyplot as plt

    nrows = max(1, int(np.ceil(len(images) / ncols)))
    h, w = np.asarray(images[0]).shape[:2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * h / w + 0.3), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= len(images):
            continue
        img = np.asarray(images[i])
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def show_pairs_zoomed(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, str]], zoom: int = 32, size: float = 2.4
) -> Any:
    """One row per (degraded, clean, title): both images with a box, and the boxed window of each enlarged."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(pairs), 4, figsize=(4 * size, len(pairs) * size + 0.3), squeeze=False)
    for row, (degraded, clean, title) in zip(axes, pairs, strict=True):
        y, x = most_degraded_window(degraded, clean, zoom)
        window = (slice(y, y + zoom), slice(x, x + zoom))
        panels = (degraded, clean, degraded[window], clean[window])
        names = (f"{title}: degraded", "clean", "degraded (zoom)", "clean (zoom)")
        for k, (ax, img, name) in enumerate(zip(row, panels, names, strict=True)):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.axis("off")
            if k < 2:
                ax.add_patch(
                    Rectangle((x - 0.5, y - 0.5), zoom, zoom, fill=False, edgecolor="yellow", lw=1.2)
                )
    fig.tight_layout()
    return fig
