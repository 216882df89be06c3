"""Results of the OptNet experiments: one JSON per experiment, a Markdown table beside the
paper's numbers, and learning-curve PNGs. The table is rebuilt from whatever JSON files exist,
so running one experiment never erases the other's results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from qpbench.optnet.training import Curve

# Paper numbers (Amos & Kolter 2017). Denoising: test MSE, section 5.3. Sudoku: figure 5 shows
# curves only; OptNet's test error falls to about 0 while the FC network's stays high.
PAPER_DENOISING_MSE = {"fc": 29.8, "optnet_pure": 53.3, "tv": 16.5, "optnet_tv_tuned": 14.4}
PAPER_SUDOKU = {"fc": "high test error (figure 5, overfits)", "optnet": "~0 test error (figure 5)"}

LABELS = {
    "fc": "fully-connected net",
    "optnet": "OptNet (learned A)",
    "optnet_pure": "pure OptNet (random D)",
    "tv": "total variation, best λ",
    "optnet_tv_tuned": "OptNet tuned from TV",
    "noisy": "noisy input (no denoising)",
}


def save_experiment(out: Path, experiment: str, record: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{experiment}.json"
    path.write_text(json.dumps(record, indent=1, default=_plain))
    return path


def _plain(value: object) -> object:
    if isinstance(value, Curve):
        return value.to_dict()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def write_table(out: Path) -> Path:
    """Rebuild ``results.md`` in ``out`` from ``sudoku.json`` and ``denoise.json``."""
    lines = ["# OptNet experiments: measured here beside the paper", ""]
    sudoku = out / "sudoku.json"
    if sudoku.exists():
        rec = json.loads(sudoku.read_text())
        lines += [f"## Sudoku 4×4 ({_setup_line(rec)})", "",
                  "| model | test boards solved | test cells correct | test blank cells correct "
                  "| test MSE | epochs | Adam lr | train s | paper |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for key, final in rec["final"].items():
            lines.append(
                f"| {LABELS.get(key, key)} | {_pct(final.get('board_acc'))} | {_pct(final.get('cell_acc'))} "
                f"| {_pct(final.get('blank_cell_acc'))} | {_fmt(final.get('test_loss'))} "
                f"| {final.get('epochs', '—')} | {final.get('lr', '—')} "
                f"| {_fmt(final.get('train_seconds'), 4)} | {PAPER_SUDOKU.get(key, '—')} |"
            )
        lines += ["", "![sudoku learning curves](sudoku_curves.png)", ""]
    denoise = out / "denoise.json"
    if denoise.exists():
        rec = json.loads(denoise.read_text())
        lines += [f"## Denoising ({_setup_line(rec)})", "",
                  "| model | test MSE | epochs | Adam lr | train s | paper test MSE |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for key, final in rec["final"].items():
            paper = PAPER_DENOISING_MSE.get(key)
            lines.append(f"| {LABELS.get(key, key)} | {_fmt(final.get('mse'), 4)} "
                         f"| {final.get('epochs', '—')} | {final.get('lr', '—')} "
                         f"| {_fmt(final.get('train_seconds'), 4)} | {_fmt(paper)} |")
        lines += ["", f"Best TV λ on the training subset: {rec['tv_lambda']} "
                  f"(grid MSE: {', '.join(f'{k}: {v:.2f}' for k, v in rec['tv_grid_mse'].items())}).",
                  "", "![denoising learning curves](denoise_curves.png)", ""]
    path = out / "results.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _setup_line(rec: dict[str, Any]) -> str:
    cfg = rec["config"]
    return (f"solver {rec['solver']}, {cfg['train_size']} train / {cfg['test_size']} test, "
            f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, {'quick' if cfg['quick'] else 'full'} mode, "
            f"{rec['date']}")


def plot_curves(path: Path, curves: list[Curve], metric: str, title: str,
                references: dict[str, float] | None = None) -> Path:
    """Training and test loss, and one test metric, per epoch for each model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    for i, curve in enumerate(curves):
        color = f"C{i}"
        label = LABELS.get(curve.name, curve.name)
        ax_loss.plot(curve.epochs[1:], curve.train_loss[1:], "--", color=color, label=f"{label} (train)")
        ax_loss.plot(curve.epochs, curve.test_loss, "-", color=color, label=f"{label} (test)")
        ax_metric.plot(curve.epochs, [m[metric] for m in curve.test_metrics], "-o", ms=3, color=color,
                       label=label)
    for j, (name, value) in enumerate((references or {}).items()):
        ax_metric.axhline(value, ls=":", color=f"C{len(curves) + j}", label=LABELS.get(name, name))
    ax_loss.set(xlabel="epoch", ylabel="MSE loss", yscale="log", title=f"{title}: loss")
    ax_metric.set(xlabel="epoch", ylabel=f"test {metric}", title=f"{title}: test {metric}")
    if metric == "mse":
        ax_metric.set_yscale("log")
    ax_loss.legend(fontsize=7)
    ax_metric.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
