"""Figure 2 with DSI timed on the virtual clock: a chosen clock and scheduling policy.

Per cell (c, a): `reps` seeded Bernoulli(a) acceptance patterns of S tokens (seed
1000 j + 7, j the index of a, as benchmarks/policy_grid.py), the same for every k;
DSI runs on exactly P = pmax servers with each k in 1..kmax and keeps the k of least
estimated expected latency (dsi_ref.theory.clocked: SI at the same k, exact, as the
control variate). SI's expected latency is exact (the
float DP of dsi_ref.theory.offline, which is SI on the virtual clock), with its best k
in 1..kmax; non-SI's is S. The result is a `Heatmap` (model names the clock and policy),
so the CSV, the PNG and the panel ranges are the offline figure's; the CSV's t_dsi_stderr
is the estimate's standard error at the chosen k (the minimum over k of noisy estimates
leans low by up to about that much).

Cost: grid^2 * kmax * reps DSI and SI runs of S tokens, about 50 us per token on this
machine: the default (11 x 11, k <= 10, 4 patterns, S = 64) about 15 s; 21 x 21 about
a minute. `WORK_MAX` bounds grid^2 * kmax * reps * S (about ten minutes).
"""

from __future__ import annotations

import numpy as np

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.policies import get_policy
from dsi_ref.theory.clocked import Clock, best_k, patterns
from dsi_ref.theory.heatmap import Heatmap, Progress, grid_values
from dsi_ref.theory.offline import si_grid

WORK_MAX = 2 * 10**7  # token-runs: grid^2 * kmax * reps * S
REPS_MAX = 10_000


def cell_seed(j: int) -> int:
    """The pattern seed of the a-column j (benchmarks/policy_grid.py's)."""
    return 1000 * j + 7


def compute_on_clock(
    clock: Clock,
    policy: str,
    grid: int = 11,
    kmax: int = 10,
    pmax: int = 2,
    S: int = 64,
    reps: int = 4,
    progress: Progress | None = None,
) -> Heatmap:
    """The heatmap with DSI on `clock` under `policy`; `progress(rows done, grid)` per c."""
    get_policy(policy)  # InvalidConfig naming a bad name, before any work
    if not isinstance(clock, Clock):
        raise InvalidConfig(f"clock must be a dsi_ref.theory.clocked.Clock, got {show(clock)}")
    for name, v in (("kmax", kmax), ("pmax", pmax), ("S", S)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidConfig(f"{name} must be an int >= 1, got {show(v)}")
    if isinstance(reps, bool) or not isinstance(reps, int) or not 1 <= reps <= REPS_MAX:
        raise InvalidConfig(f"reps must be an int in [1, {REPS_MAX}], got {show(reps)}")
    c = grid_values(grid)
    a = grid_values(grid)
    work = grid * grid * kmax * reps * S
    if work > WORK_MAX:
        raise InvalidConfig(
            f"grid^2 * kmax * reps * S = {grid}^2 * {kmax} * {reps} * {S} = {show(work)} "
            f"exceeds {show(WORK_MAX)} (about ten minutes of pure Python); "
            "lower grid, kmax, reps or S"
        )
    cc, aa = np.meshgrid(c, a, indexing="ij")
    t_si = np.full(cc.shape, np.inf)
    k_si = np.zeros(cc.shape, dtype=np.int64)
    si_k = [si_grid(aa, cc, k, S) for k in range(1, kmax + 1)]  # exact, per k
    for k in range(1, kmax + 1):
        t = si_k[k - 1]
        better = t < t_si  # strict: ties keep the smaller k
        t_si = np.where(better, t, t_si)
        k_si = np.where(better, k, k_si)
    t_dsi = np.zeros(cc.shape)
    t_err = np.zeros(cc.shape)
    k_dsi = np.zeros(cc.shape, dtype=np.int64)
    pats = [patterns(float(aj), S, reps, cell_seed(j)) for j, aj in enumerate(a)]
    for i, ci in enumerate(c):
        for j in range(len(a)):
            k, est = best_k(
                pats[j], float(ci), pmax, policy, clock, kmax, [float(t[i, j]) for t in si_k]
            )
            k_dsi[i, j], t_dsi[i, j], t_err[i, j] = k, est.mean, est.stderr
        if progress is not None:
            progress(i + 1, len(c))
    servers = np.full(cc.shape, pmax, dtype=np.int64)
    model = f"{clock} clock, policy {policy}"
    return Heatmap(
        c, a, S, kmax, pmax, False, False, k_si, k_dsi, servers, t_si, t_dsi, model, reps, t_err
    )
