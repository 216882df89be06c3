"""Reproduce the OptNet paper's experiments with a differentiable QP layer.

  qpbench optnet sudoku  [--quick] [--epochs N] [--out DIR] [--solver auto|inhouse|qpth]
  qpbench optnet denoise [--quick] [--epochs N] [--out DIR] [--solver auto|inhouse|qpth]

Writes <out>/<experiment>.json, <out>/<experiment>_curves.png and rebuilds <out>/results.md
(measured numbers beside the paper's). --quick is a CI smoke test (a minute or two on 2 cores).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

NAME = "optnet"
HELP = "reproduce the OptNet paper's experiments (4x4 Sudoku, denoising)"
ORDER = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", choices=("sudoku", "denoise"), help="which experiment")
    parser.add_argument("--quick", action="store_true", help="tiny data and 1-2 epochs (smoke test)")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    parser.add_argument("--train-size", type=int, default=None, help="override the training set size")
    parser.add_argument("--test-size", type=int, default=None, help="override the test set size")
    parser.add_argument("--seed", type=int, default=0, help="data and initialization seed")
    parser.add_argument("--out", type=Path, default=Path("reports/optnet"), help="output folder")
    parser.add_argument("--solver", default="auto", choices=("auto", "inhouse", "qpth"),
                        help="QP layer: in-house (auto when available) or qpth for comparison")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def main(args: argparse.Namespace) -> int:
    import torch

    from qpbench.optnet import experiments

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    if args.experiment == "sudoku":
        config = experiments.SUDOKU_QUICK if args.quick else experiments.SUDOKU_FULL
        run = experiments.run_sudoku
    else:
        config = experiments.DENOISE_QUICK if args.quick else experiments.DENOISE_FULL
        run = experiments.run_denoise
    overrides = {"epochs": args.epochs, "train_size": args.train_size, "test_size": args.test_size}
    config = replace(config, seed=args.seed, **{k: v for k, v in overrides.items() if v is not None})
    run(config, args.solver, args.out)
    print(f"results: {args.out / 'results.md'}")
    return 0
