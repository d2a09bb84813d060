"""Negative controls: every planted bug of tests/faulty.py fails both lossless tests.

Each fault is a faulty implementation of one part of a run (`faulty.planted(fault)`:
a Verifier subclass, a drafter, a scorer wrapper or a DSIScheduler subclass), given
to the unmodified algorithms; nothing in dsi_ref knows about faults.

Exact: on V=2, order-1 mixture pair, T1, n=3, k=2, P=2, fast latencies, the enumerated
output law with the fault switched on differs from the target law for every algorithm
the fault applies to (the four verifier/worker faults: SI and DSI; BONUS_OFF_BY_ONE: SI's
bonus token and DSI's last scored position; UNVERIFIED_PREFIX and COMMIT_CANCELLED:
DSI's scheduler). SI has no scheduler, so with those two faults its law is unchanged,
which is checked too (the fault is wired where it claims to be).

Statistical: `chi_square_lossless` (the very function of test_statistical_lossless, so
the same alpha = 1e-6 and the same designed N = 76,123) on the T1/2-topk4 setting
rejects each fault, on SI for the verifier faults and on DSI for the scheduler-side ones
(BONUS_OFF_BY_ONE at the position after a DSI block, UNVERIFIED_PREFIX, COMMIT_CANCELLED); the exact
part covers the other algorithm. Beyond `rejects`, the Pearson p-value on the possible
outcomes alone must be below alpha, so the chi-square itself (not only the rule for
target-impossible outcomes, which top-k makes available) catches each fault.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from functools import partial

import pytest
from faulty import SCHEDULER_FAULTS, Fault, planted
from lossless_cases import (
    STAT_ALPHA,
    Instance,
    chi_square_lossless,
    exact_output_law,
    exact_target_law,
    stat_settings,
)

from dsi_ref.result import RunResult
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi

ExactLaw = dict[tuple[int, ...], Fraction]


def _exact_laws(alg: str, fault: Fault) -> tuple[ExactLaw, ExactLaw]:
    inst = Instance(alg, "mix-o1", 2, "T1", 3, 2, 2, "fast")
    target, drafter = inst.models()
    cfg = inst.config()
    got = exact_output_law(alg, target, drafter, cfg, planted(fault))
    return got, exact_target_law(target, cfg)


EXACT_CASES = [
    (alg, f) for f in Fault for alg in ("si", "dsi") if alg == "dsi" or f not in SCHEDULER_FAULTS
]


@pytest.mark.parametrize(
    ("alg", "fault"), [pytest.param(a, f, id=f"{a}-{f.value}") for a, f in EXACT_CASES]
)
def test_exact_test_detects_fault(alg: str, fault: Fault) -> None:
    got, want = _exact_laws(alg, fault)
    assert got != want


@pytest.mark.parametrize("fault", [Fault.UNVERIFIED_PREFIX, Fault.COMMIT_CANCELLED])
def test_scheduler_faults_do_not_touch_si(fault: Fault) -> None:
    got, want = _exact_laws("si", fault)
    assert got == want


@pytest.mark.parametrize("fault", list(Fault), ids=lambda f: f.value)
def test_no_fault_touches_nonsi(fault: Fault) -> None:
    # non-SI draws only target-only tokens from one-position passes: no part a fault
    # replaces changes them, so its law stays the target's (each fault sits where it claims).
    got, want = _exact_laws("nonsi", fault)
    assert got == want


def test_every_fault_has_a_control() -> None:
    assert {f for _, f in EXACT_CASES} == set(Fault)
    assert {f for f, _ in STAT_CASES} == set(Fault)


STAT_CASES: list[tuple[Fault, str]] = [
    (Fault.ALWAYS_ACCEPT, "si"),
    (Fault.RESIDUAL_FROM_P, "si"),
    (Fault.Q_WRONG_TEMPERATURE, "si"),
    (Fault.BONUS_OFF_BY_ONE, "dsi"),
    (Fault.UNVERIFIED_PREFIX, "dsi"),
    (Fault.COMMIT_CANCELLED, "dsi"),
]
RUNNERS: dict[str, Callable[..., RunResult]] = {"si": run_si, "dsi": run_dsi}


@pytest.mark.parametrize(
    ("fault", "alg"), [pytest.param(f, a, id=f"{a}-{f.value}") for f, a in STAT_CASES]
)
def test_statistical_test_rejects_fault(fault: Fault, alg: str) -> None:
    s = stat_settings()["T1/2-topk4"]
    run = partial(RUNNERS[alg], parts=planted(fault))
    res = chi_square_lossless(run, s.target, s.drafter, s.cfg)
    assert res.rejects, res
    assert res.p_value < STAT_ALPHA, res
