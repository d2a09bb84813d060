"""The model-pair table: the shipped file, provenance rules, predictions, incomplete rows."""

from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from dsi_ref.errors import InvalidConfig
from dsi_ref.theory.commands import register
from dsi_ref.theory.offline import dsi_grid, required_servers, si_grid
from dsi_ref.theory.pairs_table import (
    NUMBER_FIELDS,
    PROVENANCE_KINDS,
    evaluate,
    event_level_fn,
    example_pair,
    format_table,
    load_pairs,
    parse_pairs,
    predict,
)

PAPER_PAIRS = {
    ("Vicuna-13B", "Vicuna-68M", "CNN-DM"),
    ("Vicuna-13B", "Vicuna-68M", "Alpaca"),
    ("Vicuna-7B", "Vicuna-68M", "CNN-DM"),
    ("Vicuna-7B", "Vicuna-68M", "Alpaca"),
    ("StarCoder-15B", "tiny_starcoder_py", "HumanEval"),
    ("StarCoder-15B", "tiny_starcoder_py", "MBPP"),
    ("Phi-3-medium", "Phi-3-mini", "HumanEval"),
    ("Phi-3-medium", "Phi-3-mini", "MBPP"),
    ("Phi-3-medium", "Phi-3-mini", "CNN-DM"),
    ("Phi-3-medium", "Phi-3-mini", "Alpaca"),
}

# Synthetic numbers for exercising the code, NOT the paper's measurements.
FIXTURE = "entered by hand from tests/test_pairs_table.py (synthetic test fixture)"


def _num(v: float | None) -> dict[str, Any]:
    return {"value": v, "provenance": FIXTURE if v is not None else "unknown"}


def _pair(name: str, values: dict[str, float | None]) -> dict[str, Any]:
    row: dict[str, Any] = {"target": name, "drafter": "tiny", "dataset": "set"}
    row.update({f: _num(values.get(f)) for f in NUMBER_FIELDS})
    return row


COMPLETE = {
    "target_ttft_ms": 40.0,
    "target_tpot_ms": 30.0,
    "drafter_ttft_ms": 6.0,
    "drafter_tpot_ms": 3.0,
    "acceptance_rate": 0.8,
}


def test_shipped_file_has_the_papers_ten_pairs_with_provenance() -> None:
    pairs = load_pairs()
    assert {(p.target, p.drafter, p.dataset) for p in pairs} == PAPER_PAIRS
    assert len(pairs) == 10
    for p in pairs:
        assert set(p.numbers) == set(NUMBER_FIELDS)
        for m in p.numbers.values():
            assert m.provenance
            if m.value is not None:
                assert m.provenance.startswith(PROVENANCE_KINDS)


def test_shipped_table_says_what_is_missing_where_it_is_and_how_to_supply_it() -> None:
    pairs = load_pairs()
    rows = evaluate(pairs)
    text = format_table(rows, 1000)
    for p, row in zip(pairs, rows, strict=True):
        if p.missing():
            assert row.prediction is None
            assert row.problem == "missing target_tpot_ms, drafter_tpot_ms, acceptance_rate"
            line = next(x for x in text.splitlines() if x.startswith(p.name))
            assert line.endswith(" missing target_tpot_ms, drafter_tpot_ms, acceptance_rate")
    # where the numbers are, and both ways to supply them
    assert "arXiv 2405.14105" in text and "table of pairs" in text
    assert "python -m dsi_ref table --file FILE" in text
    assert "python -m gpu_runner profile" in text
    # the product speaks about its user's numbers, not about how it was made
    for word in ("search tool", "session", "could not retrieve"):
        assert word not in text and word not in json.dumps([p.numbers for p in pairs], default=str)
    # one complete example row, labelled as illustrative, computed by the same model
    assert "illustrative numbers, not a measurement" in text
    (ex,) = evaluate([example_pair()], 1000, 20, 7)
    assert ex.prediction is not None
    line = next(x for x in text.splitlines() if x.startswith("example-target"))
    assert f"{ex.prediction.dsi_vs_si:.3f}" in line and f"{ex.prediction.k_dsi:>4}" in line


def test_prediction_is_the_best_k_of_the_offline_model() -> None:
    a, c = 0.8, 0.1
    p = predict(a, c, S=200, kmax=8, pmax=4)
    si = [float(si_grid(a, c, k, 200)) for k in range(1, 9)]
    ok = [k for k in range(1, 9) if required_servers(k, c) <= 4]
    dsi = {k: float(dsi_grid(a, c, k, 200)) for k in ok}
    assert p.k_si == 1 + si.index(min(si)) and p.t_si == min(si)
    assert p.k_dsi == min(dsi, key=lambda k: dsi[k]) and p.t_dsi == min(dsi.values())
    assert p.servers == required_servers(p.k_dsi, c) <= 4
    assert p.dsi_vs_nonsi == pytest.approx(200 / p.t_dsi)
    assert p.dsi_vs_si >= 1  # DSI's best admissible k beats SI's here (c k >= 1/3 at k = 4)


