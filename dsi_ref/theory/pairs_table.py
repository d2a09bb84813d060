"""The model-pair table: measured latencies and acceptance rates in, predicted speedups out.

A pairs file (dsi_ref/data/pairs.json ships the paper's ten pairs) lists, per pair, the
target's and drafter's TTFT/TPOT in ms and the acceptance rate, each as
{"value": number | null, "provenance": str}. A number must say where it came from:
"entered by hand from <source>" or "measured here". A null value is unknown; its row is
printed as incomplete, never filled in.

Prediction: the offline cost model (dsi_ref.theory.offline) in target-TPOT units, with
c = drafter TPOT / target TPOT (TTFT is not part of that model), S tokens, SI's best k in
1..kmax and DSI's best k among those with required_servers(k, c) <= pmax. Latencies in ms
are the model's expectation times the target's TPOT. Optionally (`event_tokens` > 0) the
event-level exact expectation of dsi_ref.theory.event (another module, used if present) on a
shorter run, with TTFT and TPOT of both models, at the same lookaheads and P.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.fileio import read_json_file
from dsi_ref.theory.offline import dsi_grid, required_servers, si_grid

NUMBER_FIELDS = (
    "target_ttft_ms",
    "target_tpot_ms",
    "drafter_ttft_ms",
    "drafter_tpot_ms",
    "acceptance_rate",
)
NAME_FIELDS = ("target", "drafter", "dataset")
PROVENANCE_KINDS = ("entered by hand from ", "measured here")


@dataclass(frozen=True)
class Measured:
    """One number and where it came from; value None means unknown."""

    value: float | None
    provenance: str


@dataclass(frozen=True)
class Pair:
    target: str
    drafter: str
    dataset: str
    numbers: dict[str, Measured]

    @property
    def name(self) -> str:
        return f"{self.target} / {self.drafter} on {self.dataset}"

    def missing(self) -> tuple[str, ...]:
        """The fields the offline prediction needs and lacks."""
        needed = ("target_tpot_ms", "drafter_tpot_ms", "acceptance_rate")
        return tuple(f for f in needed if self.numbers[f].value is None)


def _measured(raw: Any, where: str) -> Measured:
    if not isinstance(raw, dict) or set(raw) != {"value", "provenance"}:
        raise InvalidConfig(f"{where} must be {{'value': ..., 'provenance': ...}}, got {show(raw)}")
    value, prov = raw["value"], raw["provenance"]
    if not isinstance(prov, str) or not prov.strip():
        raise InvalidConfig(f"{where}.provenance must be a non-empty string, got {show(prov)}")
    if value is None:
        return Measured(None, prov)
    number = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # a long int; JSON's 1e999 reads as inf
            number = float(value)
    if not math.isfinite(number):
        raise InvalidConfig(f"{where}.value must be a finite number or null, got {show(value)}")
    if not prov.startswith(PROVENANCE_KINDS):
        raise InvalidConfig(
            f"{where}.provenance must start with one of {PROVENANCE_KINDS}, got {show(prov)}"
        )
    if value < 0 or (where.endswith("acceptance_rate") and value > 1):
        raise InvalidConfig(f"{where}.value out of range, got {show(value)}")
    return Measured(float(value), prov)


def parse_pairs(doc: Any) -> list[Pair]:
    """Validate a pairs document (the JSON object) and return its pairs."""
    if not isinstance(doc, dict) or not isinstance(doc.get("pairs"), list):
        raise InvalidConfig(f"a pairs file needs a 'pairs' list, got {type(doc).__name__}")
    pairs = []
    for i, raw in enumerate(doc["pairs"]):
        if not isinstance(raw, dict):
            raise InvalidConfig(f"pairs[{i}] must be an object, got {show(raw)}")
        for f in (*NAME_FIELDS, *NUMBER_FIELDS):
            if f not in raw:
                raise InvalidConfig(f"pairs[{i}] lacks field {f!r}")
        for f in NAME_FIELDS:
            if not isinstance(raw[f], str) or not raw[f]:
                raise InvalidConfig(
                    f"pairs[{i}].{f} must be a non-empty string, got {show(raw[f])}"
                )
        numbers = {f: _measured(raw[f], f"pairs[{i}].{f}") for f in NUMBER_FIELDS}
        pairs.append(Pair(raw["target"], raw["drafter"], raw["dataset"], numbers))
    return pairs


def load_pairs(path: Path | None = None) -> list[Pair]:
    """Read a pairs file; None reads the shipped dsi_ref/data/pairs.json."""
    if path is not None:  # any file: every way it can fail is an InvalidConfig, never a crash
        return parse_pairs(read_json_file(path, "pairs file", InvalidConfig))
    try:
        doc = json.loads(resources.files("dsi_ref").joinpath("data/pairs.json").read_text())
    except (OSError, ValueError) as e:
        raise InvalidConfig(f"cannot read the shipped pairs file: {e}") from None
    return parse_pairs(doc)


@dataclass(frozen=True)
class Prediction:
    """The offline model's best lookaheads and expected latencies for one pair."""

    c: float
    a: float
    k_si: int
    k_dsi: int  # 0: no admissible k
    servers: int
    t_nonsi: float  # target-TPOT units
    t_si: float
    t_dsi: float  # NaN when k_dsi == 0
    event: dict[str, Fraction] | None = None  # algorithm -> exact expectation (ms)
    event_tokens: int = 0

    @property
    def dsi_vs_si(self) -> float:
        return self.t_si / self.t_dsi

    @property
    def dsi_vs_nonsi(self) -> float:
        return self.t_nonsi / self.t_dsi


