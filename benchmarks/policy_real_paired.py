"""DSI's default policy against SI with real forwards, paired by round (docs/gpu-runner.md).

    PYTHONPATH=. .venv/bin/python benchmarks/policy_real_paired.py [--rounds 5]

The random ~27M / ~2.4M Llama pair (`gpu_runner.tiny.timing_pair`), timing mode a = 0.8,
k = 5, 64 tokens, one drafter and one server, one torch thread per worker. Each round
re-measures the isolated pass costs (an SI run on threads) and then runs SI, DSI `safe`
and DSI `paper` on the backend, so that box drift is shared within a round. Prints, per
backend and run: median wall, SI/this per round, measured/predicted per round, and the
median target and drafter pass times inside the runs (the contention a prediction from
isolated costs leaves out). A warm-up round is dropped. A script, not a pytest-benchmark
suite: the quantities are paired ratios, which pytest-benchmark does not pair.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from gpu_runner.api import RunnerConfig, run
from gpu_runner.predict import isolated_costs, predict
from gpu_runner.result import RealRun
from gpu_runner.tiny import timing_pair
from gpu_runner.transport.processes import ProcessBackend

N, K, A, PROMPT = 64, 5, 0.8, [1, 2, 3, 4]
RUNS = [("si", "safe"), ("dsi", "safe"), ("dsi", "paper")]


def _pass_ms(r: RealRun, kind: str) -> float:
    return 1000 * statistics.median(s for k, _, _, s in r.pass_log if k == kind)


def _span(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds after the warm-up")
    rounds = ap.parse_args().rounds
    torch.set_num_threads(1)
    target, drafter = timing_pair()
    base = RunnerConfig(max_new_tokens=N, k=K, servers=1, acceptance=A, seed=1)
    with ProcessBackend() as pool:
        for name, backend in (("threads", "threads"), ("processes", pool)):
            wall: dict[tuple[str, str], list[float]] = {r: [] for r in RUNS}
            ratio: dict[tuple[str, str], list[float]] = {r: [] for r in RUNS}
            passes: dict[tuple[str, str], list[tuple[float, float]]] = {r: [] for r in RUNS}
            for i in range(rounds + 1):
                tl, dl = isolated_costs(target, drafter, PROMPT, base)
                for alg, policy in RUNS:
                    cfg = RunnerConfig(
                        algorithm=alg, max_new_tokens=N, k=K, servers=1, acceptance=A, seed=1,
                        policy=policy,
                    )  # fmt: skip
                    r = run(target, drafter, PROMPT, cfg, backend=backend)
                    if i == 0:
                        continue  # warm-up: a pool's first run starts its workers
                    wall[(alg, policy)].append(r.wall)
                    ratio[(alg, policy)].append(r.wall / float(predict(r, K, 1, tl, dl, policy)))
                    passes[(alg, policy)].append((_pass_ms(r, "target"), _pass_ms(r, "drafter")))
            si = wall[("si", "safe")]
            for key in RUNS:
                w = wall[key]
                print(
                    f"{name:9s} {key[0]:3s} {key[1]:5s} wall {statistics.median(w):.3f} s"
                    f"  SI/this {_span([a / b for a, b in zip(si, w, strict=True)])}"
                    f"  meas/pred {_span(ratio[key])}"
                    f"  target pass {_span([t for t, _ in passes[key]])} ms"
                    f"  drafter pass {_span([d for _, d in passes[key]])} ms"
                )


if __name__ == "__main__":  # worker processes import this module again
    main()
