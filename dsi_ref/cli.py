"""`python -m dsi_ref`: run, check and demo subcommands (plus the latency-theory ones).

A thin shell: it parses flags into a `RunConfig` and a built-in pair, calls the
library, and prints. Bad input of any kind prints one line `error: ...` naming
the bad value and exits 2; a failed trace check exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, NoReturn, TextIO

from dsi_ref.config import MAX_SERVERS, MAX_TOKENS, SEED_LIMIT, RunConfig
from dsi_ref.demo import (
    ALGORITHMS,
    DEMO_MAX_TOKENS,
    DEMO_PAIR,
    LABELS,
    LOSSLESS_NOTE,
    Speedup,
    demo_config,
    run_algorithm,
    speedups,
)
from dsi_ref.errors import DSIError, InvalidConfig, TraceError, show
from dsi_ref.fileio import MAX_JSON_BYTES
from dsi_ref.latency import MAX_NUMBER_CHARS, Latency, parse_fraction
from dsi_ref.outputs import OutputPath, check_outputs, per_name_paths, write_outputs
from dsi_ref.pairs import DEFAULT_PAIR, PAIRS, Pair, get_pair
from dsi_ref.policies import DEFAULT_POLICY, POLICIES, check_confidence
from dsi_ref.result import RunResult
from dsi_ref.sampling import SamplingConfig
from dsi_ref.sampling_rule import DSI_CHECK_GREEDY, DSI_CLI, Spelling, check_sampling
from dsi_ref.trace import DEFAULT_TOL, load_trace, trace_writer

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
SHOWN_TOKENS = 20

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A flag argparse rejected (unknown option, a non-integer --k, ...)."""


class _Parser(argparse.ArgumentParser):
    # argparse would print usage and call sys.exit; main() prints one line instead.
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# ----- parsing helpers ---------------------------------------------------------


def _number(text: str, flag: str) -> Fraction:
    return parse_fraction(text, flag)  # InvalidConfig naming the flag and the text


def _int_arg(lo: int, hi: int | None = None, span: str = "") -> Callable[[str], int]:
    """An argparse type: an int in [lo, hi], refused with the range and the text if not."""
    span = span or (f">= {lo}" if hi is None else f"in [{lo}, {hi}]")

    def parse(text: str) -> int:
        t = text.strip()
        try:
            n = int(t) if len(t) <= MAX_NUMBER_CHARS else None
        except ValueError:
            n = None
        if n is None or n < lo or (hi is not None and n > hi):
            # an int out of range is shown as a number, anything else as the text typed
            shown = str(n) if n is not None else repr(t if len(t) <= 40 else t[:40] + "...")
            raise argparse.ArgumentTypeError(f"must be an int {span}, got {shown}")
        return n

    return parse


def _noise_arg(text: str) -> str:
    """--noise: checked here (a number in [0, 1]) and passed on as the text."""
    try:
        v = parse_fraction(text, "noise")
    except InvalidConfig as e:  # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(e)) from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text!r}")
    return text


def _count(text: str) -> int:
    """An argparse type: an int >= 0 (how many tokens or violations to print)."""
    try:
        n = int(text) if len(text) <= MAX_NUMBER_CHARS else -1
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be an int >= 0, got {text[:40]!r}")
    return n


