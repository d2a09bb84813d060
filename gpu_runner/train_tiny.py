"""Train the tiny target/drafter pair shipped in gpu_runner/tiny_models/ (byte vocabulary, Llama).

    PYTHONPATH=. python -m gpu_runner.train_tiny [--out gpu_runner/tiny] [--quick]

Data: the `.py` sources of this Python's standard library (sysconfig.get_paths()["stdlib"]),
excluding test suites, idlelib and site-packages, in sorted relative-path order; every 20th
file is held out for evaluation. Bytes are tokens (gpu_runner.tokenizer), files are joined
with <eos>. One torch thread, fixed seeds, fixed step counts: the run is deterministic on a
given machine, Python and torch. Weights are saved as float32 safetensors, and README.md in
the output directory records the command, versions, parameter counts, time, losses and the
measured acceptance rates (sampling at T=1 and greedy) on the held-out text.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from dsi_ref.outputs import check_output, write_bytes, write_outputs
from gpu_runner.loading import placed
from gpu_runner.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE

SEED = 20240521
SEQ_LEN = 128
EVAL_LEN = 256
EVAL_WINDOWS = 32
HELD_OUT_EVERY = 20
EXCLUDED_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages"})
DEFAULT_OUT = Path(__file__).resolve().parent / "tiny_models"


def target_config() -> LlamaConfig:
    """About 0.9M parameters."""
    return _config(hidden=128, intermediate=384, layers=4, heads=4)


def drafter_config() -> LlamaConfig:
    """About 0.14M parameters."""
    return _config(hidden=64, intermediate=192, layers=2, heads=2)


def _config(hidden: int, intermediate: int, layers: int, heads: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The stdlib's .py files (no tests, idlelib, site-packages), sorted by relative path."""
    base = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    found = []
    for p in base.rglob("*.py"):
        rel = p.relative_to(base)
        if EXCLUDED_DIRS.intersection(rel.parts[:-1]) or not p.is_file():
            continue
        found.append(rel)
    return [base / rel for rel in sorted(found, key=lambda r: r.as_posix())]


