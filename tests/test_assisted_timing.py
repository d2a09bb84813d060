"""transformers' assisted generation in timing mode (gpu_runner.assisted_timing) accepts the
draft at generated position p exactly when the runner's BernoulliRule does.

The committed tokens are f(p) whatever is accepted, so acceptance is read off the target's
verification passes (which positions each scores: the log the hooks keep) and checked
three ways: against U(seed, p, ACCEPT) < a computed here from dsi_ref directly, against
the passes transformers' schedule must make for that pattern (simulated here), and against
the target passes of the runner's own SI in timing mode. Controls: a hook keyed one
position off, and a = 0 against a = 1, are caught by the same checks.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from gpu_fixtures import llama, torch

from dsi_ref.errors import InvalidConfig
from dsi_ref.randomness import Key, Purpose, keyed_uniform
from gpu_runner import assisted_timing
from gpu_runner.api import RunnerConfig, run
from gpu_runner.assisted_timing import AssistedLog, assisted_timing_run, keyed_acceptance
from gpu_runner.errors import IncompatiblePair
from gpu_runner.passes import BernoulliRule

V, N = 32, 24
PROMPT = [1, 2, 3, 4]
SEEDS = [0, 3, 11]  # seed 3: f(11) is 2, the models' eos id (a block must not end there)
ACCEPTANCES = [0.0, 0.3, 0.8, 1.0]
# (num_assistant_tokens, schedule) as the drafter's generation config holds them; None:
# transformers' defaults (20, constant, confidence threshold 0.4).
SETTINGS: dict[str, tuple[int | None, str | None]] = {
    "defaults": (None, None),
    "constant-3": (3, "constant"),
    "constant-5": (5, "constant"),
    "heuristic-5": (5, "heuristic"),
}
DEFAULT_K = 20


def _llama(seed: int, hidden: int, vocab: int = V) -> Any:
    return llama(seed, hidden, vocab=vocab, dtype=torch.float32)


TARGET, DRAFTER = _llama(0, 32), _llama(1, 16)


def f(seed: int, p: int) -> int:
    return int(keyed_uniform(seed, Key(p, Purpose.DRAFT)) * V)


def accepts(seed: int, a: float, p: int) -> bool:
    return keyed_uniform(seed, Key(p, Purpose.ACCEPT)) < a


def schedule_spans(seed: int, a: float, k: int, schedule: str) -> list[tuple[int, int]]:
    """The target passes (first, last position scored) that transformers' assisted decoding
    makes for the keyed pattern: a block drafts min(k, N - i - 1) tokens (the last position
    is the target's), keeps them up to the first rejection, plus the target's token; the
    heuristic schedule then adds 2 to k if all were kept, else takes 1 off (at least 1)."""
    spans, i = [], 0
    while i < N:
        m = min(k, N - i - 1)
        spans.append((i, i + m))
        kept = 0
        while kept < m and accepts(seed, a, i + kept):
            kept += 1
        if schedule == "heuristic":
            k = k + 2 if kept == m else max(1, k - 1)
        i += kept + 1
    return spans


def mismatches(
    seed: int, a: float, k: int, schedule: str, tokens: Any, log: AssistedLog
) -> list[str]:
    """Every way a run differs from the keyed pattern (empty: it is the rule's)."""
    bad = []
    if list(tokens) != [f(seed, p) for p in range(N)]:
        bad.append(f"tokens {list(tokens)}")
    want = schedule_spans(seed, a, k, schedule)
    if log.target != want:
        bad.append(f"target passes {log.target}, want {want}")
    verdicts = log.verdicts(N)
    wrong = [p for p, ok in verdicts.items() if ok != accepts(seed, a, p)]
    if wrong:
        bad.append(f"verdicts at {wrong} are not U < a")
    drafts = sum(last - first for first, last in want)
    if len(log.drafter) != drafts:  # one drafter forward per draft
        bad.append(f"{len(log.drafter)} drafter forwards, want {drafts}")
    return bad


def _run(seed: int, a: float, setting: str) -> Any:
    k, schedule = SETTINGS[setting]
    return assisted_timing_run(
        TARGET, DRAFTER, PROMPT, N, seed=seed, acceptance=a,
        num_assistant_tokens=k, schedule=schedule,
    )  # fmt: skip


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_acceptance_is_the_rules(setting: str) -> None:
    k, schedule = SETTINGS[setting]
    for seed in SEEDS:
        for a in ACCEPTANCES:
            r = _run(seed, a, setting)
            bad = mismatches(seed, a, k or DEFAULT_K, schedule or "constant", r.tokens, r.log)
            assert not bad, (seed, a, bad)
            verdicts = r.log.verdicts(N)
            if a in (0.0, 1.0):  # every verified draft rejected / accepted
                assert set(verdicts.values()) <= {a == 1.0}


@pytest.mark.parametrize(
    ("k", "policy", "setting"),
    [(3, "safe", "constant-3"), (5, "safe", "constant-5"), (5, "adaptive", "heuristic-5")],
)
def test_same_passes_as_the_runners_si(k: int, policy: str, setting: str) -> None:
    """The runner's SI in timing mode (fixed k = 3 and 5; the heuristic +2/-1 k from 5) scores the
    same positions in the same target passes and reaches the same verdicts."""
    for seed in SEEDS:
        cfg = RunnerConfig(
            algorithm="si", max_new_tokens=N, k=k, acceptance=0.6, seed=seed, policy=policy
        )
        si = run(TARGET, DRAFTER, PROMPT, cfg, backend="threads")
        spans = [(p, p + w - 1) for kind, p, w, _ in si.pass_log if kind == "target"]
        r = _run(seed, 0.6, setting)
        assert r.log.target == spans
        assert len(r.log.target) == si.costs.target_forwards
        drafted = r.log.verdicts(N)
        assert drafted == {p: si.accepted[p] for p in drafted}


class _OneOff(BernoulliRule):
    """The control: the drafter's verdict at p is the rule's at p + 1."""

    def verify(self, position: int, p: object, q: object, draft: int) -> tuple[int, bool]:
        _, ok = super().verify(position + 1, p, q, draft)
        return (draft if ok else (draft + 1) % self.vocab_size), ok


def test_control_one_position_off_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assisted_timing, "BernoulliRule", _OneOff)
    caught = []
    for seed in SEEDS:
        r = _run(seed, 0.5, "constant-3")
        caught.append(bool(mismatches(seed, 0.5, 3, "constant", r.tokens, r.log)))
    assert all(caught)


def test_control_acceptance_changes_the_passes() -> None:
    none, every = _run(1, 0.0, "constant-3"), _run(1, 1.0, "constant-3")
    assert len(none.log.target) == N  # one token per target pass
    assert len(every.log.target) == math.ceil(N / 4)  # k + 1 tokens per target pass
    assert mismatches(1, 0.0, 3, "constant", every.tokens, every.log)
    assert mismatches(1, 1.0, 3, "constant", none.tokens, none.log)


def _count(m: Any) -> int:
    return sum(len(x._forward_hooks) for x in m.modules())


BASE_HOOKS = {id(m): _count(m) for m in (TARGET, DRAFTER)}


def _hooks(m: Any) -> int:
    """Forward hooks on the modules of m beyond those there at import."""
    return _count(m) - BASE_HOOKS[id(m)]


def test_hooks_removed_and_models_restored() -> None:
    ids = torch.tensor([PROMPT])

    def plain() -> list[int]:
        with torch.no_grad():
            out = TARGET.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        return [int(t) for t in out[0].tolist()]

    before = plain()
    configs = [(m.generation_config.to_dict()) for m in (TARGET, DRAFTER)]
    with keyed_acceptance(TARGET, DRAFTER, len(PROMPT), seed=0, acceptance=1.0):
        assert _hooks(TARGET) == _hooks(DRAFTER) == 1
        assert plain()[len(PROMPT) :] == [f(0, p) for p in range(8)]
    assert _hooks(TARGET) == _hooks(DRAFTER) == 0
    assert plain() == before
    with (
        pytest.raises(RuntimeError, match="boom"),
        keyed_acceptance(TARGET, DRAFTER, 4, seed=0, acceptance=0.5),
    ):
        raise RuntimeError("boom")
    assert _hooks(TARGET) == _hooks(DRAFTER) == 0
    _run(0, 0.8, "heuristic-5")
    assert [m.generation_config.to_dict() for m in (TARGET, DRAFTER)] == configs
    assert _hooks(TARGET) == _hooks(DRAFTER) == 0


BAD: list[tuple[dict[str, Any], str]] = [
    ({"prompt_len": 0}, "0"),
    ({"prompt_len": -2}, "-2"),
    ({"prompt_len": True}, "True"),
    ({"prompt_len": 4.0}, "4.0"),
    ({"seed": -1}, "-1"),
    ({"seed": 2**64}, str(2**64)),
    ({"seed": 1.5}, "1.5"),
    ({"seed": "1"}, "'1'"),
    ({"seed": False}, "False"),
    ({"acceptance": 1.5}, "1.5"),
    ({"acceptance": -0.1}, "-0.1"),
    ({"acceptance": math.nan}, "nan"),
    ({"acceptance": True}, "True"),
    ({"acceptance": "0.8"}, "'0.8'"),
    ({"acceptance": None}, "None"),
]


@pytest.mark.parametrize(("bad", "shown"), BAD, ids=[str(b) for b, _ in BAD])
def test_bad_input_is_named(bad: dict[str, Any], shown: str) -> None:
    kw: dict[str, Any] = {"prompt_len": 4, "seed": 0, "acceptance": 0.8, **bad}
    with (
        pytest.raises(InvalidConfig, match=f"got {re.escape(shown)}$"),
        keyed_acceptance(TARGET, DRAFTER, kw.pop("prompt_len"), **kw),
    ):
        pass
    assert _hooks(TARGET) == _hooks(DRAFTER) == 0


def test_bad_pair_and_token_count() -> None:
    with (
        pytest.raises(IncompatiblePair, match="33"),
        keyed_acceptance(TARGET, _llama(2, 16, vocab=V + 1), 4, seed=0, acceptance=0.5),
    ):
        pass
    with pytest.raises(InvalidConfig, match=r"got 0$"):
        assisted_timing_run(TARGET, DRAFTER, PROMPT, 0, seed=0, acceptance=0.5)
    assert _hooks(TARGET) == _hooks(DRAFTER) == 0
