"""Running one `PassJob` on a worker's model instance: the same code in every transport."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gpu_runner.kv_worker import ModelWorker
from gpu_runner.layer_cut import Cut, PassCut
from gpu_runner.passes import PassMaker
from gpu_runner.transport.interface import PassJob


def run_pass(
    passes: PassMaker,
    worker: ModelWorker,
    job: PassJob,
    stop: Callable[[], bool] | None = None,
) -> Any:
    """The pass's result: (token, q) for a draft, the list of p rows for a score.

    With `stop` (true once the job is cancelled) and `passes.layer_cancel`, the pass may
    instead end at a decoder-layer boundary and return a `Cut` (the cache rolled back).
    """
    if stop is None or not passes.layer_cancel:
        return _run(passes, worker, job)
    start = time.perf_counter_ns()
    worker.stop = stop
    try:
        return _run(passes, worker, job)
    except PassCut as e:
        return Cut(e.layers_run, worker.layers or 0, (time.perf_counter_ns() - start) / 1e9)
    finally:
        worker.stop = None


def _run(passes: PassMaker, worker: ModelWorker, job: PassJob) -> Any:
    if job.kind == "draft":
        return passes.draft(worker, list(job.chain), job.first)
    return passes.score(worker, list(job.chain), job.first, job.last)


def pad(start_ns: int, cost: float | None) -> bool:
    """Sleep until `cost` seconds after `start_ns`; True if the pass already overran it."""
    if cost is None:
        return False
    left = start_ns + int(cost * 1e9) - time.perf_counter_ns()
    if left > 0:
        time.sleep(left / 1e9)
    return left < 0
