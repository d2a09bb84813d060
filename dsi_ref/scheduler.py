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
   at n - 1 is made while that pass runs. It is submitted after the commits of
   that instant and skips drafts already committed (a block committed whole
   needs no pass: rule 3 covers the next position).
3. A *target-only task* on the committed prefix is submitted whenever the prefix
   grows (or at the start) and no finished task has already given the next
   position's p and no live task will give it as quickly as a target-only task
   (pass costs are compared: a pass that scores position 0 is a prefill, and with
   a per-position cost a pass scoring more positions is slower). This chain is
   what makes DSI never slower than non-SI.
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
   pass; then the one that covers more positions; then
   submission order), because only the lowest
   uncommitted position can unblock a commit. Tasks that can no longer yield a
   needed position are cancelled, running or queued.

Events for unknown or cancelled ids (stale results from real workers) are
ignored: a result counts only if its task is live.

Simultaneous events. Events that happen at the same instant form one *batch*:
`on_events(batch)` first takes in every event of the batch (stores the draft, the
p's, frees servers; nothing commits and nothing is dispatched), then commits,
cancels and dispatches once, as if the events had arrived together. The result does
not depend on the order of the events in the batch: they are taken in a canonical
order (drafter events, then tasks by id, then servers by index), and taking one in
changes nothing the others read. A lone event is a batch of one:
`on_draft_done`, `on_task_done`, `on_server_free` and `on_drafter_free` are
`on_events([event])`, for real-time drivers, where two events never share an instant.
The virtual clock (dsi_ref.virtual) hands over every event due at one time as one
batch. Feeding simultaneous events one by one is allowed but is a different schedule:
the first one's commits and dispatches happen before the others are known.

Preemption (the driver's contract). With `preemptive=True` (the paper's model) a
cancelled pass stops at once: CancelTask frees its server and CancelDraft frees the
drafter in the same instant. With `preemptive=False` (a GPU forward pass cannot be
interrupted) a cancelled pass that was running goes on until it would have ended:
CancelTask(held=True) means the server stays busy, and the scheduler dispatches
nothing onto it until the driver calls `on_server_free(server)` (event ServerFree)
when that pass ends; CancelDraft(held=True) means the drafter stays busy, and the
next draft starts only when the driver calls `on_drafter_free()` (event
DrafterFree) at the end of the cancelled draft's pass. The cancelled pass's result
is never used (delivering it is a stale event, ignored). A queued task that is
cancelled holds nothing. With `cancel_layers=L` as well (layer-preemptive hardware:
each pass is L equal layers and checks for cancellation after each) a cancelled pass
stops at its first layer boundary at or after the cancellation (`layer_stop`; the end
of its first layer at the earliest): at once if that is now (held=False), else held
until then. L = 1 is the non-preemptive contract; layers small enough that every
instant of the run is a boundary give the preemptive one.

Policies (dsi_ref.policies). The rules leave choices open: when the drafter pauses,
whether a task a rejection could cancel may take the last free server, whether a
queued verification task scores every draft ready when it starts, and k itself.
A `Policy` makes them, from the past alone. Some choices need time: the scheduler
keeps a *predicted clock* from the pass costs it is given (it knows when it started
each pass and what the pass costs, so it knows when the event that ends it is due).
On the virtual clock the prediction is exact; a real driver only makes the policy's
timing guesses approximate, never the tokens.

Chains. StartDraft, QueueTask and StartTask carry their chain as an O(1)
`dsi_ref.chain.ChainView` (a `Sequence[int]`), never a copy: the scheduler only
appends to a chain and starts a new one (`TokenChain.fork`) on a rejection, so a
view never changes. Readers that keep tokens past the command may keep the view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Generic, TypeVar

from dsi_ref.chain import ChainView, TokenChain
from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig, InvalidDistribution, show
from dsi_ref.latency import Latency
from dsi_ref.policies import PAPER, Policy, best_k, check_confidence, get_policy, low_confidence
from dsi_ref.result import Counters
from dsi_ref.verify import VerifyRule

# A distribution in whatever form the injected rule reads (a tuple in dsi_ref, a
# device tensor in gpu_runner): the scheduler only stores and passes it on.
D = TypeVar("D")


@dataclass(frozen=True)
class StartDraft:
    draft_id: int
    position: int
    tokens: Sequence[int]  # the chain the draft conditions on (length == position); a view


@dataclass(frozen=True)
class CancelDraft:
    draft_id: int
    held: bool = False  # True: the pass goes on; call on_drafter_free() when it ends


@dataclass(frozen=True)
class StartTask:
    task_id: int
    server: int
    kind: str  # "verify" or "target"
    tokens: Sequence[int]  # the target conditions on tokens[:j] for each scored j; a view
    first: int
    last: int


@dataclass(frozen=True)
class QueueTask:
    task_id: int
    kind: str
    tokens: Sequence[int]
    first: int
    last: int


@dataclass(frozen=True)
class CancelTask:
    task_id: int
    server: int | None  # None if it was still queued
    reason: str  # "rejection" or "useless"
    held: bool = False  # True: the pass goes on; call on_server_free(server) when it ends


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


# ----- events (inputs) ------------------------------------------------------


@dataclass(frozen=True)
class DraftDone(Generic[D]):
    draft_id: int
    token: int
    q: D


@dataclass(frozen=True)
class TaskDone(Generic[D]):
    task_id: int
    dists: Sequence[D]  # p at first..last


@dataclass(frozen=True)
class ServerFree:
    server: int  # the pass of a task cancelled with held=True has ended


@dataclass(frozen=True)
class DrafterFree:
    """The pass of a draft cancelled with held=True has ended."""


Event = DraftDone[Any] | TaskDone[Any] | ServerFree | DrafterFree

_HELD = -1  # in DSIScheduler.servers: busy with a cancelled pass (non-preemptive)


def layer_stop(start: int, end: int, now: int, layers: int) -> int:
    """When a pass running from `start` to `end` (ticks), cancelled at `now`, stops if it
    is `layers` equal layers and checks after each: the first layer boundary at or after
    now, after its first layer at the earliest (a zero-cost pass: its end)."""
    cost = end - start
    if cost <= 0:
        return end
    done = -(-(now - start) * layers // cost)  # layers begun by now, rounded up
    return start + max(1, done) * cost // layers


def _event_key(ev: Event) -> tuple[int, int]:
    """The canonical order in which a batch is taken in."""
    if isinstance(ev, DraftDone):
        return (0, ev.draft_id)
    if isinstance(ev, DrafterFree):
        return (0, -1)
    if isinstance(ev, TaskDone):
        return (1, ev.task_id)
    return (2, ev.server)


@dataclass
class _Task:
    task_id: int
    kind: str
    tokens: Sequence[int]
    first: int
    last: int
    cost: int  # DSIScheduler._cost(first, last)
    server: int | None = None
    end: int = 0  # predicted end (ticks), set when it starts


@dataclass
class _State(Generic[D]):
    committed: list[int] = field(default_factory=list)
    drafts: list[tuple[int, D]] = field(default_factory=list)  # chain beyond committed
    chain: TokenChain = field(default_factory=TokenChain)  # committed + drafts, append-only
    p_avail: dict[int, tuple[D, int]] = field(default_factory=dict)  # pos -> (p, task)
    draft_inflight: tuple[int, int] | None = None  # (draft_id, position)
    draft_end: int = 0  # predicted end of the draft in flight or held (ticks)
    drafter_held: bool = False  # a cancelled draft's pass still runs (non-preemptive)
    block_start: int = 0
    tasks: dict[int, _Task] = field(default_factory=dict)  # live: running or queued
    next_id: int = 0
    finished: bool = False


class DSIScheduler(Generic[D]):
    """The DSI state machine for `max_tokens` tokens, lookahead k and P target servers.

    Distributions (type D) are opaque: p and q go to the injected `verifier`
    unread, so the same machine runs tuples (dsi_ref) and device tensors (gpu_runner).

    `target_ttft`, `target_tpot` and `target_per_position` are used only to compare
    pass costs in rule 3 and the queue (a pass scoring positions first..last costs
    TTFT or TPOT, by `first`, plus (last - first) * per_position); the scheduler never
    reads a clock. `preemptive` is the driver contract in the module docstring.
    """

    def __init__(
        self,
        max_tokens: int,
        k: int,
        servers: int,
        verifier: VerifyRule[D],
        target_ttft: Fraction,
        target_tpot: Fraction,
        *,
        target_per_position: Fraction = Fraction(0),
        preemptive: bool = True,
        policy: Policy = PAPER,
        drafter_ttft: Fraction = Fraction(0),
        drafter_tpot: Fraction = Fraction(0),
        draft_confidence: float | Fraction | None = None,
        cancel_layers: int | None = None,
    ) -> None:
        for value, what in ((max_tokens, "max_tokens"), (k, "lookahead k"), (servers, "servers P")):
            if type(value) is not int or value < 1:
                raise InvalidConfig(f"{what} must be an int >= 1, got {show(value)}")
        if cancel_layers is not None and (type(cancel_layers) is not int or cancel_layers < 1):
            raise InvalidConfig(f"cancel_layers must be an int >= 1, got {show(cancel_layers)}")
        # layer-preemptive (module docstring): None keeps the plain contract of `preemptive`
        self._layers = None if preemptive else cancel_layers
        self.n = max_tokens
        self.k = k
        self.servers: list[int | None] = [None] * servers  # task id, _HELD, or None (free)
        self.verifier = verifier
        self.ttft = target_ttft
        self.tpot = target_tpot
        self.per_position = target_per_position
        self.preemptive = preemptive
        if not isinstance(policy, Policy):
            raise InvalidConfig(f"policy must be a dsi_ref.policies.Policy, got {show(policy)}")
        self.policy = policy
        # Knobs that exist because passes cannot be stopped act only without preemption.
        held = not preemptive
        self._pause = held and policy.drafter_pause
        self._spare = held and policy.spare_server
        self._extend = (
            held and policy.extend_on_start and servers <= (policy.extend_servers or servers)
        )
        self._fresh = held and policy.fresh_blocks
        self._chain = preemptive or policy.chain  # rule 3 (at n - 1 it always runs)
        self._adaptive = policy.lookahead == "heuristic"
        self._measured = policy.lookahead == "measured"
        # Confidence-based early stop (dsi_ref.policies.low_confidence): the last draft
        # taken in had q's largest probability below the threshold, so its block ends.
        self._confidence = check_confidence(draft_confidence)
        self._low = False
        # Rule 3 and the queue compare pass costs as integers: every cost is a multiple
        # of 1/denom, so comparing numerators is exact and no Fraction is compared per event.
        self._denom = 1
        self._set_costs((target_ttft, target_tpot, target_per_position, drafter_ttft, drafter_tpot))
        self._now = 0  # the predicted clock, in ticks (module docstring: Policies)
        self._held_end: dict[int, int] = {}  # held server -> predicted end of its pass
        self._done_last: dict[int, int] = {}  # finished task -> its last scored position
        self._done_first: dict[int, int] = {}  # finished task -> its first (block positions)
        self.s: _State[D] = _State()
        self.queue: list[int] = []
        self.counters = Counters()
        self._waited: set[int] = set()

    # ----- public interface -------------------------------------------------

    @classmethod
    def from_config(cls, cfg: RunConfig, verifier: VerifyRule[D]) -> DSIScheduler[D]:
        """The scheduler of a run: its size, lookahead, servers and pass costs."""
        lat = cfg.target_latency
        dl = cfg.drafter_latency
        return cls(
            cfg.max_tokens,
            cfg.k,
            cfg.servers,
            verifier,
            lat.ttft,
            lat.tpot,
            target_per_position=lat.per_position,
            preemptive=cfg.preemptive,
            policy=get_policy(cfg.policy),
            drafter_ttft=dl.ttft,
            drafter_tpot=dl.tpot,
            draft_confidence=cfg.draft_confidence,
            cancel_layers=cfg.cancel_layers,
        )

    def replan(self, target: Latency, drafter: Latency) -> None:
        """Plan with these pass costs from now on (a real driver's costs measured so far,
        gpu_runner.online_plan). A pass already running keeps its start and gets the end
        the new costs predict; a queued task is re-costed; a held (cancelled) pass keeps
        its predicted end. The costs read only passes that have ended, so this is a
        decision from the past: the tokens stay the sequential reference's (T6)."""
        for lat, what in ((target, "target"), (drafter, "drafter")):
            if not isinstance(lat, Latency):
                raise InvalidConfig(f"{what} plan must be a dsi_ref Latency, got {show(lat)}")
        s = self.s
        drafting = s.draft_inflight
        draft_start = s.draft_end - self._draft_cost[drafting[1] != 0] if drafting else 0
        starts = {t.task_id: t.end - t.cost for t in s.tasks.values() if t.server is not None}
        self._set_costs((target.ttft, target.tpot, target.per_position, drafter.ttft, drafter.tpot))
        scale = self._scale  # every tick value kept below is in the old unit
        self._now *= scale
        self._held_end = {srv: end * scale for srv, end in self._held_end.items()}
        for t in s.tasks.values():
            t.cost = self._cost(t.first, t.last)
            if t.server is not None:
                t.end = starts[t.task_id] * scale + t.cost
        if drafting:
            s.draft_end = draft_start * scale + self._draft_cost[drafting[1] != 0]
        else:
            s.draft_end *= scale  # a held draft's end, or nothing in flight

    def _set_costs(self, costs: tuple[Fraction, ...]) -> None:
        """Pass costs in ticks. Rule 3 and the queue compare pass costs as integers: every
        cost is a multiple of 1/denom, so comparing numerators is exact and no Fraction is
        compared per event. `_scale`: new ticks per old tick (the denominator only grows,
        so tick values already kept stay whole)."""
        # times layers: a layer of any pass is a whole number of ticks
        denom = math.lcm(
            self._denom, math.lcm(*(x.denominator for x in costs)) * (self._layers or 1)
        )
        self._scale = denom // self._denom
        self._denom = denom
        t0, t, per, d0, d = (int(x * denom) for x in costs)
        self._base = (t0, t)
        self._step = per
        self._draft_cost = (d0, d)

    @property
    def committed(self) -> tuple[int, ...]:
        return tuple(self.s.committed)

    @property
    def finished(self) -> bool:
        return self.s.finished

    def busy_servers(self) -> dict[int, int]:
        """server -> the live task running on it (held servers are not listed)."""
        return {i: t for i, t in enumerate(self.servers) if t is not None and t != _HELD}

    def held_servers(self) -> frozenset[int]:
        """Servers still running a cancelled pass (non-preemptive only)."""
        return frozenset(i for i, t in enumerate(self.servers) if t == _HELD)

    @property
    def drafter_held(self) -> bool:
        """The drafter still runs a cancelled draft's pass (non-preemptive only)."""
        return self.s.drafter_held

    def live_tasks(self) -> dict[int, tuple[str, int, int, int | None]]:
        """task_id -> (kind, first, last, server or None if queued)."""
        return {i: (t.kind, t.first, t.last, t.server) for i, t in self.s.tasks.items()}

    def start(self) -> list[Command]:
        out: list[Command] = []
        self._progress(out)
        return out

    def on_draft_done(self, draft_id: int, token: int, q: D) -> list[Command]:
        """One draft finished (a batch of one: `on_events([DraftDone(...)])`)."""
        out: list[Command] = []
        if not self.s.finished and self._take_draft(draft_id, token, q):
            self._progress(out)
        return out

    def on_task_done(self, task_id: int, dists: Sequence[D]) -> list[Command]:
        """One task finished (a batch of one: `on_events([TaskDone(...)])`)."""
        out: list[Command] = []
        if not self.s.finished and self._take_task(task_id, dists):
            self._progress(out)
        return out

    def on_server_free(self, server: int) -> list[Command]:
        """The pass of a task cancelled with held=True on `server` has ended."""
        return self.on_events((ServerFree(server),))

    def on_drafter_free(self) -> list[Command]:
        """The pass of a draft cancelled with held=True has ended."""
        return self.on_events((DrafterFree(),))

    def on_events(self, events: Iterable[Event]) -> list[Command]:
        """Every event of one instant, in any order: take all in, then act once."""
        if self.s.finished:
            return []
        out: list[Command] = []
        batch = list(events)
        if len(batch) > 1:
            batch.sort(key=_event_key)
        acted = False
        for ev in batch:
            if isinstance(ev, TaskDone):
                acted |= self._take_task(ev.task_id, ev.dists)
            elif isinstance(ev, DraftDone):
                acted |= self._take_draft(ev.draft_id, ev.token, ev.q)
            elif isinstance(ev, ServerFree):
                acted |= self._take_server(ev.server)
            elif isinstance(ev, DrafterFree):
                acted |= self._take_drafter()
            else:
                raise TypeError(f"not a scheduler event: {ev!r}")
        if acted:
            self._progress(out)
        return out

    # ----- taking events in (no commit, no dispatch) -------------------------

    def _take_draft(self, draft_id: int, token: int, q: D) -> bool:
        s = self.s
        if s.draft_inflight is None or s.draft_inflight[0] != draft_id:
            return False  # stale: this draft was cancelled
        s.draft_inflight = None
        self._now = max(self._now, s.draft_end)
        s.drafts.append((token, q))
        self._low = low_confidence(q, self._confidence)
        s.chain.append(token)  # the chain now ends at pos: len(s.chain) == pos + 1
        return True

    def _take_task(self, task_id: int, dists: Sequence[D]) -> bool:
        s = self.s
        task = s.tasks.get(task_id)
        if task is None or task.server is None:
            return False  # stale: cancelled, unknown, or never started
        if len(dists) != task.last - task.first + 1:
            raise InvalidDistribution(
                f"task {task_id} scored positions {task.first}..{task.last} but "
                f"{len(dists)} distributions came back"
            )
        del s.tasks[task_id]
        self.servers[task.server] = None
        self._now = max(self._now, task.end)
        if self._adaptive:
            self._done_last[task_id] = task.last
        self._done_first[task_id] = task.first
        c = len(s.committed)
        for j, p in zip(range(task.first, task.last + 1), dists, strict=True):
            if j >= c and j not in s.p_avail:
                s.p_avail[j] = (p, task_id)
        return True

    def _take_server(self, server: int) -> bool:
        if not 0 <= server < len(self.servers) or self.servers[server] != _HELD:
            return False  # not held: stale or unknown
        self.servers[server] = None
        self._now = max(self._now, self._held_end.pop(server, 0))
        return True

    def _take_drafter(self) -> bool:
        if not self.s.drafter_held:
            return False
        self.s.drafter_held = False
        self._now = max(self._now, self.s.draft_end)
        return True

    # ----- rules ------------------------------------------------------------

    def _new_id(self) -> int:
        self.s.next_id += 1
        return self.s.next_id - 1

    def _submit_block(self, out: list[Command]) -> None:
        """Rule 2: submit the verification task of a block whose last draft is in hand.

        A block's pass scores its drafts' positions and the one after; the last
        position needs drafts only up to n - 2, so the draft at n - 1 is verified
        by that pass while the drafter makes it in parallel (as SI's bonus would).
        Drafts already committed are not scored again; a block committed whole needs
        no pass of its own (rule 3 covers the next position).
        """
        s = self.s
        pos = s.chain.n - 1  # the last draft
        if pos < s.block_start or pos > self.n - 2:
            return
        if pos - s.block_start + 1 >= self.k or pos == self.n - 2 or self._low:
            first = max(s.block_start, len(s.committed))
            if first <= pos:
                self._submit("verify", ChainView(s.chain, pos + 1), first, pos + 1, out)
            # fresh_blocks: the draft at pos + 1, verified by this task, is not the next
            # block's first draft (dsi_ref.policies)
            s.block_start = pos + 2 if self._fresh and first <= pos else pos + 1

    def _draft_next(self, out: list[Command]) -> None:
        s = self.s
        if s.draft_inflight is not None or s.drafter_held:
            return
        pos = s.chain.n
        if pos < self.n:
            end = self._now + self._draft_cost[pos != 0]
            if self._pause and self._would_be_held(pos, end):
                return  # resumes when that verification task ends (a new batch)
            did = self._new_id()
            s.draft_inflight = (did, pos)
            s.draft_end = end
            self.counters.drafter_forwards += 1
            out.append(StartDraft(did, pos, ChainView(s.chain, pos)))

    def _would_be_held(self, pos: int, end: int) -> bool:
        """Could a running verification task reject a draft before `pos` while the
        draft at `pos`, ending at `end`, still runs? (Target-only tasks are not asked:
        waiting for them costs more than a held draft; docs/theorems.md T7.)"""
        return any(
            t.server is not None and t.kind == "verify" and t.first < pos and t.end < end
            for t in self.s.tasks.values()
        )

    def _submit(
        self, kind: str, tokens: Sequence[int], first: int, last: int, out: list[Command]
    ) -> None:
        tid = self._new_id()
        self.s.tasks[tid] = _Task(tid, kind, tokens, first, last, self._cost(first, last))
        if kind == "target":
            self.counters.target_only_tasks += 1
        self.queue.append(tid)
        out.append(QueueTask(tid, kind, tokens, first, last))

    def _cost(self, first: int, last: int) -> int:
        """The duration of a pass scoring first..last, in units of 1/denom."""
        return self._base[first != 0] + (last - first) * self._step

    def _covered(self, pos: int, exclude: int | None = None) -> bool:
        """Will a live task yield p at `pos` no later than a target-only task would?"""
        cost = self._base[pos != 0]  # a one-position pass: self._cost(pos, pos)
        for t in self.s.tasks.values():
            if t.task_id != exclude and t.first <= pos <= t.last and t.cost <= cost:
                return True
        return False

    def _progress(self, out: list[Command]) -> None:
        """Act on what was taken in: commit, then draft, cancel, submit and dispatch."""
        self._commit_ready(out)
        s = self.s
        if len(s.committed) >= self.n:
            self._finish(out)
            return
        # After the commits, so no block or draft is started and cancelled in one instant.
        self._submit_block(out)
        if not self._pause:
            self._draft_next(out)
        self._drop_useless(out)
        c = len(s.committed)
        if c not in s.p_avail and not self._covered(c) and (self._chain or c == self.n - 1):
            self._submit("target", ChainView(s.chain, c), c, c, out)
        self._dispatch(out)
        if self._pause:  # after dispatch: the pause must see the verification starting now
            self._draft_next(out)

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
            self.counters.verdict(c - self._done_first[tid], ok)
            if ok:
                self.counters.drafts_accepted += 1
                s.drafts.pop(0)  # the chain is unchanged: its token at c is now committed
                if self._adaptive and self._done_last.get(tid) == c + 1:
                    self.k = min(self.k + 2, self.n)  # the block's last draft passed
                if self._measured:
                    self._measure()
                continue
            self.counters.drafts_rejected += 1
            if self._adaptive:
                self.k = max(1, self.k - 1)
            if self._measured:
                self._measure()
            self._reject(out)

    def _measure(self) -> None:
        """The "measured" lookahead: k from the verdicts so far (dsi_ref.policies.best_k)."""
        done = self.counters.drafts_accepted + self.counters.drafts_rejected
        c = self._draft_cost[1] / self._base[1] if self._base[1] else 0.0
        self.k = best_k(self.counters.drafts_accepted, done, c)

    def _reject(self, out: list[Command]) -> None:
        """The last committed token replaced a draft: drop everything built on it."""
        s = self.s
        self.counters.drafts_wasted += len(s.drafts)
        s.drafts.clear()
        c = len(s.committed)
        s.chain = s.chain.fork(c - 1)  # a new chain: views of the old one never change
        s.chain.append(s.committed[-1])
        s.p_avail.clear()
        for tid in list(s.tasks):
            self._cancel(tid, "rejection", out)
        self._cancel_draft(out)
        s.block_start = c  # _progress starts the draft of c after the commits

    def _cancel_draft(self, out: list[Command]) -> None:
        s = self.s
        if s.draft_inflight is not None:
            held = not self.preemptive
            if held and self._layers is not None:
                pos = s.draft_inflight[1]
                start = s.draft_end - self._draft_cost[pos != 0]
                s.draft_end = layer_stop(start, s.draft_end, self._now, self._layers)
                held = s.draft_end > self._now
            out.append(CancelDraft(s.draft_inflight[0], held=held))
            self.counters.drafts_wasted += 1
            s.draft_inflight = None
            s.drafter_held = held

    def _cancel(self, tid: int, reason: str, out: list[Command]) -> None:
        t = self.s.tasks.pop(tid)
        held = False
        if t.server is None:
            self.queue.remove(tid)
        elif self.preemptive:
            self.servers[t.server] = None
        else:
            stop, held = t.end, True
            if self._layers is not None:
                stop = layer_stop(t.end - t.cost, t.end, self._now, self._layers)
                held = stop > self._now  # at a layer boundary now: it stops at once
            self.servers[t.server] = _HELD if held else None
            if held:
                self._held_end[t.server] = stop
        self.counters.tasks_cancelled += 1
        out.append(CancelTask(tid, t.server, reason, held))

    def _drop_useless(self, out: list[Command]) -> None:
        s = self.s
        c = len(s.committed)
        for tid, t in list(s.tasks.items()):
            if t.last < c or (
                t.kind == "target"
                and t.server is None
                # exclude: a queued task must not count as covering its own position
                and (t.first in s.p_avail or self._covered(t.first, exclude=tid))
            ):
                self._cancel(tid, "useless", out)
            elif (
                self._extend
                and t.server is None
                and all(j in s.p_avail for j in range(max(t.first, c), t.last + 1))
            ):
                self._cancel(tid, "useless", out)  # every p it would give is in hand

    def _speculative(self, t: _Task, c: int) -> bool:
        """Can a rejection or a faster task make `t` useless while it runs? Not the
        head verification (it scores c) nor a target-only task at n - 1 (nothing else
        can score the last position once its drafts are committed)."""
        if t.kind == "verify":
            return t.first > c
        return t.first < self.n - 1

    def _room_for_speculation(self, c: int) -> bool:
        """May a speculative task start now? It must leave a server free, and at most
        policy.max_speculative servers may be held or run speculative tasks."""
        if self.servers.count(None) < 2:
            return False
        most = self.policy.max_speculative
        if most is None:
            return True
        tasks = self.s.tasks
        busy = sum(
            1
            for t in self.servers
            if t == _HELD or (t is not None and self._speculative(tasks[t], c))
        )
        return busy < most

    def _dispatch(self, out: list[Command]) -> None:
        c = len(self.s.committed)
        tasks = self.s.tasks
        while self.queue and None in self.servers:
            ready = self.queue
            if self._spare and not self._room_for_speculation(c):
                ready = [i for i in self.queue if not self._speculative(tasks[i], c)]
                if not ready:
                    break  # keep the last free server for the head verification
            tid = min(
                ready,
                key=lambda i: (
                    max(tasks[i].first, c),
                    tasks[i].cost,
                    -tasks[i].last,
                    i,
                ),
            )
            if self._extend and tasks[tid].kind == "verify":
                tid = self._extended(tid, c, out)
            self.queue.remove(tid)
            task = tasks[tid]
            server = self.servers.index(None)
            self.servers[server] = tid
            task.server = server
            task.end = self._now + task.cost
            self.counters.target_forwards += 1
            out.append(StartTask(tid, server, task.kind, task.tokens, task.first, task.last))
        for tid in self.queue:
            if tid not in self._waited:
                self._waited.add(tid)
                self.counters.tasks_queued += 1

    def _extended(self, tid: int, c: int, out: list[Command]) -> int:
        """The queued verification task `tid`, about to start, made to score every
        draft ready now: resubmitted (a new id) if that adds positions, else `tid`."""
        s = self.s
        t = s.tasks[tid]
        last = min(s.chain.n, self.n - 1)  # p at `last` needs drafts up to last - 1
        if last <= t.last:
            return tid
        self._cancel(tid, "useless", out)
        self._submit("verify", ChainView(s.chain, last), max(t.first, c), last, out)
        s.block_start = max(s.block_start, s.chain.n)  # every draft in hand is scored
        # A queued block inside the new one would score nothing new.
        for other in [i for i in self.queue if s.tasks[i].kind == "verify"]:
            if s.tasks[other].last <= last and other != self.queue[-1]:
                self._cancel(other, "useless", out)
        return self.queue[-1]

    def _finish(self, out: list[Command]) -> None:
        s = self.s
        for tid in list(s.tasks):
            self._cancel(tid, "useless", out)
        self._cancel_draft(out)
        self.counters.drafts_wasted += len(s.drafts)
        s.drafts.clear()
        s.chain = s.chain.fork(len(s.committed))
        s.finished = True
        out.append(Finished(tuple(s.committed)))
