"""Pass costs fitted from a run's pass log: the classes a Latency has.

A log row is (model, first position, positions scored, seconds). Classes: the prefill
(first position 0), the one-position decode pass, and the cost per extra scored
position (from wider passes, against the one-position median). Medians, so one pass
slowed by the machine moves nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from fractions import Fraction

from dsi_ref.latency import Latency

PassRow = tuple[str, int, int, float]  # (model, first, positions, seconds)
US = 10**6  # seconds are rounded to microseconds: exact, and small Fractions


def micro(x: float) -> Fraction:
    """`x` seconds as a Fraction of whole microseconds."""
    return Fraction(round(x * US), US)


def fitted_latency(log: Sequence[PassRow], model: str) -> Latency | None:
    """Median TTFT, TPOT and per-extra-position cost of `model`'s passes in `log`
    (None: no pass of `model`). Without one-position decode passes, TPOT is the median
    of the wider ones and the per-position cost 0; without a prefill, TTFT = TPOT."""
    rows = [(f, m, s) for kind, f, m, s in log if kind == model]
    if not rows:
        return None
    prefill = [s for f, m, s in rows if f == 0]
    decode1 = [s for f, m, s in rows if f > 0 and m == 1]
    wide = [(m, s) for f, m, s in rows if f > 0 and m > 1]
    tpot = (
        statistics.median(decode1)
        if decode1
        else statistics.median(s for _, s in wide or [(1, 0.0)])
    )
    ttft = statistics.median(prefill) if prefill else tpot
    per = 0.0
    if wide and decode1:
        per = max(0.0, statistics.median((s - tpot) / (m - 1) for m, s in wide))
    # Whole microseconds, >= 0, TPOT >= 1 us: valid by construction (no parsing: the
    # online plan fits while a run waits on its workers).
    return Latency(micro(ttft), max(micro(tpot), Fraction(1, US)), micro(per))
