"""T7(b)'s lemmas, checked on the real code (docs/theorems.md, T7 (b)).

Setting: the non-preemptive virtual clock, policy `safe` (extend_on_start only at
P <= 2: `extend_servers` = 2), per_position = 0, latencies
T0, T (target), D0, D (drafter) with D0 <= T0, D <= T and D <= T0. Both runs share
the acceptance pattern (dsi_ref.pattern). Per position x, read from the two traces:
- tau_x, tau'_x: DSI's and SI's commit times;
- delta_x: the end of the draft at x that DSI commits against (the last one before
  its commit); delta'_x: the same for SI, at positions SI drafts (not its bonus ones);
- eps_x: the end of the DSI task whose p commits x; sigma_x: that task's start;
- v'_x: the start of the SI pass that commits x.

Lemmas (the names of their checks):
- L1 (no_draft_is_cancelled): DSI never cancels a draft: no draft_cancel event.
- L2 (head_task_never_waits): after every scheduler call, every live task whose
  first scored position is <= c (the committed count) is running.
- L3 (commit_equation): tau_x = max(tau_{x-1}, eps_x, delta_x).
- L4 (drafts_dominated): delta_x <= delta'_x where SI drafts x, and delta_x <= tau'_x
  at SI's bonus positions.
- L5 (passes_dominated): sigma_x <= v'_x and eps_x <= tau'_x.
- L6 (drafts start early): Sigma_x <= Sigma'_x, where Sigma_x is the start of the
  draft DSI commits x against and Sigma'_x the start of SI's work on x: its draft, or
  at a bonus position its pass.
- L7 (tasks start early): every DSI task started with first >= 1 and last scored
  position L starts by Sigma'_L if L is an SI bonus position, by Sigma'_L - T if SI
  drafts L; and a task `_extended` made at its start, with L <= z (the epoch's rejected
  position), by Sigma'_L - T wherever L is.
- L8 (epoch structure; checked by the monitor): within an epoch (between rejections)
  (a) a verification task that starts has first >= last of every verification task
  started before it, with equality only for the one started just before, when that one
  was extended at its start (`_extended`); (b) a running task is cancelled only by a
  rejection (or at the end), never as useless; (c) after every call at most one live
  task is a head task (first <= c), p at c is not in hand while a head verification
  task runs, and c < last of every running extended task.
- L9 (one held-or-speculative server): after every call at most one server is held or
  runs a speculative task; with L8 (c), at most two are busy or held.
- L10 (coverage; checked by the monitor): after every call every position x from c to
  the last position a live verification task scores has its p in hand or is scored by
  a live task; and whenever a speculative verification task is live, so is a head task.
- L11 (P = 2 runs as P = 1): at P = 2 no speculative task ever starts (the monitor),
  and the run's events, server numbers aside, are the P = 1 run's (run_pair runs both).
- L12 (first epoch when T0 >= (k+1) D > T, P <= 2): the tasks after the first start
  and end as in the recursion of `_first_epoch_failures` (docs/theorems.md).
- L13 (pause release, every P): in an epoch, a draft at x that starts later than the
  draft at x - 1 ended starts at the end of a verification task B with first_B < x and
  last L_B <= x; L_B = x only when B started beside a task scoring position 0 (the
  run's first task, so P >= 3 and the first epoch). With L7 it gives L6 at every P.
  (The clause "L_B = x only ..." is proved where extension acts; at P >= 3, where
  `safe` does not extend, it is checked here, and L6 does not need it.)
- L14 (task starts, every P): a verification task of an epoch starts at its submission
  (an extended one: its original's), at the end of a task started before it in the
  epoch, or when a held server is released; and no later than the latest of its
  submission and the ends of the tasks started before it in the epoch.
- L15 (P >= 3), FALSE for EXTENDED_SAFE, the earlier `safe` that extends at every P:
  "a verification task with first >= 1 and last L <= z that starts at its submission,
  not extended, has L at an SI bonus position". L15_COUNTEREXAMPLE (T0 = T = 1,
  D0 = D = 1/8, k = 2, n = 23, P = 3, all accepted) has such a task with L drafted by
  SI; L7, L5 and the theorem hold there (check `l15_is_false_l7_holds`). Not in
  `lemma_failures`: `_start_failures` lists those tasks when asked. For `safe` at
  P >= 3 (no extension) L16 makes every block an SI cycle, so no such task exists.
- L16 (phase, every P; checked by the monitor): in an epoch from a, the i-th verification
  block (i = 0, 1, ...) submitted before the epoch's first extension (`_extended`
  lengthening a task) scores up to min(a + (i + 1)(k + 1) - 1, n - 1): SI's cycle
  j0 + i's bonus while that cycle starts at or before z.
- L17 (no extension at P >= 3; the monitor): at P >= 3 no task is lengthened by
  `_extended`, so every run of `safe` there is a run without extension, the case
  docs/theorems.md T7 (b) proves at P >= 3. Planted: EXTENDED_SAFE breaks it.
- Theorem: tau_x <= tau'_x for every x (so T_safe <= T_SI).

Instances: the grid of proofs.t7_policies (every pattern, n <= 6, k in 1..3, P in
1..3) on its seven latency settings plus two with T0 < T and D <= T0, and seeded
random runs (n <= 30, k <= 6, P <= 4, rational latencies). Planted: `safe` without
drafter_pause breaks L1 (and the theorem); `safe` without fresh_blocks breaks L6,
L7, L8 and L16; `safe` without spare_server breaks L9 at P = 3 and L11 at P = 2; blocks
that leave a one-position gap break L10; a pause that waits for passes ending within
2 D breaks L13; a scheduler that dispatches nothing at task ends breaks L14;
EXTENDED_SAFE (the earlier `safe`, extend_on_start at every P) breaks L17 at P >= 3; the
condition D <= T0 is necessary (the counterexample below breaks L4
and the theorem).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import random
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

from dsi_ref.config import RunConfig
from dsi_ref.pattern import PATTERN_DRAFTER, PATTERN_TARGET, PatternChooser, run_pattern
from dsi_ref.policies import SAFE, Policy
from dsi_ref.prob import Dist
from dsi_ref.result import RunResult
from dsi_ref.scheduler import (
    _HELD,
    CancelTask,
    Command,
    DSIScheduler,
    Event,
    QueueTask,
    StartTask,
    TaskDone,
)
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi
from proofs.registry import check
from proofs.t7_policies import LATENCIES, N_MAX, _cfg, _PolicyParts

F = Fraction
Lat = tuple[F, F, F, F]
# T0 < T with D <= T0: the old grid had T0 >= T everywhere.
SHORT_PREFILL: tuple[Lat, ...] = (
    (F(1, 2), F(1), F(1, 2), F(1, 2)),
    (F(2, 3), F(1), F(1, 6), F(2, 3)),
)
GRID_LATENCIES: tuple[Lat, ...] = (*LATENCIES, *SHORT_PREFILL)
# The earlier `safe` (before 2026-12-07): extend_on_start at every P. T7 (b)'s written
# proof at P >= 3 covered only its runs without extension; L15's counterexamples are its.
EXTENDED_SAFE = dataclasses.replace(SAFE, name="safe-extend-every-p", extend_servers=None)


class _Monitor(DSIScheduler[Dist]):
    """The real scheduler; records a violation of L2, L8, L9, L10 or L11 after every call,
    of L16 at every block submitted and of L17 at every extension."""

    violations: list[str] = []  # noqa: RUF012 - reset by each run

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._extended_ids: set[int] = set()  # tasks resubmitted by _extended
        self._epoch: list[tuple[int, int, bool]] = []  # (first, last, extended) started
        self._phase = (0, 0, False)  # L16: (epoch start a, blocks submitted, extended yet)

    def _extended(self, tid: int, c: int, out: list[Command]) -> int:
        new = super()._extended(tid, c, out)
        if new != tid:
            self._extended_ids.add(new)
            self._phase = (self._phase[0], self._phase[1], True)
            if len(self.servers) >= 3:  # L17: safe extends only at P <= 2
                t = self.s.tasks[new]
                _Monitor.violations.append(
                    f"L17: task {t.first}..{t.last} extended at P = {len(self.servers)}"
                )
        return new

    def _submit_block(self, out: list[Command]) -> None:
        done = len(out)
        super()._submit_block(out)
        a, i, extended = self._phase
        if extended or len(out) == done:
            return
        block = out[-1]
        assert isinstance(block, QueueTask) and block.kind == "verify"
        want = min(a + (i + 1) * (self.k + 1) - 1, self.n - 1)
        if block.last != want:  # L16: off SI's phase before any extension
            _Monitor.violations.append(f"L16: block {i} of the epoch from {a} ends at {block.last}")
        self._phase = (a, i + 1, False)

    def _reject(self, out: list[Command]) -> None:
        super()._reject(out)
        self._epoch = []  # a new epoch: nothing before the rejection is used again
        self._phase = (len(self.s.committed), 0, False)

    def _progress(self, out: list[Command]) -> None:
        done = len(out)
        super()._progress(out)
        bad = _Monitor.violations.append
        for cmd in out[done:]:
            if (
                isinstance(cmd, CancelTask)
                and cmd.held
                and cmd.reason != "rejection"
                and not self.s.finished
            ):
                bad(f"L8: a running task cancelled as useless at c={len(self.s.committed)}")
            if isinstance(cmd, StartTask) and cmd.kind == "verify":  # L8 (a)
                for i, (first, last, ext) in enumerate(self._epoch):
                    if cmd.first < last or (
                        cmd.first == last and not (ext and i == len(self._epoch) - 1)
                    ):
                        bad(f"L8: task {cmd.first}..{cmd.last} starts after {first}..{last}")
                ext = cmd.task_id in self._extended_ids
                self._epoch.append((cmd.first, cmd.last, ext))
        if self.s.finished:
            return
        c = len(self.s.committed)
        heads = [t for t in self.s.tasks.values() if not self._speculative(t, c)]
        for t in heads:
            if t.server is None:
                bad(f"L2: task {t.first}..{t.last} queued at c={c}")
            elif t.kind == "verify" and c in self.s.p_avail:
                bad(f"L8: p at c={c} in hand while head {t.first}..{t.last} runs")
        if len(heads) > 1:  # L8 (c)
            bad(f"L8: {len(heads)} head tasks live at c={c}")
        for t in self.s.tasks.values():
            if t.server is not None and t.task_id in self._extended_ids and c >= t.last:
                bad(f"L8: extended {t.first}..{t.last} runs at c={c}")
        held = sum(1 for x in self.servers if x == _HELD)
        spec = sum(1 for x in self.s.tasks.values() if x.server is not None and x not in heads)
        if held + spec > 1:  # L9
            bad(f"L9: {held} held and {spec} speculative servers at c={c}")
        # L10: every position from c to the last one a live verification task scores has
        # its p in hand or is scored by a live task; so a live speculative verification
        # task (whose drafts put the draft at c in hand) means a live head task.
        live = list(self.s.tasks.values())
        top = max((t.last for t in live if t.kind == "verify"), default=c - 1)
        for x in range(c, top + 1):
            if x not in self.s.p_avail and not any(t.first <= x <= t.last for t in live):
                bad(f"L10: position {x} has no p and no live task at c={c}")
        if not heads and any(t.kind == "verify" and t.first > c for t in live):
            bad(f"L10: a speculative task is live and no head task at c={c}")
        if len(self.servers) == 2:  # L11: at P = 2 no speculative task ever starts
            for cmd in out[done:]:
                if isinstance(cmd, StartTask) and cmd.kind == "verify" and cmd.first > c:
                    bad(f"L11: speculative task {cmd.first}..{cmd.last} starts at P = 2")


@dataclasses.dataclass(frozen=True)
class Pair:
    """One instance: both runs' traces, read into per-position times."""

    dsi: RunResult
    si: RunResult
    violations: tuple[str, ...]  # L2, L8..L11, L16, L17: from the monitored scheduler
    tpot: F  # T, the target's pass cost at a position >= 1
    same_as_p1: bool  # L11: at P = 2, the run's events (server numbers aside) are P = 1's
    cfg: RunConfig


