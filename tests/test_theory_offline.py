"""The authors' offline cost model: exact DP vs enumeration, float DP vs exact, Monte Carlo."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from dsi_ref.errors import InvalidConfig
from dsi_ref.theory.offline import (
    dsi_exact,
    dsi_grid,
    dsi_sample,
    monte_carlo,
    nonsi_grid,
    nonsi_latency,
    pattern_stream,
    required_servers,
    si_exact,
    si_grid,
    si_sample,
)

F = Fraction

# (a, c, k, S): k < S, k > S, c = 1 (drafter as slow as the target), a at both ends.
CASES = [
    (F(1, 3), F(1, 4), 2, 6),
    (F(9, 10), F(1, 10), 3, 7),
    (F(1, 2), F(3, 4), 1, 5),
    (F(2, 3), F(1, 5), 5, 4),
    (F(1, 4), F(1), 2, 6),
    (F(0), F(1, 2), 2, 5),
    (F(1), F(1, 3), 2, 5),
    (F(3, 5), F(1, 7), 4, 1),
]


def enumerate_patterns(sample: object, a: F, c: F, k: int, S: int) -> F:
    """E[T] by definition: every acceptance pattern of S draft verdicts, weighted.

    A run never reads more than S verdicts (each verdict read is a token gained or the
    rejection that gains the corrected token), so the unread tail of a pattern marginalises
    out; pattern_stream raises IndexError if a run asks for more, which fails the test.
    """
    total = F(0)
    for bits in itertools.product((True, False), repeat=S):
        ones = sum(bits)
        weight = a**ones * (1 - a) ** (S - ones)
        if weight:
            total += weight * F(sample(c, k, S, pattern_stream(bits)))  # type: ignore[operator]
    return total


@pytest.mark.parametrize(("a", "c", "k", "S"), CASES)
def test_exact_dp_equals_enumeration(a: F, c: F, k: int, S: int) -> None:
    assert si_exact(a, c, k, S) == enumerate_patterns(si_sample, a, c, k, S)
    assert dsi_exact(a, c, k, S) == enumerate_patterns(dsi_sample, a, c, k, S)


def test_closed_forms_at_the_ends() -> None:
    c, k, S = F(1, 4), 3, 9
    # a = 0: SI gains one token per iteration, paying its drafts; DSI is non-SI.
    assert si_exact(0, c, k, S) == sum(min(k, n - 1) * c + 1 for n in range(1, S + 1))
    assert dsi_exact(0, c, k, S) == S
    # a = 1: DSI drafts S - 1 tokens in one segment and pays one target pass.
    assert dsi_exact(1, c, k, S) == min((S - 1) * c + 1, S)
    # a = 1: SI iterations gain k + 1 tokens; the last one drafts what is left but one.
    left, cost = S, F(0)
    while left > 0:
        m = min(k, left - 1)
        cost, left = cost + m * c + 1, left - m - 1
    assert si_exact(1, c, k, S) == cost
    assert nonsi_latency(S) == S


POINTS = [(0.01, 0.01), (0.37, 0.23), (0.9, 0.05), (0.99, 0.99), (0.5, 1.0), (0.0, 0.3)]


@pytest.mark.parametrize("S", [1, 2, 3, 11, 40])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_float_dp_equals_exact(S: int, k: int) -> None:
    a = np.array([p[0] for p in POINTS])
    c = np.array([p[1] for p in POINTS])
    si_f, dsi_f = si_grid(a, c, k, S), dsi_grid(a, c, k, S)
    for i, (ai, ci) in enumerate(POINTS):
        assert si_f[i] == pytest.approx(float(si_exact(ai, ci, k, S)), rel=1e-9, abs=0)
        assert dsi_f[i] == pytest.approx(float(dsi_exact(ai, ci, k, S)), rel=1e-9, abs=0)
        # a scalar call agrees with the vectorised one
        assert float(dsi_grid(ai, ci, k, S)) == pytest.approx(dsi_f[i], rel=1e-12)
    assert np.all(nonsi_grid(a, c, S) == S)


def test_float_dp_equals_exact_on_long_runs() -> None:
    """The heatmap's S = 1000 (SI) and a long DSI run: recurrences do not drift."""
    for a, c, k in ((F(1, 2), F(1, 4), 5), (F(7, 8), F(1, 16), 20), (F(1, 8), F(3, 4), 2)):
        exact = float(si_exact(a, c, k, 1000))
        assert float(si_grid(float(a), float(c), k, 1000)) == pytest.approx(exact, rel=1e-9)
    exact = float(dsi_exact(F(1, 2), F(1, 4), 5, 200))
    assert float(dsi_grid(0.5, 0.25, 5, 200)) == pytest.approx(exact, rel=1e-9)


