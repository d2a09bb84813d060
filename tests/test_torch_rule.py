"""The tensor twins agree with dsi_ref: gpu_runner.warp.warp and gpu_runner.rule.TorchRule.

Property (seeded loops, no hypothesis, seed CASE_SEED = 20261204; deterministic, so
no false-alarm level: any mismatch is a counterexample). Over N_RANDOM = 10,000 random
cases plus N_TIES crafted near-ties, all float64 on the CPU:

- warp: `gpu_runner.warp.warp(tensor)` vs `dsi_ref.sampling.warp(tuple)` on the target
  row and the drafter row of every case, max |difference| <= WARP_TOL = 1e-12, and
  bitwise equal when T == 1 (every step but torch.pow is done in dsi_ref's order);
- rule: on the same (dsi_ref-warped) values, `TorchRule(seed, greedy)` and
  `Verifier(SeededChooser(seed), greedy)` give the same draft, the same target-only
  token, and the same (token, accepted) for the drawn draft and for another draft of
  positive q; both raise InvalidDraft for a draft of zero q. The inverse CDF's
  off-CPU path (`sequential=False`, host check near cell edges) is held to the same.

Rows mix dense, sparse (zeros), dyadic (exact ties and exact top-p edges), peaked,
tiny (1e-300) and duplicated entries; warps are greedy, temperature 1/3..2 (float and
Fraction), top-k 1..V and top-p 1/2..1. The near-ties put a cell edge of the inverse
CDF, or the acceptance ratio, exactly at the keyed uniform.

Negative controls: the same check, over the same cases, must fail for a warp twin with
top-p `acc > threshold`, one with the temperature exponent T instead of 1/T, and a rule
twin whose inverse CDF takes the cell edge on the wrong side (u <= cdf).

End to end: DSIScheduler[torch.Tensor] with TorchRule, fed raw model rows warped by
gpu_runner.warp and driven in seeded random completion orders (late cancellation),
commits `dsi_ref.sequential.reference_tokens` on 48 float instances (T6 with the tensor
rule); with the exponent-T warp it does not.

Measured here (CPU, torch 2.13): with T != 1, warp rows differ from dsi_ref's by at most
MEASURED_MAX_DIFF (one or two ulps, from torch.pow vs math.pow); all other rows are equal.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial

import pytest
import torch

from dsi_ref.config import RunConfig
from dsi_ref.errors import DSIError, InvalidDistribution, InvalidDraft, VocabularyMismatch
from dsi_ref.models import LanguageModel, MixtureDrafter, random_markov
from dsi_ref.prob import Dist
from dsi_ref.prob import inverse_cdf as ref_inverse_cdf
from dsi_ref.randomness import Key, Purpose, SeededChooser, keyed_uniform
from dsi_ref.sampling import SamplingConfig
from dsi_ref.sampling import warp as ref_warp
from dsi_ref.scheduler import Command, DSIScheduler, Finished, StartDraft, StartTask
from dsi_ref.sequential import reference_tokens
from dsi_ref.verify import Verifier
from gpu_runner import rule as rule_mod
from gpu_runner.rule import TorchRule, inverse_cdf
from gpu_runner.warp import apply_temperature, keep_mask, normalize_rows, warp

torch.set_num_threads(1)

CASE_SEED = 20261204
N_RANDOM = 10_000
N_TIES = 600
WARP_TOL = 1e-12
MEASURED_MAX_DIFF = 2.3e-16  # largest |torch warp - dsi_ref warp| seen over these cases
F64 = torch.float64

WarpFn = Callable[[torch.Tensor, SamplingConfig], torch.Tensor]
RuleFactory = Callable[[int, bool], TorchRule]


@dataclass(frozen=True)
class Case:
    p: tuple[float, ...]  # raw rows, warped by each side
    q: tuple[float, ...]
    cfg: SamplingConfig
    seed: int
    position: int
    other: int  # a second draft to verify (index into the row)


# ----- generating cases ----------------------------------------------------------------


def _row(rng: random.Random, v: int) -> tuple[float, ...]:
    kind = rng.choice(["dense", "sparse", "dyadic", "peaked", "tiny", "dup"])
    if kind == "dense":
        w = [rng.random() + 1e-3 for _ in range(v)]
    elif kind == "sparse":
        w = [rng.random() if rng.random() < 0.4 else 0.0 for _ in range(v)]
    elif kind == "dyadic":  # multiples of 1/16: exact sums, exact ties and top-p edges
        w = [float(rng.randint(0, 4)) for _ in range(v)]
    elif kind == "peaked":
        w = [rng.random() * 1e-6 for _ in range(v)]
        w[rng.randrange(v)] = 1.0
    elif kind == "tiny":
        w = [rng.choice([1e-300, 0.0, rng.random()]) for _ in range(v)]
    else:  # duplicated values: ties everywhere
        vals = [rng.random() for _ in range(2)]
        w = [rng.choice(vals) for _ in range(v)]
    if sum(w) <= 0:
        w[rng.randrange(v)] = 1.0
    total = sum(w)
    return tuple(x / total for x in w)


def _cfg(rng: random.Random, v: int) -> SamplingConfig:
    if rng.random() < 0.1:
        return SamplingConfig(greedy=True)
    temperature: Fraction | float = rng.choice(
        [Fraction(1), Fraction(1), Fraction(1, 2), Fraction(1, 3), 0.7, 1.3, 2.0]
    )
    top_k = rng.choice([None, None, 1, 2, 3, v])
    top_p: Fraction | float | None = rng.choice([None, None, 0.5, 0.75, 0.9, Fraction(1, 2), 1.0])
    return SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)


def random_cases(n: int, seed: int = CASE_SEED) -> list[Case]:
    rng = random.Random(seed)
    out: list[Case] = []
    for _ in range(n):
        v = rng.choice([1, 2, 3, 4, 5, 8, 12, 12, 32, 200])
        out.append(
            Case(
                _row(rng, v),
                _row(rng, v),
                _cfg(rng, v),
                rng.randrange(2**40),
                rng.randrange(10**6),
                rng.randrange(v),
            )
        )
    return out


def tie_cases(n: int, seed: int = CASE_SEED + 1) -> list[Case]:
    """An inverse-CDF cell edge, or the acceptance ratio, exactly at the keyed uniform."""
    rng = random.Random(seed)
    out: list[Case] = []
    plain = SamplingConfig()  # T = 1: warp only normalises, and these rows sum to 1 exactly
    for i in range(n):
        seed_i, pos = rng.randrange(2**40), rng.randrange(10**6)
        if i % 3 == 0:  # the drafter's first cell ends at u: cdf(0) = u exactly
            u = keyed_uniform(seed_i, Key(pos, Purpose.DRAFT))
            q = (u / 2, u / 2, 1.0 - u) if i % 2 else (u, 1.0 - u)
            p = tuple(1.0 / len(q) for _ in q) if len(q) == 2 else (0.5, 0.25, 0.25)
        elif i % 3 == 1:  # the target-only token's cell edge at u
            u = keyed_uniform(seed_i, Key(pos, Purpose.TARGET))
            p = (u, 0.0, 1.0 - u)
            q = (0.25, 0.5, 0.25)
        else:  # the ratio p(d)/q(d) = U(pos, ACCEPT) exactly, for draft d = 0
            u = keyed_uniform(seed_i, Key(pos, Purpose.ACCEPT))
            p = (u / 2, 1.0 - u / 2)
            q = (0.5, 0.5)
        if sum(p) != 1.0 or sum(q) != 1.0:
            continue  # keep only rows that normalise to themselves, so the edge survives warp
        out.append(Case(p, q, plain, seed_i, pos, 0))
    return out


CASES = random_cases(N_RANDOM)
TIES = tie_cases(N_TIES)


# ----- the property -----------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    warp_rows: int = 0
    warp_exact: int = 0
    max_diff: float = 0.0
    accepted: int = 0
    rejected: int = 0
    top_p_cut: int = 0


def _outcome(fn: Callable[[], object]) -> object:
    """The value, or the error class for typed errors (both sides must raise alike)."""
    try:
        return fn()
    except DSIError as e:
        return type(e)


def twin_mismatches(
    cases: list[Case],
    warp_fn: WarpFn = warp,
    rule_factory: RuleFactory = TorchRule,
    tally: Tally | None = None,
    stop_after: int = 10,
) -> list[str]:
    """Every disagreement between the twins and dsi_ref on `cases` (up to stop_after)."""
    t = tally or Tally()
    bad: list[str] = []
    for i, c in enumerate(cases):
        if len(bad) >= stop_after:
            break
        t.cases += 1
        rows: list[Dist] = []
        for name, raw in (("p", c.p), ("q", c.q)):
            want = ref_warp(raw, c.cfg)
            got = warp_fn(torch.tensor(raw, dtype=F64), c.cfg).tolist()
            diff = max(abs(a - b) for a, b in zip(got, want, strict=True))
            t.warp_rows += 1
            t.warp_exact += got == list(want)
            t.max_diff = max(t.max_diff, diff)
            if not diff <= WARP_TOL or (c.cfg.temperature == 1 and got != list(want)):
                bad.append(f"case {i}: warp of {name} differs by {diff}: {c}")
            if sum(1 for x in want if x > 0) < sum(1 for x in raw if x > 0):
                t.top_p_cut += 1
            rows.append(want)
        p, q = rows
        pt, qt = torch.tensor(p, dtype=F64), torch.tensor(q, dtype=F64)
        ref = Verifier(SeededChooser(c.seed), c.cfg.greedy)
        twin = rule_factory(c.seed, c.cfg.greedy)
        d_ref, d_twin = ref.draft(c.position, q), twin.draft(c.position, qt)
        if d_ref != d_twin:
            bad.append(f"case {i}: draft {d_twin} != {d_ref}: {c}")
            continue
        t_ref, t_twin = ref.target_token(c.position, p), twin.target_token(c.position, pt)
        if t_ref != t_twin:
            bad.append(f"case {i}: target token {t_twin} != {t_ref}: {c}")
        u_draft = keyed_uniform(c.seed, Key(c.position, Purpose.DRAFT))
        if not c.cfg.greedy and inverse_cdf(qt, u_draft, sequential=False) != d_ref:
            bad.append(f"case {i}: off-CPU inverse CDF != {d_ref}: {c}")
        for draft in (d_ref, c.other):
            want_v = _outcome(partial(ref.verify, c.position, p, q, draft))
            got_v = _outcome(partial(twin.verify, c.position, pt, qt, draft))
            if want_v != got_v:
                bad.append(f"case {i}: verify draft {draft}: {got_v} != {want_v}: {c}")
            elif isinstance(want_v, tuple):
                t.accepted += want_v[1]
                t.rejected += not want_v[1]
    return bad


# ----- the tests ----------------------------------------------------------------------


def test_twins_agree_with_dsi_ref_on_random_cases() -> None:
    tally = Tally()
    assert twin_mismatches(CASES, tally=tally) == []
    # What was covered (so a generator change cannot silently hollow the test out).
    assert tally.cases == N_RANDOM
    assert tally.accepted > 3000 and tally.rejected > 3000, tally
    assert tally.top_p_cut > 1000, tally
    assert tally.max_diff <= MEASURED_MAX_DIFF, tally  # the measured bound, documented above
    assert tally.warp_exact > 0.9 * tally.warp_rows, tally


def test_twins_agree_on_exact_ties() -> None:
    assert len(TIES) > N_TIES // 2  # most crafted rows survive (sum exactly 1)
    assert twin_mismatches(TIES) == []


def _off_cpu_rule(seed: int, greedy: bool) -> TorchRule:
    return TorchRule(seed, greedy, sequential_cumsum=False)


def test_off_cpu_path_agrees_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # The path taken where cumsum is a parallel scan (CUDA), run here on the CPU: the band
    # check and the host look-up (hit by every exact tie) must give dsi_ref's answers.
    host_calls = 0
    real = rule_mod.host_inverse_cdf

    def counted(p: Sequence[float], u: float) -> int:
        nonlocal host_calls
        host_calls += 1
        return real(p, u)

    monkeypatch.setattr(rule_mod, "host_inverse_cdf", counted)
    assert twin_mismatches(CASES[:2000] + TIES, rule_factory=_off_cpu_rule) == []
    assert host_calls >= len(TIES) // 2  # the ties did go through the host look-up


def test_cpu_cumsum_adds_in_index_order() -> None:
    # The exactness argument of both twins on the CPU: torch.cumsum is a left-to-right sum.
    rng = random.Random(CASE_SEED + 2)
    for _ in range(200):
        xs = [rng.random() * rng.choice([1.0, 1e-8, 1e8]) for _ in range(rng.randint(1, 3000))]
        acc, want = 0.0, []
        for x in xs:
            acc += x
            want.append(acc)
        assert torch.cumsum(torch.tensor(xs, dtype=F64), 0).tolist() == want


def test_inverse_cdf_edges() -> None:
    w = (0.0, 0.25, 0.0, 0.75, 0.0)
    wt = torch.tensor(w, dtype=F64)
    for u in (0.0, 0.1, 0.25, math.nextafter(0.25, 0.0), 0.9999999999999999, 1.0, 5.0):
        for sequential in (True, False):
            assert inverse_cdf(wt, u, sequential=sequential) == ref_inverse_cdf(w, u), (u, w)
    assert inverse_cdf(torch.zeros(3, dtype=F64), 0.5) == ref_inverse_cdf((0.0, 0.0, 0.0), 0.5)
    assert inverse_cdf(torch.zeros(0, dtype=F64), 0.5) == ref_inverse_cdf((), 0.5) == -1


# ----- the scheduler on tensors: the same tokens as the reference -----------------------


def run_dsi_on_tensors(
    target: LanguageModel,
    drafter: LanguageModel,
    cfg: RunConfig,
    order_seed: int,
    warp_fn: WarpFn = warp,
) -> tuple[int, ...]:
    """DSIScheduler[torch.Tensor] with TorchRule: raw model rows warped by gpu_runner.warp,
    drafts and tasks completed in a seeded random order, cancelled work delivered late."""
    rule = TorchRule(cfg.seed, cfg.sampling.greedy)
    sched = DSIScheduler.from_config(cfg, rule)

    def dist(model: LanguageModel, tokens: Sequence[int]) -> torch.Tensor:
        raw = torch.tensor(model.next_dist(cfg.prompt + tuple(tokens)), dtype=F64)
        return warp_fn(raw, cfg.sampling)

    rng = random.Random(order_seed)
    pending: list[StartDraft | StartTask] = []
    out: tuple[int, ...] | None = None

    def take(cmds: list[Command]) -> None:
        nonlocal out
        for c in cmds:
            if isinstance(c, StartDraft | StartTask):
                pending.append(c)
            elif isinstance(c, Finished):
                out = c.tokens

    take(sched.start())
    while out is None:
        job = pending.pop(rng.randrange(len(pending)))
        if isinstance(job, StartDraft):
            q = dist(drafter, job.tokens)
            take(sched.on_draft_done(job.draft_id, rule.draft(job.position, q), q))
        else:
            ps = [dist(target, job.tokens[:j]) for j in range(job.first, job.last + 1)]
            take(sched.on_task_done(job.task_id, ps))
    return out


SCHED_SAMPLINGS = [
    SamplingConfig(),
    SamplingConfig(greedy=True),
    SamplingConfig(top_k=3, top_p=0.8),
    SamplingConfig(temperature=Fraction(1, 2), top_p=Fraction(3, 4)),
]


def _sched_runs(sampling: SamplingConfig, warp_fn: WarpFn) -> list[bool]:
    """For 12 seeded instances: do the tensor-rule DSI tokens equal reference_tokens?"""
    same = []
    for i in range(12):
        target = random_markov(6, 1, 100 + i, exact=False, name="target")
        drafter = MixtureDrafter(target, 0.5, _row(random.Random(i), 6))
        cfg = RunConfig(
            max_tokens=16,
            k=1 + i % 4,
            servers=1 + i % 3,
            seed=i,
            sampling=sampling,
            prompt=(i % 6,),
        )
        got = run_dsi_on_tensors(target, drafter, cfg, order_seed=i, warp_fn=warp_fn)
        same.append(got == reference_tokens(target, drafter, cfg))
    return same


@pytest.mark.parametrize("sampling", SCHED_SAMPLINGS, ids=lambda s: s.describe())
def test_scheduler_on_tensors_commits_the_reference_tokens(sampling: SamplingConfig) -> None:
    # T6 with the tensor rule: any k, P and completion order give reference_tokens.
    assert _sched_runs(sampling, warp) == [True] * 12


def test_scheduler_on_tensors_sees_a_wrong_warp() -> None:
    # Negative control: the temperature exponent T instead of 1/T changes some run's tokens.
    assert not all(_sched_runs(SCHED_SAMPLINGS[3], _warp_exponent_t))


# ----- negative controls: wrong twins must be caught by the same check -----------------


def _keep_mask_strict(
    w: torch.Tensor, top_k: int | None, top_p: Fraction | float | None
) -> torch.Tensor:
    """keep_mask with the top-p stop rule acc > threshold (dsi_ref: acc >= threshold)."""
    vals, order = torch.sort(w, dim=-1, descending=True, stable=True)
    keep = torch.ones_like(vals, dtype=torch.bool)
    if top_k is not None and top_k < w.shape[-1]:
        keep[..., top_k:] = False
    if top_p is not None and top_p < 1:
        acc = torch.cumsum(torch.where(keep, vals, 0.0), dim=-1)
        reached = acc > float(top_p) * acc[..., -1:]
        before = torch.cumsum(reached, dim=-1) - reached.to(torch.int64)
        keep = keep & (before == 0)
    return torch.zeros_like(keep).scatter(-1, order, keep)


def _warp_top_p_strict(probs: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    if cfg.greedy:
        return probs
    w = apply_temperature(probs, cfg.temperature)
    return normalize_rows(torch.where(_keep_mask_strict(w, cfg.top_k, cfg.top_p), w, 0.0))


def _warp_exponent_t(probs: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Temperature applied as (x / max)^T instead of ^(1/T)."""
    if cfg.greedy:
        return probs
    w = probs
    if cfg.temperature != 1:
        top = probs.amax(dim=-1, keepdim=True)
        w = torch.where(probs > 0, torch.pow(probs / top, float(cfg.temperature)), probs)
    return normalize_rows(torch.where(keep_mask(w, cfg.top_k, cfg.top_p), w, 0.0))