def _events(run: RunResult) -> list[dict[str, Any]]:
    """A trace's events without server numbers (which server a pass takes)."""
    assert run.trace is not None
    return [{k: v for k, v in e.items() if k != "server"} for e in run.trace["events"]]


def run_pair(
    cfg: RunConfig,
    pat: tuple[bool, ...],
    policy: Policy = SAFE,
    cls: type[_Monitor] = _Monitor,
) -> Pair:
    """DSI (`policy`, on the monitored scheduler `cls`) and SI on one pattern; at P = 2
    also DSI at P = 1, for L11."""
    _Monitor.violations = []
    parts = _PolicyParts(policy, cls)
    chooser = PatternChooser(pat)
    dsi = run_dsi(PATTERN_TARGET, PATTERN_DRAFTER, cfg, chooser=chooser, parts=parts, record=True)
    si = run_si(PATTERN_TARGET, PATTERN_DRAFTER, cfg, chooser=PatternChooser(pat), record=True)
    same = True
    if cfg.servers == 2:
        one = run_dsi(
            PATTERN_TARGET,
            PATTERN_DRAFTER,
            dataclasses.replace(cfg, servers=1),
            chooser=PatternChooser(pat),
            parts=_PolicyParts(policy),
            record=True,
        )
        same = _events(one) == _events(dsi)
    return Pair(dsi, si, tuple(_Monitor.violations), cfg.target_latency.tpot, same, cfg)


