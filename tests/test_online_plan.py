"""gpu_runner.online_plan: DSI's policy plans with the run's own pass costs by default.

Exact checks on planted pass logs (the fit is cost_fit.fitted_latency over a window) and
on real runs of a tiny float64 pair: a run given no plan and no waits plans online and
reports the costs it planned with; a given plan or injected waits are planned with as
given; greedy tokens still equal transformers' `generate` (the plan moves passes in
time, never what they compute).
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest
from gpu_fixtures import greedy_reference, pair

from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from gpu_runner.api import RunnerConfig, run
from gpu_runner.cost_fit import fitted_latency
from gpu_runner.online_plan import OnlinePlan
from gpu_runner.passes import Waits


def test_no_plan_until_both_models_decode_passes_are_timed() -> None:
    plan = OnlinePlan(refit_every=1)
    assert plan.observe(("drafter", 0, 1, 0.004)) is None  # prefills say nothing of decode
    assert plan.observe(("target", 0, 3, 0.010)) is None
    assert plan.observe(("drafter", 1, 1, 0.002)) is None  # no target decode pass yet
    fit = plan.observe(("target", 1, 3, 0.008))
    assert fit is not None and plan.plan == fit and plan.fits == 1
    target, drafter = fit
    assert (target.ttft, target.tpot, target.per_position) == (F(1, 100), F(8, 1000), 0)
    assert (drafter.ttft, drafter.tpot) == (F(4, 1000), F(2, 1000))


def test_refits_every_n_passes_and_only_reports_a_change() -> None:
    plan = OnlinePlan(refit_every=3)
    rows = [("drafter", 1, 1, 0.002), ("target", 1, 1, 0.010)]
    for row in rows:
        plan.observe(row)
    assert plan.fits == 1
    same = ("drafter", 1, 1, 0.002)
    assert [plan.observe(same) for _ in range(3)] == [None, None, None]  # fit due, unchanged
    slower = ("drafter", 2, 1, 0.009)
    out = [plan.observe(slower) for _ in range(6)]
    assert out[:2] == [None, None] and out[2] is None  # median still 0.002 (4 of 7 rows)
    assert out[5] is not None and out[5][1].tpot == F(9, 1000)  # 7 of 10 rows: moved
    assert plan.fits == 2


def test_window_forgets_old_passes() -> None:
    plan = OnlinePlan(window=4, refit_every=1)
    plan.observe(("target", 1, 2, 0.010))
    for _ in range(4):
        plan.observe(("drafter", 1, 1, 0.050))  # a slow start
    for _ in range(4):
        plan.observe(("drafter", 1, 1, 0.001))
    assert plan.plan is not None and plan.plan[1].tpot == F(1, 1000)


def test_fit_is_cost_fits() -> None:
    log = [("target", 0, 4, 0.02), ("target", 1, 1, 0.005), ("target", 3, 4, 0.011)]
    log += [("drafter", 0, 1, 0.003), ("drafter", 1, 1, 0.001)]
    plan = OnlinePlan(refit_every=1)
    for row in log:
        plan.observe(row)
    assert plan.plan == (fitted_latency(log, "target"), fitted_latency(log, "drafter"))
    assert plan.plan[0].per_position == F(2, 1000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window must be an int >= 1, got 0"),
        ({"refit_every": True}, "refit_every must be an int >= 1, got True"),
        ({"window": 2.5}, "window must be an int >= 1, got 2.5"),
    ],
)
def test_bad_settings_are_refused_naming_them(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        OnlinePlan(**kwargs)  # type: ignore[arg-type]


def test_a_pass_of_an_unknown_model_is_refused() -> None:
    with pytest.raises(InvalidConfig, match="'target' or 'drafter', got 'oracle'"):
        OnlinePlan().observe(("oracle", 1, 1, 0.1))


def test_real_run_plans_online_by_default_and_keeps_greedy_tokens() -> None:
    target, drafter = pair()
    prompt = [1, 2, 3]
    cfg = RunnerConfig(max_new_tokens=12, k=2, servers=2)
    r = run(target, drafter, prompt, cfg)
    assert r.plan == "online" and r.planned is not None
    assert all(lat.tpot > 0 for lat in r.planned)
    assert r.planned[0].tpot != 1  # a fit, not the placeholder
    assert r.summary()["planned_ms"]["target"][1] == round(float(r.planned[0].tpot) * 1000, 3)
    assert r.tokens == greedy_reference(target, prompt, 12)


def test_given_plan_and_waits_are_planned_with_as_given() -> None:
    target, drafter = pair()
    plan = (Latency.of("0.02", "0.01", "target"), Latency.of("0.002", "0.001", "drafter"))
    r = run(target, drafter, [1, 2], RunnerConfig(max_new_tokens=6, k=2, servers=1, plan=plan))
    assert (r.plan, r.planned) == ("given", plan)
    waits = Waits(Latency.of("0.003"), Latency.of("0.001"))
    cfg = RunnerConfig(max_new_tokens=6, k=2, servers=1, acceptance=0.8, waits=waits)
    w = run(target, drafter, [1, 2], cfg)
    assert (w.plan, w.planned) == ("given", (waits.target, waits.drafter))
    si = run(target, drafter, [1, 2], RunnerConfig(algorithm="si", max_new_tokens=6, k=2))
    assert (si.plan, si.planned, si.summary()["planned_ms"]) == (None, None, None)


def test_a_move_within_five_percent_keeps_the_plan() -> None:
    plan = OnlinePlan(refit_every=1)
    plan.observe(("target", 1, 1, 0.0100))
    first = plan.observe(("drafter", 1, 1, 0.0020))
    assert first is not None
    assert plan.observe(("target", 1, 1, 0.0104)) is None  # median 10.2 ms: 2% off
    assert plan.plan == first
    moved = plan.observe(("target", 1, 1, 0.0120))  # median 10.4 ms: still within 5%
    assert moved is None
    assert plan.observe(("target", 1, 1, 0.0130)) is not None  # median 11.2 ms: 11% off


def test_the_driver_handling_time_is_added_to_every_pass() -> None:
    plan = OnlinePlan(refit_every=1)
    plan.handled(0.0005)
    plan.handled(0.0003)
    plan.handled(0.0004)  # median 0.4 ms
    plan.observe(("target", 0, 2, 0.006))
    plan.observe(("target", 1, 1, 0.004))
    fit = plan.observe(("drafter", 1, 1, 0.001))
    assert fit is not None
    assert (fit[0].ttft, fit[0].tpot) == (F(64, 10_000), F(44, 10_000))
    assert (fit[1].ttft, fit[1].tpot) == (F(14, 10_000), F(14, 10_000))


def test_a_run_too_short_to_fit_says_it_planned_with_the_placeholder() -> None:
    """One token: the drafter's and the target's only passes are prefills, so no fit."""
    target, drafter = pair()
    r = run(target, drafter, [1, 2], RunnerConfig(max_new_tokens=1, k=2, servers=1))
    assert r.plan == "placeholder"
    assert r.planned is not None and r.planned[0].tpot == 1
