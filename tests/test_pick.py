"""`dsi_ref pick`: each policy's best k and expected latency beside SI's and non-SI's."""

from __future__ import annotations

import argparse
import itertools
from fractions import Fraction

import pytest

from dsi_ref.pattern import run_pattern
from dsi_ref.theory.clocked import Clock, Estimate, control_variate, patterns, run_config
from dsi_ref.theory.commands import register
from dsi_ref.theory.offline import si_exact
from dsi_ref.theory.pick import SEED, Choice, Pick, format_pick, pick

F = Fraction
NP = Clock("non-preemptive")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    ns = parser.parse_args(argv)
    return int(ns.func(ns))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_si_on_the_virtual_clock_is_the_exact_dp(k: int) -> None:
    """The pick quotes SI's expected latency from si_exact: it is SI's virtual-clock latency
    averaged over every acceptance pattern (n = 6, exhaustive, exact Fractions)."""
    n, a, c = 6, F(7, 10), F(3, 10)
    cfg = run_config(n, k, 1, c, "safe", NP)
    e = F(0)
    for pat in itertools.product((False, True), repeat=n):
        w = F(1)
        for b in pat:
            w *= a if b else 1 - a
        e += w * run_pattern("si", pat, cfg).latency
    assert e == si_exact(a, c, k, n)


def test_pick_rows_are_each_algorithms_best_k() -> None:
    p = pick("0.2", "0.8", 2, NP, n=12, reps=3, kmax=3, policies=("safe", "paper"))
    si = [si_exact(F(4, 5), F(1, 5), k, 12) for k in (1, 2, 3)]
    assert p.si.k == 1 + si.index(min(si)) and p.si.latency == float(min(si))
    assert p.nonsi == Choice("non-SI", 0, 12.0, None)
    pats = patterns(F(4, 5), 12, 3, SEED)
    for ch in p.dsi:
        # SI at the same k as the control variate, E[SI(k)] exact
        means = [
            control_variate(
                [
                    run_pattern("dsi", x, run_config(12, k, 2, F(1, 5), ch.name, NP)).latency
                    for x in pats
                ],
                [
                    run_pattern("si", x, run_config(12, k, 1, F(1, 5), ch.name, NP)).latency
                    for x in pats
                ],
                si[k - 1],
            ).mean
            for k in (1, 2, 3)
        ]
        assert ch.latency == pytest.approx(min(means), rel=1e-12)
        assert ch.k == 1 + means.index(min(means)) and ch.estimate is not None
        assert ch.estimate.reps == 3 and ch.estimate.lo <= ch.latency <= ch.estimate.hi
    assert p.best.latency == min(ch.latency for ch in (p.nonsi, p.si, *p.dsi))


def test_the_paper_policy_loses_to_si_on_one_server_and_is_not_picked() -> None:
    """docs/figure2.md: c = 0.01, a = 0.99, P = 1: paper 0.84x SI, safe 2.5x."""
    p = pick("0.01", "0.99", 1, NP, n=32, reps=2, kmax=6, policies=("safe", "paper"))
    safe, paper = p.dsi
    assert paper.latency > p.si.latency > safe.latency
    assert p.best is safe
    text = format_pick(p)
    assert "recommendation: DSI with policy safe at k = " in text
    # on the preemptive clock the knobs do nothing: paper and safe are one scheduler
    pre = pick(
        "0.01", "0.99", 1, Clock("preemptive"), n=32, reps=2, kmax=6, policies=("safe", "paper")
    )
    assert pre.dsi[0].latency == pre.dsi[1].latency


def test_within_noise_compares_the_difference_to_its_standard_error() -> None:
    def est(mean: float, se: float) -> Estimate:
        return Estimate(mean, se, mean - 1, mean + 1, 4)

    def mk(*dsi: Choice) -> Pick:
        return Pick(
            F(1, 2),
            F(1, 2),
            1,
            10,
            NP,
            4,
            3,
            Choice("non-SI", 0, 10.0, None),
            Choice("SI", 1, 9.0, None),
            dsi,
        )

    p = mk(Choice("safe", 2, 8.0, est(8.0, 0.3)), Choice("eager", 2, 8.9, est(8.9, 0.3)))
    assert p.best.name == "safe"
    # 8.9 - 8 = 0.9 > 2 * hypot(0.3, 0.3) = 0.85; SI (exact) at 1.0 > 2 * 0.3
    assert p.within_noise() == []
    p = mk(Choice("safe", 2, 8.0, est(8.0, 0.6)), Choice("eager", 2, 8.9, est(8.9, 0.3)))
    assert [ch.name for ch in p.within_noise()] == ["SI", "eager"]  # 1.0 <= 1.2, 0.9 <= 1.34
    assert "within two standard errors of it" in format_pick(p)


def test_cli_prints_every_policy_and_the_recommendation(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["pick", "--c", "0.1", "--a", "0.8", "--P", "2", "--n", "16", "--reps", "2"]
    assert _cli([*argv, "--kmax", "3"]) == 0
    out = capsys.readouterr().out
    for name in (
        "non-SI",
        "SI",
        "DSI safe",
        "DSI eager",
        "DSI paper",
        "DSI adaptive",
        "DSI measured",
        "DSI paper-adaptive",
    ):
        assert f"\n{name} " in out
    assert "estimated over 2 seeded acceptance patterns" in out and "recommendation: " in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--c", "0", "--a", "0.5"], "drafter latency c must lie in (0, 1], got '0'"),
        (["--c", "1.5", "--a", "0.5"], "got '1.5'"),
        (["--c", "fast", "--a", "0.5"], "drafter latency c must be a number, got 'fast'"),
        (["--c", "0.1", "--a", "-0.1"], "acceptance rate a must lie in [0, 1], got '-0.1'"),
        (["--c", "0.1", "--a", "nan"], "acceptance rate a must be a number, got 'nan'"),
        (["--c", "0.1234567", "--a", "0.5"], "multiple of 1e-6, got '0.1234567'"),
        (["--c", "0.1", "--a", "0.5", "--n", "10000", "--reps", "10000"], "exceeds"),
        (["--c", "0.1", "--a", "0.5", "--layers", "8"], "--layers 8 needs --clock layer-pre"),
        (["--c", "0.1", "--a", "0.5", "--clock", "layer-preemptive"], "needs --layers N"),
    ],
)
def test_cli_bad_values_are_named(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["pick", "--P", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_cli_bad_flags_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _cli(["pick", "--c", "0.1", "--a", "0.5", "--P", "0"])
    assert info.value.code == 2 and "must be an int in [1, 1024], got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli(["pick", "--c", "0.1", "--a", "0.5", "--P", "1", "--clock", "offline"])
    assert "invalid choice: 'offline'" in capsys.readouterr().err


def test_control_variate() -> None:
    """b = 1 where DSI = SI + a constant (the estimate is then exact: E[SI] + the constant),
    b = 0 where DSI does not vary (the plain mean), b clipped to [0, 1]."""
    x = [F(10), F(14), F(12)]  # SI's latencies on three patterns; mean 12, E[SI] = 11
    e = control_variate([v - 3 for v in x], x, F(11))
    assert e.mean == pytest.approx(8.0) and e.stderr == 0 and e.reps == 3
    assert control_variate([F(7)] * 3, x, F(11)).mean == pytest.approx(7.0)
    # y = 2 x: cov / var = 2, clipped to 1: 24 - (12 - 11) = 23
    assert control_variate([2 * v for v in x], x, F(11)).mean == pytest.approx(23.0)
    assert control_variate([F(5), F(6)], [F(3), F(3)], F(1)).mean == 5.5  # var(x) = 0: b = 0
