"""Typed errors of the runner; each message names the bad value. All are DSIError."""

from __future__ import annotations

from dsi_ref.errors import DSIError


class DeviceError(DSIError):
    """A device that does not exist here, or more exclusive servers than devices."""


class ModelLoadError(DSIError):
    """A model path that is missing, not safetensors, or whose config cannot be read."""


class IncompatiblePair(DSIError):
    """Target and drafter that cannot verify each other (vocabulary, dtype)."""


class InvalidModelOutput(DSIError):
    """A model returned logits of the wrong shape, or NaN/inf."""
