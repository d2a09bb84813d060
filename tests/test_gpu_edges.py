"""gpu_runner at the edges (issue 10): checkpoints, weight files, prompt bytes, injected waits,
names of counts, and the two let-through bugs of item 14 (each test below fails with its bug
planted: cached_forward returning the first rows, predict on the preemptive clock).

CPU, float64, one torch thread; every test runs in about a second or less.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from gpu_fixtures import greedy_reference, llama, pair, torch

from dsi_ref.config import RunConfig
from dsi_ref.errors import DSIError, InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.pattern import run_pattern
from dsi_ref.result import Counters
from gpu_runner import cli
from gpu_runner.api import RunnerConfig, run
from gpu_runner.errors import InvalidInput, InvalidModelOutput, ModelLoadError
from gpu_runner.generate import generate
from gpu_runner.hf_compat import cache_kwarg, cached_forward, new_cache
from gpu_runner.loading import load_model
from gpu_runner.predict import predict
from gpu_runner.result import Costs, RealRun
from gpu_runner.tiny import tiny_pair_paths
from gpu_runner.tokenizer import ByteTokenizer, encode, encode_bytes

TARGET, DRAFTER = pair()


_greedy = greedy_reference


# --- item 14: a forward without `logits_to_keep` -------------------------------------------


class _NoLogitsToKeep(torch.nn.Module):
    """A causal LM whose forward has no `logits_to_keep` (it always returns every row)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.kw = cache_kwarg(inner)

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = True,
    ) -> Any:
        return self.inner(
            input_ids=input_ids,
            position_ids=position_ids,
            use_cache=use_cache,
            **{self.kw: past_key_values},
        )


def test_cached_forward_without_logits_to_keep_returns_the_last_rows() -> None:
    wrapped = _NoLogitsToKeep(TARGET)
    assert cache_kwarg(wrapped) == "past_key_values"
    ids = torch.tensor([[3, 1, 4, 1, 5, 9]])
    with torch.inference_mode():
        full = TARGET(input_ids=ids).logits
        got = cached_forward(wrapped, ids, new_cache(wrapped), last=2)
    assert got.shape == (1, 2, full.shape[-1])
    assert torch.allclose(got, full[:, -2:], rtol=0, atol=1e-10)
    assert not torch.allclose(got, full[:, :2], rtol=0, atol=1e-6)  # the planted bug's rows


@pytest.mark.parametrize("alg", ["si", "dsi"])
def test_runs_through_a_forward_without_logits_to_keep_equal_generate(alg: str) -> None:
    prompt, n = [1, 2, 3], 10  # a prompt on which the first-rows bug changes both outputs
    cfg = RunnerConfig(algorithm=alg, max_new_tokens=n, k=3, servers=2)
    got = run(_NoLogitsToKeep(TARGET), _NoLogitsToKeep(DRAFTER), prompt, cfg).tokens
    assert got == _greedy(TARGET, prompt, n)


# --- item 14: predict() is the non-preemptive clock ----------------------------------------


def test_predict_uses_the_non_preemptive_clock() -> None:
    # a pattern on which the two clocks differ (0.070 s vs 0.057 s), found by enumeration
    accepted = (True,) * 6
    t, d = Latency.of("0.03", "0.02"), Latency.of("0.004", "0.003")
    real = RealRun("dsi", (0,) * 6, 0.1, (0.0,) * 6, accepted, Counters(), Costs())
    want = {
        pre: run_pattern(
            "dsi",
            accepted,
            RunConfig(max_tokens=6, k=2, servers=2, target_latency=t, drafter_latency=d,
                      preemptive=pre, policy="paper"),
        ).latency
        for pre in (False, True)
    }  # fmt: skip
    assert want[False] != want[True]
    assert predict(real, 2, 2, t, d, policy="paper") == want[False]


# --- item 4: checkpoints whose tensors do not match the model ------------------------------


