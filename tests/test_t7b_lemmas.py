"""T7(b)'s lemma checker (proofs/t7b_lemmas.py) on a few fast instances; the full checks
run through the registry in tests/test_proofs.py."""

from __future__ import annotations

import contextlib
import dataclasses
from fractions import Fraction as F

from dsi_ref.policies import SAFE
from proofs.t7_policies import _cfg
from proofs.t7b_lemmas import (
    EXTENDED_SAFE,
    L15_COUNTEREXAMPLE,
    OWN_PASS_RELEASE,
    _GapMonitor,
    _LateStartMonitor,
    _LongPauseMonitor,
    _Monitor,
    _pause_failures,
    l15_is_false_l7_holds,
    lemma_failures,
    random_instances,
    run_pair,
)


def test_lemmas_hold_on_random_runs() -> None:
    for cfg, pat in random_instances(20, seed=3):
        assert list(lemma_failures(run_pair(cfg, pat))) == [], (cfg, pat)


def test_d_above_t0_breaks_l4_and_the_theorem() -> None:
    """D > T0: the draft at SI's bonus position cannot be ready when the first pass ends."""
    cfg = _cfg(2, 1, 1, (F(1, 2), F(1), F(1, 2), F(1)), "safe")
    fails = list(lemma_failures(run_pair(cfg, (True, True))))
    assert any(f.startswith("L4") for f in fails)
    assert any(f.startswith("theorem") for f in fails)


def test_pause_sees_a_verification_starting_in_the_same_instant() -> None:
    """The draft at 1 would outlive the pass that starts beside it (D > T0) and that
    pass rejects 0: the drafter waits instead of drafting into a cancellation."""
    cfg = _cfg(2, 1, 1, (F(1, 2), F(1), F(1, 2), F(1)), "safe")
    pair = run_pair(cfg, (False, True))
    assert pair.dsi.trace is not None
    assert not [e for e in pair.dsi.trace["events"] if e["ev"] == "draft_cancel"]
    assert pair.dsi.latency == pair.si.latency == 2


def test_no_pause_is_caught() -> None:
    no_pause = dataclasses.replace(SAFE, name="planted-no-pause", drafter_pause=False)
    cfg = _cfg(3, 1, 1, (F(1), F(1), F(3, 4), F(3, 4)), "safe")
    fails = list(lemma_failures(run_pair(cfg, (False, False, False), no_pause)))
    assert any(f.startswith("L1") for f in fails), fails


def test_no_fresh_blocks_breaks_l6() -> None:
    """Without fresh blocks a cycle scores k - 1 new drafts: the drafter falls behind SI's."""
    no_fresh = dataclasses.replace(SAFE, name="planted-no-fresh", fresh_blocks=False)
    cfg = _cfg(4, 1, 1, (F(1), F(1), F(3, 4), F(3, 4)), "safe")
    fails = list(lemma_failures(run_pair(cfg, (True, True, True, False), no_fresh)))
    assert any(f.startswith("L6") for f in fails), fails
    assert any(f.startswith("theorem") for f in fails), fails


def test_no_spare_server_breaks_l9() -> None:
    """Without the spare server two speculative passes run at once at P = 3 (L9)."""
    no_spare = dataclasses.replace(SAFE, name="planted-no-spare", spare_server=False)
    cfg = _cfg(6, 1, 3, (F(1), F(1), F(1, 10), F(1, 10)), "safe")
    fails = list(lemma_failures(run_pair(cfg, (False,) * 6, no_spare)))
    assert any(f.startswith("L9") for f in fails), fails


def test_no_fresh_blocks_breaks_l8() -> None:
    """Without fresh blocks the next block starts at the last position of a block that
    was not extended: two started passes score position 1 (L8 (a))."""
    no_fresh = dataclasses.replace(SAFE, name="planted-no-fresh", fresh_blocks=False)
    cfg = _cfg(3, 1, 1, (F(1), F(1), F(1, 10), F(1, 10)), "safe")
    fails = list(lemma_failures(run_pair(cfg, (True, True, False), no_fresh)))
    assert any(f.startswith("L8") for f in fails), fails


def test_l8_l9_hold_at_p_2_and_3() -> None:
    """The structure lemmas on a few grid instances at P = 2, 3 (safe)."""
    for servers in (2, 3):
        for pat in ((True,) * 6, (False,) * 6, (True, True, False, True, True, True)):
            for lat in ((F(3), F(1), F(1, 3), F(1, 3)), (F(1), F(1), F(1, 10), F(1, 10))):
                cfg = _cfg(6, 1, servers, lat, "safe")
                assert list(lemma_failures(run_pair(cfg, pat))) == [], (cfg, pat)


def test_p2_runs_as_p1() -> None:
    """L11: at P = 2 `safe` never starts a speculative task and runs exactly as at P = 1;
    without the spare server a speculative task starts beside the head one (caught)."""
    lat = (F(1), F(1), F(1, 10), F(1, 10))
    for pat in ((True,) * 6, (False,) * 6, (True, True, False, True, True, True)):
        pair = run_pair(_cfg(6, 1, 2, lat, "safe"), pat)
        assert pair.same_as_p1 and not pair.violations, pat
    no_spare = dataclasses.replace(SAFE, name="planted-no-spare", spare_server=False)
    fails = list(lemma_failures(run_pair(_cfg(4, 1, 2, lat, "safe"), (False,) * 4, no_spare)))
    assert any(f.startswith("L11") for f in fails), fails


