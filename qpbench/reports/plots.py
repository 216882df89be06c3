"""PNG plots of the results table, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every plot must be readable without the report's text: a title, axis labels with units, a legend,
log scales for quantities that span decades. Each solver keeps one colour and marker in every plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

from qpbench.reports import summary

# 24 colours a reader can tell apart (tab10, then Kelly's colours of maximum contrast that differ
# from those), and 14 marker shapes: solver i gets colour i % 24 and marker i % 14, so the first 24
# solvers each have their own colour and no two of the first 168 share colour and marker. Black is
# kept for the in-house solver.
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#875692", "#a1caf1", "#c2b280", "#008856", "#f99379", "#604e97",
           "#dcd300", "#882d17", "#8db600", "#654522", "#2b3d26", "#f3c300", "#b3446c", "#e68fac")  # fmt: skip
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">", "p", "d", "8")
INHOUSE = "inhouse"
_INHOUSE_COLOR = "#000000"
_NOTE_FAILED = "hollow marker:\nnot every problem\nin the batch succeeded"
_NOTE_EMPHASIS = "bold: in-house and fastest"


@dataclass(frozen=True)
class SolverStyle:
    """Fixed colour and marker per solver, so a solver looks the same in every plot; the in-house
    solver (black) and the plot's fastest are drawn strong, every other solver quieter."""

    solvers: tuple[str, ...]

    def color(self, solver: str) -> str:
        if solver == INHOUSE:
            return _INHOUSE_COLOR
        return _COLORS[self._index(solver) % len(_COLORS)]

    def marker(self, solver: str) -> str:
        return _MARKERS[self._index(solver) % len(_MARKERS)]

    def _index(self, solver: str) -> int:
        others = [s for s in self.solvers if s != INHOUSE]
        return others.index(solver) if solver in others else len(others)

    def line(self, solver: str, strong: bool) -> dict[str, object]:
        """matplotlib keywords for a solver's line: strong (wide, opaque, on top) or quiet."""
        if strong:
            return {"color": self.color(solver), "marker": self.marker(solver), "linewidth": 2.6, "markersize": 7,
                    "alpha": 1.0, "zorder": 5}  # fmt: skip
        return {"color": self.color(solver), "marker": self.marker(solver), "linewidth": 1.0, "markersize": 4.5,
                "alpha": 0.6, "zorder": 3}  # fmt: skip


def strong_set(fastest: str | None) -> set[str]:
    """The solvers a plot draws strong: the in-house solver and the plot's fastest."""
    return {INHOUSE} | ({fastest} if fastest else set())


def _new_figure(width: float = 9.0, height: float = 5.0) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot(1, 1, 1)


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The bounding box is fitted to everything drawn (labels, the legend outside the axes), so
    # nothing is clipped however long a label or however many solvers.
    figure.savefig(path, format="png", metadata={"Software": None}, bbox_inches="tight", pad_inches=0.15)
    return path


