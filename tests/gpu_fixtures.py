"""Small random-weight Llama pairs built in code (no files, no downloads) for runner tests."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

torch.set_num_threads(1)  # 2 busy cores: intra-op threads make a 1 ms forward take 100 ms

VOCAB = 32


def llama(seed: int, hidden: int, layers: int = 2, vocab: int = VOCAB) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return transformers.LlamaForCausalLM(cfg).to(torch.float64).eval()


def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A float64 target (hidden 32) and drafter (hidden 16) over 32 tokens."""
    return llama(0, 32), llama(1, 16)
