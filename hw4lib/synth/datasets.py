"""The generated data sets: the demo set (crops of sample photographs) and scene-based sets (every clean
picture once with rain and once with snow, split by scene), built in a staging folder and renamed into place.

Everything is seeded: one ``numpy.random.Generator`` per image, derived from ``(seed, kind, split, index)``,
so a file does not change when the set around it grows, and the same call writes byte-identical files.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hw4lib import paths
from hw4lib.data import (
    IMAGE_SUFFIXES,
    KINDS,
    MANIFEST,
    SPLIT_FILE,
    DataError,
    center_crop,
    list_images,
    load_image,
)
from hw4lib.metrics import psnr_uint8
from hw4lib.synth.photos import TEST_PHOTOS, TRAIN_PHOTOS, available_photos, pick_photo, random_crop
from hw4lib.synth.rain import RAIN_PRESETS, add_rain
from hw4lib.synth.snow import SNOW_PRESETS, add_snow, list_snow_masks, load_snow_masks

__all__ = [
    "LEVEL_WEIGHTS",
    "PNG_COMPRESS_LEVEL",
    "generate_demo_dataset",
    "ensure_demo_dataset",
    "demo_scenes",
    "Scene",
    "split_scenes",
    "write_split",
    "write_scene_dataset",
    "generate_photo_dataset",
    "staged_dataset",
    "summarise",
]

# Share of each preset in a generated set (rain: mostly Rain100L-like; snow: the three Snow100K sizes).
LEVEL_WEIGHTS: dict[str, dict[str, float]] = {
    "rain": {"light": 0.6, "heavy": 0.4},
    "snow": {"light": 1 / 3, "medium": 1 / 3, "heavy": 1 / 3},
}
PNG_COMPRESS_LEVEL = 1  # explicit, so files are byte-identical for a seed; 1: fastest, as small as 6 here
_KIND_ID = {"rain": 1, "snow": 2}
# random streams: demo train / test images, images of scene-based sets (photos, study), the scene split draw
_SPLIT_ID = {"train": 0, "test": 1, "scenes": 2, "split": 3}
# (kind, rng) -> (degraded, clean, level): how the demo set draws one pair
_Draw = Callable[[str, np.random.Generator], tuple[np.ndarray, np.ndarray, str]]


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


def _save_pair(
    folder: Path, degraded_name: str, clean_name: str, degraded: np.ndarray, clean: np.ndarray
) -> float:
    """Write ``folder/degraded/degraded_name`` and ``folder/clean/clean_name``; returns their input PSNR."""
    paths.save_png_atomic(degraded, folder / "degraded" / degraded_name, compress_level=PNG_COMPRESS_LEVEL)
    paths.save_png_atomic(clean, folder / "clean" / clean_name, compress_level=PNG_COMPRESS_LEVEL)
    return float(psnr_uint8(degraded, clean))


def summarise(values: Sequence[float]) -> dict[str, float]:
    """``n``, ``mean``, ``min``, ``max`` of some values (input PSNRs in dB), rounded to 0.01 for a summary."""
    arr = np.asarray(values, np.float64)
    if arr.size == 0:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "mean": round(float(arr.mean()), 2),
        "min": round(float(arr.min()), 2),
        "max": round(float(arr.max()), 2),
    }


def _mask_names(snow_masks: str | os.PathLike[str] | None) -> list[str] | None:
    """The file names of the real masks a set was made with, for its summary."""
    return [f.name for f in list_snow_masks(snow_masks)] if snow_masks else None


def _check_fraction(real_mask_fraction: float) -> None:
    if not 0.0 <= real_mask_fraction <= 1.0:
        raise ValueError(f"real_mask_fraction must be in [0, 1], got {real_mask_fraction!r}")


# ----------------------------------------------------------------------------------------------------------
# staged writing: a set appears whole or not at all


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
# the demo set: seeded crops of the sample photographs


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


def _write_demo_test(tmp: Path, seed: int, per_type: int, draw: _Draw, psnrs: dict[str, list[float]]) -> int:
    """The test images (rain and snow shuffled under plain numbers) and ``test/labels.csv``; their count."""
    # the course test set mixes both kinds under plain numbers: shuffle the kinds, deterministically
    test_kinds = list(
        np.random.default_rng([seed, 0, _SPLIT_ID["test"]]).permutation(
            ["rain"] * per_type + ["snow"] * per_type
        )
    )
    rows = []
    for k, kind in enumerate(test_kinds):
        degraded, clean, level = draw(kind, _image_rng(seed, kind, "test", k))
        psnr = _save_pair(tmp / "test", f"{k}.png", f"{k}.png", degraded, clean)
        rows.append((f"{k}.png", kind, level))
        psnrs.setdefault(f"test/{kind}", []).append(psnr)
    with open(tmp / "test" / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("name", "kind", "level"))
        writer.writerows(rows)
    return len(test_kinds)


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

    ``train/degraded/{rain,snow}-N.png`` with ``train/clean/{rain,snow}_clean-N.png`` (N from 1) cut from
    :data:`TRAIN_PHOTOS`; ``test/degraded/K.png`` with the answers in ``test/clean/K.png`` (K from 0, rain and
    snow shuffled) and ``test/labels.csv`` (name, kind, level) from :data:`TEST_PHOTOS`; ``synth.json``
    (settings, input PSNR per type). ``snow_masks``: real masks composited for a ``real_mask_fraction`` of
    the snow images. Staged (:func:`staged_dataset`); an existing ``out`` is replaced only with ``overwrite``.
    """
    start = time.perf_counter()
    out = Path(out)
    for label, value in (("pairs_per_type", pairs_per_type), ("test_per_type", test_per_type)):
        if int(value) != value or value < 0:
            raise ValueError(f"{label} must be a whole number >= 0, got {value!r}")
    if int(size) != size or size < 16:
        raise ValueError(f"size must be a whole number of pixels >= 16, got {size!r}")
    _check_fraction(real_mask_fraction)
    _check_out(out, overwrite)
    masks = list(load_snow_masks(snow_masks).values()) if snow_masks is not None else None
    train_photos, test_photos = available_photos(TRAIN_PHOTOS), available_photos(TEST_PHOTOS)
    if not train_photos or not test_photos:
        raise RuntimeError(
            "the sample photos of scikit-image/matplotlib are missing; reinstall those packages"
        )

    recipe = {"size": size, "masks": masks, "real_mask_fraction": real_mask_fraction}
    draw_train: _Draw = partial(_degrade, photos=train_photos, **recipe)
    draw_test: _Draw = partial(_degrade, photos=test_photos, **recipe)
    psnrs: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    with staged_dataset(out, overwrite) as tmp:
        for sub in ("train/degraded", "train/clean", "test/degraded", "test/clean"):
            (tmp / sub).mkdir(parents=True)
        for kind in KINDS:
            for i in range(1, pairs_per_type + 1):
                degraded, clean, level = draw_train(kind, _image_rng(seed, kind, "train", i))
                psnr = _save_pair(tmp / "train", f"{kind}-{i}.png", f"{kind}_clean-{i}.png", degraded, clean)
                psnrs.setdefault(f"train/{kind}", []).append(psnr)
                psnrs.setdefault(f"train/{kind}/{level}", []).append(psnr)
            counts[f"train/{kind}"] = pairs_per_type
        counts["test"] = _write_demo_test(tmp, seed, test_per_type, draw_test, psnrs)
        summary: dict[str, Any] = {
            "generator": "hw4lib.synth.generate_demo_dataset",
            "settings": {
                "pairs_per_type": pairs_per_type,
                "test_per_type": test_per_type,
                "size": size,
                "seed": seed,
                "snow_masks": _mask_names(snow_masks),
                "real_mask_fraction": real_mask_fraction if masks else None,
                "train_photos": train_photos,
                "test_photos": test_photos,
                "level_weights": LEVEL_WEIGHTS,
                "rain_presets": {k: asdict(v) for k, v in RAIN_PRESETS.items()},
                "snow_presets": {k: asdict(v) for k, v in SNOW_PRESETS.items()},
            },
            "counts": counts,
            "input_psnr_db": {
                key: summarise(psnrs[key]) for key in sorted(psnrs, key=lambda k: (k.startswith("test"), k))
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
        f"{kind}-{i}": pick_photo(_image_rng(seed, kind, "train", i), photos)
        for kind in KINDS
        for i in range(1, n + 1)
    }


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


def _scene_degraded(
    scene: Scene,
    kind: str,
    clean: np.ndarray,
    rng: np.random.Generator,
    prepare: Callable[[np.ndarray], np.ndarray],
    masks: list[np.ndarray] | None,
    real_mask_fraction: float,
) -> tuple[np.ndarray, str | None]:
    """The ``kind`` version of a scene: its real one (``prepare``d like the clean picture; level None), or
    one synthesized over ``clean`` with ``rng``."""
    if kind not in scene.real:
        return _synthesize(kind, clean, rng, masks, real_mask_fraction)
    real = scene.real[kind]
    degraded = prepare(load_image(real))
    if degraded.shape != clean.shape:
        (h, w), (ch, cw) = degraded.shape[:2], clean.shape[:2]
        raise DataError(
            f"{real} is {w}x{h} but its clean twin {scene.clean} is {cw}x{ch} (WxH): a pair "
            "must be pixel-aligned; replace or remove the pair"
        )
    return degraded, None


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
    with one generator per (seed, type, N). Pictures larger than ``max_side`` are downscaled, then ``crop``
    keeps their central ``crop`` x ``crop`` window (both images of a pair, before any synthesis).
    ``split.csv`` puts ``val_fraction`` of the scenes (drawn with ``seed``) in val with both their versions.
    ``info`` (generator, source, ...) heads the summary. Staged (see :func:`staged_dataset`).
    """
    start = time.perf_counter()
    out = Path(out)
    if not scenes:
        raise ValueError("no scenes to write")
    if max_side is not None and (int(max_side) != max_side or max_side < 16):
        raise ValueError(f"max_side must be a whole number of pixels >= 16, got {max_side!r}")
    if crop is not None and (int(crop) != crop or crop < 16):
        raise ValueError(f"crop must be a whole number of pixels >= 16, got {crop!r}")
    _check_fraction(real_mask_fraction)
    split = split_scenes(range(1, len(scenes) + 1), val_fraction, seed)
    _check_out(out, overwrite)
    masks = list(load_snow_masks(snow_masks).values()) if snow_masks is not None else None
    prepare = lambda img: center_crop(_fit(img, max_side), crop)  # both images of a pair, alike
    psnrs: dict[str, list[float]] = {}
    counts: dict[str, Any] = {"scenes": len(scenes)}
    for kind in KINDS:
        counts[kind] = {part: sum(v == part for v in split.values()) for part in ("train", "val")}
    with staged_dataset(out, overwrite) as tmp:
        for sub in ("train/degraded", "train/clean"):
            (tmp / sub).mkdir(parents=True)
        for n, scene in enumerate(scenes, 1):
            clean = prepare(load_image(scene.clean))
            for kind in KINDS:
                rng = _image_rng(seed, kind, "scenes", n)
                degraded, level = _scene_degraded(scene, kind, clean, rng, prepare, masks, real_mask_fraction)
                value = _save_pair(tmp / "train", f"{kind}-{n}.png", f"{kind}_clean-{n}.png", degraded, clean)
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
                "snow_masks": _mask_names(snow_masks),
                "real_mask_fraction": real_mask_fraction if masks else None,
                "level_weights": {k: LEVEL_WEIGHTS[k] for k in synthesized},
                "presets": {k: {name: asdict(v) for name, v in presets[k].items()} for k in synthesized},
                "scenes": [scene.name for scene in scenes],
            },
            "counts": counts,
            "split": {"file": SPLIT_FILE, "by": "scene", "val_scenes": counts[KINDS[0]]["val"]},
            "input_psnr_db": {key: summarise(psnrs[key]) for key in sorted(psnrs)},
        }
        (tmp / MANIFEST).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    summary["out"] = str(out)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _photo_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"photo folder {folder} does not exist; pass a folder of clean photographs")
    files = list_images(folder)
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
