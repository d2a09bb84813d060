"""Concurrency of the real executor, and traces of it that the checker must reject.

With every pass replaced by a fixed wait (latency-injected, timing mode), P=4
target servers must really run at once: the summed time inside passes must
exceed the wall time by far. This asserts overlap, not speed: the margin (1.5x
where 4 servers busy most of the time give ~2-3x) leaves room for a loaded CI box.
"""

from __future__ import annotations

import copy

from gpu_fixtures import pair

from dsi_ref.checker import check_trace
from dsi_ref.latency import Latency
from gpu_runner.api import RunnerConfig, run
from gpu_runner.passes import Waits

TARGET, DRAFTER = pair()
# Target passes 40 ms, drafts 1 ms, k=1: a new task every ms, so 4 servers stay busy.
WAITS = Waits(Latency.of("0.04"), Latency.of("0.001"), replace=True)


def _run(servers: int) -> tuple[float, float, dict[str, object]]:
    # The paper's policy: the default ('safe') never keeps more than two servers busy.
    cfg = RunnerConfig(
        max_new_tokens=24, k=1, servers=servers, acceptance=1.0, waits=WAITS, policy="paper"
    )
    r = run(TARGET, DRAFTER, [1, 2], cfg, record=True)
    target_busy = sum(s for kind, _, _, s in r.pass_log if kind == "target")
    assert r.trace is not None
    return r.wall, target_busy, r.trace


def test_four_servers_overlap() -> None:
    wall, busy, trace = _run(4)
    assert check_trace(trace).ok
    assert busy > 1.5 * wall, f"target passes summed {busy:.3f} s in {wall:.3f} s of wall time"
    starts = [e for e in trace["events"] if e["ev"] == "task_start"]
    assert {e["server"] for e in starts} == {0, 1, 2, 3}


def test_doctored_runner_traces_are_rejected() -> None:
    _, _, trace = _run(2)
    assert check_trace(trace).ok
    ev = trace["events"]
    # Two tasks on one server: move the second start onto the first start's server.
    starts = [i for i, e in enumerate(ev) if e["ev"] == "task_start"]
    two = copy.deepcopy(trace)
    two["events"][starts[1]]["server"] = ev[starts[0]]["server"]
    assert not check_trace(two).ok
    # A stale commit: the committed token no longer follows from its p and q.
    commits = [i for i, e in enumerate(ev) if e["ev"] == "commit"]
    stale = copy.deepcopy(trace)
    c = stale["events"][commits[3]]
    c["token"] = (c["token"] + 1) % len(c["p"])
    assert not check_trace(stale).ok
