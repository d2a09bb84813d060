"""benchmarks/gpu/bench.py (the device benchmark) runs end to end on CPU at tiny shapes,
so the script a GPU session runs once is not first exercised there."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "bench.py"


def test_device_benchmark_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [
        str(SCRIPT),
        "--out",
        str(tmp_path),
        "--shape",
        "tiny",
        "--drafter-shape",
        "tinier",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--tokens",
        "8",
        "--prompt",
        "4",
        "--servers",
        "1",
        "2",
        "--ks",
        "1",
        "2",
        "--repeats",
        "2",
        "--acceptance",
        "0.6",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert info.value.code == 0
    res = json.loads((tmp_path / "results.json").read_text())
    algs = {(r["algorithm"], r["k"], r["servers"]) for r in res["runs"]}
    assert algs == {
        ("nonsi", 1, 1),
        ("si", 1, 1),
        ("si", 2, 1),
        ("dsi", 1, 1),
        ("dsi", 1, 2),
        ("dsi", 2, 1),
        ("dsi", 2, 2),
    }
    assert all(r["predicted_s"] and r["predicted_s"] > 0 for r in res["runs"])
    assert "DSI/SI" in (tmp_path / "summary.txt").read_text()
