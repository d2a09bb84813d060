"""Shared instances for the reference benchmarks (`make bench`; CI passes --benchmark-skip).

The instances are fixed (seeded) so that runs compare across commits; the numbers
and the machine they were taken on are in docs/performance.md.
"""

from __future__ import annotations

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MixtureDrafter, random_markov
from dsi_ref.prob import total_variation

TARGET_ACCEPTANCE = 0.8  # the paper's "good drafter" regime


# (target, drafter)
Pair = tuple[LanguageModel, LanguageModel]


@pytest.fixture(scope="session")
def sampled_pair() -> Pair:
    """Float Markov target, vocabulary 32; MixtureDrafter with acceptance about 0.8.

    The acceptance at a context is 1 - noise * TV(p, r), so noise = 0.2 / mean TV
    puts the mean over contexts at 0.8 (the benchmark checks the realised rate).
    """
    target = random_markov(32, 1, seed=0, exact=False, name="target")
    r = random_markov(32, 0, seed=1000, exact=False, name="noise").next_dist(())
    mean_tv = sum(float(total_variation(target.next_dist((c,)), r)) for c in range(32)) / 32
    noise = (1 - TARGET_ACCEPTANCE) / mean_tv
    return target, MixtureDrafter(target, noise, r)


@pytest.fixture(scope="session")
def sampled_cfg() -> RunConfig:
    """1,000 tokens, k=5, P=7; target 1 per pass, drafter 1/10 (so k*t_d < t_t)."""
    return RunConfig(
        max_tokens=1000,
        k=5,
        servers=7,
        seed=1,
        target_latency=Latency.of(1, 1, "target"),
        drafter_latency=Latency.of("1/10", "1/10", "drafter"),
    )


@pytest.fixture(scope="session")
def exact_pair() -> Pair:
    """An exact (Fraction) random_markov pair with vocabulary 3, for exact enumeration."""
    return (
        random_markov(3, 1, seed=7, exact=True, name="target"),
        random_markov(3, 1, seed=9, exact=True, name="drafter"),
    )
