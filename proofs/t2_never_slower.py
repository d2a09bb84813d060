"""T2 (DSI is never slower than non-SI, pathwise, for every P >= 1).

Model (dsi_ref.virtual, dsi_ref.latency). Target latencies T0 (TTFT: a pass whose
first scored position is 0) and T (TPOT: any other pass); drafter latencies D0
(position 0) and D. A target pass scoring positions f..l costs its base (T0 if
f = 0, else T) plus (l - f) * per_position, per_position >= 0 (0: one forward
whatever it scores, the paper's model). Cancellation is instant (preemptive=True):
a cancelled pass frees its server, or the drafter, at once. The events due at one
time are taken in as one batch (DSIScheduler.on_events) before anything is
committed or dispatched. n = max_tokens, lookahead k, P servers.

Non-SI commits position i at N_i = T0 + i T, whatever its tokens are (nonsi.py).

Theorem. If D0 <= T0 and D <= T, then for every n >= 1, k >= 1, P >= 1 and every
outcome of the verifications (every value of the keyed uniforms; in the timing
model, every acceptance pattern), DSI commits every position i at a time
tau_i <= N_i. In particular DSI's latency is <= non-SI's.

Coupling. Non-SI's commit times are deterministic, so the claim holds under every
coupling; the checks use the acceptance pattern indexed by absolute position
(dsi_ref.pattern: accepts[i] decides the draft at position i in every run). (A
list of accepted *counts* consumed per iteration is not a coupling of two
algorithms that iterate over different positions; it is not needed here.)

Preemption is needed too (counterexample NP): with non-preemptive workers
(preemptive=False) a draft cancelled by a rejection holds the drafter until its
pass ends, so the first draft after the rejection starts up to D late and Lemma D
fails. T0 = T = 1, D0 = D = 3/4, n = 2, k = 2, P = 1, pattern (reject, accept):
position 0 commits at 1, the draft at 1 under way since 3/4 holds the drafter to
3/2, the new draft at 1 is ready at 9/4 > N_1 = 2. More servers do not help (the
drafter is the bottleneck): the check also finds it with P = 4.

Both conditions are needed: with D > T, n = 2, k = 1, P = 1, T0 = T = 1,
D0 = 1, D = 2 and the pattern (accept, accept), the draft at position 1 is ready
at D0 + D = 3 > N_1 = 2; with D0 > T0 (T0 = T = 1, D0 = 2, D = 1/10, n = 1) the
first draft is ready at 2 > N_0 = 1. DSI commits a position only from a draft and
a p, so either delay is a commit delay (checked below on the real code).

Proof. Write c for the committed count, "p_c in hand" for c in s.p_avail,
cost(f, l) = (T0 if f = 0 else T) + (l - f) * per_position for a pass scoring f..l,
and call a task *cheap for c* if it scores c and its cost(first, last) <=
cost(c, c) (scheduler._covered). A scheduler call takes its batch in (stores
drafts and p's, frees servers: nothing commits or starts) and then runs
_progress once: commits, then the block's verification task (rule 2, skipping
committed drafts), the next draft, cancellations, the target-only task, dispatch.

Lemma R (invariant; needs only P >= 1 and instant cancellation). After every
call of the scheduler (start, on_events and the one-event calls), if c < n and
p_c is not in hand, a RUNNING task is cheap for c.
  Two facts first. (F1) Nothing in hand allows a commit: _commit_ready runs at the
  end of every call, so never both p_c and the draft at c are in hand. (F2) Live
  tasks score only positions <= m, where m is the first position without a draft in
  hand: a verify task scores its block and the next position, and blocks are
  submitted after their last draft; a target-only task scores c <= m; a rejection
  cancels every task and clears the drafts and s.p_avail. Likewise s.p_avail holds
  only positions <= m.
  Start: c = 0, nothing is live; a target-only task for 0 is submitted and, all P
  servers being free, started. Stale events change nothing. Otherwise:
  (1) on_draft_done for position m > c: the draft at c was in hand, so by (F1) p_c
      was not and nothing new can commit; the call only queues a task, cancels
      queued target-only tasks and tasks with last < c, and starts tasks. The
      running task that was cheap for c stays running.
  (2) on_draft_done for position m = c: if p_c is not in hand, no commit and (1)
      applies. If it is, c is committed. On a rejection every task is cancelled (all
      servers free), a target-only task for c+1 is submitted and started. On an
      acceptance, by (F2) every task that was live scored only positions <= c, so
      each has last < c+1 and is cancelled as useless (servers free); p_{c+1} is
      not in hand (F2), so the commit stops at c+1. The task with the smallest queue
      key (max(first, c+1), cost, ...) is cheap for c+1 if any live task is (a key
      (c+1, x) with x <= cost(c+1) is only held by tasks scoring c+1 that are cheap),
      and otherwise the target-only task for c+1 is submitted and is that task; a
      server is free, so it starts.
  (3) on_task_done of a task Z: Z's server is freed first. If nothing commits,
      either Z scored c (p_c now in hand) or the cheap running task for c is not Z
      and still runs. If commits carry c to c' and the last one is a rejection,
      as in (2) all servers are free and the target-only task for c' starts. If
      all are acceptances and p_{c'} is not in hand, no running task was cancelled
      except useless ones and Z's server is free; by the key argument of (2) the
      first task dispatched is cheap for c' (possibly the target-only task just
      submitted), unless one already runs.
  (Ties between queue keys do not matter: any minimal key is cheap for c.)
  A batch of several events is the same argument: taking in only adds drafts and
  p's and frees servers, so before _progress either p_c is in hand or the running
  task cheap for c still runs (if it finished, its p_c is in hand); the commits,
  cancellations and dispatch of _progress then act as in (2) and (3) with every
  server of a finished task free.

Lemma D (drafts). If tau_j <= N_j for every j < i, the draft at position i that
is committed on is ready by N_i. The drafter never waits (rule 1; a draft starts
in the instant the previous one ends or a rejection commits): after the last
rejection before i, at position j (commit time tau_j), it drafts j+1, j+2, ... back
to back, so the draft at i is ready at tau_j + (i - j) D <= N_j + (i - j) T = N_i.
With no rejection before i it is ready at D0 + i D <= T0 + i T = N_i.

Step (induction on i). Assume tau_j <= N_j for j < i. Let tau_{i-1} be the time at
which the committed count reaches i (for i = 0: the start call, at time 0); if it
goes beyond i at that time, tau_i = tau_{i-1} <= N_{i-1} <= N_i and we are done.
By Lemma R, after that call p_i is in hand or a running task cheap for i exists.
It started at some s <= tau_{i-1} and takes cost(first) <= cost(i), so it ends by
tau_{i-1} + cost(i) <= N_{i-1} + T = N_i (i >= 1) or by T0 = N_0 (i = 0). While
c = i it is not cancelled: rule 5 cancels only on a commit, and useless means
last < c. When it ends its p_i is stored. With Lemma D both p_i and the draft at i
are in hand by N_i, and _commit_ready commits i at once: tau_i <= N_i.

Checks (registered below), all on the real code (dsi_ref.pattern.run_pattern):
- exhaustive: every pattern of length S = 1..8 on a grid of k in {1, 2, 3},
  P in {1, 2, 3} and rational latencies with D0 <= T0, D <= T (T0 below, equal to
  and above T; D equal to T, a third, a tenth): tau_i <= N_i for all i, and Lemma
  R itself is asserted after every scheduler call (a monitoring subclass of
  DSIScheduler substituted for the one dsi_ref.workers.RunParts builds).
- hypothesis: rational latencies (D0 <= T0, D <= T), k <= 6, P <= 4, patterns of
  length up to 30.
- counterexamples: the two runs above violate tau_i <= N_i, and so does NP.
- hypothesis also draws per_position in {0, 1/10, 1/4, 1/2}: the proof above
  holds for any per_position >= 0 (only cost(f, l) changes), and the checks agree.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsi_ref.workers
from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.prob import Dist
from dsi_ref.scheduler import Command, DSIScheduler
from proofs.registry import check

F = Fraction
S_MAX = 8
# (T0, T, D0, D): TTFT below, equal to and above TPOT; drafter equal, 1/3 and 1/10 of target.
LATENCIES = (
    (F(1), F(1), F(1, 10), F(1, 10)),
    (F(1), F(1), F(1), F(1)),
    (F(3), F(1), F(1, 3), F(1, 3)),
    (F(3), F(1), F(3), F(1)),
    (F(1, 2), F(1), F(1, 2), F(1, 3)),
    (F(2), F(1), F(0), F(1, 10)),
)


class LemmaRViolation(AssertionError):
    pass


class _MonitoredScheduler(DSIScheduler[Dist]):
    """The real scheduler, asserting Lemma R after every call's _progress."""

    calls = 0  # how many times the invariant was checked: proves the monitor is in place

    def _progress(self, out: list[Command]) -> None:
        super()._progress(out)
        _MonitoredScheduler.calls += 1
        c = len(self.s.committed)
        if self.s.finished or c >= self.n or c in self.s.p_avail:
            return
        for t in self.s.tasks.values():
            if (
                t.server is not None
                and t.first <= c <= t.last
                and _cost(self, t.first, t.last) <= _cost(self, c, c)
            ):
                return
        raise LemmaRViolation(f"committed={c}: p not in hand and no cheap running task")


