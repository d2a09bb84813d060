"""DSI on real workers: dsi_ref's DSIScheduler driven by workers and the wall clock.

The scheduler is the same object the virtual clock drives; here its commands
become jobs for one drafter and P target servers (worker 0 and 1..P of a
`gpu_runner.transport` backend: threads, processes or Ray actors), and their
timed reports become its events. It runs non-preemptive (a forward pass cannot
be interrupted): a cancelled pass that was already running holds its server (or
the drafter) until it ends, and that end is reported to the scheduler
(`on_server_free` / `on_drafter_free`) instead of its result, which is dropped.
With layer cancellation (gpu_runner.layer_cut) such a pass ends at the next decoder layer
and reports a `Cut`: counted in the costs, kept out of the pass log (its time is not a
pass cost).
Events arrive one at a time (real time has no ties), each a batch of one.
Worker faults are handled below the executor (`transport.recovery`): a lost pass
is reissued, and each fault is recorded in the trace as a `fault` event.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

from dsi_ref.chain import as_tuple
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
from gpu_runner.layer_cut import Cut
from gpu_runner.online_plan import OnlinePlan
from gpu_runner.passes import PassMaker
from gpu_runner.result import RealRun
from gpu_runner.trace_io import Clock, commit_dists
from gpu_runner.transport.interface import PassJob
from gpu_runner.transport.recovery import Supervised
from gpu_runner.transport.report import costs_of, record_faults


def run_dsi_real(
    workers: Supervised,
    passes: PassMaker,
    cfg: RunConfig,
    vocab_size: int,
    *,
    record: bool = False,
    progress: Any = None,
    online: OnlinePlan | None = None,
) -> RealRun:
    """Generate cfg.max_tokens tokens with DSI on `workers` (a drafter and cfg.servers).
    With `online`, the policy plans with the costs of the run's own passes so far
    (gpu_runner.online_plan), from the first fit on; before it, with cfg's."""
    if workers.count != cfg.servers + 1:
        raise ValueError(f"{workers.count - 1} target workers for {cfg.servers} servers")
    sched: DSIScheduler[Any] = DSIScheduler.from_config(cfg, passes.rule)
    rec = TraceRecorder(record, "dsi", cfg, vocab_size)
    dead_drafts: set[int] = set()
    dead_tasks: set[int] = set()
    task_server: dict[int, int] = {}
    # Cancelled passes that still run (non-preemptive): their end frees the drafter / server.
    held_drafts: set[int] = set()
    held_tasks: dict[int, int] = {}  # task id -> server
    # (worker kind, id) -> (first, positions, perf_counter_ns at submission)
    spans: dict[tuple[str, int], tuple[int, int, int]] = {}
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
                workers.submit(0, PassJob(cmd.draft_id, "draft", as_tuple(chain), pos, pos, cost))
                spans[("drafter", cmd.draft_id)] = (pos, 1, time.perf_counter_ns())
                rec.event(t, "draft_start", id=cmd.draft_id, pos=pos)
            elif isinstance(cmd, StartTask):
                task_server[cmd.task_id] = cmd.server
                cost = passes.cost(True, cmd.first, cmd.last - cmd.first + 1)
                job = PassJob(cmd.task_id, "score", as_tuple(cmd.tokens), cmd.first, cmd.last, cost)
                workers.submit(1 + cmd.server, job)
                span = (cmd.first, cmd.last - cmd.first + 1, time.perf_counter_ns())
                spans[("target", cmd.task_id)] = span
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
                workers.cancel(0, cmd.draft_id)
                if cmd.held:
                    held_drafts.add(cmd.draft_id)
                rec.event(t, "draft_cancel", id=cmd.draft_id)
            elif isinstance(cmd, CancelTask):
                dead_tasks.add(cmd.task_id)
                if cmd.server is not None:
                    workers.cancel(1 + cmd.server, cmd.task_id)
                if cmd.held and cmd.server is not None:
                    held_tasks[cmd.task_id] = cmd.server
                rec.event(t, "task_cancel", id=cmd.task_id, reason=cmd.reason)
            elif isinstance(cmd, Finished):
                done = True
                end_t = t
                rec.event(t, "done")

    overruns = 0
    cuts: list[tuple[bool, Cut]] = []  # (target, cut)
    execute(sched.start(), clock.now())
    got = 0  # perf_counter_ns when the last report came in
    while not done:
        if online is not None and got:
            online.handled((time.perf_counter_ns() - got) / 1e9)  # the driver's own work
        rep = workers.next_report(None)
        record_faults(rec, clock, workers)
        if rep is None:
            continue
        if rep.error is not None:  # a typed error (bad model output): not a fault
            raise rep.error
        got = time.perf_counter_ns()
        kind = "drafter" if rep.worker == 0 else "target"
        first, width, sent = spans.pop((kind, rep.ident))
        if isinstance(rep.result, Cut):
            cuts.append((rep.worker != 0, rep.result))
        elif not rep.skipped:
            overruns += rep.overrun
            log.append((kind, first, width, (rep.ended - rep.started) / 1e9))
            # The plan's cost of a pass is what the scheduler waits for: from its submission
            # to its report, the hop to the worker and back included (gpu_runner.online_plan).
            plan = online.observe((kind, first, width, (got - sent) / 1e9)) if online else None
            if plan is not None:
                sched.replan(*plan)
        t = clock.now()
        if rep.worker == 0:
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
    # Late reports of passes still running at the end are discarded by whoever
    # shuts the workers down (gpu_runner.api).
    costs = costs_of(workers, overruns)
    costs.passes_cut = sum(target for target, _ in cuts)
    costs.drafter_passes_cut = len(cuts) - costs.passes_cut
    costs.cut_seconds_saved = sum(c.saved_estimate() for _, c in cuts)
    wall = times[-1] if times else 0.0
    tokens = sched.committed
    trace = rec.finish(tokens, end_t)
    planned = online.plan if online is not None and online.plan is not None else None
    return RealRun(
        "dsi",
        tokens,
        wall,
        tuple(times),
        tuple(accepted),
        sched.counters,
        costs,
        trace,
        log,
        plan="given" if online is None else "online" if planned else "placeholder",
        planned=planned or (cfg.target_latency, cfg.drafter_latency),
    )