def test_float_dp_broadcasts_over_a_grid() -> None:
    a = np.linspace(0.01, 0.99, 5)[None, :]
    c = np.linspace(0.01, 0.99, 4)[:, None]
    grid = dsi_grid(a, c, 4, 30)
    assert grid.shape == (4, 5)
    assert grid[2, 3] == pytest.approx(float(dsi_exact(float(a[0, 3]), float(c[2, 0]), 4, 30)))


# Monte Carlo: two-sided 99.9% normal interval for the mean of RUNS i.i.d. latencies, so a
# false alarm has probability 0.001 per check (CLT; RUNS = 4000 runs of >= 30 tokens). The seed
# is fixed, so the outcome is reproducible. Power: each negative control below shifts the
# expectation by more than (Z + 3.09) standard errors, i.e. it is caught with probability
# >= 0.999; the test asserts that margin before asserting the rejection.
Z = 3.2905
RUNS = 4000
MC_POINTS = [(0.7, 0.2, 3, 30), (0.3, 0.6, 2, 30), (0.9, 0.05, 6, 40)]


@pytest.mark.parametrize(("a", "c", "k", "S"), MC_POINTS)
@pytest.mark.parametrize("algorithm", ["si", "dsi"])
def test_monte_carlo_within_interval(algorithm: str, a: float, c: float, k: int, S: int) -> None:
    exact = si_exact if algorithm == "si" else dsi_exact
    mean, sd = monte_carlo(algorithm, a, c, k, S, RUNS, seed=20240521)
    se = sd / math.sqrt(RUNS)
    assert abs(mean - float(exact(a, c, k, S))) <= Z * se
    # negative control: the model at a rate 0.05 off (a planted "wrong a") is rejected
    wrong = float(exact(a - 0.05, c, k, S))
    assert abs(wrong - float(exact(a, c, k, S))) > (Z + 3.09) * se
    assert abs(mean - wrong) > Z * se


def test_monte_carlo_catches_a_missing_segment_minimum() -> None:
    """Negative control: DSI without its min(., tokens) per segment is a different model."""
    a, c, k, S = 0.2, 0.9, 4, 30
    mean, sd = monte_carlo("dsi", a, c, k, S, RUNS, seed=7)
    se = sd / math.sqrt(RUNS)
    # without the minimum every segment pays drafts + 1: E > S here, the model says <= S
    assert float(dsi_exact(a, c, k, S)) <= S
    no_min = monte_carlo_no_min(a, c, k, S)
    assert abs(no_min - float(dsi_exact(a, c, k, S))) > (Z + 3.09) * se
    assert abs(mean - no_min) > Z * se
    assert nonsi_latency(S) == monte_carlo("nonsi", a, c, k, S, RUNS, seed=7)[0]


def monte_carlo_no_min(a: float, c: float, k: int, S: int) -> float:
    """E[T] of the buggy variant, by exact DP over the segment outcome (x accepted)."""
    e = [0.0] * (S + 1)
    for n in range(1, S + 1):
        r = n - 1
        acc = 0.0
        for x in range(r + 1):
            p = a**x * (1 - a) if x < r else a**r
            drafted = min(r, k * (x // k + 1))
            acc += p * (drafted * c + 1 + e[n - 1 - x])
        e[n] = acc
    return e[S]


def test_required_servers() -> None:
    assert required_servers(1, F(1, 2), chain=False) == 2
    assert required_servers(1, F(1, 2)) == 3
    assert required_servers(20, 0.05, chain=False) == 1  # k c = 1 exactly, read as decimal
    assert required_servers(15, 0.01, chain=False) == 7
    assert required_servers(14, 0.01, chain=False) == 8
    assert required_servers(3, 1) == 2


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: si_exact(F(3, 2), F(1, 2), 1, 3), "3/2"),
        (lambda: dsi_exact(F(1, 2), 0, 1, 3), "got 0"),
        (lambda: si_grid(0.5, 1.5, 1, 3), "1.5"),
        (lambda: dsi_grid(0.5, 0.5, 0, 3), "got 0"),
        (lambda: dsi_grid(0.5, 0.5, 2, 0), "got 0"),
        (lambda: required_servers(2, 0), "got 0"),
        (lambda: monte_carlo("ar", 0.5, 0.5, 1, 3, 10, 0), "'ar'"),
        (lambda: monte_carlo("si", 0.5, 0.5, 1, 3, 1, 0), "got 1"),
    ],
)
def test_bad_input_raises_a_typed_error_naming_the_value(call: object, needle: str) -> None:
    with pytest.raises(InvalidConfig, match=needle.replace("(", r"\(")):
        call()  # type: ignore[operator]


def test_pattern_stream_reports_running_out() -> None:
    with pytest.raises(IndexError, match="2 bits"):
        si_sample(F(1, 2), 3, 10, pattern_stream([True, True]))
