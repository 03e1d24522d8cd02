"""The course data: find and pair images, split train/val, load them as tensors, augment pairs identically.

Layout of ``hw4_realse_dataset`` (and of the generated demo set)::

    ROOT/train/degraded/rain-1.png ... snow-1600.png        degraded inputs
    ROOT/train/clean/rain_clean-1.png ... snow_clean-1600.png  their clean twins (same size, pixel-aligned)
    ROOT/test/degraded/0.png ... 99.png                     test inputs (no clean images)

Decisions worth knowing:

* Pairing is by name: ``rain-12.png`` <-> ``rain_clean-12.png``. Sorting is numeric (``rain-2`` before
  ``rain-10``).
* A degraded image without its clean twin (or the reverse) is an error: it means a broken extraction.
  A file whose name matches neither pattern (say ``fog-1.png``) is skipped with a warning; ``find_pairs(...,
  strict=True)`` turns that into an error. ``check-data`` lists such files as warnings. Hidden files
  (``.DS_Store``, macOS ``._rain-1.png``) are ignored.
* Images are returned as (H, W, 3) uint8 RGB. Grayscale and palette images become RGB; an alpha channel is
  dropped (not composited: the course images are opaque and the colour under a transparent pixel is kept);
  16-bit images are scaled to 8 bit (``round(v / 257)``).
* Augmentation (flips, 90-degree rotations, random crops) is drawn from a numpy Generator seeded with
  ``(seed, epoch, index)``: the same crops whatever the number of DataLoader workers. Call ``set_epoch``
  before iterating each epoch.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from hw4lib import paths

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

__all__ = [
    "KINDS",
    "MANIFEST",
    "IMAGE_SUFFIXES",
    "DataError",
    "Pair",
    "PairPaths",
    "Problem",
    "find_pairs",
    "find_test_images",
    "natural_key",
    "list_images",
    "center_crop",
    "quantize",
    "validation_split",
    "balanced",
    "load_image",
    "load_pair",
    "split_pairs",
    "SPLIT_FILE",
    "read_split",
    "split_by_file",
    "PairedDataset",
    "paired_random_crop",
    "paired_augment",
    "AUGMENTS",
    "augment_mode",
    "to_tensor",
    "to_uint8",
    "to_float",
    "most_degraded_window",
    "short_list",
    "scan_train",
    "scan_test",
]

MANIFEST = "synth.json"  # what a generated data set (demo, study) says about itself, in its root
KINDS = ("rain", "snow")  # the degradation types of the course data, in the order tables list them
# image files read outside the course layout (test folders, imported sets, snow masks)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

LAYOUT = (
    "ROOT/train/degraded/{rain,snow}-N.png, ROOT/train/clean/{rain,snow}_clean-N.png, "
    "ROOT/test/degraded/K.png"
)

_DEGRADED_RE = re.compile(r"^(?P<kind>[a-z]+)-(?P<num>\d+)\.(?i:png)$")
_CLEAN_RE = re.compile(r"^(?P<kind>[a-z]+)_clean-(?P<num>\d+)\.(?i:png)$")
_TEST_RE = re.compile(r"^.+\.(?i:png)$")


class DataError(ValueError):
    """Bad or missing input data; the message names the file and how to fix it."""


@dataclass(frozen=True)
class Pair:
    """A degraded image, its clean twin, the degradation type and the degraded file's stem (``rain-12``)."""

    degraded: Path
    clean: Path
    kind: str
    name: str


@dataclass(frozen=True)
class Problem:
    """One finding of the data scan: ``level`` is ``"error"`` (training would fail) or ``"warning"``."""

    level: str
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper()}: {self.path}: {self.message}"


# ------------------------------------------------------------------------------------------------------------
# helpers


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``2.png`` before ``10.png``, ``rain-2`` before ``rain-10``.
    """
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t)


def _pair_key(pair: Pair) -> tuple:
    kind_rank = KINDS.index(pair.kind) if pair.kind in KINDS else len(KINDS)
    return (kind_rank, pair.kind, natural_key(pair.name))


def _visible_files(folder: Path) -> list[Path]:
    """The files in ``folder``, hidden ones (``.DS_Store``, macOS ``._x.png``) left out, in natural order."""
    return sorted(
        (p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )


def list_images(folder: str | os.PathLike[str], suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The image files (``suffixes``, any case; not hidden) directly in ``folder``, in natural order."""
    return [p for p in _visible_files(Path(folder)) if p.suffix.lower() in suffixes]


