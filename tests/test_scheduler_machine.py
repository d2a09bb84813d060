"""DSIScheduler as a state machine, driven directly in arbitrary event orders.

No virtual clock: hypothesis chooses which in-flight draft or running task
finishes next (any task duration, any interleaving a real executor could show)
and also delivers stale events: results for cancelled, unknown, duplicated or
never-started ids, which must change nothing. The test keeps its own model of
the world from the commands alone (drafts in flight, tasks queued and running,
which server holds what) and checks after every step:

- the committed prefix only grows and never changes, and equals the prefix of
  `reference_tokens` (schedule independence under orders no latency produces);
- the scheduler's view (committed, live tasks, busy servers) equals the one the
  commands describe: no server holds two tasks, no task starts on a busy server,
  at most one draft is in flight (one drafter);
- every Commit comes from a task that ran to completion on the committed prefix
  with no rejection since it finished (nothing from a cancelled or stale task),
  and its p is the target's p at that position on the committed prefix;
- something is in flight until Finished, and nothing follows Finished;
- at teardown a drain (finish everything, in an order fixed by a drawn seed)
  ends with Finished and exactly max_tokens tokens, equal to the reference.

Planted scheduler bugs (tests/faulty.py: COMMIT_CANCELLED, UNVERIFIED_PREFIX, each a
DSIScheduler subclass) are the negative controls: the same machine must fail on them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction as F
from typing import Any

import pytest
from faulty import Fault, planted
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MixtureDrafter, random_markov
from dsi_ref.prob import Dist
from dsi_ref.randomness import SeededChooser
from dsi_ref.sampling import SamplingConfig
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
from dsi_ref.sequential import reference_tokens
from dsi_ref.verify import Verifier
from dsi_ref.workers import REFERENCE_PARTS, RunParts, make_workers

UNKNOWN_IDS = (-1, 10**9)


@dataclass(frozen=True)
class Params:
    vocab: int
    order: int
    exact: bool
    model_seed: int
    noise: F | None  # None: drafter is an independent random Markov model
    mode: str
    point_mass: bool
    seed: int
    k: int
    servers: int
    max_tokens: int
    ttft: F
    tpot: F
    drain_seed: int


PARAMS = st.builds(
    Params,
    vocab=st.integers(2, 4),
    order=st.integers(0, 2),
    exact=st.booleans(),
    model_seed=st.integers(0, 1000),
    noise=st.sampled_from([None, F(0), F(1, 4), F(3, 4), F(1)]),
    mode=st.sampled_from(["greedy", "plain", "top_k", "temperature"]),
    point_mass=st.booleans(),
    seed=st.integers(0, 2**32),
    k=st.integers(1, 6),
    servers=st.integers(1, 4),
    max_tokens=st.integers(1, 12),
    # The scheduler reads target latencies only to rank a prefill against other passes.
    ttft=st.sampled_from([F(1), F(3)]),
    tpot=st.sampled_from([F(1), F(2)]),
    drain_seed=st.integers(0, 2**16),
)


def _sampling(mode: str) -> SamplingConfig:
    if mode == "greedy":
        return SamplingConfig(greedy=True)
    if mode == "top_k":
        return SamplingConfig(top_k=2)
    if mode == "temperature":
        return SamplingConfig(temperature=F(1, 2))
    return SamplingConfig()


class SchedulerMachine(RuleBasedStateMachine):
    parts: RunParts = REFERENCE_PARTS  # the scheduler under test is parts.scheduler(...)

    # ----- setup -----------------------------------------------------------

    @initialize(p=PARAMS)
    def setup(self, p: Params) -> None:
        self.p = p
        target = random_markov(p.vocab, p.order, p.model_seed, exact=p.exact, name="target")
        if p.noise is None:
            drafter: LanguageModel = random_markov(
                p.vocab, p.order, p.model_seed + 1, exact=p.exact, name="drafter"
            )
        else:
            # Noise toward token 0: drafts of 0 are over-proposed, so rejections are common.
            r = tuple(F(int(i == 0)) for i in range(p.vocab))
            if p.exact:
                drafter = MixtureDrafter(target, p.noise, r)
            else:
                drafter = MixtureDrafter(target, float(p.noise), tuple(map(float, r)))
        cfg = RunConfig(
            max_tokens=p.max_tokens,
            k=p.k,
            servers=p.servers,
            seed=p.seed,
            sampling=_sampling(p.mode),
            point_mass_proposal=p.point_mass,
            target_latency=Latency.of(p.ttft, p.tpot),
        )
        self.ref = reference_tokens(target, drafter, cfg)
        verifier = Verifier(SeededChooser(p.seed), cfg.sampling.greedy)
        self.scorer, self.drafter = make_workers(
            target, drafter, cfg.sampling, verifier, (), p.point_mass
        )
        self.sched: DSIScheduler[Dist] = self.parts.scheduler(cfg, verifier)
        # The world as the commands describe it.
        self.drafts: dict[int, StartDraft] = {}
        self.queued: dict[int, QueueTask] = {}
        self.running: dict[int, StartTask] = {}
        self.server_of: dict[int, int] = {}  # server -> task id
        self.specs: dict[int, QueueTask] = {}  # every task ever submitted
        self.draft_specs: dict[int, StartDraft] = {}
        self.cancelled_drafts: set[int] = set()
        self.delivered_drafts: set[int] = set()
        self.cancelled_tasks: set[int] = set()
        self.done_epoch: dict[int, int] = {}  # task id -> rejections seen when it finished
        self.epoch = 0
        self.committed: list[int] = []
        self.seen: tuple[int, ...] = ()
        self.finished = False
        self.broken = False
        self.apply(self.sched.start())

    # ----- the model of the world ------------------------------------------

    def apply(self, cmds: list[Command]) -> None:
        try:
            self._apply(cmds)
        except BaseException:
            self.broken = True  # teardown must not drain a broken world and mask this failure
            raise

    def _apply(self, cmds: list[Command]) -> None:
        for cmd in cmds:
            assert not self.finished, f"{cmd} after Finished"
            if isinstance(cmd, StartDraft):
                assert not self.drafts, f"{cmd} while draft {list(self.drafts)} is in flight"
                assert cmd.draft_id not in self.draft_specs, f"draft id {cmd.draft_id} reused"
                assert len(cmd.tokens) == cmd.position < self.p.max_tokens
                c = len(self.committed)
                assert cmd.position >= c and cmd.tokens[:c] == tuple(self.committed), cmd
                self.drafts[cmd.draft_id] = self.draft_specs[cmd.draft_id] = cmd
            elif isinstance(cmd, CancelDraft):
                assert cmd.draft_id in self.drafts, f"cancel of draft {cmd.draft_id} not in flight"
                del self.drafts[cmd.draft_id]
                self.cancelled_drafts.add(cmd.draft_id)
            elif isinstance(cmd, QueueTask):
                assert cmd.task_id not in self.specs, f"task id {cmd.task_id} reused"
                assert cmd.task_id not in self.draft_specs, f"id {cmd.task_id} is a draft's"
                assert cmd.kind in ("verify", "target")
                assert 0 <= cmd.first <= cmd.last < self.p.max_tokens
                assert len(cmd.tokens) >= cmd.last, f"{cmd} cannot score position {cmd.last}"
                c = min(len(self.committed), len(cmd.tokens))
                assert cmd.tokens[:c] == tuple(self.committed[:c]), f"{cmd} off the prefix"
                self.queued[cmd.task_id] = self.specs[cmd.task_id] = cmd
            elif isinstance(cmd, StartTask):
                q = self.queued.pop(cmd.task_id, None)
                assert q is not None, f"{cmd} was not queued"
                assert (q.kind, q.tokens, q.first, q.last) == (
                    cmd.kind,
                    cmd.tokens,
                    cmd.first,
                    cmd.last,
                )
                assert 0 <= cmd.server < self.p.servers
                assert cmd.server not in self.server_of, (
                    f"{cmd} on server {cmd.server}, busy with task {self.server_of[cmd.server]}"
                )
                self.server_of[cmd.server] = cmd.task_id
                self.running[cmd.task_id] = cmd
            elif isinstance(cmd, CancelTask):
                assert cmd.reason in ("rejection", "useless")
                if cmd.server is None:
                    assert self.queued.pop(cmd.task_id, None) is not None, f"{cmd} not queued"
                else:
                    run = self.running.pop(cmd.task_id, None)
                    assert run is not None and run.server == cmd.server, f"{cmd} not running"
                    del self.server_of[cmd.server]
                self.cancelled_tasks.add(cmd.task_id)
            elif isinstance(cmd, Commit):
                self.check_commit(cmd)
            elif isinstance(cmd, Finished):
                assert cmd.tokens == tuple(self.committed)
                assert len(cmd.tokens) == self.p.max_tokens
                assert not (self.drafts or self.queued or self.running), "work left at Finished"
                self.finished = True

    def check_commit(self, cmd: Commit) -> None:
        pos = len(self.committed)
        assert cmd.position == pos, f"commit at {cmd.position}, expected {pos}"
        tid = cmd.task_id
        assert tid in self.done_epoch, f"commit from task {tid}, which never finished"
        assert tid not in self.cancelled_tasks, f"commit from cancelled task {tid}"
        assert self.done_epoch[tid] == self.epoch, f"task {tid} finished before a rejection"
        spec = self.specs[tid]
        assert spec.first <= pos <= spec.last
        assert spec.tokens[:pos] == tuple(self.committed), f"task {tid} ran off the prefix"
        (p_true,) = self.scorer.score(self.committed, pos, pos)
        assert cmd.p == p_true, f"commit at {pos} used a p that is not the target's"
        assert not cmd.accepted or cmd.token == cmd.draft
        assert cmd.token == self.ref[pos], (
            f"token {cmd.token} at {pos} differs from the reference {self.ref}"
        )
        self.committed.append(cmd.token)
        if not cmd.accepted:
            self.epoch += 1

    # ----- events ----------------------------------------------------------

    def finish_draft(self, did: int) -> None:
        cmd = self.drafts.pop(did)
        self.delivered_drafts.add(did)
        token, q = self.drafter.draft(cmd.tokens, cmd.position)
        self.apply(self.sched.on_draft_done(did, token, q))

    def finish_task(self, tid: int) -> None:
        cmd = self.running.pop(tid)
        del self.server_of[cmd.server]
        dists = self.scorer.score(cmd.tokens, cmd.first, cmd.last)
        self.done_epoch[tid] = self.epoch
        self.apply(self.sched.on_task_done(tid, dists))

    def snapshot(self) -> tuple[Any, ...]:
        s = self.sched
        return s.committed, s.live_tasks(), s.busy_servers(), s.finished

    @precondition(lambda self: not self.finished and bool(self.drafts))
    @rule(data=st.data())
    def draft_done(self, data: st.DataObject) -> None:
        self.finish_draft(data.draw(st.sampled_from(sorted(self.drafts)), label="draft"))

    @precondition(lambda self: not self.finished and bool(self.running))
    @rule(data=st.data())
    def task_done(self, data: st.DataObject) -> None:
        self.finish_task(data.draw(st.sampled_from(sorted(self.running)), label="task"))

    @rule(data=st.data())
    def stale_draft(self, data: st.DataObject) -> None:
        stale = sorted(self.cancelled_drafts | self.delivered_drafts) + list(UNKNOWN_IDS)
        did = data.draw(st.sampled_from(stale), label="stale draft")
        spec = self.draft_specs.get(did)
        if spec is not None:
            token, q = self.drafter.draft(spec.tokens, spec.position)
        else:
            token, q = 0, tuple(F(1, self.p.vocab) for _ in range(self.p.vocab))
        before = self.snapshot()
        with self.guard():
            assert self.sched.on_draft_done(did, token, q) == [], f"stale draft {did} acted"
            assert self.snapshot() == before

    @rule(data=st.data())
    def stale_task(self, data: st.DataObject) -> None:
        # Cancelled, already delivered (duplicates), queued but never started, or unknown.
        stale = sorted(self.cancelled_tasks | set(self.done_epoch) | set(self.queued))
        tid = data.draw(st.sampled_from(stale + list(UNKNOWN_IDS)), label="stale task")
        spec = self.specs.get(tid)
        dists: list[Dist]
        if spec is not None:
            dists = self.scorer.score(spec.tokens, spec.first, spec.last)
        else:
            dists = [tuple(F(1, self.p.vocab) for _ in range(self.p.vocab))]
        before = self.snapshot()
        with self.guard():
            assert self.sched.on_task_done(tid, dists) == [], f"stale task {tid} acted"
            assert self.snapshot() == before

    # ----- invariants ------------------------------------------------------

    @invariant()
    def prefix_grows_and_is_the_reference(self) -> None:
        if not hasattr(self, "sched"):
            return
        with self.guard():
            self._prefix_grows_and_is_the_reference()

    def _prefix_grows_and_is_the_reference(self) -> None:
        now = self.sched.committed
        assert now == tuple(self.committed), "scheduler and its Commit commands disagree"
        assert now[: len(self.seen)] == self.seen, f"committed prefix changed: {self.seen} -> {now}"
        assert now == self.ref[: len(now)], f"{now} is not a prefix of the reference {self.ref}"
        self.seen = now

    @invariant()
    def servers_and_tasks_match_the_commands(self) -> None:
        if not hasattr(self, "sched"):
            return
        with self.guard():
            self._servers_and_tasks_match_the_commands()

    def _servers_and_tasks_match_the_commands(self) -> None:
        busy = self.sched.busy_servers()
        assert busy == self.server_of
        assert len(set(busy.values())) == len(busy), f"a task on two servers: {busy}"
        live = self.sched.live_tasks()
        assert set(live) == set(self.queued) | set(self.running)
        for tid, (_, _, _, server) in live.items():
            assert server == (self.running[tid].server if tid in self.running else None)
        if self.queued:
            assert len(self.running) == self.p.servers, "a task waits while a server is idle"

    @invariant()
    def live_until_finished(self) -> None:
        if not hasattr(self, "sched"):
            return
        with self.guard():
            self._live_until_finished()

    def _live_until_finished(self) -> None:
        assert self.sched.finished == self.finished
        assert self.finished or self.drafts or self.running, "stalled: nothing in flight"

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.broken = True
            raise

    def teardown(self) -> None:
        if not hasattr(self, "sched") or self.broken:
            return
        rng = random.Random(self.p.drain_seed)
        budget = 20 * self.p.max_tokens * (self.p.k + 2)
        while not self.finished and budget > 0:
            budget -= 1
            jobs = [("d", i) for i in sorted(self.drafts)] + [
                ("t", i) for i in sorted(self.running)
            ]
            assert jobs, "stalled during drain"
            kind, ident = rng.choice(jobs)
            if kind == "d":
                self.finish_draft(ident)
            else:
                self.finish_task(ident)
            self._prefix_grows_and_is_the_reference()
            self._servers_and_tasks_match_the_commands()
        assert self.finished, f"no Finished after the drain: {self.sched.committed}"
        assert self.sched.committed == self.ref and len(self.ref) == self.p.max_tokens


MACHINE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    stateful_step_count=50,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_scheduler_state_machine() -> None:
    run_state_machine_as_test(SchedulerMachine, settings=MACHINE)


class _CommitCancelled(SchedulerMachine):
    parts = planted(Fault.COMMIT_CANCELLED)


class _UnverifiedPrefix(SchedulerMachine):
    parts = planted(Fault.UNVERIFIED_PREFIX)


@pytest.mark.parametrize("machine", [_CommitCancelled, _UnverifiedPrefix], ids=lambda m: m.__name__)
def test_planted_scheduler_bugs_are_caught(machine: type[SchedulerMachine]) -> None:
    # Negative controls: no shrinking (only detection matters), same derandomized examples.
    quick = settings(MACHINE, phases=[Phase.generate], report_multiple_bugs=False)
    caught = "finished before a rejection|ran off the prefix|the reference"
    with pytest.raises(AssertionError, match=caught):
        run_state_machine_as_test(machine, settings=quick)
