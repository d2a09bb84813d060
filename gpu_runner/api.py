"""`generate`: DSI, SI or non-SI with real models, returning tokens, timings, costs and trace."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from dsi_ref.config import RunConfig
from dsi_ref.errors import InvalidConfig, show
from dsi_ref.latency import Latency
from dsi_ref.policies import DEFAULT_POLICY, check_confidence, get_policy
from dsi_ref.sampling import SamplingConfig
from dsi_ref.verify import TokenRule
from gpu_runner.dsi_exec import run_dsi_real
from gpu_runner.errors import ModelLoadError
from gpu_runner.layer_cut import decoder_layers
from gpu_runner.loading import vocab_size
from gpu_runner.online_plan import OnlinePlan
from gpu_runner.passes import BernoulliRule, PassMaker, Waits
from gpu_runner.result import RealRun
from gpu_runner.rule import TorchRule
from gpu_runner.seq_exec import run_nonsi_real, run_si_real
from gpu_runner.transport.backends import check_backend, open_workers

ALGORITHMS = ("dsi", "si", "nonsi")
MAX_K = 64
MAX_SERVERS = 64


@dataclass(frozen=True)
class RunnerConfig:
    """One real run's settings, validated before any model is touched."""

    algorithm: str = "dsi"
    max_new_tokens: int = 32
    k: int = 3
    servers: int = 2
    seed: int = 0
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(greedy=True))
    waits: Waits | None = None  # latency-injected mode
    acceptance: float | None = None  # timing mode: keyed Bernoulli(a) acceptance
    policy: str = DEFAULT_POLICY  # DSI's scheduling policy (dsi_ref.policies)
    draft_confidence: float | None = None  # early stop of drafting (dsi_ref.policies)
    # A cancelled pass stops at the next decoder layer (threads, processes and ray backends;
    # gpu_runner.layer_cut). Tokens are the same either way; only the time changes.
    layer_cancel: bool = True
    # The pass costs DSI's policy plans with (target, drafter): its pause, its spare
    # server and rule 3 compare predicted ends. None: the injected waits, if any, else
    # the run's own pass costs, fitted as it goes (gpu_runner.online_plan; target 1 and
    # drafter 1/10 until both models' decode passes are timed). Costs measured in
    # isolation (gpu_runner.predict.isolated_costs) make the policy decide as the
    # virtual clock would with them, so predictions match.
    plan: tuple[Latency, Latency] | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise InvalidConfig(
                f"algorithm must be one of {ALGORITHMS}, got {show(self.algorithm)}"
            )
        _int_in(self.max_new_tokens, 1, 10**6, "max_new_tokens")
        _int_in(self.k, 1, MAX_K, "lookahead k")
        _int_in(self.servers, 1, MAX_SERVERS, "servers")
        _int_in(self.seed, 0, 2**64 - 1, "seed")
        if not isinstance(self.sampling, SamplingConfig):
            raise InvalidConfig(f"sampling must be a SamplingConfig, got {show(self.sampling)}")
        a = self.acceptance
        if a is not None and (
            isinstance(a, bool) or not isinstance(a, (int, float)) or not (0.0 <= a <= 1.0)
        ):
            raise InvalidConfig(f"acceptance must be a number in [0, 1], got {show(a)}")
        get_policy(self.policy)  # InvalidConfig naming the bad value
        check_confidence(self.draft_confidence)
        if not isinstance(self.layer_cancel, bool):
            raise InvalidConfig(f"layer_cancel must be a bool, got {show(self.layer_cancel)}")
        if self.plan is not None and not (
            isinstance(self.plan, tuple)
            and len(self.plan) == 2
            and all(isinstance(x, Latency) for x in self.plan)
        ):
            raise InvalidConfig(
                f"plan must be a (target, drafter) pair of dsi_ref Latency, got {show(self.plan)}"
            )
        if self.waits is not None and self.waits.replace and a is None:
            raise InvalidConfig(
                "waits that replace the forward pass need timing mode (an acceptance rate): "
                "without a forward there is no distribution to verify"
            )

    def run_config(self, prompt: Sequence[int]) -> RunConfig:
        """The dsi_ref settings of this run (the trace header; the scheduler's costs)."""
        w = self.waits
        plan = self.plan or ((w.target, w.drafter) if w else None)
        # Timing mode's rule is speculative sampling on implied p, q (gpu_runner.trace_io).
        sampling = self.sampling if self.acceptance is None else SamplingConfig()
        return RunConfig(
            max_tokens=self.max_new_tokens,
            k=self.k,
            servers=self.servers if self.algorithm == "dsi" else 1,
            seed=self.seed,
            sampling=sampling,
            target_latency=plan[0] if plan else Latency.of(1, 1, "target"),
            drafter_latency=plan[1] if plan else Latency.of("1/10", "1/10", "drafter"),
            prompt=tuple(prompt),
            preemptive=False,  # a forward pass cannot be interrupted
            policy=self.policy,
            draft_confidence=self.draft_confidence,
        )


