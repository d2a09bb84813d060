"""The one rule for sampling settings, shared by dsi_ref and gpu_runner (API and CLIs).

1. A value that is not valid is refused whatever the mode: temperature a finite number in
   [MIN_TEMPERATURE, MAX_TEMPERATURE] (so 0 and -1 are refused even when greedy), top_k
   None or an int >= 1, top_p None or a number in (0, 1]; bools and strings are not numbers.
2. Under greedy decoding a setting that differs from its neutral value (temperature 1,
   top_k None, top_p None) would have no effect, so it is refused too: transformers'
   GenerationConfig warns about the same combinations; a refusal cannot scroll away.

Errors are InvalidConfig naming the setting as the caller spells it (`Spelling`), so a CLI
user reads `--top-p` and an API user `top_p`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from dsi_ref.errors import InvalidConfig, show

# Temperatures outside this range are refused: below it the warp is argmax to float
# precision (say greedy), above it uniform over the support.
MIN_TEMPERATURE = Fraction(1, 10**6)
MAX_TEMPERATURE = Fraction(10**6)


@dataclass(frozen=True)
class Spelling:
    """How one interface names the settings: `greedy` the mode, `argmax` how to ask for it."""

    greedy: str
    argmax: str
    temperature: str = "temperature"
    top_k: str = "top_k"
    top_p: str = "top_p"


API = Spelling("greedy=True", "pass greedy=True and leave temperature at 1")  # SamplingConfig
DSI_CLI = Spelling(
    "--greedy", "use --greedy without --temperature", "--temperature", "--top-k", "--top-p"
)
# `dsi_ref check --pair` of a greedy trace: the trace's header, not a flag, chose greedy.
DSI_CHECK_GREEDY = Spelling(
    "the trace's header says greedy",
    "leave out --temperature",
    "--temperature",
    "--top-k",
    "--top-p",
)
GPU_API = Spelling("do_sample=False", "pass do_sample=False and leave temperature at 1")
GPU_CLI = Spelling(
    "no --sample", "leave out --sample and --temperature", "--temperature", "--top-k", "--top-p"
)


def check_sampling(
    greedy: object,
    temperature: object,
    top_k: object,
    top_p: object,
    names: Spelling = API,
    typed: Mapping[str, str] | None = None,
) -> None:
    """Raise InvalidConfig unless the four settings obey the rule in the module docstring.

    `typed` maps "temperature"/"top_p" to the text a CLI user typed, shown in errors as typed.
    """

    def shown(key: str, value: object) -> str:
        text = (typed or {}).get(key)
        return show(value) if text is None else repr(text if len(text) <= 40 else text[:40] + "...")

    if not isinstance(greedy, bool):
        raise InvalidConfig(f"{names.greedy.split('=')[0]} must be a bool, got {show(greedy)}")
    t = temperature
    if (
        isinstance(t, bool)
        or not isinstance(t, (int, float, Fraction))
        or (isinstance(t, float) and not math.isfinite(t))
    ):
        raise InvalidConfig(
            f"{names.temperature} must be a finite number, got {shown('temperature', t)}"
        )
    exact_t = Fraction(repr(t)) if isinstance(t, float) else Fraction(t)  # 1e-6 is 10**-6
    if not MIN_TEMPERATURE <= exact_t <= MAX_TEMPERATURE:
        hint = f" (for argmax decoding {names.argmax})" if t <= 0 else ""
        raise InvalidConfig(
            f"{names.temperature} must lie in [1e-6, 1e6] whatever the mode, "
            f"got {shown('temperature', t)}{hint}"
        )
    none = "" if names.top_p.startswith("--") else " or None"  # a flag is left out, not None
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidConfig(f"{names.top_k} must be an int >= 1{none}, got {show(top_k)}")
    if top_p is not None:
        p = top_p if isinstance(top_p, (int, float, Fraction)) else math.nan
        if isinstance(top_p, bool) or not 0 < p <= 1:  # NaN fails the comparison
            raise InvalidConfig(
                f"{names.top_p} must be a number in (0, 1]{none}, got {shown('top_p', top_p)}"
            )
    if greedy:
        unused = [
            name
            for name, given in (
                (names.temperature, exact_t != 1),
                (names.top_k, top_k is not None),
                (names.top_p, top_p is not None),
            )
            if given
        ]
        if unused:
            raise InvalidConfig(
                f"{', '.join(unused)} only appl{'ies' if len(unused) == 1 else 'y'} when "
                f"sampling, and this run is greedy ({names.greedy}): leave "
                f"{'it' if len(unused) == 1 else 'them'} out, or sample"
            )