class _EdgeOnWrongSide(TorchRule):
    """Inverse CDF taking u == cdf(j) into cell j (dsi_ref: into cell j + 1)."""

    def draft(self, position: int, q: torch.Tensor) -> int:
        if self.greedy:
            return super().draft(position, q)
        sums = torch.cumsum(torch.where(q > 0, q, 0.0), dim=0)
        u = self.uniform(position, Purpose.DRAFT)
        return min(int(torch.searchsorted(sums, u, right=False)), q.shape[0] - 1)


@pytest.mark.parametrize(
    ("warp_fn", "rule_factory", "cases"),
    [
        pytest.param(_warp_top_p_strict, TorchRule, CASES[:3000], id="top-p-strict"),
        pytest.param(_warp_exponent_t, TorchRule, CASES[:300], id="temperature-exponent-T"),
        pytest.param(warp, _EdgeOnWrongSide, TIES, id="inverse-cdf-edge"),
    ],
)
def test_wrong_twin_is_caught(
    warp_fn: WarpFn, rule_factory: RuleFactory, cases: list[Case]
) -> None:
    assert twin_mismatches(cases, warp_fn, rule_factory, stop_after=1) != []


# ----- typed errors, as dsi_ref's Verifier raises them -----------------------------------

P3 = (0.25, 0.25, 0.5)
Q3 = (0.5, 0.5, 0.0)