def _legend(ax: Axes, strong: set[str], title: str | None = None) -> None:
    """Legend outside the axes, on the right, so it never hides data; compact when long, so that
    twenty-odd solvers still fit the figure's height. Strong solvers' labels are bold."""
    entries = len(ax.get_legend_handles_labels()[1])
    compact = entries > 12
    notes = [note for note in (title, _NOTE_EMPHASIS if strong & set(ax.get_legend_handles_labels()[1]) else None)
             if note]  # fmt: skip
    legend = ax.legend(
        title="\n".join(notes) or None,
        title_fontsize="x-small" if compact else "small",
        fontsize="x-small" if compact else "small",
        labelspacing=0.15 if compact else 0.5,
        borderaxespad=0.2 if compact else 0.5,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    for text in legend.get_texts():
        if text.get_text().split(" ")[0] in strong:
            text.set_fontweight("bold")


def _no_data(ax: Axes, message: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666")


def _batch_axis(ax: Axes, batch_sizes: Sequence[float]) -> None:
    """Log x axis with the measured batch sizes as the tick labels."""
    ax.set_xscale("log")
    ticks = sorted({int(b) for b in batch_sizes if b > 0})
    if ticks:
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("batch size B (problems per solve call)")


def _plain_log_labels(axis: Axis, low: float, high: float) -> None:
    """Plain numbers ("0.002", "1e-09") on a log axis instead of "2x10^-3".

    Minor ticks get labels only on a short axis (every one under a factor 3, else 2 and 5 under a
    factor 30), so that an axis without a power of ten inside it still has numbers on it.
    """
    span = high / low if low > 0 else math.inf

    def minor(value: float, _: object) -> str:
        if value <= 0 or span >= 30:
            return ""
        mantissa = round(value / 10.0 ** math.floor(math.log10(value)), 6)
        return f"{value:g}" if span < 3 or mantissa in (2.0, 5.0) else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _mark_unsuccessful(ax: Axes, x: np.ndarray, y: np.ndarray, ok: np.ndarray, color: str) -> bool:
    bad = ~ok
    if bad.any():
        ax.scatter(x[bad], y[bad], s=70, facecolors="white", edgecolors=color, linewidths=1.5, zorder=4)
    return bool(bad.any())


def per_batch_size(rows: pd.DataFrame) -> pd.DataFrame:
    """One point per (solver, batch size): several seeds are merged into the median of their medians,
    the smallest minimum and the largest maximum; a point succeeded only if every seed did."""
    if rows.empty:
        return rows
    return (
        rows.groupby(["solver", "batch_size"], sort=True)
        .agg(
            solve_time_median=("solve_time_median", "median"),
            solve_time_min=("solve_time_min", "min"),
            solve_time_max=("solve_time_max", "max"),
            row_ok=("row_ok", "all"),
        )
        .reset_index()
    )


def time_vs_batch(
    rows: pd.DataFrame, style: SolverStyle, title: str, path: Path, per_problem: bool = False,
    fastest: str | None = None,
) -> Path:
    """Median solve time per batch size (log-log), one line per solver, min-max spread shaded.

    ``per_problem`` divides by the batch size: the amortized time of one problem. ``fastest`` is
    drawn strong beside the in-house solver.
    """
    figure, ax = _new_figure()
    strong = strong_set(fastest)
    any_bad = False
    rows = per_batch_size(rows[rows["solve_time_median"] > 0])
    for solver in style.solvers:
        mine = rows[rows["solver"] == solver].sort_values("batch_size")
        if mine.empty:
            continue
        scale = mine["batch_size"].to_numpy() if per_problem else np.ones(len(mine))
        x = mine["batch_size"].to_numpy()
        y = mine["solve_time_median"].to_numpy() / scale
        low = mine["solve_time_min"].fillna(mine["solve_time_median"]).to_numpy() / scale
        high = mine["solve_time_max"].fillna(mine["solve_time_median"]).to_numpy() / scale
        look = style.line(solver, solver in strong)
        ax.plot(x, y, label=solver, **look)
        if solver not in strong:  # twenty bands would hide each other: the tables give every spread
            pass
        elif len(x) > 1:
            ax.fill_between(x, low, high, color=look["color"], alpha=0.18, linewidth=0)
        else:  # one batch size: a shaded band has no width, show the spread as an error bar
            spread = [np.maximum(y - low, 0.0), np.maximum(high - y, 0.0)]
            ax.errorbar(x, y, yerr=spread, color=look["color"], capsize=4, fmt="none", alpha=look["alpha"])
        any_bad |= _mark_unsuccessful(ax, x, y, mine["row_ok"].to_numpy(), look["color"])
    if not ax.lines:
        _no_data(ax, "no solve time measured in this group")
    else:
        ax.set_yscale("log")
        _plain_log_labels(ax.yaxis, *ax.get_ylim())
        _batch_axis(ax, rows["batch_size"].dropna().tolist())
        _legend(ax, strong, _NOTE_FAILED if any_bad else None)
    unit = "time per problem [s]\n(batch time / B)" if per_problem else "solve time of the batch [s]"
    ax.set_ylabel(unit + "; median,\nband: min-max of the bold solvers")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    return _save(figure, path)


def speedup_vs_batch(
    rows: pd.DataFrame, reference: str, style: SolverStyle, title: str, path: Path, fastest: str | None = None
) -> Path:
    """Reference time / solver time per batch size (>1: faster than the reference)."""
    figure, ax = _new_figure()
    strong = strong_set(fastest)
    rows = per_batch_size(rows[rows["solve_time_median"] > 0])  # medians of positive times stay positive
    ref = rows[rows["solver"] == reference].set_index("batch_size")["solve_time_median"]
    any_bad = False
    for solver in style.solvers:
        if solver == reference:
            continue
        mine = rows[(rows["solver"] == solver) & rows["batch_size"].isin(ref.index)].sort_values("batch_size")
        if mine.empty:
            continue
        x = mine["batch_size"].to_numpy()
        y = ref.loc[x].to_numpy() / mine["solve_time_median"].to_numpy()
        look = style.line(solver, solver in strong)
        ax.plot(x, y, label=solver, **look)
        any_bad |= _mark_unsuccessful(ax, x, y, mine["row_ok"].to_numpy(), look["color"])
    if not ax.lines:
        _no_data(ax, f"no batch size timed for both {reference} and another solver")
    else:
        ax.axhline(1.0, color=style.color(reference), linestyle="--", linewidth=2.0, label=f"{reference} (reference)")
        ax.set_yscale("log")
        _plain_log_labels(ax.yaxis, *ax.get_ylim())
        _batch_axis(ax, rows["batch_size"].dropna().tolist())
        _legend(ax, strong | {reference}, _NOTE_FAILED if any_bad else None)
    ax.set_ylabel(f"speed-up over {reference} [x]\n(time of {reference} / time of solver)")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    return _save(figure, path)


def performance_profile(
    ratios: pd.DataFrame, n_cases: int, style: SolverStyle, title: str, path: Path, fastest: str | None = None
) -> Path:
    """Dolan-Moré profile: share of cases solved within tau times the fastest solver."""
    figure, ax = _new_figure()
    strong = strong_set(fastest)
    finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())] if not ratios.empty else np.array([])
    tau_max = max(2.0, float(finite.max()) * 1.5) if finite.size else 2.0
    for solver in style.solvers:
        if solver not in ratios.columns or n_cases == 0:
            continue
        values = np.sort(ratios[solver].to_numpy())
        values = values[np.isfinite(values)]
        taus = np.concatenate([[1.0], values, [tau_max]])
        shares = np.array([(values <= tau).sum() / n_cases for tau in taus])
        look = style.line(solver, solver in strong)
        ax.step(taus, shares, where="post", label=solver, color=look["color"], linewidth=look["linewidth"],
                alpha=look["alpha"], zorder=look["zorder"])  # fmt: skip
    if not ax.lines:
        _no_data(ax, "no solver succeeded on any case")
    else:
        _legend(ax, strong)
    ax.set_xscale("log")
    ax.set_xlim(1.0, tau_max)
    _plain_log_labels(ax.xaxis, 1.0, tau_max)
    ax.set_ylim(-0.04, 1.06)
    ax.set_xlabel("tau: solve time / fastest solver's time on the case [x]")
    ax.set_ylabel(f"share of cases solved within tau\n({n_cases} cases)")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    return _save(figure, path)


