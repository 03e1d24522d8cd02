"""Inference: restore images of any size, self-ensemble TTA, tiling, and the course submission file.

The course (``hw4_realse_dataset``) takes a NumPy ``pred.npz`` whose keys are the test file names
(``"0.png"``, ...) and whose values are ``uint8`` arrays shaped ``(3, H, W)`` at each test image's original
size, and ranks it by PSNR against hidden clean images. This module

- restores a single image or a batch of any size (reflect-padded to a multiple of 8, cropped back, clamped),
- averages the 8 flips/rotations of the input (the "self-ensemble" of Lim et al., EDSR, CVPR-W 2017), or the
  image and its left-right mirror,
- cuts images too large for memory into overlapping tiles and blends them with a smooth window,
- writes and checks the submission file. Scoring lives in ``hw4lib.scoring``; the commands in ``hw4lib.cli``.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm import tqdm  # plain: tqdm.auto warns in kernels without ipywidgets

from hw4lib.data import (
    IMAGE_SUFFIXES,
    DataError,
    augment_mode,
    list_images,
    load_image,
    natural_key,
    quantize,
    short_list,
)
from hw4lib.device import amp_dtype, autocast, free_memory_gb
from hw4lib.model import PAD_MULTIPLE, pad_to_multiple
from hw4lib.paths import atomic_write, check_writable, save_png_atomic

__all__ = [
    "DIHEDRAL",
    "TTA_MODES",
    "TTA_CHOICES",
    "resolve_tta",
    "SubmissionError",
    "as_hwc",
    "check_submission",
    "dihedral",
    "inverse_dihedral",
    "list_test_images",
    "load_submission",
    "predict_dir",
    "restore",
    "save_submission",
    "tta_transforms",
    "write_submission",
    "zip_submission",
    "restore_photos",
    "auto_tile",
    "bytes_per_pixel",
    "SUBMISSION_NAME",
]

# The 8 symmetries of the square (dihedral group D4): k quarter turns after an optional left-right flip.
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, flip) for flip in (False, True) for k in range(4))
# Self-ensembles: the 8 flips/rotations, the 4 flips (mirrors and the half turn), or the left-right mirror
# alone. Rain streaks have a direction: a model trained without rotations restores 90-degree-rotated rain
# badly, while flips keep the streaks' slant close to what it saw (the real-data section of the report
# measures it).
TTA_MODES: dict[str, tuple[tuple[int, bool], ...]] = {
    "x8": DIHEDRAL,
    "flips": ((0, False), (0, True), (2, False), (2, True)),
    "hflip": ((0, False), (0, True)),
}
TTA_CHOICES = ("auto", "none", *TTA_MODES)  # what a config, the CLI and the notebooks accept
TTA = bool | str | None  # False/None: off; True or "x8": 8 flips/rotations; "flips", "hflip"
FALLBACK_TILE, MIN_FALLBACK_TILE = 512, 64  # tiles tried when a whole image does not fit in GPU memory
TILE_BUDGET_GB = 2.0  # at most this much (or half the free memory) for one forward's activations
MIN_AUTO_TILE = 128

TensorFn = Callable[[torch.Tensor], torch.Tensor]


class SubmissionError(ValueError):
    """A submission file that the course server would reject; the message lists every problem."""


# ----------------------------------------------------------------------------------------------------
# helpers: padding, flips/rotations, tiling windows
# ----------------------------------------------------------------------------------------------------


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
    if tta == "none":
        return ()
    hint = " (resolve 'auto' first: hw4lib.infer.resolve_tta, or hw4lib.runs.prediction_tta for a run)"
    hint = hint if tta == "auto" else ""
    raise ValueError(f"tta must be False, True, 'none' or one of {sorted(TTA_MODES)}; got {tta!r}{hint}")


def resolve_tta(tta: TTA = "auto", augment: bool | str = "none") -> str:
    """The self-ensemble to predict with: ``"none"``, ``"hflip"``, ``"flips"`` or ``"x8"``. The one rule.

    An explicit choice is kept. ``"auto"`` follows what training showed the model (its ``augment``): the 8
    flips/rotations after ``"x8"`` (it saw every orientation), the 4 flips after ``"flips"``, else the mirror
    alone (a model that never saw rotated rain restores rotated streaks badly; a mirror keeps their slant).
    """
    if tta is None or tta is False or tta == "none":
        return "none"
    if tta is True:
        return "x8"
    if tta == "auto":
        return {"x8": "x8", "flips": "flips"}.get(augment_mode(augment), "hflip")
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {', '.join(TTA_CHOICES)} (got {tta!r})")
    return str(tta)


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


def bytes_per_pixel(model: Any) -> float:
    """Peak memory of a no-grad forward per input pixel, float32. PromptIR's widest full-resolution work is
    the refinement stage's GDFN (width 2 x dim, hidden ``ffn_expansion_factor`` times that, doubled by the
    gate): its input, the doubled hidden map twice over, the gate and output stay alive together; the
    factor 1.4 covers what else is alive then (tests/test_infer.py holds the measured peak of a tiny-model
    forward between 0.8 and 1 times this estimate, never above)."""
    config = getattr(model, "config", None) or {"dim": 48, "ffn_expansion_factor": 2.66}
    width = 2 * int(config["dim"])
    hidden = int(width * float(config["ffn_expansion_factor"]))
    return 4.0 * 1.4 * (4 * hidden + 2 * width)


def auto_tile(
    model: Any,
    height: int,
    width: int,
    device: torch.device,
    budget_gb: float | None = None,
    images: int = 1,
    tile_batch: int = 1,
) -> int | None:
    """The tile side that keeps one forward within ``budget_gb`` (default: ``TILE_BUDGET_GB`` or half the
    free memory, the smaller), or ``None`` when the whole image fits. One forward takes ``images`` images
    whole, or ``images x tile_batch`` tiles at once: the budget is for all of them together."""
    free = free_memory_gb(device)
    budget = budget_gb if budget_gb is not None else min(TILE_BUDGET_GB, free / 2 if free else TILE_BUDGET_GB)
    per_pixel = bytes_per_pixel(model)
    if images * height * width * per_pixel <= budget * 2**30:
        return None
    side = int(math.sqrt(budget * 2**30 / (per_pixel * images * tile_batch))) // PAD_MULTIPLE * PAD_MULTIPLE
    return max(MIN_AUTO_TILE, side)


def _model_device(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            return t.device
    return torch.device("cpu")


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
        with torch.no_grad(), autocast(device, amp_dtype(device, mixed)):
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
    if not bool(torch.isfinite(y).all()) and amp_dtype(device, amp) is not None:
        warnings.warn("mixed precision overflowed (inf/NaN in the output); recomputing in fp32", stacklevel=2)
        y = run(False, tile, tile_overlap)
    return y.float().clamp(0.0, 1.0)


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


def restore(
    model: nn.Module | TensorFn,
    image: torch.Tensor | np.ndarray,
    *,
    tta: TTA = False,
    tile: int | str | None = None,
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

    ``tile="auto"`` tiles only an image whose forward would need more memory than :func:`auto_tile` allows
    (large photographs), with tiles as large as it allows.

    ``device``: where to run (default: the model's device; the model is moved there in place). ``amp``: mixed
    precision (default on for CUDA: bfloat16 where the GPU has it, else float16; ``amp=True`` on a CPU uses
    bfloat16). ``batch_size`` splits a large batch. The model is put in eval mode for the call and restored
    to its previous mode afterwards.
    """
    dev = torch.device(device) if device is not None else _model_device(model)
    if device is not None and isinstance(model, nn.Module):
        model.to(dev)

    if isinstance(image, np.ndarray):
        x = _numpy_to_batch(image)
        unpack: Callable[[torch.Tensor], Any]
        if np.issubdtype(image.dtype, np.floating):
            unpack = lambda y: y[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
        else:
            unpack = lambda y: quantize(y[0]).permute(1, 2, 0).cpu().numpy()
    elif isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"restore expects a tensor (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
        x = image if image.ndim == 4 else image[None]
        src_device, src_dtype, single = image.device, image.dtype, image.ndim == 3
        if src_dtype == torch.uint8:
            x = x.float() / 255.0

        def unpack(y: torch.Tensor) -> torch.Tensor:
            y = quantize(y) if src_dtype == torch.uint8 else y.to(src_dtype)
            y = y.to(src_device)
            return y[0] if single else y
    else:
        raise TypeError(f"restore expects a torch.Tensor or numpy array, got {type(image).__name__}")

    step = batch_size or x.shape[0]
    if tile == "auto":
        tile = auto_tile(model, *x.shape[-2:], dev, images=min(step, x.shape[0]), tile_batch=tile_batch)
    if tile is not None and not 0 <= tile_overlap < int(tile):
        raise ValueError(f"tile_overlap must be in [0, tile), got overlap={tile_overlap}, tile={tile}")
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
            found = list_images(folder)
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
    tile: int | str | None = "auto",
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
            raise DataError(f"not in {test_dir}: {short_list(unknown)}")
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
            y = restore(
                model, x, tta=tta, tile=tile, tile_overlap=tile_overlap, device=device, amp=amp,
                progress=progress,
            )
            for p, out in zip(chunk, quantize(y).cpu().numpy(), strict=True):
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


SUBMISSION_NAME = "pred.npz"  # what the leaderboard looks for at the root of the uploaded zip


def write_submission(
    model: nn.Module | TensorFn,
    test_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] = "pred.npz",
    *,
    tta: TTA = False,
    png_dir: str | os.PathLike[str] | None = None,
    tile: int | str | None = "auto",
    tile_overlap: int = 32,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    replace: bool = False,
) -> Path:
    """Restore the test set and write the course submission ``out`` and, beside it, the zip the leaderboard
    takes (``pred.npz`` at its root: ``out`` with ``.zip``); restored PNGs to ``png_dir`` when given.

    Checked before any image is restored: the output folders are writable, and an existing ``out`` is only
    replaced by one for the same test images (a submission for other images needs ``replace=True``).
    Nothing is written until every image is restored, and ``out`` is replaced atomically: an interrupted run
    never leaves a half-written file (a previous one stays as it was). Returns the path of ``out``.
    """
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"the submission file must end in .npz, got {out}")
    names = [p.name for p in list_test_images(test_dir)]
    if out.is_file() and not replace:
        try:
            held = sorted(load_submission(out), key=natural_key)
        except SubmissionError as err:
            raise SubmissionError(f"{err}; it would be replaced: pass another --out, or --force") from None
        if set(held) != set(names):
            raise SubmissionError(
                f"{out} holds a submission for {len(held)} other images ({short_list(held, 3)}); this would "
                f"replace it with {len(names)} ({short_list(names, 3)}): pass another --out, or --force "
                "(replace=True) to replace it"
            )
    check_writable(out.parent, "submission folder")
    if png_dir is not None:
        check_writable(png_dir, "PNG folder")
    preds = predict_dir(
        model, test_dir, tta=tta, tile=tile, tile_overlap=tile_overlap, batch_size=batch_size, device=device,
        amp=amp, progress=progress,
    )
    path = save_submission(preds, out)
    zip_submission(path)
    if png_dir is not None:
        for name, arr in preds.items():
            save_png_atomic(arr.transpose(1, 2, 0), Path(png_dir) / (Path(name).stem + ".png"))
    return path