@dataclasses.dataclass
class _Times:
    commit: dict[int, F]  # tau_x
    draft: dict[int, F]  # delta_x (only where a draft was committed against)
    task_start: dict[int, F]  # sigma of the task committing x
    task_end: dict[int, F]  # eps_x
    cancelled_drafts: int
    work_start: dict[int, F]  # Sigma_x: start of that draft; at a bonus position, of the pass
    task_starts: list[tuple[F, int, int]]  # (start, first, last) of every task started


def _times(trace: dict[str, Any]) -> _Times:
    done: dict[int, F] = {}  # the last draft done at each position so far
    pos: dict[int, int] = {}  # draft id -> position
    start: dict[int, F] = {}
    end: dict[int, F] = {}
    began: dict[int, F] = {}  # position -> start of its last draft so far
    scored: dict[int, tuple[int, int]] = {}  # task id -> (first, last)
    out = _Times({}, {}, {}, {}, 0, {}, [])
    for ev in trace["events"]:
        t = F(ev["t"])
        kind = ev["ev"]
        if kind == "draft_start":
            pos[ev["id"]] = ev["pos"]
            began[ev["pos"]] = t
        elif kind == "task_submit":
            scored[ev["id"]] = (ev["first"], ev["last"])
        elif kind == "draft_done":
            done[pos[ev["id"]]] = t
        elif kind == "draft_cancel":
            out.cancelled_drafts += 1
        elif kind == "task_start":
            start[ev["id"]] = t
            out.task_starts.append((t, *scored[ev["id"]]))
        elif kind == "task_done":
            end[ev["id"]] = t
        elif kind == "commit":
            x = ev["pos"]
            out.commit[x] = t
            if ev["draft"] is not None:
                out.draft[x] = done[x]
            out.work_start[x] = began[x] if ev["draft"] is not None else start[ev["task"]]
            out.task_start[x] = start[ev["task"]]
            out.task_end[x] = end[ev["task"]]
    return out


