"""Import public paired benchmarks into the course layout, so the same notebooks train and score on them.

Supported source layouts (``LAYOUTS``; ``layout="auto"`` picks the one whose two folders exist in SRC):

- ``mirror``   -- the Rain100L / Rain100H mirrors: ``SRC/input/N.png`` (degraded) + ``SRC/target/N.png``
  (clean), paired by identical file stem;
- ``promptir`` -- the official PromptIR training folders: ``SRC/rainy/rain-N.png`` + ``SRC/gt/norain-N.png``,
  paired by N.

The output is the course layout (see README.md)::

    OUT/train/degraded/<kind>-N.png    OUT/train/clean/<kind>_clean-N.png     N = 1, 2, ...
    OUT/test/degraded/K.png            OUT/test/clean/K.png (the answers)     K = 0, 1, ...
    OUT/test/labels.csv                name,kind,level of each test image (as in the demo set)
    OUT/sources.csv                    where every output pair came from

Every image is decoded and re-encoded as an 8-bit RGB PNG (sources may be JPEG, grayscale or 16-bit).
Unpaired files and pairs whose sizes differ are refused with the files named. The held-out test share is drawn
with ``random.Random(seed)``: the same source, fraction and seed give the same split on every machine.

Existing output folder: refused unless ``mode="append"`` (new pairs continue the numbering of the pairs
already there: e.g. rain pairs into a snow-only set, or a second source) or ``mode="force"`` (the folder is
replaced). A fresh import or ``force`` is built in a temporary folder next to OUT and renamed into place,
so an interrupted import leaves no half-filled dataset; ``append`` stages the new files the same way, then
moves them in.
"""

from __future__ import annotations

import csv
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hw4lib import paths
from hw4lib.data import IMAGE_SUFFIXES, KINDS, DataError, list_images, load_image, natural_key
from hw4lib.paths import save_png_atomic

__all__ = ["LAYOUTS", "Layout", "SourcePair", "ImportSummary", "detect_layout", "find_source_pairs",
           "import_pairs", "supported_layouts"]

MODES = ("new", "append", "force")
MANIFEST = "sources.csv"
LABELS = "test/labels.csv"  # name,kind,level: the demo set's convention (hw4lib.synth), read by infer.score
_CSV_FIELDS = {
    MANIFEST: ("split", "degraded", "clean", "kind", "source_degraded", "source_clean", "layout"),
    LABELS: ("name", "kind", "level"),
}


# ----------------------------------------------------------------------------------------------------------
# source layouts


@dataclass(frozen=True)
class Layout:
    """One public layout: two folders and how a file name gives the key that pairs degraded with clean."""

    name: str
    degraded_dir: str
    clean_dir: str
    degraded_stem: str  # regex over the file stem with a group named "key"
    clean_stem: str
    example: str  # shown in error messages

    def key(self, path: Path, degraded: bool) -> str:
        pattern = self.degraded_stem if degraded else self.clean_stem
        match = re.fullmatch(pattern, path.stem)
        if match is None:
            raise DataError(
                f"{path}: the {self.name!r} layout expects names like {self.example}; "
                "rename or remove this file"
            )
        return match.group("key")


LAYOUTS: dict[str, Layout] = {
    "mirror": Layout("mirror", "input", "target", r"(?P<key>.+)", r"(?P<key>.+)",
                     "input/1.png + target/1.png (Rain100L/Rain100H mirrors)"),
    "promptir": Layout("promptir", "rainy", "gt", r"rain-(?P<key>\d+)", r"norain-(?P<key>\d+)",
                       "rainy/rain-1.png + gt/norain-1.png (official PromptIR)"),
}


def supported_layouts() -> str:
    return "; ".join(f"{name}: {layout.example}" for name, layout in LAYOUTS.items())


def _matches(src: Path) -> list[Layout]:
    """The layouts whose degraded and clean folders both exist in ``src``."""
    return [lay for lay in LAYOUTS.values()
            if (src / lay.degraded_dir).is_dir() and (src / lay.clean_dir).is_dir()]