def zip_submission(npz: str | os.PathLike[str]) -> Path:
    """``npz`` packed as the leaderboard takes it: a zip (same name, ``.zip``), ``pred.npz`` at its root."""
    npz = Path(npz)
    target = npz.with_suffix(".zip")
    with atomic_write(target, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        archive.write(npz, SUBMISSION_NAME)  # the npz is compressed already
    return target


def load_submission(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A submission's arrays, ``{name: array}``, from a ``.npz`` or the leaderboard's ``.zip`` (``pred.npz``
    at its root); ``SubmissionError`` when it is neither."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                if SUBMISSION_NAME not in archive.namelist():
                    found = short_list(archive.namelist(), 3) or "nothing"
                    raise SubmissionError(
                        f"{path}: the zip must hold {SUBMISSION_NAME} at its root (it holds {found})"
                    )
                with archive.open(SUBMISSION_NAME) as member:
                    data = np.load(io.BytesIO(member.read()), allow_pickle=False)
                    return {k: data[k] for k in data.files}
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except SubmissionError:
        raise
    except Exception as err:  # zipfile.BadZipFile, ValueError (pickled objects), OSError, ...
        raise SubmissionError(
            f"{path}: not a readable .npz or .zip ({err}); write it with hw4lib.infer"
        ) from err


def restore_photos(
    model: nn.Module | TensorFn,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tta: TTA = False,
    tile: int | str | None = "auto",
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    preview: int = 8,
) -> list[Path]:
    """Restore every image in ``src`` (any size; ``.jpg``, ``.png``, ... any case, spaces in names) into PNGs
    of the same names in ``out``, plus ``out/preview.jpg``: the first ``preview`` of them, input beside
    output. The output folder is checked writable first; nothing of a run's submission is touched."""
    files = list_images(src)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {src}; pass a folder of photos")
    out = check_writable(out, "output folder")
    written, pairs = [], []
    for path in tqdm(files, desc="restore", unit="img", disable=not progress):
        image = load_image(path)
        restored = restore(model, image, tta=tta, tile=tile, device=device, amp=amp, progress=progress)
        written.append(save_png_atomic(restored, out / f"{path.stem}.png"))
        if len(pairs) < preview:
            pairs.append((image, restored))
    if pairs:
        _save_preview(pairs, out / "preview.jpg")
    return written


def _save_preview(pairs: Sequence[tuple[np.ndarray, np.ndarray]], path: Path, side: int = 480) -> None:
    """Rows of (input | restored), each scaled to ``side`` px high, as one JPEG."""
    rows = []
    for image, restored in pairs:
        h, w = image.shape[:2]
        size = (max(1, round(w * side / h)), side)
        scaled = [np.asarray(Image.fromarray(a).resize(size)) for a in (image, restored)]
        rows.append(np.concatenate(scaled, axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], 0)
    with atomic_write(path, "wb") as f:
        Image.fromarray(sheet).save(f, format="JPEG", quality=90)


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
            problems.append(f"missing {len(missing)} key(s): {short_list(missing)}")
        if extra:
            problems.append(f"{len(extra)} extra key(s) not in {test_dir}: {short_list(extra)}")
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


def as_hwc(name: str, arr: np.ndarray) -> np.ndarray:
    """A prediction as (H, W, 3) uint8, from the submission layout (3, H, W) or an image layout (H, W, 3)."""
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise SubmissionError(f"{name}: expected uint8 (3, H, W), got {arr.dtype} {arr.shape}")
    if arr.shape[0] == 3 and arr.shape[2] != 3:
        return arr.transpose(1, 2, 0)
    if arr.shape[2] == 3:
        return arr
    return arr.transpose(1, 2, 0)  # (3, H, 3): ambiguous only for width-3 images, the submission layout wins



