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
        pool = _new_pool(backend)
        try:
            sup = pool.open(models, prompt, vocab, passes)
        except BaseException:
            pool.close()
            raise
        return sup, pool.close
    sup = backend.open(models, prompt, vocab, passes)
    return sup, sup.shutdown


def _new_pool(name: str) -> Any:
    """A pool for one run (closed with it)."""
    if name == "processes":
        from gpu_runner.transport.processes import ProcessBackend

        return ProcessBackend()
    from gpu_runner.transport.ray import RayBackend

    return RayBackend()
