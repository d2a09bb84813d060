"""Figure 2 heatmaps: best-k selection, the panels' claims on the full default grid, the CLI."""

from __future__ import annotations

import argparse
import csv
from fractions import Fraction

import numpy as np
import pytest

from dsi_ref.errors import InvalidConfig
from dsi_ref.theory.commands import register
from dsi_ref.theory.heatmap import (
    CSV_COLUMNS,
    PANEL_TITLES,
    PANELS,
    Heatmap,
    compute,
    forced_strips,
    grid_values,
    predicted_si_slower,
    render_png,
    shown_ratio,
    si_slower_than_nonsi,
    strip_note,
)
from dsi_ref.theory.offline import dsi_grid, required_servers, si_exact, si_grid

F = Fraction


@pytest.fixture(scope="module")
def full() -> Heatmap:
    """The default grid of the CLI: 21 x 21, k = 1..20, P <= 7 (with the chain), S = 1000."""
    return compute()


@pytest.fixture(scope="module")
def full_authors() -> Heatmap:
    """The same grid with SI restricted to the lookaheads DSI may use (authors' pipeline)."""
    return compute(si_admissible_only=True, chain=False)


def test_grid_values() -> None:
    g = grid_values(21)
    assert len(g) == 21 and g[0] == 0.01 and g[-1] == 0.99
    assert g[10] == pytest.approx(0.5)
    with pytest.raises(InvalidConfig, match="got 1"):
        grid_values(1)


def test_best_k_is_the_argmin_over_admissible_k() -> None:
    h = compute(grid=5, kmax=6, pmax=3, S=60)
    cc, aa = np.meshgrid(h.c, h.a, indexing="ij")
    si = np.stack([si_grid(aa, cc, k, 60) for k in range(1, 7)])
    dsi = np.stack([dsi_grid(aa, cc, k, 60) for k in range(1, 7)])
    need = np.array([[required_servers(k, float(c)) for c in h.c] for k in range(1, 7)])
    ok = np.broadcast_to(need[:, :, None] <= 3, si.shape)
    assert np.array_equal(h.k_si, np.argmin(si, 0) + 1)
    assert np.allclose(h.t_si, si.min(0), rtol=0, atol=0)
    masked = np.where(ok, dsi, np.inf)
    has = ok.any(0)
    assert np.array_equal(h.k_dsi, np.where(has, np.argmin(masked, 0) + 1, 0))
    assert np.array_equal(np.isnan(h.t_dsi), ~has)
    # c = 0.01 needs k c >= 1/2 for 2 verification servers + the chain: no k <= 6 fits
    assert not has[0].any() and has[1:].all()
    assert np.all(h.servers_dsi[1:] <= 3)


def test_dsi_dominates_si_at_every_k_and_nonsi(full: Heatmap) -> None:
    """Per lookahead, the offline model's DSI is never slower than SI or non-SI (S = 1000)."""
    cc, aa = np.meshgrid(full.c, full.a, indexing="ij")
    for k in range(1, full.kmax + 1):
        dsi = dsi_grid(aa, cc, k, full.S)
        assert np.all(dsi <= si_grid(aa, cc, k, full.S) * (1 + 1e-12))
        assert np.all(dsi <= full.S * (1 + 1e-12))


def test_dsi_beats_min_si_nonsi_everywhere_with_the_authors_k_rule(full_authors: Heatmap) -> None:
    r = full_authors.ratio("dsi_vs_min")
    assert not np.isnan(r).any()
    assert np.all(r >= 1 - 1e-12)


def test_dsi_vs_min_dips_below_one_only_where_si_uses_a_k_dsi_cannot(full: Heatmap) -> None:
    """With SI free to use any k, DSI/min(SI, non-SI) < 1 exactly where SI's best k needs more
    than 7 servers for DSI: at c = 0.01 (DSI needs k >= 17 there) and a in [0.15, 0.65]."""
    r = full.ratio("dsi_vs_min")
    below = r < 1
    need = np.array(
        [
            [required_servers(int(k), float(c)) for k in row]
            for c, row in zip(full.c, full.k_si, strict=True)
        ]
    )
    assert np.array_equal(below, below & (need > full.pmax))
    cells = {(float(full.c[i]), round(float(full.a[j]), 2)) for i, j in np.argwhere(below)}
    assert cells == {(0.01, round(0.05 * j, 2)) for j in range(3, 14)}
    assert float(np.min(r)) == pytest.approx(0.98356, abs=1e-5)


