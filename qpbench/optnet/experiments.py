"""The two OptNet experiments end to end: data, models, training, results and plots."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from qpbench.optnet import denoising, report, sudoku
from qpbench.optnet.qp_layer import make_qp_function, resolve_solver
from qpbench.optnet.training import Curve, train


@dataclass(frozen=True)
class Config:
    train_size: int
    test_size: int
    epochs: int
    batch_size: int
    quick: bool
    seed: int = 0
    # The FC baselines cost milliseconds an epoch: they may train longer than the QP models,
    # closer to the paper's step count (None = the same epochs).
    fc_epochs: int | None = None

    def __post_init__(self) -> None:
        for name in ("train_size", "test_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")


# Paper: 9000/1000 sudoku boards, batch 150; 10000 signals, 50 epochs. These are cut to fit
# two shared CPU cores (see docs/optnet.md).
SUDOKU_QUICK = Config(train_size=200, test_size=100, epochs=2, batch_size=50, quick=True)
SUDOKU_FULL = Config(train_size=2000, test_size=500, epochs=6, batch_size=100, quick=False, fc_epochs=50)
DENOISE_QUICK = Config(train_size=100, test_size=50, epochs=1, batch_size=50, quick=True)
# These are the settings of the committed results in reports/optnet (the run that produced them).
DENOISE_FULL = Config(train_size=300, test_size=100, epochs=5, batch_size=50, quick=False, fc_epochs=300)
TV_GRID_QUICK = [10.0, 20.0, 30.0]
TV_GRID_FULL = [10.0, 15.0, 20.0, 25.0, 30.0]


def _epochs(config: Config, model: str) -> int:
    return config.fc_epochs if model == "fc" and config.fc_epochs is not None else config.epochs


def _finals(curves: list[Curve], models: dict[str, tuple[Any, float]]) -> dict[str, dict[str, float]]:
    """Per model: final test metrics, training time, epochs and the Adam learning rate."""
    return {c.name: {**c.final(), "train_seconds": c.seconds[-1], "epochs": c.epochs[-1], "lr": models[c.name][1]}
            for c in curves}


def _record(config: Config, solver: str, curves: list[Curve], final: dict[str, Any], **extra: Any) -> dict:
    return {
        "config": asdict(config),
        "solver": solver,
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "final": final,
        "curves": [c.to_dict() for c in curves],
        **extra,
    }


def run_sudoku(config: Config, solver: str, out: Path, log: Callable[[str], None] = print) -> dict:
    solver = resolve_solver(solver)
    log(f"sudoku: solver {solver}, {config}")
    puzzles, answers = sudoku.generate(config.train_size + config.test_size, seed=config.seed)
    x, y = sudoku.one_hot(puzzles), sudoku.one_hot(answers)
    n = config.train_size
    data = (x[:n], y[:n], x[n:], y[n:])
    qp = make_qp_function(solver)
    models = {
        "fc": (sudoku.FCSudoku(seed=config.seed), 1e-3),
        "optnet": (sudoku.OptNetSudoku(qp, seed=config.seed), 0.1),
    }
    curves = [
        train(name, model, data, epochs=_epochs(config, name), batch_size=config.batch_size, lr=lr,
              evaluate=sudoku.accuracy, seed=config.seed, log=log)
        for name, (model, lr) in models.items()
    ]
    record = _record(config, solver, curves, _finals(curves, models))
    report.save_experiment(out, "sudoku", record)
    report.plot_curves(out / "sudoku_curves.png", curves, "board_acc", "Sudoku 4×4")
    report.write_table(out)
    return record


def run_denoise(config: Config, solver: str, out: Path, log: Callable[[str], None] = print) -> dict:
    solver = resolve_solver(solver)
    log(f"denoise: solver {solver}, {config}")
    noisy, clean = denoising.piecewise_constant(config.train_size + config.test_size, seed=config.seed)
    n = config.train_size
    data = (noisy[:n], clean[:n], noisy[n:], clean[n:])
    qp = make_qp_function(solver)

    grid = TV_GRID_QUICK if config.quick else TV_GRID_FULL
    tune = min(n, 100)  # lambda is one scalar: a subset of the training set picks it reliably
    lam, grid_mse = denoising.best_tv_lambda(qp, noisy[:tune], clean[:tune], grid)
    tv_mse = denoising.mse_metric(denoising.tv_denoise(qp, data[2], lam), data[2], data[3])["mse"]
    noisy_mse = denoising.mse_metric(data[2], data[2], data[3])["mse"]
    log(f"denoise: best TV lambda {lam} (grid {grid_mse}); test MSE TV {tv_mse:.3f}, noisy {noisy_mse:.3f}")

    models = {
        "fc": (denoising.FCDenoiser(seed=config.seed), 1e-3),
        # From random D the entries must grow ~100x within few steps: a large lr.
        "optnet_pure": (denoising.OptNetDenoiser.random(qp, seed=config.seed), 1e-2),
        # Starting from TV, large steps on ~10^4 entries of D undo its structure: smaller lr.
        "optnet_tv_tuned": (denoising.OptNetDenoiser.from_tv(qp, lam), 1e-3),
    }
    curves = [
        train(name, model, data, epochs=_epochs(config, name), batch_size=config.batch_size, lr=lr,
              evaluate=denoising.mse_metric, seed=config.seed, log=log)
        for name, (model, lr) in models.items()
    ]
    final = _finals(curves, models)
    final["tv"] = {"mse": tv_mse}
    final["noisy"] = {"mse": noisy_mse}
    record = _record(config, solver, curves, final, tv_lambda=lam,
                     tv_grid_mse={str(k): v for k, v in grid_mse.items()})
    report.save_experiment(out, "denoise", record)
    report.plot_curves(out / "denoise_curves.png", curves, "mse", "Denoising",
                       references={"tv": tv_mse, "noisy": noisy_mse})
    report.write_table(out)
    return record
