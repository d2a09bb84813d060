"""The `processes` backend: one OS process per worker, each with its own KV cache.

Processes start from a forkserver that has imported torch and transformers once,
so a worker starts in well under a second. The model reaches a worker through
torch's multiprocessing pickler: CPU weights move to shared memory (one copy,
read-only, for all processes of the host; CUDA tensors travel as IPC handles), so
an extra server costs its cache and its interpreter, not a weight copy. Each
worker runs one torch thread and warps in place; a pass sends back only the rows
of the positions it scored (timing mode: none), as raw float64 arrays.

Messages are pickled by hand (`send_bytes`) so that the bytes moved are counted.
A pool outlives runs when the caller keeps it (`ProcessBackend` as `backend=`):
each run sends `begin` (new prompt, fresh cache, new `PassMaker`) and tags every
report with the run's number, so a late report of an earlier run is dropped.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import pickle
import select
import signal
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
import torch
import torch.multiprocessing  # registers torch's tensor reductions with multiprocessing

from gpu_runner.kv_worker import ModelWorker
from gpu_runner.layer_cut import Cut, arm
from gpu_runner.passes import PassMaker
from gpu_runner.transport.interface import (
    PassJob,
    Report,
    WorkerCounters,
    WorkerFailure,
    worker_name,
)
from gpu_runner.transport.recovery import Supervised
from gpu_runner.transport.runpass import pad, run_pass

START_TIMEOUT = 120.0  # seconds for a worker to start and load its model (a loaded box)
PRELOAD = ["gpu_runner.transport.processes", "transformers.models.llama.modeling_llama"]


def _pack(x: Any) -> Any:
    """Tensors as numpy arrays (pickled as raw bytes), recursively through lists/tuples."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)):
        return type(x)(_pack(v) for v in x)
    return x


def _unpack(x: Any) -> Any:
    if isinstance(x, np.ndarray):  # Ray hands back read-only (zero-copy) arrays
        return torch.from_numpy(x if x.flags.writeable else x.copy())
    if isinstance(x, (list, tuple)):
        return type(x)(_unpack(v) for v in x)
    return x


def _portable(e: BaseException) -> BaseException:
    """`e` if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


def _child(conn: Connection, model: torch.nn.Module, vocab: int) -> None:
    """A worker process: run jobs in order, skip cancelled ones, report each one."""
    torch.set_num_threads(1)  # one core per worker; intra-op threads only fight
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver ends it (Ctrl-C is the driver's)
    pending: deque[PassJob] = deque()
    cancelled: set[int] = set()
    mw: ModelWorker | None = None
    passes: PassMaker | None = None
    backlog: deque[tuple[Any, ...]] = deque()  # read during a pass, handled after it
    run = 0
    busy = 0

    def send(msg: tuple[Any, ...]) -> None:
        conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))

    def cancelled_now(ident: int) -> bool:
        """Layer cancellation's check: read what arrived (cancels count at once)."""
        while conn.poll(0):
            msg = pickle.loads(conn.recv_bytes())
            if msg[0] == "cancel" and all(m[0] != "begin" for m in backlog):
                cancelled.add(msg[1])  # (after a queued `begin`, it belongs to the next run)
            else:
                backlog.append(msg)
        return ident in cancelled

    while True:
        while not pending or backlog or conn.poll(0):
            msg = backlog.popleft() if backlog else pickle.loads(conn.recv_bytes())
            kind = msg[0]
            if kind == "begin":
                _, run, prompt, name, passes = msg
                if passes.layer_cancel:
                    arm(model)  # this process's copy of the model
                mw = ModelWorker(model, prompt, name, vocab)
                pending.clear()
                cancelled.clear()
                busy = 0
                send(("ready", run, os.getpid()))
            elif kind == "job":
                pending.append(msg[1])
            elif kind == "cancel":
                cancelled.add(msg[1])
            elif kind == "counters":
                c = (0, 0, 0) if mw is None else (mw.forwards, mw.tokens_fed, mw.peak_cache_bytes)
                send(("counters", run, WorkerCounters(*c, busy)))
            elif kind == "stop":
                return
        job = pending.popleft()
        start = time.perf_counter_ns()
        if job.ident in cancelled or mw is None or passes is None:
            send(("report", run, job.ident, None, start, start, True, False, None))
            continue
        if mw.device.type == "cuda":
            torch.cuda.synchronize(mw.device)
        try:
            result = _pack(run_pass(passes, mw, job, partial(cancelled_now, job.ident)))
            if mw.device.type == "cuda":
                torch.cuda.synchronize(mw.device)
            error = None
        except BaseException as e:  # reported; the driver decides (typed error or fault)
            result, error = None, _portable(e)
        overrun = error is None and not isinstance(result, Cut) and pad(start, job.cost)
        end = time.perf_counter_ns()
        busy += end - start
        send(("report", run, job.ident, result, start, end, False, overrun, error))


@dataclass
class _Slot:
    model: torch.nn.Module
    proc: BaseProcess
    conn: Connection
    alive: bool = True


