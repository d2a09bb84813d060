"""Which algorithm, policy and k to run for a given c, a and P, and what it gives.

For one drafter cost c (target pass = 1, TTFT = TPOT), acceptance rate a, P target
servers, n tokens and a clock (dsi_ref.theory.clocked): non-SI's expected latency (n)
and SI's at its best k (exact: dsi_ref.theory.offline.si_exact, a Fraction DP) are
exact; every DSI policy's at its best k is estimated on the virtual clock over `reps`
seeded acceptance patterns (the same for every policy and k), as SI's exact expected
latency at that k as the control variate (dsi_ref.theory.clocked.control_variate),
reported with its standard error and range. The recommendation is the least expected latency; when a
DSI policy wins by less than two standard errors of its own estimate, the pick says
the difference is within noise (and `safe`, never slower than SI at the same k on the
non-preemptive clock, docs/theorems.md T7, is the cautious choice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.policies import POLICIES
from dsi_ref.theory.clocked import Clock, Estimate, best_k, drafter_cost, patterns
from dsi_ref.theory.offline import si_exact

N_MAX = 10_000
KMAX_MAX = 64
REPS_MAX = 10_000
SERVERS_MAX = 1024
WORK_MAX = 2 * 10**7  # token-runs: policies * kmax * reps * n (about ten minutes)
SEED = 12  # the patterns' seed: a pick is reproducible


@dataclass(frozen=True)
class Choice:
    """One algorithm at its best k: expected latency (exact, or a Monte Carlo estimate)."""

    name: str  # "non-SI", "SI" or a DSI policy's name
    k: int  # 0 for non-SI
    latency: float
    estimate: Estimate | None  # None: exact


@dataclass(frozen=True)
class Pick:
    c: Fraction
    a: Fraction
    servers: int
    n: int
    clock: Clock
    reps: int
    kmax: int
    nonsi: Choice
    si: Choice
    dsi: tuple[Choice, ...]

    @property
    def best(self) -> Choice:
        return min((self.nonsi, self.si, *self.dsi), key=lambda ch: ch.latency)

    def within_noise(self) -> list[Choice]:
        """Other choices within two standard errors of the best (of the difference of the
        two estimates; an exact latency has none): the patterns do not tell them apart."""
        b = self.best

        def se(ch: Choice) -> float:
            e = ch.estimate
            return e.stderr if e is not None and math.isfinite(e.stderr) else 0.0

        return [
            ch
            for ch in (self.nonsi, self.si, *self.dsi)
            if ch is not b and ch.latency - b.latency <= 2 * math.hypot(se(b), se(ch))
        ]


def _fraction(x: object, what: str, lo_open: bool) -> Fraction:
    if isinstance(x, bool) or not isinstance(x, (int, float, Fraction, str)):
        raise InvalidConfig(f"{what} must be a number, got {show(x)}")
    try:
        # floats by their decimal spelling: 0.3 means three tenths
        f = Fraction(x.strip() if isinstance(x, str) else str(x) if isinstance(x, float) else x)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise InvalidConfig(f"{what} must be a number, got {show(x)}") from None
    if f > 1 or f < 0 or (lo_open and f == 0):
        span = "(0, 1]" if lo_open else "[0, 1]"
        raise InvalidConfig(f"{what} must lie in {span}, got {show(x)}")
    return f


def _int(x: object, what: str, most: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= most:
        raise InvalidConfig(f"{what} must be an int in [1, {most}], got {show(x)}")
    return x


def pick(
    c: object,
    a: object,
    servers: int,
    clock: Clock,
    n: int = 64,
    reps: int = 16,
    kmax: int = 10,
    policies: tuple[str, ...] = tuple(POLICIES),
) -> Pick:
    """Every policy's best k and expected latency beside SI's and non-SI's (module doc)."""
    fc = _fraction(c, "drafter latency c", lo_open=True)
    if drafter_cost(fc) != fc:
        raise InvalidConfig(f"drafter latency c must be a multiple of 1e-6, got {show(c)}")
    fa = _fraction(a, "acceptance rate a", lo_open=False)
    _int(servers, "servers P", SERVERS_MAX)
    _int(n, "tokens n", N_MAX)
    _int(reps, "reps", REPS_MAX)
    _int(kmax, "kmax", KMAX_MAX)
    if not isinstance(clock, Clock):
        raise InvalidConfig(f"clock must be a dsi_ref.theory.clocked.Clock, got {show(clock)}")
    for p in policies:
        if p not in POLICIES:
            raise InvalidConfig(f"policy must be one of {sorted(POLICIES)}, got {show(p)}")
    work = len(policies) * kmax * reps * n
    if work > WORK_MAX:
        raise InvalidConfig(
            f"policies * kmax * reps * n = {len(policies)} * {kmax} * {reps} * {n} = "
            f"{show(work)} exceeds {show(WORK_MAX)} (about ten minutes); lower kmax, reps or n"
        )
    exact = [si_exact(fa, fc, k, n) for k in range(1, kmax + 1)]
    si_t = min(exact)
    si_k = 1 + exact.index(si_t)  # the smallest k among equals
    pats = patterns(fa, n, reps, SEED)
    dsi = []
    for name in policies:
        k, est = best_k(pats, fc, servers, name, clock, kmax, exact)
        dsi.append(Choice(name, k, est.mean, est))
    return Pick(
        fc,
        fa,
        servers,
        n,
        clock,
        reps,
        kmax,
        Choice("non-SI", 0, float(n), None),
        Choice("SI", si_k, float(si_t), None),
        tuple(dsi),
    )


