"""The exact enumerator and the keyed sampler agree on what a key means.

Each key is one uniform U: a choice returns the cdf cell that U falls in, and a
second question under the same key is answered by the same U. These tests pin
that contract down on cases whose law can be written by hand.
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from dsi_ref.errors import EnumerationError
from dsi_ref.exact import exact_law
from dsi_ref.randomness import Chooser, Key, Purpose, SeededChooser

K0 = Key(0, Purpose.DRAFT)
K1 = Key(1, Purpose.DRAFT)


def test_single_choice_law_is_the_weights() -> None:
    w = (F(1, 6), F(1, 2), F(1, 3))
    assert exact_law(lambda ch: ch.choice(K0, w)) == {0: w[0], 1: w[1], 2: w[2]}


def test_distinct_keys_are_independent() -> None:
    w = (F(1, 4), F(3, 4))
    law = exact_law(lambda ch: (ch.choice(K0, w), ch.choice(K1, w)))
    assert law == {(a, b): w[a] * w[b] for a in (0, 1) for b in (0, 1)}


def test_reused_key_shares_one_uniform() -> None:
    # Two questions about one U: U < 1/2 and U < 3/4. They are nested events,
    # so (True, False) is impossible and (False, True) has mass 1/4.
    def run(ch: Chooser) -> tuple[bool, bool]:
        return ch.bernoulli(K0, F(1, 2)), ch.bernoulli(K0, F(3, 4))

    assert exact_law(run) == {
        (True, True): F(1, 2),
        (False, True): F(1, 4),
        (False, False): F(1, 4),
    }


def test_reused_key_choice_cuts_remaining_interval() -> None:
    # First cut [0,1) at 1/3; then ask with weights (1/2, 1/2): U in [0,1/3) -> 0,
    # U in [1/3,1/2) -> 0, U in [1/2,1) -> 1.
    def run(ch: Chooser) -> tuple[int, int]:
        return ch.choice(K0, (F(1, 3), F(2, 3))), ch.choice(K0, (F(1, 2), F(1, 2)))

    assert exact_law(run) == {(0, 0): F(1, 3), (1, 0): F(1, 6), (1, 1): F(1, 2)}


def test_sampler_follows_the_same_cells() -> None:
    ch = SeededChooser(7)
    for pos in range(200):
        key = Key(pos, Purpose.ACCEPT)
        u = ch.uniform(key)
        assert ch.bernoulli(key, F(1, 2)) == (u < 0.5)
        assert ch.choice(key, (0.25, 0.25, 0.5)) == (0 if u < 0.25 else 1 if u < 0.5 else 2)


def test_sampler_is_a_pure_function_of_seed_and_key() -> None:
    a, b = SeededChooser(3), SeededChooser(3)
    keys = [Key(i, p) for i in range(50) for p in Purpose]
    assert [a.uniform(k) for k in keys] == [b.uniform(k) for k in reversed(keys)][::-1]
    assert len({a.uniform(k) for k in keys}) == len(keys)
    assert SeededChooser(4).uniform(keys[0]) != a.uniform(keys[0])


def test_zero_weight_outcome_is_never_chosen() -> None:
    law = exact_law(lambda ch: ch.choice(K0, (F(0), F(1, 2), F(0), F(1, 2))))
    assert law == {1: F(1, 2), 3: F(1, 2)}
    ch = SeededChooser(0)
    assert all(ch.choice(Key(i, Purpose.DRAFT), (0.0, 1.0, 0.0)) == 1 for i in range(100))


@pytest.mark.parametrize(
    ("weights", "needle"),
    [((0.5, 0.5), "Fraction"), ((F(1, 2), F(1, 3)), "5/6")],
    ids=["float-weights", "not-summing-to-one"],
)
def test_enumerator_rejects_inexact_weights(weights: tuple[F | float, ...], needle: str) -> None:
    with pytest.raises(EnumerationError, match=needle):
        exact_law(lambda ch: ch.choice(K0, weights))


def test_enumerator_path_cap_is_enforced() -> None:
    w = tuple(F(1, 4) for _ in range(4))

    def run(ch: Chooser) -> tuple[int, ...]:
        return tuple(ch.choice(Key(i, Purpose.DRAFT), w) for i in range(6))

    with pytest.raises(EnumerationError, match="max_paths=100"):
        exact_law(run, max_paths=100)
