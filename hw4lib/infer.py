"""Inference: restore images of any size, self-ensemble TTA, tiling, the course submission file and its score.

The course (``hw4_realse_dataset``) takes a NumPy ``pred.npz`` whose keys are the test file names
(``"0.png"``, ...) and whose values are ``uint8`` arrays shaped ``(3, H, W)`` at each test image's original
size, and ranks it by PSNR against hidden clean images. This module

- restores a single image or a batch of any size (reflect-padded to a multiple of 8, cropped back, clamped),
- averages the 8 flips/rotations of the input (the "self-ensemble" of Lim et al., EDSR, CVPR-W 2017),
- cuts images too large for memory into overlapping tiles and blends them with a smooth window,
- writes, checks and scores the submission file; ``python -m hw4lib predict`` / ``score`` wrap it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm import tqdm  # plain: tqdm.auto warns in kernels without ipywidgets

from hw4lib import paths
from hw4lib.data import DataError, load_image
from hw4lib.io import atomic_write, save_png_atomic, write_text_atomic
from hw4lib.metrics import psnr, psnr_uint8, ssim

__all__ = [
    "DIHEDRAL",
    "IMAGE_SUFFIXES",
    "ScoreResult",
    "SubmissionError",
    "add_commands",
    "check_submission",
    "compare_scores",
    "dihedral",
    "evaluate_pairs",
    "inverse_dihedral",
    "list_test_images",
    "load_model",
    "load_submission",
    "pad_to_multiple",
    "plot_before_after",
    "predict_dir",
    "restore",
    "save_submission",
    "score",
    "write_submission",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The 8 symmetries of the square (dihedral group D4): k quarter turns after an optional left-right flip.
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, flip) for flip in (False, True) for k in range(4))
# Self-ensembles: the 8 flips/rotations, or the left-right mirror alone. Rain streaks have a direction: a
# model trained without rotations (the demo recipe) restores 90-degree-rotated rain badly; on Rain100L the
# 8-way ensemble cost 2.4-3.5 dB where the mirror gained 0.2 (benchmarks/rain100l_budget.py).
TTA_MODES: dict[str, tuple[tuple[int, bool], ...]] = {"x8": DIHEDRAL, "hflip": ((0, False), (0, True))}
TTA = bool | str | None  # False/None: off; True or "x8": 8 flips/rotations; "hflip": mirror only
PAD_MULTIPLE = 8  # PromptIR downsamples 3 times by 2 (pixel-unshuffle), so H and W must divide by 8
FALLBACK_TILE, MIN_FALLBACK_TILE = 512, 64  # tiles tried when a whole image does not fit in GPU memory

TensorFn = Callable[[torch.Tensor], torch.Tensor]


class SubmissionError(ValueError):
    """A submission file that the course server would reject; the message lists every problem."""


# ----------------------------------------------------------------------------------------------------
# helpers: padding, flips/rotations, tiling windows
# ----------------------------------------------------------------------------------------------------


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Pad the bottom and right of ``(..., H, W)`` so that H and W divide by ``multiple``.

    Reflect padding (a mirror continues the image without a hard edge); images smaller than the pad fall back
    to replicate padding, which torch allows at any size. Crop back with ``y[..., :H, :W]``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    batched = x if x.ndim == 4 else x.reshape(-1, *x.shape[-3:])
    out = F.pad(batched, (0, pw, 0, ph), mode=mode)
    return out.reshape(*x.shape[:-2], h + ph, w + pw)


def dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """One of 8 flips/rotations of the last two axes: optional left-right flip, then ``k`` quarter turns."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1))


