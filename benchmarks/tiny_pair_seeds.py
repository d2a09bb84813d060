"""DSI `safe` against SI on the trained tiny pair at T = 1, over seeds (docs/gpu-runner.md).

    PYTHONPATH=. .venv/bin/python benchmarks/tiny_pair_seeds.py [--seeds 20]

At T = 1 SI's tokens depend on where its blocks end and DSI's do not, so for one seed the
two sample different texts with different acceptance; a comparison needs several seeds.
Processes backend, one drafter and one server, k = 3, 128 tokens from "def fib(n):", one
torch thread per worker; per seed one SI run then one DSI run (the default policy, which
plans with the run's own pass costs). Prints the median and range of SI wall / DSI wall,
the same ratio predicted by the virtual clock for each run's acceptance pattern from pass
costs measured in isolation before the seeds (gpu_runner.predict), the mean acceptance of
each, the mean count of drafter and target passes per run, and the costs DSI's last run
planned with. A script, not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from dsi_ref.latency import Latency
from dsi_ref.sampling import SamplingConfig
from gpu_runner.api import RunnerConfig, run
from gpu_runner.predict import isolated_costs, predict
from gpu_runner.result import RealRun
from gpu_runner.tiny import load_tiny_pair
from gpu_runner.tokenizer import ByteTokenizer
from gpu_runner.transport.processes import ProcessBackend

N, K = 128, 3


def _passes(r: RealRun, kind: str) -> int:
    return sum(1 for k, *_ in r.pass_log if k == kind)


def _ms(lat: Latency) -> str:
    return "/".join(f"{1000 * float(x):.2f}" for x in (lat.ttft, lat.tpot, lat.per_position))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1")
    seeds = ap.parse_args().seeds
    torch.set_num_threads(1)
    target, drafter = load_tiny_pair()
    prompt = list(ByteTokenizer().encode("def fib(n):"))
    base = RunnerConfig(max_new_tokens=N, k=K, servers=1, sampling=SamplingConfig(greedy=False))
    with ProcessBackend() as pool:
        run(target, drafter, prompt, base, backend=pool)  # warm-up: starts the workers
        iso = isolated_costs(target, drafter, prompt, base, backend=pool)
        pairs = []
        for seed in range(seeds):
            si = run(target, drafter, prompt, dataclasses.replace(base, algorithm="si", seed=seed),
                     backend=pool)  # fmt: skip
            dsi = run(target, drafter, prompt, dataclasses.replace(base, seed=seed), backend=pool)
            pairs.append((si, dsi))
    ratio = [si.wall / dsi.wall for si, dsi in pairs]
    print(f"SI / DSI wall: median {statistics.median(ratio):.3f} "
          f"(range {min(ratio):.3f}-{max(ratio):.3f}) over {seeds} seeds")  # fmt: skip
    pred = [float(predict(si, K, 1, *iso) / predict(dsi, K, 1, *iso)) for si, dsi in pairs]
    print(f"predicted SI / DSI: median {statistics.median(pred):.3f} "
          f"(range {min(pred):.3f}-{max(pred):.3f}); isolated costs (ms) "
          f"target {_ms(iso[0])}, drafter {_ms(iso[1])}")  # fmt: skip
    print(f"DSI's last run planned with {pairs[-1][1].summary()['planned_ms']}")
    for i, name in enumerate(("SI", "DSI")):
        runs = [p[i] for p in pairs]
        acc = statistics.fmean(r.acceptance_rate() or 0.0 for r in runs)
        drafts = statistics.fmean(_passes(r, "drafter") for r in runs)
        targets = statistics.fmean(_passes(r, "target") for r in runs)
        print(f"{name}: mean acceptance {acc:.3f}, drafter passes {drafts:.0f}, "
              f"target passes {targets:.0f} per run")  # fmt: skip


if __name__ == "__main__":  # worker processes import this module again
    main()
