"""T7 (scheduling policies on the non-preemptive clock): what they keep and what they win.

Model. dsi_ref.virtual with preemptive=False: a cancelled pass holds its server (or
the drafter) until it would have ended. Latencies T0, T (target), D0, D (drafter),
per_position = 0; n = max_tokens, lookahead k, P servers. A policy
(dsi_ref.policies) chooses among the moves the six rules allow. The coupling for
the pathwise timing claims is the acceptance pattern indexed by absolute position
(dsi_ref.pattern), as for T2 and T3: SI ignores the bits of its bonus positions.

(a) Losslessness and schedule independence, every policy. A policy reads only the
    past (committed tokens, drafts in hand, running tasks and their predicted ends,
    the pool), never a uniform of an uncommitted position, and acts only through
    the rules' moves: when a draft starts, which queued task starts, how many
    drafts a task scores. T6's proof uses none of these choices (it needs only that
    a committed position's p and draft were computed on the committed prefix), so
    DSI's tokens equal the sequential reference's for every policy, pathwise, and
    T1 follows. PROVED by that argument; CHECKED exactly (below) for every named
    policy on both clocks.

(b) `safe` is never slower than SI at the same k, pathwise, for every P >= 1,
    when D0 <= T0, D <= T and D <= T0 (the last is needed when T0 < T:
    proofs.t7b_lemmas has the counterexample). `safe` extends a queued task at its
    start (extend_on_start) only at P <= 2 (extend_servers = 2). Exhaustive: every pattern,
    n <= 6, k in {1, 2, 3}, seven latency settings, P = 1, 2, 3; and safe never has
    more than 2 servers busy or held, so every P >= 3 runs as P = 3 (proved in
    docs/theorems.md from L8, L9; checked here on the grid and on 300 random runs up
    to n = 40). The written proof (docs/theorems.md T7 (b)) reduces it to lemmas
    L1..L5, checked in proofs.t7b_lemmas with seven more (L6: DSI starts every draft
    no later than SI starts its work on that position; L7: a task's start against
    SI's at its last position; L8: an epoch's passes start in position order, a
    running pass is cancelled only by a rejection, one head task; L9: at most one
    server held or speculative; L10: every position from c to the last one a live
    verification scores has its p in hand or a live task, so a live speculative
    task means a live head task; L11: P = 2 runs exactly as P = 1; L12: the first
    epoch's task recursion when T0 >= (k+1) D > T; L13: a paused draft is released
    by the end of a verification task scoring below it, or, only at P >= 3, by the
    pass scoring it started beside the first task; L14: a task starts by its
    submission or the ends of the tasks before it; L15, P >= 3: a task that starts at
    its submission has its last at an SI bonus, FALSE: a counterexample is checked
    there; L16: until an epoch's first extension its blocks are SI's cycles; L17: no
    task is extended at P >= 3). Proved there: L1, L3, L8..L14, L16, L2 at every P,
    L4/L5 after a rejection (every P), L6 (so L4) and L7 at every P except for a task
    started at its submission with an SI-drafted last (claim G at P <= 2; at P >= 3
    such a task comes only after an extension, L16, and `safe` extends nothing there,
    L17), and at P = 1 (so, by L11, at P = 2) L4 and L5 for every cycle; so (b) is
    PROVED at every P. (The earlier `safe`, extending at every P, had (b) proved at
    P >= 3 only for its runs without extension: proofs.t7b_lemmas.EXTENDED_SAFE.)
    Why it can hold: the drafter never starts a draft that a running verification
    could cancel mid-pass (drafter_pause), so SI's drafter restart after a
    rejection is never delayed by it; the head verification always finds a server
    (spare_server) and at most one server is held or speculative
    (max_speculative = 1), so SI's verification is never queued behind held
    passes; and a cycle scores k new drafts (fresh_blocks) as SI's does.
    Without the limit of one speculative server (`eager`) it is FALSE for P >= 3:
    T0 = T = 1, D0 = D = 3/4, k = 1, P = 3, n = 6, pattern (reject, accept,
    reject, accept, reject, reject): eager 27/4, SI 25/4. A target-only task
    rejects the draft at an SI bonus position while the next draft runs, and that
    draft holds the drafter. What is checked for `eager` at P = 3 instead:
    T_eager <= T_SI + D on the same grid (additive; the worst found is 2/3 D).

(c) No policy wins both: with non-preemptive passes, T0 = T = 1, D0 = D = 3/4,
    k = 2, n = 3 and any P, no non-anticipating policy is both never slower than
    non-SI (tau_i <= N_i = T0 + i T) and never slower than SI on every pattern.
    Proof. Position 0 must commit by N_0 = 1, so a pass scoring 0 starts at 0 (no
    draft exists then) and the outcome at 0 is known at 1, not before. The drafter's
    draft at 0 ends at 3/4; the draft at 1 starts at some s >= 3/4.
    If s < 1: on patterns rejecting 0, that draft is cancelled at 1 and holds the
    drafter to s + 3/4 > 3/2; the draft at 1 on the corrected token is ready after
    s + 3/2 > 9/4 > N_1 = 2, and DSI commits a position only against a draft.
    If s >= 1: on the all-accept pattern the draft at 1 is ready at >= 7/4, p at 2
    needs a pass on it, ending at >= 11/4, while SI (two drafts, one pass) is done
    at 3/4 + 3/4 + 1 = 5/2. CHECKED: those SI and non-SI times, and that `paper`
    (which starts at s = 3/4) is late against non-SI and `safe` late against SI
    at other instances (the planted checks below).
    So T2 cannot be restored exactly together with (b); `safe` chooses (b). T2 with
    an additive bound holds for the paper's policy: tau_i <= N_i + D on every pattern
    of the grid of (b) with D0 <= T0, D <= T (CHECKED ON INSTANCES, n <= 6).
    `safe` at P = 1 gives T2 up completely (SI can be much slower than non-SI, T4).

Checks (registered below), all on the real code:
- exact enumeration: every named policy, both clocks: the exact law of "DSI's
  tokens == reference_tokens" under one enumerating chooser is {True: 1}, and the
  exact output law equals target_law. Planted: a scheduler that keeps p across a
  rejection; its exact law differs from the target's.
- exhaustive (b) and the additive bounds, with planted policies that break (b):
  `paper` (slower than SI at P = 1) and `safe` without fresh_blocks.
- (b) for every P: safe's schedule at P = 3 equals its schedule at P = 16 (at most
  two servers busy or held; the extension gate reads P only as P <= 2), on the grid
  and on 300 longer random runs; planted: `eager`, whose schedule depends on P.
- the counterexamples of (b) and (c) as exact numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction

from dsi_ref.config import RunConfig
from dsi_ref.exact import exact_law
from dsi_ref.latency import Latency
from dsi_ref.law import target_law
from dsi_ref.models import LanguageModel, random_markov
from dsi_ref.pattern import run_pattern
from dsi_ref.policies import POLICIES, SAFE, Policy, get_policy
from dsi_ref.prob import Dist
from dsi_ref.randomness import Chooser
from dsi_ref.scheduler import Command, DSIScheduler
from dsi_ref.verify import VerifyRule
from dsi_ref.virtual import run_dsi
from dsi_ref.workers import RunParts
from proofs.registry import check
from proofs.t6_schedule import same_tokens_law

F = Fraction
N_MAX = 6
# (T0, T, D0, D) with D0 <= T0, D <= T: equal, fast, 3/4, 2/5 drafters; long prefill.
LATENCIES = (
    (F(1), F(1), F(1, 10), F(1, 10)),
    (F(1), F(1), F(1), F(1)),
    (F(3), F(1), F(1, 3), F(1, 3)),
    (F(3), F(1), F(3), F(1)),
    (F(1), F(1), F(3, 4), F(3, 4)),
    (F(1), F(1), F(2, 5), F(2, 5)),
    (F(2), F(1), F(1, 2), F(1, 2)),
)


def _cfg(n: int, k: int, servers: int, lat: tuple[F, F, F, F], policy: str) -> RunConfig:
    return RunConfig(
        n,
        k,
        servers,
        target_latency=Latency(lat[0], lat[1]),
        drafter_latency=Latency(lat[2], lat[3]),
        preemptive=False,
        policy=policy,
    )


class _PolicyParts(RunParts):
    """Runs DSI with a policy object that has no name in the registry (a planted one),
    optionally on a planted scheduler class."""

    def __init__(self, policy: Policy, cls: type[DSIScheduler[Dist]] = DSIScheduler[Dist]) -> None:
        self.policy = policy
        self.cls = cls

    def scheduler(self, cfg: RunConfig, rule: VerifyRule[Dist]) -> DSIScheduler[Dist]:
        return self.cls(
            cfg.max_tokens,
            cfg.k,
            cfg.servers,
            rule,
            cfg.target_latency.ttft,
            cfg.target_latency.tpot,
            target_per_position=cfg.target_latency.per_position,
            preemptive=cfg.preemptive,
            policy=self.policy,
            drafter_ttft=cfg.drafter_latency.ttft,
            drafter_tpot=cfg.drafter_latency.tpot,
        )


def worst_excess(
    policy: str | Policy, servers: int, versus: str, k_values: tuple[int, ...] = (1, 2, 3)
) -> tuple[F, tuple[object, ...] | None, int]:
    """max over the grid of (DSI - other) / D: latency against SI, or the largest
    commit-time excess against non-SI; with the worst instance and the run count."""
    from dsi_ref.pattern import PATTERN_DRAFTER, PATTERN_TARGET, PatternChooser

    worst, where, runs = F(-(10**9)), None, 0
    name = policy if isinstance(policy, str) else "paper"
    parts = None if isinstance(policy, str) else _PolicyParts(policy)
    for lat in LATENCIES:
        for k in k_values:
            for n in range(1, N_MAX + 1):
                cfg = _cfg(n, k, servers, lat, name)
                for pat in itertools.product((False, True), repeat=n):
                    if parts is None:
                        dsi = run_pattern("dsi", pat, cfg)
                    else:
                        dsi = run_dsi(
                            PATTERN_TARGET,
                            PATTERN_DRAFTER,
                            cfg,
                            chooser=PatternChooser(pat),
                            parts=parts,
                        )
                    other = run_pattern(versus, pat, cfg)
                    if versus == "si":
                        gap = dsi.latency - other.latency
                    else:
                        gap = max(
                            a - b for a, b in zip(dsi.commit_times, other.commit_times, strict=True)
                        )
                    runs += 1
                    if gap / lat[3] > worst:
                        worst, where = gap / lat[3], (lat, k, n, pat)
    return worst, where, runs


@check(theorem="T7", method="exhaustive")
def safe_never_slower_than_si() -> tuple[int, str]:
    """(b): T_safe <= T_SI on every pattern for P = 1, 2, 3 (every P >= 3: the check
    below); T_eager <= T_SI + D at P = 3."""
    total = 0
    for servers in (1, 2, 3):
        worst, where, runs = worst_excess("safe", servers, "si")
        assert worst <= 0, f"P={servers}: safe slower than SI by {worst} D at {where}"
        total += runs
    worst, where, runs = worst_excess("eager", 3, "si")
    assert 0 < worst <= 1, f"P=3: eager - SI = {worst} D at {where} (expected in (0, 1])"
    return total + runs, f"every pattern n <= {N_MAX}: safe <= SI (P = 1, 2, 3), eager <= SI + D"


class _CountsServers(DSIScheduler[Dist]):
    """Records the most servers busy or held at once."""

    most = 0

    def _dispatch(self, out: list[Command]) -> None:
        super()._dispatch(out)
        used = sum(t is not None for t in self.servers)
        _CountsServers.most = max(_CountsServers.most, used)


def _same_for_large_p(policy: str, cases: list[tuple[RunConfig, tuple[bool, ...]]]) -> int:
    """The most servers `policy` uses at P = 16; AssertionError if a schedule at P = 3
    differs from the one at P = 16 (commit times)."""
    from dsi_ref.pattern import PATTERN_DRAFTER, PATTERN_TARGET, PatternChooser

    parts = _PolicyParts(get_policy(policy), _CountsServers)
    _CountsServers.most = 0
    for cfg, pat in cases:
        wide = dataclasses.replace(cfg, servers=16)
        big = run_dsi(
            PATTERN_TARGET, PATTERN_DRAFTER, wide, chooser=PatternChooser(pat), parts=parts
        )
        three = run_pattern("dsi", pat, dataclasses.replace(cfg, servers=3))
        assert big.commit_times == three.commit_times, f"{policy}: P = 3 != P = 16 at {cfg} {pat}"
    return _CountsServers.most


@check(theorem="T7", method="exhaustive")
def safe_schedule_is_the_same_for_every_p_from_3() -> tuple[int, str]:
    """(b) for every P: safe never has more than 2 servers busy or held at once, so
    its schedule at any P >= 3 is its schedule at P = 3 (the dispatch reads P only
    through 'a server is free' and 'two servers are free', the extension gate only
    through 'P <= 2'). Checked: the grid of (b)
    and 300 random longer runs (n <= 40, k <= 6), P = 3 against P = 16. Planted:
    `eager` uses more servers and its schedule changes with P."""
    import random

    grid = [
        (_cfg(n, k, 3, lat, "safe"), pat)
        for lat in LATENCIES
        for k in (1, 2, 3)
        for n in range(1, N_MAX + 1)
        for pat in itertools.product((False, True), repeat=n)
    ]
    rng = random.Random(7)
    grid += [
        (
            _cfg(
                n,
                rng.randint(1, 6),
                3,
                (F(rng.randint(1, 4)), F(1), F(rng.randint(1, 8), 8), F(rng.randint(1, 8), 8)),
                "safe",
            ),
            tuple(rng.random() < 0.8 for _ in range(n)),
        )
        for n in (rng.randint(7, 40) for _ in range(300))
    ]
    most = _same_for_large_p("safe", grid)
    assert most <= 2, f"safe used {most} servers at once"
    eager = [(dataclasses.replace(cfg, policy="eager"), pat) for cfg, pat in grid]
    try:
        _same_for_large_p("eager", eager)
    except AssertionError:
        pass
    else:
        raise AssertionError("planted: eager's schedule should depend on P beyond 3")
    return len(grid), f"safe: at most {most} servers busy or held; P = 3 == P = 16 on every run"


@check(theorem="T7", method="exhaustive")
def planted_policies_are_caught() -> tuple[int, str]:
    """The check of (b) fails on policies that lack what it needs."""
    worst, _, runs = worst_excess("paper", 1, "si", k_values=(1,))
    assert worst > 0, "paper at P = 1 should lose to SI (T3's C1, here non-preemptive)"
    stale = dataclasses.replace(SAFE, name="planted-no-fresh-blocks", fresh_blocks=False)
    worst2, _, runs2 = worst_excess(stale, 1, "si", k_values=(2,))
    assert worst2 > 0, "without fresh_blocks a cycle commits k tokens, SI's k + 1"
    return runs + runs2, f"paper: +{worst} D, no fresh_blocks: +{worst2} D over SI at P = 1"


@check(theorem="T7", method="exhaustive")
def paper_additive_t2_bound() -> tuple[int, str]:
    """(c): the paper's policy, non-preemptive: tau_i <= N_i + D (P = 1, 2, 3)."""
    total = 0
    for servers in (1, 2, 3):
        worst, where, runs = worst_excess("paper", servers, "nonsi")
        assert worst <= 1, f"P={servers}: paper late by {worst} D against non-SI at {where}"
        total += runs
    return total, f"every pattern n <= {N_MAX}: tau_i <= N_i + D for the paper's policy"