def detect_layout(src: str | os.PathLike[str]) -> Layout:
    """The layout whose two folders both exist in ``src``; a DataError listing the supported ones if none."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: no such folder; pass the folder that holds the benchmark's image folders")
    found = _matches(src)
    if len(found) == 1:
        return found[0]
    contents = sorted(p.name + ("/" * p.is_dir()) for p in src.iterdir() if not p.name.startswith("."))
    shown = ", ".join(contents[:10]) + (", ..." if len(contents) > 10 else "") or "nothing"
    if not found:
        inside = [p for p in sorted(src.iterdir()) if p.is_dir() and _matches(p)]
        hint = f" (did you mean {inside[0]}?)" if inside else ""
        raise DataError(
            f"{src}: unknown layout (it holds {shown}){hint}. Supported layouts: {supported_layouts()}"
        )
    names = ", ".join(lay.name for lay in found)
    raise DataError(f"{src}: matches several layouts ({names}); pick one with --layout")


@dataclass(frozen=True)
class SourcePair:
    key: str
    degraded: Path
    clean: Path


def _keyed(layout: Layout, folder: Path, degraded: bool) -> dict[str, Path]:
    images = list_images(folder)
    keyed: dict[str, Path] = {}
    for path in images:
        key = layout.key(path, degraded)
        if key in keyed:
            raise DataError(f"{path} and {keyed[key]} both claim pair {key!r}; keep one of them")
        keyed[key] = path
    return keyed


def find_source_pairs(src: str | os.PathLike[str], layout: str | Layout = "auto") -> list[SourcePair]:
    """The (degraded, clean) files of a source, in natural key order; DataError on unpaired files."""
    src = Path(src)
    lay = detect_layout(src) if layout == "auto" else layout if isinstance(layout, Layout) else None
    if lay is None:
        if layout not in LAYOUTS:
            raise DataError(f"unknown layout {layout!r}; choose auto or one of: {supported_layouts()}")
        lay = LAYOUTS[layout]
    deg_dir, clean_dir = src / lay.degraded_dir, src / lay.clean_dir
    for folder in (deg_dir, clean_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: missing; the {lay.name!r} layout is {lay.example}")
    degraded, clean = _keyed(lay, deg_dir, True), _keyed(lay, clean_dir, False)
    for mine, theirs, other_dir in ((degraded, clean, clean_dir), (clean, degraded, deg_dir)):
        lonely = sorted(set(mine) - set(theirs), key=natural_key)
        if lonely:
            files = ", ".join(str(mine[k]) for k in lonely[:5])
            if len(lonely) > 5:
                files += f" and {len(lonely) - 5} more"
            raise DataError(f"unpaired: {files} has no partner in {other_dir}; "
                            "add the partner or remove the file")
    if not degraded:
        raise DataError(f"{deg_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return [SourcePair(k, degraded[k], clean[k]) for k in sorted(degraded, key=natural_key)]


# ----------------------------------------------------------------------------------------------------------
# import


@dataclass
class ImportSummary:
    out: Path
    layout: str
    kind: str
    mode: str
    n_train: int
    n_test: int
    train_names: list[str] = field(default_factory=list)  # e.g. "rain-1"
    test_names: list[str] = field(default_factory=list)  # e.g. "0"
    seed: int = 0
    test_fraction: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d

    def __str__(self) -> str:
        verb = {"new": "imported", "append": "appended", "force": "re-imported"}[self.mode]
        return (f"{verb} {self.n_train + self.n_test} {self.kind} pairs ({self.layout} layout) into "
                f"{self.out}: {self.n_train} train, {self.n_test} test "
                f"(fraction {self.test_fraction:g}, seed {self.seed})")


def _numbers(folder: Path, pattern: str) -> list[int]:
    if not folder.is_dir():
        return []
    return [int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(pattern, p.name))]


def _check_out(src: Path, out: Path, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    s, o = src.resolve(), out.resolve()
    if o == s or o in s.parents:
        raise DataError(f"{out}: the output folder must not be the source folder or hold it; "
                        "choose another --out")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    if mode == "new" and out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out}: already exists and is not empty; pass --append to add these pairs with "
                        f"continuing numbers, or --force to replace the folder")


def import_pairs(
    src: str | os.PathLike[str],
    kind: str = "rain",
    out: str | os.PathLike[str] | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
    layout: str = "auto",
    mode: str = "new",
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Convert a paired benchmark at ``src`` into the course layout at ``out`` (default ``data/<src name>``).

    ``test_fraction`` of the pairs (rounded, drawn with ``seed``) go to ``test/`` with their answers in
    ``test/clean``; the rest to ``train/``. ``mode`` is "new" (refuse a non-empty ``out``), "append" (continue
    the numbering in ``out``) or "force" (replace ``out``). ``progress(done, total)`` is called per pair.
    """
    src = Path(src)
    out = Path(out) if out is not None else paths.data_dir(src.resolve().name)
    if kind not in KINDS:
        raise DataError(f"unknown --type {kind!r}; choose one of {', '.join(KINDS)}")
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    _check_out(src, out, mode)
    lay = detect_layout(src) if layout == "auto" else LAYOUTS.get(layout)
    if lay is None:
        raise DataError(f"unknown layout {layout!r}; choose auto or one of: {supported_layouts()}")
    pairs = find_source_pairs(src, lay)

    n_test = int(round(test_fraction * len(pairs)))
    test_idx = set(random.Random(seed).sample(range(len(pairs)), n_test))
    appending = mode == "append" and out.is_dir()
    first_train, first_test = 1, 0
    if appending:
        first_train += max(_numbers(out / "train" / "degraded", rf"{kind}-(\d+)\.png"), default=0)
        first_test += max(_numbers(out / "test" / "degraded", r"(\d+)\.png"), default=-1) + 1

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        for sub in ("train/degraded", "train/clean") + (("test/degraded", "test/clean") if n_test else ()):
            (staging / sub).mkdir(parents=True)
        rows: list[dict[str, str]] = []
        labels: list[dict[str, str]] = []
        summary = ImportSummary(out, lay.name, kind, mode if out.is_dir() and any(out.iterdir()) else "new",
                                len(pairs) - n_test, n_test, seed=seed, test_fraction=test_fraction)
        n_tr = n_te = 0
        for i, pair in enumerate(pairs):
            degraded, clean = load_image(pair.degraded), load_image(pair.clean)
            if degraded.shape != clean.shape:
                raise DataError(
                    f"misaligned pair: {pair.degraded} is {degraded.shape[1]}x{degraded.shape[0]} but "
                    f"{pair.clean} is {clean.shape[1]}x{clean.shape[0]}; a pair must have the same size"
                )
            if i in test_idx:
                name = str(first_test + n_te)
                n_te += 1
                rel_d, rel_c = f"test/degraded/{name}.png", f"test/clean/{name}.png"
                summary.test_names.append(name)
                labels.append({"name": f"{name}.png", "kind": kind, "level": ""})
            else:
                number = first_train + n_tr
                n_tr += 1
                rel_d, rel_c = f"train/degraded/{kind}-{number}.png", f"train/clean/{kind}_clean-{number}.png"
                summary.train_names.append(f"{kind}-{number}")
            save_png_atomic(degraded, staging / rel_d)
            save_png_atomic(clean, staging / rel_c)
            rows.append({"split": rel_d.split("/")[0], "degraded": rel_d, "clean": rel_c, "kind": kind,
                         "source_degraded": str(pair.degraded.resolve()),
                         "source_clean": str(pair.clean.resolve()), "layout": lay.name})
            if progress is not None:
                progress(i + 1, len(pairs))
        for rel, new in ((MANIFEST, rows), (LABELS, labels)):
            if new or (appending and (out / rel).is_file()):
                _write_csv(staging / rel, _read_csv(out / rel) if appending else [], new, _CSV_FIELDS[rel])
        _commit(staging, out, appending)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_csv(
    path: Path, old: list[dict[str, str]], new: list[dict[str, str]], fields: Sequence[str]
) -> None:
    """``old`` rows (keeping any extra columns they have) followed by ``new`` ones."""
    extra = [k for row in old for k in row if k not in fields and k is not None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*fields, *dict.fromkeys(extra)], extrasaction="ignore",
                                restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(old + new)


def _commit(staging: Path, out: Path, appending: bool) -> None:
    """Put the staged dataset in place: rename the whole folder, or move the new files into ``out``."""
    if not appending:
        if out.is_dir():  # an empty folder, or "force": set the old one aside until the new one is in place
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
        return
    merged = [staging / rel for rel in _CSV_FIELDS if (staging / rel).is_file()]
    images = [p for p in sorted(staging.rglob("*")) if p.is_file() and p not in merged]
    clashes = [out / p.relative_to(staging) for p in images if (out / p.relative_to(staging)).exists()]
    if clashes:
        raise DataError(f"{clashes[0]}: already exists; the output folder changed during the import, "
                        "run it again")
    for path in images + merged:  # the images first, then the CSVs: they list only what is in place
        target = out / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)


# ----------------------------------------------------------------------------------------------------------
# CLI
