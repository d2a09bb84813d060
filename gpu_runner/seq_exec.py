"""SI and non-SI on the same workers as DSI (any transport), one pass at a time, on the wall clock.

They mirror dsi_ref.si.run_si and dsi_ref.nonsi.run_nonsi step for step (same
keys, same bonus rule, same trace events), so their tokens equal the
reference's and their traces pass the same checker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dsi_ref.config import RunConfig
from dsi_ref.policies import cost_ratio, get_policy, low_confidence, si_next_k
from dsi_ref.result import Counters
from dsi_ref.trace import TraceRecorder
from gpu_runner.passes import PassMaker
from gpu_runner.result import RealRun
from gpu_runner.trace_io import Clock, commit_dists
from gpu_runner.transport.interface import PassJob
from gpu_runner.transport.recovery import Supervised
from gpu_runner.transport.report import costs_of, record_faults


class _Caller:
    """Runs one pass at a time on a worker and waits for it (the worker pads and times it)."""

    def __init__(self, workers: Supervised, rec: TraceRecorder, clock: Clock) -> None:
        self.workers = workers
        self.rec = rec
        self.clock = clock
        self.overruns = 0
        self.ident = 0
        self.log: list[tuple[str, int, int, float]] = []

    def __call__(
        self, worker: int, kind: str, chain: list[int], first: int, last: int, cost: float | None
    ) -> Any:
        self.ident += 1
        job = PassJob(
            self.ident, "draft" if kind == "drafter" else "score", tuple(chain), first, last, cost
        )
        self.workers.submit(worker, job)
        while True:
            rep = self.workers.next_report(None)
            record_faults(self.rec, self.clock, self.workers)
            if rep is not None and rep.ident == self.ident:
                break
        if rep.error is not None:  # a typed error (bad model output): not a fault
            raise rep.error
        self.overruns += rep.overrun
        self.log.append((kind, first, last - first + 1, (rep.ended - rep.started) / 1e9))
        return rep.result


def run_si_real(
    workers: Supervised,
    passes: PassMaker,
    cfg: RunConfig,
    vocab_size: int,
    *,
    record: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> RealRun:
    rule = passes.rule
    rec = TraceRecorder(record, "si", cfg, vocab_size)
    clock = Clock()
    call = _Caller(workers, rec, clock)
    n, k = cfg.max_tokens, cfg.k
    policy = get_policy(cfg.policy)  # its lookahead knob (dsi_ref.si)
    ratio = cost_ratio(cfg.drafter_latency.tpot, cfg.target_latency.tpot)
    tokens: list[int] = []
    times: list[float] = []
    accepted: list[bool] = []
    c = Counters()
    task_id = draft_id = 0
    while len(tokens) < n:
        i = len(tokens)
        m = min(k, n - i - 1)
        chain = list(tokens)
        qs: list[Any] = []
        for j in range(m):
            rec.event(clock.now(), "draft_start", id=draft_id, pos=i + j)
            tok, q = call(0, "drafter", chain, i + j, i + j, passes.cost(False, i + j, 1))
            rec.event(clock.now(), "draft_done", id=draft_id, pos=i + j, token=tok)
            draft_id += 1
            chain.append(tok)
            qs.append(q)
            if low_confidence(q, cfg.draft_confidence):
                break  # confidence-based early stop (dsi_ref.si)
        m = len(qs)
        t = clock.now()
        rec.event(t, "task_submit", id=task_id, kind="verify", tokens=chain, first=i, last=i + m)
        rec.event(t, "task_start", id=task_id, server=0)
        ps = call(1, "target", chain, i, i + m, passes.cost(True, i, m + 1))
        t = clock.now()
        rec.event(t, "task_done", id=task_id, server=0)
        all_ok = False
        for j in range(m):
            token, ok = rule.verify(i + j, ps[j], qs[j], chain[i + j])
            if rec.enabled:
                pj, qj = commit_dists(ps[j], qs[j], chain[i + j], passes.acceptance, vocab_size)
                rec.commit(
                    t,
                    i + j,
                    token,
                    source="verify",
                    task=task_id,
                    p=tuple(pj),
                    draft=chain[i + j],
                    q=None if qj is None else tuple(qj),
                    accepted=ok,
                )
            tokens.append(token)
            times.append(float(t))
            accepted.append(ok)
            c.verdict(j, ok)
            if not ok:
                c.drafts_rejected += 1
                c.drafts_wasted += m - j
                break
            c.drafts_accepted += 1
        else:
            all_ok = True
            token = rule.target_token(i + m, ps[m])
            if rec.enabled:
                pm, _ = commit_dists(ps[m], None, None, passes.acceptance, vocab_size)
                rec.commit(t, i + m, token, source="target", task=task_id, p=tuple(pm))
            tokens.append(token)
            times.append(float(t))
            accepted.append(True)  # a bonus position has no draft; the pattern ignores it
        task_id += 1
        verdicts = c.drafts_accepted + c.drafts_rejected
        k = si_next_k(policy, k, m, all_ok, c.drafts_accepted, verdicts, ratio, n)
        if progress is not None:
            progress(len(tokens))
    end = clock.now()
    rec.event(end, "done")
    c.target_forwards = task_id
    c.drafter_forwards = draft_id
    costs = costs_of(workers, call.overruns)
    trace = rec.finish(tokens, end)
    return RealRun(
        "si", tuple(tokens), times[-1], tuple(times), tuple(accepted), c, costs, trace, call.log
    )


def run_nonsi_real(
    workers: Supervised,
    passes: PassMaker,
    cfg: RunConfig,
    vocab_size: int,
    *,
    record: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> RealRun:
    rule = passes.rule
    rec = TraceRecorder(record, "nonsi", cfg, vocab_size)
    clock = Clock()
    call = _Caller(workers, rec, clock)
    tokens: list[int] = []
    times: list[float] = []
    for i in range(cfg.max_tokens):
        t = clock.now()
        rec.event(t, "task_submit", id=i, kind="target", tokens=list(tokens), first=i, last=i)
        rec.event(t, "task_start", id=i, server=0)
        (p,) = call(1, "target", tokens, i, i, passes.cost(True, i, 1))
        t = clock.now()
        rec.event(t, "task_done", id=i, server=0)
        token = rule.target_token(i, p)
        if rec.enabled:
            pl, _ = commit_dists(p, None, None, passes.acceptance, vocab_size)
            rec.commit(t, i, token, source="target", task=i, p=tuple(pl))
        tokens.append(token)
        times.append(float(t))
        if progress is not None:
            progress(len(tokens))
    end = clock.now()
    rec.event(end, "done")
    costs = costs_of(workers, call.overruns)
    n = cfg.max_tokens
    counters = Counters(target_forwards=n)
    trace = rec.finish(tokens, end)
    return RealRun(
        "nonsi",
        tuple(tokens),
        times[-1],
        tuple(times),
        (False,) * n,
        counters,
        costs,
        trace,
        call.log,
    )