@check(theorem="T7", method="counterexample")
def counterexamples_exact() -> tuple[int, str]:
    three_q = (F(1), F(1), F(3, 4), F(3, 4))
    # (b) at P = 3
    x = (False, True, False, True, False, False)
    cfg = _cfg(6, 1, 3, three_q, "eager")
    assert (run_pattern("dsi", x, cfg).latency, run_pattern("si", x, cfg).latency) == (
        F(27, 4),
        F(25, 4),
    )
    assert run_pattern("dsi", x, dataclasses.replace(cfg, policy="safe")).latency <= F(25, 4)
    # (c): the numbers of the impossibility argument, and each policy's side of it
    c3 = _cfg(3, 2, 4, three_q, "paper")
    assert run_pattern("si", (True, True, True), c3).latency == F(5, 2)
    assert run_pattern("nonsi", (True, True, True), c3).commit_times[1] == 2
    late = run_pattern("dsi", (False, True, True), c3).commit_times[1]
    assert late > 2, f"paper (draft at 1 from 3/4) should be late against non-SI, got {late}"
    safe = dataclasses.replace(c3, policy="safe")
    slow = run_pattern("dsi", (False, True, True), safe).commit_times[1]
    assert slow > 2, "safe gives T2 up at this instance (it must, by (c))"
    return 4, "(b) eager at P = 3: 27/4 > 25/4; (c): SI 5/2, N_1 = 2, paper late, safe late"


