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

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
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
from dsi_ref.errors import InvalidConfig, show
from dsi_ref.models import LanguageModel
from dsi_ref.sampling import SamplingConfig
from dsi_ref.trace import DEFAULT_TOL, common_prefix

# Tags that every violation message carries, so a reader (and a test) can tell
# which rule broke. The numbers are those of docs/trace-format.md.
TIME = "rule 2 [time]"
SERVER = "rule 3 [server]"
LIFECYCLE = "rule 3 [lifecycle]"
PREFIX = "rule 4 [prefix]"
DRAFT = "rule 4 [draft]"
CANCEL = "rule 5 [cancel]"
COMMIT = "rule 6 [commit]"
VERIFY = "rule 7 [verify]"
MODEL = "rule 8 [model]"
RULES = (TIME, SERVER, LIFECYCLE, PREFIX, DRAFT, CANCEL, COMMIT, VERIFY, MODEL)

# The speculative algorithms of dsi_ref: their commits verify drafts (SI's only
# draft-free commit is a bonus token, so an SI run of 2+ tokens verifies at least one).
_SPECULATIVE = {"si": 2, "dsi": 1}  # algorithm -> tokens from which a verify commit is due

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
    """A submitted task. Its prefix: the chain's first `base` tokens as of chain version
    `version`, then `tail` (so each token is stored once, whatever the trace version)."""

    sub: TaskSubmit
    version: int
    base: int
    tail: tuple[int, ...]
    status: str = "queued"  # queued -> running -> done | cancelled (queued -> cancelled too)
    server: int | None = None
    end_index: int = -1  # the task_done / task_cancel event

    @property
    def length(self) -> int:
        return self.base + len(self.tail)


