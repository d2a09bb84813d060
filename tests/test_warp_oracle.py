"""`dsi_ref.sampling.warp` against expectations that do not come from `warp`.

Every law the lossless tests compare with is chained `warp(p)`, so a wrong warp is
invisible to them: implementation and expectation move together. This file pins
`warp` with expectations computed without it:

1. Hand tables: exact Fraction results worked out by hand (in the comments) for
   temperature, top-k and top-p alone and combined, ties, zeros, and a tiny-temperature
   case whose answer is an exact power.
2. `exact_warp`: a second implementation in Fractions with another structure
   (power without rescaling; top-p as "keep a token iff the mass strictly ahead of it
   in the kept order is below top_p times the kept mass", no running loop with a
   break), compared with == on random exact inputs for T in {1, 1/2, 1/3} combined with
   top-k and top-p.
3. `float_warp`: a float implementation in log space (w = exp((log x - log max) / T)),
   so it shares neither `_power` nor the scaling step, compared within relative 1e-9
   on random float inputs with random T (0.002 to 3), top-k and top-p, including
   distributions whose largest entry is small with tiny T, where an unscaled power
   underflows to all zeros. Inputs with a near-tie at a top-k or top-p boundary
   (relative 1e-7) are redrawn, so the two float paths cannot disagree by rounding.

Mutation check (each mutant applied to a scratch copy of dsi_ref/sampling.py, then
tests/test_sampling_warp.py and this file run; recorded 2026-12-04, failing tests counted):
  M1  float temperature exponent: math.pow(x, 1.0 / float(t)) -> math.pow(x, float(t)):
      test_sampling_warp 1 failure (its underflow case); this file 5.
  M1b float exponent 1 / t -> 1 / t**2: test_sampling_warp SURVIVES; this file 4 (hand
      float table, tiny-T table, random float and float-vs-exact comparisons).
  M2  top-p threshold acc >= top_p * total -> acc >= top_p (right only when the kept
      mass is 1, i.e. no temperature and no top-k): test_sampling_warp SURVIVES; this
      file 8 (four hand tables, all three random comparisons, the float hand table).
  M3  underflow guard removed, _power(x / top, t) -> _power(x, t): test_sampling_warp
      SURVIVES; this file 2 (the tiny-T hand case and the random float comparison, where
      an unscaled power leaves all zeros and normalize raises).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from fractions import Fraction as F

import pytest
from lossless_cases import LATENCIES, PAIRS, exact_output_law, exact_target_law

from dsi_ref.config import RunConfig
from dsi_ref.models import LanguageModel
from dsi_ref.prob import residual
from dsi_ref.sampling import SamplingConfig, warp

P = (F(1, 10), F(2, 10), F(3, 10), F(4, 10))

# (p, config, expected) worked out by hand.
HAND: list[tuple[tuple[F, ...], SamplingConfig, tuple[F, ...]]] = [
    # T = 1/2: squares 1, 4, 9, 16 (/100), total 30/100.
    (P, SamplingConfig(temperature=F(1, 2)), (F(1, 30), F(4, 30), F(9, 30), F(16, 30))),
    # T = 1/3: cubes 1, 8, 27, 64, total 100.
    (P, SamplingConfig(temperature=F(1, 3)), (F(1, 100), F(8, 100), F(27, 100), F(64, 100))),
    # T = 1/2, top-k 3: squares of 2, 3, 4 -> 4, 9, 16, total 29.
    (P, SamplingConfig(temperature=F(1, 2), top_k=3), (F(0), F(4, 29), F(9, 29), F(16, 29))),
    # T = 1/2, top-p 3/4: 16/30 < 3/4, 25/30 >= 3/4: keep {3, 2} -> 9/25, 16/25.
    (P, SamplingConfig(temperature=F(1, 2), top_p=F(3, 4)), (F(0), F(0), F(9, 25), F(16, 25))),
    # T = 1/2, top-p 1/2: 16/30 >= 1/2 at once: keep {3}.
    (P, SamplingConfig(temperature=F(1, 2), top_p=F(1, 2)), (F(0), F(0), F(0), F(1))),
    # top-k 3 then top-p 3/4 of the kept mass 9/10: 4/9 < 3/4, 7/9 >= 3/4: keep {3, 2}.
    (P, SamplingConfig(top_k=3, top_p=F(3, 4)), (F(0), F(0), F(3, 7), F(4, 7))),
    # top-k 3, top-p 8/9: 7/9 < 8/9, 9/9 >= 8/9: keep {3, 2, 1} -> 2/9, 3/9, 4/9.
    (P, SamplingConfig(top_k=3, top_p=F(8, 9)), (F(0), F(2, 9), F(3, 9), F(4, 9))),
    # T = 1/2, top-k 3, top-p 1/2: kept squares 4, 9, 16 (/29); 16/29 >= 1/2: keep {3}.
    (P, SamplingConfig(temperature=F(1, 2), top_k=3, top_p=F(1, 2)), (F(0), F(0), F(0), F(1))),
    # T = 1/2, top-k 3, top-p 3/5: 16/29 < 3/5, 25/29 >= 3/5: keep {3, 2}.
    (
        P,
        SamplingConfig(temperature=F(1, 2), top_k=3, top_p=F(3, 5)),
        (F(0), F(0), F(9, 25), F(16, 25)),
    ),
    # top-p exactly reached: 4/10 + 3/10 = 7/10 >= 7/10: keep {3, 2}.
    (P, SamplingConfig(top_p=F(7, 10)), (F(0), F(0), F(3, 7), F(4, 7))),
    # ties go to the lowest index: (1/3, 1/6, 1/3, 1/6), top-k 1 keeps token 0.
    ((F(1, 3), F(1, 6), F(1, 3), F(1, 6)), SamplingConfig(top_k=1), (F(1), F(0), F(0), F(0))),
    # ties and top-p: T = 1/2 gives 4, 1, 4, 1 (/10); top-p 1/2: 4/10 < 1/2, 8/10: keep {0, 2}.
    (
        (F(1, 3), F(1, 6), F(1, 3), F(1, 6)),
        SamplingConfig(temperature=F(1, 2), top_p=F(1, 2)),
        (F(1, 2), F(0), F(1, 2), F(0)),
    ),
    # zeros stay zero under temperature and never enter a top-k set: (0, 1/4, 0, 3/4),
    # T = 1/2 gives 0, 1, 0, 9 (/10); top-k 3 changes nothing.
    (
        (F(0), F(1, 4), F(0), F(3, 4)),
        SamplingConfig(temperature=F(1, 2), top_k=3),
        (F(0), F(1, 10), F(0), F(9, 10)),
    ),
    # greedy leaves p alone (other settings are refused under greedy: sampling_rule).
    (P, SamplingConfig(greedy=True), P),
]


@pytest.mark.parametrize(("p", "cfg", "want"), HAND)
def test_hand_table(p: tuple[F, ...], cfg: SamplingConfig, want: tuple[F, ...]) -> None:
    got = warp(p, cfg)
    assert got == want
    assert all(isinstance(x, F) for x in got)


def test_hand_table_on_the_float_path() -> None:
    """The exact table again with float inputs: the float path must give the same law."""
    for p, cfg, want in HAND:
        if cfg.greedy:
            continue
        fcfg = SamplingConfig(
            temperature=float(cfg.temperature),
            top_k=cfg.top_k,
            top_p=None if cfg.top_p is None else float(cfg.top_p),
        )
        got = warp(tuple(float(x) for x in p), fcfg)
        assert all(isinstance(x, float) for x in got)
        assert got == pytest.approx([float(x) for x in want], rel=1e-12, abs=1e-15), (p, cfg)


def test_tiny_temperature_with_a_small_largest_entry() -> None:
    """p = (0.45, 0.44, 0.11), T = 0.001: w = (1, (44/45)^1000, (11/45)^1000) by hand.

    (44/45)^1000 = 1.7e-10 is representable, but 0.45^1000 = 1e-347 is not: a warp that
    raises p itself to the power 1000 sees only zeros.
    """
    w1 = float(F(44, 45) ** 1000)
    w2 = float(F(11, 45) ** 1000)
    assert 1e-10 < w1 < 1e-9 and w2 == 0.0
    got = warp((0.45, 0.44, 0.11), SamplingConfig(temperature=0.001))
    assert got == pytest.approx([1 / (1 + w1), w1 / (1 + w1), 0.0], rel=1e-9, abs=1e-300)


def test_tiny_probabilities_keep_their_order_of_magnitude() -> None:
    """p = (1e-200, 1e-100, 1 - ...), T = 1/2: weights are the squares, 1e-400 underflows."""
    p = (1e-200, 1e-100, 1.0 - 1e-100 - 1e-200)
    got = warp(p, SamplingConfig(temperature=0.5))
    assert got[0] == 0.0 and got[1] == pytest.approx(1e-200, rel=1e-9) and got[2] == 1.0


# ----- second implementations -----------------------------------------------------


def exact_warp(p: tuple[F, ...], inv_t: int, top_k: int | None, top_p: F | None) -> tuple[F, ...]:
    """Exact warp for temperature 1/inv_t, written without reference to dsi_ref."""
    w = [x**inv_t for x in p]
    ranked = sorted(range(len(p)), key=lambda i: (-w[i], i))
    kept = ranked[:top_k] if top_k is not None else ranked
    if top_p is not None:
        mass = sum((w[i] for i in kept), F(0))
        kept = [
            i for pos, i in enumerate(kept) if sum((w[j] for j in kept[:pos]), F(0)) < top_p * mass
        ]
    z = sum((w[i] for i in kept), F(0))
    return tuple(w[i] / z if i in kept else F(0) for i in range(len(p)))


def float_warp(
    p: tuple[float, ...], t: float, top_k: int | None, top_p: float | None
) -> tuple[float, ...] | None:
    """The warp in log space; None if a near-tie makes the answer rounding-sensitive."""
    log_max = math.log(max(p))
    w = [math.exp((math.log(x) - log_max) / t) if x > 0 else 0.0 for x in p]
    ranked = sorted(range(len(p)), key=lambda i: (-w[i], i))
    if top_k is not None and top_k < len(p):
        a, b = w[ranked[top_k - 1]], w[ranked[top_k]]
        if a != b and a - b <= 1e-7 * a:
            return None
        ranked = ranked[:top_k]
    if top_p is not None:
        mass = math.fsum(w[i] for i in ranked)
        kept = []
        for pos, i in enumerate(ranked):
            ahead = math.fsum(w[j] for j in ranked[:pos])
            if abs(ahead - top_p * mass) <= 1e-7 * mass:
                return None
            if ahead < top_p * mass:
                kept.append(i)
        ranked = kept
    z = math.fsum(w[i] for i in ranked)
    return tuple(w[i] / z if i in ranked else 0.0 for i in range(len(p)))


def _random_exact(rng: random.Random) -> tuple[F, ...]:
    v = rng.randint(2, 7)
    weights = [rng.choice([0, 1, 1, 2, 3, 5, 8, 13]) for _ in range(v)]
    if sum(weights) == 0:
        weights[0] = 1
    total = sum(weights)
    return tuple(F(x, total) for x in weights)


def test_random_exact_inputs_match_the_fraction_oracle() -> None:
    rng = random.Random(6_14)
    for _ in range(3000):
        p = _random_exact(rng)
        inv_t = rng.choice([1, 2, 3])
        top_k = rng.choice([None, 1, 2, 3, len(p)])
        top_p = rng.choice([None, F(1, 3), F(1, 2), F(3, 4), F(9, 10), F(1)])
        cfg = SamplingConfig(temperature=F(1, inv_t), top_k=top_k, top_p=top_p)
        assert warp(p, cfg) == exact_warp(p, inv_t, top_k, top_p), (p, cfg)


def _random_float(rng: random.Random) -> tuple[float, ...]:
    v = rng.randint(2, 60)
    kind = rng.random()
    if kind < 0.3:  # flat: the largest entry is small (about 1/v)
        w = [1 + rng.random() for _ in range(v)]
    elif kind < 0.6:  # spread over many orders of magnitude, some tiny
        w = [10 ** rng.uniform(-300, 0) for _ in range(v)]
    else:
        w = [rng.random() ** 3 for _ in range(v)]
    if rng.random() < 0.3:
        w[rng.randrange(v)] = 0.0
    if max(w) == 0:
        w[0] = 1.0
    total = math.fsum(w)
    return tuple(x / total for x in w)


def test_random_float_inputs_match_the_log_space_oracle() -> None:
    rng = random.Random(2405_14105)
    checked = underflow_cases = 0
    while checked < 3000:
        p = _random_float(rng)
        t = rng.choice([0.002, 0.01, 0.1, 0.3, 0.7, 1.0, 1.3, 2.5, 3.0])
        top_k = rng.choice([None, None, 1, 2, 5, 20])
        top_p = rng.choice([None, None, 0.3, 0.5, 0.8, 0.95])
        want = float_warp(p, t, top_k, top_p)
        if want is None:
            continue
        got = warp(p, SamplingConfig(temperature=t, top_k=top_k, top_p=top_p))
        assert all(isinstance(x, float) for x in got)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-300), (p, t, top_k, top_p)
        checked += 1
        underflow_cases += max(p) ** (1 / t) == 0.0
    assert underflow_cases >= 100  # cases where an unscaled power is all zeros


def test_float_and_exact_paths_agree() -> None:
    """The same law on Fractions (exact) and on their float images (float path)."""
    rng = random.Random(77)
    for _ in range(1000):
        p = _random_exact(rng)
        inv_t = rng.choice([1, 2, 3])
        top_k = rng.choice([None, 2, 3])
        top_p = rng.choice([None, F(1, 2), F(3, 4)])
        exact = exact_warp(p, inv_t, top_k, top_p)
        pf = tuple(float(x) for x in p)
        want = float_warp(pf, 1 / inv_t, top_k, None if top_p is None else float(top_p))
        if want is None:  # an exact tie at a top-p boundary: floats may go either way
            continue
        got = warp(
            pf,
            SamplingConfig(
                temperature=1 / inv_t, top_k=top_k, top_p=None if top_p is None else float(top_p)
            ),
        )
        assert got == pytest.approx([float(x) for x in exact], rel=1e-12, abs=1e-15)


# ----- losslessness under combined warps, vocabulary >= 3 (exact) ------------------
# At vocabulary 2 a residual norm(max(0, p - q)) always has one token, and top-k / top-p
# leave one or two tokens, so whole bug classes (a wrong residual law, a q warped
# differently from p in a way that only matters with 2+ survivors) cannot show there.
# Grid: {SI, DSI} x pairs {mix-o1, indep, zeros} x V {3, 4} x 4 combined samplings
# (top-k = V - 1 with T in {1/2, 2, 1, 1/3} and top-p in {4/5, 2/3, 3/4, 9/10}), n = 3,
# k = 2, P = 2, prefill latencies (48 instances), plus 6 corners at V = 4, n = 4 and
# V = 5, n = 3 with other k and P; about 7 s of CPU in all. Each instance must have a
# context with 2+ residual tokens and truncation (top-k and top-p together) must change
# its target law; across the grid each single component (temperature, top-k, top-p) must
# change the law in at least a third of the instances (counted in the grid-size test:
# temperature 41, top-k 24, top-p 46 of 54), so equality is not met with a component ignored.

SAMPLING_SHAPES: dict[str, tuple[F, F]] = {  # name -> (temperature, top-p); top-k = V - 1
    "T1/2-p4/5": (F(1, 2), F(4, 5)),
    "T2-p2/3": (F(2), F(2, 3)),
    "T1-p3/4": (F(1), F(3, 4)),
    "T1/3-p9/10": (F(1, 3), F(9, 10)),
}


def combined(shape: str, v: int) -> SamplingConfig:
    t, p = SAMPLING_SHAPES[shape]
    return SamplingConfig(temperature=t, top_k=v - 1, top_p=p)


COMBINED_GRID = [
    (alg, pair, v, s, 3, 2, 2)
    for v in (3, 4)
    for pair in ("mix-o1", "indep", "zeros")
    for s in SAMPLING_SHAPES
    for alg in ("si", "dsi")
] + [
    ("si", "mix-o1", 4, "T1/2-p4/5", 4, 3, 1),
    ("dsi", "mix-o1", 4, "T1/2-p4/5", 4, 3, 3),
    ("dsi", "indep", 4, "T1-p3/4", 4, 1, 2),
    ("si", "indep", 5, "T1/3-p9/10", 3, 2, 1),
    ("dsi", "indep", 5, "T1/3-p9/10", 3, 2, 2),
    ("dsi", "mix-o1", 5, "T2-p2/3", 3, 3, 4),
]


def _combined_case(
    pair: str, v: int, sampling: str, n: int, k: int, servers: int
) -> tuple[LanguageModel, LanguageModel, RunConfig]:
    target, drafter = PAIRS[pair](v)
    tl, dl = LATENCIES["prefill"]
    cfg = RunConfig(
        max_tokens=n,
        k=k,
        servers=servers,
        sampling=combined(sampling, v),
        target_latency=tl,
        drafter_latency=dl,
    )
    return target, drafter, cfg


def _binds(target: LanguageModel, cfg: RunConfig, part: SamplingConfig) -> bool:
    return exact_target_law(target, replace(cfg, sampling=part)) != exact_target_law(target, cfg)


@pytest.mark.parametrize(
    ("alg", "pair", "v", "sampling", "n", "k", "servers"),
    [pytest.param(*c, id="-".join(map(str, c))) for c in COMBINED_GRID],
)
def test_combined_warps_are_lossless_exactly(
    alg: str, pair: str, v: int, sampling: str, n: int, k: int, servers: int
) -> None:
    target, drafter, cfg = _combined_case(pair, v, sampling, n, k, servers)
    cs = cfg.sampling
    widest = 0
    for ctx in [(), *((t,) for t in range(v))]:
        pw, qw = warp(target.next_dist(ctx), cs), warp(drafter.next_dist(ctx), cs)
        if any(a > b for a, b in zip(pw, qw, strict=True)):
            widest = max(widest, sum(1 for x in residual(pw, qw) if x > 0))
    assert widest >= 2, "no context has a residual with two or more tokens"
    assert _binds(target, cfg, replace(cs, top_k=None, top_p=None))
    want = exact_target_law(target, cfg)
    assert exact_output_law(alg, target, drafter, cfg) == want


def test_combined_grid_size_and_every_component_binds() -> None:
    assert len(COMBINED_GRID) == 54
    counts = {"temperature": 0, "top_k": 0, "top_p": 0}
    for _, pair, v, sampling, n, k, servers in COMBINED_GRID:
        target, _, cfg = _combined_case(pair, v, sampling, n, k, servers)
        cs = cfg.sampling
        counts["temperature"] += _binds(target, cfg, replace(cs, temperature=F(1)))
        counts["top_k"] += _binds(target, cfg, replace(cs, top_k=None))
        counts["top_p"] += _binds(target, cfg, replace(cs, top_p=None))
    assert min(counts.values()) >= len(COMBINED_GRID) // 3, counts


def test_top_p_one_keeps_mass_that_rounding_hides() -> None:
    """top-p = 1 is no truncation, even where a float prefix sum already equals the total.

    0.75 + 0.25 + 1e-30 == 1.0 in floats, so a warp that ran the top-p loop at top-p = 1
    (mutant `top_p < 1` -> `top_p <= 1`) would stop after two tokens and drop the third.
    """
    p = (0.75, 0.25, 1e-30)
    assert 0.75 + 0.25 + 1e-30 == 1.0
    assert warp(p, SamplingConfig(top_p=1.0)) == p
    assert warp(p, SamplingConfig(top_p=1)) == p
