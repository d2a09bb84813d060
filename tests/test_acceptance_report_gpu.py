"""Measured acceptance in gpu_runner's RealRun (dsi_ref.result's tallies, CPU, float64
random Llamas): exact on constructed runs, in summary() (the --json rows) and printed."""

from __future__ import annotations

import pytest
from gpu_fixtures import pair

from gpu_runner.api import RunnerConfig, run
from gpu_runner.cli import _print_table

TARGET, DRAFTER = pair()
PROMPT = [5, 9, 11]


@pytest.mark.parametrize("algorithm", ["si", "dsi"])
def test_drafter_equal_to_target_greedy(algorithm: str) -> None:
    cfg = RunnerConfig(algorithm=algorithm, max_new_tokens=10, k=3, servers=1)
    got = run(TARGET, TARGET, PROMPT, cfg).summary()
    assert got["acceptance"] == got["acceptance_rate"] == 1.0
    assert set(got["acceptance_by_position"]) == {1.0}
    if algorithm == "si":  # blocks at 0, 4, 8 (the last one a single draft)
        assert got["verdicts_by_position"] == [3, 2, 2]


@pytest.mark.parametrize("algorithm", ["si", "dsi"])
def test_timing_mode_never_accepts(algorithm: str) -> None:
    cfg = RunnerConfig(algorithm=algorithm, max_new_tokens=8, k=3, servers=1, acceptance=0.0)
    got = run(TARGET, DRAFTER, PROMPT, cfg).summary()
    assert got["acceptance"] == 0.0
    assert got["accepted_by_position"] == [0]
    assert got["acceptance_by_position"] == [0.0]
    if algorithm == "si":
        assert got["verdicts_by_position"] == [7]


def test_printed(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = RunnerConfig(algorithm="si", max_new_tokens=6, k=2)
    row = run(TARGET, TARGET, PROMPT, cfg).summary()
    row.update(predicted_s=None, text="")
    _print_table([row])
    assert "si acceptance by block position (0, 1, ...): 1.00 1.00" in capsys.readouterr().out


def test_printed_plan(capsys: pytest.CaptureFixture[str]) -> None:
    """DSI's plan is printed, with where it came from; SI plans nothing and prints none."""
    rows = []
    for alg in ("si", "dsi"):
        row = run(TARGET, DRAFTER, PROMPT, RunnerConfig(algorithm=alg, max_new_tokens=12)).summary()
        row.update(predicted_s=None, text="")
        rows.append(row)
    _print_table(rows)
    out = capsys.readouterr().out
    t = rows[1]["planned_ms"]["target"]
    how = "(fitted from the run's own passes)"
    assert f"dsi planned with pass costs in ms {how}: target TTFT {t[0]:g}" in out
    assert not any(line.startswith("si planned") for line in out.splitlines())
