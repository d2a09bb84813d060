"""Settings of one run, validated once so that algorithms can trust them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.latency import Latency
from dsi_ref.policies import DEFAULT_POLICY, check_confidence, get_policy
from dsi_ref.sampling import SamplingConfig

# Upper bounds of a run. Beyond them a run cannot finish in reasonable time or memory
# (the reference commits ~10k-30k tokens/s; the scheduler keeps a slot per server),
# so they are refused with the range rather than left to hang.
MAX_TOKENS = 100_000
MAX_SERVERS = 100_000
MAX_TOKEN_ID = 2**63  # prompt token ids; the vocabulary is checked when a run meets its models
MAX_LAYERS = 10**6
SEED_LIMIT = 2**256  # every bit of a seed is used (dsi_ref.randomness.keyed_uniform)


def _positive_int(x: object, what: str, most: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 1:
        raise InvalidConfig(f"{what} must be an int >= 1, got {show(x)}")
    if most is not None and x > most:
        raise InvalidConfig(f"{what} must be an int in [1, {most}], got {show(x)}")
    return x


@dataclass(frozen=True)
class RunConfig:
    """max_tokens new tokens; lookahead k; P target servers (DSI only); one drafter."""

    max_tokens: int
    k: int = 1
    servers: int = 1
    seed: int = 0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    target_latency: Latency = field(default_factory=lambda: Latency.of(1, 1, "target"))
    drafter_latency: Latency = field(default_factory=lambda: Latency.of("1/10", "1/10", "drafter"))
    prompt: tuple[int, ...] = ()
    point_mass_proposal: bool = False
    # True: a cancelled pass stops at once (the paper). False: it holds its server (or
    # the drafter) until it would have ended, as a GPU forward pass does (DSI only).
    preemptive: bool = True
    # What DSI does among the legal moves (dsi_ref.policies): "safe" (default), "paper", ...
    policy: str = DEFAULT_POLICY
    # Confidence-based early stop of drafting (SI and DSI; None: off): a block ends after a
    # draft whose q's largest probability is below this (dsi_ref.policies.low_confidence).
    draft_confidence: float | Fraction | None = None
    # Layer-preemptive (with preemptive=False): each pass is this many equal layers and a
    # cancelled one stops at its next layer boundary (dsi_ref.scheduler); None: at its end.
    cancel_layers: int | None = None

    def __post_init__(self) -> None:
        _positive_int(self.max_tokens, "max_tokens", MAX_TOKENS)
        _positive_int(self.k, "lookahead k")
        _positive_int(self.servers, "number of target servers P", MAX_SERVERS)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidConfig(f"seed must be an int >= 0, got {show(self.seed)}")
        if self.seed >= SEED_LIMIT:
            raise InvalidConfig(f"seed must be an int in [0, 2**256), got {show(self.seed)}")
        if not isinstance(self.sampling, SamplingConfig):
            raise InvalidConfig(f"sampling must be a SamplingConfig, got {show(self.sampling)}")
        for name in ("target_latency", "drafter_latency"):
            if not isinstance(getattr(self, name), Latency):
                raise InvalidConfig(f"{name} must be a Latency, got {show(getattr(self, name))}")
        if isinstance(self.prompt, (str, bytes)) or not isinstance(self.prompt, Sequence):
            raise InvalidConfig(f"prompt must be a sequence of token ids, got {show(self.prompt)}")
        for t in self.prompt:
            # The vocabulary is checked when the run meets its models (dsi_ref.workers).
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < MAX_TOKEN_ID:
                raise InvalidConfig(
                    f"prompt token {show(t)} is not a token id (an int in [0, 2**63))"
                )
        if not isinstance(self.point_mass_proposal, bool):
            raise InvalidConfig(
                f"point_mass_proposal must be a bool, got {show(self.point_mass_proposal)}"
            )
        if not isinstance(self.preemptive, bool):
            raise InvalidConfig(f"preemptive must be a bool, got {show(self.preemptive)}")
        get_policy(self.policy)  # InvalidConfig naming the bad value
        check_confidence(self.draft_confidence)
        if not isinstance(self.policy, str):
            raise InvalidConfig(f"policy must be a policy name, got {show(self.policy)}")
        if self.cancel_layers is not None:
            _positive_int(self.cancel_layers, "cancel_layers", MAX_LAYERS)
            if self.preemptive:
                raise InvalidConfig(
                    f"cancel_layers={show(self.cancel_layers)} needs preemptive=False "
                    "(with preemption a cancelled pass already stops at once)"
                )
        object.__setattr__(self, "prompt", tuple(self.prompt))


def check_run_config(cfg: object) -> RunConfig:
    """`cfg` if it is a RunConfig (validated when it was built); InvalidConfig otherwise."""
    if not isinstance(cfg, RunConfig):
        raise InvalidConfig(f"cfg must be a RunConfig, got {show(cfg)}")
    return cfg
