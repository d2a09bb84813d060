"""Device names checked before any model is loaded or moved."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dsi_ref.errors import show
from gpu_runner.errors import DeviceError


def parse_device(spec: object) -> torch.device:
    """A torch.device that exists on this machine, or DeviceError naming `spec`."""
    if isinstance(spec, torch.device):
        dev = spec
    elif isinstance(spec, str):
        try:
            dev = torch.device(spec)
        except (RuntimeError, ValueError):
            raise DeviceError(f"not a device name: {show(spec)} (try 'cpu' or 'cuda:0')") from None
    else:
        raise DeviceError(f"a device must be a string like 'cuda:0', got {show(spec)}")
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = 0 if dev.index is None else dev.index
        if index >= n:
            raise DeviceError(
                f"device {show(spec)} does not exist: this machine has {n} CUDA device(s)"
            )
        return torch.device("cuda", index)
    raise DeviceError(f"device {show(spec)}: only 'cpu' and 'cuda[:i]' are supported")


def server_devices(
    devices: Sequence[object] | None, servers: int, exclusive: bool
) -> list[torch.device]:
    """The device of each target server: round-robin over `devices` (default: cpu or cuda:0)."""
    if devices is None:
        devices = ["cuda:0" if torch.cuda.is_available() else "cpu"]
    if isinstance(devices, (str, torch.device)):
        devices = [devices]
    parsed = [parse_device(d) for d in devices]
    if not parsed:
        raise DeviceError("devices is empty: name at least one device")
    if exclusive and servers > len(set(parsed)):
        raise DeviceError(
            f"{servers} exclusive servers need {servers} distinct devices, got {len(set(parsed))}: "
            f"{[str(d) for d in parsed]}"
        )
    return [parsed[i % len(parsed)] for i in range(servers)]
