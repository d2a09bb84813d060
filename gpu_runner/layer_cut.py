"""Cooperative preemption at decoder-layer granularity: a forward that stops between layers.

A forward pre-hook on every decoder layer asks the running pass's `stop` callable (set
per thread, for the duration of one pass, by `cuttable`) whether its job was cancelled;
if so it raises a private exception that `cuttable` turns into `PassCut` (layers run so
far). The hooks do nothing outside `cuttable`, so a model may be shared by workers that
do not cut. The worker (kv_worker) then rolls its cache back to its length before the
pass: layers before the cut were extended, the others not.

The decoder layers are found generically: the first `torch.nn.ModuleList` (outermost
first) whose length is the config's `num_hidden_layers` (Llama/Qwen2 `model.layers`,
GPT-2 `transformer.h`, GPT-NeoX `gpt_neox.layers`). A model without one is not armed and
its passes run to the end, as before.

On CUDA the host enqueues kernels ahead of the device, so a check would see the host's
position, not the device's: each boundary synchronises the worker's stream first (one
sync per layer; the pass then stops within one layer of where the device is).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from dsi_ref.errors import DSIError

_state = threading.local()  # .stop: Callable[[], bool] | None, .device, .ran: int


class _Stop(Exception):
    """Raised inside a forward at a layer boundary; never leaves `cuttable`."""


class PassCut(DSIError):
    """A pass stopped at a layer boundary because its job was cancelled."""

    def __init__(self, layers_run: int) -> None:
        super().__init__(f"pass cut after {layers_run} decoder layer(s)")
        self.layers_run = layers_run


@dataclass(frozen=True)
class Cut:
    """What a cut pass reports instead of its rows (the executor drops it)."""

    layers_run: int
    layers: int
    seconds: float  # wall time of the pass up to the cut (the rollback included)

    def saved_estimate(self) -> float:
        """Seconds the skipped layers would have taken at this pass's pace per layer run
        (0 when it ran none: no pace to extrapolate from)."""
        if self.layers_run == 0:
            return 0.0
        return self.seconds * (self.layers - self.layers_run) / self.layers_run


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The ModuleList of decoder layers, or None if none has `num_hidden_layers` entries."""
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return None
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    return None


def _before_layer(index: int, module: torch.nn.Module, args: Any) -> None:
    stop = getattr(_state, "stop", None)
    if stop is None:
        return
    device = _state.device
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    if stop():
        raise _Stop
    _state.ran = index


def _ours(hook: object) -> bool:
    return isinstance(hook, partial) and hook.func is _before_layer


def arm(model: torch.nn.Module) -> int | None:
    """Hook `model`'s decoder layers (once: idempotent); their count, or None if not found."""
    layers = decoder_layers(model)
    if layers is None:
        return None
    for i, layer in enumerate(layers):
        hooks = layer._forward_pre_hooks
        if not any(_ours(h) for h in hooks.values()):
            # Hook ids count per process: in a worker process that unpickled the model, a
            # fresh id could equal a user hook's and replace it. Skip past the ids in use.
            handles = torch.utils.hooks.RemovableHandle
            handles.next_id = max(handles.next_id, max(hooks, default=-1) + 1)
            layer.register_forward_pre_hook(partial(_before_layer, i))
    return len(layers)


def disarm(model: torch.nn.Module) -> None:
    """Remove the hooks `arm` added (a no-op on a model it did not arm)."""
    layers = decoder_layers(model)
    for layer in layers if layers is not None else ():
        hooks = layer._forward_pre_hooks
        for key in [k for k, h in hooks.items() if _ours(h)]:
            del hooks[key]


def armed_layers(model: torch.nn.Module) -> int | None:
    """The number of hooked decoder layers, or None when `model` is not armed."""
    layers = decoder_layers(model)
    if layers is None or not any(_ours(h) for h in layers[0]._forward_pre_hooks.values()):
        return None
    return len(layers)


@contextmanager
def cuttable(stop: Callable[[], bool], device: torch.device) -> Iterator[None]:
    """Within: an armed model's forward on this thread raises PassCut once `stop()` is true."""
    _state.stop, _state.device, _state.ran = stop, device, -1
    try:
        yield
    except _Stop:
        raise PassCut(_state.ran + 1) from None
    finally:
        _state.stop = None
