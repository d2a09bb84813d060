"""`dsi_ref heatmap --clock/--policy`: DSI timed on the virtual clock over the Figure-2 grid."""

from __future__ import annotations

import argparse
import csv
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dsi_ref.errors import InvalidConfig
from dsi_ref.pattern import run_pattern
from dsi_ref.theory import clock_heatmap
from dsi_ref.theory.clock_heatmap import cell_seed, compute_on_clock
from dsi_ref.theory.clocked import Clock, control_variate, patterns, run_config
from dsi_ref.theory.commands import register
from dsi_ref.theory.heatmap import CSV_COLUMNS, forced_strips, render_png
from dsi_ref.theory.offline import si_exact

NP = Clock("non-preemptive")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    ns = parser.parse_args(argv)
    return int(ns.func(ns))


def test_cells_are_the_best_k_of_the_virtual_clock_runs() -> None:
    """Each cell: SI's exact expected latency at its best k (Fraction DP); DSI's least
    estimate over k, with SI(k) as the control variate on the seeded patterns."""
    h = compute_on_clock(NP, "paper", grid=3, kmax=3, pmax=1, S=10, reps=3)
    assert h.model == "non-preemptive clock, policy paper" and h.reps == 3
    assert np.all(h.servers_dsi == 1) and forced_strips(h) == []
    for i, c in enumerate(h.c):
        for j, a in enumerate(h.a):
            pats = patterns(float(a), 10, 3, cell_seed(j))
            fa, fc = Fraction(str(a)), Fraction(str(c))
            si = [si_exact(fa, fc, k, 10) for k in (1, 2, 3)]
            assert h.t_si[i, j] == pytest.approx(float(min(si)), rel=1e-9)
            # SI(k) as the control variate, E[SI(k)] exact
            ests = [
                control_variate(
                    [
                        run_pattern("dsi", x, run_config(10, k, 1, fc, "paper", NP)).latency
                        for x in pats
                    ],
                    [
                        run_pattern("si", x, run_config(10, k, 1, fc, "paper", NP)).latency
                        for x in pats
                    ],
                    si[k - 1],
                )
                for k in (1, 2, 3)
            ]
            means = [e.mean for e in ests]
            assert h.t_dsi[i, j] == pytest.approx(min(means), rel=1e-9)
            assert h.k_dsi[i, j] == 1 + means.index(min(means))
            # the CSV's standard error is the chosen k's estimate's
            chosen = ests[means.index(min(means))].stderr
            assert h.t_dsi_stderr is not None
            assert h.t_dsi_stderr[i, j] == pytest.approx(chosen, rel=1e-9, nan_ok=True)
    assert render_png(h)[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_clock_and_policy_change_the_figure() -> None:
    """paper loses to SI without preemption at P = 1, c = 0.01, a = 0.99 (docs/figure2.md:
    0.84), safe does not; on the preemptive clock paper and safe are one scheduler."""
    kw = {"grid": 2, "kmax": 4, "pmax": 1, "S": 24, "reps": 2}
    paper = compute_on_clock(NP, "paper", **kw)
    safe = compute_on_clock(NP, "safe", **kw)
    assert paper.ratio("dsi_vs_si")[0, 1] < 0.95  # c = 0.01, a = 0.99
    assert safe.t_dsi[0, 1] < paper.t_dsi[0, 1] / 3  # safe does not queue blocks
    pre = Clock("preemptive")
    assert np.array_equal(
        compute_on_clock(pre, "paper", **kw).t_dsi, compute_on_clock(pre, "safe", **kw).t_dsi
    )


def test_one_layer_is_the_non_preemptive_figure() -> None:
    """The layer-preemptive clock with one layer per pass is the non-preemptive one
    (tests/test_clock_layers.py shows it run by run)."""
    kw = {"grid": 2, "kmax": 3, "pmax": 2, "S": 16, "reps": 2}
    held = compute_on_clock(NP, "paper", **kw)
    one = compute_on_clock(Clock("layer-preemptive", 1), "paper", **kw)
    assert np.array_equal(held.t_dsi, one.t_dsi) and np.array_equal(held.k_dsi, one.k_dsi)
    assert one.model == "layer-preemptive (1 layer) clock, policy paper"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"grid": 201}, "grid^2 * kmax * reps * S = 201^2 * 10 * 4 * 64"),
        ({"reps": 0}, "reps must be an int in [1, 10000], got 0"),
        ({"pmax": 0}, "pmax must be an int >= 1, got 0"),
    ],
)
def test_runaway_sizes_are_refused(kwargs: dict[str, int], needle: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        compute_on_clock(NP, "safe", **kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_clock_names_and_layers_are_checked() -> None:
    with pytest.raises(InvalidConfig, match="'sometimes'"):
        Clock("sometimes")
    with pytest.raises(InvalidConfig, match="layers=3 applies only"):
        Clock("non-preemptive", 3)
    with pytest.raises(InvalidConfig, match="'bogus'"):
        compute_on_clock(NP, "bogus")


def test_cli_clock_writes_figure_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "np"
    argv = ["heatmap", "--out", str(out), "--clock", "non-preemptive", "--grid", "3"]
    assert _cli([*argv, "--kmax", "2", "--S", "8", "--reps", "2", "--pmax", "1"]) == 0
    with (tmp_path / "np.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and tuple(rows[0]) == CSV_COLUMNS
    assert {r["servers_dsi"] for r in rows} == {"1"} and {r["t_nonsi"] for r in rows} == {"8"}
    assert all(float(r["t_dsi_stderr"]) >= 0 for r in rows)  # two patterns: a finite error
    assert any(float(r["t_dsi_stderr"]) > 0 for r in rows)
    assert (tmp_path / "np.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["c 1/3", "c 2/3", "c 3/3"]
    assert "speedup of DSI over SI" in captured.out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--policy", "safe"], "--policy safe needs a virtual clock"),
        (["--clock", "non-preemptive", "--policy", "bogus"], "got 'bogus'"),
        (["--clock", "preemptive", "--paper-servers"], "--paper-servers is the offline"),
        (["--clock", "non-preemptive", "--si-same-k"], "--si-same-k is the offline"),
        (["--clock", "non-preemptive", "--reps", "300"], "exceeds"),
        (["--clock", "layer-preemptive"], "--clock layer-preemptive needs --layers N"),
        (["--layers", "4"], "--layers 4 needs --clock layer-preemptive"),
        (["--clock", "non-preemptive", "--layers", "4"], "--layers 4 needs --clock layer"),
    ],
)
def test_cli_bad_combinations_fail_before_work_and_output(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    assert _cli(["heatmap", "--out", str(tmp_path / "f"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
    assert list(tmp_path.iterdir()) == []


def test_cli_checks_outputs_before_the_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the grid ran before the output check")

    monkeypatch.setattr(clock_heatmap, "compute_on_clock", boom)
    (tmp_path / "f.csv").mkdir()  # a directory where the CSV would go
    assert _cli(["heatmap", "--out", str(tmp_path / "f"), "--clock", "non-preemptive"]) == 2
    err = capsys.readouterr().err
    assert "f.csv" in err and "is a directory" in err
