"""The exact law that every lossless algorithm must reproduce: warp(p) chained."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from dsi_ref.errors import EnumerationError, InvalidConfig, show
from dsi_ref.models import LanguageModel
from dsi_ref.prob import Num, argmax
from dsi_ref.sampling import SamplingConfig, WarpedModel

Law = dict[tuple[int, ...], Num]


def _size(vocab: int, n: int) -> str:
    """vocab**n, written as ~1e+N when it is too long to print."""
    digits = n * math.log10(vocab) if vocab > 1 else 0
    return str(vocab**n) if digits < 18 else f"~1e+{int(digits)}"


# Work bound of target_law: law entries visited times the vocabulary, over all steps.
# 200k takes about a second of one core (V = 3 at n = 10, measured on a loaded box);
# the law has up to V**n outcomes, so V = 3 at n = 14 or V = 32 at n = 8 (hours) are
# refused before starting.
DEFAULT_MAX_WORK = 200_000


def worst_work(vocab: int, branching: int, n: int, cap: int) -> int:
    """vocab * (1 + b + ... + b**(n-1)), the work of n steps when each entry has b
    successors; summing stops once past `cap` (so a huge n costs nothing)."""
    total, entries = 0, 1
    for _ in range(n):
        total += entries * vocab
        if total > cap:
            break
        entries *= branching
    return total


def target_law(
    target: LanguageModel,
    sampling: SamplingConfig,
    n: int,
    prompt: Sequence[int] = (),
    max_work: int = DEFAULT_MAX_WORK,
) -> Law:
    """{tokens: probability} of the first n new tokens under the warped target.

    Refused before any work, with EnumerationError stating the size, when the worst case
    (every token of the vocabulary, or of the top-k, possible at every step) passes
    `max_work`; greedy decoding has one outcome.
    """
    view = WarpedModel(target, sampling)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidConfig(f"n must be an int >= 0, got {show(n)}")
    if isinstance(max_work, bool) or not isinstance(max_work, int) or max_work < 1:
        raise InvalidConfig(f"max_work must be an int >= 1, got {show(max_work)}")
    v = view.vocab
    b = 1 if sampling.greedy else min(v, sampling.top_k or v)
    work = worst_work(v, b, n, max_work)
    if work > max_work:
        raise EnumerationError(
            f"target_law over {n} tokens with {b} possible tokens per step has up to "
            f"{b}**{n} = {_size(b, n)} outcomes (vocabulary {v}); its work passes "
            f"max_work={max_work}: use fewer tokens, a smaller vocabulary or a larger max_work"
        )
    law: Law = {(): Fraction(1)}
    for _ in range(n):
        nxt: Law = {}
        for seq, pr in law.items():
            p = view.dist(tuple(prompt) + seq)
            if sampling.greedy:
                best = (*seq, argmax(p))
                nxt[best] = nxt.get(best, 0) + pr
                continue
            for tok, x in enumerate(p):
                if x > 0:
                    nxt[(*seq, tok)] = nxt.get((*seq, tok), 0) + pr * x
        law = nxt
    return law


def marginal(law: dict[tuple[int, ...], Num], m: int) -> Law:
    """The law of the first m tokens."""
    out: Law = {}
    for seq, pr in law.items():
        out[seq[:m]] = out.get(seq[:m], 0) + pr
    return out
