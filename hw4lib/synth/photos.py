"""The clean pictures of the demo set: sample photographs bundled with installed packages, and random crops.

The photographs ship inside scikit-image and matplotlib and are read from the package folder only, never
fetched, so a machine without network access can still make the demo set.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "PHOTOS",
    "TRAIN_PHOTOS",
    "TEST_PHOTOS",
    "available_photos",
    "load_photo",
    "pick_photo",
    "random_crop",
]

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


def pick_photo(rng: np.random.Generator, names: Sequence[str]) -> str:
    """The first draw of a crop: which photograph (``demo_scenes`` repeats it to find a crop's photo)."""
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
    image = _photo_image(pick_photo(rng, names))
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
