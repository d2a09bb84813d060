"""At one server, when no second draft fits beside a verification, `safe` is SI exactly.

Claim (docs/theorems.md T7 (e)): P = 1, non-preemptive clock, T0 = T, D0 = D, D <= T and
2 D > T + k * per_position. Then `safe` commits every position at SI's time, on every
acceptance pattern. Why: each SI cycle drafts k positions from its start s, verifies
k + 1 positions until e = s + k D + T + k per_position; `safe` drafts the same positions
at the same times (nothing runs beside them), starts the same verification at once (the
one server is free), drafts the bonus position beside it (it ends by e, as D <= T), and
pauses before the next draft, which would end after e (2 D > T + k per_position). At e
both commit the same positions and restart from the same prefix. So on such a pair the
virtual clock predicts no gain over SI at P = 1: what DSI adds on real hardware is only
the bonus draft beside each verification (docs/gpu-runner.md, the tiny pair at T = 1).

Checked exhaustively (every pattern, n <= 6, k <= 4, six cost settings). The bound is
tight: with 2 D <= T + k per_position, `safe` is strictly faster on some pattern of the
same grid. Planted: `safe` without drafter_pause (a draft that a rejection holds) is
caught. Pathwise claims: no false-alarm level.
"""

from __future__ import annotations

import itertools
from fractions import Fraction as F

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import PATTERN_DRAFTER, PATTERN_TARGET, PatternChooser, run_pattern
from dsi_ref.scheduler import DSIScheduler
from dsi_ref.verify import VerifyRule
from dsi_ref.virtual import run_dsi
from dsi_ref.workers import Dist, RunParts

# (T, D, per_position) with D <= T = T0, D0 = D
COSTS = [
    (F(1), F(3, 5), F(0)),
    (F(1), F(1), F(0)),
    (F(1), F(51, 100), F(0)),
    (F(1), F(3, 5), F(1, 10)),
    (F(1), F(2, 3), F(1, 5)),
    (F(1), F(1, 2), F(0)),  # 2 D = T: a second draft fits, the bound's edge
]


def _cfg(n: int, k: int, t: F, d: F, per: F) -> RunConfig:
    return RunConfig(
        max_tokens=n,
        k=k,
        servers=1,
        target_latency=Latency(t, t, per),
        drafter_latency=Latency(d, d),
        preemptive=False,
        policy="safe",
    )


def _grid() -> list[tuple[int, int, F, F, F, tuple[bool, ...]]]:
    return [
        (n, k, t, d, per, pat)
        for t, d, per in COSTS
        for n in range(1, 7)
        for k in (1, 2, 3, 4)
        for pat in itertools.product((True, False), repeat=n)
    ]


def _fits_one_draft(k: int, t: F, d: F, per: F) -> bool:
    return 2 * d > t + k * per


def test_safe_commits_at_si_times_when_no_second_draft_fits() -> None:
    checked = 0
    for n, k, t, d, per, pat in _grid():
        if not _fits_one_draft(k, t, d, per):
            continue
        cfg = _cfg(n, k, t, d, per)
        si, dsi = run_pattern("si", pat, cfg), run_pattern("dsi", pat, cfg)
        assert dsi.commit_times == si.commit_times, (n, k, t, d, per, pat)
        checked += 1
    assert checked == 1764  # the count docs/theorems.md T7 (e) gives


def test_the_bound_is_tight() -> None:
    faster = 0
    for n, k, t, d, per, pat in _grid():
        if _fits_one_draft(k, t, d, per):
            continue
        cfg = _cfg(n, k, t, d, per)
        si, dsi = run_pattern("si", pat, cfg), run_pattern("dsi", pat, cfg)
        assert dsi.latency <= si.latency  # T7 (b)
        faster += dsi.latency < si.latency
    assert faster > 0


class _NoPause(RunParts):
    """The planted bug: `safe` whose drafter never pauses."""

    def scheduler(self, cfg: RunConfig, rule: VerifyRule[Dist]) -> DSIScheduler[Dist]:
        s = DSIScheduler.from_config(cfg, rule)
        s._pause = False
        return s


@pytest.mark.parametrize("n", [4, 5])
def test_planted_safe_without_pause_is_caught(n: int) -> None:
    """Without the pause, a draft past the bonus starts beside the verification and a
    rejection holds the drafter: commit times move off SI's."""
    differ = 0
    for pat in itertools.product((True, False), repeat=n):
        cfg = _cfg(n, 2, F(1), F(3, 5), F(0))
        si = run_pattern("si", pat, cfg)
        dsi = run_dsi(
            PATTERN_TARGET, PATTERN_DRAFTER, cfg, chooser=PatternChooser(pat), parts=_NoPause()
        )
        differ += dsi.commit_times != si.commit_times
    assert differ > 0
