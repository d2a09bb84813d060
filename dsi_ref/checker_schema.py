"""Parse a trace (the JSON object of docs/trace-format.md) into typed events.

Everything here is about *form*: a missing field, a wrong type, an unknown event
or a malformed rational raises `TraceError` naming the event index, the field and
the bad value. Whether a well-formed trace obeys the DSI rules is decided in
`dsi_ref.checker`, which reports violations instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from dsi_ref.errors import TraceError
from dsi_ref.prob import Num
from dsi_ref.trace import FORMAT, VERSIONS

# An exact rational as text: "3", "3/2", "0.25", optionally signed. Fraction() alone
# would also take "1e3", " 3 " or "inf"-like spellings that no writer should emit.
_RATIONAL = re.compile(r"-?\d+(?:/\d+|\.\d+)?")

SOURCES = ("verify", "target")


@dataclass(frozen=True)
class Header:
    version: int
    algorithm: str
    max_tokens: int
    k: int
    servers: int
    seed: int
    vocab_size: int
    greedy: bool
    point_mass_proposal: bool
    prompt: tuple[int, ...]
    drafters: int
    result_tokens: tuple[int, ...]
    result_latency: Fraction


@dataclass(frozen=True)
class DraftStart:
    id: int
    pos: int


@dataclass(frozen=True)
class DraftDone:
    id: int
    token: int
    pos: int | None


@dataclass(frozen=True)
class DraftCancel:
    id: int


@dataclass(frozen=True)
class TaskSubmit:
    """The prefix is the chain's first `chain` tokens, then `tokens` (version 1: chain = 0)."""

    id: int
    kind: str
    tokens: tuple[int, ...]
    first: int
    last: int
    chain: int = 0


@dataclass(frozen=True)
class TaskStart:
    id: int
    server: int


@dataclass(frozen=True)
class TaskDone:
    id: int
    server: int | None


@dataclass(frozen=True)
class TaskCancel:
    id: int
    reason: str


@dataclass(frozen=True)
class CommitEv:
    pos: int
    token: int
    source: str
    task: int | None
    draft: int | None
    accepted: bool | None
    p: tuple[Num, ...]
    q: tuple[Num, ...] | None


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Fault:
    """A worker fault an executor survived (its lost pass was reissued): no rule reads it."""

    worker: str
    kind: str
    id: int | None
    action: str


Payload = (
    DraftStart | DraftDone | DraftCancel | TaskSubmit | TaskStart | TaskDone | TaskCancel
) | (CommitEv | Done | Fault)


@dataclass(frozen=True)
class Event:
    index: int
    t: Fraction
    ev: Payload


@dataclass(frozen=True)
class ParsedTrace:
    header: Header
    events: tuple[Event, ...]


def short(x: object, limit: int = 80) -> str:
    """repr(x), cut to about `limit` characters: a bad value is named, not dumped."""
    try:
        text = repr(x)
    except (RecursionError, ValueError):  # nested too deeply; an int too long to print
        text = f"<{type(x).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-3:]} ({len(text)} chars)"


@lru_cache(maxsize=4096)
def _rational(x: str) -> Fraction | None:
    """Fraction(x) for a well-spelled rational, else None (cached: times repeat a lot)."""
    if not _RATIONAL.fullmatch(x):
        return None
    try:
        return Fraction(x)
    except (ZeroDivisionError, ValueError):  # ValueError: beyond int_max_str_digits
        return None


def parse_rational(x: object, where: str) -> Fraction:
    value = _rational(x) if isinstance(x, str) else None
    if value is None:
        raise TraceError(f"{where} = {short(x)} is not an exact rational string like '3/2'")
    return value


def _num(x: object, where: str) -> Num:
    """Strings are exact (Fraction); JSON numbers are floats."""
    if isinstance(x, str):
        return parse_rational(x, where)
    if isinstance(x, float):
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        try:
            return float(x)
        except OverflowError:
            pass  # an integer too large for a float is no probability either
    raise TraceError(f"{where} = {short(x)} is neither a rational string nor a number")


class _Fields:
    """Typed access to one JSON object, with errors that say where."""

    def __init__(self, obj: Mapping[str, Any], where: str) -> None:
        self.obj = obj
        self.where = where

    def _get(self, name: str) -> Any:
        if name not in self.obj:
            raise TraceError(f"{self.where}: missing field {name!r}")
        return self.obj[name]

    def _bad(self, name: str, value: object, want: str) -> TraceError:
        return TraceError(f"{self.where}: field {name!r} = {short(value)} is not {want}")

    def get_int(self, name: str, *, low: int | None = None) -> int:
        v = self._get(name)
        if isinstance(v, bool) or not isinstance(v, int) or (low is not None and v < low):
            raise self._bad(name, v, "an int" if low is None else f"an int >= {low}")
        return v

    def get_opt_int(self, name: str) -> int | None:
        return None if self.obj.get(name) is None else self.get_int(name)

    def get_bool(self, name: str) -> bool:
        v = self._get(name)
        if not isinstance(v, bool):
            raise self._bad(name, v, "a boolean")
        return v

    def get_opt_bool(self, name: str) -> bool | None:
        return None if self.obj.get(name) is None else self.get_bool(name)

    def get_str(self, name: str) -> str:
        v = self._get(name)
        if not isinstance(v, str):
            raise self._bad(name, v, "a string")
        return v

    def get_ints(self, name: str) -> tuple[int, ...]:
        v = self._get(name)
        # `type(x) is int` excludes bool; token lists are long, so this must be cheap.
        if not isinstance(v, list) or not all(type(x) is int for x in v):
            raise self._bad(name, v, "a list of ints")
        return tuple(v)

    def get_nums(self, name: str) -> tuple[Num, ...]:
        v = self._get(name)
        if not isinstance(v, list):
            raise self._bad(name, v, "a list of probabilities")
        return tuple(_num(x, f"{self.where}: {name}[{i}]") for i, x in enumerate(v))

    def get_opt_nums(self, name: str) -> tuple[Num, ...] | None:
        return None if self.obj.get(name) is None else self.get_nums(name)

    def get_rational(self, name: str) -> Fraction:
        return parse_rational(self._get(name), f"{self.where}: field {name!r}")


