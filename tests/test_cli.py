"""The command line: each subcommand in-process through main(argv), exit codes and output.

Runs are kept small (tens of tokens) except the demo, which runs its real default.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from dsi_ref.cli import main
from dsi_ref.config import RunConfig
from dsi_ref.demo import DEMO_PAIR, LOSSLESS_NOTE, LOSSLESS_TESTS, demo_config, run_algorithm
from dsi_ref.latency import Latency
from dsi_ref.pairs import PAIRS, get_pair
from dsi_ref.prob import total_variation
from dsi_ref.result import Counters, RunResult
from dsi_ref.sequential import reference_tokens

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "docs" / "quickstart.md"
SUMMARY_KEYS = set(RunResult("x", (), Fraction(0), (), Counters()).summary())


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def cli_json(*argv: str) -> dict[str, Any]:
    rc, text = cli("run", "--json", *argv)
    assert rc == 0, text
    doc = json.loads(text)
    assert isinstance(doc, dict)
    return doc


# ----- run ---------------------------------------------------------------------


def test_run_all_prints_a_table_of_the_three_algorithms() -> None:
    rc, text = cli("run", "--max-tokens", "30")
    assert rc == 0
    head = next(line for line in text.splitlines() if line.startswith("algorithm"))
    assert head.split()[1:] == ["non-SI", "SI", "DSI"]
    for row in ("latency (exact)", "per-token mean", "target forwards", "drafts wasted"):
        assert any(line.startswith(row) for line in text.splitlines()), row
    speed = next(line for line in text.splitlines() if line.startswith("speedup vs non-SI"))
    assert speed.split()[3] == "1.000x"  # non-SI against itself


def test_run_json_has_documented_keys_and_speedups_are_latency_ratios() -> None:
    doc = cli_json("--max-tokens", "40")
    assert set(doc) == {"pair", "results", "speedups", "traces"}
    assert set(doc["pair"]) == {"name", "description", "noise", "mean_acceptance", "exact"}
    assert [r["algorithm"] for r in doc["results"]] == ["nonsi", "si", "dsi"]
    for r in doc["results"]:
        assert set(r) == SUMMARY_KEYS
        assert len(r["tokens"]) == 40
    lat = {r["algorithm"]: Fraction(r["latency"]) for r in doc["results"]}
    for alg, s in doc["speedups"].items():
        assert set(s) == {"vs_nonsi", "vs_nonsi_float", "vs_si", "vs_si_float"}
        assert Fraction(s["vs_nonsi"]) == lat["nonsi"] / lat[alg]
        assert Fraction(s["vs_si"]) == lat["si"] / lat[alg]
        assert s["vs_si_float"] == pytest.approx(float(lat["si"] / lat[alg]))
    assert doc["traces"] == {}


def test_run_flags_reach_the_library() -> None:
    """The CLI's tokens and latency equal a direct library call with the same settings."""
    argv = ["--algorithm", "dsi", "--pair", "exact3", "--noise", "1/3", "--k", "2"]
    argv += ["--servers", "3", "--max-tokens", "12", "--seed", "7", "--prompt", "2,0"]
    argv += ["--target-ttft", "2", "--target-tpot", "0.5", "--drafter-ttft", "1/3"]
    argv += ["--drafter-tpot", "1/4"]
    (got,) = cli_json(*argv)["results"]
    cfg = RunConfig(
        max_tokens=12,
        k=2,
        servers=3,
        seed=7,
        prompt=(2, 0),
        target_latency=Latency.of(2, "1/2"),
        drafter_latency=Latency.of("1/3", "1/4"),
    )
    want = run_algorithm("dsi", get_pair("exact3", "1/3"), cfg)
    assert got["tokens"] == list(want.tokens)
    assert Fraction(got["latency"]) == want.latency


def test_single_algorithm_has_no_speedup_baselines() -> None:
    doc = cli_json("--algorithm", "si", "--max-tokens", "10")
    assert doc["speedups"]["si"]["vs_si"] == "1"
    assert doc["speedups"]["si"]["vs_nonsi"] is None


