"""Probability vectors: validation, normalisation, residuals and inverse-CDF lookup.

A distribution is a tuple of numbers, either all `Fraction` (exact) or `float`.
The same functions serve both so that one implementation is sampled and enumerated.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from fractions import Fraction

from dsi_ref.errors import InvalidDistribution

Num = Fraction | float
Dist = tuple[Num, ...]

# Float distributions may be off by rounding; exact ones must sum to exactly 1.
FLOAT_SUM_TOL = 1e-9


def check_dist(p: Sequence[Num], what: str = "distribution") -> Dist:
    """Return `p` as a tuple after checking it is a probability vector; raise otherwise."""
    if len(p) == 0:
        raise InvalidDistribution(f"{what} is empty")
    for i, x in enumerate(p):
        if not isinstance(x, (Fraction, float, int)) or isinstance(x, bool):
            raise InvalidDistribution(f"{what}[{i}] = {x!r} is not a number")
        if isinstance(x, float) and not math.isfinite(x):
            raise InvalidDistribution(f"{what}[{i}] = {x!r} is not finite")
        if x < 0:
            raise InvalidDistribution(f"{what}[{i}] = {x!r} is negative")
    total = sum(p)
    exact = all(isinstance(x, (Fraction, int)) for x in p)
    if exact:
        if total != 1:
            raise InvalidDistribution(f"{what} sums to {total}, not 1")
        return tuple(Fraction(x) for x in p)
    if abs(float(total) - 1.0) > FLOAT_SUM_TOL:
        raise InvalidDistribution(f"{what} sums to {float(total)!r}, not 1")
    return tuple(float(x) for x in p)


def is_exact(p: Sequence[Num]) -> bool:
    return all(isinstance(x, Fraction) for x in p)


def normalize(w: Sequence[Num], what: str = "weights") -> Dist:
    """Scale non-negative weights to sum to 1; raise if they are all zero."""
    total = sum(w)
    if total <= 0:
        raise InvalidDistribution(f"{what} have total mass {total}; nothing to normalise")
    if total == 1 and _all_of_one_type(w):
        return tuple(w)  # x / 1 is x exactly, for a Fraction as for a float: skip the divisions
    return tuple(x / total for x in w)


def _all_of_one_type(w: Sequence[Num]) -> bool:
    """All Fractions or all floats (then x / total keeps each x's type)."""
    kind = type(w[0])
    return (kind is Fraction or kind is float) and all(type(x) is kind for x in w)


def residual(p: Sequence[Num], q: Sequence[Num]) -> Dist:
    """norm(max(0, p - q)): the law of the corrected token after a rejection."""
    zero = p[0] - p[0]
    return normalize([max(zero, a - b) for a, b in zip(p, q, strict=True)], "residual p - q")


def argmax(p: Sequence[Num]) -> int:
    """Index of the largest entry; ties go to the lowest index (deterministic greedy)."""
    best = 0
    for i in range(1, len(p)):
        if p[i] > p[best]:
            best = i
    return best


def inverse_cdf(p: Sequence[Num], u: float) -> int:
    """The index j with cdf(j-1) <= u < cdf(j); zero-mass entries are never returned."""
    acc: Num = 0.0
    last = -1
    for j, x in enumerate(p):
        if x > 0:
            acc += x
            last = j
            if u < acc:
                return j
    return last  # u beyond a float cdf that fell short of 1 by rounding


class InverseCDF:
    """`inverse_cdf(p, u)` for one fixed p, answered by bisection over the same partial sums.

    The sums are accumulated exactly as inverse_cdf does (a float accumulator,
    positive entries only), so `lookup(u) == inverse_cdf(p, u)` for every u: the
    first j with u < sums[j] is found by bisect_right, since sums never decrease.
    """

    __slots__ = ("_index", "_last", "_sums")

    def __init__(self, p: Sequence[Num]) -> None:
        acc: Num = 0.0
        self._sums: list[Num] = []
        self._index: list[int] = []
        for j, x in enumerate(p):
            if x > 0:
                acc += x
                self._sums.append(acc)
                self._index.append(j)
        self._last = self._index[-1] if self._index else -1

    def lookup(self, u: float) -> int:
        i = bisect_right(self._sums, u)
        return self._index[i] if i < len(self._index) else self._last


def total_variation(p: Sequence[Num], q: Sequence[Num]) -> Num:
    total: Num = p[0] - p[0]
    for a, b in zip(p, q, strict=True):
        d = a - b
        total += d if d >= 0 else -d
    return total / 2
