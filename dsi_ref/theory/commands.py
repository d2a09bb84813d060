"""CLI subcommands of the latency theory (heatmap, table), registered by dsi_ref.cli."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from dsi_ref.errors import DSIError


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
    hm.add_argument("--grid", type=int, default=21, help="grid points per axis (default 21)")
    hm.add_argument("--kmax", type=int, default=20, help="largest lookahead tried (default 20)")
    hm.add_argument("--pmax", type=int, default=7, help="target servers available to DSI")
    hm.add_argument("--S", type=int, default=1000, help="tokens generated (default 1000)")
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
    tb.add_argument("--kmax", type=int, default=20, help="largest lookahead tried (default 20)")
    tb.add_argument("--pmax", type=int, default=7, help="target servers available to DSI")
    tb.add_argument("--S", type=int, default=1000, help="tokens generated (default 1000)")
    tb.add_argument(
        "--event-tokens",
        type=int,
        default=0,
        help="also print the event-level exact expectation on this many tokens (slow; 0: off)",
    )
    tb.set_defaults(func=run_table)


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
    from dsi_ref.theory.heatmap import PANEL_TITLES, compute, plot, progress_bar, write_csv

    prefix = output_prefix(ns.out)
    csv_path = prefix.with_name(prefix.name + ".csv")
    png_path = prefix.with_name(prefix.name + ".png")
    try:  # before the grid: a bad --out should not cost the computation
        prefix.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(
            f"error: cannot create output directory {str(prefix.parent)!r}: {e.strerror or e}",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    try:
        h = compute(
            grid=ns.grid,
            kmax=ns.kmax,
            pmax=ns.pmax,
            S=ns.S,
            chain=not ns.paper_servers,
            si_admissible_only=ns.si_same_k,
            progress=progress_bar(),
        )
    except DSIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    computed = time.perf_counter() - start
    for path, write in ((csv_path, write_csv), (png_path, plot)):
        try:
            write(h, path)  # atomically: an interrupted run leaves no half file
        except OSError as e:
            print(f"error: cannot write {str(path)!r}: {e.strerror or e}", file=sys.stderr)
            return 2
    for panel, (lo, hi) in h.ranges().items():
        print(f"{PANEL_TITLES[panel]:<24} min {lo:.4f}  max {hi:.4f}")
    print(f"wrote {png_path} and {csv_path} (grid {computed:.1f} s)")
    return 0


def run_table(ns: argparse.Namespace) -> int:
    from dsi_ref.theory.pairs_table import evaluate, format_table, load_pairs

    try:
        rows = evaluate(load_pairs(ns.file), ns.S, ns.kmax, ns.pmax, ns.event_tokens)
    except DSIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows, ns.S))
    return 0
