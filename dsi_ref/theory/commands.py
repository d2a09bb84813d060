"""CLI subcommands of the latency theory (heatmap, table), registered by dsi_ref.cli."""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsi_ref.errors import DSIError, OutputError
from dsi_ref.outputs import check_output, write_bytes, write_outputs

# The ranges of the integer flags (checked again, with the work they imply, by the library).
GRID_MAX = 201
KMAX_MAX = 200
S_MAX = 100_000
EVENT_TOKENS_MAX = 200
REPS_MAX = 10_000
# "offline": the authors' cost model (dsi_ref.theory.heatmap); the others time DSI on the
# virtual clock (dsi_ref.theory.clock_heatmap)
HEATMAP_CLOCKS = ("offline", "preemptive", "non-preemptive", "layer-preemptive")
LAYERS_MAX = 10**6
# Defaults per model: (grid, kmax, pmax, S); the virtual clock's are sized for ~15 s.
OFFLINE_DEFAULTS = (21, 20, 7, 1000)
CLOCK_DEFAULTS = (11, 10, 2, 64)


def install_line() -> str:
    """The command that installs the plotting extra into this very interpreter."""
    return f"{shlex.quote(sys.executable)} -m pip install -e '.[plot]'"


def missing_modules(names: tuple[str, ...]) -> list[str]:
    """Those of `names` that cannot be imported."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def require(command: str, names: tuple[str, ...]) -> bool:
    """True if `names` import; else print how to install them (one line) and return False."""
    missing = missing_modules(names)
    if not missing:
        return True
    print(
        f"error: `python -m dsi_ref {command}` needs {' and '.join(names)} "
        f"({', '.join(missing)} not installed); from the repository root run: {install_line()}",
        file=sys.stderr,
    )
    return False


def _int_flag(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in [lo, hi]; argparse prints the message and the flag."""

    def parse(text: str) -> int:
        t = text.strip()
        try:
            n = int(t) if len(t) <= 100 else None
        except ValueError:
            n = None
        if n is None or n < lo or (hi is not None and n > hi):
            span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            # an int out of range is shown as a number, anything else as the text typed
            shown = str(n) if n is not None else repr(t if len(t) <= 40 else t[:40] + "...")
            raise argparse.ArgumentTypeError(f"must be an int {span}, got {shown}")
        return n

    return parse