def inverse_dihedral(y: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Undo :func:`dihedral`: ``inverse_dihedral(dihedral(x, k, f), k, f) == x``."""
    y = torch.rot90(y, -k, dims=(-2, -1))
    return y.flip(-1) if flip else y


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Offsets of tiles of size ``tile`` covering ``[0, length)``; overlapping by ``overlap`` or more."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    return [*range(0, length - tile, stride), length - tile]


def _edge_profile(overlap: int) -> torch.Tensor:
    """Weights from a tile's inner edge inwards: zero over a margin, then a raised-cosine ramp up to one.

    The margin (``overlap // 4`` pixels) is where a tile's output is unreliable because the model saw past the
    tile's edge; zero weight there makes tiling exact for models whose receptive field fits in the margin. Two
    opposite ramps of neighbouring tiles sum to one (``0.5 - 0.5 cos`` is symmetric about its midpoint).
    """
    margin = overlap // 4
    ramp = overlap - 2 * margin
    rise = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp, dtype=torch.float64) + 0.5) / max(ramp, 1))
    return torch.cat([torch.zeros(margin, dtype=torch.float64), rise])


def _window_1d(size: int, overlap: int, inner_start: bool, inner_end: bool) -> torch.Tensor:
    """A tile's weight along one axis; only edges inside the image (``inner_*``) are tapered."""
    w = torch.ones(size, dtype=torch.float64)
    profile = _edge_profile(overlap)[:size]
    n = len(profile)
    if n and inner_start:
        w[:n] *= profile
    if n and inner_end:
        w[size - n :] *= profile.flip(0)
    return w


# ----------------------------------------------------------------------------------------------------
# the forward passes: padded -> (TTA) -> (tiled)
# ----------------------------------------------------------------------------------------------------


def _padded(model: TensorFn, multiple: int) -> TensorFn:
    def run(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return model(pad_to_multiple(x, multiple))[..., :h, :w].float()

    return run


def tta_transforms(tta: TTA) -> tuple[tuple[int, bool], ...]:
    """The (quarter turns, flip) pairs a ``tta`` setting averages over; () when it is off."""
    if tta is None or tta is False:
        return ()
    if tta is True:
        return DIHEDRAL
    if isinstance(tta, str) and tta in TTA_MODES:
        return TTA_MODES[tta]
    raise ValueError(f"tta must be False, True, or one of {sorted(TTA_MODES)}; got {tta!r}")


def _self_ensemble(fn: TensorFn, transforms: Sequence[tuple[int, bool]] = DIHEDRAL) -> TensorFn:
    """Average of ``inverse(fn(transform(x)))`` over ``transforms`` (default: the 8 flips/rotations)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        total = None
        for k, flip in transforms:
            y = inverse_dihedral(fn(dihedral(x, k, flip)), k, flip)
            total = y if total is None else total + y
        return total / len(transforms)

    return run


def _tiled(
    fn: TensorFn, x: torch.Tensor, tile: int, overlap: int, multiple: int, tile_batch: int, progress: bool
) -> torch.Tensor:
    """Run ``fn`` on overlapping tiles of the padded ``x`` (B, C, H, W), blended with a smooth window."""
    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, multiple)
    hp, wp = xp.shape[-2:]
    tile = math.ceil(tile / multiple) * multiple  # tiles are multiples of 8: no padding inside a tile
    th, tw = min(tile, hp), min(tile, wp)
    ys, xs = _tile_starts(hp, th, overlap), _tile_starts(wp, tw, overlap)
    boxes = [(y, x0) for y in ys for x0 in xs]

    out = None
    weight = torch.zeros(1, 1, hp, wp, dtype=torch.float32, device=x.device)
    bar = tqdm(total=len(boxes), desc="tiles", unit="tile", disable=not progress, leave=False)
    for i in range(0, len(boxes), tile_batch):
        chunk = boxes[i : i + tile_batch]
        batch = torch.cat([xp[..., y : y + th, x0 : x0 + tw] for y, x0 in chunk])
        pred = fn(batch).split(x.shape[0])
        for (y, x0), p in zip(chunk, pred, strict=True):
            wy = _window_1d(th, overlap, y > 0, y + th < hp)
            wx = _window_1d(tw, overlap, x0 > 0, x0 + tw < wp)
            win = (wy[:, None] * wx[None, :]).to(device=x.device, dtype=torch.float32)
            if out is None:
                out = torch.zeros(x.shape[0], p.shape[1], hp, wp, dtype=torch.float32, device=x.device)
            out[..., y : y + th, x0 : x0 + tw] += p * win
            weight[..., y : y + th, x0 : x0 + tw] += win
        bar.update(len(chunk))
    bar.close()
    if bool((weight <= 0).any()):  # cannot happen with overlap < tile; a guard against a silent black seam
        raise RuntimeError(f"tiling left pixels uncovered (tile={tile}, overlap={overlap}, image {h}x{w})")
    return (out / weight)[..., :h, :w]


def _model_device(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            return t.device
    return torch.device("cpu")


def _autocast(device: torch.device, amp: bool | None) -> contextlib.AbstractContextManager:
    """Mixed precision: float16 on CUDA (on by default there), bfloat16 elsewhere (off unless asked)."""
    if not _autocast_enabled(device, amp):
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def _restore_batch(
    model: Any,
    x: torch.Tensor,
    *,
    tta: TTA,
    tile: int | None,
    tile_overlap: int,
    device: torch.device,
    amp: bool | None,
    multiple: int,
    tile_batch: int,
    progress: bool,
) -> torch.Tensor:
    """(B, 3, H, W) float in [0, 1] on any device -> restored float32 on ``device``, clamped to [0, 1].

    Two safety nets: a CUDA out-of-memory error on a whole image retries it in tiles (512 px, halved while it
    still does not fit, down to 64); float16 overflow (inf/NaN in the output) retries in float32.
    """
    fn = _padded(model, multiple)
    transforms = tta_transforms(tta)
    if transforms:
        fn = _self_ensemble(fn, transforms)
    x = x.to(device=device, dtype=torch.float32)

    def run(mixed: bool | None, tile: int | None, overlap: int) -> torch.Tensor:
        with torch.no_grad(), _autocast(device, mixed):
            if tile is None:
                return fn(x)
            return _tiled(fn, x, tile, overlap, multiple, tile_batch, progress)

    try:
        y = run(amp, tile, tile_overlap)
    except torch.cuda.OutOfMemoryError:
        if tile is not None and tile <= MIN_FALLBACK_TILE:
            raise
        y = None
    fallback = FALLBACK_TILE if tile is None else tile // 2
    while y is None:  # out of memory: smaller and smaller tiles
        _empty_cache(device)
        try:
            y = run(amp, fallback, min(tile_overlap, fallback // 4))
        except torch.cuda.OutOfMemoryError:
            if fallback <= MIN_FALLBACK_TILE:
                raise
            fallback //= 2
        else:
            warnings.warn(f"out of GPU memory on {tuple(x.shape)}: ran {fallback} px tiles", stacklevel=2)
    if not bool(torch.isfinite(y).all()) and _autocast_enabled(device, amp):
        warnings.warn("mixed precision overflowed (inf/NaN in the output); recomputing in fp32", stacklevel=2)
        y = run(False, tile, tile_overlap)
    return y.float().clamp(0.0, 1.0)


def _autocast_enabled(device: torch.device, amp: bool | None) -> bool:
    return device.type == "cuda" if amp is None else bool(amp)


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------------
# public: restore one image or a batch
# ----------------------------------------------------------------------------------------------------


def _numpy_to_batch(image: np.ndarray) -> torch.Tensor:
    """HWC/HW numpy (uint8, uint16 or float in [0, 1]; 1, 3 or 4 channels) -> (1, 3, H, W) float32."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"restore expects a numpy image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {arr.shape}; "
            "load files with hw4lib.data.load_image"
        )
    if arr.dtype == np.uint8:
        scaled = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        scaled = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        scaled = arr.astype(np.float32)
    else:
        raise ValueError(f"restore expects uint8, uint16 or float pixels, got {arr.dtype}")
    if scaled.shape[2] == 1:
        scaled = np.repeat(scaled, 3, axis=2)
    scaled = scaled[:, :, :3]  # drop alpha
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))[None]


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float in [0, 1] -> uint8 by rounding (the inverse of ``/ 255``)."""
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def restore(
    model: nn.Module | TensorFn,
    image: torch.Tensor | np.ndarray,
    *,
    tta: TTA = False,
    tile: int | None = None,
    tile_overlap: int = 32,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    batch_size: int | None = None,
    tile_batch: int = 4,
    multiple: int = PAD_MULTIPLE,
    progress: bool = False,
) -> torch.Tensor | np.ndarray:
    """Restore an image of any size; returns the same type and layout as the input, clamped to [0, 1].

    ``image``: a float tensor (3, H, W) or (B, 3, H, W) in [0, 1] (a uint8 tensor is read as /255 and
    returned as uint8), or a numpy image (H, W, 3) uint8 (also (H, W) grayscale, RGBA, uint16 or float in
    [0, 1]; numpy results are always (H, W, 3), uint8 for integer inputs and float32 for float inputs).

    The input is reflect-padded to a multiple of 8 and the output cropped back. ``tta=True`` (or
    ``"x8"``) averages the model over the 8 flips/rotations (8x slower; typically a few tenths of a dB for a
    model trained with flips and rotations), ``tta="hflip"`` over the image and its left-right mirror (2x;
    the safe choice for rain when training did not rotate: streaks keep their direction). ``tile=N`` processes
    N x N
    tiles (rounded up to a multiple of 8) overlapping by ``tile_overlap`` pixels, ``tile_batch`` tiles per
    forward, blended by a window that is zero over the outer ``tile_overlap // 4`` pixels of each inner tile
    edge and ramps smoothly (raised cosine) to one. For a *local* model (a conv net whose receptive-field
    radius is at most ``tile_overlap // 4``) the tiled result equals the untiled one up to float rounding.
    PromptIR is not local: its transposed (channel) attention and the prompt block's global average pooling
    summarise the whole input, so each tile sees slightly different statistics and tiled != untiled exactly
    (close, not equal); use tiles only when the whole image does not fit in memory, as large as it allows.

    ``device``: where to run (default: the model's device; the model is moved there in place). ``amp``: mixed
    precision (default on for CUDA, float16; ``amp=True`` on CPU uses bfloat16). ``batch_size`` splits a large
    batch. The model is put in eval mode for the call and restored to its previous mode afterwards.
    """
    if tile is not None and not 0 <= tile_overlap < tile:
        raise ValueError(f"tile_overlap must be in [0, tile), got overlap={tile_overlap}, tile={tile}")
    dev = torch.device(device) if device is not None else _model_device(model)
    if device is not None and isinstance(model, nn.Module):
        model.to(dev)

    if isinstance(image, np.ndarray):
        x = _numpy_to_batch(image)
        unpack: Callable[[torch.Tensor], Any]
        if np.issubdtype(image.dtype, np.floating):
            unpack = lambda y: y[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
        else:
            unpack = lambda y: _to_uint8(y[0]).permute(1, 2, 0).cpu().numpy()
    elif isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"restore expects a tensor (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
        x = image if image.ndim == 4 else image[None]
        src_device, src_dtype, single = image.device, image.dtype, image.ndim == 3
        if src_dtype == torch.uint8:
            x = x.float() / 255.0

        def unpack(y: torch.Tensor) -> torch.Tensor:
            y = _to_uint8(y) if src_dtype == torch.uint8 else y.to(src_dtype)
            y = y.to(src_device)
            return y[0] if single else y
    else:
        raise TypeError(f"restore expects a torch.Tensor or numpy array, got {type(image).__name__}")

    step = batch_size or x.shape[0]
    parts = []
    with _eval_mode(model):
        for i in range(0, x.shape[0], step):
            parts.append(
                _restore_batch(
                    model, x[i : i + step], tta=tta, tile=tile, tile_overlap=tile_overlap, device=dev,
                    amp=amp, multiple=multiple, tile_batch=tile_batch, progress=progress,
                )
            )
    return unpack(torch.cat(parts))


# ----------------------------------------------------------------------------------------------------
# public: test folders, predictions, the submission file
# ----------------------------------------------------------------------------------------------------


def _natural_key(path: Path) -> tuple:
    """Sort ``2.png`` before ``10.png``; names that are not numbers after the numbers, alphabetically."""
    parts = re.split(r"(\d+)", path.stem)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p) + (path.suffix,)


def _images_in(folder: Path) -> list[Path]:
    found = (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    return sorted((p for p in found if p.is_file()), key=_natural_key)


def list_test_images(test_dir: str | os.PathLike[str]) -> list[Path]:
    """The images to restore, in natural order (``0.png, 1.png, ..., 10.png``).

    ``test_dir`` may hold the images itself, or be the ``test`` folder (images in ``test/degraded``) or the
    dataset root (``ROOT/test/degraded``).
    """
    root = Path(test_dir)
    if not root.is_dir():
        raise DataError(f"test folder {root} does not exist; pass the folder with the degraded test images")
    for folder in (root, root / "degraded", root / "test" / "degraded"):
        if folder.is_dir():
            found = _images_in(folder)
            if found:
                return found
    raise DataError(
        f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}, {root / 'degraded'} or "
        f"{root / 'test' / 'degraded'}; pass the folder with the degraded test images"
    )


def _image_hw(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, with an error naming the file when it is not a readable image."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path}: not a readable image ({err}); replace or remove the file") from err
    return h, w


def predict_dir(
    model: nn.Module | TensorFn,
    test_dir: str | os.PathLike[str],
    *,
    tta: TTA = False,
    tile: int | None = None,
    tile_overlap: int = 32,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Restore every test image: ``{file name: (3, H, W) uint8}`` in the submission layout, in natural order.

    Images of the same size go through the model ``batch_size`` at a time (worth it on a GPU). Every file's
    header is read first, so an unreadable file stops the run at once, named, before any compute. ``names``
    restricts the run to these file names (a quick look at a subset; a submission needs them all).
    """
    files = list_test_images(test_dir)
    if names is not None:
        unknown = sorted(set(names) - {p.name for p in files})
        if unknown:
            raise DataError(f"not in {test_dir}: {_short_list(unknown)}")
        files = [p for p in files if p.name in set(names)]
    sizes = {p: _image_hw(p) for p in files}
    groups: dict[tuple[int, int], list[Path]] = {}
    for p in files:
        groups.setdefault(sizes[p], []).append(p)

    preds: dict[str, np.ndarray] = {}
    n_views = len(tta_transforms(tta))
    desc = "restore" + (f" +TTA {n_views}x" if n_views else "")
    bar = tqdm(total=len(files), desc=desc, unit="img", disable=not progress)
    for group in groups.values():
        for i in range(0, len(group), max(1, batch_size)):
            chunk = group[i : i + max(1, batch_size)]
            arrays = [load_image(p) for p in chunk]  # DataError names the file
            for p, a in zip(chunk, arrays, strict=True):
                if a.shape[:2] != sizes[p]:
                    raise DataError(f"{p}: header says {sizes[p]} but the decoded image is {a.shape[:2]}")
            x = torch.cat([_numpy_to_batch(a) for a in arrays])
            y = restore(model, x, tta=tta, tile=tile, tile_overlap=tile_overlap, device=device, amp=amp)
            for p, out in zip(chunk, _to_uint8(y).cpu().numpy(), strict=True):
                preds[p.name] = np.ascontiguousarray(out)
            bar.update(len(chunk))
    bar.close()
    return {p.name: preds[p.name] for p in files}


def save_submission(preds: Mapping[str, np.ndarray], out: str | os.PathLike[str] = "pred.npz") -> Path:
    """Write ``{name: (3, H, W) uint8}`` as a compressed ``.npz``, atomically (temp file + ``os.replace``)."""
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"the submission file must end in .npz, got {out}")
    for name, arr in preds.items():
        ok = isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[0] == 3
        if not ok:
            got = getattr(arr, "dtype", type(arr).__name__), getattr(arr, "shape", None)
            raise SubmissionError(f"{name}: expected a (3, H, W) uint8 array, got {got}")
    with atomic_write(out, "wb") as f:
        np.savez_compressed(f, **dict(preds))
    return out


def write_submission(
    model: nn.Module | TensorFn,
    test_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] = "pred.npz",
    *,
    tta: TTA = False,
    png_dir: str | os.PathLike[str] | None = None,
    tile: int | None = None,
    tile_overlap: int = 32,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
) -> Path:
    """Restore the test set and write the course submission ``out`` (and restored PNGs to ``png_dir``).

    Nothing is written until every image is restored, and ``out`` is replaced atomically: an interrupted run
    never leaves a half-written ``pred.npz`` (a previous one stays as it was). Returns the path of ``out``.
    """
    preds = predict_dir(
        model, test_dir, tta=tta, tile=tile, tile_overlap=tile_overlap, batch_size=batch_size, device=device,
        amp=amp, progress=progress,
    )
    path = save_submission(preds, out)
    if png_dir is not None:
        for name, arr in preds.items():
            save_png_atomic(arr.transpose(1, 2, 0), Path(png_dir) / (Path(name).stem + ".png"))
    return path