def _positive(text: str) -> int:
    """An argparse type: an int >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return n


def _tolerance(text: str) -> float:
    try:
        tol = float(text)
    except ValueError:
        tol = math.nan
    if not (math.isfinite(tol) and tol >= 0):  # a NaN tolerance would accept anything
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text[:40]!r}")
    return tol


def _warp(
    greedy: bool,
    temperature: str,
    top_k: int | None,
    top_p: str | None,
    names: Spelling = DSI_CLI,
) -> SamplingConfig:
    """The settings as typed, checked by the rule both packages share (dsi_ref.sampling_rule)."""
    t = _number(temperature, names.temperature)
    p = None if top_p is None else _number(top_p, names.top_p)
    typed = {"temperature": temperature, **({} if top_p is None else {"top_p": top_p})}
    check_sampling(greedy, t, top_k, p, names, typed)  # errors name the flags, not API fields
    return SamplingConfig(greedy=greedy, temperature=t, top_k=top_k, top_p=p)


def _sampling(args: argparse.Namespace) -> SamplingConfig:
    return _warp(args.greedy, args.temperature, args.top_k, args.top_p)


def _prompt(text: str) -> tuple[int, ...]:
    parts = [s for s in text.replace(",", " ").split() if s]
    try:
        if any(len(s) > MAX_NUMBER_CHARS for s in parts):
            raise ValueError("token id too long")
        return tuple(int(s) for s in parts)
    except ValueError as e:
        shown = text if len(text) <= 60 else text[:60] + "..."
        raise InvalidConfig(f"--prompt must be token ids like '3,1,4', got {shown!r}") from e


def _config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        max_tokens=args.max_tokens,
        k=args.k,
        servers=args.servers,
        seed=args.seed,
        sampling=_sampling(args),
        target_latency=Latency.of(args.target_ttft, args.target_tpot, "target"),
        drafter_latency=Latency.of(args.drafter_ttft, args.drafter_tpot, "drafter"),
        prompt=_prompt(args.prompt),
        point_mass_proposal=args.point_mass,
        policy=args.policy,
        preemptive=not args.no_preemption,
        draft_confidence=(
            None
            if args.draft_confidence is None
            else check_confidence(
                _number(args.draft_confidence, "--draft-confidence"), "--draft-confidence"
            )
        ),
    )


# ----- output ------------------------------------------------------------------


def _noise(pair: Pair) -> str:
    return str(pair.noise) if isinstance(pair.noise, Fraction) else f"{pair.noise:g}"


def _pair_line(pair: Pair) -> str:
    return (
        f"pair {pair.name}: {pair.description}; noise {_noise(pair)}, "
        f"mean acceptance rate (T=1) {float(pair.mean_acceptance()):.3f}"
    )


def _config_line(cfg: RunConfig) -> str:
    t, d = cfg.target_latency, cfg.drafter_latency
    extra = ", point-mass proposals" if cfg.point_mass_proposal else ""
    prompt = f", prompt {list(cfg.prompt)}" if cfg.prompt else ""
    if cfg.draft_confidence is not None:
        extra += f", draft confidence {cfg.draft_confidence}"
    if not cfg.preemptive or cfg.policy != DEFAULT_POLICY:  # shown when not the defaults
        clock = "preemptive" if cfg.preemptive else "non-preemptive"
        extra += f", policy {cfg.policy}, {clock} clock"
    return (
        f"{cfg.max_tokens} tokens, k={cfg.k}, P={cfg.servers} servers, seed {cfg.seed}, "
        f"{cfg.sampling.describe()}{extra}{prompt}; "
        f"target TTFT {t.ttft} TPOT {t.tpot}, drafter TTFT {d.ttft} TPOT {d.tpot}"
    )


def _speed(x: Fraction | None) -> str:
    return "-" if x is None else f"{float(x):.3f}x"


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def acceptance_lines(label: str, rates: Sequence[float], shown: int = 8) -> list[str]:
    """The measured acceptance by block position, one line (dsi_ref.result)."""
    if not rates:
        return []
    more = " ..." if len(rates) > shown else ""
    cells = " ".join(f"{x:.2f}" for x in rates[:shown])
    return [f"  {label:<6} {cells}{more}"]


def _table(results: list[RunResult], ups: dict[str, Speedup]) -> list[str]:
    """Metrics as rows, algorithms as columns."""
    rows: list[tuple[str, list[str]]] = [
        ("latency (exact)", [str(r.latency) for r in results]),
        ("latency", [f"{float(r.latency):.4f}" for r in results]),
        ("per-token mean", [f"{float(r.latency) / len(r.tokens):.4f}" for r in results]),
        ("target forwards", [str(r.counters.target_forwards) for r in results]),
        ("drafter forwards", [str(r.counters.drafter_forwards) for r in results]),
        ("drafts accepted", [str(r.counters.drafts_accepted) for r in results]),
        ("drafts rejected", [str(r.counters.drafts_rejected) for r in results]),
        ("drafts wasted", [str(r.counters.drafts_wasted) for r in results]),
        ("acceptance", [_rate(r.counters.acceptance()) for r in results]),
        ("tasks cancelled", [str(r.counters.tasks_cancelled) for r in results]),
        ("tasks queued", [str(r.counters.tasks_queued) for r in results]),
        ("speedup vs non-SI", [_speed(ups[r.algorithm].vs_nonsi) for r in results]),
        ("speedup vs SI", [_speed(ups[r.algorithm].vs_si) for r in results]),
    ]
    head = ("algorithm", [LABELS[r.algorithm] for r in results])
    width = max(len(name) for name, _ in rows)
    cols = [max(len(row[1][i]) for row in [head, *rows]) for i in range(len(results))]
    return [
        name.ljust(width) + "".join("  " + v.rjust(w) for v, w in zip(vals, cols, strict=True))
        for name, vals in [head, *rows]
    ]


def _tokens_lines(results: list[RunResult], shown: int) -> list[str]:
    n = max(len(r.tokens) for r in results)
    lines = [f"tokens (first {min(shown, n)} of {n}):"]
    for r in results:
        more = " ..." if len(r.tokens) > shown else ""
        lines.append(f"  {LABELS[r.algorithm]:<6} {' '.join(map(str, r.tokens[:shown]))}{more}")
    return lines


def _speedup_json(ups: dict[str, Speedup]) -> dict[str, dict[str, str | float | None]]:
    out: dict[str, dict[str, str | float | None]] = {}
    for alg, s in ups.items():
        out[alg] = {
            "vs_nonsi": None if s.vs_nonsi is None else str(s.vs_nonsi),
            "vs_nonsi_float": None if s.vs_nonsi is None else float(s.vs_nonsi),
            "vs_si": None if s.vs_si is None else str(s.vs_si),
            "vs_si_float": None if s.vs_si is None else float(s.vs_si),
        }
    return out


def _trace_paths(path: str | None, algorithms: Sequence[str]) -> dict[str, OutputPath]:
    """Where each algorithm's trace goes (dsi_ref.outputs.per_name_paths), checked now:
    a bad path fails before any run (and creates missing directories)."""
    if path is None:
        return {}
    return check_outputs(per_name_paths(path, algorithms, "--trace"), "trace file")


def _run_all(
    pair: Pair,
    cfg: RunConfig,
    algorithms: Sequence[str],
    trace: str | None,
    progress: TextIO | None = None,
) -> tuple[list[RunResult], dict[str, OutputPath]]:
    paths = _trace_paths(trace, algorithms)
    results = []
    for a in algorithms:
        start = time.perf_counter()
        results.append(run_algorithm(a, pair, cfg, record=a in paths))
        if progress is not None:  # wall time of this process, not the virtual clock
            took = time.perf_counter() - start
            progress.write(f"{LABELS[a]}: {cfg.max_tokens} tokens in {took:.1f} s\n")
    # All or nothing: every trace is staged before any file is replaced.
    write_outputs(
        [
            (paths[r.algorithm], trace_writer(r.trace, paths[r.algorithm]))
            for r in results
            if r.algorithm in paths and r.trace is not None
        ]
    )
    return results, paths


# ----- subcommands -------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    cfg = _config(args)
    pair = get_pair(args.pair, args.noise)
    algorithms = ALGORITHMS if args.algorithm == "all" else (args.algorithm,)
    progress = sys.stderr if args.progress else None
    results, paths = _run_all(pair, cfg, algorithms, args.trace, progress)
    ups = speedups(results)
    if args.json:
        doc: dict[str, Any] = {
            "pair": {
                "name": pair.name,
                "description": pair.description,
                "noise": _noise(pair),
                "mean_acceptance": float(pair.mean_acceptance()),
                "exact": pair.exact,
            },
            "results": [r.summary() for r in results],
            "speedups": _speedup_json(ups),
            "traces": {a: str(p) for a, p in paths.items()},
        }
        out.write(json.dumps(doc, indent=1) + "\n")
        return EXIT_OK
    lines = [_pair_line(pair), _config_line(cfg), "", *_table(results, ups), ""]
    by_pos = [
        line
        for r in results
        for line in acceptance_lines(LABELS[r.algorithm], r.counters.acceptance_by_position())
    ]
    if by_pos:
        lines += ["acceptance by block position (0, 1, ...):", *by_pos, ""]
    lines += _tokens_lines(results, args.show_tokens)
    lines += [f"trace ({LABELS[a]}) written to {p}" for a, p in paths.items()]
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _check_sampling(args: argparse.Namespace, trace: dict[str, Any]) -> SamplingConfig | None:
    """The warp the trace was run with, for rule 8; None: the checker's default (T=1)."""
    if args.temperature is None and args.top_k is None and args.top_p is None:
        return None
    greedy = trace.get("greedy") is True  # the trace header says how it verified
    names = DSI_CHECK_GREEDY if greedy else DSI_CLI
    return _warp(greedy, args.temperature or "1", args.top_k, args.top_p, names)


