"""T5 (server count): the smallest P at which no DSI task ever waits for a server.

Model: as in T2 (dsi_ref.virtual: target T0 = TTFT, T = TPOT; drafter D0, D > 0;
instant cancellation (preemptive); per_position = 0; the events due at one time are
taken in as one batch before anything is dispatched), n = max_tokens,
lookahead k, and an acceptance pattern a (dsi_ref.pattern). "Queues" means some
task is submitted while all P servers are busy (counters.tasks_queued > 0, i.e.
a task_submit without an immediate task_start).

Definitions. L(a) is the largest number of tasks running at once in the run on
pattern a with unlimited servers (P = n + 1 is unlimited: at most one target-only
task and at most n verification tasks are ever live at once, see (b)).
P*(n, k, latencies) = max over the 2^n patterns of L(a).

Theorem.
(a) Exact characterisation. With P servers no task ever queues on pattern a iff
    P >= L(a). Hence P >= P* is queue-free on every pattern, and with P = P* - 1
    some pattern queues: P* is the smallest queue-free P.
(b) Closed-form bound. P* <= B := ceil(T / (k D)) + 1 + [T0 > T] + [k >= 2].
    Read: the paper's ceil(T / (k D)) verification tasks in flight, plus one
    server for the target-only chain, one for the prefill verification task when
    it outlasts the others (TTFT > TPOT), and one for the short last block (only
    when k >= 2).
(c) The paper's count ceil(T / (k D)) is not enough in general: the target-only
    chain needs a server of its own (e.g. T0 = T = 1, D0 = D = 2/3, k = 2, n = 4:
    the paper says 1, P* = 2), and a long prefill adds more (T0 = 3, T = 1,
    D0 = D = 1/4, k = 1, n = 8: the paper says 4, P* = 6). It can also be exactly
    enough: T0 = T = D0 = D = 1 (k = 1, 2, 3) has P* = 1, because a draft and the
    target-only pass that end together are taken in together (History).
    Instances are tabulated by the check.
(d) Below P*: tasks wait, nothing else changes in kind. T1 and T6 hold for every
    P >= 1 (their proofs do not use P), so the output law and even the tokens
    are unchanged; T2 holds for every P >= 1, so DSI is still never slower than
    non-SI. Only timing can suffer, and not always: a waiting task may be one
    whose p arrives in time from another task.
(e) Checked on instances only (not proved):
    (e1) the all-accept pattern of a run of n = k (ceil(T/(kD)) + 2) + 2 tokens has
         L >= ceil(T / (k D)), so the paper's count is a lower bound for long runs;
    (e2) commit times are pointwise non-increasing in P (one more server never
         makes a commit later), on every pattern, for P = 1 .. P*;
    (e3) P_full, the smallest P at which every commit time on every pattern equals
         the unlimited-server one, is <= P* and can be smaller: T0 = 3, T = 1,
         D0 = D = 1/4, k = 1, n = 6 has P_full = 4 < P* = 6 (queues that cost nothing).

Proof.
(a) The scheduler consults the servers only through "is a server free" and
    "which is the lowest free index" (_dispatch). Run the same pattern with P and
    with unlimited servers. Up to the first call after which more than P tasks
    would be running in the unlimited run, every dispatch finds a free server in
    both runs, so both issue the same commands at the same times (induction over
    events). If L(a) <= P this never happens and no task queues. If L(a) > P,
    at the first call where the unlimited run starts its (P+1)-th concurrent task,
    the P-server run, identical so far, has all P servers busy and that task
    queues. The max over patterns gives P*.
(b) Take any instant in the unlimited run. Target-only tasks: one is submitted
    for position c only when the committed count is c and nothing covers c; it
    is cancelled as useless once the count passes c, and a live target-only task
    for c covers c, so at most one is live. Verification tasks: a rejection
    cancels every task, so the live ones belong to the current chain (since the
    last rejection). In a chain, task j is submitted when block j's last draft is
    done; consecutive blocks hold k drafts at positions >= 1 (D each), except the
    last block of the run (shorter, only if k >= 2), so consecutive submission
    times are >= k D apart. With unlimited servers a task runs from its submission
    for T, or T0 for the one prefill verification task (first scored position 0).
    Count after the batch at instant tau (when the peak is read): a task that
    ends at tau has been taken in, so the tasks of duration T running then were
    submitted in (tau - T, tau], a half-open window of length T. Points m_1 < ...
    < m_j in it with spacing >= k D have (j - 1) k D <= m_j - m_1 < T, so
    j <= ceil(T / (k D)); plus possibly the short last block; the prefill
    verification task adds one more only if T0 > T (else its interval is among
    the former). Sum with the target-only task.

History. Before simultaneous events were taken in as one batch (they were handled
in the order they were scheduled), a task ending at tau and one starting at tau
could both count, the window was closed and B was floor(T / (k D)) + 2 + ...: one
server more at every tie (T / (k D) a whole number). P* at n = 7 was one higher
on four of the 18 settings of the grid (T0 = T = D0 = D = 1, k = 1, 2, 3: 2, where
one server loses no time; T0 = T = 1, D0 = D = 1/3, k = 3: 3), and the (c)
instance was T0 = T = D0 = D = 1, k = 1.

Checks (registered below), on the real code via dsi_ref.pattern.run_pattern:
- exhaustive: for n = 1..7, k in {1, 2, 3} and six latency settings (TTFT below,
  equal to and above TPOT; drafter fast, equal, with ties: T / (k D) whole), L(a) for all
  2^n patterns (peak of busy servers, read from the real scheduler through a
  monitoring subclass); then with P = P* every pattern has tasks_queued == 0, with
  P = P* - 1 (when >= 1) some pattern has tasks_queued > 0, and P* <= B; the
  instances of (c) and, per setting, (e1) are asserted. (e2) and (e3) on the same
  grid at n = 6.
- hypothesis: with P = B no task queues, for rational latencies (the drafter up to
  three times slower than the target: (b) does not need D <= T), k <= 5 and
  patterns of length up to 30.
"""

