"""proofs/coq/Sched.v's transition function, mirrored line for line in Python.

Sched.v proves that in every state the model can reach, the committed prefix is the
sequential reference's. tests/test_coq_sched.py drives dsi_ref's DSIScheduler on random
event orders, turns each event and command into the model's action, runs it through
`Model.step` below and checks that the step is allowed (not None) and that the model's
state is the scheduler's (committed tokens, drafts, stored p's, live tasks, the draft
in flight). So every run replayed is a run of the model, and the theorem covers it.

Names follow Sched.v: `step`, `store`, `lookup`, `chain`, `draft_at`, `verify_at`.
The model's parameters (target, drafter, rule) are the run's own workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

D = TypeVar("D")  # a distribution, opaque to the model as to the scheduler

Tokens = tuple[int, ...]


@dataclass(frozen=True)
class Task:
    t_id: int
    t_tokens: Tokens
    t_first: int
    t_last: int


@dataclass(frozen=True)
class State(Generic[D]):
    committed: Tokens
    drafts: tuple[tuple[int, D], ...]
    inflight: Tokens | None
    pav: tuple[tuple[int, D], ...]
    tasks: tuple[Task, ...]


def init() -> State[D]:
    return State((), (), None, (), ())


def chain(s: State[D]) -> Tokens:
    return s.committed + tuple(d for d, _ in s.drafts)


# ----- actions (Sched.v's `action`) -----


@dataclass(frozen=True)
class StartDraft:
    pass


@dataclass(frozen=True)
class DraftDone:
    pass


@dataclass(frozen=True)
class CancelDraft:
    pass


@dataclass(frozen=True)
class Submit:
    id: int
    m: int
    first: int
    last: int


@dataclass(frozen=True)
class TaskDone:
    id: int


@dataclass(frozen=True)
class CancelTask:
    id: int


@dataclass(frozen=True)
class Commit:
    pass


Action = StartDraft | DraftDone | CancelDraft | Submit | TaskDone | CancelTask | Commit


def lookup(j: int, pav: tuple[tuple[int, D], ...]) -> D | None:
    for i, p in pav:
        if i == j:
            return p
    return None


def find_task(id: int, tasks: tuple[Task, ...]) -> Task | None:
    for t in tasks:
        if t.t_id == id:
            return t
    return None


def drop_task(id: int, tasks: tuple[Task, ...]) -> tuple[Task, ...]:
    return tuple(t for t in tasks if t.t_id != id)


@dataclass(frozen=True)
class Model(Generic[D]):
    """Sched.v's section variables: the target on a prefix, the drafter worker on a
    prefix (keyed by its length), the verification rule (keyed by position), n."""

    target: Callable[[Tokens], D]
    draft_at: Callable[[Tokens], tuple[int, D]]
    verify_at: Callable[[int, D, D, int], tuple[int, bool]]
    n: int

    def store(self, c: int, t: Task, pv: tuple[tuple[int, D], ...]) -> tuple[tuple[int, D], ...]:
        for j in range(t.t_first, t.t_first + max(0, t.t_last + 1 - t.t_first)):
            if c <= j and lookup(j, pv) is None:
                pv = ((j, self.target(t.t_tokens[:j])), *pv)
        return pv

    def step(self, a: Action, s: State[D]) -> State[D] | None:
        if isinstance(a, StartDraft):
            if s.inflight is not None:
                return None
            if len(chain(s)) < self.n:
                return replace(s, inflight=chain(s))
            return None
        if isinstance(a, DraftDone):
            if s.inflight is None:
                return None
            return replace(s, drafts=(*s.drafts, self.draft_at(s.inflight)), inflight=None)
        if isinstance(a, CancelDraft):
            return replace(s, inflight=None)
        if isinstance(a, Submit):
            if a.m <= len(chain(s)) and a.first <= a.last <= a.m:
                task = Task(a.id, chain(s)[: a.m], a.first, a.last)
                return replace(s, tasks=(*s.tasks, task))
            return None
        if isinstance(a, TaskDone):
            t = find_task(a.id, s.tasks)
            if t is None:
                return None
            pav = self.store(len(s.committed), t, s.pav)
            return replace(s, pav=pav, tasks=drop_task(a.id, s.tasks))
        if isinstance(a, CancelTask):
            return replace(s, tasks=drop_task(a.id, s.tasks))
        c = len(s.committed)
        p = lookup(c, s.pav)
        if p is None or not s.drafts:
            return None
        (d, q), rest = s.drafts[0], s.drafts[1:]
        if not c < self.n:
            return None
        token, accepted = self.verify_at(c, p, q, d)
        if accepted:
            pav = tuple(e for e in s.pav if e[0] != c)
            return State((*s.committed, token), rest, s.inflight, pav, s.tasks)
        return State((*s.committed, token), (), None, (), ())
