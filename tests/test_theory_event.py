"""Exact expected latencies under the event-level schedule: fast forms vs the brute-force
definition, and vs Monte Carlo."""

from __future__ import annotations

from fractions import Fraction

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.theory.event import (
    brute_force,
    brute_force_poly,
    dsi_poly,
    dsi_segments,
    dsi_value,
    evaluate,
    expected_latency,
    expected_poly,
    nonsi_latency,
    pattern_latencies,
    si_poly,
    si_value,
    to_rate,
)
from dsi_ref.theory.montecarlo import monte_carlo

F = Fraction
RATES = (F(0), F(1, 3), F(1, 2), F(9, 10), F(1))
# (target, drafter): TTFT == TPOT; TTFT != TPOT for both; drafter as slow as the target;
# a target prefill slower than its TPOT with a fast drafter.
LATENCIES = (
    (Latency.of(1, 1), Latency.of("1/3", "1/3")),
    (Latency.of(2, 1), Latency.of("1/2", "1/5")),
    (Latency.of(1, 1), Latency.of(1, 1)),
    (Latency.of("3/2", 1), Latency.of("1/7", "1/7")),
)


def _cfg(s: int, k: int, p: int, lat: tuple[Latency, Latency]) -> RunConfig:
    return RunConfig(max_tokens=s, k=k, servers=p, target_latency=lat[0], drafter_latency=lat[1])


@pytest.mark.parametrize("s", range(1, 9))
def test_fast_forms_equal_the_definition(s: int) -> None:
    """For every k in 1..4, P in 1..4 and latency pair, the DPs equal the 2^S-pattern sum as
    polynomials in a (so for every a), and in particular at a in RATES."""
    for k in range(1, 5):
        for p in range(1, 5):
            for lat in LATENCIES:
                cfg = _cfg(s, k, p, lat)
                seg = dsi_segments(cfg)
                for alg in ("nonsi", "si", "dsi"):
                    exact = expected_poly(alg, cfg)
                    oracle = brute_force_poly(alg, cfg)
                    assert exact == oracle, (alg, s, k, p, lat)
                    for a in RATES:  # and the numeric DPs behind expected_latency
                        want = evaluate(oracle, a)
                        if alg == "si":
                            assert si_value(cfg, a) == want
                        elif alg == "dsi":
                            assert dsi_value(cfg, a, seg) == want
                        else:
                            assert expected_latency(alg, a, cfg) == want


def test_facts_behind_the_dsi_dp() -> None:
    """(b) the commit time of j depends only on the bits < j; (a) after a rejection at j the
    remaining time depends only on j and the later bits (checked on every pattern of S=6)."""
    from dsi_ref.pattern import run_pattern

    cfg = _cfg(6, 2, 2, LATENCIES[1])
    runs = {x: run_pattern("dsi", x, cfg) for x in pattern_latencies("dsi", cfg)}
    for x, r in runs.items():
        for j in range(6):
            flipped = (*x[:j], not x[j], *x[j + 1 :])
            assert runs[flipped].commit_times[: j + 1] == r.commit_times[: j + 1]
            if not x[j]:  # a rejection at j: the rest is a function of (j, x[j+1:])
                other = (True,) * j + x[j:]
                rest = r.latency - r.commit_times[j]
                o = runs[other]
                assert o.latency - o.commit_times[j] == rest


def test_nonsi_and_known_values() -> None:
    cfg = _cfg(4, 2, 2, LATENCIES[1])
    assert nonsi_latency(cfg) == 2 + 3 * 1
    # SI at a = 1 with k=2, S=4: drafts at 0,1 (1/2 + 1/5) + pass (2) -> 3 tokens;
    # then position 3 alone: one target pass (1).
    assert expected_latency("si", 1, cfg) == F(1, 2) + F(1, 5) + 2 + 1
    # at a = 0 every SI iteration drafts min(k, left-1) tokens and gains one
    assert (
        expected_latency("si", 0, cfg)
        == (F(1, 2) + F(1, 5) + 2) + (F(2, 5) + 1) + (F(1, 5) + 1) + 1
    )


