"""T6 (schedule independence): DSI commits the sequential reference's tokens.

Setting. Target and drafter models, a sampling warp, a prompt, n = max_tokens, and
keyed randomness: one uniform U(i, purpose) per absolute position i and purpose;
a query under a key is a deterministic function of U(key) and of what is asked.

Condition (C). (C1) The drafter's draft at position i is a function of the chain
it conditions on and of U(i, DRAFT) only (`Verifier.draft` keys it by position,
never by the order or time it was asked). (C2) A target pass's p at position j is
a function of tokens[:j] only. (C3) The verification rule at position i is a
function of (p, q, draft) and of U(i, ACCEPT), U(i, RESIDUAL) only. dsi_ref
satisfies (C) by construction (dsi_ref.workers, dsi_ref.verify).

Theorem. Under (C), for every k >= 1, P >= 1, latencies (any TTFT/TPOT of both
models; the drafter may be slower than the target), and every order in which
drafts and target passes complete (any driver that executes DSIScheduler's
commands and reports their results, instant or late cancellation, stale results
included), DSI's committed tokens equal `dsi_ref.sequential.reference_tokens`:
X_i = Verify_i(p(.|X_<i), q(.|X_<i), Draft_i(X_<i)) for every i < n, pathwise, for
every value of the uniforms.

Proof, by induction on the commit position c. Let X_<c be committed. The scheduler
commits position c only in `_commit_ready`, from s.p_avail[c] and s.drafts[0]:
(a) s.drafts[0] is the draft at position c on the chain committed[:c] + (drafts
    before it). Since the drafts before it have all been committed as *accepted*
    (a rejection clears s.drafts and restarts drafting from the new prefix,
    rule 5), that chain is X_<c; by (C1) the draft and its q are Draft_c(X_<c).
(b) s.p_avail[c] was stored by a task that was live when it finished (stale
    results are ignored). A live task's tokens were committed + drafts at its
    submission; every rejection since then would have cancelled it (rule 5) and
    cleared s.p_avail, so its tokens[:c] were all later committed as accepted
    drafts or were already committed: tokens[:c] = X_<c and by (C2) p = p(.|X_<c).
(c) By (C3) the committed token is Verify_c on the same arguments as the
    reference, with the same uniforms. Nothing else writes s.committed.
Hence X_c equals the reference's token c. Timing, k, P and the order of events
enter only through *when* (a) and (b) become available, never through their values.

Where (C1) fails, the theorem fails: SI's bonus token is drawn from p under key
(i, TARGET), so SI's tokens depend on k (tests/test_schedule_independence.py).
Planted scheduler bugs that commit a cancelled task's p (COMMIT_CANCELLED) or keep
tasks built on a rejected draft (UNVERIFIED_PREFIX) break (b): DSIScheduler
subclasses in tests/faulty.py, so that check needs the source tree.

Checks (registered below):
- enumeration: for each instance, exact_law of a run that executes run_dsi AND
  reference_tokens under the SAME enumerating chooser and returns whether the
  tokens are equal is {True: 1}: equality for every value of the uniforms (a proof
  for that instance). Instances: V in {2, 3}, n in {3, 4}, k in {1, 2, 3},
  P in {1, 2, 3}, latencies with a fast, an equal and a slower drafter and
  TTFT != TPOT, samplings T=1, T=1/2, top-k, greedy, point mass; plus the same
  scheduler driven in seeded random completion orders (no clock, late
  cancellation: results of cancelled work are delivered and must be ignored).
- negative controls: with COMMIT_CANCELLED or UNVERIFIED_PREFIX the law puts
  positive mass on False (V = 2, n = 4, k = 1, P = 1).
- hypothesis: seeded (float) models V in 2..6, n <= 12, k <= 5, P <= 4, rational
  latencies, random seeds: run_dsi tokens == reference_tokens.
"""

from __future__ import annotations

import random
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsi_ref.config import RunConfig
from dsi_ref.exact import exact_law
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, random_markov
from dsi_ref.randomness import Chooser
from dsi_ref.sampling import SamplingConfig
from dsi_ref.scheduler import (
    CancelDraft,
    CancelTask,
    Command,
    DSIScheduler,
    Finished,
    StartDraft,
    StartTask,
)
from dsi_ref.sequential import reference_tokens
from dsi_ref.virtual import run_dsi
from dsi_ref.workers import REFERENCE_PARTS, RunParts, workers_for
from proofs.registry import check

LATENCIES = (
    (Latency.of(1, 1), Latency.of("1/10", "1/10")),
    (Latency.of(3, 1), Latency.of("1/2", "1")),
    (Latency.of("1/2", 1), Latency.of(2, 3)),  # drafter slower than the target
)
SAMPLINGS = (
    (SamplingConfig(), False),
    (SamplingConfig(temperature=Fraction(1, 2)), False),
    (SamplingConfig(top_k=2), False),
    (SamplingConfig(greedy=True), False),
    (SamplingConfig(), True),  # point-mass proposal
)


def _pair(vocab: int, seed: int, exact: bool) -> tuple[LanguageModel, LanguageModel]:
    return (
        random_markov(vocab, 1, seed, exact=exact, name="target"),
        random_markov(vocab, 1, seed + 100, exact=exact, name="drafter"),
    )


