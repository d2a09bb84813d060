"""The sampling warp on device tensors: the twin of `dsi_ref.sampling.warp`.

Rows of float64 probabilities [..., V] are warped as dsi_ref warps one tuple:

1. temperature T != 1: w = (x / max)^(1/T) for x > 0 (entries <= 0 kept as they are);
2. top-k: keep the k largest, ties broken by index (the order (-w, index));
3. top-p: walk the kept entries in that order, accumulating in float64; keep each
   until the first one at which acc >= top_p * total (total: the same walk's sum);
4. normalise: divide by the sum of the kept entries taken in index order.

Sums are `torch.cumsum`, which on the CPU adds in index order like dsi_ref's loops
(tests/test_torch_rule.py checks it), so on the CPU steps 2-4 are bitwise equal to
dsi_ref. Step 1 is `torch.pow`, which differs from `math.pow` by one ulp on about 1 %
of inputs (measured: tests/test_torch_rule.py); so with T != 1 the warp agrees with
dsi_ref's to about 1e-16 relative (asserted: 1e-12 absolute), not bitwise, and a top-k
or top-p cut can differ only where two warped values, or the running sum and the
threshold, are within an ulp of each other. On CUDA a cumsum is a parallel scan, so
sums may differ in the last bits too (same tolerance). Nothing leaves the device
except one bool per call (whether a row has no mass, to raise as dsi_ref does).
"""

from __future__ import annotations

from fractions import Fraction

import torch

from dsi_ref.errors import InvalidDistribution
from dsi_ref.sampling import SamplingConfig


def warp(probs: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """`dsi_ref.sampling.warp` applied to every row of `probs` (float64, [..., V])."""
    if probs.dtype != torch.float64:
        raise InvalidDistribution(f"warp needs float64 probabilities, got {probs.dtype}")
    if cfg.greedy:
        return probs  # dsi_ref leaves greedy distributions as they are
    w = apply_temperature(probs, cfg.temperature)
    return normalize_rows(torch.where(keep_mask(w, cfg.top_k, cfg.top_p), w, 0.0))


def apply_temperature(probs: torch.Tensor, temperature: Fraction | float) -> torch.Tensor:
    """(x / row max)^(1/T) for x > 0, other entries unchanged; T == 1: the input itself."""
    if temperature == 1:
        return probs
    top = probs.amax(dim=-1, keepdim=True)
    return torch.where(probs > 0, torch.pow(probs / top, 1.0 / float(temperature)), probs)


def keep_mask(w: torch.Tensor, top_k: int | None, top_p: Fraction | float | None) -> torch.Tensor:
    """Which entries top-k then top-p keep, in index order (bool, the shape of `w`)."""
    v = w.shape[-1]
    if (top_k is None or top_k >= v) and (top_p is None or top_p >= 1):
        return torch.ones_like(w, dtype=torch.bool)
    # A stable descending sort lists equal values by index: dsi_ref's order (-w, index).
    vals, order = torch.sort(w, dim=-1, descending=True, stable=True)
    keep = torch.ones_like(vals, dtype=torch.bool)
    if top_k is not None and top_k < v:
        keep[..., top_k:] = False
    if top_p is not None and top_p < 1:
        # The kept entries come first in this order, so the running sum over the row
        # (dropped ones as 0.0, which adds nothing) is dsi_ref's acc, and its end its total.
        acc = torch.cumsum(torch.where(keep, vals, 0.0), dim=-1)
        reached = acc >= float(top_p) * acc[..., -1:]
        before = torch.cumsum(reached, dim=-1) - reached.to(torch.int64)  # reached earlier
        keep = keep & (before == 0)  # up to and including the first entry that reached it
    return torch.zeros_like(keep).scatter(-1, order, keep)


def normalize_rows(w: torch.Tensor) -> torch.Tensor:
    """Each row divided by its sum, taken in index order (dsi_ref.prob.normalize)."""
    total = torch.cumsum(w, dim=-1)[..., -1:]
    if bool((total <= 0).any()):
        raise InvalidDistribution("warped weights have a row with total mass <= 0")
    return w / total
