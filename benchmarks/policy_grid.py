"""Scheduling policies on the non-preemptive virtual clock over the Figure-2 grid.

python benchmarks/policy_grid.py [--step 2] [--n 64] [--reps 4] [--kmax 10] [--out F.csv]

Offline cost model of docs/figure2.md (target pass 1, drafter pass c, TTFT = TPOT),
but timed on the non-preemptive virtual clock (dsi_ref.virtual, `preemptive=False`):
per cell (c, a), `reps` i.i.d. Bernoulli(a) acceptance patterns of n tokens, the same
patterns for every algorithm, k and P (common random numbers, so ratios are paired).
Latencies are exact Fractions per run; a cell's expected latency is the mean over the
patterns (a Monte Carlo estimate: reps patterns, so small differences are noise,
except `same_k_worst`, which is pathwise). For each P in 1..3 (the default policy
`safe` runs identically at every P >= 3, docs/theorems.md T7) it reports:

- si_over_safe: SI's latency at its best k / safe's at its best k (> 1: safe faster);
- same_k_worst: min over k and patterns of SI(k) / safe(k), pathwise (the T7 aim:
  >= 1 means safe was never slower than SI at the same k on any pattern here);
- nonsi_over_safe: non-SI (n target passes) / safe's best;
- si_over_paper, si_over_eager, nonsi_over_paper, nonsi_over_eager: the same for
  the other policies (each at its own best k; same clock and P).

Pure Python: about 2-10 ms per DSI run of 64 tokens, so the default (every other
grid value: 11 x 11 cells, k <= 10, 4 patterns) takes several minutes. One policy at
one P, with SI exact, as a figure: `python -m dsi_ref heatmap --clock non-preemptive`
(dsi_ref.theory.clock_heatmap, the same patterns and runs).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import random
import statistics
import sys
from fractions import Fraction
from typing import Any

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.theory.clocked import Clock, latencies, patterns, run_config

GRID = [min(max(i / 20, 0.01), 0.99) for i in range(21)]  # the authors' 21 values


NON_PREEMPTIVE = Clock("non-preemptive")


def cell(c: float, a: float, n: int, reps: int, kmax: int, seed: int) -> list[dict[str, object]]:
    pats = patterns(a, n, reps, seed)  # the patterns `dsi_ref heatmap --clock` uses too
    ks = range(1, kmax + 1)

    def mean(alg: str, k: int, p: int, policy: str) -> tuple[float, list[Fraction]]:
        lat = latencies(alg, pats, run_config(n, k, p, c, policy, NON_PREEMPTIVE))
        return float(statistics.fmean(lat)), lat

    si = {k: mean("si", k, 1, "safe") for k in ks}
    si_best = min(v[0] for v in si.values())
    rows: list[dict[str, object]] = []
    for p in (1, 2, 3):
        safe = {k: mean("dsi", k, p, "safe") for k in ks}
        paper = {k: mean("dsi", k, p, "paper") for k in ks}
        eager = {k: mean("dsi", k, p, "eager") for k in ks}
        safe_best_k = min(ks, key=lambda k: safe[k][0])
        worst = min(s / d for k in ks for s, d in zip(si[k][1], safe[k][1], strict=True) if d > 0)
        rows.append(
            {
                "c": c,
                "a": a,
                "P": p,
                "si_best_k": min(ks, key=lambda k: si[k][0]),
                "safe_best_k": safe_best_k,
                "si_over_safe": si_best / safe[safe_best_k][0],
                "same_k_worst": float(worst),
                "nonsi_over_safe": n / safe[safe_best_k][0],
                "si_over_paper": si_best / min(v[0] for v in paper.values()),
                "si_over_eager": si_best / min(v[0] for v in eager.values()),
                "nonsi_over_paper": n / min(v[0] for v in paper.values()),
                "nonsi_over_eager": n / min(v[0] for v in eager.values()),
            }
        )
    return rows


def markdown(rows: list[dict[str, object]], key: str, p: int) -> str:
    """A c (rows) x a (columns) table of `key` at P = p."""
    sub = [r for r in rows if int(str(r["P"])) == p]
    cs = sorted({float(str(r["c"])) for r in sub})
    as_ = sorted({float(str(r["a"])) for r in sub})
    val = {(float(str(r["c"])), float(str(r["a"]))): float(str(r[key])) for r in sub}
    lines = ["| c \\ a | " + " | ".join(f"{a:g}" for a in as_) + " |"]
    lines.append("|---" * (len(as_) + 1) + "|")
    for c in cs:
        lines.append(f"| {c:g} | " + " | ".join(f"{val[c, a]:.2f}" for a in as_) + " |")
    return "\n".join(lines)


def summary(rows: list[dict[str, object]]) -> None:
    for p in (1, 2, 3):
        sub = [r for r in rows if int(str(r["P"])) == p]
        for key in list(sub[0])[5:]:
            xs = [float(str(r[key])) for r in sub]
            print(
                f"P={p} {key}: min {min(xs):.4f} median {statistics.median(xs):.4f} "
                f"max {max(xs):.4f}; cells > 1: {sum(x > 1 for x in xs)}/{len(xs)}, "
                f"< 1: {sum(x < 1 for x in xs)}"
            )


def example(reps: int = 20) -> str:
    """Issue 12's setting: a 27M/2.4M Llama pair's pass costs (target 16.2 ms, drafter
    1.5 ms per decode pass), 96 tokens, a = 0.8; mean seconds over `reps` patterns."""
    rng = random.Random(12)
    pats = [tuple(rng.random() < 0.8 for _ in range(96)) for _ in range(reps)]
    t, d = Latency.of("0.0162", "0.0162"), Latency.of("0.0015", "0.0015")

    def mean(alg: str, k: int, p: int, policy: str) -> float:
        cfg = RunConfig(96, k, p, target_latency=t, drafter_latency=d, preemptive=False)
        cfg = dataclasses.replace(cfg, policy=policy)
        return statistics.fmean(float(run_pattern(alg, x, cfg).latency) for x in pats)

    names = ("paper", "safe", "eager", "adaptive", "measured")
    head = "| k | SI | " + " | ".join(f"{n} P={p}" for n in names for p in (1, 2, 4)) + " |"
    lines = [head, "|---" * (2 + 3 * len(names)) + "|"]
    for k in (2, 3, 5):
        cells = [mean("si", k, 1, "safe")] + [
            mean("dsi", k, p, n) for n in names for p in (1, 2, 4)
        ]
        lines.append(f"| {k} | " + " | ".join(f"{x:.3f}" for x in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--step", type=int, default=2, help="take every STEP-th grid value")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--kmax", type=int, default=10)
    ap.add_argument("--out", default="out/policy_grid.csv")
    ap.add_argument("--from-csv", help="summarise an earlier run's CSV instead of running")
    ap.add_argument("--markdown", nargs="*", default=[], help="columns to print as tables")
    ap.add_argument("--example", action="store_true", help="issue 12's 96-token example only")
    args = ap.parse_args(argv)
    if args.example:
        print(example())
        return 0
    if args.from_csv:
        with open(args.from_csv, newline="") as f:
            rows: list[dict[str, Any]] = list(csv.DictReader(f))
        summary(rows)
        for key in args.markdown:
            for p in (1, 3):
                print(f"\n{key}, P = {p}\n\n{markdown(rows, key, p)}")
        return 0
    values = GRID[:: args.step]
    rows = []
    for c in values:
        for j, a in enumerate(values):
            rows += cell(c, a, args.n, args.reps, args.kmax, seed=1000 * j + 7)
        print(f"c = {c}: done", file=sys.stderr, flush=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary(rows)
    for key in args.markdown:
        for p in (1, 3):
            print(f"\n{key}, P = {p}\n\n{markdown(rows, key, p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
