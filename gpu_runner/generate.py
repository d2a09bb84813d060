"""`generate`: the runner's public entry point, with every check done before loading."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.latency import Latency
from dsi_ref.policies import DEFAULT_POLICY
from dsi_ref.sampling import SamplingConfig
from dsi_ref.sampling_rule import GPU_API, check_sampling
from gpu_runner.api import RunnerConfig, check_progress, run
from gpu_runner.devices import server_devices
from gpu_runner.errors import IncompatiblePair
from gpu_runner.loading import check_pair, context_window, load_model, resolve_device, vocab_size
from gpu_runner.passes import Waits
from gpu_runner.result import RealRun
from gpu_runner.transport.backends import check_backend, mark_source

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def parse_dtype(x: object) -> torch.dtype:
    if isinstance(x, torch.dtype) and x in _DTYPES.values():
        return x
    if isinstance(x, str) and x in _DTYPES:
        return _DTYPES[x]
    raise InvalidConfig(f"dtype must be one of {sorted(_DTYPES)}, got {show(x)}")


def _pair_dtype(target: object, drafter: object, dtype: object) -> torch.dtype:
    """The dtype to load at: the one given, else a loaded model's own, else float32."""
    if dtype is not None:
        return parse_dtype(dtype)
    own = {}
    for name, m in (("target", target), ("drafter", drafter)):
        if isinstance(m, torch.nn.Module):
            p = next(m.parameters(), None)
            if p is not None:
                own[name] = p.dtype
    if len(set(own.values())) > 1:
        raise IncompatiblePair(
            f"target dtype {own['target']} differs from drafter dtype {own['drafter']}: "
            "pass dtype= to cast both"
        )
    return next(iter(own.values()), torch.float32)


def prompt_ids(input_ids: object) -> list[int]:
    """A non-empty list of token ids from a list, tuple or a [1, n] / [n] integer tensor."""
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() == 2 and input_ids.shape[0] == 1:
            input_ids = input_ids[0]
        if input_ids.dim() != 1 or input_ids.dtype not in (torch.int64, torch.int32):
            raise InvalidConfig(
                f"input_ids must be one sequence of integer ids (shape [n] or [1, n]), got a "
                f"{input_ids.dtype} tensor of shape {tuple(input_ids.shape)}"
            )
        input_ids = input_ids.tolist()
    if isinstance(input_ids, (str, bytes)) or not isinstance(input_ids, Sequence):
        raise InvalidConfig(f"input_ids must be a sequence of token ids, got {show(input_ids)}")
    ids = list(input_ids)
    if not ids:
        raise InvalidConfig("input_ids is empty: the first position needs a prompt to condition on")
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise InvalidConfig(f"input_ids holds {show(t)}, not a token id (an int >= 0)")
    return ids


def _wait_pair(x: object, name: str, what: str = "inject") -> Latency:
    """A (TTFT, TPOT) pair in seconds as a Latency, or InvalidConfig naming the value."""
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence) or len(x) != 2:
        raise InvalidConfig(f"{what}_{name} must be a (TTFT, TPOT) pair of seconds, got {show(x)}")
    return Latency.of(x[0], x[1], name)


def plan_costs(target: object | None, drafter: object | None) -> tuple[Latency, Latency] | None:
    """The pass costs DSI's policy plans with (RunnerConfig.plan), from (TTFT, TPOT)
    pairs in seconds; None when neither is given."""
    if target is None and drafter is None:
        return None
    if target is None or drafter is None:
        raise InvalidConfig("planning costs need both plan_target and plan_drafter (TTFT, TPOT)")
    return _wait_pair(target, "target", "plan"), _wait_pair(drafter, "drafter", "plan")


def latency_waits(target: object | None, drafter: object | None, replace: bool) -> Waits | None:
    """Injected waits from (TTFT, TPOT) pairs in seconds, or None when neither is given."""
    if not isinstance(replace, bool):
        raise InvalidConfig(f"replace_forward must be a bool, got {show(replace)}")
    if target is None and drafter is None:
        if replace:  # it changes how injected waits apply: alone it would be ignored
            raise InvalidConfig("replace_forward=True needs inject_target and inject_drafter")
        return None
    if target is None or drafter is None:
        raise InvalidConfig("latency-injected mode needs both target and drafter (TTFT, TPOT)")
    return Waits(_wait_pair(target, "target"), _wait_pair(drafter, "drafter"), replace)


