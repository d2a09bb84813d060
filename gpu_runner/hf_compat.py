"""The few places where transformers 5.17 (the GPU machine) and 5.25 (here) differ.

- The cache keyword of a causal LM's forward: `cache=` from 5.24, `past_key_values=` in
  5.17-5.23 (5.24+ still accepts the old name with a deprecation warning). `cache_kwarg`
  reads it from the model's forward signature, not from the version number.
- `DynamicCache(config=...)` has the same signature in both; `crop` takes a negative count
  of tokens to remove (a positive value means "keep this many" in 5.17 and is an error in
  5.25, so it is never passed).

Rolling a cache back: only a full-attention `DynamicLayer` keeps every past key and value, so
only it can be cropped to any earlier length. A sliding-window layer drops keys older than
its window and a state-space (linear-attention) layer keeps one running state, and both
refuse `crop` once that happened. So sliding-window models get full layers (the attention
mask, built from the config, still applies the window: same logits, more memory), and a
cache with any other layer is marked not rollbackable: the worker recomputes it from the
prompt instead of cropping (exact, slower).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import transformers
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from dsi_ref.errors import InvalidConfig
from gpu_runner.errors import InvalidModelOutput


def cache_kwarg(model: torch.nn.Module) -> str:
    """Return "cache" if the model's forward takes `cache=`, else "past_key_values".

    A forward that takes only **kwargs (a wrapper) gets this release's keyword.
    """
    params = inspect.signature(model.forward).parameters
    if "cache" in params:
        return "cache"
    if "past_key_values" in params:
        return "past_key_values"
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return "cache" if _release() >= (5, 24) else "past_key_values"
    raise InvalidConfig(
        f"{type(model).__name__}.forward takes neither `cache` nor `past_key_values`: "
        f"parameters are {list(params)}"
    )


def _release() -> tuple[int, int]:
    major, minor = transformers.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def new_cache(model: torch.nn.Module) -> DynamicCache:
    """An empty DynamicCache for `model` that can be rolled back where transformers allows.

    The config's layout, except that sliding-window layers become full ones (see above).
    """
    config: Any = getattr(model, "config", None)
    cache = DynamicCache(config=config)
    if all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in cache.layers):
        return DynamicCache()  # full layers only, created as the model asks for them
    return cache


def can_rollback(cache: DynamicCache) -> bool:
    """True when every layer keeps all past keys and values (so `crop` to any length works)."""
    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", ()))


def crop(cache: DynamicCache, r: int) -> None:
    """Remove the last `r` tokens from `cache` (r == 0: nothing). r must be 0..length."""
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise InvalidConfig(f"crop needs a count r >= 0 of tokens to remove, got {r!r}")
    if r == 0:
        return
    length = cache.get_seq_length()
    if r > length:
        raise InvalidConfig(f"cannot remove {r} tokens from a cache of {length}")
    cache.crop(-r)


def truncate(cache: DynamicCache, length: int) -> None:
    """Cut every layer back to `length` tokens: after a pass stopped between decoder layers,
    the layers before the stop hold more tokens than the rest (each gets `crop`'s negative
    count of its own surplus)."""
    for layer in getattr(cache, "layers", ()):
        surplus = layer.get_seq_length() - length
        if surplus < 0:
            raise InvalidConfig(f"cannot truncate a cache layer of {length + surplus} to {length}")
        if surplus:
            layer.crop(-surplus)


def cached_forward(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    cache: DynamicCache,
    last: int | None = None,
) -> torch.Tensor:
    """Logits of `input_ids` (batch, m) after the cached prefix; extends `cache` by m tokens.

    `last`: return only the logits of the last `last` positions (a prefill needs 1), computed
    only there when the forward takes `logits_to_keep`; None returns all m positions.
    """
    start = cache.get_seq_length()
    positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
    kwargs: dict[str, Any] = {cache_kwarg(model): cache}
    if last is not None:
        if isinstance(last, bool) or not isinstance(last, int) or last < 1:
            raise InvalidConfig(f"last must be an int >= 1 or None, got {last!r}")
        if "logits_to_keep" in inspect.signature(model.forward).parameters:
            kwargs["logits_to_keep"] = last
    out = model(
        input_ids=input_ids,
        position_ids=positions[None, :].expand(input_ids.shape[0], -1),
        use_cache=True,
        **kwargs,
    )
    logits = getattr(out, "logits", None)
    if not isinstance(logits, torch.Tensor):
        raise InvalidModelOutput(
            f"{type(model).__name__}.forward returned {type(out).__name__}, not an output "
            "with a `logits` tensor (a causal LM's CausalLMOutput)"
        )
    return logits if last is None else logits[:, -last:]


def cache_bytes(cache: DynamicCache) -> int:
    """Bytes held by the key and value tensors of every layer."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total
