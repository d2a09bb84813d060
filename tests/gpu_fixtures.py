"""Small random-weight Llama pairs built in code (no files, no downloads) for runner tests."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from gpu_runner.tiny import random_llama  # noqa: E402

torch.set_num_threads(1)  # 2 busy cores: intra-op threads make a 1 ms forward take 100 ms

VOCAB = 32


def llama(
    seed: int, hidden: int, layers: int = 2, vocab: int = VOCAB, dtype: Any = None
) -> torch.nn.Module:
    """A random Llama, float64 unless `dtype` says otherwise."""
    return random_llama(
        seed,
        dtype=torch.float64 if dtype is None else dtype,
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
    )


def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A float64 target (hidden 32) and drafter (hidden 16) over 32 tokens."""
    return llama(0, 32), llama(1, 16)


def greedy_reference(model: torch.nn.Module, prompt: list[int], n: int) -> tuple[int, ...]:
    """transformers' own greedy continuation of `prompt` by `n` tokens (no stop at an end
    token): the reference every greedy runner test compares its tokens with."""
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
    return tuple(out[0, len(prompt) :].tolist())