def register(sub: Any) -> None:
    """Add this module's subcommands to `sub` (an argparse subparsers object).

    Each added parser sets `func=<callable(argparse.Namespace) -> int>`.
    """
    hm = sub.add_parser(
        "heatmap",
        help="Figure 2: SI/DSI/non-SI speedups over drafter latency and acceptance rate",
        description="Writes PREFIX.png (4 panels) and PREFIX.csv (one row per cell).",
    )
    hm.add_argument(
        "--out",
        default="out/figure2",
        help="output prefix (default out/figure2); a directory (or a name ending in /) "
        "gets DIR/figure2.png and DIR/figure2.csv",
    )
    hm.add_argument(
        "--grid",
        type=_int_flag(2, GRID_MAX),
        default=None,
        help=f"grid points per axis, 2..{GRID_MAX} (default 21; 11 on a virtual clock)",
    )
    hm.add_argument(
        "--kmax",
        type=_int_flag(1, KMAX_MAX),
        default=None,
        help=f"largest lookahead tried, 1..{KMAX_MAX} (default 20; 10 on a virtual clock)",
    )
    hm.add_argument(
        "--pmax",
        type=_int_flag(1),
        default=None,
        help="target servers available to DSI (default 7; on a virtual clock DSI runs "
        "with exactly this many, default 2)",
    )
    hm.add_argument(
        "--S",
        type=_int_flag(1, S_MAX),
        default=None,
        help=f"tokens, 1..{S_MAX} (default 1000; 64 on a virtual clock)",
    )
    hm.add_argument(
        "--clock",
        choices=HEATMAP_CLOCKS,
        default="offline",
        help="offline (default): the paper's cost model, preemptive, the paper's policy; "
        "else DSI is timed on the virtual clock with --policy (docs/figure2.md)",
    )
    hm.add_argument(
        "--policy",
        default=None,
        help="DSI policy on a virtual clock (default: paper on the preemptive clock, "
        "the library default elsewhere; dsi_ref/policies.py)",
    )
    hm.add_argument(
        "--reps",
        type=_int_flag(1, REPS_MAX),
        default=4,
        help=f"acceptance patterns per cell on a virtual clock, 1..{REPS_MAX} (default 4)",
    )
    hm.add_argument(
        "--layers",
        type=_int_flag(1, LAYERS_MAX),
        default=None,
        help="layers per pass on the layer-preemptive clock (required there): a cancelled "
        "pass stops at its next layer boundary",
    )
    hm.add_argument(
        "--paper-servers",
        action="store_true",
        help="count ceil(1/(k c)) servers, without the target-only chain's server",
    )
    hm.add_argument(
        "--si-same-k",
        action="store_true",
        help="restrict SI to the lookaheads DSI may use (the authors' pipeline)",
    )
    hm.set_defaults(func=run_heatmap)

    tb = sub.add_parser(
        "table",
        help="predicted DSI/SI and DSI/non-SI speedups for measured model pairs",
        description="Reads a pairs file (default: the shipped dsi_ref/data/pairs.json).",
    )
    tb.add_argument("--file", type=Path, default=None, help="pairs JSON file")
    tb.add_argument(
        "--kmax",
        type=_int_flag(1, KMAX_MAX),
        default=20,
        help=f"largest lookahead tried, 1..{KMAX_MAX} (default 20)",
    )
    tb.add_argument("--pmax", type=_int_flag(1), default=7, help="target servers available to DSI")
    tb.add_argument(
        "--S", type=_int_flag(1, S_MAX), default=1000, help=f"tokens, 1..{S_MAX} (default 1000)"
    )
    tb.add_argument(
        "--event-tokens",
        type=_int_flag(0, EVENT_TOKENS_MAX),
        default=0,
        help=(
            "also print the event-level exact expectation on this many tokens, "
            f"0..{EVENT_TOKENS_MAX} (slow; 0: off)"
        ),
    )
    tb.add_argument(
        "--acceptance-from",
        type=Path,
        default=None,
        metavar="RUN.json",
        help="use the acceptance rate measured by a run (its --json output, dsi_ref or "
        "gpu_runner) for every pair instead of the file's",
    )
    tb.set_defaults(func=run_table)

    pk = sub.add_parser(
        "pick",
        help="which algorithm, DSI policy and k to run for your c, a and P, and what it gives",
        description="Prints non-SI's and SI's exact expected latency and every DSI policy's "
        "on the virtual clock (estimated over seeded acceptance patterns, with SI as the "
        "control variate), each at its best k, "
        "and the recommendation (docs/figure2.md).",
    )
    pk.add_argument("--c", required=True, help="drafter pass / target pass, in (0, 1]")
    pk.add_argument("--a", required=True, help="acceptance rate, in [0, 1]")
    pk.add_argument("--P", type=_int_flag(1, 1024), required=True, help="target servers")
    pk.add_argument(
        "--clock",
        choices=HEATMAP_CLOCKS[1:],
        default="non-preemptive",
        help="how a cancelled pass ends (default non-preemptive: as on a GPU)",
    )
    pk.add_argument(
        "--layers",
        type=_int_flag(1, LAYERS_MAX),
        default=None,
        help="layers per pass, with --clock layer-preemptive",
    )
    pk.add_argument("--n", type=_int_flag(1, 10_000), default=64, help="tokens (default 64)")
    pk.add_argument(
        "--reps", type=_int_flag(1, REPS_MAX), default=16, help="acceptance patterns (default 16)"
    )
    pk.add_argument(
        "--kmax", type=_int_flag(1, 64), default=10, help="largest lookahead tried (default 10)"
    )
    pk.set_defaults(func=run_pick)


DEFAULT_STEM = "figure2"


def output_prefix(out: str) -> Path:
    """The PREFIX of PREFIX.png and PREFIX.csv that `--out` names.

    A directory (existing, named with a trailing slash, or "", ".", ".."): DIR/figure2,
    so `--out adir/` writes inside adir, never adir.csv beside it.
    """
    p = Path(out)
    if out.endswith(("/", os.sep)) or p.name in ("", ".", "..") or p.is_dir():
        return p / DEFAULT_STEM
    return p


