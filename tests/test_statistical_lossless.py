"""Statistical losslessness at vocabulary 8: the joint law of the first 3 tokens.

Settings (tests/lossless_cases.py `stat_settings`): target random_markov(8, 1, seed=0,
exact=False); drafter q = p/2 + r/2 with r a random full-support distribution
(acceptance rate 1 - TV(p, q) per context: 0.77-0.94 at T1, 0.50-0.93 at T1/2-topk4);
k=3, P=3, fast latencies, max_tokens=3; sampling T1 (temperature 1) and T1/2-topk4
(temperature 1/2 then top-k 4). SI and DSI are each tested on both.

Samples. Run i uses RunConfig(seed=SEED_BASE + i), i = 0..N-1. All randomness of a run
is keyed_uniform(seed, key), so the runs are independent draws exactly when the
uniforms of different seeds are; `test_keyed_uniforms_*` check that (uniformity of each
key used in a 3-token run over seeds, and pairwise independence within and across
seeds), with a negative control each.

Test (`chi_square_lossless`, the same function the negative controls call). Pearson's
X^2 = sum (O - E)^2 / E over the outcomes with E = N p >= 5, plus one pooled cell for
the outcomes with 0 < E < 5. Reject if the p-value under chi^2(df), df = cells - 1, is
below alpha = 1e-6, or if any sample is an outcome of target probability 0 (the real
code cannot produce one, so this adds no false alarms).

Power and N. Let d = q' - p be the difference between the tested law q' and the target
law p on the test's cells. Under q', X^2 is approximately noncentral chi^2(df, lambda)
with lambda = N sum d_j^2 / p_j (the standard local-alternative approximation). By
Cauchy-Schwarz, (sum |d_j|)^2 <= (sum d_j^2 / p_j)(sum p_j), so lambda >= 4 N TV_cells^2,
with equality when q' moves mass TV from a set of null mass 1/2 to its complement: this
is the worst case over ALL alternatives at a given TV, whatever the number of cells.
Pooling can hide at most the pooled null mass m (the negative parts of d inside the
pool are at most p there), so TV_cells >= TV - m. The power P(ncx2(df, lambda) > crit)
increases with lambda and decreases with df, so with df <= (positive outcomes) - 1 and
lambda* the noncentrality giving power 0.99 at alpha = 1e-6 (scipy.stats.ncx2),
N = ceil(lambda* / (4 (0.02 - m)^2)) gives power >= 0.99 against every alternative at
TV >= 0.02 that gives no mass to target-impossible outcomes (one that gives them mass
>= 5/N is rejected with probability >= 1 - e^-5 by the impossible-outcome rule alone;
masses in (0, 5/N) are not covered). Numbers (`design_sample_size`):
  T1:          512 outcomes, df <= 511, lambda* = 269.5, m = 2.6e-4, N = 172,826;
  T1/2-topk4:   64 outcomes, df <= 63,  lambda* = 121.8, m = 0,      N = 76,123.
`test_design_power_on_a_worst_case_alternative` checks the two approximations by
simulation: multinomial samples of size N from a near-worst-case alternative at TV 0.02
are rejected in >= 0.97 of 200 replicates (it has power 0.99 by the design, so this
fails with probability < 0.02; false alarm of that check itself) and samples from the
null are never rejected.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from lossless_cases import (
    SEED_BASE,
    STAT_ALPHA,
    STAT_TV,
    Law,
    Runner,
    chi_square_lossless,
    design_sample_size,
    pearson,
    stat_null,
    stat_settings,
)

from dsi_ref.randomness import Key, Purpose, keyed_uniform
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi

SETTINGS = stat_settings()
RUNNERS: dict[str, Runner] = {"si": run_si, "dsi": run_dsi}


@pytest.mark.parametrize("alg", ["si", "dsi"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_first_three_tokens_follow_the_target_law(setting: str, alg: str) -> None:
    s = SETTINGS[setting]
    res = chi_square_lossless(RUNNERS[alg], s.target, s.drafter, s.cfg)
    assert not res.rejects, f"{alg} {setting}: {res}"


def _null(setting: str) -> Law:
    s = SETTINGS[setting]
    return stat_null(s.target, s.cfg)


def test_design_numbers_match_the_docstring() -> None:
    sizes = {
        name: design_sample_size([float(p) for p in _null(name).values()]) for name in SETTINGS
    }
    assert sizes == {"T1": 172_826, "T1/2-topk4": 76_123}


def _worst_case_alternative(null: list[float], tv: float) -> list[float]:
    """Move mass tv from a set A of null mass about 1/2 to its complement, proportionally."""
    order = sorted(range(len(null)), key=lambda j: -null[j])
    in_a: set[int] = set()
    mass = 0.0
    for j in order:
        if mass + null[j] <= 0.5:
            in_a.add(j)
            mass += null[j]
    up, down = tv / mass, tv / (1 - mass)
    return [p * (1 + up) if j in in_a else p * (1 - down) for j, p in enumerate(null)]


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_design_power_on_a_worst_case_alternative(setting: str) -> None:
    null = _null(setting)
    outcomes = list(null)
    p = [float(null[o]) for o in outcomes]
    n = design_sample_size(p)
    alt = _worst_case_alternative(p, STAT_TV)
    assert math.isclose(sum(abs(a - b) for a, b in zip(alt, p, strict=True)) / 2, STAT_TV)
    rng = np.random.default_rng(20250)
    reps = 200
    rejected = {"null": 0, "alt": 0}
    for name, law in (("null", p), ("alt", alt)):
        for counts in rng.multinomial(n, np.array(law) / sum(law), size=reps):
            c = Counter({o: int(x) for o, x in zip(outcomes, counts, strict=True)})
            rejected[name] += pearson(c, null, n).rejects
    assert rejected["null"] == 0, rejected
    assert rejected["alt"] >= 0.97 * reps, rejected


# ----- the seeds give independent uniforms --------------------------------------
# Each check below is a level-1e-6 chi-square test on 64 cells with 76,123 seeds (power
# 0.99 at TV 0.02 by the derivation above); 12 marginal and 66 + 12 pair tests give a
# family-wise false-alarm level below 1e-4. Negative controls: U^2 for uniformity; a
# copied uniform for independence.

UNIFORM_N = 76_123
KEYS = [Key(pos, purpose) for pos in range(3) for purpose in Purpose]


def _uniform_table() -> np.ndarray:
    return np.array([[keyed_uniform(SEED_BASE + i, k) for k in KEYS] for i in range(UNIFORM_N)])


@pytest.fixture(scope="module")
def uniforms() -> np.ndarray:
    return _uniform_table()


def _chi2_uniform_cells(cells: np.ndarray, n_cells: int) -> float:
    """p-value of the counts of `cells` (ints in 0..n_cells-1) against the uniform law."""
    from scipy.stats import chisquare

    counts = np.bincount(cells, minlength=n_cells)
    return float(chisquare(counts).pvalue)


def _marginal_p(u: np.ndarray) -> float:
    return _chi2_uniform_cells(np.minimum((u * 64).astype(int), 63), 64)


def _pair_p(u: np.ndarray, v: np.ndarray) -> float:
    a, b = np.minimum((u * 8).astype(int), 7), np.minimum((v * 8).astype(int), 7)
    return _chi2_uniform_cells(a * 8 + b, 64)


def test_keyed_uniforms_are_uniform_over_seeds(uniforms: np.ndarray) -> None:
    for j, key in enumerate(KEYS):
        assert _marginal_p(uniforms[:, j]) >= STAT_ALPHA, key
    assert _marginal_p(uniforms[:, 0] ** 2) < STAT_ALPHA  # control: a biased uniform


def test_keyed_uniforms_are_independent_within_and_across_seeds(uniforms: np.ndarray) -> None:
    for a, b in itertools.combinations(range(len(KEYS)), 2):
        assert _pair_p(uniforms[:, a], uniforms[:, b]) >= STAT_ALPHA, (KEYS[a], KEYS[b])
    for j, key in enumerate(KEYS):  # seed i against seed i + 1
        assert _pair_p(uniforms[:-1, j], uniforms[1:, j]) >= STAT_ALPHA, key
    u = uniforms[:, 0]
    assert _pair_p(u, u) < STAT_ALPHA  # control: a shared uniform is caught
