"""The loss study's data set: every scene seen twice, once with rain and once with snow, split by scene.

An all-in-one model has to tell the degradation apart from the picture under it. When rain and snow come from
different photographs, the prompts can learn the scene instead of the weather; here every clean picture is a
*scene* that appears as ``rain-N`` and as ``snow-N`` (both with the same clean twin), so only the degradation
differs. The split is by scene (``split.csv``, read by :func:`hw4lib.data.read_split`): both versions of a
validation scene are held out, so no validation picture is ever seen in training.

Source, best first:

- **Rain100L** (the folder ``rain100l=`` or ``$HW4_RAIN100L`` names, or any folder in its ``input/N.png`` +
  ``target/N.png`` mirror layout): its 100 *real* rain pairs are the rain type, the snow synthesizer of
  :mod:`hw4lib.synth` over the same 100 clean targets the snow type; 80/20 scenes by default.
- **the demo set** otherwise (``data/demo``, generated if missing, copied into the study folder): synthetic
  rain and snow over crops of sample photographs. Its rain and snow crops are different pictures, so the
  split keeps each source photograph on one side instead; the summary says so in its ``note``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from hw4lib import paths
from hw4lib.data import KINDS, MANIFEST, SPLIT_FILE, Pair, find_pairs, load_pair, split_pairs
from hw4lib.importers import LAYOUTS, find_source_pairs
from hw4lib.metrics import psnr_uint8
from hw4lib.synth import datasets

__all__ = ["STUDY_DIR", "STUDY_CROP", "RAIN100L_ENV", "default_rain100l", "build_study_dataset"]

STUDY_DIR = "data/study"  # where `python -m hw4lib study-data` writes the set by default
# Rain100L's photographs are 480x320: the study keeps their central 256 x 256 window, the course images' size,
# which also makes a validation pass (and the report's per-image probing) 2.3 times cheaper
STUDY_CROP = 256


RAIN100L_ENV = "HW4_RAIN100L"  # names a Rain100L copy (input/N.png + target/N.png) when none is passed


def default_rain100l() -> Path | None:
    """The Rain100L copy named by ``$HW4_RAIN100L`` (relative paths from the repository root), or None."""
    return paths.env_folder(RAIN100L_ENV)


def build_study_dataset(
    out: str | os.PathLike[str],
    rain100l: str | os.PathLike[str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    overwrite: bool = False,
    crop: int | None = STUDY_CROP,
) -> dict[str, Any]:
    """Build the study set in ``out`` and return its summary (also written as ``out/synth.json``).

    ``rain100l``: a folder in Rain100L's mirror layout (default: :func:`default_rain100l` when it exists,
    else the demo set with a ``note`` and a warning). The summary holds ``source`` (``"rain100l"``,
    ``"mirror"`` for another mirror folder, or ``"demo"``), ``counts`` per type and split, the input PSNR per
    type, ``out`` and ``seconds``. Rain100L pictures keep their central ``crop`` x ``crop`` window (None:
    whole pictures). An existing ``out`` is replaced only with ``overwrite`` (and only a generated set). Same
    inputs and seed: byte-identical files.
    """
    out = paths.resolve(out)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if rain100l is not None:
        src = paths.resolve(rain100l)
        if not src.is_dir():
            raise FileNotFoundError(
                f"Rain100L folder {src} does not exist; pass the folder holding input/ and target/"
            )
        return _from_mirror(src, out, seed, val_fraction, overwrite, crop)
    src = default_rain100l()
    if src is not None:
        return _from_mirror(src, out, seed, val_fraction, overwrite, crop)
    return _from_demo(out, seed, val_fraction, overwrite)


# ----------------------------------------------------------------------------------------------------------
# Rain100L (real rain) + synthetic snow over the same clean targets


def _from_mirror(
    src: Path, out: Path, seed: int, val_fraction: float, overwrite: bool, crop: int | None
) -> dict[str, Any]:
    pairs = find_source_pairs(src, LAYOUTS["mirror"])
    is_rain100l = src.name.lower() == "rain100l"
    label = "Rain100L" if is_rain100l else src.name
    window = f"; at most the central {crop} x {crop} px of each picture" if crop else ""
    info = {
        "generator": "hw4lib.synth.build_study_dataset",
        "source": "rain100l" if is_rain100l else "mirror",
        "description": (
            f"the loss study's set: the {len(pairs)} pairs of {label} as the rain type and synthetic snow "
            f"over the same {len(pairs)} clean photographs as the snow type, so every scene appears once "
            "with rain and once with snow"
        ),
        "rain": (
            f"{label}'s rain streaks, rendered over real photographs by its authors{window}"
            if is_rain100l
            else f"the degraded images of {label}{window}"
        ),
        "snow": f"synthesized by hw4lib.synth over the same clean photographs{window}",
        # repo-relative even outside the repository (../...): the summary is committed with the report
        "rain_source": Path(os.path.relpath(src, paths.repo_root())).as_posix(),
    }
    scenes = [datasets.Scene(p.key, p.clean, {"rain": p.degraded}) for p in pairs]
    return datasets.write_scene_dataset(out, scenes, info, seed=seed, val_fraction=val_fraction, crop=crop,
                                        overwrite=overwrite)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# fallback: the synthetic demo set


def _from_demo(out: Path, seed: int, val_fraction: float, overwrite: bool) -> dict[str, Any]:
    start = time.perf_counter()
    note = (
        f"the study runs on synthetic data (the demo set) because no Rain100L copy was given; pass "
        f"--rain100l DIR (rain100l=DIR) or set {RAIN100L_ENV}=DIR to study real rain"
    )
    warnings.warn(note, stacklevel=3)
    demo = datasets.ensure_demo_dataset()
    if out.resolve() == demo.resolve() or out.resolve() in demo.resolve().parents:
        raise ValueError(f"{out}: the study folder must not be the demo set {demo} or hold it; pick another")
    manifest_path = demo / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    pairs = find_pairs(demo)
    split, split_by = _demo_split(pairs, datasets.demo_scenes(manifest), val_fraction, seed)
    summary: dict[str, Any] = {
        "generator": "hw4lib.synth.build_study_dataset",
        "source": "demo",
        "rain": "synthetic",
        "snow": "synthetic",
        "note": note,
        "demo": {"path": paths.relative(demo), "settings": manifest.get("settings")},
        "settings": {"seed": seed, "val_fraction": val_fraction},
        "counts": _counts(pairs, split),
        "split": {"file": SPLIT_FILE, "by": split_by},
        "input_psnr_db": _input_psnr(pairs),
    }
    with datasets.staged_dataset(out, overwrite) as tmp:
        shutil.copytree(demo, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
        datasets.write_split(tmp, split)
        (tmp / MANIFEST).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    summary["out"] = str(out)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _demo_split(
    pairs: list[Pair], photo_of: dict[str, str] | None, val_fraction: float, seed: int
) -> tuple[dict[str, str], str]:
    """name -> train/val, by source photograph where the demo manifest tells it, else by pair (per kind)."""
    if photo_of is not None and all(p.name in photo_of for p in pairs):
        photos = list(dict.fromkeys(photo_of[p.name] for p in pairs))
        by_photo = datasets.split_scenes(photos, val_fraction, seed)
        return {p.name: by_photo[photo_of[p.name]] for p in pairs}, "photo"
    train, val = split_pairs(pairs, val_fraction=val_fraction, seed=seed)
    side = {p.name: "train" for p in train} | {p.name: "val" for p in val}
    return {p.name: side[p.name] for p in pairs}, "pair"


def _counts(pairs: list[Pair], split: dict[str, str]) -> dict[str, Any]:
    seen = Counter((p.kind, split[p.name]) for p in pairs)
    return {kind: {part: seen[(kind, part)] for part in ("train", "val")} for kind in KINDS}


def _input_psnr(pairs: list[Pair]) -> dict[str, dict[str, float]]:
    """Degraded-vs-clean PSNR per type: n, mean, min, max (dB), as the generated sets' summaries give it."""
    values: dict[str, list[float]] = {}
    for pair in pairs:
        values.setdefault(pair.kind, []).append(float(psnr_uint8(*load_pair(pair))))
    return {kind: datasets.summarise(v) for kind, v in sorted(values.items())}


