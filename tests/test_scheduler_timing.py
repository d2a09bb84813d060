"""Fast checks of the scheduler's timing rules, from its commands alone (seconds).

`Driver` runs `DSIScheduler` with real workers (dsi_ref.workers) and finishes the
in-flight draft or one running task in an order chosen by a seeded random generator
(any order an executor could produce), or drafts first. It keeps its own model of the
world from the commands (queued and running tasks, committed tokens, positions whose p
came back and is still usable, the current block start) and checks, at every command:

- queue order (scheduler.py rule 6): each StartTask takes the queued task with the
  least (max(first, c), pass cost of first, -last, task id): the smallest still-needed
  first position, then the non-prefill pass, then wider coverage, then submission order;
  and no server stays idle while a task is queued. The deciding level of every choice
  between two or more queued tasks is counted: each level must decide some choices;
- the target-only chain (rule 3): after every event, the next position c either has its
  p in hand or a live task yields it no slower than a target-only task would (first <= c
  <= last and not a prefill when c is not); every target-only task is on exactly the
  committed prefix and scores exactly position c;
- blocks (rule 2): a verification task is submitted exactly when the finished draft at
  pos completes a block of k (pos - block start + 1 = k) or pos = n - 2, never for
  pos = n - 1, and it scores max(block start, c)..pos + 1.

The last key, submission order, never decides: two live tasks never share (max(first,
c), cost class, last) (verification tasks end at distinct positions, and a target-only
task at c is not submitted, or is started at once, when another task covers c).

The `_drop_useless` clause for a queued target-only task (`t.kind == "target" and
t.server is None and (t.first in s.p_avail or self._covered(...))`) is unreachable with
events delivered one at a time: a target-only task never waits in the queue. Argument:
it is submitted for the next position c only when no live task covers c. (i) After a
task finishes, its server is free and the new task's key is the least in the queue (a
queued task with a smaller key would start at or before c, end at or after c and cost no
more, so it would cover c); so it starts at once. (ii) After a draft arrives, c can only
grow by committing that very draft (commits wait for it, so it was the only draft not
committed), so no live task can end at or after the new c unless the arriving draft
closed a block, whose new task then covers c; every other live task ends before c and
is dropped, freeing servers. (iii) After a rejection every task is cancelled.
Measured: 0 target-only tasks left queued after 52,344 events of 3,000 random-order runs
(and after every event of the 400 runs here, asserted). On the preemptive clock the
clause is therefore dead code; the assertion is a tripwire for a change (e.g. events
handled in batches) that makes it live.
Without preemption it is live: cancelled passes hold their servers (argument (iii)
fails) and the spare-server knob of dsi_ref.policies keeps target-only tasks queued.
`test_rules_hold_without_preemption` drives held servers and drafters (their ends are
events in the random order too) and checks that a queued target-only task is dropped
only if its p is in hand or another live task yields it no slower; a scheduler whose
queued target-only task covers itself (dropped and resubmitted at every event) fails
it in 65 of 300 runs (>= 30 asserted).
Negative controls: the same checker fails on a scheduler whose queue prefers wider
coverage over position (16 of 300 random runs fail the queue-order check under the
equal-time semantics, 7 of 100 before; >= 5 asserted), and on one that starts
target-only tasks only at the start and after rejections (253 of 300 fail the chain check).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction as F
from typing import Any

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MixtureDrafter, random_dist, random_markov
from dsi_ref.policies import Policy
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
from dsi_ref.workers import workers_for

_HELD = -1  # in Driver.servers: still running a cancelled pass (non-preemptive)


@dataclass
class _T:
    kind: str
    tokens: tuple[int, ...]
    first: int
    last: int
    server: int | None = None


@dataclass
class Driver:
    target: LanguageModel
    drafter: LanguageModel
    cfg: RunConfig
    seed: int = 0
    drafts_first: bool = False
    dispatch_checks: bool = True  # queue order and no idle server: rule 6 as the paper has it
    make: Callable[..., Any] = DSIScheduler.from_config
    decided: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0, 2: 0, 3: 0})
    useless_queued_targets: list[tuple[int, int]] = field(default_factory=list)  # (tid, c)
    verify_tasks: list[tuple[int, int]] = field(default_factory=list)  # (first, last)
    draft_positions: list[int] = field(default_factory=list)
    queued_targets: int = 0  # target-only tasks left waiting at the end of an event
    holds: int = 0  # passes cancelled with held=True (non-preemptive runs)

    def run(self) -> tuple[int, ...]:
        cfg = self.cfg
        verifier, scorer, dw = workers_for(self.target, self.drafter, cfg)
        self.sched = self.make(cfg, verifier)
        lat = cfg.target_latency
        self.prefill_rank = (lat.ttft > lat.tpot) - (lat.ttft < lat.tpot)
        self.tasks: dict[int, _T] = {}
        self.servers: list[int | None] = [None] * cfg.servers  # task id, _HELD or None
        self.drafter_held = False
        self.committed: list[int] = []
        self.p_in_hand: set[int] = set()
        self.block_start = 0
        self.draft: StartDraft | None = None
        self.done = False
        rng = random.Random(self.seed)
        self._apply(self.sched.start(), None)
        self._check_chain()
        steps = 0
        while not self.done:
            steps += 1  # a run makes at most n (k + 2) drafts and as many tasks, per restart
            assert steps <= 40 * (cfg.max_tokens + 1) * (cfg.k + 2), "runs on without finishing"
            # ("task", id), ("draft", 0), then held passes ending (non-preemptive): in
            # a preemptive run the list is the same as before held passes existed, so
            # the seeded orders (and the counts in the docstring) are unchanged.
            choices = [("task", t) for t, x in self.tasks.items() if x.server is not None]
            if self.draft is not None:
                choices.append(("draft", 0))
            choices += [("free", i) for i, t in enumerate(self.servers) if t == _HELD]
            if self.drafter_held:
                choices.append(("drafter free", 0))
            assert choices, "stalled"
            what, pick = ("draft", 0) if self.drafts_first and self.draft else rng.choice(choices)
            if what == "free":
                self.servers[pick] = None
                self._apply(self.sched.on_server_free(pick), None)
            elif what == "drafter free":
                self.drafter_held = False
                self._apply(self.sched.on_drafter_free(), None)
            elif what == "draft":
                d = self.draft
                assert d is not None
                tok, q = dw.draft(d.tokens, d.position)
                self.draft = None
                cmds = self.sched.on_draft_done(d.draft_id, tok, q)
                self._apply(cmds, d.position)
            else:
                t = self.tasks.pop(pick)
                assert t.server is not None and self.servers[t.server] == pick
                self.servers[t.server] = None
                c = len(self.committed)
                for j in range(t.first, t.last + 1):
                    if j >= c:
                        self.p_in_hand.add(j)
                self._apply(
                    self.sched.on_task_done(pick, scorer.score(t.tokens, t.first, t.last)), None
                )
            if not self.done:
                self._check_chain()
        return tuple(self.committed)

    def _rank(self, first: int) -> int:
        return self.prefill_rank if first == 0 else 0

    def _key(self, tid: int) -> tuple[int, int, int, int]:
        t = self.tasks[tid]
        return (max(t.first, len(self.committed)), self._rank(t.first), -t.last, tid)

    def _apply(self, cmds: list[Command], drafted: int | None) -> None:
        n, k = self.cfg.max_tokens, self.cfg.k
        if drafted is not None:
            self.draft_positions.append(drafted)
            # The block is judged after the instant's commits (equal-time semantics): a
            # rejection drops it, and a block whose drafts are all committed is not scored.
            commits = [c for c in cmds if isinstance(c, Commit)]
            rejected = any(not c.accepted for c in commits)
            c_after = len(self.committed) + len(commits)
            in_block = drafted <= n - 2 and (
                drafted - self.block_start + 1 == k or drafted == n - 2
            )
            wants_block = in_block and not rejected and max(self.block_start, c_after) <= drafted
            submitted = [c for c in cmds if isinstance(c, QueueTask) and c.kind == "verify"]
            assert len(submitted) == int(wants_block), (drafted, self.block_start, cmds)
            if in_block and not rejected and not wants_block:
                self.block_start = drafted + 1  # the block closes unscored
        for cmd in cmds:
            c = len(self.committed)
            if isinstance(cmd, QueueTask):
                self.tasks[cmd.task_id] = _T(cmd.kind, cmd.tokens, cmd.first, cmd.last)
                if cmd.kind == "target":
                    assert cmd.tokens == tuple(self.committed), cmd
                    assert cmd.first == cmd.last == c, cmd
                else:
                    assert drafted is not None and cmd.last == drafted + 1, cmd
                    assert cmd.first == max(self.block_start, c), (cmd, self.block_start)
                    self.block_start = drafted + 1
                    self.verify_tasks.append((cmd.first, cmd.last))
            elif isinstance(cmd, StartTask):
                queued = [t for t, x in self.tasks.items() if x.server is None]
                keys = sorted(self._key(t) for t in queued)
                assert not self.dispatch_checks or self._key(cmd.task_id) == keys[0], (cmd, keys)
                if len(keys) > 1:
                    level = next(i for i in range(4) if keys[0][i] != keys[1][i])
                    self.decided[level] += 1
                assert self.servers[cmd.server] is None  # free: neither busy nor held
                self.servers[cmd.server] = cmd.task_id
                self.tasks[cmd.task_id].server = cmd.server
            elif isinstance(cmd, CancelTask):
                t = self.tasks.pop(cmd.task_id)
                if t.server is not None:
                    self.servers[t.server] = _HELD if cmd.held else None
                    self.holds += cmd.held
                if (
                    cmd.reason == "useless"
                    and t.kind == "target"
                    and t.server is None
                    and t.last >= c
                ):
                    self.useless_queued_targets.append((cmd.task_id, c))
                    # Dropped only if its p is in hand or another live task yields it
                    # no slower (not itself: it has been popped above).
                    assert t.first in self.p_in_hand or any(
                        x.first <= t.first <= x.last and self._rank(x.first) <= self._rank(t.first)
                        for x in self.tasks.values()
                    ), f"queued target-only task {cmd.task_id} at {t.first} dropped uncovered"
            elif isinstance(cmd, Commit):
                assert cmd.position == c
                self.committed.append(cmd.token)
                self.p_in_hand.discard(c)
                if not cmd.accepted:
                    self.p_in_hand.clear()
                    self.block_start = c + 1
            elif isinstance(cmd, StartDraft):
                assert self.draft is None and not self.drafter_held
                self.draft = cmd
            elif isinstance(cmd, CancelDraft):
                assert self.draft is not None and self.draft.draft_id == cmd.draft_id
                self.draft = None
                self.drafter_held = cmd.held
                self.holds += cmd.held
            elif isinstance(cmd, Finished):
                self.done = True
        if not self.done:
            queued = any(t.server is None for t in self.tasks.values())
            idle = queued and None in self.servers
            assert not (idle and self.dispatch_checks), "idle server with a queued task"
            self.queued_targets += sum(
                1 for t in self.tasks.values() if t.kind == "target" and t.server is None
            )

    def _check_chain(self) -> None:
        c = len(self.committed)
        if c in self.p_in_hand:
            return
        rank = self._rank(c)
        assert any(
            t.first <= c <= t.last and self._rank(t.first) <= rank for t in self.tasks.values()
        ), f"nothing under way for position {c}: {self.tasks}"


def _models(v: int, seed: int, noise: float) -> tuple[LanguageModel, LanguageModel]:
    target = random_markov(v, 1, seed)
    r = random_dist(random.Random(seed + 1), v, exact=False)
    return target, MixtureDrafter(target, noise, r)


def _random_case(rng: random.Random) -> tuple[LanguageModel, LanguageModel, RunConfig]:
    target, drafter = _models(rng.choice([2, 4, 8]), rng.randrange(100), rng.random())
    ttft, tpot = F(rng.randint(1, 4)), F(rng.randint(1, 4))
    cfg = RunConfig(
        max_tokens=rng.randint(1, 16),
        k=rng.randint(1, 5),
        servers=rng.randint(1, 5),
        seed=rng.randrange(10**6),
        target_latency=Latency.of(ttft, tpot),
    )
    return target, drafter, cfg


def test_queue_order_chain_and_blocks_under_random_orders() -> None:
    """400 runs, random interleavings: every rule holds at every command."""
    rng = random.Random(6_0600)
    decided = {0: 0, 1: 0, 2: 0, 3: 0}
    for _ in range(400):
        target, drafter, cfg = _random_case(rng)
        d = Driver(target, drafter, cfg, seed=rng.randrange(10**6))
        assert len(d.run()) == cfg.max_tokens
        for level, count in d.decided.items():
            decided[level] += count
        assert d.queued_targets == 0  # see test_a_target_only_task_never_waits
    # position, pass cost and coverage each decided some choice between queued tasks
    # (recorded: 15, 27 and 18 choices); submission order decided none (module docstring)
    assert min(decided[0], decided[1], decided[2]) >= 10, decided
    assert decided[3] == 0, decided


def test_a_target_only_task_never_waits() -> None:
    """The fact that makes the queued-target clause of _drop_useless unreachable.

    Worst cases for it: one server, a prefill far dearer than a decode (so a block that
    starts at 0 does not count as covering later positions), drafts first or random.
    """
    rng = random.Random(11)
    for i in range(200):
        target, drafter = _models(4, i, rng.random())
        cfg = RunConfig(
            max_tokens=rng.randint(2, 12),
            k=rng.randint(1, 4),
            servers=1,
            seed=i,
            target_latency=Latency.of(8, 1),
        )
        d = Driver(target, drafter, cfg, seed=i, drafts_first=i % 2 == 0)
        d.run()
        assert d.queued_targets == 0
        assert d.useless_queued_targets == []


@pytest.mark.parametrize(("n", "k"), [(1, 1), (2, 1), (5, 3), (5, 10), (6, 2), (7, 3), (9, 4)])
def test_block_cut_at_n_minus_2_with_drafts_first(n: int, k: int) -> None:
    """Drafts all finish before any task and every draft is accepted (drafter = target)."""
    target = random_markov(4, 1, 3)
    cfg = RunConfig(max_tokens=n, k=k, servers=1)
    d = Driver(target, target, cfg, drafts_first=True)
    d.run()
    want = [(b, min(b + k - 1, n - 2) + 1) for b in range(0, n - 1, k)]
    assert d.verify_tasks == want
    assert d.draft_positions == list(range(n))  # the draft at n - 1 is made, unblocked


class _WideFirst(DSIScheduler[Any]):
    """Negative control: the queue prefers coverage over position."""

    def _dispatch(self, out: list[Command]) -> None:
        self.queue.sort(key=lambda i: (-self.s.tasks[i].last, i))
        while self.queue and None in self.servers:
            tid = self.queue.pop(0)
            task = self.s.tasks[tid]
            server = self.servers.index(None)
            self.servers[server] = tid
            task.server = server
            out.append(StartTask(tid, server, task.kind, task.tokens, task.first, task.last))


class _NoChain(DSIScheduler[Any]):
    """Negative control: target-only tasks only at the start and after rejections."""

    def _submit(self, kind: str, tokens: tuple[int, ...], first: int, last: int, out: Any) -> None:
        if kind == "target" and first > 0 and self.s.committed and self._accepted_last:
            return
        super()._submit(kind, tokens, first, last, out)

    def _commit_ready(self, out: list[Command]) -> None:
        before = len(out)
        super()._commit_ready(out)
        commits = [c for c in out[before:] if isinstance(c, Commit)]
        if commits:
            self._accepted_last = commits[-1].accepted

    _accepted_last = False


@pytest.mark.parametrize("bad", [_WideFirst, _NoChain])
def test_the_checker_fails_on_broken_schedulers(bad: type[DSIScheduler[Any]]) -> None:
    rng = random.Random(6_0600)
    failures = 0
    for _ in range(300):
        target, drafter, cfg = _random_case(rng)
        d = Driver(target, drafter, cfg, seed=rng.randrange(10**6), make=bad.from_config)
        try:
            d.run()
        except AssertionError:
            failures += 1
    assert failures >= 5, failures


# The paper's policy, except that a task a rejection could cancel never takes the last
# free server (dsi_ref.policies.spare_server): target-only tasks then wait in the queue.
_SPARE = Policy("paper-spare-server", spare_server=True)


def _non_preemptive_cases(runs: int) -> list[tuple[LanguageModel, LanguageModel, RunConfig, int]]:
    rng = random.Random(7_0700)
    cases = []
    for _ in range(runs):
        target, drafter, cfg = _random_case(rng)
        cfg = dataclasses.replace(cfg, preemptive=False, policy="paper")
        cases.append((target, drafter, cfg, rng.randrange(10**6)))
    return cases


def _factory(cls: type[DSIScheduler[Any]], policy: Policy) -> Callable[..., Any]:
    def make(cfg: RunConfig, verifier: Any) -> DSIScheduler[Any]:
        sched = cls.from_config(cfg, verifier)
        return cls(  # from_config's arguments, with a policy that has no registered name
            cfg.max_tokens,
            cfg.k,
            cfg.servers,
            verifier,
            sched.ttft,
            sched.tpot,
            target_per_position=sched.per_position,
            preemptive=False,
            policy=policy,
            drafter_ttft=cfg.drafter_latency.ttft,
            drafter_tpot=cfg.drafter_latency.tpot,
        )

    return make


def test_rules_hold_without_preemption() -> None:
    """Non-preemptive runs, 300 with the paper's policy (every check above) and 300 with
    the spare-server knob (its dispatch differs by design, so the queue-order and idle-
    server checks are off): the chain and block rules hold at every command, a held
    server or drafter is never reused before its pass ends, and a queued target-only
    task is dropped only when something else yields its p. Here such tasks do wait,
    so the queued-target clause of _drop_useless is live (module docstring)."""
    holds = queued = dropped = 0
    for target, drafter, cfg, seed in _non_preemptive_cases(300):
        d = Driver(target, drafter, cfg, seed=seed)
        assert len(d.run()) == cfg.max_tokens
        holds += d.holds
        spare = Driver(
            target,
            drafter,
            cfg,
            seed=seed,
            make=_factory(DSIScheduler, _SPARE),
            dispatch_checks=False,
        )
        assert len(spare.run()) == cfg.max_tokens
        queued += spare.queued_targets
        dropped += len(spare.useless_queued_targets)
    # the property is exercised: held passes, waiting target-only tasks, and drops
    assert min(holds, queued, dropped) > 0, (holds, queued, dropped)


class _CoversItself(DSIScheduler[Any]):
    """Planted bug (issue 10 item 14): a queued target-only task counts as covering
    its own position, so _drop_useless drops it and _progress submits it again."""

    def _covered(self, pos: int, exclude: int | None = None) -> bool:
        return super()._covered(pos)


def test_non_preemptive_check_catches_a_task_covering_itself() -> None:
    failures = 0
    for target, drafter, cfg, seed in _non_preemptive_cases(300):
        try:
            make = _factory(_CoversItself, _SPARE)
            Driver(target, drafter, cfg, seed=seed, make=make, dispatch_checks=False).run()
        except AssertionError:
            failures += 1
    assert failures >= 30, failures  # recorded: 65 of 300
