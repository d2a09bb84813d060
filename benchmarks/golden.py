"""Golden corpus: the observable behaviour of the reference, frozen before optimising it.

Performance work on the scheduler, the virtual driver, the workers, verification,
the enumerator and the trace recorder must not change what a run does. This
script runs ~60 varied runs of non-SI, SI and DSI (seeds, k, P, latencies,
greedy / sampling / top-k / top-p, prompts, point-mass proposals, planted faults)
and a few exact laws of tiny instances, and compares every summary, trace and law
with benchmarks/golden.json.

    .venv/bin/python benchmarks/golden.py           # check; exit 1 on any difference
    .venv/bin/python benchmarks/golden.py --write   # (re)freeze, only for a wanted change
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from dsi_ref.config import RunConfig
from dsi_ref.exact import exact_law
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MixtureDrafter, random_markov
from dsi_ref.nonsi import run_nonsi
from dsi_ref.prob import InverseCDF, Num, inverse_cdf
from dsi_ref.randomness import Chooser
from dsi_ref.result import RunResult
from dsi_ref.sampling import SamplingConfig
from dsi_ref.si import run_si
from dsi_ref.trace import to_version1
from dsi_ref.virtual import run_dsi
from dsi_ref.workers import REFERENCE_PARTS, RunParts

# The planted faults live with the tests (tests/faulty.py); a script run has only
# benchmarks/ on its path, so the repository root is added for them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.faulty import Fault, planted

GOLDEN = Path(__file__).with_name("golden.json")


@dataclass(frozen=True)
class Spec:
    """One run: models by recipe (so the JSON says what was run), config by value."""

    name: str
    vocab: int
    order: int
    exact: bool
    model_seed: int
    drafter: str  # "mix:<noise>" (MixtureDrafter) or "indep:<seed>" (an unrelated model)
    cfg: RunConfig
    algorithms: tuple[str, ...] = ("nonsi", "si", "dsi")
    extra: dict[str, Any] = field(default_factory=dict)
    fault: Fault | None = None  # a planted bug (tests/faulty.py), given to every run


def build_models(spec: Spec) -> tuple[LanguageModel, LanguageModel]:
    target = random_markov(spec.vocab, spec.order, spec.model_seed, spec.exact, name="target")
    kind, arg = spec.drafter.split(":")
    if kind == "mix":
        noise: Fraction | float = Fraction(arg) if spec.exact else float(Fraction(arg))
        r = random_markov(spec.vocab, 0, spec.model_seed + 1, spec.exact).next_dist(())
        return target, MixtureDrafter(target, noise, r)
    return target, random_markov(spec.vocab, spec.order, int(arg), spec.exact, name="drafter")


def run(
    algorithm: str, target: LanguageModel, drafter: LanguageModel, cfg: RunConfig, **kw: Any
) -> RunResult:
    if algorithm == "nonsi":
        return run_nonsi(target, cfg, **kw)
    if algorithm == "si":
        return run_si(target, drafter, cfg, **kw)
    return run_dsi(target, drafter, cfg, **kw)


def _lat(rng: random.Random) -> tuple[Latency, Latency]:
    ttft = Fraction(rng.randint(1, 12), 4)
    tpot = Fraction(rng.randint(1, 8), 4)
    dt = Fraction(rng.randint(1, 12), 20)
    return Latency.of(ttft, tpot, "target"), Latency.of(dt * rng.choice([1, 2]), dt, "drafter")


def specs() -> list[Spec]:
    out: list[Spec] = []
    rng = random.Random(20261130)
    samplings = [
        SamplingConfig(),
        SamplingConfig(greedy=True),
        SamplingConfig(temperature=0.7),
        SamplingConfig(top_k=3),
        SamplingConfig(temperature=1.3, top_p=0.9),
        SamplingConfig(top_k=5, top_p=0.8),
    ]
    # Float models: varied k, P, latencies, samplings, prompts.
    for i in range(36):
        tl, dl = _lat(rng)
        vocab = rng.choice([4, 8, 32])
        order = rng.choice([1, 1, 2]) if vocab < 32 else 1
        cfg = RunConfig(
            max_tokens=rng.choice([1, 7, 25, 60, 120]),
            k=rng.randint(1, 6),
            servers=rng.randint(1, 8),
            seed=rng.randint(0, 10**6),
            sampling=samplings[i % len(samplings)],
            target_latency=tl,
            drafter_latency=dl,
            prompt=tuple(rng.randrange(vocab) for _ in range(rng.choice([0, 0, 3]))),
            point_mass_proposal=(i % 9 == 4),
        )
        drafter = rng.choice(["mix:1/5", "mix:1/2", "mix:0", "mix:1", f"indep:{i + 100}"])
        out.append(Spec(f"float{i}", vocab, order, False, i, drafter, cfg))
    # Exact models (Fraction arithmetic), including a Fraction temperature.
    for i in range(12):
        tl, dl = _lat(rng)
        sampling = [
            SamplingConfig(),
            SamplingConfig(temperature=Fraction(1, 2)),
            SamplingConfig(greedy=True),
        ][i % 3]
        cfg = RunConfig(
            max_tokens=rng.choice([3, 10, 20]),
            k=rng.randint(1, 4),
            servers=rng.randint(1, 5),
            seed=rng.randint(0, 10**6),
            sampling=sampling,
            target_latency=tl,
            drafter_latency=dl,
            point_mass_proposal=(i % 5 == 2),
        )
        drafter = rng.choice(["mix:1/3", "mix:2/3", f"indep:{i + 200}"])
        out.append(
            Spec(
                f"exact{i}",
                rng.choice([2, 3, 4]),
                rng.choice([0, 1, 2]),
                True,
                50 + i,
                drafter,
                cfg,
            )
        )
    # Planted faults: negative controls must keep misbehaving in the same way.
    for i, fault in enumerate(Fault):
        tl, dl = _lat(rng)
        cfg = RunConfig(
            max_tokens=30,
            k=rng.randint(2, 5),
            servers=rng.randint(1, 6),
            seed=rng.randint(0, 10**6),
            sampling=SamplingConfig(temperature=0.8),
            target_latency=tl,
            drafter_latency=dl,
        )
        out.append(Spec(f"fault-{fault.value}", 6, 1, False, 70 + i, "mix:1/2", cfg, fault=fault))
    # The benchmark's shape, shortened: vocab 32, acceptance ~0.8, k=5, P=7.
    cfg = RunConfig(
        max_tokens=200,
        k=5,
        servers=7,
        seed=3,
        target_latency=Latency.of(1, 1, "target"),
        drafter_latency=Latency.of("1/10", "1/10", "drafter"),
    )
    out.append(Spec("bench-shape", 32, 1, False, 0, "mix:0.4", cfg))
    return out


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def run_spec(spec: Spec) -> dict[str, Any]:
    target, drafter = build_models(spec)
    parts = REFERENCE_PARTS if spec.fault is None else planted(spec.fault)
    res: dict[str, Any] = {}
    for alg in spec.algorithms:
        plain = run(alg, target, drafter, spec.cfg, parts=parts)
        traced = run(alg, target, drafter, spec.cfg, record=True, parts=parts)
        if plain.summary() != traced.summary():
            raise AssertionError(f"{spec.name}/{alg}: record=True changed the run")
        # The corpus is kept in trace format version 1 (an exact conversion of today's v2).
        v1 = to_version1(traced.trace) if traced.trace is not None else None
        trace = canonical(v1)
        res[alg] = {
            "summary": plain.summary(),
            "trace_sha256": hashlib.sha256(trace.encode()).hexdigest(),
            "trace_events": len(traced.trace["events"]) if traced.trace else 0,
            # Full traces only for short runs, to keep the file reviewable.
            "trace": v1 if len(trace) < 40_000 else None,
        }
    return res


def law_cases() -> list[tuple[str, Callable[[Chooser], tuple[int, ...]]]]:
    cases: list[tuple[str, Callable[[Chooser], tuple[int, ...]]]] = []
    cases_in: list[tuple[str, int, int, int, int, str, SamplingConfig, Fault | None]] = [
        ("dsi-v3-n4-k2-P2", 3, 4, 2, 2, "1/2", SamplingConfig(), None),
        ("dsi-v2-n3-k1-P3", 2, 3, 1, 3, "1/3", SamplingConfig(), None),
        (
            "dsi-v3-n3-k2-P1-T1/2",
            3,
            3,
            2,
            1,
            "1/2",
            SamplingConfig(temperature=Fraction(1, 2)),
            None,
        ),
        ("dsi-v3-n3-k3-P2-topk2", 3, 3, 3, 2, "2/3", SamplingConfig(top_k=2), None),
        (
            "dsi-v2-n3-k2-P2-always-accept",
            2,
            3,
            2,
            2,
            "1/2",
            SamplingConfig(),
            Fault.ALWAYS_ACCEPT,
        ),
        (
            "dsi-v3-n3-k2-P2-residual-from-p",
            3,
            3,
            2,
            2,
            "1/2",
            SamplingConfig(),
            Fault.RESIDUAL_FROM_P,
        ),
    ]
    for name, vocab, n, k, p, noise, sampling, fault in cases_in:
        parts = REFERENCE_PARTS if fault is None else planted(fault)
        target = random_markov(vocab, 1, 7, exact=True, name="target")
        r = random_markov(vocab, 0, 8, exact=True).next_dist(())
        drafter = MixtureDrafter(target, Fraction(noise), r)
        cfg = RunConfig(
            max_tokens=n,
            k=k,
            servers=p,
            sampling=sampling,
            target_latency=Latency.of(1, "3/4", "target"),
            drafter_latency=Latency.of("1/5", "1/5", "drafter"),
        )

        def dsi(
            ch: Chooser,
            t: LanguageModel = target,
            d: LanguageModel = drafter,
            c: RunConfig = cfg,
            parts: RunParts = parts,
        ) -> tuple[int, ...]:
            return run_dsi(t, d, c, chooser=ch, parts=parts).tokens

        def si(
            ch: Chooser, t: LanguageModel = target, d: LanguageModel = drafter, c: RunConfig = cfg
        ) -> tuple[int, ...]:
            return run_si(t, d, c, chooser=ch).tokens

        if name.startswith("dsi-v3-n4"):  # benchmark 2: an exact random_markov pair
            other = random_markov(vocab, 1, 9, exact=True, name="drafter")

            def pair(
                ch: Chooser, t: LanguageModel = target, d: LanguageModel = other, c: RunConfig = cfg
            ) -> tuple[int, ...]:
                return run_dsi(t, d, c, chooser=ch).tokens

            cases.append(("dsi-pair-v3-n4-k2-P2", pair))
        cases.append((name, dsi))
        if fault is None:
            cases.append((name.replace("dsi", "si", 1), si))
    return cases


def laws() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, fn in law_cases():
        law = exact_law(fn)
        out[name] = {",".join(map(str, seq)): str(pr) for seq, pr in sorted(law.items())}
    return out


def check_inverse_cdf(trials: int = 3000) -> None:
    """The cached InverseCDF answers exactly as inverse_cdf: zeros, Fractions, cell edges."""
    rng = random.Random(5)
    for _ in range(trials):
        n = rng.randint(1, 8)
        w: list[Num]
        if rng.random() < 0.5:
            w = [rng.choice([0.0, 0.0, rng.random(), 1e-300, 0.1]) for _ in range(n)]
        else:
            w = [Fraction(rng.randint(0, 3), rng.randint(1, 7)) for _ in range(n)]
        table = InverseCDF(w)
        edges: list[float] = [0.0, 1.0, 0.999999999, *(float(sum(w[:j])) for j in range(n + 1))]
        for u in [rng.random() for _ in range(5)] + edges:
            assert table.lookup(u) == inverse_cdf(w, u), (w, u)


def collect() -> dict[str, Any]:
    return {"runs": {s.name: run_spec(s) for s in specs()}, "laws": laws()}


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}/{key}: present on one side only"
            d = first_difference(a[key], b[key], f"{path}/{key}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--write", action="store_true", help="freeze the current behaviour")
    args = ap.parse_args()
    check_inverse_cdf()
    now = json.loads(canonical(collect()))  # through JSON, as the file is
    if args.write:
        GOLDEN.write_text(
            json.dumps(now, sort_keys=True, indent=None, separators=(",", ":")) + "\n"
        )
        print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
        return 0
    golden = json.loads(GOLDEN.read_text())
    diff = first_difference(golden, now)
    if diff:
        print(f"GOLDEN MISMATCH at {diff}")
        return 1
    n_runs = sum(len(v) for v in now["runs"].values())
    print(f"golden OK: {n_runs} runs (summaries + traces), {len(now['laws'])} exact laws")
    return 0


if __name__ == "__main__":
    sys.exit(main())
