"""The layer-preemptive virtual clock (RunConfig.cancel_layers): a cancelled pass stops at
its next layer boundary. One layer is the non-preemptive clock, layers as fine as the
clock's tick the preemptive one, both exactly, on every acceptance pattern of small runs."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.policies import POLICIES
from dsi_ref.scheduler import layer_stop

F = Fraction


def _cfg(n: int, k: int, p: int, c: F, policy: str, pre: bool, layers: int | None) -> RunConfig:
    return RunConfig(
        n,
        k,
        p,
        target_latency=Latency.of(1, 1),
        drafter_latency=Latency.of(c, c),
        preemptive=pre,
        policy=policy,
        cancel_layers=layers,
    )


def _differ(a: RunConfig, b: RunConfig, n: int) -> int:
    """Patterns on which the two clocks commit at different times (the tests' power)."""
    return sum(
        run_pattern("dsi", pat, a).commit_times != run_pattern("dsi", pat, b).commit_times
        for pat in itertools.product((False, True), repeat=n)
    )


def _same(a: RunConfig, b: RunConfig, n: int) -> None:
    for pat in itertools.product((False, True), repeat=n):
        ra, rb = run_pattern("dsi", pat, a), run_pattern("dsi", pat, b)
        assert (ra.tokens, ra.commit_times, ra.counters) == (
            rb.tokens,
            rb.commit_times,
            rb.counters,
        ), pat


@pytest.mark.parametrize("c", [F(1, 4), F(3, 4), F(2, 5)])
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_one_layer_is_the_non_preemptive_clock(c: F, policy: str) -> None:
    n = 5
    power = 0
    for k, p in itertools.product((1, 2, 3), (1, 2, 3)):
        _same(_cfg(n, k, p, c, policy, False, None), _cfg(n, k, p, c, policy, False, 1), n)
        power += _differ(_cfg(n, k, p, c, policy, False, 1), _cfg(n, k, p, c, policy, False, 4), n)
    # power: finer layers change some of these runs, so held passes are exercised (not
    # for safe, adaptive and measured: on these runs layers change no commit time)
    assert power > 0 or not POLICIES[policy].chain


@pytest.mark.parametrize("c", [F(1, 4), F(3, 4), F(2, 5)])
@pytest.mark.parametrize("policy", ["paper", "paper-adaptive"])
def test_layers_of_one_tick_are_the_preemptive_clock(c: F, policy: str) -> None:
    """With layers of 1/(num(c) den(c)) every event time is a layer boundary of every pass
    (each starts and is cancelled on the tick 1/den(c)), so a cancelled pass stops at once.
    The paper's policies have no knob that acts only without preemption, so the runs are
    the preemptive ones exactly (the other policies change their moves, by design)."""
    n, fine = 5, c.numerator * c.denominator
    power = 0
    for k, p in itertools.product((1, 2, 3), (1, 2, 3)):
        _same(_cfg(n, k, p, c, policy, True, None), _cfg(n, k, p, c, policy, False, fine), n)
        power += _differ(
            _cfg(n, k, p, c, policy, True, None), _cfg(n, k, p, c, policy, False, 1), n
        )
    assert power > 0  # held to the end (one layer), some of the same runs differ


def test_t2s_counterexample_is_repaired_by_two_layers() -> None:
    """proofs/t2: T = 1, D = 3/4, n = 2, k = 2, pattern (reject, accept). Without preemption
    the draft at 1, started at 3/4, holds the drafter to 3/2 and position 1 commits at 9/4.
    In two layers (of 3/8) it stops at 9/8, the new draft is ready at 15/8, and position 1
    commits at 2 = N_1, as with preemption."""
    times = {
        layers: run_pattern(
            "dsi", (False, True), _cfg(2, 2, 2, F(3, 4), "paper", False, layers)
        ).commit_times
        for layers in (1, 2)
    }
    assert times == {1: (F(1), F(9, 4)), 2: (F(1), F(2))}


def test_layer_stop() -> None:
    # pass 10..22 in 4 layers of 3: boundaries 13, 16, 19, 22
    assert [layer_stop(10, 22, t, 4) for t in (10, 11, 13, 14, 19, 21)] == [13, 13, 13, 16, 19, 22]
    assert layer_stop(10, 22, 11, 1) == 22 and layer_stop(5, 5, 5, 3) == 5


def test_bad_cancel_layers_are_named() -> None:
    with pytest.raises(InvalidConfig, match="cancel_layers must be an int >= 1, got 0"):
        _cfg(4, 2, 1, F(1, 4), "safe", False, 0)
    with pytest.raises(InvalidConfig, match="cancel_layers=4 needs preemptive=False"):
        _cfg(4, 2, 1, F(1, 4), "safe", True, 4)
    with pytest.raises(InvalidConfig, match="got True"):
        _cfg(4, 2, 1, F(1, 4), "safe", False, True)  # type: ignore[arg-type]
