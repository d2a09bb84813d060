"""Layer cancellation side by side (`make bench`): DSI with and without it, real forwards.

The latency-heavy random Llama pair of test_bench_transport (~27M target / ~2.4M drafter,
vocabulary 8000, float32, one torch thread per worker) in timing mode (a = 0.8, k = 5),
DSI at P = 2 with the paper's policy (the policy that cancels running tasks most), 64
tokens, on the threads and processes backends. Each backend runs off, then on, once.
Reported: wall time to the last commit, device seconds (time inside passes, summed over
workers), passes cut, and the cut passes' estimated saving (Costs.cut_seconds_saved).
Assertions check what ran (tokens equal, cuts only when on), never time.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402

from gpu_runner.api import RunnerConfig, run  # noqa: E402
from gpu_runner.result import RealRun  # noqa: E402
from gpu_runner.tiny import timing_pair  # noqa: E402

torch.set_num_threads(1)
N, K, A, P = 64, 5, 0.8, 2
PROMPT = [1, 2, 3, 4]

TARGET, DRAFTER = timing_pair()  # ~27M / ~2.4M random Llamas


def _run(backend: str, on: bool) -> RealRun:
    cfg = RunnerConfig(
        algorithm="dsi",
        max_new_tokens=N,
        k=K,
        servers=P,
        acceptance=A,
        policy="paper",
        layer_cancel=on,
    )
    return run(TARGET, DRAFTER, PROMPT, cfg, backend=backend)


def _row(r: RealRun) -> dict[str, Any]:
    return {
        "wall_s": round(r.wall, 3),
        "device_s": round(r.costs.device_seconds, 3),
        "target_forwards": r.costs.target_forwards,
        "passes_cut": r.costs.passes_cut,
        "drafter_passes_cut": r.costs.drafter_passes_cut,
        "cut_seconds_saved": round(r.costs.cut_seconds_saved, 3),
        "tasks_cancelled": r.scheduler_counts.tasks_cancelled,
    }


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_layer_cancel_side_by_side(benchmark: BenchmarkFixture, backend: str) -> None:
    off = _run(backend, False)
    on = benchmark.pedantic(_run, args=(backend, True), rounds=1, iterations=1)
    assert on.tokens == off.tokens  # timing mode: keyed acceptance, same tokens either way
    assert off.costs.passes_cut == 0 and on.costs.layer_cancel == "on"
    benchmark.extra_info.update(
        off=_row(off), on=_row(on), wall_ratio_off_over_on=round(off.wall / on.wall, 3)
    )
    print(f"\n{backend}: off {_row(off)}\n{backend}: on  {_row(on)}")
