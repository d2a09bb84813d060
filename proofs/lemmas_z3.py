"""z3 proofs of the per-position lemmas of T1, over the reals, for a fixed vocabulary size.

Each lemma is stated as "for all distributions p, q on V letters, the committed
token has law p"; z3 is given the negation and must answer unsat. min/max are
If-terms and every quotient is a fresh real tied to its numerator by a product
constraint (x * d == n with d > 0), so there is no division by zero to reason about.
"""

from __future__ import annotations

from typing import Any

import z3

Expr = Any  # z3 expressions carry no type stubs


def _dist(name: str, vocab: int, solver: z3.Solver) -> list[Expr]:
    xs = [z3.Real(f"{name}{i}") for i in range(vocab)]
    for x in xs:
        solver.add(x >= 0)
    solver.add(z3.Sum(xs) == 1)
    return xs


def _pos(x: Expr) -> Expr:
    return z3.If(x > 0, x, 0)


def _prove(solver: z3.Solver, negated_goal: Expr, what: str) -> None:
    solver.add(negated_goal)
    verdict = solver.check()
    if verdict != z3.unsat:
        detail = solver.model() if verdict == z3.sat else solver.reason_unknown()
        raise AssertionError(f"{what}: z3 answered {verdict} ({detail})")


def speculative_sampling_lemma(vocab: int) -> None:
    """P(token = x) = p(x) for every x when the draft is sampled from q.

    The code's rule (dsi_ref.verify.Verifier.verify): draw d ~ q; accept d with
    probability a(d) = min(1, p(d)/q(d)); otherwise draw from r = norm(max(0, p - q)).
    So P(token = x) = q(x) a(x) + (sum_y q(y) (1 - a(y))) r(x), where r is only
    defined when beta = sum_z max(0, p(z) - q(z)) > 0; when beta = 0 the rejection
    probability must be 0 (checked as a second goal), since then p = q.
    """
    s = z3.Solver()
    p = _dist("p", vocab, s)
    q = _dist("q", vocab, s)
    a = [z3.Real(f"a{i}") for i in range(vocab)]  # acceptance probability of draft i
    r = [z3.Real(f"r{i}") for i in range(vocab)]  # residual law
    beta = z3.Sum([_pos(p[i] - q[i]) for i in range(vocab)])
    for i in range(vocab):
        # a(i) matters only where q(i) > 0 (a draft with q = 0 is never drawn).
        s.add(z3.Implies(z3.And(q[i] > 0, p[i] >= q[i]), a[i] == 1))
        s.add(z3.Implies(z3.And(q[i] > 0, p[i] < q[i]), a[i] * q[i] == p[i]))
        s.add(z3.Implies(beta > 0, r[i] * beta == _pos(p[i] - q[i])))
    reject = z3.Sum([z3.If(q[i] > 0, q[i] * (1 - a[i]), 0) for i in range(vocab)])
    law = [
        z3.If(q[i] > 0, q[i] * a[i], 0) + z3.If(beta > 0, reject * r[i], 0) for i in range(vocab)
    ]
    goal = z3.And(
        z3.And([law[i] == p[i] for i in range(vocab)]),
        z3.Implies(beta == 0, reject == 0),
    )
    _prove(s, z3.Not(goal), f"speculative sampling lemma, vocabulary {vocab}")


def point_mass_lemma(vocab: int) -> None:
    """With proposal one-hot(d) for a draft d (any d), the token has law p given d.

    The rule accepts d with probability p(d), else samples p with d removed,
    renormalised (residual(p, one-hot(d))). If p(d) = 1 there is no rejection.
    Given d the token has law p, so it has law p whatever law d was drawn from.
    """
    for d in range(vocab):
        s = z3.Solver()
        p = _dist("p", vocab, s)
        r = [z3.Real(f"r{i}") for i in range(vocab)]
        rest = 1 - p[d]  # = sum_z max(0, p(z) - onehot(d)(z))
        for i in range(vocab):
            target = 0 if i == d else p[i]
            s.add(z3.Implies(rest > 0, r[i] * rest == target))
        law = [
            (p[d] if i == d else 0) + z3.If(rest > 0, (1 - p[d]) * r[i], 0) for i in range(vocab)
        ]
        goal = z3.And([law[i] == p[i] for i in range(vocab)])
        _prove(s, z3.Not(goal), f"point-mass lemma, vocabulary {vocab}, draft {d}")


def planted_wrong_lemma(vocab: int) -> bool:
    """Negative control: the rule with the residual replaced by p (RESIDUAL_FROM_P of
    tests/faulty.py) is NOT lossless; returns True iff z3 finds a counterexample (sat)."""
    s = z3.Solver()
    p = _dist("p", vocab, s)
    q = _dist("q", vocab, s)
    a = [z3.Real(f"a{i}") for i in range(vocab)]
    for i in range(vocab):
        s.add(z3.Implies(z3.And(q[i] > 0, p[i] >= q[i]), a[i] == 1))
        s.add(z3.Implies(z3.And(q[i] > 0, p[i] < q[i]), a[i] * q[i] == p[i]))
    reject = z3.Sum([z3.If(q[i] > 0, q[i] * (1 - a[i]), 0) for i in range(vocab)])
    law = [z3.If(q[i] > 0, q[i] * a[i], 0) + reject * p[i] for i in range(vocab)]
    s.add(z3.Not(z3.And([law[i] == p[i] for i in range(vocab)])))
    return bool(s.check() == z3.sat)