def _copy_drafter(tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(tiny_pair_paths()[1], dst)
    return dst


def _edit_weights(d: Path, how: str) -> str:
    from safetensors.torch import load_file, save_file

    f = d / "model.safetensors"
    sd = load_file(f)
    name = "model.layers.0.mlp.down_proj.weight"
    if how == "missing":
        del sd[name]
    else:
        name = "model.layers.0.extra.weight"
        sd[name] = torch.zeros(2)
    save_file(sd, f, metadata={"format": "pt"})
    return name


@pytest.mark.parametrize(
    "how,said", [("missing", "missing from the checkpoint"), ("extra", "not in the model")]
)
def test_checkpoint_with_missing_or_unexpected_tensor_is_refused(
    tmp_path: Path, how: str, said: str
) -> None:
    d = _copy_drafter(tmp_path)
    name = _edit_weights(d, how)
    with pytest.raises(ModelLoadError, match=said) as info:
        load_model(d, dtype=torch.float64, device="cpu")
    assert name in str(info.value) and str(d) in str(info.value)


def test_generate_with_a_checkpoint_missing_a_tensor_fails_before_running(tmp_path: Path) -> None:
    d = _copy_drafter(tmp_path)
    _edit_weights(d, "missing")
    with pytest.raises(ModelLoadError, match="down_proj"):
        generate(tiny_pair_paths()[0], d, [1, 2], max_new_tokens=2)


# --- item 13: weight files that are not regular files --------------------------------------


def _special(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"special-{kind}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "chardev":
        try:
            os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a private null device
        except (PermissionError, OSError):
            pytest.skip("cannot create a device node here (needs CAP_MKNOD)")
    elif kind == "dir":
        p.mkdir()
    return p


@pytest.mark.parametrize(
    "kind,said",
    [("fifo", "a FIFO"), ("chardev", "a character device"), ("dir", "a directory")],
)
def test_weight_file_symlinked_to_a_special_file_is_named(
    tmp_path: Path, kind: str, said: str
) -> None:
    d = _copy_drafter(tmp_path)
    special = _special(tmp_path, kind)
    weights = d / "model.safetensors"
    weights.unlink()
    weights.symlink_to(special)
    with pytest.raises(ModelLoadError, match=said) as info:
        load_model(d, dtype=torch.float64, device="cpu")  # never opens the FIFO (would block)
    assert "model.safetensors" in str(info.value) and str(special) in str(info.value)
    if kind == "chardev":
        assert stat.S_ISCHR(os.stat(special).st_mode)  # untouched


def test_broken_weight_symlink_is_named(tmp_path: Path) -> None:
    d = _copy_drafter(tmp_path)
    weights = d / "model.safetensors"
    weights.unlink()
    weights.symlink_to(tmp_path / "gone")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        load_model(d, dtype=torch.float64, device="cpu")


@pytest.mark.parametrize("model_type", ["t5", "vit", "no-such-architecture"])
def test_model_type_without_a_causal_lm_is_one_short_line(tmp_path: Path, model_type: str) -> None:
    d = _copy_drafter(tmp_path)
    (d / "config.json").write_text(f'{{"model_type": "{model_type}"}}')
    with pytest.raises(ModelLoadError) as info:
        load_model(d, dtype=torch.float64, device="cpu")
    msg = str(info.value)
    assert repr(model_type) in msg and "causal-LM" in msg
    assert len(msg) < 400 and "\n" not in msg, msg  # not transformers' list of ~400 classes


# --- item 6: prompt bytes ------------------------------------------------------------------


def test_encode_refuses_lone_surrogates_and_encode_bytes_keeps_bytes() -> None:
    assert encode_bytes(b"\xff\xfe") == [255, 254]
    assert ByteTokenizer().encode_bytes(bytearray(b"a\x80")) == [97, 128]
    with pytest.raises(InvalidInput, match=r"U\+DCFF"):
        encode("\udcff\udcfe")  # what argv holds for the bytes ff fe
    with pytest.raises(InvalidInput, match="str"):
        encode_bytes("text")  # type: ignore[arg-type]


def _captured_prompt(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> list[int]:
    seen: list[list[int]] = []

    def fake_generate(target: object, drafter: object, ids: list[int], **kw: object) -> Any:
        seen.append(list(ids))
        raise DSIError("stop here")

    import gpu_runner.generate as gen

    monkeypatch.setattr(gen, "generate", fake_generate)
    assert cli.main(argv) == 2
    return seen[0]


def test_cli_feeds_the_prompt_bytes_given(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.fsdecode(b"\xff\xfe")  # how Python hands such argv bytes to main
    assert _captured_prompt(monkeypatch, ["run", "--quiet", "--prompt", raw]) == [255, 254]
    text = "héllo"
    ids = _captured_prompt(monkeypatch, ["run", "--quiet", "--prompt", text])
    assert ids == list(text.encode("utf-8"))
    dash = _captured_prompt(monkeypatch, ["run", "--quiet", "--prompt", "-x"])
    assert dash == [45, 120]


# --- items 7 and 13: injected waits --------------------------------------------------------


@pytest.mark.parametrize(
    "target,said",
    [
        ((1e9, 1e9), "maximum of 60 s"),
        (("61", "0.1"), "TTFT of 61 s"),
        ((1,), "(1,)"),
        ((1, 2, 3), "(1, 2, 3)"),
        ("0.1,0.1", "'0.1,0.1'"),
        (5, "5"),
    ],
)
def test_injected_waits_are_bounded_and_shaped(target: object, said: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        generate(TARGET, DRAFTER, [1], inject_target=target, inject_drafter=(0.1, 0.1))  # type: ignore[arg-type]
    assert said in str(info.value), str(info.value)
    assert "not a number: 'target'" not in str(info.value)


@pytest.mark.parametrize(
    "args,said",
    [
        (["--inject-target", "-1,1", "--inject-drafter", "1,1"], "'-1'"),
        (["--inject-target", "1e9,1", "--inject-drafter", "1,1"], "maximum of 60 s"),
        (["--inject-target", "1,1", "--inject-drafter", "-.5,1"], "'-.5'"),
    ],
)
def test_cli_negative_and_huge_waits_reach_the_value_check(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "--quiet", "--max-new-tokens", "2", *args]) == 2
    err = capsys.readouterr().err
    assert said in err and "expected one argument" not in err, err


# --- item 8: untyped exceptions ------------------------------------------------------------


class _TupleOut(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(self, **kw: Any) -> Any:
        return (self.inner(**kw).logits,)


def test_forward_returning_a_tuple_is_invalid_model_output() -> None:
    with pytest.raises(InvalidModelOutput, match="tuple"):
        run(_TupleOut(TARGET), DRAFTER, [1, 2], RunnerConfig(algorithm="si", max_new_tokens=2))


def test_meta_device_model_is_refused_before_any_pass() -> None:
    meta = llama(0, 16).to("meta")
    with pytest.raises(ModelLoadError, match="meta"):
        generate(meta, DRAFTER, [1, 2], max_new_tokens=2)
    with pytest.raises(ModelLoadError, match="meta"):
        run(TARGET, meta, [1, 2], RunnerConfig(max_new_tokens=2))


@pytest.mark.parametrize("progress", [3, "bar", [1]])
def test_non_callable_progress_is_refused_before_running(progress: object) -> None:
    with pytest.raises(InvalidConfig, match="progress"):
        generate(TARGET, DRAFTER, [1, 2], max_new_tokens=2, progress=progress)  # type: ignore[arg-type]


def test_sampling_error_names_generates_own_parameter() -> None:
    with pytest.raises(InvalidConfig) as info:
        generate(TARGET, DRAFTER, [1], do_sample=True, temperature=0)
    assert "do_sample=False" in str(info.value) and "greedy=True" not in str(info.value)


# --- item 12: the scheduler's counts are not forwards that ran -----------------------------


def test_scheduler_counts_and_costs_are_named_apart() -> None:
    cfg = RunnerConfig(algorithm="dsi", max_new_tokens=12, k=3, servers=3)
    r = run(TARGET, DRAFTER, [1, 2, 3], cfg)
    assert not hasattr(r, "counters")  # the ambiguous name is gone
    assert r.costs.target_forwards <= r.scheduler_counts.target_forwards
    s = r.summary()
    rate = r.acceptance_rate()
    assert rate is not None and 0 <= rate <= 1 and s["acceptance_rate"] == rate


# --- item 16: no traceback without transformers, no carriage returns in a log --------------


def test_without_transformers_the_cli_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "transformers" else real(n, *a)
    )
    for argv in (["run", "--quiet"], ["profile", "--help"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "transformers" in err and "Traceback" not in err


def test_progress_to_a_file_is_whole_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()  # isatty() is False, as for a redirected stderr
    monkeypatch.setattr(sys, "stderr", buf)
    show = cli._progress("dsi", 8, quiet=False)
    assert show is not None
    for done in (1, 2, 3, 5, 6, 8):
        show(done)
    assert "\r" not in buf.getvalue()
    assert buf.getvalue().splitlines() == [
        "  dsi: 2/8 tokens",
        "  dsi: 5/8 tokens",  # jumped past the mark at 4
        "  dsi: 6/8 tokens",
        "  dsi: 8/8 tokens",
    ]


def test_loading_a_path_prints_no_weight_bars(capfd: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    generate(*tiny_pair_paths(), [1, 2], algorithm="nonsi", max_new_tokens=1)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is restored


@pytest.mark.parametrize(
    "text,shown",
    [
        ("def f():\n\treturn 1", "def f():\n\treturn 1"),  # newlines and tabs as they are
        ("a\x1b[2Jb\r", "a\\x1b[2Jb\\r"),  # a terminal escape or carriage return, escaped
        ("\n" + " " * 47, repr("\n" + " " * 47) + " (whitespace only)"),  # greedy tiny pair
    ],
)
def test_demo_text_is_readable(text: str, shown: str) -> None:
    assert cli.readable(text) == shown
