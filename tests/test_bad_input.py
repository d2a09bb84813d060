"""Bad input gets a typed error from dsi_ref.errors whose message names the bad value.

Each row is (id, call, error class, text): `call()` must raise exactly that class
(not a subclass, not a TypeError/AttributeError/ZeroDivisionError from deep inside)
and the message must contain `text`, the str of the offending value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction as F
from pathlib import Path
from typing import Any

import pytest

from dsi_ref.config import RunConfig
from dsi_ref.errors import (
    DSIError,
    EnumerationError,
    InvalidConfig,
    InvalidDistribution,
    InvalidDraft,
    TraceError,
    VocabularyMismatch,
)
from dsi_ref.exact import exact_law
from dsi_ref.latency import Latency
from dsi_ref.models import MarkovModel, MixtureDrafter, random_markov
from dsi_ref.nonsi import run_nonsi
from dsi_ref.prob import check_dist
from dsi_ref.randomness import Key, Purpose, SeededChooser
from dsi_ref.sampling import SamplingConfig
from dsi_ref.si import run_si
from dsi_ref.trace import load_trace
from dsi_ref.verify import Verifier
from dsi_ref.virtual import run_dsi

NAN = math.nan
INF = math.inf
T3 = random_markov(3, 1, seed=1, exact=True, name="t3")
T4 = random_markov(4, 1, seed=2, exact=True, name="t4")
HALF = (F(1, 2), F(1, 2))
Q3 = (F(1, 2), F(1, 2), F(0))
V = Verifier(SeededChooser(0), greedy=False)
FLOAT2 = MarkovModel(2, 0, {(): (0.25, 0.75)}, name="float2")


def _markov(entry: Any, vocab: int = 2, order: int = 0, ctx: Any = ()) -> Callable[[], object]:
    return lambda: MarkovModel(vocab, order, {ctx: entry})


def _trace_file(tmp: Path, text: str) -> Path:
    path = tmp / "bad_trace.json"
    path.write_text(text)
    return path


Case = tuple[str, Callable[[], object], type[DSIError], str]

CASES: list[Case] = [
    # latencies
    ("latency-negative", lambda: Latency.of(-1), InvalidConfig, "-1"),
    ("latency-negative-fraction", lambda: Latency.of("-3/4"), InvalidConfig, "-3/4"),
    ("latency-nan", lambda: Latency.of(NAN), InvalidConfig, "nan"),
    ("latency-inf", lambda: Latency.of(1, INF), InvalidConfig, "inf"),
    ("latency-nan-string", lambda: Latency.of("nan"), InvalidConfig, "nan"),
    ("latency-bad-time-string", lambda: Latency.of("fast"), InvalidConfig, "fast"),
    ("latency-zero-denominator", lambda: Latency.of("1/0"), InvalidConfig, "1/0"),
    ("latency-none", lambda: Latency.of(None), InvalidConfig, "None"),
    ("latency-bool", lambda: Latency.of(True), InvalidConfig, "True"),
    ("tpot-zero", lambda: Latency.of(1, 0), InvalidConfig, "0"),
    ("tpot-zero-implied", lambda: Latency.of("0"), InvalidConfig, "0"),
    ("latency-direct-negative", lambda: Latency(F(-2), F(1)), InvalidConfig, "-2"),
    ("latency-direct-float", lambda: Latency(F(1), 0.5), InvalidConfig, "0.5"),  # type: ignore[arg-type]
    # run configuration
    ("k-zero", lambda: RunConfig(max_tokens=3, k=0), InvalidConfig, "0"),
    ("k-not-int", lambda: RunConfig(max_tokens=3, k=1.5), InvalidConfig, "1.5"),  # type: ignore[arg-type]
    ("k-string", lambda: RunConfig(max_tokens=3, k="2"), InvalidConfig, "2"),  # type: ignore[arg-type]
    ("servers-zero", lambda: RunConfig(max_tokens=3, servers=0), InvalidConfig, "0"),
    ("servers-bool", lambda: RunConfig(max_tokens=3, servers=True), InvalidConfig, "True"),
    ("max-tokens-zero", lambda: RunConfig(max_tokens=0), InvalidConfig, "0"),
    ("max-tokens-negative", lambda: RunConfig(max_tokens=-5), InvalidConfig, "-5"),
    ("seed-negative", lambda: RunConfig(max_tokens=3, seed=-1), InvalidConfig, "-1"),
    ("seed-float", lambda: RunConfig(max_tokens=3, seed=2.5), InvalidConfig, "2.5"),  # type: ignore[arg-type]
    ("prompt-string", lambda: RunConfig(max_tokens=3, prompt="ab"), InvalidConfig, "ab"),  # type: ignore[arg-type]
    ("prompt-negative", lambda: RunConfig(max_tokens=3, prompt=(0, -2)), InvalidConfig, "-2"),
    (
        "point-mass-not-bool",
        lambda: RunConfig(max_tokens=3, point_mass_proposal="yes"),  # type: ignore[arg-type]
        InvalidConfig,
        "yes",
    ),
    (
        "sampling-not-config",
        lambda: RunConfig(max_tokens=3, sampling="greedy"),  # type: ignore[arg-type]
        InvalidConfig,
        "greedy",
    ),
    (
        "latency-not-latency",
        lambda: RunConfig(max_tokens=3, target_latency=1),  # type: ignore[arg-type]
        InvalidConfig,
        "1",
    ),
    # prompts checked against the models' vocabulary, for every algorithm
    (
        "prompt-out-of-vocab-dsi",
        lambda: run_dsi(T3, T3, RunConfig(max_tokens=2, prompt=(7,))),
        InvalidConfig,
        "7",
    ),
    (
        "prompt-out-of-vocab-si",
        lambda: run_si(T3, T3, RunConfig(max_tokens=2, prompt=(0, 3))),
        InvalidConfig,
        "3",
    ),
    (
        "prompt-out-of-vocab-nonsi",
        lambda: run_nonsi(T3, RunConfig(max_tokens=2, prompt=(9,))),
        InvalidConfig,
        "9",
    ),
    # sampling settings
    ("temperature-zero", lambda: SamplingConfig(temperature=0), InvalidConfig, "0"),
    ("temperature-negative", lambda: SamplingConfig(temperature=-0.5), InvalidConfig, "-0.5"),
    ("temperature-nan", lambda: SamplingConfig(temperature=NAN), InvalidConfig, "nan"),
    ("temperature-inf", lambda: SamplingConfig(temperature=INF), InvalidConfig, "inf"),
    ("temperature-string", lambda: SamplingConfig(temperature="1"), InvalidConfig, "1"),  # type: ignore[arg-type]
    ("top-p-zero", lambda: SamplingConfig(top_p=0), InvalidConfig, "0"),
    ("top-p-above-one", lambda: SamplingConfig(top_p=1.5), InvalidConfig, "1.5"),
    ("top-p-nan", lambda: SamplingConfig(top_p=NAN), InvalidConfig, "nan"),
    ("top-p-negative-fraction", lambda: SamplingConfig(top_p=F(-1, 3)), InvalidConfig, "-1/3"),
    ("top-k-zero", lambda: SamplingConfig(top_k=0), InvalidConfig, "0"),
    ("top-k-float", lambda: SamplingConfig(top_k=2.0), InvalidConfig, "2.0"),  # type: ignore[arg-type]
    ("greedy-not-bool", lambda: SamplingConfig(greedy="no"), InvalidConfig, "no"),  # type: ignore[arg-type]
    # distributions
    ("dist-sum-not-one", _markov((F(1, 3), F(1, 3))), InvalidDistribution, "2/3"),
    ("dist-float-sum-not-one", _markov((0.25, 0.25)), InvalidDistribution, "0.5"),
    ("dist-nan", _markov((NAN, 1.0)), InvalidDistribution, "nan"),
    ("dist-negative", _markov((-0.5, 1.5)), InvalidDistribution, "-0.5"),
    ("dist-empty", _markov(()), InvalidDistribution, "()"),
    ("dist-not-a-sequence", _markov(None), InvalidDistribution, "None"),
    ("dist-entry-string", _markov(("a", 1)), InvalidDistribution, "a"),
    ("check-dist-inf", lambda: check_dist((INF, 0.0)), InvalidDistribution, "inf"),
    ("table-entry-wrong-length", _markov(HALF, vocab=3), VocabularyMismatch, "2"),
    (
        "default-wrong-length",
        lambda: MarkovModel(3, 0, {}, default=HALF),
        VocabularyMismatch,
        "2",
    ),
    # models
    ("vocab-zero", lambda: random_markov(0, 1, seed=0), InvalidConfig, "0"),
    ("order-negative", lambda: random_markov(2, -1, seed=0), InvalidConfig, "-1"),
    ("order-string", lambda: random_markov(2, "1", seed=0), InvalidConfig, "1"),  # type: ignore[arg-type]
    ("context-not-tuple", _markov(HALF, order=1, ctx=0), InvalidConfig, "0"),
    ("context-too-long", _markov(HALF, order=1, ctx=(0, 1)), InvalidConfig, "(0, 1)"),
    ("context-out-of-vocab", _markov(HALF, order=1, ctx=(5,)), InvalidConfig, "5"),
    (
        "table-not-a-mapping",
        lambda: MarkovModel(2, 0, [((), HALF)]),  # type: ignore[arg-type]
        InvalidConfig,
        "[((), ",
    ),
    (
        "missing-context",
        lambda: MarkovModel(2, 1, {(): HALF}).next_dist([1]),
        InvalidConfig,
        "(1,)",
    ),
    ("noise-above-one", lambda: MixtureDrafter(T3, F(3, 2), Q3), InvalidConfig, "3/2"),
    ("noise-negative", lambda: MixtureDrafter(T3, -0.1, Q3), InvalidConfig, "-0.1"),
    ("noise-nan", lambda: MixtureDrafter(T3, NAN, Q3), InvalidConfig, "nan"),
    ("noise-string", lambda: MixtureDrafter(T3, "0.5", Q3), InvalidConfig, "0.5"),  # type: ignore[arg-type]
    ("noise-dist-wrong-length", lambda: MixtureDrafter(T3, 0.5, HALF), VocabularyMismatch, "2"),
    (
        "vocab-mismatch-dsi",
        lambda: run_dsi(T3, T4, RunConfig(max_tokens=2)),
        VocabularyMismatch,
        "4",
    ),
    (
        "vocab-mismatch-si",
        lambda: run_si(T4, T3, RunConfig(max_tokens=2)),
        VocabularyMismatch,
        "3",
    ),
    # verification
    ("draft-zero-probability", lambda: V.verify(0, Q3, Q3, 2), InvalidDraft, "2"),
    ("draft-out-of-range", lambda: V.verify(0, Q3, Q3, 5), InvalidDraft, "5"),
    ("draft-negative", lambda: V.verify(0, Q3, Q3, -1), InvalidDraft, "-1"),
    ("verify-vocab-mismatch", lambda: V.verify(0, Q3, HALF, 0), VocabularyMismatch, "2"),
    # exact enumeration
    (
        "exact-law-float-weights",
        lambda: exact_law(lambda ch: ch.choice(Key(0, Purpose.DRAFT), (0.25, 0.75))),
        EnumerationError,
        "0.25",
    ),
    (
        "exact-law-float-bernoulli",
        lambda: exact_law(lambda ch: ch.bernoulli(Key(0, Purpose.ACCEPT), 0.3)),
        EnumerationError,
        "0.3",
    ),
    (
        "exact-law-weights-not-summing",
        lambda: exact_law(lambda ch: ch.choice(Key(0, Purpose.DRAFT), (F(1, 3), F(1, 3)))),
        EnumerationError,
        "2/3",
    ),
    (
        "exact-law-float-model",
        lambda: exact_law(lambda ch: run_nonsi(FLOAT2, RunConfig(max_tokens=1), chooser=ch)),
        EnumerationError,
        "0.25",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_typed_error_naming_the_value(
    call: Callable[[], object], error: type[DSIError], text: str
) -> None:
    with pytest.raises(DSIError) as info:
        call()
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert text in str(info.value), f"{text!r} not in {str(info.value)!r}"


TRACE_CASES = [
    ("trace-not-json", "{not json", "bad_trace.json"),
    ("trace-a-json-list", "[1, 2, 3]", "list"),
    ("trace-a-json-number", "42", "int"),
]


@pytest.mark.parametrize(
    ("text", "named"), [c[1:] for c in TRACE_CASES], ids=[c[0] for c in TRACE_CASES]
)
def test_malformed_trace_file(tmp_path: Path, text: str, named: str) -> None:
    path = _trace_file(tmp_path, text)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert type(info.value) is TraceError
    assert str(path) in str(info.value) and named in str(info.value)


def test_missing_trace_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(TraceError, match=r"absent\.json"):
        load_trace(path)


def test_the_table_is_broad_enough() -> None:
    # The brief asks for at least 20 kinds; the ids must also be unique to be addressable.
    ids = [c[0] for c in CASES] + [c[0] for c in TRACE_CASES]
    assert len(ids) == len(set(ids)) >= 20


def test_good_input_is_accepted() -> None:
    # Positive control: the boundary values just inside every rule above are fine.
    Latency.of(0, "1/1000")
    RunConfig(max_tokens=1, k=1, servers=1, seed=0, prompt=(2,), point_mass_proposal=True)
    SamplingConfig(temperature=F(1, 100), top_p=1, top_k=1)
    SamplingConfig(greedy=True, temperature=0)
    MixtureDrafter(T3, 0, Q3)
    MixtureDrafter(T3, 1, Q3)
    MarkovModel(2, 1, {(): HALF, (1,): (F(1), F(0))})
    assert V.verify(0, Q3, Q3, 0)[0] in (0, 1)
    run_dsi(T3, T3, RunConfig(max_tokens=2, prompt=(2,)))
