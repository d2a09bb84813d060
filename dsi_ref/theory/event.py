"""Exact expected latencies under the event-level schedule and the i.i.d.-acceptance model.

The timing of a run is `dsi_ref.pattern.run_pattern(algorithm, accepts, cfg)`:
the real code with acceptance decided per position. Under the paper's model the
pattern is Bernoulli(a)^S, so the definition of the expected latency is

    E[T] = sum over patterns x in {0,1}^S of a^{#acc(x)} (1-a)^{#rej(x)} T(x).

`brute_force` computes exactly that (2^S runs: the oracle, for S <= ~10). The
other functions compute the same number with few runs:

- non-SI is deterministic: one run.
- SI: a DP over the committed position i. An iteration from i drafts
  m = min(k, S-i-1) tokens, costs those drafter passes plus one target pass, and
  gains j+1 positions w.p. a^j (1-a) (j < m) or m+1 w.p. a^m.
- DSI: a renewal DP over restart positions, resting on two facts about the
  scheduler (both checked exactly against `brute_force` in the tests):
  (a) on a rejection the scheduler cancels every task and draft and restarts
      drafting from the new prefix, so what follows depends only on the restart
      position r and on the bits of positions >= r;
  (b) the commit time of position j is fixed before the bit of j is read (the
      acceptance test runs at the commit), so it depends only on the bits < j.
  Hence, from a restart at r, the time until the commit of the first rejection j
  equals the commit time of j in the run that is all-accept from r on. With
  D_r(j) that time (measured from the restart), E_S = 0 and
      E_r = sum_{j=r}^{S-1} a^{j-r} (1-a) (D_r(j) + E_{j+1}) + a^{S-r} D_r(S-1),
  and E[T] = E_0. D_r comes from one run per r (pattern 1^{r-1} 0 1^{S-r}: the
  rejection at r-1 makes the restart at r), so S scheduler runs and O(S^2)
  arithmetic in all.

Why (a) and (b) hold (the tests check both pattern by pattern, and the DP against the
definition):
(b) In a pattern run the drafts, the q's and the p's are constants (order-0 models), so
    timing depends on the bits only through which positions reject. The bit of position
    j is read once, by the verifier inside the scheduler's commit of j, and the virtual
    clock's `now` at that call is the commit time of j. Every event before it was
    handled using bits < j only, so the commit time of j is a function of them.
(a) Committing a rejection at j (time tau) clears the drafts and the stored p's, cancels
    every live task (running or queued; servers are freed at once) and the in-flight
    draft, sets the block start to j+1, starts the draft of j+1 and submits and dispatches
    the target-only task at j+1. Cancelled events left in the clock's heap are skipped.
    That is the state of a start at position j+1 at time tau (every pass from j+1 on costs
    TPOT > 0, so nothing new is due at tau itself); ids only shift, keeping their order.
Hence from a restart at r the time to the commit of the first rejection j is the commit
time of j in the run that rejects at r-1 and accepts from r on, minus its commit time of
r-1; a run with no further rejection ends at the commit of S-1.

Every expectation is a polynomial in a of degree <= S with rational
coefficients; the `*_poly` functions return it (coefficients of a^0, a^1, ...),
which lets the proofs check a claim for every a in [0, 1] at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.pattern import ALGORITHMS, run_pattern

Poly = tuple[Fraction, ...]  # coefficients of a^0, a^1, ...

BRUTE_FORCE_MAX_TOKENS = 14  # 2^14 runs; beyond that brute force is not an oracle, it is a hang


def to_rate(a: object) -> Fraction:
    """An exact acceptance rate in [0, 1] from an int, Fraction, float or decimal string."""
    if isinstance(a, bool):
        raise InvalidConfig(f"acceptance rate must be a number, got {a!r}")
    try:
        if isinstance(a, float):
            v = Fraction(str(a))  # 0.9 means nine tenths, not its binary neighbour
        elif isinstance(a, (int, Fraction, str)):
            v = Fraction(a)
        else:
            raise InvalidConfig(f"acceptance rate must be a number, got {a!r}")
    except (ValueError, ZeroDivisionError) as e:
        raise InvalidConfig(f"acceptance rate is not a number: {a!r}") from e
    if not 0 <= v <= 1:
        raise InvalidConfig(f"acceptance rate must be in [0, 1], got {a!r}")
    return v


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise InvalidConfig(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")


# ----- polynomials in a ---------------------------------------------------------


def _add(p: Poly, q: Poly) -> Poly:
    n = max(len(p), len(q))
    return tuple(
        (p[i] if i < len(p) else Fraction(0)) + (q[i] if i < len(q) else Fraction(0))
        for i in range(n)
    )


def _mul(p: Poly, q: Poly) -> Poly:
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, x in enumerate(p):
        for j, y in enumerate(q):
            out[i + j] += x * y
    return tuple(out)


def _const(x: Fraction) -> Poly:
    return (x,)


def _trim(p: Poly) -> Poly:
    n = len(p)
    while n > 1 and p[n - 1] == 0:
        n -= 1
    return p[:n]


def _mono(acc: int, rej: int) -> Poly:
    """a^acc (1-a)^rej."""
    out: Poly = (Fraction(1),)
    for _ in range(acc):
        out = _mul(out, (Fraction(0), Fraction(1)))
    for _ in range(rej):
        out = _mul(out, (Fraction(1), Fraction(-1)))
    return out


def evaluate(p: Poly, a: object) -> Fraction:
    """p(a), exactly (Horner)."""
    x = to_rate(a)
    v = Fraction(0)
    for c in reversed(p):
        v = v * x + c
    return v


# ----- the oracle ---------------------------------------------------------------


def pattern_latencies(algorithm: str, cfg: RunConfig) -> dict[tuple[bool, ...], Fraction]:
    """T(x) for every pattern x in {0,1}^S (2^S runs of the real code)."""
    _check_algorithm(algorithm)
    s = cfg.max_tokens
    if s > BRUTE_FORCE_MAX_TOKENS:
        raise InvalidConfig(
            f"brute force needs 2^S runs; max_tokens={s} exceeds {BRUTE_FORCE_MAX_TOKENS}"
        )
    return {
        x: run_pattern(algorithm, x, cfg).latency
        for x in itertools.product((False, True), repeat=s)
    }


def brute_force_poly(
    algorithm: str, cfg: RunConfig, table: dict[tuple[bool, ...], Fraction] | None = None
) -> Poly:
    """The definition: sum over patterns of a^{#acc} (1-a)^{#rej} T(pattern), as a polynomial."""
    table = pattern_latencies(algorithm, cfg) if table is None else table
    monos: dict[int, Poly] = {}
    out: Poly = (Fraction(0),)
    for x, t in table.items():
        acc = sum(x)
        if acc not in monos:
            monos[acc] = _mono(acc, len(x) - acc)
        out = _add(out, tuple(t * c for c in monos[acc]))
    return _trim(out)


def brute_force(algorithm: str, a: object, cfg: RunConfig) -> Fraction:
    return evaluate(brute_force_poly(algorithm, cfg), a)


# ----- the fast exact forms -------------------------------------------------------


def nonsi_latency(cfg: RunConfig) -> Fraction:
    """Non-SI is deterministic: TTFT + (S-1) TPOT."""
    t = cfg.target_latency
    return t.ttft + (cfg.max_tokens - 1) * t.tpot


def si_poly(cfg: RunConfig) -> Poly:
    """E[T_SI] as a polynomial in a: the DP over the committed position."""
    s, k = cfg.max_tokens, cfg.k
    d, t = cfg.drafter_latency, cfg.target_latency
    e: list[Poly] = [(Fraction(0),)] * (s + 1)  # e[i]: expected time from committed prefix i
    for i in range(s - 1, -1, -1):
        m = min(k, s - i - 1)
        cost = sum((d.forward(i + j) for j in range(m)), Fraction(0)) + t.forward(i, m + 1)
        acc: Poly = _const(cost)
        for j in range(m):
            acc = _add(acc, _mul(_mono(j, 1), e[i + j + 1]))
        acc = _add(acc, _mul(_mono(m, 0), e[i + m + 1]))
        e[i] = _trim(acc)
    return e[0]


def dsi_segments(cfg: RunConfig) -> tuple[tuple[Fraction, ...], ...]:
    """D_r(j) for r = 0..S-1, j = r..S-1: time from the restart at r to the commit of j
    when every draft from r on is accepted (entry j - r of row r). One run per r."""
    if not cfg.preemptive:
        raise InvalidConfig(
            "the DSI renewal DP needs preemptive=True (fact (a): a rejection frees every "
            "worker at once); got preemptive=False: use brute_force (the definition)"
        )
    s = cfg.max_tokens
    rows = []
    for r in range(s):
        # r = 0: the start; r > 0: a rejection at r-1 makes the restart at r
        bits = [True] * s if r == 0 else [True] * (r - 1) + [False] + [True] * (s - r)
        times = run_pattern("dsi", bits, cfg).commit_times
        origin = Fraction(0) if r == 0 else times[r - 1]
        rows.append(tuple(times[j] - origin for j in range(r, s)))
    return tuple(rows)


def dsi_poly(cfg: RunConfig, segments: Sequence[Sequence[Fraction]] | None = None) -> Poly:
    """E[T_DSI] as a polynomial in a: the renewal DP over restart positions."""
    s = cfg.max_tokens
    seg = dsi_segments(cfg) if segments is None else segments
    e: list[Poly] = [(Fraction(0),)] * (s + 1)  # e[r]: expected time from a restart at r
    for r in range(s - 1, -1, -1):
        acc: Poly = _mul(_mono(s - r, 0), _const(seg[r][s - 1 - r]))
        for j in range(r, s):
            acc = _add(acc, _mul(_mono(j - r, 1), _add(_const(seg[r][j - r]), e[j + 1])))
        e[r] = _trim(acc)
    return e[0]


def si_value(cfg: RunConfig, a: Fraction) -> Fraction:
    """E[T_SI] at one rate: the DP of `si_poly` on numbers, O(S k)."""
    s, k = cfg.max_tokens, cfg.k
    d, t = cfg.drafter_latency, cfg.target_latency
    e = [Fraction(0)] * (s + 1)
    for i in range(s - 1, -1, -1):
        m = min(k, s - i - 1)
        acc = sum((d.forward(i + j) for j in range(m)), Fraction(0)) + t.forward(i, m + 1)
        w = Fraction(1)  # a^j
        for j in range(m):
            acc += w * (1 - a) * e[i + j + 1]
            w *= a
        e[i] = acc + w * e[i + m + 1]
    return e[0]


def dsi_value(
    cfg: RunConfig, a: Fraction, segments: Sequence[Sequence[Fraction]] | None = None
) -> Fraction:
    """E[T_DSI] at one rate: the renewal DP of `dsi_poly` on numbers, O(S^2) after the S
    runs (the polynomial form costs far more at large S)."""
    s = cfg.max_tokens
    seg = dsi_segments(cfg) if segments is None else segments
    e = [Fraction(0)] * (s + 1)
    for r in range(s - 1, -1, -1):
        acc = Fraction(0)
        w = Fraction(1)  # a^(j-r)
        for j in range(r, s):
            acc += w * (1 - a) * (seg[r][j - r] + e[j + 1])
            w *= a
        e[r] = acc + w * seg[r][s - 1 - r]
    return e[0]


def expected_poly(algorithm: str, cfg: RunConfig) -> Poly:
    _check_algorithm(algorithm)
    if algorithm == "nonsi":
        return (nonsi_latency(cfg),)
    if algorithm == "si":
        return si_poly(cfg)
    return dsi_poly(cfg)


def expected_latency(algorithm: str, a: object, cfg: RunConfig) -> Fraction:
    """Exact E[T] of `algorithm` ('nonsi', 'si', 'dsi') at acceptance rate a."""
    rate = to_rate(a)
    _check_algorithm(algorithm)
    if algorithm == "nonsi":
        return nonsi_latency(cfg)
    if algorithm == "si":
        return si_value(cfg, rate)
    return dsi_value(cfg, rate)
