"""Restore and score: the one path from a model and paired images to per-image PSNR/SSIM and per-type means.

Training validates with it, the report evaluates checkpoints with it, the benchmarks score real pairs with it,
and ``python -m hw4lib score`` scores a submission file against clean images with the same per-image metrics.

- :func:`score_model` restores each degraded image (``hw4lib.infer.restore``: padding, optional TTA and
  tiles, mixed precision by the project's one policy) and scores it against its clean twin. ``quantize=True``
  rounds the output to 8 bit first, exactly as a submission file is scored.
- :func:`summarise` turns per-image rows into the means a run records: overall and per degradation type.
- :func:`score_predictions` scores restored images (a ``pred.npz``, a folder of PNGs or arrays in memory).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from hw4lib.data import KINDS, DataError, Pair, center_crop, list_images, load_image, short_list, to_tensor
from hw4lib.infer import TTA, SubmissionError, TensorFn, as_hwc, load_submission, restore
from hw4lib.metrics import psnr, ssim

__all__ = [
    "Sample",
    "ScoreResult",
    "samples_from_pairs",
    "samples_from_dataset",
    "image_scores",
    "score_model",
    "summarise",
    "score_predictions",
    "compare_scores",
]

COLUMNS = ["name", "kind", "psnr", "ssim"]


@dataclass(frozen=True)
class Sample:
    """One image pair to score: (1, 3, H, W) float tensors in [0, 1]."""

    name: str
    kind: str
    degraded: torch.Tensor
    clean: torch.Tensor


def samples_from_pairs(pairs: Iterable[Pair], crop: int | None = None) -> Iterator[Sample]:
    """Samples decoded from disk, one pair at a time."""
    for pair in pairs:
        x, y = (center_crop(to_tensor(load_image(p)), crop)[None] for p in (pair.degraded, pair.clean))
        yield Sample(pair.name, pair.kind, x, y)


def samples_from_dataset(dataset: Any, indices: Iterable[int], crop: int | None = None) -> Iterator[Sample]:
    """Samples from a ``hw4lib.data.PairedDataset`` (its decoded-image cache), by index."""
    for i in indices:
        item = dataset[i]
        x, y = (center_crop(item[key], crop)[None] for key in ("degraded", "clean"))
        yield Sample(item["name"], item["kind"], x, y)


def image_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """PSNR (dB) and SSIM of one (1, 3, H, W) prediction against its target, both in [0, 1]."""
    return {"psnr": float(psnr(pred, target)), "ssim": float(ssim(pred, target))}


def score_model(
    model: torch.nn.Module | TensorFn,
    samples: Iterable[Sample],
    *,
    tta: TTA = False,
    tile: int | None = None,
    quantize: bool = False,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    with_input: bool = False,
    on_restored: Callable[[Sample, torch.Tensor, dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Restore every sample and score it: one row per image with ``name, kind, psnr, ssim``.

    ``with_input`` adds ``input_psnr``/``input_ssim`` (the degraded image itself, the baseline to beat).
    ``quantize`` rounds the restored image to 8 bit before scoring (as a submission is scored). After each
    image, ``on_restored(sample, restored, row)`` may add columns to the row (e.g. prompt weights) or keep the
    image. The restored tensor is float32 in [0, 1], on ``device``.
    """
    rows = []
    for sample in tqdm(samples, desc="score", disable=not progress, leave=False):
        out = restore(model, sample.degraded, tta=tta, tile=tile, device=device, amp=amp)
        if quantize:
            out = out.mul(255.0).round().div(255.0)
        target = sample.clean.to(out.device)
        row: dict[str, Any] = {"name": sample.name, "kind": sample.kind, **image_scores(out, target)}
        if with_input:
            baseline = image_scores(sample.degraded.float().clamp(0, 1), sample.clean)
            row.update(input_psnr=baseline["psnr"], input_ssim=baseline["ssim"])
        if on_restored is not None:
            on_restored(sample, out, row)
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else COLUMNS)


def summarise(per_image: pd.DataFrame, prefix: str = "") -> dict[str, float]:
    """Mean ``psnr``/``ssim`` overall and per type (``psnr_rain``, ...), of the columns ``<prefix>psnr`` etc.

    Sums are taken per type in row order and then added, so the means do not depend on how the rows of the
    two types interleave. A type without images gets NaN.
    """
    sums = {kind: [0.0, 0.0, 0] for kind in KINDS}
    columns = per_image["kind"], per_image[f"{prefix}psnr"], per_image[f"{prefix}ssim"]
    for kind, p, s in zip(*columns, strict=True):
        if kind not in sums:
            raise ValueError(f"unknown degradation type {kind!r}; known: {', '.join(KINDS)}")
        sums[kind][0] += float(p)
        sums[kind][1] += float(s)
        sums[kind][2] += 1
    total = [sum(sums[kind][i] for kind in KINDS) for i in range(3)]
    nan = float("nan")
    out = {"psnr": total[0] / total[2] if total[2] else nan, "ssim": total[1] / total[2] if total[2] else nan}
    for kind in KINDS:
        n = sums[kind][2]
        out[f"psnr_{kind}"] = sums[kind][0] / n if n else nan
        out[f"ssim_{kind}"] = sums[kind][1] / n if n else nan
    return out


# ----------------------------------------------------------------------------------------------------------
# scoring restored images (a submission, a folder of PNGs)


