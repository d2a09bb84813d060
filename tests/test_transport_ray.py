"""The `ray` backend on a local 2-CPU cluster: same tokens, checked traces, faults survived.

Skips unless ray is importable (optional extra `ray`). One cluster for the module,
started by the backend and shut down at the end; no Ray process may outlive it.
"""

from __future__ import annotations

import copy
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Unset, ray 2.60 turns token auth on and writes a token file in $HOME.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
pytest.importorskip("ray", reason="the ray backend needs the optional extra: pip install '.[ray]'")

from gpu_fixtures import VOCAB, greedy_reference, pair, torch
from transport_faults import FaultyPasses

from dsi_ref import RunConfig, run_dsi
from dsi_ref.checker import check_trace
from dsi_ref.latency import Latency
from dsi_ref.sampling import SamplingConfig
from gpu_runner.adapter import TorchLM
from gpu_runner.api import RunnerConfig, make_rule, run
from gpu_runner.errors import ModelLoadError
from gpu_runner.generate import generate
from gpu_runner.loading import load_model
from gpu_runner.passes import PassMaker, Waits
from gpu_runner.tiny import tiny_pair_paths
from gpu_runner.transport.backends import mark_source
from gpu_runner.transport.interface import WorkerFailure
from gpu_runner.transport.ray import RayBackend

