"""`dsi_ref.si.run_si` against a step-by-step SI written here from the description alone.

`reference_si` below uses none of dsi_ref's algorithm code: not the Verifier, the
workers, the Chooser, inverse_cdf, residual or argmax. It takes from dsi_ref only the
models (next_dist), `warp` (pinned independently by tests/test_warp_oracle.py) and
`keyed_uniform` (the randomness contract: one uniform per (seed, position, purpose)).
The rules it implements (the si.py docstring):

- a round at committed length i drafts m = min(k, n - i - 1) tokens; the draft at
  position j is argmax q (greedy) or the j' with cdf(j' - 1) <= U(j, DRAFT) < cdf(j')
  under the warped drafter q on prompt + committed + drafts so far; each draft costs the
  drafter TTFT at position 0, TPOT elsewhere;
- one target pass then costs TTFT if i = 0, else TPOT, and scores positions i..i+m;
- positions are verified in order: greedy accepts iff the draft is argmax p (the token
  is argmax p); sampling accepts iff p(x) >= q(x) or U(j, ACCEPT) < p(x)/q(x), and on
  rejection draws from norm(max(0, p - q)) under U(j, RESIDUAL); with point-mass
  proposals q is one-hot(x). The round ends at the first rejection;
- if all m pass, one more token from p at position i + m under U(i + m, TARGET)
  (argmax if greedy), the bonus;
- every token of a round is committed at the end of the target pass.

Compared on 400 random configurations (vocabulary 2-6, Markov order 0-2, exact and
float tables, mixture or unrelated drafters, greedy / temperature / top-k / top-p and
combinations, k 1-5, n 1-14, prompts, point-mass proposals, TTFT != TPOT), each with
3 seeds: the tokens, every commit time, the final latency and the counters
(accepted, rejected, wasted drafts; target and drafter passes) must be equal.
Negative controls: three wrong variants of the reference (bonus under the DRAFT key;
target pass always at TPOT; acceptance keyed by the round's first position) must each
disagree with run_si on some configuration, so the comparison can fail.
Recorded: the 1,200 runs have 2,339 rejections and 2,340 rounds ending in a bonus token;
on the first 150 configurations the variants disagree on 79, 143 and 32 of them.
About 3 s of CPU.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction as F

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidDraft
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MixtureDrafter, random_dist, random_markov
from dsi_ref.prob import Num
from dsi_ref.randomness import Key, Purpose, SeededChooser, keyed_uniform
from dsi_ref.sampling import SamplingConfig, warp
from dsi_ref.si import run_si
from dsi_ref.verify import Verifier


@dataclass
class RefResult:
    tokens: list[int]
    times: list[F]
    latency: F
    accepted: int = 0
    rejected: int = 0
    wasted: int = 0
    target_passes: int = 0
    drafter_passes: int = 0


def _pick(w: Sequence[Num], u: float) -> int:
    """The first index whose cumulative weight exceeds u (zero weights never chosen)."""
    total: Num = 0
    last = -1
    for j, x in enumerate(w):
        if x > 0:
            total += x
            last = j
            if u < total:
                return j
    return last


def _top(w: Sequence[Num]) -> int:
    best = max(w)
    return next(j for j, x in enumerate(w) if x == best)


def reference_si(
    target: LanguageModel, drafter: LanguageModel, cfg: RunConfig, variant: str = ""
) -> RefResult:
    s, n, k = cfg.sampling, cfg.max_tokens, cfg.k

    def u(pos: int, purpose: Purpose) -> float:
        return keyed_uniform(cfg.seed, Key(pos, purpose))

    def cost(lat: Latency, pos: int) -> F:
        return lat.ttft if pos == 0 else lat.tpot

    out = RefResult([], [], F(0))
    t = F(0)
    while len(out.tokens) < n:
        i = len(out.tokens)
        m = min(k, n - i - 1)
        drafts: list[int] = []
        qs: list[Sequence[Num]] = []
        for j in range(i, i + m):
            t += cost(cfg.drafter_latency, j)
            out.drafter_passes += 1
            q = warp(drafter.next_dist(cfg.prompt + tuple(out.tokens) + tuple(drafts)), s)
            x = _top(q) if s.greedy else _pick(q, u(j, Purpose.DRAFT))
            if cfg.point_mass_proposal:
                one, zero = (F(1), F(0)) if isinstance(q[0], F) else (1.0, 0.0)
                q = [one if y == x else zero for y in range(len(q))]
            drafts.append(x)
            qs.append(q)
        t += cfg.target_latency.tpot if variant == "always-tpot" else cost(cfg.target_latency, i)
        out.target_passes += 1
        ps = [
            warp(target.next_dist(cfg.prompt + tuple(out.tokens) + tuple(drafts[:j])), s)
            for j in range(m + 1)
        ]
        for j in range(m):
            pos, x, p, q = i + j, drafts[j], ps[j], qs[j]
            akey = i if variant == "accept-key-of-round" else pos
            if s.greedy:
                tok = _top(p)
                ok = tok == x
            elif p[x] >= q[x] or u(akey, Purpose.ACCEPT) < p[x] / q[x]:
                tok, ok = x, True
            else:
                zero = p[0] - p[0]
                res = [max(zero, a - b) for a, b in zip(p, q, strict=True)]
                z = sum(res)
                tok, ok = _pick([r / z for r in res], u(pos, Purpose.RESIDUAL)), False
            out.tokens.append(tok)
            out.times.append(t)
            if not ok:
                out.rejected += 1
                out.wasted += m - j
                break
            out.accepted += 1
        else:
            purpose = Purpose.DRAFT if variant == "bonus-draft-key" else Purpose.TARGET
            p = ps[m]
            out.tokens.append(_top(p) if s.greedy else _pick(p, u(i + m, purpose)))
            out.times.append(t)
    out.latency = t
    return out


SAMPLINGS = [
    SamplingConfig(),
    SamplingConfig(greedy=True),
    SamplingConfig(temperature=0.7),
    SamplingConfig(temperature=F(1, 2)),
    SamplingConfig(top_k=2),
    SamplingConfig(top_p=0.8),
    SamplingConfig(temperature=F(1, 2), top_k=3, top_p=F(9, 10)),
    SamplingConfig(temperature=1.3, top_k=4, top_p=0.9),
]


def _configs(count: int) -> list[tuple[LanguageModel, LanguageModel, RunConfig]]:
    rng = random.Random(2023_0517)
    out = []
    for i in range(count):
        v = rng.randint(2, 6)
        order = rng.randint(0, 2)
        exact = rng.random() < 0.5
        target = random_markov(v, order, 1000 + i, exact)
        drafter: LanguageModel
        if rng.random() < 0.6:
            noise: Num = rng.choice([F(1, 4), F(1, 2), F(1)]) if exact else rng.random()
            drafter = MixtureDrafter(target, noise, random_dist(rng, v, exact))
        else:
            drafter = random_markov(v, rng.randint(0, 2), 5000 + i, exact)
        sampling = rng.choice(SAMPLINGS)
        if exact and isinstance(sampling.temperature, float):
            sampling = SamplingConfig(greedy=sampling.greedy, top_k=sampling.top_k)
        cfg = RunConfig(
            max_tokens=rng.randint(1, 14),
            k=rng.randint(1, 5),
            sampling=sampling,
            target_latency=Latency.of(F(rng.randint(1, 12), 4), F(rng.randint(1, 6), 4)),
            drafter_latency=Latency.of(F(rng.randint(1, 6), 10), F(rng.randint(1, 4), 10)),
            prompt=tuple(rng.randrange(v) for _ in range(rng.choice([0, 0, 1, 3]))),
            point_mass_proposal=rng.random() < 0.2,
        )
        out.append((target, drafter, cfg))
    return out


CONFIGS = _configs(400)
SEEDS = (0, 17, 123_456)


def test_run_si_matches_the_reference_token_for_token_and_time_for_time() -> None:
    rejections = bonuses = 0
    for target, drafter, cfg in CONFIGS:
        for seed in SEEDS:
            c = replace(cfg, seed=seed)
            want = reference_si(target, drafter, c)
            got = run_si(target, drafter, c)
            assert list(got.tokens) == want.tokens, c
            assert list(got.commit_times) == want.times, c
            assert got.latency == want.latency, c
            g = got.counters
            assert (g.drafts_accepted, g.drafts_rejected, g.drafts_wasted) == (
                want.accepted,
                want.rejected,
                want.wasted,
            ), c
            assert (g.target_forwards, g.drafter_forwards) == (
                want.target_passes,
                want.drafter_passes,
            ), c
            rejections += want.rejected
            bonuses += want.target_passes - want.rejected
    # the corpus exercises both ends of a round
    assert rejections >= 1000 and bonuses >= 1000, (rejections, bonuses)


def test_the_comparison_can_fail() -> None:
    """Each wrong variant of the reference disagrees with run_si somewhere."""
    for variant in ("bonus-draft-key", "always-tpot", "accept-key-of-round"):
        differs = 0
        for target, drafter, cfg in CONFIGS[:150]:
            want = reference_si(target, drafter, cfg, variant)
            got = run_si(target, drafter, cfg)
            differs += (list(got.tokens), list(got.commit_times)) != (want.tokens, want.times)
        assert differs >= 5, (variant, differs)


# ----- the rule's input edges (mutation survivors, docs/verification.md) ------------


@pytest.mark.parametrize("greedy", [False, True])
@pytest.mark.parametrize("draft", [-1, 3, 4])
def test_a_draft_outside_the_vocabulary_is_refused(draft: int, greedy: bool) -> None:
    """-1 would index q from the end and 3 (= V) would raise IndexError: both are typed."""
    v = Verifier(SeededChooser(0), greedy)
    p = q = (0.25, 0.25, 0.5)
    with pytest.raises(InvalidDraft, match="out of range"):
        v.verify(0, p, q, draft)


def test_the_edge_drafts_are_accepted() -> None:
    v = Verifier(SeededChooser(0), False)
    p = q = (0.25, 0.25, 0.5)
    assert v.verify(0, p, q, 0) == (0, True)
    assert v.verify(0, p, q, 2) == (2, True)
