"""SI's adaptive lookahead (dsi_ref.policies.si_next_k): SI reads the lookahead knob of
its run's policy, as DSI does. Block sizes follow the schedule exactly on constructed
acceptance patterns; greedy tokens equal the sequential reference (pathwise: one
counterexample refutes it, no false-alarm level; sampled SI tokens depend on where blocks
end, see below); the exact output law equals the
target's on the enumerator's instances. Negative control: a planted lookahead that
peeks at the next block's acceptance uniform is caught by the reference comparison.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from fractions import Fraction as F

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.exact import exact_law
from dsi_ref.latency import Latency
from dsi_ref.law import target_law
from dsi_ref.models import LanguageModel, MixtureDrafter, random_dist, random_markov
from dsi_ref.policies import Policy, best_k, get_policy, si_next_k
from dsi_ref.randomness import Chooser, Key, Purpose
from dsi_ref.result import RunResult
from dsi_ref.sampling import SamplingConfig
from dsi_ref.sequential import reference_tokens
from dsi_ref.si import run_si

LOOKAHEAD_POLICIES = ("safe", "adaptive", "paper-adaptive", "measured")


def _blocks(pattern: list[bool], cfg: RunConfig) -> list[int]:
    """Drafts per SI block (its verification task's last - first) on a pattern run."""
    from dsi_ref.pattern import PATTERN_DRAFTER, PATTERN_TARGET, PatternChooser

    run = run_si(PATTERN_TARGET, PATTERN_DRAFTER, cfg, chooser=PatternChooser(pattern), record=True)
    assert run.trace is not None
    return [e["last"] - e["first"] for e in run.trace["events"] if e["ev"] == "task_submit"]


def test_heuristic_schedule_by_hand() -> None:
    cfg = RunConfig(max_tokens=20, k=2, policy="adaptive")
    # All accepted: 2 drafts (+bonus: 3 tokens), 4 (5), 6 (7), then 5 left: min(8, 4) = 4.
    assert _blocks([True] * 20, cfg) == [2, 4, 6, 4]
    # Rejections shrink k by one, not below 1.
    assert _blocks([False] * 20, cfg)[:4] == [2, 1, 1, 1]
    # accept-accept (k 2 -> 4), then a reject at the second draft (k 4 -> 3).
    pat = [True, True, True, True, False] + [True] * 15
    assert _blocks(pat, cfg)[:3] == [2, 4, 3]
    # The fixed (default) lookahead keeps k.
    assert set(_blocks(pat, dataclasses.replace(cfg, policy="safe"))[:-1]) == {2}


def test_measured_schedule_follows_best_k() -> None:
    lat = {"target_latency": Latency.of(1, 1), "drafter_latency": Latency.of("1/10", "1/10")}
    cfg = RunConfig(max_tokens=30, k=2, policy="measured", **lat)  # type: ignore[arg-type]
    pat = [True] * 30
    got = _blocks(pat, cfg)
    assert got[0] == 2
    # after the first block (2 of 2 accepted): best_k(2, 2, 1/10)
    assert got[1] == min(best_k(2, 2, 0.1), 30 - 3 - 1)
    assert best_k(2, 2, 0.1) != 2  # the measured k is not the start value here


def test_si_next_k_edges() -> None:
    h = get_policy("adaptive")
    assert si_next_k(h, 3, 0, False, 0, 0, 0.1, 10) == 3  # no drafts: unchanged
    assert si_next_k(h, 9, 3, True, 3, 3, 0.1, 10) == 10  # capped at n
    assert si_next_k(h, 1, 1, False, 0, 1, 0.1, 10) == 1  # not below 1
    assert si_next_k(get_policy("safe"), 3, 3, True, 3, 3, 0.1, 10) == 3


def _case(rng: random.Random, policy: str) -> tuple[LanguageModel, LanguageModel, RunConfig]:
    v = rng.choice([2, 4, 8])
    target = random_markov(v, 1, rng.randrange(100))
    drafter = MixtureDrafter(target, rng.random(), random_dist(rng, v, exact=False))
    n, k = rng.randrange(1, 40), rng.randrange(1, 6)
    return target, drafter, RunConfig(n, k, seed=rng.randrange(10**6), policy=policy)


@pytest.mark.parametrize("policy", LOOKAHEAD_POLICIES)
def test_greedy_tokens_equal_reference(policy: str) -> None:
    """Greedy: every position's token is argmax p, whatever the block sizes. (Sampling:
    SI's bonus token is keyed TARGET, a drafted one DRAFT/ACCEPT, so SI's tokens depend
    on where blocks end for every k schedule, fixed ones included; its law does not.)"""
    rng = random.Random(policy)
    greedy = SamplingConfig(greedy=True)
    for _ in range(40):
        target, drafter, cfg = _case(rng, policy)
        cfg = dataclasses.replace(cfg, sampling=greedy)
        assert run_si(target, drafter, cfg).tokens == reference_tokens(target, drafter, cfg), cfg


INSTANCES = [(1, 3), (2, 3), (1, 4), (3, 4)]  # (k, n), V = 2, exact order-1 tables


def _law_ok(policy: str, seed: int, k: int, n: int, run: Callable[..., RunResult] = run_si) -> bool:
    """Is the exact output law of `run` (SI by default) the target's on this instance?"""
    target = random_markov(2, 1, seed, exact=True, name="target")
    drafter = random_markov(2, 1, seed + 100, exact=True, name="drafter")
    cfg = RunConfig(n, k, seed=seed, policy=policy, drafter_latency=Latency.of(F(1, 4), F(1, 4)))

    def tokens(ch: Chooser) -> tuple[int, ...]:
        return run(target, drafter, cfg, chooser=ch).tokens

    return exact_law(tokens) == target_law(target, cfg.sampling, n, cfg.prompt)


@pytest.mark.parametrize("policy", ("adaptive", "measured"))
def test_exact_law_equals_target(policy: str) -> None:
    for seed, (k, n) in enumerate(INSTANCES):
        assert _law_ok(policy, seed, k, n), (policy, seed, k, n)


def test_planted_peeking_lookahead_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule that reads a future acceptance uniform (the next block's second
    position) and ends the next block before that position when the uniform is high (a
    likely rejection: the token there is then SI's bonus, from p) biases the law: caught
    by the same exact check."""
    from dsi_ref import si

    def peeking_si(
        target: LanguageModel, drafter: LanguageModel, cfg: RunConfig, chooser: Chooser
    ) -> RunResult:
        seen = {"verdicts": 0, "pos": 0}

        def planted(
            policy: Policy,
            k: int,
            drafts: int,
            all_ok: bool,
            accepted: int,
            verdicts: int,
            c: float,
            most: int,
        ) -> int:
            seen["pos"] += verdicts - seen["verdicts"] + (all_ok or drafts == 0)
            seen["verdicts"] = verdicts
            late = chooser.bernoulli(Key(seen["pos"] + 1, Purpose.ACCEPT), F(1, 2))
            return 1 if late else 2

        monkeypatch.setattr(si, "si_next_k", planted)
        return run_si(target, drafter, cfg, chooser=chooser)

    caught = sum(not _law_ok("safe", s, k, n, peeking_si) for s, (k, n) in enumerate(INSTANCES))
    assert caught > 0
