"""Device benchmark: DSI, best-k SI and non-SI on random-weight models at real shapes.

    PYTHONPATH=. python3 benchmarks/gpu/bench.py --out "$OUT" [--shape 7b] [--device cuda:0]
    PYTHONPATH=. python3 benchmarks/gpu/bench.py --out /tmp/x --shape tiny --device cpu  # smoke

Timing mode (gpu_runner.passes.BernoulliRule): the forwards are real, acceptance
is a keyed Bernoulli(a), so no trained pair is needed. Measured here:
1. the target's and drafter's TTFT, TPOT and per-position cost (median of repeats);
2. achieved memory bandwidth of one target decode step (weight bytes / TPOT)
   as a fraction of the device's peak (given by --peak-tbs, H200: 4.8 TB/s);
3. how P target servers on one GPU overlap (threads + one CUDA stream each):
   wall time of P simultaneous decode passes vs one;
4. DSI (P = 1..8) vs SI at its best k vs non-SI, each measured and predicted
   (non-preemptive virtual clock with the measured costs, same pattern).
Writes results.json and summary.txt under --out. Installs nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
import transformers

from dsi_ref.latency import Latency
from gpu_runner.api import RunnerConfig, run
from gpu_runner.kv_worker import ModelWorker
from gpu_runner.predict import fitted_latency, predict

SHAPES: dict[str, dict[str, int]] = {
    # Llama-2-7B and a ~100M drafter of the same family (vocabulary 32000).
    "7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
    ),
    "1b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
    "100m": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        vocab_size=32000,
    ),
    "tiny": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
    ),
    "tinier": dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=256,
    ),
}


def build(shape: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    cfg = transformers.LlamaConfig(max_position_embeddings=4096, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: a 7B init on the host takes minutes
        model = transformers.LlamaForCausalLM(cfg).to(dtype)
    return model.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Any, device: torch.device, repeats: int) -> float:
    """Median seconds of fn() after one warm-up call, device synchronised."""
    fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def costs(
    model: torch.nn.Module, device: torch.device, prompt: int, k: int, reps: int
) -> dict[str, float]:
    ids = list(range(1, prompt + 1))
    w = ModelWorker(model, ids, "m")
    ttft = timed(lambda: (w.reset(), w.logits([], 0, 0)), device, reps)
    chain = [5] * (k + 2)
    w.reset()
    w.logits(chain, 0, 0)
    tpot = timed(lambda: w.logits(chain, 1, 1), device, reps)  # crop 0, feed 1 id
    wide = timed(lambda: w.logits(chain, 1, k + 1), device, reps)  # feed k + 1 ids
    return {"ttft_s": ttft, "tpot_s": tpot, "per_position_s": max(0.0, (wide - tpot) / k)}


def overlap(model: torch.nn.Module, device: torch.device, servers: int, reps: int) -> float:
    """Wall of `servers` simultaneous decode passes (threads + own streams) / wall of one."""
    workers = [ModelWorker(model, [1, 2, 3, 4], f"s{i}") for i in range(servers)]
    for w in workers:
        w.logits([5, 6], 0, 0)

    def one(w: ModelWorker) -> None:
        stream = torch.cuda.Stream(device=device) if device.type == "cuda" else None
        if stream is not None:
            with torch.cuda.stream(stream):
                w.logits([5, 6], 1, 1)
            stream.synchronize()
        else:
            w.logits([5, 6], 1, 1)

    def all_at_once() -> None:
        ths = [threading.Thread(target=one, args=(w,)) for w in workers]
        for t in ths:
            t.start()
        for t in ths:
            t.join()

    single = timed(lambda: one(workers[0]), device, reps)
    return timed(all_at_once, device, reps) / single


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shape", default="7b", choices=sorted(SHAPES))
    ap.add_argument("--drafter-shape", default="100m", choices=sorted(SHAPES))
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--acceptance", type=float, nargs="+", default=[0.5, 0.8])
    ap.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 5, 8])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--peak-tbs", type=float, default=4.8, help="device peak memory TB/s")
    ns = ap.parse_args(argv)
    ns.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(ns.device)
    dtype = getattr(torch, ns.dtype)
    torch.set_num_threads(1)
    t0 = time.time()
    res: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "shape": ns.shape,
        "drafter_shape": ns.drafter_shape,
        "dtype": ns.dtype,
    }
    if device.type == "cuda":
        res["device_name"] = torch.cuda.get_device_name(device)
    target = build(ns.shape, device, dtype)
    drafter = build(ns.drafter_shape, device, dtype)
    nbytes = sum(p.numel() * p.element_size() for p in target.parameters())
    res["target_params"] = sum(p.numel() for p in target.parameters())
    res["drafter_params"] = sum(p.numel() for p in drafter.parameters())
    kmax = max(ns.ks)
    res["target_costs"] = costs(target, device, ns.prompt, kmax, ns.repeats)
    res["drafter_costs"] = costs(drafter, device, ns.prompt, 1, ns.repeats)
    res["bandwidth_fraction"] = nbytes / res["target_costs"]["tpot_s"] / (ns.peak_tbs * 1e12)
    res["overlap"] = {P: overlap(target, device, P, max(3, ns.repeats // 2)) for P in ns.servers}
    print(f"[{time.time() - t0:.0f}s] costs and overlap done", file=sys.stderr, flush=True)
    prompt = list(range(1, ns.prompt + 1))
    runs = []
    for a in ns.acceptance:
        for alg, ks, servers in (
            ("nonsi", [1], [1]),
            ("si", ns.ks, [1]),
            ("dsi", ns.ks, ns.servers),
        ):
            for k in ks:
                for P in servers:
                    cfg = RunnerConfig(
                        algorithm=alg,
                        max_new_tokens=ns.tokens,
                        k=k,
                        servers=P,
                        acceptance=a,
                        seed=7,
                    )
                    r = run(target, drafter, prompt, cfg)
                    tl = fitted_latency(r.pass_log, "target")
                    dl = fitted_latency(r.pass_log, "drafter") or Latency.of(1, 1)
                    pred = float(predict(r, k, P, tl, dl)) if tl is not None else None
                    runs.append(
                        {
                            "a": a,
                            "algorithm": alg,
                            "k": k,
                            "servers": P,
                            "wall_s": r.wall,
                            "predicted_s": pred,
                            **r.costs.per_token(ns.tokens),
                            "peak_cache_bytes": r.costs.peak_cache_bytes,
                        }
                    )
        print(f"[{time.time() - t0:.0f}s] a={a} done", file=sys.stderr, flush=True)
    res["runs"] = runs
    lines = [
        f"{res.get('device_name', device)}  target {ns.shape} ({res['target_params'] / 1e9:.2f}B) "
        f"drafter {ns.drafter_shape} ({res['drafter_params'] / 1e6:.0f}M) {ns.dtype}",
        f"target TTFT {res['target_costs']['ttft_s'] * 1e3:.2f} ms  TPOT "
        f"{res['target_costs']['tpot_s'] * 1e3:.2f} ms  per extra position "
        f"{res['target_costs']['per_position_s'] * 1e3:.3f} ms; drafter TPOT "
        f"{res['drafter_costs']['tpot_s'] * 1e3:.2f} ms",
        f"decode bandwidth {res['bandwidth_fraction']:.2%} of {ns.peak_tbs} TB/s",
        "P servers at once / one: "
        + ", ".join(f"P={k}: {v:.2f}" for k, v in res["overlap"].items()),
    ]
    for a in ns.acceptance:
        rs = [r for r in runs if r["a"] == a]
        non = min(r["wall_s"] for r in rs if r["algorithm"] == "nonsi")
        si = min(rs, key=lambda r: r["wall_s"] if r["algorithm"] == "si" else 1e99)
        dsi = min(rs, key=lambda r: r["wall_s"] if r["algorithm"] == "dsi" else 1e99)
        lines.append(
            f"a={a}: non-SI {non:.3f}s; best SI k={si['k']} {si['wall_s']:.3f}s; best DSI "
            f"k={dsi['k']} P={dsi['servers']} {dsi['wall_s']:.3f}s "
            f"(pred {dsi['predicted_s']:.3f}); "
            f"DSI/SI {si['wall_s'] / dsi['wall_s']:.2f}x, DSI/non-SI {non / dsi['wall_s']:.2f}x"
        )
    res["elapsed_s"] = time.time() - t0
    (ns.out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (ns.out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
