"""The few transformers calls whose spelling changed across 5.x, each chosen in one place.

- The forward's cache keyword is `cache=` from 5.24 and `past_key_values=` before
  (the GPU machine has 5.17): read it off the model's forward signature.
- `DynamicCache.crop(-r)` removes r tokens; crop(0) is a no-op and positive values
  meant an absolute length in older releases, so only negative counts are ever passed.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import transformers
from transformers import DynamicCache

_KWARG_CACHE: dict[type, str] = {}


def cache_kwarg(model: torch.nn.Module) -> str:
    """'cache' or 'past_key_values': the keyword this model's forward takes its KV cache by."""
    cls = type(model)
    kw = _KWARG_CACHE.get(cls)
    if kw is None:
        params = inspect.signature(model.forward).parameters
        if "cache" in params:
            kw = "cache"
        elif "past_key_values" in params:
            kw = "past_key_values"
        else:  # a wrapper taking **kwargs: the keyword of this transformers release
            kw = "cache" if _release() >= (5, 24) else "past_key_values"
        _KWARG_CACHE[cls] = kw
    return kw


def _release() -> tuple[int, int]:
    major, minor = transformers.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def new_cache(model: torch.nn.Module) -> Any:
    """An empty DynamicCache for `model` (layers are created on the first forward)."""
    config = getattr(model, "config", None)
    try:
        return DynamicCache(config=config)
    except TypeError:  # releases whose constructor takes no config
        return DynamicCache()


def crop(cache: Any, r: int) -> None:
    """Remove the last r >= 0 tokens from `cache`."""
    if r < 0:
        raise ValueError(f"crop count must be >= 0, got {r}")
    if r:
        cache.crop(-r)


def cache_length(cache: Any) -> int:
    return int(cache.get_seq_length())


def cache_bytes(cache: Any) -> int:
    """Bytes held by the key and value tensors of every layer (views count their own size)."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total
