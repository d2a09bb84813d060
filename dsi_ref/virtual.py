"""Drives the DSI scheduler on a virtual clock with exact rational times.

The drafter is one worker; each of the P servers is one worker. A forward pass
takes the model's TTFT if it scores position 0, else its TPOT. Cancellation is
instant (the paper's model: a preempted thread frees its server at once). Events
due at the same time are handled in the order they were scheduled. Results are
computed when the pass ends, so a cancelled pass draws no randomness.

Times are kept as integer ticks of 1/D, D the least common multiple of the four
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
    Finished,
    QueueTask,
    StartDraft,
    StartTask,
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
    draft_ticks = _ticks(cfg.drafter_latency, denom)  # (TTFT, TPOT) in ticks
    target_ticks = _ticks(cfg.target_latency, denom)
    heap: list[tuple[int, int, int, int]] = []  # (time in ticks, seq, kind, id)
    live: dict[tuple[int, int], StartDraft | StartTask] = {}
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

    def execute(cmds: list[Command]) -> None:
        nonlocal seq, done
        for cmd in cmds:
            if isinstance(cmd, StartDraft):
                end = tick + draft_ticks[cmd.position != 0]
                live[(_DRAFT, cmd.draft_id)] = cmd
                heapq.heappush(heap, (end, seq, _DRAFT, cmd.draft_id))
                seq += 1
                if tracing:
                    rec.event(now(), "draft_start", id=cmd.draft_id, pos=cmd.position)
            elif isinstance(cmd, StartTask):
                end = tick + target_ticks[cmd.first != 0]
                live[(_TASK, cmd.task_id)] = cmd
                heapq.heappush(heap, (end, seq, _TASK, cmd.task_id))
                seq += 1
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
                live.pop((_DRAFT, cmd.draft_id), None)
                if tracing:
                    rec.event(now(), "draft_cancel", id=cmd.draft_id)
            elif isinstance(cmd, CancelTask):
                live.pop((_TASK, cmd.task_id), None)
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

    execute(sched.start())
    while not done:
        if not heap:
            raise RuntimeError("DSI scheduler stalled with no work in flight")  # a bug, not input
        end, _, kind, ident = heapq.heappop(heap)
        job = live.pop((kind, ident), None)
        if job is None:
            continue  # cancelled
        tick = end
        if isinstance(job, StartDraft):
            token, q = draft_worker.draft(job.tokens, job.position)
            if tracing:
                rec.event(now(), "draft_done", id=ident, token=token)
            execute(sched.on_draft_done(ident, token, q))
        else:
            dists = scorer.score(job.tokens, job.first, job.last)
            if tracing:
                rec.event(now(), "task_done", id=ident)
            execute(sched.on_task_done(ident, dists))
    c = sched.counters
    tokens = sched.committed
    return RunResult("dsi", tokens, now(), tuple(times), c, rec.finish(tokens, now()))


def _denominators(lat: Latency) -> tuple[int, int]:
    return lat.ttft.denominator, lat.tpot.denominator


def _ticks(lat: Latency, denom: int) -> tuple[int, int]:
    """(TTFT, TPOT) as integer multiples of 1/denom; index with `position != 0`."""
    return (
        lat.ttft.numerator * (denom // lat.ttft.denominator),
        lat.tpot.numerator * (denom // lat.tpot.denominator),
    )