def test_si_slower_than_nonsi_exactly_when_c_exceeds_a(full: Heatmap) -> None:
    """F1's closed form (S -> infinity: SI is slower for every k iff c > a) against the finite-S
    DP at S = 1000. On the diagonal c = a SI with k = 1 ties non-SI exactly (next test), so a
    tie within 1e-12 of S counts as not slower."""
    assert np.array_equal(si_slower_than_nonsi(full), predicted_si_slower(full))
    diag = np.arange(len(full.c))
    assert np.all(full.k_si[diag, diag] == 1)
    assert np.allclose(full.t_si[diag, diag], full.S, rtol=1e-12)


@pytest.mark.parametrize("a", [F(1, 100), F(3, 10), F(99, 100)])
def test_si_ties_nonsi_exactly_on_the_diagonal(a: F) -> None:
    """c = a, k = 1: E(n) - n satisfies D(n) = (1-a) D(n-1) + a D(n-2), D(0) = D(1) = 0."""
    assert si_exact(a, a, 1, 200) == 200
    assert si_exact(a, a + F(1, 100), 1, 200) > 200
    assert si_exact(a, a, 2, 200) > 200


def test_finite_s_exact_condition_on_a_small_grid() -> None:
    """Exact Fractions, S = 12, k <= 6: min_k E[T_SI] > S iff c > a, on an 11 x 11 grid."""
    vals = [F(1, 100)] + [F(j, 10) for j in range(1, 10)] + [F(99, 100)]
    for c in vals:
        for a in vals:
            best = min(si_exact(a, c, k, 12) for k in range(1, 7))
            assert (best > 12) == (c > a), (c, a, best)


def test_ratios_and_ranges(full: Heatmap) -> None:
    assert np.allclose(
        full.ratio("dsi_vs_si") * full.ratio("si_vs_nonsi"), full.ratio("dsi_vs_nonsi")
    )
    ranges = full.ranges()
    assert set(ranges) == set(PANELS)
    assert ranges["dsi_vs_nonsi"][0] >= 1
    assert ranges["si_vs_nonsi"][0] < 1  # SI can be slower than non-SI
    with pytest.raises(InvalidConfig, match="'speed'"):
        full.ratio("speed")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    ns = parser.parse_args(argv)
    return int(ns.func(ns))


