"""benchmarks/gpu/test_bench_device.py (the device benchmark suite) runs end to end on CPU
at tiny shapes, so the suite a GPU session runs once is not first exercised there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu" / "test_bench_device.py"


def test_device_benchmark_smoke(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        BENCH_DEVICE="cpu",
        BENCH_SHAPE="tiny",
        BENCH_DRAFTER="tinier",
        BENCH_DTYPE="float32",
        BENCH_TOKENS="8",
        BENCH_PROMPT="4",
    )
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE)]
    cmd += ["--benchmark-only", f"--benchmark-json={out}", "-x"]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = {b["name"] for b in json.loads(out.read_text())["benchmarks"]}
    assert "test_dsi_threads_vs_processes[2-processes]" in names, sorted(names)
    assert "test_run_threads[dsi-5-8-0.8]" in names, sorted(names)
    assert "test_dsi_policy_and_layer_cancel[safe-True]" in names, sorted(names)
    runs = [
        b for b in json.loads(out.read_text())["benchmarks"] if "predicted_s" in b["extra_info"]
    ]
    assert len(runs) == 2 * 12 + 6 + 4  # + the policy x layer-cancel runs
    assert all(b["extra_info"]["predicted_s"] > 0 for b in runs)
    summary = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu" / "summary.py"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "test_pass_cost[decode-target]" in summary.stdout
