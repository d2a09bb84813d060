"""Confidence-based early stop of drafting (RunConfig.draft_confidence,
dsi_ref.policies.low_confidence) for SI and DSI: a block ends after a draft whose q's
largest probability is below the threshold. Block sizes follow it exactly on
constructed runs; the exact output law equals the target's and DSI's tokens equal the
sequential reference on every path of the enumerator's instances; a planted stop that
reads a future acceptance uniform is caught (SI: its law changes). DSI's tokens are
schedule independent (T6), so no block rule, peeking or not, can change them: the DSI
claim here is that the stop keeps T6, checked pathwise. Bad thresholds are refused.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from fractions import Fraction as F

import pytest

from dsi_ref.cli import main
from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.exact import exact_law
from dsi_ref.law import target_law
from dsi_ref.models import LanguageModel, random_markov
from dsi_ref.randomness import Chooser, Key, Purpose
from dsi_ref.result import RunResult
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi
from proofs.t6_schedule import same_tokens_law

TARGET = random_markov(4, 1, 3, exact=True)
DRAFTER = random_markov(4, 1, 4, exact=True)


def _verify_sizes(run: RunResult) -> list[int]:
    assert run.trace is not None
    return [
        e["last"] - e["first"]
        for e in run.trace["events"]
        if e["ev"] == "task_submit" and e["kind"] == "verify"
    ]


def test_threshold_one_cuts_every_block_to_one_draft() -> None:
    # No q of DRAFTER is a point mass, so every draft is below confidence 1.
    cfg = RunConfig(max_tokens=12, k=4, servers=2, draft_confidence=1)
    si = run_si(TARGET, DRAFTER, cfg, record=True)
    assert set(_verify_sizes(si)[:-1]) == {1}
    assert len(si.counters.verdicts_at) == 1
    dsi = run_dsi(TARGET, DRAFTER, cfg, record=True)
    assert set(_verify_sizes(dsi)) == {1}
    off = run_dsi(TARGET, DRAFTER, dataclasses.replace(cfg, draft_confidence=None), record=True)
    assert max(_verify_sizes(off)) == 4  # the control: without the stop, blocks of k


def test_tiny_threshold_is_off() -> None:
    cfg = RunConfig(max_tokens=16, k=3, servers=2, seed=5)
    tiny = dataclasses.replace(cfg, draft_confidence=F(1, 10**9))
    for run in (run_si, run_dsi):
        a, b = run(TARGET, DRAFTER, cfg), run(TARGET, DRAFTER, tiny)
        assert (a.tokens, a.latency, a.counters) == (b.tokens, b.latency, b.counters)


def test_point_mass_drafts_never_stop() -> None:
    sure = random_markov(4, 0, 1, exact=True)
    one_hot = type(sure)(4, 0, {(): (1, 0, 0, 0)})
    cfg = RunConfig(max_tokens=9, k=3, draft_confidence=1)
    assert _verify_sizes(run_si(sure, one_hot, cfg, record=True))[0] == 3


INSTANCES = [(1, 3, 1), (2, 3, 2), (3, 4, 1), (2, 4, 2)]  # (k, n, P), V = 2
THRESHOLD = F(3, 4)  # between the q maxima of these tables: some drafts stop a block


def _pair(seed: int) -> tuple[LanguageModel, LanguageModel]:
    return (
        random_markov(2, 1, seed, exact=True, name="target"),
        random_markov(2, 1, seed + 100, exact=True, name="drafter"),
    )


def _law_ok(run: Callable[..., RunResult], seed: int, k: int, n: int, p: int) -> bool:
    target, drafter = _pair(seed)
    cfg = RunConfig(n, k, p, seed=seed, draft_confidence=THRESHOLD, preemptive=seed % 2 == 0)

    def tokens(ch: Chooser) -> tuple[int, ...]:
        return run(target, drafter, cfg, chooser=ch).tokens

    return exact_law(tokens) == target_law(target, cfg.sampling, n, cfg.prompt)


def test_threshold_bites_on_the_instances() -> None:
    cut = 0
    for seed, (k, n, p) in enumerate(INSTANCES):
        target, drafter = _pair(seed)
        cfg = RunConfig(n, k, p, seed=seed, draft_confidence=THRESHOLD)
        on = _verify_sizes(run_si(target, drafter, cfg, record=True))
        off = _verify_sizes(
            run_si(target, drafter, dataclasses.replace(cfg, draft_confidence=None), record=True)
        )
        cut += on != off
    assert cut > 0


@pytest.mark.parametrize("run", [run_si, run_dsi], ids=["si", "dsi"])
def test_exact_law_equals_target(run: Callable[..., RunResult]) -> None:
    for seed, (k, n, p) in enumerate(INSTANCES):
        assert _law_ok(run, seed, k, n, p), (seed, k, n, p)


def test_dsi_tokens_equal_reference_on_every_path() -> None:
    for seed, (k, n, p) in enumerate(INSTANCES):
        target, drafter = _pair(seed)
        for policy in ("safe", "paper", "adaptive"):
            cfg = RunConfig(
                n, k, p, seed=seed, draft_confidence=THRESHOLD, preemptive=False, policy=policy
            )

            assert same_tokens_law(target, drafter, cfg) == {True: 1}, cfg


def test_planted_peeking_stop_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """SI that ends a block when the *next* position's acceptance uniform is high (read
    through the chooser: the future) has a different exact law."""
    from dsi_ref import si

    def peeking_si(
        target: LanguageModel, drafter: LanguageModel, cfg: RunConfig, chooser: Chooser
    ) -> RunResult:
        drafted = {"pos": -1}
        real_draft = si.workers_for

        def workers(*a: object, **kw: object) -> object:
            verifier, scorer, dw = real_draft(*a, **kw)  # type: ignore[arg-type]
            inner = dw.draft

            def draft(chain: list[int], pos: int) -> object:
                drafted["pos"] = pos
                return inner(chain, pos)

            dw.draft = draft  # type: ignore[method-assign]
            return verifier, scorer, dw

        def planted(q: object, threshold: object) -> bool:
            nxt = Key(drafted["pos"] + 1, Purpose.ACCEPT)
            return chooser.bernoulli(nxt, F(1, 2))

        monkeypatch.setattr(si, "workers_for", workers)
        monkeypatch.setattr(si, "low_confidence", planted)
        return run_si(target, drafter, cfg, chooser=chooser)

    caught = sum(not _law_ok(peeking_si, s, k, n, p) for s, (k, n, p) in enumerate(INSTANCES))
    assert caught > 0


@pytest.mark.parametrize("bad", [0, 2, -0.5, "0.5", True, float("nan")])
def test_bad_threshold_refused(bad: object) -> None:
    with pytest.raises(InvalidConfig, match="draft_confidence"):
        RunConfig(max_tokens=4, draft_confidence=bad)  # type: ignore[arg-type]


def test_cli_flag(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--pair", "exact3", "--max-tokens", "10", "--k", "3", "--json"]
    out = io.StringIO()
    assert main([*args, "--draft-confidence", "1"], out) == 0
    by_alg = {r["algorithm"]: r for r in json.loads(out.getvalue())["results"]}
    assert len(by_alg["si"]["verdicts_by_position"]) == 1  # every block one draft
    err = io.StringIO()
    capsys.readouterr()
    assert main([*args, "--draft-confidence", "1.5"], err) == 2
    # the flag's name, not the API's, and no "or None" (a flag is left out instead)
    assert "--draft-confidence must be a number in (0, 1], got 3/2" in capsys.readouterr().err
