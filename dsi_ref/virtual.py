"""Drives the DSI scheduler on a virtual clock with exact rational times.

The drafter is one worker; each of the P servers is one worker. A forward pass
takes the model's TTFT if its first scored position is 0, else its TPOT, plus
per_position for each further position it scores (dsi_ref.latency). With
`cfg.preemptive` (the paper's model) cancellation is instant: a cancelled pass
frees its server or the drafter at once. Without it a cancelled running pass goes
on until it would have ended, and the driver reports the end to the scheduler
(ServerFree, DrafterFree), which dispatches nothing onto that worker before then.
Results are computed when the pass ends, so a cancelled pass draws no randomness.
With `cfg.cancel_layers` (layer-preemptive) a cancelled pass instead stops at its next
layer boundary (dsi_ref.scheduler.layer_stop), and its worker comes free then.

Equal times: every event due at one time (drafts and tasks finishing, held workers
coming free) is handed to the scheduler as one batch (`DSIScheduler.on_events`),
which takes them all in before it commits or dispatches anything, so the run does
not depend on the order in which simultaneous passes were scheduled.

Times are kept as integer ticks of 1/D, D the least common multiple of the
latencies' denominators: every time on the clock is a sum of latencies, so ticks
are exact, and integer arithmetic and heap comparisons are far cheaper than
Fraction ones. Times leave the driver as Fractions of equal value.
"""

from __future__ import annotations

import heapq
import math
from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel
from dsi_ref.randomness import Chooser
from dsi_ref.result import RunResult
from dsi_ref.scheduler import (
    CancelDraft,
    CancelTask,
    Command,
    Commit,
    DraftDone,
    DrafterFree,
    Event,
    Finished,
    QueueTask,
    ServerFree,
    StartDraft,
    StartTask,
    TaskDone,
    layer_stop,
)
from dsi_ref.trace import TraceRecorder
from dsi_ref.workers import REFERENCE_PARTS, RunParts, workers_for

_DRAFT, _TASK = 0, 1


