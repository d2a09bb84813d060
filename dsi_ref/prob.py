"""Probability vectors: validation, normalisation, residuals and inverse-CDF lookup.

A distribution is a tuple of numbers, either all `Fraction` (exact) or `float`.
The same functions serve both so that one implementation is sampled and enumerated.
"""

from __future__ import annotations

import math
import numbers
import sys
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

from dsi_ref.errors import InvalidDistribution, show

Num = Fraction | float
Dist = tuple[Num, ...]

# Float distributions may be off by rounding; exact ones must sum to exactly 1.
FLOAT_SUM_TOL = 1e-9
# A model's output (dsi_ref.sampling.WarpedModel) may come from a float32 softmax over a
# large vocabulary: it is renormalised when within this of 1, rejected beyond.
MODEL_SUM_TOL = 1e-6


_MAX_FLOAT = sys.float_info.max


def _entry_problem(i: int, x: object) -> str | None:
    """Why entry i of a probability vector is unusable, or None if it is a number >= 0."""
    if isinstance(x, bool) or not isinstance(x, (float, int, Fraction, numbers.Real)):
        return f"[{i}] = {show(x)} is not a number"
    if isinstance(x, float) or not isinstance(x, (int, Fraction)):
        f = float(x)
        if not math.isfinite(f):
            return f"[{i}] = {show(x)} is not finite"
    if x < 0:
        return f"[{i}] = {show(x)} is negative"
    return None


def _as_dist(p: object, tol: float) -> Dist | str:
    """`p` as a checked Dist, or the problem (text to follow the vector's name)."""
    if isinstance(p, (str, bytes, Mapping)) or not (
        isinstance(p, Sequence) or (hasattr(p, "__len__") and hasattr(p, "__iter__"))
    ):
        return f" must be a sequence of probabilities, got {show(p)}"
    t = tuple(p)  # duck-typed: numpy arrays are not Sequences
    if not t:
        return f" is empty: {show(p)}"
    if type(t[0]) is float:  # the common case, checked at C speed; anything odd: below
        try:
            if (
                min(t) >= 0.0
                and abs(math.fsum(t) - 1.0) <= tol  # false for NaN; inf sums to inf or NaN
                and set(map(type, t)) == {float}
            ):
                return t
        except (TypeError, ValueError):  # a non-number, or inf - inf in fsum
            pass
    floats = True  # every entry exactly a float (the common case: nothing to convert)
    exact = True  # every entry an int or Fraction
    for i, x in enumerate(t):
        if type(x) is float:
            if not (0.0 <= x <= _MAX_FLOAT):  # false for NaN, inf and negatives
                return _entry_problem(i, x) or f"[{i}] = {show(x)} is out of range"
            exact = False
            continue
        floats = False
        problem = _entry_problem(i, x)
        if problem is not None:
            return problem
        if not isinstance(x, (int, Fraction)):
            exact = False
    if exact:
        total = sum(t, Fraction(0))
        if total != 1:
            return f" sums to {show(total)}, not 1"
        return tuple(Fraction(x) for x in t)
    d = t if floats else tuple(float(x) for x in t)
    ftotal = math.fsum(d)
    if not abs(ftotal - 1.0) <= tol:
        return f" sums to {ftotal!r}, not 1"
    return d


def check_dist(p: Sequence[Num], what: str = "distribution", tol: float = FLOAT_SUM_TOL) -> Dist:
    """Return `p` as a tuple after checking it is a probability vector; raise otherwise.

    All-exact entries (int, Fraction) give Fractions summing to exactly 1; otherwise floats
    summing to 1 within `tol`. Entries must be finite numbers >= 0.
    """
    d = _as_dist(p, tol)
    if isinstance(d, str):
        raise InvalidDistribution(what + d)
    return d


def check_model_output(
    p: object, vocab: int, where: Callable[[], str], tol: float = MODEL_SUM_TOL
) -> Dist:
    """A model's next-token distribution, checked against its vocabulary size.

    `where()` names the model and the prefix; it is only called to build a message.
    """
    d = _as_dist(p, tol)
    if isinstance(d, str):
        raise InvalidDistribution(f"{where()}: next_dist{d}")
    if len(d) != vocab:
        raise InvalidDistribution(
            f"{where()}: next_dist has {len(d)} entries, but the model's vocab_size is {vocab}"
        )
    return d


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
