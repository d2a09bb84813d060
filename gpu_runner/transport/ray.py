"""The `ray` backend (optional extra `ray`): one Ray actor per worker, placed by Ray.

Each actor holds its own model instance and KV cache. A model that `generate`
loaded from a directory (`model_source`) is loaded by each actor from that path
itself, with the driver's dtype and device and the same checks (`load_model`:
local files only); one given in memory reaches the actors through one `ray.put`
(a copy per actor, unlike the processes backend's shared memory). Each actor
runs one torch thread and executes a pass as the processes backend's child does
(`runpass`), returning the scored rows as numpy arrays.
`ray.cancel` cannot interrupt a running actor task, so jobs wait in the driver
and go to an actor one at a time: cancelling a job not yet sent skips it, and a
sent one is told through the actor's `stop`, which runs in a concurrency group of
its own; with layer cancellation on the pass stops at its next decoder layer, else
it completes. With resources per worker
(`num_cpus`/`num_gpus`), the actors are placed with a placement group (strategy
PACK by default, SPREAD to span nodes; a run with more workers than before adds a
group for the new ones). `address=None` joins the cluster named by
$RAY_ADDRESS if set, else starts a local one (stopped on `close`); an address
("auto", "ray://host:10001") joins one. A cluster this backend joined is left
running; only the actors and the placement group go on `close`.
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from dsi_ref.errors import DSIError, InvalidConfig, show
from gpu_runner.errors import ModelLoadError
from gpu_runner.kv_worker import ModelWorker
from gpu_runner.layer_cut import arm
from gpu_runner.passes import PassMaker
from gpu_runner.transport.backends import model_source
from gpu_runner.transport.interface import (
    PassJob,
    Report,
    WorkerCounters,
    WorkerFailure,
    worker_name,
)
from gpu_runner.transport.processes import _pack, _portable, _unpack
from gpu_runner.transport.recovery import Supervised
from gpu_runner.transport.runpass import pad, run_pass

START_TIMEOUT = 120.0
CONTROL = "control"  # the actor's concurrency group for `stop`
LOAD_TIMEOUT = 1800.0  # an actor loading a large model from a (network) disk


def resource_problem(value: object, gpus: bool) -> str | None:
    """Why `value` is not a Ray resource amount per worker (None: it is one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {show(value)}"
    if not math.isfinite(value) or value < 0:
        return f"must be a finite number >= 0, got {value}"
    if gpus and value > 1 and value != int(value):
        return f"above 1 must be a whole number of GPUs (Ray's rule), got {value}"
    return None


@dataclass(frozen=True)
class ModelSource:
    """A model directory that an actor loads itself, at the driver's dtype and device."""

    path: str
    dtype: torch.dtype
    device: str

    @staticmethod
    def of(model: torch.nn.Module) -> ModelSource | None:
        path = model_source(model)
        if path is None:
            return None
        p = next(model.parameters())
        return ModelSource(path, p.dtype, str(p.device))


def load_source(src: ModelSource, vocab: int, gpu_ids: Sequence[object]) -> torch.nn.Module:
    """`src` loaded here with `load_model`'s checks. A CUDA model goes to the actor's
    own GPU when Ray gave it some (Ray then shows it only those, the first as cuda:0),
    else to the driver's device, which must exist here."""
    from gpu_runner.loading import load_model, vocab_size

    device = src.device
    if torch.device(device).type == "cuda" and gpu_ids:
        device = "cuda:0"
    model = load_model(src.path, dtype=src.dtype, device=device)
    if vocab_size(model) != vocab:  # another model at the same path on this node
        raise ModelLoadError(
            f"model {src.path!r} has {vocab_size(model)} output rows here, the driver's has {vocab}"
        )
    return model


def ray_module() -> Any:
    """`ray`, or a WorkerFailure that says how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as e:
        raise WorkerFailure(
            f"the ray backend needs the optional extra: pip install 'dsi-ref[ray]' ({e})"
        ) from None


class WorkerActor:
    """The actor's body: one model instance, its cache, the run's PassMaker."""

    def __init__(self, model: torch.nn.Module | ModelSource, vocab: int) -> None:
        torch.set_num_threads(1)
        self.source = model if isinstance(model, ModelSource) else None
        self.model = None if isinstance(model, ModelSource) else model
        self.vocab = vocab
        self.mw: Any = None
        self.passes: PassMaker | None = None
        self.run = 0
        self.busy = 0
        # The job the driver cancelled while it ran (`stop`, served in its own concurrency
        # group): its pass stops at the next decoder layer when layer cancellation is on.
        self.stopped: int | None = None

    def load(self) -> BaseException | None:
        """Load the model from its path (once); what went wrong, if it could not."""
        if self.model is None:
            assert self.source is not None
            try:
                self.model = load_source(self.source, self.vocab, ray_module().get_gpu_ids())
            except BaseException as e:
                return _portable(e)
        return None

    def begin(self, run: int, prompt: list[int], name: str, passes: PassMaker) -> int:
        assert self.model is not None
        if passes.layer_cancel:
            arm(self.model)  # this actor's copy of the model
        self.mw = ModelWorker(self.model, prompt, name, self.vocab)
        self.passes, self.run, self.busy, self.stopped = passes, run, 0, None
        return os.getpid()

    def stop(self, ident: int) -> None:
        """Cancel job `ident` if it is running (a later job is not touched)."""
        self.stopped = ident

    def step(self, job: PassJob) -> tuple[Any, ...]:
        assert self.passes is not None and self.mw is not None
        start = time.perf_counter_ns()
        try:
            stop = partial(_is_stopped, self, job.ident)
            result = _pack(run_pass(self.passes, self.mw, job, stop))
            if self.mw.device.type == "cuda":
                torch.cuda.synchronize(self.mw.device)
            error = None
        except BaseException as e:
            result, error = None, _portable(e)
        overrun = error is None and pad(start, job.cost)
        end = time.perf_counter_ns()
        self.busy += end - start
        return (self.run, job.ident, result, start, end, overrun, error)

    def counters(self) -> WorkerCounters:
        mw = self.mw
        if mw is None:
            return WorkerCounters(busy_ns=self.busy)
        return WorkerCounters(mw.forwards, mw.tokens_fed, mw.peak_cache_bytes, self.busy)


def _is_stopped(actor: WorkerActor, ident: int) -> bool:
    return actor.stopped == ident


@dataclass
class _Slot:
    model: torch.nn.Module
    source: ModelSource | None  # the actor loads the model from here (else: shipped)
    actor: Any
    loaded: bool = False
    queue: deque[PassJob] = field(default_factory=deque)
    cancelled: set[int] = field(default_factory=set)
    inflight: tuple[Any, PassJob] | None = None
    alive: bool = True
    pid: int | None = None  # of the actor's process (local clusters: for memory figures)


# Ray's placement-group strategies: PACK keeps the workers on few nodes, SPREAD spreads
# them over nodes where it can; the STRICT_ ones fail instead of bending.
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class RayBackend:
    """Ray actors as workers, reused across runs while open (close() ends them)."""

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: float = 0.0,
        num_gpus: float = 0.0,
        strategy: str = "PACK",
        local_cpus: int = 2,
        deadline: float | None = 120.0,
        max_restarts: int = 2,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            problem = resource_problem(value, name == "num_gpus")
            if problem is not None:
                raise InvalidConfig(f"RayBackend {name} {problem}")
        if strategy not in STRATEGIES:
            raise InvalidConfig(
                f"RayBackend strategy must be one of {STRATEGIES}, got {show(strategy)}"
            )
        if strategy != "PACK" and not (num_cpus or num_gpus):  # else it would do nothing
            raise InvalidConfig(
                f"RayBackend strategy {strategy} needs num_cpus or num_gpus per worker: "
                "without them no placement group is made and Ray places actors freely"
            )
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise InvalidConfig(f"RayBackend address must be a non-empty str, got {show(address)}")
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.strategy = strategy
        self.local_cpus = local_cpus
        self.deadline = deadline
        self.max_restarts = max_restarts
        self.runtime_env = runtime_env
        self._ray: Any = None
        self._owns_cluster = False
        self._joined = False  # connected to a cluster started elsewhere (it may grow)
        self._slots: list[_Slot | None] = []
        self._begin: list[tuple[Any, ...] | None] = []
        # id(model) -> (model, its ObjectRef): the model is held so that its id is not reused
        self._refs: dict[int, tuple[torch.nn.Module, Any]] = {}
        self._bundles: list[tuple[Any, int]] = []  # worker -> (placement group, bundle)
        self._vocab = 0
        self._run = 0
        self._n = 0  # workers in the current run (idle actors may follow)
        self.starts = 0  # actors started (restarts included)

    def _init(self) -> Any:
        if self._ray is not None:
            return self._ray
        ray = ray_module()
        self._joined = True  # unless this backend starts the cluster itself (below)
        if not ray.is_initialized():
            # Ray 2.60 turns token auth on (and writes a token file in $HOME) unless told not to.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.runtime_env is not None:
                kw["runtime_env"] = self.runtime_env
            address = self.address or os.environ.get("RAY_ADDRESS")  # as `ray` itself reads it
            self._joined = address is not None
            if address is None:
                kw["num_cpus"] = self.local_cpus
            else:
                kw["address"] = address
            try:
                ray.init(**kw)
            except Exception as e:  # an address that does not answer, a bad runtime_env
                where = "a local cluster" if address is None else f"the cluster at {address!r}"
                raise WorkerFailure(f"Ray could not start or join {where}: {e}") from None
            self._owns_cluster = True
        self._ray = ray
        return ray

    def _options(self, i: int) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "max_restarts": 0}
        if self.num_gpus:
            opts["num_gpus"] = self.num_gpus
        if i < len(self._bundles):
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            pg, index = self._bundles[i]
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=index
            )
        return opts

    def _placement(self, n: int) -> None:
        """One bundle per worker when workers ask for resources (else Ray packs freely).

        More workers than bundles: a placement group for the new ones only, so the
        actors already placed keep running.
        """
        ray = self._ray
        if not (self.num_cpus or self.num_gpus) or len(self._bundles) >= n:
            return
        bundle = {"CPU": self.num_cpus, **({"GPU": self.num_gpus} if self.num_gpus else {})}
        have = ray.cluster_resources()
        short = {r: n * v for r, v in bundle.items() if n * v > have.get(r, 0.0) + 1e-9}
        if short and not self._joined:  # a local cluster of ours never grows: fail now
            raise WorkerFailure(
                f"Ray cannot place {n} workers of {bundle}: they need {short} but the "
                f"local cluster has { ({r: have.get(r, 0.0) for r in short}) }"
            )
        more = n - len(self._bundles)
        pg = ray.util.placement_group([dict(bundle) for _ in range(more)], strategy=self.strategy)
        ready, _ = ray.wait([pg.ready()], timeout=START_TIMEOUT)
        if not ready:
            ray.util.remove_placement_group(pg)
            raise WorkerFailure(
                f"Ray could not place {more} more workers of {bundle} with {self.strategy} "
                f"within {START_TIMEOUT:.0f} s (cluster resources: {ray.cluster_resources()})"
            )
        self._bundles += [(pg, j) for j in range(more)]

    def _spawn(self, i: int, model: torch.nn.Module, source: ModelSource | None) -> _Slot:
        ray = self._ray
        what: Any = source
        if source is None:
            held = self._refs.get(id(model))
            if held is None:
                held = self._refs[id(model)] = (model, ray.put(model))
            what = held[1]
        # `stop` runs in a concurrency group of its own, so it reaches the actor while `step`
        # runs; every other method stays in the default group, one at a time and in order.
        cls = ray.remote(concurrency_groups={CONTROL: 1})(WorkerActor)
        actor = cls.options(**self._options(i)).remote(what, self._vocab)
        self.starts += 1
        return _Slot(model, source, actor)

    def _load(self, i: int, slot: _Slot) -> bool:
        """Have worker i's actor load its model from its path (False: the actor died).

        A path the actor cannot load from is a ModelLoadError naming it (a fresh actor
        would fail alike, so none is started)."""
        ray = self._ray
        done, _ = ray.wait([slot.actor.load.remote()], timeout=LOAD_TIMEOUT)
        try:
            error = ray.get(done[0]) if done else TimeoutError(f"no answer in {LOAD_TIMEOUT} s")
        except Exception:
            return False
        if error is None:
            slot.loaded = True
            return True
        assert slot.source is not None
        self._kill(i)
        raise ModelLoadError(
            f"{worker_name(i)} (a Ray actor) cannot load its model from "
            f"{slot.source.path!r}: {type(error).__name__}: {error}"
        ) from (error if isinstance(error, DSIError) else None)

    def _ready(self, i: int, timeout: float = START_TIMEOUT) -> bool:
        """Begin this run on worker i's actor; False if it died or stayed busy past `timeout`."""
        slot, begin = self._slots[i], self._begin[i]
        assert slot is not None and begin is not None
        ray = self._ray
        if slot.source is not None and not slot.loaded and not self._load(i, slot):
            return False
        ref = slot.actor.begin.remote(*begin[1:])
        done, _ = ray.wait([ref], timeout=timeout)
        if not done:
            return False
        try:
            slot.pid = ray.get(done[0])
        except Exception:
            return False
        return True

    def open(
        self,
        models: Sequence[torch.nn.Module | None],
        prompt: Sequence[int],
        vocab: int,
        passes: PassMaker,
    ) -> Supervised:
        """Workers for one run: worker i holds models[i] (its actor reused if it already does).

        Actors beyond this run's count stay idle for a later run (an actor's start
        costs seconds: it imports torch and unpickles its model).
        """
        self._init()
        if vocab != self._vocab:
            self._kill_all()
            self._vocab = vocab
        n = len(models)
        self._placement(n)
        while len(self._slots) < n:
            self._slots.append(None)
        self._run += 1
        self._n = n
        self._begin = []
        fresh = set()
        for i, m in enumerate(models):
            slot = self._slots[i]
            source = None if m is None else ModelSource.of(m)
            if slot is not None and (m is None or not slot.alive or not _same(slot, m, source)):
                self._kill(i)
                slot = None
            if slot is not None and m is not None:
                slot.model = m  # same path, dtype and device: the actor's copy stands
            if m is not None and slot is None:
                self._slots[i] = self._spawn(i, m, source)
                fresh.add(i)
            name = worker_name(i) if i == 0 else f"target{i - 1}"
            self._begin.append(
                None if m is None else ("begin", self._run, list(prompt), name, passes)
            )
        live = {id(s.model) for s in self._slots if s is not None and s.source is None}
        self._refs = {k: v for k, v in self._refs.items() if k in live}  # free old models
        # An actor still busy with an earlier run's pass past the deadline is replaced.
        wait_s = START_TIMEOUT if self.deadline is None else self.deadline
        for i in range(n):
            slot = self._slots[i]
            if slot is not None:
                self._reset(slot)
                if self._ready(i, START_TIMEOUT if i in fresh else wait_s):
                    continue
                self._kill(i)
                self._slots[i] = self._spawn(i, slot.model, slot.source)
                if not self._ready(i):
                    raise WorkerFailure(
                        f"{worker_name(i)} (a Ray actor) did not start within {START_TIMEOUT:.0f} s"
                    )
        return Supervised(
            RayWorkers(self, self._run), deadline=self.deadline, max_restarts=self.max_restarts
        )

    @staticmethod
    def _reset(slot: _Slot) -> None:
        slot.queue.clear()
        slot.cancelled.clear()
        slot.inflight = None

    def _kill(self, i: int) -> None:
        slot = self._slots[i]
        if slot is not None:
            self._ray.kill(slot.actor, no_restart=True)
            slot.alive = False
        self._slots[i] = None

    def _kill_all(self) -> None:
        for i in range(len(self._slots)):
            self._kill(i)

    def restart(self, i: int) -> bool:
        """A fresh cache for worker i: begin again on its actor if it is idle and alive
        (it raised), else a new actor (it died, or hangs inside a pass)."""
        slot = self._slots[i]
        if slot is None or self._begin[i] is None:
            return False
        if slot.alive and slot.inflight is None:
            self._reset(slot)
            if self._ready(i):
                return True
        self._kill(i)
        self._slots[i] = self._spawn(i, slot.model, slot.source)
        return self._ready(i)

    def sources(self) -> list[str | None]:
        """The current run's model paths that actors loaded themselves (None: shipped)."""
        return [
            None if s is None or s.source is None else s.source.path for s in self._slots[: self._n]
        ]

    def pids(self) -> list[int | None]:
        """The current run's actor processes (None: no worker in that slot)."""
        return [None if s is None else s.pid for s in self._slots[: self._n]]

    def close(self) -> None:
        """Kill the actors; stop the cluster if this backend started it (idempotent)."""
        if self._ray is None:
            return
        self._kill_all()
        self._slots = []
        self._refs.clear()
        for pg in {id(pg): pg for pg, _ in self._bundles}.values():
            self._ray.util.remove_placement_group(pg)
        self._bundles = []
        if self._owns_cluster:
            self._ray.shutdown()
            self._owns_cluster = False
        self._ray = None

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _same(slot: _Slot, model: torch.nn.Module, source: ModelSource | None) -> bool:
    """Whether slot's actor already holds `model`: the same object, or the same path,
    dtype and device (a model that `generate` loaded again for the next algorithm)."""
    return slot.model is model if source is None else slot.source == source


class RayWorkers:
    """One run's view of a `RayBackend` (the Workers interface)."""

    def __init__(self, pool: RayBackend, run: int) -> None:
        self.pool = pool
        self.run = run
        self._ready: deque[Report] = deque()
        self.bytes = 0

    @property
    def count(self) -> int:
        return self.pool._n

    def _slot(self, worker: int) -> _Slot:
        slot = self.pool._slots[worker]
        if slot is None:
            raise ValueError(f"no {worker_name(worker)} in this run")
        return slot

    def _pump(self, worker: int) -> None:
        """Send worker's next job if it is idle; skip cancelled ones."""
        slot = self._slot(worker)
        while slot.alive and slot.inflight is None and slot.queue:
            job = slot.queue.popleft()
            if job.ident in slot.cancelled:
                now = time.perf_counter_ns()
                self._ready.append(Report(worker, job.ident, None, now, now, skipped=True))
                continue
            self.bytes += len(pickle.dumps(job, protocol=5))  # what Ray serialises for it
            slot.inflight = (slot.actor.step.remote(job), job)

    def submit(self, worker: int, job: PassJob) -> None:
        slot = self._slot(worker)
        slot.queue.append(job)
        self._pump(worker)

    def cancel(self, worker: int, ident: int) -> None:
        slot = self._slot(worker)
        slot.cancelled.add(ident)
        if slot.alive and slot.inflight is not None and slot.inflight[1].ident == ident:
            # cut at the next layer, if the run cuts passes
            slot.actor.stop.options(concurrency_group=CONTROL).remote(ident)

    def next_report(self, timeout: float | None) -> Report | None:
        if self._ready:
            return self._ready.popleft()
        ray = self.pool._ray
        refs = {}
        for i, s in enumerate(self.pool._slots[: self.count]):
            if s is not None and s.alive and s.inflight is not None:
                refs[s.inflight[0]] = i
        if not refs:
            if timeout is not None:
                time.sleep(timeout)
            return None
        done, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        if not done:
            return None
        i = refs[done[0]]
        slot = self._slot(i)
        slot.inflight = None
        try:
            out = ray.get(done[0])
            self.bytes += len(pickle.dumps(out, protocol=5))
            _, ident, result, start, end, overrun, error = out
        except Exception:  # RayActorError and kin: the actor (or its node) is gone
            slot.alive = False
            now = time.perf_counter_ns()
            return Report(i, -1, None, now, now, fault="died")
        self._pump(i)
        return Report(i, ident, _unpack(result), start, end, False, error, overrun)

    def restart(self, worker: int) -> bool:
        return self.pool.restart(worker)

    def counters(self) -> list[WorkerCounters]:
        ray = self.pool._ray
        out = []
        for s in self.pool._slots[: self.count]:
            got = WorkerCounters()
            if s is not None and s.alive:
                ref = s.actor.counters.remote()
                done, _ = ray.wait([ref], timeout=self.pool.deadline or START_TIMEOUT)
                try:
                    got = ray.get(done[0]) if done else got
                except Exception:  # died after its last pass: nothing more to count
                    s.alive = False
            out.append(got)
        return out

    def bytes_moved(self) -> int:
        return self.bytes

    def shutdown(self) -> None:
        pass
