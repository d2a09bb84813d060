"""Exact losslessness: the output law of the real code equals the target law, as Fractions.

For each instance below, `dsi_ref.exact.exact_law` enumerates every path of the
real implementation's keyed randomness and the resulting law of the committed
tokens is compared with `dsi_ref.law.target_law` by == on dicts (zero entries
dropped). A pass is a proof of losslessness for that instance and nothing more.

Model pairs (all exact Fraction tables; tests/lossless_cases.py):
  mix-o0/o1/o2  random_markov(V, order, seed=1, exact=True) target with the drafter
                q = p/2 + r/2, r a random full-support distribution;
  indep         order-1 random target, unrelated order-2 random drafter;
  zeros         hand-made order-1 tables (V = 2, 3, 4): at every context q = 0 on
                a token where p > 0 or p = 0 on a token where q > 0, and both kinds
                occur in every pair.
Samplings: T1 (temperature 1), greedy, T1/2, T2 (exact Fraction arithmetic; T2 goes
through a float square root but target and drafter share it), topk2, topp1/2, and
topp3/4 (top-p 1/2 leaves 1 to 4 outcomes on these tables, a point mass at V=2, so
topp3/4 adds a top-p setting with several outcomes at V >= 3).
Latencies (target, drafter) as (TTFT, TPOT): fast (1,1)/(1/10,1/10), equal
(1,1)/(1,1), prefill (3,1)/(1/2,2/5).

Instances covered (V = vocabulary, n = new tokens, k = lookahead, P = servers):
  1. DSI schedule grid, V=2, full cross product: pairs {mix-o1, zeros} x samplings
     {T1, greedy, T1/2, T2, topp1/2} x n 1..4 x k 1..4 x P 1..4 x 3 latencies
     (1920 instances).
  2. Models x samplings x proposal grid, V in {2, 3}: {SI, DSI} x 5 pairs x 7 samplings
     x point_mass_proposal {off, on}, n=3, k=2, P=2, prefill latencies (280 instances).
  3. SI grid, V=2: 5 pairs x 7 samplings x n 1..4 x k 1..4, fast latencies (560).
  4. non-SI, V in {2, 3, 4}: targets of the 5 pairs x 7 samplings x n 1..4 (420).
  5. A sampled subset at V in {3, 4}: 36 instances drawn by random.Random(14105)
     uniformly from {SI, DSI} x 5 pairs x 7 samplings x point_mass {off, on} x n (1..4
     at V=3 without point mass, else 1..3) x k 1..4 x P 1..4 x 3 latencies, plus the corners
     V=4, n=4, k=2, P=2 (SI and DSI, mix-o1, T1) and V=3, n=4, k=4, P=4 (DSI, zeros,
     T1, prefill). The parametrize ids list each one.
  6. Prompts, V=2: {non-SI, SI, DSI} x pairs {mix-o1, mix-o2, zeros} x {T1, greedy} x
     prompt {(1,), (0, 1)}, n=3, k=2, P=2, prefill latencies (36 instances).
"""

from __future__ import annotations

import itertools
import random

import pytest
from lossless_cases import PAIRS, SAMPLINGS, Instance, check_exact, exact_target_law

LATS = ("fast", "equal", "prefill")

SCHEDULE_GRID = [
    Instance("dsi", pair, 2, s, n, k, p, lat)
    for pair in ("mix-o1", "zeros")
    for s in ("T1", "greedy", "T1/2", "T2", "topp1/2")
    for n, k, p, lat in itertools.product(range(1, 5), range(1, 5), range(1, 5), LATS)
]

MODEL_GRID = [
    Instance(alg, pair, v, s, 3, 2, 2, "prefill", pm)
    for v in (2, 3)
    for alg in ("si", "dsi")
    for pair in PAIRS
    for s in SAMPLINGS
    for pm in (False, True)
]

SI_GRID = [
    Instance("si", pair, 2, s, n, k, 1, "fast")
    for pair in PAIRS
    for s in SAMPLINGS
    for n, k in itertools.product(range(1, 5), range(1, 5))
]

