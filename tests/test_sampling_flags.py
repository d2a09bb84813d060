"""One rule for sampling settings in both packages (dsi_ref.sampling_rule).

Invalid values are refused whatever the mode; a setting that has no effect in the chosen
mode (temperature, top-k or top-p under greedy decoding) is refused too. Each refusal is
an InvalidConfig naming the setting as that interface spells it and the value given.
Every case below was accepted, ignored or a bare TypeError before the rule.
"""

from __future__ import annotations

import io
import json
import math
from fractions import Fraction as F
from pathlib import Path
from typing import Any

import pytest

from dsi_ref import sampling_rule
from dsi_ref.cli import main
from dsi_ref.errors import InvalidConfig
from dsi_ref.sampling import SamplingConfig

# (kwargs, text the message must hold)
API_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"greedy": True, "temperature": -1}, "temperature must lie in [1e-6, 1e6]"),
    ({"greedy": True, "temperature": 0}, "greedy=True"),
    ({"greedy": True, "temperature": F(1, 2)}, "temperature only applies when sampling"),
    ({"greedy": True, "top_p": 0.1}, "top_p only applies when sampling"),
    ({"greedy": True, "top_k": 3}, "top_k only applies"),
    ({"greedy": True, "top_k": 1, "top_p": 1}, "top_k, top_p only apply"),
    ({"greedy": True, "top_p": 2}, "top_p must be a number in (0, 1]"),  # invalid beats unused
    ({"greedy": "yes"}, "greedy must be a bool, got 'yes'"),
    ({"greedy": 1}, "greedy must be a bool, got 1"),
    ({"top_p": True}, "got True"),
    ({"top_p": "0.5"}, "got '0.5'"),
    ({"top_p": math.nan}, "got nan"),
    ({"top_p": 0}, "got 0"),
    ({"top_p": F(3, 2)}, "got 3/2"),
    ({"temperature": True}, "temperature must be a finite number, got True"),
    ({"temperature": "1"}, "got '1'"),
    ({"temperature": math.inf}, "got inf"),
    ({"temperature": 0}, "for argmax decoding pass greedy=True"),
    ({"temperature": 10**7}, "got 10000000"),
    ({"top_k": True}, "top_k must be an int >= 1 or None, got True"),
    ({"top_k": 0}, "got 0"),
    ({"top_k": 2.0}, "got 2.0"),
]


