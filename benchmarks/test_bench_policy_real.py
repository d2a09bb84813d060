"""Issue 12's real-forward measure (`make bench`): DSI's default policy against SI, the
paper's policy and transformers, with real forwards on this machine.

- Timing mode (a = 0.8, k = 5, 64 tokens) on the random ~27M / ~2.4M Llama pair
  (`gpu_runner.tiny.timing_pair`: a target pass costs several drafter passes), one drafter
  and one server (P = 1: the configuration two cores can run in parallel), one torch
  thread per worker, threads and processes: SI, DSI with `safe` (the default) and with
  `paper`, DSI planning with pass costs measured in isolation on its backend
  (`gpu_runner.predict.isolated_costs`: an SI and a non-SI run, no two passes
  overlapping), each run beside the virtual clock's prediction from those costs.
- The trained tiny pair (128 tokens, greedy and T = 1): transformers' `generate`,
  assisted generation (its defaults, its heuristic schedule from k = 5, and k = 3
  constant: set on the drafter's generation config, the one transformers 5.x reads), and
  the runner's SI k = 3 and DSI P = 1 (`safe`, `paper`), and both with the heuristic
  lookahead from k = 5 (`adaptive`), on processes; tokens/s in extra_info.
Assertions check what ran, never time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402
from timing_setup import DRAFTER, PROMPT, TARGET, A, K, N, isolated_on  # noqa: E402

from dsi_ref.randomness import Key, Purpose, keyed_uniform  # noqa: E402
from dsi_ref.sampling import SamplingConfig  # noqa: E402
from gpu_runner.api import RunnerConfig, run  # noqa: E402
from gpu_runner.assisted_timing import AssistedRun, assisted_timing_run  # noqa: E402
from gpu_runner.predict import cancel_granularity, predict  # noqa: E402
from gpu_runner.result import RealRun  # noqa: E402
from gpu_runner.tiny import load_tiny_pair  # noqa: E402
from gpu_runner.tokenizer import ByteTokenizer  # noqa: E402
from gpu_runner.transport.processes import ProcessBackend  # noqa: E402

TINY_N = 128
RUNS = [("si", "safe"), ("dsi", "safe"), ("dsi", "paper")]  # SI ignores a fixed-k policy
# transformers' assisted generation: (num_assistant_tokens, schedule) in the drafter's
# generation config; None keeps transformers' defaults (20, "constant").
ASSISTED: dict[str, tuple[int | None, str | None]] = {
    "defaults": (None, None),
    "heuristic": (K, "heuristic"),
    "constant-5": (5, "constant"),
    "constant-3": (3, "constant"),
}


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessBackend]:
    with ProcessBackend() as p:
        yield p


R = TypeVar("R", RealRun, AssistedRun)


def _timed(benchmark: BenchmarkFixture, go: Callable[[], R], rounds: int = 3) -> tuple[R, float]:
    """The last run and the median of its rounds' walls (the warm-up round left out)."""
    walls: list[float] = []

    def once() -> R:
        r = go()
        walls.append(r.wall)  # RealRun: to the last commit, workers started; AssistedRun: generate
        return r

    r = benchmark.pedantic(once, rounds=rounds, iterations=1, warmup_rounds=1)
    return r, statistics.median(walls[1:])


@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("alg,policy", RUNS)
def test_timing_pair(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    backend: str,
    alg: str,
    policy: str,
) -> None:
    b = "threads" if backend == "threads" else request.getfixturevalue("pool")
    tl, dl = isolated_on(backend, b)
    cfg = RunnerConfig(
        algorithm=alg, max_new_tokens=N, k=K, servers=1, acceptance=A, seed=1, policy=policy,
        plan=(tl, dl),
    )  # fmt: skip
    r, wall = _timed(benchmark, lambda: run(TARGET, DRAFTER, PROMPT, cfg, backend=b))
    assert len(r.tokens) == N
    predicted = float(predict(r, K, 1, tl, dl, policy, cancel_granularity(r)))
    benchmark.extra_info.update(
        measured_s=wall,
        predicted_s=predicted,
        ratio=wall / predicted,
        target_pass_s=float(tl.tpot),
        drafter_pass_s=float(dl.tpot),
        target_forwards=r.costs.target_forwards,
    )