def _payload(kind: str, f: _Fields, version: int) -> Payload:
    if kind == "draft_start":
        return DraftStart(f.get_int("id"), f.get_int("pos"))
    if kind == "draft_done":
        return DraftDone(f.get_int("id"), f.get_int("token"), f.get_opt_int("pos"))
    if kind == "draft_cancel":
        return DraftCancel(f.get_int("id"))
    if kind == "task_submit":
        chain = 0
        if version >= 2 and f.obj.get("chain") is not None:
            chain = f.get_int("chain", low=0)
        return TaskSubmit(
            f.get_int("id"),
            f.get_str("kind"),
            f.get_ints("tokens"),
            f.get_int("first"),
            f.get_int("last"),
            chain,
        )
    if kind == "task_start":
        return TaskStart(f.get_int("id"), f.get_int("server"))
    if kind == "task_done":
        return TaskDone(f.get_int("id"), f.get_opt_int("server"))
    if kind == "task_cancel":
        return TaskCancel(f.get_int("id"), f.get_str("reason"))
    if kind == "commit":
        return _commit(f)
    if kind == "done":
        return Done()
    if kind == "fault":
        return Fault(
            f.get_str("worker"), f.get_str("kind"), f.get_opt_int("id"), f.get_str("action")
        )
    raise TraceError(f"{f.where}: unknown event kind {short(kind)}")


def _commit(f: _Fields) -> CommitEv:
    source = f.get_str("source")
    if source not in SOURCES:
        raise TraceError(f"{f.where}: field 'source' = {short(source)} is not one of {SOURCES}")
    ev = CommitEv(
        pos=f.get_int("pos"),
        token=f.get_int("token"),
        source=source,
        task=f.get_opt_int("task"),
        draft=f.get_opt_int("draft"),
        accepted=f.get_opt_bool("accepted"),
        p=f.get_nums("p"),
        q=f.get_opt_nums("q"),
    )
    if source == "verify":
        for name in ("draft", "accepted", "q"):
            if f.obj.get(name) is None:
                raise TraceError(f"{f.where}: a 'verify' commit needs field {name!r}, got None")
    else:
        for name in ("draft", "accepted", "q"):
            if f.obj.get(name) is not None:
                raise TraceError(
                    f"{f.where}: a 'target' commit has no {name!r}, got {short(f.obj[name])}"
                )
    return ev


def _header(trace: Mapping[str, Any]) -> Header:
    f = _Fields(trace, "header")
    fmt = f.get_str("format")
    if fmt != FORMAT:
        raise TraceError(f"header: field 'format' = {short(fmt)} is not {FORMAT!r}")
    version = f.get_int("version")
    if version not in VERSIONS:
        known = ", ".join(map(str, VERSIONS))
        raise TraceError(f"header: field 'version' = {short(version)} is not one of {known}")
    result = trace.get("result")
    if not isinstance(result, Mapping):
        raise TraceError(f"header: field 'result' = {short(result)} is not an object")
    r = _Fields(result, "result")
    pmp = trace.get("point_mass_proposal")
    return Header(
        version=version,
        algorithm=f.get_str("algorithm"),
        max_tokens=f.get_int("max_tokens", low=1),
        k=f.get_int("k", low=1),
        servers=f.get_int("servers", low=1),
        seed=f.get_int("seed", low=0),
        vocab_size=f.get_int("vocab_size", low=1),
        greedy=f.get_bool("greedy"),
        point_mass_proposal=False if pmp is None else f.get_bool("point_mass_proposal"),
        prompt=f.get_ints("prompt") if "prompt" in trace else (),
        drafters=1 if trace.get("drafters") is None else f.get_int("drafters", low=1),
        result_tokens=r.get_ints("tokens"),
        result_latency=r.get_rational("latency"),
    )


def parse_trace(trace: object) -> ParsedTrace:
    """The typed header and events of `trace`; raise TraceError if it is malformed."""
    if not isinstance(trace, Mapping):
        raise TraceError(f"a trace must be a JSON object, got {type(trace).__name__}")
    header = _header(trace)
    if "events" not in trace:
        raise TraceError("header: missing field 'events'")
    raw = trace["events"]
    if not isinstance(raw, list):
        raise TraceError(f"header: field 'events' = {short(raw)} is not a list of events")
    events: list[Event] = []
    for i, obj in enumerate(raw):
        where = f"event {i}"
        if not isinstance(obj, Mapping):
            raise TraceError(f"{where} = {short(obj)} is not an object")
        f = _Fields(obj, where)
        t = f.get_rational("t")
        kind = f.get_str("ev")
        f.where = f"event {i} ({kind if len(kind) <= 40 else short(kind, 40)})"
        events.append(Event(i, t, _payload(kind, f, header.version)))
    return ParsedTrace(header, tuple(events))
