"""Load a causal LM offline from a directory of safetensors, on a device that exists.

Nothing here downloads or unpickles: a model is a local directory with config.json and
*.safetensors weights (pickle formats are refused), loaded with local_files_only=True and
trust_remote_code=False.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from gpu_runner.errors import DeviceError, IncompatiblePair, ModelLoadError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

M = TypeVar("M", bound=torch.nn.Module)


def placed(model: M, *, dtype: torch.dtype, device: torch.device | str = "cpu") -> M:
    """`model` cast to `dtype`, moved to `device`, in eval mode (the same object)."""
    m: Any = model
    m.to(device=device, dtype=dtype)
    m.eval()
    return model


def resolve_device(device: object) -> torch.device:
    """The torch.device for `device`, checked to exist here ("cuda:3" with one GPU is refused)."""
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError) as e:
            raise DeviceError(f"device {device!r} does not parse: {e}") from None
    else:
        raise DeviceError(f"device must be a str or torch.device, got {device!r}")
    if dev.type == "cpu":
        if dev.index not in (None, 0):
            raise DeviceError(f"device {device!r}: the CPU has index 0 only")
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {device!r}: no CUDA device here")
        if dev.index is not None and dev.index >= count:
            raise DeviceError(
                f"device {device!r}: only {count} CUDA device(s) here (0..{count - 1})"
            )
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {device!r}: MPS is not available here")
        return dev
    raise DeviceError(f"device {device!r}: type {dev.type!r} is not supported (cpu, cuda, mps)")


def check_model_dir(path: Path) -> None:
    """A directory with a UTF-8 JSON-object config.json and *.safetensors weights, or raise."""
    if not path.exists():
        raise ModelLoadError(
            f"model path {str(path)!r} does not exist (models are loaded from local directories "
            "only; nothing is downloaded)"
        )
    if not path.is_dir():
        raise ModelLoadError(f"model path {str(path)!r} is not a directory")
    config = path / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"model directory {str(path)!r} has no config.json")
    try:
        doc = json.loads(config.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ModelLoadError(f"{str(config)!r} is not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{str(config)!r} is not valid JSON: {e}") from None
    except OSError as e:
        raise ModelLoadError(f"cannot read {str(config)!r}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model_type"), str):
        raise ModelLoadError(f"{str(config)!r} must be a JSON object with a 'model_type' string")
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"model directory {str(path)!r} has only pickle weights {pickles}: refused (pickle "
            "can run code); convert them to safetensors"
        )
    raise ModelLoadError(f"model directory {str(path)!r} has no *.safetensors weights")


def load_model(
    spec: str | Path | PreTrainedModel,
    *,
    dtype: torch.dtype,
    device: str | torch.device,
) -> PreTrainedModel:
    """A causal LM in eval mode with `dtype` on `device`.

    `spec` is a local model directory (str or Path) or an already built model (moved and cast).
    The device is checked before anything is loaded.
    """
    dev = resolve_device(device)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ModelLoadError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if isinstance(spec, PreTrainedModel):
        return placed(spec, dtype=dtype, device=dev)
    if not isinstance(spec, (str, Path)):
        raise ModelLoadError(f"model spec must be a path or a PreTrainedModel, got {spec!r:.80}")
    path = Path(spec)
    check_model_dir(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
        )
    except Exception as e:  # any failure inside transformers: name the path and the cause
        raise ModelLoadError(
            f"cannot load model from {str(path)!r}: {type(e).__name__}: {e}"
        ) from None
    if not isinstance(model, PreTrainedModel):
        raise ModelLoadError(f"{str(path)!r} did not load as a PreTrainedModel: {type(model)}")
    return placed(model, dtype=dtype, device=dev)


def vocab_size(model: torch.nn.Module) -> int:
    """The number of output logits (rows of the output embedding)."""
    anymodel: Any = model
    head = anymodel.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise IncompatiblePair(f"{type(model).__name__} has no output embedding")
    rows: int = head.weight.shape[0]
    return rows


def check_pair(target: PreTrainedModel, drafter: PreTrainedModel) -> None:
    """Raise IncompatiblePair unless both have the same vocabulary size and dtype."""
    sizes = {
        "target config.vocab_size": getattr(target.config, "vocab_size", None),
        "drafter config.vocab_size": getattr(drafter.config, "vocab_size", None),
        "target output rows": vocab_size(target),
        "drafter output rows": vocab_size(drafter),
    }
    if len(set(sizes.values())) != 1:
        shown = ", ".join(f"{k} = {v}" for k, v in sizes.items())
        raise IncompatiblePair(f"target and drafter vocabularies differ: {shown}")
    if target.dtype != drafter.dtype:
        raise IncompatiblePair(
            f"target dtype {target.dtype} differs from drafter dtype {drafter.dtype}"
        )


def context_window(model: PreTrainedModel) -> int | None:
    """config.max_position_embeddings, or None when the config does not say."""
    n = getattr(model.config, "max_position_embeddings", None)
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return n
    return None
