"""A small mutation tester for the decision code (not collected by pytest; run by hand).

    PYTHONPATH=. .venv/bin/python tests/mutation_check.py [--only FILE] [--budget SECONDS]

For each target function below it enumerates first-order mutants of the AST (comparison
boundaries and negations, + <-> -, * <-> /, and <-> or, dropped `not`, integer
constants +-1, min <-> max, a simple statement replaced by `pass`), writes each mutant
into a scratch copy of the repository and runs that file's fast tests with `-x`. A
mutant is killed if the tests fail or time out, survives if they pass. Lines naming
SKIP_WORDS are skipped (the planted faults now live in tests/faulty.py). Results go to
stdout as one line per mutant; docs/verification.md records a run and classifies the survivors.
"""

from __future__ import annotations

import argparse
import ast
import copy
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TARGETS: dict[str, tuple[list[str], list[str]]] = {
    # file: (functions, fast tests in the order they run)
    "dsi_ref/verify.py": (
        ["point_mass", "Verifier.draft", "Verifier.target_token", "Verifier.verify"],
        [
            "tests/test_si_reference.py",
            "tests/test_warp_oracle.py::test_combined_warps_are_lossless_exactly",
            "tests/test_bad_input.py",
            "tests/test_golden.py",
            "tests/test_mutant_kills.py",
        ],
    ),
    "dsi_ref/sampling.py": (
        ["_power", "warp"],
        [
            "tests/test_sampling_warp.py",
            "tests/test_warp_oracle.py",
            "tests/test_golden.py",
        ],
    ),
    "dsi_ref/scheduler.py": (
        [
            "DSIScheduler.on_draft_done",
            "DSIScheduler.on_task_done",
            "DSIScheduler._draft_next",
            "DSIScheduler.on_events",
            "DSIScheduler._take_draft",
            "DSIScheduler._take_task",
            "DSIScheduler._submit_block",
            "DSIScheduler._covered",
            "DSIScheduler._progress",
            "DSIScheduler._commit_ready",
            "DSIScheduler._reject",
            "DSIScheduler._drop_useless",
            "DSIScheduler._dispatch",
        ],
        [
            "tests/test_scheduler_timing.py",
            "tests/test_golden.py",
            "tests/test_scheduler_machine.py",
            "tests/test_mutant_kills.py",
        ],
    ),
}

SKIP_WORDS = ("fault", "_keep_", "_bonus_off_by_one", "_always_accept", "_residual_from_p")

CMP_SWAP: dict[type, list[type]] = {
    ast.Lt: [ast.LtE, ast.GtE],
    ast.LtE: [ast.Lt, ast.Gt],
    ast.Gt: [ast.GtE, ast.LtE],
    ast.GtE: [ast.Gt, ast.Lt],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
BIN_SWAP: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
}


def _functions(tree: ast.Module, names: list[str]) -> list[ast.AST]:
    out: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            out.append(node)
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef) and f"{node.name}.{sub.name}" in names:
                    out.append(sub)
    if len(out) != len(names):  # a renamed function must not drop out of the run silently
        raise SystemExit(f"target functions not found: {names} gave {len(out)} of {len(names)}")
    return out


def _sites(func: ast.AST) -> Iterator[ast.AST]:
    yield from ast.walk(func)


def mutants(source: str, names: list[str]) -> Iterator[tuple[str, int, str]]:
    """(description, line, mutated module source) for every first-order mutant."""
    tree = ast.parse(source)
    lines = source.splitlines()
    targets = _functions(tree, names)
    # Number the sites on the original tree; mutate a deep copy located by the same walk.
    for f_index, func in enumerate(targets):
        nodes = list(_sites(func))
        for n_index, node in enumerate(nodes):
            line = getattr(node, "lineno", 0)
            text = lines[line - 1] if line else ""
            if any(w in text for w in SKIP_WORDS):
                continue
            for desc, apply in _ops(node):
                new_tree = copy.deepcopy(tree)
                new_func = _functions(new_tree, names)[f_index]
                target = list(_sites(new_func))[n_index]
                apply(target)
                yield desc, line, ast.unparse(new_tree)


