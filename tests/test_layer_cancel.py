"""Layer cancellation (gpu_runner.layer_cut): a pass cut between decoder layers leaves its
worker's KV cache as if the pass had never run.

Models are small random configs built here (4 decoder layers, float64, one torch thread).
A cut is planted deterministically: a forward hook on layer j sets the pass's cancel flag,
so the check before layer j+1 stops the pass with j+1 layers run. After the cut, the next
pass's logits are compared with a fresh worker's full recompute of the same positions.

Tolerance: atol 1e-12, rtol 0. The rolled-back worker feeds the positions after its cached
prefix as one batch, the fresh worker feeds the prompt and chain as another, so the same
dot products are summed in batches of different widths; in float64 that changes logits of
magnitude ~1 by a few ulps (measured: at most 1.4e-16 here). A cache that kept the cut
pass's keys and values (the planted bug below) is off by more than 1e-2.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from gpu_fixtures import greedy_reference, torch, transformers

from gpu_runner.api import RunnerConfig, layer_cancel_status, run
from gpu_runner.kv_worker import ModelWorker
from gpu_runner.layer_cut import PassCut, arm, armed_layers, decoder_layers, disarm

V = 32
PROMPT = [1, 2, 3]
LAYERS = 4
TOL = 1e-12
COMMON: dict[str, Any] = {
    "vocab_size": V,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}
ARCHS: dict[str, dict[str, Any]] = {
    "llama": COMMON,
    "qwen2": COMMON,
    "gpt_neox": COMMON,
    "gpt2": {"vocab_size": V, "n_embd": 16, "n_layer": LAYERS, "n_head": 4, "n_positions": 64},
}
FIRST = [5, 6, 7, 8, 9]  # the first pass scores positions 0..4 of this chain
CUT = [5, 6, 11, 12, 13, 14]  # the cut pass would score 2..5 (keeps prompt + 5, 6)
NEXT = [5, 6, 11, 3, 4, 2, 1]  # the pass after it scores 3..6


def build(arch: str, seed: int = 0) -> Any:
    config = transformers.AutoConfig.for_model(arch, **ARCHS[arch])
    config.initializer_range = 0.5
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float64).eval()


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    transformers.logging.set_verbosity_error()
    out = {name: build(name) for name in ARCHS}
    for m in out.values():
        assert arm(m) == LAYERS
    return out


def cut_then_next(model: Any, j: int, first: list[int] | None) -> None:
    """Run `first` (None: no pass before), cut the next pass after layer j, then check that
    the pass after it equals a fresh worker's full recompute."""
    w = ModelWorker(model, PROMPT, "target", V)
    if first is not None:
        w.logits(first, 0, len(first) - 1)
    flag = threading.Event()
    layers = decoder_layers(model)
    assert layers is not None
    hook = layers[j].register_forward_hook(lambda *_: flag.set())
    w.stop = flag.is_set
    try:
        with pytest.raises(PassCut) as cut:
            w.logits(CUT, 2, len(CUT) - 1)
    finally:
        hook.remove()
        w.stop = None
    assert cut.value.layers_run == j + 1
    got = w.logits(NEXT, 3, len(NEXT) - 1)
    want = ModelWorker(model, PROMPT, "fresh", V).logits(NEXT, 3, len(NEXT) - 1)
    err = (got - want).abs().max().item()
    assert err <= TOL, f"logits after the cut are off by {err:.3g}"


@pytest.mark.parametrize("j", range(LAYERS - 1))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_a_cut_pass_leaves_the_cache_as_a_full_recompute(
    models: dict[str, Any], arch: str, j: int
) -> None:
    cut_then_next(models[arch], j, FIRST)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_a_cut_prefill_starts_again_from_the_prompt(models: dict[str, Any], arch: str) -> None:
    cut_then_next(models[arch], 1, None)


def test_the_cache_holds_exactly_the_kept_prefix(models: dict[str, Any]) -> None:
    model = models["llama"]
    w = ModelWorker(model, PROMPT, "target", V)
    w.logits(FIRST, 0, 4)
    w.stop = lambda: True  # cut before the first layer
    with pytest.raises(PassCut) as cut:
        w.logits(CUT, 2, 5)
    w.stop = None
    assert cut.value.layers_run == 0
    keep = len(PROMPT) + 2 - 1  # positions 2.. are rescored: the cache keeps prompt + [5]
    assert w.held == [*PROMPT, 5]
    assert [layer.get_seq_length() for layer in w.cache.layers] == [keep] * LAYERS
    assert (w.cuts, w.forwards) == (1, 1)


