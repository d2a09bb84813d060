"""Measured acceptance (dsi_ref.result): overall and by block position, in every run's
result, both CLIs' --json output and their printed summaries.

Exact expectations on constructed runs: a drafter equal to the target is always
accepted (1.0 at every block position), a drafter whose support is disjoint from the
target's is never accepted (0.0, every verdict at block position 0), and a given
acceptance pattern (dsi_ref.pattern) gives SI's per-position counts worked out by hand.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from dsi_ref.cli import main
from dsi_ref.config import RunConfig
from dsi_ref.models import MarkovModel, random_markov
from dsi_ref.pattern import run_pattern
from dsi_ref.result import Counters
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi

TARGET = random_markov(4, 1, 7)
ONLY_0 = MarkovModel(2, 0, {(): (1, 0)}, name="only-0")
ONLY_1 = MarkovModel(2, 0, {(): (0, 1)}, name="only-1")


@pytest.mark.parametrize("preemptive", [True, False])
def test_drafter_equal_to_target_always_accepted(preemptive: bool) -> None:
    cfg = RunConfig(max_tokens=10, k=3, servers=2, seed=3, preemptive=preemptive)
    si = run_si(TARGET, TARGET, cfg)
    # Blocks at 0, 4 and 8: drafts 0-2 (bonus 3), 4-6 (bonus 7), 8 (min(k, n - 8 - 1) = 1).
    assert si.counters.verdicts_at == [3, 2, 2]
    assert si.counters.accepted_at == [3, 2, 2]
    assert si.counters.acceptance() == 1.0
    assert si.counters.acceptance_by_position() == [1.0, 1.0, 1.0]
    dsi = run_dsi(TARGET, TARGET, cfg)
    assert dsi.counters.acceptance() == 1.0
    assert set(dsi.counters.acceptance_by_position()) == {1.0}
    assert sum(dsi.counters.verdicts_at) == dsi.counters.drafts_accepted > 0


@pytest.mark.parametrize("preemptive", [True, False])
def test_disjoint_drafter_never_accepted(preemptive: bool) -> None:
    cfg = RunConfig(max_tokens=9, k=3, servers=2, preemptive=preemptive)
    si = run_si(ONLY_0, ONLY_1, cfg)
    # Each block is one rejected draft at block position 0; the last token is a bonus.
    assert si.counters.verdicts_at == [8] and si.counters.accepted_at == [0]
    assert si.counters.acceptance() == 0.0
    dsi = run_dsi(ONLY_0, ONLY_1, cfg)
    assert dsi.counters.acceptance() == 0.0
    assert dsi.counters.accepted_at == [0]
    assert dsi.counters.verdicts_at == [dsi.counters.drafts_rejected]


def test_pattern_counts_by_hand() -> None:
    # k = 3, n = 8: block 0-2 verdicts T T F; block 3-5 T T T (bonus 6); block at 7 has
    # no draft (min(k, n - 7 - 1) = 0), only a bonus.
    pattern = [True, True, False, True, True, True, True, False]
    run = run_pattern("si", pattern, RunConfig(max_tokens=8, k=3))
    assert run.counters.verdicts_at == [2, 2, 2]
    assert run.counters.accepted_at == [2, 2, 1]
    assert run.counters.acceptance_by_position() == [1.0, 1.0, 0.5]
    assert run.counters.acceptance() == 5 / 6


def test_nonsi_has_no_acceptance() -> None:
    s = Counters().acceptance_summary()
    assert s == {
        "acceptance": None,
        "acceptance_by_position": [],
        "accepted_by_position": [],
        "verdicts_by_position": [],
    }


def test_cli_json_and_text() -> None:
    args = ["run", "--pair", "exact3", "--noise", "0", "--max-tokens", "10", "--k", "3"]
    out = io.StringIO()
    assert main([*args, "--json"], out) == 0
    by_alg = {r["algorithm"]: r for r in json.loads(out.getvalue())["results"]}
    assert by_alg["nonsi"]["acceptance"] is None
    for alg in ("si", "dsi"):  # noise 0: the drafter is the target
        assert by_alg[alg]["acceptance"] == 1.0
        assert set(by_alg[alg]["acceptance_by_position"]) == {1.0}
    assert by_alg["si"]["verdicts_by_position"] == [3, 2, 2]
    text = io.StringIO()
    assert main(args, text) == 0
    assert "acceptance by block position" in text.getvalue()
    assert "  SI     1.00 1.00 1.00" in text.getvalue()


# ----- `dsi_ref table --acceptance-from RUN.json` --------------------------------

SYNTHETIC = "entered by hand from tests/test_acceptance_report.py (synthetic test fixture)"
LATENCIES = {"target_ttft_ms": 40.0, "target_tpot_ms": 30.0}
LATENCIES |= {"drafter_ttft_ms": 6.0, "drafter_tpot_ms": 3.0}


def _pairs_file(tmp_path: Path, acceptance: float | None) -> Path:
    row: dict[str, Any] = {"target": "T", "drafter": "D", "dataset": "set"}
    for f, v in {**LATENCIES, "acceptance_rate": acceptance}.items():
        row[f] = {"value": v, "provenance": SYNTHETIC if v is not None else "unknown"}
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"pairs": [row]}))
    return path


def _run_json(tmp_path: Path, *flags: str) -> tuple[Path, dict[str, Any]]:
    out = io.StringIO()
    args = ["run", "--pair", "exact3", "--noise", "1/2", "--max-tokens", "40", "--k", "3"]
    assert main([*args, *flags, "--json"], out) == 0
    path = tmp_path / "run.json"
    path.write_text(out.getvalue())
    return path, json.loads(out.getvalue())


def test_table_takes_measured_acceptance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("numpy")
    from dsi_ref.theory.pairs_table import (
        evaluate,
        load_acceptance,
        load_pairs,
        predict,
        with_acceptance,
    )

    run, doc = _run_json(tmp_path)
    acc = sum(sum(r["accepted_by_position"]) for r in doc["results"])
    ver = sum(sum(r["verdicts_by_position"]) for r in doc["results"])
    assert ver > 0 and 0 < acc < ver  # noise 1/2: some drafts rejected
    measured = load_acceptance(run)
    assert measured.value == acc / ver
    assert f"{acc} of {ver} drafts accepted" in measured.provenance
    pairs = _pairs_file(tmp_path, 0.3)  # the assumed rate, replaced
    (row,) = evaluate(with_acceptance(load_pairs(pairs), measured), S=100, kmax=5, pmax=3)
    assert row.prediction is not None and row.prediction.a == acc / ver
    assert row.prediction == predict(acc / ver, 3.0 / 30.0, 100, 5, 3)
    # The CLI: the file's missing acceptance is filled by the run's.
    missing = _pairs_file(tmp_path, None)
    assert main(["table", "--file", str(missing), "--S", "100", "--kmax", "5"]) == 0
    assert "missing acceptance_rate" in capsys.readouterr().out
    flags = ["--S", "100", "--kmax", "5", "--acceptance-from", str(run)]
    assert main(["table", "--file", str(missing), *flags]) == 0
    out = capsys.readouterr().out
    assert "missing" not in out and f"{acc / ver:>5.3f}" in out


def test_acceptance_from_gpu_runner_rows_and_bad_files(tmp_path: Path) -> None:
    from dsi_ref.errors import InvalidConfig
    from dsi_ref.theory.pairs_table import acceptance_from_run, load_acceptance

    rows = [
        {"algorithm": "dsi", "accepted_by_position": [5, 2], "verdicts_by_position": [6, 4]},
        {"algorithm": "si", "accepted_by_position": [3], "verdicts_by_position": [5]},
        {"algorithm": "nonsi", "accepted_by_position": [], "verdicts_by_position": []},
    ]
    m = acceptance_from_run(rows, "gpu.json")
    assert m.value == 10 / 15 and "(dsi, si)" in m.provenance
    with pytest.raises(InvalidConfig, match="no verified draft"):
        acceptance_from_run(rows[2:], "nonsi.json")
    bad = [{"algorithm": "si", "accepted_by_position": [3], "verdicts_by_position": [2]}]
    with pytest.raises(InvalidConfig, match="malformed"):
        acceptance_from_run(bad, "bad.json")
    with pytest.raises(InvalidConfig, match="--json output"):
        acceptance_from_run({"pairs": []}, "pairs.json")
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(InvalidConfig, match=r"broken\.json"):
        load_acceptance(path)
    assert main(["table", "--acceptance-from", str(path)]) == 2
