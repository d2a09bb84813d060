"""Device names checked before any model is loaded or moved."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gpu_runner.errors import DeviceError
from gpu_runner.loading import resolve_device


def server_devices(
    devices: Sequence[object] | None, servers: int, exclusive: bool
) -> list[torch.device]:
    """The device of each target server: round-robin over `devices` (default: cpu or cuda:0)."""
    if devices is None:
        devices = ["cuda:0" if torch.cuda.is_available() else "cpu"]
    if isinstance(devices, (str, torch.device)):
        devices = [devices]
    parsed = [resolve_device(d) for d in devices]
    if not parsed:
        raise DeviceError("devices is empty: name at least one device")
    if exclusive and servers > len(set(parsed)):
        raise DeviceError(
            f"{servers} exclusive servers need {servers} distinct devices, got {len(set(parsed))}: "
            f"{[str(d) for d in parsed]}"
        )
    return [parsed[i % len(parsed)] for i in range(servers)]