def short_list(names: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` names, comma-separated, and how many more: for messages about many files."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _summarise(problems: Sequence[Problem], limit: int = 8) -> str:
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more (`python -m hw4lib check-data ROOT` lists all)")
    return "\n".join(lines)


def _train_dir(root: Path) -> Path:
    """``ROOT/train``; also accepts the ``train`` folder itself."""
    if not (root / "train").is_dir() and (root / "degraded").is_dir() and (root / "clean").is_dir():
        return root
    return root / "train"


def _missing_folder(folder: Path, what: str) -> Problem:
    return Problem(
        "error",
        folder,
        f"expected folder with {what} is missing. Expected layout: {LAYOUT}. Point ROOT at the extracted "
        "hw4_realse_dataset, or generate the demo set with `python -m hw4lib demo-data`.",
    )


def scan_train(root: str | Path, kinds: Sequence[str] = KINDS) -> tuple[list[Pair], list[Problem]]:
    """Pair the training images by name without decoding them; collect every problem instead of raising."""
    root = Path(root)
    if not root.is_dir():
        return [], [_missing_folder(root, "the dataset (ROOT)")]
    train = _train_dir(root)
    deg_dir, clean_dir = train / "degraded", train / "clean"
    problems = [
        _missing_folder(d, w)
        for d, w in ((deg_dir, "degraded images"), (clean_dir, "clean images"))
        if not d.is_dir()
    ]
    if problems:
        return [], problems

    def index(folder: Path, pattern: re.Pattern, expected: str) -> dict[tuple[str, str], Path]:
        found: dict[tuple[str, str], Path] = {}
        for path in _visible_files(folder):
            m = pattern.match(path.name)
            if m is None or m["kind"] not in kinds:
                problems.append(
                    Problem(
                        "warning",
                        path,
                        f"unexpected file name (expected {expected}, KIND in {', '.join(kinds)}): skipped. "
                        "Rename it or move it out of the folder.",
                    )
                )
                continue
            found[(m["kind"], m["num"])] = path
        return found

    degraded = index(deg_dir, _DEGRADED_RE, "KIND-N.png")
    clean = index(clean_dir, _CLEAN_RE, "KIND_clean-N.png")
    pairs = []
    for (kind, num), path in degraded.items():
        twin = clean.get((kind, num))
        if twin is None:
            problems.append(
                Problem(
                    "error",
                    path,
                    f"degraded image has no clean twin: expected {clean_dir / f'{kind}_clean-{num}.png'}. "
                    "Restore the clean image or remove the degraded one.",
                )
            )
            continue
        pairs.append(Pair(degraded=path, clean=twin, kind=kind, name=path.stem))
    for (kind, num), path in clean.items():
        if (kind, num) not in degraded:
            problems.append(
                Problem(
                    "error",
                    path,
                    f"clean image has no degraded twin: expected {deg_dir / f'{kind}-{num}.png'}. "
                    "Restore the degraded image or remove the clean one.",
                )
            )
    if not pairs and not any(p.level == "error" for p in problems):
        problems.append(Problem("error", deg_dir, f"no training pairs found. Expected layout: {LAYOUT}."))
    pairs.sort(key=_pair_key)
    problems.sort(key=lambda p: (p.level != "error", natural_key(str(p.path))))
    return pairs, problems


def scan_test(root: str | Path) -> tuple[list[Path], list[Problem]]:
    root = Path(root)
    folder = root / "test" / "degraded"
    if not folder.is_dir():
        return [], [
            Problem("warning", folder, f"no test folder (prediction needs it). Expected layout: {LAYOUT}.")
        ]
    images, problems = [], []
    for path in _visible_files(folder):
        if _TEST_RE.match(path.name):
            images.append(path)
        else:
            problems.append(Problem("warning", path, "not a .png file: skipped. Move it out of the folder."))
    if not images:
        problems.append(Problem("warning", folder, "the test folder holds no .png images."))
    return images, problems


# ------------------------------------------------------------------------------------------------------------
# finding and loading


def find_pairs(root: str | Path, strict: bool = False, kinds: Sequence[str] = KINDS) -> list[Pair]:
    """All (degraded, clean) pairs under ``ROOT/train``, sorted by kind (rain, snow) then number.

    Raises ``DataError`` for missing folders and unmatched twins. Files with unknown names are skipped with a
    ``UserWarning`` (``strict=True``: ``DataError``). Images are not decoded here (see ``check_data``).
    """
    pairs, problems = scan_train(root, kinds)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise DataError(f"{len(errors)} problem(s) in the training data under {root}:\n{_summarise(errors)}")
    if problems:
        if strict:
            raise DataError(f"unexpected files under {root} (strict=True):\n{_summarise(problems)}")
        warnings.warn(f"skipped {len(problems)} file(s) under {root}:\n{_summarise(problems)}", stacklevel=2)
    return pairs


def find_test_images(root: str | Path) -> list[Path]:
    """The ``.png`` images in ``ROOT/test/degraded`` in numeric order (``2.png`` before ``10.png``)."""
    images, problems = scan_test(root)
    if not images:
        raise DataError(_summarise(problems))
    if problems:
        warnings.warn(_summarise(problems), stacklevel=2)
    return images


def _to_rgb_uint8(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit grayscale PNGs open as I;16 (or I)
        gray = np.asarray(im).astype(np.float64)
        gray = np.clip(np.round(gray / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        raise ValueError("floating-point images (mode F) are not supported; save it as an 8-bit RGB PNG")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, LA, RGBA (alpha dropped), CMYK, YCbCr, ...
    return np.array(im, dtype=np.uint8)


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image as an (H, W, 3) uint8 RGB array; ``DataError`` naming the file when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found; check the path (expected layout: {LAYOUT}).")
    try:
        with Image.open(path) as im:
            im.load()
            return _to_rgb_uint8(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        detail = str(err).replace(f" '{path}'", "").replace(str(path), "the file")  # named once, in front
        raise DataError(
            f"{path}: cannot read the image ({type(err).__name__}: {detail}). The file is corrupt or not an "
            "image: replace it (re-extract the dataset) or remove it together with its twin."
        ) from None


class PairPaths(Protocol):
    """Anything naming a degraded file and its clean twin (a :class:`Pair`, an importer's source pair)."""

    @property
    def degraded(self) -> Path: ...

    @property
    def clean(self) -> Path: ...


def load_pair(pair: PairPaths) -> tuple[np.ndarray, np.ndarray]:
    """Both images of a pair as uint8 RGB arrays; ``DataError`` when their sizes differ."""
    degraded, clean = load_image(pair.degraded), load_image(pair.clean)
    if degraded.shape != clean.shape:
        raise DataError(
            f"{pair.degraded} is {degraded.shape[1]}x{degraded.shape[0]} but its clean twin {pair.clean} is "
            f"{clean.shape[1]}x{clean.shape[0]} (WxH): a pair must be pixel-aligned. Replace the wrong file "
            "or remove the pair."
        )
    return degraded, clean


def split_pairs(
    pairs: Sequence[Pair], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """Deterministic train/val split, stratified by kind.

    Each kind contributes ``round(n * val_fraction)`` validation pairs, at least one when the kind has two or
    more pairs and ``val_fraction > 0``, and always leaves at least one pair for training. The result depends
    only on the set of pairs, ``val_fraction`` and ``seed`` (not on the input order). Both lists come back
    sorted.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_kind: dict[str, list[Pair]] = defaultdict(list)
    for pair in sorted(set(pairs), key=_pair_key):
        by_kind[pair.kind].append(pair)
    train, val = [], []
    for kind, group in by_kind.items():
        n = len(group)
        n_val = round(n * val_fraction)
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        else:
            n_val = 0
        rng = np.random.default_rng([seed, zlib.crc32(kind.encode())])  # crc32: stable across processes
        order = rng.permutation(n)
        val_idx = set(order[:n_val].tolist())
        for i, pair in enumerate(group):
            (val if i in val_idx else train).append(pair)
    return sorted(train, key=_pair_key), sorted(val, key=_pair_key)


SPLIT_FILE = "split.csv"  # ROOT/split.csv: a fixed train/val split shipped with a data set (name,split)
_SPLITS = ("train", "val")


def read_split(root: str | Path) -> dict[str, str] | None:
    """The fixed split ``ROOT/split.csv`` as {degraded stem (``rain-12``): ``"train"`` or ``"val"``}; None
    when the data set has no such file.

    ``DataError`` naming the file when it is malformed: no ``name,split`` header, a split other than train or
    val, a name listed twice, a name with no pair under ``ROOT/train``, or no training row.
    """
    path = Path(root) / SPLIT_FILE
    if not path.is_file():
        return None
    fix = "correct those rows (name,split with split train or val) or delete the file to split at random"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or ()]
            if "name" not in columns or "split" not in columns:
                found = ",".join(columns) or "no header"
                raise DataError(f"{path}: the header must be name,split (found {found}); {fix}")
            reader.fieldnames = columns
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read it ({err}); rewrite it as UTF-8 CSV or delete it") from None
    split: dict[str, str] = {}
    bad: list[str] = []
    for line, row in rows:
        name, value = (row.get("name") or "").strip(), (row.get("split") or "").strip()
        if not name:
            bad.append(f"line {line}: empty name")
        elif value not in _SPLITS:
            bad.append(f"line {line}: {name}: unknown split {value!r} (expected train or val)")
        elif name in split:
            bad.append(f"line {line}: {name} is listed twice")
        else:
            split[name] = value
    if not bad:
        pairs, _ = scan_train(path.parent)
        known = {p.name for p in pairs}
        bad = [f"{name}: no such pair under {_train_dir(path.parent)}" for name in split if name not in known]
    if bad:
        raise DataError(f"{path}: {len(bad)} bad row(s): {short_list(bad, 3)}; {fix}")
    if "train" not in split.values():
        raise DataError(f"{path}: no row has split train, so nothing is left to train on; {fix}")
    return split


def split_by_file(pairs: Sequence[Pair], split: dict[str, str]) -> tuple[list[Pair], list[Pair]]:
    """(train, val) pairs as ``split`` (from :func:`read_split`) says; both lists sorted like ``find_pairs``.

    Every pair must be listed and every listed name must be one of ``pairs``: ``DataError`` otherwise.
    """
    pairs = sorted(set(pairs), key=_pair_key)
    names = {p.name for p in pairs}
    unlisted = [p.name for p in pairs if p.name not in split]
    extra = sorted((n for n in split if n not in names), key=natural_key)
    wrong = sorted((n for n, v in split.items() if v not in _SPLITS), key=natural_key)
    problems = []
    if unlisted:
        problems.append(f"{len(unlisted)} pair(s) not listed: {short_list(unlisted)} (add name,split rows)")
    if extra:
        problems.append(f"{len(extra)} listed name(s) have no pair: {short_list(extra)} (remove those rows)")
    if wrong:
        problems.append(f"{len(wrong)} name(s) have a split other than train or val: {short_list(wrong)}")
    if problems:
        raise DataError(
            f"{SPLIT_FILE} does not match the data set: {'; '.join(problems)}. Fix {SPLIT_FILE} or delete it "
            "to split at random."
        )
    return [p for p in pairs if split[p.name] == "train"], [p for p in pairs if split[p.name] == "val"]


def balanced(pairs: Sequence[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` pairs, alternating between degradation types (rain, snow, rain, ...)."""
    if limit is None or limit >= len(pairs):
        return list(pairs)
    by_kind: dict[str, list[Any]] = {}
    for pair in pairs:
        by_kind.setdefault(pair.kind, []).append(pair)
    out: list[Any] = []
    queues = [list(v) for _, v in sorted(by_kind.items())]
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


def validation_split(
    data_dir: str | os.PathLike[str],
    val_fraction: float = 0.1,
    seed: int = 0,
    val_max_images: int | None = None,
) -> tuple[list[Pair], list[Pair], list[Pair], Path]:
    """The split a run trains on: (training pairs, validation pairs, the validation pairs it scores, root).

    A data set with a ``split.csv`` (the study set: validation by scene) is split as the file says;
    otherwise ``val_fraction`` of each type is drawn with ``seed``. The scored pairs are at most
    ``val_max_images`` of the validation side, balanced by type. Training and the report's evaluation both
    call this with a run's settings, so they can never disagree.
    """
    root = paths.resolve(data_dir)
    if not root.is_dir():
        hint = " (generate it: python -m hw4lib demo-data --out data/demo)" if root.name == "demo" else ""
        raise DataError(
            f"data folder {root} does not exist{hint}; set data_dir to a folder in the course layout"
        )
    pairs = find_pairs(root)
    if len(pairs) < 2:
        raise DataError(
            f"{root} holds {len(pairs)} training pair(s); need at least 2 (one to train, one to validate)"
        )
    fixed = read_split(root)
    if fixed is not None:
        train_pairs, val_pairs = split_by_file(pairs, fixed)
    else:
        train_pairs, val_pairs = split_pairs(pairs, val_fraction=val_fraction, seed=seed)
    if not train_pairs or not val_pairs:
        raise DataError(
            f"splitting {len(pairs)} pairs of {root} with val_fraction={val_fraction} left an empty "
            "side; add pairs or change val_fraction"
        )
    return train_pairs, val_pairs, balanced(val_pairs, val_max_images), root


# ------------------------------------------------------------------------------------------------------------
# tensors and augmentation


def to_tensor(img_uint8_hwc: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 -> (C, H, W) float32 in [0, 1]."""
    img = np.asarray(img_uint8_hwc)
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"to_tensor expects an (H, W, C) uint8 array, got {img.dtype} of shape {img.shape}")
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