def _first_epoch_failures(pair: Pair, d: _Times) -> Iterator[str]:
    """L12: at P <= 2 with T0 >= (k+1) D > T, the first epoch's tasks R_1, R_2, ... start
    at w_1 = w_0 + T0, w_{i+1} = w_i + T + (k + 1 - o_i - f) D and score up to
    L_1 = L_0 + f_0, L_{i+1} = L_i + k + 1 - o_i (f_0 = floor(T0/D), f = floor(T/D),
    o_1 = 1 iff f_0 >= k + 2, k + 1 does not divide f_0 and not k = 1 with T = D; o_i = 0
    after), the one reaching n - 1 no later."""
    cfg = pair.cfg
    t0, t, dd = cfg.target_latency.ttft, pair.tpot, cfg.drafter_latency.tpot
    k, n = cfg.k, len(d.commit)
    if cfg.servers > 2 or not t0 >= (k + 1) * dd > t:
        return
    assert pair.dsi.trace is not None
    rejected = [
        F(e["t"])
        for e in pair.dsi.trace["events"]
        if e["ev"] == "commit" and e["accepted"] is False
    ]
    tasks = [x for x in d.task_starts if not rejected or x[0] < rejected[0]]
    if not tasks:
        return
    f0, f = t0 // dd, t // dd
    w0, _, l0 = tasks[0]
    # o_1: R_1 was extended, no block ended at its last draft, and its next block is not
    # committed whole when R_1 ends (k = 1, T = D: that block's one draft ends with R_1)
    o = int(f0 >= k + 2 and f0 % (k + 1) != 0 and not (k == 1 and t == dd))
    w, last = w0 + t0, min(l0 + f0, n - 1)
    for i, (start, _, got) in enumerate(tasks[1:], 1):
        if (start > w) if got == n - 1 else ((start, got) != (w, last)):
            yield f"L12: task {i} starts {start}, scores to {got}; expected {w}, {last}"
            return
        w, last, o = w + t + (k + 1 - o - f) * dd, min(last + k + 1 - o, n - 1), 0


def _pause_failures(trace: dict[str, Any], own: list[int] | None = None) -> Iterator[str]:
    """L13: in an epoch, a draft at x that starts later than the draft at x - 1 ended
    starts when a verification task B with first_B < x and last L_B <= x ends; L_B = x
    only if B started while a verification task scoring position 0 ran."""
    tasks: dict[int, dict[str, Any]] = {}
    running: set[int] = set()
    done: F | None = None  # end of the epoch's last draft so far
    for ev in trace["events"]:
        t, kind = F(ev["t"]), ev["ev"]
        if kind == "task_submit":
            tasks[ev["id"]] = {
                "first": ev["first"],
                "last": ev["last"],
                "verify": ev["kind"] == "verify",
            }
        elif kind == "task_start":
            beside = [tasks[i] for i in running if tasks[i]["verify"]]
            tasks[ev["id"]]["beside0"] = any(b["first"] == 0 for b in beside)
            running.add(ev["id"])
        elif kind in ("task_done", "task_cancel"):
            running.discard(ev["id"])
            if kind == "task_done":
                tasks[ev["id"]]["end"] = t
        elif kind == "commit" and ev["accepted"] is False:
            done = None  # a new epoch: its first draft starts at the rejection (L1)
        elif kind == "draft_done":
            done = t
        elif kind == "draft_start":
            x = ev["pos"]
            if done is not None and t > done:
                ends = [b for b in tasks.values() if b.get("end") == t and b["verify"]]
                ok = any(b["first"] < x and b["last"] < x for b in ends) or any(
                    b["first"] < x and b["last"] == x and b["beside0"] for b in ends
                )
                if not ok:
                    yield f"L13: the draft at {x} starts at {t}, paused since {done}"
                elif own is not None and not any(b["first"] < x > b["last"] for b in ends):
                    own.append(x)  # released by the pass scoring x itself
            done = None


