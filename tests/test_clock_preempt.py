"""Non-preemptive servers and the per-position pass cost.

- The scheduler's contract (dsi_ref.scheduler docstring), driven with no clock in
  random orders and random batches: with preemptive=False a cancelled running task
  holds its server and a cancelled draft holds the drafter until the driver says the
  pass ended; nothing is ever dispatched onto a held server, no draft starts while the
  drafter is held, and the tokens are still the sequential reference (T6).
- The virtual clock: same tokens as the preemptive run; the same run when the
  preemptive run cancels no running pass; a held server is not reused before its
  cancelled pass would have ended; the trace passes the checker.
- What is not true: a non-preemptive run can be faster than the preemptive one (a
  scheduling anomaly, instance below), and T2 fails without preemption (proofs/t2).
- per_position: a pass scoring m positions lasts base + (m - 1) * per_position.
"""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction as F
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsi_ref.checker import check_trace
from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.models import random_markov
from dsi_ref.pattern import run_pattern
from dsi_ref.scheduler import (
    CancelDraft,
    CancelTask,
    Command,
    DraftDone,
    DrafterFree,
    DSIScheduler,
    Event,
    Finished,
    QueueTask,
    ServerFree,
    StartDraft,
    StartTask,
    TaskDone,
)
from dsi_ref.sequential import reference_tokens
from dsi_ref.virtual import run_dsi
from dsi_ref.workers import workers_for

HELD = "held"


class _World:
    """The world as the commands describe it, checked against the scheduler's view."""

    def __init__(self, sched: DSIScheduler[Any], servers: int, preemptive: bool) -> None:
        self.sched = sched
        self.servers = servers
        self.preemptive = preemptive
        self.draft: StartDraft | None = None
        self.drafter_held = False
        self.server_of: dict[int, int | str] = {}  # server -> live task id, or HELD
        self.queued: set[int] = set()
        # Passes under way: ("draft", StartDraft), ("task", StartTask), ("server", s), ("drafter",)
        self.pending: list[tuple[Any, ...]] = []
        self.tokens: tuple[int, ...] | None = None
        self.holds = 0

    def take(self, cmds: list[Command]) -> None:
        for c in cmds:
            assert self.tokens is None, f"{c} after Finished"
            if isinstance(c, StartDraft):
                assert self.draft is None, f"{c} while draft {self.draft} is in flight"
                assert not self.drafter_held, f"{c} while the drafter runs a cancelled pass"
                self.draft = c
                self.pending.append(("draft", c))
            elif isinstance(c, CancelDraft):
                assert self.draft is not None and self.draft.draft_id == c.draft_id, c
                assert c.held is not self.preemptive, c
                self.pending.remove(("draft", self.draft))
                self.draft = None
                if c.held:
                    self.drafter_held = True
                    self.holds += 1
                    self.pending.append(("drafter",))
            elif isinstance(c, QueueTask):
                self.queued.add(c.task_id)
            elif isinstance(c, StartTask):
                assert 0 <= c.server < self.servers
                assert c.server not in self.server_of, (
                    f"{c} on server {c.server}, which holds {self.server_of[c.server]}"
                )
                self.queued.remove(c.task_id)
                self.server_of[c.server] = c.task_id
                self.pending.append(("task", c))
            elif isinstance(c, CancelTask):
                if c.server is None:
                    assert not c.held, c
                    self.queued.remove(c.task_id)
                    continue
                assert self.server_of.get(c.server) == c.task_id, c
                assert c.held is not self.preemptive, c
                job = next(p for p in self.pending if p[0] == "task" and p[1].task_id == c.task_id)
                self.pending.remove(job)
                if c.held:
                    self.server_of[c.server] = HELD
                    self.holds += 1
                    self.pending.append(("server", c.server))
                else:
                    del self.server_of[c.server]
            elif isinstance(c, Finished):
                self.tokens = c.tokens
        if self.tokens is None:
            self.check_views()

    def check_views(self) -> None:
        s = self.sched
        assert s.busy_servers() == {k: v for k, v in self.server_of.items() if v != HELD}
        assert s.held_servers() == {k for k, v in self.server_of.items() if v == HELD}
        assert s.drafter_held == self.drafter_held
        if self.queued:  # a task waits only if no server is free (held ones are not free)
            assert len(self.server_of) == self.servers, "a task waits while a server is free"
        assert self.pending, "stalled: nothing under way"

    def finish(self, job: tuple[Any, ...], scorer: Any, drafter: Any) -> Event:
        """The pass `job` ends: update the world and return the scheduler's event."""
        if job[0] == "draft":
            c = job[1]
            self.draft = None
            token, q = drafter.draft(c.tokens, c.position)
            return DraftDone(c.draft_id, token, q)
        if job[0] == "task":
            c = job[1]
            del self.server_of[c.server]
            return TaskDone(c.task_id, scorer.score(c.tokens, c.first, c.last))
        if job[0] == "server":
            del self.server_of[job[1]]
            return ServerFree(job[1])
        self.drafter_held = False
        return DrafterFree()


