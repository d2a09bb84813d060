"""A negative control at the statistical test's boundary: a planted fault at TV about 0.02.

The planted faults of test_negative_controls move the output law by TV 0.10-0.59, far
above the 0.02 the statistical test is sized for, so they show little about its power.
This control is a fault whose output law is at TV 0.0208 from the target law.

The fault: `BiasedAccept`, a faulty `Chooser` (the protocol runs take today, so dsi_ref
is untouched) whose ACCEPT Bernoulli is U < min(1, prob + delta) instead of U < prob,
with delta = 1/32; every other draw is the inner chooser's. It is passed with
`run_si(..., chooser=...)`.

Instance (exact tables, so the law of the faulty code is computed exactly):
tests/lossless_cases.py `mixture_pair(4, 1)` (order-1 random target over 4 tokens,
drafter q = p/2 + r/2), T1, k = 3, max_tokens = 3 (the statistical test's 3 tokens).

Numbers (one-off, recorded):
  exact law of SI with the fault (enumerator wrapped by BiasedAccept): TV to the target
  law = 0.020824 (delta = 3/100 gives 0.019998, 1/25 gives 0.026591); with delta = 0 the
  law equals the target law (the wrapper itself is lossless);
  the statistical test on it: 64 outcomes, none pooled (smallest expected count 29.0),
  N = 80,078 (the designed size), df = 63; noncentrality lambda = N sum d^2/p = 207.96
  (the worst case at TV 0.02 is 128.1), approximate power 1 - 4e-8;
  the real test (`chi_square_lossless` over N seeded runs of the faulty SI, about 27 s of
  CPU, so marked slow) rejects it: X^2 = 308.4, p = 5.0e-34; with delta = 0 on the same
  instance X^2 = 68.2, p = 0.30, not rejected.

DSI with the same chooser has another law (its last position is verified with the
ACCEPT key where SI samples a bonus token under TARGET), so the control is on SI.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction as F

import numpy as np
import pytest
from lossless_cases import (
    STAT_ALPHA,
    RunConfig,
    Runner,
    chi_square_lossless,
    design_sample_size,
    drop_zeros,
    exact_target_law,
    mixture_pair,
    stat_null,
)
from test_statistical_lossless import _simulated_pearson

from dsi_ref.exact import exact_law
from dsi_ref.models import LanguageModel
from dsi_ref.prob import Num
from dsi_ref.randomness import Chooser, Key, Purpose, SeededChooser
from dsi_ref.result import RunResult
from dsi_ref.si import run_si

DELTA = F(1, 32)
TV_RANGE = (0.018, 0.025)

# Outside CI: pyproject does not deselect "slow", so these also need DSI_SLOW=1.
RUN_SLOW = pytest.mark.skipif(os.environ.get("DSI_SLOW") != "1", reason="slow; set DSI_SLOW=1")


class BiasedAccept:
    """A faulty Chooser: the acceptance Bernoulli is biased up by delta."""

    def __init__(self, inner: Chooser, delta: F) -> None:
        self.inner = inner
        self.delta = delta

    def choice(self, key: Key, weights: Sequence[Num]) -> int:
        return self.inner.choice(key, weights)

    def bernoulli(self, key: Key, prob: Num) -> bool:
        if key.purpose == Purpose.ACCEPT:
            prob = min(prob + self.delta, F(1))
        return self.inner.bernoulli(key, prob)


def _instance() -> tuple[LanguageModel, LanguageModel, RunConfig]:
    target, drafter = mixture_pair(4, 1)
    return target, drafter, RunConfig(max_tokens=3, k=3, servers=3)


def _faulty_law(delta: F) -> dict[tuple[int, ...], F]:
    target, drafter, cfg = _instance()
    return drop_zeros(
        exact_law(lambda ch: run_si(target, drafter, cfg, chooser=BiasedAccept(ch, delta)).tokens)
    )


def _tv(a: dict[tuple[int, ...], F], b: dict[tuple[int, ...], F]) -> F:
    return sum((abs(a.get(s, F(0)) - b.get(s, F(0))) for s in set(a) | set(b)), F(0)) / 2


def test_the_fault_moves_the_law_by_tv_about_002() -> None:
    target, _, cfg = _instance()
    want = exact_target_law(target, cfg)
    tv = _tv(_faulty_law(DELTA), want)
    assert TV_RANGE[0] <= tv <= TV_RANGE[1], float(tv)
    assert tv >= 0.02  # inside the claim "power >= 0.99 at TV >= 0.02"
    assert abs(float(tv) - 0.020824) < 1e-6  # the docstring's number
    assert _faulty_law(F(0)) == want  # control: the wrapper without bias is lossless


def test_the_statistic_has_power_against_the_fault() -> None:
    """Fast: 2,000 multinomial samples of size N from the fault's exact law, all rejected.

    With power 1 - 4e-8 (lambda = 208), a miss among 2,000 has probability < 1e-4.
    """
    target, _, cfg = _instance()
    null = stat_null(target, cfg)
    law = _faulty_law(DELTA)
    outcomes = list(null)
    assert set(law) <= set(outcomes)
    p = [float(null[o]) for o in outcomes]
    n = design_sample_size(p)
    assert n == 80_078
    d = [float(law.get(o, F(0)) - null[o]) for o in outcomes]
    lam = n * sum(x * x / q for x, q in zip(d, p, strict=True))
    assert abs(lam - 207.96) < 0.01, lam
    alt = np.array([float(law.get(o, F(0))) for o in outcomes])
    counts = np.random.default_rng(32).multinomial(n, alt / alt.sum(), size=2000)
    _, rejects = _simulated_pearson(p, n, counts)
    assert rejects.all()


def _runner(delta: F) -> Runner:
    def run(t: LanguageModel, d: LanguageModel, cfg: RunConfig) -> RunResult:
        return run_si(t, d, cfg, chooser=BiasedAccept(SeededChooser(cfg.seed), delta))

    return run


@pytest.mark.slow
@RUN_SLOW
def test_statistical_test_flags_the_boundary_fault() -> None:
    """The real test on the real (faulty) code: about 2 x 27 s of CPU, outside CI."""
    target, drafter, cfg = _instance()
    bad = chi_square_lossless(_runner(DELTA), target, drafter, cfg)
    assert bad.rejects and bad.p_value < STAT_ALPHA, bad
    good = chi_square_lossless(_runner(F(0)), target, drafter, cfg)
    assert not good.rejects, good
