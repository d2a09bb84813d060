"""Per-model forward latencies on the virtual clock: TTFT for position 0, TPOT after.

A forward pass that scores several positions (a verification) costs as much as
one that scores a single position: the paper's assumption, and close to true for
small k on a GPU. The latency class of a pass is set by its first scored position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.errors import InvalidConfig


def to_time(x: object, what: str) -> Fraction:
    """A non-negative exact time from an int, Fraction, float or decimal string."""
    if isinstance(x, bool):
        raise InvalidConfig(f"{what} must be a number, got {x!r}")
    try:
        if isinstance(x, float):
            if not math.isfinite(x):
                raise InvalidConfig(f"{what} must be finite, got {x!r}")
            v = Fraction(str(x))  # 0.1 means one tenth, not its binary neighbour
        elif isinstance(x, (int, Fraction, str)):
            v = Fraction(x)
        else:
            raise InvalidConfig(f"{what} must be a number, got {x!r}")
    except (ValueError, ZeroDivisionError) as e:
        raise InvalidConfig(f"{what} is not a number: {x!r}") from e
    if v < 0:
        raise InvalidConfig(f"{what} must be >= 0, got {x!r}")
    return v


@dataclass(frozen=True)
class Latency:
    """Time to first token (prefill) and time per output token of one model instance."""

    ttft: Fraction
    tpot: Fraction

    @staticmethod
    def of(ttft: object, tpot: object | None = None, name: str = "model") -> Latency:
        a = to_time(ttft, f"{name} TTFT")
        b = a if tpot is None else to_time(tpot, f"{name} TPOT")
        if b == 0:
            raise InvalidConfig(f"{name} TPOT must be > 0, got {tpot!r}")
        return Latency(a, b)

    def forward(self, first_position: int) -> Fraction:
        return self.ttft if first_position == 0 else self.tpot