def test_complete_and_incomplete_rows_together() -> None:
    partial = dict(COMPLETE, acceptance_rate=None)
    doc = {"pairs": [_pair("Full", COMPLETE), _pair("Partial", partial)]}
    rows = evaluate(parse_pairs(doc), S=100, kmax=6, pmax=7)
    assert rows[0].prediction is not None and rows[0].problem == ""
    assert rows[0].prediction.c == pytest.approx(0.1)
    assert rows[1].prediction is None and rows[1].problem == "missing acceptance_rate"
    text = format_table(rows, 100)
    assert "Partial / tiny on set" in text and "missing acceptance_rate" in text
    assert "1 pair(s) lack numbers the prediction needs: acceptance rate (acceptance_rate)." in text
    assert FIXTURE in text and "unknown" not in text  # only known numbers have a source
    assert "illustrative" not in text  # a table with a complete row needs no example
    # latency in ms = expected target-TPOT units x target TPOT
    assert f"{rows[0].prediction.t_dsi * 30.0:.1f}" in text


def test_drafter_slower_than_target_is_reported_not_predicted() -> None:
    doc = {"pairs": [_pair("Slow", dict(COMPLETE, drafter_tpot_ms=45.0))]}
    (row,) = evaluate(parse_pairs(doc))
    assert row.prediction is None and "45.0" in row.problem


def test_event_level_expectation_when_available() -> None:
    assert event_level_fn() is not None  # dsi_ref.theory.event provides expected_latency
    doc = {"pairs": [_pair("Full", COMPLETE)]}
    (row,) = evaluate(parse_pairs(doc), S=50, kmax=3, pmax=7, event_tokens=4)
    assert row.prediction is not None and row.prediction.event is not None
    ev = row.prediction.event
    assert ev["nonsi"] == 40 + 3 * 30  # TTFT, then TPOT per token
    assert ev["dsi"] <= ev["nonsi"]
    assert "event-level exact, 4 tokens" in format_table([row], 50)


BAD = [
    (lambda d: d["pairs"][0].pop("dataset"), "lacks field 'dataset'"),
    (lambda d: d["pairs"][0]["acceptance_rate"].update(value=1.5), "out of range [0, 1], got 1.5"),
    (lambda d: d["pairs"][0]["target_tpot_ms"].update(value=float("inf")), "got inf"),
    (lambda d: d["pairs"][0]["target_tpot_ms"].update(value=float("nan")), "got nan"),
    (lambda d: d["pairs"][0]["target_tpot_ms"].update(value=10**400), "got ~1e+400"),
    (lambda d: d["pairs"][0]["drafter_tpot_ms"].update(value=-3.0), "got -3.0"),
    (lambda d: d["pairs"][0]["target_tpot_ms"].update(provenance="guessed"), "'guessed'"),
    (lambda d: d["pairs"][0]["target_tpot_ms"].update(value="30"), "got '30'"),
    (lambda d: d["pairs"][0]["target_tpot_ms"].pop("provenance"), "target_tpot_ms"),
    (lambda d: d.pop("pairs"), "'pairs' list"),
]


@pytest.mark.parametrize(("breakage", "needle"), BAD)
def test_malformed_files_raise_a_typed_error(breakage: Any, needle: str) -> None:
    doc = copy.deepcopy({"pairs": [_pair("Full", COMPLETE)]})
    breakage(doc)
    with pytest.raises(InvalidConfig, match=re.escape(needle)):
        parse_pairs(doc)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    ns = parser.parse_args(argv)
    return int(ns.func(ns))


def test_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["table"]) == 0
    out = capsys.readouterr().out
    assert out.count("missing target_tpot_ms, drafter_tpot_ms, acceptance_rate") == 10
    f = tmp_path / "pairs.json"
    f.write_text(json.dumps({"pairs": [_pair("Full", COMPLETE)]}))
    assert _cli(["table", "--file", str(f), "--S", "100", "--kmax", "5"]) == 0
    out = capsys.readouterr().out
    assert "Full / tiny on set" in out and "missing" not in out
    f.write_text("{not json")
    assert _cli(["table", "--file", str(f)]) == 2
    assert str(f) in capsys.readouterr().err
