"""The verification rule on device tensors: the twin of `dsi_ref.verify.Verifier`.

`TorchRule(seed, greedy)` implements `dsi_ref.verify.TokenRule[torch.Tensor]`
(verify, draft, target_token) on 1-D float64 tensors p and q (already warped), on
any device, and returns exactly what `Verifier(SeededChooser(seed), greedy)`
returns for the same values: the same token and the same decision. Uniforms are
`dsi_ref.randomness.keyed_uniform(seed, Key(position, purpose))`, computed on the
host; torch's random generators are never used.

Exactness. The rule compares a host uniform with quantities from p and q:
- the ratio test uses p[draft] and q[draft], brought to the host and divided
  there, as dsi_ref does;
- an inverse-CDF choice (`inverse_cdf`) needs the running sums of the positive
  entries in index order. On the CPU `torch.cumsum` adds in that order (checked in
  tests/test_torch_rule.py), so the index found by `searchsorted` is dsi_ref's. On
  other devices a cumsum is a parallel scan whose sums may differ in the last bits,
  so the two sums around u come back too, and if u lies within the scan's error
  bound of either, the row is brought to the host and looked up by dsi_ref itself
  (for random u this almost never happens: the band is ~1e-12 wide at V = 32k);
- the residual norm(max(0, p - q)) is formed on the device by the same IEEE
  operations (subtract, clamp at 0, one index-order sum, divide).

Host-device traffic per call (device -> host unless marked):
- `draft`, `target_token`: sampling: u goes in as a scalar (host -> device), 2 ints
  come back (the index found and the last positive index), plus 3 floats off the
  CPU; greedy: 1 int (argmax).
- `verify`: 4 scalars (p[draft], q[draft], and whether p or q has a NaN, infinite
  or negative entry), 5 with greedy (argmax p); after a rejection, as `draft` plus
  the residual's total mass. Errors may fetch more (to name the bad entry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from dsi_ref.errors import (
    InvalidConfig,
    InvalidDistribution,
    InvalidDraft,
    VocabularyMismatch,
    show,
)
from dsi_ref.prob import Num, residual
from dsi_ref.prob import inverse_cdf as host_inverse_cdf
from dsi_ref.randomness import Key, Purpose, keyed_uniform
from dsi_ref.verify import bad_entry

_EPS = 2.0**-52
_TINY = 2.0**-1000


def _check_vector(x: torch.Tensor, what: str, position: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float64 or x.dim() != 1:
        desc = (
            f"{x.dtype} tensor of shape {tuple(x.shape)}"
            if isinstance(x, torch.Tensor)
            else show(x)
        )
        raise InvalidDistribution(
            f"at position {position}: {what} must be a 1-D float64 tensor, got {desc}"
        )


def _first_bad(x: torch.Tensor, what: str, position: int) -> InvalidDistribution:
    """The error for x's first NaN, infinite or negative entry (an error path: it syncs)."""
    bad = ~(torch.isfinite(x) & (x >= 0))
    i = int(torch.nonzero(bad)[0, 0])
    return bad_entry(position, what, i, float(x[i]))


def inverse_cdf(
    w: torch.Tensor,
    u: float,
    sequential: bool | None = None,
    host_row: Callable[[], Sequence[Num]] | None = None,
) -> int:
    """`dsi_ref.prob.inverse_cdf(w, u)` for a 1-D float64 tensor w, on its device.

    The first j with u < (sum of the positive w[i], i <= j, added in index order);
    u beyond the total: the last positive index; -1 if none; zero-mass entries never.
    `sequential` says whether torch.cumsum adds in index order on w's device
    (default: only on the CPU); if not, an answer within the error band of a cell edge
    is looked up on the host in `host_row()` (default: w itself), the row as dsi_ref
    would compute it.
    """
    if w.shape[0] == 0:
        return -1  # as dsi_ref: no positive entry
    if sequential is None:
        sequential = w.device.type == "cpu"
    positive = w > 0
    # Zeros (and NaN) add 0.0 in place of being skipped: the running sums are unchanged.
    sums = torch.cumsum(torch.where(positive, w, 0.0), dim=0)
    j = torch.searchsorted(sums, u, right=True)  # first index whose sum exceeds u
    index = torch.arange(w.shape[0], device=w.device)
    last = torch.where(positive, index, -1).amax()
    if sequential:
        found, last_pos = torch.stack([j, last]).tolist()
        return int(found) if found < w.shape[0] else int(last_pos)
    # A parallel scan: fetch the sums on both sides of u and the total as well.
    n = w.shape[0]
    lo = sums[(j - 1).clamp(0, n - 1)]
    hi = sums[j.clamp(0, n - 1)]
    found_f, last_f, lo_f, hi_f, total = torch.stack(
        [j.double(), last.double(), lo, hi, sums[-1]]
    ).tolist()
    found, last_pos = int(found_f), int(last_f)
    # Any two summation orders of n non-negative terms differ by <= (n - 1) eps total;
    # twice that again covers a row normalised by such a sum (the residual).
    band = 4.0 * n * _EPS * total + _TINY
    near_lo = found > 0 and abs(u - lo_f) <= band
    near_hi = abs(hi_f - u) <= band
    if near_lo or near_hi:
        return host_inverse_cdf(host_row() if host_row else w.tolist(), u)
    return found if found < n else last_pos


