"""What dsi_ref's virtual clock predicts for a real run, under the run's own cost model.

A run's acceptance pattern (which positions' drafts passed) fixes its schedule
(dsi_ref.pattern), so the virtual clock can replay it with the pass costs that
the run either injected or measured. Measured costs are medians per class:
the target's prefill (a pass whose first position is 0), its decode pass,
the extra cost per extra scored position, and the drafter's two classes.
The clock is non-preemptive when dsi_ref offers it: a forward pass on real
hardware cannot be interrupted.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.policies import DEFAULT_POLICY
from gpu_runner.api import RunnerConfig, run
from gpu_runner.result import RealRun

_US = 10**6  # measured seconds are rounded to microseconds: exact, and small Fractions


def _frac(x: float) -> Fraction:
    return Fraction(round(x * _US), _US)


def fitted_latency(log: Sequence[tuple[str, int, int, float]], model: str) -> Latency | None:
    """Median TTFT, TPOT and per-extra-position cost of `model`'s passes in `log`."""
    rows = [(f, m, s) for kind, f, m, s in log if kind == model]
    if not rows:
        return None
    prefill = [s for f, m, s in rows if f == 0]
    decode1 = [s for f, m, s in rows if f > 0 and m == 1]
    wide = [(m, s) for f, m, s in rows if f > 0 and m > 1]
    tpot = (
        statistics.median(decode1)
        if decode1
        else statistics.median(s for _, s in wide or [(1, 0.0)])
    )
    ttft = statistics.median(prefill) if prefill else tpot
    per = 0.0
    if wide and decode1:
        per = max(0.0, statistics.median((s - tpot) / (m - 1) for m, s in wide))
    lat = Latency.of(_frac(ttft), max(_frac(tpot), Fraction(1, _US)), model)
    if per:
        lat = dataclasses.replace(lat, per_position=_frac(per))
    return lat


def isolated_costs(
    target: Any, drafter: Any, prompt: Sequence[int], cfg: RunnerConfig, backend: Any = "threads"
) -> tuple[Latency, Latency]:
    """Pass costs with no two passes overlapping: one SI run of `cfg` (the costs a
    prediction of a contended run starts from), fitted as by `fitted_latency`."""
    si = dataclasses.replace(cfg, algorithm="si", servers=1)
    r = run(target, drafter, prompt, si, backend=backend)
    tl, dl = fitted_latency(r.pass_log, "target"), fitted_latency(r.pass_log, "drafter")
    if tl is None or dl is None:
        raise InvalidConfig(
            f"max_new_tokens={cfg.max_new_tokens} is too short to time both models' passes"
        )
    return tl, dl


def predict(
    run: RealRun,
    k: int,
    servers: int,
    target: Latency,
    drafter: Latency,
    policy: str = DEFAULT_POLICY,
) -> Fraction:
    """The virtual clock's latency for `run`'s algorithm and acceptance pattern."""
    n = len(run.tokens)
    cfg = RunConfig(
        max_tokens=n,
        k=k,
        servers=servers if run.algorithm == "dsi" else 1,
        target_latency=target,
        drafter_latency=drafter,
        preemptive=False,
        policy=policy,
    )
    return run_pattern(run.algorithm, run.accepted, cfg).latency
