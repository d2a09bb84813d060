"""Worker faults survived: a killed process, a hung pass, an exception in a pass.

Each fault is planted once (tests/transport_faults.py) in a pass that scores or
drafts a chosen position; the run must detect it, reissue the lost pass, and end
with exactly the tokens of a fault-free run with the same seed, with a trace that
records the fault and passes the checker. A worker that fails every time ends the
run with a typed WorkerFailure naming the cause, never a hang. Negative control:
the same planted faults do change the run (a `fault` event, a restart).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpu_fixtures import pair
from transport_faults import FaultyPasses

from dsi_ref.checker import check_trace
from dsi_ref.sampling import SamplingConfig
from gpu_runner.api import RunnerConfig, make_rule, run
from gpu_runner.passes import PassMaker
from gpu_runner.transport.interface import WorkerFailure
from gpu_runner.transport.processes import ProcessBackend

TARGET, DRAFTER = pair()
PROMPT = [3, 1, 4]
CFG = RunnerConfig(
    max_new_tokens=12, k=3, servers=2, seed=5, sampling=SamplingConfig(temperature=0.8)
)
DEADLINE = 4.0  # the tiny pair's passes take milliseconds; a loaded box, well under this


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessBackend]:
    with ProcessBackend(deadline=DEADLINE, max_restarts=1) as p:
        yield p


@pytest.fixture(scope="module")
def clean() -> tuple[int, ...]:
    return run(TARGET, DRAFTER, PROMPT, CFG).tokens


def _passes(how: str, where: str, at: int, marker: Path | None) -> FaultyPasses:
    base = PassMaker(CFG.sampling, make_rule(CFG, 32), None)
    return FaultyPasses(base, how, where, at, None if marker is None else str(marker))


@pytest.mark.parametrize(
    "how,where", [("die", "target"), ("raise", "target"), ("hang", "target"), ("die", "drafter")]
)
def test_fault_is_survived_with_identical_tokens(
    pool: ProcessBackend, clean: tuple[int, ...], tmp_path: Path, how: str, where: str
) -> None:
    passes = _passes(how, where, 4, tmp_path / "fired")
    # One server: its pass cannot be skipped (a cancelled one still holds the server).
    cfg = dataclasses.replace(CFG, servers=1) if how == "hang" else CFG
    r = run(TARGET, DRAFTER, PROMPT, cfg, backend=pool, record=True, passes=passes)
    assert (tmp_path / "fired").exists(), "the planted fault never fired"
    assert r.tokens == clean, f"{how} in {where}: {r.tokens} != fault-free {clean}"
    assert r.trace is not None
    faults = [e for e in r.trace["events"] if e["ev"] == "fault"]
    kind = {"die": "died", "raise": "raised", "hang": "hung"}[how]
    assert [f["kind"] for f in faults] == [kind], faults
    assert faults[0]["worker"].startswith("drafter" if where == "drafter" else "server")
    assert r.costs.faults == 1
    report = check_trace(r.trace)
    assert report.ok, report.violations[:5]


def test_every_server_dead_is_a_typed_error(pool: ProcessBackend, tmp_path: Path) -> None:
    passes = _passes("die", "target", 0, None)  # every target pass at position 0 dies
    with pytest.raises(WorkerFailure, match=r"every target server is dead: server\d died"):
        run(TARGET, DRAFTER, PROMPT, CFG, backend=pool, passes=passes)
    # The pool recovers for the next run.
    assert (
        run(TARGET, DRAFTER, PROMPT, CFG, backend=pool).tokens
        == run(TARGET, DRAFTER, PROMPT, CFG).tokens
    )


def test_raise_in_a_thread_is_survived_too(clean: tuple[int, ...], tmp_path: Path) -> None:
    passes = _passes("raise", "target", 4, tmp_path / "fired")
    r = run(TARGET, DRAFTER, PROMPT, CFG, record=True, passes=passes)
    assert r.tokens == clean and r.costs.faults == 1
    assert r.trace is not None and check_trace(r.trace).ok