def _start_failures(
    pair: Pair, s: _Times, off_phase: list[tuple[F, int, int]] | None = None
) -> Iterator[str]:
    """L14: a verification task of an epoch starts at its submission (before any
    extension), at the end of a task started before it in the epoch, or when a held
    server is released; and no later than the latest of its submission and the ends of
    the tasks started before it in the epoch. L7 for extended tasks: one that
    `_extended` made at its start (first >= 1, last L <= z, the epoch's rejected
    position) starts by Sigma'_L - T wherever L is. Into `off_phase` (if given): every
    verification task (first >= 1, L <= z) that starts at its submission, not extended,
    with L drafted by SI, as (start, first, last): what L15 said never occurs at P >= 3
    (false: L15_COUNTEREXAMPLE)."""
    assert pair.dsi.trace is not None
    trace, target, prefill = pair.dsi.trace, pair.tpot, pair.cfg.target_latency.ttft
    n = pair.cfg.max_tokens
    rejections = [
        (F(e["t"]), e["pos"])
        for e in trace["events"]
        if e["ev"] == "commit" and e["accepted"] is False
    ]
    extended: set[int] = set()
    sub: dict[int, F] = {}  # task -> submission (an extension: its original's)
    first: dict[int, int] = {}
    ev_last: dict[int, int] = {}
    verify: set[int] = set()
    start: dict[int, F] = {}
    epoch: list[int] = []  # tasks started in this epoch
    ends: dict[int, F] = {}
    releases: list[F] = []  # ends of held passes, from the epoch's rejection on
    dropped: int | None = None  # a queued verification task just cancelled as useless
    for ev in trace["events"]:
        t, kind = F(ev["t"]), ev["ev"]
        if kind == "task_submit":
            i = ev["id"]
            first[i] = ev["first"]
            ev_last[i] = ev["last"]
            # `_extended` cancels the queued task and resubmits it at once
            sub[i] = sub[dropped] if dropped is not None and ev["kind"] == "verify" else t
            if dropped is not None and ev["kind"] == "verify":
                extended.add(i)
            if ev["kind"] == "verify":
                verify.add(i)
        dropped = None
        if kind == "task_cancel" and ev["id"] not in start and ev["id"] in verify:
            dropped = ev["id"]
        elif kind == "task_cancel" and ev["reason"] == "rejection" and ev["id"] in start:
            if ev["id"] not in ends:  # running: its server is held to the pass's end
                cost = prefill if first[ev["id"]] == 0 else target
                releases.append(start[ev["id"]] + cost)
        elif kind == "task_done":
            ends[ev["id"]] = t
        elif kind == "commit" and ev["accepted"] is False:
            epoch = []
            releases = [x for x in releases if x > t]
        elif kind == "task_start":
            i = ev["id"]
            start[i] = t
            if i in verify:
                before = [ends[j] for j in epoch if j in ends]
                if t != sub[i] and t not in before and t not in releases:
                    yield f"L14: task {i} starts at {t}, submitted at {sub[i]}"
                # an earlier task still running ends after t: the bound holds
                if len(before) == len(epoch) and t > max([sub[i], *before]):
                    yield f"L14: task {i} starts at {t}, later than its bound"
                last = ev_last[i]
                z = min((x for u, x in rejections if u > t), default=n - 1)
                if first[i] >= 1 and last <= z:
                    if i in extended and t > s.work_start[last] - target:
                        yield f"L7: extended task {i} starts {t} > {s.work_start[last] - target}"
                    submitted = i not in extended and t == sub[i]
                    if off_phase is not None and submitted and last in s.draft:
                        off_phase.append((t, first[i], last))
            epoch.append(i)


