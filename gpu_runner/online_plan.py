"""The pass costs DSI's policy plans with when a real run is given none: its own.

Without injected waits or a given plan, the policy's timing choices (the drafter's
pause, the spare server, rule 3) would compare guessed costs, and a guess that a drafter
pass is a tenth of a target pass, far off for a pair whose passes are dominated by
per-call overhead, lets the drafter start drafts that a rejection then holds it in.
`OnlinePlan` fits the costs from the run's passes so far (cost_fit.fitted_latency over
the latest `window` decode passes of each model, and its prefills, each timed by the
driver from submission to report, plus the median time the driver takes over a report)
and the executor hands each new fit to the scheduler (`DSIScheduler.replan`). Passes
that ended are the past, so the tokens do not change (T6); only when passes start does.
"""

from __future__ import annotations

import statistics
from collections import deque

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.latency import Latency
from gpu_runner.cost_fit import PassRow, fitted_latency, micro

WINDOW = 32  # latest decode passes per model the fit reads
REFIT_EVERY = 16  # passes between fits once both models are timed (a fit costs ~0.1 ms)
MOVE = 0.05  # a new fit replaces the plan only when a cost moved by more than this share


class OnlinePlan:
    """Pass costs fitted from the passes observed so far."""

    def __init__(self, window: int = WINDOW, refit_every: int = REFIT_EVERY) -> None:
        for x, what in ((window, "window"), (refit_every, "refit_every")):
            if isinstance(x, bool) or not isinstance(x, int) or x < 1:
                raise InvalidConfig(f"{what} must be an int >= 1, got {show(x)}")
        self._decode: dict[str, deque[PassRow]] = {
            m: deque(maxlen=window) for m in ("target", "drafter")
        }
        self._prefill: dict[str, list[PassRow]] = {"target": [], "drafter": []}
        self._handling: deque[float] = deque(maxlen=window)
        self._every = refit_every
        self._since = 0
        self.plan: tuple[Latency, Latency] | None = None  # the latest fit
        self.fits = 0

    def observe(self, row: PassRow) -> tuple[Latency, Latency] | None:
        """Take in one pass that ran to its end; the new plan when a fit is due (at once
        when both models' decode passes are first timed, then every `refit_every`
        passes) and some cost moved by more than MOVE from the plan, else None (each
        new plan makes the scheduler re-predict its running passes)."""
        model, first = row[0], row[1]
        if model not in self._decode:
            raise InvalidConfig(f"pass model must be 'target' or 'drafter', got {show(model)}")
        if first == 0:
            self._prefill[model].append(row)
        else:
            self._decode[model].append(row)
        self._since += 1
        if self.plan is not None and self._since < self._every:
            return None
        fit = self._fit()
        if fit is None:
            return None
        self._since = 0
        if self.plan is not None and not _moved(self.plan, fit):
            return None
        self.plan = fit
        self.fits += 1
        return fit

    def handled(self, seconds: float) -> None:
        """Take in how long the driver took over one report (the scheduler's step and
        the passes it started): every pass waits for it once, so the fit adds its median
        to each model's costs."""
        self._handling.append(seconds)

    def _fit(self) -> tuple[Latency, Latency] | None:
        """Both models' costs, once each has a decode pass (a prefill alone says
        nothing of the passes that follow it)."""
        fits = []
        for model in ("target", "drafter"):
            if not self._decode[model]:
                return None
            lat = fitted_latency([*self._prefill[model], *self._decode[model]], model)
            if lat is None:
                return None
            if self._handling:
                h = micro(statistics.median(self._handling))
                lat = Latency(lat.ttft + h, lat.tpot + h, lat.per_position)
            fits.append(lat)
        return fits[0], fits[1]


def _moved(old: tuple[Latency, Latency], new: tuple[Latency, Latency]) -> bool:
    """Did any cost of `new` move from `old`'s by more than MOVE of the larger?"""
    for a, b in zip(old, new, strict=True):
        for x, y in ((a.ttft, b.ttft), (a.tpot, b.tpot), (a.per_position, b.per_position)):
            if abs(x - y) > MOVE * max(x, y):
                return True
    return False