from __future__ import annotations

import itertools
import math
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
N_MAX = 7
# (T0, T, D0, D)
LATENCIES = (
    (F(1), F(1), F(1, 10), F(1, 10)),
    (F(1), F(1), F(1, 3), F(1, 3)),
    (F(1), F(1), F(1), F(1)),
    (F(3), F(1), F(1, 4), F(1, 4)),
    (F(1, 2), F(1), F(1, 4), F(1, 4)),
    (F(2), F(1), F(1), F(1, 5)),
)


class _PeakScheduler(DSIScheduler[Dist]):
    """The real scheduler, recording the peak number of busy servers."""

    peak = 0

    def _progress(self, out: list[Command]) -> None:
        super()._progress(out)
        _PeakScheduler.peak = max(_PeakScheduler.peak, len(self.busy_servers()))


@contextmanager
def _peak_monitor() -> Iterator[None]:
    with mock.patch.object(dsi_ref.workers, "DSIScheduler", _PeakScheduler):
        yield


def _cfg(n: int, k: int, servers: int, lat: tuple[F, F, F, F]) -> RunConfig:
    return RunConfig(
        n,
        k,
        servers,
        target_latency=Latency(lat[0], lat[1]),
        drafter_latency=Latency(lat[2], lat[3]),
    )


def peak_unlimited(pattern: Sequence[bool], k: int, lat: tuple[F, F, F, F]) -> int:
    """L(a): the peak of running tasks with unlimited (n + 1) servers."""
    n = len(pattern)
    cfg = _cfg(n, k, n + 1, lat)
    _PeakScheduler.peak = 0
    with _peak_monitor():
        r = run_pattern("dsi", pattern, cfg)
    assert r.counters.tasks_queued == 0, f"{cfg}: queued with n + 1 servers"
    return _PeakScheduler.peak


def bound(k: int, lat: tuple[F, F, F, F]) -> int:
    t0, t, _, d = lat
    return math.ceil(t / (k * d)) + 1 + (t0 > t) + (k >= 2)


def paper_count(k: int, lat: tuple[F, F, F, F]) -> int:
    return math.ceil(lat[1] / (k * lat[3]))


def queues(pattern: Sequence[bool], k: int, servers: int, lat: tuple[F, F, F, F]) -> bool:
    return (
        run_pattern("dsi", pattern, _cfg(len(pattern), k, servers, lat)).counters.tasks_queued > 0
    )


def p_star(n: int, k: int, lat: tuple[F, F, F, F]) -> int:
    return max(peak_unlimited(a, k, lat) for a in itertools.product((False, True), repeat=n))


