"""One thread per worker: jobs in, timed results out, on a shared event queue.

A job whose id was cancelled before it started is skipped (cooperative
cancellation); a running pass completes (or, with layer cancellation, stops at
the next decoder layer and returns a `Cut`) and its result is reported as stale (the
executor drops it and frees the server). A cut pass is not padded to its injected cost. On
CUDA each thread runs on its own stream and synchronises it before reporting,
so the times are those of the device work, and servers on one GPU overlap.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gpu_runner.layer_cut import Cut


@dataclass(frozen=True)
class Job:
    ident: int
    run: Callable[[], Any]  # the pass itself
    cost: float | None  # injected duration in seconds, or None


@dataclass(frozen=True)
class Report:
    worker: str
    ident: int
    result: Any
    started: int  # perf_counter_ns
    ended: int
    skipped: bool = False  # cancelled before it started: nothing ran
    error: BaseException | None = None
    overrun: bool = False  # the forward took longer than its injected cost


class WorkerThread:
    """Runs jobs one at a time on its own thread (and CUDA stream) and reports them."""

    def __init__(
        self,
        name: str,
        outbox: queue.Queue[Report],
        cancelled: Callable[[int], bool],
        device: torch.device,
    ) -> None:
        self.name = name
        self.outbox = outbox
        self.cancelled = cancelled
        self.device = device
        self.inbox: queue.Queue[Job | None] = queue.Queue()
        self.busy_ns = 0  # device-time proxy: wall time spent inside passes
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self.inbox.put(job)

    def stop(self) -> None:
        self.inbox.put(None)
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        torch.set_num_threads(1)  # many workers share few cores; intra-op threads only fight
        stream = None
        if self.device.type == "cuda":
            stream = torch.cuda.Stream(device=self.device)  # type: ignore[no-untyped-call]
        while True:
            job = self.inbox.get()
            if job is None:
                return
            now = time.perf_counter_ns()
            if self.cancelled(job.ident):
                self.outbox.put(Report(self.name, job.ident, None, now, now, skipped=True))
                continue
            try:
                if stream is not None:
                    with torch.cuda.stream(stream):
                        result = job.run()
                    stream.synchronize()
                else:
                    result = job.run()
            except BaseException as e:  # reported to the driver, which stops the run
                self.outbox.put(Report(self.name, job.ident, None, now, now, error=e))
                continue
            overrun = False
            if job.cost is not None and not isinstance(result, Cut):
                due = now + int(job.cost * 1e9)
                left = due - time.perf_counter_ns()
                overrun = left < 0
                if left > 0:
                    time.sleep(left / 1e9)
            end = time.perf_counter_ns()
            self.busy_ns += end - now
            self.outbox.put(Report(self.name, job.ident, result, now, end, overrun=overrun))
