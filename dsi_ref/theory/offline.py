"""The authors' offline cost model of SI, DSI and non-SI (the model behind the paper's Figure 2).

Units: one target forward pass costs 1, one drafter forward pass costs c (0 < c <= 1); the run
generates S tokens. Every drafted token is accepted independently with probability a (the
paper's i.i.d. acceptance model), so the number of accepted drafts before the first rejection
in a block of m drafts is X = min(G, m) with G + 1 ~ Geometric(1 - a): P(X = j) = a^j (1 - a)
for j < m and P(X = m) = a^m.

non-SI: S.

SI (one iteration, with n tokens left): draft m = min(k, n - 1) tokens (cost m c), verify them
in one target pass (cost 1), gain X + 1 tokens (the accepted drafts plus the corrected or the
bonus token). The last token is never drafted: with n = 1 an iteration is a plain target pass.

DSI (segments; t tokens done when a segment starts, u gained in it so far): the segment is a
run of blocks; a block drafts m = min(k, S - 1 - t - u) tokens (cost m c) and accepts X of
them. If m = 0 or X < m, the block rejects: one target latency is added, the corrected token
is gained (u += X + 1) and the segment ends; otherwise u += m and the next block is drafted at
once (the verifications run on other servers, in parallel). A segment that drafted D tokens in
all and gained u tokens costs min(D c + 1, u): the target-only chain makes DSI never slower
than non-SI over a segment. Equivalently, with r = n - 1 the draftable tokens left and x the
number of accepted drafts in the segment (x < r w.p. a^x (1-a), x = r w.p. a^r): u = x + 1 and
D = min(r, k (floor(x / k) + 1)), the end of the k-block containing the rejected draft.

Choices where the paper's text leaves one, all as the authors' simulator
(github.com/keyboardAnt/distributed-speculative-inference, dsi/offline/simul/{si,dsi}.py):
- A fully accepted DSI block gains k tokens and no bonus token (its target verification
  overlaps the next block, whose first draft stands where the bonus would be); only the
  rejecting block gains its corrected token. SI gains the bonus token on full acceptance.
- The drafter never drafts the last token (m <= left - 1), in both SI and DSI.
- A block whose first draft is rejected right after a rejection (a one-block segment with
  x = 0) costs min(m c + 1, 1) = 1: its drafting is hidden by the target-only chain. No
  separate rule is needed; the segment minimum covers it.
- X is capped at the m drafts made (the authors cap SI's X at k instead; this changes nothing,
  because an iteration that accepts all of its m = n - 1 drafts ends the run either way).
- Servers are not modelled: a DSI configuration is admissible when enough target servers
  exist for no verification to wait; see `required_servers` for the count.

Three evaluations of the same model: `si_exact` / `dsi_exact` (Fraction DP over tokens left,
O(S k) and O(S^2)); `si_grid` / `dsi_grid` (float64, vectorised with numpy over any broadcast
(a, c) grid, O(S k) array operations); `si_sample` / `dsi_sample` / `monte_carlo` (the
simulator itself, driven by a per-draft acceptance stream: a fixed-seed random.Random for
Monte Carlo, or an explicit bit pattern for brute-force enumeration in the tests).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.prob import Num

FloatArray = npt.NDArray[np.float64]
AcceptStream = Callable[[], bool]  # one call per drafted token in verification order

ALGORITHMS = ("nonsi", "si", "dsi")


def check_params(a: Any, c: Any, k: int, S: int) -> None:
    """Raise InvalidConfig naming the first bad value (arrays are checked elementwise)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidConfig(f"lookahead k must be an int >= 1, got {show(k)}")
    if isinstance(S, bool) or not isinstance(S, int) or S < 1:
        raise InvalidConfig(f"token count S must be an int >= 1, got {show(S)}")
    a_arr = np.asarray(a, dtype=np.float64)
    c_arr = np.asarray(c, dtype=np.float64)
    if not np.all((a_arr >= 0) & (a_arr <= 1)):
        raise InvalidConfig(f"acceptance rate a must lie in [0, 1], got {show(a)}")
    if not np.all((c_arr > 0) & (c_arr <= 1)):
        raise InvalidConfig(f"drafter latency c must lie in (0, 1], got {show(c)}")


