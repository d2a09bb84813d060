"""What dsi_ref's virtual clock predicts for a real run, under the run's own cost model.

A run's acceptance pattern (which positions' drafts passed) fixes its schedule
(dsi_ref.pattern), so the virtual clock can replay it with the pass costs that
the run either injected or measured. Measured costs are medians per class:
the target's prefill (a pass whose first position is 0), its decode pass,
the extra cost per extra scored position, and the drafter's two classes.
The clock is non-preemptive: a forward pass on real hardware cannot be interrupted,
except between decoder layers where the run cut cancelled passes there
(`cancel_granularity`). `isolated_costs` measures the costs a prediction starts from
with no two passes overlapping (never from the run predicted), including the
driver's per-pass overhead (`driver_overhead`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.policies import DEFAULT_POLICY
from gpu_runner.api import RunnerConfig, run
from gpu_runner.cost_fit import fitted_latency, micro
from gpu_runner.result import RealRun

_WIDTH_ONE = 16  # tokens of the non-SI run that times one-position target passes


def driver_overhead(r: RealRun) -> float:
    """Seconds per pass that `r` spent outside its passes: (wall - time inside passes) /
    passes. For a run whose passes never overlap (SI, non-SI) this is the driver's work
    and the hop to the worker and back, which every pass costs as the scheduler sees it."""
    inside = sum(s for *_, s in r.pass_log)
    return max(0.0, (r.wall - inside) / len(r.pass_log)) if r.pass_log else 0.0


def isolated_costs(
    target: Any,
    drafter: Any,
    prompt: Sequence[int],
    cfg: RunnerConfig,
    backend: Any = "threads",
    overhead: bool = True,
) -> tuple[Latency, Latency]:
    """Pass costs with no two passes overlapping, the costs a prediction of a contended
    run starts from: one SI run of `cfg` (drafts, and target passes of k + 1 positions)
    and one short non-SI run (target passes of one position, so the per-position cost
    is fitted), both fitted as by `fitted_latency`. With `overhead`, every pass also
    carries the SI run's `driver_overhead` (the driver's work and the transport hop)."""
    si = dataclasses.replace(cfg, algorithm="si", servers=1)
    r = run(target, drafter, prompt, si, backend=backend)
    one = dataclasses.replace(cfg, algorithm="nonsi", servers=1, max_new_tokens=_WIDTH_ONE)
    log = r.pass_log + run(target, drafter, prompt, one, backend=backend).pass_log
    tl, dl = fitted_latency(log, "target"), fitted_latency(log, "drafter")
    if tl is None or dl is None:
        raise InvalidConfig(
            f"max_new_tokens={cfg.max_new_tokens} is too short to time both models' passes"
        )
    if overhead:
        o = micro(driver_overhead(r))
        tl = dataclasses.replace(tl, ttft=tl.ttft + o, tpot=tl.tpot + o)
        dl = dataclasses.replace(dl, ttft=dl.ttft + o, tpot=dl.tpot + o)
    return tl, dl


def cancel_granularity(r: RealRun) -> int | None:
    """The virtual clock's `cancel_layers` matching run `r`: the target's decoder-layer
    count where the run cut cancelled passes between layers (`Costs.cut_layers`), else None
    (a cancelled pass runs to its end). The clock splits drafts into as many layers."""
    return r.costs.cut_layers


def predict(
    run: RealRun,
    k: int,
    servers: int,
    target: Latency,
    drafter: Latency,
    policy: str = DEFAULT_POLICY,
    cancel_layers: int | None = None,
) -> Fraction:
    """The virtual clock's latency for `run`'s algorithm and acceptance pattern; with
    `cancel_layers` (`cancel_granularity`), a cancelled pass ends at a layer boundary."""
    n = len(run.tokens)
    cfg = RunConfig(
        max_tokens=n,
        k=k,
        servers=servers if run.algorithm == "dsi" else 1,
        target_latency=target,
        drafter_latency=drafter,
        preemptive=False,
        policy=policy,
        cancel_layers=cancel_layers if run.algorithm == "dsi" else None,
    )
    return run_pattern(run.algorithm, run.accepted, cfg).latency
