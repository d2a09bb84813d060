"""Typed errors. Every message names the offending value so a user can fix it."""

from __future__ import annotations


class DSIError(ValueError):
    """Base class of every error raised on bad input by dsi_ref."""


class InvalidDistribution(DSIError):
    """A probability vector that is not a distribution (NaN, negative, sum != 1, empty)."""


class InvalidConfig(DSIError):
    """A run setting out of range (k < 1, P < 1, negative latency, top-p outside (0, 1], ...)."""


class VocabularyMismatch(DSIError):
    """Target and drafter (or a model and a distribution) disagree on the vocabulary size."""


class InvalidDraft(DSIError):
    """A draft token that its own proposal distribution gives probability zero, or out of range."""


class TraceError(DSIError):
    """A trace file that is malformed or violates the DSI rules."""


class EnumerationError(DSIError):
    """Exact enumeration was asked for what it cannot do exactly (float weights, too many paths)."""


def show(x: object) -> str:
    """A bad value as a user would type it: 3/2 rather than Fraction(3, 2); strings quoted."""
    from fractions import Fraction

    if isinstance(x, (int, float, Fraction)) and not isinstance(x, bool):
        return str(x)
    return repr(x)
