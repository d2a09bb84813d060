"""Profile a causal LM on the device it sits on: TTFT, TPOT and the cost of scoring m positions.

- TTFT: a prefill of `prompt_len` tokens into an empty KV cache (logits of the last position).
- per position: after a cached prefix of `prompt_len` tokens, one pass scoring m = 1..k+1
  new tokens (a verification pass of k drafts scores k + 1 positions); the cache is cropped
  back after each pass. TPOT is the m = 1 entry: one decode step with a KV cache.

Each number is the median of `repeats` timed runs after `warmup` untimed ones, with a device
synchronisation before the clock is read (torch.cuda.synchronize on CUDA). `profile_pair`
writes the pairs-file format that `python -m dsi_ref table --file` reads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import PreTrainedModel

from dsi_ref.errors import DSIError, InvalidConfig
from dsi_ref.outputs import OutputPath, check_output, write_bytes, write_output
from gpu_runner.hf_compat import cached_forward, crop, new_cache
from gpu_runner.loading import check_pair, context_window, load_model, vocab_size

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class ModelProfile:
    """Medians in ms. per_position_ms[m - 1]: one pass scoring m tokens after the prefix."""

    ttft_ms: float
    tpot_ms: float
    per_position_ms: tuple[float, ...]
    prompt_len: int
    repeats: int
    warmup: int
    device: str
    dtype: str


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA, MPS); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def model_device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidConfig(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _timed_ms(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter_ns()
    fn()
    synchronize(device)
    return (time.perf_counter_ns() - start) / 1e6


@torch.inference_mode()
def profile_model(
    model: PreTrainedModel,
    *,
    prompt_len: int = 128,
    k: int = 5,
    repeats: int = 10,
    warmup: int = 2,
    seed: int = 0,
) -> ModelProfile:
    """TTFT, TPOT and per-position cost of `model` on its device (medians over `repeats`)."""
    _check_int("prompt_len", prompt_len, 1)
    _check_int("k", k, 1)
    _check_int("repeats", repeats, 1)
    _check_int("warmup", warmup, 0)
    window = context_window(model)
    if window is not None and prompt_len + k + 1 > window:
        raise InvalidConfig(
            f"prompt_len {prompt_len} + k {k} + 1 exceeds the context window {window}"
        )
    device = model_device(model)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size(model), (1, prompt_len + k + 1), generator=gen)
    ids = ids.to(device)
    prompt, extra = ids[:, :prompt_len], ids[:, prompt_len:]

    def prefill() -> None:  # a prefill needs the next-token logits of the last position only
        cached_forward(model, prompt, new_cache(model), last=1)

    ttft = [_timed_ms(prefill, device) for _ in range(warmup + repeats)][warmup:]

    cache = new_cache(model)
    cached_forward(model, prompt, cache)
    samples: list[list[float]] = [[] for _ in range(k + 1)]
    for rep in range(warmup + repeats):
        for m in range(1, k + 2):
            ms = _timed_ms(partial(cached_forward, model, extra[:, :m], cache), device)
            crop(cache, m)
            if rep >= warmup:
                samples[m - 1].append(ms)
    per_position = tuple(statistics.median(s) for s in samples)
    return ModelProfile(
        ttft_ms=statistics.median(ttft),
        tpot_ms=per_position[0],
        per_position_ms=per_position,
        prompt_len=prompt_len,
        repeats=repeats,
        warmup=warmup,
        device=str(device),
        dtype=str(model.dtype).removeprefix("torch."),
    )


@torch.inference_mode()
def acceptance_rates(
    target: PreTrainedModel, drafter: PreTrainedModel, input_ids: torch.Tensor
) -> tuple[float, float]:
    """(sampling at T=1, greedy) acceptance of drafter for target on `input_ids` (batch, n).

    sampling: mean over positions of sum_x min(p(x), q(x)); greedy: fraction of positions
    where the argmaxes agree. Computed in float64 from each model's logits.
    """
    check_pair(target, drafter)
    if input_ids.dim() != 2 or input_ids.shape[1] < 1:
        raise InvalidConfig(
            f"input_ids must be (batch, n >= 1), got shape {tuple(input_ids.shape)}"
        )
    lp = torch.log_softmax(target(input_ids=input_ids.to(model_device(target))).logits, -1)
    lq = torch.log_softmax(drafter(input_ids=input_ids.to(model_device(drafter))).logits, -1)
    p, q = lp.double().exp().cpu(), lq.double().exp().cpu()
    sampling = torch.minimum(p, q).sum(-1).mean()
    greedy = (p.argmax(-1) == q.argmax(-1)).double().mean()
    return float(sampling), float(greedy)


def _provenance(prof: ModelProfile) -> str:
    where = prof.device
    if where.startswith("cuda"):
        where += f" ({torch.cuda.get_device_name(torch.device(where))})"
    return (
        f"measured here: gpu_runner.profile on {where}, {prof.dtype}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; median of {prof.repeats} after "
        f"{prof.warmup} warm-up, prompt {prof.prompt_len} tokens"
    )


def pair_entry(
    target_name: str,
    drafter_name: str,
    dataset: str,
    target: ModelProfile,
    drafter: ModelProfile,
    acceptance: float | None = None,
    acceptance_source: str = "",
) -> dict[str, Any]:
    """One pair of a pairs file; acceptance None is written as unknown (value null)."""
    if acceptance is None:
        acc: dict[str, Any] = {
            "value": None,
            "provenance": "not measured: no acceptance rate was given to gpu_runner.profile",
        }
    else:
        if isinstance(acceptance, bool) or not 0.0 <= float(acceptance) <= 1.0:
            raise InvalidConfig(f"acceptance must lie in [0, 1], got {acceptance!r}")
        source = acceptance_source.strip() or "given to gpu_runner.profile"
        acc = {"value": float(acceptance), "provenance": f"measured here: {source}"}
    tp, dp = _provenance(target), _provenance(drafter)
    return {
        "target": target_name,
        "drafter": drafter_name,
        "dataset": dataset,
        "target_ttft_ms": {"value": target.ttft_ms, "provenance": tp},
        "target_tpot_ms": {"value": target.tpot_ms, "provenance": tp},
        "drafter_ttft_ms": {"value": drafter.ttft_ms, "provenance": dp},
        "drafter_tpot_ms": {"value": drafter.tpot_ms, "provenance": dp},
        "acceptance_rate": acc,
        "profile": {"target": _as_json(target), "drafter": _as_json(drafter)},
    }


def profile_pair(
    target: PreTrainedModel,
    drafter: PreTrainedModel,
    *,
    target_name: str = "target",
    drafter_name: str = "drafter",
    dataset: str = "",
    prompt_len: int = 128,
    k: int = 5,
    repeats: int = 10,
    warmup: int = 2,
    acceptance: float | None = None,
    acceptance_source: str = "",
    out: str | Path | OutputPath | None = None,
) -> dict[str, Any]:
    """Profile both models; return (and write to `out`, if given) a one-pair pairs document."""
    check_pair(target, drafter)
    # Checked before the minutes of profiling, not after.
    dest = out if out is None or isinstance(out, OutputPath) else check_output(out, "pairs file")
    kw: dict[str, int] = {"prompt_len": prompt_len, "k": k, "repeats": repeats, "warmup": warmup}
    tprof = profile_model(target, **kw)
    dprof = profile_model(drafter, **kw)
    entry = pair_entry(
        target_name,
        drafter_name,
        dataset or f"random prompt of {prompt_len} tokens",
        tprof,
        dprof,
        acceptance,
        acceptance_source,
    )
    doc: dict[str, Any] = {
        "description": "Latencies measured by gpu_runner.profile (python -m gpu_runner profile).",
        "units": {"latency": "ms per forward pass", "acceptance_rate": "probability in [0, 1]"},
        "pairs": [entry],
    }
    if dest is not None:
        write_output(dest, write_bytes((json.dumps(doc, indent=2) + "\n").encode()))
    return doc


def format_profile(name: str, prof: ModelProfile) -> str:
    pos = " ".join(f"{x:.3f}" for x in prof.per_position_ms)
    return (
        f"{name}: TTFT {prof.ttft_ms:.3f} ms, TPOT {prof.tpot_ms:.3f} ms, "
        f"per pass scoring m = 1..{len(prof.per_position_ms)}: {pos} ms "
        f"({prof.device}, {prof.dtype}, prompt {prof.prompt_len})"
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m gpu_runner profile",
        description="Measure TTFT/TPOT of a target/drafter pair; write a dsi_ref pairs file.",
    )
    ap.add_argument("--target", required=True, help="local model directory (safetensors)")
    ap.add_argument("--drafter", required=True, help="local model directory (safetensors)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    ap.add_argument(
        "--out", required=True, help="pairs JSON file to write (checked before loading)"
    )
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--k", type=int, default=5, help="per-position cost for m = 1..k+1")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--acceptance", type=float, default=None, help="a measured acceptance rate")
    ap.add_argument("--acceptance-source", default="", help="where --acceptance was measured")
    ap.add_argument("--dataset", default="", help="dataset name for the table")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--S", type=int, default=1000, help="tokens for the predicted table")
    return ap


def profile_main(argv: Sequence[str] | None = None) -> int:
    """`python -m gpu_runner profile ...`: print the measurements and the predicted table."""
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None:
            _check_int("--threads", args.threads, 1)
            torch.set_num_threads(args.threads)
        dtype = DTYPES[args.dtype]
        out = check_output(args.out, "pairs file")  # before the models load
        target = load_model(args.target, dtype=dtype, device=args.device)
        drafter = load_model(args.drafter, dtype=dtype, device=args.device)
        doc = profile_pair(
            target,
            drafter,
            target_name=Path(args.target).name or str(args.target),
            drafter_name=Path(args.drafter).name or str(args.drafter),
            dataset=args.dataset,
            prompt_len=args.prompt_len,
            k=args.k,
            repeats=args.repeats,
            warmup=args.warmup,
            acceptance=args.acceptance,
            acceptance_source=args.acceptance_source,
            out=out,
        )
        from dsi_ref.theory.pairs_table import evaluate, format_table, parse_pairs

        prof = doc["pairs"][0]["profile"]
        print(format_profile("target", ModelProfile(**_tuple_pos(prof["target"]))))
        print(format_profile("drafter", ModelProfile(**_tuple_pos(prof["drafter"]))))
        print(format_table(evaluate(parse_pairs(doc), S=args.S), args.S))
        print(f"wrote {args.out}")
    except DSIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _as_json(prof: ModelProfile) -> dict[str, Any]:
    return {**asdict(prof), "per_position_ms": list(prof.per_position_ms)}


def _tuple_pos(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "per_position_ms": tuple(d["per_position_ms"])}
