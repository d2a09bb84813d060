"""Language models for the reference: the protocol and small exact or float toy models."""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from fractions import Fraction
from typing import Protocol, cast, runtime_checkable

from dsi_ref.errors import InvalidConfig, InvalidDistribution, VocabularyMismatch, show
from dsi_ref.prob import Dist, Num, check_dist, check_model_output


@runtime_checkable
class LanguageModel(Protocol):
    """Gives the next-token distribution for a prefix of token ids."""

    @property
    def vocab_size(self) -> int: ...

    def state(self, prefix: Sequence[int]) -> Hashable:
        """A key such that equal keys give equal next-token distributions (for caching)."""
        ...

    def next_dist(self, prefix: Sequence[int]) -> Dist: ...


def _check_vocab(v: object, whose: str = "") -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise InvalidConfig(f"{whose}vocabulary size must be an int >= 1, got {show(v)}")
    return v


def prefix_text(prefix: Sequence[int]) -> str:
    """'at position n (prefix ...)': where in a sequence a model was asked, for messages."""
    n = len(prefix)
    shown = f"{show(tuple(prefix))}" if n <= 8 else f"(..., {', '.join(map(show, prefix[-8:]))})"
    return f"at position {n} (prefix {shown})"


def model_name(model: object) -> str:
    """How messages name a model: its `name` attribute if it has one, else its class."""
    name = getattr(model, "name", None)
    return repr(name) if isinstance(name, str) else type(model).__name__


def check_model(model: object, role: str = "model") -> int:
    """Check that `model` implements LanguageModel with a valid vocab_size; return the size.

    Models are user code: this is where a run meets them, so a broken one is named here
    rather than failing deep inside an algorithm.
    """
    if type(model) not in _MODEL_TYPES and not isinstance(model, LanguageModel):
        raise InvalidConfig(
            f"{role} must be a LanguageModel (vocab_size, state(prefix), next_dist(prefix)), "
            f"got {show(model)}"
        )
    _MODEL_TYPES.add(type(model))  # a Protocol isinstance costs ~10 us; exact_law asks a lot
    vocab = cast(LanguageModel, model).vocab_size
    return _check_vocab(vocab, f"{role} {model_name(model)}: ")


_MODEL_TYPES: set[type] = set()  # classes whose instances passed isinstance(LanguageModel)


def _check_order(order: object) -> int:
    if not isinstance(order, int) or isinstance(order, bool) or order < 0:
        raise InvalidConfig(f"Markov order must be an int >= 0, got {show(order)}")
    return order


def _table_dist(p: object, vocab: int, what: str) -> Dist:
    """A table entry checked as a distribution over exactly `vocab` tokens."""
    if isinstance(p, (str, bytes)) or not isinstance(p, Sequence):
        raise InvalidDistribution(f"{what} must be a sequence of probabilities, got {show(p)}")
    if len(p) == 0:
        raise InvalidDistribution(f"{what} is empty: {show(p)}")
    d = check_dist(p, what)
    if len(d) != vocab:
        raise VocabularyMismatch(f"{what} has {len(d)} entries, vocabulary size is {vocab}")
    return d


def _check_context(ctx: object, vocab: int, order: int, name: str) -> tuple[int, ...]:
    # A context longer than `order` would never be looked up: a silent typo, so refuse it.
    if not isinstance(ctx, tuple) or len(ctx) > order:
        raise InvalidConfig(
            f"{name}: context {show(ctx)} must be a tuple of at most order={order} token ids"
        )
    for t in ctx:
        if isinstance(t, bool) or not isinstance(t, int) or not (0 <= t < vocab):
            raise InvalidConfig(
                f"{name}: context {show(ctx)} has token {show(t)} "
                f"outside the vocabulary 0..{vocab - 1}"
            )
    return ctx


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
        self.order = _check_order(order)
        self.name = name
        if not isinstance(table, Mapping):
            raise InvalidConfig(
                f"{name}: table must map context tuples to distributions, got {show(table)}"
            )
        self._table: dict[tuple[int, ...], Dist] = {}
        for ctx, p in table.items():
            c = _check_context(ctx, self._vocab, self.order, name)
            self._table[c] = _table_dist(p, self._vocab, f"{name} distribution at context {ctx}")
        self._default: Dist | None = None
        if default is not None:
            self._default = _table_dist(default, self._vocab, f"{name} default distribution")

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
        if (
            isinstance(noise, bool)
            or not isinstance(noise, (int, float, Fraction))
            or not (0 <= noise <= 1)  # also false for NaN
        ):
            raise InvalidConfig(f"noise weight must be a number in [0, 1], got {show(noise)}")
        vocab = check_model(target, "MixtureDrafter target")
        self.target = target
        self.noise = noise
        self.r = _table_dist(r, vocab, "noise distribution")
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
            p = check_model_output(
                self.target.next_dist(prefix),
                len(self.r),
                lambda: f"MixtureDrafter target {model_name(self.target)} {prefix_text(prefix)}",
            )
            w = 1 - self.noise
            d = tuple(w * a + self.noise * b for a, b in zip(p, self.r, strict=True))
            self._cache[s] = d
        return d


RANDOM_MARKOV_MAX_ENTRIES = 10**7


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
    """A Markov model with a random distribution for every context up to `order`.

    The table has vocab * (1 + vocab + ... + vocab**order) entries; more than
    RANDOM_MARKOV_MAX_ENTRIES is refused (it would take minutes and gigabytes to build).
    """
    _check_vocab(vocab)
    _check_order(order)
    entries, width = 0, 1
    for _ in range(order + 1):
        entries += width * vocab
        width *= vocab
        if entries > RANDOM_MARKOV_MAX_ENTRIES:
            raise InvalidConfig(
                f"random_markov(vocab={show(vocab)}, order={show(order)}) would tabulate more "
                f"than {RANDOM_MARKOV_MAX_ENTRIES} probabilities; lower the vocabulary or order"
            )
    if isinstance(seed, bool) or not isinstance(seed, (int, str, bytes)):
        raise InvalidConfig(f"random_markov seed must be an int, got {show(seed)}")
    rng = random.Random(seed)
    table: dict[tuple[int, ...], Dist] = {}
    contexts: list[tuple[int, ...]] = [()]
    for length in range(1, order + 1):
        contexts += [(*c, t) for c in contexts if len(c) == length - 1 for t in range(vocab)]
    for c in contexts:
        table[c] = random_dist(rng, vocab, exact)
    return MarkovModel(vocab, order, table, name=name)


def check_pair(target: LanguageModel, drafter: LanguageModel) -> None:
    vt = check_model(target, "target")
    vd = check_model(drafter, "drafter")
    if vt != vd:
        raise VocabularyMismatch(f"target vocabulary size {vt} != drafter vocabulary size {vd}")
