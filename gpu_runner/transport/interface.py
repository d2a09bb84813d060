"""The one interface between an executor and its workers.

Worker 0 is the drafter, workers 1..P the target servers. A pass is described by
data (`PassJob`), never by a closure, so that it can cross a process or a machine:
each worker holds its own model instance, KV cache and `PassMaker`, and runs the
pass where the model is. Warping runs in the worker; verification runs in the
driver on the rows the pass returns (the scheduler's injected rule), so a pass
returns only the rows of the positions it scored (timing mode: none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from dsi_ref.errors import DSIError

BACKENDS = ("threads", "processes", "ray")

PassKind = Literal["draft", "score"]
FaultKind = Literal["died", "hung", "raised"]
FaultAction = Literal["restarted", "moved"]


class WorkerFailure(DSIError, RuntimeError):
    """A run cannot go on: every worker of a role is dead, or a pass keeps failing."""


@dataclass(frozen=True)
class PassJob:
    """One pass: draft position `first` (== last), or score positions first..last."""

    ident: int
    kind: PassKind
    chain: tuple[int, ...]
    first: int
    last: int
    cost: float | None  # injected duration in seconds, or None


@dataclass(frozen=True)
class Report:
    """What became of one submitted job (exactly one report per job)."""

    worker: int
    ident: int
    result: Any
    started: int  # perf_counter_ns (CLOCK_MONOTONIC: comparable across local processes)
    ended: int
    skipped: bool = False  # cancelled before it started: nothing ran
    error: BaseException | None = None  # raised inside the pass
    overrun: bool = False  # the forward took longer than its injected cost
    fault: FaultKind | None = None  # the worker died or hung: the job is lost


@dataclass(frozen=True)
class WorkerCounters:
    """What one worker's model instance did during a run (for `Costs`)."""

    forwards: int = 0
    tokens_fed: int = 0
    peak_cache_bytes: int = 0
    busy_ns: int = 0  # wall time inside passes


@dataclass(frozen=True)
class FaultRecord:
    """A fault the supervisor handled: which worker, what, which job, what it did."""

    worker: int
    kind: FaultKind
    ident: int | None  # the job it was running, if any
    action: FaultAction
    cause: str


class Workers(Protocol):
    """A drafter and P target servers, each running its jobs one at a time, in order."""

    @property
    def count(self) -> int: ...

    def submit(self, worker: int, job: PassJob) -> None: ...

    def cancel(self, worker: int, ident: int) -> None:
        """Cooperative: a job not yet started is skipped; a running one completes."""

    def next_report(self, timeout: float | None) -> Report | None:
        """The next report, or None after `timeout` seconds (None: wait for ever)."""

    def restart(self, worker: int) -> bool:
        """Replace a dead or hung worker by a fresh one (empty cache); False if impossible."""

    def counters(self) -> Sequence[WorkerCounters]:
        """Per worker, what it did since the run began."""

    def bytes_moved(self) -> int:
        """Bytes serialised between driver and workers so far (0 in one process)."""

    def shutdown(self) -> None: ...


def worker_name(worker: int) -> str:
    return "drafter" if worker == 0 else f"server{worker - 1}"
