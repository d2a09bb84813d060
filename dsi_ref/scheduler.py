"""DSI's orchestration as a pure state machine: events in, commands out.

No clock, no threads, no I/O. A driver (the virtual clock in `dsi_ref.virtual`,
real workers in `gpu_runner`) executes the commands and feeds back the events.

The rules, in the order they act:

1. The drafter never waits: it drafts the speculative chain (committed tokens
   followed by unverified drafts) one position at a time up to the last position.
2. Every k drafts a *verification task* is submitted for the block just
   drafted: one target pass over committed + drafts scoring the block's
   positions and the one after it. The block is cut short at position n - 2:
   scoring the last position n - 1 needs drafts only up to n - 2, and the draft
   at n - 1 is made while that pass runs.
3. A *target-only task* on the committed prefix is submitted whenever the prefix
   grows (or at the start) and no finished task has already given the next
   position's p and no live task will give it as quickly as a target-only task
   (a pass that scores position 0 is a prefill and counts as slower). This chain
   is what makes DSI never slower than non-SI.
4. When a task finishes, its p's are stored and positions are verified in order
   as long as both p and the draft at the next position are in hand. Every
   position's token is the speculative-sampling rule applied to (p, q, draft)
   under keys (position, purpose), so the committed tokens do not depend on
   which task supplied p or when (schedule independence).
5. On a rejection the corrected token is committed and every live task and the
   in-flight draft are cancelled (each depends on the rejected draft), stored
   p's beyond it are dropped, and drafting restarts after the new token.
6. Tasks wait in a queue when all P servers are busy. Queue discipline: the task
   whose first still-needed position is smallest goes first (ties: the cheaper
   pass, i.e. not a prefill; then the one that covers more positions; then
   submission order), because only the lowest
   uncommitted position can unblock a commit. Tasks that can no longer yield a
   needed position are cancelled, running or queued.

Events for unknown or cancelled ids (stale results from real workers) are
ignored: a result counts only if its task is live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Generic, TypeVar

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig, InvalidDistribution, show
from dsi_ref.result import Counters
from dsi_ref.verify import VerifyRule

# A distribution in whatever form the injected rule reads (a tuple in dsi_ref, a
# device tensor in gpu_runner): the scheduler only stores and passes it on.
D = TypeVar("D")


@dataclass(frozen=True)
class StartDraft:
    draft_id: int
    position: int
    tokens: tuple[int, ...]  # the chain the draft conditions on (length == position)


@dataclass(frozen=True)
class CancelDraft:
    draft_id: int


@dataclass(frozen=True)
class StartTask:
    task_id: int
    server: int
    kind: str  # "verify" or "target"
    tokens: tuple[int, ...]  # the target conditions on tokens[:j] for each scored j
    first: int
    last: int


@dataclass(frozen=True)
class QueueTask:
    task_id: int
    kind: str
    tokens: tuple[int, ...]
    first: int
    last: int


@dataclass(frozen=True)
class CancelTask:
    task_id: int
    server: int | None  # None if it was still queued
    reason: str  # "rejection" or "useless"


@dataclass(frozen=True)
class Commit(Generic[D]):
    position: int
    token: int
    draft: int
    accepted: bool
    task_id: int  # the task whose p verified this position
    p: D
    q: D


@dataclass(frozen=True)
class Finished:
    tokens: tuple[int, ...]


Command = StartDraft | CancelDraft | StartTask | QueueTask | CancelTask | Commit[Any] | Finished


@dataclass
class _Task:
    task_id: int
    kind: str
    tokens: tuple[int, ...]
    first: int
    last: int
    server: int | None = None


@dataclass
class _State(Generic[D]):
    committed: list[int] = field(default_factory=list)
    drafts: list[tuple[int, D]] = field(default_factory=list)  # chain beyond committed
    chain: list[int] = field(default_factory=list)  # committed + draft tokens, kept in step
    p_avail: dict[int, tuple[D, int]] = field(default_factory=dict)  # pos -> (p, task)
    draft_inflight: tuple[int, int] | None = None  # (draft_id, position)
    block_start: int = 0
    tasks: dict[int, _Task] = field(default_factory=dict)  # live: running or queued
    next_id: int = 0
    finished: bool = False


class DSIScheduler(Generic[D]):
    """The DSI state machine for `max_tokens` tokens, lookahead k and P target servers.

    Distributions (type D) are opaque: p and q go to the injected `verifier`
    unread, so the same machine runs tuples (dsi_ref) and device tensors (gpu_runner).

    `target_ttft` and `target_tpot` are used only to compare latency classes in
    rule 3; the scheduler never reads a clock.
    """

    def __init__(
        self,
        max_tokens: int,
        k: int,
        servers: int,
        verifier: VerifyRule[D],
        target_ttft: Fraction,
        target_tpot: Fraction,
    ) -> None:
        for value, what in ((max_tokens, "max_tokens"), (k, "lookahead k"), (servers, "servers P")):
            if type(value) is not int or value < 1:
                raise InvalidConfig(f"{what} must be an int >= 1, got {show(value)}")
        self.n = max_tokens
        self.k = k
        self.servers: list[int | None] = [None] * servers
        self.verifier = verifier
        self.ttft = target_ttft
        self.tpot = target_tpot
        # Rule 3 and the queue compare pass costs; an int with the order of (TTFT vs TPOT)
        # stands in for the prefill's cost (a decode pass ranks 0), so no Fraction is compared.
        self._prefill_rank = (target_ttft > target_tpot) - (target_ttft < target_tpot)
        self.s: _State[D] = _State()
        self.queue: list[int] = []
        self.counters = Counters()
        self._waited: set[int] = set()

    # ----- public interface -------------------------------------------------

    @classmethod
    def from_config(cls, cfg: RunConfig, verifier: VerifyRule[D]) -> DSIScheduler[D]:
        """The scheduler of a run: its size, lookahead, servers and pass costs."""
        lat = cfg.target_latency
        return cls(cfg.max_tokens, cfg.k, cfg.servers, verifier, lat.ttft, lat.tpot)

    @property
    def committed(self) -> tuple[int, ...]:
        return tuple(self.s.committed)

    @property
    def finished(self) -> bool:
        return self.s.finished

    def busy_servers(self) -> dict[int, int]:
        return {i: t for i, t in enumerate(self.servers) if t is not None}

    def live_tasks(self) -> dict[int, tuple[str, int, int, int | None]]:
        """task_id -> (kind, first, last, server or None if queued)."""
        return {i: (t.kind, t.first, t.last, t.server) for i, t in self.s.tasks.items()}

    def start(self) -> list[Command]:
        out: list[Command] = []
        self._draft_next(out)
        self._progress(out)
        return out

    def on_draft_done(self, draft_id: int, token: int, q: D) -> list[Command]:
        s = self.s
        if s.finished or s.draft_inflight is None or s.draft_inflight[0] != draft_id:
            return []  # stale: this draft was cancelled
        pos = s.draft_inflight[1]
        s.draft_inflight = None
        s.drafts.append((token, q))
        s.chain.append(token)  # the chain now ends at pos: len(s.chain) == pos + 1
        out: list[Command] = []
        # A block's pass scores its drafts' positions and the one after; the last
        # position needs drafts only up to n - 2, so the draft at n - 1 is verified
        # by that pass while the drafter makes it in parallel (as SI's bonus would).
        if pos <= self.n - 2 and (pos - s.block_start + 1 == self.k or pos == self.n - 2):
            first = max(s.block_start, len(s.committed))
            self._submit("verify", tuple(s.chain), first, pos + 1, out)
            s.block_start = pos + 1
        self._draft_next(out)
        self._progress(out)
        return out

    def on_task_done(self, task_id: int, dists: list[D]) -> list[Command]:
        s = self.s
        task = s.tasks.get(task_id)
        if s.finished or task is None or task.server is None:
            return []  # stale: cancelled, unknown, or never started
        if len(dists) != task.last - task.first + 1:
            raise InvalidDistribution(
                f"task {task_id} scored positions {task.first}..{task.last} but "
                f"{len(dists)} distributions came back"
            )
        del s.tasks[task_id]
        self.servers[task.server] = None
        for j, p in zip(range(task.first, task.last + 1), dists, strict=True):
            if j >= len(s.committed) and j not in s.p_avail:
                s.p_avail[j] = (p, task_id)
        out: list[Command] = []
        self._progress(out)
        return out

    # ----- rules ------------------------------------------------------------

    def _new_id(self) -> int:
        self.s.next_id += 1
        return self.s.next_id - 1

    def _draft_next(self, out: list[Command]) -> None:
        s = self.s
        pos = len(s.chain)
        if s.draft_inflight is None and pos < self.n:
            did = self._new_id()
            s.draft_inflight = (did, pos)
            self.counters.drafter_forwards += 1
            out.append(StartDraft(did, pos, tuple(s.chain)))

    def _submit(
        self, kind: str, tokens: tuple[int, ...], first: int, last: int, out: list[Command]
    ) -> None:
        tid = self._new_id()
        self.s.tasks[tid] = _Task(tid, kind, tokens, first, last)
        if kind == "target":
            self.counters.target_only_tasks += 1
        self.queue.append(tid)
        out.append(QueueTask(tid, kind, tokens, first, last))

    def _rank(self, first: int) -> int:
        """The cost of a pass whose first scored position is `first`, as an ordered int."""
        return self._prefill_rank if first == 0 else 0

    def _covered(self, pos: int, exclude: int | None = None) -> bool:
        """Will a live task yield p at `pos` no later than a target-only task would?"""
        rank = self._rank(pos)
        for t in self.s.tasks.values():
            if t.task_id != exclude and t.first <= pos <= t.last and self._rank(t.first) <= rank:
                return True
        return False

    def _progress(self, out: list[Command]) -> None:
        self._commit_ready(out)
        s = self.s
        if len(s.committed) >= self.n:
            self._finish(out)
            return
        self._drop_useless(out)
        c = len(s.committed)
        if c not in s.p_avail and not self._covered(c):
            self._submit("target", tuple(s.committed), c, c, out)
        self._dispatch(out)

    def _commit_ready(self, out: list[Command]) -> None:
        s = self.s
        while len(s.committed) < self.n:
            c = len(s.committed)
            if c not in s.p_avail or not s.drafts:
                return
            p, tid = s.p_avail.pop(c)
            draft, q = s.drafts[0]
            token, ok = self.verifier.verify(c, p, q, draft)
            s.committed.append(token)
            out.append(Commit(c, token, draft, ok, tid, p, q))
            if ok:
                self.counters.drafts_accepted += 1
                s.drafts.pop(0)  # the chain is unchanged: its token at c is now committed
                continue
            self.counters.drafts_rejected += 1
            self._reject(out)

    def _reject(self, out: list[Command]) -> None:
        """The last committed token replaced a draft: drop everything built on it."""
        s = self.s
        self.counters.drafts_wasted += len(s.drafts)
        s.drafts.clear()
        s.chain = list(s.committed)
        s.p_avail.clear()
        for tid in list(s.tasks):
            self._cancel(tid, "rejection", out)
        if s.draft_inflight is not None:
            out.append(CancelDraft(s.draft_inflight[0]))
            self.counters.drafts_wasted += 1
            s.draft_inflight = None
        s.block_start = len(s.committed)
        self._draft_next(out)

    def _cancel(self, tid: int, reason: str, out: list[Command]) -> None:
        t = self.s.tasks.pop(tid)
        if t.server is None:
            self.queue.remove(tid)
        else:
            self.servers[t.server] = None
        self.counters.tasks_cancelled += 1
        out.append(CancelTask(tid, t.server, reason))

    def _drop_useless(self, out: list[Command]) -> None:
        s = self.s
        c = len(s.committed)
        for tid, t in list(s.tasks.items()):
            if t.last < c or (
                t.kind == "target"
                and t.server is None
                and (t.first in s.p_avail or self._covered(t.first, exclude=tid))
            ):
                self._cancel(tid, "useless", out)

    def _dispatch(self, out: list[Command]) -> None:
        c = len(self.s.committed)
        while self.queue and None in self.servers:
            tid = min(
                self.queue,
                key=lambda i: (
                    max(self.s.tasks[i].first, c),
                    self._rank(self.s.tasks[i].first),
                    -self.s.tasks[i].last,
                    i,
                ),
            )
            self.queue.remove(tid)
            task = self.s.tasks[tid]
            server = self.servers.index(None)
            self.servers[server] = tid
            task.server = server
            self.counters.target_forwards += 1
            out.append(StartTask(tid, server, task.kind, task.tokens, task.first, task.last))
        for tid in self.queue:
            if tid not in self._waited:
                self._waited.add(tid)
                self.counters.tasks_queued += 1

    def _finish(self, out: list[Command]) -> None:
        s = self.s
        for tid in list(s.tasks):
            self._cancel(tid, "useless", out)
        if s.draft_inflight is not None:
            out.append(CancelDraft(s.draft_inflight[0]))
            self.counters.drafts_wasted += 1
            s.draft_inflight = None
        self.counters.drafts_wasted += len(s.drafts)
        s.drafts.clear()
        s.chain = list(s.committed)
        s.finished = True
        out.append(Finished(tuple(s.committed)))
