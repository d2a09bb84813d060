"""The runner on a CUDA device (skipped where there is none; benchmarks/gpu/run.sh runs it).

float64 on the GPU: greedy DSI/SI/non-SI equal transformers' greedy generate, the KV
cache equals a full recompute, and several servers on one GPU share one weight copy.
"""

from __future__ import annotations

import pytest
from gpu_fixtures import pair, torch

from gpu_runner.api import RunnerConfig, place_servers, run
from gpu_runner.kv_worker import ModelWorker

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

DEV = torch.device("cuda:0")


def _models() -> tuple[torch.nn.Module, torch.nn.Module]:
    t, d = pair()
    return t.to(DEV), d.to(DEV)


def test_greedy_on_cuda_equals_generate() -> None:
    t, d = _models()
    prompt = [1, 2, 3]
    with torch.no_grad():
        want = t.generate(
            torch.tensor([prompt], device=DEV),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )[0, 3:].tolist()
    for alg, k, servers in (("nonsi", 1, 1), ("si", 3, 1), ("dsi", 3, 4), ("dsi", 1, 2)):
        cfg = RunnerConfig(algorithm=alg, max_new_tokens=16, k=k, servers=servers)
        assert list(run(t, d, prompt, cfg).tokens) == want, (alg, k, servers)


def test_kv_cache_on_cuda_equals_full_recompute() -> None:
    t, _ = _models()
    w = ModelWorker(t, [3, 1, 4], "t")
    for chain, first, last in (([5, 6, 7], 0, 3), ([5, 9, 7, 8], 1, 4), ([5, 9, 7, 8, 2], 5, 5)):
        got = w.logits(chain, first, last)
        with torch.no_grad():
            full = t(input_ids=torch.tensor([[3, 1, 4, *chain[:last]]], device=DEV)).logits[0]
        want = full[3 + first - 1 : 3 + last]
        assert (got - want).abs().max().item() < 1e-10


def test_servers_share_weights_on_one_gpu() -> None:
    t, _ = _models()
    assert all(m is t for m in place_servers(t, [DEV] * 4))