def predict(a: float, c: float, S: int = 1000, kmax: int = 20, pmax: int = 7) -> Prediction:
    """Best k of SI (any k <= kmax) and of DSI (k <= kmax with required_servers <= pmax)."""
    if not 0 < c <= 1:
        raise InvalidConfig(f"drafter/target TPOT ratio c must lie in (0, 1], got {show(c)}")
    best_si, k_si = float("inf"), 0
    best_dsi, k_dsi, servers = float("nan"), 0, 0
    for k in range(1, kmax + 1):
        t = float(si_grid(a, c, k, S))
        if t < best_si:
            best_si, k_si = t, k
        need = required_servers(k, c)
        if need <= pmax:
            t = float(dsi_grid(a, c, k, S))
            if k_dsi == 0 or t < best_dsi:
                best_dsi, k_dsi, servers = t, k, need
    return Prediction(c, a, k_si, k_dsi, servers, float(S), best_si, best_dsi)


EventFn = Callable[[str, object, Any], Fraction]


def event_level_fn() -> EventFn | None:
    """dsi_ref.theory.event.expected_latency if that module provides it."""
    try:
        mod = importlib.import_module("dsi_ref.theory.event")
    except ImportError:
        return None
    fn = getattr(mod, "expected_latency", None)
    return fn if callable(fn) else None


def event_expectations(pair: Pair, p: Prediction, tokens: int) -> dict[str, Fraction] | None:
    """Event-level exact E[T] (ms) of the three algorithms on `tokens` tokens, if available."""
    fn = event_level_fn()
    if fn is None or p.k_dsi == 0:
        return None
    from dsi_ref.config import RunConfig
    from dsi_ref.latency import Latency

    v = {f: pair.numbers[f].value for f in NUMBER_FIELDS}
    if any(x is None for x in v.values()):
        return None
    target = Latency.of(v["target_ttft_ms"], v["target_tpot_ms"], "target")
    drafter = Latency.of(v["drafter_ttft_ms"], v["drafter_tpot_ms"], "drafter")
    out = {}
    for alg, k in (("nonsi", 1), ("si", p.k_si), ("dsi", p.k_dsi)):
        cfg = RunConfig(
            max_tokens=tokens,
            k=k,
            servers=p.servers,
            target_latency=target,
            drafter_latency=drafter,
        )
        out[alg] = fn(alg, v["acceptance_rate"], cfg)
    return out


