"""benchmarks/paired_stats.py: the sign-test interval for the median of paired ratios.

Exact checks of the order statistics it picks, and its coverage (>= 95%) computed exactly
from the binomial law for every n it is used at; a planted interval one order statistic
too narrow falls below 95% at some n (caught).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_stats.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paired_stats", PATH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ps = _module()


def _coverage(n: int, j: int) -> float:
    """P(r_(j) <= median <= r_(n+1-j)) for n continuous draws: 1 - 2 P(Bin(n, 1/2) < j)."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(j)) / 2**n


def _j(n: int) -> int:
    """The order statistic median_ci picked, read back from its interval on 1..n."""
    _, lo, hi = ps.median_ci(list(range(1, n + 1)))
    assert hi == n + 1 - lo  # symmetric
    return int(lo)


@pytest.mark.parametrize("n", range(6, 41))
def test_interval_covers_at_least_95_percent_and_no_narrower_one_does(n: int) -> None:
    j = _j(n)
    assert _coverage(n, j) >= 0.95
    assert _coverage(n, j + 1) < 0.95  # the planted narrower interval fails


def test_known_values_and_small_samples() -> None:
    assert ps.median_ci([3.0, 1.0, 2.0, 5.0, 4.0, 6.0]) == (3.5, 1.0, 6.0)  # n = 6: the range
    assert ps.median_ci([1.0, 2.0]) == (1.5, 1.0, 2.0)  # no 95% interval: the range
    assert ps.median_ci(list(range(10))) == (4.5, 1, 8)
    assert ps.show_ci([1.0, 1.1, 0.9, 1.2, 1.05, 0.95]) == "1.02 [0.90-1.20]"
    assert ps.show_ci([1.0, 1.2]) == "1.10 (range 1.00-1.20)"
    with pytest.raises(ValueError, match="no rounds"):
        ps.median_ci([])
