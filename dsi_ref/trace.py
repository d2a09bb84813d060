"""Trace recording and JSON (de)serialisation. The format is docs/trace-format.md.

Times are exact rationals written as strings ("3/2"); probabilities are strings
for exact models and JSON numbers for float models, so a trace round-trips exactly.

Version 2 records each token once: a `task_submit` says how many leading tokens
of the *chain* (the committed tokens followed by the drafts that extend them, as
the events so far define it) its prefix takes, and lists only the tokens after
them. `TraceRecorder` keeps the chain and writes that form by itself, so a driver
still passes a task's whole prefix as `tokens=`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from dsi_ref.config import RunConfig
from dsi_ref.errors import TraceError
from dsi_ref.fileio import MAX_JSON_BYTES, read_json_file
from dsi_ref.outputs import OutputPath, write_output
from dsi_ref.prob import Dist, Num

FORMAT = "dsi-trace"
VERSION = 2
VERSIONS = (1, 2)  # the versions the checker reads
# A time as a driver gives it: a Fraction (the virtual clock) or a string that is an
# exact rational, such as a wall clock's decimal "12.0345" (written unchanged).
Time = Fraction | str
# The checker's rule 8 default per-entry tolerance for float distributions. Two correct float
# implementations of one warp differ by rounding: Python 3.12's sum() is compensated
# and 3.11's is not, so a trace written on one fails on the other at tolerance 0.
# The rounding error of a sum of n terms in [0, 1] is below n * 2**-52 (2.2e-16 n);
# 1e-9 covers vocabularies of millions with room for the warp's exp/log, and is far
# below any difference a real bug makes (a wrong temperature, the previous position's p).
DEFAULT_TOL = 1e-9


def num_out(x: Num) -> str | float:
    return str(x) if isinstance(x, Fraction) else float(x)


def dist_out(p: Sequence[Num]) -> list[str | float]:
    # `type(x) is float` first: isinstance(x, Fraction) is an ABC check, slow for floats.
    return [x if type(x) is float else num_out(x) for x in p]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    if n and a[n - 1] == b[n - 1] and list(a[:n]) == list(b[:n]):
        return n  # the usual case, compared at C speed
    return next((i for i in range(n) if a[i] != b[i]), n)


class Chain:
    """The chain of docs/trace-format.md, updated event by event.

    `tokens[:committed]` are the committed tokens; the rest are drafts that extend
    them. A draft done at position i, with committed <= i <= len(tokens), replaces
    the chain from i on. The next in-order commit (position == committed) keeps the
    chain if it commits the token already there, else replaces the chain from its
    position on. Anything else leaves the chain alone.
    """

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.committed = 0
        self.draft_pos: dict[int, int] = {}

    def draft_start(self, did: object, pos: object) -> None:
        if isinstance(did, int) and isinstance(pos, int):
            self.draft_pos[did] = pos

    def draft_cancel(self, did: object) -> None:
        if isinstance(did, int):
            self.draft_pos.pop(did, None)

    def draft_done(self, did: object, token: object) -> None:
        i = self.draft_pos.pop(did, None) if isinstance(did, int) else None
        if i is not None and isinstance(token, int) and self.committed <= i <= len(self.tokens):
            del self.tokens[i:]
            self.tokens.append(token)

    def commit(self, pos: int, token: int) -> None:
        if pos != self.committed or pos > len(self.tokens):
            return  # out of order: the checker reports it; the chain ignores it
        if pos == len(self.tokens) or self.tokens[pos] != token:
            del self.tokens[pos:]
            self.tokens.append(token)
        self.committed += 1


class TraceRecorder:
    """Collects events; `enabled=False` makes every call a cheap no-op.

    A driver records with `event` (every kind but commits), `commit` and `finish`,
    from one thread or several. A `task_submit` passes the task's whole prefix as
    `tokens=`; the recorder writes it in version 2 form: `chain` (how many leading
    tokens are the chain's, as this recorder has seen it) and the remaining `tokens`.
    A driver that computes `chain` itself passes it and its `tokens` go unchanged.
    """

    def __init__(self, enabled: bool, algorithm: str, cfg: RunConfig, vocab_size: int) -> None:
        self.enabled = enabled
        self.events: list[dict[str, Any]] = []
        self.chain = Chain()
        self._lock = threading.Lock()  # an event and its effect on the chain go together
        # The last time written and its string (runs write many events at one time).
        self._last_time: tuple[Time | None, str] = (None, "")
        s = cfg.sampling
        self.header: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "algorithm": algorithm,
            "max_tokens": cfg.max_tokens,
            "k": cfg.k,
            "servers": cfg.servers,
            "seed": cfg.seed,
            "vocab_size": vocab_size,
            "greedy": s.greedy,
            "sampling": s.describe(),
            "point_mass_proposal": cfg.point_mass_proposal,
            "prompt": list(cfg.prompt),
            "target_latency": {
                "ttft": str(cfg.target_latency.ttft),
                "tpot": str(cfg.target_latency.tpot),
            },
            "drafter_latency": {
                "ttft": str(cfg.drafter_latency.ttft),
                "tpot": str(cfg.drafter_latency.tpot),
            },
        }

    def _t(self, t: Time) -> str:
        last, text = self._last_time
        if t is not last:  # identity: equal values of other types print differently
            text = str(t)
            self._last_time = (t, text)
        return text

    def event(self, t: Time, ev: str, **fields: Any) -> None:
        if not self.enabled:
            return
        with self._lock:
            chain = self.chain
            did = fields.get("id")
            if ev == "draft_start":
                chain.draft_start(did, fields.get("pos"))
            elif ev == "draft_done":
                chain.draft_done(did, fields.get("token"))
            elif ev == "draft_cancel":
                chain.draft_cancel(did)
            elif ev == "task_submit" and "chain" not in fields and "tokens" in fields:
                tokens = fields["tokens"]
                b = common_prefix(tokens, chain.tokens)
                fields = {**fields, "chain": b, "tokens": list(tokens[b:])}
            self.events.append({"t": self._t(t), "ev": ev, **fields})

    def commit(
        self,
        t: Time,
        pos: int,
        token: int,
        *,
        source: str,
        task: int | None,
        p: Dist,
        draft: int | None = None,
        q: Dist | None = None,
        accepted: bool | None = None,
    ) -> None:
        """source: 'verify' (a draft checked against p), or 'target' (sampled from p alone)."""
        if not self.enabled:
            return
        with self._lock:
            self.chain.commit(pos, token)
            self.events.append(
                {
                    "t": self._t(t),
                    "ev": "commit",
                    "pos": pos,
                    "token": token,
                    "source": source,
                    "task": task,
                    "draft": draft,
                    "accepted": accepted,
                    "p": dist_out(p),
                    "q": None if q is None else dist_out(q),
                }
            )

    def finish(self, tokens: Sequence[int], latency: Time) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        return {
            **self.header,
            "events": self.events,
            "result": {"tokens": list(tokens), "latency": str(latency)},
        }


def _convert(trace: Mapping[str, Any], version: int) -> dict[str, Any]:
    """`trace` (the other version) with every task_submit rewritten for `version`."""
    have = trace.get("version")
    if have != 3 - version:
        raise TraceError(
            f"converting to version {version} needs version {3 - version}, got {have!r}"
        )
    chain = Chain()
    events: list[dict[str, Any]] = []
    for i, e in enumerate(trace["events"]):
        ev = e["ev"]
        if ev == "draft_start":
            chain.draft_start(e["id"], e["pos"])
        elif ev == "draft_done":
            chain.draft_done(e["id"], e["token"])
        elif ev == "draft_cancel":
            chain.draft_cancel(e["id"])
        elif ev == "commit":
            chain.commit(e["pos"], e["token"])
        elif ev == "task_submit":
            e = dict(e)
            if version == 1:
                b = e.pop("chain", None) or 0
                if b > len(chain.tokens):
                    raise TraceError(f"event {i}: chain = {b}, the chain has {len(chain.tokens)}")
                e["tokens"] = chain.tokens[:b] + list(e["tokens"])
            else:
                b = common_prefix(e["tokens"], chain.tokens)
                e["chain"], e["tokens"] = b, list(e["tokens"][b:])
            order = ("t", "ev", "id", "kind", "tokens", "first", "last", "chain")
            e = {k: e[k] for k in (*order, *e) if k in e}  # the recorder's field order
        events.append(dict(e))
    return {**trace, "version": version, "events": events}


def to_version1(trace: Mapping[str, Any]) -> dict[str, Any]:
    """A well-formed version-2 trace written as version 1 (each task's whole prefix listed).

    Version 1 is quadratic in the number of tokens; this exists to compare with
    traces recorded before version 2. TraceError if a `chain` exceeds the chain.
    """
    return _convert(trace, 1)


def to_version2(trace: Mapping[str, Any]) -> dict[str, Any]:
    """A well-formed version-1 trace written as version 2 (what `TraceRecorder` writes)."""
    return _convert(trace, 2)


def _json_lines(trace: Mapping[str, Any]) -> Iterator[str]:
    """The trace as JSON text: header fields one per line, one event per line."""
    yield "{"
    items = list(trace.items())
    for n, (key, value) in enumerate(items):
        end = "," if n < len(items) - 1 else ""
        if key == "events" and isinstance(value, list) and value:
            yield f" {json.dumps(key)}: ["
            last = len(value) - 1
            for i, e in enumerate(value):
                yield f"  {json.dumps(e, allow_nan=False)}{',' if i < last else ''}"
            yield f" ]{end}"
        else:
            yield f" {json.dumps(key)}: {json.dumps(value, allow_nan=False)}{end}"
    yield "}"


def trace_writer(trace: Mapping[str, Any], path: object) -> Callable[[IO[bytes]], None]:
    """A writer of `trace` as JSON lines for dsi_ref.outputs; a value JSON cannot hold
    (NaN, Infinity) is a TraceError naming `path`, raised before the file is replaced."""

    def write(f: IO[bytes]) -> None:
        try:
            for line in _json_lines(trace):
                f.write(line.encode())
                f.write(b"\n")
        except ValueError as e:  # json: NaN or Infinity
            raise TraceError(f"cannot write trace {str(path)!r}: {e}") from None

    return write


def save_trace(trace: Mapping[str, Any], path: str | Path | OutputPath) -> None:
    """Write `trace` to `path` (an OutputPath, or a path checked now) by dsi_ref.outputs'
    rules: a regular file atomically, a device or FIFO in place, anything else refused."""
    write_output(path, trace_writer(trace, path), "trace file")


def load_trace(path: str | Path, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object in `path`; TraceError for anything that is not one (never a crash).

    Files over `max_bytes` are refused before they are read.
    """
    data = read_json_file(path, "trace file", TraceError, max_bytes)
    if not isinstance(data, dict):
        raise TraceError(f"trace file {str(path)!r} holds a {type(data).__name__}, not an object")
    return data
