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
import dataclasses
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
# A number's provenance starts with one of these: typed in from a named source, or measured
# (`python -m gpu_runner profile` writes "measured by gpu_runner profile on <device> ...").
PROVENANCE_KINDS = ("entered by hand from ", "measured here", "measured by ")
FIELD_LABELS = {
    "target_ttft_ms": "target TTFT",
    "target_tpot_ms": "target TPOT",
    "drafter_ttft_ms": "drafter TTFT",
    "drafter_tpot_ms": "drafter TPOT",
    "acceptance_rate": "acceptance rate",
}
MAX_MS = 1e9  # a forward pass of 11 days: beyond it a number is a typo (or not in ms)
PAPER = "Timor et al., Distributed Speculative Inference, arXiv 2405.14105"


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
    top = 1 if where.endswith("acceptance_rate") else MAX_MS
    if not 0 <= value <= top:
        raise InvalidConfig(f"{where}.value out of range [0, {top:g}], got {show(value)}")
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


KMAX_MAX = 200
S_MAX = 100_000
EVENT_TOKENS_MAX = 200


def _bounded(value: object, name: str, lo: int, hi: int | None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < lo
        or (hi is not None and value > hi)
    ):
        span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise InvalidConfig(f"{name} must be an int {span}, got {show(value)}")


def check_sizes(S: object, kmax: object, pmax: object, event_tokens: object = 0) -> None:
    """The table's sizes: S tokens, lookaheads 1..kmax, P servers, event-level tokens."""
    _bounded(S, "S", 1, S_MAX)
    _bounded(kmax, "kmax", 1, KMAX_MAX)
    _bounded(pmax, "pmax", 1, None)
    _bounded(event_tokens, "event_tokens", 0, EVENT_TOKENS_MAX)


def predict(a: float, c: float, S: int = 1000, kmax: int = 20, pmax: int = 7) -> Prediction:
    """Best k of SI (any k <= kmax) and of DSI (k <= kmax with required_servers <= pmax)."""
    check_sizes(S, kmax, pmax)
    if isinstance(a, bool) or not isinstance(a, (int, float, Fraction)) or not 0 <= a <= 1:
        raise InvalidConfig(f"acceptance rate a must lie in [0, 1], got {show(a)}")
    if isinstance(c, bool) or not isinstance(c, (int, float, Fraction)) or not 0 < c <= 1:
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
    check_sizes(S, kmax, pmax, event_tokens)
    rows = []
    for pair in pairs:
        missing = pair.missing()
        if missing:
            rows.append(Row(pair, None, "missing " + ", ".join(missing)))  # the file's fields
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


# A complete row for illustration: NOT a measurement of any real pair. It shows what the
# table prints once a pair's numbers are known (a 10x faster drafter, acceptance 0.8).
EXAMPLE_PROVENANCE = "entered by hand from dsi_ref/theory/pairs_table.py (illustrative example)"
EXAMPLE_VALUES = {
    "target_ttft_ms": 40.0,
    "target_tpot_ms": 30.0,
    "drafter_ttft_ms": 6.0,
    "drafter_tpot_ms": 3.0,
    "acceptance_rate": 0.8,
}


def example_pair() -> Pair:
    """The illustrative pair of `format_table`'s example row (made-up, labelled numbers)."""
    numbers = {f: Measured(v, EXAMPLE_PROVENANCE) for f, v in EXAMPLE_VALUES.items()}
    return Pair("example-target", "example-drafter", "illustrative numbers", numbers)


def _head(w: int) -> str:
    return (
        f"{'pair':<{w}} {'a':>5} {'c':>6} {'kSI':>3} {'kDSI':>4} {'P':>2} "
        f"{'DSI/SI':>7} {'DSI/nonSI':>9} {'T_nonSI ms':>11} {'T_SI ms':>10} {'T_DSI ms':>10}"
    )


def _row_lines(row: Row, w: int) -> list[str]:
    p = row.prediction
    if p is None:
        return [f"{row.pair.name:<{w}} {row.problem}"]
    tpot = row.pair.numbers["target_tpot_ms"].value
    assert tpot is not None
    if p.k_dsi == 0:
        return [f"{row.pair.name:<{w}} no lookahead k fits the server budget"]
    lines = [
        f"{row.pair.name:<{w}} {p.a:>5.3f} {p.c:>6.4f} {p.k_si:>3} {p.k_dsi:>4} "
        f"{p.servers:>2} {p.dsi_vs_si:>7.3f} {p.dsi_vs_nonsi:>9.3f} "
        f"{p.t_nonsi * tpot:>11.1f} {p.t_si * tpot:>10.1f} {p.t_dsi * tpot:>10.1f}"
    ]
    if p.event is not None:
        e = p.event
        lines.append(
            f"{'':<{w}} event-level exact, {p.event_tokens} tokens: "
            f"DSI/SI {float(e['si'] / e['dsi']):.3f}, "
            f"DSI/nonSI {float(e['nonsi'] / e['dsi']):.3f}"
        )
    return lines


