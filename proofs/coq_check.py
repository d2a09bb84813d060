"""Check the Coq development in proofs/coq, and evaluate its computable rule.

`python -m proofs.coq_check` compiles the files listed in proofs/coq/_CoqProject, in
order, in a scratch directory (no build products land in the tree), then asserts
with `Print Assumptions` that the main theorems use no axiom. It exits 1 if anything
fails to check. `make coq` installs Coq and mathcomp from Debian and runs it.

`coq_rule` evaluates Mirror.v's list functions (proved equal to the rule that
Verify.v proves lossless) on rational instances, for tests/test_coq.py to compare
with dsi_ref.verify.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

COQ_DIR = Path(__file__).resolve().parent / "coq"
LOGICAL_ROOT = "DSI"  # the files import each other as DSI.<name>
APT_PACKAGES = "coq libcoq-mathcomp-ssreflect libcoq-mathcomp-algebra"
# Notation clashes mathcomp reports on every import; they say nothing about our files.
WARNINGS = "-notation-overridden,-ambiguous-paths,-notation-incompatible-prefix"
TIMEOUT_S = 600

# The statements issue 13 asks for; each must be closed under the global context.
MAIN_THEOREMS = (
    "verify_lossless",
    "verify_lossless_split",
    "verify_total",
    "point_mass_lossless",
    "residualL_tab",
    "verifyL_tab",
    "warped_lossless",
    "masked_power_dist",
    "reachable_inv",
    "committed_is_reference",
    "reference_law",
)


class CoqError(Exception):
    """Coq is missing, or a query could not be evaluated."""


@dataclass(frozen=True)
class CoqRun:
    ok: bool
    failed_file: str | None  # the first file coqc rejected
    output: str  # coqc's stdout and stderr, file by file
    seconds: float


def sources() -> list[str]:
    """The .v files of the development, in dependency order (from _CoqProject)."""
    text = (COQ_DIR / "_CoqProject").read_text()
    return [w for line in text.splitlines() for w in line.split() if w.endswith(".v")]


def coqc() -> str:
    path = shutil.which("coqc")
    if path is None:
        raise CoqError(f"coqc not found: run `make coq` (as root it apt-installs {APT_PACKAGES})")
    return path


def build(
    overrides: Mapping[str, str] | None = None,
    extra: Sequence[tuple[str, str]] = (),
    files: Sequence[str] | None = None,
) -> CoqRun:
    """Compile `files` (default: the whole development) with texts replaced by `overrides`,
    then `extra`: (file name, text) pairs compiled after them, which may import them."""
    exe = coqc()
    chosen = sources() if files is None else list(files)
    texts = {name: (COQ_DIR / name).read_text() for name in chosen}
    texts.update(overrides or {})
    order = [*chosen, *(name for name, _ in extra)]
    texts.update(dict(extra))
    out: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dsi-coq-") as tmp:
        for name in order:
            (Path(tmp) / name).write_text(texts[name])
        for name in order:
            r = subprocess.run(
                [exe, "-q", "-w", WARNINGS, "-Q", ".", LOGICAL_ROOT, name],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
            out.append(f"--- {name}\n{r.stdout}{r.stderr}")
            if r.returncode != 0:
                return CoqRun(False, name, "".join(out), time.perf_counter() - t0)
    return CoqRun(True, None, "".join(out), time.perf_counter() - t0)


def _modules() -> str:
    return " ".join(Path(s).stem for s in sources())


def check_all() -> CoqRun:
    """Compile everything and require every main theorem to be axiom-free."""
    query = f"From {LOGICAL_ROOT} Require Import {_modules()}.\n" + "".join(
        f"Print Assumptions {t}.\n" for t in MAIN_THEOREMS
    )
    run = build(extra=[("Assumptions.v", query)])
    closed = run.output.count("Closed under the global context")
    if run.ok and closed != len(MAIN_THEOREMS):
        return CoqRun(False, "Assumptions.v", run.output, run.seconds)
    return run


# ----- evaluating the computable rule (Mirror.v) on rational instances ----------------

RuleQuery = tuple[Sequence[Fraction], Sequence[Fraction], int | None]
"""(p, q, draft): the law verifyL p q draft; draft None: residualL p q."""

_PRELUDE = f"""From mathcomp Require Import all_ssreflect all_algebra.
From {LOGICAL_ROOT} Require Import Verify Mirror.
Local Open Scope ring_scope.
Set Printing Width 1000000.
Definition fr (a b : nat) : rat := a%:R / b%:R.
Definition out (o : option (seq rat)) := omap (map (fun x => (numq x, denq x))) o.
"""

_ITEM = re.compile(r"None|Some\s*\[::([^\]]*)\]")
_INT = r"\(?(-?\d+)\)?%Z"
_PAIR = re.compile(rf"\(\s*{_INT}\s*,\s*{_INT}\s*\)")


def _lit(x: Fraction) -> str:
    if not isinstance(x, Fraction) or x < 0:
        raise CoqError(f"a rule query takes Fractions >= 0, got {x!r}")
    return f"fr {x.numerator} {x.denominator}"


def _seq(d: Sequence[Fraction]) -> str:
    return "[:: " + "; ".join(_lit(x) for x in d) + "]"


def coq_rule(queries: Sequence[RuleQuery]) -> list[tuple[Fraction, ...] | None]:
    """Each query's answer computed by Coq: a law as a tuple, or None (the code raises)."""
    items = []
    for p, q, draft in queries:
        if draft is None:
            items.append(f"out (residualL {_seq(p)} {_seq(q)})")
        else:
            items.append(f"out (verifyL {_seq(p)} {_seq(q)} {draft})")
    text = _PRELUDE + "Eval vm_compute in [:: " + ";\n  ".join(items) + "].\n"
    run = build(extra=[("Queries.v", text)], files=["Verify.v", "Mirror.v"])
    if not run.ok:
        raise CoqError(f"Coq could not evaluate the queries:\n{run.output}")
    answer = run.output.rsplit("--- Queries.v", 1)[1]
    found = [m for m in _ITEM.finditer(answer)]
    if len(found) != len(queries):
        raise CoqError(f"expected {len(queries)} answers from Coq, got:\n{answer}")
    laws: list[tuple[Fraction, ...] | None] = []
    for m in found:
        if m.group(0) == "None":
            laws.append(None)
        else:
            laws.append(tuple(Fraction(int(a), int(b)) for a, b in _PAIR.findall(m.group(1))))
    return laws


def main() -> int:
    try:
        run = check_all()
    except CoqError as e:
        print(f"coq: {e}", file=sys.stderr)
        return 1
    files = len(sources())
    if not run.ok:
        print(run.output, file=sys.stderr)
        print(f"coq: FAILED in {run.failed_file}", file=sys.stderr)
        return 1
    print(
        f"coq: {files} files of proofs/coq checked in {run.seconds:.1f} s; "
        f"{len(MAIN_THEOREMS)} main theorems use no axiom"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
