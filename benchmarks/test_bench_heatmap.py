"""Speed of the Figure 2 computation: the full default grid (21 x 21 cells, k = 1..20, S = 1000).

Run with `make bench`. The aim is well under 60 s on 2 cores; the assertions check what was
computed (every cell filled, the panels' known extremes), never how long it took.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from dsi_ref.theory.heatmap import Heatmap, compute


def test_bench_full_default_grid(benchmark: BenchmarkFixture) -> None:
    h: Heatmap = benchmark.pedantic(compute, rounds=3, iterations=1)
    assert h.t_si.shape == (21, 21) and not np.isnan(h.t_dsi).any()
    assert np.all(h.k_si >= 1) and np.all(h.k_dsi >= 1)
    assert h.ranges()["dsi_vs_nonsi"][0] >= 1
    assert h.ranges()["dsi_vs_si"][1] == pytest.approx(2.9182, abs=1e-4)
    benchmark.extra_info["cells"] = int(h.t_si.size)
    benchmark.extra_info["lookaheads"] = h.kmax
