"""A distribution-free confidence interval for the median of paired ratios.

Rounds of a paired benchmark give ratios r_1..r_n (SI's wall over a method's, same
round). Whatever their distribution, the median m lies between the order statistics
r_(j) and r_(n+1-j) with probability >= 1 - 2 P(Bin(n, 1/2) < j); `median_ci` picks the
largest such j for a 95% interval (the sign-test interval). With fewer than 6 rounds no
95% interval exists and the range is returned.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median_ci(xs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the sign-test interval for the median at `level`."""
    if not xs:
        raise ValueError("no rounds")
    s = sorted(xs)
    n = len(s)
    tail = (1 - level) / 2
    j, below = 0, 0.0  # below = P(Bin(n, 1/2) < j + 1) as j grows
    while j < n // 2:
        below += math.comb(n, j) / 2**n
        if below > tail:
            break
        j += 1
    if j == 0:
        return statistics.median(s), s[0], s[-1]
    return statistics.median(s), s[j - 1], s[n - j]


def show_ci(xs: Sequence[float]) -> str:
    """'median [low-high]' with the 95% sign-test interval; 'median (range low-high)'
    below 6 rounds, where none exists."""
    m, lo, hi = median_ci(xs)
    if len(xs) < 6:
        return f"{m:.2f} (range {lo:.2f}-{hi:.2f})"
    return f"{m:.2f} [{lo:.2f}-{hi:.2f}]"