def drive(cfg: RunConfig, seed: int, batch_chance: float) -> tuple[tuple[int, ...], int]:
    """Run DSI with no clock: passes end in a random order, sometimes several at once."""
    target = random_markov(3, 1, seed, exact=False, name="target")
    drafter = random_markov(3, 1, seed + 7, exact=False, name="drafter")
    verifier, scorer, draft_worker = workers_for(target, drafter, cfg)
    sched = DSIScheduler.from_config(cfg, verifier)
    world = _World(sched, cfg.servers, cfg.preemptive)
    rng = random.Random(seed)
    world.take(sched.start())
    steps = 0
    while world.tokens is None:
        steps += 1
        assert steps < 10_000, "no Finished"
        size = 1
        while rng.random() < batch_chance and size < len(world.pending):
            size += 1
        jobs = [world.pending.pop(rng.randrange(len(world.pending))) for _ in range(size)]
        events = [world.finish(job, scorer, draft_worker) for job in jobs]
        if size == 1 and rng.random() < 0.5:
            ev = events[0]  # the one-event entry points of a real-time driver
            if isinstance(ev, DraftDone):
                world.take(sched.on_draft_done(ev.draft_id, ev.token, ev.q))
            elif isinstance(ev, TaskDone):
                world.take(sched.on_task_done(ev.task_id, ev.dists))
            elif isinstance(ev, ServerFree):
                world.take(sched.on_server_free(ev.server))
            else:
                world.take(sched.on_drafter_free())
        else:
            world.take(sched.on_events(events))
    assert world.tokens == reference_tokens(target, drafter, cfg)
    return world.tokens, world.holds


@settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    n=st.integers(1, 14),
    k=st.integers(1, 5),
    servers=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    preemptive=st.booleans(),
    batch_chance=st.sampled_from([0.0, 0.3, 0.7]),
)
def test_contract_in_random_orders(
    n: int, k: int, servers: int, seed: int, preemptive: bool, batch_chance: float
) -> None:
    # The paper's policy: _World asserts its dispatch rule (policies: test_policy_*.py).
    cfg = RunConfig(n, k, servers, seed=seed, preemptive=preemptive, policy="paper")
    _, holds = drive(cfg, seed, batch_chance)
    if preemptive:
        assert holds == 0


def test_holds_happen() -> None:
    """The property above exercises held servers and a held drafter."""
    holds = [
        drive(RunConfig(14, 3, 2, seed=s, preemptive=False, policy="paper"), s, 0.3)[1]
        for s in range(8)
    ]
    assert sum(holds) > 0


_LAT = st.sampled_from([F(1, 4), F(1, 3), F(1, 2), F(1), F(3, 2)])


