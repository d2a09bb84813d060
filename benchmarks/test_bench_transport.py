"""Transports side by side (`make bench`): threads, processes and Ray on real forwards.

- Timing mode (a = 0.8, k = 5) on a random Llama pair whose target pass costs >= 5x
  the drafter's (~27M / ~2.4M, vocabulary 8000, float32, one torch thread per worker):
  SI, DSI P = 1 and P = 2 with each backend, beside the non-preemptive prediction from
  pass costs measured in isolation (`timing_setup.isolated_on`: SI and non-SI runs on
  threads, passes never overlapping, per-position cost and driver overhead included);
  processes also pinned one core per worker (`ProcessBackend(pin=True)`, while they fit).
  A second prediction uses pass costs measured in isolation on the run's own backend.
- Transport overhead per pass: every pass replaced by a 0.1 ms wait, non-SI.
- Bytes moved per token: the trained tiny pair, sampling, DSI P = 2.
- The trained tiny pair (lossless, greedy, k = 3, 128 tokens): transformers' `generate`
  and assisted generation (k = 3 constant) beside SI and DSI P = 1, 2 with each backend.
- Memory: RSS and PSS (proportional: shared weights split among processes) of the
  worker processes for P = 1, 2, 4 (threads: the driver process, which holds them all).
Ray runs on a local cluster of 2 CPUs started here (skipped if ray is not installed).
Assertions check what ran, never time.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402
from timing_setup import DRAFTER, PROMPT, TARGET, A, K, N, isolated_on  # noqa: E402

from dsi_ref.latency import Latency  # noqa: E402
from dsi_ref.sampling import SamplingConfig  # noqa: E402
from gpu_runner.api import RunnerConfig, run  # noqa: E402
from gpu_runner.passes import Waits  # noqa: E402
from gpu_runner.predict import predict  # noqa: E402
from gpu_runner.result import RealRun  # noqa: E402
from gpu_runner.tiny import load_tiny_pair  # noqa: E402
from gpu_runner.transport.processes import ProcessBackend  # noqa: E402

BACKENDS = ["threads", "processes", "ray"]
HAS_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessBackend]:
    with ProcessBackend() as p:
        yield p


@pytest.fixture(scope="module")
def pinned_pool() -> Iterator[ProcessBackend]:
    with ProcessBackend(pin=True) as p:
        yield p


@pytest.fixture(scope="module")
def ray_pool() -> Iterator[Any]:
    if not HAS_RAY:
        pytest.skip("the ray backend needs the optional extra: pip install '.[ray]'")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from gpu_runner.transport.ray import RayBackend

    with RayBackend(local_cpus=2) as p:
        yield p


@pytest.fixture(scope="module")
def isolated() -> tuple[Latency, Latency]:
    """Pass costs measured with no pass overlapping another, on threads."""
    return isolated_on("threads", "threads")


def _backend(name: str, request: pytest.FixtureRequest) -> Any:
    """The open pool of backend `name` (threads: nothing to keep open)."""
    if name == "threads":
        return "threads"
    fixture = {"processes": "pool", "processes-pinned": "pinned_pool", "ray": "ray_pool"}
    return request.getfixturevalue(fixture[name])


@pytest.mark.parametrize("backend", [*BACKENDS, "processes-pinned"])
@pytest.mark.parametrize("alg,servers", [("si", 1), ("dsi", 1), ("dsi", 2)])
def test_real_forwards(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    isolated: tuple[Latency, Latency],
    backend: str,
    alg: str,
    servers: int,
) -> None:
    cfg = RunnerConfig(algorithm=alg, max_new_tokens=N, k=K, servers=servers, acceptance=A, seed=1)
    b = _backend(backend, request)
    walls: list[float] = []

    def once() -> RealRun:
        r = run(TARGET, DRAFTER, PROMPT, cfg, backend=b)
        walls.append(r.wall)  # first token to last: excludes the workers' start
        return r

    r = benchmark.pedantic(once, rounds=3, iterations=1)
    assert len(r.tokens) == N
    tl, dl = isolated
    predicted = float(predict(r, K, servers, tl, dl))  # same pattern every round (seeded)
    otl, odl = isolated_on(backend, b)
    own = float(predict(r, K, servers, otl, odl))
    wall = statistics.median(walls)
    benchmark.extra_info.update(
        measured_s=wall,
        predicted_s=predicted,
        ratio=wall / predicted,
        predicted_own_s=own,  # from pass costs measured in isolation on this backend
        ratio_own=wall / own,
        own_target_pass_s=float(otl.tpot),
        own_drafter_pass_s=float(odl.tpot),
        target_pass_s=float(tl.tpot),
        drafter_pass_s=float(dl.tpot),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_overhead_per_pass(
    benchmark: BenchmarkFixture, request: pytest.FixtureRequest, backend: str
) -> None:
    waits = Waits(Latency.of("0.0001"), Latency.of("0.0001"), replace=True)
    cfg = RunnerConfig(algorithm="nonsi", max_new_tokens=200, acceptance=A, waits=waits)
    b = _backend(backend, request)
    r = benchmark.pedantic(
        lambda: run(TARGET, DRAFTER, PROMPT, cfg, backend=b), rounds=3, iterations=1
    )
    benchmark.extra_info.update(
        overhead_per_pass_ms=1000 * (r.wall / 200 - 0.0001),
        bytes_per_token=r.costs.bytes_moved / 200,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_bytes_per_token_lossless(
    benchmark: BenchmarkFixture, request: pytest.FixtureRequest, backend: str
) -> None:
    t, d = load_tiny_pair()
    cfg = RunnerConfig(
        max_new_tokens=32, k=3, servers=2, seed=1, sampling=SamplingConfig(temperature=0.8)
    )
    b = _backend(backend, request)
    r = benchmark.pedantic(lambda: run(t, d, PROMPT, cfg, backend=b), rounds=1, iterations=1)
    benchmark.extra_info.update(
        bytes_per_token=r.costs.bytes_moved / 32, vocab=int(t.config.vocab_size)
    )


def _mem(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of one process."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) * 1024
    return rss, pss


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("servers", [1, 2, 4])
def test_memory(
    benchmark: BenchmarkFixture, request: pytest.FixtureRequest, backend: str, servers: int
) -> None:
    cfg = RunnerConfig(max_new_tokens=16, k=K, servers=servers, acceptance=A, seed=1)
    b = _backend(backend, request)
    benchmark.pedantic(lambda: run(TARGET, DRAFTER, PROMPT, cfg, backend=b), rounds=1, iterations=1)
    pids = [os.getpid()] if backend == "threads" else b.pids()
    mems = [_mem(p) for p in pids if p is not None]
    benchmark.extra_info.update(
        workers=len(mems),
        rss_mb=[round(r / 2**20, 1) for r, _ in mems],
        pss_mb=[round(p / 2**20, 1) for _, p in mems],
    )


TINY_N = 128


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any, list[int]]:
    from gpu_runner.tokenizer import ByteTokenizer

    t, d = load_tiny_pair()
    return t, d, list(ByteTokenizer().encode("def fib(n):"))


@pytest.mark.parametrize("method", ["generate", "assisted"])
def test_tiny_pair_transformers(
    benchmark: BenchmarkFixture, tiny: tuple[Any, Any, list[int]], method: str
) -> None:
    t, d, prompt = tiny
    kw: dict[str, Any] = dict(
        max_new_tokens=TINY_N, min_new_tokens=TINY_N, do_sample=False, pad_token_id=0
    )
    if method == "assisted":
        t.generation_config.num_assistant_tokens = 3
        t.generation_config.num_assistant_tokens_schedule = "constant"
        kw["assistant_model"] = d
    ids = torch.tensor([prompt])

    def once() -> Any:
        with torch.no_grad():
            return t.generate(ids, **kw)

    out = benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape[1] == len(prompt) + TINY_N
    benchmark.extra_info["tokens_per_s"] = TINY_N / benchmark.stats.stats.median


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alg,servers", [("si", 1), ("dsi", 1), ("dsi", 2)])
def test_tiny_pair_runner(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    tiny: tuple[Any, Any, list[int]],
    backend: str,
    alg: str,
    servers: int,
) -> None:
    t, d, prompt = tiny
    cfg = RunnerConfig(algorithm=alg, max_new_tokens=TINY_N, k=3, servers=servers)
    b = _backend(backend, request)
    walls: list[float] = []

    def once() -> RealRun:
        r = run(t, d, prompt, cfg, backend=b)
        walls.append(r.wall)
        return r

    r = benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=1)
    assert len(r.tokens) == TINY_N
    benchmark.extra_info["tokens_per_s"] = TINY_N / statistics.median(walls[1:])
