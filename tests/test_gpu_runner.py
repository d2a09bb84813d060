"""gpu_runner on CPU: real transformers models, checked token for token against dsi_ref.

Models are random-weight Llamas in float64 (tests/gpu_fixtures.py), one torch
thread each. Greedy runs must equal transformers' own greedy `generate`;
sampled runs must equal dsi_ref's algorithms run on an adapter over the same
models (full recomputes, no cache), for every k, P and injected latency.
"""

from __future__ import annotations

import pytest
from gpu_fixtures import VOCAB, greedy_reference, pair

from dsi_ref import RunConfig, run_dsi, run_si
from dsi_ref.checker import check_trace
from dsi_ref.latency import Latency
from dsi_ref.nonsi import run_nonsi
from dsi_ref.sampling import SamplingConfig
from gpu_runner.adapter import TorchLM
from gpu_runner.api import RunnerConfig, run
from gpu_runner.passes import Waits

TARGET, DRAFTER = pair()
PROMPTS = ([1, 2, 3], [7], [5, 9, 11, 13, 17, 19])
N = 16


def hf_greedy(prompt: list[int], n: int) -> tuple[int, ...]:
    return greedy_reference(TARGET, prompt, n)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_transformers_generate(prompt: list[int]) -> None:
    want = hf_greedy(prompt, N)
    got = {}
    for k in (1, 3, 5):
        for alg, servers in (("nonsi", 1), ("si", 1), ("dsi", 1), ("dsi", 2), ("dsi", 4)):
            cfg = RunnerConfig(algorithm=alg, max_new_tokens=N, k=k, servers=servers)
            got[(alg, k, servers)] = run(TARGET, DRAFTER, prompt, cfg).tokens
    bad = {key: toks for key, toks in got.items() if toks != want}
    assert not bad, f"transformers greedy gives {want}; these differ: {bad}"


SAMPLINGS = (
    SamplingConfig(temperature=0.7),
    SamplingConfig(top_k=5),
    SamplingConfig(temperature=1.3, top_p=0.8),
    SamplingConfig(temperature=0.9, top_k=8, top_p=0.9),
)


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=lambda s: s.describe())
def test_sampled_tokens_equal_dsi_ref_on_the_same_models(sampling: SamplingConfig) -> None:
    prompt = [3, 1, 4]
    tl, dl = TorchLM(TARGET, [], VOCAB), TorchLM(DRAFTER, [], VOCAB)
    rc = RunConfig(max_tokens=N, k=3, servers=2, seed=11, sampling=sampling, prompt=tuple(prompt))
    want = {"dsi": run_dsi(tl, dl, rc).tokens, "si": run_si(tl, dl, rc).tokens}
    want["nonsi"] = run_nonsi(tl, rc).tokens
    waits = Waits(Latency.of("0.004", "0.002"), Latency.of("0.001"))
    for alg, k, servers, w in (
        ("nonsi", 1, 1, None),
        ("si", 3, 1, None),
        ("dsi", 1, 1, None),
        ("dsi", 3, 2, None),
        ("dsi", 5, 4, None),
        ("dsi", 2, 3, waits),
    ):
        cfg = RunnerConfig(
            algorithm=alg,
            max_new_tokens=N,
            k=k,
            servers=servers,
            seed=11,
            sampling=sampling,
            waits=w,
        )
        got = run(TARGET, DRAFTER, prompt, cfg).tokens
        assert got == want[alg], f"{alg} k={k} P={servers} waits={w}: {got} != {want[alg]}"


def test_dsi_tokens_do_not_depend_on_k_servers_or_latency() -> None:
    s = SamplingConfig(temperature=0.8)
    outs = set()
    for k, servers in ((1, 1), (2, 2), (4, 3), (6, 4)):
        cfg = RunnerConfig(max_new_tokens=N, k=k, servers=servers, seed=4, sampling=s)
        outs.add(run(TARGET, DRAFTER, [2, 2], cfg).tokens)
    assert len(outs) == 1, outs


@pytest.mark.parametrize("alg", ["nonsi", "si", "dsi"])
@pytest.mark.parametrize("mode", ["lossless", "injected", "timing", "replaced"])
def test_every_mode_writes_a_trace_the_checker_accepts(alg: str, mode: str) -> None:
    waits = None
    acceptance = None
    if mode in ("injected", "replaced"):
        waits = Waits(Latency.of("0.003", "0.002"), Latency.of("0.0005"), mode == "replaced")
    if mode in ("timing", "replaced"):
        acceptance = 0.6
    cfg = RunnerConfig(
        algorithm=alg,
        max_new_tokens=12,
        k=3,
        servers=3,
        seed=2,
        sampling=SamplingConfig(temperature=0.9),
        waits=waits,
        acceptance=acceptance,
    )
    result = run(TARGET, DRAFTER, [4, 5], cfg, record=True)
    assert result.trace is not None
    report = check_trace(result.trace)
    assert report.ok, report.violations[:5]
    assert result.trace["result"]["tokens"] == list(result.tokens)
