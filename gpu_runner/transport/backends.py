"""`backend=`: a name ("threads", "processes", "ray") or an open pool to reuse across runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from dsi_ref.errors import InvalidConfig, show
from gpu_runner.passes import PassMaker
from gpu_runner.transport.interface import BACKENDS
from gpu_runner.transport.recovery import Supervised
from gpu_runner.transport.threads import ThreadWorkers

# Set by `generate` on a model it loaded from a local directory: a backend whose workers
# load their own copy (Ray actors) reads it there instead of shipping the weights. An
# attribute, not a registry, so that a server's copy on another device keeps it.
SOURCE_ATTR = "_gpu_runner_source_path"


def mark_source(model: torch.nn.Module, path: str) -> None:
    """Record that `model` holds exactly the weights of the model directory `path`."""
    object.__setattr__(model, SOURCE_ATTR, path)


def model_source(model: torch.nn.Module) -> str | None:
    """The model directory `generate` loaded `model` from (None: a model given in memory)."""
    path = model.__dict__.get(SOURCE_ATTR)
    return path if isinstance(path, str) else None


def check_backend(backend: object) -> None:
    """Refuse anything but a backend name or an open pool, naming it."""
    if isinstance(backend, str):
        if backend not in BACKENDS:
            raise InvalidConfig(f"backend must be one of {BACKENDS}, got {show(backend)}")
        return
    if not callable(getattr(backend, "open", None)):
        raise InvalidConfig(
            f"backend must be one of {BACKENDS} or a pool with open(), got {show(backend)}"
        )


def open_workers(
    backend: Any,
    models: Sequence[torch.nn.Module | None],
    prompt: Sequence[int],
    vocab: int,
    passes: PassMaker,
) -> tuple[Supervised, Callable[[], None]]:
    """Supervised workers for one run (worker 0 the drafter) and what ends them."""
    check_backend(backend)
    if backend == "threads":
        sup = Supervised(ThreadWorkers(models, prompt, vocab, passes))
        return sup, sup.shutdown
    if isinstance(backend, str):
        pool = new_pool(backend)
        try:
            sup = pool.open(models, prompt, vocab, passes)
        except BaseException:
            pool.close()
            raise
        return sup, pool.close
    sup = backend.open(models, prompt, vocab, passes)
    return sup, sup.shutdown


def new_pool(name: str, **options: Any) -> Any:
    """An unopened pool of backend `name` ("processes" or "ray"; `options` go to its class)."""
    if name == "processes":
        from gpu_runner.transport.processes import ProcessBackend

        return ProcessBackend(**options)
    from gpu_runner.transport.ray import RayBackend

    return RayBackend(**options)