def run_dsi(
    target: LanguageModel,
    drafter: LanguageModel,
    cfg: RunConfig,
    *,
    record: bool = False,
    chooser: Chooser | None = None,
    parts: RunParts = REFERENCE_PARTS,
) -> RunResult:
    """DSI on the virtual clock; `parts` builds the rule, workers and scheduler."""
    verifier, scorer, draft_worker = workers_for(target, drafter, cfg, chooser, parts=parts)
    sched = parts.scheduler(cfg, verifier)
    rec = TraceRecorder(record, "dsi", cfg, target.vocab_size)
    tracing = rec.enabled  # skip building events nobody records
    denom = math.lcm(*(_denominators(cfg.target_latency) + _denominators(cfg.drafter_latency)))
    layers = cfg.cancel_layers
    denom *= layers or 1  # a layer of any pass is a whole number of ticks
    spans: dict[tuple[int, int], tuple[int, int]] = {}  # (kind, id) -> (start, end), layers only
    draft_ticks = _ticks(cfg.drafter_latency, denom)  # (TTFT, TPOT) in ticks
    target_ticks = _ticks(cfg.target_latency, denom)
    step = _tick(cfg.target_latency.per_position, denom)  # each scored position after the first
    heap: list[tuple[int, int, int, int]] = []  # (time in ticks, seq, kind, id)
    live: dict[tuple[int, int], StartDraft | StartTask] = {}
    # Cancelled passes that still run (non-preemptive): (kind, id) -> server (-1: drafter).
    held: dict[tuple[int, int], int] = {}
    seq = 0
    tick = 0  # the clock, in ticks
    times: list[Fraction] = []
    done = False
    now_at, now_frac = 0, Fraction(0)

    def now() -> Fraction:
        """The clock as a Fraction, built only for commits and trace events."""
        nonlocal now_at, now_frac
        if now_at != tick:
            now_at, now_frac = tick, Fraction(tick, denom)
        return now_frac

    def stop_early(key: tuple[int, int]) -> None:
        """Layer-preemptive: the held pass `key` frees its worker at its next layer
        boundary, not at its end (the entry at its end then finds nothing)."""
        nonlocal seq
        if layers:
            start, end = spans[key]
            stop = layer_stop(start, end, tick, layers)
            if stop < end:
                heapq.heappush(heap, (stop, seq, key[0], key[1]))
                seq += 1

    def execute(cmds: list[Command]) -> None:
        nonlocal seq, done
        for cmd in cmds:
            if isinstance(cmd, StartDraft):
                end = tick + draft_ticks[cmd.position != 0]
                live[(_DRAFT, cmd.draft_id)] = cmd
                heapq.heappush(heap, (end, seq, _DRAFT, cmd.draft_id))
                seq += 1
                if layers:
                    spans[(_DRAFT, cmd.draft_id)] = (tick, end)
                if tracing:
                    rec.event(now(), "draft_start", id=cmd.draft_id, pos=cmd.position)
            elif isinstance(cmd, StartTask):
                end = tick + target_ticks[cmd.first != 0] + (cmd.last - cmd.first) * step
                live[(_TASK, cmd.task_id)] = cmd
                heapq.heappush(heap, (end, seq, _TASK, cmd.task_id))
                seq += 1
                if layers:
                    spans[(_TASK, cmd.task_id)] = (tick, end)
                if tracing:
                    rec.event(now(), "task_start", id=cmd.task_id, server=cmd.server)
            elif isinstance(cmd, Commit):
                times.append(now())
                if tracing:
                    rec.commit(
                        now(),
                        cmd.position,
                        cmd.token,
                        source="verify",
                        task=cmd.task_id,
                        p=cmd.p,
                        draft=cmd.draft,
                        q=cmd.q,
                        accepted=cmd.accepted,
                    )
            elif isinstance(cmd, CancelDraft):
                if live.pop((_DRAFT, cmd.draft_id), None) is not None and cmd.held:
                    held[(_DRAFT, cmd.draft_id)] = -1
                    stop_early((_DRAFT, cmd.draft_id))
                if tracing:
                    rec.event(now(), "draft_cancel", id=cmd.draft_id)
            elif isinstance(cmd, CancelTask):
                if live.pop((_TASK, cmd.task_id), None) is not None and cmd.held:
                    assert cmd.server is not None  # only a running pass is held
                    held[(_TASK, cmd.task_id)] = cmd.server
                    stop_early((_TASK, cmd.task_id))
                if tracing:
                    rec.event(now(), "task_cancel", id=cmd.task_id, reason=cmd.reason)
            elif isinstance(cmd, Finished):
                done = True
                if tracing:
                    rec.event(now(), "done")
            elif isinstance(cmd, QueueTask) and tracing:  # only the trace sees a submission
                rec.event(
                    now(),
                    "task_submit",
                    id=cmd.task_id,
                    kind=cmd.kind,
                    tokens=cmd.tokens,
                    first=cmd.first,
                    last=cmd.last,
                )

    def finish(kind: int, ident: int) -> Event | None:
        """The event of the pass (kind, ident) ending now, or None if nothing happens."""
        job = live.pop((kind, ident), None)
        if job is None:
            worker = held.pop((kind, ident), None)
            if worker is None:
                return None  # cancelled and preempted: nothing happens at its end
            return DrafterFree() if worker < 0 else ServerFree(worker)  # free again
        if type(job) is StartDraft:
            token, q = draft_worker.draft(job.tokens, job.position)
            if tracing:
                rec.event(now(), "draft_done", id=ident, token=token)
            return DraftDone(ident, token, q)
        assert isinstance(job, StartTask)
        dists = scorer.score(job.tokens, job.first, job.last)
        if tracing:
            rec.event(now(), "task_done", id=ident)
        return TaskDone(ident, dists)

    execute(sched.start())
    while not done:
        if not heap:
            raise RuntimeError("DSI scheduler stalled with no work in flight")  # a bug, not input
        tick, _, kind, ident = heapq.heappop(heap)
        if not heap or heap[0][0] != tick:  # the only event due now (the common case)
            job = live.get((kind, ident))
            if type(job) is StartDraft:  # fast path: no event object
                del live[(kind, ident)]
                token, q = draft_worker.draft(job.tokens, job.position)
                if tracing:
                    rec.event(now(), "draft_done", id=ident, token=token)
                execute(sched.on_draft_done(ident, token, q))
                continue
            ev = finish(kind, ident)
            if ev is not None:
                execute(sched.on_events((ev,)))
            continue
        # Several events due now: hand them over as one batch (module docstring).
        batch = [finish(kind, ident)]
        while heap and heap[0][0] == tick:
            _, _, kind, ident = heapq.heappop(heap)
            batch.append(finish(kind, ident))
        events = [ev for ev in batch if ev is not None]
        if events:
            execute(sched.on_events(events))
    c = sched.counters
    tokens = sched.committed
    return RunResult("dsi", tokens, now(), tuple(times), c, rec.finish(tokens, now()))


def _denominators(lat: Latency) -> tuple[int, int, int]:
    return lat.ttft.denominator, lat.tpot.denominator, lat.per_position.denominator


def _tick(x: Fraction, denom: int) -> int:
    """x as an integer multiple of 1/denom (denom is a multiple of x's denominator)."""
    return x.numerator * (denom // x.denominator)


def _ticks(lat: Latency, denom: int) -> tuple[int, int]:
    """(TTFT, TPOT) as integer multiples of 1/denom; index with `position != 0`."""
    return _tick(lat.ttft, denom), _tick(lat.tpot, denom)
