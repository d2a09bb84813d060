"""Tests that kill the mutants docs/verification.md once listed as equivalent.

- verify.py `ratio >= 1` -> `ratio > 1` (#1) and -> `ratio >= 2` (#2): the law is the
  same, but the Verifier asks a Bernoulli question whose answer is always yes, so
  exact_law's count of random questions (its `max_calls` budget) grows. Killed by
  asking that no ACCEPT question is asked when p(draft) >= q(draft).
- scheduler.py `_drop_useless`, the clause for a queued target-only task: unreachable in
  a preemptive run (tests/test_scheduler_timing.py), reachable in a non-preemptive one
  (a cancelled pass holds the only server, so the target-only task for the next
  position waits). `t.first in s.p_avail` -> `not in` (#9) cancels a needed task and
  submits the same task again in the same instant (one extra submit and cancel in the
  counters and the trace); `or` -> `and` (#8) leaves a task queued though a
  verification task covering its position at no greater cost was submitted (it is
  cancelled one event later: the trace changes, the counters do not).

Each check reads the trace alone. The configurations were found by a random search
(seeded, 80,000 non-preemptive runs, 2026-12-07): a queued target-only task appears in
162 of them, the covered case (#8) in 3. Planted by hand: #1, #2, #8
and #9 each fail a test here. About 0.5 s of CPU.
"""

from __future__ import annotations

import random
from fractions import Fraction as F
from typing import Any

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MixtureDrafter, random_dist, random_markov
from dsi_ref.randomness import Key, Purpose, SeededChooser
from dsi_ref.si import run_si
from dsi_ref.verify import Verifier
from dsi_ref.virtual import run_dsi

# ----- verify.py: no question when the ratio is >= 1 ------------------------------


