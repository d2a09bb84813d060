"""Does a drafter drafting beside it slow the target's pass? (docs/gpu-runner.md)

    PYTHONPATH=. .venv/bin/python benchmarks/contention_probe.py [--reps 60]

The random ~27M / ~2.4M Llama pair (`gpu_runner.tiny.timing_pair`), one torch thread
each. Times the target's decode pass (1 and k + 1 = 6 positions on a 40-token cache,
median of `--reps`) alone, then while the drafter runs decode passes without pause in
another process, then in another thread of this process (the threads backend's
situation: one interpreter). Prints the medians in ms. A script, not a test: it
measures, it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache

from gpu_runner.hf_compat import cached_forward, crop, new_cache
from gpu_runner.tiny import timing_pair

CACHE = 40


def _cached(model: Any) -> DynamicCache:
    cache = new_cache(model)
    with torch.no_grad():
        cached_forward(model, torch.arange(1, CACHE + 1).unsqueeze(0), cache, last=1)
    return cache


def pass_ms(model: Any, reps: int, width: int) -> float:
    """Median ms of a pass scoring `width` positions on a CACHE-token cache."""
    cache = _cached(model)
    ids = torch.full((1, width), 5)
    times = []
    with torch.no_grad():
        for _ in range(reps):
            start = time.perf_counter()
            cached_forward(model, ids, cache)
            times.append(time.perf_counter() - start)
            crop(cache, width)
    return 1000 * statistics.median(times)


def _draft_forever(stop: Callable[[], bool]) -> None:
    torch.set_num_threads(1)
    drafter = timing_pair()[1].eval()
    cache = _cached(drafter)
    with torch.no_grad():
        while not stop():
            cached_forward(drafter, torch.tensor([[5]]), cache)
            crop(cache, 1)


def _in_process(event: Any) -> None:
    _draft_forever(event.is_set)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=60, help="passes timed per median")
    reps = ap.parse_args().reps
    torch.set_num_threads(1)
    target = timing_pair()[0].eval()

    def row(label: str) -> None:
        one, six = pass_ms(target, reps, 1), pass_ms(target, reps, 6)
        print(f"{label:32s} 1 position {one:6.2f} ms   6 positions {six:6.2f} ms", flush=True)

    row("target alone")
    event = mp.get_context("forkserver").Event()
    proc = mp.get_context("forkserver").Process(target=_in_process, args=(event,))
    proc.start()
    time.sleep(3)  # the drafter process builds its model first
    row("drafter in another process")
    event.set()
    proc.join()
    flag = threading.Event()
    thread = threading.Thread(target=_draft_forever, args=(flag.is_set,))
    thread.start()
    time.sleep(3)
    row("drafter in another thread")
    flag.set()
    thread.join()
    row("target alone again")


if __name__ == "__main__":  # the drafter's process imports this module again
    main()
