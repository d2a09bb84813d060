"""Every shell command of README.md and docs/quickstart.md that CI can run cheaply, runs.

Which commands run (the rule, by the command's first words; nothing is skipped silently:
`test_every_command_is_run_or_skipped_for_a_stated_reason` lists each):

- `python -m dsi_ref ...` (also spelled `.venv/bin/python -m dsi_ref`): run in a fresh
  temporary directory through `dsi_ref.cli.main`, in order, so a `run --trace` feeds the
  `check` after it; each must exit 0. Where the doc shows the output (docs/quickstart.md's
  `console` blocks) it is compared as well, by `tests/test_cli.py`
  (`test_quickstart_outputs_match_the_code`), which also runs the commands that must fail.
- skipped, with the reason in SKIPPED: `make ...` (builds the environment: CI runs
  `make test` itself), environment set-up (`python3 -m venv`, `pip install`, `.`
  activate), `python -m gpu_runner ...` (needs torch, transformers and a model pair;
  tests/test_gpu_cli.py runs it on the tiny pair) and `python -m proofs check` (long:
  about a minute; tests/test_proofs.py runs every check).

The README's Python blocks run in tests/test_readme.py. About 2 s of CPU.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dsi_ref.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "quickstart.md"]
# first words -> why the command is not run here
SKIPPED = {
    "make": "builds the environment; CI runs `make test` itself",
    "python3 -m venv": "environment set-up",
    ".": "environment set-up (activates the venv)",
    "pip install": "environment set-up",
    "python -m gpu_runner": "needs torch, transformers and a model pair (tests/test_gpu_cli.py)",
    "python -m proofs": "long, about a minute (tests/test_proofs.py runs every check)",
}


def shell_commands(doc: Path) -> list[list[str]]:
    """The commands of the doc's `sh` blocks: comments dropped, `&&` chains split."""
    out: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", doc.read_text(), flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                out.append(words[:cut])
                words = words[cut + 1 :]
    return out


def _normal(argv: list[str]) -> list[str]:
    """`.venv/bin/python` is `python` (the docs use both)."""
    return ["python", *argv[1:]] if argv[:1] == [".venv/bin/python"] else argv


def _skip_reason(argv: list[str]) -> str | None:
    line = " ".join(_normal(argv))
    for start, why in SKIPPED.items():
        if line == start or line.startswith(start + " "):
            return why
    return None


def test_every_command_is_run_or_skipped_for_a_stated_reason() -> None:
    run, skipped = 0, 0
    for doc in DOCS:
        for argv in shell_commands(doc):
            if _skip_reason(argv) is not None:
                skipped += 1
            else:
                assert _normal(argv)[:3] == ["python", "-m", "dsi_ref"], (doc.name, argv)
                run += 1
    # README: 3 dsi_ref commands; skipped: make demo/test, gpu_runner run, proofs check,
    # and quickstart's set-up lines
    assert run == 3 and skipped == 8, (run, skipped)


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_doc_commands_run(
    doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for argv in shell_commands(doc):
        if _skip_reason(argv) is not None:
            continue
        out = io.StringIO()
        with contextlib.redirect_stderr(io.StringIO()) as err:
            rc = main(_normal(argv)[3:], out=out)
        assert rc == 0, f"{doc.name}: {' '.join(argv)} exited {rc}: {err.getvalue()}"
        assert out.getvalue(), f"{doc.name}: {' '.join(argv)} printed nothing"


def test_a_closed_pipe_ends_the_cli_quietly() -> None:
    """`python -m dsi_ref demo | head -1` must not end in a BrokenPipeError traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsi_ref", "demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the first write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err, err
