"""The report's statistics: 95% intervals of a mean, a correlation and a proportion, and the small tools that
describe how the prompt weights separate rain from snow (a nearest-mean classifier, a 2-D PCA).

Every interval is two-sided at ``LEVEL``; "resolved" (:func:`excludes_zero`) means it lies on one side of 0.
Plain functions of numbers and arrays: the tables (``tables``) apply them to runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hw4lib.data import KINDS

LEVEL = 0.95  # every interval of the report: two-sided 95%


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided Student t quantile for the mean of ``n`` values (``n - 1`` degrees of freedom), from
    ``scipy.stats``; NaN for fewer than 2 values."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, n - 1)) if n >= 2 else float("nan")


def normal_quantile(level: float = LEVEL) -> float:
    """The two-sided standard normal quantile."""
    from scipy import stats

    return float(stats.norm.ppf(0.5 + level / 2))


def mean_interval(values: Any, level: float = LEVEL) -> dict[str, float]:
    """Mean of ``values`` (NaNs dropped) with its Student t interval: mean ± t(n-1) · sd / sqrt(n).

    Returns ``mean``, ``low``, ``high``, ``n``; the bounds are NaN for fewer than two values (one run or one
    image is a demonstration: it has no interval).
    """
    x = np.asarray(values, float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": n}
    half = t_quantile(n, level) * float(x.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def excludes_zero(low: float, high: float, null: float = 0.0) -> bool:
    """True when the interval [low, high] lies entirely on one side of ``null`` (a resolved difference)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return False
    return bool(low > null or high < null)


def interval_row(ci: dict[str, float]) -> dict[str, Any]:
    """A :func:`mean_interval` as table columns: ``n``, ``mean (dB)``, ``low (dB)``, ``high (dB)``,
    ``resolved``."""
    return {
        "n": ci["n"],
        "mean (dB)": ci["mean"],
        "low (dB)": ci["low"],
        "high (dB)": ci["high"],
        "resolved": excludes_zero(ci["low"], ci["high"]),
    }


def pearson_interval(x: Any, y: Any, level: float = LEVEL) -> dict[str, float]:
    """Pearson's r between ``x`` and ``y`` with the Fisher z interval: tanh(atanh(r) ± z / sqrt(n - 3)).

    Returns ``r``, ``low``, ``high``, ``n``; the bounds are NaN for fewer than four pairs or a constant side.
    """
    a, b = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    nan = float("nan")
    if n < 2 or a.std() == 0 or b.std() == 0:
        return {"r": nan, "low": nan, "high": nan, "n": n}
    r = float(np.corrcoef(a, b)[0, 1])
    if n < 4:
        return {"r": r, "low": nan, "high": nan, "n": n}
    z = math.atanh(min(max(r, -0.999999), 0.999999))
    half = normal_quantile(level) / math.sqrt(n - 3)
    return {"r": r, "low": math.tanh(z - half), "high": math.tanh(z + half), "n": n}


def wilson_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (stays inside [0, 1], fine at 0 or n)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = normal_quantile(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# ----------------------------------------------------------------------------------- rain or snow, by weights


def centroid_loo_correct(x: np.ndarray, kinds: np.ndarray) -> int | None:
    """How many rows of ``x`` a leave-one-out nearest-class-mean classifier (rain vs snow) gets right;
    ``None`` when a type has too few rows to leave one out. Vectorised: a row's own class mean without it is
    ``(sum - row) / (n - 1)``."""
    x = np.asarray(x, float)
    kinds = np.asarray(kinds)
    dists = []
    for kind in KINDS:
        member = kinds == kind
        n = int(member.sum())
        if n < 2:
            return None
        total = x[member].sum(0)
        own = (total - x) / np.where(member, n - 1, n)[:, None]  # rows of this class leave themselves out
        dists.append(((x - np.where(member[:, None], own, total / n)) ** 2).sum(1))
    chosen = np.asarray(KINDS)[np.argmin(np.stack(dists), axis=0)]
    return int((chosen == kinds).sum())


def centroid_loo_accuracy(x: np.ndarray, kinds: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-class-mean classifier (rain vs snow) on the rows of ``x``."""
    correct = centroid_loo_correct(x, kinds)
    return float("nan") if correct is None else correct / len(x)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` on their first two principal components (numpy SVD); returns (coords, explained)."""
    centered = x - x.mean(0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    # fix each component's sign (largest |loading| positive) so the picture does not flip between machines
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    var = s**2
    explained = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    coords = centered @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        explained = np.pad(explained, (0, 2 - len(explained)))
    return coords, explained[:2]
