"""Verifier and DSIScheduler inputs: typed errors (dsi_ref.errors) naming the bad value.

`Verifier.verify` is the one place every algorithm's p, q and draft meet, and the
tensor twin's inputs are checked against it, so it refuses what it cannot verify:
a draft that is not an int (InvalidDraft, not a TypeError from indexing), and NaN,
infinite, negative or non-numeric entries of p or q (InvalidDistribution naming the
position, the entry and its value). DSIScheduler checks its own size arguments
(InvalidConfig) and the number of distributions a task returns (InvalidDistribution).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction as F

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.errors import DSIError, InvalidConfig, InvalidDistribution, InvalidDraft
from dsi_ref.randomness import SeededChooser
from dsi_ref.scheduler import DSIScheduler, StartTask
from dsi_ref.verify import Verifier

NAN, INF = math.nan, math.inf
SAMPLE = Verifier(SeededChooser(0), greedy=False)
GREEDY = Verifier(SeededChooser(0), greedy=True)
P = (0.25, 0.25, 0.5)
Q = (0.5, 0.25, 0.25)


def _sched(**kw: object) -> Callable[[], object]:
    args: dict[str, object] = {"max_tokens": 4, "k": 2, "servers": 2}
    args.update(kw)
    return lambda: DSIScheduler(
        args["max_tokens"],  # type: ignore[arg-type]
        args["k"],  # type: ignore[arg-type]
        args["servers"],  # type: ignore[arg-type]
        SAMPLE,
        F(1),
        F(1),
    )


def _v(
    position: int, p: object, q: object, draft: object, greedy: bool = False
) -> Callable[[], object]:
    rule = GREEDY if greedy else SAMPLE
    return lambda: rule.verify(position, p, q, draft)  # type: ignore[arg-type]


BAD_DIST = InvalidDistribution
Case = tuple[str, Callable[[], object], type[DSIError], tuple[str, ...]]
CASES: list[Case] = [
    # drafts that are not token ids: each names the value
    ("draft-float", _v(3, P, Q, 1.0), InvalidDraft, ("1.0", "position 3")),
    ("draft-str", _v(3, P, Q, "1"), InvalidDraft, ("'1'",)),
    ("draft-none", _v(3, P, Q, None), InvalidDraft, ("None",)),
    ("draft-bool", _v(3, P, Q, True), InvalidDraft, ("True",)),
    ("draft-float-greedy", _v(3, P, Q, 0.0, greedy=True), InvalidDraft, ("0.0",)),
    # entries of p or q that are not probabilities: position, entry and value named
    ("p-nan", _v(7, (0.5, NAN, 0.5), Q, 0), BAD_DIST, ("position 7", "p[1]", "nan")),
    ("q-nan", _v(7, P, (0.5, 0.5, NAN), 0), BAD_DIST, ("q[2]", "nan")),
    ("p-inf", _v(2, (INF, 0.0, 0.0), Q, 0), BAD_DIST, ("p[0]", "inf")),
    ("q-minus-inf", _v(2, P, (0.5, -INF, 0.5), 0), BAD_DIST, ("q[1]", "-inf")),
    ("p-negative", _v(5, (1.25, -0.25, 0.0), Q, 0), BAD_DIST, ("p[1]", "-0.25")),
    ("q-negative-exact", _v(5, (F(1), F(0)), (F(3, 2), F(-1, 2)), 0), BAD_DIST, ("q[1]", "-1/2")),
    ("p-not-a-number", _v(5, (0.5, "x", 0.5), Q, 0), BAD_DIST, ("p[1]", "'x'")),
    ("greedy-p-nan", _v(1, (NAN, 0.5, 0.5), Q, 0, greedy=True), BAD_DIST, ("p[0]", "nan")),
    # the scheduler's own arguments
    ("sched-k-zero", _sched(k=0), InvalidConfig, ("lookahead k", "0")),
    ("sched-k-float", _sched(k=1.5), InvalidConfig, ("lookahead k", "1.5")),
    ("sched-k-bool", _sched(k=True), InvalidConfig, ("lookahead k", "True")),
    ("sched-servers-zero", _sched(servers=0), InvalidConfig, ("servers P", "0")),
    ("sched-servers-str", _sched(servers="2"), InvalidConfig, ("servers P", "'2'")),
    ("sched-max-tokens-negative", _sched(max_tokens=-3), InvalidConfig, ("max_tokens", "-3")),
]


@pytest.mark.parametrize(
    ("call", "error", "texts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_typed_error_naming_the_value(
    call: Callable[[], object], error: type[DSIError], texts: tuple[str, ...]
) -> None:
    with pytest.raises(DSIError) as info:
        call()
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    for text in texts:
        assert text in str(info.value), f"{text!r} not in {str(info.value)!r}"


def test_wrong_number_of_distributions_is_a_typed_error() -> None:
    sched = DSIScheduler.from_config(RunConfig(max_tokens=3, k=1, servers=1), SAMPLE)
    (task,) = [c for c in sched.start() if isinstance(c, StartTask)]
    with pytest.raises(InvalidDistribution, match=rf"task {task.task_id} .* 3 distributions"):
        sched.on_task_done(task.task_id, [P, P, P])  # it scores one position


def test_a_mutated_list_is_checked_again() -> None:
    # Tuples that passed are remembered by identity; a list may change, so it is rescanned.
    p = [0.25, 0.25, 0.5]
    assert SAMPLE.verify(0, p, Q, 0)[0] in (0, 1, 2)  # type: ignore[arg-type]
    p[1] = NAN
    with pytest.raises(InvalidDistribution, match=r"p\[1\] = nan"):
        SAMPLE.verify(0, p, Q, 0)  # type: ignore[arg-type]


def test_good_input_is_accepted() -> None:
    # Positive controls: zeros, exact Fractions, a one-hot q, the largest valid draft.
    assert SAMPLE.verify(0, (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), 2) == (1, False)
    assert SAMPLE.verify(0, (F(1, 2), F(1, 2)), (F(1, 2), F(1, 2)), 1) == (1, True)
    assert GREEDY.verify(9, P, Q, 2) == (2, True)
    DSIScheduler(1, 1, 1, SAMPLE, F(1), F(1))
