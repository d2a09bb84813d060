"""The trace checker: real traces pass, each planted mutation gives its own violation.

Nothing here is statistical: every trace is a deterministic function of its
config, so each assertion is exact. The negative controls are the mutations and
the planted faults of tests/faulty.py; the positive controls are the unmutated
traces of the same runs.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from fractions import Fraction as F
from pathlib import Path
from typing import Any

import pytest
from faulty import Fault, planted
from hypothesis import given, settings
from hypothesis import strategies as st

from dsi_ref.checker import (
    CANCEL,
    COMMIT,
    DRAFT,
    LIFECYCLE,
    MODEL,
    PREFIX,
    SERVER,
    TIME,
    VERIFY,
    CheckReport,
    check_trace,
)
from dsi_ref.config import RunConfig
from dsi_ref.errors import TraceError
from dsi_ref.latency import Latency
from dsi_ref.models import MarkovModel, MixtureDrafter, random_markov
from dsi_ref.nonsi import run_nonsi
from dsi_ref.randomness import SeededChooser
from dsi_ref.result import RunResult
from dsi_ref.sampling import SamplingConfig
from dsi_ref.si import run_si
from dsi_ref.trace import load_trace, to_version1, to_version2
from dsi_ref.verify import Verifier
from dsi_ref.virtual import run_dsi
from dsi_ref.workers import REFERENCE_PARTS, RunParts

Trace = dict[str, Any]
DOC = Path(__file__).resolve().parent.parent / "docs" / "trace-format.md"


def pair(seed: int, exact: bool, vocab: int = 4) -> tuple[MarkovModel, MixtureDrafter]:
    """A random order-1 target and a drafter that mixes it half-half with a point mass."""
    target = random_markov(vocab, 1, seed, exact=exact)
    one: F | float = F(1) if exact else 1.0
    noise = tuple(one if i == 0 else one - one for i in range(vocab))
    return target, MixtureDrafter(target, F(1, 2) if exact else 0.5, noise)


def run(
    alg: str,
    seed: int = 0,
    exact: bool = True,
    parts: RunParts = REFERENCE_PARTS,
    **cfg_kw: Any,
) -> tuple[RunResult, Trace]:
    target, drafter = pair(seed, exact)
    cfg_kw.setdefault("max_tokens", 8)
    cfg = RunConfig(seed=seed, **cfg_kw)
    if alg == "nonsi":
        res = run_nonsi(target, cfg, record=True, parts=parts)
    else:
        res = (run_si if alg == "si" else run_dsi)(target, drafter, cfg, record=True, parts=parts)
    assert res.trace is not None
    return res, copy.deepcopy(res.trace)


def rules(report: CheckReport) -> set[str]:
    return {r for r in report.summary["violations_by_rule"]}


def events_of(trace: Trace, ev: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, e) for i, e in enumerate(trace["events"]) if e["ev"] == ev]


def one_violation(trace: Trace, rule: str, *needles: str) -> str:
    """Check the trace; it must break `rule` (only), in a message holding every needle."""
    report = check_trace(trace)
    assert not report.ok
    assert rules(report) == {rule}, report.violations
    hits = [v for v in report.violations if all(n in v for n in needles)]
    assert hits, (needles, report.violations)
    return hits[0]


# ----- real traces pass -------------------------------------------------------

CONFIGS = [
    dict(k=1, servers=1),
    dict(k=2, servers=2),
    dict(k=3, servers=4, max_tokens=9),
    dict(k=2, servers=3, point_mass_proposal=True),
    dict(k=2, servers=2, prompt=(1, 2)),
    dict(
        k=4,
        servers=2,
        target_latency=Latency.of(2, "1/2"),
        drafter_latency=Latency.of("1/5", "1/7"),
    ),
]
SAMPLINGS = [
    SamplingConfig(),
    SamplingConfig(greedy=True),
    SamplingConfig(temperature=F(1, 2), top_k=3),
]


@pytest.mark.parametrize("alg", ["nonsi", "si", "dsi"])
@pytest.mark.parametrize("exact", [True, False], ids=["fraction", "float"])
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=lambda s: s.describe())
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_real_traces_pass(alg: str, exact: bool, sampling: SamplingConfig, cfg: Any) -> None:
    for seed in range(3):
        res, trace = run(alg, seed, exact, sampling=sampling, **cfg)
        target, drafter = pair(seed, exact)
        report = check_trace(trace, target=target, drafter=drafter, sampling=sampling)
        assert report.ok, report.violations
        # After a JSON round trip too (floats are written with repr, so they come back equal).
        assert check_trace(json.loads(json.dumps(trace))).ok
        s = report.summary
        assert s["commits"] == len(res.tokens) == trace["max_tokens"]
        assert s["violations"] == 0 and s["violations_by_rule"] == {}
        assert s["max_busy_servers"] <= trace["servers"]


def test_summary_counts_match_the_run_counters() -> None:
    res, trace = run("dsi", seed=4, k=2, servers=3, max_tokens=12)
    s = check_trace(trace).summary
    c = res.counters
    assert (s["accepted"], s["rejected"]) == (c.drafts_accepted, c.drafts_rejected)
    assert s["tasks_cancelled"] == c.tasks_cancelled
    assert s["drafts_started"] == c.drafter_forwards
    assert len(events_of(trace, "task_start")) == c.target_forwards
    assert s["rejected"] > 0 and s["tasks_cancelled"] > 0  # the trace exercises rule 5


# ----- each mutation gives its own violation ------------------------------------


def overlapping_start(trace: Trace) -> tuple[int, int, int]:
    """(event index, task, busy server) of a task_start that could move onto a busy server."""
    running: dict[int, int] = {}
    for i, e in enumerate(trace["events"]):
        if e["ev"] == "task_start":
            others = [s for s in running.values() if s != e["server"]]
            if others:
                return i, e["id"], others[0]
            running[e["id"]] = e["server"]
        elif e["ev"] in ("task_done", "task_cancel"):
            running.pop(e["id"], None)
    raise AssertionError("no two tasks ever ran at once")


def test_two_tasks_on_one_server() -> None:
    _, trace = run("dsi", k=2, servers=2)
    i, tid, server = overlapping_start(trace)
    trace["events"][i]["server"] = server
    report = check_trace(trace)
    assert SERVER in rules(report)
    hit = [v for v in report.violations if v.startswith(f"event {i} ")]
    assert hit and f"task {tid} started on server {server} while task" in hit[0], hit


def test_server_outside_range() -> None:
    _, trace = run("nonsi")
    i, _ = events_of(trace, "task_start")[0]
    trace["events"][i]["server"] = 1
    one_violation(trace, SERVER, f"event {i} ", "server 1, not in 0..0")


def test_commit_citing_a_cancelled_task() -> None:
    """The task that verified a commit is recorded as cancelled instead of done."""
    _, trace = run("dsi", k=2, servers=2)
    i, c = events_of(trace, "commit")[3]
    j, done = next((j, e) for j, e in events_of(trace, "task_done") if e["id"] == c["task"])
    trace["events"][j] = {"t": done["t"], "ev": "task_cancel", "id": c["task"], "reason": "useless"}
    one_violation(trace, PREFIX, f"event {i} ", f"cites task {c['task']}, cancelled at event {j}")


@pytest.mark.parametrize("version", [1, 2])
def test_commit_citing_a_task_on_a_disagreeing_prefix(version: int) -> None:
    _, trace = run("si", k=3)
    v1 = to_version1(trace)
    i, c = next((i, e) for i, e in events_of(trace, "commit") if e["pos"] >= 2)
    j, sub = next((j, e) for j, e in events_of(v1, "task_submit") if e["id"] == c["task"])
    tokens = list(sub["tokens"])
    tokens[0] = (tokens[0] + 1) % trace["vocab_size"]
    if version == 1:
        trace = v1
        sub["tokens"] = tokens
    else:  # the whole prefix listed instead of taken from the chain
        trace["events"][j].update(chain=0, tokens=tokens)
    one_violation(trace, PREFIX, f"event {i} ", f"cites task {c['task']} whose tokens[:")


def test_missing_task_cancellation_after_a_rejection() -> None:
    _, trace = run("dsi", k=2, servers=2)
    events = trace["events"]
    i = next(i for i, e in enumerate(events) if e.get("reason") == "rejection")
    tid = events[i]["id"]
    rejection = max(j for j, e in events_of(trace, "commit") if j < i)
    # Postpone the cancellation past the instant (to the end of the run).
    moved = events.pop(i)
    moved["t"] = events[-1]["t"]
    events.insert(len(events) - 1, moved)
    report = check_trace(trace)
    assert CANCEL in rules(report)
    assert any(
        v.startswith(f"event {rejection} ") and f"task {tid} built on token" in v
        for v in report.violations
    ), report.violations


def test_task_finishing_instead_of_being_cancelled_after_a_rejection() -> None:
    _, trace = run("dsi", k=2, servers=2)
    events = trace["events"]
    i = next(
        i
        for i, e in enumerate(events)
        if e.get("reason") == "rejection"
        and any(e["id"] == x["id"] for _, x in events_of(trace, "task_start"))
    )
    tid = events[i]["id"]
    rejection = max(j for j, e in events_of(trace, "commit") if j < i)
    events[i] = {"t": events[i]["t"], "ev": "task_done", "id": tid}
    one_violation(trace, CANCEL, f"event {rejection} ", f"task {tid} built on token", "finished")


def draft_cancelled_by_rejection(trace: Trace) -> tuple[int, int] | None:
    """(index of a draft_cancel, index of the rejection it follows), if the run has one."""
    events = trace["events"]
    for i, e in events_of(trace, "draft_cancel"):
        start = next(j for j, x in events_of(trace, "draft_start") if x["id"] == e["id"])
        for j in range(start + 1, i):
            c = events[j]
            if c["ev"] == "commit" and c["accepted"] is False and c["t"] == e["t"]:
                return i, j
    return None


def test_missing_draft_cancellation_after_a_rejection() -> None:
    # A drafter whose passes never end with a target pass: when they end together, the
    # draft is taken in before the rejection, so no draft is in flight to cancel.
    slow = Latency.of("3/10")
    for seed in range(20):
        _, trace = run("dsi", seed, k=3, servers=3, max_tokens=12, drafter_latency=slow)
        found = draft_cancelled_by_rejection(trace)
        if found:
            break
    else:
        raise AssertionError("no run cancelled a draft after a rejection")
    i, rejection = found
    e = trace["events"][i]
    # The draft finishes instead of being cancelled: well-formed, but rule 5 is broken,
    # and the finished draft does not extend the chain the rejection cut (rule 3).
    trace["events"][i] = {"t": e["t"], "ev": "draft_done", "id": e["id"], "token": 0}
    report = check_trace(trace)
    assert rules(report) == {CANCEL, LIFECYCLE}, report.violations
    assert any(
        v.startswith(f"event {rejection} ") and f"draft {e['id']} in flight at the rejection" in v
        for v in report.violations
    )
    assert any(
        v.startswith(f"event {i} ") and f"draft {e['id']} at position" in v
        for v in report.violations
    )


# ----- drafts: what a commit verifies, how many run at once -----------------------


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("alg", ["si", "dsi"])
def test_draft_done_token_contradicting_the_commit(alg: str, version: int) -> None:
    """The drafter made token x at position j; the commit says it verified another."""
    _, trace = run(alg, k=2, servers=2)
    if version == 1:
        trace = to_version1(trace)
    i, c = next((i, e) for i, e in events_of(trace, "commit") if e["source"] == "verify")
    done = last_draft_done_at(trace, c["pos"], i)
    done["token"] = (c["draft"] + 1) % trace["vocab_size"]
    report = check_trace(trace)
    assert DRAFT in rules(report)
    want = (
        f"event {i} (t={c['t']}): {DRAFT}: commit at position {c['pos']} verifies draft "
        f"{c['draft']}, but the draft done at position {c['pos']} (event "
    )
    assert any(v.startswith(want) for v in report.violations), report.violations


@pytest.mark.parametrize("alg", ["si", "dsi"])
def test_speculative_trace_without_draft_events(alg: str) -> None:
    _, trace = run(alg, k=2, servers=2)
    verify = [i for i, e in events_of(trace, "commit") if e["source"] == "verify"]
    trace = to_version1(trace)  # so that task prefixes do not need the drafts
    trace["events"] = [e for e in trace["events"] if not e["ev"].startswith("draft_")]
    report = check_trace(trace)
    drafts = [v for v in report.violations if DRAFT in v]
    assert len(drafts) == len(verify)
    assert all("but no draft done at position" in v for v in drafts)
    # The tasks' prefixes hold tokens that now nobody drafted: rule 4 [prefix] too.
    assert rules(report) == {DRAFT, PREFIX}, report.violations
    assert all("nothing committed or drafted it" in v for v in report.violations if PREFIX in v)


@pytest.mark.parametrize("alg", ["si", "dsi"])
def test_speculative_trace_that_verifies_nothing(alg: str) -> None:
    """A non-SI run relabelled SI or DSI passes rules 2-7 commit by commit, but an SI
    or DSI run must verify drafts."""
    _, trace = run("nonsi", max_tokens=3)
    assert check_trace(trace).ok
    trace["algorithm"] = alg
    one_violation(trace, DRAFT, "end of trace", f"algorithm '{alg}' verifies drafts")
    if alg == "si":  # one token: SI's only commit is its bonus token, with no draft
        _, one = run("nonsi", max_tokens=1)
        one["algorithm"] = "si"
        assert check_trace(one).ok


@pytest.mark.parametrize("version", [1, 2])
def test_task_submitted_on_a_token_nobody_made(version: int) -> None:
    """A task that already holds the corrected token of a rejection that comes later:
    at its submission the chain had the draft there, not that token."""
    for seed in range(30):
        _, trace = run("dsi", seed, k=2, servers=2, max_tokens=10)
        v1 = to_version1(trace)
        rejections = [c for _, c in events_of(v1, "commit") if c["accepted"] is False]
        for c in rejections:
            r = c["pos"]
            subs = [
                (i, e)
                for i, e in events_of(v1, "task_submit")
                if len(e["tokens"]) > r and e["tokens"][r] != c["token"]
            ]
            if subs:
                break
        else:
            continue
        i, sub = subs[0]
        sub["tokens"][r] = c["token"]
        trace = v1 if version == 1 else to_version2(v1)
        report = check_trace(trace)
        assert PREFIX in rules(report)
        want = f"task {sub['id']} is submitted on token {c['token']} at position {r}, but"
        assert any(v.startswith(f"event {i} ") and want in v for v in report.violations)
        return
    raise AssertionError("no run had a task built on a rejected draft")


def test_draft_at_a_position_without_a_prefix() -> None:
    """A draft moved two positions ahead: the drafter cannot have had its prefix."""
    _, trace = run("si", k=3)
    start = events_of(trace, "draft_start")[1][1]
    j, done = events_of(trace, "draft_done")[1]
    assert start["id"] == done["id"] and done["pos"] == start["pos"]
    start["pos"] = done["pos"] = start["pos"] + 2
    report = check_trace(trace)
    assert LIFECYCLE in rules(report)
    assert any(
        v.startswith(f"event {j} ")
        and f"draft {done['id']} at position {done['pos']} does not extend the chain: position" in v
        and "has no prefix" in v
        for v in report.violations
    ), report.violations


def test_two_drafts_in_flight() -> None:
    _, trace = run("dsi", k=2, servers=2)
    events = trace["events"]
    i = next(
        i
        for i in range(1, len(events))
        if events[i]["ev"] == "draft_start" and events[i - 1]["ev"] == "draft_done"
    )
    events[i - 1], events[i] = events[i], events[i - 1]  # start the next before this ends
    one_violation(
        trace,
        SERVER,
        f"event {i - 1} ",
        f"draft {events[i - 1]['id']} started while draft(s) [{events[i]['id']}] are in flight",
    )
    trace["drafters"] = 2  # an engine with two drafter instances says so
    assert check_trace(trace).ok


def test_cancel_for_rejection_without_a_rejection() -> None:
    _, trace = run("nonsi")
    events = trace["events"]
    i, sub = events_of(trace, "task_submit")[2]
    events.insert(
        i + 1, {"t": sub["t"], "ev": "task_cancel", "id": sub["id"], "reason": "rejection"}
    )
    report = check_trace(trace)
    assert CANCEL in rules(report)
    assert any(f"task {sub['id']} cancelled for 'rejection'" in v for v in report.violations)


def test_flipped_token() -> None:
    _, trace = run("nonsi")
    i, c = events_of(trace, "commit")[-1]
    c["token"] = (c["token"] + 1) % trace["vocab_size"]
    trace["result"]["tokens"][-1] = c["token"]
    one_violation(trace, VERIFY, f"event {i} ", "is not the target sample")


def test_flipped_token_breaks_the_result_too() -> None:
    _, trace = run("nonsi")
    trace["result"]["tokens"][0] ^= 1
    one_violation(trace, COMMIT, "result tokens")


def test_wrong_accepted_flag() -> None:
    _, trace = run("si", k=3)
    i, c = next((i, e) for i, e in events_of(trace, "commit") if e["accepted"])
    c["accepted"] = False
    v = one_violation(trace, VERIFY, f"event {i} ", "accepted = False")
    assert "equals draft" in v


def last_draft_done_at(trace: Trace, pos: int, before: int) -> dict[str, Any]:
    """The last draft_done at position `pos` before event `before`."""
    start = {e["id"]: e["pos"] for _, e in events_of(trace, "draft_start")}
    return next(
        e
        for i, e in reversed(events_of(trace, "draft_done"))
        if i < before and start[e["id"]] == pos
    )


def test_draft_that_does_not_follow_the_keyed_randomness() -> None:
    """Swap the last draft for another token the verifier would also accept."""
    for seed in range(30):
        _, trace = run("dsi", seed, k=2, servers=2)
        i, c = events_of(trace, "commit")[-1]
        if c["source"] != "verify":
            continue
        p = tuple(F(x) for x in c["p"])
        q = tuple(F(x) for x in c["q"])
        verifier = Verifier(SeededChooser(seed), greedy=False)
        for other in range(trace["vocab_size"]):
            if (
                other != c["draft"]
                and q[other] > 0
                and verifier.verify(c["pos"], p, q, other)
                == (
                    other,
                    True,
                )
            ):
                c.update(draft=other, token=other, accepted=True)
                last_draft_done_at(trace, c["pos"], i)["token"] = other  # the drafter agrees
                trace["result"]["tokens"][-1] = other
                one_violation(trace, VERIFY, f"event {i} ", "does not follow the keyed randomness")
                return
    raise AssertionError("no run offered a swappable draft")


def test_positions_out_of_order() -> None:
    _, trace = run("si", k=3)
    events = trace["events"]
    i = next(i for i, e in events_of(trace, "commit") if events[i + 1]["ev"] == "commit")
    events[i], events[i + 1] = events[i + 1], events[i]
    report = check_trace(trace)
    assert COMMIT in rules(report)
    assert any(v.startswith(f"event {i} ") and "out of order" in v for v in report.violations)


def test_position_committed_twice_and_one_missing() -> None:
    _, trace = run("nonsi", max_tokens=4)
    _, c = events_of(trace, "commit")[-1]
    c["pos"] = 2
    report = check_trace(trace)
    assert COMMIT in rules(report)
    assert any("position 2 is committed a second time" in v for v in report.violations)
    assert any("1 of 4 positions were never committed (first: [3])" in v for v in report.violations)


def test_absurd_positions_and_lengths_stay_cheap() -> None:
    """A billion-token claim is reported, not replayed (this test would hang otherwise)."""
    _, trace = run("nonsi", max_tokens=3)
    _, c = events_of(trace, "commit")[-1]
    c["pos"] = 10**9
    trace["max_tokens"] = 10**9
    report = check_trace(trace)
    assert any("position 1000000000, outside 0..999999999" in v for v in report.violations)
    assert any(
        f"{10**9 - 2} of {10**9} positions were never committed" in v for v in report.violations
    )
    c["pos"] = 10**9 - 1  # inside the range: its prefix is not built either
    report = check_trace(trace)
    assert any(
        "commit at position 999999999 out of order: position 2 is next" in v
        for v in report.violations
    )
    assert any(
        "whose tokens[:999999999] differ from the committed tokens at position 2: task has "
        "nothing, committed nothing" in v
        for v in report.violations
    ), report.violations


def test_times_decreasing() -> None:
    _, trace = run("nonsi")
    i, sub = events_of(trace, "task_submit")[2]
    assert sub["t"] == "2"
    sub["t"] = "3/2"
    one_violation(trace, TIME, f"event {i} (t=3/2)", "time goes back from 2 to 3/2")


def test_events_after_done_and_missing_done() -> None:
    _, trace = run("nonsi")
    done = trace["events"].pop()
    one_violation(copy.deepcopy(trace), COMMIT, "no 'done' event")
    trace["events"].insert(0, {**done, "t": "0"})
    one_violation(trace, COMMIT, "event 1 (t=0)", "event after 'done'")


def test_task_lifecycle() -> None:
    _, trace = run("nonsi")
    i, e = events_of(trace, "task_done")[1]
    trace["events"].insert(i + 1, {**e})
    one_violation(trace, LIFECYCLE, f"event {i + 1} ", "but it was already done")


def test_invalid_distribution_is_a_violation() -> None:
    _, trace = run("nonsi")
    i, c = events_of(trace, "commit")[0]
    c["p"] = ["1/2", "1/2", "1/2", "-1/2"]
    report = check_trace(trace)
    assert rules(report) == {VERIFY}
    assert any(v.startswith(f"event {i} ") and "negative" in v for v in report.violations)


# ----- the optional model oracle (rule 8) ----------------------------------------


def test_model_oracle_sees_a_wrong_p_that_rule_7_cannot() -> None:
    _, trace = run("nonsi", max_tokens=3)
    target, _ = pair(0, True)
    other, _ = pair(1, True)
    assert check_trace(trace, target=target).ok
    report = check_trace(trace, target=other)
    assert rules(report) == {MODEL}
    assert "the target gives" in report.violations[0]


# ----- planted faults ----------------------------------------------------------

# Faults the checker must catch from the trace alone, and those that need models.
TRACE_ONLY = (
    Fault.UNVERIFIED_PREFIX,
    Fault.COMMIT_CANCELLED,
    Fault.ALWAYS_ACCEPT,
    Fault.RESIDUAL_FROM_P,
)


@pytest.mark.parametrize("fault", list(Fault), ids=lambda f: f.value)
def test_every_effective_fault_is_flagged(fault: Fault) -> None:
    """A fault either leaves the trace unchanged (it never fired) or the check fails."""
    fired = 0
    for seed in range(30):
        for exact in (True, False):
            target, drafter = pair(seed, exact)
            for runner in (run_si, run_dsi):
                cfg = RunConfig(max_tokens=8, k=2, servers=3, seed=seed)
                clean = runner(target, drafter, cfg, record=True).trace
                bad = runner(target, drafter, cfg, record=True, parts=planted(fault)).trace
                assert clean is not None and bad is not None
                if bad == clean:
                    assert check_trace(bad).ok
                    continue
                fired += 1
                assert not check_trace(bad, target=target, drafter=drafter).ok, (
                    seed,
                    exact,
                    runner.__name__,
                )
                if fault in TRACE_ONLY:
                    assert not check_trace(bad).ok, (seed, exact, runner.__name__)
    assert fired >= 20  # the loop exercised the fault


@pytest.mark.parametrize(
    ("fault", "rule"), [(Fault.UNVERIFIED_PREFIX, CANCEL), (Fault.COMMIT_CANCELLED, PREFIX)]
)
def test_scheduler_faults_break_their_rule(fault: Fault, rule: str) -> None:
    _, clean = run("dsi", k=2, servers=3)
    _, bad = run("dsi", k=2, servers=3, parts=planted(fault))
    assert check_trace(clean).ok
    assert rule in rules(check_trace(bad))


# ----- malformed input raises TraceError naming the bad value ----------------------


def set_field(path: tuple[Any, ...], value: Any) -> Callable[[Trace], Any]:
    def mutate(trace: Trace) -> Any:
        obj: Any = trace
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
        return trace

    return mutate


def drop(path: tuple[Any, ...]) -> Callable[[Trace], Any]:
    def mutate(trace: Trace) -> Any:
        obj: Any = trace
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]
        return trace

    return mutate


MALFORMED: list[tuple[str, Callable[[Trace], Any], str]] = [
    ("list instead of object", lambda tr: tr["events"], "got list"),
    ("missing events", drop(("events",)), "missing field 'events'"),
    ("events not a list", set_field(("events",), {}), "'events' = {}"),
    ("unknown event", set_field(("events", 0, "ev"), "teleport"), "'teleport'"),
    ("bad time", set_field(("events", 3, "t"), "abc"), "event 3: field 't' = 'abc'"),
    ("zero denominator", set_field(("events", 3, "t"), "1/0"), "'1/0' is not"),
    ("time as a number", set_field(("events", 3, "t"), 1.5), "= 1.5"),
    ("wrong format", set_field(("format",), "other"), "'other'"),
    ("wrong version", set_field(("version",), 3), "'version' = 3"),
    ("missing header field", drop(("vocab_size",)), "missing field 'vocab_size'"),
    ("bool for int", set_field(("max_tokens",), True), "'max_tokens' = True"),
    ("server as string", set_field(("events", 1, "server"), "0"), "event 1 (task_start)"),
    ("event not an object", set_field(("events", 2), [1]), "event 2 = [1]"),
    ("bad probability", set_field(("events", 3, "p", 0), "x/2"), "p[0] = 'x/2'"),
    ("bad source", set_field(("events", 3, "source"), "oracle"), "'oracle'"),
    ("target commit with q", set_field(("events", 3, "q"), ["1"]), "has no 'q'"),
    ("missing result", drop(("result",)), "'result' = None"),
    ("bad tokens", set_field(("result", "tokens"), [1, "2"]), "[1, '2']"),
]


@pytest.mark.parametrize(("what", "mutate", "needle"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_traces_raise(what: str, mutate: Callable[[Trace], Any], needle: str) -> None:
    _, trace = run("nonsi", max_tokens=2)
    assert trace["events"][3]["ev"] == "commit" and trace["events"][1]["ev"] == "task_start"
    with pytest.raises(TraceError) as err:
        check_trace(mutate(trace))
    assert needle in str(err.value), str(err.value)


def test_verify_commit_needs_its_draft() -> None:
    _, trace = run("si", k=2)
    i, c = events_of(trace, "commit")[0]
    assert c["source"] == "verify"
    c["draft"] = None
    with pytest.raises(TraceError, match=rf"event {i} \(commit\): .* needs field 'draft'"):
        check_trace(trace)


def test_files_that_are_not_json_or_not_objects(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TraceError, match=r"bad\.json.* is not JSON"):
        load_trace(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(TraceError, match="holds a list"):
        load_trace(bad)


# ----- the documented example ---------------------------------------------------


def doc_example() -> Trace:
    """The first JSON example of docs/trace-format.md: the version-2 one."""
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2  # version 2, then the same run in version 1
    data = json.loads(blocks[0])
    assert isinstance(data, dict) and data["version"] == 2
    return data


def test_documented_example_passes_and_its_mutation_fails() -> None:
    trace = doc_example()
    report = check_trace(trace)
    assert report.ok, report.violations
    assert report.summary["rejected"] == 1
    target = MarkovModel(3, 0, {(): (F(1, 2), F(1, 4), F(1, 4))})
    assert check_trace(trace, target=target).ok
    _, c = events_of(trace, "commit")[0]
    c["token"] = (c["token"] + 1) % 3
    assert VERIFY in rules(check_trace(trace))


# ----- robustness: any mutation gives a report or a TraceError, nothing else --------

BASES = [
    run(alg, seed, exact, k=2, servers=2)[1]
    for alg, seed, exact in [
        ("nonsi", 0, True),
        ("si", 1, True),
        ("dsi", 2, True),
        ("dsi", 3, False),
    ]
]
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.just(10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["0", "1", "1/2", "-1/3", "abc", "1/0", "2.5", "", "verify", "target"]),
    st.lists(st.integers(-1, 5), max_size=6),
    st.lists(st.sampled_from(["0", "1/2", "1/4", "1", "-1/4", "x"]), max_size=5),
    st.lists(st.floats(-1, 2), max_size=5),
)


@st.composite
def mutated_trace(draw: st.DrawFn) -> Trace:
    trace = copy.deepcopy(draw(st.sampled_from(BASES)))
    events = trace["events"]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set", "drop", "del_event", "dup", "swap", "header"]))
        i = draw(st.integers(0, len(events) - 1))
        e = events[i]
        if op == "set":
            e[draw(st.sampled_from(sorted(e)))] = draw(JSON_VALUES)
        elif op == "drop" and e:
            del e[draw(st.sampled_from(sorted(e)))]
        elif op == "del_event" and len(events) > 1:
            del events[i]
        elif op == "dup":
            events.insert(i, copy.deepcopy(e))
        elif op == "swap":
            j = draw(st.integers(0, len(events) - 1))
            events[i], events[j] = events[j], events[i]
        elif op == "header":
            key = draw(
                st.sampled_from(
                    [
                        "max_tokens",
                        "servers",
                        "seed",
                        "vocab_size",
                        "greedy",
                        "point_mass_proposal",
                        "prompt",
                        "k",
                    ]
                )
            )
            trace[key] = draw(JSON_VALUES)
    return trace


@settings(max_examples=400, derandomize=True, deadline=None)
@given(mutated_trace())
def test_any_mutation_gives_a_report_or_a_trace_error(trace: Trace) -> None:
    """Deterministic (derandomized) fuzzing; the checker must never crash another way."""
    try:
        report = check_trace(trace)
    except TraceError as e:
        assert str(e)
        return
    assert report.ok == (not report.violations)
    indices = [int(m.group(1)) for v in report.violations if (m := re.match(r"event (\d+)", v))]
    assert indices == sorted(indices)  # violations come in event order
    assert all(
        re.match(r"(event \d+|end of trace|result).* \(t=.*\): rule \d", v)
        for v in report.violations
    ), report.violations


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.sampled_from(BASES), st.data())
def test_any_changed_commit_token_is_caught(base: Trace, data: st.DataObject) -> None:
    trace = copy.deepcopy(base)
    commits = events_of(trace, "commit")
    i, c = data.draw(st.sampled_from(commits))
    c["token"] = data.draw(
        st.integers(0, trace["vocab_size"] - 1).filter(lambda x: x != c["token"])
    )
    trace["result"]["tokens"][c["pos"]] = c["token"]
    report = check_trace(trace)
    assert any(v.startswith(f"event {i} ") and VERIFY in v for v in report.violations)


def test_report_format_lists_every_violation() -> None:
    _, trace = run("nonsi")
    assert check_trace(trace).format().startswith("OK (events=")
    trace["result"]["tokens"][0] ^= 1
    text = check_trace(trace).format()
    assert text.startswith("FAIL: 1 violation(s)") and "result tokens" in text.splitlines()[1]


def test_float_tolerance_of_the_model_oracle() -> None:
    """A float engine whose p is off by 1e-12 fails rule 8 exactly, passes within tol."""
    _, trace = run("nonsi", exact=False, max_tokens=3)
    target, _ = pair(0, exact=False)
    _, c = events_of(trace, "commit")[1]
    c["p"][0] += 1e-12
    c["p"][1] -= 1e-12
    assert check_trace(trace).ok  # rules 1-7 see a valid p and the same sampled token
    strict = check_trace(trace, target=target, tol=0)
    assert rules(strict) == {MODEL} and "position 1" in strict.violations[0]
    assert check_trace(trace, target=target).ok  # within the default DEFAULT_TOL = 1e-9
    c["p"][0] += 1e-7
    c["p"][1] -= 1e-7
    assert rules(check_trace(trace, target=target)) == {MODEL}


def test_decimal_times_are_exact_rationals() -> None:
    _, trace = run("si", k=2, drafter_latency=Latency.of("1/4", "1/8"))
    for e in trace["events"]:
        e["t"] = str(float(F(e["t"])))  # "0.375": exact, since denominators are powers of 2
    trace["result"]["latency"] = str(float(F(trace["result"]["latency"])))
    assert check_trace(trace).ok
    i, e = events_of(trace, "draft_done")[0]
    e["t"] = "0.1e1"
    with pytest.raises(TraceError, match=rf"event {i}: field 't' = '0.1e1'"):
        check_trace(trace)


@st.composite
def random_run(draw: st.DrawFn) -> tuple[Trace, MarkovModel, MixtureDrafter, SamplingConfig]:
    vocab = draw(st.integers(2, 6))
    exact = draw(st.booleans())
    target = random_markov(vocab, draw(st.integers(0, 2)), draw(st.integers(0, 999)), exact)
    one: F | float = F(1) if exact else 1.0
    noise_at = draw(st.integers(0, vocab - 1))
    r = tuple(one if i == noise_at else one - one for i in range(vocab))
    w = F(draw(st.integers(0, 4)), 4)
    drafter = MixtureDrafter(target, w if exact else float(w), r)
    sampling = draw(
        st.sampled_from(
            [
                SamplingConfig(),
                SamplingConfig(greedy=True),
                SamplingConfig(temperature=F(1, 2)),
                SamplingConfig(top_k=2),
                SamplingConfig(top_p=F(1, 2)),
            ]
        )
    )
    ratio = st.integers(1, 8)
    cfg = RunConfig(
        max_tokens=draw(st.integers(1, 16)),
        k=draw(st.integers(1, 5)),
        servers=draw(st.integers(1, 5)),
        seed=draw(st.integers(0, 10**6)),
        sampling=sampling,
        target_latency=Latency.of(F(draw(ratio), 4), F(draw(ratio), 4)),
        drafter_latency=Latency.of(F(draw(ratio), 16), F(draw(ratio), 16)),
        prompt=tuple(draw(st.lists(st.integers(0, vocab - 1), max_size=2))),
        point_mass_proposal=draw(st.booleans()),
    )
    alg = draw(st.sampled_from(["nonsi", "si", "dsi"]))
    if alg == "nonsi":
        res = run_nonsi(target, cfg, record=True)
    else:
        res = (run_si if alg == "si" else run_dsi)(target, drafter, cfg, record=True)
    assert res.trace is not None
    return res.trace, target, drafter, sampling


@settings(max_examples=60, derandomize=True, deadline=None)
@given(random_run())
def test_random_configs_pass_with_models(case: tuple[Any, ...]) -> None:
    """No false alarms over the config space (a one-off sweep of 13,734 runs found none)."""
    trace, target, drafter, sampling = case
    report = check_trace(trace, target=target, drafter=drafter, sampling=sampling)
    assert report.ok, report.violations
