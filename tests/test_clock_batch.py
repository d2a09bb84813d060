"""Equal-time semantics: every event due at one instant is one batch, whatever its order.

The virtual clock hands every event due at one time to `DSIScheduler.on_events`. A
monitoring subclass, substituted into dsi_ref.virtual, replays each batch in every
order (up to 24 permutations) on deep copies of the scheduler and asserts the same
commands and the same state come out; then it runs the batch in a drawn order. The
runs are also compared whole: same tokens, same commit times, same trace.
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction as F
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsi_ref.workers
from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.models import random_markov
from dsi_ref.pattern import run_pattern
from dsi_ref.prob import Dist
from dsi_ref.result import RunResult
from dsi_ref.scheduler import Command, DraftDone, DSIScheduler, Event, TaskDone
from dsi_ref.virtual import run_dsi


class _Permuting(DSIScheduler[Dist]):
    rng = random.Random(0)
    batches = 0  # batches of two or more events seen: the test exercised ties

    @staticmethod
    def apply(sched: DSIScheduler[Dist], batch: list[Event]) -> list[Command]:
        return DSIScheduler.on_events(sched, batch)

    def on_events(self, events: Iterable[Event]) -> list[Command]:
        batch = list(events)
        if len(batch) > 1:
            _Permuting.batches += 1
            outcomes = set()
            for perm in itertools.islice(itertools.permutations(batch), 24):
                twin = copy.deepcopy(self)
                cmds = self.apply(twin, list(perm))
                outcomes.add(repr((cmds, twin.committed, twin.live_tasks(), twin.servers)))
            assert len(outcomes) == 1, f"batch {batch}: the order changed the outcome"
            _Permuting.rng.shuffle(batch)
        return self.apply(self, batch)


class _OneByOne(_Permuting):
    """Negative control: a batch fed one event at a time (the old semantics)."""

    @staticmethod
    def apply(sched: DSIScheduler[Dist], batch: list[Event]) -> list[Command]:
        return [c for ev in batch for c in DSIScheduler.on_events(sched, [ev])]


@contextmanager
def _permuting(seed: int, cls: type[_Permuting] = _Permuting) -> Iterator[None]:
    _Permuting.rng = random.Random(seed)
    with mock.patch.object(dsi_ref.workers, "DSIScheduler", cls):
        yield


# Latencies on a coarse grid make ties common (drafts and tasks ending together).
_LAT = st.sampled_from([F(0), F(1, 4), F(1, 2), F(1), F(2)])
_POS = st.sampled_from([F(1, 4), F(1, 2), F(1)])


def _same_run(a: RunResult, b: RunResult) -> None:
    assert a.tokens == b.tokens
    assert a.commit_times == b.commit_times
    assert a.latency == b.latency
    assert a.counters == b.counters
    assert a.trace == b.trace


@settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    t0=_LAT,
    t=_POS,
    d0=_LAT,
    d=_POS,
    per_position=st.sampled_from([F(0), F(0), F(1, 4)]),
    k=st.integers(1, 4),
    servers=st.integers(1, 4),
    n=st.integers(1, 12),
    seed=st.integers(0, 1000),
    preemptive=st.booleans(),
)
def test_order_within_a_batch_changes_nothing(
    t0: F,
    t: F,
    d0: F,
    d: F,
    per_position: F,
    k: int,
    servers: int,
    n: int,
    seed: int,
    preemptive: bool,
) -> None:
    target = random_markov(3, 1, seed, exact=False, name="target")
    drafter = random_markov(3, 1, seed + 1, exact=False, name="drafter")
    cfg = RunConfig(
        n,
        k,
        servers,
        seed=seed,
        target_latency=Latency(t0, t, per_position),
        drafter_latency=Latency(d0, d),
        preemptive=preemptive,
    )
    plain = run_dsi(target, drafter, cfg, record=True)
    with _permuting(seed):
        shuffled = run_dsi(target, drafter, cfg, record=True)
    _same_run(plain, shuffled)


def test_ties_were_exercised() -> None:
    """The property above is not vacuous: runs on this grid do have simultaneous events."""
    _Permuting.batches = 0
    cfg = RunConfig(
        8, 1, 2, target_latency=Latency.of(1), drafter_latency=Latency.of("1/2")
    )  # k D = T / 2: drafts and tasks end together
    with _permuting(0):
        run_pattern("dsi", [True, False] * 4, cfg)
    assert _Permuting.batches > 0


def test_one_event_at_a_time_is_caught() -> None:
    """The permutation check fails when simultaneous events are fed one by one."""
    cfg = RunConfig(8, 1, 2, target_latency=Latency.of(1), drafter_latency=Latency.of("1/2"))
    with _permuting(0, _OneByOne), pytest.raises(AssertionError, match="order changed"):
        for pattern in itertools.product((False, True), repeat=8):
            run_pattern("dsi", pattern, cfg)


def _scheduler(**kw: Any) -> DSIScheduler[Dist]:
    from dsi_ref.pattern import PATTERN_DRAFTER, PATTERN_TARGET, PatternChooser
    from dsi_ref.workers import workers_for

    cfg = RunConfig(4, 1, 2, **kw)
    verifier, _, _ = workers_for(PATTERN_TARGET, PATTERN_DRAFTER, cfg, PatternChooser([False] * 4))
    return DSIScheduler.from_config(cfg, verifier)


def test_one_batch_is_not_two_events() -> None:
    """The draft at 0 and the target-only task at 0 end together (T = D = 1, k = 1).

    As one batch: the draft is in hand when p_0 is, position 0 commits (a rejection in
    this pattern) and only then is new work started, so nothing is started and cancelled
    in that instant. Fed one by one, the draft first submits its block's task (scoring
    0..1, on the prefix that the rejection is about to replace) and that task is
    cancelled at once: a different, wasteful schedule.
    """
    half = (F(1, 2), F(1, 2))
    p, q = half, (F(1), F(0))
    batched, single = _scheduler(), _scheduler()
    assert batched.start() == single.start()  # draft 0 (id 0), target-only task 1 on server 0
    both = batched.on_events([TaskDone(1, [p]), DraftDone(0, 0, q)])
    one_by_one = single.on_draft_done(0, 0, q) + single.on_task_done(1, [p])
    assert batched.committed == single.committed == (1,)  # same token either way (T6)
    kinds = [type(c).__name__ for c in both]
    assert "CancelTask" not in kinds and "QueueTask" in kinds, kinds
    assert any(type(c).__name__ == "CancelTask" for c in one_by_one), one_by_one