def run_heatmap(ns: argparse.Namespace) -> int:
    if not require("heatmap", ("numpy", "matplotlib")):
        return 2
    from dsi_ref.theory.heatmap import (
        PANEL_TITLES,
        compute,
        progress_bar,
        render_csv,
        render_png,
        strip_note,
    )

    try:  # flags that do not go together: refused before the output check and the work
        clocked = _heatmap_clock(ns)
    except DSIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    prefix = output_prefix(ns.out)
    csv_path = prefix.with_name(prefix.name + ".csv")
    png_path = prefix.with_name(prefix.name + ".png")
    try:  # before the grid: a bad --out should not cost the computation
        csv_out = check_output(csv_path, "CSV file")
        png_out = check_output(png_path, "figure")
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    grid, kmax, pmax, S = (
        d if v is None else v
        for v, d in zip(
            (ns.grid, ns.kmax, ns.pmax, ns.S),
            OFFLINE_DEFAULTS if clocked is None else CLOCK_DEFAULTS,
            strict=True,
        )
    )
    try:
        if clocked is None:
            h = compute(
                grid=grid,
                kmax=kmax,
                pmax=pmax,
                S=S,
                chain=not ns.paper_servers,
                si_admissible_only=ns.si_same_k,
                progress=progress_bar(),
            )
        else:
            from dsi_ref.theory.clock_heatmap import compute_on_clock

            clock, policy = clocked
            h = compute_on_clock(
                clock, policy, grid, kmax, pmax, S, ns.reps, progress=progress_bar(label="c")
            )
    except DSIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    computed = time.perf_counter() - start
    try:  # both rendered first, then written together: a failure leaves neither file
        write_outputs(
            [(csv_out, write_bytes(render_csv(h))), (png_out, write_bytes(render_png(h)))]
        )
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for panel, (lo, hi) in h.ranges().items():
        print(f"{PANEL_TITLES[panel]:<48} min {lo:.4f}  max {hi:.4f}")
    note = strip_note(h)
    if note:
        print(note)
    print(f"wrote {png_path} and {csv_path} (grid {computed:.1f} s)")
    return 0


def _heatmap_clock(ns: argparse.Namespace) -> tuple[Any, str] | None:
    """(Clock, policy) for a virtual-clock heatmap, None for the offline model; DSIError
    naming the flag that does not fit the clock."""
    from dsi_ref.errors import InvalidConfig
    from dsi_ref.policies import DEFAULT_POLICY, get_policy

    if ns.clock == "offline":
        if ns.policy not in (None, "paper"):
            raise InvalidConfig(
                f"--policy {ns.policy} needs a virtual clock: the offline model is the paper's "
                "policy (add --clock preemptive or --clock non-preemptive)"
            )
        _clock(ns)  # --layers without --clock layer-preemptive is refused here too
        return None
    for flag, on in (("--paper-servers", ns.paper_servers), ("--si-same-k", ns.si_same_k)):
        if on:
            raise InvalidConfig(f"{flag} is the offline model's rule, not for --clock {ns.clock}")

    policy = ns.policy or ("paper" if ns.clock == "preemptive" else DEFAULT_POLICY)
    get_policy(policy)
    return _clock(ns), policy


def _clock(ns: argparse.Namespace) -> Any:
    """The Clock of --clock and --layers; InvalidConfig naming --layers where it is wrong."""
    from dsi_ref.errors import InvalidConfig
    from dsi_ref.theory.clocked import Clock

    if ns.clock == "layer-preemptive" and ns.layers is None:
        raise InvalidConfig("--clock layer-preemptive needs --layers N (layers per pass)")
    if ns.clock != "layer-preemptive" and ns.layers is not None:
        raise InvalidConfig(f"--layers {ns.layers} needs --clock layer-preemptive")
    return None if ns.clock == "offline" else Clock(ns.clock, ns.layers)


def run_table(ns: argparse.Namespace) -> int:
    if not require("table", ("numpy",)):
        return 2
    from dsi_ref.theory.pairs_table import (
        evaluate,
        format_table,
        load_acceptance,
        load_pairs,
        with_acceptance,
    )

    try:
        pairs = load_pairs(ns.file)
        if ns.acceptance_from is not None:
            pairs = with_acceptance(pairs, load_acceptance(ns.acceptance_from))
        rows = evaluate(pairs, ns.S, ns.kmax, ns.pmax, ns.event_tokens)
    except DSIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows, ns.S, kmax=ns.kmax, pmax=ns.pmax))
    return 0


def run_pick(ns: argparse.Namespace) -> int:
    if not require("pick", ("numpy",)):
        return 2
    from dsi_ref.theory.pick import format_pick, pick

    try:
        p = pick(ns.c, ns.a, ns.P, _clock(ns), n=ns.n, reps=ns.reps, kmax=ns.kmax)
    except DSIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_pick(p))
    return 0