def _ops(node: ast.AST) -> Iterator[tuple[str, object]]:
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for new in CMP_SWAP.get(type(op), []):

                def f(n: ast.Compare, i: int = i, new: type = new) -> None:
                    n.ops[i] = new()

                yield f"{type(op).__name__} -> {new.__name__}", f
    elif isinstance(node, ast.BinOp) and type(node.op) in BIN_SWAP:
        new = BIN_SWAP[type(node.op)]

        def g(n: ast.BinOp, new: type = new) -> None:
            n.op = new()

        yield f"{type(node.op).__name__} -> {new.__name__}", g
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And

        def h(n: ast.BoolOp, new: type = new) -> None:
            n.op = new()

        yield f"{type(node.op).__name__} -> {new.__name__}", h
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):

        def k(n: ast.UnaryOp) -> None:
            n.op = ast.UAdd()  # +x: truthiness of x, i.e. `not` dropped

        yield "drop not", k
    elif (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        for d in (1, -1):

            def c(n: ast.Constant, d: int = d) -> None:
                n.value = n.value + d

            yield f"const {node.value} -> {node.value + d}", c
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("min", "max")
    ):
        other = "max" if node.func.id == "min" else "min"

        def m(n: ast.Call, other: str = other) -> None:
            assert isinstance(n.func, ast.Name)
            n.func.id = other

        yield f"{node.func.id} -> {other}", m
    if isinstance(node, (ast.If, ast.While)):

        def neg(n: ast.If) -> None:
            n.test = ast.UnaryOp(op=ast.Not(), operand=n.test)

        yield "negate condition", neg
    for field in ("body", "orelse"):
        stmts = getattr(node, field, None)
        if not isinstance(stmts, list):
            continue
        for i, st in enumerate(stmts):
            docstring = isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)
            if docstring:
                continue
            if isinstance(st, (ast.Assign, ast.AugAssign, ast.Expr, ast.Continue, ast.Break)):

                def d(n: ast.AST, field: str = field, i: int = i) -> None:
                    getattr(n, field)[i] = ast.Pass()

                yield f"delete statement at line {st.lineno}", d


def run_tests(work: Path, tests: list[str], timeout: float) -> str:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        r = subprocess.run(
            cmd,
            cwd=work,
            env={"PYTHONPATH": str(work), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "killed (timeout)"
    if r.returncode == 0:
        return "SURVIVED"
    failed = [ln for ln in r.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    return "killed by " + (failed[0].split(" ")[1] if failed else f"rc {r.returncode}")


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None)
    ap.add_argument("--budget", type=float, default=1500.0, help="CPU seconds in all")
    ap.add_argument("--timeout", type=float, default=180.0)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--done", default=None, help="a previous log: skip the mutants it lists")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for part in ("dsi_ref", "tests", "benchmarks", "pyproject.toml"):
            src = ROOT / part
            (shutil.copytree if src.is_dir() else shutil.copy)(src, work / part)
        spent = 0.0
        for rel, (names, tests) in TARGETS.items():
            if args.only and args.only != rel:
                continue
            original = (ROOT / rel).read_text()
            all_mutants = list(mutants(original, names))
            print(f"== {rel}: {len(all_mutants)} mutants; tests {' '.join(tests)}", flush=True)
            if args.list:
                continue
            (work / rel).write_text(ast.unparse(ast.parse(original)))
            base = run_tests(work, tests, args.timeout)
            print(f"   baseline (unparsed original): {base}", flush=True)
            if base != "SURVIVED":
                return 1
            done = Path(args.done).read_text() if args.done else ""
            for desc, line, src in all_mutants:
                if f"   {rel}:{line}: {desc}: " in done:
                    continue
                if spent > args.budget:
                    print(f"   budget spent: stopped before line {line}: {desc}", flush=True)
                    break
                (work / rel).write_text(src)
                t0 = _child_cpu()
                res = run_tests(work, tests, args.timeout)
                spent += _child_cpu() - t0
                print(f"   {rel}:{line}: {desc}: {res}", flush=True)
            (work / rel).write_text(original)
        print(f"spent {spent:.0f} s of CPU on mutants", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
