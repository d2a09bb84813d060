"""Typed errors. Every message names the offending value so a user can fix it."""

from __future__ import annotations

import math


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


class OutputError(DSIError):
    """An output path that cannot be written, or is something no output may replace."""


class EnumerationError(DSIError):
    """Exact enumeration was asked for what it cannot do exactly (float weights, too many paths)."""


SHOWN_DIGITS = 60  # an int or a Fraction part longer than this is shown approximately
SHOWN_CHARS = 200  # a longer repr is cut (a message must stay one readable line)


def _approx(log10: float, negative: bool) -> str:
    """A number given by its log10 as ~m.mme+X (for values too long to print exactly)."""
    e = math.floor(log10)
    return f"{'-' if negative else ''}~{10 ** (log10 - e):.3g}e{e:+d}"


def _int_text(n: int) -> str:
    if n.bit_length() <= SHOWN_DIGITS * 3:  # fewer than ~55 digits: print it exactly
        return str(n)
    return _approx(math.log10(abs(n)), n < 0)


def show(x: object) -> str:
    """A bad value as a user would type it: 3/2 rather than Fraction(3, 2); strings quoted.

    Never raises: ints and Fractions too long to print (Python refuses str() of ints over
    4,300 digits) are shown as ~1e+5000, and long reprs are cut to one line.
    """
    from fractions import Fraction

    if isinstance(x, bool):
        return repr(x)
    if isinstance(x, int):
        return _int_text(x)
    if isinstance(x, Fraction):
        num, den = x.numerator, x.denominator
        if max(num.bit_length(), den.bit_length()) <= SHOWN_DIGITS * 3:
            return str(x)
        if num == 0:
            return "0"
        return _approx(math.log10(abs(num)) - math.log10(den), num < 0)
    if isinstance(x, float):
        return str(x)
    try:
        text = repr(x)
    except (ValueError, RecursionError):  # e.g. a tuple holding an int of 5,000 digits
        text = f"<{type(x).__name__} that cannot be printed>"
    if len(text) > SHOWN_CHARS:
        text = text[: SHOWN_CHARS - 4] + " ..."
    return text
