"""Every scheduling policy on gpu_runner (CPU, float64 random Llamas): greedy DSI
tokens equal transformers' greedy `generate`, the trace passes the checker, and
`gpu_runner run --policy` reaches the scheduler (one flag, dsi_ref.policies)."""

from __future__ import annotations

import pytest
from gpu_fixtures import greedy_reference, pair

from dsi_ref.checker import check_trace
from dsi_ref.errors import InvalidConfig
from dsi_ref.policies import POLICIES
from gpu_runner.api import RunnerConfig, run
from gpu_runner.cli import _parser

TARGET, DRAFTER = pair()
PROMPT = [5, 9, 11]
N = 12


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_greedy_tokens_equal_generate(policy: str) -> None:
    want = greedy_reference(TARGET, PROMPT, N)
    for servers in (1, 2):
        cfg = RunnerConfig(max_new_tokens=N, k=2, servers=servers, policy=policy)
        got = run(TARGET, DRAFTER, PROMPT, cfg, record=True)
        assert got.tokens == want, (policy, servers)
        assert got.trace is not None and check_trace(got.trace).ok


def test_cli_flag() -> None:
    ns = _parser().parse_args(["run", "--policy", "paper"])
    assert ns.policy == "paper"
    assert _parser().parse_args(["run"]).policy == "safe"


def test_bad_policy_refused_before_any_model() -> None:
    with pytest.raises(InvalidConfig, match="'fast'"):
        RunnerConfig(policy="fast")
