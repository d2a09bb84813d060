"""The `processes` backend: one OS process per worker, same scheduler, rule and trace.

One pool for the module (its forkserver imports torch once; runs reuse the worker
processes). Greedy tokens must equal transformers' `generate`, sampled tokens
dsi_ref's run on the same models, every trace must pass the checker, and with
latency-injected passes P = 4 servers must really run at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpu_fixtures import VOCAB, greedy_reference, pair

from dsi_ref import RunConfig, run_dsi, run_si
from dsi_ref.checker import check_trace
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.nonsi import run_nonsi
from dsi_ref.sampling import SamplingConfig
from gpu_runner.adapter import TorchLM
from gpu_runner.api import RunnerConfig, run
from gpu_runner.cli import main
from gpu_runner.passes import Waits
from gpu_runner.transport.processes import ProcessBackend

TARGET, DRAFTER = pair()
N = 12


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessBackend]:
    with ProcessBackend(deadline=60.0) as p:
        yield p


def test_greedy_equals_transformers_generate(pool: ProcessBackend) -> None:
    prompt = [5, 9, 11]
    want = greedy_reference(TARGET, prompt, N)
    for alg, k, servers in (("dsi", 3, 2), ("dsi", 1, 1), ("si", 3, 1), ("nonsi", 1, 1)):
        cfg = RunnerConfig(algorithm=alg, max_new_tokens=N, k=k, servers=servers)
        got = run(TARGET, DRAFTER, prompt, cfg, backend=pool).tokens
        assert got == want, f"{alg} k={k} P={servers}: {got} != generate's {want}"


def test_sampled_tokens_equal_dsi_ref_and_traces_pass(pool: ProcessBackend) -> None:
    prompt = [3, 1, 4]
    sampling = SamplingConfig(temperature=0.9, top_k=8, top_p=0.9)
    tl, dl = TorchLM(TARGET, [], VOCAB), TorchLM(DRAFTER, [], VOCAB)
    rc = RunConfig(max_tokens=N, k=3, servers=2, seed=11, sampling=sampling, prompt=tuple(prompt))
    want = {"dsi": run_dsi(tl, dl, rc).tokens, "si": run_si(tl, dl, rc).tokens}
    want["nonsi"] = run_nonsi(tl, rc).tokens
    starts = None
    for alg, servers in (("dsi", 2), ("si", 1), ("nonsi", 1), ("dsi", 2)):
        cfg = RunnerConfig(
            algorithm=alg, max_new_tokens=N, k=3, servers=servers, seed=11, sampling=sampling
        )
        r = run(TARGET, DRAFTER, prompt, cfg, backend=pool, record=True)
        assert r.tokens == want[alg], f"{alg}: {r.tokens} != dsi_ref's {want[alg]}"
        assert r.trace is not None
        report = check_trace(r.trace)
        assert report.ok, report.violations[:5]
        # Rows cross the pipe: at least one float64 row per committed token.
        assert r.costs.bytes_moved >= 8 * VOCAB * N, r.costs.bytes_moved
        if alg == "dsi" and starts is None:
            starts = pool.starts
    assert pool.starts == starts + 2, "the last DSI run restarted more than the 2 dropped slots"


def test_four_servers_overlap_in_four_processes(pool: ProcessBackend) -> None:
    waits = Waits(Latency.of("0.04"), Latency.of("0.001"), replace=True)
    cfg = RunnerConfig(  # the paper's policy: the default (safe) keeps at most two servers busy
        max_new_tokens=24, k=1, servers=4, acceptance=1.0, waits=waits, policy="paper"
    )
    r = run(TARGET, DRAFTER, [1, 2], cfg, backend=pool, record=True)
    assert r.trace is not None and check_trace(r.trace).ok
    busy = sum(s for kind, _, _, s in r.pass_log if kind == "target")
    assert busy > 1.5 * r.wall, f"target passes summed {busy:.3f} s in {r.wall:.3f} s"
    pids = [p for p in pool.pids() if p is not None]
    assert len(set(pids)) == 5 and os.getpid() not in pids


def test_bad_backend_is_refused() -> None:
    cfg = RunnerConfig(max_new_tokens=2, k=1, servers=1)
    with pytest.raises(InvalidConfig, match="'fibers'"):
        run(TARGET, DRAFTER, [1], cfg, backend="fibers")


def test_cli_backend_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m gpu_runner run --backend processes` gives the threads' tokens."""
    tokens = {}
    for backend in ("threads", "processes"):
        out = tmp_path / f"{backend}.json"
        args = ["run", "--algorithm", "dsi", "--max-new-tokens", "6", "--quiet"]
        rc = main([*args, "--dtype", "float64", "--backend", backend, "--json", str(out)])
        assert rc == 0, capsys.readouterr().out
        tokens[backend] = json.loads(out.read_text())[0]["tokens"]
    assert tokens["processes"] == tokens["threads"] and len(tokens["threads"]) == 6
    with pytest.raises(SystemExit) as info:
        main(["run", "--backend", "fibers"])
    assert info.value.code == 2
    assert "'fibers'" in capsys.readouterr().err


def _cores(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable cores")
def test_pinned_workers_one_core_each_while_they_fit() -> None:
    cores = sorted(os.sched_getaffinity(0))
    cfg = RunnerConfig(max_new_tokens=4, k=1, servers=1)
    with ProcessBackend(pin=True) as pinned:
        run(TARGET, DRAFTER, [1, 2], cfg, backend=pinned)
        pids = [p for p in pinned.pids() if p is not None]
        assert [_cores(p) for p in pids] == [{cores[0]}, {cores[1]}]
        many = RunnerConfig(max_new_tokens=4, k=1, servers=len(cores))  # one worker too many
        run(TARGET, DRAFTER, [1, 2], many, backend=pinned)
        assert all(_cores(p) == set(cores) for p in pinned.pids() if p is not None)
