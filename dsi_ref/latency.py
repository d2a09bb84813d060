"""Per-model forward latencies on the virtual clock: TTFT for position 0, TPOT after.

The base cost of a pass is set by its first scored position: TTFT if it is 0, else
TPOT. A pass that scores m positions costs base + (m - 1) * per_position. With
per_position = 0 (the default) a verification costs as much as a pass that scores
one position: the paper's assumption, and close to true for small k on a GPU.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.errors import InvalidConfig, show

# A number given as text is parsed exactly (Fraction). Its length and decimal exponent are
# bounded first: Fraction("1e-1000000000") would build a billion-digit integer.
MAX_NUMBER_CHARS = 100
MAX_EXPONENT = 10_000
_EXPONENT = re.compile(r"[eE]\s*([-+]?\d+)")

# Times (TTFT, TPOT, in any unit) are 0 or in [MIN_TIME, MAX_TIME]: beyond, a run's exact
# clock would carry numbers thousands of digits long, and they could not be printed.
MIN_TIME = Fraction(1, 10**9)
MAX_TIME = Fraction(10**9)
TIME_RANGE = "0 or between 1e-9 and 1e9"


def parse_fraction(text: str, what: str, accepted: str = "") -> Fraction:
    """An exact number from text ('3/4', '0.1', '2e-3'); InvalidConfig if it is not one.

    `accepted` ("between 1 and 2") is what the caller's range is, said when the exponent
    alone shows the number is far outside any range.
    """
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_CHARS:
        raise InvalidConfig(
            f"{what} is not a number of at most {MAX_NUMBER_CHARS} characters: "
            f"{show(stripped[:40] + '...')}"
        )
    m = _EXPONENT.search(stripped)
    if m is not None and abs(int(m.group(1))) > MAX_EXPONENT:
        if accepted:
            raise InvalidConfig(f"{what} must be {accepted}, got {show(text)}")
        raise InvalidConfig(f"{what} has a decimal exponent beyond +-{MAX_EXPONENT}: {show(text)}")
    try:
        return Fraction(stripped)  # rejects "nan" and "inf": Fraction has no such values
    except (ValueError, ZeroDivisionError):
        raise InvalidConfig(f"{what} is not a number: {show(text)}") from None


def _parse(x: object, what: str, accepted: str = "") -> Fraction:
    if isinstance(x, bool):
        raise InvalidConfig(f"{what} must be a number, got {show(x)}")
    if isinstance(x, float):
        if not math.isfinite(x):
            raise InvalidConfig(f"{what} must be finite, got {show(x)}")
        return Fraction(str(x))  # 0.1 means one tenth, not its binary neighbour
    if isinstance(x, (int, Fraction)):
        return Fraction(x)
    if isinstance(x, str):
        return parse_fraction(x, what, accepted)
    raise InvalidConfig(f"{what} must be a number, got {show(x)}")


def to_time(x: object, what: str) -> Fraction:
    """A time from an int, Fraction, float or decimal string: exact, 0 or in [1e-9, 1e9]."""
    v = _parse(x, what, TIME_RANGE)
    if v < 0:
        raise InvalidConfig(f"{what} must be >= 0, got {show(x)}")
    if v != 0 and not (MIN_TIME <= v <= MAX_TIME):
        raise InvalidConfig(f"{what} must be {TIME_RANGE}, got {show(x)}")
    return v


@dataclass(frozen=True)
class Latency:
    """Time to first token (prefill) and time per output token of one model instance,
    and the extra cost of each position a pass scores beyond its first."""

    ttft: Fraction
    tpot: Fraction
    per_position: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        # Direct construction must meet the same rules as `of`: exact, TTFT >= 0, TPOT > 0,
        # per_position >= 0.
        for name in ("ttft", "tpot", "per_position"):
            v = getattr(self, name)
            if not isinstance(v, Fraction):
                raise InvalidConfig(
                    f"Latency.{name} must be a Fraction (use Latency.of), got {show(v)}"
                )
        if self.ttft < 0:
            raise InvalidConfig(f"Latency TTFT must be >= 0, got {self.ttft}")
        if self.tpot <= 0:
            raise InvalidConfig(f"Latency TPOT must be > 0, got {self.tpot}")
        if self.per_position < 0:
            raise InvalidConfig(f"Latency per_position must be >= 0, got {self.per_position}")

    @staticmethod
    def of(
        ttft: object, tpot: object | None = None, name: str = "model", per_position: object = 0
    ) -> Latency:
        a = to_time(ttft, f"{name} TTFT")
        b = a if tpot is None else to_time(tpot, f"{name} TPOT")
        if b == 0:
            bad = ttft if tpot is None else tpot
            raise InvalidConfig(f"{name} TPOT must be > 0, got {show(bad)}")
        return Latency(a, b, to_time(per_position, f"{name} per-position cost"))

    def forward(self, first_position: int, positions: int = 1) -> Fraction:
        """The duration of a pass scoring `positions` positions from `first_position` on."""
        base = self.ttft if first_position == 0 else self.tpot
        return base if positions == 1 else base + (positions - 1) * self.per_position