@pytest.mark.parametrize(
    ("p", "q", "draft", "error"),
    [
        (P3, Q3, 2, InvalidDraft),  # q(draft) = 0
        (P3, Q3, 3, InvalidDraft),  # out of range
        (P3, Q3, 1.0, InvalidDraft),  # not an int
        (P3, (0.5, 0.5), 0, VocabularyMismatch),
        ((0.5, math.nan, 0.5), Q3, 0, InvalidDistribution),
        (P3, (0.5, -0.5, 1.0), 0, InvalidDistribution),
        ((math.inf, 0.0, 0.0), Q3, 0, InvalidDistribution),
    ],
)
def test_bad_input_raises_what_the_verifier_raises(
    p: tuple[float, ...], q: tuple[float, ...], draft: object, error: type[DSIError]
) -> None:
    ref = Verifier(SeededChooser(0), greedy=False)
    with pytest.raises(DSIError) as want:
        ref.verify(4, p, q, draft)  # type: ignore[arg-type]
    with pytest.raises(DSIError) as got:
        TorchRule(0, False).verify(4, torch.tensor(p, dtype=F64), torch.tensor(q, dtype=F64), draft)  # type: ignore[arg-type]
    assert type(want.value) is type(got.value) is error
    assert str(got.value) == str(want.value)


def test_only_float64_vectors_are_accepted() -> None:
    rule = TorchRule(0, False)
    with pytest.raises(InvalidDistribution, match="float32"):
        rule.draft(0, torch.tensor([0.5, 0.5], dtype=torch.float32))
    with pytest.raises(InvalidDistribution, match=r"\(2, 2\)"):
        rule.target_token(0, torch.full((2, 2), 0.25, dtype=F64))
    assert rule_mod.TorchRule is TorchRule