def corpus(files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) token streams: file bytes joined by <eos>; every 20th file held out."""
    train: list[int] = []
    held: list[int] = []
    for i, p in enumerate(files):
        dest = held if i % HELD_OUT_EVERY == 0 else train
        dest.extend(p.read_bytes())
        dest.append(EOS_ID)
    return torch.tensor(train, dtype=torch.long), torch.tensor(held, dtype=torch.long)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class TrainLog:
    steps: int
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU time (one thread): less sensitive to a busy machine
    first_loss: float
    last_loss: float  # mean of the last 20 steps


def train(
    model: LlamaForCausalLM,
    data: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
) -> TrainLog:
    """AdamW with linear warm-up and cosine decay to 10%, random windows of SEQ_LEN + 1."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, steps // 20)

    def lr_at(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        frac = (s - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses: list[float] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        starts = torch.randint(0, len(data) - SEQ_LEN - 1, (batch,), generator=gen)
        idx = starts[:, None] + torch.arange(SEQ_LEN + 1)[None, :]
        window = data[idx]
        logits = model(input_ids=window[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model.train(False)
    tail = losses[-20:]
    return TrainLog(steps, seconds, cpu_seconds, losses[0], sum(tail) / len(tail))


def eval_windows(held: torch.Tensor) -> torch.Tensor:
    """EVAL_WINDOWS evenly spaced windows of EVAL_LEN tokens from the held-out stream."""
    span = len(held) - EVAL_LEN
    starts = [span * i // EVAL_WINDOWS for i in range(EVAL_WINDOWS)]
    return torch.stack([held[s : s + EVAL_LEN] for s in starts])


@torch.inference_mode()
def evaluate(
    target: LlamaForCausalLM, drafter: LlamaForCausalLM, windows: torch.Tensor
) -> dict[str, float]:
    """Held-out loss (nats/byte) of both, and the acceptance rates of drafter for target.

    sampling: mean over positions of sum_x min(p(x), q(x)) at temperature 1;
    greedy: fraction of positions where the argmaxes agree.
    """
    lp = torch.log_softmax(target(input_ids=windows).logits.double(), dim=-1)
    lq = torch.log_softmax(drafter(input_ids=windows).logits.double(), dim=-1)
    nxt = windows[:, 1:]
    loss_t = -lp[:, :-1].gather(-1, nxt[..., None]).mean()
    loss_d = -lq[:, :-1].gather(-1, nxt[..., None]).mean()
    p, q = lp.exp(), lq.exp()
    sampling = torch.minimum(p, q).sum(-1).mean()
    greedy = (p.argmax(-1) == q.argmax(-1)).double().mean()
    return {
        "target_loss": float(loss_t),
        "drafter_loss": float(loss_d),
        "acceptance_sampling": float(sampling),
        "acceptance_greedy": float(greedy),
    }


def build(config: LlamaConfig, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return placed(LlamaForCausalLM(config), dtype=torch.float32)


def file_size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.glob("*.safetensors"))


def _arch(c: LlamaConfig) -> str:
    return (
        f"hidden {c.hidden_size}, {c.num_hidden_layers} layers, "
        f"{c.num_attention_heads} heads, MLP {c.intermediate_size}"
    )


def readme(r: dict[str, Any]) -> str:
    """gpu_runner/tiny_models/README.md from the training report."""
    t, d, a = r["target_train"], r["drafter_train"], r["trained"]
    u = r["untrained"]
    return f"""# Tiny trained target/drafter pair (byte vocabulary)

Made by `gpu_runner/train_tiny.py`; every number below is from that run (also in
`training.json`). Load with `gpu_runner.tiny.load_tiny_pair()`.

Command (from the repository root, one torch thread):

    {r["command"].strip()}

| | target | drafter |
|---|---|---|
| architecture (Llama) | {_arch(target_config())} | {_arch(drafter_config())} |
| parameters | {r["target_params"]:,} | {r["drafter_params"]:,} |
| weights (float32 safetensors) | {r["target_bytes"]:,} bytes | {r["drafter_bytes"]:,} bytes |
| training steps (batch 16 x 128 bytes) | {t["steps"]} | {d["steps"]} |
| training time, wall / CPU s | {t["seconds"]:.1f} / {t["cpu_seconds"]:.1f} | \
{d["seconds"]:.1f} / {d["cpu_seconds"]:.1f} |
| train loss (nats/byte), first step / last 20 | \
{t["first_loss"]:.3f} / {t["last_loss"]:.3f} | \
{d["first_loss"]:.3f} / {d["last_loss"]:.3f} |
| held-out loss (nats/byte; uniform = 5.557) | {a["target_loss"]:.3f} | {a["drafter_loss"]:.3f} |

Vocabulary: both 259 = 256 bytes + `<pad>` 256, `<bos>` 257, `<eos>` 258
(`gpu_runner.tokenizer`); context window 1024.

Acceptance of the drafter for the target on held-out text ({r["eval"]}), in float64:

- speculative sampling at T = 1, mean over positions of sum_x min(p(x), q(x)):
  **{a["acceptance_sampling"]:.4f}** (untrained pair: {u["acceptance_sampling"]:.4f})
- greedy, fraction of positions where the argmaxes agree:
  **{a["acceptance_greedy"]:.4f}** (untrained pair: {u["acceptance_greedy"]:.4f})

Data: the `.py` files of the standard library of Python {r["python"]} at `{r["stdlib"]}`
(test suites, idlelib and site-packages excluded), {r["files"]} files in sorted order, every
20th held out: {r["train_bytes"]:,} training bytes, {r["held_out_bytes"]:,} held-out bytes.
Files are joined with `<eos>`. Versions: torch {r["torch"]}, transformers {r["transformers"]}.
Deterministic on one machine (fixed seeds, one thread, fixed step counts); another Python's
stdlib or another torch build gives different weights.
"""


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gpu_runner.train_tiny", description=__doc__)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--target-steps", type=int, default=420)
    ap.add_argument("--drafter-steps", type=int, default=200)
    ap.add_argument("--target-lr", type=float, default=3e-3)
    ap.add_argument("--drafter-lr", type=float, default=5e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-save", action="store_true", help="train and evaluate only")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    files = stdlib_files()
    train_ids, held_ids = corpus(files)
    windows = eval_windows(held_ids)
    print(f"{len(files)} files, {len(train_ids)} train bytes, {len(held_ids)} held-out bytes")

    target = build(target_config(), SEED)
    drafter = build(drafter_config(), SEED + 1)
    before = evaluate(target, drafter, windows)
    print(f"params: target {param_count(target)}, drafter {param_count(drafter)}")
    print(f"untrained: {json.dumps(before)}")
    t_log = train(target, train_ids, args.target_steps, args.batch, args.target_lr, SEED + 2)
    print(f"target: {t_log}")
    d_log = train(drafter, train_ids, args.drafter_steps, args.batch, args.drafter_lr, SEED + 3)
    print(f"drafter: {d_log}")
    after = evaluate(target, drafter, windows)
    print(f"trained: {json.dumps(after)}")
    if args.no_save:
        return 0

    out: Path = args.out
    for name, model in (("target", target), ("drafter", drafter)):
        model.save_pretrained(out / name, safe_serialization=True)
    report = {
        "command": "PYTHONPATH=. python -m gpu_runner.train_tiny "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "stdlib": sysconfig.get_paths()["stdlib"],
        "files": len(files),
        "train_bytes": len(train_ids),
        "held_out_bytes": len(held_ids),
        "eval": f"{EVAL_WINDOWS} windows x {EVAL_LEN} tokens of held-out text",
        "target_params": param_count(target),
        "drafter_params": param_count(drafter),
        "target_bytes": file_size(out / "target"),
        "drafter_bytes": file_size(out / "drafter"),
        "target_train": vars(t_log),
        "drafter_train": vars(d_log),
        "untrained": before,
        "trained": after,
    }
    write_outputs(
        [
            (
                check_output(out / "training.json"),
                write_bytes(json.dumps(report, indent=2).encode() + b"\n"),
            ),
            (check_output(out / "README.md"), write_bytes(readme(report).encode())),
        ]
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
