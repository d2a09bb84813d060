"""What a run returns: tokens, virtual latency, per-token commit times and counters.

Measured acceptance. Every draft verdict is tallied overall and by its *block
position*: the draft's position minus the first position scored by the target pass
whose p verified it (SI: the index of the draft within its block; DSI: within the
verification task, or 0 for a draft verified by a target-only task). The rate at
block position i is accepted / verdicts there: the fraction of drafts at position i
of a block that were accepted, among those that reached a verdict (a draft after a
rejection in its block gets none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any


@dataclass
class Counters:
    target_forwards: int = 0  # target forward passes started (cancelled ones included)
    drafter_forwards: int = 0  # drafter forward passes started (cancelled ones included)
    drafts_accepted: int = 0
    drafts_rejected: int = 0
    drafts_wasted: int = 0  # drafts produced that never reached a commit
    tasks_cancelled: int = 0
    tasks_queued: int = 0  # tasks that had to wait for a free server
    target_only_tasks: int = 0
    # Verdicts by block position (module docstring): accepted and total at index i.
    accepted_at: list[int] = field(default_factory=list)
    verdicts_at: list[int] = field(default_factory=list)

    def verdict(self, block_position: int, accepted: bool) -> None:
        """Tally one draft verdict (the drafts_accepted/rejected counts are kept apart)."""
        while len(self.verdicts_at) <= block_position:
            self.verdicts_at.append(0)
            self.accepted_at.append(0)
        self.verdicts_at[block_position] += 1
        self.accepted_at[block_position] += accepted

    def acceptance(self) -> float | None:
        """Accepted drafts / drafts verified; None when no draft was verified (non-SI)."""
        verified = self.drafts_accepted + self.drafts_rejected
        return self.drafts_accepted / verified if verified else None

    def acceptance_by_position(self) -> list[float]:
        """Rate at block position i, for every i that had a verdict (module docstring)."""
        return [a / v for a, v in zip(self.accepted_at, self.verdicts_at, strict=True)]

    def acceptance_summary(self) -> dict[str, Any]:
        """The measured acceptance as JSON fields (both CLIs' --json output)."""
        return {
            "acceptance": self.acceptance(),
            "acceptance_by_position": self.acceptance_by_position(),
            "accepted_by_position": list(self.accepted_at),
            "verdicts_by_position": list(self.verdicts_at),
        }


@dataclass
class RunResult:
    algorithm: str
    tokens: tuple[int, ...]
    latency: Fraction
    commit_times: tuple[Fraction, ...]
    counters: Counters
    trace: dict[str, Any] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        c = self.counters
        return {
            "algorithm": self.algorithm,
            "tokens": list(self.tokens),
            "latency": str(self.latency),
            "latency_float": float(self.latency),
            "commit_times": [str(t) for t in self.commit_times],
            "target_forwards": c.target_forwards,
            "drafter_forwards": c.drafter_forwards,
            "drafts_accepted": c.drafts_accepted,
            "drafts_rejected": c.drafts_rejected,
            "drafts_wasted": c.drafts_wasted,
            "tasks_cancelled": c.tasks_cancelled,
            "tasks_queued": c.tasks_queued,
            "target_only_tasks": c.target_only_tasks,
            **c.acceptance_summary(),
        }