class _Counting(SeededChooser):
    """Records every Bernoulli question; answers as the seeded chooser does."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.asked: list[tuple[Key, Any]] = []

    def bernoulli(self, key: Key, prob: Any) -> bool:
        self.asked.append((key, prob))
        return super().bernoulli(key, prob)


@pytest.mark.parametrize(("p_draft", "q_draft"), [(F(1, 2), F(1, 2)), (F(3, 4), F(1, 2))])
def test_no_acceptance_question_when_p_is_at_least_q(p_draft: F, q_draft: F) -> None:
    """Ratio 1 (kills #1) and 3/2 (kills #2): accepted without asking."""
    chooser = _Counting(0)
    p = (p_draft, 1 - p_draft)
    q = (q_draft, 1 - q_draft)
    assert Verifier(chooser, False).verify(0, p, q, 0) == (0, True)
    assert chooser.asked == []


def test_si_with_drafter_equal_to_target_asks_no_acceptance_question() -> None:
    target = random_markov(3, 1, 5, exact=True)
    chooser = _Counting(7)
    res = run_si(target, target, RunConfig(max_tokens=8, k=3), chooser=chooser)
    assert res.counters.drafts_accepted >= 5
    assert [k for k, _ in chooser.asked if k.purpose == Purpose.ACCEPT] == []


def test_a_ratio_below_one_is_asked() -> None:
    """Positive control: the counting chooser does see the questions that are asked."""
    chooser = _Counting(0)
    Verifier(chooser, False).verify(0, (F(1, 4), F(3, 4)), (F(1, 2), F(1, 2)), 0)
    assert chooser.asked == [(Key(0, Purpose.ACCEPT), F(1, 2))]


# ----- scheduler.py: the queued target-only clause, non-preemptive -----------------


def _pair(v: int, seed: int, noise: float) -> tuple[LanguageModel, LanguageModel]:
    target = random_markov(v, 1, seed)
    r = random_dist(random.Random(seed + 1), v, exact=False)
    return target, MixtureDrafter(target, noise, r)


# (vocabulary, model seed, noise, n, k, run seed, target latency, drafter latency)
Case = tuple[int, int, float, int, int, int, Latency, Latency]
_PP = F(1, 4)  # a verification pass is dearer than a one-position pass: it does not cover
WAITING: list[Case] = [  # a target-only task waits and is needed (#9)
    (
        4,
        36,
        0.9365230922325852,
        16,
        1,
        970104,
        Latency.of(2, 1, per_position=_PP),
        Latency.of(F(5, 4), 2),
    ),
    (
        2,
        92,
        0.9280449986510366,
        10,
        2,
        534876,
        Latency.of(3, 1, per_position=_PP),
        Latency.of(F(5, 4), F(3, 2)),
    ),
    (
        8,
        15,
        0.1732258118019434,
        15,
        3,
        931903,
        Latency.of(4, 1, per_position=_PP),
        Latency.of(F(3, 2), 2),
    ),
]
COVERED: list[Case] = [  # a waiting target-only task becomes covered (#8)
    (8, 4, 0.711664492020446, 9, 1, 193267, Latency.of(2, 1), Latency.of(F(3, 2), F(7, 4))),
    (4, 18, 0.2863331625619596, 14, 1, 418665, Latency.of(2, 1), Latency.of(F(3, 2), F(7, 4))),
    (8, 94, 0.8578636268335514, 13, 1, 729056, Latency.of(2, 1), Latency.of(F(7, 4), F(3, 2))),
]


def _trace(case: Case) -> tuple[Latency, list[dict[str, Any]]]:
    v, mseed, noise, n, k, seed, tl, dl = case
    target, drafter = _pair(v, mseed, noise)
    cfg = RunConfig(
        max_tokens=n,
        k=k,
        servers=1,
        seed=seed,
        target_latency=tl,
        drafter_latency=dl,
        preemptive=False,
        policy="paper",  # the cases were found under the paper's policy
    )
    trace = run_dsi(target, drafter, cfg, record=True).trace
    assert trace is not None
    return tl, trace["events"]


def _instants(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for e in events:
        if out and out[-1][0]["t"] == e["t"]:
            out[-1].append(e)
        else:
            out.append([e])
    return out


def _waited(events: list[dict[str, Any]]) -> int:
    """Target-only tasks still queued at the end of the instant they were submitted in."""
    late = 0
    for instant in _instants(events):
        submitted = {e["id"] for e in instant if e["ev"] == "task_submit" and e["kind"] == "target"}
        started = {e["id"] for e in instant if e["ev"] in ("task_start", "task_cancel")}
        late += len(submitted - started)
    return late


@pytest.mark.parametrize("case", WAITING, ids=["a", "b", "c"])
def test_a_needed_waiting_target_task_is_not_cancelled_and_resubmitted(case: Case) -> None:
    """Kills #9: a task cancelled as useless is never submitted again in the same instant."""
    _, events = _trace(case)
    assert _waited(events) >= 1  # the clause is reached: a target-only task waited
    shape = {
        e["id"]: (e["kind"], e["first"], e["last"], e["chain"])
        for e in events
        if e["ev"] == "task_submit"
    }
    for instant in _instants(events):
        dropped = {
            shape[e["id"]] for e in instant if e["ev"] == "task_cancel" and e["reason"] == "useless"
        }
        again = [shape[e["id"]] for e in instant if e["ev"] == "task_submit"]
        assert not dropped & set(again), f"t={instant[0]['t']}: cancelled as useless, resubmitted"


def _covered_waiting(tl: Latency, events: list[dict[str, Any]]) -> list[str]:
    """Instants that end with a queued target-only task at c while another live task
    scores c in a pass no dearer than a one-position pass at c (what `_covered` asks)."""

    def cost(first: int, last: int) -> F:
        return (tl.ttft if first == 0 else tl.tpot) + (last - first) * tl.per_position

    live: dict[int, tuple[str, int, int, bool]] = {}  # id -> (kind, first, last, started)
    bad: list[str] = []
    for instant in _instants(events):
        for e in instant:
            if e["ev"] == "task_submit":
                live[e["id"]] = (e["kind"], e["first"], e["last"], False)
            elif e["ev"] == "task_start":
                kind, first, last, _ = live[e["id"]]
                live[e["id"]] = (kind, first, last, True)
            elif e["ev"] in ("task_cancel", "task_done"):
                live.pop(e["id"], None)
        for tid, (kind, c, _, started) in live.items():
            if kind == "target" and not started:
                for oid, (_, first, last, _) in live.items():
                    if oid != tid and first <= c <= last and cost(first, last) <= cost(c, c):
                        bad.append(f"t={instant[0]['t']}: task {tid} at {c} covered by {oid}")
    return bad


@pytest.mark.parametrize("case", COVERED, ids=["a", "b", "c"])
def test_a_covered_waiting_target_task_is_dropped_at_once(case: Case) -> None:
    """Kills #8: no instant ends with a queued target-only task that another covers."""
    tl, events = _trace(case)
    assert _waited(events) >= 1
    assert _covered_waiting(tl, events) == []


def test_the_covered_check_can_fail() -> None:
    """Negative control: the check flags a hand-made trace where the task is left queued."""
    tl = Latency.of(2, 1)
    events = [
        {"t": "5", "ev": "task_submit", "id": 6, "kind": "target", "first": 3, "last": 3},
        {"t": "6", "ev": "task_submit", "id": 8, "kind": "verify", "first": 3, "last": 4},
    ]
    assert _covered_waiting(tl, events) == ["t=6: task 6 at 3 covered by 8"]