def required_servers(k: int, c: float | Fraction, chain: bool = True) -> int:
    """Target servers DSI needs so that no verification task waits.

    A k-block is submitted every k c and a verification takes 1, so ceil(1 / (k c)) of them
    overlap (the paper's count, and the authors' admissibility test). With `chain` one more
    server runs the target-only task on the committed prefix (dsi_ref/scheduler.py, rule
    3), which is what the segment minimum min(D c + 1, u) stands for.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidConfig(f"lookahead k must be an int >= 1, got {show(k)}")
    fc = _exact(c)  # 0.05 means one twentieth: k c = 1 must give one server, not two
    if not 0 < fc <= 1:
        raise InvalidConfig(f"drafter latency c must lie in (0, 1], got {show(c)}")
    blocks = math.ceil(1 / (k * fc))
    return blocks + (1 if chain else 0)


# --- exact (Fraction) DPs over tokens left ---------------------------------------------------


def _exact(x: Num | int) -> Fraction:
    # floats are read by their decimal spelling: 0.9 means nine tenths
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def nonsi_latency(S: int) -> int:
    """non-SI: S target passes."""
    check_params(0, 1, 1, S)
    return S


def si_exact(a: Num, c: Num, k: int, S: int) -> Fraction:
    """E[T_SI] exactly: E(n) = m c + 1 + sum_j P(X = j) E(n - 1 - j), m = min(k, n - 1)."""
    check_params(a, c, k, S)
    fa, fc = _exact(a), _exact(c)
    e = [Fraction(0)] * (S + 1)
    for n in range(1, S + 1):
        m = min(k, n - 1)
        acc = fc * m + 1
        pj = Fraction(1)  # a^j
        for j in range(m):
            acc += pj * (1 - fa) * e[n - 1 - j]
            pj *= fa
        acc += pj * e[n - 1 - m]
        e[n] = acc
    return e[S]


def dsi_drafted(x: int, r: int, k: int) -> int:
    """Drafts made in a segment with r draftable tokens that accepted x of them (x <= r)."""
    return min(r, k * (x // k + 1))


def dsi_exact(a: Num, c: Num, k: int, S: int) -> Fraction:
    """E[T_DSI] exactly: E(n) = sum_x P(x) (min(D(x) c + 1, x + 1) + E(n - 1 - x)), r = n - 1."""
    check_params(a, c, k, S)
    fa, fc = _exact(a), _exact(c)
    e = [Fraction(0)] * (S + 1)
    for n in range(1, S + 1):
        r = n - 1
        acc = Fraction(0)
        pa = Fraction(1)  # a^x
        for x in range(r + 1):
            p = pa * (1 - fa) if x < r else pa
            seg = min(fc * dsi_drafted(x, r, k) + 1, Fraction(x + 1))
            acc += p * (seg + e[n - 1 - x])
            pa *= fa
        e[n] = acc
    return e[S]


# --- float64, vectorised over an (a, c) grid -------------------------------------------------


def _grids(a: Any, c: Any) -> tuple[FloatArray, FloatArray]:
    a_arr, c_arr = np.broadcast_arrays(
        np.asarray(a, dtype=np.float64), np.asarray(c, dtype=np.float64)
    )
    return a_arr, c_arr


def si_grid(a: Any, c: Any, k: int, S: int) -> FloatArray:
    """E[T_SI] in float64 for every (a, c) of the broadcast grid.

    Same DP as `si_exact`, with the window W(n) = sum_{j < min(k, n)} a^j E(n - 1 - j) kept
    by W(n + 1) = E(n) + a W(n) - a^k E(n - k), so that each n is O(1) array operations.
    """
    check_params(a, c, k, S)
    a_arr, c_arr = _grids(a, c)
    ak = a_arr**k
    e = np.zeros((S + 1, *a_arr.shape))
    w = np.zeros(a_arr.shape)  # W(1) = a^0 E(0) = 0
    for n in range(1, S + 1):
        m = min(k, n - 1)
        tail = ak * e[n - 1 - k] if n - 1 - k >= 0 else 0.0
        e[n] = m * c_arr + 1 + (1 - a_arr) * w + tail
        w = e[n] + a_arr * w - (ak * e[n - k] if n - k >= 0 else 0.0)
    return np.asarray(e[S], dtype=np.float64)


def dsi_grid(a: Any, c: Any, k: int, S: int) -> FloatArray:
    """E[T_DSI] in float64 for every (a, c) of the broadcast grid.

    E(n) = C(n) + (1 - a) G(n) with G(n) = sum_{j=1}^{n-1} a^{n-1-j} E(j), kept by
    G(n + 1) = E(n) + a G(n). C(n), the expected cost of the segment starting with n left,
    is computed for all n at once: full k-blocks below q = k floor(r / k) through a prefix sum
    over x, the partial block [q, r) term by term (< k terms), and the all-accepted tail.
    """
    check_params(a, c, k, S)
    a_arr, c_arr = _grids(a, c)
    shape = a_arr.shape
    x = np.arange(S, dtype=np.float64).reshape((S,) + (1,) * len(shape))
    pa = a_arr[None] ** x  # a^x, x = 0..S-1
    rej = pa * (1 - a_arr)[None]
    blocks_end = k * (np.floor(x / k) + 1)
    h = np.concatenate(
        [np.zeros((1, *shape)), np.cumsum(rej * np.minimum(c_arr * blocks_end + 1, x + 1), 0)]
    )  # h[L] = sum_{x < L} a^x (1 - a) min(c k (floor(x/k) + 1) + 1, x + 1)
    r = np.arange(S)  # r = n - 1 for n = 1..S
    q = k * (r // k)
    rr = r.reshape((S,) + (1,) * len(shape)).astype(np.float64)
    seg_cap = c_arr[None] * rr + 1  # cost cap when the segment drafted all r tokens
    cost = h[q] + pa[r] * np.minimum(seg_cap, rr + 1)
    for d in range(k):
        idx = q + d
        valid = idx < r
        if not np.any(valid):
            break
        idx_c = np.minimum(idx, S - 1)
        term = rej[idx_c] * np.minimum(seg_cap, idx_c.reshape(rr.shape) + 1.0)
        cost = cost + np.where(valid.reshape(rr.shape), term, 0.0)
    e_prev = np.zeros(shape)
    g = np.zeros(shape)  # G(1) = 0
    for n in range(1, S + 1):
        e_n = cost[n - 1] + (1 - a_arr) * g
        g = e_n + a_arr * g
        e_prev = e_n
    return np.asarray(e_prev, dtype=np.float64)


def nonsi_grid(a: Any, c: Any, S: int) -> FloatArray:
    """non-SI latency S on the broadcast grid (for uniform code paths)."""
    a_arr, _ = _grids(a, c)
    return np.full(a_arr.shape, float(nonsi_latency(S)))


# --- the simulator itself: one run, driven by a per-draft acceptance stream -----------------


def _accepted(m: int, accept: AcceptStream) -> int:
    """Verify m drafts in order; the count accepted before the first rejection."""
    x = 0
    while x < m and accept():
        x += 1
    return x


def si_sample(c: Num, k: int, S: int, accept: AcceptStream) -> Num:
    """The latency of one SI run whose draft verifications answer `accept()` in turn."""
    check_params(0, c, k, S)
    cost: Num = 0
    left = S
    while left > 0:
        m = min(k, left - 1)
        cost = cost + m * c + 1
        left -= _accepted(m, accept) + 1
    return cost


def dsi_sample(c: Num, k: int, S: int, accept: AcceptStream) -> Num:
    """The latency of one DSI run whose draft verifications answer `accept()` in turn."""
    check_params(0, c, k, S)
    cost: Num = 0
    done = 0
    while done < S:
        gained = 0
        drafted = 0
        while True:
            m = min(k, S - 1 - done - gained)
            x = _accepted(m, accept)
            drafted += m
            gained += x
            if m == 0 or x < m:
                gained += 1
                break
        cost = cost + min(drafted * c + 1, gained)
        done += gained
    return cost


def pattern_stream(bits: Sequence[bool]) -> AcceptStream:
    """An acceptance stream reading `bits` in order (IndexError if the run needs more)."""
    it = iter(bits)

    def accept() -> bool:
        try:
            return next(it)
        except StopIteration:
            raise IndexError(f"acceptance pattern of {len(bits)} bits ran out") from None

    return accept


def monte_carlo(
    algorithm: str, a: float, c: float, k: int, S: int, runs: int, seed: int
) -> tuple[float, float]:
    """(sample mean, sample standard deviation) of `runs` simulated latencies, seeded."""
    check_params(a, c, k, S)
    if runs < 2:
        raise InvalidConfig(f"Monte Carlo needs runs >= 2, got {show(runs)}")
    rng = random.Random(seed)

    def accept() -> bool:
        return rng.random() < a

    if algorithm == "si":
        xs = [float(si_sample(c, k, S, accept)) for _ in range(runs)]
    elif algorithm == "dsi":
        xs = [float(dsi_sample(c, k, S, accept)) for _ in range(runs)]
    elif algorithm == "nonsi":
        xs = [float(S)] * runs
    else:
        raise InvalidConfig(f"algorithm must be one of {ALGORITHMS}, got {show(algorithm)}")
    return statistics.fmean(xs), statistics.stdev(xs)