class _KeepsP(DSIScheduler[Dist]):
    """Planted: a 'policy' that saves passes by keeping the p it has in hand across a
    rejection. That p was computed on a prefix that is no longer committed, which is
    what (a)'s argument forbids; the exact check below catches it."""

    def _reject(self, out: list[Command]) -> None:
        kept = dict(self.s.p_avail)
        super()._reject(out)
        c = len(self.s.committed)
        self.s.p_avail.update({j: v for j, v in kept.items() if j >= c})


@check(theorem="T7", method="enumeration")
def planted_lossy_policy_is_caught() -> tuple[int, str]:
    """(a) fails for a scheduler that reuses p across a rejection: its exact law differs."""
    lat = (F(1), F(1), F(1, 4), F(1, 4))
    cfg = dataclasses.replace(_cfg(3, 2, 2, lat, "paper"), preemptive=True)
    parts = _PolicyParts(get_policy("paper"), _KeepsP)
    caught = 0
    for seed in range(4):
        target, drafter = _pair(seed)

        def tokens(
            ch: Chooser, t: LanguageModel = target, d: LanguageModel = drafter
        ) -> tuple[int, ...]:
            return run_dsi(t, d, cfg, chooser=ch, parts=parts).tokens

        law = exact_law(tokens)
        caught += law != target_law(target, cfg.sampling, cfg.max_tokens, cfg.prompt)
    assert caught > 0, "keeping p across a rejection should change the output law"
    return 4, f"p kept across a rejection: law != target law on {caught} of 4 pairs"


