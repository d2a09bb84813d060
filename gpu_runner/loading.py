"""Load a causal LM offline from a directory of safetensors, on a device that exists.

Nothing here downloads or unpickles: a model is a local directory with config.json and
*.safetensors weights (pickle formats are refused), loaded with local_files_only=True and
trust_remote_code=False. Everything that can be checked from the directory is checked before
transformers is asked to load: the weight files are regular files (a symlink to a device or a
FIFO is refused without opening it), and the config's model_type has a causal-LM class. After
loading, a checkpoint whose tensors do not match the model's (missing ones would be initialised
at random: a run of a model that is not the one on disk) is refused, naming the tensors.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
import transformers
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.utils import logging as hf_logging

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
    _check_model_type(config, doc)
    weights = sorted(path.glob("*.safetensors"))
    for w in weights:
        _check_regular(w)
    if weights:
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"model directory {str(path)!r} has only pickle weights {pickles}: refused (pickle "
            "can run code); convert them to safetensors"
        )
    raise ModelLoadError(f"model directory {str(path)!r} has no *.safetensors weights")


def _check_model_type(config: Path, doc: dict[str, Any]) -> None:
    """Refuse a model_type with no causal-LM class here, in one line (not transformers' list)."""
    mt = doc["model_type"]
    if mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return
    if doc.get("auto_map"):
        raise ModelLoadError(
            f"cannot load model from {str(config.parent)!r}: model_type {mt!r} needs remote code "
            "(auto_map), which is never run here"
        )
    raise ModelLoadError(
        f"cannot load model from {str(config.parent)!r}: model_type {mt!r} has no causal-LM "
        f"class in transformers {transformers.__version__} (decoder-only LMs such as llama, "
        f"gpt2, mistral, qwen2 run; {len(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)} model types do)"
    )


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _check_regular(weights: Path) -> None:
    """A weight file must be a regular file; checked by stat, so a FIFO is never opened."""
    try:
        st = os.stat(weights)  # follows symlinks: what transformers would open
    except OSError as e:
        raise ModelLoadError(f"weight file {str(weights)!r} cannot be read: {e}") from None
    if not stat.S_ISREG(st.st_mode):
        via = f" (a symlink to {os.readlink(weights)!r})" if weights.is_symlink() else ""
        raise ModelLoadError(
            f"weight file {str(weights)!r}{via} is {_kind(st.st_mode)}, not a regular file"
        )


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading weights" progress bar (restored after, so a caller's setting stands)."""
    enabled = bool(hf_logging.is_progress_bar_enabled())
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _shown(keys: Collection[object], limit: int = 5) -> str:
    names = sorted(str(k) for k in keys)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_loading_info(path: Path, info: dict[str, Any]) -> None:
    """Refuse a checkpoint whose tensors are not exactly the model's (names the tensors)."""
    problems = []
    for key, what in (
        ("missing_keys", "missing from the checkpoint (would be random)"),
        ("unexpected_keys", "in the checkpoint but not in the model"),
        ("mismatched_keys", "of the wrong shape"),
    ):
        keys = info.get(key) or ()
        if keys:
            shown = [k[0] if isinstance(k, tuple) else k for k in keys]
            problems.append(f"{len(shown)} tensor(s) {what}: {_shown(shown)}")
    if info.get("error_msgs"):
        problems.append("; ".join(str(m) for m in info["error_msgs"])[:300])
    if problems:
        raise ModelLoadError(
            f"checkpoint {str(path)!r} does not match its config: " + "; ".join(problems)
        )


def _params_on_meta(model: torch.nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


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
        if _params_on_meta(spec):
            raise ModelLoadError(
                f"{type(spec).__name__} has weights on the meta device (shapes only, no values): "
                "load real weights first"
            )
        return placed(spec, dtype=dtype, device=dev)
    if not isinstance(spec, (str, Path)):
        raise ModelLoadError(f"model spec must be a path or a PreTrainedModel, got {spec!r:.80}")
    path = Path(spec)
    check_model_dir(path)
    try:
        with _quiet_loading():
            loaded: Any = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=dtype,
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
                output_loading_info=True,
            )
    except Exception as e:  # any failure inside transformers: name the path and the cause
        cause = str(e) if len(str(e)) <= 500 else str(e)[:500] + " ..."
        raise ModelLoadError(
            f"cannot load model from {str(path)!r}: {type(e).__name__}: {cause}"
        ) from None
    model, info = loaded
    check_loading_info(path, info)
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
