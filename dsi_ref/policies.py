"""Scheduling policies: what DSIScheduler does among the moves its six rules allow.

The rules (dsi_ref.scheduler) say what is legal and keep the output lossless; a
policy only picks among legal moves. Every knob below reads the past alone (what
has been committed, which drafts are in hand, which tasks run and since when on the
scheduler's predicted clock, the pool of servers), never a uniform of a position
still to be verified, so every policy commits the sequential reference's tokens
(T6) and has the target's output law (T1).

Knobs:
- `drafter_pause` (non-preemptive clock only): the drafter does not start a draft
  whose pass would still run when a running verification task, which could reject
  an earlier draft, ends. Such a draft would hold the drafter past the rejection
  (a pass cannot be stopped), which SI never suffers: its drafter is idle while
  the target verifies.
- `spare_server` (non-preemptive clock only): a task that a rejection can cancel
  while it runs (a target-only task, or a verification task whose first scored
  position is beyond the committed prefix) never takes the last free server. The
  head verification task (first scored position = committed count) may: it is
  what SI would run.
- `extend_on_start` (non-preemptive clock only): a queued verification task that
  reaches a server scores every draft ready by then, not only the k it was cut at
  (it is resubmitted with the longer block at the instant it starts).
- `extend_servers` (with extend_on_start): extend_on_start acts only when the run has
  P <= this many target servers (None: at every P). `safe` sets 2: at P >= 3 its
  extensions are what T7 (b)'s written proof could not cover, and without them (b) is
  proved at every P (docs/theorems.md T7 (b)); at P <= 2 (b) is proved with them.
- `fresh_blocks` (non-preemptive clock only): the draft made beside a verification
  task (at its last scored position, SI's bonus position) belongs to that task, and
  the next block holds k drafts after it. The paper counts it as the next block's
  first draft, so the next task scores only k - 1 new drafts and a cycle commits k
  tokens where SI's commits k + 1.
- `max_speculative` (with spare_server): at most this many servers may be held
  or run speculative tasks at once (None: no limit beyond the spare server).
- `chain` (non-preemptive clock only): False: no target-only task (rule 3) except at
  the last position (nothing else scores it once its drafts are committed). Each such
  task is speculative, and one that a verification overtakes still holds its server.
- `lookahead`: "fixed" (k drafts per block) or "heuristic", transformers' assisted
  generation schedule: k grows by 2 after a block whose drafts were all accepted and
  shrinks by 1 (not below 1) after a rejection. The run's `k` is the start value.
  Or "measured": after every verdict, k is the one that minimises SI's long-run
  latency per token, (k c + 1) / (1 + a + ... + a^k) (dsi_ref.theory.closed_form),
  at the measured acceptance a = (accepted + 1) / (verdicts + 2) (verdicts so far,
  a uniform prior) and c = drafter TPOT / target TPOT (`best_k`).

SI reads only the `lookahead` knob (`si_next_k`, dsi_ref.si): with `adaptive` or
`paper-adaptive` its k follows the heuristic schedule, with `measured` best_k after each
block, with the others k is fixed.

Named policies: `safe` (the default: never slower than SI at the same k, pathwise, when
the drafter's pass is no longer than either target pass, D <= min(T0, T): proved at every
P, with extend_on_start acting only at P <= 2; every P >= 3 runs as P = 3;
docs/theorems.md T7 (b)),
`eager` (safe without the limit of one speculative server: faster in expectation with
many servers, but only within D of SI pathwise), `paper` (the paper's: every move as
early as possible; best in expectation with several servers, but it can lose to SI and,
without preemption, to non-SI), `adaptive` / `paper-adaptive` (safe / paper with the
heuristic k) and `measured` (safe with the k that measured acceptance and pass costs
call for).

On the preemptive clock (the paper's model) every knob but `lookahead` does nothing, so
`safe` and `paper` run identically there: every result frozen before policies
existed (benchmarks/golden.json) is reproduced by the default policy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.errors import InvalidConfig, show

LOOKAHEADS = ("fixed", "heuristic", "measured")
MAX_MEASURED_K = 32  # the largest k the "measured" lookahead picks


@dataclass(frozen=True)
class Policy:
    name: str
    drafter_pause: bool = False
    spare_server: bool = False
    extend_on_start: bool = False
    extend_servers: int | None = None
    fresh_blocks: bool = False
    max_speculative: int | None = None
    chain: bool = True
    lookahead: str = "fixed"

    def __post_init__(self) -> None:
        x = self.extend_servers
        if x is not None and (type(x) is not int or x < 1):
            raise InvalidConfig(f"extend_servers must be an int >= 1 or None, got {show(x)}")
        if self.lookahead not in LOOKAHEADS:
            raise InvalidConfig(
                f"lookahead must be one of {LOOKAHEADS}, got {show(self.lookahead)}"
            )


PAPER = Policy("paper")
SAFE = Policy(
    "safe",
    drafter_pause=True,
    spare_server=True,
    extend_on_start=True,
    extend_servers=2,
    fresh_blocks=True,
    max_speculative=1,
    chain=False,
)
# The policies derived from SAFE keep extend_on_start at every P, as before.
EAGER = dataclasses.replace(
    SAFE, name="eager", max_speculative=None, chain=True, extend_servers=None
)
ADAPTIVE = dataclasses.replace(SAFE, name="adaptive", lookahead="heuristic", extend_servers=None)
MEASURED = dataclasses.replace(SAFE, name="measured", lookahead="measured", extend_servers=None)
PAPER_ADAPTIVE = Policy("paper-adaptive", lookahead="heuristic")

POLICIES: dict[str, Policy] = {
    p.name: p for p in (SAFE, EAGER, PAPER, ADAPTIVE, MEASURED, PAPER_ADAPTIVE)
}
DEFAULT_POLICY = SAFE.name  # the one users should run: it matters only without preemption


def get_policy(name: object) -> Policy:
    """The policy called `name`; InvalidConfig naming the bad value and the choices."""
    if isinstance(name, Policy):
        return name
    if not isinstance(name, str) or name not in POLICIES:
        raise InvalidConfig(f"policy must be one of {sorted(POLICIES)}, got {show(name)}")
    return POLICIES[name]


def best_k(accepted: int, verdicts: int, c: float, most: int = MAX_MEASURED_K) -> int:
    """The k in 1..most minimising SI's long-run latency per token (k c + 1) / (1 + a +
    ... + a^k) at a = (accepted + 1) / (verdicts + 2): the renewal-reward rate of
    dsi_ref.theory.closed_form.si_rate, in floats (it runs after every verdict)."""
    a = (accepted + 1) / (verdicts + 2)
    best, best_rate = 1, math.inf
    tokens, power = 1.0, 1.0
    for k in range(1, most + 1):
        power *= a
        tokens += power
        rate = (k * c + 1) / tokens
        if rate < best_rate:
            best, best_rate = k, rate
    return best


def si_next_k(
    policy: Policy,
    k: int,
    drafts: int,
    all_accepted: bool,
    accepted: int,
    verdicts: int,
    c: float,
    most: int,
) -> int:
    """SI's k for its next block under `policy.lookahead` (SI reads only the lookahead
    knob of a policy), after a block of `drafts` drafts: "heuristic" as DSI's (+2, at
    most `most`, when every draft of the block was accepted, else -1, at least 1),
    "measured" `best_k` at the run's verdicts so far, "fixed" k. A block with no draft
    (the last position) changes nothing. Reads only verdicts already made."""
    if drafts == 0 or policy.lookahead == "fixed":
        return k
    if policy.lookahead == "heuristic":
        return min(k + 2, most) if all_accepted else max(1, k - 1)
    return best_k(accepted, verdicts, c)


def cost_ratio(drafter_tpot: Fraction, target_tpot: Fraction) -> float:
    """c = drafter TPOT / target TPOT for the "measured" lookahead (0 if the target's is 0),
    as DSIScheduler._measure computes it."""
    return float(drafter_tpot / target_tpot) if target_tpot else 0.0


def max_prob(q: object) -> float | Fraction | None:
    """The drafter's confidence in its draft: q's largest probability (a tuple of numbers
    in dsi_ref, a tensor in gpu_runner); None when the draft came without q (gpu_runner's
    replaced passes), which never stops a block."""
    if q is None:
        return None
    biggest = getattr(q, "max", None)
    if callable(biggest):  # a tensor: one reduction, not a Python loop over the vocabulary
        return float(biggest())
    return max(q)  # type: ignore[call-overload, no-any-return]


def low_confidence(q: object, threshold: float | Fraction | None) -> bool:
    """Confidence-based early stop of drafting (transformers' assistant_confidence_threshold
    idea): the block ends after a draft whose q's largest probability is below
    `threshold` (None: off). Reads only the q already computed for that draft, so the
    decision is from the past and the output law stays the target's."""
    if threshold is None:
        return False
    m = max_prob(q)
    return m is not None and m < threshold


def check_confidence(x: object, what: str = "draft_confidence") -> float | Fraction | None:
    """None, or a number in (0, 1]; InvalidConfig naming the bad value otherwise."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float, Fraction)) or not 0 < x <= 1:
        tail = "" if what.startswith("--") else " or None"  # a flag is left out, not None
        raise InvalidConfig(f"{what} must be a number in (0, 1]{tail}, got {show(x)}")
    return x
