"""Trace recording and JSON (de)serialisation. The format is docs/trace-format.md.

Times are exact rationals written as strings ("3/2"); probabilities are strings
for exact models and JSON numbers for float models, so a trace round-trips exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from dsi_ref.config import RunConfig
from dsi_ref.prob import Dist, Num

FORMAT = "dsi-trace"
VERSION = 1


def num_out(x: Num) -> str | float:
    return str(x) if isinstance(x, Fraction) else float(x)


def dist_out(p: Sequence[Num]) -> list[str | float]:
    # `type(x) is float` first: isinstance(x, Fraction) is an ABC check, slow for floats.
    return [x if type(x) is float else num_out(x) for x in p]


class TraceRecorder:
    """Collects events; `enabled=False` makes every call a cheap no-op."""

    def __init__(self, enabled: bool, algorithm: str, cfg: RunConfig, vocab_size: int) -> None:
        self.enabled = enabled
        self.events: list[dict[str, Any]] = []
        # The last time written and its string (runs write many events at one time);
        # one attribute, swapped whole, so threads sharing a recorder never mix them.
        self._last_time: tuple[Fraction | None, str] = (None, "")
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

    def _t(self, t: Fraction) -> str:
        last, text = self._last_time
        if t is not last:  # identity: equal values of other types print differently
            text = str(t)
            self._last_time = (t, text)
        return text

    def event(self, t: Fraction, ev: str, **fields: Any) -> None:
        if self.enabled:
            self.events.append({"t": self._t(t), "ev": ev, **fields})

    def commit(
        self,
        t: Fraction,
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
        if self.enabled:
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

    def finish(self, tokens: Sequence[int], latency: Fraction) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        return {
            **self.header,
            "events": self.events,
            "result": {"tokens": list(tokens), "latency": str(latency)},
        }


def save_trace(trace: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(trace, indent=1) + "\n")


def load_trace(path: str | Path) -> dict[str, Any]:
    from dsi_ref.errors import TraceError

    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise TraceError(f"cannot read trace file {str(path)!r}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise TraceError(f"trace file {str(path)!r} is not JSON: {e.msg} at line {e.lineno}") from e
    if not isinstance(data, dict):
        raise TraceError(f"trace file {str(path)!r} holds a {type(data).__name__}, not an object")
    return data
