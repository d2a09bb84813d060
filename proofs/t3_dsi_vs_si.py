"""T3: DSI vs SI in expectation, under the event-level schedule of the real scheduler.

Model: the paper's timing model as executed by `dsi_ref.pattern.run_pattern` -- target
latencies t0 (TTFT) and t (TPOT), drafter d0 and d, c = d / t; a pass scoring k+1 positions
costs one forward; cancellation is instant; each drafted token is accepted independently
with probability a (i.i.d.). SI and DSI use the same lookahead k; DSI has P target servers.
E[T] is over the acceptance bits, computed exactly as a polynomial in a by
`dsi_ref.theory.event` (SI: DP over the committed position; DSI: renewal DP over restart
positions; both equal the 2^S-pattern definition, tests/test_theory_event.py).

The paper's claim, "DSI is faster than SI in expectation, strictly when a > 0", is FALSE
for this schedule as stated. Counterexamples (exact, t = t0 = 1, d = d0 = 1/10):
(C1) P = 1 (one server shared by the target-only chain and the verification tasks):
     S = 2, k = 1: E[T_DSI] = 2 for every a, E[T_SI] = 21/10 - a, so DSI is slower for
     every a > 1/10. It is not an end effect: with k = 2, a = 1/2, E[T_DSI] - E[T_SI] =
     2/5, 1.239, 2.419, 4.781 at S = 2, 8, 16, 32 (grows linearly). With one server the
     verification tasks queue behind the target-only chain and DSI runs at about non-SI's
     pace (at c = 1 DSI equals non-SI exactly).
(C2) P >= 2, finite S (end effect): S = 2, k = 2, P = 2: E[T_DSI] = 2 - 4a/5 and
     E[T_SI] = 21/10 - a, so DSI is slower for a > 1/2 (by d = 1/10 at a = 1). DSI drafts
     and verifies every position, the last included, and never uses a bonus token; SI's last
     iteration drafts only S-i-1 tokens and takes the bonus. At a = 1, DSI pays about S d + t
     against SI's about S (k d + t)/(k + 1), which is smaller when S < (k+1) t / (t - d)
     roughly: the set of S where strictness fails is finite but not an interval (on the
     grid below it reaches S = 20 for k = 4, c >= 3/4).

Corrected statement (machine-checked on the grid below; a general proof is open):
(T3a) For P >= 2: E[T_DSI] <= E[T_SI] + d for every a in [0, 1] (d = drafter TPOT), any
      t0 and d0 on the grid. The constant is attained (C2 at a = 1). Dividing by S, DSI's
      expected per-token latency is no worse than SI's as S -> infinity.
(T3b) For P >= 2 and S large enough, E[T_DSI] < E[T_SI] strictly for every a in [0, 1]:
      checked at S in {21, 25} for c in {1/10, 1/4, 1/2, 3/4, 9/10}, k = 1..4, P = 2, 3.
(T3c) No pathwise version with the same constant: on the pattern coupling (same
      acceptance bit per position) T_DSI - T_SI reaches 2d (S = 4, k = 4, P = 2, pattern
      accept/reject/accept/reject), so (T3a) is a statement about expectations.
"For every a" is checked exactly: E[T_DSI] - E[T_SI] - d is a polynomial in a with
rational coefficients, and z3 shows it has no point in [0, 1] where it is > 0.

This theorem is about the event-level schedule (the real scheduler's timing); see
docs/latency-models.md for how the authors' offline cost model differs.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import z3

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.theory.event import Poly, dsi_poly, evaluate, expected_latency, si_poly
from proofs.registry import check

F = Fraction


def _cfg(
    s: int, k: int, p: int, c: Fraction, t0: Fraction | int = 1, d0: Fraction | None = None
) -> RunConfig:
    d_first = c if d0 is None else d0
    return RunConfig(
        max_tokens=s,
        k=k,
        servers=p,
        target_latency=Latency.of(t0, 1),
        drafter_latency=Latency.of(d_first, c),
    )


def _sub(p: Poly, q: Poly) -> Poly:
    n = max(len(p), len(q))
    return tuple((p[i] if i < len(p) else F(0)) - (q[i] if i < len(q) else F(0)) for i in range(n))


def _z3_poly(p: Poly, a: z3.ArithRef) -> z3.ArithRef:
    out: z3.ArithRef = z3.RealVal(0)
    for i, co in enumerate(p):
        if co:
            out = out + z3.Q(co.numerator, co.denominator) * a**i
    return out


def _nowhere_positive(p: Poly, strict: bool) -> bool:
    """True if p(a) <= 0 (strict: < 0) for every real a in [0, 1]."""
    a = z3.Real("a")
    s = z3.Solver()
    s.set("timeout", 60_000)
    e = _z3_poly(p, a)
    s.add(a >= 0, a <= 1, e >= 0 if strict else e > 0)
    return bool(s.check() == z3.unsat)


@check(theorem="T3", method="exact-dp")
def counterexamples_exact() -> tuple[int, str]:
    d = F(1, 10)
    # (C1) P = 1
    c1 = _cfg(2, 1, 1, d)
    assert dsi_poly(c1) == (F(2),) and si_poly(c1) == (F(21, 10), F(-1)), "C1 values"
    gaps = []
    for s in (2, 8, 16, 32):
        cfg = _cfg(s, 2, 1, d)
        gaps.append(expected_latency("dsi", F(1, 2), cfg) - expected_latency("si", F(1, 2), cfg))
    assert gaps[0] == F(2, 5) and all(x < y for x, y in itertools.pairwise(gaps))
    assert gaps[-1] > 4, gaps  # linear growth, not an end effect
    # (C2) P >= 2 at finite S
    for p in (2, 3, 4):
        c2 = _cfg(2, 2, p, d)
        assert dsi_poly(c2) == (F(2), F(-4, 5)) and si_poly(c2) == (F(21, 10), F(-1)), p
        assert evaluate(dsi_poly(c2), 1) - evaluate(si_poly(c2), 1) == d  # (T3a) is tight
    # at c = 1 with one server DSI is non-SI exactly
    for k in (1, 2, 3):
        assert dsi_poly(_cfg(6, k, 1, F(1))) == (F(6),), k
    return 10, "C1 (P=1, growing gap), C2 (P>=2, S=2, k=2), tightness of +d"


@check(theorem="T3", method="z3")
def dsi_within_d_of_si() -> tuple[int, str]:
    """(T3a): E[T_DSI] - E[T_SI] - d <= 0 on [0, 1], P >= 2."""
    n = 0
    for s in (2, 3, 4, 5, 7, 8):
        for c in (F(1, 10), F(1, 4), F(1, 2), F(3, 4), F(1)):
            for k in range(1, 5):
                for p, t0, d0 in ((2, F(1), c), (3, F(2), c), (2, F(1), 2 * c)):
                    cfg = _cfg(s, k, p, c, t0, d0)
                    diff = _sub(_sub(dsi_poly(cfg), si_poly(cfg)), (c,))
                    assert _nowhere_positive(diff, strict=False), ("T3a", s, c, k, p, t0, d0)
                    n += 1
    # negative control: with d replaced by 0 the check must find C2
    c2 = _cfg(2, 2, 2, F(1, 10))
    assert not _nowhere_positive(_sub(dsi_poly(c2), si_poly(c2)), strict=False)
    return n, "S in {2,3,4,5,7,8}, 5 c, k=1..4, (P,t0,d0) in 3 settings, every a in [0,1]"


@check(theorem="T3", method="z3")
def dsi_strictly_faster_for_large_s() -> tuple[int, str]:
    """(T3b): E[T_DSI] < E[T_SI] on all of [0, 1] at S in {21, 25}, P in {2, 3}."""
    n = 0
    for s in (21, 25):
        for c in (F(1, 10), F(1, 4), F(1, 2), F(3, 4), F(9, 10)):
            for k in range(1, 5):
                for p in (2, 3):
                    cfg = _cfg(s, k, p, c)
                    diff = _sub(dsi_poly(cfg), si_poly(cfg))
                    assert _nowhere_positive(diff, strict=True), ("T3b", s, c, k, p)
                    n += 1
    # negative control: S = 20, k = 4, c = 3/4 is not strict (a = 1 ties or loses)
    cfg = _cfg(20, 4, 2, F(3, 4))
    assert not _nowhere_positive(_sub(dsi_poly(cfg), si_poly(cfg)), strict=True)
    return n, "S in {21, 25}, 5 c, k=1..4, P in {2,3}, every a in [0,1]"


@check(theorem="T3", method="exhaustive")
def no_pathwise_bound() -> tuple[int, str]:
    """(T3c): on the pattern coupling T_DSI - T_SI reaches 2d."""
    cfg = _cfg(4, 4, 2, F(1, 10))
    x = (True, False, True, False)
    gap = run_pattern("dsi", x, cfg).latency - run_pattern("si", x, cfg).latency
    assert gap == 2 * F(1, 10), gap
    return 1, "S=4, k=4, P=2, c=1/10, pattern 1010: T_DSI - T_SI = 2d"