def _to_uint8_tensor(img_uint8_hwc: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 -> (C, H, W) uint8 tensor; ``to_float`` makes it what ``to_tensor`` gives."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(img_uint8_hwc).transpose(2, 0, 1)))


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (float tensors pass unchanged): the same numbers as ``to_tensor``."""
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch


def quantize(x: ArrayOrTensor) -> ArrayOrTensor:
    """Float pixels in [0, 1] -> uint8, clamped and rounded (the inverse of ``/ 255``), same type and layout.
    """
    if isinstance(x, torch.Tensor):
        return x.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    arr = np.asarray(x)
    arr = arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float32)  # float64 stays float64
    return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint8(tensor_chw: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] (or (1, C, H, W)) -> (H, W, C) uint8 numpy, clamped and rounded."""
    t = tensor_chw.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"to_uint8 expects a (C, H, W) tensor, got shape {tuple(t.shape)}")
    return quantize(t).permute(1, 2, 0).cpu().numpy()


def center_crop(x: ArrayOrTensor, size: int | None) -> ArrayOrTensor:
    """The central ``size`` x ``size`` window: of the last two axes of a tensor (..., H, W), of the first two
    of an array (H, W, ...). A side shorter than ``size`` is kept whole; ``size=None`` keeps all."""
    if size is None:
        return x
    h, w = x.shape[-2:] if isinstance(x, torch.Tensor) else x.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    rows, cols = slice(top, top + size), slice(left, left + size)
    return x[..., rows, cols] if isinstance(x, torch.Tensor) else x[rows, cols]


