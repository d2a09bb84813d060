"""Run non-SI, SI and DSI on one pair and config, and compare their latencies.

`demo_config` is the built-in default that `python -m dsi_ref demo` (and `make
demo`) runs: 200 tokens, lookahead 5, 7 target servers, a drafter 10x faster
than the target and a mean acceptance rate of about 0.8 (pair "markov32").
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.nonsi import run_nonsi
from dsi_ref.pairs import DEFAULT_PAIR, Pair
from dsi_ref.result import RunResult
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi

ALGORITHMS = ("nonsi", "si", "dsi")
LABELS = {"nonsi": "non-SI", "si": "SI", "dsi": "DSI"}

DEMO_PAIR = DEFAULT_PAIR
DEMO_MAX_TOKENS = 200
DEMO_K = 5
DEMO_SERVERS = 7

# What the demo may claim about its outputs' distribution, and the tests that check it.
# tests/test_cli.py fails if a file named here is missing.
LOSSLESS_TESTS = (
    "tests/test_exact_lossless.py",
    "tests/test_statistical_lossless.py",
    "tests/test_schedule_independence.py",
    "tests/test_cli.py",
)
LOSSLESS_NOTE = (
    "Distribution: each algorithm's output law equals the target's. Checked exactly (every "
    f"random path, as Fractions) on small exact models in {LOSSLESS_TESTS[0]}, and for SI "
    "and DSI by a chi-square test on the first 3 tokens at vocabulary 8 in "
    f"{LOSSLESS_TESTS[1]}; not on this vocabulary-32 pair itself. DSI's tokens do not depend "
    "on k, P or the latencies: they equal the sequential per-position reference "
    f"(property-tested in {LOSSLESS_TESTS[2]}, and for this run in {LOSSLESS_TESTS[3]})."
)


def demo_config(seed: int = 0, max_tokens: int = DEMO_MAX_TOKENS) -> RunConfig:
    return RunConfig(
        max_tokens=max_tokens,
        k=DEMO_K,
        servers=DEMO_SERVERS,
        seed=seed,
        target_latency=Latency.of(1, 1, "target"),
        drafter_latency=Latency.of("1/10", "1/10", "drafter"),
    )


def run_algorithm(algorithm: str, pair: Pair, cfg: RunConfig, record: bool = False) -> RunResult:
    if algorithm == "nonsi":
        return run_nonsi(pair.target, cfg, record=record)
    if algorithm == "si":
        return run_si(pair.target, pair.drafter, cfg, record=record)
    if algorithm == "dsi":
        return run_dsi(pair.target, pair.drafter, cfg, record=record)
    raise InvalidConfig(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")


@dataclass(frozen=True)
class Speedup:
    """latency(baseline) / latency(algorithm): > 1 means the algorithm is faster."""

    vs_nonsi: Fraction | None
    vs_si: Fraction | None


def _ratio(base: RunResult | None, run: RunResult) -> Fraction | None:
    if base is None or run.latency == 0:
        return None
    return base.latency / run.latency


def speedups(results: list[RunResult]) -> dict[str, Speedup]:
    """Each result's speedup over the non-SI and SI results among `results` (None if absent)."""
    by = {r.algorithm: r for r in results}
    return {
        r.algorithm: Speedup(_ratio(by.get("nonsi"), r), _ratio(by.get("si"), r)) for r in results
    }