def _cost(sched: DSIScheduler[Dist], first: int, last: int) -> Fraction:
    """A pass's duration on the virtual clock (dsi_ref.latency.Latency.forward)."""
    return (sched.ttft if first == 0 else sched.tpot) + (last - first) * sched.per_position


@contextmanager
def monitored() -> Iterator[None]:
    with mock.patch.object(dsi_ref.workers, "DSIScheduler", _MonitoredScheduler):
        yield


def late_positions(accepts: Sequence[bool], cfg: RunConfig) -> list[int]:
    """Positions that DSI commits later than non-SI on this pattern."""
    dsi = run_pattern("dsi", accepts, cfg).commit_times
    non = run_pattern("nonsi", accepts, cfg).commit_times
    assert len(dsi) == len(non) == cfg.max_tokens
    return [i for i, (a, b) in enumerate(zip(dsi, non, strict=True)) if a > b]


def _cfg(
    n: int,
    k: int,
    servers: int,
    lat: tuple[F, F, F, F],
    per_position: F = Fraction(0),
    preemptive: bool = True,
) -> RunConfig:
    return RunConfig(
        n,
        k,
        servers,
        target_latency=Latency(lat[0], lat[1], per_position),
        drafter_latency=Latency(lat[2], lat[3]),
        preemptive=preemptive,
    )