def _int_in(x: object, lo: int, hi: int, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not (lo <= x <= hi):
        raise InvalidConfig(f"{what} must be an int in [{lo}, {hi}], got {show(x)}")
    return x


def make_rule(cfg: RunnerConfig, vocab_size: int) -> TokenRule[Any]:
    if cfg.acceptance is not None:
        return BernoulliRule(cfg.seed, float(cfg.acceptance), vocab_size)
    return TorchRule(cfg.seed, cfg.sampling.greedy)


def place_servers(
    target: torch.nn.Module, devices: Sequence[torch.device]
) -> list[torch.nn.Module]:
    """One weight copy per distinct device; servers on one device share it."""
    copies: dict[torch.device, torch.nn.Module] = {}
    home = next(target.parameters()).device
    out = []
    for dev in devices:
        if dev not in copies:
            copies[dev] = target if dev == home else copy.deepcopy(target).to(dev)
        out.append(copies[dev])
    return out


def check_progress(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise InvalidConfig(
            "progress must be None or a callable taking the number of tokens done, got "
            f"{show(progress)}"
        )


def check_models(target: object, drafter: object) -> None:
    """Both are torch modules with real weights (meta-device weights have no values)."""
    for name, m in (("target", target), ("drafter", drafter)):
        if not isinstance(m, torch.nn.Module):
            raise InvalidConfig(f"{name} must be a torch.nn.Module, got {show(m)}")
        params = list(m.parameters())
        if not params:
            raise ModelLoadError(f"{name} {type(m).__name__} has no parameters")
        if any(p.is_meta for p in params):
            raise ModelLoadError(
                f"{name} {type(m).__name__} has weights on the meta device (shapes only, no "
                "values): load real weights first"
            )


def run(
    target: torch.nn.Module,
    drafter: torch.nn.Module,
    prompt: Sequence[int],
    cfg: RunnerConfig,
    *,
    server_devices: Sequence[torch.device] | None = None,
    record: bool = False,
    progress: Callable[[int], Any] | None = None,
    passes: PassMaker | None = None,
    backend: Any = "threads",
) -> RealRun:
    """One run on already loaded, already checked models (see `generate` for the checks).

    `passes` replaces what each pass computes (tests inject faulty ones here).
    `backend`: "threads", "processes", "ray", or an open pool to reuse
    (`gpu_runner.transport.processes.ProcessBackend`, `gpu_runner.transport.ray.RayBackend`).
    """
    check_models(target, drafter)
    check_progress(progress)
    check_backend(backend)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one intra-op thread per CPU worker: more only fight for cores
    try:
        return _run(target, drafter, prompt, cfg, server_devices, record, progress, passes, backend)
    finally:
        torch.set_num_threads(threads)


def _run(
    target: torch.nn.Module,
    drafter: torch.nn.Module,
    prompt: Sequence[int],
    cfg: RunnerConfig,
    server_devices: Sequence[torch.device] | None,
    record: bool,
    progress: Callable[[int], Any] | None,
    passes: PassMaker | None,
    backend: Any,
) -> RealRun:
    vocab = vocab_size(target)
    rc = cfg.run_config(prompt)
    if passes is None:
        passes = PassMaker(cfg.sampling, make_rule(cfg, vocab), cfg.waits)
    passes.layer_cancel = cfg.layer_cancel  # cfg decides, for injected passes too
    if cfg.algorithm == "dsi":
        home = next(target.parameters()).device
        devices = list(server_devices) if server_devices else [home] * cfg.servers
        servers = place_servers(target, devices)
    else:
        servers = [target]
    first = None if cfg.algorithm == "nonsi" else drafter  # worker 0 is the drafter
    workers, close = open_workers(backend, [first, *servers], prompt, vocab, passes)
    try:
        if cfg.algorithm == "nonsi":
            out = run_nonsi_real(workers, passes, rc, vocab, record=record, progress=progress)
        elif cfg.algorithm == "si":
            out = run_si_real(workers, passes, rc, vocab, record=record, progress=progress)
        else:
            # No plan given and no waits: the policy plans with the run's own pass costs.
            online = OnlinePlan() if cfg.plan is None and cfg.waits is None else None
            out = run_dsi_real(
                workers, passes, rc, vocab, record=record, progress=progress, online=online
            )
    finally:
        close()
    out.costs.layer_cancel = layer_cancel_status(cfg.layer_cancel, backend, [first, target])
    if out.costs.layer_cancel == "on" and cfg.waits is None:  # a wait is never cut
        layers = decoder_layers(target)
        out.costs.cut_layers = None if layers is None else len(layers)
    return out


def layer_cancel_status(on: bool, backend: object, models: Sequence[torch.nn.Module | None]) -> str:
    """What layer cancellation did in a run: "on", "off", or why it could not act."""
    if not on:
        return "off"
    name = backend if isinstance(backend, str) else type(backend).__name__
    if name not in ("threads", "processes", "ProcessBackend", "ray", "RayBackend"):
        return f"off: the {name} backend cannot tell a running pass of its cancellation"
    blind = sorted(
        {type(m).__name__ for m in models if m is not None and decoder_layers(m) is None}
    )
    if blind:
        return f"on, except {', '.join(blind)}: no decoder-layer list found, passes run to the end"
    return "on"
