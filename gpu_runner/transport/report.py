"""What executors read back from their workers: costs, and faults for the trace."""

from __future__ import annotations

from dsi_ref.trace import TraceRecorder
from gpu_runner.result import Costs
from gpu_runner.trace_io import Clock
from gpu_runner.transport.interface import worker_name
from gpu_runner.transport.recovery import Supervised


def costs_of(workers: Supervised, overruns: int) -> Costs:
    """Costs from the workers' counters (worker 0 the drafter; none if it never drafted)."""
    c = list(workers.counters())
    drafter, servers = c[0], c[1:]
    return Costs(
        target_forwards=sum(w.forwards for w in servers),
        drafter_forwards=drafter.forwards,
        target_tokens_fed=sum(w.tokens_fed for w in servers),
        peak_cache_bytes=[w.peak_cache_bytes for w in servers],
        drafter_peak_cache_bytes=drafter.peak_cache_bytes,
        device_seconds=sum(w.busy_ns for w in c) / 1e9,
        overruns=overruns,
        bytes_moved=workers.bytes_moved(),
        faults=len(workers.fault_log),
    )


def record_faults(rec: TraceRecorder, clock: Clock, workers: Supervised) -> None:
    """One `fault` event per fault handled since the last call (docs/trace-format.md)."""
    for f in workers.take_faults():
        rec.event(
            clock.now(),
            "fault",
            worker=worker_name(f.worker),
            kind=f.kind,
            id=f.ident,
            action=f.action,
            cause=f.cause,
        )