@check(theorem="T2", method="exhaustive")
def never_slower_all_patterns() -> tuple[int, str]:
    runs = 0
    before = _MonitoredScheduler.calls
    with monitored():
        for lat in LATENCIES:
            for k in (1, 2, 3):
                for servers in (1, 2, 3):
                    for n in range(1, S_MAX + 1):
                        cfg = _cfg(n, k, servers, lat)
                        for pat in itertools.product((False, True), repeat=n):
                            late = late_positions(pat, cfg)
                            assert not late, f"{cfg} pattern {pat}: late at {late}"
                            runs += 1
    assert _MonitoredScheduler.calls > before + runs, "the Lemma R monitor did not run"
    return runs, f"every pattern S<={S_MAX}: tau_i <= N_i and Lemma R at every call"


_T = st.fractions(min_value=F(1, 10), max_value=5, max_denominator=10)
_FRAC = st.fractions(min_value=0, max_value=1, max_denominator=12)


@check(theorem="T2", method="hypothesis")
def never_slower_random() -> tuple[int, str]:
    count = 0

    @settings(
        max_examples=300,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        t0=st.fractions(min_value=0, max_value=5, max_denominator=10),
        t=_T,
        d0_frac=_FRAC,
        d_frac=_FRAC.filter(lambda x: x > 0),
        k=st.integers(1, 6),
        servers=st.integers(1, 4),
        pattern=st.lists(st.booleans(), min_size=1, max_size=30),
        per_position=st.sampled_from([F(0), F(0), F(1, 10), F(1, 4), F(1, 2)]),
    )
    def prop(
        t0: F,
        t: F,
        d0_frac: F,
        d_frac: F,
        k: int,
        servers: int,
        pattern: list[bool],
        per_position: F,
    ) -> None:
        nonlocal count
        cfg = _cfg(len(pattern), k, servers, (t0, t, d0_frac * t0, d_frac * t), per_position)
        with monitored():
            late = late_positions(pattern, cfg)
        assert not late, f"{cfg} pattern {pattern}: late at {late}"
        count += 1

    prop()
    return count, "tau_i <= N_i and Lemma R on every hypothesis example (S <= 30, per_position)"


@check(theorem="T2", method="counterexample")
def slow_drafter_breaks_it() -> tuple[int, str]:
    slow_tpot = _cfg(2, 1, 1, (F(1), F(1), F(1), F(2)))
    assert late_positions([True, True], slow_tpot) == [1], "D > T should delay position 1"
    slow_ttft = _cfg(1, 1, 1, (F(1), F(1), F(2), F(1, 10)))
    assert late_positions([True], slow_ttft) == [0], "D0 > T0 should delay position 0"
    held = (F(1), F(1), F(3, 4), F(3, 4))
    for servers in (1, 4):
        # The paper's policy; the non-preemptive policies are T7's (t7_policies.py).
        np_cfg = dataclasses.replace(_cfg(2, 2, servers, held, preemptive=False), policy="paper")
        assert late_positions([False, True], np_cfg) == [1], "NP: the held drafter delays 1"
        assert run_pattern("dsi", [False, True], np_cfg).commit_times == (F(1), F(9, 4))
        assert not late_positions([False, True], _cfg(2, 2, servers, held)), "preemptive: on time"
    return 4, "D > T, D0 > T0 and non-preemption (NP) each make DSI commit later than non-SI"
