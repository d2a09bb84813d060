"""What a drafter and a target server compute, independent of when they run.

Both the virtual clock and real executors call these, so the tokens they produce
are the same function of (prefix, position, seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from dsi_ref.chain import with_prompt
from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.faults import NO_FAULTS, Fault
from dsi_ref.models import LanguageModel, check_pair
from dsi_ref.prob import Dist, is_exact
from dsi_ref.randomness import Chooser, SeededChooser
from dsi_ref.sampling import SamplingConfig, WarpedModel
from dsi_ref.verify import Verifier, point_mass


class Drafter:
    """Samples a draft from the warped drafter q; returns it with the q to verify against."""

    def __init__(
        self,
        model: LanguageModel,
        sampling: SamplingConfig,
        verifier: Verifier,
        prompt: Sequence[int] = (),
        point_mass_proposal: bool = False,
        faults: frozenset[Fault] = NO_FAULTS,
    ) -> None:
        self.model = WarpedModel(model, sampling)
        self.verifier = verifier
        self.prompt = tuple(prompt)
        self.point_mass_proposal = point_mass_proposal
        self.forwards = 0
        self._verify_view = self.model
        if Fault.Q_WRONG_TEMPERATURE in faults and not sampling.greedy:
            wrong = SamplingConfig(
                temperature=Fraction(sampling.temperature) * 2,
                top_k=sampling.top_k,
                top_p=sampling.top_p,
            )
            self._verify_view = WarpedModel(model, wrong)

    def draft(self, tokens: Sequence[int], position: int) -> tuple[int, Dist]:
        self.forwards += 1
        prefix = with_prompt(self.prompt, tokens, position)  # O(1) for a chain view
        q = self.model.dist(prefix)
        token = self.verifier.draft(position, q)
        if self.point_mass_proposal:
            return token, point_mass(len(q), token, is_exact(q))
        if self._verify_view is self.model:
            return token, q  # what a second look-up would return: the cached q itself
        return token, self._verify_view.dist(prefix)


class TargetScorer:
    """One target forward pass: the warped p at positions first..last given `tokens`."""

    def __init__(
        self, model: LanguageModel, sampling: SamplingConfig, prompt: Sequence[int] = ()
    ) -> None:
        self.model = WarpedModel(model, sampling)
        self.prompt = tuple(prompt)
        self.forwards = 0

    def score(self, tokens: Sequence[int], first: int, last: int) -> list[Dist]:
        self.forwards += 1
        p = self.prompt
        # O(1) per position for a chain view (dsi_ref.chain)
        return [self.model.dist(with_prompt(p, tokens, j)) for j in range(first, last + 1)]


def check_prompt(prompt: Sequence[int], vocab_size: int) -> None:
    for t in prompt:
        if isinstance(t, bool) or not isinstance(t, int) or not (0 <= t < vocab_size):
            raise InvalidConfig(f"prompt token {t!r} is outside the vocabulary 0..{vocab_size - 1}")


def make_workers(
    target: LanguageModel,
    drafter: LanguageModel,
    sampling: SamplingConfig,
    verifier: Verifier,
    prompt: Sequence[int],
    point_mass_proposal: bool,
    faults: frozenset[Fault],
) -> tuple[TargetScorer, Drafter]:
    check_pair(target, drafter)
    check_prompt(prompt, target.vocab_size)
    return (
        TargetScorer(target, sampling, prompt),
        Drafter(drafter, sampling, verifier, prompt, point_mass_proposal, faults),
    )


def workers_for(
    target: LanguageModel,
    drafter: LanguageModel,
    cfg: RunConfig,
    chooser: Chooser | None = None,
) -> tuple[Verifier, TargetScorer, Drafter]:
    """The verifier and workers of one run: keyed by cfg.seed unless a chooser is given."""
    verifier = Verifier(chooser or SeededChooser(cfg.seed), cfg.sampling.greedy, cfg.faults)
    scorer, draft_worker = make_workers(
        target, drafter, cfg.sampling, verifier, cfg.prompt, cfg.point_mass_proposal, cfg.faults
    )
    return verifier, scorer, draft_worker
