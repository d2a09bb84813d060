"""Sampling settings (greedy, temperature, top-k, top-p) and the warp they apply.

The same warp is applied to the target and to the drafter before verification;
the drafter's draft is sampled from its warped q, and that q is the one verified.
The target law that the algorithms must preserve is therefore warp(p).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.models import LanguageModel, check_model, model_name, prefix_text
from dsi_ref.prob import Dist, Num, check_model_output, normalize
from dsi_ref.sampling_rule import API, check_sampling
from dsi_ref.sampling_rule import MAX_TEMPERATURE as MAX_TEMPERATURE  # re-exported
from dsi_ref.sampling_rule import MIN_TEMPERATURE as MIN_TEMPERATURE

# Temperatures outside [MIN_TEMPERATURE, MAX_TEMPERATURE] are refused (dsi_ref.sampling_rule
# states the rule for every setting). Exact (Fraction) models take T >= EXACT_MIN_TEMPERATURE:
# their warp x ** (1/T) has 1/T times the digits of x, so T = 1/10**5 costs tens of
# seconds per token and 1/10**7 never finishes.
EXACT_MIN_TEMPERATURE = Fraction(1, 1000)


@dataclass(frozen=True)
class SamplingConfig:
    """greedy=True verifies by exact match with argmax; otherwise speculative sampling.

    Settings obey dsi_ref.sampling_rule: invalid values are refused in either mode, and
    under greedy=True a temperature other than 1, a top_k or a top_p is refused (no effect).
    """

    greedy: bool = False
    temperature: Fraction | float = Fraction(1)
    top_k: int | None = None
    top_p: Fraction | float | None = None

    def __post_init__(self) -> None:
        check_sampling(self.greedy, self.temperature, self.top_k, self.top_p, API)

    def describe(self) -> str:
        if self.greedy:
            return "greedy"
        parts = [f"T={show(self.temperature)}"]
        if self.top_k is not None:
            parts.append(f"top_k={show(self.top_k)}")
        if self.top_p is not None:
            parts.append(f"top_p={show(self.top_p)}")
        return "sample(" + ", ".join(parts) + ")"


def _power(x: Num, t: Fraction | float) -> Num:
    """x ** (1/t), exact when x is a Fraction and 1/t is an integer."""
    if isinstance(x, Fraction):
        inv = 1 / Fraction(t)
        if inv.denominator == 1:
            return Fraction(x ** int(inv))
        return Fraction(math.pow(float(x), float(inv)))
    return math.pow(x, 1.0 / float(t))


def warp(p: Sequence[Num], cfg: SamplingConfig) -> Dist:
    """Apply temperature, then top-k, then top-p; return a normalised distribution."""
    if cfg.greedy:
        return tuple(p)
    out: list[Num] = list(p)
    if cfg.temperature != 1:
        if cfg.temperature < EXACT_MIN_TEMPERATURE and isinstance(out[0], Fraction):
            raise InvalidConfig(
                f"temperature {show(cfg.temperature)} is below {EXACT_MIN_TEMPERATURE}, the "
                "smallest that exact (Fraction) distributions support (x ** (1/T) has 1/T "
                "times the digits of x); use a temperature >= 1/1000, greedy decoding, "
                "or a float model"
            )
        top = max(out)  # scale first so small temperatures do not underflow to all zeros
        out = [_power(x / top, cfg.temperature) if x > 0 else x for x in out]
    order = sorted(range(len(out)), key=lambda i: (-out[i], i))
    keep = set(order)
    if cfg.top_k is not None and cfg.top_k < len(out):
        keep = set(order[: cfg.top_k])
    if cfg.top_p is not None and cfg.top_p < 1:
        total = sum(out[i] for i in order if i in keep)
        acc = total - total
        chosen: set[int] = set()
        for i in order:
            if i not in keep:
                continue
            chosen.add(i)
            acc += out[i]
            if acc >= cfg.top_p * total:
                break
        keep = chosen
    zero = out[0] - out[0]
    return normalize([x if i in keep else zero for i, x in enumerate(out)], "warped weights")


# Model outputs already checked, by identity: models hand out the same (cached) tuples to
# every run, and exact_law builds a fresh WarpedModel per path. Each entry holds its tuple,
# so an id cannot be reused while the entry lives.
_CHECKED: dict[int, tuple[tuple[object, ...], int, Dist]] = {}
_CHECKED_SIZE = 4096


class WarpedModel:
    """A model seen through sampling settings, with a cache keyed by the model's state.

    This is where a model's output enters the algorithms, so it is checked here, once per
    distinct state (the cache makes that nearly free): `vocab_size` an int >= 1, `state`
    hashable, `next_dist` a sequence of exactly vocab_size finite numbers >= 0 summing to 1
    (exactly for Fractions, within MODEL_SUM_TOL for floats). Anything else raises
    InvalidDistribution (InvalidConfig for vocab_size and state) naming the model and prefix.
    """

    def __init__(self, model: LanguageModel, cfg: SamplingConfig) -> None:
        self.vocab = check_model(model)
        if not isinstance(cfg, SamplingConfig):
            raise InvalidConfig(f"sampling must be a SamplingConfig, got {show(cfg)}")
        self.model = model
        self.cfg = cfg
        self._cache: dict[Hashable, Dist] = {}
        self.calls = 0

    def _where(self, prefix: Sequence[int]) -> str:
        return f"model {model_name(self.model)} {prefix_text(prefix)}"

    def dist(self, prefix: Sequence[int]) -> Dist:
        self.calls += 1
        s = self.model.state(prefix)
        try:
            d = self._cache.get(s)
        except TypeError:  # unhashable: the cache (and the protocol) needs a hashable key
            raise InvalidConfig(
                f"{self._where(prefix)}: state() must return a hashable key, got {show(s)}"
            ) from None
        if d is None:
            raw = self.model.next_dist(prefix)
            hit = _CHECKED.get(id(raw)) if type(raw) is tuple else None
            if hit is not None and hit[0] is raw and hit[1] == self.vocab:
                p = hit[2]  # this very tuple passed the check before (exact_law reruns)
            else:
                p = check_model_output(raw, self.vocab, lambda: self._where(prefix))
                if type(raw) is tuple:  # immutable (its entries are numbers): reusable
                    if len(_CHECKED) >= _CHECKED_SIZE:
                        _CHECKED.clear()
                    _CHECKED[id(raw)] = (raw, self.vocab, p)
            try:
                d = warp(p, self.cfg)
            except InvalidConfig as e:
                raise InvalidConfig(f"{self._where(prefix)}: {e}") from None
            self._cache[s] = d
        return d