NONSI_GRID = [
    Instance("nonsi", pair, v, s, n, 1, 1, "fast")
    for v in (2, 3, 4)
    for pair in PAIRS
    for s in SAMPLINGS
    for n in range(1, 5)
]


def _sampled_subset(count: int) -> list[Instance]:
    rng = random.Random(14105)
    out: list[Instance] = []
    for _ in range(count):
        v = rng.choice((3, 4))
        alg, pair, sampling = (
            rng.choice(("si", "dsi")),
            rng.choice(list(PAIRS)),
            rng.choice(list(SAMPLINGS)),
        )
        pm = rng.choice((False, True))
        # Enumeration cost: point-mass proposals reject far more often, so more paths.
        n = rng.randint(1, 4 if v == 3 and not pm else 3)
        k, servers, lat = rng.randint(1, 4), rng.randint(1, 4), rng.choice(LATS)
        out.append(Instance(alg, pair, v, sampling, n, k, servers, lat, pm))
    return out


LARGE = [
    *_sampled_subset(36),
    Instance("si", "mix-o1", 4, "T1", 4, 2, 2, "fast"),
    Instance("dsi", "mix-o1", 4, "T1", 4, 2, 2, "fast"),
    Instance("dsi", "zeros", 3, "T1", 4, 4, 4, "prefill"),
]


PROMPT_GRID = [
    Instance(alg, pair, 2, s, 3, 2, 2, "prefill", prompt=prompt)
    for alg in ("nonsi", "si", "dsi")
    for pair in ("mix-o1", "mix-o2", "zeros")
    for s in ("T1", "greedy")
    for prompt in ((1,), (0, 1))
]


def _params(insts: list[Instance]) -> list[object]:
    return [pytest.param(i, id=i.id) for i in insts]


@pytest.mark.parametrize("inst", _params(SCHEDULE_GRID))
def test_dsi_schedule_grid(inst: Instance) -> None:
    check_exact(inst)


@pytest.mark.parametrize("inst", _params(MODEL_GRID))
def test_models_samplings_proposals(inst: Instance) -> None:
    check_exact(inst)


@pytest.mark.parametrize("inst", _params(SI_GRID))
def test_si_grid(inst: Instance) -> None:
    check_exact(inst)


@pytest.mark.parametrize("inst", _params(NONSI_GRID))
def test_nonsi_grid(inst: Instance) -> None:
    check_exact(inst)


@pytest.mark.parametrize("inst", _params(LARGE))
def test_larger_vocabularies(inst: Instance) -> None:
    check_exact(inst)


@pytest.mark.parametrize("inst", _params(PROMPT_GRID))
def test_prompts(inst: Instance) -> None:
    check_exact(inst)


def test_grid_sizes_match_the_docstring() -> None:
    assert (len(SCHEDULE_GRID), len(MODEL_GRID), len(SI_GRID), len(NONSI_GRID)) == (
        1920,
        280,
        560,
        420,
    )
    assert (len(LARGE), len(PROMPT_GRID)) == (39, 36)


def test_the_zero_pairs_have_the_zeros_they_claim() -> None:
    """Each context has a support mismatch and both directions occur, else the pair is vacuous."""
    for v in (2, 3, 4):
        target, drafter = PAIRS["zeros"](v)
        q_misses = p_misses = False
        for ctx in [(), *((t,) for t in range(v))]:
            p, q = target.next_dist(ctx), drafter.next_dist(ctx)
            a = any(x > 0 and y == 0 for x, y in zip(p, q, strict=True))
            b = any(x == 0 and y > 0 for x, y in zip(p, q, strict=True))
            assert a or b, (v, ctx)
            q_misses, p_misses = q_misses or a, p_misses or b
        assert q_misses and p_misses, v


def test_sampling_instances_are_not_degenerate() -> None:
    """Non-greedy target laws put mass on several sequences: equality is not trivially met."""
    for name in SAMPLINGS:
        if name == "greedy":
            continue
        inst = Instance("nonsi", "mix-o1", 3, name, 3)
        least = 2 if name == "topp1/2" else 8
        assert len(exact_target_law(inst.models()[0], inst.config())) >= least, name
