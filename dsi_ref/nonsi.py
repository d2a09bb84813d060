"""Plain autoregressive decoding: one target forward pass per token."""

from __future__ import annotations

from fractions import Fraction

from dsi_ref.config import RunConfig, check_run_config
from dsi_ref.models import LanguageModel, check_model
from dsi_ref.randomness import Chooser
from dsi_ref.result import Counters, RunResult
from dsi_ref.trace import TraceRecorder
from dsi_ref.workers import REFERENCE_PARTS, RunParts, check_prompt


def run_nonsi(
    target: LanguageModel,
    cfg: RunConfig,
    *,
    record: bool = False,
    chooser: Chooser | None = None,
    parts: RunParts = REFERENCE_PARTS,
) -> RunResult:
    """non-SI on the target; `parts` builds the rule and scorer (default: the reference)."""
    check_run_config(cfg)
    check_prompt(cfg.prompt, check_model(target, "target"))
    verifier = parts.rule(cfg, chooser)
    scorer = parts.scorer(target, cfg)
    rec = TraceRecorder(record, "nonsi", cfg, target.vocab_size)
    t = Fraction(0)
    tokens: list[int] = []
    times: list[Fraction] = []
    for i in range(cfg.max_tokens):
        rec.event(t, "task_submit", id=i, kind="target", tokens=tokens, first=i, last=i)
        rec.event(t, "task_start", id=i, server=0)
        t += cfg.target_latency.forward(i)
        (p,) = scorer.score(tokens, i, i)
        rec.event(t, "task_done", id=i, server=0)
        token = verifier.target_token(i, p)
        rec.commit(t, i, token, source="target", task=i, p=p)
        tokens.append(token)
        times.append(t)
    rec.event(t, "done")
    counters = Counters(target_forwards=scorer.forwards)
    return RunResult("nonsi", tuple(tokens), t, tuple(times), counters, rec.finish(tokens, t))