def lemma_failures(pair: Pair) -> Iterator[str]:
    """Every lemma L1..L14, L16, L17 and the theorem on one instance: a line per failure
    (L15 is false for EXTENDED_SAFE: `l15_is_false_l7_holds`)."""
    assert pair.dsi.trace is not None and pair.si.trace is not None
    d, s = _times(pair.dsi.trace), _times(pair.si.trace)
    n = len(d.commit)
    if d.cancelled_drafts:
        yield f"L1: {d.cancelled_drafts} drafts cancelled"
    yield from pair.violations
    if not pair.same_as_p1:
        yield "L11: the run at P = 2 differs from the run at P = 1"
    for x in range(n):
        prev = d.commit[x - 1] if x else F(0)
        if d.commit[x] != max(prev, d.task_end[x], d.draft[x]):
            yield f"L3 at {x}"
        bound = s.draft.get(x, s.commit[x])  # SI's draft, or its commit at a bonus position
        if d.draft[x] > bound:
            yield f"L4 at {x}: draft {d.draft[x]} > {bound}"
        if d.task_start[x] > s.task_start[x] or d.task_end[x] > s.commit[x]:
            yield f"L5 at {x}: pass {d.task_start[x]}..{d.task_end[x]} vs SI {s.task_start[x]}"
        if d.work_start[x] > s.work_start[x]:
            yield f"L6 at {x}: draft starts {d.work_start[x]} > {s.work_start[x]}"
        if d.commit[x] > s.commit[x]:
            yield f"theorem at {x}: {d.commit[x]} > {s.commit[x]}"
    yield from _first_epoch_failures(pair, d)
    yield from _pause_failures(pair.dsi.trace)
    yield from _start_failures(pair, s)
    for start, first, last in d.task_starts:
        if first >= 1 and last < n:
            # SI's pass start at its bonus position; T before SI's draft start elsewhere
            bound = s.work_start[last] - (pair.tpot if last in s.draft else 0)
            if start > bound:
                yield f"L7: task {first}..{last} starts {start} > {bound}"


class _GapMonitor(_Monitor):
    """Planted: each block after a submitted one starts a position later, so one
    position is scored by no task (L10; the run stalls there, as nothing gives its p)."""

    def _submit_block(self, out: list[Command]) -> None:
        before = len(out)
        super()._submit_block(out)
        if len(out) > before:
            self.s.block_start += 1


class _LongPauseMonitor(_Monitor):
    """Planted: the drafter also pauses for a verification task ending up to 2 D after
    the draft would start (not D): a draft is held back by the pass that scores its own
    position, at P = 1 too (L13)."""

    def _would_be_held(self, pos: int, end: int) -> bool:
        return super()._would_be_held(pos, end + self._draft_cost[1])


class _LateStartMonitor(_Monitor):
    """Planted: a call that takes in a task's end dispatches nothing while drafts remain
    to be made, so a task freed by that end starts only at a later draft's end (L14)."""

    _after_task = False

    def on_events(self, events: Iterable[Event]) -> list[Command]:
        batch = list(events)
        self._after_task = any(isinstance(e, TaskDone) for e in batch)
        return super().on_events(batch)

    def _dispatch(self, out: list[Command]) -> None:
        if not (self._after_task and self.s.chain.n < self.n - 1):
            super()._dispatch(out)


def grid(servers: tuple[int, ...] = (1, 2, 3)) -> Iterator[tuple[RunConfig, tuple[bool, ...]]]:
    for lat in GRID_LATENCIES:
        for k in (1, 2, 3):
            for p in servers:
                for n in range(1, N_MAX + 1):
                    cfg = _cfg(n, k, p, lat, "safe")
                    for pat in itertools.product((False, True), repeat=n):
                        yield cfg, pat


def random_instances(count: int, seed: int) -> Iterator[tuple[RunConfig, tuple[bool, ...]]]:
    """Rational latencies with D0 <= T0, D <= min(T0, T) (D = min(T0, T) a third of
    the time), n <= 30, k <= 6, P <= 4, acceptance 0.3..0.95."""
    rng = random.Random(seed)
    for _ in range(count):
        t0 = F(rng.randint(1, 12), rng.randint(1, 6))
        t = F(rng.randint(1, 12), rng.randint(1, 6))
        d0 = t0 * F(rng.randint(1, 12), 12)
        d = min(t0, t) * (F(1) if rng.random() < 1 / 3 else F(rng.randint(1, 12), 12))
        n = rng.randint(1, 30)
        a = rng.choice((0.3, 0.6, 0.8, 0.95))
        pat = tuple(rng.random() < a for _ in range(n))
        yield _cfg(n, rng.randint(1, 6), rng.randint(1, 4), (t0, t, d0, d), "safe"), pat


def _first_failure(cases: Iterator[tuple[RunConfig, tuple[bool, ...]]]) -> tuple[int, str | None]:
    runs = 0
    for cfg, pat in cases:
        runs += 1
        bad = next(lemma_failures(run_pair(cfg, pat)), None)
        if bad is not None:
            return runs, f"{bad} at n={cfg.max_tokens} k={cfg.k} P={cfg.servers} {pat}"
    return runs, None


@check(theorem="T7", method="exhaustive")
def safe_lemmas_on_grid() -> tuple[int, str]:
    """(b)'s lemmas L1..L14, L16, L17 and tau_x <= tau'_x: every pattern n <= 6, k and P
    in 1..3, nine latency settings (two with T0 < T, D <= T0)."""
    runs, bad = _first_failure(grid())
    assert bad is None, bad
    return runs, f"L1..L14, L16, L17, tau_x <= tau'_x on every pattern n <= {N_MAX}, P = 1, 2, 3"


