"""The runner's DSI output law equals the target's, statistically, on a real model pair.

Model: gpu_runner.tiny.tiny_vocab_pair(vocab=4), float64 Llamas built in code. The
target's exact joint law of the first two tokens is computed from the model itself
(full forwards, float64, dsi_ref's warp): 16 cells. N = 3,000 runner runs of DSI
(k = 1, P = 2, one seed each, seeds 0..N-1) give the observed counts.

Test: Pearson chi-square, cells with expected count < 5 merged into one.
False-alarm level alpha = 1e-6. Power: for any law at total variation >= 0.10 from
the target's, the noncentrality is lambda = N * sum (o - e)^2 / e >= 4 N TV^2 = 120
(Cauchy-Schwarz), and P(noncentral chi2(df, 120) > critical value) >= 0.9999 for
df <= 15 (computed in the test and asserted as a precondition, so a change of model
that forces merges cannot silently weaken it). The exact, token-for-token guarantee
is carried by tests/test_gpu_runner.py (runner = dsi_ref on the same models, whose
law the exact enumerations of tests/test_exact_lossless.py prove); this test checks
the runner end to end on a law it does not share code with.

Negative control: the drafter reports q at twice the temperature it sampled from (the
most common real-world bug, transformers issue #32867); the same test must reject it.
"""

from __future__ import annotations

import itertools

import pytest
from gpu_fixtures import torch

pytest.importorskip("scipy")
from scipy.stats import chi2, ncx2

from dsi_ref.sampling import SamplingConfig, warp
from gpu_runner.adapter import TorchLM
from gpu_runner.api import RunnerConfig, make_rule, run
from gpu_runner.passes import PassMaker
from gpu_runner.tiny import tiny_vocab_pair
from gpu_runner.warp import warp as gpu_warp

V = 4
N = 3000
ALPHA = 1e-6
TV = 0.10
PROMPT = [1, 2]
SAMPLING = SamplingConfig(temperature=1)
TARGET, DRAFTER = tiny_vocab_pair(vocab=V, seed=0, dtype=torch.float64)


def exact_joint() -> dict[tuple[int, int], float]:
    lm = TorchLM(TARGET, PROMPT, V)
    p0 = warp(lm.next_dist([]), SAMPLING)
    out = {}
    for a in range(V):
        p1 = warp(lm.next_dist([a]), SAMPLING)
        for b in range(V):
            out[(a, b)] = float(p0[a]) * float(p1[b])
    return out


class WrongTemperatureQ(PassMaker):
    """Samples the draft from q at T but hands the verifier q at 2T."""

    def draft(self, worker, chain, position):  # type: ignore[no-untyped-def]
        token, _ = super().draft(worker, chain, position)
        raw = worker.probs(chain, position, position)
        q_wrong = gpu_warp(raw, SamplingConfig(temperature=2 * SAMPLING.temperature))[0]
        return token, q_wrong


def counts(faulty: bool) -> dict[tuple[int, int], int]:
    c = dict.fromkeys(itertools.product(range(V), repeat=2), 0)
    for seed in range(N):
        cfg = RunnerConfig(max_new_tokens=2, k=1, servers=2, seed=seed, sampling=SAMPLING)
        passes = None
        if faulty:
            passes = WrongTemperatureQ(SAMPLING, make_rule(cfg, V), None)
        toks = run(TARGET, DRAFTER, PROMPT, cfg, passes=passes).tokens
        c[(toks[0], toks[1])] += 1
    return c


def chi_square(
    obs: dict[tuple[int, int], int], law: dict[tuple[int, int], float]
) -> tuple[float, int]:
    """(statistic, df) after merging the cells expected fewer than 5 times into one."""
    big = [c for c in law if N * law[c] >= 5]
    small = [c for c in law if N * law[c] < 5]
    cells = [(N * law[c], obs[c]) for c in big]
    if small:
        cells.append((N * sum(law[c] for c in small), sum(obs[c] for c in small)))
    stat = sum((o - e) ** 2 / e for e, o in cells)
    return stat, len(cells) - 1


LAW = exact_joint()


def _critical(df: int) -> float:
    crit = float(chi2.ppf(1 - ALPHA, df))
    power = float(ncx2.sf(crit, df, 4 * N * TV**2))
    assert power >= 0.999, f"power {power} at TV {TV} with df {df}: the design no longer holds"
    return crit


def test_runner_dsi_law_equals_target_law() -> None:
    assert abs(sum(LAW.values()) - 1) < 1e-12
    stat, df = chi_square(counts(faulty=False), LAW)
    assert stat < _critical(df), f"chi2 = {stat:.1f} on {df} df rejects the target law"


def test_negative_control_wrong_temperature_q_is_rejected() -> None:
    stat, df = chi_square(counts(faulty=True), LAW)
    assert stat > _critical(df), f"chi2 = {stat:.1f} on {df} df: the planted bug went unseen"
