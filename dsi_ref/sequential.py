"""The simple sequential per-position reference that DSI's output must equal.

Token i is the speculative-sampling rule at position i applied to the target's
and drafter's warped distributions on the committed prefix, with keyed
randomness. DSI (any k, P, latencies) commits exactly these tokens: see
proofs/ T6 for the statement and its conditions.
"""

from __future__ import annotations

from dsi_ref.config import RunConfig
from dsi_ref.models import LanguageModel
from dsi_ref.randomness import Chooser
from dsi_ref.workers import REFERENCE_PARTS, RunParts, workers_for


def reference_tokens(
    target: LanguageModel,
    drafter: LanguageModel,
    cfg: RunConfig,
    chooser: Chooser | None = None,
    *,
    parts: RunParts = REFERENCE_PARTS,
) -> tuple[int, ...]:
    verifier, scorer, draft_worker = workers_for(target, drafter, cfg, chooser, parts=parts)
    tokens: list[int] = []
    for i in range(cfg.max_tokens):
        draft, q = draft_worker.draft(tokens, i)
        (p,) = scorer.score(tokens, i, i)
        token, _ = verifier.verify(i, p, q, draft)
        tokens.append(token)
    return tuple(tokens)
