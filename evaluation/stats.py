"""Summary statistics of per-item metrics: mean with standard error, paired t-tests, Cohen's d.

SEM = sample standard deviation (ddof 1) / sqrt(n). The paired t-test is scipy's ``ttest_rel`` (two
sided). Cohen's d for paired samples is d_z = mean(a - b) / sd(a - b) (ddof 1; Cohen 1988, the
effect size that goes with the paired t: t = d_z * sqrt(n)). Values that cannot be computed (n < 2,
zero variance) are NaN, written as empty cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard error of the mean); SEM is NaN for fewer than two values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    sem = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), sem


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired t-test of ``a`` against ``b`` (same items, same order) and Cohen's d_z.

    Returns ``{"n", "mean_diff", "t", "p", "cohens_d"}``; ValueError when the lengths differ.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"Paired samples differ in length: {x.size} vs {y.size}")
    diff = x - y
    n = int(diff.size)
    sd = float(diff.std(ddof=1)) if n > 1 else math.nan
    if n < 2 or not sd > 0:
        return {"n": n, "mean_diff": float(diff.mean()) if n else math.nan, "t": math.nan, "p": math.nan,
                "cohens_d": math.nan}
    result = stats.ttest_rel(x, y)
    return {"n": n, "mean_diff": float(diff.mean()), "t": float(result.statistic), "p": float(result.pvalue),
            "cohens_d": float(diff.mean() / sd)}
