"""Closed forms of the i.i.d.-acceptance model in the long-run (S -> infinity) limit.

Units: one target pass = 1, one drafter pass = c. An SI iteration with lookahead k costs
k c + 1 and commits 1 + a + ... + a^k tokens in expectation, so by renewal-reward SI's
expected latency per token tends to (k c + 1) / (1 + a + ... + a^k); non-SI's is 1.
Proofs and checks: proofs/t4_si_vs_nonsi.py.
"""

from __future__ import annotations

from fractions import Fraction

from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import to_time
from dsi_ref.theory.event import to_rate


def _lookahead(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidConfig(f"lookahead k must be an int >= 1, got {k!r}")
    return k


def si_tokens_per_iteration(a: object, k: object) -> Fraction:
    """E[tokens] of one SI iteration: 1 + a + ... + a^k (= (1 - a^{k+1}) / (1 - a))."""
    x, n = to_rate(a), _lookahead(k)
    return sum((x**i for i in range(n + 1)), Fraction(0))


def si_rate(a: object, c: object, k: object) -> Fraction:
    """SI's long-run expected latency per token, in target passes."""
    n = _lookahead(k)
    return (n * to_time(c, "drafter latency c") + 1) / si_tokens_per_iteration(a, n)


def si_slower_for_every_k(a: object, c: object) -> bool:
    """T4: SI's long-run rate exceeds non-SI's for every k >= 1 iff c > a."""
    return to_time(c, "drafter latency c") > to_rate(a)
