"""The paired test every table uses (:func:`scipy.stats.ttest_rel`), with its degenerate cases."""

from __future__ import annotations

import math
from typing import Sequence

from scipy.stats import ttest_rel


def paired_t_pvalue(x: Sequence[float], y: Sequence[float], tol: float = 1e-15) -> float:
    """Two-sided paired t-test p-value of ``x`` against ``y`` (the same seeds or users, in order).

    The differences' spread is zero in two cases scipy answers with NaN or with a precision
    warning; they are decided here: identical values (every ``|x - y| <= tol``) give 1.0, and
    a constant non-zero difference (every pair apart by the same amount, in one direction) 0.0.
    Fewer than two pairs, or a NaN among them, give NaN (no test: never significant).

    Shape: x, y ``[n]``.
    """
    diffs = [a - b for a, b in zip(x, y)]
    if len(diffs) < 2 or any(math.isnan(d) for d in diffs):
        return float("nan")
    if all(abs(d) <= tol for d in diffs):
        return 1.0
    if max(diffs) - min(diffs) <= tol:
        return 0.0
    return float(ttest_rel(x, y).pvalue)
