"""`python -m gpu_runner`: run DSI, SI and non-SI on real models side by side; profile a pair.

    python -m gpu_runner run --prompt "def fib(n):"          # the shipped tiny pair, on CPU
    python -m gpu_runner run --target DIR --drafter DIR --device cuda:0 --servers 4
    python -m gpu_runner profile --target DIR --drafter DIR --out pair.json

Exit codes: 0 ok, 1 a run's trace failed dsi_ref's checker, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from dsi_ref.errors import DSIError
from dsi_ref.policies import DEFAULT_POLICY, POLICIES, check_confidence

ALL = ("nonsi", "si", "dsi")


def _pair(text: str) -> tuple[str, str]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected TTFT,TPOT in seconds, got {text!r}")
    return parts[0].strip(), parts[1].strip()


def _fraction(text: str) -> Fraction:
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


# Options whose value may start with "-": argparse would read "-1,1" as an option (it lets only
# plain negative numbers through), so "--inject-target -1,1" is joined to "--inject-target=-1,1"
# and reaches the value check, which names it.
_SIGNED = frozenset(
    (
        "--inject-target",
        "--inject-drafter",
        "--plan-target",
        "--plan-drafter",
        "--temperature",
        "--top-k",
        "--top-p",
        "--seed",
        "--acceptance",
        "--k",
        "--servers",
        "--max-new-tokens",
        "--prompt",
        "--ray-gpus-per-worker",
        "--ray-cpus-per-worker",
    )
)
_DASH_VALUE = re.compile(r"-[\d.]")


def _join_signed(args: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return out + args[i:]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if a in _SIGNED and nxt is not None and (_DASH_VALUE.match(nxt) or a == "--prompt"):
            out.append(f"{a}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def prompt_bytes(prompt: str) -> list[int]:
    """The bytes the user typed: argv is decoded with surrogateescape, os.fsencode undoes it."""
    try:
        return list(os.fsencode(prompt))
    except UnicodeEncodeError as e:
        raise DSIError(
            f"--prompt holds {prompt[e.start]!r} at index {e.start}, which has no bytes in the "
            f"file-system encoding ({sys.getfilesystemencoding()})"
        ) from None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m gpu_runner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="DSI vs SI vs non-SI on real models, with the prediction")
    r.add_argument(
        "--prompt",
        default="def fib(n):",
        help="prompt; its bytes are the token ids (byte tokenizer; non-UTF-8 bytes kept)",
    )
    r.add_argument("--target", default=None, help="target model directory (default: tiny pair)")
    r.add_argument("--drafter", default=None, help="drafter model directory (default: tiny pair)")
    r.add_argument("--algorithm", default="all", choices=(*ALL, "all"))
    r.add_argument("--max-new-tokens", type=int, default=48)
    r.add_argument("--k", type=int, default=3, help="lookahead (default 3)")
    r.add_argument("--servers", type=int, default=2, help="DSI target servers (default 2)")
    r.add_argument("--sample", action="store_true", help="sample (default: greedy)")
    r.add_argument("--temperature", type=_fraction, default=Fraction(1))
    r.add_argument("--top-k", type=int, default=None)
    r.add_argument("--top-p", type=_fraction, default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--device",
        action="append",
        default=None,
        help="target server device; repeat for several (default cuda:0 or cpu)",
    )
    r.add_argument("--drafter-device", default=None)
    r.add_argument("--dtype", default="float32", help="float64, float32, bfloat16, float16")
    r.add_argument(
        "--inject-target",
        type=_pair,
        default=None,
        metavar="TTFT,TPOT",
        help="pad every target pass to these seconds, each at most 60 (latency-injected mode)",
    )
    r.add_argument("--inject-drafter", type=_pair, default=None, metavar="TTFT,TPOT")
    r.add_argument(
        "--plan-target",
        type=_pair,
        default=None,
        metavar="TTFT,TPOT",
        help="the target pass costs in seconds DSI's policy plans with (default: the injected "
        "waits, else the run's own, fitted from its passes as it goes); measured ones (e.g. "
        "from `profile`) make DSI decide as dsi_ref's virtual clock does with them",
    )
    r.add_argument("--plan-drafter", type=_pair, default=None, metavar="TTFT,TPOT")
    r.add_argument(
        "--acceptance",
        type=float,
        default=None,
        help="timing mode: accept each draft with this keyed probability",
    )
    r.add_argument(
        "--trace",
        metavar="PATH",
        default=None,
        help="write the trace: FILE for one algorithm, FILE -> STEM.<alg>.EXT with "
        "--algorithm all, DIR/ -> DIR/<alg>.json (checked before any model is loaded)",
    )
    r.add_argument("--json", metavar="FILE", default=None, help="write the summary as JSON")
    r.add_argument(
        "--policy",
        choices=sorted(POLICIES),
        default=DEFAULT_POLICY,
        help=f"DSI scheduling policy; SI follows its lookahead (default {DEFAULT_POLICY}; "
        "dsi_ref.policies)",
    )
    r.add_argument(
        "--draft-confidence",
        type=float,
        default=None,
        metavar="X",
        help="end a block after a draft whose largest drafter probability is below X "
        "(SI and DSI; default off)",
    )
    r.add_argument(
        "--backend",
        default="threads",
        choices=("threads", "processes", "ray"),
        help="workers as threads of this process (default), one OS process each, or Ray actors",
    )
    r.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="--backend ray: the cluster to join (default: $RAY_ADDRESS, else a local one)",
    )
    r.add_argument(
        "--ray-gpus-per-worker",
        type=float,
        default=None,
        metavar="N",
        help="--backend ray: GPUs each actor asks for (default 0)",
    )
    r.add_argument(
        "--ray-cpus-per-worker",
        type=float,
        default=None,
        metavar="N",
        help="--backend ray: CPUs each actor asks for (default 0)",
    )
    r.add_argument(
        "--ray-strategy",
        choices=("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"),
        default=None,
        help="--backend ray with per-worker resources: how the placement group places the "
        "workers (default PACK; SPREAD puts servers on different nodes where it can)",
    )
    r.add_argument(
        "--layer-cancel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a cancelled target or drafter pass stops at the next decoder layer and its "
        "KV cache is rolled back (threads, processes and ray backends; default on)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("profile", help="TTFT, TPOT and per-position cost of a pair")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    return ap


def _progress(name: str, n: int, quiet: bool) -> Callable[[int], None] | None:
    if quiet:
        return None
    if not sys.stderr.isatty():  # a log file: whole lines at each quarter, no carriage returns
        marks = {max(1, n * q // 4) for q in (1, 2, 3, 4)}

        def log(done: int) -> None:  # a commit may jump past a mark: report the count reached
            if any(m <= done for m in marks):
                marks.difference_update({m for m in marks if m <= done})
                sys.stderr.write(f"{name:>5}: {done}/{n} tokens\n")
                sys.stderr.flush()

        return log

    def show(done: int) -> None:
        width = 30
        fill = width * done // n
        sys.stderr.write(f"\r{name:>5} [{'#' * fill}{'.' * (width - fill)}] {done}/{n} tokens")
        if done >= n:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


RAY_FLAGS = (
    ("ray_address", "--ray-address"),
    ("ray_strategy", "--ray-strategy"),
    ("ray_gpus_per_worker", "--ray-gpus-per-worker"),
    ("ray_cpus_per_worker", "--ray-cpus-per-worker"),
)


def backend_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The options of the run's pool (`new_pool`), from the --ray-* flags, checked."""
    given = [flag for attr, flag in RAY_FLAGS if getattr(ns, attr) is not None]
    if given and ns.backend != "ray":
        raise DSIError(f"{given[0]} needs --backend ray (got --backend {ns.backend})")
    if ns.backend != "ray":
        return {}
    from gpu_runner.transport.ray import resource_problem

    options: dict[str, Any] = {"local_cpus": os.cpu_count() or 2}  # a local cluster: this box
    if ns.ray_strategy is not None:
        if ns.ray_gpus_per_worker is None and ns.ray_cpus_per_worker is None:
            raise DSIError(
                "--ray-strategy needs --ray-gpus-per-worker or --ray-cpus-per-worker: without "
                "resources per worker no placement group is made"
            )
        options["strategy"] = ns.ray_strategy
    for attr, flag in RAY_FLAGS[2:]:
        value = getattr(ns, attr)
        problem = None if value is None else resource_problem(value, "gpus" in attr)
        if problem is not None:
            raise DSIError(f"{flag} {problem}")
        if value is not None:
            options["num_gpus" if "gpus" in attr else "num_cpus"] = value
    if ns.ray_address is not None:
        if not ns.ray_address.strip():
            raise DSIError("--ray-address is empty: give ADDR (e.g. auto, HOST:6379)")
        options["address"] = ns.ray_address
    return options


