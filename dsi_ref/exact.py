"""Exact output law of an algorithm, by enumerating its keyed randomness.

`exact_law(run)` calls `run(chooser)` once per distinct path. The chooser keeps,
for every key, the interval [lo, hi) that the key's uniform U is known to lie in
on the current path. A choice cuts that interval by the cdf of its weights; if
more than one piece has positive length the path branches. Because each key is
one uniform, a key that is asked again (say a redraft at a position after a
rejection, with a new q) is handled exactly: it cuts the remaining interval. A
path's probability is the product over keys of hi - lo. The runs are the real
implementation, so the law returned is the law of the code, with no sampling error.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

from dsi_ref.errors import EnumerationError, InvalidConfig, InvalidDistribution, show
from dsi_ref.randomness import Chooser, Key

T = TypeVar("T", bound=Hashable)

_ZERO = Fraction(0)
_ONE = Fraction(1)


class _PathChooser:
    def __init__(self, script: list[int], rng: random.Random | None = None) -> None:
        self.script = script
        self.rng = rng  # set: a probe that picks branches at random (estimate_work)
        self.depth = 0
        self.branch_sizes: list[int] = []
        self.intervals: dict[Key, tuple[Fraction, Fraction]] = {}
        self.calls = 0  # questions asked on this path (choices and Bernoullis)

    def _pieces(
        self, key: Key, cuts: Sequence[Fraction], monotone: bool
    ) -> list[tuple[int, Fraction, Fraction]]:
        """The cells of [0, 1) cut at `cuts` that meet the interval U(key) is known to lie in."""
        known = self.intervals.get(key)
        if known is None and monotone:
            # A first question about this key: U's interval is [0, 1), which holds every
            # cell of a monotone cdf from 0 to 1, so no clipping is needed.
            return [
                (j, cuts[j], cuts[j + 1]) for j in range(len(cuts) - 1) if cuts[j] < cuts[j + 1]
            ]
        lo, hi = known or (_ZERO, _ONE)
        pieces = []
        for j in range(len(cuts) - 1):
            a, b = max(lo, cuts[j]), min(hi, cuts[j + 1])
            if a < b:
                pieces.append((j, a, b))
        return pieces

    def _take(self, key: Key, cuts: Sequence[Fraction], monotone: bool) -> int:
        pieces = self._pieces(key, cuts, monotone)
        if not pieces:
            raise EnumerationError(f"no outcome has positive probability at key {key}")
        if len(pieces) == 1:
            pick = 0
        else:
            if self.rng is not None:
                pick = self.rng.randrange(len(pieces))
            elif self.depth < len(self.script):
                pick = self.script[self.depth]
            else:
                pick = 0
                self.script.append(0)
            self.branch_sizes.append(len(pieces))
            self.depth += 1
        j, a, b = pieces[pick]
        self.intervals[key] = (a, b)
        return j

    def choice(self, key: Key, weights: Sequence[Fraction | float]) -> int:
        self.calls += 1
        cuts = [_ZERO]
        for w in weights:
            if not isinstance(w, Fraction):
                raise EnumerationError(
                    f"exact enumeration needs Fraction weights, got {show(w)} at key {key}"
                )
            if w.numerator < 0:
                raise InvalidDistribution(f"weights at key {key} have a negative entry {show(w)}")
            cuts.append(cuts[-1] + w)
        if cuts[-1] != 1:
            raise EnumerationError(f"weights at key {key} sum to {show(cuts[-1])}, not 1")
        return self._take(key, cuts, True)

    def bernoulli(self, key: Key, prob: Fraction | float) -> bool:
        self.calls += 1
        if not isinstance(prob, Fraction):
            raise EnumerationError(f"exact enumeration needs a Fraction, got {show(prob)} at {key}")
        if not _ZERO <= prob <= _ONE:  # clamping would enumerate a law nobody asked for
            raise InvalidDistribution(
                f"Bernoulli probability at key {key} must lie in [0, 1], got {show(prob)}"
            )
        return self._take(key, [_ZERO, prob, _ONE], True) == 0

    def probability(self) -> Fraction:
        out = _ONE
        for lo, hi in self.intervals.values():
            out *= hi - lo
        return out


DEFAULT_MAX_PATHS = 100_000
DEFAULT_MAX_CALLS = 1_000_000
PROBES = 64  # random paths run to estimate the work before enumerating (~0.1 s)
# Knuth's estimator is unbiased but spread: on the DSI/SI instances measured it came
# within a factor 2 of the true work with 64 probes (docs/verification.md). An estimate
# over half a limit is refused at once; the enumeration still enforces the limits exactly.
HEADROOM = 2
# Small instances (most) are let through after FEW_PROBES paths whose estimate is SURE
# times under the limits, so the estimate costs them a few paths, not 64.
FEW_PROBES = 4
SURE = 16


@dataclass(frozen=True)
class WorkEstimate:
    """Knuth's estimate from random probe paths: E[product of branch sizes] is the number of
    paths, E[product * questions on the path] the questions over all paths."""

    paths: float
    calls: float


def estimate_work(run: Callable[[Chooser], object], probes: int = PROBES) -> WorkEstimate:
    """Estimate exact_law's work by running `probes` paths that branch at random (seeded)."""
    rng = random.Random(0)
    paths = calls = 0.0
    for _ in range(probes):
        chooser = _PathChooser([], rng)
        run(chooser)
        width = math.prod(chooser.branch_sizes)
        w = float(width) if width < 10**300 else math.inf  # float() of a larger int overflows
        paths += w
        calls += w * chooser.calls
    return WorkEstimate(paths / probes, calls / probes)


