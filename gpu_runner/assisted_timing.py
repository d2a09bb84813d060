"""transformers' assisted generation in timing mode: the runner's keyed acceptance pattern.

Random-weight models never agree, so `model.generate(..., assistant_model=drafter)` accepts
almost nothing and cannot be timed beside the runner's timing mode (passes.BernoulliRule).
`keyed_acceptance` makes it accept exactly what the rule accepts, under greedy decoding,
while every real forward still runs in full: a forward hook on each model overwrites the
logits after the forward, row by row, with a one-hot row (MARGIN over 0). The row that
predicts generated position p (0 = the first new token) gets

- target: f(p), the rule's keyed draft token (BernoulliRule.draft);
- drafter: the token the rule commits for the draft f(p) (BernoulliRule.verify): f(p) when
  U(seed, p, ACCEPT) < a, else (f(p) + 1) mod V.

Greedy verification then keeps the draft at p iff the rule accepts it; every committed
token is f(p) (the target's), whatever the schedule. A row's position is read from the
forward's `position_ids` (transformers 5.x), else `cache_position` (4.x), else the cache's
length after the forward: the kept rows (`logits_to_keep`) are the last inputs', so row r
of L predicts last + 1 - (L - 1 - r) - prompt_len. Rows of prompt positions are left alone.
One-hot rows give the drafter confidence 1.0, so the assistant's confidence threshold
(and its ROC-adapted successor, when sklearn is installed) never ends a block early;
num_assistant_tokens and its schedule act as they would. Batch size 1 (as assisted
generation requires). Do not run other work on the same model objects meanwhile: the hooks
act on every forward of the model while the context is open.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from dsi_ref.errors import InvalidConfig, show
from gpu_runner.errors import IncompatiblePair, InvalidModelOutput
from gpu_runner.loading import vocab_size
from gpu_runner.passes import BernoulliRule

MARGIN = 1e4  # the chosen logit over 0 elsewhere: softmax gives exactly 1.0 in float32


@dataclass
class AssistedLog:
    """Per forward, the (first, last) generated positions its kept rows predict (rows of
    prompt positions left out; a forward with none is not logged)."""

    target: list[tuple[int, int]] = field(default_factory=list)
    drafter: list[tuple[int, int]] = field(default_factory=list)

    def verdicts(self, n: int) -> dict[int, bool]:
        """The verdict on every verified draft of a run of n new tokens, read off the
        target's passes: a pass scoring first..last verifies the drafts at first..last-1 and
        commits up to where the next pass starts (n after the last)."""
        out: dict[int, bool] = {}
        starts = [f for f, _ in self.target[1:]] + [n]
        for (first, last), nxt in zip(self.target, starts, strict=True):
            matches, drafts = nxt - first - 1, last - first
            if not 0 <= matches <= drafts:
                raise InvalidModelOutput(
                    f"target passes {self.target} do not chain: {matches} matches of {drafts}"
                )
            out.update(dict.fromkeys(range(first, first + matches), True))
            if matches < drafts:
                out[first + matches] = False
        return out


def _check(prompt_len: object, seed: object, acceptance: object) -> None:
    if isinstance(prompt_len, bool) or not isinstance(prompt_len, int) or prompt_len < 1:
        raise InvalidConfig(f"prompt length must be an int >= 1, got {show(prompt_len)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise InvalidConfig(f"seed must be an int in [0, 2**64 - 1], got {show(seed)}")
    a = acceptance
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 <= a <= 1.0:
        raise InvalidConfig(f"acceptance must be a number in [0, 1], got {show(a)}")


def _last_index(kwargs: dict[str, Any], out: Any) -> int:
    """Absolute index (in prompt + generated) of the forward's last input token."""
    for key in ("position_ids", "cache_position"):
        x = kwargs.get(key)
        if isinstance(x, torch.Tensor) and x.numel() > 0:
            return int(x.reshape(-1)[-1])
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    if cache is not None and hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length()) - 1
    raise InvalidModelOutput("a forward gave neither position_ids, cache_position nor a cache")


