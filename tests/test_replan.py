"""DSIScheduler.replan: a real driver's measured costs handed to the policy mid-run.

Pathwise claims, checked on seeded random instances (one counterexample refutes them, so
there is no false-alarm level):
- replanning before the first event to the run's own costs, or to every cost times one
  factor (the policy compares costs, so a common unit changes nothing), gives exactly
  the run planned with those costs: same latency, counters and trace;
- replanning at random events to random costs keeps the tokens the sequential
  reference's (T6: costs change when passes start, never what they compute) and the
  trace valid, and keeps the predicted clock's meaning: `now` unchanged in seconds, a
  running pass's predicted end = its start + its cost under the new plan.
Negative control: a replan that forgets to rescale the predicted clock is caught by the
invariant check.
"""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction as F
from typing import Any

import pytest

from dsi_ref.checker import check_trace
from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MixtureDrafter, random_dist, random_markov
from dsi_ref.policies import POLICIES
from dsi_ref.scheduler import Command, DSIScheduler
from dsi_ref.sequential import reference_tokens
from dsi_ref.verify import VerifyRule
from dsi_ref.virtual import run_dsi
from dsi_ref.workers import Dist, RunParts


def _lat(rng: random.Random, most: int) -> Latency:
    """Costs in eighths, thirds, fifths or sevenths: a replan can change the tick unit."""
    unit = rng.choice([8, 3, 5, 7])
    per = F(rng.randint(0, 2), unit)
    return Latency.of(
        F(rng.randint(1, most), unit), F(rng.randint(1, most), unit), per_position=per
    )


def _case(rng: random.Random) -> tuple[LanguageModel, LanguageModel, RunConfig]:
    v = rng.choice([2, 4])
    target = random_markov(v, 1, rng.randrange(100))
    drafter = MixtureDrafter(target, rng.random(), random_dist(rng, v, exact=False))
    cfg = RunConfig(
        max_tokens=rng.randint(1, 20),
        k=rng.randint(1, 5),
        servers=rng.randint(1, 4),
        seed=rng.randrange(10**6),
        target_latency=_lat(rng, 16),
        drafter_latency=_lat(rng, 8),
        preemptive=False,
        policy=rng.choice(sorted(POLICIES)),
        cancel_layers=rng.choice([None, None, 2, 3]),
    )
    return target, drafter, cfg


def _scaled(lat: Latency, c: F) -> Latency:
    return Latency(lat.ttft * c, lat.tpot * c, lat.per_position * c)


class _Planned(RunParts):
    """Builds the scheduler with `first` costs and replans it to the run's at once."""

    def __init__(self, first: tuple[Latency, Latency], to: tuple[Latency, Latency]) -> None:
        self.first, self.to = first, to

    def scheduler(self, cfg: RunConfig, rule: VerifyRule[Dist]) -> DSIScheduler[Dist]:
        wrong = dataclasses.replace(
            cfg, target_latency=self.first[0], drafter_latency=self.first[1]
        )
        s = DSIScheduler.from_config(wrong, rule)
        s.replan(*self.to)
        return s


def _same(a: Any, b: Any) -> bool:
    return (a.latency, a.counters, a.tokens) == (b.latency, b.counters, b.tokens)


def test_replan_at_start_equals_planning_with_those_costs() -> None:
    rng = random.Random(7101)
    for _ in range(150):
        target, drafter, cfg = _case(rng)
        want = run_dsi(target, drafter, cfg, record=True)
        own = (cfg.target_latency, cfg.drafter_latency)
        guess = (Latency.of(1, 1), Latency.of(F(1, 10), F(1, 10)))
        got = run_dsi(target, drafter, cfg, record=True, parts=_Planned(guess, own))
        assert _same(got, want) and got.trace == want.trace, cfg
        # every cost times 7/3: a new unit (new tick denominator), the same decisions
        unit = tuple(_scaled(x, F(7, 3)) for x in own)
        other = run_dsi(target, drafter, cfg, parts=_Planned(guess, (unit[0], unit[1])))
        assert (other.counters, other.tokens) == (want.counters, want.tokens), cfg


class _Replanning(DSIScheduler[Dist]):
    """Replans to random costs before some events and checks the clock's invariants."""

    rng: random.Random
    forget_now = False  # the planted bug: the predicted clock is not rescaled

    def _seconds(self, ticks: int) -> F:
        return F(ticks, self._denom)

    def _maybe_replan(self) -> None:
        if self.rng.random() < 0.3:
            return
        now = self._seconds(self._now)
        running = {
            t.task_id: (self._seconds(t.end - t.cost), t.first, t.last)
            for t in self.s.tasks.values()
            if t.server is not None
        }
        tl, dl = _lat(self.rng, 16), _lat(self.rng, 8)
        before = self._now
        self.replan(tl, dl)
        if self.forget_now:
            self._now = before
        assert self._seconds(self._now) == now, "the predicted clock moved"
        for tid, (start, first, last) in running.items():
            end = self._seconds(self.s.tasks[tid].end)
            assert end == start + tl.forward(first, last - first + 1), tid

    def on_events(self, events: Any) -> list[Command]:
        self._maybe_replan()
        return super().on_events(events)


class _RandomReplans(RunParts):
    def __init__(self, seed: int, forget_now: bool = False) -> None:
        self.seed, self.forget_now = seed, forget_now

    def scheduler(self, cfg: RunConfig, rule: VerifyRule[Dist]) -> DSIScheduler[Dist]:
        s = _Replanning.from_config(cfg, rule)  # a classmethod: builds the subclass
        assert isinstance(s, _Replanning)
        s.rng = random.Random(self.seed)
        s.forget_now = self.forget_now
        return s


def test_random_replans_keep_tokens_trace_and_clock() -> None:
    rng = random.Random(7102)
    for i in range(150):
        target, drafter, cfg = _case(rng)
        run = run_dsi(target, drafter, cfg, record=True, parts=_RandomReplans(i))
        assert run.tokens == reference_tokens(target, drafter, cfg), cfg
        assert run.trace is not None
        report = check_trace(run.trace, target=target, drafter=drafter)
        assert report.ok, (cfg, report.violations[:3])


def test_planted_unscaled_clock_is_caught() -> None:
    rng = random.Random(7102)
    caught = 0
    for i in range(60):
        target, drafter, cfg = _case(rng)
        try:
            run_dsi(target, drafter, cfg, parts=_RandomReplans(i, forget_now=True))
        except AssertionError:
            caught += 1
    assert caught >= 20, caught  # of 60 runs; the rest never replan to a new tick unit


def test_replan_refuses_what_is_not_a_latency() -> None:
    *_, cfg = _case(random.Random(1))
    s = DSIScheduler.from_config(cfg, RunParts().rule(cfg, None))
    with pytest.raises(InvalidConfig, match="target plan must be a dsi_ref Latency, got 1"):
        s.replan(1, cfg.drafter_latency)  # type: ignore[arg-type]