def accuracy_vs_time(
    rows: pd.DataFrame, eps: float | None, style: SolverStyle, title: str, path: Path, fastest: str | None = None
) -> Path:
    """Each ok row: solve time against its worst residual (max of primal, dual, gap)."""
    figure, ax = _new_figure()
    strong = strong_set(fastest)
    worst = summary.worst_residual(rows)
    floor = 1e-17  # an exact zero residual would vanish from a log axis
    any_bad = False
    for solver in style.solvers:
        keep = (rows["solver"] == solver) & (rows["solve_time_median"] > 0) & worst.notna()
        if not keep.any():
            continue
        x = rows.loc[keep, "solve_time_median"].to_numpy()
        y = np.maximum(worst[keep].to_numpy(), floor)
        look = style.line(solver, solver in strong)
        ax.scatter(x, y, color=look["color"], marker=look["marker"], label=solver, s=45 if solver in strong else 22,
                   alpha=look["alpha"], zorder=look["zorder"])  # fmt: skip
        any_bad |= _mark_unsuccessful(ax, x, y, rows.loc[keep, "row_ok"].to_numpy(), look["color"])
    if not ax.collections:
        _no_data(ax, "no row with both a time and residuals")
    else:
        if eps is not None and math.isfinite(eps) and eps > 0:
            ax.axhline(eps, color="#444", linestyle=":", label=f"tolerance {eps:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_labels(ax.xaxis, *ax.get_xlim())
        _plain_log_labels(ax.yaxis, *ax.get_ylim())
        _legend(ax, strong, _NOTE_FAILED if any_bad else None)
    ax.set_xlabel("solve time of the batch [s], median")
    ax.set_ylabel("worst residual in the batch\nmax(primal, dual, gap), inf-norm")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    return _save(figure, path)


def backward_vs_forward(rows: pd.DataFrame, style: SolverStyle, title: str, path: Path) -> Path:
    """Backward pass time against forward solve time per row, with the y = x line."""
    figure, ax = _new_figure()
    strong = strong_set(None)
    keep_all = (rows["solve_time_median"] > 0) & (rows["backward_time_median"] > 0)
    for solver in style.solvers:
        keep = keep_all & (rows["solver"] == solver)
        if not keep.any():
            continue
        x, y = rows.loc[keep, "solve_time_median"], rows.loc[keep, "backward_time_median"]
        look = style.line(solver, solver in strong)
        ax.scatter(x, y, color=look["color"], marker=look["marker"], label=solver, s=30, zorder=look["zorder"])
    if not ax.collections:
        _no_data(ax, "no row with both forward and backward times")
    else:
        both = pd.concat([rows.loc[keep_all, "solve_time_median"], rows.loc[keep_all, "backward_time_median"]])
        lo, hi = float(both.min()) / 2, float(both.max()) * 2
        ax.plot([lo, hi], [lo, hi], color="#444", linestyle=":", label="backward = forward")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_labels(ax.xaxis, *ax.get_xlim())
        _plain_log_labels(ax.yaxis, *ax.get_ylim())
        _legend(ax, strong)
    ax.set_xlabel("forward solve time of the batch [s], median")
    ax.set_ylabel("backward pass time [s], median")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    return _save(figure, path)
