"""Typed errors of gpu_runner. Each message names the offending value (a path, a device, a size).

All subclass dsi_ref.errors.DSIError, so one `except DSIError` covers dsi_ref and gpu_runner.
"""

from __future__ import annotations

from dsi_ref.errors import DSIError


class InvalidInput(DSIError, TypeError):
    """An argument of the wrong type (text that is not a str, a token id that is not an int)."""


class ModelLoadError(DSIError):
    """A model that cannot be loaded: missing directory or files, bad config, pickle weights."""


class DeviceError(DSIError):
    """A device that does not parse or does not exist here; more exclusive servers than devices."""


class IncompatiblePair(DSIError):
    """Target and drafter that cannot be paired (vocabulary sizes or dtypes differ)."""


class InvalidModelOutput(DSIError):
    """A model returned logits of the wrong shape, or NaN/inf."""
