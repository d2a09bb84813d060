"""What a real run's prediction starts from (gpu_runner.predict): isolated pass costs with
the per-position cost and the driver's per-pass overhead, the layer granularity of the
clock, and the costs DSI's policy plans with (RunnerConfig.plan)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction as F
from typing import Any

import pytest
from gpu_fixtures import llama, pair

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.result import Counters
from gpu_runner import predict as pr
from gpu_runner.api import RunnerConfig, run
from gpu_runner.passes import Waits
from gpu_runner.result import Costs, RealRun

Log = list[tuple[str, int, int, float]]


def _real(alg: str, log: Log, wall: float, layer_cancel: str = "off") -> RealRun:
    costs = Costs(layer_cancel=layer_cancel)  # cut_layers None: as a run that cut nothing
    return RealRun(alg, (0,) * 4, wall, (0.0,) * 4, (True,) * 4, Counters(), costs, None, log)


def test_driver_overhead_is_the_time_outside_passes_per_pass() -> None:
    log: Log = [("drafter", 1, 1, 0.002)] * 3 + [("target", 1, 4, 0.02)]
    assert pr.driver_overhead(_real("si", log, 0.026 + 0.004)) == pytest.approx(0.001)
    assert pr.driver_overhead(_real("si", log, 0.01)) == 0.0  # never negative
    assert pr.driver_overhead(_real("si", [], 1.0)) == 0.0


SI_LOG: Log = [("drafter", 0, 1, 0.004), ("target", 0, 4, 0.05)] + [
    ("drafter", 1, 1, 0.002),
    ("target", 4, 4, 0.02),
] * 5
NONSI_LOG: Log = [("target", 0, 1, 0.05)] + [("target", 1, 1, 0.011)] * 7


def test_isolated_costs_fit_width_and_overhead(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SI run gives the k + 1-position pass, a non-SI run the one-position pass: the
    difference over k is the per-position cost; the SI run's time outside passes, per
    pass, is added to every pass (the hop is part of a pass as the scheduler sees it)."""
    asked: list[RunnerConfig] = []
    inside = sum(s for *_, s in SI_LOG)

    def fake_run(target: Any, drafter: Any, prompt: Any, cfg: RunnerConfig, **kw: Any) -> RealRun:
        asked.append(cfg)
        if cfg.algorithm == "si":
            return _real("si", SI_LOG, inside + 0.001 * len(SI_LOG))
        return _real("nonsi", NONSI_LOG, 1.0)

    monkeypatch.setattr(pr, "run", fake_run)
    cfg = RunnerConfig(algorithm="dsi", max_new_tokens=64, k=3, servers=2, acceptance=0.8)
    tl, dl = pr.isolated_costs(None, None, [1], cfg)
    assert [(c.algorithm, c.servers, c.max_new_tokens) for c in asked] == [
        ("si", 1, 64),
        ("nonsi", 1, 16),
    ]
    o = F(1, 1000)
    assert (tl.ttft, tl.tpot, tl.per_position) == (F(50, 1000) + o, F(11, 1000) + o, F(3, 1000))
    assert (dl.ttft, dl.tpot, dl.per_position) == (F(4, 1000) + o, F(2, 1000) + o, 0)
    asked.clear()
    bare = pr.isolated_costs(None, None, [1], cfg, overhead=False)
    assert bare == (
        dataclasses.replace(tl, ttft=tl.ttft - o, tpot=tl.tpot - o),
        dataclasses.replace(dl, ttft=dl.ttft - o, tpot=dl.tpot - o),
    )


def test_cancel_granularity_is_the_targets_layer_count() -> None:
    """A run that cuts passes between layers records the target's layer count (the
    drafter's is ignored: the clock has one count); one that does not records None."""
    target, drafter = llama(0, 16, layers=3), llama(1, 8, layers=1)
    for on, want in ((True, 3), (False, None)):
        cfg = RunnerConfig(max_new_tokens=4, k=2, servers=1, acceptance=0.8, layer_cancel=on)
        r = run(target, drafter, [1, 2], cfg)
        assert r.costs.cut_layers == want and pr.cancel_granularity(r) == want
    assert pr.cancel_granularity(_real("dsi", [], 1.0, "on")) is None  # no count recorded
    padded = RunnerConfig(
        max_new_tokens=4,
        k=2,
        servers=1,
        waits=Waits(Latency.of(0, "0.001"), Latency.of(0, "0.001")),
    )
    assert run(target, drafter, [1, 2], padded).costs.cut_layers is None  # waits are not cut


def test_predict_with_layers_is_the_layer_preemptive_clock() -> None:
    """Planted: a prediction that ignored cancel_layers would equal the held clock on a
    pattern where the two differ (found by enumeration), and fail the first assert."""
    t, d = Latency.of("0.03", "0.02"), Latency.of("0.004", "0.003")
    accepted = (False, False, False, False, True, False)
    real = RealRun("dsi", (0,) * 6, 0.1, (0.0,) * 6, accepted, Counters(), Costs())

    def clock(layers: int | None) -> F:
        cfg = RunConfig(max_tokens=6, k=2, servers=2, target_latency=t, drafter_latency=d,
                        preemptive=False, policy="paper", cancel_layers=layers)  # fmt: skip
        return run_pattern("dsi", accepted, cfg).latency

    assert clock(4) != clock(None)
    assert pr.predict(real, 2, 2, t, d, "paper", cancel_layers=4) == clock(4)
    assert pr.predict(real, 2, 2, t, d, "paper") == clock(None)
    si = dataclasses.replace(real, algorithm="si")  # SI cancels nothing: layers ignored
    assert pr.predict(si, 2, 2, t, d, cancel_layers=4) == pr.predict(si, 2, 2, t, d)


def test_plan_is_what_the_scheduler_plans_with() -> None:
    plan = (Latency.of("0.02", "0.01", "target"), Latency.of("0.002", "0.001", "drafter"))
    rc = RunnerConfig(plan=plan).run_config([1])
    assert (rc.target_latency, rc.drafter_latency) == plan
    default = RunnerConfig().run_config([1])
    assert (default.target_latency.tpot, default.drafter_latency.tpot) == (1, F(1, 10))
    target, drafter = pair()
    cfg = RunnerConfig(max_new_tokens=6, k=2, servers=1, acceptance=0.8, plan=plan)
    trace = run(target, drafter, [1, 2], cfg, record=True).trace
    assert trace is not None
    assert (F(trace["target_latency"]["tpot"]), F(trace["drafter_latency"]["tpot"])) == (
        F(1, 100),
        F(1, 1000),
    )


@pytest.mark.parametrize("bad", [(1, 1), (Latency.of(1, 1),), "fast", (Latency.of(1, 1), 3)])
def test_bad_plan_is_refused_naming_it(bad: object) -> None:
    from dsi_ref.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match="plan must be"):
        RunnerConfig(plan=bad)  # type: ignore[arg-type]
