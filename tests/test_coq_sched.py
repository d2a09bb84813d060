"""The Coq model of the scheduler (proofs/coq/Sched.v) admits every run of DSIScheduler.

A seeded random driver runs dsi_ref's DSIScheduler without a clock: at each step it
finishes the draft in flight or one running task (or two of them as one batch of
simultaneous events), in random order. Each event and each command is turned into the
model's action and run through Sched.v's transition function, mirrored in
proofs/coq_sched.py. After every scheduler call the test asserts that each step was
allowed (the model's step is not None) and that the model's state is the scheduler's:
committed tokens, draft tokens, positions of stored p's, live task ids, a draft in flight
or not. So the replayed runs are runs of the model, for which Sched.v proves that the
committed prefix is the reference's; the test also checks that directly.

Negative controls: the planted scheduler bugs UNVERIFIED_PREFIX and COMMIT_CANCELLED
(tests/faulty.py) must leave the model on some run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction as F

import pytest

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
    DraftDone,
    DSIScheduler,
    Event,
    Finished,
    QueueTask,
    StartDraft,
    StartTask,
    TaskDone,
)
from dsi_ref.sequential import reference_tokens
from dsi_ref.verify import Verifier
from dsi_ref.workers import REFERENCE_PARTS, RunParts, make_workers
from proofs import coq_sched as m
from tests.faulty import Fault, planted

RUNS = 80
SEED = 13


class LeftTheModel(AssertionError):
    """The scheduler did something the Coq model does not allow, or their states differ."""


class Replay:
    def __init__(self, rng: random.Random, parts: RunParts) -> None:
        vocab = rng.randint(2, 4)
        exact = rng.random() < 0.5
        target = random_markov(vocab, rng.randint(0, 2), rng.randrange(1000), exact=exact)
        drafter: LanguageModel
        if rng.random() < 0.5:  # noise toward token 0: rejections are common
            r = tuple(F(int(i == 0)) for i in range(vocab))
            noise = rng.choice([F(1, 4), F(3, 4), F(1)])
            drafter = (
                MixtureDrafter(target, noise, r)
                if exact
                else MixtureDrafter(target, float(noise), tuple(map(float, r)))
            )
        else:
            drafter = random_markov(vocab, rng.randint(0, 2), rng.randrange(1000), exact=exact)
        cfg = RunConfig(
            max_tokens=rng.randint(1, 10),
            k=rng.randint(1, 5),
            servers=rng.randint(1, 4),
            seed=rng.randrange(2**32),
            sampling=rng.choice([SamplingConfig(), SamplingConfig(top_k=2)]),
            point_mass_proposal=rng.random() < 0.25,
            target_latency=Latency.of(rng.choice([F(1), F(3)]), rng.choice([F(1), F(2)])),
        )
        self.rng = rng
        self.ref = reference_tokens(target, drafter, cfg)
        verifier = Verifier(SeededChooser(cfg.seed), cfg.sampling.greedy)
        scorer, drafter_w = make_workers(
            target, drafter, cfg.sampling, verifier, (), cfg.point_mass_proposal
        )
        self.scorer, self.drafter = scorer, drafter_w
        self.verifier = verifier
        self.sched: DSIScheduler[Dist] = parts.scheduler(cfg, verifier)
        # The model's distributions are named by the prefix they were computed on (it
        # never reads them); the run's own workers compute the drafts and the rule.
        self.model: m.Model[m.Tokens] = m.Model(
            target=lambda pre: pre,
            draft_at=self.draft_at,
            verify_at=self.verify_at,
            n=cfg.max_tokens,
        )
        self.state: m.State[m.Tokens] = m.init()
        self.actions: list[m.Action] = []
        self.states: list[m.Summary] = []
        self.dtab: dict[m.Tokens, int] = {}
        self.vtab: dict[tuple[m.Tokens, m.Tokens, int], tuple[int, bool]] = {}
        self.draft: StartDraft | None = None
        self.running: dict[int, StartTask] = {}
        self.result: tuple[int, ...] | None = None

    def draft_at(self, pre: m.Tokens) -> tuple[int, m.Tokens]:
        self.dtab[pre] = self.drafter.draft(pre, len(pre))[0]
        return self.dtab[pre], pre

    def verify_at(self, i: int, p_pre: m.Tokens, q_pre: m.Tokens, d: int) -> tuple[int, bool]:
        p = self.scorer.score(p_pre, len(p_pre), len(p_pre))[0]
        q = self.drafter.draft(q_pre, len(q_pre))[1]
        self.vtab[(p_pre, q_pre, d)] = self.verifier.verify(i, p, q, d)
        return self.vtab[(p_pre, q_pre, d)]

    def act(self, action: m.Action) -> None:
        nxt = self.model.step(action, self.state)
        if nxt is None:
            raise LeftTheModel(f"the model does not allow {action} in {self.state}")
        self.state = nxt
        self.actions.append(action)
        self.states.append(m.summary(nxt))

    def trace(self) -> m.Trace:
        return m.Trace(self.model.n, tuple(self.actions), self.dtab, self.vtab, tuple(self.states))

    def commands(self, cmds: Sequence[Command]) -> None:
        for cmd in cmds:
            if isinstance(cmd, StartDraft):
                self.act(m.StartDraft())
                self.draft = cmd
            elif isinstance(cmd, CancelDraft):
                self.act(m.CancelDraft())
                self.draft = None
            elif isinstance(cmd, QueueTask):
                self.act(m.Submit(cmd.task_id, len(cmd.tokens), cmd.first, cmd.last))
            elif isinstance(cmd, StartTask):
                self.running[cmd.task_id] = cmd  # servers and the queue are not modelled
            elif isinstance(cmd, CancelTask):
                self.act(m.CancelTask(cmd.task_id))
                self.running.pop(cmd.task_id, None)
            elif isinstance(cmd, Commit):
                self.act(m.Commit())
            elif isinstance(cmd, Finished):
                self.result = cmd.tokens
        self.compare()

    def compare(self) -> None:
        s, py = self.state, self.sched.s
        seen = (
            s.committed,
            tuple(d for d, _ in s.drafts),
            {j for j, _ in s.pav},
            {t.t_id for t in s.tasks},
            s.inflight is not None,
        )
        want = (
            tuple(py.committed),
            tuple(d for d, _ in py.drafts),
            set(py.p_avail),
            set(py.tasks),
            py.draft_inflight is not None,
        )
        if self.result is None and seen != want:
            raise LeftTheModel(f"model state {seen} != scheduler state {want}")
        assert s.committed == self.ref[: len(s.committed)]  # Sched.v's theorem, on this run

    def events(self) -> list[tuple[m.Action, Event]]:
        """What could finish now: the draft in flight, each running task."""
        out: list[tuple[m.Action, Event]] = []
        if self.draft is not None:
            tok, q = self.drafter.draft(self.draft.tokens, self.draft.position)
            out.append((m.DraftDone(), DraftDone(self.draft.draft_id, tok, q)))
        for tid, t in sorted(self.running.items()):
            dists = self.scorer.score(t.tokens, t.first, t.last)
            out.append((m.TaskDone(tid), TaskDone(tid, dists)))
        return out

    def run(self) -> tuple[int, ...]:
        self.commands(self.sched.start())
        while self.result is None:
            ready = self.events()
            assert ready, "nothing in flight before Finished"
            batch = self.rng.sample(ready, min(len(ready), self.rng.choice([1, 1, 2])))
            # The scheduler takes a batch in drafter first, then tasks by id (its
            # canonical order); the model takes the same events in that order.
            batch.sort(key=lambda ae: (isinstance(ae[1], TaskDone), getattr(ae[1], "task_id", 0)))
            for action, ev in batch:
                self.act(action)
                if isinstance(ev, DraftDone):
                    self.draft = None
                else:
                    assert isinstance(ev, TaskDone)
                    del self.running[ev.task_id]
            self.commands(self.sched.on_events([ev for _, ev in batch]))
        return self.result


def test_every_replayed_run_is_a_run_of_the_model() -> None:
    rng = random.Random(SEED)
    commits = rejections = 0
    for _ in range(RUNS):
        replay = Replay(rng, REFERENCE_PARTS)
        assert replay.run() == replay.ref
        commits += replay.sched.counters.drafts_accepted
        rejections += replay.sched.counters.drafts_rejected
    assert commits > 0 and rejections > 0, "the runs never accept or never reject"


@pytest.mark.parametrize("fault", [Fault.UNVERIFIED_PREFIX, Fault.COMMIT_CANCELLED])
def test_planted_scheduler_bugs_leave_the_model(fault: Fault) -> None:
    rng = random.Random(SEED)
    left = 0
    for _ in range(RUNS):
        try:
            Replay(rng, planted(fault)).run()
        except LeftTheModel:
            left += 1
    assert left > 0, f"{fault.name} stayed inside the model on all {RUNS} runs"


COQ_TRACES = 6


def test_coq_step_is_the_mirror() -> None:
    """Coq's own step (vm_compute) gives the mirror's state after every action of the
    first replayed runs; a trace with one state altered is refused (negative control)."""
    rng = random.Random(SEED)
    traces = []
    for _ in range(COQ_TRACES):
        replay = Replay(rng, REFERENCE_PARTS)
        replay.run()
        traces.append(replay.trace())
    longest = max(traces, key=lambda t: len(t.states))
    assert len(longest.states) > 20
    assert any(not acc for t in traces for _, acc in t.rule.values()), "no rejection"
    states = list(longest.states)
    c, d, pv, ts, fl = states[len(states) // 2]
    states[len(states) // 2] = (c, d, pv, ts, not fl)
    altered = m.Trace(longest.n, longest.actions, longest.drafts, longest.rule, tuple(states))
    assert m.coq_replay([*traces, altered]) == [True] * COQ_TRACES + [False]