class _ChainIndex:
    """The chain of docs/trace-format.md with its whole history, for prefix queries.

    The same updates as `dsi_ref.trace.Chain`; every token written gets a node id
    (increasing), and each position keeps the ids written there. Since a write at
    position i removes the chain beyond i, the token at position i of the chain as it
    was at version v (the number of nodes then) is the last one written there before v.
    """

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.ids: list[int] = []  # node id of each position of the current chain
        self.committed = 0
        self.hist_ids: list[list[int]] = []  # position -> node ids written there
        self.hist_toks: list[list[int]] = []
        self.node_event: list[int] = []  # node id -> the event that wrote it

    @property
    def version(self) -> int:
        return len(self.node_event)

    def write(self, i: int, token: int, event: int) -> None:
        nid = len(self.node_event)
        self.node_event.append(event)
        del self.tokens[i:]
        del self.ids[i:]
        self.tokens.append(token)
        self.ids.append(nid)
        if i == len(self.hist_ids):
            self.hist_ids.append([])
            self.hist_toks.append([])
        self.hist_ids[i].append(nid)
        self.hist_toks[i].append(token)

    def draft_done(self, i: int, token: int, event: int) -> None:
        if self.committed <= i <= len(self.tokens):
            self.write(i, token, event)

    def commit(self, pos: int, token: int, event: int) -> bool:
        """Apply an in-order commit; False if the commit is out of order (ignored)."""
        if pos != self.committed or pos > len(self.tokens):
            return False
        if pos == len(self.tokens) or self.tokens[pos] != token:
            self.write(pos, token, event)
        self.committed += 1
        return True

    def node_at(self, i: int, version: int) -> tuple[int, int]:
        """(node id, token) at position i of the chain as it was at `version`."""
        ids = self.hist_ids[i]
        k = bisect_left(ids, version) - 1
        return ids[k], self.hist_toks[i][k]


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
    off_chain: list[tuple[int, int]] = field(default_factory=list)  # (index, task)


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
        self.inflight: set[int] = set()  # drafts in flight
        self.chain = _ChainIndex()
        self.agree = 0  # the chain's committed tokens equal `contiguous` up to here
        self.verify_commits = 0
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
            if self.draft_end(i, t, ev.id, "done", ev.pos):
                self.draft_lands(i, t, ev.id, ev.token)
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
        if len(self.inflight) >= self.h.drafters:
            others = sorted(self.inflight)[:5]
            self.bad(
                i,
                t,
                SERVER,
                f"draft {ev.id} started while draft(s) {others} are in flight "
                f"(the drafter runs {self.h.drafters} at once: header 'drafters')",
            )
        self.drafts[ev.id] = "inflight"
        self.draft_pos[ev.id] = ev.pos
        self.inflight.add(ev.id)

    def draft_end(self, i: int, t: Fraction, did: int, how: str, pos: int | None) -> bool:
        """End a draft in flight; False (after noting the violation) if it was not in flight."""
        status = self.drafts.get(did)
        if status is None:
            self.bad(i, t, LIFECYCLE, f"draft {did} {how} but was never started")
            return False
        if status != "inflight":
            self.bad(i, t, LIFECYCLE, f"draft {did} {how} after it was already {status}")
            return False
        self.drafts[did] = how
        self.inflight.discard(did)
        if pos is not None and pos != self.draft_pos[did]:
            self.bad(
                i,
                t,
                LIFECYCLE,
                f"draft {did} done at position {pos}, started at {self.draft_pos[did]}",
            )
        return True

    def draft_lands(self, i: int, t: Fraction, did: int, token: int) -> None:
        """A finished draft extends the chain: its prefix is committed or drafted tokens."""
        chain, pos = self.chain, self.draft_pos[did]
        if chain.committed <= pos <= len(chain.tokens):
            chain.draft_done(pos, token, i)
            return
        where = "is already committed" if pos < chain.committed else "has no prefix"
        self.bad(
            i,
            t,
            LIFECYCLE,
            f"draft {did} at position {pos} does not extend the chain: position {pos} "
            f"{where} ({chain.committed} committed, {len(chain.tokens)} on the chain)",
        )

    # ----- tasks and servers --------------------------------------------------

    def task_submit(self, i: int, t: Fraction, ev: TaskSubmit) -> None:
        if ev.id in self.tasks:
            self.bad(i, t, LIFECYCLE, f"task id {ev.id} is submitted a second time")
            return
        have = len(self.chain.tokens)
        if self.h.version == 1:  # the whole prefix is listed: store what the chain implies once
            base = common_prefix(ev.tokens, self.chain.tokens)
            tail = ev.tokens[base:]
        elif ev.chain <= have:
            base, tail = ev.chain, ev.tokens
        else:
            self.bad(
                i,
                t,
                LIFECYCLE,
                f"task {ev.id} takes chain = {ev.chain} tokens of the chain, which has {have}",
            )
            base, tail = have, (-1,) * (ev.chain - have) + ev.tokens  # -1: no token at all
        task = _Task(ev, self.chain.version, base, tail)
        self.tasks[ev.id] = task
        self.live.add(ev.id)
        if tail:  # tokens not on the chain (yet): they must be by the end of the instant
            self.now.off_chain.append((i, ev.id))
        if not (0 <= ev.first <= ev.last < self.h.max_tokens):
            self.bad(
                i,
                t,
                LIFECYCLE,
                f"task {ev.id} scores positions {ev.first}..{ev.last}, not "
                f"a range inside 0..{self.h.max_tokens - 1}",
            )
        if task.length < ev.last:
            self.bad(
                i,
                t,
                LIFECYCLE,
                f"task {ev.id} scores position {ev.last} but carries only {task.length} tokens",
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
        if ev.source == "verify":
            self.verify_commits += 1
            self.check_draft_verified(i, t, ev)
        chain = self.chain
        chain.commit(j, ev.token, i)
        for rule_msg in check_commit_rule(self.h, ev):
            self.bad(i, t, VERIFY, rule_msg)
        # Out of order (j past the committed prefix): no model prefix; rule 6 says so.
        if self.oracle is not None and in_range and j <= len(self.contiguous):
            for msg in self.oracle.check(self.contiguous[:j], ev):
                self.bad(i, t, MODEL, msg)
        if j not in self.committed:
            self.committed[j] = ev.token
            while len(self.contiguous) in self.committed:
                self.contiguous.append(self.committed[len(self.contiguous)])
        top = min(chain.committed, len(self.contiguous))
        while self.agree < top and chain.tokens[self.agree] == self.contiguous[self.agree]:
            self.agree += 1
        if ev.source == "verify":
            if ev.accepted:
                self.accepted += 1
            else:
                self.rejected += 1
                inflight = frozenset(self.inflight)  # not a scan of every draft: linear time
                live = frozenset(self.live)
                self.now.rejections.append(_Rejection(i, t, j, ev.token, live, inflight))

    def check_draft_verified(self, i: int, t: Fraction, ev: CommitEv) -> None:
        """Rule 4 [draft]: the next in-order commit verifies the draft on the chain there."""
        chain, j = self.chain, ev.pos
        if j != chain.committed:
            return  # out of order: rule 6 says so
        if j >= len(chain.tokens):
            self.bad(
                i,
                t,
                DRAFT,
                f"commit at position {j} verifies draft {ev.draft}, but no draft done at "
                f"position {j} extends the committed tokens",
            )
        elif chain.tokens[j] != ev.draft:
            self.bad(
                i,
                t,
                DRAFT,
                f"commit at position {j} verifies draft {ev.draft}, but the draft done at "
                f"position {j} (event {chain.node_event[chain.ids[j]]}) is token "
                f"{chain.tokens[j]}",
            )

    def task_token(self, task: _Task, i: int) -> int:
        """Token i of the task's prefix (i < task.length); -1 where the trace gave none."""
        if i < task.base:
            return self.chain.node_at(i, task.version)[1]
        return task.tail[i - task.base]

    def first_difference(self, task: _Task, j: int, want: Sequence[int]) -> int | None:
        """The lowest d < j where the task's prefix differs from want[d] or has no token."""
        m = min(j, task.base)
        chain = self.chain
        lowest = None
        for d in range(m - 1, -1, -1):
            nid, tok = chain.node_at(d, task.version)
            if d < self.agree and chain.ids[d] == nid:
                break  # the very node committed there: positions 0..d agree
            if tok != want[d]:
                lowest = d
        if lowest is not None:
            return lowest
        for d in range(m, min(j, task.length)):
            if task.tail[d - task.base] != want[d]:
                return d
        return task.length if task.length < j else None

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
        n = len(self.contiguous)
        if j <= n:
            bad_at = self.first_difference(task, j, self.contiguous)
        else:  # out of order: position n is not committed, so no prefix of length j matches
            bad_at = self.first_difference(task, n, self.contiguous)
            bad_at = n if bad_at is None else bad_at
        if bad_at is not None:
            tok = self.task_token(task, bad_at) if bad_at < task.length else -1
            has = "nothing" if tok < 0 else tok
            self.bad(
                i,
                t,
                PREFIX,
                f"commit at position {j} cites task {tid} whose tokens[:{j}] differ from the "
                f"committed tokens at position {bad_at}: task has {has}, committed "
                f"{self.contiguous[bad_at] if bad_at < n else 'nothing'}",
            )

    # ----- end of an instant: cancellations after rejections ------------------

    def close_instant(self) -> None:
        now = self.now
        for r in now.rejections:
            # Live then or submitted since; finishing instead of cancelling is no better.
            for tid in sorted(r.tasks_live | self.live):
                task = self.tasks[tid]
                if task.length <= r.pos or task.status == "cancelled":
                    continue
                tok = self.task_token(task, r.pos)
                if tok != r.token:
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
                        f"{tid} built on token {tok} there was {state}, not cancelled, "
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
                task = self.tasks[tid]
                n = min(task.length, len(self.contiguous))
                agrees = self.first_difference(task, n, self.contiguous) is None
                if agrees and len(self.committed) > len(self.contiguous):  # commits past a gap
                    agrees = all(
                        self.task_token(task, p) == x
                        for p, x in self.committed.items()
                        if len(self.contiguous) <= p < task.length
                    )
                if agrees:
                    self.bad(
                        idx,
                        now.t,
                        CANCEL,
                        f"task {tid} cancelled for 'rejection' at t={now.t}, "
                        "but nothing was rejected then and its tokens agree with the commits",
                    )
        for idx, tid in now.off_chain:
            self.check_on_chain(idx, now.t, tid)
        self.now = _Instant(now.t)

    def check_on_chain(self, i: int, t: Fraction | None, tid: int) -> None:
        """Rule 4 [prefix]: a task's prefix is made of tokens the trace holds (committed or
        drafted) by the end of the instant it was submitted in, unless it was cancelled."""
        task = self.tasks[tid]
        if task.status == "cancelled":
            return
        chain = self.chain.tokens
        for d in range(task.base, task.length):
            tok = task.tail[d - task.base]
            if d >= len(chain) or chain[d] != tok:
                there = f"the chain has {chain[d]}" if d < len(chain) else "nothing"
                self.bad(
                    i,
                    t,
                    PREFIX,
                    f"task {tid} is submitted on token {'(none)' if tok < 0 else tok} at "
                    f"position {d}, but by the end of t={t} nothing committed or drafted it "
                    f"({there} there)",
                )
                return

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
        need = _SPECULATIVE.get(self.h.algorithm)
        if need is not None and n >= need and self.verify_commits == 0:
            self.bad(
                where,
                end_t,
                DRAFT,
                f"algorithm {self.h.algorithm!r} verifies drafts, but no commit verifies one",
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


def check_tolerance(tol: object) -> float:
    """`tol` as a float if it is a finite number >= 0, else InvalidConfig naming it."""
    value = math.nan
    if isinstance(tol, (int, float, Fraction)) and not isinstance(tol, bool):
        try:
            value = float(tol)
        except OverflowError:
            value = math.inf
    if not (math.isfinite(value) and value >= 0):
        raise InvalidConfig(f"tol must be a finite number >= 0, got {show(tol)}")
    return value


def check_trace(
    trace: Mapping[str, Any],
    *,
    target: LanguageModel | None = None,
    drafter: LanguageModel | None = None,
    sampling: SamplingConfig | None = None,
    tol: float = DEFAULT_TOL,
) -> CheckReport:
    """Validate `trace`; raise TraceError if it is malformed, else report violations.

    With `target` (and optionally `drafter`) the recorded p (and q) of every commit
    must also equal the warped model distribution on the committed prefix (rule 8):
    exactly for Fractions, within `tol` per entry for floats (DEFAULT_TOL: rounding
    differences between Python versions pass, see docs/trace-format.md). `tol` must
    be a finite number >= 0 (InvalidConfig otherwise: NaN would switch rule 8 off).
    `sampling` defaults to greedy or plain sampling at temperature 1, as the
    header's `greedy` says.
    """
    check_tolerance(tol)
    parsed = parse_trace(trace)
    h = parsed.header
    oracle = None
    if target is not None or drafter is not None:
        oracle = ModelOracle(h, target, drafter, sampling or SamplingConfig(greedy=h.greedy), tol)
    checker = _Checker(h, oracle)
    checker.run(parsed.events)
    violations = checker.violations
    return CheckReport(not violations, violations, checker.summary(len(parsed.events)))