class ProcessBackend:
    """A pool of worker processes, reused across runs while it is open (close() ends it)."""

    def __init__(
        self,
        *,
        deadline: float | None = 120.0,
        max_restarts: int = 2,
        start_method: str = "forkserver",
        pin: bool = False,
    ) -> None:
        self.deadline = deadline
        self.max_restarts = max_restarts
        self.pin = pin  # worker i on core i while the run's workers fit the cores
        self._ctx: Any = mp.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(PRELOAD)
        self._slots: list[_Slot | None] = []
        self._vocab = 0
        self._run = 0
        self._begin: list[tuple[Any, ...] | None] = []
        self.bytes = 0
        self.starts = 0  # processes started (restarts included)

    # ----- the pool --------------------------------------------------------------------

    def _spawn(self, model: torch.nn.Module) -> _Slot:
        mine, theirs = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_child, args=(theirs, model, self._vocab), daemon=True)
        proc.start()
        theirs.close()
        self.starts += 1
        return _Slot(model, proc, mine)

    def _send(self, slot: _Slot, msg: tuple[Any, ...]) -> None:
        blob = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        self.bytes += len(blob)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError, OSError):
            slot.conn.send_bytes(blob)  # if it died, its sentinel reports that

    def _await_ready(self, i: int, timeout: float = START_TIMEOUT) -> bool:
        """Wait for worker i's `ready` for this run; False if it died or stayed silent."""
        slot = self._slots[i]
        assert slot is not None
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            ready = wait([slot.conn, slot.proc.sentinel], max(0.0, left))
            if slot.conn in ready:
                try:
                    msg = pickle.loads(slot.conn.recv_bytes())
                except (EOFError, OSError):
                    msg = ("died",)
                if msg[0] == "ready" and msg[1] == self._run:
                    return True
                if msg[0] != "died":
                    continue  # a late report of an earlier run
            if ready or left <= 0:
                return False

    def _start_ready(self, i: int, model: torch.nn.Module) -> None:
        """A fresh process for slot i, begun for this run, or WorkerFailure."""
        old = self._slots[i]
        if old is not None:
            old.proc.kill()  # hung, or raised mid-pass: its cache is not to be trusted
            old.proc.join(timeout=5)
            old.conn.close()
        slot = self._slots[i] = self._spawn(model)
        begin = self._begin[i]
        assert begin is not None
        self._send(slot, begin)
        if not self._await_ready(i):
            slot.alive = False
            raise WorkerFailure(
                f"{worker_name(i)} did not start within {START_TIMEOUT:.0f} s "
                f"(exit code {slot.proc.exitcode}); a script that starts worker processes "
                "must guard its entry point with `if __name__ == '__main__':` (each new "
                "process imports the main module again)"
            )

    def open(
        self,
        models: Sequence[torch.nn.Module | None],
        prompt: Sequence[int],
        vocab: int,
        passes: PassMaker,
    ) -> Supervised:
        """Workers for one run: worker i holds models[i] (reused if it already does)."""
        if vocab != self._vocab:
            self.close()
            self._vocab = vocab
        while len(self._slots) < len(models):
            self._slots.append(None)
        self._run += 1
        self._begin = []
        for i, m in enumerate(models):
            slot = self._slots[i]
            if slot is not None and (m is None or slot.model is not m or not slot.alive):
                self._stop(i)
                slot = None
            if m is not None and slot is None:
                self._slots[i] = self._spawn(m)
            name = worker_name(i) if i == 0 else f"target{i - 1}"
            begin = None if m is None else ("begin", self._run, list(prompt), name, passes)
            self._begin.append(begin)
        for i in range(len(self._slots)):
            if i >= len(models) and self._slots[i] is not None:
                self._stop(i)
        self._slots = self._slots[: len(models)]
        for i, slot in enumerate(self._slots):
            begin = self._begin[i]
            if slot is not None and begin is not None:
                self._send(slot, begin)
        # A worker still busy with an earlier run's pass past the deadline is replaced.
        wait_s = START_TIMEOUT if self.deadline is None else self.deadline
        for i, slot in enumerate(self._slots):
            if slot is not None and not self._await_ready(i, wait_s):
                self._start_ready(i, slot.model)
        self._pin()
        inner = ProcessWorkers(self, self._run)
        return Supervised(inner, deadline=self.deadline, max_restarts=self.max_restarts)

    def _pin(self) -> None:
        """With `pin`: worker i on the i-th core this process may use, if every worker
        gets its own; otherwise (too few cores) every worker may use them all."""
        if not self.pin or not hasattr(os, "sched_setaffinity"):
            return
        cores = sorted(os.sched_getaffinity(0))
        fits = len(self._slots) <= len(cores)
        for i, slot in enumerate(self._slots):
            if slot is not None and slot.alive and slot.proc.pid is not None:
                with contextlib.suppress(OSError):  # it may have just died
                    os.sched_setaffinity(slot.proc.pid, {cores[i]} if fits else set(cores))

    def _stop(self, i: int) -> None:
        slot = self._slots[i]
        if slot is None:
            return
        self._slots[i] = None
        if slot.alive:
            self._send(slot, ("stop",))
            slot.proc.join(timeout=5)
        if slot.proc.is_alive():
            slot.proc.kill()
            slot.proc.join(timeout=5)
        slot.conn.close()

    def restart(self, i: int) -> bool:
        slot = self._slots[i]
        if slot is None or i >= len(self._begin) or self._begin[i] is None:
            return False
        try:
            self._start_ready(i, slot.model)
        except WorkerFailure:
            return False
        self._pin()
        return True

    def pids(self) -> list[int | None]:
        return [None if s is None else s.proc.pid for s in self._slots]

    def close(self) -> None:
        """Stop every worker process (idempotent)."""
        for i in range(len(self._slots)):
            self._stop(i)
        self._slots = []

    def __enter__(self) -> ProcessBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProcessWorkers:
    """One run's view of a `ProcessBackend` (the Workers interface)."""

    def __init__(self, pool: ProcessBackend, run: int, *, owned: bool = False) -> None:
        self.pool = pool
        self.run = run
        self.owned = owned  # shut the pool down with the run
        self._bytes0 = pool.bytes
        # One poll object for the run, rebuilt only when the live workers change: building
        # one per report (multiprocessing.connection.wait) cost the driver ~0.05 ms a pass.
        self._watched: tuple[tuple[int, int, int], ...] = ()
        self._poll = select.poll()
        self._fds: dict[int, tuple[int, _Slot, bool]] = {}

    @property
    def count(self) -> int:
        return len(self.pool._slots)

    def _slot(self, worker: int) -> _Slot:
        slot = self.pool._slots[worker]
        if slot is None:
            raise ValueError(f"no {worker_name(worker)} in this run")
        return slot

    def submit(self, worker: int, job: PassJob) -> None:
        self.pool._send(self._slot(worker), ("job", job))

    def cancel(self, worker: int, ident: int) -> None:
        self.pool._send(self._slot(worker), ("cancel", ident))

    def _ready(self, timeout: float | None) -> list[tuple[int, _Slot, bool]]:
        """The live workers' pipes and process sentinels ready within `timeout` seconds
        (None: wait for one): (worker, slot, is its pipe)."""
        live = [(i, s) for i, s in enumerate(self.pool._slots) if s is not None and s.alive]
        watched = tuple(
            (i, s.proc.pid or 0, s.conn.fileno()) for i, s in live
        )  # a restart: new pid
        if watched != self._watched:
            self._poll = select.poll()
            self._fds = {}
            for i, s in live:
                for fd, is_conn in ((s.conn.fileno(), True), (s.proc.sentinel, False)):
                    self._fds[fd] = (i, s, is_conn)
                    self._poll.register(fd, select.POLLIN)
            self._watched = watched
        ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        return [self._fds[fd] for fd, _ in self._poll.poll(ms)]

    def next_report(self, timeout: float | None) -> Report | None:
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if end is None else max(0.0, end - time.monotonic())
            ready = self._ready(left)
            if not ready:
                if end is not None and time.monotonic() >= end:
                    return None
                continue  # woken with nothing to read (EINTR): wait out the rest
            for i, s, is_conn in ready:
                if not is_conn and s.conn.poll(0):
                    continue  # read what it sent before it ended first
                msg: tuple[Any, ...] = ("died",)
                if is_conn:
                    try:
                        blob = s.conn.recv_bytes()
                        self.pool.bytes += len(blob)
                        msg = pickle.loads(blob)
                    except (EOFError, OSError):
                        pass
                if msg[0] == "died":
                    s.alive = False
                    now = time.perf_counter_ns()
                    return Report(i, -1, None, now, now, fault="died")
                if msg[0] != "report" or msg[1] != self.run:
                    continue  # a late reply of an earlier run
                _, _, ident, result, start, end_ns, skipped, overrun, error = msg
                return Report(i, ident, _unpack(result), start, end_ns, skipped, error, overrun)

    def restart(self, worker: int) -> bool:
        return self.pool.restart(worker)

    def counters(self) -> list[WorkerCounters]:
        out = []
        for i, s in enumerate(self.pool._slots):
            if s is None or not s.alive:
                out.append(WorkerCounters())
                continue
            self.pool._send(s, ("counters",))
            got = WorkerCounters()
            end = time.monotonic() + (self.pool.deadline or START_TIMEOUT)
            while time.monotonic() < end and s.conn.poll(max(0.0, end - time.monotonic())):
                try:
                    msg = pickle.loads(s.conn.recv_bytes())
                except (EOFError, OSError):
                    break
                if msg[0] == "counters" and msg[1] == self.run:
                    got = msg[2]
                    break
            del i
            out.append(got)
        return out

    def bytes_moved(self) -> int:
        return self.pool.bytes - self._bytes0

    def shutdown(self) -> None:
        if self.owned:
            self.pool.close()
