"""The per-position verification rules, drawing randomness only through keys.

- greedy: the committed token is argmax p; a draft is accepted iff it equals it.
- speculative sampling: accept draft x with probability min(1, p(x)/q(x)) under
  key (pos, ACCEPT); on rejection sample norm(max(0, p - q)) under (pos, RESIDUAL).
- point mass (a proposal that carries no q): the same rule with q = one-hot(x),
  i.e. accept with probability p(x), else sample p with x removed.

Two protocols name what algorithms call: `VerifyRule` (the scheduler's one
call) and `TokenRule` (that, plus drawing a draft from q and a token from p alone,
which the drafter, SI's bonus and non-SI need). `Verifier` implements both on
tuples (exact or float); gpu_runner's `TorchRule` on device tensors. A planted
bug is a faulty implementation (tests/faulty.py), never a flag in here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Protocol, TypeVar

from dsi_ref.errors import InvalidDistribution, InvalidDraft, VocabularyMismatch, show
from dsi_ref.prob import Dist, Num, argmax, residual
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


class TokenRule(VerifyRule[D_contra], Protocol[D_contra]):
    """Every keyed draw an algorithm makes: verification, the draft, a target-only token."""

    def draft(self, position: int, q: D_contra) -> int:
        """The drafter's token at `position`, drawn from q under key (position, DRAFT)."""
        ...

    def target_token(self, position: int, p: D_contra) -> int:
        """A token from p alone (non-SI, SI's bonus), under key (position, TARGET)."""
        ...


def point_mass(vocab: int, token: int, exact: bool) -> Dist:
    one: Fraction | float = Fraction(1) if exact else 1.0
    zero = one - one
    return tuple(one if i == token else zero for i in range(vocab))


_INF = math.inf


def bad_entry(position: int, what: str, index: int, value: object) -> InvalidDistribution:
    """The error for an entry of p or q that is not a probability (shared with gpu_runner)."""
    return InvalidDistribution(
        f"at position {position}: {what}[{index}] = {show(value)} "
        "is not a probability (NaN, infinite, negative or not a number)"
    )


_CHECKED_CACHE_SIZE = 1024


class Verifier:
    """Draws drafts, target samples and verification outcomes under keyed randomness.

    `verify` checks its inputs: the draft is an int in range, p and q have one
    length, and no entry of p or q is NaN, infinite or negative (InvalidDistribution
    names the position, the entry and its value). Models hand out the same cached
    tuples again and again, so a tuple that passed is remembered by identity (the
    entry holds the tuple, so its id cannot be reused while remembered) and not
    scanned again; other sequences are scanned on every call.

    Subclasses may override `accepts` (the ratio test) and `residual_law` (the law
    of the corrected token); the reference's are the speculative-sampling ones.
    """

    def __init__(self, chooser: Chooser, greedy: bool) -> None:
        self.chooser = chooser
        self.greedy = greedy
        self._checked: dict[int, Sequence[Num]] = {}

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
        if type(draft) is not int and (isinstance(draft, bool) or not isinstance(draft, int)):
            raise InvalidDraft(
                f"draft token {show(draft)} at position {position} is not a token id (an int)"
            )
        if len(p) != len(q):
            raise VocabularyMismatch(
                f"at position {position}: target gives {len(p)} probabilities, "
                f"drafter gives {len(q)}"
            )
        if not (0 <= draft < len(q)):
            raise InvalidDraft(f"draft token {draft} at position {position} is out of range")
        checked = self._checked
        if checked.get(id(p)) is not p:
            self._check(position, p, "target p")
        if checked.get(id(q)) is not q:
            self._check(position, q, "drafter q")
        if self.greedy:
            best = argmax(p)
            return best, best == draft
        if q[draft] <= 0:
            raise InvalidDraft(
                f"draft token {draft} at position {position} has proposal probability "
                f"{q[draft]}; a draft must be sampled from the q it is verified with"
            )
        if self.accepts(position, p, q, draft):
            return draft, True
        token = self.chooser.choice(Key(position, Purpose.RESIDUAL), self.residual_law(p, q))
        return token, token == draft

    def accepts(self, position: int, p: Dist, q: Dist, draft: int) -> bool:
        """The acceptance test: U(position, ACCEPT) < p(draft) / q(draft), q(draft) > 0."""
        ratio = p[draft] / q[draft]
        return ratio >= 1 or self.chooser.bernoulli(Key(position, Purpose.ACCEPT), ratio)

    def residual_law(self, p: Dist, q: Dist) -> Dist:
        """The law of the corrected token after a rejection: norm(max(0, p - q))."""
        return residual(p, q)

    def _check(self, position: int, d: Sequence[Num], what: str) -> None:
        for i, x in enumerate(d):
            try:
                ok = 0 <= x < _INF  # false for NaN, +-inf and negatives
            except TypeError:  # not a number
                ok = False
            if not ok:
                raise bad_entry(position, what, i, x)
        if type(d) is tuple:  # immutable: safe to remember by identity
            if len(self._checked) >= _CHECKED_CACHE_SIZE:
                self._checked.clear()  # fresh tuples every time: stay bounded
            self._checked[id(d)] = d