def generate(
    target: PreTrainedModel | str | Path,
    drafter: PreTrainedModel | str | Path,
    input_ids: object,
    *,
    algorithm: str = "dsi",
    max_new_tokens: int = 32,
    k: int = 3,
    servers: int = 2,
    do_sample: bool = False,
    temperature: float | Fraction = 1.0,
    top_k: int | None = None,
    top_p: float | Fraction | None = None,
    seed: int = 0,
    devices: Sequence[str | torch.device] | str | None = None,
    drafter_device: str | torch.device | None = None,
    exclusive: bool = False,
    dtype: str | torch.dtype | None = None,
    inject_target: Sequence[object] | None = None,
    inject_drafter: Sequence[object] | None = None,
    replace_forward: bool = False,
    acceptance: float | None = None,
    record: bool = False,
    progress: Callable[[int], Any] | None = None,
    policy: str = DEFAULT_POLICY,
    backend: Any = "threads",
    draft_confidence: float | None = None,
    layer_cancel: bool = True,
    plan_target: Sequence[object] | None = None,
    plan_drafter: Sequence[object] | None = None,
) -> RealRun:
    """Generate `max_new_tokens` tokens after `input_ids` with DSI, SI or non-SI.

    target, drafter: loaded models or local directories (config.json + safetensors).
    dtype: None keeps a loaded model's dtype (and loads paths in float32); a dtype casts
    (a loaded model is cast and moved in place, as `model.to` does).
    Sampling follows GenerationConfig: do_sample=False is greedy. `devices` lists the
    target servers' devices (round-robin; servers on one device share one weight
    copy); `exclusive` asks for one device per server. `inject_*` = (TTFT, TPOT) in
    seconds pads every pass to a fixed wait, at most 60 s (latency-injected mode); `acceptance`
    switches to timing mode (keyed Bernoulli acceptance); `policy` names DSI's scheduling
    policy (dsi_ref.policies); `draft_confidence` ends a block after a draft whose largest
    drafter probability is below it (SI and DSI; None: off). `layer_cancel`: a cancelled
    pass stops at the next decoder layer (threads, processes and ray backends). `plan_*` =
    (TTFT, TPOT) in seconds: the pass costs DSI's policy plans with (its pause, spare
    server and rule 3 compare predicted ends; default: the injected waits, else the run's
    own pass costs, fitted as it goes, gpu_runner.online_plan); costs measured before the
    run make it what the virtual clock predicts with them. `backend`:
    "threads", "processes" (one OS process per worker), "ray" (one actor per worker; a model
    given as a path is loaded by each actor from that path, which every node must hold), or an open
    `ProcessBackend` / `RayBackend` to reuse. Returns tokens, wall times, costs (forwards
    that ran), scheduler_counts (tasks the scheduler issued) and (with record=True) a
    trace dsi_ref's checker reads.
    """
    if not isinstance(do_sample, bool):  # 'yes' or 0 would pick a mode by truthiness
        raise InvalidConfig(f"do_sample must be a bool, got {show(do_sample)}")
    check_sampling(not do_sample, temperature, top_k, top_p, GPU_API)  # dsi_ref's one rule
    sampling = SamplingConfig(
        greedy=not do_sample, temperature=temperature, top_k=top_k, top_p=top_p
    )
    check_progress(progress)
    waits = latency_waits(inject_target, inject_drafter, replace_forward)
    cfg = RunnerConfig(
        algorithm, max_new_tokens, k, servers, seed, sampling, waits, acceptance, policy
    )
    cfg = dataclasses.replace(
        cfg,
        draft_confidence=draft_confidence,
        layer_cancel=layer_cancel,
        plan=plan_costs(plan_target, plan_drafter),
    )
    check_backend(backend)
    prompt = prompt_ids(input_ids)
    torch_dtype = _pair_dtype(target, drafter, dtype)
    devs = server_devices(devices, cfg.servers if algorithm == "dsi" else 1, exclusive)
    d_dev = resolve_device(drafter_device) if drafter_device is not None else devs[0]
    t_model = load_model(target, dtype=torch_dtype, device=devs[0])
    d_model = load_model(drafter, dtype=torch_dtype, device=d_dev)
    check_pair(t_model, d_model)  # vocabularies (config and output rows) and dtypes
    for spec, m in ((target, t_model), (drafter, d_model)):
        if isinstance(spec, (str, Path)):  # Ray actors load it from there, not shipped
            mark_source(m, os.path.abspath(spec))
    vocab = vocab_size(t_model)
    bad = [t for t in prompt if t >= vocab]
    if bad:
        raise InvalidConfig(f"input_ids holds {bad[0]}, outside the vocabulary 0..{vocab - 1}")
    for name, m in (("target", t_model), ("drafter", d_model)):
        window = context_window(m)
        if window is not None and len(prompt) + max_new_tokens > window:
            raise InvalidConfig(
                f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
                f"{name}'s context window of {window}"
            )
    return run(
        t_model,
        d_model,
        prompt,
        cfg,
        server_devices=devs,
        record=record,
        progress=progress,
        backend=backend,
    )
