"""DSI's default policy against SI with real forwards, paired by round (docs/gpu-runner.md).

    PYTHONPATH=. .venv/bin/python benchmarks/policy_real_paired.py [--rounds 5]

The random ~27M / ~2.4M Llama pair (`gpu_runner.tiny.timing_pair`), timing mode a = 0.8,
k = 5, 64 tokens, one drafter and one server, one torch thread per worker. Each round
re-measures the isolated pass costs on the backend (`gpu_runner.predict.isolated_costs`:
an SI run and a short non-SI run, no two passes overlapping; per-position cost and the
driver's per-pass overhead included) and then runs SI, and DSI `safe` and `paper`
each planning with those costs (RunnerConfig.plan) and with the runner's default
costs, so that box drift is shared within a round. Prints, per backend and run: median wall,
SI/this and measured/predicted per round as median [95% sign-test interval of the
median, benchmarks/paired_stats.py] (the clock cutting cancelled passes
between layers as the run did, and in brackets without that), and the median pass
times inside the runs (the target's at k + 1 positions, the drafter's), which show any
contention a prediction from isolated costs leaves out. A warm-up round is dropped. A
script, not a pytest-benchmark suite: the quantities are paired ratios, which
pytest-benchmark does not pair.

In every round, after the runner's runs, transformers' assisted generation runs on the
same pair, prompt, N, a and seed in timing mode (`gpu_runner.assisted_timing`: it accepts
exactly the drafts the runner's keyed rule accepts): its defaults (k = 20 constant,
confidence threshold 0.4), its heuristic schedule from k = 5, constant k = 5 and k = 3.
It runs in this process with one torch thread, whatever the backend; its rows ("hf") pair
it with that backend's SI of the same round. Its wall is the `generate` call's.
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
from paired_stats import show_ci

from gpu_runner.api import RunnerConfig, run
from gpu_runner.assisted_timing import assisted_timing_run
from gpu_runner.predict import cancel_granularity, isolated_costs, predict
from gpu_runner.result import RealRun
from gpu_runner.tiny import timing_pair
from gpu_runner.transport.processes import ProcessBackend

N, K, A, PROMPT = 64, 5, 0.8, [1, 2, 3, 4]
# (algorithm, policy, plan): "measured" plans with the round's isolated costs
# (RunnerConfig.plan), "default" with the runner's default (target 1, drafter 1/10).
Run = tuple[str, str, str]
RUNS: list[Run] = [
    ("si", "safe", "-"),
    ("dsi", "safe", "measured"),
    ("dsi", "safe", "default"),
    ("dsi", "paper", "measured"),
    ("dsi", "paper", "default"),
]
# transformers' assisted generation: (num_assistant_tokens, schedule) in the drafter's
# generation config; None keeps transformers' defaults (20, "constant").
ASSISTED: dict[str, tuple[int | None, str | None]] = {
    "defaults": (None, None),
    "heuristic": (K, "heuristic"),
    "constant-5": (5, "constant"),
    "constant-3": (3, "constant"),
}


def _pass_ms(r: RealRun, kind: str, width: int = 1) -> float:
    """Median ms of `r`'s decode passes of `kind` scoring `width` positions (nan: none)."""
    xs = [s for k, f, m, s in r.pass_log if k == kind and f > 0 and m == width]
    return 1000 * statistics.median(xs) if xs else math.nan


def _span(xs: list[float]) -> str:
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return "-"
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
            wall: dict[Run, list[float]] = {r: [] for r in RUNS}
            ratio: dict[Run, list[float]] = {r: [] for r in RUNS}
            held: dict[Run, list[float]] = {r: [] for r in RUNS}
            passes: dict[Run, list[tuple[float, float]]] = {r: [] for r in RUNS}
            hf: dict[str, list[float]] = {s: [] for s in ASSISTED}
            hf_passes: dict[str, tuple[int, int]] = {}
            for i in range(rounds + 1):
                tl, dl = isolated_costs(target, drafter, PROMPT, base, backend)
                for key in RUNS:
                    alg, policy, plan = key
                    cfg = RunnerConfig(
                        algorithm=alg, max_new_tokens=N, k=K, servers=1, acceptance=A, seed=1,
                        policy=policy, plan=(tl, dl) if plan == "measured" else None,
                    )  # fmt: skip
                    r = run(target, drafter, PROMPT, cfg, backend=backend)
                    if i == 0:
                        continue  # warm-up: a pool's first run starts its workers
                    wall[key].append(r.wall)
                    layers = cancel_granularity(r)
                    pred = predict(r, K, 1, tl, dl, policy, cancel_layers=layers)
                    ratio[key].append(r.wall / float(pred))
                    held[key].append(r.wall / float(predict(r, K, 1, tl, dl, policy)))
                    passes[key].append((_pass_ms(r, "target", K + 1), _pass_ms(r, "drafter")))
                for setting, (k, schedule) in ASSISTED.items():
                    hr = assisted_timing_run(
                        target, drafter, PROMPT, N, seed=1, acceptance=A,
                        num_assistant_tokens=k, schedule=schedule,
                    )  # fmt: skip
                    if i > 0:
                        hf[setting].append(hr.wall)
                        hf_passes[setting] = len(hr.log.target), len(hr.log.drafter)
            si = wall[RUNS[0]]
            for key in RUNS:
                w = wall[key]
                print(
                    f"{name:9s} {key[0]:3s} {key[1]:5s} plan {key[2]:8s}"
                    f" wall {statistics.median(w):.3f} s"
                    f"  SI/this {show_ci([a / b for a, b in zip(si, w, strict=True)])}"
                    f"  meas/pred {show_ci(ratio[key])}"
                    f"  (no layer cut {_span(held[key])})"
                    f"  target pass at k+1 {_span([t for t, _ in passes[key]])} ms"
                    f"  drafter pass {_span([d for _, d in passes[key]])} ms"
                )
            for setting, w in hf.items():
                t_passes, d_passes = hf_passes[setting]
                print(
                    f"{name:9s} hf  {setting:10s}    wall {statistics.median(w):.3f} s"
                    f"  SI/this {show_ci([a / b for a, b in zip(si, w, strict=True)])}"
                    f"  target passes {t_passes}  drafter passes {d_passes}"
                )


if __name__ == "__main__":  # worker processes import this module again
    main()
