"""The authors' offline cost model next to the event-level schedule, exactly.

Both models take the paper's assumptions (i.i.d. acceptance a, target pass = 1, drafter
pass = c, a pass over k+1 positions costs one). The offline model
(`dsi_ref.theory.offline`, F2's) is a formula per segment; the event-level model is the
real scheduler's timing (`dsi_ref.theory.event`). They agree on non-SI and SI and differ on
DSI; docs/latency-models.md explains where and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency, to_time
from dsi_ref.theory import offline
from dsi_ref.theory.event import dsi_poly, evaluate, nonsi_latency, si_poly, to_rate


@dataclass(frozen=True)
class Row:
    a: Fraction
    c: Fraction
    k: int
    S: int
    P: int
    nonsi: Fraction
    offline_si: Fraction
    event_si: Fraction
    offline_dsi: Fraction
    event_dsi: Fraction


def event_config(c: Fraction, k: int, S: int, P: int) -> RunConfig:
    """The event-level run matching the offline units: TTFT = TPOT, target 1, drafter c."""
    return RunConfig(
        max_tokens=S, k=k, servers=P, target_latency=Latency.of(1), drafter_latency=Latency.of(c)
    )


def compare(
    rates: Iterable[object], c: Fraction | int | float | str, k: int, S: int, P: int | None = None
) -> list[Row]:
    """One row per rate. P defaults to the offline model's admissible server count
    (ceil(1/(k c)) verifiers + 1 for the target-only chain), so that no task queues."""
    fc = to_time(c, "drafter latency c")  # exact: 0.1 means one tenth
    servers = offline.required_servers(k, fc) if P is None else P
    cfg = event_config(fc, k, S, servers)
    si, dsi = si_poly(cfg), dsi_poly(cfg)
    rows = []
    for r in rates:
        a = to_rate(r)
        rows.append(
            Row(
                a,
                fc,
                k,
                S,
                servers,
                nonsi_latency(cfg),
                offline.si_exact(a, fc, k, S),
                evaluate(si, a),
                offline.dsi_exact(a, fc, k, S),
                evaluate(dsi, a),
            )
        )
    return rows


def markdown(rows: Iterable[Row]) -> str:
    """A table of the rows, times as decimals (exact values are in the Row)."""
    head = (
        "| a | c | k | S | P | non-SI | SI offline | SI event | DSI offline | DSI event "
        "| DSI event - offline |\n|" + "---|" * 11
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r.a} | {r.c} | {r.k} | {r.S} | {r.P} | {float(r.nonsi):.3f} "
            f"| {float(r.offline_si):.3f} | {float(r.event_si):.3f} "
            f"| {float(r.offline_dsi):.3f} | {float(r.event_dsi):.3f} "
            f"| {float(r.event_dsi - r.offline_dsi):+.3f} |"
        )
    return "\n".join(lines)
