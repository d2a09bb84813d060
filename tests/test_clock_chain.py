"""dsi_ref.chain: O(1) views of an append-only token chain behave as frozen tuples.

A list model runs beside the chain: every view taken must keep showing the tokens
it showed when it was taken, whatever is appended or forked later, and must read
(len, index, slices, iteration, to_tuple, equality, hash) exactly like that tuple.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsi_ref.chain import BLOCK, ChainView, TokenChain, as_tuple, with_prompt

# ops: ("append", token) | ("fork", fraction of the length) | ("view", fraction)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 9)),
        st.tuples(st.just("append_many"), st.integers(1, 2 * BLOCK + 3)),
        st.tuples(st.just("fork"), st.floats(0, 1)),
        st.tuples(st.just("view"), st.floats(0, 1)),
    ),
    max_size=40,
)
SLICES = st.tuples(
    st.one_of(st.none(), st.integers(-600, 600)),
    st.one_of(st.none(), st.integers(-600, 600)),
    st.one_of(st.none(), st.integers(-3, 3).filter(lambda s: s != 0)),
)


def _reads_like(
    view: ChainView, expect: tuple[int, ...], sl: tuple[int | None, ...], prompt_len: int = 0
) -> None:
    assert len(view) == len(expect)
    assert tuple(view) == expect
    assert view.to_tuple() == expect and as_tuple(view) == expect  # the block-copy path
    assert view == expect and view == list(expect) and expect == view
    assert hash(view) == hash(expect)
    for i in (0, len(expect) // 2, len(expect) - 1, -1, -len(expect)):
        if -len(expect) <= i < len(expect):
            assert view[i] == expect[i]
    with pytest.raises(IndexError):
        view[len(expect)]
    s = slice(*sl)
    assert tuple(view[s]) == expect[s]
    for j in (0, len(expect) // 3, len(expect)):
        head = view[:j]
        assert head == expect[:j]
        # O(1) past the prompt (a slice inside the prompt copies only the prompt)
        assert isinstance(head, ChainView) or j < prompt_len


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(ops=OPS, sl=SLICES, prompt=st.tuples(st.integers(0, 9)).map(tuple) | st.just(()))
def test_views_are_frozen_tuples(
    ops: list[tuple[str, object]], sl: tuple[int | None, ...], prompt: tuple[int, ...]
) -> None:
    chain, model = TokenChain(), []
    taken: list[tuple[ChainView, tuple[int, ...]]] = []
    counter = 0
    for op, arg in ops:
        if op == "append":
            assert isinstance(arg, int)
            chain.append(arg)
            model.append(arg)
        elif op == "append_many":
            assert isinstance(arg, int)
            for _ in range(arg):
                counter += 1
                chain.append(counter % 7)
                model.append(counter % 7)
        elif op == "fork":
            assert isinstance(arg, float)
            at = int(arg * len(model))
            chain = chain.fork(at)  # the owner's rejection: a new chain, old views intact
            model = model[:at]
        else:
            assert isinstance(arg, float)
            at = int(arg * len(model))
            taken.append((chain.view(at), tuple(model[:at])))
        assert len(chain) == len(model)
    taken.append((chain.view(), tuple(model)))
    for view, expect in taken:
        _reads_like(view, expect, sl)
        with_p = with_prompt(prompt, view, len(view))
        assert isinstance(with_p, ChainView)  # O(1): no copy of the chain
        _reads_like(with_p, prompt + expect, sl, len(prompt))
        half = len(expect) // 2
        assert tuple(with_prompt(prompt, view, half)) == prompt + expect[:half]
        assert tuple(with_prompt(prompt, list(expect), half)) == prompt + expect[:half]


def test_bad_lengths_name_the_value() -> None:
    chain = TokenChain([1, 2, 3])
    with pytest.raises(IndexError, match="5"):
        chain.view(5)
    with pytest.raises(IndexError, match="-1"):
        chain.fork(-1)
    assert chain.view(2) != (1, 2, 3) and chain.view(2) == (1, 2)
    assert chain.view(2) != "12"
