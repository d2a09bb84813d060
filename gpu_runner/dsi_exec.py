"""DSI on real workers: dsi_ref's DSIScheduler driven by threads and the wall clock.

The scheduler is the same object the virtual clock drives; here its commands
become jobs for one drafter thread and P target-server threads, and their
timed reports become its events. It runs non-preemptive (a forward pass cannot
be interrupted): a cancelled pass that was already running holds its server (or
the drafter) until it ends, and that end is reported to the scheduler
(`on_server_free` / `on_drafter_free`) instead of its result, which is dropped.
Events arrive one at a time (real time has no ties), each a batch of one.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from fractions import Fraction
from functools import partial
from typing import Any

from dsi_ref.config import RunConfig
from dsi_ref.scheduler import (
    CancelDraft,
    CancelTask,
    Command,
    Commit,
    DSIScheduler,
    Finished,
    QueueTask,
    StartDraft,
    StartTask,
)
from dsi_ref.trace import TraceRecorder
from gpu_runner.kv_worker import ModelWorker
from gpu_runner.passes import PassMaker
from gpu_runner.result import Costs, RealRun
from gpu_runner.threads import Job, Report, WorkerThread
from gpu_runner.trace_io import Clock, commit_dists


def run_dsi_real(
    drafter: ModelWorker,
    servers: Sequence[ModelWorker],
    passes: PassMaker,
    cfg: RunConfig,
    vocab_size: int,
    *,
    record: bool = False,
    progress: Any = None,
) -> RealRun:
    """Generate cfg.max_tokens tokens with DSI on `servers` (len == cfg.servers)."""
    if len(servers) != cfg.servers:
        raise ValueError(f"{len(servers)} target workers for {cfg.servers} servers")
    sched: DSIScheduler[Any] = DSIScheduler.from_config(cfg, passes.rule)
    rec = TraceRecorder(record, "dsi", cfg, vocab_size)
    outbox: queue.Queue[Report] = queue.Queue()
    dead_drafts: set[int] = set()
    dead_tasks: set[int] = set()
    d_thread = WorkerThread("drafter", outbox, dead_drafts.__contains__, drafter.device)
    s_threads = [
        WorkerThread(f"server{i}", outbox, dead_tasks.__contains__, w.device)
        for i, w in enumerate(servers)
    ]
    task_server: dict[int, int] = {}
    # Cancelled passes that still run (non-preemptive): their end frees the drafter / server.
    held_drafts: set[int] = set()
    held_tasks: dict[int, int] = {}  # task id -> server
    spans: dict[tuple[str, int], tuple[int, int]] = {}  # (worker kind, id) -> (first, positions)
    log: list[tuple[str, int, int, float]] = []
    clock = Clock()
    times: list[float] = []
    accepted: list[bool] = []
    done = False

    end_t = Fraction(0)

    def execute(cmds: list[Command], t: Fraction) -> None:
        """Carry out one scheduler step; its commands share one instant, as in dsi_ref."""
        nonlocal done, end_t
        for cmd in cmds:
            if isinstance(cmd, StartDraft):
                pos, chain = cmd.position, cmd.tokens
                cost = passes.cost(False, pos, 1)
                d_thread.submit(Job(cmd.draft_id, partial(passes.draft, drafter, chain, pos), cost))
                spans[("drafter", cmd.draft_id)] = (pos, 1)
                rec.event(t, "draft_start", id=cmd.draft_id, pos=pos)
            elif isinstance(cmd, StartTask):
                w = servers[cmd.server]
                task_server[cmd.task_id] = cmd.server
                cost = passes.cost(True, cmd.first, cmd.last - cmd.first + 1)
                spans[("target", cmd.task_id)] = (cmd.first, cmd.last - cmd.first + 1)
                run = partial(passes.score, w, cmd.tokens, cmd.first, cmd.last)
                s_threads[cmd.server].submit(Job(cmd.task_id, run, cost))
                rec.event(t, "task_start", id=cmd.task_id, server=cmd.server)
            elif isinstance(cmd, QueueTask):
                rec.event(
                    t,
                    "task_submit",
                    id=cmd.task_id,
                    kind=cmd.kind,
                    tokens=list(cmd.tokens),
                    first=cmd.first,
                    last=cmd.last,
                )
            elif isinstance(cmd, Commit):
                times.append(float(t))
                accepted.append(cmd.accepted)
                if rec.enabled:
                    p, q = commit_dists(cmd.p, cmd.q, cmd.draft, passes.acceptance, vocab_size)
                    rec.commit(
                        t,
                        cmd.position,
                        cmd.token,
                        source="verify",
                        task=cmd.task_id,
                        p=tuple(p),
                        draft=cmd.draft,
                        q=None if q is None else tuple(q),
                        accepted=cmd.accepted,
                    )
                if progress is not None:
                    progress(len(times))
            elif isinstance(cmd, CancelDraft):
                dead_drafts.add(cmd.draft_id)
                if cmd.held:
                    held_drafts.add(cmd.draft_id)
                rec.event(t, "draft_cancel", id=cmd.draft_id)
            elif isinstance(cmd, CancelTask):
                dead_tasks.add(cmd.task_id)
                if cmd.held and cmd.server is not None:
                    held_tasks[cmd.task_id] = cmd.server
                rec.event(t, "task_cancel", id=cmd.task_id, reason=cmd.reason)
            elif isinstance(cmd, Finished):
                done = True
                end_t = t
                rec.event(t, "done")

    overruns = 0
    try:
        execute(sched.start(), clock.now())
        while not done:
            rep = outbox.get()
            if rep.error is not None:
                raise rep.error
            kind = "drafter" if rep.worker == "drafter" else "target"
            first, width = spans.pop((kind, rep.ident))
            if not rep.skipped:
                overruns += rep.overrun
                log.append((kind, first, width, (rep.ended - rep.started) / 1e9))
            t = clock.now()
            if rep.worker == "drafter":
                if rep.ident in held_drafts:
                    held_drafts.discard(rep.ident)
                    execute(sched.on_drafter_free(), t)
                    continue
                if rep.skipped or rep.ident in dead_drafts:
                    continue
                token, q = rep.result
                rec.event(t, "draft_done", id=rep.ident, token=token)
                execute(sched.on_draft_done(rep.ident, token, q), t)
            else:
                if rep.ident in held_tasks:
                    execute(sched.on_server_free(held_tasks.pop(rep.ident)), t)
                    continue
                if rep.skipped or rep.ident in dead_tasks:
                    continue
                rec.event(t, "task_done", id=rep.ident, server=task_server[rep.ident])
                execute(sched.on_task_done(rep.ident, rep.result), t)
    finally:
        for th in [d_thread, *s_threads]:
            th.stop()
    # Late reports of passes still running at the end are discarded with the queue.
    busy = sum(th.busy_ns for th in [d_thread, *s_threads])
    costs = Costs.of(servers, drafter, busy, overruns)
    wall = times[-1] if times else 0.0
    tokens = sched.committed
    trace = rec.finish(tokens, end_t)
    return RealRun(
        "dsi", tokens, wall, tuple(times), tuple(accepted), sched.counters, costs, trace, log
    )