# L13's second case (a pause released by the pass scoring the paused position, started
# beside the first task): P = 3, T0 > k D + T, T < 2 D; neither the grid nor the seeded
# runs reach it. n = 6, k = 1, (T0, T, D0, D), all accepted: the draft at 3 waits for
# the pass scoring 2..3, started beside the first pass.
OWN_PASS_RELEASE = (_cfg(6, 1, 3, (F(14, 5), F(3, 2), F(1), F(1)), "safe"), (True,) * 6)


@check(theorem="T7", method="random")
def safe_lemmas_on_random_runs() -> tuple[int, str]:
    """The same on 300 seeded random runs (n <= 30, k <= 6, P <= 4), and on an instance
    where L13's pause is released by the pass scoring the paused position."""
    runs, bad = _first_failure(random_instances(300, seed=11))
    assert bad is None, bad
    cfg, pat = OWN_PASS_RELEASE
    pair = run_pair(cfg, pat)
    assert list(lemma_failures(pair)) == []
    assert pair.dsi.trace is not None
    own: list[int] = []
    assert list(_pause_failures(pair.dsi.trace, own)) == [] and own == [3], own
    return (
        runs + 1,
        "L1..L14, L16, L17, tau_x <= tau'_x on 300 random runs (+1: L13's own-pass case)",
    )


# L15 is false for EXTENDED_SAFE (the earlier `safe`, which extends at P >= 3; the
# current `safe` does not, L17): T0 = T = 1, D0 = D = 1/8, k = 2, n = 23, P = 3, all
# accepted. SI's bonus
# positions are 2, 5, .., 20 and 22. The block 6..7 is queued at 1 beside the head pass
# 0..2 and the speculative 3..5, and starts at 5/4, when the head pass ends, extended to
# score 6..10 (the drafter, never paused at T = 8 D, has the drafts up to 9). Later blocks
# follow it off SI's phase: the block 19..20 is done at 21/8, the instant the pass 10..13
# ends, and only the head pass 13..18 runs, so its pass 19..21 starts at once.
L15_COUNTEREXAMPLE = (_cfg(23, 2, 3, (F(1), F(1), F(1, 8), F(1, 8)), "safe"), (True,) * 23)
# The same after a rejection: D = 23/195, k = 2, n = 33, only the draft at 8 rejected. The
# epoch from 9 has SI's bonuses 11, 14, .., 29, 32; the pass 28..30 starts at its
# submission 941/195.
L15_LATER_EPOCH = (
    _cfg(33, 2, 3, (F(1), F(1), F(23, 195), F(23, 195)), "safe"),
    tuple(x != 8 for x in range(33)),
)


@check(theorem="T7", method="counterexample")
def l15_is_false_l7_holds() -> tuple[int, str]:
    """L15 fails for EXTENDED_SAFE (the earlier `safe`) on L15_COUNTEREXAMPLE: a task
    started at its submission, not extended, scores 19..21 and SI drafts 21; and on
    L15_LATER_EPOCH, after a rejection, the same with 28..30. Every lemma in
    `lemma_failures` but L17 (it extends at P = 3) (L7 and L5 at those tasks included)
    and tau_x <= tau'_x hold on both. The current `safe` has no such task there (L16)."""
    want = {
        L15_COUNTEREXAMPLE: ([(F(21, 8), 19, 21)], F(37, 8), F(79, 8)),
        L15_LATER_EPOCH: ([(F(941, 195), 28, 30)], F(1262, 195), F(2651, 195)),
    }
    for (cfg, pat), (tasks, dsi, si) in want.items():
        pair = run_pair(cfg, pat, EXTENDED_SAFE)
        fails = list(lemma_failures(pair))
        assert fails and all(f.startswith("L17") for f in fails), fails
        assert pair.si.trace is not None
        off: list[tuple[F, int, int]] = []
        assert list(_start_failures(pair, _times(pair.si.trace), off)) == []
        assert off == tasks, off
        assert (pair.dsi.latency, pair.si.latency) == (dsi, si)
        now = run_pair(cfg, pat)  # the current safe: no extension, every block SI's cycle
        assert list(lemma_failures(now)) == []
        off = []
        assert list(_start_failures(now, _times(pair.si.trace), off)) == [] and off == []
    return 4, "L15 false for the earlier safe: 19..21 starts at 21/8, SI drafts 21; L7 holds"