def _check_pair_vocab(name: str, pair: Pair, trace: dict[str, Any]) -> None:
    """Refuse a pair whose vocabulary is not the trace's, before rule 8 meets a bad token."""
    v = trace.get("vocab_size")
    if isinstance(v, int) and not isinstance(v, bool) and v != pair.target.vocab_size:
        fits = [n for n in PAIRS if get_pair(n).target.vocab_size == v]
        hint = f"; pair(s) of that vocabulary: {', '.join(fits)}" if fits else ""
        raise InvalidConfig(
            f"--pair {name} has vocabulary {pair.target.vocab_size}, but the trace's vocab_size "
            f"is {show(v)}: check it with the pair it was run with{hint}"
        )


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 0 (ok), 1 (violations) or 2 (not a trace, or a bad flag): never a traceback."""
    if args.pair is None:
        given = [f for f in ("noise", "temperature", "top_k", "top_p") if getattr(args, f, None)]
        if given:  # these describe the models rule 8 compares with: alone they would be ignored
            flags = ", ".join("--" + f.replace("_", "-") for f in given)
            raise InvalidConfig(f"{flags} only apply with --pair NAME (rule 8); got no --pair")
    trace = load_trace(args.file, args.max_bytes)
    try:
        # Imported here so that the rest of the CLI works without the checker module.
        from dsi_ref.checker import check_trace
    except ModuleNotFoundError as e:
        raise InvalidConfig("the trace checker dsi_ref.checker is not available") from e
    try:
        if args.pair is None:
            report = check_trace(trace)
        else:
            pair = get_pair(args.pair, args.noise)
            _check_pair_vocab(args.pair, pair, trace)
            sampling = _check_sampling(args, trace)
            report = check_trace(
                trace, target=pair.target, drafter=pair.drafter, sampling=sampling, tol=args.tol
            )
    except RecursionError:  # a value nested too deeply to print or compare
        raise TraceError(f"trace file {args.file!r} nests values too deeply to check") from None
    summary = ", ".join(f"{k}={v}" for k, v in report.summary.items())
    violations = report.violations
    if report.ok:
        lines = [f"OK: {args.file} follows the DSI rules ({summary})"]
    else:
        lines = [f"FAIL: {args.file}: {len(violations)} violation(s) ({summary})"]
        lines += [f"  {v}" for v in violations[: args.show]]
        if len(violations) > args.show:
            lines.append(f"  ... and {len(violations) - args.show} more (--show N to see more)")
    try:
        out.writelines(f"{line}\n" for line in lines)
        out.flush()
    except BrokenPipeError:  # `check FILE | head`: the reader left; the verdict stands
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK if report.ok else EXIT_FAIL


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    pair = get_pair(DEMO_PAIR)
    cfg = demo_config(seed=args.seed, max_tokens=args.max_tokens)
    results, _ = _run_all(pair, cfg, ALGORITHMS, None)
    ups = speedups(results)
    dsi = ups["dsi"]
    lines = [
        "DSI vs SI vs non-SI (virtual clock, target forward pass = 1 time unit)",
        _pair_line(pair),
        _config_line(cfg),
        "",
        *_table(results, ups),
        "",
        *_tokens_lines(results, SHOWN_TOKENS),
        "",
        f"DSI is {_speed(dsi.vs_si)} as fast as SI and {_speed(dsi.vs_nonsi)} as fast as non-SI.",
        "The three token rows differ: each algorithm draws its own keyed randomness.",
        LOSSLESS_NOTE,
    ]
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


# ----- parser ------------------------------------------------------------------


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algorithm", choices=[*ALGORITHMS, "all"], default="all")
    p.add_argument("--pair", default=DEFAULT_PAIR, help=f"built-in model pair: {', '.join(PAIRS)}")
    p.add_argument(
        "--noise", type=_noise_arg, help="drafter noise weight in [0, 1] (sets the acceptance rate)"
    )
    p.add_argument(
        "--k", type=_int_arg(1), default=5, help="lookahead: drafts per verification task"
    )
    p.add_argument(
        "--servers",
        type=_int_arg(1, MAX_SERVERS),
        default=7,
        help=f"P, target servers (DSI), at most {MAX_SERVERS}",
    )
    p.add_argument(
        "--max-tokens",
        type=_int_arg(1, MAX_TOKENS),
        default=200,
        help=f"tokens to generate, at most {MAX_TOKENS}",
    )
    p.add_argument(
        "--seed", type=_int_arg(0, SEED_LIMIT - 1, "in [0, 2**256)"), default=0, help="below 2**256"
    )
    p.add_argument("--prompt", default="", help="prompt token ids, e.g. '3,1,4'")
    for model, default in (("target", "1"), ("drafter", "1/10")):
        p.add_argument(f"--{model}-ttft", default=default, help=f"{model} time to first token")
        p.add_argument(f"--{model}-tpot", default=default, help=f"{model} time per output token")
    p.add_argument("--greedy", action="store_true", help="argmax decoding, exact-match verify")
    p.add_argument("--temperature", default="1", help="in [1e-6, 1e6] (exact pair: >= 1/1000)")
    p.add_argument("--top-k", type=_int_arg(1), default=None)
    p.add_argument("--top-p", default=None)
    p.add_argument(
        "--point-mass", action="store_true", help="verify drafts as point-mass proposals"
    )
    p.add_argument("--trace", metavar="FILE", help="write the trace JSON (NAME.<alg>.EXT if all)")
    p.add_argument(
        "--policy",
        choices=sorted(POLICIES),
        default=DEFAULT_POLICY,
        help=f"DSI scheduling policy; SI follows its lookahead (default {DEFAULT_POLICY}; "
        "docs/theorems.md T7)",
    )
    p.add_argument(
        "--draft-confidence",
        default=None,
        metavar="X",
        help="end a block after a draft whose largest drafter probability is below X "
        "(SI and DSI; default off)",
    )
    p.add_argument(
        "--no-preemption",
        action="store_true",
        help="a cancelled pass runs to its end (as on a GPU); the policies act here",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--progress", action="store_true", help="report each finished run on stderr")
    p.add_argument("--show-tokens", type=_count, default=8, help="tokens shown per algorithm")


def build_parser(out: TextIO) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m dsi_ref",
        description="DSI, SI and non-SI on a virtual clock with exact rational times.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run non-SI, SI and/or DSI on a built-in model pair")
    _add_run_flags(run)
    run.set_defaults(func=lambda a: cmd_run(a, out))

    check = sub.add_parser("check", help="validate a trace file against the DSI rules")
    check.add_argument("file", metavar="FILE")
    check.add_argument(
        "--pair", help="also check every recorded p and q against this built-in pair (rule 8)"
    )
    check.add_argument("--noise", type=_noise_arg, help="the drafter noise the trace was run with")
    check.add_argument(
        "--tol",
        type=_tolerance,
        default=DEFAULT_TOL,
        help=f"rule 8's per-entry tolerance for float distributions (default {DEFAULT_TOL:g})",
    )
    check.add_argument(
        "--max-bytes",
        type=_positive,
        default=MAX_JSON_BYTES,
        help=f"refuse larger files before reading them (default {MAX_JSON_BYTES})",
    )
    check.add_argument("--temperature", help="the run's temperature (with --pair)")
    check.add_argument("--top-k", type=_int_arg(1), help="the run's top-k (with --pair)")
    check.add_argument("--top-p", help="the run's top-p (with --pair)")
    check.add_argument("--show", type=_count, default=10, help="violations printed at most")
    check.set_defaults(func=lambda a: cmd_check(a, out))

    demo = sub.add_parser("demo", help="DSI vs SI vs non-SI on the built-in default")
    demo.add_argument("--seed", type=_int_arg(0, SEED_LIMIT - 1, "in [0, 2**256)"), default=0)
    demo.add_argument("--max-tokens", type=_int_arg(1, MAX_TOKENS), default=DEMO_MAX_TOKENS)
    demo.set_defaults(func=lambda a: cmd_demo(a, out))

    from dsi_ref.theory import commands

    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    stdout = sys.stdout if out is None else out
    try:
        args = build_parser(stdout).parse_args(argv)
        func: Handler | None = getattr(args, "func", None)
        if func is None:
            raise UsageError(f"command {args.command!r} has no handler")
        return int(func(args))
    except (DSIError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help, or a registered command that exits
        if e.code is None:
            return EXIT_OK
        return e.code if isinstance(e.code, int) else EXIT_USAGE