class TorchRule:
    """Speculative sampling (or greedy) on float64 device tensors, keyed like dsi_ref.

    Same answers as `dsi_ref.verify.Verifier(SeededChooser(seed), greedy)` on the
    same p, q and draft, including the same typed errors for bad input.
    """

    def __init__(self, seed: int, greedy: bool, *, sequential_cumsum: bool | None = None) -> None:
        """`sequential_cumsum`: does torch.cumsum add in index order on the tensors'
        device? None: only on the CPU (False forces the host check near cell edges)."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InvalidConfig(f"seed must be an int >= 0, got {show(seed)}")
        if not isinstance(greedy, bool):
            raise InvalidConfig(f"greedy must be a bool, got {show(greedy)}")
        self.seed = seed
        self.greedy = greedy
        self.sequential_cumsum = sequential_cumsum

    def uniform(self, position: int, purpose: Purpose) -> float:
        return keyed_uniform(self.seed, Key(position, purpose))

    def draft(self, position: int, q: torch.Tensor) -> int:
        """The draft at `position`: argmax q (greedy) or q's inverse CDF at U(position, DRAFT)."""
        _check_vector(q, "drafter q", position)
        if self.greedy:
            return int(torch.argmax(q))
        return inverse_cdf(q, self.uniform(position, Purpose.DRAFT), self.sequential_cumsum)

    def target_token(self, position: int, p: torch.Tensor) -> int:
        """A token from p alone: argmax p (greedy) or p's inverse CDF at U(position, TARGET)."""
        _check_vector(p, "target p", position)
        if self.greedy:
            return int(torch.argmax(p))
        return inverse_cdf(p, self.uniform(position, Purpose.TARGET), self.sequential_cumsum)

    def verify(
        self, position: int, p: torch.Tensor, q: torch.Tensor, draft: int
    ) -> tuple[int, bool]:
        """The committed token at `position` and whether it is the draft."""
        if type(draft) is not int and (isinstance(draft, bool) or not isinstance(draft, int)):
            raise InvalidDraft(
                f"draft token {show(draft)} at position {position} is not a token id (an int)"
            )
        _check_vector(p, "target p", position)
        _check_vector(q, "drafter q", position)
        if p.shape[0] != q.shape[0]:
            raise VocabularyMismatch(
                f"at position {position}: target gives {p.shape[0]} probabilities, "
                f"drafter gives {q.shape[0]}"
            )
        if not (0 <= draft < q.shape[0]):
            raise InvalidDraft(f"draft token {draft} at position {position} is out of range")
        bad_p = ~(torch.isfinite(p) & (p >= 0))
        bad_q = ~(torch.isfinite(q) & (q >= 0))
        parts = [p[draft], q[draft], bad_p.any().double(), bad_q.any().double()]
        if self.greedy:
            parts.append(torch.argmax(p).double())
        got = torch.stack(parts).tolist()  # the one transfer: 4 or 5 scalars
        pd, qd = got[0], got[1]
        if got[2]:
            raise _first_bad(p, "target p", position)
        if got[3]:
            raise _first_bad(q, "drafter q", position)
        if self.greedy:
            best = int(got[4])
            return best, best == draft
        if qd <= 0:
            raise InvalidDraft(
                f"draft token {draft} at position {position} has proposal probability "
                f"{qd}; a draft must be sampled from the q it is verified with"
            )
        ratio = pd / qd
        if ratio >= 1 or self.uniform(position, Purpose.ACCEPT) < ratio:
            return draft, True
        w = torch.clamp(p - q, min=0.0)
        total = torch.cumsum(w, dim=0)[-1]  # index order, as dsi_ref's sum
        if float(total) <= 0:
            raise InvalidDistribution(
                f"residual p - q have total mass {float(total)}; nothing to normalise"
            )
        u = self.uniform(position, Purpose.RESIDUAL)
        token = inverse_cdf(
            w / total,
            u,
            self.sequential_cumsum,
            host_row=lambda: residual(p.tolist(), q.tolist()),
        )
        return token, token == draft