@check(theorem="T5", method="exhaustive")
def smallest_queue_free_p() -> tuple[int, str]:
    table = []
    configs = 0
    for lat in LATENCIES:
        for k in (1, 2, 3):
            for n in range(1, N_MAX + 1):
                pats = list(itertools.product((False, True), repeat=n))
                ps = max(peak_unlimited(a, k, lat) for a in pats)
                assert not any(queues(a, k, ps, lat) for a in pats), f"P*={ps} queues"
                if ps > 1:
                    assert any(queues(a, k, ps - 1, lat) for a in pats), f"P*-1={ps - 1} free"
                assert ps <= bound(k, lat), f"P*={ps} > B={bound(k, lat)} at {lat} k={k}"
                configs += 1
            # (e) the paper's count is reached by the all-accept pattern of a long enough run.
            paper = paper_count(k, lat)
            long_n = k * (paper + 2) + 2
            assert peak_unlimited([True] * long_n, k, lat) >= paper, f"{lat} k={k} n={long_n}"
            lat_s = ", ".join(str(x) for x in lat)
            table.append(
                f"(T0, T, D0, D) = ({lat_s}), k={k}: P*={ps} paper={paper} B={bound(k, lat)}"
            )
    # (c): the paper's count is not enough, and at a tie it can be exactly enough.
    chain = (F(1), F(1), F(2, 3), F(2, 3))
    assert p_star(4, 2, chain) == 2 > paper_count(2, chain)
    prefill = (F(3), F(1), F(1, 4), F(1, 4))
    assert p_star(8, 1, prefill) == 6 > paper_count(1, prefill)
    same = (F(1), F(1), F(1), F(1))
    assert all(p_star(6, k, same) == 1 == paper_count(k, same) for k in (1, 2, 3))
    return configs, "P* exact (P* free, P*-1 queues), P* <= B; at n=7: " + "; ".join(table)


@check(theorem="T5", method="exhaustive")
def fewer_servers_never_help() -> tuple[int, str]:
    """(e2) and (e3): commit times non-increasing in P; P_full <= P*, and < on one instance."""
    n = 6
    pats = list(itertools.product((False, True), repeat=n))
    runs = 0
    fulls = {}
    for lat in LATENCIES:
        for k in (1, 2, 3):
            ps = max(peak_unlimited(a, k, lat) for a in pats)
            unlimited = {
                a: run_pattern("dsi", a, _cfg(n, k, n + 1, lat)).commit_times for a in pats
            }
            full = None
            prev = {a: unlimited[a] for a in pats}  # P* behaves as unlimited (part (a))
            for servers in range(ps, 0, -1):
                now = {
                    a: run_pattern("dsi", a, _cfg(n, k, servers, lat)).commit_times for a in pats
                }
                runs += len(pats)
                for a in pats:
                    later = all(x >= y for x, y in zip(now[a], prev[a], strict=True))
                    assert later, f"{lat} k={k} {a}: P={servers} commits earlier than P+1"
                if now == unlimited:
                    full = servers
                prev = now
            assert full is not None and full <= ps
            fulls[(lat, k)] = (full, ps)
    prefill = (F(3), F(1), F(1, 4), F(1, 4))
    assert fulls[(prefill, 1)] == (4, 6), fulls[(prefill, 1)]
    strict = sum(f < p for f, p in fulls.values())
    return runs, f"monotone in P on every pattern; P_full < P* on {strict} of {len(fulls)} settings"


_T = st.fractions(min_value=F(1, 10), max_value=4, max_denominator=10)
_FRAC = st.fractions(min_value=F(1, 12), max_value=3, max_denominator=12)


@check(theorem="T5", method="hypothesis")
def bound_suffices_random() -> tuple[int, str]:
    count = 0

    @settings(
        max_examples=400,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        t0=st.fractions(min_value=0, max_value=4, max_denominator=10),
        t=_T,
        d0_frac=_FRAC,
        d_frac=_FRAC,
        k=st.integers(1, 5),
        pattern=st.lists(st.booleans(), min_size=1, max_size=30),
    )
    def prop(t0: F, t: F, d0_frac: F, d_frac: F, k: int, pattern: list[bool]) -> None:
        nonlocal count
        lat = (t0, t, d0_frac * t0, d_frac * t)
        b = bound(k, lat)
        assert not queues(pattern, k, b, lat), f"{lat} k={k} {pattern}: queues with B={b}"
        count += 1

    prop()
    return count, "P = B never queues (rational latencies, D/T and D0/T0 in [1/12, 3], S <= 30)"
