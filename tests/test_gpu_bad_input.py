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
