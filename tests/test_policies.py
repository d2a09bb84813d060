"""Scheduling policies (dsi_ref.policies): lossless and schedule independent, checked
traces, adaptive lookahead, selection by name and by CLI flag.

The exact law of every policy equals the target's on the enumerator's instances in
proofs/t7_policies.py (`every_policy_lossless_and_schedule_independent`, run by
test_proofs.py); here the same claim is checked pathwise on larger random instances:
DSI's tokens under every policy, on both clocks, equal the sequential reference's for
the same seed (T6), and every recorded trace passes the checker. Pathwise claims: one
counterexample refutes them, so there is no false-alarm level. The planted lossy
policy (p kept across a rejection) is caught by the exact check in proofs/t7.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
from fractions import Fraction as F
from typing import Any

import pytest

from dsi_ref.checker import check_trace
from dsi_ref.cli import main
from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MixtureDrafter, random_dist, random_markov
from dsi_ref.pattern import PATTERN_DRAFTER, PATTERN_TARGET, PatternChooser
from dsi_ref.policies import DEFAULT_POLICY, MAX_MEASURED_K, POLICIES, Policy, best_k, get_policy
from dsi_ref.sequential import reference_tokens
from dsi_ref.theory.closed_form import si_rate
from dsi_ref.virtual import run_dsi


def _case(rng: random.Random) -> tuple[LanguageModel, LanguageModel, RunConfig]:
    v = rng.choice([2, 4, 8])
    target = random_markov(v, 1, rng.randrange(100))
    drafter = MixtureDrafter(target, rng.random(), random_dist(rng, v, exact=False))
    cfg = RunConfig(
        max_tokens=rng.randint(1, 24),
        k=rng.randint(1, 6),
        servers=rng.randint(1, 5),
        seed=rng.randrange(10**6),
        target_latency=Latency.of(F(rng.randint(1, 8), 4), F(rng.randint(1, 4), 4)),
        drafter_latency=Latency.of(F(rng.randint(1, 4), 8), F(rng.randint(1, 4), 8)),
    )
    return target, drafter, cfg


@pytest.mark.parametrize("preemptive", [True, False])
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_tokens_equal_reference_and_traces_pass(policy: str, preemptive: bool) -> None:
    rng = random.Random(12_000 + 2 * sorted(POLICIES).index(policy) + preemptive)
    for _ in range(40):
        target, drafter, cfg = _case(rng)
        cfg = dataclasses.replace(cfg, policy=policy, preemptive=preemptive)
        run = run_dsi(target, drafter, cfg, record=True)
        assert run.tokens == reference_tokens(target, drafter, cfg), cfg
        assert run.trace is not None
        report = check_trace(run.trace, target=target, drafter=drafter)
        assert report.ok, (cfg, report.violations[:3])


def test_safe_and_paper_agree_on_the_preemptive_clock() -> None:
    """The non-preemption knobs act only without preemption (golden results stand)."""
    rng = random.Random(5)
    for _ in range(30):
        target, drafter, cfg = _case(rng)
        a = run_dsi(target, drafter, dataclasses.replace(cfg, policy="paper"))
        b = run_dsi(target, drafter, dataclasses.replace(cfg, policy="safe"))
        assert (a.latency, a.counters) == (b.latency, b.counters), cfg


def _blocks(pattern: tuple[bool, ...], cfg: RunConfig) -> list[int]:
    """Drafts per verification task submitted (last - first), in order."""
    run = run_dsi(
        PATTERN_TARGET, PATTERN_DRAFTER, cfg, chooser=PatternChooser(pattern), record=True
    )
    assert run.trace is not None
    return [
        e["last"] - e["first"]
        for e in run.trace["events"]
        if e["ev"] == "task_submit" and e["kind"] == "verify"
    ]


def test_heuristic_lookahead_grows_and_shrinks() -> None:
    """transformers' schedule: +2 after a block whose drafts all pass, -1 (>= 1) after
    a rejection, seen in the blocks submitted. One pattern (reject at 7), n = 16,
    k = 2, P = 1, drafter half the target's cost (a much faster drafter cuts every
    block before the first verdict, so k never changes there)."""
    pattern = (True,) * 7 + (False,) + (True,) * 8
    half = Latency.of(F(1, 2), F(1, 2))
    cfg = RunConfig(16, 2, 1, policy="adaptive", drafter_latency=half, preemptive=False)
    # fresh blocks: k drafts, the bonus draft beside the pass belongs to it. 2 drafts
    # (0, 1) all pass: k = 4 (3..6); they pass, 7 is rejected: k = 6 - 1 = 5 (8..12);
    # the last block is cut at n - 2.
    assert _blocks(pattern, cfg) == [2, 4, 5, 1]
    assert set(_blocks(pattern, dataclasses.replace(cfg, policy="safe"))) <= {1, 2}
    pre = dataclasses.replace(cfg, preemptive=True)
    assert _blocks(pattern, pre) != _blocks(pattern, dataclasses.replace(pre, policy="paper"))


@pytest.mark.parametrize("bad", ["fast", "", None, 3, "SAFE"])
def test_bad_policy_names_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidConfig, match="policy must be") as e:
        RunConfig(4, 2, 2, policy=bad)
    assert repr(bad) in str(e.value) or str(bad) in str(e.value)
    with pytest.raises(InvalidConfig, match="policy must be"):
        get_policy(bad)
    with pytest.raises(InvalidConfig, match="lookahead must be"):
        Policy("x", lookahead="sometimes")


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "2"])
def test_bad_extend_servers_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidConfig, match="extend_servers must be") as e:
        Policy("x", extend_on_start=True, extend_servers=bad)
    assert repr(bad) in str(e.value)


def test_safe_extends_only_up_to_two_servers() -> None:
    """`safe` extends queued tasks at P <= 2 only (docs/theorems.md T7 (b)); the policies
    derived from it keep extending at every P."""
    assert POLICIES["safe"].extend_servers == 2
    for name in ("eager", "adaptive", "measured"):
        assert POLICIES[name].extend_on_start and POLICIES[name].extend_servers is None


def test_default_policy_is_safe() -> None:
    assert DEFAULT_POLICY == "safe" and RunConfig(3, 1, 1).policy == "safe"
    assert get_policy(POLICIES["paper"]) is POLICIES["paper"]


def test_cli_policy_flag(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    argv = ["run", "--algorithm", "dsi", "--max-tokens", "24", "--k", "2", "--servers", "1"]
    argv += ["--drafter-ttft", "1/2", "--drafter-tpot", "1/2", "--json"]
    assert main([*argv, "--policy", "paper-adaptive"], out) == 0
    adaptive = json.loads(out.getvalue())["results"][0]
    out = io.StringIO()
    assert main([*argv, "--policy", "paper"], out) == 0
    paper = json.loads(out.getvalue())["results"][0]
    assert adaptive["tokens"] == paper["tokens"]  # schedule independence
    assert adaptive != paper  # the lookahead changed the schedule
    out = io.StringIO()
    assert main([*argv[:-1], "--policy", "paper", "--no-preemption"], out) == 0
    assert "policy paper, non-preemptive clock" in out.getvalue()
    runs = []
    for flags in ([], ["--no-preemption"]):
        out = io.StringIO()
        assert main([*argv, "--policy", "safe", *flags], out) == 0
        runs.append(json.loads(out.getvalue())["results"][0])
    assert runs[0]["tokens"] == runs[1]["tokens"] == paper["tokens"]
    # recorded: 15 time units and 15 target passes preemptive, 31/2 and 9 without
    assert (runs[0]["latency"], runs[1]["latency"]) == ("15", "31/2")
    assert main(["run", "--policy", "fastest"], io.StringIO()) == 2
    assert "'fastest'" in capsys.readouterr().err


@pytest.mark.parametrize("a", [F(1, 10), F(1, 2), F(4, 5), F(19, 20)])
@pytest.mark.parametrize("c", [F(1, 100), F(1, 10), F(1, 2), F(9, 10)])
def test_best_k_is_the_closed_form_argmin(a: F, c: F) -> None:
    """best_k (floats, every verdict) picks closed_form.si_rate's exact argmin."""
    # accepted + 1 = a (verdicts + 2): a = 1/10 at (1, 18), 1/2 at (1, 2), ...
    acc, verdicts = a.numerator * 20 - 1, a.denominator * 20 - 2
    assert F(acc + 1, verdicts + 2) == a
    want = min(range(1, MAX_MEASURED_K + 1), key=lambda k: si_rate(a, c, k))
    assert best_k(acc, verdicts, float(c)) == want


def test_measured_lookahead_follows_acceptance() -> None:
    """All accepted: k climbs to the cap's neighbourhood; all rejected: k = 1."""
    half = Latency.of(F(1, 10), F(1, 10))
    cfg = RunConfig(40, 2, 1, policy="measured", drafter_latency=half, preemptive=False)
    grown = _blocks((True,) * 40, cfg)
    assert grown[0] == 2 and max(grown) > 8, grown
    assert set(_blocks((False,) * 40, cfg)) <= {1, 2}