def test_noise_zero_means_every_draft_is_accepted() -> None:
    doc = cli_json("--noise", "0", "--max-tokens", "40")
    assert doc["pair"]["mean_acceptance"] == 1.0
    for r in doc["results"][1:]:
        assert r["drafts_rejected"] == 0 and r["drafts_accepted"] > 0, r["algorithm"]


def test_greedy_and_warps_are_recorded_in_the_trace_header(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    assert (
        cli("run", "--algorithm", "si", "--greedy", "--max-tokens", "8", "--trace", str(path))[0]
        == 0
    )
    assert json.loads(path.read_text())["greedy"] is True
    argv = ["--algorithm", "si", "--temperature", "0.5", "--top-k", "4", "--top-p", "0.9"]
    assert cli("run", *argv, "--max-tokens", "8", "--trace", str(path))[0] == 0
    assert json.loads(path.read_text())["sampling"] == "sample(T=1/2, top_k=4, top_p=9/10)"


# ----- traces and check --------------------------------------------------------


def test_trace_is_json_with_events(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    rc, text = cli("run", "--algorithm", "dsi", "--max-tokens", "20", "--trace", str(path))
    assert rc == 0 and f"written to {path}" in text
    trace = json.loads(path.read_text())
    assert trace["algorithm"] == "dsi" and trace["events"]
    assert trace["events"][-1]["ev"] == "done"
    assert len(trace["result"]["tokens"]) == 20


def test_trace_with_all_writes_one_file_per_algorithm(tmp_path: Path) -> None:
    doc = cli_json("--max-tokens", "10", "--trace", str(tmp_path / "t.json"))
    assert doc["traces"] == {a: str(tmp_path / f"t.{a}.json") for a in ("nonsi", "si", "dsi")}
    for alg, p in doc["traces"].items():
        assert json.loads(Path(p).read_text())["algorithm"] == alg


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_check_accepts_the_traces_the_cli_writes(tmp_path: Path, pair: str) -> None:
    cli_json("--pair", pair, "--max-tokens", "15", "--trace", str(tmp_path / "t.json"))
    for alg in ("nonsi", "si", "dsi"):
        f = str(tmp_path / f"t.{alg}.json")
        rc, text = cli("check", f)
        assert rc == 0 and text.startswith(f"OK: {f}"), text
        rc, text = cli("check", f, "--pair", pair)  # recorded p and q against the models too
        assert rc == 0, text


@pytest.mark.parametrize("flags", [["--point-mass"], ["--prompt", "3,1"], ["--greedy"]])
def test_check_pair_accepts_point_mass_prompt_and_greedy_runs(
    tmp_path: Path, flags: list[str]
) -> None:
    cli_json(*flags, "--max-tokens", "12", "--trace", str(tmp_path / "t.json"))
    for alg in ("nonsi", "si", "dsi"):
        rc, text = cli("check", str(tmp_path / f"t.{alg}.json"), "--pair", "markov32")
        assert rc == 0, text


def test_check_with_warp_flags_matches_a_warped_run(tmp_path: Path) -> None:
    path = str(tmp_path / "w.json")
    warp = ["--temperature", "0.5", "--top-k", "6"]
    cli_json("--algorithm", "dsi", *warp, "--max-tokens", "15", "--trace", path)
    assert cli("check", path, "--pair", "markov32", *warp)[0] == 0
    assert cli("check", path, "--pair", "markov32")[0] == 1  # checked as T=1: p's differ


def test_check_fails_on_a_tampered_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    cli("run", "--algorithm", "dsi", "--max-tokens", "20", "--trace", str(path))
    trace = json.loads(path.read_text())
    commit = next(e for e in trace["events"] if e["ev"] == "commit" and e["accepted"])
    commit["accepted"] = False  # a flipped verification outcome
    path.write_text(json.dumps(trace))
    rc, text = cli("check", str(path))
    assert rc == 1
    assert text.startswith("FAIL:") and len(text.splitlines()) >= 2


def test_check_with_the_wrong_drafter_noise_fails(tmp_path: Path) -> None:
    """Rule 8 (recorded q equals the model's) catches a trace run with another drafter."""
    path = str(tmp_path / "n.json")
    cli_json("--algorithm", "si", "--noise", "0.5", "--max-tokens", "10", "--trace", path)
    assert cli("check", path, "--pair", "markov32", "--noise", "0.5")[0] == 0
    rc, text = cli("check", path, "--pair", "markov32")
    assert rc == 1 and "rule 8" in text


# ----- bad input ---------------------------------------------------------------

BAD: list[tuple[list[str], str]] = [
    (["run", "--k", "0"], "got 0"),
    (["run", "--servers", "0"], "got 0"),
    (["run", "--max-tokens", "-3"], "got -3"),
    (["run", "--k", "abc"], "'abc'"),
    (["run", "--target-ttft", "-1"], "-1"),
    (["run", "--drafter-tpot", "fast"], "'fast'"),
    (["run", "--drafter-tpot", "0"], "drafter TPOT must be > 0, got '0'"),
    (["run", "--top-p", "1.5"], "'1.5'"),
    (["run", "--top-k", "0"], "got 0"),
    (["run", "--temperature", "0"], "--temperature must be > 0 when sampling, got '0'"),
    (["run", "--temperature", "hot"], "'hot'"),
    (["run", "--pair", "gpt5"], "'gpt5'"),
    (["run", "--noise", "1.2"], "'1.2'"),
    (["run", "--prompt", "40"], "40"),
    (["run", "--prompt", "a,b"], "'a,b'"),
    (["run", "--algorithm", "beam"], "'beam'"),
    (["run", "--seed", "-1"], "got -1"),
    (["run", "--bogus"], "--bogus"),
    (["frobnicate"], "'frobnicate'"),
    ([], "COMMAND"),
    (["check", "/nonexistent/trace.json"], "/nonexistent/trace.json"),
    (["check", "README.md"], "README.md"),
    (["check", "x.json", "--tol", "nan"], "'nan'"),
    (["check", "x.json", "--tol", "-1"], "'-1'"),
    (["check", "x.json", "--show", "-2"], "'-2'"),
    (["check", "x.json", "--temperature", "2"], "--temperature only apply with --pair"),
    (["check", "x.json", "--top-k", "3", "--top-p", "0.5"], "--top-k, --top-p"),
    (["run", "--show-tokens", "-1"], "'-1'"),
    # a parent that is a regular file (a missing directory would be created)
    (["run", "--trace", "README.md/dir/t.json"], "README.md/dir/t.nonsi.json"),
]


@pytest.mark.parametrize(("argv", "named"), BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_bad_input_is_one_error_line_and_exit_2(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = cli(*argv)
    err = capsys.readouterr().err
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert named in err, err


def test_progress_goes_to_stderr_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = cli("run", "--max-tokens", "10")
    assert rc == 0 and capsys.readouterr().err == ""
    rc, out2 = cli("run", "--max-tokens", "10", "--progress")
    err = capsys.readouterr().err.splitlines()
    assert rc == 0 and out2 == out
    assert [line.split(":")[0] for line in err] == ["non-SI", "SI", "DSI"]


def test_temperature_zero_is_fine_when_greedy() -> None:
    assert cli("run", "--greedy", "--temperature", "0", "--max-tokens", "5")[0] == 0


def test_malformed_trace_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "dsi-trace", "events": "nope"}))
    assert cli("check", str(path))[0] == 2
    assert capsys.readouterr().err.startswith("error: ")


# ----- demo, help, dispatch ----------------------------------------------------


def test_demo_prints_three_algorithms_and_true_speedups() -> None:
    rc, text = cli("demo")
    assert rc == 0
    lines = text.splitlines()
    assert next(x for x in lines if x.startswith("algorithm")).split()[1:] == [
        "non-SI",
        "SI",
        "DSI",
    ]
    tokens = [x.split() for x in lines if x.startswith("  ")]
    assert [t[0] for t in tokens] == ["non-SI", "SI", "DSI"]
    assert all(len(t) == 1 + 20 + 1 for t in tokens)  # label, first 20 tokens, "..."
    pair, cfg = get_pair("markov32"), demo_config()
    lat = {a: run_algorithm(a, pair, cfg).latency for a in ("nonsi", "si", "dsi")}
    claim = f"DSI is {float(lat['si'] / lat['dsi']):.3f}x as fast as SI and "
    claim += f"{float(lat['nonsi'] / lat['dsi']):.3f}x as fast as non-SI."
    assert claim in lines
    assert lat["dsi"] < lat["si"] < lat["nonsi"]  # the demo's defaults show DSI winning


def test_demo_claims_name_existing_tests_and_its_dsi_run_is_the_reference() -> None:
    for path in LOSSLESS_TESTS:
        assert (REPO / path).is_file(), path
    assert LOSSLESS_NOTE in cli("demo")[1].splitlines()
    pair, cfg = get_pair(DEMO_PAIR), demo_config()
    dsi = run_algorithm("dsi", pair, cfg)
    assert dsi.tokens == reference_tokens(pair.target, pair.drafter, cfg)


def test_python_dash_m_runs_the_demo() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dsi_ref", "demo", "--max-tokens", "20"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "DSI is" in proc.stdout


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--help")[0] == 0
    assert "run" in capsys.readouterr().out


def test_registered_theory_commands_are_dispatched(monkeypatch: pytest.MonkeyPatch) -> None:
    import dsi_ref.theory.commands as commands

    seen: list[str] = []

    def hello(args: Any) -> int:
        seen.append(args.name)
        return 3

    def register(sub: Any) -> None:
        p = sub.add_parser("hello")
        p.add_argument("--name", default="x")
        p.set_defaults(func=hello)

    monkeypatch.setattr(commands, "register", register)
    assert cli("hello", "--name", "dsi")[0] == 3
    assert seen == ["dsi"]


# ----- pairs -------------------------------------------------------------------


def test_exact_pair_acceptance_is_one_minus_noise_times_tv() -> None:
    """The pairs' docstring claim, exactly: mean acceptance = 1 - noise * mean TV(p, r)."""
    base = get_pair("exact3", "0")
    assert base.exact and base.mean_acceptance() == 1
    r = get_pair("exact3", "1").drafter.next_dist(())  # noise 1: q = r at every context
    tv = [total_variation(base.target.next_dist(c), r) for c in base.contexts]
    mean_tv = sum(tv, Fraction(0)) / len(tv)
    for noise in ("1/4", "1/2", "1"):
        assert get_pair("exact3", noise).mean_acceptance() == 1 - Fraction(noise) * mean_tv


# ----- docs/quickstart.md ------------------------------------------------------


def render_quickstart(text: str) -> str:
    """The doc with every console block's output replaced by a fresh run of its `$` lines.

    Run in an empty directory (the doc writes and reads out.json). To refresh the doc
    after a deliberate change of output: .venv/bin/python tests/test_cli.py
    """

    def block(m: re.Match[str]) -> str:
        body: list[str] = []
        for line in m.group(1).splitlines():
            if not line.startswith("$ "):
                continue
            argv = shlex.split(line[2:])
            assert argv[:3] == ["python", "-m", "dsi_ref"], line
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err):
                main(argv[3:], out=out)
            body.append(line)
            text = (out.getvalue() + err.getvalue()).rstrip("\n")
            if text:
                body.append(text)
        return "```console\n" + "\n".join(body) + "\n```"

    return re.sub(r"```console\n(.*?)```", block, text, flags=re.S)


def test_quickstart_outputs_match_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = QUICKSTART.read_text()
    assert doc.count("```console") >= 5
    monkeypatch.chdir(tmp_path)
    assert render_quickstart(doc) == doc, (
        "docs/quickstart.md is stale; after checking the change is intended, re-render it "
        "with .venv/bin/python tests/test_cli.py"
    )


if __name__ == "__main__":
    import os
    import tempfile

    text = QUICKSTART.read_text()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        QUICKSTART.write_text(render_quickstart(text))
    print(f"re-rendered {QUICKSTART}")
