"""The `threads` backend: gpu_runner.threads' WorkerThread behind the Workers interface.

One thread (and CUDA stream) per worker in the driver's process; servers on one
device share one weight copy. A hung thread cannot be killed: `restart` abandons
it (its late reports are dropped by generation) and starts a fresh one.
With `passes.layer_cancel` the models are armed (gpu_runner.layer_cut) for the run and a
running pass sees its cancellation at the next decoder layer; the hooks go at shutdown.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from functools import partial

import torch

from gpu_runner.kv_worker import ModelWorker
from gpu_runner.layer_cut import arm, disarm
from gpu_runner.passes import PassMaker
from gpu_runner.threads import Job, WorkerThread
from gpu_runner.threads import Report as ThreadReport
from gpu_runner.transport.interface import PassJob, Report, WorkerCounters, worker_name
from gpu_runner.transport.runpass import run_pass


class ThreadWorkers:
    """Worker i runs model `models[i]` (None: no such worker, e.g. non-SI's drafter)."""

    def __init__(
        self,
        models: Sequence[torch.nn.Module | None],
        prompt: Sequence[int],
        vocab: int,
        passes: PassMaker,
    ) -> None:
        self._models = list(models)
        self._prompt = list(prompt)
        self._vocab = vocab
        self._passes = passes
        self._outbox: queue.Queue[ThreadReport] = queue.Queue()
        self._cancelled: list[set[int]] = [set() for _ in models]
        self._gen = [0] * len(models)
        self._mw: list[ModelWorker | None] = [None] * len(models)
        self._th: list[WorkerThread | None] = [None] * len(models)
        self._retired = [WorkerCounters() for _ in models]
        self._armed = [m for m in models if m is not None and passes.layer_cancel]
        for m in self._armed:
            arm(m)
        for i in range(len(models)):
            self._start(i)

    def _start(self, i: int) -> None:
        m = self._models[i]
        if m is None:
            return
        name = worker_name(i)
        mw = ModelWorker(m, self._prompt, "target" + name[6:] if i else name, self._vocab)
        self._mw[i] = mw
        cancelled = self._cancelled[i]
        self._th[i] = WorkerThread(
            f"{i}:{self._gen[i]}", self._outbox, cancelled.__contains__, mw.device
        )

    @property
    def count(self) -> int:
        return len(self._models)

    def submit(self, worker: int, job: PassJob) -> None:
        th, mw = self._th[worker], self._mw[worker]
        if th is None or mw is None:
            raise ValueError(f"no {worker_name(worker)} in this run")
        stop = partial(self._cancelled[worker].__contains__, job.ident)
        th.submit(Job(job.ident, partial(run_pass, self._passes, mw, job, stop), job.cost))

    def cancel(self, worker: int, ident: int) -> None:
        self._cancelled[worker].add(ident)

    def next_report(self, timeout: float | None) -> Report | None:
        while True:
            try:
                rep = self._outbox.get(timeout=timeout)
            except queue.Empty:
                return None
            w, gen = (int(x) for x in rep.worker.split(":"))
            if gen != self._gen[w]:
                continue  # a report of an abandoned (restarted) thread
            return Report(
                w,
                rep.ident,
                rep.result,
                rep.started,
                rep.ended,
                rep.skipped,
                rep.error,
                rep.overrun,
            )

    def restart(self, worker: int) -> bool:
        old, mw = self._th[worker], self._mw[worker]
        if old is None or mw is None:
            return False
        old.inbox.put(None)  # it exits after its current pass, if that ever ends
        self._retired[worker] = _plus(self._retired[worker], _counted(mw, old))
        self._gen[worker] += 1
        self._start(worker)
        return True

    def counters(self) -> list[WorkerCounters]:
        out = []
        for i, (mw, th) in enumerate(zip(self._mw, self._th, strict=True)):
            now = WorkerCounters() if mw is None or th is None else _counted(mw, th)
            out.append(_plus(self._retired[i], now))
        return out

    def bytes_moved(self) -> int:
        return 0

    def shutdown(self) -> None:
        for th in self._th:
            if th is not None:
                th.inbox.put(None)
        for th in self._th:
            if th is not None:
                th.stop()
        for m in self._armed:
            disarm(m)


def _counted(mw: ModelWorker, th: WorkerThread) -> WorkerCounters:
    return WorkerCounters(mw.forwards, mw.tokens_fed, mw.peak_cache_bytes, th.busy_ns)


def _plus(a: WorkerCounters, b: WorkerCounters) -> WorkerCounters:
    return WorkerCounters(
        a.forwards + b.forwards,
        a.tokens_fed + b.tokens_fed,
        max(a.peak_cache_bytes, b.peak_cache_bytes),
        a.busy_ns + b.busy_ns,
    )
