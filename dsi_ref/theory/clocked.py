"""Expected latencies on the virtual clock: DSI's scheduling policies over (c, a, P, k).

The offline model (dsi_ref.theory.offline) is the paper's: preemptive, the paper's policy.
Here DSI is the real scheduler (dsi_ref.virtual) driven by i.i.d. Bernoulli(a) acceptance
patterns (dsi_ref.pattern), with a target pass = 1 and a drafter pass = c (TTFT = TPOT),
on a chosen clock and policy:

- "preemptive": a cancelled pass stops at once (the paper's model);
- "non-preemptive": it holds its server (or the drafter) until it would have ended;
- "layer-preemptive": it stops at its next layer boundary, each pass being `layers`
  equal layers (RunConfig.cancel_layers; 1 layer is the non-preemptive clock).

DSI's expected latency at (k, P) is a Monte Carlo estimate over `reps` seeded patterns,
the same patterns for every k, P and policy (common random numbers, so comparisons are
paired), with SI as a control variate: SI's expected latency at the same k is known
exactly (SI on the virtual clock is the offline model's SI, dsi_ref.theory.offline.si_exact,
checked exhaustively in tests/test_pick.py), so with y_i, x_i DSI's and SI's latencies on
pattern i,

    E[DSI(k)] ~ mean(y) - b (mean(x) - E[SI(k)]),  b = cov(x, y) / var(x) clipped to [0, 1]

(`control_variate`; the regression estimator, b = 0 when SI's latency does not vary). Where
DSI tracks SI (b near 1: small c, or `safe` where it is SI) this removes the patterns'
luck almost entirely; where DSI does not (b near 0: c > a, where DSI follows the
target-only chain and SI varies a lot) it is the plain mean. `Estimate` carries the
standard error of the adjusted values. Non-SI's expected latency is n.

Cost: pure Python, about 2-4 ms per DSI run of 64 tokens on this machine.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig, show
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.policies import get_policy

CLOCKS = ("preemptive", "non-preemptive", "layer-preemptive")
DRAFTER_DENOMINATOR = 10**6  # c is read to 1e-6 (the grid's values are multiples of 0.01)


@dataclass(frozen=True)
class Clock:
    """How a cancelled pass ends: at once, at its end, or at its next layer boundary."""

    name: str = "non-preemptive"
    layers: int | None = None  # layer-preemptive only: layers per pass

    def __post_init__(self) -> None:
        if self.name not in CLOCKS:
            raise InvalidConfig(f"clock must be one of {CLOCKS}, got {show(self.name)}")
        if self.name == "layer-preemptive":
            if isinstance(self.layers, bool) or not isinstance(self.layers, int):
                raise InvalidConfig(
                    "the layer-preemptive clock needs layers (an int >= 1), "
                    f"got {show(self.layers)}"
                )
            if self.layers < 1:
                raise InvalidConfig(f"layers must be an int >= 1, got {show(self.layers)}")
        elif self.layers is not None:
            raise InvalidConfig(
                f"layers={show(self.layers)} applies only to the layer-preemptive clock, "
                f"not {self.name}"
            )

    def __str__(self) -> str:
        if self.layers is None:
            return self.name
        return f"{self.name} ({self.layers} layer{'s' if self.layers > 1 else ''})"


def drafter_cost(c: float | Fraction) -> Fraction:
    """c as an exact fraction of a target pass, read to 1e-6 (0.05 means 1/20)."""
    if isinstance(c, bool) or not isinstance(c, (int, float, Fraction)):
        raise InvalidConfig(f"drafter latency c must be a number in (0, 1], got {show(c)}")
    if not (isinstance(c, Fraction) or math.isfinite(c)):
        raise InvalidConfig(f"drafter latency c must be a number in (0, 1], got {show(c)}")
    d = Fraction(c).limit_denominator(DRAFTER_DENOMINATOR)
    if not 0 < d <= 1:
        raise InvalidConfig(f"drafter latency c must lie in (0, 1], got {show(c)}")
    return d


def patterns(a: float | Fraction, n: int, reps: int, seed: int) -> list[tuple[bool, ...]]:
    """`reps` i.i.d. Bernoulli(a) acceptance patterns of n positions from random.Random(seed)."""
    rng = random.Random(seed)
    x = float(a)
    return [tuple(rng.random() < x for _ in range(n)) for _ in range(reps)]


def run_config(
    n: int, k: int, servers: int, c: float | Fraction, policy: str, clock: Clock
) -> RunConfig:
    """A timing run: target pass 1, drafter pass c (TTFT = TPOT), `policy` on `clock`."""
    d = drafter_cost(c)
    return RunConfig(
        n,
        k,
        servers,
        target_latency=Latency.of(1, 1),
        drafter_latency=Latency.of(d, d),
        preemptive=clock.name == "preemptive",
        policy=policy,
        cancel_layers=clock.layers,
    )


def latencies(algorithm: str, pats: Sequence[Sequence[bool]], cfg: RunConfig) -> list[Fraction]:
    """The exact latency of each pattern's run."""
    return [run_pattern(algorithm, x, cfg).latency for x in pats]


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo mean over `reps` patterns, its standard error and range."""

    mean: float
    stderr: float
    lo: float
    hi: float
    reps: int

    @classmethod
    def of(cls, xs: Sequence[Fraction | float]) -> Estimate:
        fs = [float(x) for x in xs]
        se = statistics.stdev(fs) / math.sqrt(len(fs)) if len(fs) > 1 else math.nan
        return cls(statistics.fmean(fs), se, min(fs), max(fs), len(fs))


def dsi_estimate(
    pats: Sequence[Sequence[bool]],
    k: int,
    c: float | Fraction,
    servers: int,
    policy: str,
    clock: Clock,
    si_expected: float | Fraction,
) -> Estimate:
    """E[DSI(k)] over `pats` with SI(k) as the control variate, `si_expected` = E[SI(k)]
    exact (module docstring); lo and hi are the smallest and largest adjusted value."""
    n = len(pats[0])
    dsi = latencies("dsi", pats, run_config(n, k, servers, c, policy, clock))
    si = latencies("si", pats, run_config(n, k, 1, c, policy, clock))
    return control_variate(dsi, si, si_expected)


def control_variate(
    y: Sequence[Fraction | float], x: Sequence[Fraction | float], mu_x: Fraction | float
) -> Estimate:
    """E[y] from paired samples (y_i, x_i) and the exact E[x] = mu_x: the values
    y_i - b (x_i - mu_x), b = cov(x, y) / var(x) clipped to [0, 1] (0 if var(x) = 0)."""
    ys, xs, mu = [float(v) for v in y], [float(v) for v in x], float(mu_x)
    b = 0.0
    if len(xs) > 1:
        vx = statistics.variance(xs)
        if vx > 0:
            b = min(1.0, max(0.0, statistics.covariance(xs, ys) / vx))
    return Estimate.of([yi - b * (xi - mu) for yi, xi in zip(ys, xs, strict=True)])


def best_k(
    pats: Sequence[Sequence[bool]],
    c: float | Fraction,
    servers: int,
    policy: str,
    clock: Clock,
    kmax: int,
    si_expected: Sequence[float | Fraction],
) -> tuple[int, Estimate]:
    """DSI's k in 1..kmax of least estimated expected latency (`dsi_estimate`; ties: the
    smallest k); `si_expected[k - 1]` is SI's exact expected latency at k."""
    get_policy(policy)
    best: tuple[int, Estimate] | None = None
    for k in range(1, kmax + 1):
        est = dsi_estimate(pats, k, c, servers, policy, clock, si_expected[k - 1])
        if best is None or est.mean < best[1].mean:
            best = (k, est)
    assert best is not None
    return best
