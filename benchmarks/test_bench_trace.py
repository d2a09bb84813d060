"""Trace size and cost: bytes per token at 1,000 and 16,000 tokens (aim: constant).

Run with `make bench`. Version 2 records each token once (task prefixes come from
the chain), so a trace's size per token does not depend on the run's length; in
version 1 every task_submit listed its whole prefix (21.5 kB per token at 16,000
tokens against 3.2 kB at 1,000, on this instance). The timed part is recording
plus writing the file (CPU time); extra_info holds the sizes. The assertions
are about sizes, never about time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from dsi_ref.config import RunConfig
from dsi_ref.models import LanguageModel
from dsi_ref.trace import save_trace, to_version1
from dsi_ref.virtual import run_dsi

CPU_TIME = time.process_time
Pair = tuple[LanguageModel, LanguageModel]  # (target, drafter), from conftest.py
VOCAB = 32
# Per token: a commit with p and q (2 x 32 floats written with repr, ~20 bytes each),
# about one task (submit, start, done or cancel) and a draft (start, done): ~2.1 kB.
BYTES_PER_TOKEN_BOUND = 3000
SIZES: dict[int, float] = {}  # tokens -> bytes per token, for the comparison below


def _record_and_save(pair: Pair, cfg: RunConfig, path: Path) -> dict[str, Any]:
    res = run_dsi(*pair, cfg, record=True)
    assert res.trace is not None
    save_trace(res.trace, path)
    return res.trace


@pytest.mark.parametrize("tokens", [1000, 16000])
@pytest.mark.benchmark(group="trace-size", timer=CPU_TIME)
def test_trace_bytes_per_token(
    benchmark: BenchmarkFixture,
    sampled_pair: Pair,
    sampled_cfg: RunConfig,
    tmp_path: Path,
    tokens: int,
) -> None:
    cfg = dataclasses.replace(sampled_cfg, max_tokens=tokens)
    path = tmp_path / "trace.json"
    pedantic: Callable[..., dict[str, Any]] = benchmark.pedantic  # untyped in pytest-benchmark
    rounds = 3 if tokens <= 1000 else 1
    trace = pedantic(_record_and_save, args=(sampled_pair, cfg, path), rounds=rounds, iterations=1)
    size = path.stat().st_size
    per_token = size / tokens
    SIZES[tokens] = per_token
    benchmark.extra_info.update(
        tokens=tokens,
        trace_bytes=size,
        bytes_per_token=round(per_token),
        events=len(trace["events"]),
    )
    assert trace["version"] == 2 and len(trace["result"]["tokens"]) == tokens
    assert per_token < BYTES_PER_TOKEN_BOUND, per_token
    if tokens <= 1000:  # version 1 of the same run, for the record (quadratic: 1k only)
        v1 = tmp_path / "v1.json"
        save_trace(to_version1(trace), v1)
        benchmark.extra_info["v1_bytes_per_token"] = round(v1.stat().st_size / tokens)
    if 1000 in SIZES and 16000 in SIZES:
        assert SIZES[16000] <= 1.1 * SIZES[1000], SIZES  # constant per token
