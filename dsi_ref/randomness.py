"""Randomness keyed by (seed, absolute position, purpose).

Algorithms never hold a random generator. They ask a `Chooser` for a categorical
choice or a Bernoulli under a `Key`. Each key names one uniform U in [0, 1); a
choice with weights w returns the j with cdf(j-1) <= U < cdf(j), and a Bernoulli
with probability b returns U < b. Asking twice under one key reuses the same U,
so the answer depends on *what* is asked at a position, never on *when* or in
which order threads asked. The sampler below draws U from a hash; the enumerator
in `dsi_ref.exact` tracks the interval U is known to lie in, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import IntEnum
from typing import NamedTuple, Protocol

from dsi_ref.errors import InvalidConfig, InvalidDistribution, show
from dsi_ref.prob import FLOAT_SUM_TOL, InverseCDF, Num, check_dist, inverse_cdf


class Purpose(IntEnum):
    DRAFT = 1  # the drafter's sample at a position
    ACCEPT = 2  # the acceptance test of the draft at a position
    RESIDUAL = 3  # the corrected token after a rejection
    TARGET = 4  # a token sampled from the target alone (non-SI, SI's bonus token)


class Key(NamedTuple):
    position: int
    purpose: Purpose


class Chooser(Protocol):
    def choice(self, key: Key, weights: Sequence[Num]) -> int:
        """Index j of the part of [0, 1) that U(key) falls in, cut by the cdf of `weights`."""
        ...

    def bernoulli(self, key: Key, prob: Num) -> bool:
        """U(key) < prob."""
        ...


_MASK = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a bijective, well-mixed hash of a 64-bit word."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def keyed_uniform(seed: int, key: Key) -> float:
    """The uniform U(seed, key) in [0, 1) with 53 random bits.

    Every bit of the seed counts: it is folded in 64 bits at a time, so no two seeds
    alias structurally (2**128 and 0 used to give the same stream). Seeds below 2**128
    give the same values as before.
    """
    h = _mix64((seed & _MASK) ^ _mix64((key.position << 3) | int(key.purpose)))
    rest = seed >> 64
    if rest > _MASK:  # seeds >= 2**128 (rare): one more round per further 64 bits
        return _wide(h, rest)
    h = _mix64(h ^ rest)
    return (h >> 11) * (1.0 / (1 << 53))


def _wide(h: int, rest: int) -> float:
    h = _mix64(h ^ (rest & _MASK))
    rest >>= 64
    while rest:
        h = _mix64(h ^ (rest & _MASK) ^ 0xD6E8FEB86659FD93)
        rest >>= 64
    return (h >> 11) * (1.0 / (1 << 53))


_CDF_CACHE_SIZE = 1024


class SeededChooser:
    """A Chooser whose uniforms are a pure function of (seed, key)."""

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise InvalidConfig(f"seed must be an int >= 0, got {show(seed)}")
        self.seed = seed
        # Models hand out the same (cached) distribution tuples again and again, so their
        # inverse CDFs are kept, keyed by object identity; each entry holds its tuple, so
        # an id cannot be reused while its entry lives. Same answers as inverse_cdf.
        self._cdfs: dict[int, tuple[tuple[Num, ...], InverseCDF]] = {}

    def uniform(self, key: Key) -> float:
        return keyed_uniform(self.seed, key)

    def choice(self, key: Key, weights: Sequence[Num]) -> int:
        u = keyed_uniform(self.seed, key)
        if type(weights) is not tuple:  # possibly mutable: no caching
            return inverse_cdf(_checked_weights(key, weights), u)
        entry = self._cdfs.get(id(weights))
        if entry is None:
            if len(self._cdfs) >= _CDF_CACHE_SIZE:
                self._cdfs.clear()  # fresh tuples every time (e.g. residuals): stay bounded
            entry = (weights, InverseCDF(_checked_weights(key, weights)))
            self._cdfs[id(weights)] = entry
        return entry[1].lookup(u)

    def bernoulli(self, key: Key, prob: Num) -> bool:
        if prob != prob:  # NaN: U < NaN is always False, a silent "reject"
            raise InvalidDistribution(f"Bernoulli probability at key {key} is {show(prob)}")
        return keyed_uniform(self.seed, key) < prob


def _checked_weights(key: Key, weights: Sequence[Num]) -> Sequence[Num]:
    """Weights of a choice: a distribution (negative, NaN or not summing to 1 is an error).

    Checked once per distinct tuple (SeededChooser caches by identity), so the cost is a
    pass over the weights when they are first seen.
    """
    try:  # fast path, C speed: NaN and inf make the sum miss 1, negatives show in min
        if min(weights) >= 0 and abs(math.fsum(weights) - 1.0) <= FLOAT_SUM_TOL:
            return weights
    except (TypeError, ValueError):  # not numbers, or empty: the full check says which
        pass
    check_dist(weights, f"choice weights at key {tuple(key)}")
    return weights