def how_to_complete(incomplete: list[Row]) -> list[str]:
    """What an incomplete table lacks, where the numbers are, and how to supply them."""
    fields = sorted({f for r in incomplete for f in r.pair.missing()}, key=NUMBER_FIELDS.index)
    return [
        f"{len(incomplete)} pair(s) lack numbers the prediction needs: "
        + ", ".join(f"{FIELD_LABELS[f]} ({f})" for f in fields)
        + ".",
        f"  Where they are: the paper ({PAPER})",
        "  reports them per model pair in its table of pairs: TTFT and TPOT (ms) of the target",
        "  and of the drafter, and the acceptance rate.",
        "  How to supply them (both give a file in the format of dsi_ref/data/pairs.json):",
        '  - copy that file, set each number to {"value": 31.5, "provenance": "entered by hand',
        "    from <source, e.g. the paper's table>\"} and run: python -m dsi_ref table --file FILE",
        "  - or measure a pair on your GPU with `python -m gpu_runner profile`, which writes such",
        "    a file, then run: python -m dsi_ref table --file FILE",
    ] + (
        [
            "  profile measures latencies only: give the acceptance rate with --acceptance A",
            "  (and --acceptance-source TEXT saying where A comes from) when you run it.",
        ]
        if "acceptance_rate" in fields
        else []
    )


def format_table(
    rows: list[Row], S: int, example: bool = True, kmax: int = 20, pmax: int = 7
) -> str:
    """Plain-text table: one line per pair, what is missing, and where each number came from.

    If no row could be predicted and `example` is set, one complete row computed from
    illustrative numbers (`example_pair`, labelled as such; same S, kmax and P) shows what a
    filled table gives.
    """
    names = [r.pair.name for r in rows]
    ex_rows: list[Row] = []
    if example and rows and all(r.prediction is None for r in rows):
        ex_rows = evaluate([example_pair()], S, kmax, pmax)
        names.append(ex_rows[0].pair.name)
    w = max([len(n) for n in names] + [4])
    lines = [f"offline model, S = {S} tokens (latencies: expectation x target TPOT)", _head(w)]
    for row in rows:
        lines += _row_lines(row, w)
    incomplete = [r for r in rows if r.prediction is None and r.pair.missing()]
    if incomplete:
        lines += ["", *how_to_complete(incomplete)]
    if ex_rows:
        lines += [
            "",
            "Example of a complete row (illustrative numbers, not a measurement of any model:",
            "target TTFT 40 ms, TPOT 30 ms; drafter TTFT 6 ms, TPOT 3 ms; acceptance rate 0.8):",
            _head(w),
            *_row_lines(ex_rows[0], w),
        ]
    known = [(r, f, m) for r in rows for f, m in r.pair.numbers.items() if m.value is not None]
    if known:
        lines += ["", "where the numbers come from:"]
        uses: dict[str, list[str]] = {}
        for row, f, m in known:
            uses.setdefault(m.provenance, []).append(f"{row.pair.name}: {FIELD_LABELS[f]}")
        for prov, where in uses.items():
            lines.append(f"  {prov}")
            if len(where) == len(known):
                lines.append(f"    (all {len(known)} numbers)")
            else:
                lines += [f"    {x}" for x in where]
    return "\n".join(lines)


# ----- measured acceptance from a run's --json output ----------------------------


def acceptance_from_run(doc: Any, where: str) -> Measured:
    """The acceptance rate a run recorded: accepted / verified drafts pooled over every
    result of the file that verified drafts (`dsi_ref run --json`: {"results": [...]};
    `gpu_runner run --json FILE`: [...]), from the counts by block position that each
    summary carries (dsi_ref.result). InvalidConfig naming the file when it has none."""
    rows = doc.get("results") if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidConfig(
            f"{where} is not a run's --json output (a 'results' list, or a list of results)"
        )
    accepted = verified = 0
    used = []
    for r in rows:
        acc, ver = r.get("accepted_by_position"), r.get("verdicts_by_position")
        if acc is None and ver is None:
            continue
        ok = (
            isinstance(acc, list)
            and isinstance(ver, list)
            and len(acc) == len(ver)
            and all(type(x) is int and x >= 0 for x in (*acc, *ver))
            and all(a <= v for a, v in zip(acc, ver, strict=True))
        )
        if not ok:
            raise InvalidConfig(
                f"{where}: result {show(r.get('algorithm'))} has malformed acceptance counts "
                f"(accepted_by_position {show(acc)}, verdicts_by_position {show(ver)})"
            )
        if sum(ver):
            accepted += sum(acc)
            verified += sum(ver)
            used.append(str(r.get("algorithm", "?")))
    if not verified:
        raise InvalidConfig(
            f"{where} records no verified draft (no result with verdicts_by_position: "
            "run SI or DSI with --json)"
        )
    return Measured(
        accepted / verified,
        f"measured by the run(s) in {where} ({', '.join(used)}): "
        f"{accepted} of {verified} drafts accepted",
    )


def load_acceptance(path: Path) -> Measured:
    """`acceptance_from_run` of the JSON file at `path` (every failure an InvalidConfig)."""
    return acceptance_from_run(read_json_file(path, "run JSON", InvalidConfig), str(path))


def with_acceptance(pairs: list[Pair], acceptance: Measured) -> list[Pair]:
    """Every pair with its acceptance rate replaced by a measured one."""
    return [
        dataclasses.replace(p, numbers={**p.numbers, "acceptance_rate": acceptance}) for p in pairs
    ]
