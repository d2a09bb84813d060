"""`python -m gpu_runner`: the side-by-side run on the shipped tiny pair, its traces, its
exit codes (0 ok, 2 bad input, never a traceback), and the profile subcommand's wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from dsi_ref.checker import check_trace
from dsi_ref.trace import load_trace
from gpu_runner.cli import main


def test_run_all_three_with_traces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "run",
            "--max-new-tokens",
            "8",
            "--k",
            "2",
            "--servers",
            "2",
            "--quiet",
            "--sample",
            "--dtype",
            "float64",
            "--inject-target",
            "0.004,0.002",
            "--inject-drafter",
            "0.001,0.001",
            "--trace",
            str(tmp_path / "run.json"),
            "--json",
            str(tmp_path / "summary.json"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    for alg in ("nonsi", "si", "dsi"):
        assert alg in out
        trace = load_trace(tmp_path / f"run.{alg}.json")
        assert check_trace(trace).ok
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert [r["algorithm"] for r in rows] == ["nonsi", "si", "dsi"]
    assert all(len(r["tokens"]) == 8 and r["predicted_s"] > 0 for r in rows)
    speedup = next(line for line in out.splitlines() if line.startswith("DSI speedup over si"))
    assert "measured acceptance: dsi " in speedup and ", si " in speedup, speedup  # issue 10.15
    assert "passes padded to fixed waits" in out  # the speedup is the padded schedule's


@pytest.mark.parametrize(
    "args,shown",
    [
        (["--k", "0"], "lookahead k"),
        (["--servers", "100000"], "servers"),
        (["--device", "cuda:7"], "cuda:7"),
        (["--target", "/nonexistent/model"], "--drafter"),
        (["--target", "/nonexistent/t", "--drafter", "/nonexistent/d"], "/nonexistent/t"),
        (["--acceptance", "2"], "acceptance"),
        (["--inject-target", "0.1,0.1"], "both"),
        (["--dtype", "int8"], "int8"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["run", "--max-new-tokens", "2", "--quiet", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert shown in err and "Traceback" not in err, err


def test_profile_subcommand_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["profile", "--help"])
    assert info.value.code == 0
    assert "--target" in capsys.readouterr().out


def test_every_flag_of_run_and_profile_is_documented() -> None:
    import argparse
    import re

    from gpu_runner.cli import _parser
    from gpu_runner.profile import build_parser

    doc = (Path(__file__).resolve().parent.parent / "docs" / "gpu-runner.md").read_text()
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for parser in (sub.choices["run"], build_parser()):
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert re.search(f"`{flag}[` ]", doc), f"{flag} is not in docs/gpu-runner.md"


@pytest.mark.parametrize("bad", ["0", "1.5", "-1"])
def test_draft_confidence_refused_by_its_flag_name(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--prompt", "x", "--quiet", "--draft-confidence", bad]) == 2
    err = capsys.readouterr().err
    assert "--draft-confidence must be a number in (0, 1], got" in err, err
    assert "or None" not in err


def test_readme_demo_figures() -> None:
    """README's `make demo` paragraph: with seed 1 the tiny-pair run measures acceptance
    0.79 (DSI) and 0.72 (SI), and its schedule at the padded costs (30 ms / 3 ms, the
    virtual clock on the run's own acceptance pattern) is 1.46x SI and 2.89x non-SI.
    Exact replay of the patterns, not wall time."""
    from fractions import Fraction

    from dsi_ref.latency import Latency
    from gpu_runner.generate import generate
    from gpu_runner.predict import predict
    from gpu_runner.tiny import tiny_pair_paths
    from gpu_runner.tokenizer import ByteTokenizer

    target, drafter = tiny_pair_paths()
    ids = ByteTokenizer().encode("def fib(n):")
    tl, dl = Latency.of("0.03", "0.03"), Latency.of("0.003", "0.003")
    schedule, acceptance = {}, {}
    for alg in ("nonsi", "si", "dsi"):  # the Makefile's demo flags, through the API
        r = generate(
            target, drafter, ids, algorithm=alg, max_new_tokens=48, k=3, servers=4,
            do_sample=True, temperature=1.0, seed=1,
            inject_target=(0.03, 0.03), inject_drafter=(0.003, 0.003),
        )  # fmt: skip
        schedule[alg] = predict(r, 3, 4, tl, dl)
        acceptance[alg] = r.summary()["acceptance"]
    assert (round(acceptance["dsi"], 2), round(acceptance["si"], 2)) == (0.79, 0.72)
    assert round(schedule["si"] / schedule["dsi"], 2) == Fraction("1.46")
    assert round(schedule["nonsi"] / schedule["dsi"], 2) == Fraction("2.89")