def _pair(seed: int) -> tuple[LanguageModel, LanguageModel]:
    return (
        random_markov(2, 1, seed, exact=True, name="target"),
        random_markov(2, 1, seed + 100, exact=True, name="drafter"),
    )


@check(theorem="T7", method="enumeration")
def every_policy_lossless_and_schedule_independent() -> tuple[int, str]:
    """(a): exact law == target law and tokens == reference for every uniform."""
    n = 0
    lats = ((F(1), F(1), F(1, 4), F(1, 4)), (F(1), F(1), F(3, 4), F(3, 4)))
    for name in sorted(POLICIES):
        for preemptive in (False, True):
            for i, (k, servers, lat) in enumerate(itertools.product((1, 2), (1, 2), lats)):
                cfg = dataclasses.replace(
                    _cfg(3, k, servers, lat, name), preemptive=preemptive, seed=i
                )
                target, drafter = _pair(seed=i)

                def tokens(
                    ch: Chooser,
                    cfg: RunConfig = cfg,
                    target: LanguageModel = target,
                    drafter: LanguageModel = drafter,
                ) -> tuple[int, ...]:
                    return run_dsi(target, drafter, cfg, chooser=ch).tokens

                same = same_tokens_law(target, drafter, cfg)
                assert same == {True: 1}, f"{name} {cfg}: tokens != reference"
                law = exact_law(tokens)
                want = target_law(target, cfg.sampling, cfg.max_tokens, cfg.prompt)
                assert law == want, f"{name} {cfg}: law != target law"
                n += 1
    return n, "every policy, both clocks, V=2, n=3: law == target, tokens == reference"
