"""What one pass of a worker computes, for each mode, independent of threads.

- lossless: the models' real next-token laws, warped, and the injected rule.
- timing: the forward still runs (its cost is what is measured) but acceptance
  is a keyed Bernoulli(a) per position, for random-weight models at real shapes.
A pass may also be padded to, or replaced by, a fixed wait (latency-injected
mode), so orchestration overhead can be measured against an exact prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch

from dsi_ref.errors import InvalidConfig
from dsi_ref.latency import Latency
from dsi_ref.randomness import Key, Purpose, keyed_uniform
from dsi_ref.sampling import SamplingConfig
from dsi_ref.verify import TokenRule
from gpu_runner.kv_worker import ModelWorker
from gpu_runner.warp import warp

# An injected wait is a benchmark's pass cost: a minute per pass already makes a 48-token run
# take most of an hour. Beyond it a typo (1e9 for 1e-9) would run for years.
MAX_WAIT_S = Fraction(60)


@dataclass(frozen=True)
class Waits:
    """Injected pass costs: each pass takes exactly its model's latency (seconds).

    TTFT, TPOT and the per-position cost are each at most MAX_WAIT_S (60 s).
    """

    target: Latency
    drafter: Latency
    replace: bool = False  # True: no forward at all, only the wait (timing mode only)

    def __post_init__(self) -> None:
        for who in ("target", "drafter"):
            lat = getattr(self, who)
            if not isinstance(lat, Latency):
                raise InvalidConfig(f"{who} wait must be a dsi_ref Latency, got {lat!r:.80}")
            for name in ("ttft", "tpot", "per_position"):
                v = getattr(lat, name)
                if v > MAX_WAIT_S:
                    raise InvalidConfig(
                        f"injected {who} {name.upper().replace('_', ' ')} of {float(v):g} s "
                        f"exceeds the maximum of {MAX_WAIT_S} s per pass"
                    )
        if not isinstance(self.replace, bool):
            raise InvalidConfig(f"replace must be a bool, got {self.replace!r:.80}")

    def seconds(self, lat: Latency, first: int, positions: int) -> float:
        return float(lat.forward(first, positions))


class BernoulliRule:
    """Timing mode's rule: the draft at a position is accepted iff U(seed, pos, ACCEPT) < a.

    Distributions are not read (they are None). A rejection commits another token
    (draft + 1 mod V) so the chain changes as a rejection's would.
    """

    def __init__(self, seed: int, acceptance: float, vocab_size: int) -> None:
        self.seed = seed
        self.acceptance = acceptance
        self.vocab_size = vocab_size

    def verify(self, position: int, p: object, q: object, draft: int) -> tuple[int, bool]:
        if keyed_uniform(self.seed, Key(position, Purpose.ACCEPT)) < self.acceptance:
            return draft, True
        return (draft + 1) % self.vocab_size, False

    def target_token(self, position: int, p: object) -> int:
        return 0

    def draft(self, position: int, q: object) -> int:
        return int(keyed_uniform(self.seed, Key(position, Purpose.DRAFT)) * self.vocab_size)


class PassMaker:
    """The drafter's and a target server's pass, for one run's mode."""

    def __init__(
        self,
        sampling: SamplingConfig,
        rule: TokenRule[Any],
        waits: Waits | None,
        *,
        layer_cancel: bool = False,
    ) -> None:
        self.sampling = sampling
        # A cancelled pass stops at the next decoder layer (backends that can tell a running
        # pass of its cancellation: threads, processes; gpu_runner.layer_cut).
        self.layer_cancel = layer_cancel
        self.rule = rule
        self.waits = waits
        self.timing = isinstance(rule, BernoulliRule)
        self.acceptance = rule.acceptance if isinstance(rule, BernoulliRule) else None
        self._replace = waits is not None and waits.replace

    def draft(
        self, worker: ModelWorker, chain: Sequence[int], position: int
    ) -> tuple[int, torch.Tensor | None]:
        """The draft at `position` and the q it was sampled from."""
        if self.timing:
            if not self._replace:
                worker.logits(chain, position, position)
            return self.rule.draft(position, None), None
        q = warp(worker.probs(chain, position, position), self.sampling)[0]
        return self.rule.draft(position, q), q

    def score(
        self, worker: ModelWorker, chain: Sequence[int], first: int, last: int
    ) -> list[torch.Tensor | None]:
        """The target's laws at positions first..last."""
        m = last - first + 1
        if self.timing:
            if not self._replace:
                worker.logits(chain, first, last)
            return [None] * m
        ps = warp(worker.probs(chain, first, last), self.sampling)
        return list(ps.unbind(0))

    def cost(self, target: bool, first: int, positions: int) -> float | None:
        """The injected duration of a pass in seconds, or None (run at the model's pace)."""
        if self.waits is None:
            return None
        lat = self.waits.target if target else self.waits.drafter
        return self.waits.seconds(lat, first, positions)
