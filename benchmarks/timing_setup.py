"""The real-forward timing setup the CPU suites share (test_bench_transport.py,
test_bench_policy_real.py): the random ~27M / ~2.4M Llama pair, its run settings, and
pass costs measured in isolation once per backend per session."""

from __future__ import annotations

from typing import Any

import torch

from dsi_ref.latency import Latency
from gpu_runner.api import RunnerConfig
from gpu_runner.predict import isolated_costs
from gpu_runner.tiny import timing_pair

torch.set_num_threads(1)  # one torch thread per worker: 2 busy cores
N, K, A = 64, 5, 0.8  # tokens, lookahead, timing-mode acceptance
PROMPT = [1, 2, 3, 4]
TARGET, DRAFTER = timing_pair()

_ISOLATED: dict[str, tuple[Latency, Latency]] = {}


def isolated_on(name: str, backend: Any) -> tuple[Latency, Latency]:
    """Pass costs with no two passes overlapping on backend `name` (`isolated_costs`: an
    SI and a non-SI run, per-position cost and driver overhead included), measured once."""
    if name not in _ISOLATED:
        cfg = RunnerConfig(max_new_tokens=N, k=K, acceptance=A, seed=1)
        _ISOLATED[name] = isolated_costs(TARGET, DRAFTER, PROMPT, cfg, backend)
    return _ISOLATED[name]