def cmd_run(ns: argparse.Namespace) -> int:
    from dsi_ref.sampling_rule import GPU_CLI, check_sampling

    # dsi_ref's one sampling rule, checked here so that errors name the flags typed
    check_sampling(not ns.sample, ns.temperature, ns.top_k, ns.top_p, GPU_CLI)
    check_confidence(ns.draft_confidence, "--draft-confidence")
    pool_options = backend_options(ns)
    from dsi_ref.checker import check_trace
    from dsi_ref.outputs import (
        OutputPath,
        Writer,
        check_output,
        check_outputs,
        per_name_paths,
        write_bytes,
        write_outputs,
    )
    from dsi_ref.trace import trace_writer
    from gpu_runner.cost_fit import fitted_latency
    from gpu_runner.generate import generate
    from gpu_runner.predict import cancel_granularity, predict
    from gpu_runner.tokenizer import ByteTokenizer

    tok = ByteTokenizer()
    if (ns.target is None) != (ns.drafter is None):
        raise DSIError("give both --target and --drafter, or neither (the shipped tiny pair)")
    if ns.target is None:
        from gpu_runner.tiny import tiny_pair_paths

        target, drafter = (str(p) for p in tiny_pair_paths())
    else:
        target, drafter = ns.target, ns.drafter
    ids = tok.encode_bytes(bytes(prompt_bytes(ns.prompt)))
    algs = ALL if ns.algorithm == "all" else (ns.algorithm,)
    # Every output path is checked before a model is loaded; all are written at the end.
    traces = (
        {}
        if ns.trace is None
        else check_outputs(per_name_paths(ns.trace, algs, "--trace"), "trace file")
    )
    summary = None if ns.json is None else check_output(ns.json, "JSON summary")
    rows: list[dict[str, Any]] = []
    writes: list[tuple[OutputPath, Writer]] = []
    failed = False
    from gpu_runner.transport import backends

    # One pool (one Ray cluster, one set of worker processes) for all the algorithms.
    pool = None if ns.backend == "threads" else backends.new_pool(ns.backend, **pool_options)
    try:
        for alg in algs:
            run = generate(
                target,
                drafter,
                ids,
                algorithm=alg,
                max_new_tokens=ns.max_new_tokens,
                k=ns.k,
                servers=ns.servers,
                do_sample=ns.sample,
                temperature=ns.temperature,
                top_k=ns.top_k,
                top_p=ns.top_p,
                seed=ns.seed,
                devices=ns.device,
                drafter_device=ns.drafter_device,
                dtype=ns.dtype,
                inject_target=ns.inject_target,
                plan_target=ns.plan_target,
                plan_drafter=ns.plan_drafter,
                inject_drafter=ns.inject_drafter,
                acceptance=ns.acceptance,
                policy=ns.policy,
                draft_confidence=ns.draft_confidence,
                layer_cancel=ns.layer_cancel,
                record=bool(traces),
                progress=_progress(alg, ns.max_new_tokens, ns.quiet),
                backend=ns.backend if pool is None else pool,
            )
            tl = fitted_latency(run.pass_log, "target")
            dl = fitted_latency(run.pass_log, "drafter")
            predicted = None
            if tl is not None:
                from dsi_ref.latency import Latency

                lat = dl or Latency.of(1, 1)
                layers = cancel_granularity(run)  # the clock cuts where the run did
                predicted = float(predict(run, ns.k, ns.servers, tl, lat, ns.policy, layers))
            row = run.summary()
            row["predicted_s"] = predicted
            row["text"] = tok.decode(list(run.tokens))
            if run.trace is not None and alg in traces:
                report = check_trace(run.trace)
                writes.append((traces[alg], trace_writer(run.trace, traces[alg])))
                row["trace"] = str(traces[alg])
                row["trace_ok"] = report.ok
                failed |= not report.ok
            rows.append(row)
    finally:
        if pool is not None:  # also on error: no actor, cluster or process outlives the run
            pool.close()
    if summary is not None:
        writes.append((summary, write_bytes((json.dumps(rows, indent=1) + "\n").encode())))
    write_outputs(writes)  # all or nothing: a failure leaves no new regular file
    _print_table(rows)
    if ns.inject_target is not None:
        print(
            "passes padded to fixed waits (--inject-target {},{} --inject-drafter {},{} "
            "seconds): the speedup is the schedule's at those costs, not these models' on this "
            "machine".format(*ns.inject_target, *ns.inject_drafter)
        )
    return 1 if failed else 0