@pytest.mark.parametrize("setting", list(ASSISTED))
def test_timing_pair_assisted(benchmark: BenchmarkFixture, setting: str) -> None:
    k, schedule = ASSISTED[setting]

    def go() -> AssistedRun:
        return assisted_timing_run(
            TARGET, DRAFTER, PROMPT, N, seed=1, acceptance=A,
            num_assistant_tokens=k, schedule=schedule,
        )  # fmt: skip

    r, wall = _timed(benchmark, go)
    assert len(r.tokens) == N
    verdicts = r.log.verdicts(N)
    assert verdicts == {p: keyed_uniform(1, Key(p, Purpose.ACCEPT)) < A for p in verdicts}
    benchmark.extra_info.update(
        measured_s=wall,
        target_forwards=len(r.log.target),
        drafter_forwards=len(r.log.drafter),
        acceptance=sum(verdicts.values()) / max(1, len(verdicts)),
    )


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any, list[int]]:
    t, d = load_tiny_pair()
    return t, d, list(ByteTokenizer().encode("def fib(n):"))


SAMPLE = {"greedy": False, "T=1": True}


TINY_ASSISTED: dict[str, tuple[int | None, str | None]] = {
    "assisted-defaults": (None, None),
    "assisted-heuristic": (5, "heuristic"),
    "assisted-constant-3": (3, "constant"),
}


@pytest.mark.parametrize("mode", list(SAMPLE))
@pytest.mark.parametrize("method", ["generate", *TINY_ASSISTED])
def test_tiny_transformers(
    benchmark: BenchmarkFixture, tiny: tuple[Any, Any, list[int]], method: str, mode: str
) -> None:
    t, d, prompt = tiny
    kw: dict[str, Any] = dict(
        max_new_tokens=TINY_N, min_new_tokens=TINY_N, do_sample=SAMPLE[mode], pad_token_id=0
    )
    # transformers 5.x reads the lookahead and its schedule from the assistant's config
    # (a heuristic k persists there: set afresh every round).
    gc = d.generation_config
    saved = (gc.num_assistant_tokens, gc.num_assistant_tokens_schedule)
    if method != "generate":
        kw["assistant_model"] = d
    ids = torch.tensor([prompt])

    def once() -> Any:
        if method != "generate":
            k, schedule = TINY_ASSISTED[method]
            gc.num_assistant_tokens, gc.num_assistant_tokens_schedule = saved
            if k is not None:
                gc.num_assistant_tokens, gc.num_assistant_tokens_schedule = k, schedule
        torch.manual_seed(0)
        with torch.no_grad():
            return t.generate(ids, **kw)

    try:
        out = benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        gc.num_assistant_tokens, gc.num_assistant_tokens_schedule = saved
    assert out.shape[1] == len(prompt) + TINY_N
    benchmark.extra_info["tokens_per_s"] = TINY_N / benchmark.stats.stats.median


# The runner's runs on the tiny pair: fixed k = 3, and the heuristic lookahead from k = 5
# (policy `adaptive`; SI reads only its lookahead), as transformers' "assisted-heuristic".
TINY_RUNS = [(alg, policy, 3) for alg, policy in RUNS] + [
    ("si", "adaptive", 5),
    ("dsi", "adaptive", 5),
]


@pytest.mark.parametrize("mode", list(SAMPLE))
@pytest.mark.parametrize("alg,policy,k", TINY_RUNS)
def test_tiny_runner(
    benchmark: BenchmarkFixture,
    pool: ProcessBackend,
    tiny: tuple[Any, Any, list[int]],
    alg: str,
    policy: str,
    k: int,
    mode: str,
) -> None:
    t, d, prompt = tiny
    sampling = SamplingConfig(greedy=not SAMPLE[mode])
    cfg = RunnerConfig(
        algorithm=alg, max_new_tokens=TINY_N, k=k, servers=1, sampling=sampling, policy=policy
    )
    r, wall = _timed(benchmark, lambda: run(t, d, prompt, cfg, backend=pool))
    assert len(r.tokens) == TINY_N
    benchmark.extra_info.update(tokens_per_s=TINY_N / wall, acceptance=r.summary()["acceptance"])
