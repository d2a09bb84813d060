"""The per-position verification rules, drawing randomness only through keys.

- greedy: the committed token is argmax p; a draft is accepted iff it equals it.
- speculative sampling: accept draft x with probability min(1, p(x)/q(x)) under
  key (pos, ACCEPT); on rejection sample norm(max(0, p - q)) under (pos, RESIDUAL).
- point mass (a proposal that carries no q): the same rule with q = one-hot(x),
  i.e. accept with probability p(x), else sample p with x removed.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Protocol, TypeVar

from dsi_ref.errors import InvalidDraft, VocabularyMismatch
from dsi_ref.faults import NO_FAULTS, Fault
from dsi_ref.prob import Dist, argmax, residual
from dsi_ref.randomness import Chooser, Key, Purpose

D_contra = TypeVar("D_contra", contravariant=True)


class VerifyRule(Protocol[D_contra]):
    """The per-position rule a scheduler applies; p and q are in the rule's own form.

    Implementations: `Verifier` (tuples, exact or float) and gpu_runner's tensor
    rule. Both must return the same (token, accepted) for the same p, q and draft.
    """

    def verify(self, position: int, p: D_contra, q: D_contra, draft: int) -> tuple[int, bool]:
        """The committed token at `position` and whether it is the draft."""
        ...


def point_mass(vocab: int, token: int, exact: bool) -> Dist:
    one: Fraction | float = Fraction(1) if exact else 1.0
    zero = one - one
    return tuple(one if i == token else zero for i in range(vocab))


class Verifier:
    """Draws drafts, target samples and verification outcomes under keyed randomness."""

    def __init__(
        self, chooser: Chooser, greedy: bool, faults: frozenset[Fault] = NO_FAULTS
    ) -> None:
        self.chooser = chooser
        self.greedy = greedy
        self.faults = faults
        self._always_accept = Fault.ALWAYS_ACCEPT in faults  # once, not per position
        self._residual_from_p = Fault.RESIDUAL_FROM_P in faults

    def draft(self, position: int, q: Dist) -> int:
        if self.greedy:
            return argmax(q)
        return self.chooser.choice(Key(position, Purpose.DRAFT), q)

    def target_token(self, position: int, p: Dist) -> int:
        if self.greedy:
            return argmax(p)
        return self.chooser.choice(Key(position, Purpose.TARGET), p)

    def verify(self, position: int, p: Dist, q: Dist, draft: int) -> tuple[int, bool]:
        """The committed token at `position` and whether it is the draft."""
        if len(p) != len(q):
            raise VocabularyMismatch(
                f"at position {position}: target gives {len(p)} probabilities, "
                f"drafter gives {len(q)}"
            )
        if not (0 <= draft < len(q)):
            raise InvalidDraft(f"draft token {draft} at position {position} is out of range")
        if self.greedy:
            best = argmax(p)
            return best, best == draft
        if q[draft] <= 0:
            raise InvalidDraft(
                f"draft token {draft} at position {position} has proposal probability "
                f"{q[draft]}; a draft must be sampled from the q it is verified with"
            )
        if self._always_accept:
            return draft, True
        ratio = p[draft] / q[draft]
        if ratio >= 1 or self.chooser.bernoulli(Key(position, Purpose.ACCEPT), ratio):
            return draft, True
        law = p if self._residual_from_p else residual(p, q)
        token = self.chooser.choice(Key(position, Purpose.RESIDUAL), law)
        return token, token == draft
