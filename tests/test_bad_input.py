"""Bad input gets a typed error from dsi_ref.errors whose message names the bad value.

API rows are (id, call, error class, text): `call()` must raise exactly that class
(not a subclass, not a TypeError/AttributeError/ZeroDivisionError from deep inside)
and the message must contain `text`, the offending value as shown to the user.
CLI rows are (argv, text): `python -m dsi_ref ARGV` must exit 2 with exactly one line
`error: ...` on stderr containing `text`. Every case runs under a 2 s CPU-time cap
(SIGPROF), so a hang fails the case instead of stalling the suite.
"""

from __future__ import annotations

import io
import json
import math
import re
import signal
import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from fractions import Fraction as F
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from dsi_ref import cli
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
from dsi_ref.exact import DEFAULT_MAX_CALLS, DEFAULT_MAX_PATHS, exact_law
from dsi_ref.latency import Latency
from dsi_ref.law import target_law
from dsi_ref.models import MarkovModel, MixtureDrafter, random_markov
from dsi_ref.nonsi import run_nonsi
from dsi_ref.prob import check_dist
from dsi_ref.randomness import Key, Purpose, SeededChooser, keyed_uniform
from dsi_ref.sampling import SamplingConfig, WarpedModel
from dsi_ref.si import run_si
from dsi_ref.theory.heatmap import compute, grid_values
from dsi_ref.theory.pairs_table import evaluate, parse_pairs, predict
from dsi_ref.trace import load_trace
from dsi_ref.verify import Verifier
from dsi_ref.virtual import run_dsi

CASE_CPU_SECONDS = 2.0


@pytest.fixture(autouse=True)
def _cpu_time_cap() -> Iterator[None]:
    """Fail a case that uses more than 2 s of CPU (a hang), whatever the machine's load."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"case used more than {CASE_CPU_SECONDS} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, CASE_CPU_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


NAN = math.nan
INF = math.inf
T3 = random_markov(3, 1, seed=1, exact=True, name="t3")
T4 = random_markov(4, 1, seed=2, exact=True, name="t4")
HALF = (F(1, 2), F(1, 2))
Q3 = (F(1, 2), F(1, 2), F(0))
V = Verifier(SeededChooser(0), greedy=False)
FLOAT2 = MarkovModel(2, 0, {(): (0.25, 0.75)}, name="float2")
T3D = MixtureDrafter(T3, F(1, 2), (F(1, 2), F(1, 3), F(1, 6)))


def _markov(entry: Any, vocab: int = 2, order: int = 0, ctx: Any = ()) -> Callable[[], object]:
    return lambda: MarkovModel(vocab, order, {ctx: entry})


UNIFORM3 = (F(1, 3), F(1, 3), F(1, 3))


class Scripted:
    """A user's LanguageModel that answers whatever it is told to (the public protocol)."""

    def __init__(
        self,
        out: Any = UNIFORM3,
        vocab: Any = 3,
        bad_at: int = 0,
        state: Callable[[Sequence[int]], Any] = len,
        name: str = "scripted",
    ) -> None:
        self.out, self.vocab, self.bad_at, self._state, self.name = out, vocab, bad_at, state, name

    @property
    def vocab_size(self) -> int:
        return self.vocab  # type: ignore[no-any-return]

    def state(self, prefix: Sequence[int]) -> Hashable:
        return self._state(prefix)  # type: ignore[no-any-return]

    def next_dist(self, prefix: Sequence[int]) -> Any:
        return self.out if len(prefix) >= self.bad_at else UNIFORM3


CFG3 = RunConfig(max_tokens=3, k=2, servers=2)


def _dsi(model: Any, drafter: Any = None, cfg: RunConfig = CFG3) -> Callable[[], object]:
    return lambda: run_dsi(model, T3 if drafter is None else drafter, cfg)


def _dsi_drafter(drafter: Any) -> Callable[[], object]:
    return lambda: run_dsi(T3, drafter, CFG3)


def _sampling(**kw: Any) -> Callable[[], object]:
    return lambda: SamplingConfig(**kw)


def _run(**kw: Any) -> Callable[[], object]:
    return lambda: RunConfig(max_tokens=kw.pop("max_tokens", 3), **kw)


def _choose(weights: Any) -> Callable[[], object]:
    return lambda: SeededChooser(0).choice(Key(0, Purpose.DRAFT), weights)