def load_submission(npz: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A submission's arrays, ``{name: array}``; ``SubmissionError`` when it is not a readable npz."""
    path = Path(npz)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as err:  # zipfile.BadZipFile, ValueError (pickled objects), OSError, ...
        raise SubmissionError(f"{path}: not a readable .npz ({err}); write it with hw4lib.infer") from err


def check_submission(
    npz: str | os.PathLike[str] | Mapping[str, np.ndarray],
    test_dir: str | os.PathLike[str],
    *,
    strict: bool = False,
) -> list[str]:
    """Every problem the course server would reject, as readable lines; empty when the file is valid.

    Checks: readable npz, no missing and no extra keys (the test file names), ``uint8``, 3 dimensions, shape
    ``(3, H, W)`` of the matching test image. ``strict=True`` raises ``SubmissionError`` listing them instead.
    """
    problems: list[str] = []
    try:
        preds = dict(npz) if isinstance(npz, Mapping) else load_submission(npz)
    except SubmissionError as err:
        preds, problems = {}, [str(err)]
    if not problems:
        sizes = {p.name: _image_hw(p) for p in list_test_images(test_dir)}
        missing = [n for n in sizes if n not in preds]
        extra = sorted(n for n in preds if n not in sizes)
        if missing:
            problems.append(f"missing {len(missing)} key(s): {_short_list(missing)}")
        if extra:
            problems.append(f"{len(extra)} extra key(s) not in {test_dir}: {_short_list(extra)}")
        for name, (h, w) in sizes.items():
            if name not in preds:
                continue
            arr = preds[name]
            if arr.dtype != np.uint8:
                problems.append(f"{name}: dtype {arr.dtype}, expected uint8")
            if arr.ndim != 3:
                problems.append(f"{name}: {arr.ndim} dimensions {arr.shape}, expected (3, {h}, {w})")
            elif arr.shape != (3, h, w):
                problems.append(f"{name}: shape {arr.shape}, expected (3, {h}, {w})")
    if strict and problems:
        where = "submission" if isinstance(npz, Mapping) else str(npz)
        raise SubmissionError(f"{where}: " + "; ".join(problems))
    return problems


def _short_list(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


# ----------------------------------------------------------------------------------------------------
# public: scoring
# ----------------------------------------------------------------------------------------------------

_KIND_FROM_NAME = re.compile(r"^(rain|snow)(?=[-_ .\d]|$)", re.IGNORECASE)


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


def _as_hwc(name: str, arr: np.ndarray) -> np.ndarray:
    """A prediction as (H, W, 3) uint8, from the submission layout (3, H, W) or an image layout (H, W, 3)."""
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise SubmissionError(f"{name}: expected uint8 (3, H, W), got {arr.dtype} {arr.shape}")
    if arr.shape[0] == 3 and arr.shape[2] != 3:
        return arr.transpose(1, 2, 0)
    if arr.shape[2] == 3:
        return arr
    return arr.transpose(1, 2, 0)  # (3, H, 3): ambiguous only for width-3 images, the submission layout wins


def score(
    npz_or_dir: str | os.PathLike[str] | Mapping[str, np.ndarray],
    clean_dir: str | os.PathLike[str],
    labels: str | os.PathLike[str] | Mapping[str, str] | None = None,
    names: Sequence[str] | None = None,
) -> ScoreResult:
    """PSNR and SSIM of predictions against clean images with the same file names.

    ``npz_or_dir``: a submission ``.npz``, a folder of restored PNGs, or an in-memory ``{name: array}``.
    ``clean_dir``: the answers (``data/demo/test/clean``). The kind of each image (rain/snow) comes from
    ``labels`` (a ``name,kind`` CSV or a mapping; by default a ``labels.csv`` next to or above ``clean_dir``)
    or from file names starting with ``rain``/``snow``. PSNR is computed per image on [0, 1] pixels (data
    range 1) and then averaged, like the course leaderboard. Clean images without a prediction are an error;
    ``names`` restricts the score to these file names (stems work too).
    """
    clean_dir = Path(clean_dir)
    if isinstance(npz_or_dir, Mapping):
        preds = dict(npz_or_dir)
    elif Path(npz_or_dir).is_dir():
        preds = {p.name: load_image(p) for p in _images_in(Path(npz_or_dir))}
    else:
        preds = load_submission(npz_or_dir)
    if not clean_dir.is_dir():
        raise DataError(f"clean folder {clean_dir} does not exist; pass the folder with the clean answers")
    clean_files = _images_in(clean_dir)
    if names is not None:
        wanted = {Path(n).stem for n in names}
        clean_files = [p for p in clean_files if p.stem in wanted]
    by_stem = {Path(k).stem: k for k in preds}
    missing = [p.name for p in clean_files if p.stem not in by_stem]
    if missing or not clean_files:
        raise DataError(
            f"{len(missing)} of {len(clean_files)} clean images in {clean_dir} have no prediction: "
            f"{_short_list(missing)}; predictions hold {_short_list(sorted(preds))}"
        )
    kinds = _read_labels(labels, clean_dir)

    rows = []
    for p in clean_files:
        key = by_stem[p.stem]
        pred = _as_hwc(key, np.asarray(preds[key]))
        target = load_image(p)
        if pred.shape != target.shape:
            raise SubmissionError(f"{key}: prediction is {pred.shape[:2]} but {p} is {target.shape[:2]}")
        a = torch.from_numpy(pred.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        b = torch.from_numpy(target.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        match = _KIND_FROM_NAME.match(p.stem)
        kind = kinds.get(p.stem) or (match.group(1).lower() if match else None)
        rows.append({"name": p.name, "kind": kind, "psnr": float(psnr(a, b)), "ssim": float(ssim(a, b))})
    return ScoreResult(pd.DataFrame(rows, columns=["name", "kind", "psnr", "ssim"]))


def evaluate_pairs(
    model: nn.Module | TensorFn,
    pairs: Sequence[Any],
    *,
    tta: TTA = False,
    tile: int | None = None,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = False,
) -> ScoreResult:
    """Restore the degraded image of each ``hw4lib.data.Pair`` and score it against its clean image.

    The PSNR is taken after rounding to uint8, exactly as a submission would be scored.
    """
    preds: dict[str, np.ndarray] = {}
    rows = []
    for pair in tqdm(pairs, desc="evaluate", disable=not progress):
        pred = restore(model, load_image(pair.degraded), tta=tta, tile=tile, device=device, amp=amp)
        target = load_image(pair.clean)
        a = torch.from_numpy(pred.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        b = torch.from_numpy(target.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        preds[pair.name] = pred
        rows.append(
            {"name": pair.name, "kind": pair.kind, "psnr": float(psnr(a, b)), "ssim": float(ssim(a, b))}
        )
    return ScoreResult(pd.DataFrame(rows, columns=["name", "kind", "psnr", "ssim"]))


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


def plot_before_after(
    test_dir: str | os.PathLike[str],
    preds: Mapping[str, np.ndarray],
    clean_dir: str | os.PathLike[str] | None = None,
    names: Sequence[str] | None = None,
    n: int = 4,
    path: str | os.PathLike[str] | None = None,
):
    """A grid, one row per test image: degraded | restored | clean (if ``clean_dir`` has it), PSNR in titles.

    ``preds``: ``{name: (3, H, W) uint8}`` as :func:`predict_dir` returns or a loaded submission. ``names``:
    which images (default: the first ``n``). Saved atomically to ``path`` (PNG; JPEG for ``.jpg``) if given.
    """
    import matplotlib.pyplot as plt

    files = {p.name: p for p in list_test_images(test_dir)}
    names = list(names) if names is not None else [k for k in files if k in preds][:n]
    clean = Path(clean_dir) if clean_dir is not None else None
    cols = 3 if clean is not None else 2
    fig, axes = plt.subplots(len(names), cols, figsize=(2.5 * cols, 2.6 * len(names)), squeeze=False)
    for row, name in zip(axes, names, strict=True):
        degraded, restored = load_image(files[name]), _as_hwc(name, np.asarray(preds[name]))
        target = load_image(clean / name) if clean is not None and (clean / name).is_file() else None

        def db(img: np.ndarray, target: np.ndarray | None = target) -> str:
            return "" if target is None else f" {psnr_uint8(img, target):.2f} dB"

        panels = [(degraded, f"{name}: input{db(degraded)}"), (restored, f"restored{db(restored)}")]
        if clean is not None:
            panels.append((target if target is not None else np.zeros_like(degraded), "clean"))
        for ax, (img, title) in zip(row, panels, strict=True):
            ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    if path is not None:  # the format follows the suffix: .jpg keeps photo grids small
        fmt = Path(path).suffix.lower().lstrip(".") or "png"
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="jpeg" if fmt == "jpg" else fmt, dpi=100)
    return fig


# ----------------------------------------------------------------------------------------------------
# public: loading a model for inference
# ----------------------------------------------------------------------------------------------------


def _is_lightning_checkpoint(obj: Any) -> bool:
    """The official PromptIR release is a Lightning checkpoint: weights under ``state_dict`` (``net.*``)."""
    return isinstance(obj, dict) and "state_dict" in obj and "model" not in obj


def _find_run(run: str | os.PathLike[str]) -> Path:
    """A run folder given as a path (from cwd or the repo root) or a bare name under ``runs/``."""
    for candidate in (Path(run), paths.resolve(run), paths.runs_dir() / str(run)):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"run folder {run} not found (looked in the current folder, the repo and runs/)")


def load_model(
    run: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] = "best",
    map_location: str | torch.device = "cpu",
    preset: str | None = None,
) -> nn.Module:
    """A model ready for inference (eval mode) from a run folder and/or a checkpoint file.

    ``checkpoint``: ``"best"``/``"last"`` of ``run``, or a file: one of this project's checkpoints (a dict
    with ``model`` and ``model_config``) or the official PromptIR Lightning ``model.ckpt`` (read with
    ``hw4lib.model.load_official_checkpoint``; the official architecture unless ``preset`` names another
    ``hw4lib.model.PRESETS`` entry).
    """
    ckpt_path = None if str(checkpoint) in ("best", "last") else Path(checkpoint)
    if ckpt_path is not None:  # from the current folder, the repository root or inside the run folder
        candidates = [ckpt_path, paths.resolve(ckpt_path), *([_find_run(run) / ckpt_path] if run else [])]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            looked = ", ".join(str(c) for c in candidates)
            raise FileNotFoundError(f"checkpoint {checkpoint} not found (looked at {looked})")
        ckpt_path = found.resolve()
    if ckpt_path is None:
        if run is None:
            raise ValueError("pass a run folder (--run) or a checkpoint file (--checkpoint PATH)")
        from hw4lib.train import load_run_model

        model = load_run_model(_find_run(run), checkpoint=str(checkpoint))
    else:
        try:
            obj = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception:  # Lightning pickles objects that weights_only refuses; let the model loader decide
            obj = {"state_dict": None}
        if _is_lightning_checkpoint(obj):
            from hw4lib.model import PRESETS, load_official_checkpoint

            kwargs = {} if preset is None else dict(PRESETS[preset])
            model = load_official_checkpoint(ckpt_path, map_location="cpu", **kwargs)
        else:
            from hw4lib.train import load_run_model

            run_dir = _find_run(run) if run is not None else ckpt_path.parent
            model = load_run_model(run_dir, checkpoint=ckpt_path)
    return model.to(map_location).eval()


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------


def _run_predict(args: argparse.Namespace) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.run, args.checkpoint, map_location=device, preset=args.preset)
    if args.out is not None:
        out = Path(args.out)
    elif args.run is not None:
        out = _find_run(args.run) / "pred.npz"
    else:
        out = Path("pred.npz")
    path = write_submission(
        model, args.test_dir, out, tta=args.tta, png_dir=args.png_dir, tile=args.tile,
        tile_overlap=args.tile_overlap, batch_size=args.batch_size, device=device,
        amp=False if args.no_amp else None, progress=not args.no_progress,
    )
    problems = check_submission(path, args.test_dir)
    for line in problems:
        print(f"problem: {line}")
    n = len(load_submission(path))
    print(f"wrote {path} ({n} images{f', TTA {args.tta}' if args.tta else ''})")
    return 1 if problems else 0


def _run_score(args: argparse.Namespace) -> int:
    result = score(args.pred, args.clean, labels=args.labels)
    print(result)
    print(f"PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.4f} over {len(result.per_image)} images")
    if args.csv:
        write_text_atomic(result.per_image.to_csv(index=False), args.csv)
        print(f"per-image scores: {args.csv}")
    return 0


def _run_check(args: argparse.Namespace) -> int:
    problems = check_submission(args.pred, args.test_dir)
    for line in problems:
        print(f"problem: {line}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """``predict``, ``score`` and ``check-submission`` subcommands."""
    p = subparsers.add_parser("predict", help="restore the test images and write the submission pred.npz")
    p.add_argument("--run", help="run folder (runs/<name>) or a run name")
    p.add_argument(
        "--checkpoint", default="best", help="best | last | a checkpoint file (or the official model.ckpt)"
    )
    p.add_argument("--preset", help="architecture of an official-format checkpoint (default: the paper's)")
    p.add_argument("--test-dir", required=True, help="folder of degraded test images (or the dataset root)")
    p.add_argument("--out", help="submission file (default: <run>/pred.npz)")
    p.add_argument(
        "--tta", nargs="?", const="x8", choices=sorted(TTA_MODES), default=None,
        help="self-ensemble: x8 (the default when given alone: 8 flips/rotations, 8x slower) or hflip "
        "(left-right mirror, 2x; better for rain when training did not rotate)",
    )
    p.add_argument("--tile", type=int, help="tile size for images too large for memory")
    p.add_argument("--tile-overlap", type=int, default=32)
    p.add_argument("--png-dir", help="also save the restored images as PNGs here")
    p.add_argument("--batch-size", type=int, default=1, help="images of equal size per forward pass")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--no-amp", action="store_true", help="full float32 on GPU")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_predict)

    s = subparsers.add_parser("score", help="PSNR/SSIM of a pred.npz (or PNG folder) against clean images")
    s.add_argument("pred", help="pred.npz or a folder of restored PNGs")
    s.add_argument("--clean", required=True, help="folder of clean answers with the same file names")
    s.add_argument("--labels", help="name,kind CSV (default: labels.csv beside the clean folder)")
    s.add_argument("--csv", help="write per-image scores to this CSV")
    s.set_defaults(func=_run_score)

    c = subparsers.add_parser("check-submission", help="validate a pred.npz against the test images")
    c.add_argument("pred")
    c.add_argument("--test-dir", required=True)
    c.set_defaults(func=_run_check)
