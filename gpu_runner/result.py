"""What a real run returns: tokens, wall times, the scheduler's counts, costs and its trace.

Two kinds of count, named apart: `scheduler_counts` is what the DSI scheduler decided
(tasks it submitted, including ones skipped or cancelled before or while they ran: the
virtual clock's counters), `costs` is what the workers did (forwards that ran). In one DSI
run they read 50 vs 49 target and 90 vs 82 drafter passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsi_ref.latency import Latency
from dsi_ref.result import Counters

if TYPE_CHECKING:
    from gpu_runner.kv_worker import ModelWorker


@dataclass
class Costs:
    """Compute and memory beside latency (the paper reported neither)."""

    target_forwards: int = 0  # passes that ran (skipped ones excluded)
    drafter_forwards: int = 0
    target_tokens_fed: int = 0  # ids run through the target (prefill and recomputation)
    peak_cache_bytes: list[int] = field(default_factory=list)  # per target server
    drafter_peak_cache_bytes: int = 0
    device_seconds: float = 0.0  # wall time inside passes, summed over workers
    overruns: int = 0  # passes that took longer than their injected wait
    bytes_moved: int = 0  # serialised between driver and workers (0 with threads)
    faults: int = 0  # worker faults survived (gpu_runner.transport.recovery)
    # Layer cancellation (gpu_runner.layer_cut): cancelled passes that stopped between
    # decoder layers (not in *_forwards), and the seconds their skipped layers would have
    # taken, extrapolated from each cut pass's own pace (an estimate; 0 for a pass cut
    # before its first layer).
    passes_cut: int = 0  # target passes
    drafter_passes_cut: int = 0
    cut_seconds_saved: float = 0.0
    layer_cancel: str = "off"  # "on", "off", or why it could not act (gpu_runner.api)
    # The target's decoder layers where a cancelled target pass could stop between them
    # (layer_cancel "on", no injected waits: a cancel lands in the wait, which runs to its
    # end), else None: the virtual clock's matching `cancel_layers`.
    cut_layers: int | None = None

    @classmethod
    def of(
        cls,
        servers: Sequence[ModelWorker],
        drafter: ModelWorker | None,
        busy_ns: int,
        overruns: int,
    ) -> Costs:
        """The costs a run's workers counted, with the time its passes took."""
        return cls(
            target_forwards=sum(w.forwards for w in servers),
            drafter_forwards=0 if drafter is None else drafter.forwards,
            target_tokens_fed=sum(w.tokens_fed for w in servers),
            peak_cache_bytes=[w.peak_cache_bytes for w in servers],
            drafter_peak_cache_bytes=0 if drafter is None else drafter.peak_cache_bytes,
            device_seconds=busy_ns / 1e9,
            overruns=overruns,
        )

    def per_token(self, n: int) -> dict[str, float]:
        return {
            "target_forwards_per_token": self.target_forwards / n,
            "drafter_forwards_per_token": self.drafter_forwards / n,
            "device_seconds_per_token": self.device_seconds / n,
        }


@dataclass
class RealRun:
    """One real run. Forwards that ran are `costs`; `scheduler_counts` counts decisions."""

    algorithm: str
    tokens: tuple[int, ...]
    wall: float  # seconds from start to the last commit
    commit_times: tuple[float, ...]
    accepted: tuple[bool, ...]  # per position: the draft there was accepted (pattern)
    scheduler_counts: Counters  # tasks the scheduler issued (skipped and cancelled included)
    costs: Costs  # what ran
    trace: dict[str, Any] | None = field(default=None, repr=False)
    # Every pass that ran (cancelled ones too): (model, first position, positions, seconds).
    pass_log: list[tuple[str, int, int, float]] = field(default_factory=list, repr=False)
    # DSI: where the costs its policy planned with came from ("online": fitted from this
    # run's passes, gpu_runner.online_plan; "placeholder": planning online, but the run
    # ended before both models' decode passes were timed; "given": RunnerConfig.plan or
    # the injected waits) and the last of them (target, drafter). SI and non-SI plan nothing.
    plan: str | None = None
    planned: tuple[Latency, Latency] | None = None

    def acceptance_rate(self) -> float | None:
        """Accepted drafts / drafts verified (None without drafts: non-SI)."""
        return self.scheduler_counts.acceptance()

    def summary(self) -> dict[str, Any]:
        n = max(1, len(self.tokens))
        return {
            "algorithm": self.algorithm,
            "tokens": list(self.tokens),
            "wall_s": self.wall,
            "ms_per_token": 1000 * self.wall / n,
            "accepted": sum(self.accepted),
            "acceptance_rate": self.acceptance_rate(),
            # measured acceptance by block position (dsi_ref.result), and "acceptance" again
            **self.scheduler_counts.acceptance_summary(),
            **self.costs.per_token(n),
            "peak_cache_bytes": self.costs.peak_cache_bytes,
            "overruns": self.costs.overruns,
            "bytes_moved_per_token": self.costs.bytes_moved / n,
            "faults": self.costs.faults,
            "layer_cancel": self.costs.layer_cancel,
            "passes_cut": self.costs.passes_cut,
            "drafter_passes_cut": self.costs.drafter_passes_cut,
            "cut_seconds_saved": self.costs.cut_seconds_saved,
            "tasks_cancelled": self.scheduler_counts.tasks_cancelled,
            "tasks_queued": self.scheduler_counts.tasks_queued,
            "plan": self.plan,
            "planned_ms": None if self.planned is None else _ms(self.planned),
        }


def _ms(plan: tuple[Latency, Latency]) -> dict[str, list[float]]:
    """A plan as milliseconds: per model [TTFT, TPOT, per extra position]."""
    return {
        name: [round(float(x) * 1000, 3) for x in (lat.ttft, lat.tpot, lat.per_position)]
        for name, lat in zip(("target", "drafter"), plan, strict=True)
    }