def test_bad_input_names_the_value() -> None:
    with pytest.raises(InvalidConfig, match="3/2"):
        to_rate("3/2")
    with pytest.raises(InvalidConfig, match=r"-0\.1"):
        to_rate(-0.1)
    with pytest.raises(InvalidConfig, match="'bogus'"):
        expected_poly("bogus", _cfg(2, 1, 1, LATENCIES[0]))
    with pytest.raises(InvalidConfig, match="max_tokens=15"):
        pattern_latencies("dsi", _cfg(15, 1, 1, LATENCIES[0]))
    with pytest.raises(InvalidConfig, match="samples"):
        monte_carlo("dsi", "1/2", _cfg(2, 1, 1, LATENCIES[0]), 1, 0)


def _wrong_dsi_restart(cfg: RunConfig) -> Fraction:
    """Planted bug: treat a restart at r as a fresh run of S-r tokens with the original
    latencies (so a restart pays TTFT again). Wrong exactly when some TTFT != TPOT."""
    s = cfg.max_tokens
    seg = [dsi_segments(RunConfig(s - r, cfg.k, cfg.servers, **_lat(cfg)))[0] for r in range(s)]
    rows = [tuple(seg[r]) for r in range(s)]
    return evaluate(dsi_poly(cfg, rows), F(1, 2))


def _lat(cfg: RunConfig) -> dict[str, Latency]:
    return {"target_latency": cfg.target_latency, "drafter_latency": cfg.drafter_latency}


def test_negative_control_brute_force_catches_a_wrong_restart() -> None:
    bad = _cfg(5, 2, 2, LATENCIES[1])  # TTFT != TPOT
    assert _wrong_dsi_restart(bad) != brute_force("dsi", F(1, 2), bad)
    ok = _cfg(5, 2, 2, LATENCIES[0])  # TTFT == TPOT: the shortcut happens to be right
    assert _wrong_dsi_restart(ok) == brute_force("dsi", F(1, 2), ok)


# 24 (a, c, k, P) points at S = 10; TTFT == TPOT for the target, c = drafter/target latency.
MC_POINTS = [
    (F(a), F(c), k, p)
    for a, c, k, p in [
        ("1/3", "1/10", 1, 1),
        ("1/3", "1/10", 2, 2),
        ("1/3", "1/4", 3, 3),
        ("1/3", "1/2", 4, 2),
        ("1/3", "1", 2, 1),
        ("1/3", "3/4", 1, 4),
        ("1/2", "1/10", 3, 2),
        ("1/2", "1/4", 1, 2),
        ("1/2", "1/2", 2, 3),
        ("1/2", "3/4", 4, 1),
        ("1/2", "1/3", 3, 4),
        ("1/2", "1/5", 4, 4),
        ("7/10", "1/10", 4, 3),
        ("7/10", "1/4", 2, 1),
        ("7/10", "1/2", 1, 3),
        ("7/10", "3/4", 3, 2),
        ("7/10", "1", 1, 2),
        ("7/10", "1/3", 2, 4),
        ("9/10", "1/10", 2, 2),
        ("9/10", "1/4", 4, 2),
        ("9/10", "1/2", 3, 1),
        ("9/10", "3/4", 2, 3),
        ("9/10", "2/3", 4, 2),
        ("9/10", "1/3", 1, 1),
    ]
]
MC_SAMPLES = 1500


def _mc_cfg(c: Fraction, k: int, p: int) -> RunConfig:
    return RunConfig(10, k, p, target_latency=Latency.of(1), drafter_latency=Latency.of(c))


