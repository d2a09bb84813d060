"""gpu_runner's SI with the adaptive lookahead (the policy's lookahead knob, as in
dsi_ref.si): greedy tokens equal transformers' greedy `generate` for every policy, the
trace passes the checker, and the block sizes follow the heuristic schedule exactly
in timing mode (CPU, float64 random Llamas)."""

from __future__ import annotations

import pytest
from gpu_fixtures import greedy_reference, pair

from dsi_ref.checker import check_trace
from gpu_runner.api import RunnerConfig, run

TARGET, DRAFTER = pair()
PROMPT = [5, 9, 11]
N = 12


@pytest.mark.parametrize("policy", ["adaptive", "measured"])
def test_greedy_si_equals_generate(policy: str) -> None:
    want = greedy_reference(TARGET, PROMPT, N)
    cfg = RunnerConfig(algorithm="si", max_new_tokens=N, k=2, policy=policy)
    got = run(TARGET, DRAFTER, PROMPT, cfg, record=True)
    assert got.tokens == want
    assert got.trace is not None and check_trace(got.trace).ok


def test_heuristic_blocks_in_timing_mode() -> None:
    # Every draft accepted: blocks of 1 (k -> 3), 3 (k -> 5), then min(5, 12 - 6 - 1) = 5.
    cfg = RunnerConfig(algorithm="si", max_new_tokens=N, k=1, acceptance=1.0, policy="adaptive")
    assert run(TARGET, DRAFTER, PROMPT, cfg).summary()["verdicts_by_position"] == [3, 2, 2, 1, 1]
    fixed = RunnerConfig(algorithm="si", max_new_tokens=N, k=1, acceptance=1.0, policy="safe")
    assert run(TARGET, DRAFTER, PROMPT, fixed).summary()["verdicts_by_position"] == [6]


@pytest.mark.parametrize("algorithm", ["si", "dsi"])
def test_confidence_stop_keeps_greedy_tokens(algorithm: str) -> None:
    want = greedy_reference(TARGET, PROMPT, N)
    for threshold in (0.2, 1.0):
        cfg = RunnerConfig(
            algorithm=algorithm, max_new_tokens=N, k=3, servers=2, draft_confidence=threshold
        )
        got = run(TARGET, DRAFTER, PROMPT, cfg, record=True)
        assert got.tokens == want, threshold
        assert got.trace is not None and check_trace(got.trace).ok
        if threshold == 1.0:  # a random drafter's q is never a point mass: one draft a block
            assert len(got.summary()["verdicts_by_position"]) == 1


def test_bad_confidence_refused_before_any_model() -> None:
    from dsi_ref.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match=r"1\.5"):
        RunnerConfig(draft_confidence=1.5)
