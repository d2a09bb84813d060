"""Figure 2 of the paper: speedups of SI, DSI and non-SI over drafter latency c and acceptance a.

Every cell evaluates the offline cost model (dsi_ref.theory.offline, float64 DP: the exact
expectation up to rounding) for k = 1..kmax and keeps, per algorithm, the k of least expected
latency (ties: the smallest k). SI may use any k. DSI may use a k only if its server count
`required_servers(k, c, chain)` is at most pmax: ceil(1 / (k c)) verification servers, plus
one for the target-only chain when `chain` is set (the default; `chain=False` is the authors'
rule). A cell where no k is admissible has no DSI value (NaN).

With `si_admissible_only` SI is restricted to the same admissible k as DSI. That is what the
authors' pipeline does (it drops every (c, a, k) row DSI cannot serve, for both algorithms,
before taking the per-cell minimum), and it is what makes their panel DSI/min(SI, non-SI) >= 1
everywhere: with SI free to use any k, a tiny c forces DSI to a large k (k c >= 1/(P - 1))
while SI's best k is small, and DSI/min(SI, non-SI) dips below 1 there (docs/figure2.md).

The four panels are speedups (ratios of expected latencies, > 1 meaning the algorithm is
faster than the baseline): of SI over non-SI = T_nonSI / T_SI, of DSI over SI = T_SI / T_DSI,
of DSI over non-SI = T_nonSI / T_DSI, and of DSI over the faster of SI and non-SI =
min(T_SI, T_nonSI) / T_DSI. The pink strip at c = 0.01 in the DSI-over-SI panels is the server
budget (`forced_strips`): P <= 7 admits only k >= 17 there, while SI's best k is 2..8.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from dsi_ref.errors import InvalidConfig, show
from dsi_ref.outputs import write_bytes, write_output
from dsi_ref.theory.offline import FloatArray, dsi_grid, required_servers, si_grid

GRID_MIN, GRID_MAX = 0.01, 0.99
PANELS = ("si_vs_nonsi", "dsi_vs_si", "dsi_vs_nonsi", "dsi_vs_min")
# Each panel shows a speedup (latency of the baseline / latency of the algorithm).
PANEL_TITLES = {
    "si_vs_nonsi": "speedup of SI over non-SI",
    "dsi_vs_si": "speedup of DSI over SI",
    "dsi_vs_nonsi": "speedup of DSI over non-SI",
    "dsi_vs_min": "speedup of DSI over the faster of SI and non-SI",
}
# Bounds of one heatmap: grid points per axis, and the work grid^2 * S * kmax (the default
# 21^2 * 1000 * 20 = 8.8e6 takes 2-3 s; the bound is ~10x that) and memory grid^2 * S
# (float64 arrays of that many entries; the bound keeps each under 80 MB).
GRID_POINTS_MAX = 201
WORK_MAX = 10**8
MEMORY_MAX = 10**7
Progress = Callable[[int, int], None]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def grid_values(points: int) -> FloatArray:
    """`points` evenly spaced values of [0, 1], clipped to [0.01, 0.99] (the paper's grid)."""
    if (
        isinstance(points, bool)
        or not isinstance(points, int)
        or not 2 <= points <= GRID_POINTS_MAX
    ):
        raise InvalidConfig(f"grid must be an int in [2, {GRID_POINTS_MAX}], got {show(points)}")
    return np.asarray(np.clip(np.linspace(0.0, 1.0, points), GRID_MIN, GRID_MAX), np.float64)


@dataclass(frozen=True)
class Heatmap:
    """Per cell [i, j] (c = c[i], a = a[j]): best lookaheads, expected latencies, servers."""

    c: FloatArray
    a: FloatArray
    S: int
    kmax: int
    pmax: int
    chain: bool
    si_admissible_only: bool
    k_si: IntArray
    k_dsi: IntArray  # 0 where no k is admissible
    servers_dsi: IntArray  # 0 where no k is admissible
    t_si: FloatArray
    t_dsi: FloatArray  # NaN where no k is admissible
    # "offline": the model above; else how DSI was timed (dsi_ref.theory.clock_heatmap)
    model: str = "offline"
    reps: int = 0  # acceptance patterns per cell (virtual clock only)
    # Standard error of t_dsi: None for the offline model (an exact expectation, 0); the
    # Monte Carlo estimate's on the virtual clock (NaN with one pattern per cell).
    t_dsi_stderr: FloatArray | None = None

    @property
    def t_nonsi(self) -> FloatArray:
        return np.full(self.t_si.shape, float(self.S))

    def ratio(self, panel: str) -> FloatArray:
        """The speedup shown in `panel` (one of PANELS)."""
        nonsi = self.t_nonsi
        if panel == "si_vs_nonsi":
            return nonsi / self.t_si
        if panel == "dsi_vs_si":
            return self.t_si / self.t_dsi
        if panel == "dsi_vs_nonsi":
            return nonsi / self.t_dsi
        if panel == "dsi_vs_min":
            return np.minimum(self.t_si, nonsi) / self.t_dsi
        raise InvalidConfig(f"panel must be one of {PANELS}, got {show(panel)}")

    def ranges(self) -> dict[str, tuple[float, float]]:
        """(min, max) of every panel over the cells that have a value."""
        return {
            p: (float(np.nanmin(self.ratio(p))), float(np.nanmax(self.ratio(p)))) for p in PANELS
        }


def compute(
    grid: int = 21,
    kmax: int = 20,
    pmax: int = 7,
    S: int = 1000,
    chain: bool = True,
    si_admissible_only: bool = False,
    progress: Progress | None = None,
) -> Heatmap:
    """Evaluate every cell of the grid x grid (c, a) heatmap; `progress(done, total)` per k."""
    for name, v, lo in (("kmax", kmax, 1), ("pmax", pmax, 1), ("S", S, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InvalidConfig(f"{name} must be an int >= {lo}, got {show(v)}")
    c = grid_values(grid)
    a = grid_values(grid)
    cells = grid * grid
    if cells * S > MEMORY_MAX:
        raise InvalidConfig(
            f"grid^2 * S = {grid}^2 * {S} = {show(cells * S)} exceeds {show(MEMORY_MAX)} "
            "(memory of the DP arrays); lower grid or S"
        )
    if cells * S * kmax > WORK_MAX:
        raise InvalidConfig(
            f"grid^2 * S * kmax = {grid}^2 * {S} * {kmax} = {show(cells * S * kmax)} exceeds "
            f"{show(WORK_MAX)} (about 10x the default, half a minute); lower grid, S or kmax"
        )
    needs = {k: [required_servers(k, float(ci), chain) for ci in c] for k in range(1, kmax + 1)}
    fewest = min(min(n) for n in needs.values())
    if fewest > pmax:  # no DSI value anywhere: refuse before the work, not after
        chain_note = " (one of them for the target-only chain)" if chain else ""
        raise InvalidConfig(
            f"pmax={pmax} admits no lookahead: with k <= {kmax} DSI needs at least {fewest} "
            f"servers at every c on the grid{chain_note}; raise pmax to {fewest} or more"
            + (", or chain=False (--paper-servers, the authors' count)" if chain else "")
        )
    cc, aa = np.meshgrid(c, a, indexing="ij")
    shape = cc.shape
    best_si = np.full(shape, np.inf)
    best_dsi = np.full(shape, np.inf)
    k_si = np.zeros(shape, dtype=np.int64)
    k_dsi = np.zeros(shape, dtype=np.int64)
    servers = np.zeros(shape, dtype=np.int64)
    for k in range(1, kmax + 1):
        need = np.array(needs[k])[:, None]
        need = np.broadcast_to(need, shape)
        admissible = need <= pmax
        t = si_grid(aa, cc, k, S)
        better = t < best_si  # strict: ties keep the smaller k
        if si_admissible_only:
            better &= admissible
        best_si = np.where(better, t, best_si)
        k_si = np.where(better, k, k_si)
        if np.any(admissible):
            t = dsi_grid(aa, cc, k, S)
            better = admissible & (t < best_dsi)
            best_dsi = np.where(better, t, best_dsi)
            k_dsi = np.where(better, k, k_dsi)
            servers = np.where(better, need, servers)
        if progress is not None:
            progress(k, kmax)
    best_si = np.where(k_si > 0, best_si, np.nan)
    best_dsi = np.where(k_dsi > 0, best_dsi, np.nan)
    return Heatmap(
        c, a, S, kmax, pmax, chain, si_admissible_only, k_si, k_dsi, servers, best_si, best_dsi
    )


# A ratio within TIE_RTOL of 1 is drawn as exactly 1 (a tie, not pink): on the diagonal
# c = a SI with k = 1 ties non-SI exactly, and the float DP lands at 1 - 2.5e-14 there.
TIE_RTOL = 1e-9


def shown_ratio(h: Heatmap, panel: str) -> FloatArray:
    """The speedup as the figure draws it: `h.ratio(panel)` with ties snapped to 1."""
    r = h.ratio(panel)
    return np.where(np.abs(r - 1) <= TIE_RTOL, 1.0, r)


def si_slower_than_nonsi(h: Heatmap, rtol: float = 1e-12) -> BoolArray:
    """Cells where SI with its best k is slower than non-SI (ties within rtol are not)."""
    return np.asarray(h.t_si > h.S * (1 + rtol))


def predicted_si_slower(h: Heatmap) -> BoolArray:
    """The closed-form condition (S -> infinity): SI is slower than non-SI for every k iff c > a."""
    cc, aa = np.meshgrid(h.c, h.a, indexing="ij")
    return np.asarray(cc > aa)


def progress_bar(width: int = 30, label: str = "k") -> Progress:
    """A plain-text progress bar on stderr; redrawn in place (`\\r`) on a terminal only.

    Redirected to a file or pipe it writes one line at each quarter instead, so a log is
    not one long line of overwritten bars.
    """
    if not sys.stderr.isatty():

        def lines(done: int, total: int) -> None:
            if done == total or 4 * done // total != 4 * (done - 1) // total:
                sys.stderr.write(f"{label} {done}/{total}\n")
                sys.stderr.flush()

        return lines

    def draw(done: int, total: int) -> None:
        filled = width * done // total
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r[{bar}] {label} {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return draw


CSV_COLUMNS = (
    "c",
    "a",
    "k_si",
    "k_dsi",
    "servers_dsi",
    "t_nonsi",
    "t_si",
    "t_dsi",
    *PANELS,
    "t_dsi_stderr",
)


def render_csv(h: Heatmap) -> bytes:
    """One row per cell: c, a, best k of SI and DSI, DSI's servers, latencies, the 4 ratios
    (the ratios as computed, ties not snapped), and the standard error of t_dsi (0 for the
    offline model's exact expectation; on the virtual clock the Monte Carlo estimate's, so
    a ratio's is about ratio * t_dsi_stderr / t_dsi: SI's and non-SI's are exact)."""
    f = io.StringIO(newline="")
    _csv_rows(h, {p: h.ratio(p) for p in PANELS}, f)
    return f.getvalue().encode("utf-8")


def write_csv(h: Heatmap, path: Path) -> None:
    """Write `render_csv(h)` to `path` (dsi_ref.outputs: atomic for a regular file)."""
    write_output(path, write_bytes(render_csv(h)), "CSV file")


def _csv_rows(h: Heatmap, ratios: dict[str, FloatArray], f: IO[str]) -> None:
    w = csv.writer(f)
    w.writerow(CSV_COLUMNS)
    for i, ci in enumerate(h.c):
        for j, aj in enumerate(h.a):
            w.writerow(
                [
                    f"{ci:.6g}",
                    f"{aj:.6g}",
                    int(h.k_si[i, j]),
                    int(h.k_dsi[i, j]),
                    int(h.servers_dsi[i, j]),
                    h.S,
                    repr(float(h.t_si[i, j])),
                    repr(float(h.t_dsi[i, j])),
                    *(repr(float(ratios[p][i, j])) for p in PANELS),
                    repr(0.0 if h.t_dsi_stderr is None else float(h.t_dsi_stderr[i, j])),
                ]
            )


def _edges(v: FloatArray) -> FloatArray:
    """Cell edges around the (possibly unevenly spaced) grid values: midpoints, ends mirrored."""
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


@dataclass(frozen=True)
class ForcedStrip:
    """A column c where DSI is slower than SI because P servers force a large lookahead."""

    c: float
    k_forced: int  # the smallest k whose server count fits P at this c
    k_si: tuple[int, int]  # SI's best k over the cells of the strip (min, max)
    a: tuple[float, float]  # the acceptance rates of those cells (min, max)


def forced_strips(h: Heatmap) -> list[ForcedStrip]:
    """Columns with cells where DSI/SI < 1: there DSI must use a k that SI does not need.

    With the defaults that is c = 0.01: 7 servers admit only k >= 17 (ceil(1/(k c)) + 1 <= 7),
    while SI's best k there is 2..8 (docs/figure2.md).
    """
    if h.model != "offline":  # the server rule above is the offline model's
        return []
    r = h.ratio("dsi_vs_si")
    strips = []
    for i, ci in enumerate(h.c):
        below = np.flatnonzero(np.nan_to_num(r[i], nan=np.inf) < 1)
        if below.size == 0:
            continue
        forced = next(
            k for k in range(1, h.kmax + 1) if required_servers(k, float(ci), h.chain) <= h.pmax
        )
        ks = h.k_si[i, below]
        strips.append(
            ForcedStrip(
                float(ci),
                forced,
                (int(ks.min()), int(ks.max())),
                (float(h.a[below].min()), float(h.a[below].max())),
            )
        )
    return strips


def _strip_line(h: Heatmap, st: ForcedStrip) -> str:
    return (
        f"c = {st.c:g}: P <= {h.pmax} forces DSI to k >= {st.k_forced} while SI's best k is "
        f"{st.k_si[0]}..{st.k_si[1]} (a = {st.a[0]:g}..{st.a[1]:g})"
    )


def strip_note(h: Heatmap) -> str:
    """One line explaining the pink strips of the DSI panels ('' if there are none)."""
    parts = [_strip_line(h, st) for st in forced_strips(h)]
    return ("pink strip at " + "; ".join(parts)) if parts else ""


def render_png(h: Heatmap) -> bytes:
    """The four panels as PNG bytes; cells below 1 (the first algorithm is slower) are pink.

    Ratios within TIE_RTOL of 1 are drawn as 1 (`shown_ratio`). Each forced strip gets a
    line of the title and an arrow from one box per DSI panel, so several strips (a small
    P) stay legible.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    strips = forced_strips(h)
    fig, axes = plt.subplots(2, 2, figsize=(11, 9.5 + 0.3 * len(strips)), constrained_layout=True)
    c_edges, a_edges = _edges(h.c), _edges(h.a)
    for ax, panel in zip(axes.flat, PANELS, strict=True):
        r = shown_ratio(h, panel)
        cmap = plt.get_cmap("viridis").with_extremes(under="pink", bad="lightgrey")
        finite = r[np.isfinite(r)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (1.0, 1.0)
        # log scale from 1: the corner (c -> 0, a -> 1) is 10-50x and would flatten the rest
        norm = LogNorm(vmin=1.0, vmax=max(hi, 1.0 + 1e-9))
        mesh = ax.pcolormesh(c_edges, a_edges, r.T, cmap=cmap, norm=norm)
        bar = fig.colorbar(mesh, ax=ax, extend="min", label="speedup (pink: below 1)")
        steps = (1, 1.5, 2, 3, 5, 10, 20, 50) if hi > 5 else (1, 1.1, 1.25, 1.5, 2, 3, 5)
        ticks = [t for t in steps if t <= hi]
        bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        bar.ax.minorticks_off()
        ax.set_title(f"{PANEL_TITLES[panel]}\nrange [{lo:.3f}, {hi:.3f}]", fontsize=10)
        ax.set_xlabel("drafter latency c (fraction of target)")
        ax.set_ylabel("acceptance rate a")
        if panel in ("dsi_vs_si", "dsi_vs_min") and strips:
            box = (0.62, 0.5)  # in data units: c and a both span [0, 1]
            for st in strips:
                ax.annotate(
                    "",
                    xy=(st.c, (st.a[0] + st.a[1]) / 2),
                    xytext=box,
                    arrowprops={"arrowstyle": "->", "color": "black"},
                )
            ax.text(
                *box,
                f"P <= {h.pmax} forces DSI to\n"
                + "\n".join(
                    f"k >= {st.k_forced} at c = {st.c:g} (SI: k = {st.k_si[0]}..{st.k_si[1]})"
                    for st in strips
                ),
                fontsize=8,
                ha="center",
                va="center",
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.9},
            )
    servers = f"P <= {h.pmax}" + (" incl. target-only chain" if h.chain else "")
    si_k = "same k as DSI" if h.si_admissible_only else f"any k <= {h.kmax}"
    notes = "".join(f"\npink strip at {_strip_line(h, st)}" for st in strips)
    head = f"Offline model, S = {h.S}, best k per cell; DSI: k <= {h.kmax}, {servers}; SI: {si_k}"
    if h.model != "offline":
        head = (
            f"DSI on the {h.model}, P = {h.pmax}, k <= {h.kmax}, S = {h.S}\n"
            f"DSI: estimated over {h.reps} acceptance patterns per cell (SI as control "
            f"variate); SI: exact, any k <= {h.kmax}"
        )
    fig.suptitle(
        head + "\n"
        "each panel: latency of the baseline / latency of the algorithm (> 1: faster); "
        "pink: below 1, grey: no k fits the servers" + notes
    )
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buf.getvalue()


def plot(h: Heatmap, path: Path) -> None:
    """Write `render_png(h)` to `path` (dsi_ref.outputs: atomic for a regular file)."""
    write_output(path, write_bytes(render_png(h)), "figure")