@pytest.mark.parametrize("alg", ["si", "dsi"])
def test_exact_agrees_with_monte_carlo(alg: str) -> None:
    """Exact E[T] lies in the Monte Carlo 99.9% interval at all 24 points (fixed seeds).

    False-alarm level: each per-point interval is a nominal 99.9% CLT interval, so by the
    union bound the chance that a correct exact value misses at least one of the 24 is
    <= 2.4% per algorithm (not Bonferroni-corrected); the seeds are fixed, so the test is
    deterministic. Power: the negative control below is the same exact form evaluated at a
    shifted by 1/10; every point where that shift moves E[T] by at least 1% must reject it,
    and there must be at least 20 such points; with these seeds they all do (relative
    half-widths are 0.3%..2.5% at 1500 samples). Where E[T] hardly depends on a (DSI with a
    drafter as slow as the target equals non-SI) there is nothing to reject."""
    controls = 0
    for i, (a, c, k, p) in enumerate(MC_POINTS):
        cfg = _mc_cfg(c, k, p)
        est = monte_carlo(alg, a, cfg, MC_SAMPLES, seed=1000 + i)
        exact = expected_latency(alg, a, cfg)
        assert est.contains(exact), (alg, a, c, k, p, float(exact), est)
        wrong = expected_latency(alg, a - F(1, 10), cfg)
        if abs(wrong - exact) >= exact / 100:
            controls += 1
            assert not est.contains(wrong), ("negative control accepted", alg, a, c, k, p)
    assert controls >= 20


def test_monte_carlo_is_exact_at_the_ends() -> None:
    cfg = _mc_cfg(F(1, 4), 2, 2)
    for a in (0, 1):
        est = monte_carlo("dsi", a, cfg, 10, seed=0)
        assert est.mean == expected_latency("dsi", a, cfg) and est.std_error == 0


def test_si_dp_is_the_si_polynomial() -> None:
    cfg = _cfg(3, 1, 1, LATENCIES[0])
    # S=3, k=1, c=1/3: an iteration that drafts costs 4/3; a plain pass costs 1.
    # E = 4/3 + (1-a) E(1) + a E(2), E(1) = 4/3 + (1-a) * 1, E(2) = 1
    # = 4/3 + (1-a)(7/3 - a) + a = 11/3 - 7/3 a - a + a^2 + a = 11/3 - 7/3 a + a^2
    expected = [F(11, 3), F(-7, 3), F(1)]
    assert list(si_poly(cfg)) == expected


def test_offline_and_event_models_side_by_side() -> None:
    """SI is the same number in both models (same DP, TTFT = TPOT, no servers involved);
    with the offline model's server count the event schedule's DSI is at or below the
    offline one on this grid, and strictly below somewhere; with fewer servers than that
    count it can be above (docs/latency-models.md says why); both DSI models are never
    slower than non-SI. (Before simultaneous events were handled as one batch, the
    event DSI was above the offline one at c = 1/2, k = 2, P = 2 from the tie order.)"""
    from dsi_ref.theory.compare import compare

    rates = (F(0), F(1, 2), F(9, 10), F(1))
    rows = []
    for c, k in ((F(1, 10), 1), (F(1, 10), 4), (F(1, 2), 2), (F(9, 10), 3)):
        for s in (4, 16):
            rows += compare(rates, c, k, s)
    for r in rows:
        assert r.offline_si == r.event_si, r
        assert r.event_dsi <= r.nonsi and r.offline_dsi <= r.nonsi, r
    assert all(r.event_dsi <= r.offline_dsi for r in rows)
    assert any(r.event_dsi < r.offline_dsi for r in rows)
    few = compare(rates, F(1, 10), 4, 16, P=2)  # the offline count is 4
    assert any(r.event_dsi > r.offline_dsi for r in few)
    with pytest.raises(InvalidConfig, match="'x'"):
        compare([0], "x", 1, 2)


def test_closed_form_rate_is_the_long_run_si_cost() -> None:
    from dsi_ref.theory.closed_form import si_rate, si_slower_for_every_k

    assert si_rate("1/2", "1/10", 1) == F(11, 10) / F(3, 2)
    assert si_rate(1, "1/2", 2) == F(2, 3)
    assert si_slower_for_every_k("1/3", "1/2") and not si_slower_for_every_k("1/2", "1/2")
    # E[T_SI]/S approaches the rate: at S = 60 within 2% here
    cfg = RunConfig(60, 2, target_latency=Latency.of(1), drafter_latency=Latency.of("1/4"))
    per_token = expected_latency("si", "3/5", cfg) / 60
    assert abs(per_token / si_rate("3/5", "1/4", 2) - 1) < F(2, 100)
    with pytest.raises(InvalidConfig, match="got 0"):
        si_rate("1/2", "1/10", 0)
    with pytest.raises(InvalidConfig, match="'2'"):
        si_rate("2", "1/10", 1)