def _print_table(rows: Sequence[dict[str, Any]]) -> None:
    head = (
        "algorithm",
        "ms/token",
        "wall s",
        "predicted s",
        "meas/pred",
        "target fwd/tok",
        "drafter fwd/tok",
        "peak KV/server",
        "device s/tok",
        "acceptance",
    )
    print("  ".join(f"{h:>15}" for h in head))
    for r in rows:
        pred = r["predicted_s"]
        ratio = r["wall_s"] / pred if pred else float("nan")
        kv = max(r["peak_cache_bytes"] or [0])
        cells = (
            r["algorithm"],
            f"{r['ms_per_token']:.2f}",
            f"{r['wall_s']:.3f}",
            "-" if pred is None else f"{pred:.3f}",
            f"{ratio:.3f}",
            f"{r['target_forwards_per_token']:.2f}",
            f"{r['drafter_forwards_per_token']:.2f}",
            f"{kv / 1024:.0f} KiB",
            f"{r['device_seconds_per_token']:.4f}",
            "-" if r.get("acceptance_rate") is None else f"{r['acceptance_rate']:.2f}",
        )
        print("  ".join(f"{c:>15}" for c in cells))
    for r in rows:
        rates = r.get("acceptance_by_position") or []
        if rates:
            shown = " ".join(f"{x:.2f}" for x in rates[:8]) + (" ..." if len(rates) > 8 else "")
            print(f"{r['algorithm']} acceptance by block position (0, 1, ...): {shown}")
    for r in rows:
        plan = r.get("planned_ms")
        if plan:
            t, d = plan["target"], plan["drafter"]
            how = {
                "online": "fitted from the run's own passes",
                "placeholder": "the placeholder: the run ended before its passes were timed",
            }.get(r.get("plan") or "", "given")
            print(
                f"{r['algorithm']} planned with pass costs in ms ({how}): target TTFT {t[0]:g}, "
                f"TPOT {t[1]:g}, per extra position {t[2]:g}; drafter TTFT {d[0]:g}, TPOT {d[1]:g}"
            )
    by = {r["algorithm"]: r for r in rows}
    if "dsi" in by:
        for other in ("si", "nonsi"):
            if other in by:
                rates = [
                    f"{a} {by[a]['acceptance_rate']:.2f}"
                    for a in ("dsi", other)
                    if by[a].get("acceptance_rate") is not None
                ]
                shown = f" (measured acceptance: {', '.join(rates)})" if rates else ""
                print(
                    f"DSI speedup over {other}: "
                    f"{by[other]['wall_s'] / by['dsi']['wall_s']:.3f}x{shown}"
                )
    for r in rows:
        if "trace" in r:
            print(f"trace {r['trace']}: {'OK' if r['trace_ok'] else 'FAILED the checker'}")
    print(f"text ({rows[-1]['algorithm']}), after the prompt:")
    print(readable(rows[-1]["text"]))


def readable(text: str) -> str:
    """`text` as printed lines: newlines and tabs kept, other control characters escaped;
    text of whitespace alone (a greedy tiny pair's) shown quoted, so that it is seen."""
    if not text.strip():
        return f"{text!r} (whitespace only)"
    return "".join(
        ch if ch.isprintable() or ch in "\n\t" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _have_gpu_deps() -> bool:
    """torch and transformers are importable; else one line on stderr (exit 2, not a traceback)."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"error: gpu_runner needs {' and '.join(missing)} (pip install torch==2.13.0, then "
            "pip install -e '.[gpu]')",
            file=sys.stderr,
        )
    return not missing


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["profile"]:  # its own parser, its own --help
        if not _have_gpu_deps():
            return 2
        from gpu_runner.profile import profile_main

        return int(profile_main(args[1:]))
    ns = _parser().parse_args(_join_signed(args))
    if not _have_gpu_deps():
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a bar per weight load would bury the run's own
    try:
        return cmd_run(ns)
    except DSIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output file that cannot be written
        print(f"error: {e}", file=sys.stderr)
        return 2