def test_gap_in_blocks_breaks_l10() -> None:
    """Blocks that skip a position leave it without p and without a live task (L10)."""
    cfg = _cfg(5, 1, 1, (F(1), F(1), F(1, 10), F(1, 10)), "safe")
    with contextlib.suppress(RuntimeError):  # the run stalls at the gap
        run_pair(cfg, (False,) * 5, cls=_GapMonitor)
    assert any(v.startswith("L10") for v in _Monitor.violations), _Monitor.violations


def test_no_extend_breaks_l12() -> None:
    """T0 >= (k+1) D > T: without extend_on_start the task after the first pass does not
    score every draft made during it (L12)."""
    no_ext = dataclasses.replace(SAFE, name="planted-no-extend", extend_on_start=False)
    cfg = _cfg(5, 1, 1, (F(3), F(1), F(1), F(1)), "safe")
    pat = (True, True, False, False, False)
    assert list(lemma_failures(run_pair(cfg, pat))) == []
    fails = list(lemma_failures(run_pair(cfg, pat, no_ext)))
    assert any(f.startswith("L12") for f in fails), fails


def test_pause_released_by_the_pass_scoring_it() -> None:
    """L13's second case at P = 3: the draft at 3 waits past the first pass's end for the
    pass scoring 2..3, started beside the first pass; L6 still holds (4.5 <= SI's 4.8)."""
    cfg, pat = OWN_PASS_RELEASE
    pair = run_pair(cfg, pat)
    assert list(lemma_failures(pair)) == []
    assert pair.dsi.trace is not None
    own: list[int] = []
    assert list(_pause_failures(pair.dsi.trace, own)) == [] and own == [3]
    starts = [e for e in pair.dsi.trace["events"] if e["ev"] == "draft_start" and e["pos"] == 3]
    assert [F(e["t"]) for e in starts] == [F(9, 2)]
    # at P = 1 the same instance never releases a pause by the pass scoring it
    one = run_pair(dataclasses.replace(cfg, servers=1), pat)
    assert one.dsi.trace is not None
    own = []
    assert list(_pause_failures(one.dsi.trace, own)) == [] and own == []


def test_long_pause_breaks_l13() -> None:
    """Planted: pausing for passes ending within 2 D holds the draft at 1 until the pass
    scoring it ends (L13)."""
    cfg = _cfg(2, 1, 1, (F(1), F(1), F(1), F(1)), "safe")
    fails = list(lemma_failures(run_pair(cfg, (True, False), cls=_LongPauseMonitor)))
    assert any(f.startswith("L13") for f in fails), fails


def test_no_dispatch_at_task_ends_breaks_l14() -> None:
    """Planted: a task freed by a pass's end starts only at the next draft's end (L14)."""
    cfg = _cfg(4, 1, 1, (F(1), F(1), F(1, 10), F(1, 10)), "safe")
    fails = list(lemma_failures(run_pair(cfg, (False,) * 4, cls=_LateStartMonitor)))
    assert any(f.startswith("L14") for f in fails), fails


def test_no_fresh_blocks_breaks_l16() -> None:
    """Planted: without fresh blocks a block starts at the last position of the one
    before, so the second block of an epoch ends off SI's bonus with no extension (L16)."""
    no_fresh = dataclasses.replace(SAFE, name="planted-no-fresh", fresh_blocks=False)
    cfg = _cfg(4, 1, 3, (F(1), F(1), F(1, 10), F(1, 10)), "safe")
    fails = list(lemma_failures(run_pair(cfg, (True, True, False, False), no_fresh)))
    assert any(f.startswith("L16") for f in fails), fails


def test_l15_is_false() -> None:
    """For the earlier `safe` (extension at every P): a pass started at its submission, not
    extended, ends at a position SI drafts, in the first epoch and after a rejection; L7
    and every checked lemma but L17 (it extends at P = 3) hold there. The current `safe`
    extends nothing at P = 3, and has no such pass there. (The registered check, run here
    on its own so a failure names it.)"""
    runs, summary = l15_is_false_l7_holds()
    assert runs == 4 and "19..21 starts at 21/8" in summary


def test_safe_extends_only_at_p_2_or_less() -> None:
    """`safe` (extend_servers = 2) extends tasks at P <= 2 and none at P >= 3, where the
    earlier `safe` did (L17 catches it); at P <= 2 the two run identically."""
    cfg, pat = L15_COUNTEREXAMPLE
    assert list(lemma_failures(run_pair(cfg, pat))) == []
    assert any(f.startswith("L17") for f in lemma_failures(run_pair(cfg, pat, EXTENDED_SAFE)))
    for servers in (1, 2):
        one = dataclasses.replace(cfg, servers=servers)
        a, b = run_pair(one, pat), run_pair(one, pat, EXTENDED_SAFE)
        assert a.dsi.trace == b.dsi.trace
        no_ext = dataclasses.replace(SAFE, name="planted-no-extend", extend_on_start=False)
        assert run_pair(one, pat, no_ext).dsi.trace != a.dsi.trace  # it does extend here
