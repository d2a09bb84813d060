"""Language models for the reference: the protocol and small exact or float toy models."""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from fractions import Fraction
from typing import Protocol, runtime_checkable

from dsi_ref.errors import InvalidConfig, VocabularyMismatch
from dsi_ref.prob import Dist, Num, check_dist


@runtime_checkable
class LanguageModel(Protocol):
    """Gives the next-token distribution for a prefix of token ids."""

    @property
    def vocab_size(self) -> int: ...

    def state(self, prefix: Sequence[int]) -> Hashable:
        """A key such that equal keys give equal next-token distributions (for caching)."""
        ...

    def next_dist(self, prefix: Sequence[int]) -> Dist: ...


def _check_vocab(v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise InvalidConfig(f"vocabulary size must be an int >= 1, got {v!r}")
    return v


class MarkovModel:
    """Next-token law depends on the last `order` tokens (fewer near the start).

    `table` maps each context tuple (of length min(order, len(prefix))) to a
    distribution; contexts not in the table fall back to `default`.
    """

    def __init__(
        self,
        vocab_size: int,
        order: int,
        table: Mapping[tuple[int, ...], Sequence[Num]],
        default: Sequence[Num] | None = None,
        name: str = "markov",
    ) -> None:
        self._vocab = _check_vocab(vocab_size)
        if not isinstance(order, int) or order < 0:
            raise InvalidConfig(f"Markov order must be an int >= 0, got {order!r}")
        self.order = order
        self.name = name
        self._table: dict[tuple[int, ...], Dist] = {}
        for ctx, p in table.items():
            d = check_dist(p, f"{name} distribution at context {ctx}")
            if len(d) != self._vocab:
                raise VocabularyMismatch(
                    f"{name}: distribution at context {ctx} has {len(d)} entries, "
                    f"vocabulary size is {self._vocab}"
                )
            self._table[tuple(ctx)] = d
        self._default: Dist | None = None
        if default is not None:
            d = check_dist(default, f"{name} default distribution")
            if len(d) != self._vocab:
                raise VocabularyMismatch(
                    f"{name}: default distribution has {len(d)} entries, "
                    f"vocabulary size is {self._vocab}"
                )
            self._default = d

    @property
    def vocab_size(self) -> int:
        return self._vocab

    def state(self, prefix: Sequence[int]) -> Hashable:
        n = len(prefix)
        return tuple(prefix[max(0, n - self.order) :]) if self.order else ()

    def next_dist(self, prefix: Sequence[int]) -> Dist:
        ctx = self.state(prefix)
        assert isinstance(ctx, tuple)
        d = self._table.get(ctx, self._default)
        if d is None:
            raise InvalidConfig(f"{self.name} has no distribution for context {ctx}")
        return d

    def __repr__(self) -> str:
        return f"MarkovModel(name={self.name!r}, vocab={self._vocab}, order={self.order})"


class MixtureDrafter:
    """q = (1 - noise) * p_target + noise * r: a drafter whose acceptance rate is chosen.

    The expected acceptance probability of speculative sampling at a position is
    sum_x min(p(x), q(x)) = 1 - TV(p, q) = 1 - noise * TV(p, r), so `noise` dials it.
    """

    def __init__(self, target: LanguageModel, noise: Num, r: Sequence[Num]) -> None:
        if not (0 <= noise <= 1):
            raise InvalidConfig(f"noise weight must lie in [0, 1], got {noise!r}")
        self.target = target
        self.noise = noise
        self.r = check_dist(r, "noise distribution")
        if len(self.r) != target.vocab_size:
            raise VocabularyMismatch(
                f"noise distribution has {len(self.r)} entries, target vocabulary is "
                f"{target.vocab_size}"
            )
        self._cache: dict[Hashable, Dist] = {}

    @property
    def vocab_size(self) -> int:
        return self.target.vocab_size

    def state(self, prefix: Sequence[int]) -> Hashable:
        return self.target.state(prefix)

    def next_dist(self, prefix: Sequence[int]) -> Dist:
        s = self.target.state(prefix)
        d = self._cache.get(s)
        if d is None:
            p = self.target.next_dist(prefix)
            w = 1 - self.noise
            d = tuple(w * a + self.noise * b for a, b in zip(p, self.r, strict=True))
            self._cache[s] = d
        return d


def random_dist(rng: random.Random, vocab: int, exact: bool, denom: int = 12) -> Dist:
    """A random full-support distribution; Fractions with small denominators if exact."""
    if exact:
        w = [rng.randint(1, denom) for _ in range(vocab)]
        t = sum(w)
        return tuple(Fraction(x, t) for x in w)
    wf = [rng.random() + 1e-3 for _ in range(vocab)]
    tf = sum(wf)
    return tuple(x / tf for x in wf)


def random_markov(
    vocab: int, order: int, seed: int, exact: bool = False, name: str = "markov"
) -> MarkovModel:
    """A Markov model with a random distribution for every context up to `order`."""
    _check_vocab(vocab)
    rng = random.Random(seed)
    table: dict[tuple[int, ...], Dist] = {}
    contexts: list[tuple[int, ...]] = [()]
    for length in range(1, order + 1):
        contexts += [(*c, t) for c in contexts if len(c) == length - 1 for t in range(vocab)]
    for c in contexts:
        table[c] = random_dist(rng, vocab, exact)
    return MarkovModel(vocab, order, table, name=name)


def check_pair(target: LanguageModel, drafter: LanguageModel) -> None:
    if target.vocab_size != drafter.vocab_size:
        raise VocabularyMismatch(
            f"target vocabulary size {target.vocab_size} != drafter vocabulary size "
            f"{drafter.vocab_size}"
        )
