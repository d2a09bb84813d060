"""Device timings as a pytest-benchmark suite (benchmarks/gpu/run.sh runs it on a GPU).

Random-weight Llama models at real shapes (never downloaded), timing mode
(gpu_runner.passes.BernoulliRule: real forwards, keyed Bernoulli(a) acceptance).
Every timing goes through a CUDA-synchronised clock (`pytest.mark.benchmark(timer=)`),
so a measured interval ends when the device's work does, not when Python queued it.
Measured:
1. the target's and drafter's prefill, decode and (k+1)-position passes, and the
   decode pass's achieved memory bandwidth (weight bytes / time) against the peak;
2. P decode passes at once on one GPU from P threads, one CUDA stream each;
3. non-SI, SI and DSI runs, each beside its prediction from pass costs measured in
   isolation (`isolated_costs`: SI and non-SI runs on threads, no two passes overlap),
   DSI planning with those costs and the clock cutting where the run did;
4. threads+streams against one process per worker (`processes` backend) for DSI
   at P = 1, 2, 4 servers on the one GPU.
Skips without a CUDA device. Settings from the environment: BENCH_DEVICE (cuda:0;
"cpu" for a smoke run), BENCH_SHAPE (7b), BENCH_DRAFTER (100m), BENCH_DTYPE
(bfloat16), BENCH_TOKENS (128), BENCH_PROMPT (128), BENCH_PEAK_TBS (3.35, H100 SXM).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402

from dsi_ref.latency import Latency  # noqa: E402
from gpu_runner.api import RunnerConfig, run  # noqa: E402
from gpu_runner.kv_worker import ModelWorker  # noqa: E402
from gpu_runner.predict import cancel_granularity, isolated_costs, predict  # noqa: E402
from gpu_runner.tiny import random_llama  # noqa: E402

DEVICE = torch.device(os.environ.get("BENCH_DEVICE", "cuda:0"))
if DEVICE.type == "cuda" and not torch.cuda.is_available():
    pytest.skip("no CUDA device (BENCH_DEVICE=cpu runs a smoke test)", allow_module_level=True)
DTYPE = getattr(torch, os.environ.get("BENCH_DTYPE", "bfloat16"))
TOKENS = int(os.environ.get("BENCH_TOKENS", "128"))
PROMPT = list(range(1, int(os.environ.get("BENCH_PROMPT", "128")) + 1))
PEAK_TBS = float(os.environ.get("BENCH_PEAK_TBS", "3.35"))
KMAX = 5

SHAPES: dict[str, dict[str, int]] = {
    # Llama-2-7B and a ~100M drafter of the same family (vocabulary 32000).
    "7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
    ),
    "1b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
    "100m": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        vocab_size=32000,
    ),
    "tiny": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
    ),
    "tinier": dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=256,
    ),
}


def _clock() -> float:
    """perf_counter after the device has finished everything queued so far."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    return time.perf_counter()


pytestmark = pytest.mark.benchmark(timer=_clock, group="device")


def _build(shape: str) -> Any:
    return random_llama(0, dtype=DTYPE, device=DEVICE, max_positions=4096, **SHAPES[shape])


@pytest.fixture(scope="module")
def models() -> tuple[Any, Any]:
    torch.set_num_threads(1)
    return _build(os.environ.get("BENCH_SHAPE", "7b")), _build(
        os.environ.get("BENCH_DRAFTER", "100m")
    )


@pytest.fixture(scope="module")
def isolated(models: tuple[Any, Any]) -> tuple[Latency, Latency]:
    """Pass costs with no two passes overlapping: an SI run on threads (k = KMAX)."""
    target, drafter = models
    cfg = RunnerConfig(max_new_tokens=TOKENS, k=KMAX, acceptance=0.8, seed=1)
    return isolated_costs(target, drafter, PROMPT, cfg)


@pytest.fixture(scope="module")
def process_pool() -> Iterator[Any]:
    from gpu_runner.transport.processes import ProcessBackend

    with ProcessBackend() as p:
        yield p


def _weight_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.mark.parametrize("which", ["target", "drafter"])
@pytest.mark.parametrize("kind", ["prefill", "decode", "wide"])
def test_pass_cost(
    benchmark: BenchmarkFixture, models: tuple[Any, Any], which: str, kind: str
) -> None:
    model = models[0] if which == "target" else models[1]
    w = ModelWorker(model, PROMPT, which)
    chain = [5] * (KMAX + 2)
    w.logits(chain, 0, 0)
    fns: dict[str, Callable[[], object]] = {
        "prefill": lambda: (w.reset(), w.logits([], 0, 0)),
        "decode": lambda: w.logits(chain, 1, 1),  # crop to position 1, feed one id
        "wide": lambda: w.logits(chain, 1, KMAX + 1),  # feed KMAX + 1 ids
    }
    benchmark.pedantic(fns[kind], rounds=10, iterations=1, warmup_rounds=1)
    if kind == "decode":
        bw = _weight_bytes(model) / benchmark.stats.stats.median / (PEAK_TBS * 1e12)
        benchmark.extra_info["bandwidth_fraction"] = bw
    benchmark.extra_info["params"] = sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("servers", [1, 2, 4, 8])
