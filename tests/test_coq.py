"""The Coq proofs (proofs/coq) check, a planted wrong rule does not, and the rule they
are about is the one dsi_ref.verify runs.

Coq must be installed (`make coq`); without it these tests fail, they do not skip.
The comparison with Python is exact (Fractions against mathcomp rationals), so a
difference is a counterexample, never noise.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from fractions import Fraction

import pytest

from dsi_ref.errors import InvalidDistribution, InvalidDraft
from dsi_ref.exact import exact_law
from dsi_ref.prob import residual
from dsi_ref.randomness import Chooser
from dsi_ref.verify import Verifier, point_mass
from proofs.coq_check import (
    COQ_DIR,
    MAIN_THEOREMS,
    CoqRun,
    RuleQuery,
    build,
    check_all,
    coq_rule,
)
from tests.faulty import AlwaysAcceptVerifier, ResidualFromPVerifier

MakeVerifier = Callable[[Chooser], Verifier]


@pytest.fixture(scope="module")
def development() -> CoqRun:
    return check_all()


def test_development_checks(development: CoqRun) -> None:
    assert development.ok, f"{development.failed_file} does not check:\n{development.output}"


def test_main_theorems_use_no_axiom(development: CoqRun) -> None:
    assert development.output.count("Closed under the global context") == len(MAIN_THEOREMS)


# ----- negative controls: a wrong rule must not check --------------------------------

PLANT = "Definition res_weight p q x := pos_part (p x - q x). (* PLANT *)"
RESIDUAL_FROM_P = "Definition res_weight p q x := pos_part (p x). (* PLANT *)"
END_OF_RULE = "(* END OF THE RULE: proofs follow. *)"


def _line_of_error(output: str) -> int:
    m = re.search(r'File "\./Verify\.v", line (\d+)', output)
    assert m, f"no located error in:\n{output}"
    return int(m.group(1))


def test_planted_residual_from_p_fails_the_proof() -> None:
    """The residual drawn from p instead of max(0, p - q): Verify.v must not check.

    The planted definitions alone do check (so the failure is not a typo in the plant):
    it is a proof after the definitions that breaks."""
    text = (COQ_DIR / "Verify.v").read_text()
    assert text.count(PLANT) == 1
    planted = text.replace(PLANT, RESIDUAL_FROM_P)
    rule_only = planted.split(END_OF_RULE)[0] + "End Rule.\n"
    assert build({"Verify.v": rule_only}, files=["Verify.v"]).ok, "the plant does not compile"
    run = build({"Verify.v": planted})
    assert not run.ok and run.failed_file == "Verify.v", "the planted wrong rule was proved"
    assert _line_of_error(run.output) > planted[: planted.index(END_OF_RULE)].count("\n")


# ----- the Coq rule is the code's rule -------------------------------------------------

VOCABS = (2, 3, 4)
N_PAIRS = 36
SEED = 13


Exact = tuple[Fraction, ...]


def _weights(rng: random.Random, vocab: int) -> Exact:
    """A random exact distribution with small denominators, zeros included."""
    while True:
        w = [rng.choice((0, 0, 1, 2, 3, 5)) for _ in range(vocab)]
        if sum(w):
            return tuple(Fraction(x, sum(w)) for x in w)


def _pairs() -> list[tuple[Exact, Exact]]:
    """Random (p, q) over V = 2..4; also q = p (a zero residual) and one-hot proposals."""
    rng = random.Random(SEED)
    out = []
    for i in range(N_PAIRS):
        vocab = VOCABS[i % len(VOCABS)]
        p = _weights(rng, vocab)
        kind = i % 4
        if kind == 1:
            q = p
        elif kind == 2:
            q = tuple(Fraction(x) for x in point_mass(vocab, rng.randrange(vocab), exact=True))
        else:
            q = _weights(rng, vocab)
        out.append((p, q))
    return out


def _queries() -> list[RuleQuery]:
    queries: list[RuleQuery] = []
    for p, q in _pairs():
        queries.append((p, q, None))
        queries.extend((p, q, d) for d in range(len(p)))
    return queries


def _python(make: MakeVerifier, query: RuleQuery) -> tuple[Fraction, ...] | None:
    """The exact law of the committed token (or of residual()), None where the code raises."""
    p, q, draft = query
    try:
        if draft is None:
            return tuple(Fraction(x) for x in residual(p, q))
        law = exact_law(lambda ch: make(ch).verify(0, tuple(p), tuple(q), draft)[0])
    except (InvalidDraft, InvalidDistribution):
        return None
    return tuple(law.get(x, Fraction(0)) for x in range(len(p)))


def _reference(ch: Chooser) -> Verifier:
    return Verifier(ch, greedy=False)


@pytest.fixture(scope="module")
def coq_answers() -> list[tuple[Fraction, ...] | None]:
    return coq_rule(_queries())


def test_instances_cover_every_branch(coq_answers: list[tuple[Fraction, ...] | None]) -> None:
    """The random instances reach each branch: q(d) = 0, ratio >= 1, a rejection with a
    residual, and a zero residual (p = q)."""
    queries = _queries()
    drafts = [(qu, a) for qu, a in zip(queries, coq_answers, strict=True) if qu[2] is not None]
    assert any(a is None for _, a in drafts), "no draft with q(d) = 0"
    assert any(a is not None and a[qu[2] or 0] == 1 for qu, a in drafts), "no sure accept"
    assert any(a is not None and 0 < a[qu[2] or 0] < 1 for qu, a in drafts), "no rejection"
    residuals = [a for qu, a in zip(queries, coq_answers, strict=True) if qu[2] is None]
    assert None in residuals and any(r is not None for r in residuals)


def test_coq_rule_equals_verify(coq_answers: list[tuple[Fraction, ...] | None]) -> None:
    queries = _queries()
    for query, coq in zip(queries, coq_answers, strict=True):
        assert _python(_reference, query) == coq, f"Coq and dsi_ref disagree on {query}"


@pytest.mark.parametrize(
    "faulty", [ResidualFromPVerifier, AlwaysAcceptVerifier], ids=["residual_from_p", "always"]
)
def test_comparison_catches_a_planted_verifier(
    coq_answers: list[tuple[Fraction, ...] | None], faulty: type[Verifier]
) -> None:
    """Negative control: the same comparison with a faulty Verifier finds a difference."""

    def make(ch: Chooser) -> Verifier:
        return faulty(ch, greedy=False)

    queries = _queries()
    diffs = [
        qu
        for qu, coq in zip(queries, coq_answers, strict=True)
        if qu[2] is not None and _python(make, qu) != coq
    ]
    assert diffs, f"{faulty.__name__} agrees with the Coq rule on every instance"
