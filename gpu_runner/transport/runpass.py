"""Running one `PassJob` on a worker's model instance: the same code in every transport."""

from __future__ import annotations

import time
from typing import Any

from gpu_runner.kv_worker import ModelWorker
from gpu_runner.passes import PassMaker
from gpu_runner.transport.interface import PassJob


def run_pass(passes: PassMaker, worker: ModelWorker, job: PassJob) -> Any:
    """The pass's result: (token, q) for a draft, the list of p rows for a score."""
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