def test_decode_passes_at_once_threads(
    benchmark: BenchmarkFixture, models: tuple[Any, Any], servers: int
) -> None:
    """P decode passes at once, one thread and one CUDA stream each (compare with P = 1)."""
    workers = [ModelWorker(models[0], [1, 2, 3, 4], f"s{i}") for i in range(servers)]
    for w in workers:
        w.logits([5, 6], 0, 0)
    streams = [torch.cuda.Stream(DEVICE) if DEVICE.type == "cuda" else None for _ in workers]

    def one(w: ModelWorker, stream: Any) -> None:
        if stream is None:
            w.logits([5, 6], 1, 1)
            return
        with torch.cuda.stream(stream):
            w.logits([5, 6], 1, 1)
        stream.synchronize()

    def all_at_once() -> None:
        ths = [threading.Thread(target=one, args=ws) for ws in zip(workers, streams, strict=True)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()

    benchmark.pedantic(all_at_once, rounds=5, iterations=1, warmup_rounds=1)


RUNS = [("nonsi", 1, 1)] + [("si", k, 1) for k in (1, 3, 5)]
RUNS += [("dsi", k, p) for k in (3, 5) for p in (1, 2, 4, 8)]


def _timed_run(
    benchmark: BenchmarkFixture,
    models: tuple[Any, Any],
    isolated: tuple[Latency, Latency],
    cfg: RunnerConfig,
    backend: Any,
) -> None:
    target, drafter = models
    warm = 0 if backend == "threads" else 1  # a pool's first run starts its workers
    tl, dl = isolated
    cfg = dataclasses.replace(cfg, plan=(tl, dl))  # DSI plans with the measured costs
    r = benchmark.pedantic(
        lambda: run(target, drafter, PROMPT, cfg, backend=backend),
        rounds=1,
        iterations=1,
        warmup_rounds=warm,
    )
    assert len(r.tokens) == TOKENS
    predicted = float(predict(r, cfg.k, cfg.servers, tl, dl, cfg.policy, cancel_granularity(r)))
    benchmark.extra_info.update(
        wall_s=r.wall,
        predicted_s=predicted,
        ratio=r.wall / predicted,
        faults=r.costs.faults,
        passes_cut=r.costs.passes_cut,
    )


@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("servers", [1, 2, 4])
def test_dsi_threads_vs_processes(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    models: tuple[Any, Any],
    isolated: tuple[Latency, Latency],
    backend: str,
    servers: int,
) -> None:
    """DSI k = KMAX, a = 0.8 with P servers on the one device: threads+streams vs processes."""
    b = "threads" if backend == "threads" else request.getfixturevalue("process_pool")
    # The paper's policy: the default (safe) never keeps more than two servers busy.
    cfg = RunnerConfig(
        max_new_tokens=TOKENS, k=KMAX, servers=servers, acceptance=0.8, seed=7, policy="paper"
    )
    _timed_run(benchmark, models, isolated, cfg, b)


@pytest.mark.parametrize("layer_cancel", [True, False])
@pytest.mark.parametrize("policy", ["safe", "paper"])
def test_dsi_policy_and_layer_cancel(
    benchmark: BenchmarkFixture,
    models: tuple[Any, Any],
    isolated: tuple[Latency, Latency],
    policy: str,
    layer_cancel: bool,
) -> None:
    """DSI k = KMAX, a = 0.8, P = 2 on threads: the default policy against the paper's, and
    the cost of cutting cancelled passes at layer boundaries (one stream sync per layer)."""
    cfg = RunnerConfig(
        max_new_tokens=TOKENS,
        k=KMAX,
        servers=2,
        acceptance=0.8,
        seed=7,
        policy=policy,
        layer_cancel=layer_cancel,
    )
    _timed_run(benchmark, models, isolated, cfg, "threads")


@pytest.mark.parametrize("a", [0.5, 0.8])
@pytest.mark.parametrize("alg,k,servers", RUNS)
def test_run_threads(
    benchmark: BenchmarkFixture,
    models: tuple[Any, Any],
    isolated: tuple[Latency, Latency],
    a: float,
    alg: str,
    k: int,
    servers: int,
) -> None:
    cfg = RunnerConfig(  # the paper's policy, so that P servers are used (safe keeps two)
        algorithm=alg,
        max_new_tokens=TOKENS,
        k=k,
        servers=servers,
        acceptance=a,
        seed=7,
        policy="paper",
    )
    _timed_run(benchmark, models, isolated, cfg, "threads")
