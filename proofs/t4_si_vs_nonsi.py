"""T4: when SI is slower than non-SI for every lookahead k.

Model (the paper's timing model, as executed by `dsi_ref.pattern.run_pattern`):
- target forward latencies t0 (TTFT, position 0) and t (TPOT), drafter d0 and d; a pass that
  scores k+1 positions costs one forward; overheads are zero;
- each drafted token is accepted independently with probability a in [0, 1] (i.i.d.);
- SI with lookahead k: from committed position i it drafts m = min(k, S-i-1) tokens, runs
  one target pass, and gains j+1 tokens w.p. a^j (1-a) (j < m) or m+1 w.p. a^m;
- c = d / t, the drafter's per-token cost in units of the target's.
E[.] is over the acceptance bits; the exact values are `dsi_ref.theory.event.si_poly` (the
DP over the committed position, equal to the 2^S-pattern definition: tests/test_theory_event).

Statement.
(L)  Lemma. For k >= 1, a in [0, 1], c >= 0:  c > a  implies  k c + 1 > 1 + a + ... + a^k.
(A)  Limit S -> infinity. Per committed token SI costs, in units of t,
        R_k(a, c) = (k c + 1) (1 - a) / (1 - a^{k+1})   (a < 1;  (k c + 1)/(k + 1) at a = 1),
     and non-SI costs 1. Then  R_k > 1 for every k >= 1  <=>  c > a.
(F)  Finite S (exact, for every S >= 2, any t0):
     (F1) if c > a and d0 >= d, then E[T_SI] > E[T_nonSI] for every k >= 1;
     (F2) if c <= a and d0 = d, then with k = 1, E[T_SI] <= E[T_nonSI], strictly if c < a.
     So with d0 = d: SI is slower than non-SI for every k  <=>  c > a.  At S = 1 SI is one
     target pass and the two are equal.

Proof.
(L) 1 + a + ... + a^k = 1 + sum_{i=1}^k a^i <= 1 + k a < 1 + k c, since 0 <= a^i <= a for
    i >= 1 and a in [0, 1].
(A) Iterations are i.i.d. cycles (ignoring the last few, which change E[T] by a bounded
    amount): cost k c + 1, tokens G with E[G] = sum_{j<k} (j+1) a^j (1-a) + (k+1) a^k
    = (1 - a^{k+1}) / (1 - a). Renewal-reward gives E[T]/S -> (k c + 1) / E[G] = R_k.
    R_k > 1 <=> k c + 1 > 1 + a + ... + a^k (multiply by E[G] > 0). If c > a this holds for
    every k by (L). If c <= a, k = 1 gives c + 1 <= 1 + a: R_1 <= 1.
(F) Let e_i = E[T_SI from committed prefix i] and n_i = (S - i) t the non-SI time for the
    same tokens at TPOT. An iteration from i drafts m = min(k, S-i-1) tokens and gains G_i,
    with E[G_i] = 1 + a + ... + a^m, never more than S - i. By backward induction on i,
    e_i - n_i = E[cost_i - G_i t] + E[e_{i+G} - n_{i+G}], and for i >= 1
        cost_i - E[G_i] t = t (m c + 1 - (1 + a + ... + a^m)) = t sum_{j=1}^m (c - a^j),
    which is >= m t (c - a) > 0 when m >= 1 and c > a, and 0 when m = 0. At i = 0 non-SI's
    first token costs t0 and SI's first iteration costs d0 + (m-1) d + t0, so the same
    difference gains d0 - d >= 0. The first iteration has m = min(k, S-1) >= 1 for S >= 2,
    so the sum is > 0: (F1). For (F2) with k = 1 every term is t (c - a) <= 0 (m = 1) or 0
    (m = 0), and the first is t (c - a) + d0 - d = t (c - a) <= 0, strictly < 0 if c < a.

Machine checks (registered below):
- z3: (L) for k = 1..30 (unsat of its negation over the reals); the identity
  (1 - a)(1 + ... + a^k) = 1 - a^{k+1}; (A) in both directions for k = 1..30.
- exact DP (Fraction): (F1) and (F2) on a grid of rational (a, c, k, S, t0, d0), and that
  E[T_SI] / S approaches R_k (|E[T_SI] - S R_k| <= k (k c + 1) t, S <= 40).
"""

from __future__ import annotations

from fractions import Fraction

import z3

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.theory.closed_form import si_rate, si_slower_for_every_k
from dsi_ref.theory.event import evaluate, nonsi_latency, si_poly
from proofs.registry import check

K_MAX = 30
F = Fraction


def _unsat(*constraints: z3.BoolRef) -> bool:
    s = z3.Solver()
    s.set("timeout", 60_000)
    s.add(*constraints)
    return bool(s.check() == z3.unsat)


