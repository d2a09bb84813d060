"""The power numbers of tests/test_statistical_lossless.py, reproduced (slow; outside CI).

60,000 replicates per setting and size of the vectorised Pearson statistic (the one
test_statistical_lossless checks equal to `pearson`) under the design's worst-case
alternative at TV 0.02, numpy default_rng(1) drawn in the order below. Recorded
(2026-12-04), rejection rate +- standard error:

  T1          N = 172,826 (sized for 0.99):  0.9909 +- 0.0004
              N = 179,264 (sized for 0.995): 0.9953 +- 0.0003
  T1/2-topk4  N =  76,123 (sized for 0.99):  0.9885 +- 0.0004   <- below the 0.99 claim
              N =  80,078 (sized for 0.995): 0.9947 +- 0.0003

The test asserts each rate within 0.001 of the record and, for the sizes in use, that
the rate minus 4 standard errors is above 0.99 (the claim holds with a margin the
simulation error cannot explain away). About 8 s of CPU; marked slow because CI
already runs the 6,000-replicate self-check.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from lossless_cases import STAT_POWER, STAT_TV, design_sample_size, stat_null, stat_settings
from test_statistical_lossless import _simulated_pearson, _worst_case_alternative

RECORD = {
    ("T1", 0.99): (172_826, 0.9909),
    ("T1", 0.995): (179_264, 0.9953),
    ("T1/2-topk4", 0.99): (76_123, 0.9885),
    ("T1/2-topk4", 0.995): (80_078, 0.9947),
}
REPS = 60_000

# Outside CI: pyproject does not deselect "slow", so these also need DSI_SLOW=1.
RUN_SLOW = pytest.mark.skipif(os.environ.get("DSI_SLOW") != "1", reason="slow; set DSI_SLOW=1")


@pytest.mark.slow
@RUN_SLOW
def test_recorded_power() -> None:
    rng = np.random.default_rng(1)
    for name, s in stat_settings().items():
        null = stat_null(s.target, s.cfg)
        p = [float(x) for x in null.values()]
        alt = np.array(_worst_case_alternative(p, STAT_TV))
        for power in (0.99, 0.995):
            n, recorded = RECORD[(name, power)]
            assert design_sample_size(p, power=power) == n
            rejected = 0
            for _ in range(REPS // 5_000):
                counts = rng.multinomial(n, alt / alt.sum(), size=5_000)
                rejected += int(_simulated_pearson(p, n, counts)[1].sum())
            rate = rejected / REPS
            se = math.sqrt(rate * (1 - rate) / REPS)
            assert abs(rate - recorded) < 1e-3, (name, n, rate)
            if power == 0.995:
                assert rate - 4 * se > STAT_POWER, (name, n, rate, se)
