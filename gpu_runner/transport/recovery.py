"""Worker faults survived: deadlines, restarts and reissues over any transport.

A worker that dies (its process ends), hangs (no report for `deadline` seconds
past its pass's injected cost) or raises anything but a typed `DSIError` (bad
input or model output: deterministic, so reported at once, as before) loses
every job it held. Its jobs are reissued in order on a fresh worker (a restart,
empty cache) or, once its restarts are spent, on a live worker of the same role;
jobs that were cancelled get a `skipped` report instead (the executor still
needs one report per job). The scheduler never learns of the fault: a
reissued pass computes the same rows (its result is a function of the chain
alone) and every random draw is keyed by position, so the tokens are those of
a fault-free run. When no worker of a role is left, `WorkerFailure` names the
cause.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from dsi_ref.errors import DSIError
from gpu_runner.transport.interface import (
    FaultAction,
    FaultKind,
    FaultRecord,
    PassJob,
    Report,
    WorkerCounters,
    WorkerFailure,
    Workers,
    worker_name,
)


class Supervised:
    """`inner` with fault recovery; the same interface, logical worker ids."""

    def __init__(
        self,
        inner: Workers,
        *,
        deadline: float | None = None,
        max_restarts: int = 2,
    ) -> None:
        self.inner = inner
        self.deadline = deadline
        self.max_restarts = max_restarts
        n = inner.count
        self.route = list(range(n))  # logical worker -> physical worker
        self.dead = [False] * n
        self.restarts = [0] * n
        self.held: list[list[tuple[int, PassJob]]] = [[] for _ in range(n)]  # (logical, job)
        self.since = [0] * n  # ns of the physical worker's last progress
        self.cancelled: set[tuple[int, int]] = set()  # (logical, ident)
        self.faults: list[FaultRecord] = []  # not yet taken by the executor
        self.fault_log: list[FaultRecord] = []  # every fault of the run
        self._ready: list[Report] = []

    @property
    def count(self) -> int:
        return self.inner.count

    def submit(self, worker: int, job: PassJob) -> None:
        p = self.route[worker]
        if not self.held[p]:
            self.since[p] = time.perf_counter_ns()
        self.held[p].append((worker, job))
        self.inner.submit(p, job)

    def cancel(self, worker: int, ident: int) -> None:
        self.cancelled.add((worker, ident))
        self.inner.cancel(self.route[worker], ident)

    def take_faults(self) -> list[FaultRecord]:
        out, self.faults = self.faults, []
        return out

    def next_report(self, timeout: float | None) -> Report | None:
        end = None if timeout is None else time.perf_counter_ns() + int(timeout * 1e9)
        while not self._ready:
            now = time.perf_counter_ns()
            wait = None if end is None else max(0.0, (end - now) / 1e9)
            hung, due = self._hung(now)
            if hung is not None:
                self._fault(hung, "hung", f"no report for {self.deadline} s past its pass's cost")
                continue
            if due is not None:
                wait = due if wait is None else min(wait, due)
            rep = self.inner.next_report(wait)
            if rep is None:
                if end is not None and time.perf_counter_ns() >= end:
                    return None
                continue
            self._take(rep)
        return self._ready.pop(0)

    def _hung(self, now: int) -> tuple[int | None, float | None]:
        """A physical worker past its deadline, else the seconds until the next one falls due."""
        if self.deadline is None:
            return None, None
        due: float | None = None
        for p, jobs in enumerate(self.held):
            if not jobs or self.dead[p]:
                continue
            cost = jobs[0][1].cost or 0.0
            left = (self.since[p] - now) / 1e9 + self.deadline + cost
            if left <= 0:
                return p, None
            due = left if due is None else min(due, left)
        return None, due

    def _take(self, rep: Report) -> None:
        p = rep.worker
        if rep.fault is not None:
            self._fault(p, rep.fault, "its process ended" if rep.fault == "died" else "")
            return
        jobs = self.held[p]
        at = next((i for i, (_, j) in enumerate(jobs) if j.ident == rep.ident), None)
        if at is None:
            return  # a late report of a job already reissued elsewhere
        logical, job = jobs.pop(at)
        self.since[p] = time.perf_counter_ns()
        if rep.error is not None and not isinstance(rep.error, DSIError):
            jobs.insert(at, (logical, job))  # lost with the worker: reissued below
            cause = f"{type(rep.error).__name__}: {rep.error}"
            self._fault(p, "raised", cause, rep.ident)
            return
        self._ready.append(_as(rep, logical))

    def _fault(self, p: int, kind: FaultKind, cause: str, ident: int | None = None) -> None:
        lost, self.held[p] = self.held[p], []
        if ident is None and lost:
            ident = lost[0][1].ident
        action: FaultAction
        if self.restarts[p] < self.max_restarts and self.inner.restart(p):
            self.restarts[p] += 1
            target, action = p, "restarted"
        else:
            self.dead[p] = True
            target = self._live_peer(p, kind, cause)
            action = "moved"
            for logical, q in enumerate(self.route):
                if q == p:
                    self.route[logical] = target
        record = FaultRecord(p, kind, ident, action, cause or kind)
        self.faults.append(record)
        self.fault_log.append(record)
        now = time.perf_counter_ns()
        for logical, job in lost:
            if (logical, job.ident) in self.cancelled:
                self._ready.append(Report(logical, job.ident, None, now, now, skipped=True))
            else:
                self.submit(logical, job)

    def _live_peer(self, p: int, kind: FaultKind, cause: str) -> int:
        """A live worker of p's role (drafter: none other), or WorkerFailure."""
        peers = [] if p == 0 else [q for q in range(1, self.count) if not self.dead[q]]
        if not peers:
            role = "the drafter" if p == 0 else "every target server"
            raise WorkerFailure(
                f"{role} is dead: {worker_name(p)} {kind} ({cause or kind}) after "
                f"{self.restarts[p]} restart(s); the run cannot go on"
            )
        return min(peers, key=lambda q: len(self.held[q]))

    def restart(self, worker: int) -> bool:
        return self.inner.restart(self.route[worker])

    def counters(self) -> Sequence[WorkerCounters]:
        return self.inner.counters()

    def bytes_moved(self) -> int:
        return self.inner.bytes_moved()

    def shutdown(self) -> None:
        self.inner.shutdown()


def _as(rep: Report, logical: int) -> Report:
    if rep.worker == logical:
        return rep
    return Report(
        logical, rep.ident, rep.result, rep.started, rep.ended, rep.skipped, rep.error, rep.overrun
    )
