"""python -m proofs check [--only T1,T2]: run every machine check and print a table."""

from __future__ import annotations

import argparse
import sys

from proofs.registry import run_checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m proofs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="run the machine checks of every theorem")
    c.add_argument("--only", default="", help="comma-separated theorem ids, e.g. T1,T6")
    args = ap.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    results = run_checks(only)
    if not results:
        print(f"no checks matched --only {args.only!r}", file=sys.stderr)
        return 2
    w = max(len(r.name) for r in results)
    print(f"{'theorem':8} {'check':{w}} {'method':12} {'instances':>10} {'result':7} seconds")
    for r in results:
        print(
            f"{r.theorem:8} {r.name:{w}} {r.method:12} {r.instances:>10} "
            f"{'ok' if r.ok else 'FAIL':7} {r.seconds:7.2f}"
        )
        if not r.ok:
            print(f"    {r.detail}")
    bad = sum(not r.ok for r in results)
    print(f"{len(results) - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
