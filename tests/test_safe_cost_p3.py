"""The figures docs/figure2.md gives for what `safe`'s proof costs at P >= 3.

c = 0.01, a = 0.99, P = 3, 64 tokens, 8 acceptance patterns drawn with
random.Random(1), non-preemptive clock, target TTFT = TPOT = 1: mean latency (in target
passes) of SI, `safe` (extension only at P <= 2), the earlier `safe` (extension at every
P, proofs.t7b_lemmas.EXTENDED_SAFE) and `eager`, at k = 1, 3 and 10. Exact latencies,
so the check is of the printed figures, rounded as the doc rounds them.
"""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction as F

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import PATTERN_DRAFTER, PATTERN_TARGET, PatternChooser, run_pattern
from dsi_ref.virtual import run_dsi
from proofs.t7_policies import _PolicyParts
from proofs.t7b_lemmas import EXTENDED_SAFE

DOC = {  # k -> (SI, safe, earlier safe, eager), docs/figure2.md
    1: (32.4, 16.3, 2.3, 2.2),
    3: (16.6, 8.2, 2.3, 2.2),
    10: (6.7, 3.4, 2.4, 2.2),
}


def test_the_documented_means() -> None:
    c = F(1, 100)
    for k, want in DOC.items():
        rng = random.Random(1)
        sums = [F(0)] * 4
        for _ in range(8):
            pat = tuple(rng.random() < 0.99 for _ in range(64))
            cfg = RunConfig(max_tokens=64, k=k, servers=3, target_latency=Latency(F(1), F(1)),
                            drafter_latency=Latency(c, c), preemptive=False)  # fmt: skip
            earlier = run_dsi(PATTERN_TARGET, PATTERN_DRAFTER, cfg, chooser=PatternChooser(pat),
                              parts=_PolicyParts(EXTENDED_SAFE))  # fmt: skip
            runs = (
                run_pattern("si", pat, cfg),
                run_pattern("dsi", pat, cfg),  # the default: safe
                earlier,
                run_pattern("dsi", pat, dataclasses.replace(cfg, policy="eager")),
            )
            sums = [s + r.latency for s, r in zip(sums, runs, strict=True)]
        assert tuple(round(float(s / 8), 1) for s in sums) == want, k