def paired_random_crop(
    degraded: np.ndarray, clean: np.ndarray, patch_size: int, rng: np.random.Generator, name: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """The same random ``patch_size`` x ``patch_size`` window from both (H, W, C) arrays."""
    if degraded.shape[:2] != clean.shape[:2]:
        raise DataError(f"{name}: degraded {degraded.shape} and clean {clean.shape} differ in size")
    h, w = degraded.shape[:2]
    if patch_size > h or patch_size > w:
        raise DataError(
            f"{name or 'image'}: patch_size {patch_size} is larger than the image ({w}x{h} WxH). "
            f"Use patch_size <= {min(h, w)}, or patch_size=None to train on whole images."
        )
    top = int(rng.integers(0, h - patch_size + 1))
    left = int(rng.integers(0, w - patch_size + 1))
    window = (slice(top, top + patch_size), slice(left, left + patch_size))
    return degraded[window], clean[window]


AUGMENTS = ("none", "flips", "x8")  # training augmentations, identical on both images of a pair
_FLIPS = (0, 4, 2, 6)  # as is, left-right mirror, 180-degree turn, top-bottom mirror: rain keeps its slant


def augment_mode(value: bool | str | None) -> str:
    """``"none"``, ``"flips"`` or ``"x8"`` from a setting (``True``/``False``: configs that had a bool)."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "x8"
    if value not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)} (got {value!r})")
    return str(value)


def _dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of the square: rotate by 90*(k%4) degrees, then mirror if k >= 4."""
    out = np.rot90(img, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def paired_augment(
    degraded: np.ndarray, clean: np.ndarray, rng: np.random.Generator, mode: str = "x8"
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random transform to both arrays: ``"x8"`` one of the 8 flips/90-degree rotations,
    ``"flips"`` one of the 4 flips (left-right, top-bottom, both, neither), uniformly."""
    k = int(rng.integers(0, 8)) if mode == "x8" else _FLIPS[int(rng.integers(0, 4))]
    return _dihedral(degraded, k), _dihedral(clean, k)


class PairedDataset(Dataset):
    """(degraded, clean) pairs as float32 CHW tensors in [0, 1], optionally cropped and augmented.

    Items are dicts ``{"degraded", "clean", "kind", "name"}`` (``uint8=True``: the images as uint8 tensors, to
    be converted with ``to_float`` where they are used). ``repeat`` draws that many patches per image
    per epoch (length ``len(pairs) * repeat``). ``patch_size=None`` keeps whole images (batch them with
    ``batch_size=1`` when sizes differ).

    Randomness comes from ``numpy.random.default_rng([seed, epoch, index])``: reproducible and independent of
    the number of DataLoader workers. ``set_epoch`` writes the epoch into a shared-memory tensor, so workers
    (also with ``persistent_workers=True``) see it; call it *before* ``iter(loader)`` for each epoch.

    ``cache=True`` keeps decoded uint8 images in memory, per process. Call ``preload()`` before building the
    DataLoader to decode everything once with a thread pool; forked workers then share those pages instead of
    each filling its own copy (with the ``spawn`` start method the cache is pickled into each worker).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        patch_size: int | None = None,
        augment: bool | str = False,
        cache: bool = True,
        repeat: int = 1,
        seed: int = 0,
        uint8: bool = False,
    ) -> None:
        self.pairs = list(pairs)
        if not self.pairs:
            raise DataError(
                "PairedDataset got no pairs; check the dataset with `python -m hw4lib check-data ROOT`"
            )
        if patch_size is not None and (int(patch_size) != patch_size or patch_size < 1):
            raise ValueError(f"patch_size must be a positive integer or None, got {patch_size!r}")
        if int(repeat) != repeat or repeat < 1:
            raise ValueError(f"repeat must be a positive integer, got {repeat!r}")
        self.patch_size = None if patch_size is None else int(patch_size)
        self.augment = augment_mode(augment)
        self.cache = bool(cache)
        self.repeat = int(repeat)
        self.seed = int(seed)
        self.uint8 = bool(uint8)  # items as uint8 tensors: 4x less to copy to a GPU, converted there
        self._images: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops/flips the next items use (visible to DataLoader workers)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.fill_(int(epoch))

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        images = self._images.get(i)
        if images is None:
            images = load_pair(self.pairs[i])
            if self.cache:
                self._images[i] = images
        return images

    def preload(self, num_threads: int | None = None) -> PairedDataset:
        """Decode every pair now with a thread pool (needs ``cache=True``); returns ``self``."""
        if not self.cache:
            raise ValueError("preload() needs cache=True")
        todo = [i for i in range(len(self.pairs)) if i not in self._images]
        with ThreadPoolExecutor(max_workers=num_threads or min(8, (len(todo) or 1))) as pool:
            for i, images in zip(todo, pool.map(load_pair, [self.pairs[i] for i in todo]), strict=True):
                self._images[i] = images
        return self

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index %= n
        pair_idx = index % len(self.pairs)
        pair = self.pairs[pair_idx]
        degraded, clean = self._load(pair_idx)
        if self.patch_size is not None or self.augment != "none":
            rng = np.random.default_rng([self.seed, self.epoch, index])
            if self.patch_size is not None:
                degraded, clean = paired_random_crop(degraded, clean, self.patch_size, rng, name=pair.name)
            if self.augment != "none":
                degraded, clean = paired_augment(degraded, clean, rng, self.augment)
        convert = _to_uint8_tensor if self.uint8 else to_tensor
        return {
            "degraded": convert(degraded),
            "clean": convert(clean),
            "kind": pair.kind,
            "name": pair.name,
        }

    def __repr__(self) -> str:
        kinds = Counter(p.kind for p in self.pairs)
        return (
            f"PairedDataset({len(self.pairs)} pairs {dict(kinds)}, patch_size={self.patch_size}, "
            f"augment={self.augment}, repeat={self.repeat}, seed={self.seed})"
        )


def most_degraded_window(degraded: np.ndarray, clean: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner (top, left) of the ``size`` x ``size`` window where two (H, W, C) images differ most
    (sum of absolute differences; ties go to the top-left-most window)."""
    h, w = clean.shape[:2]
    size = max(1, min(size, h, w))
    err = np.abs(degraded.astype(np.float32) - clean.astype(np.float32)).sum(axis=2)
    integral = np.pad(err, ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # box sums of every window in O(HW)
    sums = (
        integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    )
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)
