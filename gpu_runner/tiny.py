"""Tiny Llama pairs for tests: the trained byte-level pair shipped in gpu_runner/tiny_models/, and
random small-vocabulary pairs built in code for tests that enumerate joint laws.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

from dsi_ref.errors import InvalidConfig
from gpu_runner.loading import load_model, placed

TINY_DIR = Path(__file__).resolve().parent / "tiny_models"
MAX_SMALL_VOCAB = 8
SMALL_INIT = 0.25  # std of the random init: p neither near uniform nor near one-hot
SMALL_MIX = 0.4  # drafter = sqrt(1 - m^2) * target + m * fresh: acceptance about 0.6-0.75


def tiny_pair_paths() -> tuple[Path, Path]:
    """(target dir, drafter dir) of the trained pair (gpu_runner/tiny_models/README.md)."""
    return TINY_DIR / "target", TINY_DIR / "drafter"


def load_tiny_pair(
    dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> tuple[PreTrainedModel, PreTrainedModel]:
    """The trained byte-level (target, drafter), offline, in eval mode."""
    target_dir, drafter_dir = tiny_pair_paths()
    return (
        load_model(target_dir, dtype=dtype, device=device),
        load_model(drafter_dir, dtype=dtype, device=device),
    )


def random_llama(
    seed: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    max_positions: int = 256,
    **shape: int,
) -> LlamaForCausalLM:
    """A random-weight Llama of `shape` (hidden_size, num_hidden_layers, vocab_size, ...).

    Built on `device` (a 7B model initialised on the host takes minutes), in eval mode;
    the global torch RNG of the host is left as it was.
    """
    settings: dict[str, Any] = {"max_position_embeddings": max_positions, **shape}
    config = LlamaConfig(**settings)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    moved: Any = model
    moved.to(dtype)  # in place, as Module.to does
    moved.eval()
    return model


def timing_pair() -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    """The random ~27M / ~2.4M Llama pair (vocabulary 8000, float32) the CPU timing
    benchmarks and issues measure on: a target pass costs several drafter passes."""

    def llama(seed: int, hidden: int, layers: int, inter: int) -> LlamaForCausalLM:
        return random_llama(
            seed,
            vocab_size=8000,
            hidden_size=hidden,
            intermediate_size=inter,
            num_hidden_layers=layers,
            num_attention_heads=8 if hidden >= 256 else 4,
            num_key_value_heads=4 if hidden >= 256 else 2,
        )

    return llama(0, 512, 6, 1376), llama(1, 128, 2, 344)


def small_vocab_config(vocab: int) -> LlamaConfig:
    """One layer, hidden 16, two heads, no special tokens."""
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=SMALL_INIT,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def _seeded(config: LlamaConfig, seed: int) -> LlamaForCausalLM:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def tiny_vocab_pair(
    vocab: int = 6, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    """A random (target, drafter) pair with `vocab` <= 8 tokens, built in code (no files).

    The target's weights are drawn with std SMALL_INIT from `seed`; the drafter's are
    sqrt(1 - m^2) * target + m * fresh, fresh drawn from `seed` + 1 and m = SMALL_MIX (norm
    weights stay 1), so the drafter is correlated with the target but not equal to it. Same
    seed, same pair; the global torch RNG is left as it was. On CPU, in eval mode.
    """
    if isinstance(vocab, bool) or not isinstance(vocab, int) or not 2 <= vocab <= MAX_SMALL_VOCAB:
        raise InvalidConfig(f"vocab must be an int in 2..{MAX_SMALL_VOCAB}, got {vocab!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidConfig(f"seed must be an int >= 0, got {seed!r}")
    config = small_vocab_config(vocab)
    target = _seeded(config, 2 * seed)
    fresh = _seeded(config, 2 * seed + 1)
    drafter = _seeded(config, 2 * seed + 1)
    keep = math.sqrt(1.0 - SMALL_MIX**2)
    with torch.no_grad():
        for (name, pt), pf, pd in zip(
            target.named_parameters(), fresh.parameters(), drafter.parameters(), strict=True
        ):
            if "norm" not in name:
                pd.copy_(keep * pt + SMALL_MIX * pf)
    return placed(target, dtype=dtype), placed(drafter, dtype=dtype)
