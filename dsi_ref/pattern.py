"""Timing-only runs: the real algorithms with acceptance decided by a given pattern.

The paper's timing model accepts each drafted token independently with rate a.
Here `accepts[i]` says whether the draft at position i passes verification;
everything else (drafting, task submission, queueing, cancellation, the clock)
is the real code path. The models are a two-token pair: the drafter always
proposes token 0 (q = (1, 0)), the target is p = (1/2, 1/2), so the ratio test is
the only random step, and the chooser answers it from the pattern. A rejection
commits token 1. The pattern is the coupling: algorithms compared on one pattern
share the acceptance outcome of each position (SI ignores its bonus positions' bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.models import MarkovModel
from dsi_ref.nonsi import run_nonsi
from dsi_ref.prob import Num, inverse_cdf
from dsi_ref.randomness import Key, Purpose
from dsi_ref.result import RunResult
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi

_HALF = Fraction(1, 2)
PATTERN_TARGET = MarkovModel(2, 0, {(): (_HALF, _HALF)}, name="pattern-target")
PATTERN_DRAFTER = MarkovModel(2, 0, {(): (Fraction(1), Fraction(0))}, name="pattern-drafter")


class PatternChooser:
    """Every choice takes its first positive-mass outcome; ACCEPT(i) answers accepts[i]."""

    def __init__(self, accepts: Sequence[bool]) -> None:
        self.accepts = tuple(bool(a) for a in accepts)

    def choice(self, key: Key, weights: Sequence[Num]) -> int:
        return inverse_cdf(weights, 0.0)

    def bernoulli(self, key: Key, prob: Num) -> bool:
        if key.purpose is not Purpose.ACCEPT:
            raise InvalidConfig(f"pattern runs only answer acceptance tests, got key {key}")
        return self.accepts[key.position]


ALGORITHMS = ("nonsi", "si", "dsi")


def run_pattern(algorithm: str, accepts: Sequence[bool], cfg: RunConfig) -> RunResult:
    """Run `algorithm` ('nonsi', 'si' or 'dsi') with the given acceptance pattern."""
    if len(accepts) < cfg.max_tokens:
        raise InvalidConfig(
            f"acceptance pattern has {len(accepts)} entries, need max_tokens={cfg.max_tokens}"
        )
    if cfg.sampling.greedy or cfg.sampling.temperature != 1:
        raise InvalidConfig("pattern runs use plain sampling (T=1, no top-k/top-p)")
    chooser = PatternChooser(accepts)
    if algorithm == "nonsi":
        return run_nonsi(PATTERN_TARGET, cfg, chooser=chooser)
    if algorithm == "si":
        return run_si(PATTERN_TARGET, PATTERN_DRAFTER, cfg, chooser=chooser)
    if algorithm == "dsi":
        return run_dsi(PATTERN_TARGET, PATTERN_DRAFTER, cfg, chooser=chooser)
    raise InvalidConfig(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