@check(theorem="T7", method="exhaustive")
def planted_lemma_breakers_are_caught() -> tuple[int, str]:
    """Controls: `safe` without drafter_pause breaks L1 (a draft held past a rejection)
    and the theorem; `safe` without fresh_blocks breaks L6, L7, L8 and L16; `safe` without
    spare_server breaks L9 at P = 3 and L11 at P = 2; `safe` without extend_on_start
    breaks L12; blocks leaving a gap break L10; a pause waiting for passes ending
    within 2 D breaks L13; no dispatch at task ends breaks L14; the earlier `safe`
    (EXTENDED_SAFE, extension at every P) breaks L17 at P >= 3 (seeded random runs);
    and D > T0 breaks L4 and the theorem (the condition is needed)."""
    no_pause = dataclasses.replace(SAFE, name="planted-no-pause", drafter_pause=False)
    no_fresh = dataclasses.replace(SAFE, name="planted-no-fresh", fresh_blocks=False)
    no_spare = dataclasses.replace(SAFE, name="planted-no-spare", spare_server=False)
    no_ext = dataclasses.replace(SAFE, name="planted-no-extend", extend_on_start=False)
    runs = 0

    def first_caught(want: set[str], servers: tuple[int, ...], **kw: Any) -> set[str]:
        """The lemmas the planted run breaks, over the grid until all of `want` are seen."""
        nonlocal runs
        seen: set[str] = set()
        for cfg, pat in grid(servers=servers):
            runs += 1
            with contextlib.suppress(RuntimeError):  # a planted bug may stall a run
                seen |= {
                    f.split(" ")[0].rstrip(":") for f in lemma_failures(run_pair(cfg, pat, **kw))
                }
            if want <= seen:
                return seen
        raise AssertionError(f"planted {kw}: only {sorted(seen)} caught, want {sorted(want)}")

    caught = first_caught({"L1", "theorem"}, (1,), policy=no_pause)
    # Without fresh blocks a cycle scores k - 1 new drafts: its drafter and passes fall
    # behind SI's (L6, L7), which the proof of L4/L5 after a full acceptance rests on.
    late = first_caught({"L6", "L7", "L8", "L16"}, (1, 2, 3), policy=no_fresh)
    # Without the spare server two speculative tasks run at once at P = 3 (L9), and at
    # P = 2 one starts beside the head task, so P = 2 no longer runs as P = 1 (L11).
    crowded = first_caught({"L9"}, (3,), policy=no_spare)
    two = first_caught({"L11"}, (2,), policy=no_spare)
    # Without extend_on_start the task after the long first pass does not score every
    # draft made during it (L12).
    short = first_caught({"L12"}, (1,), policy=no_ext)
    # Blocks with a gap: a position no task scores (L10), seen before the run stalls
    # (the monitor records it; the run then raises RuntimeError).
    gap: list[str] = []
    for cfg, pat in grid(servers=(1,)):
        runs += 1
        with contextlib.suppress(RuntimeError):
            run_pair(cfg, pat, cls=_GapMonitor)
        gap = [v for v in _Monitor.violations if v.startswith("L10")]
        if gap:
            break
    assert gap, "planted gap: L10 not caught"
    # A pause that waits for passes ending within 2 D: released by the pass scoring the
    # paused position itself, beside no task scoring 0 (L13).
    pause = first_caught({"L13"}, (1,), cls=_LongPauseMonitor)
    # Dispatch skipped at task ends: a task freed by an end starts at a later draft's end.
    late_start = first_caught({"L14"}, (1,), cls=_LateStartMonitor)
    # The earlier safe extends a task at P >= 3 (what the proof there does not cover). The
    # grid (n <= 6) has no such run; the seeded random runs have.
    extends: set[str] = set()
    for cfg, pat in random_instances(300, seed=11):
        if cfg.servers >= 3:
            runs += 1
            extends |= {f.split(":")[0] for f in lemma_failures(run_pair(cfg, pat, EXTENDED_SAFE))}
            if "L17" in extends:
                break
    assert extends == {"L17"}, f"planted extension at P >= 3: {sorted(extends)} caught"
    # D > T0 (so T0 < T): the draft at SI's bonus position cannot be ready when the
    # first pass ends, and DSI commits every position against a draft.
    lat = (F(1, 2), F(1), F(1, 2), F(1))
    pat = (True, True)
    for servers in (1, 2, 3):
        cfg = _cfg(2, 1, servers, lat, "safe")
        fails = list(lemma_failures(run_pair(cfg, pat)))
        assert any(f.startswith("L4") for f in fails), fails
        assert (run_pattern("dsi", pat, cfg).latency, run_pattern("si", pat, cfg).latency) == (
            F(2),
            F(1),
        )
        runs += 1
    return runs, (
        f"no drafter_pause: {sorted(caught)} caught; no fresh blocks: {sorted(late)} caught; "
        f"no spare server: {sorted(crowded)} (P = 3), {sorted(two)} (P = 2) caught; "
        f"no extend_on_start: {sorted(short)} caught; gapped blocks: L10 caught; "
        f"long pause: {sorted(pause)} caught; late start: {sorted(late_start)} caught; "
        f"earlier safe at P >= 3: {sorted(extends)} caught; D > T0: safe 2 > SI 1"
    )