def _cancelled_running(trace: dict[str, Any]) -> bool:
    started = {e["id"] for e in trace["events"] if e["ev"] == "task_start"}
    return any(
        (e["ev"] == "task_cancel" and e["id"] in started) or e["ev"] == "draft_cancel"
        for e in trace["events"]
    )


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    t0=_LAT,
    t=_LAT,
    d0=_LAT,
    d=_LAT,
    per_position=st.sampled_from([F(0), F(1, 8)]),
    k=st.integers(1, 4),
    servers=st.integers(1, 4),
    n=st.integers(1, 16),
    seed=st.integers(0, 1000),
)
def test_virtual_non_preemptive(
    t0: F, t: F, d0: F, d: F, per_position: F, k: int, servers: int, n: int, seed: int
) -> None:
    target = random_markov(3, 1, seed, exact=False, name="target")
    drafter = random_markov(3, 1, seed + 1, exact=False, name="drafter")
    tl, dl = Latency(t0, t, per_position), Latency(d0, d)
    pre_cfg = RunConfig(n, k, servers, seed=seed, target_latency=tl, drafter_latency=dl)
    pre = run_dsi(target, drafter, pre_cfg, record=True)
    cfg = RunConfig(  # the paper's policy: its schedule differs only where a pass is held
        n,
        k,
        servers,
        seed=seed,
        target_latency=tl,
        drafter_latency=dl,
        preemptive=False,
        policy="paper",
    )
    non = run_dsi(target, drafter, cfg, record=True)
    assert non.tokens == pre.tokens
    assert pre.trace is not None and non.trace is not None
    if not _cancelled_running(pre.trace):
        assert non.commit_times == pre.commit_times and non.trace["events"] == pre.trace["events"]
    report = check_trace(non.trace)
    assert report.ok, report.format()
    # A server whose task was cancelled mid-pass is not reused before that pass ends.
    start: dict[int, tuple[F, int, F]] = {}  # task -> (start, server, duration)
    busy_until: dict[int, F] = {}
    spans = {e["id"]: (e["first"], e["last"]) for e in non.trace["events"] if "first" in e}
    for e in non.trace["events"]:
        now = F(e["t"])
        if e["ev"] == "task_start":
            assert now >= busy_until.get(e["server"], F(0)), f"server {e['server']} reused at {now}"
            first, last = spans[e["id"]]
            start[e["id"]] = (now, e["server"], cfg.target_latency.forward(first, last - first + 1))
        elif e["ev"] == "task_done":
            began, _, dur = start[e["id"]]
            assert now == began + dur  # per_position priced in
        elif e["ev"] == "task_cancel" and e["id"] in start:
            began, server, dur = start[e["id"]]
            busy_until[server] = began + dur


def test_non_preemptive_can_be_faster() -> None:
    """Not a theorem: holding a server can change the dispatch order for the better
    (the paper's policy; `safe` schedules differently without preemption).

    T0 = 1/10, T = 1/4, per_position = 1/10, D0 = D = 1/10, k = 3, P = 3, five tokens,
    pattern accept, reject, accept, accept, reject: preemptive 1, non-preemptive 19/20.
    """
    tl, dl = Latency(F(1, 10), F(1, 4), F(1, 10)), Latency(F(1, 10), F(1, 10))
    pattern = [True, False, True, True, False]
    pre_cfg = RunConfig(5, 3, 3, target_latency=tl, drafter_latency=dl, policy="paper")
    pre = run_pattern("dsi", pattern, pre_cfg)
    non = run_pattern("dsi", pattern, dataclasses.replace(pre_cfg, preemptive=False))
    assert (pre.latency, non.latency) == (F(1), F(19, 20))


def test_per_position_cost() -> None:
    lat = Latency.of(2, 1, "target", per_position="1/4")
    assert lat.forward(0) == 2 and lat.forward(3) == 1
    assert lat.forward(0, 3) == F(5, 2) and lat.forward(5, 4) == F(7, 4)
    assert Latency.of(2, 1).forward(4, 9) == 1  # default 0: the paper's model
    with pytest.raises(InvalidConfig, match="-1/4"):
        Latency(F(1), F(1), F(-1, 4))
    with pytest.raises(InvalidConfig, match="per-position cost must be >= 0, got -1"):
        Latency.of(1, 1, "target", per_position=-1)
    with pytest.raises(InvalidConfig, match=r"0\.5"):
        Latency(F(1), F(1), 0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfig, match="'yes'"):
        RunConfig(4, preemptive="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("per_position", [F(0), F(1, 4)])
def test_exact_forms_price_positions(per_position: F) -> None:
    """The SI DP and the DSI renewal DP equal the 2^S definition with per_position > 0
    (SI's pass over i..i+m costs base + m * per_position); the DSI DP refuses
    non-preemptive runs, whose rejections do not free every worker at once."""
    from dsi_ref.theory.event import brute_force_poly, dsi_poly, si_poly

    tl = Latency(F(3, 2), F(1), per_position)
    for k in (1, 2, 3):
        cfg = RunConfig(5, k, 2, target_latency=tl, drafter_latency=Latency.of("1/3"))
        assert si_poly(cfg) == brute_force_poly("si", cfg)
        assert dsi_poly(cfg) == brute_force_poly("dsi", cfg)
    all_accept = run_pattern("si", [True] * 3, RunConfig(3, 2, target_latency=tl))
    # two drafts (1/10 each) and one pass scoring 0..2: TTFT + 2 per_position
    assert all_accept.latency == F(2, 10) + F(3, 2) + 2 * per_position
    non = RunConfig(5, 2, 2, target_latency=tl, preemptive=False)
    with pytest.raises(InvalidConfig, match="preemptive=False"):
        dsi_poly(non)
