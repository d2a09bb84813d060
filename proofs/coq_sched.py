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

import re
from collections.abc import Callable, Sequence
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


# ----- the same steps computed by Coq (Sched.v's step under vm_compute) -----

Summary = tuple[Tokens, Tokens, tuple[int, ...], tuple[int, ...], bool]
"""What a replay compares: committed, draft tokens, stored positions, live task ids, and
whether a draft is in flight."""


def summary(s: State[D]) -> Summary:
    return (
        s.committed,
        tuple(d for d, _ in s.drafts),
        tuple(j for j, _ in s.pav),
        tuple(t.t_id for t in s.tasks),
        s.inflight is not None,
    )


@dataclass(frozen=True)
class Trace:
    """A replayed run on the model instance whose distributions are named by the prefix
    they were computed on (dist = seq nat: target pre = pre, a draft's q is its prefix):
    the actions, the drafter's token on each prefix and the rule's answer on each
    (p's prefix, q's prefix, draft), as the run met them, and the model state after
    each action."""

    n: int
    actions: tuple[Action, ...]
    drafts: dict[Tokens, int]
    rule: dict[tuple[Tokens, Tokens, int], tuple[int, bool]]
    states: tuple[Summary, ...]


def _nats(xs: Sequence[int]) -> str:
    return "[:: " + "; ".join(str(x) for x in xs) + "]" if xs else "[::]"


def _action(a: Action) -> str:
    if isinstance(a, Submit):
        return f"(Submit {a.id} {a.m} {a.first} {a.last})"
    if isinstance(a, TaskDone | CancelTask):
        return f"({type(a).__name__} {a.id})"
    return type(a).__name__


def _summary(s: Summary) -> str:
    c, d, pv, ts, fl = s
    return f"Some ({_nats(c)}, {_nats(d)}, {_nats(pv)}, {_nats(ts)}, {str(fl).lower()})"


_PRELUDE = """From mathcomp Require Import all_ssreflect.
From DSI Require Import Sched.
Fixpoint assoc {A : eqType} {B : Type} (d : B) (k : A) (l : seq (A * B)) : B :=
  if l is (a, b) :: r then (if a == k then b else assoc d k r) else d.
Definition summary (s : state nat (seq nat)) :=
  (committed s, map fst (drafts s), map fst (pav s), map (fun t => t_id t) (tasks s),
   if inflight s is Some _ then true else false).
"""

_TRACE = """Module T{i}.
Definition dtab : seq (seq nat * nat) := {dtab}.
Definition vtab : seq (seq nat * seq nat * nat * (nat * bool)) := {vtab}.
Definition stp := @step nat (seq nat) unit nat (fun pre => pre)
  (fun _ pre => (assoc 0 pre dtab, pre)) (fun _ i _ => i) tt
  (fun i _ p q d => assoc (0, false) (p, q, d) vtab) {n}.
Fixpoint states s acts :=
  if acts is a :: r then
    (if stp a s is Some s' then Some (summary s') :: states s' r else [:: None])
  else [::].
Definition acts := {acts}.
Definition expected := {expected}.
Eval vm_compute in (states (@init nat (seq nat)) acts == expected).
End T{i}.
"""


def coq_replay(traces: Sequence[Trace]) -> list[bool]:
    """For each trace: does Coq's step, from init over its actions, give its states?"""
    from proofs.coq_check import CoqError, build  # the checker imports nothing of this module

    parts = [_PRELUDE]
    for i, t in enumerate(traces):
        dtab = [f"({_nats(pre)}, {tok})" for pre, tok in t.drafts.items()]
        vtab = [
            f"({_nats(p)}, {_nats(q)}, {d}, ({tok}, {str(acc).lower()}))"
            for (p, q, d), (tok, acc) in t.rule.items()
        ]
        parts.append(
            _TRACE.format(
                i=i,
                n=t.n,
                dtab="[:: " + "; ".join(dtab) + "]" if dtab else "[::]",
                vtab="[:: " + "; ".join(vtab) + "]" if vtab else "[::]",
                acts="[:: " + "; ".join(_action(a) for a in t.actions) + "]",
                expected="[:: " + "; ".join(_summary(s) for s in t.states) + "]",
            )
        )
    run = build(extra=[("Replay.v", "".join(parts))], files=["Sched.v"])
    if not run.ok:
        raise CoqError(f"Coq could not replay the traces:\n{run.output}")
    answers = re.findall(r"=\s*(true|false)\s*:\s*bool", run.output)
    if len(answers) != len(traces):
        raise CoqError(f"expected {len(traces)} answers from Coq, got:\n{run.output}")
    return [a == "true" for a in answers]