def run_dsi_in_order(
    target: LanguageModel, drafter: LanguageModel, cfg: RunConfig, chooser: Chooser, order: int
) -> tuple[int, ...]:
    """DSIScheduler driven with no clock: a seeded RNG picks which started draft or
    task completes next; cancelled work still completes and its (stale) result is
    delivered, which the scheduler must ignore."""
    verifier, scorer, drafter_w = workers_for(target, drafter, cfg, chooser)
    sched = DSIScheduler.from_config(cfg, verifier)
    rng = random.Random(order)
    pending: list[StartDraft | StartTask] = []
    out: tuple[int, ...] | None = None

    def take(cmds: list[Command]) -> None:
        nonlocal out
        for c in cmds:
            if isinstance(c, StartDraft | StartTask):
                pending.append(c)
            elif isinstance(c, Finished):
                out = c.tokens
            elif isinstance(c, CancelDraft | CancelTask):
                pass  # late cancellation: the work completes, its result is stale

    take(sched.start())
    while out is None:
        if not pending:
            raise AssertionError("scheduler stalled with nothing in flight")
        job = pending.pop(rng.randrange(len(pending)))
        if isinstance(job, StartDraft):
            token, q = drafter_w.draft(job.tokens, job.position)
            take(sched.on_draft_done(job.draft_id, token, q))
        else:
            take(sched.on_task_done(job.task_id, scorer.score(job.tokens, job.first, job.last)))
    return out


def same_tokens_law(
    target: LanguageModel,
    drafter: LanguageModel,
    cfg: RunConfig,
    order: int | None = None,
    parts: RunParts = REFERENCE_PARTS,
) -> dict[bool, Fraction]:
    """The exact law of [DSI built by `parts` == the reference] under one chooser."""

    def both(ch: Chooser) -> bool:
        if order is None:
            got = run_dsi(target, drafter, cfg, chooser=ch, parts=parts).tokens
        else:
            got = run_dsi_in_order(target, drafter, cfg, ch, order)
        return got == reference_tokens(target, drafter, cfg, chooser=ch)

    return exact_law(both)


def _instances() -> list[tuple[int, RunConfig, int | None]]:
    out: list[tuple[int, RunConfig, int | None]] = []
    for k in (1, 2, 3):
        for servers in (1, 2, 3):
            for tl, dl in LATENCIES:
                cfg = RunConfig(4, k, servers, target_latency=tl, drafter_latency=dl)
                out.append((2, cfg, None))
    for sampling, pm in SAMPLINGS:
        for k, servers in ((1, 1), (2, 2)):
            cfg = RunConfig(3, k, servers, sampling=sampling, point_mass_proposal=pm)
            out.append((3, cfg, None))
    for order in range(6):
        cfg = RunConfig(4, 1 + order % 3, 1 + order % 2)
        out.append((2, cfg, order))
    return out


@check(theorem="T6", method="enumeration")
def dsi_equals_reference_for_all_uniforms() -> tuple[int, str]:
    insts = _instances()
    for i, (vocab, cfg, order) in enumerate(insts):
        target, drafter = _pair(vocab, seed=i, exact=True)
        law = same_tokens_law(target, drafter, cfg, order)
        assert law == {True: 1}, f"V={vocab} order={order} {cfg}: P(DSI == reference) = {law}"
    return len(insts), "P(run_dsi tokens == reference_tokens) = 1 exactly on every instance"


@check(theorem="T6", method="enumeration")
def planted_scheduler_faults_break_it() -> tuple[int, str]:
    from proofs.planted import Fault, planted  # the planted bugs live with the tests

    n = 0
    for fault in (Fault.COMMIT_CANCELLED, Fault.UNVERIFIED_PREFIX):
        target, drafter = _pair(2, seed=3, exact=True)
        cfg = RunConfig(
            4,
            1,
            1,  # at P = 2 this instance never commits a stale p: the fault needs a queue here
            drafter_latency=Latency.of("1/4", "1/4"),
        )
        law = same_tokens_law(target, drafter, cfg, None, planted(fault))
        assert law.get(False, 0) > 0, f"{fault.name}: P(differs) = 0, the check is blind"
        n += 1
    return n, "COMMIT_CANCELLED and UNVERIFIED_PREFIX each give P(DSI != reference) > 0"


_TIME = st.fractions(min_value=Fraction(1, 8), max_value=4, max_denominator=8)


@check(theorem="T6", method="hypothesis")
def dsi_equals_reference_seeded() -> tuple[int, str]:
    count = 0

    @settings(
        max_examples=150,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        vocab=st.integers(2, 6),
        n=st.integers(1, 12),
        k=st.integers(1, 5),
        servers=st.integers(1, 4),
        lat=st.tuples(_TIME, _TIME, _TIME, _TIME),
        seed=st.integers(0, 2**32),
        model_seed=st.integers(0, 1000),
    )
    def prop(
        vocab: int,
        n: int,
        k: int,
        servers: int,
        lat: tuple[Fraction, Fraction, Fraction, Fraction],
        seed: int,
        model_seed: int,
    ) -> None:
        nonlocal count
        target, drafter = _pair(vocab, model_seed, exact=False)
        cfg = RunConfig(
            n,
            k,
            servers,
            seed=seed,
            target_latency=Latency(lat[0], lat[1]),
            drafter_latency=Latency(lat[2], lat[3]),
        )
        got = run_dsi(target, drafter, cfg).tokens
        assert got == reference_tokens(target, drafter, cfg), f"{cfg}"
        count += 1

    prop()
    return count, "run_dsi tokens == reference_tokens on every hypothesis example"