def _hook(rule: BernoulliRule, prompt_len: int, drafter: bool, log: list[tuple[int, int]]) -> Any:
    def hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        logits = getattr(out, "logits", None)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
            raise InvalidModelOutput(f"expected logits [batch, rows, vocab], got {show(logits)}")
        if logits.shape[-1] != rule.vocab_size:
            raise InvalidModelOutput(
                f"logits over {logits.shape[-1]} tokens, the pair's vocabulary is {rule.vocab_size}"
            )
        rows = logits.shape[1]
        last = _last_index(kwargs, out) + 1 - prompt_len  # position the last row predicts
        if last < 0:
            return
        first = max(0, last - rows + 1)
        tokens = []
        for p in range(first, last + 1):
            f = rule.draft(p, None)
            tokens.append(rule.verify(p, None, None, f)[0] if drafter else f)
        with torch.no_grad():
            mine = logits[:, rows - len(tokens) :, :]
            mine.zero_()
            idx = torch.tensor(tokens, device=logits.device).view(1, -1, 1)
            mine.scatter_(-1, idx.expand(logits.shape[0], -1, 1), MARGIN)
        log.append((first, last))

    return hook


@contextmanager
def keyed_acceptance(
    target: torch.nn.Module,
    drafter: torch.nn.Module,
    prompt_len: int,
    *,
    seed: int,
    acceptance: float,
) -> Iterator[AssistedLog]:
    """While open, greedy assisted generation from a prompt of `prompt_len` tokens accepts
    the draft at generated position p iff BernoulliRule(seed, acceptance, V) does.

    Yields the log of the two models' forwards. The hooks are removed on exit, error or not.
    Raises InvalidConfig (bad prompt length, seed or acceptance) and IncompatiblePair
    (vocabularies differ) before any hook is set.
    """
    _check(prompt_len, seed, acceptance)
    v = vocab_size(target)
    if vocab_size(drafter) != v:
        raise IncompatiblePair(f"target has {v} output rows, drafter {vocab_size(drafter)}")
    rule = BernoulliRule(seed, float(acceptance), v)
    log = AssistedLog()
    handles = []
    try:
        for model, is_drafter, spans in ((target, False, log.target), (drafter, True, log.drafter)):
            hook = _hook(rule, prompt_len, is_drafter, spans)
            handles.append(model.register_forward_hook(hook, with_kwargs=True))
        yield log
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _set(obj: object, **values: object) -> Iterator[None]:
    """Set attributes of obj, restored on exit."""
    saved = {k: getattr(obj, k) for k in values}
    try:
        for k, v in values.items():
            setattr(obj, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(obj, k, v)


@dataclass(frozen=True)
class AssistedRun:
    tokens: tuple[int, ...]  # the new tokens (every one f(p))
    wall: float  # seconds inside generate (prefill included)
    log: AssistedLog


def assisted_timing_run(
    target: Any,
    drafter: Any,
    prompt: Sequence[int],
    max_new_tokens: int,
    *,
    seed: int,
    acceptance: float,
    num_assistant_tokens: int | None = None,
    schedule: str | None = None,
) -> AssistedRun:
    """One greedy `target.generate(..., assistant_model=drafter)` of exactly max_new_tokens
    (no end token) under `keyed_acceptance`. The lookahead (`num_assistant_tokens`) and its
    schedule ("constant", "heuristic") are read from the drafter's generation config; None
    keeps what it holds (transformers' defaults: 20, "constant", confidence threshold 0.4).
    Both are restored afterwards, so a heuristic schedule starts afresh every call (its k
    otherwise persists in the drafter's config). Setting them on the target's config does
    nothing in transformers 5.x: the assistant's config is read."""
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise InvalidConfig(f"max_new_tokens must be an int >= 1, got {show(max_new_tokens)}")
    lookahead: dict[str, object] = {
        "num_assistant_tokens": num_assistant_tokens,
        "num_assistant_tokens_schedule": schedule,
    }
    drafter_settings = {k: v for k, v in lookahead.items() if v is not None}
    ids = torch.tensor([list(prompt)], device=next(target.parameters()).device)
    # No end token: the drafter's generation config would otherwise end a block at a keyed
    # draft that happens to be its eos id (the runner never stops early either).
    with (
        _set(target.generation_config, eos_token_id=None),
        _set(drafter.generation_config, eos_token_id=None, **drafter_settings),
        keyed_acceptance(target, drafter, len(prompt), seed=seed, acceptance=acceptance) as log,
        torch.no_grad(),
    ):
        t0 = time.perf_counter()
        out = target.generate(
            ids,
            assistant_model=drafter,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
        wall = time.perf_counter() - t0
    tokens = tuple(int(t) for t in out[0, len(prompt) :].tolist())
    if len(tokens) != max_new_tokens:
        raise InvalidModelOutput(f"generate gave {len(tokens)} new tokens, not {max_new_tokens}")
    return AssistedRun(tokens, wall, log)
