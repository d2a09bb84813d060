"""One model instance with its own KV cache: the next-token laws at a span of positions.

A worker keeps the token ids whose keys and values its cache holds. To score
positions first..last on a chain it crops the cache back to the longest prefix
it shares with the chain (never past the last token before `first`, whose
logits must be recomputed), then runs one forward over the rest. A cache that
cannot be cropped (a state-space model's running state, hf_compat.can_rollback)
is rebuilt from the prompt instead whenever it would have to be. Several
workers may share one model object (one copy of the weights): only the cache
is per worker, and a forward pass mutates nothing else.

A pass may be cut between decoder layers (gpu_runner.layer_cut: `stop` set for the pass,
the model armed): the cache is then rolled back to what it held before the pass, the
rollback of a rejection (`truncate` every layer to the kept length; a cache that cannot be
cropped is rebuilt), so the next pass computes what it would have without the cut one.

Positions are those of generated tokens: position j is conditioned on
prompt + chain[:j], so its logits are those at sequence index len(prompt) + j - 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from gpu_runner.errors import InvalidModelOutput
from gpu_runner.hf_compat import (
    cache_bytes,
    cached_forward,
    can_rollback,
    crop,
    new_cache,
    truncate,
)
from gpu_runner.layer_cut import PassCut, armed_layers, cuttable


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class ModelWorker:
    """Scores spans of positions for one model instance on one device."""

    def __init__(
        self,
        model: torch.nn.Module,
        prompt: Sequence[int],
        name: str,
        vocab_size: int | None = None,
    ) -> None:
        if len(prompt) == 0:
            raise ValueError("a worker needs a non-empty prompt (position 0 conditions on it)")
        self.model = model
        self.name = name
        self.vocab_size = vocab_size
        self.prompt = list(prompt)
        self.device = next(model.parameters()).device
        self.cache: Any = new_cache(model)
        self.held: list[int] = []  # the ids whose K/V the cache holds, in order
        self.forwards = 0
        self.tokens_fed = 0  # ids run through the model (prefill and recomputation included)
        self.peak_cache_bytes = 0
        self.cuts = 0  # passes cut between layers (not in `forwards`: they did not finish)
        # While set (by transport.runpass, for one pass): the pass stops at the next decoder
        # layer once it returns True, if the model is armed (gpu_runner.layer_cut).
        self.stop: Callable[[], bool] | None = None
        self.layers: int | None = None  # hooked decoder layers, known once a pass was cuttable

    def reset(self) -> None:
        """Forget the cache (a new run)."""
        self.cache = new_cache(self.model)
        self.held = []

    @torch.inference_mode()
    def logits(self, chain: Sequence[int], first: int, last: int) -> torch.Tensor:
        """Logits [last - first + 1, V] (model dtype, on the device) of positions first..last."""
        if not (0 <= first <= last <= len(chain)):
            raise ValueError(
                f"{self.name}: cannot score {first}..{last} on a chain of {len(chain)}"
            )
        n0 = len(self.prompt)
        seq = self.prompt + list(chain[:last])
        need = n0 + first - 1  # the cache may keep at most this many ids
        keep = min(_common_prefix(self.held, seq), need)
        if keep < len(self.held):
            if can_rollback(self.cache):
                crop(self.cache, len(self.held) - keep)
                del self.held[keep:]
            else:  # recompute from the prompt: exact, at the cost of a longer forward
                self.reset()
                keep = 0
        new = seq[keep:]
        m = last - first + 1
        ids = torch.tensor([new], dtype=torch.long, device=self.device)
        if self.stop is not None and self.layers is None:
            self.layers = armed_layers(self.model)
        if self.stop is None or self.layers is None:
            out = cached_forward(self.model, ids, self.cache, last=m)
        else:
            try:
                with cuttable(self.stop, self.device):
                    out = cached_forward(self.model, ids, self.cache, last=m)
            except PassCut:
                self._roll_back(keep)
                raise
        self.held = seq
        self.forwards += 1
        self.tokens_fed += len(new)
        size = cache_bytes(self.cache)
        if size > self.peak_cache_bytes:
            self.peak_cache_bytes = size
        return self._checked(out, m, first, last)

    def _roll_back(self, keep: int) -> None:
        """Back to the first `keep` ids after a cut pass (layers before the cut hold more)."""
        self.cuts += 1
        if keep > 0 and can_rollback(self.cache):
            truncate(self.cache, keep)
            del self.held[keep:]
        else:  # nothing to keep, or a cache that cannot be cropped: start from the prompt
            self.reset()

    def _checked(self, logits: object, m: int, first: int, last: int) -> torch.Tensor:
        """The last m rows of what the model returned, refused unless finite and [1, >=m, V]."""
        where = f"{self.name} at positions {first}..{last}"
        if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[0] != 1:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            raise InvalidModelOutput(f"{where}: logits of shape {shape}, expected [1, n, vocab]")
        if logits.shape[1] < m:
            raise InvalidModelOutput(
                f"{where}: the model returned {logits.shape[1]} rows of logits, {m} were scored"
            )
        rows = logits[0, -m:, :]
        if self.vocab_size is not None and rows.shape[-1] != self.vocab_size:
            raise InvalidModelOutput(
                f"{where}: {rows.shape[-1]} logits per position, the vocabulary has "
                f"{self.vocab_size}"
            )
        if not bool(torch.isfinite(rows).all()):  # one sync per pass; the pass ends here anyway
            bad = rows[~torch.isfinite(rows)][0].item()
            raise InvalidModelOutput(f"{where}: the model returned a non-finite logit ({bad})")
        return rows

    def probs(self, chain: Sequence[int], first: int, last: int) -> torch.Tensor:
        """Next-token laws [m, V] in float64 (softmax taken in float64 so rows sum to 1)."""
        return torch.softmax(self.logits(chain, first, last).to(torch.float64), dim=-1)