@dataclass
class ScoreResult:
    """PSNR/SSIM per image (``per_image``: name, kind, psnr, ssim) with means overall and per degradation."""

    per_image: pd.DataFrame
    psnr: float = field(init=False)
    ssim: float = field(init=False)

    def __post_init__(self) -> None:
        self.psnr = float(self.per_image["psnr"].mean())
        self.ssim = float(self.per_image["ssim"].mean())

    @property
    def by_kind(self) -> pd.DataFrame:
        """Mean PSNR/SSIM and count per kind (rows ``rain``, ``snow``, ... when known) plus ``all``."""
        df = self.per_image
        rows = []
        if df["kind"].notna().any():
            for kind, g in df.dropna(subset=["kind"]).groupby("kind", sort=True):
                rows.append({"kind": kind, "n": len(g), "psnr": g["psnr"].mean(), "ssim": g["ssim"].mean()})
        rows.append({"kind": "all", "n": len(df), "psnr": self.psnr, "ssim": self.ssim})
        return pd.DataFrame(rows).set_index("kind")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: overall means and per-kind means."""
        return {
            "psnr": self.psnr,
            "ssim": self.ssim,
            "n": len(self.per_image),
            "by_kind": {
                kind: {"n": int(r.n), "psnr": float(r.psnr), "ssim": float(r.ssim)}
                for kind, r in self.by_kind.iterrows()
            },
        }

    def __str__(self) -> str:
        return self.by_kind.round({"psnr": 2, "ssim": 4}).to_markdown()


_KIND_FROM_NAME = re.compile(r"^(rain|snow)(?=[-_ .\d]|$)", re.IGNORECASE)


def _read_labels(labels: str | os.PathLike[str] | Mapping[str, str] | None, clean_dir: Path) -> dict:
    """``{stem: kind}`` from a mapping or a ``name,kind`` CSV; by default a ``labels.csv`` by the answers."""
    if isinstance(labels, Mapping):
        return {Path(str(k)).stem: str(v) for k, v in labels.items()}
    if labels is None:
        candidates = [clean_dir / "labels.csv", clean_dir.parent / "labels.csv"]
        labels = next((c for c in candidates if c.is_file()), None)
        if labels is None:
            return {}
    path = Path(labels)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"name", "kind"} <= set(reader.fieldnames):
            raise DataError(f"{path}: a labels file needs the columns name,kind (got {reader.fieldnames})")
        return {Path(row["name"]).stem: row["kind"] for row in reader}


def _kind_from_name(stem: str) -> str | None:
    match = _KIND_FROM_NAME.match(stem)
    return match.group(1).lower() if match else None


def _uint8_batch(img_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img_hwc.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]


def score_predictions(
    preds: str | os.PathLike[str] | Mapping[str, np.ndarray],
    clean_dir: str | os.PathLike[str],
    labels: str | os.PathLike[str] | Mapping[str, str] | None = None,
    names: Sequence[str] | None = None,
) -> ScoreResult:
    """PSNR and SSIM of restored images against clean images with the same file names.

    ``preds``: a submission ``.npz``, a folder of restored PNGs, or an in-memory ``{name: array}``.
    ``clean_dir``: the answers (``data/demo/test/clean``). The kind of each image (rain/snow) comes from
    ``labels`` (a ``name,kind`` CSV or a mapping; by default a ``labels.csv`` next to or above ``clean_dir``)
    or from file names starting with ``rain``/``snow``. PSNR is computed per image on [0, 1] pixels (data
    range 1) and then averaged, like the course leaderboard. Clean images without a prediction are an error;
    ``names`` restricts the score to these file names (stems work too).
    """
    clean_dir = Path(clean_dir)
    if isinstance(preds, Mapping):
        arrays = dict(preds)
    elif Path(preds).is_dir():
        arrays = {p.name: load_image(p) for p in list_images(Path(preds))}
    else:
        arrays = load_submission(preds)
    if not clean_dir.is_dir():
        raise DataError(f"clean folder {clean_dir} does not exist; pass the folder with the clean answers")
    clean_files = list_images(clean_dir)
    if names is not None:
        wanted = {Path(n).stem for n in names}
        clean_files = [p for p in clean_files if p.stem in wanted]
    by_stem = {Path(k).stem: k for k in arrays}
    missing = [p.name for p in clean_files if p.stem not in by_stem]
    if missing or not clean_files:
        raise DataError(
            f"{len(missing)} of {len(clean_files)} clean images in {clean_dir} have no prediction: "
            f"{short_list(missing)}; predictions hold {short_list(sorted(arrays))}"
        )
    kinds = _read_labels(labels, clean_dir)

    rows = []
    for p in clean_files:
        key = by_stem[p.stem]
        pred = as_hwc(key, np.asarray(arrays[key]))
        target = load_image(p)
        if pred.shape != target.shape:
            raise SubmissionError(f"{key}: prediction is {pred.shape[:2]} but {p} is {target.shape[:2]}")
        kind = kinds.get(p.stem) or _kind_from_name(p.stem)
        rows.append({"name": p.name, "kind": kind, **image_scores(_uint8_batch(pred), _uint8_batch(target))})
    return ScoreResult(pd.DataFrame(rows, columns=COLUMNS))


def compare_scores(results: Mapping[str, ScoreResult]) -> pd.DataFrame:
    """One row per labelled result (e.g. input / model / model + TTA): PSNR per kind and overall, and SSIM.

    The last column, ``gain_db``, is each row's PSNR gain over the first row.
    """
    rows = {}
    for label, result in results.items():
        table = result.by_kind
        row = {f"psnr_{kind}": float(table.loc[kind, "psnr"]) for kind in table.index if kind != "all"}
        row.update(psnr=result.psnr, ssim=result.ssim, n=len(result.per_image))
        rows[label] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame["gain_db"] = frame["psnr"] - frame["psnr"].iloc[0]
    return frame