TARGET, DRAFTER = pair()
N = 10


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _descendants() -> dict[int, bytes]:
    """This process's live descendants and their command lines (another xdist worker's
    cluster is not ours)."""
    parent, cmd = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                cmd[int(d.name)] = (d / "cmdline").read_bytes()
            except OSError:
                continue
            parent[int(d.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    ours: set[int] = {os.getpid()}
    grew = True
    while grew:
        more = {p for p, pp in parent.items() if pp in ours} - ours
        ours |= more
        grew = bool(more)
    ours.discard(os.getpid())
    return {p: cmd[p] for p in ours if _alive(p)}


@pytest.fixture(scope="module")
def pool() -> Iterator[RayBackend]:
    before = set(_descendants())
    # The actors import the tests' helpers (the planted faults) by module name.
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
    # Deadline: a fresh actor's first pass (lazy initialisation) on a loaded CI box stays
    # well under it; the planted hang sleeps an hour.
    backend = RayBackend(num_cpus=0.4, local_cpus=2, deadline=8.0, max_restarts=1, runtime_env=env)
    cluster: dict[int, bytes] = {}
    try:
        yield backend
    finally:
        cluster = {p: c for p, c in _descendants().items() if p not in before}
        backend.close()
    # The check means something only if the cluster's daemons were ours to see.
    assert any(b"raylet" in c for c in cluster.values()), "no raylet among our descendants"
    end = time.monotonic() + 20
    while any(_alive(p) for p in cluster) and time.monotonic() < end:
        time.sleep(0.5)
    left = {p: cluster[p][:80] for p in cluster if _alive(p)}
    assert not left, f"Ray processes left behind: {left}"


def test_greedy_and_sampled_tokens_and_traces(pool: RayBackend) -> None:
    prompt = [5, 9, 11]
    want = greedy_reference(TARGET, prompt, N)
    for alg, servers in (("dsi", 1), ("si", 1)):
        cfg = RunnerConfig(algorithm=alg, max_new_tokens=N, k=3, servers=servers)
        r = run(TARGET, DRAFTER, prompt, cfg, backend=pool, record=True)
        assert r.tokens == want, f"{alg}: {r.tokens} != generate's {want}"
        assert r.trace is not None and check_trace(r.trace).ok
    sampling = SamplingConfig(temperature=0.8, top_k=8)
    tl, dl = TorchLM(TARGET, [], VOCAB), TorchLM(DRAFTER, [], VOCAB)
    rc = RunConfig(max_tokens=N, k=3, servers=1, seed=3, sampling=sampling, prompt=tuple(prompt))
    cfg = RunnerConfig(max_new_tokens=N, k=3, servers=1, seed=3, sampling=sampling)
    r = run(TARGET, DRAFTER, prompt, cfg, backend=pool, record=True)
    assert r.tokens == run_dsi(tl, dl, rc).tokens
    assert r.trace is not None and check_trace(r.trace).ok


def test_four_servers_overlap_in_five_actors(pool: RayBackend) -> None:
    # After a P = 1 run (run here, so the count holds whatever ran first): three more actors
    # in a second placement group, none restarted.
    run(TARGET, DRAFTER, [1, 2], RunnerConfig(max_new_tokens=2, k=1, servers=1), backend=pool)
    starts = pool.starts
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
    assert pool.starts - starts == 3


@pytest.mark.parametrize(
    "how,where", [("raise", "target"), ("die", "target"), ("hang", "target"), ("die", "drafter")]
)
def test_fault_is_survived(pool: RayBackend, tmp_path: Path, how: str, where: str) -> None:
    # One server: the faulty pass is never one the run can finish without waiting for.
    cfg = RunnerConfig(max_new_tokens=N, k=3, servers=1, seed=5, sampling=SamplingConfig())
    # On the pool: its actors exist before `starts` is read, whatever ran first.
    clean = run(TARGET, DRAFTER, [3, 1, 4], cfg, backend=pool).tokens
    base = PassMaker(cfg.sampling, make_rule(cfg, VOCAB), None)
    passes = FaultyPasses(base, how, where, 4, str(tmp_path / "fired"))
    starts = pool.starts
    r = run(TARGET, DRAFTER, [3, 1, 4], cfg, backend=pool, record=True, passes=passes)
    assert (tmp_path / "fired").exists(), "the planted fault never fired"
    assert r.tokens == clean, f"{how}: {r.tokens} != fault-free {clean}"
    assert r.trace is not None
    report = check_trace(r.trace)
    assert report.ok, report.violations[:5]
    faults = [e for e in r.trace["events"] if e["ev"] == "fault"]
    assert [f["kind"] for f in faults] == [{"die": "died", "raise": "raised", "hang": "hung"}[how]]
    assert [f["action"] for f in faults] == ["restarted"]
    assert faults[0]["worker"] == ("drafter" if where == "drafter" else "server0")
    # A pass that raised leaves its actor alive: a fresh cache on it, no new actor.
    assert pool.starts - starts == (0 if how == "raise" else 1)


def test_every_server_dead_is_a_typed_error(pool: RayBackend) -> None:
    cfg = RunnerConfig(max_new_tokens=N, k=3, servers=1, seed=5, sampling=SamplingConfig())
    passes = FaultyPasses(
        PassMaker(cfg.sampling, make_rule(cfg, VOCAB), None), "raise", "target", 0, None
    )
    with pytest.raises(WorkerFailure, match=r"every target server is dead: server0 raised"):
        run(TARGET, DRAFTER, [3, 1, 4], cfg, backend=pool, passes=passes)


def test_a_path_the_actor_cannot_read_is_a_typed_error(pool: RayBackend, tmp_path: Path) -> None:
    # The driver's model claims a directory that the actor's node lacks.
    target, missing = copy.deepcopy(TARGET), tmp_path / "not-on-this-node"
    mark_source(target, str(missing))
    cfg = RunnerConfig(max_new_tokens=N, k=3, servers=1)
    with pytest.raises(ModelLoadError, match=f"server0 .*{re.escape(repr(str(missing)))}.*exist"):
        run(target, DRAFTER, [3, 1, 4], cfg, backend=pool)


def test_actors_load_path_models_themselves(pool: RayBackend) -> None:
    t_path, d_path = tiny_pair_paths()
    prompt = list(b"def fib(n):")
    with torch.no_grad():
        out = load_model(t_path, dtype=torch.float64, device="cpu").generate(
            torch.tensor([prompt]), max_new_tokens=N, do_sample=False, eos_token_id=None
        )
    want = tuple(out[0, len(prompt) :].tolist())
    starts = pool.starts
    # As the CLI's --algorithm all: generate loads the pair again per run, the actors keep theirs.
    for alg in ("nonsi", "si", "dsi"):
        r = generate(
            t_path,
            d_path,
            prompt,
            algorithm=alg,
            servers=1,
            max_new_tokens=N,
            dtype="float64",
            backend=pool,
        )
        assert r.tokens == want, f"{alg}: {r.tokens} != generate's {want}"
        drafter = None if alg == "nonsi" else os.path.abspath(d_path)
        assert pool.sources() == [drafter, os.path.abspath(t_path)]
    assert not pool._refs, "a path model went through the object store"
    assert pool.starts - starts == 2


def test_greedy_dsi_with_layer_cancellation_equals_generate(pool: RayBackend) -> None:
    """A pass the driver cancels while it runs is told through the actor's `stop` (its own
    concurrency group) and stops at its next decoder layer: the slow pair of
    tests/test_layer_cancel.py (4 layers x 4 ms, drafts mostly rejected, `paper` at P = 2).
    Off, nothing is cut; tokens equal transformers' `generate` either way."""
    from test_layer_cancel import PROMPT as LC_PROMPT
    from test_layer_cancel import N as LC_N
    from test_layer_cancel import hf_greedy, slow_pair

    torch.manual_seed(1)
    target, drafter = slow_pair()
    want = hf_greedy(target)
    for on in (True, False):
        cfg = RunnerConfig(max_new_tokens=LC_N, k=3, servers=2, policy="paper", layer_cancel=on)
        got = run(target, drafter, LC_PROMPT, cfg, backend=pool)
        assert got.tokens == want, f"layer_cancel={on}: {got.tokens} != {want}"
        assert got.costs.layer_cancel == ("on" if on else "off")
        if on:
            assert got.costs.passes_cut > 0, "no pass was cut: the test would prove nothing"
        else:
            assert got.costs.passes_cut == got.costs.drafter_passes_cut == 0
