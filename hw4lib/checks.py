"""``check-data``: scan a data set in the course layout and decode its images before a long run, collecting
every problem (unpaired files, unreadable or odd images, sizes that do not match, images smaller than the
crops) with the file it concerns, instead of stopping at the first."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw4lib.data import DataError, Pair, Problem, load_image, load_pair, natural_key, scan_test, scan_train
from hw4lib.metrics import psnr_uint8

__all__ = ["DataReport", "check_data"]


@dataclass
class DataReport:
    """What ``check_data`` found. ``ok`` is False when a problem would break training."""

    root: Path
    pairs_per_kind: dict[str, int] = field(default_factory=dict)
    checked_pairs: int = 0
    sizes: dict[tuple[int, int], int] = field(
        default_factory=dict
    )  # (W, H) of decoded degraded images: count
    input_psnr: dict[str, float] = field(default_factory=dict)  # kind -> mean PSNR(degraded, clean), dB
    test_count: int = 0
    test_sizes: dict[tuple[int, int], int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self, max_problems: int = 20) -> str:
        def sizes_text(sizes: dict[tuple[int, int], int]) -> str:
            common = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
            text = ", ".join(f"{w}x{h} ({n})" for (w, h), n in common[:5])
            return text + (f", ... {len(common) - 5} more sizes" if len(common) > 5 else "") if text else "-"

        total = sum(self.pairs_per_kind.values())
        lines = [f"dataset: {self.root}"]
        per_kind = ", ".join(f"{k} {n}" for k, n in self.pairs_per_kind.items())
        lines.append(f"training pairs: {total} ({per_kind})")
        lines.append(f"decoded pairs: {self.checked_pairs}; sizes (WxH): {sizes_text(self.sizes)}")
        for kind, value in self.input_psnr.items():
            lines.append(f"input PSNR {kind}: {value:.2f} dB (degraded vs clean, mean per image)")
        lines.append(f"test images: {self.test_count}; sizes (WxH): {sizes_text(self.test_sizes)}")
        lines.append(f"problems: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        lines += [f"  {p}" for p in self.problems[:max_problems]]
        if len(self.problems) > max_problems:
            lines.append(f"  ... and {len(self.problems) - max_problems} more")
        lines.append("OK" if self.ok else "NOT OK: fix the errors above before training")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _problem(err: DataError, path: Path) -> Problem:
    """An error about ``path`` as a Problem that names the file once (messages often start with it)."""
    text = str(err)
    return Problem("error", path, text.removeprefix(f"{path}: "))


def _spread(items: Sequence, limit: int | None) -> list:
    """At most ``limit`` items, evenly spaced over the sequence (all of them when ``limit`` is None)."""
    if limit is None or len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, max(limit, 0)).round().astype(int)]


def check_data(
    root: str | Path, max_images: int | None = None, patch_size: int | None = None, num_threads: int = 4
) -> DataReport:
    """Scan a dataset folder and decode its images; collects problems instead of raising.

    ``max_images`` limits the decoded pairs per kind and the decoded test images (evenly spaced); every file
    is still paired by name. ``patch_size`` additionally flags images too small for that crop.
    """
    root = Path(root)
    report = DataReport(root=root)
    pairs, problems = scan_train(root)
    tests, test_problems = scan_test(root) if root.is_dir() else ([], [])
    report.problems = problems + test_problems
    report.pairs_per_kind = dict(Counter(p.kind for p in pairs))
    report.test_count = len(tests)

    by_kind: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_kind[pair.kind].append(pair)
    chosen = [p for group in by_kind.values() for p in _spread(group, max_images)]

    def check_pair(pair: Pair) -> tuple[Pair, float | None, tuple[int, int] | None, Problem | None]:
        try:
            degraded, clean = load_pair(pair)
        except DataError as err:
            return pair, None, None, _problem(err, pair.degraded)
        h, w = degraded.shape[:2]
        if patch_size is not None and min(h, w) < patch_size:
            return (
                pair,
                None,
                (w, h),
                Problem(
                    "error",
                    pair.degraded,
                    f"{w}x{h} is smaller than patch_size {patch_size}: use smaller patches",
                ),
            )
        return pair, psnr_uint8(degraded, clean), (w, h), None

    def check_test(path: Path) -> tuple[tuple[int, int] | None, Problem | None]:
        try:
            img = load_image(path)
        except DataError as err:
            return None, _problem(err, path)
        return (img.shape[1], img.shape[0]), None

    psnrs: dict[str, list[float]] = defaultdict(list)
    sizes: Counter = Counter()
    test_sizes: Counter = Counter()
    with ThreadPoolExecutor(max_workers=num_threads) as pool:
        for pair, value, size, problem in pool.map(check_pair, chosen):
            report.checked_pairs += 1
            if size is not None:
                sizes[size] += 1
            if value is not None:
                psnrs[pair.kind].append(value)
            if problem is not None:
                report.problems.append(problem)
        for size, problem in pool.map(check_test, _spread(tests, max_images)):
            if size is not None:
                test_sizes[size] += 1
            if problem is not None:
                report.problems.append(problem)
    report.sizes = dict(sizes)
    report.test_sizes = dict(test_sizes)
    report.input_psnr = {k: float(np.mean(v)) for k, v in psnrs.items() if v}
    report.problems.sort(key=lambda p: (p.level != "error", natural_key(str(p.path))))
    return report
