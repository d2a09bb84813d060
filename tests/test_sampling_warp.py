"""Temperature, top-k and top-p: exact on Fractions, and what the docs say they do."""

from __future__ import annotations

from fractions import Fraction as F

from dsi_ref.sampling import SamplingConfig, warp

P = (F(1, 10), F(2, 10), F(3, 10), F(4, 10))


def test_identity_at_temperature_one() -> None:
    assert warp(P, SamplingConfig()) == P


def test_temperature_half_squares_exactly() -> None:
    sq = [x * x for x in P]
    assert warp(P, SamplingConfig(temperature=F(1, 2))) == tuple(x / sum(sq) for x in sq)


def test_temperature_two_is_a_normalised_square_root() -> None:
    out = warp(P, SamplingConfig(temperature=2))
    assert sum(out) == 1 and all(isinstance(x, F) for x in out)
    roots = [float(x) ** 0.5 for x in P]
    assert all(abs(float(o) - r / sum(roots)) < 1e-12 for o, r in zip(out, roots, strict=True))


def test_top_k_keeps_the_k_largest_ties_to_lowest_index() -> None:
    assert warp(P, SamplingConfig(top_k=2)) == (0, 0, F(3, 7), F(4, 7))
    flat = (F(1, 4),) * 4
    assert warp(flat, SamplingConfig(top_k=1)) == (1, 0, 0, 0)


def test_top_p_keeps_the_smallest_head_reaching_p() -> None:
    assert warp(P, SamplingConfig(top_p=F(1, 2))) == (0, 0, F(3, 7), F(4, 7))
    assert warp(P, SamplingConfig(top_p=F(4, 10))) == (0, 0, 0, 1)
    assert warp(P, SamplingConfig(top_p=1)) == P


def test_floats_stay_floats_and_small_temperature_does_not_underflow() -> None:
    p = (1e-300, 1.0 - 1e-300)
    out = warp(p, SamplingConfig(temperature=0.01))
    assert out == (0.0, 1.0)
    assert all(isinstance(x, float) for x in warp((0.25, 0.75), SamplingConfig(temperature=0.5)))


def test_greedy_leaves_distributions_alone() -> None:
    assert warp(P, SamplingConfig(greedy=True)) == P
