"""A transformers model seen as a dsi_ref LanguageModel, so the reference can run on it.

Each next_dist is a full forward over prompt + prefix (no cache: an independent
path from the runner's cropped and extended caches) with the softmax in float64.
Slow, and meant for tests and checks on small models and short runs.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from dsi_ref.prob import Dist


class TorchLM:
    """dsi_ref.models.LanguageModel over a causal LM; states are the prefixes themselves."""

    def __init__(self, model: torch.nn.Module, prompt: Sequence[int], vocab_size: int) -> None:
        self.model = model
        self.prompt = list(prompt)
        self._vocab = vocab_size
        self.device = next(model.parameters()).device
        self.calls = 0

    @property
    def vocab_size(self) -> int:
        return self._vocab

    def state(self, prefix: Sequence[int]) -> Hashable:
        return tuple(prefix)

    @torch.inference_mode()
    def next_dist(self, prefix: Sequence[int]) -> Dist:
        self.calls += 1
        ids = torch.tensor([self.prompt + list(prefix)], dtype=torch.long, device=self.device)
        logits = self.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[0, -1]
        p = torch.softmax(logits.to(torch.float64), dim=-1)
        return tuple(float(x) for x in p.cpu().tolist())
