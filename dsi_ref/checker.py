"""Check any trace against the DSI rules (docs/trace-format.md lists them).

`check_trace` replays the events once, keeping the state a correct engine must
have: which task runs on which server, which drafts are in flight, which tokens
are committed. A malformed trace raises `TraceError` (see `checker_schema`); a
well-formed trace that breaks a rule gives `ok=False` and one message per broken
rule instance, naming the event index, its time and the rule.

Rules whose deadline is "by the end of the instant" (cancellations after a
rejection) are checked when the first event with a later time arrives, because a
correct engine may emit a commit, its cancellations and new work at one time in
any order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from typing import Any

from dsi_ref.checker_schema import (
    CommitEv,
    Done,
    DraftCancel,
    DraftDone,
    DraftStart,
    Event,
    Header,
    TaskCancel,
    TaskDone,
    TaskStart,
    TaskSubmit,
    parse_trace,
)
from dsi_ref.checker_verify import ModelOracle, check_commit_rule
from dsi_ref.models import LanguageModel
from dsi_ref.sampling import SamplingConfig

# Tags that every violation message carries, so a reader (and a test) can tell
# which rule broke. The numbers are those of docs/trace-format.md.
TIME = "rule 2 [time]"
SERVER = "rule 3 [server]"
LIFECYCLE = "rule 3 [lifecycle]"
PREFIX = "rule 4 [prefix]"
CANCEL = "rule 5 [cancel]"
COMMIT = "rule 6 [commit]"
VERIFY = "rule 7 [verify]"
MODEL = "rule 8 [model]"
RULES = (TIME, SERVER, LIFECYCLE, PREFIX, CANCEL, COMMIT, VERIFY, MODEL)

_LIVE = ("queued", "running")


@dataclass
class CheckReport:
    ok: bool
    violations: list[str]
    summary: dict[str, Any]

    def format(self) -> str:
        """A human-readable report: verdict, counts, then each violation on its line."""
        head = "OK" if self.ok else f"FAIL: {len(self.violations)} violation(s)"
        counts = ", ".join(f"{k}={v}" for k, v in self.summary.items() if isinstance(v, int))
        return "\n".join([f"{head} ({counts})", *self.violations])


@dataclass
class _Task:
    sub: TaskSubmit
    status: str = "queued"  # queued -> running -> done | cancelled (queued -> cancelled too)
    server: int | None = None
    end_index: int = -1  # the task_done / task_cancel event


@dataclass
class _Rejection:
    index: int
    t: Fraction
    pos: int
    token: int
    tasks_live: frozenset[int]  # queued or running when the rejection was recorded
    drafts_in_flight: frozenset[int]


@dataclass
class _Instant:
    """Obligations that fall due when the current instant (time) ends."""

    t: Fraction | None = None
    rejections: list[_Rejection] = field(default_factory=list)
    rejection_cancels: list[tuple[int, int]] = field(default_factory=list)  # (index, task)


class _Checker:
    def __init__(self, header: Header, oracle: ModelOracle | None) -> None:
        self.h = header
        self.oracle = oracle
        self.found: list[tuple[int, int, str]] = []  # (event index, arrival, message)
        self.by_rule: dict[str, int] = dict.fromkeys(RULES, 0)
        self.tasks: dict[int, _Task] = {}
        self.live: set[int] = set()  # tasks queued or running
        self.running: dict[int, list[int]] = {}  # server -> tasks running there
        self.drafts: dict[int, str] = {}  # draft id -> "inflight" | "done" | "cancelled"
        self.draft_pos: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        self.contiguous: list[int] = []  # committed tokens at positions 0, 1, ... without a gap
        self.commits = 0
        self.accepted = 0
        self.rejected = 0
        self.max_busy = 0
        self.last_t: Fraction | None = None
        self.done_index: int | None = None
        self.done_t: Fraction | None = None
        self.now = _Instant()

    # ----- reporting ----------------------------------------------------------

    def bad(self, where: int | str, t: Fraction | None, rule: str, msg: str) -> None:
        place = f"event {where}" if isinstance(where, int) else where
        # Sorted by event at the end: end-of-instant checks report earlier events late.
        order = where if isinstance(where, int) else 1 << 62
        self.found.append((order, len(self.found), f"{place} (t={t}): {rule}: {msg}"))
        self.by_rule[rule] += 1

    @property
    def violations(self) -> list[str]:
        return [msg for _, _, msg in sorted(self.found)]

    def prefix(self, n: int) -> list[int | None]:
        """Committed tokens at positions 0..n-1 (None where a position is missing)."""
        if n <= len(self.contiguous):
            return list(self.contiguous[:n])
        return [self.committed.get(i) for i in range(n)]

    # ----- replay -------------------------------------------------------------

    def run(self, events: tuple[Event, ...]) -> None:
        for e in events:
            self.step(e)
        self.close_instant()
        self.finish(events)

    def step(self, e: Event) -> None:
        i, t, ev = e.index, e.t, e.ev
        if t < 0:
            self.bad(i, t, TIME, f"time {t} is negative")
        if self.last_t is not None and t < self.last_t:
            self.bad(i, t, TIME, f"time goes back from {self.last_t} to {t}")
        if self.now.t != t:
            self.close_instant()
            self.now.t = t
        self.last_t = t
        if self.done_index is not None:
            self.bad(i, t, COMMIT, f"event after 'done' (event {self.done_index})")
        if isinstance(ev, DraftStart):
            self.draft_start(i, t, ev)
        elif isinstance(ev, DraftDone):
            self.draft_end(i, t, ev.id, "done", ev.pos)
            if not (0 <= ev.token < self.h.vocab_size):
                self.bad(
                    i, t, LIFECYCLE, f"draft {ev.id} token {ev.token} is outside the vocabulary"
                )
        elif isinstance(ev, DraftCancel):
            self.draft_end(i, t, ev.id, "cancelled", None)
        elif isinstance(ev, TaskSubmit):
            self.task_submit(i, t, ev)
        elif isinstance(ev, TaskStart):
            self.task_start(i, t, ev)
        elif isinstance(ev, TaskDone):
            self.task_end(i, t, ev.id, "done", ev.server)
        elif isinstance(ev, TaskCancel):
            ended = self.task_end(i, t, ev.id, "cancelled", None)
            if ended and ev.reason == "rejection":
                self.now.rejection_cancels.append((i, ev.id))
        elif isinstance(ev, CommitEv):
            self.commit(i, t, ev)
        elif isinstance(ev, Done):
            self.done_index, self.done_t = i, t

    # ----- drafts -------------------------------------------------------------

    def draft_start(self, i: int, t: Fraction, ev: DraftStart) -> None:
        if ev.id in self.drafts:
            self.bad(i, t, LIFECYCLE, f"draft id {ev.id} is started a second time")
            return
        if not (0 <= ev.pos < self.h.max_tokens):
            self.bad(i, t, LIFECYCLE, f"draft {ev.id} position {ev.pos} is outside 0..max_tokens-1")
        self.drafts[ev.id] = "inflight"
        self.draft_pos[ev.id] = ev.pos

    def draft_end(self, i: int, t: Fraction, did: int, how: str, pos: int | None) -> None:
        status = self.drafts.get(did)
        if status is None:
            self.bad(i, t, LIFECYCLE, f"draft {did} {how} but was never started")
        elif status != "inflight":
            self.bad(i, t, LIFECYCLE, f"draft {did} {how} after it was already {status}")
        else:
            self.drafts[did] = how
            if pos is not None and pos != self.draft_pos[did]:
                self.bad(
                    i,
                    t,
                    LIFECYCLE,
                    f"draft {did} done at position {pos}, started at {self.draft_pos[did]}",
                )

    # ----- tasks and servers --------------------------------------------------

    def task_submit(self, i: int, t: Fraction, ev: TaskSubmit) -> None:
        if ev.id in self.tasks:
            self.bad(i, t, LIFECYCLE, f"task id {ev.id} is submitted a second time")
            return
        self.tasks[ev.id] = _Task(ev)
        self.live.add(ev.id)
        if not (0 <= ev.first <= ev.last < self.h.max_tokens):
            self.bad(
                i,
                t,
                LIFECYCLE,
                f"task {ev.id} scores positions {ev.first}..{ev.last}, not "
                f"a range inside 0..{self.h.max_tokens - 1}",
            )
        if len(ev.tokens) < ev.last:
            self.bad(
                i,
                t,
                LIFECYCLE,
                f"task {ev.id} scores position {ev.last} but carries only {len(ev.tokens)} tokens",
            )
        toks = ev.tokens
        if toks and (min(toks) < 0 or max(toks) >= self.h.vocab_size):
            outside = [x for x in toks if not (0 <= x < self.h.vocab_size)]
            self.bad(i, t, LIFECYCLE, f"task {ev.id} tokens {outside} are outside the vocabulary")

    def task_start(self, i: int, t: Fraction, ev: TaskStart) -> None:
        task = self.tasks.get(ev.id)
        if task is None:
            self.bad(i, t, LIFECYCLE, f"task {ev.id} started but was never submitted")
            return
        if task.status != "queued":
            self.bad(i, t, LIFECYCLE, f"task {ev.id} started after it was already {task.status}")
            return
        s = ev.server
        if not (0 <= s < self.h.servers):
            self.bad(
                i, t, SERVER, f"task {ev.id} started on server {s}, not in 0..{self.h.servers - 1}"
            )
        busy = self.running.setdefault(s, [])
        if busy:
            self.bad(
                i, t, SERVER, f"task {ev.id} started on server {s} while task {busy[0]} runs there"
            )
        busy.append(ev.id)
        task.status, task.server = "running", s
        self.max_busy = max(self.max_busy, sum(1 for v in self.running.values() if v))

    def task_end(self, i: int, t: Fraction, tid: int, how: str, server: int | None) -> bool:
        """Finish a live task; False (after noting the violation) if it was not live."""
        task = self.tasks.get(tid)
        if task is None:
            self.bad(i, t, LIFECYCLE, f"task {tid} {how} but was never submitted")
            return False
        if task.status not in _LIVE or (how == "done" and task.status == "queued"):
            state = "never started" if task.status == "queued" else f"already {task.status}"
            self.bad(i, t, LIFECYCLE, f"task {tid} {how} but it was {state}")
            return False
        if server is not None and server != task.server:
            self.bad(i, t, SERVER, f"task {tid} done on server {server}, it ran on {task.server}")
        if task.server is not None:
            self.running[task.server].remove(tid)
        task.status, task.end_index = how, i
        self.live.discard(tid)
        return True

    # ----- commits ------------------------------------------------------------

    def commit(self, i: int, t: Fraction, ev: CommitEv) -> None:
        self.commits += 1
        j = ev.pos
        expected = len(self.contiguous)
        if j in self.committed:
            self.bad(i, t, COMMIT, f"position {j} is committed a second time")
        elif j != expected:
            self.bad(
                i, t, COMMIT, f"commit at position {j} out of order: position {expected} is next"
            )
        in_range = 0 <= j < self.h.max_tokens
        if not in_range:
            self.bad(i, t, COMMIT, f"commit at position {j}, outside 0..{self.h.max_tokens - 1}")
        self.check_task_cited(i, t, ev, in_range)
        for rule_msg in check_commit_rule(self.h, ev):
            self.bad(i, t, VERIFY, rule_msg)
        if self.oracle is not None and in_range:
            for msg in self.oracle.check(self.prefix(j), ev):
                self.bad(i, t, MODEL, msg)
        if j not in self.committed:
            self.committed[j] = ev.token
            while len(self.contiguous) in self.committed:
                self.contiguous.append(self.committed[len(self.contiguous)])
        if ev.source == "verify":
            if ev.accepted:
                self.accepted += 1
            else:
                self.rejected += 1
                inflight = frozenset(d for d, s in self.drafts.items() if s == "inflight")
                live = frozenset(self.live)
                self.now.rejections.append(_Rejection(i, t, j, ev.token, live, inflight))

    def check_task_cited(self, i: int, t: Fraction, ev: CommitEv, in_range: bool) -> None:
        j, tid = ev.pos, ev.task
        if tid is None:
            self.bad(i, t, PREFIX, f"commit at position {j} cites no task")
            return
        task = self.tasks.get(tid)
        if task is None:
            self.bad(i, t, PREFIX, f"commit at position {j} cites task {tid}, never submitted")
            return
        if task.status == "cancelled":
            self.bad(
                i,
                t,
                PREFIX,
                f"commit at position {j} cites task {tid}, cancelled at event {task.end_index}",
            )
        elif task.status != "done":
            self.bad(
                i,
                t,
                PREFIX,
                f"commit at position {j} cites task {tid}, not finished ({task.status})",
            )
        sub = task.sub
        if not (sub.first <= j <= sub.last):
            self.bad(
                i,
                t,
                PREFIX,
                f"commit at position {j} cites task {tid}, which scores only "
                f"{sub.first}..{sub.last}",
            )
        if not in_range:
            return  # a prefix of a position that cannot exist has no meaning (nor a bound)
        want = self.prefix(j)
        got = sub.tokens[:j]
        bad_at = next((d for d in range(j) if d >= len(got) or got[d] != want[d]), None)
        if bad_at is not None:
            has = got[bad_at] if bad_at < len(got) else "nothing"
            self.bad(
                i,
                t,
                PREFIX,
                f"commit at position {j} cites task {tid} whose tokens[:{j}] differ from the "
                f"committed tokens at position {bad_at}: task has {has}, committed "
                f"{want[bad_at]}",
            )

    # ----- end of an instant: cancellations after rejections ------------------

    def close_instant(self) -> None:
        now = self.now
        for r in now.rejections:
            # Live then or submitted since; finishing instead of cancelling is no better.
            for tid in sorted(r.tasks_live | self.live):
                task = self.tasks[tid]
                toks = task.sub.tokens
                if len(toks) > r.pos and toks[r.pos] != r.token and task.status != "cancelled":
                    state = (
                        f"finished (event {task.end_index})"
                        if task.status == "done"
                        else f"still {task.status}"
                    )
                    self.bad(
                        r.index,
                        r.t,
                        CANCEL,
                        f"after the rejection at position {r.pos} (token {r.token}), task "
                        f"{tid} built on token {toks[r.pos]} there was {state}, not cancelled, "
                        f"by the end of t={r.t}",
                    )
            for did in sorted(r.drafts_in_flight):
                status = self.drafts[did]
                if status != "cancelled":
                    self.bad(
                        r.index,
                        r.t,
                        CANCEL,
                        f"draft {did} in flight at the rejection at "
                        f"position {r.pos} was not cancelled by the end of t={r.t} ({status})",
                    )
        if not now.rejections:
            for idx, tid in now.rejection_cancels:
                toks = self.tasks[tid].sub.tokens
                if all(self.committed.get(p, x) == x for p, x in enumerate(toks)):
                    self.bad(
                        idx,
                        now.t,
                        CANCEL,
                        f"task {tid} cancelled for 'rejection' at t={now.t}, "
                        "but nothing was rejected then and its tokens agree with the commits",
                    )
        self.now = _Instant(now.t)

    # ----- end of the trace ---------------------------------------------------

    def finish(self, events: tuple[Event, ...]) -> None:
        end_t = events[-1].t if events else None
        where = f"end of trace after event {len(events) - 1}"
        n = self.h.max_tokens
        have = sum(1 for p in self.committed if 0 <= p < n)
        if have < n:
            # Bounded by the commits seen, whatever max_tokens claims.
            gaps = (p for p in range(n) if p not in self.committed)
            first = list(islice(gaps, 10))
            self.bad(
                where,
                end_t,
                COMMIT,
                f"{n - have} of {n} positions were never committed (first: {first})",
            )
        tokens = self.contiguous[:n]
        if list(self.h.result_tokens) != tokens:
            self.bad(
                "result",
                end_t,
                COMMIT,
                f"result tokens {list(self.h.result_tokens)} differ from the committed {tokens}",
            )
        if self.done_index is None:
            self.bad(where, end_t, COMMIT, "no 'done' event")
        elif self.h.result_latency != self.done_t:
            self.bad(
                "result",
                end_t,
                COMMIT,
                f"result latency {self.h.result_latency} is not the time of 'done' ({self.done_t})",
            )

    def summary(self, n_events: int) -> dict[str, Any]:
        statuses = [task.status for task in self.tasks.values()]
        return {
            "events": n_events,
            "commits": self.commits,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "tasks_submitted": len(self.tasks),
            "tasks_done": statuses.count("done"),
            "tasks_cancelled": statuses.count("cancelled"),
            "drafts_started": len(self.drafts),
            "drafts_cancelled": list(self.drafts.values()).count("cancelled"),
            "max_busy_servers": self.max_busy,
            "violations": len(self.found),
            "violations_by_rule": {r: c for r, c in self.by_rule.items() if c},
        }


def check_trace(
    trace: Mapping[str, Any],
    *,
    target: LanguageModel | None = None,
    drafter: LanguageModel | None = None,
    sampling: SamplingConfig | None = None,
    tol: float = 0.0,
) -> CheckReport:
    """Validate `trace`; raise TraceError if it is malformed, else report violations.

    With `target` (and optionally `drafter`) the recorded p (and q) of every commit
    must also equal the warped model distribution on the committed prefix (rule 8):
    exactly for Fractions, within `tol` per entry for floats. `sampling` defaults
    to greedy or plain sampling at temperature 1, as the header's `greedy` says.
    """
    parsed = parse_trace(trace)
    h = parsed.header
    oracle = None
    if target is not None or drafter is not None:
        oracle = ModelOracle(h, target, drafter, sampling or SamplingConfig(greedy=h.greedy), tol)
    checker = _Checker(h, oracle)
    checker.run(parsed.events)
    violations = checker.violations
    return CheckReport(not violations, violations, checker.summary(len(parsed.events)))
