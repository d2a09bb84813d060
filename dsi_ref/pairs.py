"""Built-in (target, drafter) model pairs, by name, for the CLI and the demo.

Each drafter is a `MixtureDrafter` q = (1 - noise) p + noise r with a fixed r,
so `noise` dials the acceptance rate: at a context, speculative sampling accepts
with probability sum_x min(p(x), q(x)) = 1 - noise * TV(p, r). A fixed r that is
not uniform also moves the argmax, so greedy runs see rejections too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.errors import InvalidConfig
from dsi_ref.models import LanguageModel, MarkovModel, MixtureDrafter, random_markov
from dsi_ref.prob import Dist, Num

Context = tuple[int, ...]


@dataclass(frozen=True)
class Pair:
    name: str
    description: str
    target: LanguageModel
    drafter: LanguageModel
    noise: Num
    contexts: tuple[Context, ...]  # every context the target distinguishes (order 1)
    exact: bool  # Fraction probabilities: exact_law applies

    def mean_acceptance(self) -> Num:
        """Mean over contexts of sum_x min(p, q): the sampling acceptance rate at T = 1."""
        total: Num = Fraction(0) if self.exact else 0.0
        for ctx in self.contexts:
            p, q = self.target.next_dist(ctx), self.drafter.next_dist(ctx)
            total += sum(min(a, b) for a, b in zip(p, q, strict=True))
        return total / len(self.contexts)


def _contexts(vocab: int) -> tuple[Context, ...]:
    return ((), *((t,) for t in range(vocab)))


def _peaked(rng: random.Random, vocab: int) -> Dist:
    """Full support, a few tokens carrying most mass (cubed uniforms), like a language model."""
    w = [rng.random() ** 3 + 1e-3 for _ in range(vocab)]
    total = sum(w)
    return tuple(x / total for x in w)


def _markov32(noise: Fraction) -> Pair:
    vocab = 32
    rng = random.Random(32)
    table = {ctx: _peaked(rng, vocab) for ctx in _contexts(vocab)}
    target = MarkovModel(vocab, 1, table, name="markov32-target")
    r = _peaked(random.Random(33), vocab)
    return Pair(
        "markov32",
        "order-1 Markov target, vocabulary 32 (float); drafter (1-noise)*p + noise*r",
        target,
        MixtureDrafter(target, float(noise), r),
        float(noise),
        _contexts(vocab),
        exact=False,
    )


def _exact3(noise: Fraction) -> Pair:
    vocab = 3
    target = random_markov(vocab, 1, seed=1, exact=True, name="exact3-target")
    r = (Fraction(1, 2), Fraction(1, 3), Fraction(1, 6))
    return Pair(
        "exact3",
        "order-1 Markov target, vocabulary 3 (exact Fractions); drafter (1-noise)*p + noise*r",
        target,
        MixtureDrafter(target, noise, r),
        noise,
        _contexts(vocab),
        exact=True,
    )


# name -> (builder, default noise). Defaults give a mean acceptance rate near 0.8.
PAIRS: dict[str, tuple[Callable[[Fraction], Pair], str]] = {
    "markov32": (_markov32, "0.34"),
    "exact3": (_exact3, "1/2"),
}
DEFAULT_PAIR = "markov32"


def parse_noise(text: str) -> Fraction:
    try:
        v = Fraction(text)
    except (ValueError, ZeroDivisionError) as e:
        raise InvalidConfig(f"noise must be a number in [0, 1], got {text!r}") from e
    if not 0 <= v <= 1:
        raise InvalidConfig(f"noise must lie in [0, 1], got {text!r}")
    return v


def get_pair(name: str, noise: str | None = None) -> Pair:
    """The built-in pair `name` with drafter noise `noise` ("1/3", "0.2"; None: the default)."""
    if name not in PAIRS:
        raise InvalidConfig(f"unknown model pair {name!r}; built-in pairs: {', '.join(PAIRS)}")
    build, default = PAIRS[name]
    return build(parse_noise(default if noise is None else noise))