def _gain(a: z3.ArithRef, k: int) -> z3.ArithRef:
    out: z3.ArithRef = z3.RealVal(1)
    for i in range(1, k + 1):
        out = out + a**i
    return out


@check(theorem="T4", method="z3")
def lemma_and_limit_z3() -> tuple[int, str]:
    a, c = z3.Reals("a c")
    n = 0
    for k in range(1, K_MAX + 1):
        g = _gain(a, k)
        assert _unsat(a >= 0, a <= 1, c > a, k * c + 1 <= g), f"(L) fails at k={k}"
        assert _unsat((1 - a) * g != 1 - a ** (k + 1)), f"geometric identity fails at k={k}"
        # (A) =>: c > a gives R_k > 1, i.e. (k c + 1)(1 - a) > 1 - a^{k+1} for a < 1,
        # and (k c + 1) > k + 1 at a = 1 when c > 1 = a
        assert _unsat(a >= 0, a < 1, c > a, (k * c + 1) * (1 - a) <= 1 - a ** (k + 1)), k
        assert _unsat(c > 1, k * c + 1 <= k + 1), k
        n += 4
    # (A) <=: c <= a gives R_1 <= 1 (the witness k = 1)
    assert _unsat(a >= 0, a < 1, c >= 0, c <= a, (c + 1) * (1 - a) > 1 - a**2)
    assert _unsat(c >= 0, c <= 1, c + 1 > 2)  # a = 1: R_1 = (c + 1)/2 <= 1
    # negative control: the solver does find a counterexample to a false variant of (L)
    g2 = _gain(a, 2)
    assert not _unsat(a >= 0, a <= 1, c > a / 2, 2 * c + 1 <= g2), "z3 proves a false lemma"
    return n + 3, f"(L), the identity and (A) for k = 1..{K_MAX}"


RATES = tuple(F(i, 12) for i in range(13))
DRAFTER = (F(1, 10), F(1, 4), F(1, 3), F(1, 2), F(3, 4), F(1))


def _cfg(s: int, k: int, t0: Fraction, c: Fraction, d0: Fraction) -> RunConfig:
    return RunConfig(
        max_tokens=s, k=k, target_latency=Latency.of(t0, 1), drafter_latency=Latency.of(d0, c)
    )


@check(theorem="T4", method="exact-dp")
def finite_s_exact() -> tuple[int, str]:
    n = 0
    for s in (1, 2, 3, 5, 9):
        for c in DRAFTER:
            for t0 in (F(1, 4), F(1), F(3)):
                for extra in (F(0), F(1, 5)):  # d0 = c + extra
                    e = {k: si_poly(_cfg(s, k, t0, c, c + extra)) for k in (1, 2, 3, 5)}
                    ns = nonsi_latency(_cfg(s, 1, t0, c, c))
                    for a in RATES:
                        vals = {k: evaluate(p, a) for k, p in e.items()}
                        n += len(vals)
                        if s == 1:
                            assert all(v == ns for v in vals.values()), (s, c, a)
                        elif c > a:
                            assert all(v > ns for v in vals.values()), ("F1", s, c, t0, a)
                        elif extra == 0:
                            assert vals[1] <= ns, ("F2", s, c, t0, a)
                            assert c == a or vals[1] < ns, ("F2 strict", s, c, t0, a)
    return n, "(F1), (F2) on S in {1,2,3,5,9}, 6 c, 13 a, k in {1,2,3,5}, 3 t0, 2 d0"


@check(theorem="T4", method="exact-dp")
def limit_rate_exact() -> tuple[int, str]:
    n = 0
    for c in (F(1, 10), F(1, 2), F(1)):
        for k in (1, 2, 5):
            polys = {s: si_poly(_cfg(s, k, F(1), c, c)) for s in (10, 20, 40)}
            for a in (F(0), F(1, 3), F(9, 10), F(1)):
                r = (k * c + 1) / (k + 1) if a == 1 else (k * c + 1) * (1 - a) / (1 - a ** (k + 1))
                assert r == si_rate(a, c, k), (a, c, k)
                for s, p in polys.items():
                    assert abs(evaluate(p, a) - s * r) <= k * (k * c + 1), (c, k, a, s)
                    n += 1
    for a in RATES:  # (A) once more, in exact rationals: R_k > 1 for all k <=> c > a
        for c in DRAFTER:
            every = all(si_rate(a, c, k) > 1 for k in range(1, K_MAX + 1))
            assert every == si_slower_for_every_k(a, c), (a, c)
            n += 1
    return n, "|E[T_SI] - S R_k| <= k (k c + 1) for S in {10,20,40}; (A) on 13 a x 6 c"
