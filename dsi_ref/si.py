"""Speculative inference: draft k tokens, verify them in one target pass, repeat.

Drafting and verification alternate and each waits for the other. On full
acceptance the target's extra scored position gives a bonus token sampled from
p alone (key purpose TARGET); near the end only min(k, left - 1) tokens are drafted.

k may change between blocks: SI reads the lookahead knob of `cfg.policy`
(dsi_ref.policies.si_next_k): "fixed" (the default policy's) keeps k, "heuristic"
(`adaptive`, `paper-adaptive`) is transformers' schedule, "measured" picks k from the
verdicts so far. Each is decided from verdicts already made, so the tokens stay the
sequential reference's (the per-position keyed rule) whatever k each block has.
With `cfg.draft_confidence` a block also ends after a draft whose q's largest
probability is below it (dsi_ref.policies.low_confidence): its length is still fixed
by drafts already made.
"""

from __future__ import annotations

from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.models import LanguageModel
from dsi_ref.policies import cost_ratio, get_policy, low_confidence, si_next_k
from dsi_ref.prob import Dist
from dsi_ref.randomness import Chooser
from dsi_ref.result import Counters, RunResult
from dsi_ref.trace import TraceRecorder
from dsi_ref.workers import REFERENCE_PARTS, RunParts, workers_for


def run_si(
    target: LanguageModel,
    drafter: LanguageModel,
    cfg: RunConfig,
    *,
    record: bool = False,
    chooser: Chooser | None = None,
    parts: RunParts = REFERENCE_PARTS,
) -> RunResult:
    """SI on the models; `parts` builds the rule and workers (default: the reference)."""
    verifier, scorer, draft_worker = workers_for(target, drafter, cfg, chooser, parts=parts)
    rec = TraceRecorder(record, "si", cfg, target.vocab_size)
    n, k = cfg.max_tokens, cfg.k
    policy = get_policy(cfg.policy)
    ratio = cost_ratio(cfg.drafter_latency.tpot, cfg.target_latency.tpot)
    t = Fraction(0)
    tokens: list[int] = []
    times: list[Fraction] = []
    c = Counters()
    task_id = draft_id = 0
    while len(tokens) < n:
        i = len(tokens)
        m = min(k, n - i - 1)
        chain = list(tokens)
        qs: list[Dist] = []
        for j in range(m):
            rec.event(t, "draft_start", id=draft_id, pos=i + j)
            t += cfg.drafter_latency.forward(i + j)
            tok, q = draft_worker.draft(chain, i + j)
            rec.event(t, "draft_done", id=draft_id, pos=i + j, token=tok)
            draft_id += 1
            chain.append(tok)
            qs.append(q)
            if low_confidence(q, cfg.draft_confidence):
                break  # the block ends at this draft (dsi_ref.policies.low_confidence)
        m = len(qs)
        rec.event(t, "task_submit", id=task_id, kind="verify", tokens=chain, first=i, last=i + m)
        rec.event(t, "task_start", id=task_id, server=0)
        t += cfg.target_latency.forward(i, m + 1)  # scores i..i+m
        ps = scorer.score(chain, i, i + m)
        rec.event(t, "task_done", id=task_id, server=0)
        all_ok = False
        for j in range(m):
            token, ok = verifier.verify(i + j, ps[j], qs[j], chain[i + j])
            rec.commit(
                t,
                i + j,
                token,
                source="verify",
                task=task_id,
                p=ps[j],
                draft=chain[i + j],
                q=qs[j],
                accepted=ok,
            )
            tokens.append(token)
            times.append(t)
            c.verdict(j, ok)
            if not ok:
                c.drafts_rejected += 1
                c.drafts_wasted += m - j
                break
            c.drafts_accepted += 1
        else:
            all_ok = True
            bonus = ps[m]
            token = verifier.target_token(i + m, bonus)
            rec.commit(t, i + m, token, source="target", task=task_id, p=bonus)
            tokens.append(token)
            times.append(t)
        task_id += 1
        verdicts = c.drafts_accepted + c.drafts_rejected
        k = si_next_k(policy, k, m, all_ok, c.drafts_accepted, verdicts, ratio, n)
    rec.event(t, "done")
    c.target_forwards = scorer.forwards
    c.drafter_forwards = draft_worker.forwards
    return RunResult("si", tuple(tokens), t, tuple(times), c, rec.finish(tokens, t))
