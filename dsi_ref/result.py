"""What a run returns: tokens, virtual latency, per-token commit times and counters."""

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
        }
