"""Rules 7 and 8 of the trace checker: is each committed token the right one?

Rule 7 replays the verification rule on the recorded p and q under the keyed
randomness of the header's seed, so it needs no model. Rule 8 (optional) also
asks models whether the recorded p and q are the warped distributions on the
committed prefix, which catches an engine that verifies against the wrong q.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from dsi_ref.checker_schema import CommitEv, Header
from dsi_ref.errors import DSIError
from dsi_ref.models import LanguageModel
from dsi_ref.prob import Dist, Num, check_dist
from dsi_ref.randomness import SeededChooser
from dsi_ref.sampling import SamplingConfig, WarpedModel
from dsi_ref.verify import Verifier


def _dist(x: Sequence[Num], vocab: int, what: str, out: list[str]) -> Dist | None:
    """x as a distribution of length `vocab`, or None after noting why it is not one."""
    try:
        d = check_dist(x, what)
    except DSIError as e:
        out.append(str(e))
        return None
    if len(d) != vocab:
        out.append(f"{what} has {len(d)} entries, vocab_size is {vocab}")
        return None
    return d


def check_commit_rule(h: Header, ev: CommitEv) -> list[str]:
    """Messages for every way `ev` breaks the verification rule (empty if none)."""
    out: list[str] = []
    j, v = ev.pos, h.vocab_size
    if not (0 <= ev.token < v):
        out.append(f"token {ev.token} at position {j} is outside the vocabulary 0..{v - 1}")
        return out
    p = _dist(ev.p, v, f"p at position {j}", out)
    verifier = Verifier(SeededChooser(h.seed), h.greedy)
    if ev.source == "target":
        if p is not None and (want := verifier.target_token(j, p)) != ev.token:
            out.append(f"token {ev.token} at position {j} is not the target sample {want}")
        return out
    assert ev.q is not None and ev.draft is not None  # the schema ensures a verify commit has them
    q = _dist(ev.q, v, f"q at position {j}", out)
    draft = ev.draft
    if not (0 <= draft < v):
        out.append(f"draft {draft} at position {j} is outside the vocabulary 0..{v - 1}")
        return out
    if ev.accepted != (ev.token == draft):
        out.append(
            f"accepted = {ev.accepted} at position {j} but token {ev.token} "
            f"{'equals' if ev.token == draft else 'differs from'} draft {draft}"
        )
    if q is None:
        return out
    if h.point_mass_proposal:
        if any(x != (1 if i == draft else 0) for i, x in enumerate(q)):
            out.append(f"point-mass q at position {j} is not one-hot at draft {draft}")
    elif (want_draft := verifier.draft(j, q)) != draft:
        out.append(
            f"draft {draft} at position {j} does not follow the keyed randomness: "
            f"q under seed {h.seed} gives {want_draft}"
        )
    if p is None:
        return out
    try:
        token, ok = verifier.verify(j, p, q, draft)
    except DSIError as e:
        out.append(str(e))
        return out
    if (token, ok) != (ev.token, ev.accepted):
        out.append(
            f"verifying draft {draft} at position {j} gives token {token} "
            f"(accepted={ok}), not the recorded {ev.token} (accepted={ev.accepted})"
        )
    return out


def _differs(got: Sequence[Num], want: Dist, tol: float) -> bool:
    if len(got) != len(want):
        return True
    if all(isinstance(x, Fraction) for x in (*got, *want)):
        return tuple(got) != want
    return any(abs(float(a) - float(b)) > tol for a, b in zip(got, want, strict=True))


class ModelOracle:
    """Rule 8: recorded p (and q) equal the warped target (and drafter) on the prefix."""

    def __init__(
        self,
        h: Header,
        target: LanguageModel | None,
        drafter: LanguageModel | None,
        sampling: SamplingConfig,
        tol: float,
    ) -> None:
        self.h = h
        self.target = None if target is None else WarpedModel(target, sampling)
        self.drafter = None if drafter is None else WarpedModel(drafter, sampling)
        self.tol = tol

    def check(self, prefix: Sequence[int | None], ev: CommitEv) -> list[str]:
        if any(x is None for x in prefix):
            return []  # an earlier position is missing; rule 6 already says so
        full = self.h.prompt + tuple(x for x in prefix if x is not None)
        out: list[str] = []
        j = ev.pos
        if self.target is not None and _differs(ev.p, want := self.target.dist(full), self.tol):
            out.append(f"p at position {j} is {_show(ev.p)}, the target gives {_show(want)}")
        if self.drafter is not None and ev.q is not None and not self.h.point_mass_proposal:
            want_q = self.drafter.dist(full)
            if _differs(ev.q, want_q, self.tol):
                out.append(f"q at position {j} is {_show(ev.q)}, the drafter gives {_show(want_q)}")
        return out


def _show(d: Sequence[Num]) -> str:
    return "[" + ", ".join(str(x) for x in d) + "]"
