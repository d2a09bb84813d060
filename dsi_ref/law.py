"""The exact law that every lossless algorithm must reproduce: warp(p) chained."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from dsi_ref.models import LanguageModel
from dsi_ref.prob import Num, argmax
from dsi_ref.sampling import SamplingConfig, WarpedModel

Law = dict[tuple[int, ...], Num]


def target_law(
    target: LanguageModel, sampling: SamplingConfig, n: int, prompt: Sequence[int] = ()
) -> Law:
    """{tokens: probability} of the first n new tokens under the warped target."""
    view = WarpedModel(target, sampling)
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
