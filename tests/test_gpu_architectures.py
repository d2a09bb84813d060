"""Architecture table: every causal-LM family the runner claims, greedy SI and DSI token for
token equal to transformers' own `generate`, or a typed refusal before loading.

Each row is a random small config built here (no files, no downloads), in float64, with a
drafter that is the target plus noise (so drafts are accepted at some positions and rejected
at others, and every rejection crops the caches). Sliding-window rows use a window of 4 with
15-token sequences, so the window is passed and rolled back across; the Mamba row's
state-space cache cannot be cropped and is recomputed from the prompt instead.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from gpu_fixtures import greedy_reference, torch, transformers

from gpu_runner import kv_worker
from gpu_runner.api import RunnerConfig, run
from gpu_runner.errors import ModelLoadError
from gpu_runner.generate import generate
from gpu_runner.hf_compat import can_rollback, new_cache

V = 32
PROMPT = [1, 2, 3]
N = 12
LLAMA_LIKE: dict[str, Any] = {
    "vocab_size": V,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}
GPT2_LIKE: dict[str, Any] = {"vocab_size": V, "n_embd": 16, "n_layer": 2, "n_head": 4}
GEMMA2_LIKE = {**LLAMA_LIKE, "head_dim": 4, "sliding_window": 4, "tie_word_embeddings": False}

# name: (model_type, config settings, init std). The std is chosen per row so that greedy
# output is not one repeated token (a degenerate row would let a wrong cache through).
ROWS: dict[str, tuple[str, dict[str, Any], float]] = {
    "llama": ("llama", LLAMA_LIKE, 0.5),
    "gpt2": ("gpt2", {**GPT2_LIKE, "n_positions": 64}, 0.5),
    "qwen2": ("qwen2", LLAMA_LIKE, 0.5),
    "qwen3": ("qwen3", {**LLAMA_LIKE, "head_dim": 4}, 0.5),
    "mistral": ("mistral", {**LLAMA_LIKE, "sliding_window": None}, 0.5),
    "mistral, window 4": ("mistral", {**LLAMA_LIKE, "sliding_window": 4}, 0.5),
    "phi": ("phi", LLAMA_LIKE, 0.5),
    "phi3": ("phi3", {**LLAMA_LIKE, "pad_token_id": 0}, 0.5),
    "gpt_neox": ("gpt_neox", LLAMA_LIKE, 0.5),
    "opt": (
        "opt",
        {
            "vocab_size": V,
            "hidden_size": 16,
            "ffn_dim": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "word_embed_proj_dim": 16,
            "max_position_embeddings": 64,
            "pad_token_id": 0,
        },
        0.5,
    ),
    "gemma": ("gemma", {**LLAMA_LIKE, "head_dim": 4}, 0.5),
    "gemma2, window 4": ("gemma2", GEMMA2_LIKE, 0.5),
    "gemma3, window 4": ("gemma3_text", {**GEMMA2_LIKE, "sliding_window_pattern": 2}, 0.1),
    "bloom": ("bloom", {"vocab_size": V, "hidden_size": 16, "n_layer": 2, "n_head": 4}, 0.5),
    "falcon": (
        "falcon",
        {"vocab_size": V, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4},
        0.5,
    ),
    "gpt_bigcode": ("gpt_bigcode", {**GPT2_LIKE, "n_positions": 64}, 0.5),
    "gptj": ("gptj", {**GPT2_LIKE, "n_positions": 64, "rotary_dim": 4}, 0.5),
    "starcoder2": ("starcoder2", {**LLAMA_LIKE, "sliding_window": None}, 0.5),
    "olmo2": ("olmo2", LLAMA_LIKE, 2.0),
    "mixtral": ("mixtral", {**LLAMA_LIKE, "num_local_experts": 4, "num_experts_per_tok": 2}, 0.5),
    "mamba (state space)": (
        "mamba",
        {"vocab_size": V, "hidden_size": 16, "num_hidden_layers": 2, "state_size": 4},
        1.0,
    ),
}


def build_pair(name: str) -> tuple[Any, Any]:
    model_type, settings, std = ROWS[name]
    config = transformers.AutoConfig.for_model(model_type, **settings)
    config.initializer_range = std
    # float64 needs the eager experts loop (the grouped matmul takes float32 and below)
    extra = {"experts_implementation": "eager"} if model_type == "mixtral" else {}
    build = transformers.AutoModelForCausalLM.from_config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        target = build(config, dtype=torch.float64, **extra).eval()
        drafter = copy.deepcopy(target)
        with torch.no_grad():
            for p in drafter.parameters():
                p.add_(0.3 * p.std().nan_to_num() * torch.randn_like(p))
    return target, drafter


def hf_greedy(model: Any, n: int = N) -> tuple[int, ...]:
    return greedy_reference(model, PROMPT, n)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    transformers.logging.set_verbosity_error()  # Mamba's "falling back to PyTorch" notes


@pytest.mark.parametrize("name", list(ROWS))
def test_greedy_si_and_dsi_equal_transformers_generate(name: str) -> None:
    target, drafter = build_pair(name)
    want = hf_greedy(target)
    assert len(set(want)) >= 3, f"degenerate row {name}: {want}"
    # attention caches (sliding windows included) are cropped, not recomputed
    assert can_rollback(new_cache(target)) == (ROWS[name][0] != "mamba")
    for alg, servers in (("si", 1), ("dsi", 2)):
        cfg = RunnerConfig(algorithm=alg, max_new_tokens=N, k=3, servers=servers)
        got = run(target, drafter, PROMPT, cfg)
        assert got.tokens == want, f"{name} {alg}: {got.tokens} != generate's {want}"
        # some drafts rejected: the caches were rolled back (or recomputed) at least once
        assert got.scheduler_counts.drafts_rejected > 0, f"{name} {alg}: nothing rejected"


@pytest.mark.parametrize("name", ["mistral, window 4", "gemma2, window 4"])
def test_the_window_matters(name: str) -> None:
    # negative control for the rows above: without the window the same weights decode
    # differently, so those rows did pass the window
    target, _ = build_pair(name)
    want = hf_greedy(target)
    target.config.sliding_window = 64
    assert hf_greedy(target) != want


def test_the_table_catches_a_cache_that_cannot_roll_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # planted bug 1: the config's sliding-window layers (transformers' default DynamicCache),
    # cropped as if they kept every past key
    target, drafter = build_pair("mistral, window 4")
    monkeypatch.setattr(
        kv_worker, "new_cache", lambda m: transformers.DynamicCache(config=m.config)
    )
    monkeypatch.setattr(kv_worker, "can_rollback", lambda cache: True)
    with pytest.raises(RuntimeError, match="crop"):
        run(target, drafter, PROMPT, RunnerConfig(algorithm="si", max_new_tokens=N, k=3))
    monkeypatch.undo()
    # planted bug 2: cropping a state-space cache instead of recomputing it
    target, drafter = build_pair("mamba (state space)")
    monkeypatch.setattr(kv_worker, "can_rollback", lambda cache: True)
    with pytest.raises(RuntimeError, match="crop"):
        run(target, drafter, PROMPT, RunnerConfig(algorithm="si", max_new_tokens=N, k=3))


@pytest.mark.parametrize("model_type", ["t5", "vit", "clip"])
def test_families_without_a_causal_lm_are_refused_before_loading(
    tmp_path: Any, model_type: str
) -> None:
    d = tmp_path / model_type
    d.mkdir()
    (d / "config.json").write_text(f'{{"model_type": "{model_type}"}}')
    (d / "model.safetensors").write_bytes(b"")  # never read: the config is refused first
    with pytest.raises(ModelLoadError, match=f"model_type '{model_type}'"):
        generate(d, d, [1, 2], max_new_tokens=2)