@dataclass(frozen=True)
class Row:
    pair: Pair
    prediction: Prediction | None
    problem: str  # why there is no prediction ("" when there is one)


def evaluate(
    pairs: list[Pair], S: int = 1000, kmax: int = 20, pmax: int = 7, event_tokens: int = 0
) -> list[Row]:
    """A prediction per complete pair; incomplete pairs get the reason instead."""
    rows = []
    for pair in pairs:
        missing = pair.missing()
        if missing:
            rows.append(Row(pair, None, "incomplete: missing " + ", ".join(missing)))
            continue
        a = pair.numbers["acceptance_rate"].value
        tt = pair.numbers["target_tpot_ms"].value
        td = pair.numbers["drafter_tpot_ms"].value
        assert a is not None and tt is not None and td is not None  # checked by missing()
        if tt <= 0 or td <= 0 or td > tt:
            rows.append(Row(pair, None, f"offline model needs 0 < drafter TPOT {td} <= {tt}"))
            continue
        p = predict(a, td / tt, S, kmax, pmax)
        if event_tokens > 0:
            ev = event_expectations(pair, p, event_tokens)
            p = Prediction(
                p.c, p.a, p.k_si, p.k_dsi, p.servers, p.t_nonsi, p.t_si, p.t_dsi, ev, event_tokens
            )
        rows.append(Row(pair, p, ""))
    return rows


def format_table(rows: list[Row], S: int) -> str:
    """Plain-text table: one line per pair, then where every number came from."""
    w = max([len(r.pair.name) for r in rows] + [4])
    head = (
        f"{'pair':<{w}} {'a':>5} {'c':>6} {'kSI':>3} {'kDSI':>4} {'P':>2} "
        f"{'DSI/SI':>7} {'DSI/nonSI':>9} {'T_nonSI ms':>11} {'T_SI ms':>10} {'T_DSI ms':>10}"
    )
    lines = [f"offline model, S = {S} tokens (latencies: expectation x target TPOT)", head]
    for row in rows:
        p = row.prediction
        if p is None:
            lines.append(f"{row.pair.name:<{w}} {row.problem}")
            continue
        tpot = row.pair.numbers["target_tpot_ms"].value
        assert tpot is not None
        if p.k_dsi == 0:
            lines.append(f"{row.pair.name:<{w}} no lookahead k fits the server budget")
            continue
        lines.append(
            f"{row.pair.name:<{w}} {p.a:>5.3f} {p.c:>6.4f} {p.k_si:>3} {p.k_dsi:>4} "
            f"{p.servers:>2} {p.dsi_vs_si:>7.3f} {p.dsi_vs_nonsi:>9.3f} "
            f"{p.t_nonsi * tpot:>11.1f} {p.t_si * tpot:>10.1f} {p.t_dsi * tpot:>10.1f}"
        )
        if p.event is not None:
            e = p.event
            lines.append(
                f"{'':<{w}} event-level exact, {p.event_tokens} tokens: "
                f"DSI/SI {float(e['si'] / e['dsi']):.3f}, "
                f"DSI/nonSI {float(e['nonsi'] / e['dsi']):.3f}"
            )
    lines += ["", "provenance of the numbers:"]
    uses: dict[str, list[str]] = {}
    for row in rows:
        for f, m in row.pair.numbers.items():
            uses.setdefault(m.provenance, []).append(f"{row.pair.name}: {f}")
    total = sum(len(u) for u in uses.values())
    for prov, where in uses.items():
        lines.append(f"  {prov}")
        if len(where) == total:
            lines.append(f"    (all {total} numbers)")
        else:
            lines += [f"    {x}" for x in where]
    return "\n".join(lines)
