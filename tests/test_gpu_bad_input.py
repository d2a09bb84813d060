"""Bad input to the runner: a typed error naming the value, before any model is loaded where
possible; and a model whose output is broken (NaN, wrong width, too few rows) is refused."""

from __future__ import annotations

import math
from typing import Any

import pytest
from gpu_fixtures import llama, pair, torch

from dsi_ref.errors import DSIError, InvalidConfig
from gpu_runner.api import RunnerConfig, run
from gpu_runner.errors import DeviceError, IncompatiblePair, InvalidModelOutput
from gpu_runner.generate import generate

TARGET, DRAFTER = pair()
OK: dict[str, Any] = {"max_new_tokens": 4, "k": 2, "servers": 2, "dtype": "float64"}

CASES: list[tuple[str, dict[str, Any], type[DSIError], str]] = [
    ("k zero", {"k": 0}, InvalidConfig, "0"),
    ("k huge", {"k": 10**9}, InvalidConfig, "1000000000"),
    ("servers zero", {"servers": 0}, InvalidConfig, "0"),
    ("servers 10**12", {"servers": 10**12}, InvalidConfig, "1000000000000"),
    ("servers not int", {"servers": 2.5}, InvalidConfig, "2.5"),
    ("algorithm", {"algorithm": "medusa"}, InvalidConfig, "medusa"),
    ("max_new_tokens", {"max_new_tokens": -1}, InvalidConfig, "-1"),
    ("seed negative", {"seed": -3}, InvalidConfig, "-3"),
    ("seed 2**70", {"seed": 2**70}, InvalidConfig, str(2**70)),
    ("acceptance > 1", {"acceptance": 1.5}, InvalidConfig, "1.5"),
    ("acceptance NaN", {"acceptance": math.nan}, InvalidConfig, "nan"),
    (
        "replace w/o timing",
        {"inject_target": (1, 1), "inject_drafter": (1, 1), "replace_forward": True},
        InvalidConfig,
        "timing mode",
    ),
    ("one latency only", {"inject_target": (1, 1)}, InvalidConfig, "both"),
    (
        "negative latency",
        {"inject_target": ("-1", 1), "inject_drafter": (1, 1)},
        InvalidConfig,
        "-1",
    ),
    ("temperature 0", {"do_sample": True, "temperature": 0}, InvalidConfig, "0"),
    ("top_p 2", {"do_sample": True, "top_p": 2}, InvalidConfig, "2"),
    ("dtype", {"dtype": "int8"}, InvalidConfig, "int8"),
    ("device missing", {"devices": ["cuda:3"]}, DeviceError, "cuda:3"),
    ("device unknown", {"devices": ["tpu"]}, DeviceError, "tpu"),
    ("device garbage", {"devices": ["cpu:x"]}, DeviceError, "cpu:x"),
    ("device not str", {"devices": [3.5]}, DeviceError, "3.5"),
    ("devices empty", {"devices": []}, DeviceError, "empty"),
    ("exclusive", {"devices": ["cpu"], "exclusive": True, "servers": 2}, DeviceError, "2"),
]


@pytest.mark.parametrize("name,kw,err,shown", CASES, ids=[c[0] for c in CASES])
def test_bad_settings(name: str, kw: dict[str, Any], err: type[DSIError], shown: str) -> None:
    with pytest.raises(err) as info:
        generate(TARGET, DRAFTER, [1, 2], **{**OK, **kw})
    assert shown in str(info.value), str(info.value)


PROMPTS: list[tuple[str, object, str]] = [
    ("empty", [], "empty"),
    ("string", "hello", "hello"),
    ("negative id", [1, -2], "-2"),
    ("float id", [1, 2.0], "2.0"),
    ("bool id", [True], "True"),
    ("outside vocab", [1, 999], "999"),
    ("2-d batch of 2", torch.zeros(2, 3, dtype=torch.long), "(2, 3)"),
    ("float tensor", torch.zeros(3), "float"),
    ("too long", list(range(30)) * 9, "context window"),
]


