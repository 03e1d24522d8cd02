"""Where the remaining error sits: the squared error of a restored image split over four kinds of pixels.

:func:`error_classes` sorts the pixels of a pair (degraded, clean) into, in this order of precedence:

- ``edges``: the clean image's outlines and strong texture (Sobel gradient of its luma above
  :data:`EDGE_THRESHOLD`);
- ``degradation``: the rain streaks and snow flakes: where ``|degraded - clean|`` stands above its local
  background (a grey opening over :data:`BACKGROUND_SIZE` px) by more than :data:`STREAK_THRESHOLD`;
- ``veil``: changed smoothly by the degradation (that background above :data:`VEIL_THRESHOLD`): the haze of
  heavy snow; Rain100L's rain has none;
- ``flat``: the rest, untouched smooth regions.

A plain threshold on ``|degraded - clean|`` would call almost every pixel of a hazy snow image a flake; the
opening separates the thin, local streaks and flakes from the smooth veil under them.

:func:`error_shares` gives, per image, each class's share of the restored image's squared error
(``err_<class>``, summing to 1) and of the pixels (``px_<class>``), so a share can be held against its area;
``probe.evaluate_run`` stores them in ``per_image.csv``. :func:`error_location` averages them per loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from hw4lib.runs import Run
from hw4lib.study.images import worst_cases
from hw4lib.study.tables import study_arms

__all__ = [
    "EDGE_THRESHOLD", "STREAK_THRESHOLD", "VEIL_THRESHOLD", "BACKGROUND_SIZE", "CLASSES", "ERROR_COLUMNS",
    "PIXEL_COLUMNS", "error_classes", "error_shares", "has_error_shares", "error_location",
]  # fmt: skip

# Intensities in [0, 1] (x 255 = grey levels).
EDGE_THRESHOLD = 0.08  # Sobel |grad| / 8 of the clean luma: 20 grey levels a pixel, outlines and texture
STREAK_THRESHOLD = 0.06  # 15 grey levels above the local background: a streak or flake one can see
VEIL_THRESHOLD = 0.03  # a smooth change of 8 grey levels: a veil that visibly lowers the contrast
BACKGROUND_SIZE = 15  # px: wider than a streak and than most flakes, narrow enough to follow the haze
CLASSES = ("edges", "degradation", "veil", "flat")
ERROR_COLUMNS = tuple(f"err_{c}" for c in CLASSES)
PIXEL_COLUMNS = tuple(f"px_{c}" for c in CLASSES)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as the edge_y loss


def _maps(image: Any) -> torch.Tensor:
    """(1, 3, H, W) float64 in [0, 1] from a (1, 3, H, W) / (3, H, W) tensor or an (H, W, 3) array."""
    if isinstance(image, torch.Tensor):
        t = image.detach().to("cpu", torch.float64)
        return t if t.ndim == 4 else t[None]
    a = np.asarray(image)
    t = torch.from_numpy(a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0))
    return t.permute(2, 0, 1)[None]


def _sobel(y: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of (1, 1, H, W), kernels / 8 (a ramp of slope s gives s); edges replicated."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=y.dtype) / 8.0
    kernel = torch.stack([gx, gx.t()])[:, None]
    g = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), kernel)
    return g.pow(2).sum(1, keepdim=True).sqrt()


def _opening(x: torch.Tensor, size: int) -> torch.Tensor:
    """Grey opening (erosion, then dilation) of (1, 1, H, W) with a ``size`` x ``size`` square."""
    pad = size // 2
    eroded = -F.max_pool2d(-x, size, stride=1, padding=pad)  # pads with -inf: the borders see only pixels
    return F.max_pool2d(eroded, size, stride=1, padding=pad)[..., : x.shape[-2], : x.shape[-1]]


def error_classes(degraded: Any, clean: Any) -> dict[str, np.ndarray]:
    """The pixel classes of the module (``CLASSES``): (H, W) boolean masks that cover each pixel once."""
    x, y = _maps(degraded), _maps(clean)
    luma = (y * torch.tensor(LUMA, dtype=y.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    edges = _sobel(luma) > EDGE_THRESHOLD
    change = (x - y).abs().mean(1, keepdim=True)
    background = _opening(change, BACKGROUND_SIZE)
    degradation = (change - background > STREAK_THRESHOLD) & ~edges
    veil = (background > VEIL_THRESHOLD) & ~edges & ~degradation
    flat = ~(edges | degradation | veil)
    masks = {"edges": edges, "degradation": degradation, "veil": veil, "flat": flat}
    return {name: masks[name][0, 0].numpy() for name in CLASSES}


def error_shares(restored: Any, degraded: Any, clean: Any) -> dict[str, float]:
    """Each class's share of the squared error of ``restored`` against ``clean`` (summed over the colour
    channels), ``err_<class>``, and of the pixels, ``px_<class>``. The error shares are NaN for a perfect
    restoration. Images: (1, 3, H, W) or (3, H, W) tensors in [0, 1], or (H, W, 3) arrays (uint8, [0, 1])."""
    masks = error_classes(degraded, clean)
    error = (_maps(restored) - _maps(clean)).pow(2).sum(1)[0].numpy()
    total = float(error.sum())
    out = {}
    for name in CLASSES:
        out[f"err_{name}"] = float(error[masks[name]].sum()) / total if total > 0 else float("nan")
    for name in CLASSES:
        out[f"px_{name}"] = float(masks[name].mean())
    return out


def has_error_shares(per_image: pd.DataFrame | None) -> bool:
    """Whether an evaluation holds the error-location columns (evaluations before them do not)."""
    return per_image is not None and set(ERROR_COLUMNS + PIXEL_COLUMNS) <= set(per_image.columns)


def _dominant(shares: pd.Series | dict[str, float], prefix: str) -> str | None:
    """The class with the largest ``<prefix><class>`` share (None when all are NaN)."""
    values = {c: float(shares[f"{prefix}{c}"]) for c in CLASSES}
    values = {c: v for c, v in values.items() if not np.isnan(v)}
    return max(values, key=values.__getitem__) if values else None


def error_location(runs: Sequence[Run], kind: str | None = None) -> pd.DataFrame | None:
    """Per loss of the comparison (``tables.study_arms``; index: the loss label): where its remaining error
    sits, over its evaluated images of type ``kind`` (default: all) and seeds.

    Columns: ``images`` (image-seed evaluations), the mean shares ``err_<class>`` and ``px_<class>`` (classes
    :data:`CLASSES`), ``where`` (the class with the largest mean error share), ``excess_<class>`` (error share
    / pixel share: above 1, the class holds more than its area's part of the error); and its worst case
    (``images.worst_cases``: the image restored furthest below its input): ``worst_run``, ``worst_name``,
    ``worst_change`` (dB), ``worst_err_<class>``, ``worst_where``. ``None`` when no run's evaluation has the
    columns (snapshots evaluated before them); a loss whose runs lack them is left out.
    """
    worst = {case.loss: case for case in worst_cases(runs, kind=kind)}
    rows = {}
    for arm in study_arms(runs).values():
        frames = [r.per_image for r in arm if has_error_shares(r.per_image)]
        if not frames:
            continue
        df = pd.concat(frames, ignore_index=True)
        if kind is not None:
            df = df[df["kind"] == kind]
        if df.empty:
            continue
        mean = df[list(ERROR_COLUMNS + PIXEL_COLUMNS)].mean()
        row: dict[str, Any] = {"images": len(df), **mean.to_dict(), "where": _dominant(mean, "err_")}
        for c in CLASSES:
            px = mean[f"px_{c}"]
            row[f"excess_{c}"] = float(mean[f"err_{c}"] / px) if px > 0 else float("nan")
        label = arm[0].label
        case = worst.get(label)
        if case is not None and has_error_shares(case.run.per_image):
            row |= {"worst_run": case.run.name, "worst_name": case.row["name"], "worst_change": case.change}
            row |= {f"worst_err_{c}": float(case.row[f"err_{c}"]) for c in CLASSES}
            row["worst_where"] = _dominant(case.row, "err_")
        rows[label] = row
    if not rows:
        return None
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "loss"
    return table
