"""Monte Carlo expected latency: sample acceptance patterns, time the real code, average.

An independent check of `dsi_ref.theory.event`: it shares only `run_pattern` with
the exact forms, not the DP. Patterns are Bernoulli(a)^S drawn exactly from
`random.Random(seed)` (randrange on a's denominator, so a = 1/3 means 1/3, not
its binary neighbour). The interval is the normal (CLT) interval
mean +- z * s / sqrt(n) with the sample standard deviation s; latencies are
bounded, so for the sample sizes used here its coverage is close to nominal.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.pattern import ALGORITHMS, run_pattern
from dsi_ref.theory.event import to_rate


@dataclass(frozen=True)
class Estimate:
    """Sample mean (exact) and a two-sided interval at `level` (float end points)."""

    mean: Fraction
    std_error: float
    level: float
    low: float
    high: float
    samples: int

    def contains(self, x: Fraction) -> bool:
        return self.low <= float(x) <= self.high


def sample_pattern(rng: random.Random, a: Fraction, length: int) -> tuple[bool, ...]:
    """Bernoulli(a)^length, exactly: P(bit) = a for rational a."""
    return tuple(rng.randrange(a.denominator) < a.numerator for _ in range(length))


def z_value(level: float) -> float:
    """The two-sided normal quantile: P(|Z| <= z) = level."""
    if not 0 < level < 1:
        raise InvalidConfig(f"confidence level must be in (0, 1), got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def monte_carlo(
    algorithm: str,
    a: object,
    cfg: RunConfig,
    samples: int,
    seed: int,
    level: float = 0.999,
) -> Estimate:
    """Estimate E[T] of `algorithm` at acceptance rate a from `samples` patterns."""
    if algorithm not in ALGORITHMS:
        raise InvalidConfig(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InvalidConfig(f"samples must be an int >= 2, got {samples!r}")
    rate = to_rate(a)
    z = z_value(level)
    rng = random.Random(seed)
    seen: dict[tuple[bool, ...], Fraction] = {}  # the same pattern always takes the same time
    xs: list[Fraction] = []
    for _ in range(samples):
        x = sample_pattern(rng, rate, cfg.max_tokens)
        if x not in seen:
            seen[x] = run_pattern(algorithm, x, cfg).latency
        xs.append(seen[x])
    mean = sum(xs, Fraction(0)) / samples
    var = sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (samples - 1)
    se = math.sqrt(var / samples)
    return Estimate(mean, se, level, float(mean) - z * se, float(mean) + z * se, samples)