def _check_limit(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfig(f"{name} must be an int >= 1, got {show(value)}")
    return value


def exact_law(
    run: Callable[[Chooser], T],
    max_paths: int = DEFAULT_MAX_PATHS,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> dict[T, Fraction]:
    """The exact law of `run(chooser)` as {outcome: probability}; probabilities sum to 1.

    Guards: before enumerating, `estimate_work` runs a few random paths; an estimate over
    half a limit (HEADROOM) raises EnumerationError stating the size. During enumeration,
    more than `max_paths` paths, or more than `max_calls` random questions over all paths
    together (the work), raise EnumerationError. The defaults stop a too-large
    instance within about half a minute of one core (the test suite's largest instance asks
    ~120k questions); raise them for a bigger instance knowingly.
    """
    if not callable(run):
        raise InvalidConfig(f"exact_law needs a callable run(chooser), got {show(run)}")
    _check_limit(max_paths, "max_paths")
    _check_limit(max_calls, "max_calls")
    # Estimate first: an instance with up to V^n outcomes is refused in a fraction of a
    # second, rather than after max_calls slow questions.
    est = estimate_work(run, FEW_PROBES)
    if est.paths * HEADROOM * SURE > max_paths or est.calls * HEADROOM * SURE > max_calls:
        est = estimate_work(run)  # near a limit: look closer before refusing
    if est.paths * HEADROOM > max_paths or est.calls * HEADROOM > max_calls:
        raise EnumerationError(
            f"this law needs about {est.paths:.3g} paths and {est.calls:.3g} random choices "
            f"(estimated from {PROBES} random paths), over the limits max_paths={max_paths}, "
            f"max_calls={max_calls}; shrink the instance (a law over n tokens of a "
            "vocabulary V has up to V**n outcomes) or pass larger limits"
        )
    law: dict[T, Fraction] = {}
    script: list[int] = []
    paths = 0
    calls = 0
    while True:
        chooser = _PathChooser(script)
        outcome = run(chooser)
        try:
            law[outcome] = law.get(outcome, _ZERO) + chooser.probability()
        except TypeError:  # the law is a dict keyed by outcomes
            raise InvalidConfig(
                f"run(chooser) must return a hashable outcome (a tuple, not a list), "
                f"got {show(outcome)}"
            ) from None
        paths += 1
        calls += chooser.calls
        if paths > max_paths:
            raise EnumerationError(
                f"more than max_paths={max_paths} paths; shrink the instance "
                "(fewer tokens, a smaller vocabulary) or pass a larger max_paths"
            )
        if calls > max_calls:
            raise EnumerationError(
                f"more than max_calls={max_calls} random choices over {paths} paths; shrink "
                "the instance (fewer tokens, a smaller vocabulary) or pass a larger max_calls"
            )
        # Odometer step over branch points: advance the deepest one not yet exhausted.
        sizes = chooser.branch_sizes
        script = chooser.script[: len(sizes)]
        while script and script[-1] + 1 >= sizes[len(script) - 1]:
            script.pop()
        if not script:
            break
        script[-1] += 1
    total = sum(law.values(), _ZERO)
    if total != 1:  # a path-dependent branching bug would show here
        raise EnumerationError(f"enumerated probabilities sum to {total}, not 1")
    return law