def _pairs_value(field: str, value: Any) -> Callable[[], object]:
    nums = ("target_ttft_ms", "target_tpot_ms", "drafter_ttft_ms", "drafter_tpot_ms")
    row: dict[str, Any] = {"target": "t", "drafter": "d", "dataset": "x"}
    for f in (*nums, "acceptance_rate"):
        row[f] = {"value": 0.5, "provenance": "entered by hand from a test"}
    row[field]["value"] = value
    return lambda: parse_pairs({"pairs": [row]})


def _exact_dsi_law(max_calls: int) -> Callable[[], object]:
    cfg = RunConfig(max_tokens=6, k=2, servers=2)
    return lambda: exact_law(
        lambda ch: run_dsi(T3, T3D, cfg, chooser=ch).tokens, max_calls=max_calls
    )


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
    # ----- a model's output, validated where it enters (dsi_ref.sampling.WarpedModel) -----
    ("model-nan", _dsi(Scripted((NAN, 0.5, 0.5))), InvalidDistribution, "nan"),
    ("model-inf", _dsi(Scripted((INF, 0.0, 0.0))), InvalidDistribution, "inf"),
    ("model-sum-far-from-one", _dsi(Scripted((0.5, 0.2, 0.2))), InvalidDistribution, "0.9"),
    ("model-sum-above-one", _dsi(Scripted((0.5, 0.5, 0.5))), InvalidDistribution, "1.5"),
    ("model-negative", _dsi(Scripted((-0.2, 0.6, 0.6))), InvalidDistribution, "-0.2"),
    ("model-4-entries-vocab-3", _dsi(Scripted((0.25,) * 4)), InvalidDistribution, "4 entries"),
    ("model-2-entries-vocab-3", _dsi(Scripted((0.5, 0.5))), InvalidDistribution, "2 entries"),
    ("model-returns-none", _dsi(Scripted(None)), InvalidDistribution, "None"),
    ("model-returns-string", _dsi(Scripted("abc")), InvalidDistribution, "'abc'"),
    ("model-returns-empty", _dsi(Scripted(())), InvalidDistribution, "()"),
    ("model-entry-string", _dsi(Scripted(("x", 0.5, 0.5))), InvalidDistribution, "'x'"),
    (
        "model-exact-sum-not-one",
        _dsi(Scripted((F(1, 3), F(1, 3), F(1, 6)))),
        InvalidDistribution,
        "5/6",
    ),
    (
        "model-nan-at-position-2",
        _dsi(Scripted((NAN, 0.5, 0.5), bad_at=2)),
        InvalidDistribution,
        "position 2",
    ),
    ("model-bad-drafter", _dsi_drafter(Scripted((NAN, 0.5, 0.5))), InvalidDistribution, "nan"),
    (
        "model-nan-greedy",
        _dsi(Scripted((NAN, 0.5, 0.5)), cfg=RunConfig(max_tokens=3, sampling=SamplingConfig(True))),
        InvalidDistribution,
        "nan",
    ),
    (
        "model-nan-nonsi",
        lambda: run_nonsi(Scripted((0.5, NAN, 0.5)), CFG3),  # type: ignore[arg-type]
        InvalidDistribution,
        "nan",
    ),
    (
        "model-nan-si",
        lambda: run_si(Scripted((0.5, 0.5, NAN)), T3, CFG3),  # type: ignore[arg-type]
        InvalidDistribution,
        "nan",
    ),
    (
        "model-nan-target-law",
        lambda: target_law(Scripted((NAN, 0.5, 0.5)), SamplingConfig(), 2),  # type: ignore[arg-type]
        InvalidDistribution,
        "nan",
    ),
    (
        "mixture-target-wrong-length",
        _dsi_drafter(MixtureDrafter(Scripted((0.25,) * 4), 0.5, (0.5, 0.25, 0.25))),  # type: ignore[arg-type]
        InvalidDistribution,
        "4 entries",
    ),
    ("model-vocab-zero", _dsi(Scripted(vocab=0)), InvalidConfig, "got 0"),
    ("model-vocab-negative", _dsi(Scripted(vocab=-3)), InvalidConfig, "-3"),
    ("model-vocab-string", _dsi(Scripted(vocab="3")), InvalidConfig, "'3'"),
    ("model-vocab-float", _dsi(Scripted(vocab=3.0)), InvalidConfig, "3.0"),
    (
        "model-vocab-none-nonsi",
        lambda: run_nonsi(Scripted(vocab=None), CFG3),
        InvalidConfig,
        "None",
    ),  # type: ignore[arg-type]
    ("model-state-unhashable", _dsi(Scripted(state=list)), InvalidConfig, "[]"),
    ("target-not-a-model", _dsi(None), InvalidConfig, "None"),
    ("drafter-not-a-model", _dsi_drafter("gpt2"), InvalidConfig, "'gpt2'"),
    ("nonsi-target-not-a-model", lambda: run_nonsi(42, CFG3), InvalidConfig, "42"),  # type: ignore[arg-type]
    ("nonsi-cfg-not-a-config", lambda: run_nonsi(T3, {"k": 1}), InvalidConfig, "{'k': 1}"),  # type: ignore[arg-type]
    ("warped-model-not-a-model", lambda: WarpedModel(3, SamplingConfig()), InvalidConfig, "3"),  # type: ignore[arg-type]
    ("mixture-target-not-a-model", lambda: MixtureDrafter(None, 0.5, Q3), InvalidConfig, "None"),  # type: ignore[arg-type]
    # ----- extreme magnitudes -----
    ("temperature-below-range", _sampling(temperature=F(1, 10**7)), InvalidConfig, "1/10000000"),
    ("temperature-above-range", _sampling(temperature=10**7), InvalidConfig, "10000000"),
    ("temperature-huge-int", _sampling(temperature=10**400), InvalidConfig, "~1e+400"),
    ("temperature-float-underflow", _sampling(temperature=1e-400), InvalidConfig, "0.0"),
    (
        "temperature-exact-model-too-small",
        lambda: run_nonsi(
            T3, RunConfig(max_tokens=2, sampling=SamplingConfig(temperature=F(1, 2000)))
        ),
        InvalidConfig,
        "1/2000",
    ),
    ("time-tiny-text", lambda: Latency.of("1e-100000"), InvalidConfig, "1e-100000"),
    ("time-exponent-bomb", lambda: Latency.of("1e-1000000000"), InvalidConfig, "1e-1000000000"),
    ("time-tiny-float", lambda: Latency.of(1e-300), InvalidConfig, "1e-300"),
    ("time-huge-int", lambda: Latency.of(10**400), InvalidConfig, "~1e+400"),
    ("time-huge-text", lambda: Latency.of(1, "1e400"), InvalidConfig, "1e400"),
    ("time-long-text", lambda: Latency.of("1" * 5000), InvalidConfig, "1111111111"),
    ("servers-huge", _run(servers=10**12), InvalidConfig, "1000000000000"),
    ("max-tokens-huge", _run(max_tokens=10**12), InvalidConfig, "1000000000000"),
    ("max-tokens-unprintable", _run(max_tokens=10**5000), InvalidConfig, "~1e+5000"),
    ("seed-above-2-256", _run(seed=2**256), InvalidConfig, "~1.16e+77"),
    ("prompt-token-huge", _run(prompt=(10**30,)), InvalidConfig, str(10**30)),
    ("chooser-seed-negative", lambda: SeededChooser(-1), InvalidConfig, "-1"),
    ("chooser-seed-string", lambda: SeededChooser("7"), InvalidConfig, "'7'"),  # type: ignore[arg-type]
    ("check-dist-none", lambda: check_dist(None), InvalidDistribution, "None"),  # type: ignore[arg-type]
    ("check-dist-int", lambda: check_dist(5), InvalidDistribution, "5"),  # type: ignore[arg-type]
    ("chooser-weights-nan", _choose((NAN, 1.0)), InvalidDistribution, "nan"),
    ("chooser-weights-negative", _choose((-0.5, 1.5)), InvalidDistribution, "-0.5"),
    ("chooser-weights-sum", _choose((0.25, 0.25)), InvalidDistribution, "0.5"),
    ("chooser-weights-list-inf", _choose([INF, 0.0]), InvalidDistribution, "inf"),
    (
        "chooser-bernoulli-nan",
        lambda: SeededChooser(0).bernoulli(Key(0, Purpose.ACCEPT), NAN),
        InvalidDistribution,
        "nan",
    ),
    (
        "exact-law-negative-weight",
        lambda: exact_law(lambda ch: ch.choice(Key(0, Purpose.DRAFT), (F(-1, 2), F(3, 2)))),
        InvalidDistribution,
        "-1/2",
    ),
    ("exact-law-work-guard", _exact_dsi_law(max_calls=50), EnumerationError, "max_calls=50"),
    (
        "exact-law-bad-limit",
        lambda: exact_law(lambda ch: 0, max_paths=0),
        InvalidConfig,
        "max_paths must be an int >= 1, got 0",
    ),
    ("exact-law-not-callable", lambda: exact_law(None), InvalidConfig, "None"),  # type: ignore[arg-type]
    ("heatmap-grid-huge", lambda: compute(grid=100_000), InvalidConfig, "100000"),
    ("heatmap-grid-bool", lambda: grid_values(True), InvalidConfig, "True"),  # type: ignore[arg-type]
    ("heatmap-memory", lambda: compute(grid=201, S=1000), InvalidConfig, "201^2 * 1000"),
    ("heatmap-work", lambda: compute(grid=101, S=900, kmax=20), InvalidConfig, "101^2 * 900 * 20"),
    ("pairs-value-inf", _pairs_value("target_tpot_ms", INF), InvalidConfig, "inf"),
    ("pairs-value-nan", _pairs_value("acceptance_rate", NAN), InvalidConfig, "nan"),
    ("pairs-value-huge-int", _pairs_value("drafter_tpot_ms", 10**400), InvalidConfig, "~1e+400"),
    (
        "pairs-value-too-slow",
        _pairs_value("target_ttft_ms", 1e12),
        InvalidConfig,
        "1000000000000.0",
    ),
    ("table-predict-kmax-huge", lambda: predict(0.5, 0.1, kmax=10**9), InvalidConfig, "1000000000"),
    ("table-predict-rate-nan", lambda: predict(NAN, 0.1), InvalidConfig, "nan"),
    ("table-event-tokens-huge", lambda: evaluate([], event_tokens=10**6), InvalidConfig, "1000000"),
    ("random-markov-huge", lambda: random_markov(1000, 3, seed=0), InvalidConfig, "vocab=1000"),
    (
        "exact-law-unhashable-outcome",
        lambda: exact_law(lambda ch: [ch.choice(Key(0, Purpose.DRAFT), HALF)]),
        InvalidConfig,
        "[0]",
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


def test_good_input_is_accepted() -> None:
    # Positive control: the boundary values just inside every rule above are fine.
    Latency.of(0, "1/1000")
    RunConfig(max_tokens=1, k=1, servers=1, seed=0, prompt=(2,), point_mass_proposal=True)
    SamplingConfig(temperature=F(1, 100), top_p=1, top_k=1)
    SamplingConfig(greedy=True, temperature=1)  # neutral; 0 is refused (sampling_rule)
    MixtureDrafter(T3, 0, Q3)
    MixtureDrafter(T3, 1, Q3)
    MarkovModel(2, 1, {(): HALF, (1,): (F(1), F(0))})
    assert V.verify(0, Q3, Q3, 0)[0] in (0, 1)
    run_dsi(T3, T3, RunConfig(max_tokens=2, prompt=(2,)))
    # magnitudes just inside the ranges are fine, and fast
    SamplingConfig(temperature=F(1, 10**6))
    SamplingConfig(temperature=10**6)
    warm = RunConfig(max_tokens=2, sampling=SamplingConfig(temperature=F(1, 1000)))
    assert len(run_nonsi(T3, warm).tokens) == 2  # exact model at T = 1/1000
    cold = RunConfig(max_tokens=2, sampling=SamplingConfig(temperature=1e-6))
    assert len(run_dsi(FLOAT2, FLOAT2, cold).tokens) == 2
    Latency.of("1e-9", "1e9")
    RunConfig(max_tokens=100_000, servers=100_000, seed=2**256 - 1)
    # a seed of any size is a valid key (a trace may carry one): every bit counts
    assert 0 <= SeededChooser(10**4000).uniform(Key(0, Purpose.DRAFT)) < 1


# ----- the command line ------------------------------------------------------------

BIG = "1" + "0" * 200
CLI_CASES: list[tuple[str, list[str], str]] = [
    ("cli-temperature-tiny", ["run", "--temperature", "1e-400"], "'1e-400'"),
    ("cli-temperature-huge", ["run", "--temperature", "1e400"], "'1e400'"),
    ("cli-temperature-bomb", ["run", "--temperature", "1e-1000000000"], "'1e-1000000000'"),
    (
        "cli-temperature-1e-7-exact",
        ["run", "--pair", "exact3", "--temperature", "1/10000000"],
        "'1/10000000'",
    ),
    (
        "cli-temperature-exact-floor",
        ["run", "--pair", "exact3", "--temperature", "1/2000"],
        "1/2000",
    ),
    ("cli-temperature-inf", ["run", "--temperature", "inf"], "'inf'"),
    ("cli-drafter-tpot-tiny", ["run", "--drafter-tpot", "1e-100000"], "'1e-100000'"),
    ("cli-target-ttft-huge", ["run", "--target-ttft", "1e400"], "'1e400'"),
    ("cli-target-tpot-bomb", ["run", "--target-tpot", "1e-1000000000"], "'1e-1000000000'"),
    ("cli-time-long", ["run", "--drafter-ttft", BIG], BIG[:20]),
    ("cli-servers-huge", ["run", "--servers", "1000000000000"], "1000000000000"),
    ("cli-max-tokens-huge", ["run", "--max-tokens", "1000000000000"], "1000000000000"),
    ("cli-seed-2-256", ["run", "--seed", str(2**256)], str(2**256)),
    ("cli-seed-long", ["run", "--seed", BIG], BIG[:20]),
    ("cli-k-float", ["run", "--k", "1e3"], "'1e3'"),
    ("cli-noise-bomb", ["run", "--noise", "1e-1000000000"], "'1e-1000000000'"),
    ("cli-noise-nan", ["run", "--noise", "nan"], "'nan'"),
    ("cli-noise-above-one", ["run", "--noise", "2"], "'2'"),
    ("cli-top-p-bomb", ["run", "--top-p", "1e-1000000000"], "'1e-1000000000'"),
    (
        "cli-prompt-huge-token",
        ["run", "--prompt", "1,99999999999999999999999"],
        "99999999999999999999999",
    ),
    ("cli-prompt-long-token", ["run", "--prompt", BIG], BIG[:20]),
    ("cli-demo-max-tokens", ["demo", "--max-tokens", "1000000000000"], "1000000000000"),
    ("cli-demo-seed", ["demo", "--seed", "-5"], "-5"),
    ("cli-check-noise", ["check", "x.json", "--noise", "5"], "'5'"),
    ("cli-heatmap-grid-huge", ["heatmap", "--grid", "100000"], "100000"),
    ("cli-heatmap-work", ["heatmap", "--grid", "201", "--S", "1000"], "201^2 * 1000"),
    ("cli-heatmap-S-zero", ["heatmap", "--S", "0"], "got 0"),
    ("cli-heatmap-kmax-huge", ["heatmap", "--kmax", "1000"], "1000"),
    ("cli-table-event-tokens", ["table", "--event-tokens", "100000"], "100000"),
    ("cli-table-event-tokens-negative", ["table", "--event-tokens", "-1"], "-1"),
    ("cli-table-S-huge", ["table", "--S", "1000000000"], "1000000000"),
    ("cli-table-pmax-zero", ["table", "--pmax", "0"], "got 0"),
]


@pytest.mark.parametrize(
    ("argv", "text"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_bad_input_is_one_error_line_and_exit_2(
    argv: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(argv, out=io.StringIO())
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert text in err, f"{text!r} not in {err!r}"


def _pairs_file(tmp: Path, value: str) -> Path:
    row = {"target": "t", "drafter": "d", "dataset": "x"}
    num = '{"value": 0.5, "provenance": "entered by hand from a test"}'
    fields = ", ".join(
        f'"{f}": {num}'
        for f in ("target_ttft_ms", "drafter_ttft_ms", "drafter_tpot_ms", "acceptance_rate")
    )
    tpot = '{"value": ' + value + ', "provenance": "entered by hand from a test"}'
    text = json.dumps({"pairs": [row]})[:-3] + f", {fields}, " + f'"target_tpot_ms": {tpot}' + "}]}"
    path = tmp / "pairs.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("value", "text"), [("Infinity", "Infinity"), ("NaN", "NaN"), ("1" + "0" * 400, "~1e+400")]
)
def test_cli_table_file_with_bad_numbers(
    tmp_path: Path, value: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _pairs_file(tmp_path, value)
    assert cli.main(["table", "--file", str(path)], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and text in err, err


@pytest.mark.parametrize(
    ("command", "module"), [("heatmap", "numpy"), ("heatmap", "matplotlib"), ("table", "numpy")]
)
def test_missing_plot_dependencies_print_the_install_line(
    command: str, module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Simulate a `make demo` install without the plot extra: the import of `module` fails."""
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    for name in ("dsi_ref.theory.heatmap", "dsi_ref.theory.pairs_table", "dsi_ref.theory.offline"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert cli.main([command, "--S", "10"], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: `python -m dsi_ref {command}` needs")
    # Without numpy, matplotlib (which needs it) cannot import either unless it already was:
    # the list may name both, depending on test order; it must name the blocked one.
    listed = re.search(r"\(([^)]*) not installed\)", err)
    assert listed is not None and module in listed.group(1).split(", "), err
    assert f"{sys.executable} -m pip install -e '.[plot]'" in err


def test_a_bad_model_output_names_model_position_prefix_and_value() -> None:
    bad = Scripted((0.5, NAN, 0.5), bad_at=2, name="my-lm")
    with pytest.raises(InvalidDistribution) as info:
        run_nonsi(bad, RunConfig(max_tokens=4, prompt=(1,)))  # type: ignore[arg-type]
    msg = str(info.value)
    assert "model 'my-lm'" in msg and "at position 2" in msg and "prefix (1, " in msg
    assert "next_dist[1] = nan is not finite" in msg
    with pytest.raises(
        InvalidDistribution, match=r"next_dist has 4 entries, but the model's vocab_size is 3"
    ):
        run_nonsi(Scripted((0.25,) * 4), CFG3)  # type: ignore[arg-type]


def test_a_model_output_within_rounding_is_accepted_and_renormalised() -> None:
    """A float32-softmax-like sum (1 + 5e-7) is renormalised; 1.01 is refused."""
    near = Scripted((0.5 + 5e-7, 0.25, 0.25))
    view = WarpedModel(near, SamplingConfig())  # type: ignore[arg-type]
    assert abs(math.fsum(view.dist(())) - 1) < 1e-15
    far = WarpedModel(Scripted((0.51, 0.25, 0.25)), SamplingConfig())  # type: ignore[arg-type]
    with pytest.raises(InvalidDistribution, match=r"sums to 1\.01"):
        far.dist(())


def test_a_model_is_validated_once_per_state() -> None:
    calls = []

    class Counting(Scripted):
        def next_dist(self, prefix: Sequence[int]) -> Any:
            calls.append(tuple(prefix))
            return super().next_dist(prefix)

    view = WarpedModel(Counting(state=lambda p: ()), SamplingConfig())  # type: ignore[arg-type]
    for n in range(20):
        view.dist((0,) * n)
    assert len(calls) == 1


def test_seeds_do_not_alias() -> None:
    """Every bit of a seed counts (2**128 used to give seed 0's stream); below 2**128 the
    uniforms are unchanged, so traces and golden runs stay valid."""
    key = Key(3, Purpose.DRAFT)
    streams = [keyed_uniform(s, key) for s in (0, 2**64, 2**128, 2**192, 2**128 + 2**192, 2**255)]
    assert len(set(streams)) == len(streams)
    assert keyed_uniform(0, key) == 0.9817103571267175
    assert keyed_uniform(2**127 + 5, key) == 0.45824310826722126
    run = [run_dsi(T3, T3D, RunConfig(max_tokens=12, seed=s)).tokens for s in (0, 2**128)]
    assert run[0] != run[1]


def test_exact_law_guards_have_sane_defaults() -> None:
    assert DEFAULT_MAX_PATHS == 100_000 and DEFAULT_MAX_CALLS == 1_000_000


def test_the_table_covers_every_class() -> None:
    """>= 60 kinds across the CLI and the API, ids unique; each class of the issue present."""
    ids = [c[0] for c in CASES] + [c[0] for c in TRACE_CASES] + [c[0] for c in CLI_CASES]
    assert len(ids) == len(set(ids)) >= 60
    for prefix in (
        "model-",
        "temperature-",
        "time-",
        "seed",
        "chooser-",
        "exact-law-",
        "heatmap-",
        "pairs-",
        "cli-",
    ):
        assert sum(i.startswith(prefix) for i in ids) >= 2, prefix
