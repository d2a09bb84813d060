"""What a drafter and a target server compute, independent of when they run.

Both the virtual clock and real executors call these, so the tokens they produce
are the same function of (prefix, position, seed).

Algorithms see workers and rules only through protocols (`Scorer`, `DraftWorker`,
`dsi_ref.verify.TokenRule`) and build them through `RunParts`: a run given other
parts (a tensor rule, a planted fault in tests/faulty.py) executes the same
algorithm code with them. The reference parts are `REFERENCE_PARTS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, TypeVar

from dsi_ref.chain import with_prompt
from dsi_ref.config import RunConfig, check_run_config
from dsi_ref.errors import InvalidConfig, show
from dsi_ref.models import LanguageModel, check_pair
from dsi_ref.prob import Dist, is_exact
from dsi_ref.randomness import Chooser, SeededChooser
from dsi_ref.sampling import SamplingConfig, WarpedModel
from dsi_ref.scheduler import DSIScheduler
from dsi_ref.verify import TokenRule, Verifier, VerifyRule, point_mass

D = TypeVar("D")
D_co = TypeVar("D_co", covariant=True)


class Scorer(Protocol[D]):
    """One target forward pass: the warped p at positions first..last given `tokens`."""

    @property
    def forwards(self) -> int:
        """Passes made so far."""
        ...

    def score(self, tokens: Sequence[int], first: int, last: int) -> list[D]: ...


class DraftWorker(Protocol[D_co]):
    """The drafter: its token at `position` on `tokens[:position]`, with the q to verify it by."""

    @property
    def forwards(self) -> int:
        """Drafts made so far."""
        ...

    def draft(self, tokens: Sequence[int], position: int) -> tuple[int, D_co]: ...


class Drafter:
    """Samples a draft from the warped drafter q; returns it with the q to verify against."""

    def __init__(
        self,
        model: LanguageModel,
        sampling: SamplingConfig,
        rule: TokenRule[Dist],
        prompt: Sequence[int] = (),
        point_mass_proposal: bool = False,
    ) -> None:
        self.model = WarpedModel(model, sampling)
        self.rule = rule
        self.prompt = tuple(prompt)
        self.point_mass_proposal = point_mass_proposal
        self.forwards = 0

    def draft(self, tokens: Sequence[int], position: int) -> tuple[int, Dist]:
        self.forwards += 1
        prefix = with_prompt(self.prompt, tokens, position)  # O(1) for a chain view
        q = self.model.dist(prefix)
        token = self.rule.draft(position, q)
        if self.point_mass_proposal:
            return token, point_mass(len(q), token, is_exact(q))
        return token, q


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
            raise InvalidConfig(
                f"prompt token {show(t)} is outside the vocabulary 0..{vocab_size - 1}"
            )


class RunParts:
    """How a run builds its rule, target scorer, drafter and (DSI) scheduler.

    The reference parts; subclass and override one method to run the same
    algorithms with another part (tests/faulty.py plants each known bug this way).
    `chooser` replaces the run's seeded randomness (the exact enumerator passes one).
    """

    def rule(self, cfg: RunConfig, chooser: Chooser | None) -> TokenRule[Dist]:
        return Verifier(chooser or SeededChooser(cfg.seed), cfg.sampling.greedy)

    def scorer(self, target: LanguageModel, cfg: RunConfig) -> Scorer[Dist]:
        return TargetScorer(target, cfg.sampling, cfg.prompt)

    def drafter(
        self, drafter: LanguageModel, cfg: RunConfig, rule: TokenRule[Dist]
    ) -> DraftWorker[Dist]:
        return Drafter(drafter, cfg.sampling, rule, cfg.prompt, cfg.point_mass_proposal)

    def scheduler(self, cfg: RunConfig, rule: VerifyRule[Dist]) -> DSIScheduler[Dist]:
        return DSIScheduler.from_config(cfg, rule)


REFERENCE_PARTS = RunParts()


class Workers(NamedTuple):
    """The rule and workers of one run (unpacks as (rule, scorer, drafter))."""

    rule: TokenRule[Dist]
    scorer: Scorer[Dist]
    drafter: DraftWorker[Dist]


def make_workers(
    target: LanguageModel,
    drafter: LanguageModel,
    sampling: SamplingConfig,
    verifier: TokenRule[Dist],
    prompt: Sequence[int],
    point_mass_proposal: bool,
) -> tuple[TargetScorer, Drafter]:
    """The reference workers for given models, settings and rule."""
    check_pair(target, drafter)
    check_prompt(prompt, target.vocab_size)
    return (
        TargetScorer(target, sampling, prompt),
        Drafter(drafter, sampling, verifier, prompt, point_mass_proposal),
    )


def workers_for(
    target: LanguageModel,
    drafter: LanguageModel,
    cfg: RunConfig,
    chooser: Chooser | None = None,
    *,
    parts: RunParts = REFERENCE_PARTS,
) -> Workers:
    """The rule and workers of one run: keyed by cfg.seed unless a chooser is given."""
    check_run_config(cfg)
    check_pair(target, drafter)
    check_prompt(cfg.prompt, target.vocab_size)
    rule = parts.rule(cfg, chooser)
    return Workers(rule, parts.scorer(target, cfg), parts.drafter(drafter, cfg, rule))
