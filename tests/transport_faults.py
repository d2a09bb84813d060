"""Planted worker faults for the transport tests: a PassMaker that kills, hangs or raises.

A faulty implementation of the pass protocol, never a flag in the executor. It fires
once per marker file (created atomically, so exactly one worker process fires even
across restarts) or, without a marker, every time (a worker that can never succeed).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from gpu_runner.kv_worker import ModelWorker
from gpu_runner.passes import PassMaker

HOWS = ("die", "hang", "raise")


class FaultyPasses(PassMaker):
    def __init__(self, base: PassMaker, how: str, where: str, at: int, marker: str | None) -> None:
        super().__init__(base.sampling, base.rule, base.waits)
        self.how = how
        self.where = where  # "drafter" or "target"
        self.at = at  # the position whose pass faults
        self.marker = marker

    def _fire(self) -> bool:
        if self.marker is None:
            return True
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def _maybe(self, worker: ModelWorker, first: int, last: int) -> None:
        if not worker.name.startswith(self.where) or not first <= self.at <= last:
            return
        if not self._fire():
            return
        if self.how == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.how == "hang":
            time.sleep(3600)
        else:
            raise RuntimeError(f"planted fault in {worker.name} at position {self.at}")

    def draft(self, worker: ModelWorker, chain: Sequence[int], position: int) -> Any:
        self._maybe(worker, position, position)
        return super().draft(worker, chain, position)

    def score(self, worker: ModelWorker, chain: Sequence[int], first: int, last: int) -> Any:
        self._maybe(worker, first, last)
        return super().score(worker, chain, first, last)