@pytest.mark.parametrize("name,prompt,shown", PROMPTS, ids=[c[0] for c in PROMPTS])
def test_bad_prompts(name: str, prompt: object, shown: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        generate(TARGET, DRAFTER, prompt, **OK)
    assert shown in str(info.value), str(info.value)


def test_mismatched_vocabularies() -> None:
    other = llama(3, 16, vocab=40)
    with pytest.raises(IncompatiblePair) as info:
        generate(TARGET, other, [1, 2], **OK)
    assert "32" in str(info.value) and "40" in str(info.value)


class _Broken(torch.nn.Module):
    """Wraps a model and corrupts its logits."""

    def __init__(self, inner: torch.nn.Module, how: str) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.how = how

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(self, **kw: Any) -> Any:
        out = self.inner(**kw)
        if self.how == "nan":
            out.logits[..., 3] = math.nan
        elif self.how == "wide":
            out.logits = torch.cat([out.logits, out.logits[..., :1]], dim=-1)
        elif self.how == "short":
            out.logits = out.logits[:, :0]
        return out


@pytest.mark.parametrize("how,shown", [("nan", "nan"), ("wide", "33"), ("short", "0 rows")])
@pytest.mark.parametrize("alg", ["dsi", "si"])
def test_broken_model_output_is_refused(how: str, shown: str, alg: str) -> None:
    cfg = RunnerConfig(algorithm=alg, max_new_tokens=4, k=2, servers=2)
    with pytest.raises(InvalidModelOutput) as info:
        run(_Broken(TARGET, how), DRAFTER, [1, 2], cfg)
    assert shown in str(info.value), str(info.value)


# --- more kinds (issue 10): each a typed error naming the value, before any model runs ------

MORE: list[tuple[str, dict[str, Any], type[DSIError], str]] = [
    ("k above MAX_K", {"k": 65}, InvalidConfig, "65"),
    ("k float", {"k": 2.0}, InvalidConfig, "2.0"),
    ("max_new_tokens zero", {"max_new_tokens": 0}, InvalidConfig, "0"),
    ("max_new_tokens 10**7", {"max_new_tokens": 10**7}, InvalidConfig, "10000000"),
    ("max_new_tokens str", {"max_new_tokens": "8"}, InvalidConfig, "'8'"),
    ("algorithm None", {"algorithm": None}, InvalidConfig, "None"),
    ("algorithm upper", {"algorithm": "DSI"}, InvalidConfig, "DSI"),
    ("seed float", {"seed": 1.5}, InvalidConfig, "1.5"),
    ("seed bool", {"seed": True}, InvalidConfig, "True"),
    ("acceptance negative", {"acceptance": -0.1}, InvalidConfig, "-0.1"),
    ("acceptance str", {"acceptance": "0.5"}, InvalidConfig, "0.5"),
    ("acceptance bool", {"acceptance": True}, InvalidConfig, "True"),
    ("wait 1e9 s", {"inject_target": (1e9, 1e9), "inject_drafter": (1, 1)}, InvalidConfig, "60"),
    ("wait TPOT 61 s", {"inject_target": (1, 61), "inject_drafter": (1, 1)}, InvalidConfig, "61"),
    ("wait pair of one", {"inject_target": (1,), "inject_drafter": (1, 1)}, InvalidConfig, "(1,)"),
    ("wait as text", {"inject_target": "1,1", "inject_drafter": (1, 1)}, InvalidConfig, "'1,1'"),
    ("wait NaN", {"inject_target": (math.nan, 1), "inject_drafter": (1, 1)}, InvalidConfig, "nan"),
    ("wait not number", {"inject_target": ("x", 1), "inject_drafter": (1, 1)}, InvalidConfig, "x"),
    ("drafter wait only", {"inject_drafter": (1, 1)}, InvalidConfig, "both"),
    ("plan target only", {"plan_target": (1, 1)}, InvalidConfig, "plan_drafter"),
    (
        "plan pair of three",
        {"plan_target": (1, 1, 1), "plan_drafter": (1, 1)},
        InvalidConfig,
        "(1, 1, 1)",
    ),
    ("plan NaN", {"plan_target": (1, math.nan), "plan_drafter": (1, 1)}, InvalidConfig, "nan"),
    ("plan negative", {"plan_target": (1, 1), "plan_drafter": (-2, 1)}, InvalidConfig, "-2"),
    (
        "plan 1e-400",
        {"plan_target": ("1e-400", 1), "plan_drafter": (1, 1)},
        InvalidConfig,
        "1e-400",
    ),
    ("temperature NaN", {"do_sample": True, "temperature": math.nan}, InvalidConfig, "nan"),
    ("temperature -1", {"do_sample": True, "temperature": -1}, InvalidConfig, "-1"),
    ("top_k zero", {"do_sample": True, "top_k": 0}, InvalidConfig, "0"),
    ("top_p zero", {"do_sample": True, "top_p": 0}, InvalidConfig, "0"),
    ("progress int", {"progress": 3}, InvalidConfig, "3"),
    ("dtype int64", {"dtype": torch.int64}, InvalidConfig, "int64"),
    ("dtype float8 str", {"dtype": "float8"}, InvalidConfig, "float8"),
    ("drafter device", {"drafter_device": "cuda:9"}, DeviceError, "cuda:9"),
    ("drafter device int", {"drafter_device": 3}, DeviceError, "3"),
    ("devices str garbage", {"devices": "gpu0"}, DeviceError, "gpu0"),
]


@pytest.mark.parametrize("name,kw,err,shown", MORE, ids=[c[0] for c in MORE])
def test_more_bad_settings(name: str, kw: dict[str, Any], err: type[DSIError], shown: str) -> None:
    with pytest.raises(err) as info:
        generate(TARGET, DRAFTER, [1, 2], **{**OK, **kw})
    assert shown in str(info.value), str(info.value)


MORE_PROMPTS: list[tuple[str, object, str]] = [
    ("nested list", [[1, 2]], "[1, 2]"),
    ("None", None, "None"),
    ("bytes", b"\x01\x02", "b'\\x01"),
    ("3-d tensor", torch.zeros(1, 1, 2, dtype=torch.long), "(1, 1, 2)"),
    ("empty tensor", torch.zeros(1, 0, dtype=torch.long), "empty"),
    ("id 2**63", [2**63], str(2**63)),
    ("id as str", ["5"], "'5'"),
]


@pytest.mark.parametrize("name,prompt,shown", MORE_PROMPTS, ids=[c[0] for c in MORE_PROMPTS])
def test_more_bad_prompts(name: str, prompt: object, shown: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        generate(TARGET, DRAFTER, prompt, **OK)
    assert shown in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "spec,shown",
    [(42, "42"), ({"path": "x"}, "path"), ("/nonexistent/model", "/nonexistent/model")],
)
def test_bad_model_specs(spec: object, shown: str) -> None:
    from gpu_runner.errors import ModelLoadError

    with pytest.raises(ModelLoadError) as info:
        generate(spec, DRAFTER, [1, 2], **OK)  # type: ignore[arg-type]
    assert shown in str(info.value), str(info.value)


# The CLI: exit 2 and one line naming the value (argparse's own errors: exit 2 and its usage).
CLI: list[tuple[str, list[str], str]] = [
    ("k not int", ["--k", "abc"], "abc"),
    ("max-new-tokens negative", ["--max-new-tokens", "-5"], "-5"),
    ("temperature garbage", ["--sample", "--temperature", "hot"], "hot"),
    ("temperature negative", ["--sample", "--temperature", "-1"], "-1"),
    ("top-p above 1", ["--sample", "--top-p", "2"], "2"),
    ("top-k negative", ["--sample", "--top-k", "-3"], "-3"),
    ("inject one number", ["--inject-target", "1", "--inject-drafter", "1,1"], "'1'"),
    ("inject words", ["--inject-target", "a,b", "--inject-drafter", "1,1"], "'a'"),
    ("inject negative", ["--inject-target", "-1,1", "--inject-drafter", "1,1"], "'-1'"),
    ("inject 1e9", ["--inject-target", "1e9,1", "--inject-drafter", "1,1"], "60 s"),
    ("plan words", ["--plan-target", "x,1", "--plan-drafter", "1,1"], "'x'"),
    ("plan negative", ["--plan-target", "1,1", "--plan-drafter", "-1,1"], "'-1'"),
    ("plan one side", ["--plan-target", "1,1"], "plan_drafter"),
    ("empty prompt", ["--prompt", ""], "empty"),
    ("algorithm unknown", ["--algorithm", "medusa"], "medusa"),
    ("dtype float8", ["--dtype", "float8"], "float8"),
    ("device empty", ["--device", ""], "''"),
    ("drafter device tpu", ["--drafter-device", "tpu"], "tpu"),
    ("seed negative", ["--seed", "-1"], "-1"),
    ("servers zero", ["--servers", "0"], "servers"),
    ("acceptance NaN", ["--acceptance", "nan"], "nan"),
    ("drafter only", ["--drafter", "/x"], "--target"),
]


@pytest.mark.parametrize("name,args,shown", CLI, ids=[c[0] for c in CLI])
def test_cli_bad_input(
    name: str, args: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpu_runner.cli import main

    try:
        rc = main(["run", "--quiet", "--max-new-tokens", "2", *args])
    except SystemExit as e:  # argparse: usage and one error line
        rc = e.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert rc == 2, err
    assert shown in err and "Traceback" not in err, err
