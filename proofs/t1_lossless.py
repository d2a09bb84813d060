"""T1 (losslessness): SI and DSI output exactly the warped target's law.

Setting. A target model with next-token laws p(. | prefix) and a drafter with
q(. | prefix) on one vocabulary of V letters; a sampling warp W (temperature,
top-k, top-p, or greedy) applied to both; p~ = W(p), q~ = W(q). The target law
of n tokens is L(x_1..x_n) = prod_i p~(x_i | prompt x_<i) (greedy: the argmax
chain), `dsi_ref.law.target_law`. Randomness is keyed (dsi_ref.randomness): one
uniform U(i, purpose) in [0, 1) per absolute position i and purpose (DRAFT,
ACCEPT, RESIDUAL, TARGET), all independent; a query under a key returns a
deterministic function of that key's U and of what is asked.

Theorem. For every n >= 1, lookahead k >= 1, number of servers P >= 1, latencies
(any TTFT/TPOT of both models), prompt, and warp, the tokens output by run_si and
run_dsi have law L, with speculative sampling and with the point-mass rule
(`point_mass_proposal=True`).

Lemma A (one position, speculative sampling). Let d ~ q, accept d with
probability min(1, p(d)/q(d)), else draw from r = norm(max(0, p - q)). Then the
token has law p. Proof: P(token = x) = min(q(x), p(x)) + rho r(x) where the
rejection probability is rho = sum_y (q(y) - min(q(y), p(y))) = sum_y max(0, q(y) -
p(y)) = sum_y max(0, p(y) - q(y)) =: beta (both sums equal TV(p, q), since p and
q both sum to 1). If beta > 0, r(x) = max(0, p(x) - q(x)) / beta and P(token = x) =
min(p(x), q(x)) + max(0, p(x) - q(x)) = p(x). If beta = 0 then p = q, rho = 0 and
P(token = x) = q(x) = p(x).

Lemma B (one position, point mass). Given any draft d (drawn from any law), accept
it with probability p(d), else draw from p with d removed and renormalised. Then
the token has law p given d: P(d) = p(d), and for x != d, (1 - p(d)) p(x) / (1 - p(d))
= p(x) (if p(d) = 1 there is no rejection). Averaging over d: law p.

Greedy: the token is argmax p~ whatever the draft; it equals the greedy target's.

Induction (SI and DSI). Let X_1..X_n be the output. By T6, DSI's output equals the
sequential reference: X_i = Verify_i(p~(.|x_<i), q~(.|x_<i), D_i) with draft
D_i = Finv_{q~(.|x_<i)}(U(i, DRAFT)) and Verify_i reading only U(i, ACCEPT) and
U(i, RESIDUAL). SI's X_i is either that (a drafted slot) or Finv_{p~(.|x_<i)}(U(i,
TARGET)) (the bonus slot); which one is decided by x_<i (the block boundaries are
a function of the earlier outcomes). In both algorithms x_<i is a function of the
uniforms at positions < i only, so the uniforms at position i are independent of
x_<i; given x_<i the slot's token has law p~(. | x_<i) by Lemma A or B (or
directly, for the bonus slot). A key asked again (a redraft after a rejection,
with a new prefix) returns a function of the same U and of the *new* question, so
the draw that is committed is still a fresh draw given x_<i. Multiplying the
conditionals over i gives L.

Checks (registered below; the proofs above are general, the checks are instances):
- z3 (over the reals): Lemma A and Lemma B for V = 2, 3, 4 (the negation is unsat);
  and a negative control, the rule with the residual replaced by p, is sat.
- enumeration: `dsi_ref.exact.exact_law` of the real run_si / run_dsi (the law of
  the code, no sampling error) equals `target_law` on a small grid (V in {2, 3},
  n = 3, k in {1, 2}, P in {1, 2}, two latency settings, T = 1, T = 1/2, top-k 2,
  greedy, point mass); planted faults (always accept, residual from p, q at the
  wrong temperature) make the same comparison fail. The large grid is in
  tests/test_exact_lossless.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.exact import exact_law
from dsi_ref.latency import Latency
from dsi_ref.law import target_law
from dsi_ref.models import LanguageModel, random_markov
from dsi_ref.prob import Num
from dsi_ref.result import RunResult
from dsi_ref.sampling import SamplingConfig
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi
from dsi_ref.workers import REFERENCE_PARTS, RunParts
from proofs.lemmas_z3 import planted_wrong_lemma, point_mass_lemma, speculative_sampling_lemma
from proofs.registry import check

Runner = Callable[..., RunResult]

VOCABS = (2, 3, 4)
N_TOKENS = 3
LATENCIES = (
    (Latency.of(1, 1), Latency.of("1/10", "1/10")),
    (Latency.of(3, 1), Latency.of("1/2", "1")),
)
SAMPLINGS = (
    SamplingConfig(),
    SamplingConfig(temperature=Fraction(1, 2)),
    SamplingConfig(top_k=2),
    SamplingConfig(greedy=True),
)


@check(theorem="T1", method="z3")
def per_position_lemmas_z3() -> tuple[int, str]:
    for v in VOCABS:
        speculative_sampling_lemma(v)
        point_mass_lemma(v)
        assert planted_wrong_lemma(v), f"z3 found no counterexample to the planted rule, V={v}"
    return len(VOCABS) * 2, "Lemma A and Lemma B unsat-of-negation for V=2..4; planted rule sat"


def _pair(vocab: int, seed: int) -> tuple[LanguageModel, LanguageModel]:
    return (
        random_markov(vocab, 1, seed, exact=True, name="target"),
        random_markov(vocab, 1, seed + 100, exact=True, name="drafter"),
    )


def _clean(law: Mapping[tuple[int, ...], Num]) -> dict[tuple[int, ...], Num]:
    return {x: pr for x, pr in law.items() if pr != 0}


def _code_law(
    run: Runner,
    target: LanguageModel,
    drafter: LanguageModel,
    cfg: RunConfig,
    parts: RunParts = REFERENCE_PARTS,
) -> dict[tuple[int, ...], Fraction]:
    return exact_law(lambda ch: run(target, drafter, cfg, chooser=ch, parts=parts).tokens)


def _instances() -> list[tuple[str, Runner, int, RunConfig]]:
    out: list[tuple[str, Runner, int, RunConfig]] = []
    for vocab in (2, 3):
        for k in (1, 2):
            for servers in (1, 2):
                for tl, dl in LATENCIES:
                    cfg = RunConfig(N_TOKENS, k, servers, target_latency=tl, drafter_latency=dl)
                    out.append(("dsi", run_dsi, vocab, cfg))
    for vocab in (2, 3):
        for s in SAMPLINGS:
            for pm in (False, True):
                if s.greedy and pm:
                    continue
                cfg = RunConfig(N_TOKENS, 2, 2, sampling=s, point_mass_proposal=pm)
                out.append(("dsi", run_dsi, vocab, cfg))
                out.append(("si", run_si, vocab, cfg))
    return out


@check(theorem="T1", method="enumeration")
def exact_law_equals_target_law() -> tuple[int, str]:
    insts = _instances()
    for i, (name, run, vocab, cfg) in enumerate(insts):
        target, drafter = _pair(vocab, seed=i)
        want = _clean(target_law(target, cfg.sampling, cfg.max_tokens, cfg.prompt))
        got = _clean(_code_law(run, target, drafter, cfg))
        assert got == want, f"{name} V={vocab} {cfg}: exact law of the code != target law"
    return len(insts), f"exact law == target law on {len(insts)} (algorithm, model, config)"


@check(theorem="T1", method="enumeration")
def planted_faults_break_the_law() -> tuple[int, str]:
    """Negative control: the same comparison must fail for each planted verification bug
    (faulty parts from tests/faulty.py, so this check needs the source tree)."""
    from proofs.planted import Fault, planted  # the planted bugs live with the tests

    faults = (Fault.ALWAYS_ACCEPT, Fault.RESIDUAL_FROM_P, Fault.Q_WRONG_TEMPERATURE)
    n = 0
    for fault in faults:
        for name, run in (("si", run_si), ("dsi", run_dsi)):
            target, drafter = _pair(3, seed=7)
            temp = Fraction(1, 2) if fault is Fault.Q_WRONG_TEMPERATURE else Fraction(1)
            cfg = RunConfig(
                N_TOKENS,
                2,
                2,
                sampling=SamplingConfig(temperature=temp),
            )
            want = _clean(target_law(target, cfg.sampling, cfg.max_tokens))
            got = _clean(_code_law(run, target, drafter, cfg, planted(fault)))
            assert got != want, f"{name} with {fault.name}: law unchanged, the check is blind"
            n += 1
    return n, "always-accept, residual-from-p, wrong-temperature q each detected in SI and DSI"
