"""Wall-clock times and device distributions in dsi_ref's trace format.

Times are exact decimal fractions of a second since the run started (the
format's rationals), never decreasing in the order events are recorded.
Distributions are written as float lists. Timing mode computes no
distributions; its rule is the speculative-sampling rule applied to
q = one-hot(draft) and p = a at the draft, 1 - a at the next token, so those
are written and the trace is checked by the same rules.
"""

from __future__ import annotations

import time
from fractions import Fraction

import torch

_NS = 10**9


class Clock:
    """Seconds since construction as Fractions, monotone across calls."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter_ns()
        self._last = 0

    def now(self) -> Fraction:
        ns = max(self._last, time.perf_counter_ns() - self.t0)
        self._last = ns
        return Fraction(ns, _NS)


def dist_list(p: torch.Tensor | None) -> list[float]:
    if p is None:
        raise ValueError("no distribution to record (timing mode writes implied ones)")
    return [float(x) for x in p.detach().to("cpu", torch.float64).tolist()]


def implied_q(draft: int, vocab: int) -> list[float]:
    return [1.0 if i == draft else 0.0 for i in range(vocab)]


def implied_p(draft: int, acceptance: float, vocab: int) -> list[float]:
    out = [0.0] * vocab
    out[draft] = acceptance
    out[(draft + 1) % vocab] += 1.0 - acceptance
    return out


def implied_bonus(vocab: int) -> list[float]:
    return implied_q(0, vocab)


def commit_dists(
    p: torch.Tensor | None,
    q: torch.Tensor | None,
    draft: int | None,
    acceptance: float | None,
    vocab: int,
) -> tuple[list[float], list[float] | None]:
    """(p, q) as recorded for a commit: real ones, or timing mode's implied ones."""
    if acceptance is None:
        return dist_list(p), None if draft is None else dist_list(q)
    if draft is None:
        return implied_bonus(vocab), None
    return implied_p(draft, acceptance, vocab), implied_q(draft, vocab)