def test_a_missing_rollback_is_caught(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planted bug: no rollback at all (the layers before the cut keep the cut pass's keys
    and values). Caught: the layers disagree on the cache length, so attention fails."""
    monkeypatch.setattr(ModelWorker, "_roll_back", lambda self, keep: None)
    with pytest.raises(RuntimeError, match="size of tensor"):
        cut_then_next(models["llama"], 1, FIRST)


def test_a_rollback_that_forgets_the_held_ids_is_caught(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planted bug: the cache is cut back but the worker believes it holds the cut pass's
    ids, so the next pass reuses too much. The logits check catches it."""
    good = ModelWorker._roll_back

    def forgetful(self: ModelWorker, keep: int) -> None:
        held = list(self.held)
        good(self, keep)
        self.held = held + CUT[len(held) - len(PROMPT) :]

    monkeypatch.setattr(ModelWorker, "_roll_back", forgetful)
    with pytest.raises(AssertionError, match="off by"):
        cut_then_next(models["llama"], 1, FIRST)


def test_uncut_passes_ignore_the_hooks_and_disarm_removes_them() -> None:
    model = build("llama", seed=3)
    assert armed_layers(model) is None
    assert arm(model) == LAYERS and arm(model) == LAYERS  # idempotent: one hook per layer
    layers = decoder_layers(model)
    assert layers is not None
    assert all(len(layer._forward_pre_hooks) == 1 for layer in layers)
    w = ModelWorker(model, PROMPT, "t", V)
    w.stop = lambda: False
    got = w.logits(NEXT, 3, 6)  # armed, never cancelled: runs to the end
    disarm(model)
    assert armed_layers(model) is None
    assert all(len(layer._forward_pre_hooks) == 0 for layer in layers)
    want = ModelWorker(model, PROMPT, "fresh", V).logits(NEXT, 3, 6)
    assert torch.equal(got, want)


class NoLayers(torch.nn.Module):
    """A causal LM wrapper whose decoder layers cannot be found (no config)."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, **kw: Any) -> Any:
        return self.inner(**kw)


def test_a_model_without_a_layer_list_runs_to_the_end_and_says_so(
    models: dict[str, Any],
) -> None:
    model = NoLayers(models["llama"])
    assert decoder_layers(model) is None and arm(model) is None
    status = layer_cancel_status(True, "threads", [None, model])
    assert status.startswith("on, except NoLayers") and "run to the end" in status
    assert layer_cancel_status(True, "threads", [models["gpt2"]]) == "on"
    assert layer_cancel_status(False, "threads", [model]) == "off"
    assert layer_cancel_status(True, "ray", [model]).startswith("on, except NoLayers")
    assert layer_cancel_status(True, "my-backend", [model]).startswith("off: the my-backend")


# ----- whole runs: greedy DSI with cuts equals transformers' generate ----------------------

N = 12
NOISE = 1.0
LAYER_S = 0.004  # each target layer sleeps this long, so a cancel lands mid-pass


def slow_layer(module: Any, args: Any) -> None:
    time.sleep(LAYER_S)


def slow_pair() -> tuple[Any, Any]:
    target = build("llama", seed=0)
    drafter = build("llama", seed=0)
    with torch.no_grad():  # the target plus much noise: most drafts rejected, tasks cancelled
        for p in drafter.parameters():
            p.add_(NOISE * p.std().nan_to_num() * torch.randn_like(p))
    layers = decoder_layers(target)
    assert layers is not None
    for layer in layers:
        layer.register_forward_pre_hook(slow_layer)
    return target, drafter


def hf_greedy(model: Any) -> tuple[int, ...]:
    return greedy_reference(model, PROMPT, N)


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_greedy_dsi_with_layer_cancellation_equals_generate(backend: str) -> None:
    """With target passes of 4 layers x 4 ms, a drafter whose drafts are mostly rejected,
    and the paper's policy at P=2 (which cancels running tasks at each rejection), every run
    observed cut passes: 9-11 target passes cut in each of 10 threads runs and of 8 processes
    runs (loaded box, 2026-12-07). Off, none can be cut."""
    torch.manual_seed(1)
    target, drafter = slow_pair()
    want = hf_greedy(target)
    assert len(set(want)) >= 3, want
    for on in (True, False):
        cfg = RunnerConfig(max_new_tokens=N, k=3, servers=2, policy="paper", layer_cancel=on)
        got = run(target, drafter, PROMPT, cfg, backend=backend)
        assert got.tokens == want, f"layer_cancel={on}: {got.tokens} != {want}"
        assert got.scheduler_counts.drafts_rejected > 0
        assert got.costs.layer_cancel == ("on" if on else "off")
        if on:
            assert got.costs.passes_cut > 0, "no pass was cut: the test would prove nothing"
            assert got.costs.cut_seconds_saved >= 0.0
        else:
            assert got.costs.passes_cut == got.costs.drafter_passes_cut == 0
    assert armed_layers(target) is None  # the threads backend disarms; processes arm copies


def test_arming_keeps_a_user_hook_whose_id_a_fresh_process_would_reuse() -> None:
    """In a worker process the hook-id counter restarts at 0, while an unpickled model keeps
    its user hooks' ids: arming there must not replace them (it once did)."""
    model = build("llama", seed=4)
    layers = decoder_layers(model)
    assert layers is not None
    seen: list[int] = []
    layers[0].register_forward_pre_hook(lambda *_: seen.append(1))
    handles = torch.utils.hooks.RemovableHandle
    saved = handles.next_id
    handles.next_id = 0  # as in a fresh process
    try:
        arm(model)
    finally:
        handles.next_id = max(handles.next_id, saved)
    ModelWorker(model, PROMPT, "t", V).logits(NEXT, 3, 6)
    assert seen == [1] and armed_layers(model) == LAYERS


def test_the_setting_is_a_bool_and_the_cli_flag_reaches_it() -> None:
    from dsi_ref.errors import InvalidConfig
    from gpu_runner.cli import _parser

    with pytest.raises(InvalidConfig, match="layer_cancel must be a bool, got 'yes'"):
        RunnerConfig(layer_cancel="yes")  # type: ignore[arg-type]
    base = ["run", "--target", "t", "--drafter", "d"]
    assert _parser().parse_args(base).layer_cancel is True
    assert _parser().parse_args([*base, "--no-layer-cancel"]).layer_cancel is False