def test_cli_writes_png_and_csv(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "sub" / "fig"
    argv = ["heatmap", "--out", str(out), "--grid", "5", "--kmax", "4", "--S", "40"]
    assert _cli(argv) == 0
    png = out.with_name("fig.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with out.with_name("fig.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 25 and tuple(rows[0]) == CSV_COLUMNS
    h = compute(grid=5, kmax=4, S=40)
    r = rows[5 * 2 + 3]  # c index 2, a index 3
    assert float(r["c"]) == pytest.approx(h.c[2]) and float(r["a"]) == pytest.approx(h.a[3])
    assert int(r["k_si"]) == h.k_si[2, 3] and float(r["t_dsi"]) == h.t_dsi[2, 3]
    assert float(r["dsi_vs_min"]) == h.ratio("dsi_vs_min")[2, 3]
    assert {row["t_dsi_stderr"] for row in rows} == {"0.0"}  # the offline model is exact
    captured = capsys.readouterr()
    # the progress, one line per quarter when stderr is not a terminal (no \r redraws)
    assert captured.err.splitlines() == ["k 1/4", "k 2/4", "k 3/4", "k 4/4"]
    assert "speedup of DSI over the faster of SI and non-SI" in captured.out


def test_cli_reports_bad_flags(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:  # a plain ArgumentParser: argparse exits with 2
        _cli(["heatmap", "--out", f"{tmp_path}/x", "--grid", "1"])
    assert info.value.code == 2
    assert "must be an int in [2, 201], got 1" in capsys.readouterr().err
    # within every flag's range, but too much work together: refused before any work
    argv = ["heatmap", "--out", f"{tmp_path}/x", "--grid", "201", "--S", "300", "--kmax", "20"]
    assert _cli(argv) == 2
    assert "exceeds" in capsys.readouterr().err


def test_panel_titles_say_speedup_of_what_over_what() -> None:
    assert PANEL_TITLES == {
        "si_vs_nonsi": "speedup of SI over non-SI",
        "dsi_vs_si": "speedup of DSI over SI",
        "dsi_vs_nonsi": "speedup of DSI over non-SI",
        "dsi_vs_min": "speedup of DSI over the faster of SI and non-SI",
    }


def test_the_forced_strip_is_found_and_explained(full: Heatmap, full_authors: Heatmap) -> None:
    """c = 0.01: 7 servers (with the chain) admit only k >= 17, SI's best k there is 2..8."""
    (strip,) = forced_strips(full)
    assert strip.c == 0.01 and strip.k_forced == 17 and strip.k_si == (2, 8)
    assert strip.a == (pytest.approx(0.15), pytest.approx(0.65))
    assert min(k for k in range(1, 21) if required_servers(k, 0.01) <= 7) == 17
    assert strip_note(full).startswith("pink strip at c = 0.01: P <= 7 forces DSI to k >= 17")
    assert forced_strips(full_authors) == [] and strip_note(full_authors) == ""


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"grid": 100_000}, "grid must be an int in [2, 201], got 100000"),
        ({"grid": 201, "S": 1000}, "grid^2 * S = 201^2 * 1000"),
        ({"grid": 101, "S": 900, "kmax": 20}, "grid^2 * S * kmax = 101^2 * 900 * 20"),
        ({"kmax": 0}, "kmax must be an int >= 1, got 0"),
        ({"S": True}, "S must be an int >= 1, got True"),
    ],
)
def test_compute_refuses_runaway_sizes(kwargs: dict[str, int], needle: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        compute(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_exact_ties_are_drawn_as_ties(full: Heatmap) -> None:
    """The SI-over-non-SI panel paints pink exactly the 210 cells with c > a (docs/figure2.md):
    the 9 diagonal cells whose float ratio is 1 - 3e-14 (an exact tie) are drawn as 1."""
    raw, shown = full.ratio("si_vs_nonsi"), shown_ratio(full, "si_vs_nonsi")
    assert int(np.sum(raw < 1)) == 219  # the float DP, ties included
    assert np.array_equal(shown < 1, predicted_si_slower(full))
    assert int(np.sum(shown < 1)) == 210
    # a real dip below 1 is kept: the DSI-over-SI strip (11 cells) is unchanged
    assert int(np.sum(shown_ratio(full, "dsi_vs_si") < 1)) == 11


def test_pmax_that_admits_no_k_is_refused_before_any_output(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """--pmax 1 with the chain server: DSI needs >= 2 servers everywhere (was a matplotlib
    traceback after the CSV was written)."""
    from pathlib import Path

    out = Path(str(tmp_path)) / "fig"
    assert _cli(["heatmap", "--out", str(out), "--grid", "5", "--kmax", "4", "--pmax", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pmax=1 admits no lookahead" in err
    assert "needs at least 2 servers" in err and "--paper-servers" in err
    assert sorted(Path(str(tmp_path)).iterdir()) == []  # no CSV, no PNG
    # the authors' count admits k c >= 1 with one server: a figure with grey cells
    argv = ["heatmap", "--out", str(out), "--grid", "5", "--kmax", "4", "--S", "40"]
    assert _cli([*argv, "--pmax", "1", "--paper-servers"]) == 0
    assert out.with_name("fig.png").exists() and out.with_name("fig.csv").exists()


def test_small_pmax_figure_renders_every_strip() -> None:
    """--pmax 2: three forced strips (before, their annotations overlapped and the one-line
    title ran off the figure; now one title line and one arrow each, checked by eye)."""
    h = compute(grid=21, kmax=20, pmax=2, S=40)
    assert [st.c for st in forced_strips(h)] == pytest.approx([0.05, 0.1, 0.15])
    assert render_png(h)[:8] == b"\x89PNG\r\n\x1a\n"
