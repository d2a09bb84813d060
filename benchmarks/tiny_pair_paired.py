"""Every method on the trained tiny pair, paired by round (docs/gpu-runner.md).

    PYTHONPATH=. .venv/bin/python benchmarks/tiny_pair_paired.py [--rounds 10] [--greedy]

This box's speed drifts by tens of percent over minutes, so methods timed minutes apart
are not comparable; here every round runs every method once, back to back, and each is
reported by SI's wall of the same round over its own: median over rounds and the 95%
sign-test interval of that median (benchmarks/paired_stats.py).
128 tokens from "def fib(n):", one torch thread per worker; the runner on the processes
backend (one drafter, one server): SI k = 3, DSI `safe` k = 3 (its default plan: the run's
own pass costs), SI and DSI with the heuristic lookahead from k = 5 (`adaptive`);
transformers in this process: `generate`, assisted generation with its heuristic schedule
from k = 5 and constant k = 3 (set on the drafter's generation config, which 5.x reads).
Greedy: round r repeats the same text; T = 1: round r samples with seed r (SI's text then
differs from DSI's: its tokens depend on where its blocks end), so acceptance is printed.
A script, not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from paired_stats import show_ci

from dsi_ref.sampling import SamplingConfig
from gpu_runner.api import RunnerConfig, run
from gpu_runner.tiny import load_tiny_pair
from gpu_runner.tokenizer import ByteTokenizer
from gpu_runner.transport.processes import ProcessBackend

N = 128
RUNNER = {  # name -> (algorithm, policy, k)
    "SI k=3": ("si", "safe", 3),
    "DSI safe k=3": ("dsi", "safe", 3),
    "SI adaptive k=5": ("si", "adaptive", 5),
    "DSI adaptive k=5": ("dsi", "adaptive", 5),
}
HF = {"generate": None, "assisted heuristic k=5": (5, "heuristic"), "assisted k=3": (3, "constant")}


def _hf(target: Any, drafter: Any, prompt: list[int], how: tuple[int, str] | None,
        greedy: bool, seed: int) -> float:  # fmt: skip
    """Seconds for transformers to generate N tokens `how` (None: plain generate)."""
    kw: dict[str, Any] = dict(max_new_tokens=N, min_new_tokens=N, do_sample=not greedy,
                              pad_token_id=0)  # fmt: skip
    gc = drafter.generation_config
    saved = (gc.num_assistant_tokens, gc.num_assistant_tokens_schedule)
    if how is not None:
        kw["assistant_model"] = drafter
        gc.num_assistant_tokens, gc.num_assistant_tokens_schedule = how
    torch.manual_seed(seed)
    try:
        with torch.no_grad():
            t0 = time.perf_counter()
            target.generate(torch.tensor([prompt]), **kw)
            return time.perf_counter() - t0
    finally:
        gc.num_assistant_tokens, gc.num_assistant_tokens_schedule = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--greedy", action="store_true", help="greedy (default: T = 1)")
    ns = ap.parse_args()
    torch.set_num_threads(1)
    target, drafter = load_tiny_pair()
    prompt = list(ByteTokenizer().encode("def fib(n):"))
    base = RunnerConfig(max_new_tokens=N, servers=1, sampling=SamplingConfig(greedy=ns.greedy))
    walls: dict[str, list[float]] = {m: [] for m in [*RUNNER, *HF]}
    acc: dict[str, list[float]] = {m: [] for m in RUNNER}
    with ProcessBackend() as pool:
        run(target, drafter, prompt, base, backend=pool)  # warm-up: starts the workers
        _hf(target, drafter, prompt, HF["assisted k=3"], ns.greedy, 0)
        for r in range(ns.rounds):
            methods: list[tuple[str, Callable[[], float]]] = []
            for name, (alg, policy, k) in RUNNER.items():
                cfg = dataclasses.replace(base, algorithm=alg, policy=policy, k=k, seed=r)

                def go(cfg: RunnerConfig = cfg, name: str = name) -> float:
                    out = run(target, drafter, prompt, cfg, backend=pool)
                    acc[name].append(out.acceptance_rate() or 0.0)
                    return out.wall

                methods.append((name, go))
            for name, how in HF.items():

                def hf(how: tuple[int, str] | None = how, seed: int = r) -> float:
                    return _hf(target, drafter, prompt, how, ns.greedy, seed)

                methods.append((name, hf))
            for name, go in methods:
                walls[name].append(go())
    mode = "greedy" if ns.greedy else "T = 1"
    print(f"tiny pair, {mode}, {N} tokens, {ns.rounds} rounds: "
          "tokens/s median, SI/this median [95% interval]")  # fmt: skip
    for name, ws in walls.items():
        ratio = [si / w for si, w in zip(walls["SI k=3"], ws, strict=True)]
        extra = f"  acceptance {statistics.fmean(acc[name]):.3f}" if name in acc else ""
        print(f"{name:24s} {N / statistics.median(ws):6.0f} tok/s  "
              f"SI/this {show_ci(ratio)}{extra}")  # fmt: skip


if __name__ == "__main__":  # worker processes import this module again
    main()
