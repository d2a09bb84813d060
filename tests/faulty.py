"""Planted bugs for negative controls: faulty implementations of the run's parts.

Each `Fault` is a real-world failure, planted as a faulty implementation of one
protocol the algorithms call (a `Verifier` subclass, a drafter, a scorer wrapper,
a `DSIScheduler` subclass), never as a flag inside the algorithms. `planted(fault)`
gives the `RunParts` that build it; pass them to any run:

    run_dsi(target, drafter, cfg, parts=planted(Fault.ALWAYS_ACCEPT))

The exact and statistical lossless tests, the trace checker, the scheduler state
machine and proofs T1/T6 must each catch the faults they claim to (their negative
controls use this module). Only tests and proofs import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from fractions import Fraction
from typing import TypeVar

from dsi_ref.config import RunConfig
from dsi_ref.models import LanguageModel
from dsi_ref.prob import Dist
from dsi_ref.randomness import Chooser, SeededChooser
from dsi_ref.sampling import SamplingConfig, WarpedModel
from dsi_ref.scheduler import Command, DSIScheduler
from dsi_ref.verify import TokenRule, Verifier, VerifyRule
from dsi_ref.workers import Drafter, DraftWorker, RunParts, Scorer

D = TypeVar("D")


class Fault(Enum):
    ALWAYS_ACCEPT = "always_accept"  # accept every draft without the ratio test
    RESIDUAL_FROM_P = "residual_from_p"  # after a rejection sample p, not norm(max(0, p - q))
    Q_WRONG_TEMPERATURE = "q_wrong_temperature"  # verify with q at another temperature
    BONUS_OFF_BY_ONE = "bonus_off_by_one"  # the extra scored position uses the previous p
    UNVERIFIED_PREFIX = "unverified_prefix"  # keep tasks built on a rejected draft
    COMMIT_CANCELLED = "commit_cancelled"  # keep results of tasks cancelled by a rejection


# ----- the faulty implementations ---------------------------------------------------


class AlwaysAcceptVerifier(Verifier):
    """ALWAYS_ACCEPT: every (sampled) draft passes, with no ratio test."""

    def accepts(self, position: int, p: Dist, q: Dist, draft: int) -> bool:
        return True


class ResidualFromPVerifier(Verifier):
    """RESIDUAL_FROM_P: after a rejection the corrected token is drawn from p itself."""

    def residual_law(self, p: Dist, q: Dist) -> Dist:
        return p


class WrongTemperatureDrafter(Drafter):
    """Q_WRONG_TEMPERATURE: drafts are sampled from q at temperature T, but the q
    handed on for verification is warped at 2T (transformers issue #32867)."""

    def __init__(
        self,
        model: LanguageModel,
        sampling: SamplingConfig,
        rule: TokenRule[Dist],
        prompt: Sequence[int] = (),
        point_mass_proposal: bool = False,
    ) -> None:
        super().__init__(model, sampling, rule, prompt, point_mass_proposal)
        wrong = SamplingConfig(
            temperature=Fraction(sampling.temperature) * 2,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
        )
        self._wrong = None if sampling.greedy else WarpedModel(model, wrong)

    def draft(self, tokens: Sequence[int], position: int) -> tuple[int, Dist]:
        token, q = super().draft(tokens, position)
        if self._wrong is None or self.point_mass_proposal:
            return token, q
        return token, self._wrong.dist(self.prompt + tuple(tokens[:position]))


class BonusOffByOneScorer:
    """BONUS_OFF_BY_ONE: a pass scoring several positions returns, for its last one
    (SI's bonus position, DSI's position after a block), the p of the one before."""

    def __init__(self, inner: Scorer[Dist]) -> None:
        self.inner = inner

    @property
    def forwards(self) -> int:
        return self.inner.forwards

    def score(self, tokens: Sequence[int], first: int, last: int) -> list[Dist]:
        dists = self.inner.score(tokens, first, last)
        return [*dists[:-1], dists[-2]] if len(dists) > 1 else dists


class UnverifiedPrefixScheduler(DSIScheduler[D]):
    """UNVERIFIED_PREFIX: a rejection leaves the tasks built on the rejected draft live."""

    def _reject(self, out: list[Command]) -> None:
        tasks = dict(self.s.tasks)
        self.s.tasks.clear()  # hidden from the cancellation in the reference _reject
        super()._reject(out)
        self.s.tasks.update(tasks)


class CommitCancelledScheduler(DSIScheduler[D]):
    """COMMIT_CANCELLED: p's stored from tasks on the rejected chain are kept (and used)."""

    def _reject(self, out: list[Command]) -> None:
        kept = dict(self.s.p_avail)
        super()._reject(out)
        self.s.p_avail.update(kept)


# ----- the parts that plant them ----------------------------------------------------


def _chooser(cfg: RunConfig, chooser: Chooser | None) -> Chooser:
    return chooser or SeededChooser(cfg.seed)


class _AlwaysAccept(RunParts):
    def rule(self, cfg: RunConfig, chooser: Chooser | None) -> TokenRule[Dist]:
        return AlwaysAcceptVerifier(_chooser(cfg, chooser), cfg.sampling.greedy)


class _ResidualFromP(RunParts):
    def rule(self, cfg: RunConfig, chooser: Chooser | None) -> TokenRule[Dist]:
        return ResidualFromPVerifier(_chooser(cfg, chooser), cfg.sampling.greedy)


class _WrongTemperature(RunParts):
    def drafter(
        self, drafter: LanguageModel, cfg: RunConfig, rule: TokenRule[Dist]
    ) -> DraftWorker[Dist]:
        return WrongTemperatureDrafter(
            drafter, cfg.sampling, rule, cfg.prompt, cfg.point_mass_proposal
        )


class _BonusOffByOne(RunParts):
    def scorer(self, target: LanguageModel, cfg: RunConfig) -> Scorer[Dist]:
        return BonusOffByOneScorer(super().scorer(target, cfg))


class _UnverifiedPrefix(RunParts):
    def scheduler(self, cfg: RunConfig, rule: VerifyRule[Dist]) -> DSIScheduler[Dist]:
        return UnverifiedPrefixScheduler.from_config(cfg, rule)


class _CommitCancelled(RunParts):
    def scheduler(self, cfg: RunConfig, rule: VerifyRule[Dist]) -> DSIScheduler[Dist]:
        return CommitCancelledScheduler.from_config(cfg, rule)


_PARTS: dict[Fault, RunParts] = {
    Fault.ALWAYS_ACCEPT: _AlwaysAccept(),
    Fault.RESIDUAL_FROM_P: _ResidualFromP(),
    Fault.Q_WRONG_TEMPERATURE: _WrongTemperature(),
    Fault.BONUS_OFF_BY_ONE: _BonusOffByOne(),
    Fault.UNVERIFIED_PREFIX: _UnverifiedPrefix(),
    Fault.COMMIT_CANCELLED: _CommitCancelled(),
}

SCHEDULER_FAULTS = frozenset({Fault.UNVERIFIED_PREFIX, Fault.COMMIT_CANCELLED})
"""Faults planted in DSI's scheduler: SI and non-SI have none, so these leave them unchanged."""


def planted(fault: Fault) -> RunParts:
    """The run parts with `fault` planted (the reference parts everywhere else)."""
    return _PARTS[fault]