def format_pick(p: Pick) -> str:
    """The table and the recommendation, as `python -m dsi_ref pick` prints them."""
    si, nonsi = p.si.latency, p.nonsi.latency
    lines = [
        f"c = {float(p.c):g}, a = {float(p.a):g}, P = {p.servers}, n = {p.n} tokens, "
        f"{p.clock} clock, k <= {p.kmax}",
        f"SI and non-SI exact; DSI: estimated over {p.reps} seeded acceptance patterns (the "
        "same for every row) with SI at the same k, exact, as the control variate; se: the "
        "standard error; [min, max]: of the adjusted values over the patterns",
        "",
        f"{'algorithm':<18} {'k':>3} {'E[latency]':>11} {'se':>7} "
        f"{'[min, max]':>17} {'vs SI best':>10} {'vs non-SI':>9}",
    ]
    for ch in (p.nonsi, p.si, *p.dsi):
        name = ch.name if ch.estimate is None else f"DSI {ch.name}"
        k = "-" if ch.k == 0 else str(ch.k)
        if ch.estimate is None:
            se, rng = "exact", ""
        else:
            e = ch.estimate
            se = f"{e.stderr:.2f}" if math.isfinite(e.stderr) else "-"
            rng = f"[{e.lo:.2f}, {e.hi:.2f}]"
        lines.append(
            f"{name:<18} {k:>3} {ch.latency:>11.3f} {se:>7} {rng:>17} "
            f"{si / ch.latency:>9.3f}x {nonsi / ch.latency:>8.3f}x"
        )
    b = p.best
    what = b.name if b.estimate is None else f"DSI with policy {b.name}"
    k = "" if b.k == 0 else f" at k = {b.k}"
    lines += [
        "",
        "speedups: expected latency of SI at its best k (or of non-SI) / the row's (> 1: faster)",
        f"recommendation: {what}{k}: expected {b.latency:.3f} target passes for {p.n} tokens, "
        f"{si / b.latency:.3f}x SI at its best k ({p.si.k}), {nonsi / b.latency:.3f}x non-SI",
    ]
    close = p.within_noise()
    if close:
        names = ", ".join(ch.name for ch in close)
        lines.append(
            f"within two standard errors of it (not told apart by {p.reps} patterns): {names}"
        )
    return "\n".join(lines)