@pytest.mark.parametrize(("kw", "text"), API_REFUSED, ids=[repr(c[0]) for c in API_REFUSED])
def test_api_refuses_with_the_value(kw: dict[str, Any], text: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        SamplingConfig(**kw)
    assert text in str(info.value)


def test_api_accepts_the_neutral_and_boundary_values() -> None:
    # Positive controls: a temperature of 1 is neutral, so greedy may state it.
    for cfg in (
        SamplingConfig(greedy=True),
        SamplingConfig(greedy=True, temperature=1),
        SamplingConfig(greedy=True, temperature=1.0),
        SamplingConfig(temperature=F(1, 10**6), top_k=1, top_p=1),
        SamplingConfig(temperature=1e-6, top_p=F(1, 10**9)),
        SamplingConfig(temperature=10**6),
    ):
        assert isinstance(cfg, SamplingConfig)


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(err):
        rc = main(list(argv), out=out)
    return rc, out.getvalue(), err.getvalue()


CLI_REFUSED: list[tuple[list[str], str]] = [
    (["--greedy", "--temperature", "-5"], "--temperature must lie in [1e-6, 1e6]"),
    (["--greedy", "--temperature", "0"], "use --greedy without --temperature"),
    (["--greedy", "--temperature", "0.5"], "--temperature only applies when sampling"),
    (["--greedy", "--top-p", "0.1"], "--top-p only applies when sampling"),
    (["--greedy", "--top-k", "2"], "--top-k only applies when sampling"),
    (["--temperature", "0"], "got '0'"),
    (["--top-p", "0"], "--top-p must be a number in (0, 1]"),
    (["--top-p", "nan"], "--top-p"),
]


@pytest.mark.parametrize(("flags", "text"), CLI_REFUSED, ids=[" ".join(c[0]) for c in CLI_REFUSED])
def test_dsi_ref_cli_refuses_naming_the_flag(flags: list[str], text: str) -> None:
    rc, out, err = _cli("run", "--max-tokens", "3", *flags)
    assert rc == 2 and out == ""
    assert text in err


def test_dsi_ref_cli_accepts_greedy_at_the_neutral_temperature() -> None:
    assert _cli("run", "--greedy", "--temperature", "1", "--max-tokens", "3")[0] == 0


def test_check_of_a_greedy_trace_refuses_sampling_flags(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    argv = ["run", "--algorithm", "si", "--greedy", "--max-tokens", "6", "--trace", str(path)]
    assert _cli(*argv)[0] == 0
    assert json.loads(path.read_text())["greedy"] is True
    rc, _, err = _cli("check", str(path), "--pair", "markov32", "--temperature", "0.5")
    assert rc == 2 and "the trace's header says greedy" in err
    assert _cli("check", str(path), "--pair", "markov32")[0] == 0  # positive control


def test_check_with_a_pair_of_another_vocabulary_blames_the_vocabulary(tmp_path: Path) -> None:
    # Issue 10 item 13: a vocabulary-32 trace checked against exact3 (vocabulary 3) used to
    # say "exact3-target has no distribution for context (24,)".
    path = tmp_path / "m.json"
    assert _cli("run", "--algorithm", "dsi", "--max-tokens", "6", "--trace", str(path))[0] == 0
    rc, out, err = _cli("check", str(path), "--pair", "exact3")
    assert rc == 2 and out == ""
    assert "--pair exact3 has vocabulary 3, but the trace's vocab_size is 32" in err
    assert "markov32" in err and "context" not in err


# ----- gpu_runner: the same rule, its own spellings -----------------------------------


def test_the_four_spellings_name_their_own_flags() -> None:
    for names, flag in (
        (sampling_rule.API, "top_p"),
        (sampling_rule.DSI_CLI, "--top-p"),
        (sampling_rule.GPU_API, "top_p"),
        (sampling_rule.GPU_CLI, "--top-p"),
    ):
        with pytest.raises(InvalidConfig) as info:
            sampling_rule.check_sampling(True, 1, None, 0.5, names)
        assert str(info.value).startswith(f"{flag} only applies") and names.greedy in str(
            info.value
        )


GPU_CLI_REFUSED: list[tuple[list[str], str]] = [
    (["--temperature", "0"], "leave out --sample and --temperature"),
    (["--temperature", "-1"], "got -1"),
    (["--temperature", "0.7"], "--temperature only applies when sampling"),
    (["--top-p", "0.5"], "(no --sample)"),
    (["--sample", "--temperature", "0"], "got 0"),
    (["--sample", "--top-k", "-1"], "--top-k must be an int >= 1"),
]


@pytest.mark.parametrize(
    ("flags", "text"), GPU_CLI_REFUSED, ids=[" ".join(c[0]) for c in GPU_CLI_REFUSED]
)
def test_gpu_runner_cli_refuses_before_loading(
    flags: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    from gpu_runner.cli import main as gpu_main

    missing = "/nonexistent/model"  # never reached: the rule is checked before loading
    assert gpu_main(["run", "--target", missing, "--drafter", missing, *flags]) == 2
    assert text in capsys.readouterr().err


GPU_API_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"do_sample": "yes"}, "do_sample must be a bool, got 'yes'"),
    ({"do_sample": 1}, "do_sample must be a bool, got 1"),
    ({"temperature": -1}, "pass do_sample=False and leave temperature at 1"),
    ({"temperature": 0.7}, "temperature only applies when sampling"),
    ({"top_k": 5}, "(do_sample=False)"),
    ({"do_sample": True, "top_p": True}, "got True"),
    ({"do_sample": True, "top_p": "0.5"}, "got '0.5'"),
    ({"replace_forward": True}, "replace_forward=True needs inject_target and inject_drafter"),
    ({"replace_forward": "yes"}, "replace_forward must be a bool, got 'yes'"),
]


@pytest.mark.parametrize(("kw", "text"), GPU_API_REFUSED, ids=[repr(c[0]) for c in GPU_API_REFUSED])
def test_gpu_runner_api_refuses_before_loading(kw: dict[str, Any], text: str) -> None:
    pytest.importorskip("transformers")
    from gpu_runner.generate import generate

    with pytest.raises(InvalidConfig) as info:
        generate("/nonexistent/t", "/nonexistent/d", [1, 2], **kw)
    assert text in str(info.value)


def test_gpu_runner_api_valid_settings_reach_loading() -> None:
    # Positive control: valid settings pass the rule and fail later, at the missing model.
    pytest.importorskip("transformers")
    from gpu_runner.generate import generate

    for kw in ({}, {"do_sample": True, "temperature": 0.7, "top_k": 5, "top_p": 0.9}):
        with pytest.raises(Exception) as info:
            generate("/nonexistent/t", "/nonexistent/d", [1, 2], **kw)
        assert "nonexistent" in str(info.value), kw
