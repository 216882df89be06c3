"""Maximize trained ReLU networks over a box: sampling LP algorithms vs the big-M MIP.

Following Perakis & Tsiourvas (2022): sample points, solve the LP of each sample's linear region
(all regions of a round as one batch on the in-house solver), keep the best; the enhanced variant
also searches neighbouring regions through neurons that are zero at an LP optimum. Baseline: the
big-M MIP with interval-arithmetic bounds on HiGHS and Gurobi (restricted licence: at most 2000
variables/constraints, larger models are skipped with that reason), cold and warm-started from
the best sampled point. Also times the in-house solver's LP throughput against HiGHS solving one
LP at a time. Writes relu_results.jsonl, report.md and best-value-vs-time plots to --out.

  qpbench relu --quick                       # under a minute
  qpbench relu --net trained --sizes 2-100-100-1 10-100-100-1 --time-budget 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NAME = "relu"
HELP = "maximize ReLU networks: sampling LPs (batched in-house solver) vs big-M MIP"
ORDER = 70

DEFAULT_SIZES = {
    # 50-400-400-1's MIP exceeds the restricted Gurobi licence on purpose: the skip is recorded.
    "random": ("2-50-50-1", "2-100-100-1", "10-100-100-1", "100-100-100-1", "50-400-400-1"),
    "trained": ("2-50-50-1", "2-100-100-1", "10-100-100-1", "100-100-100-1"),
}
QUICK_SIZES = ("2-20-20-1",)
QUICK_CAPS = {"time_budget": 2.0, "mip_time_limit": 5.0, "batch_size": 64, "throughput_lps": 16,
              "train_seconds": 1.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--net", choices=("random", "trained"), default="random",
                        help="random (PyTorch default initialisation) or trained on a test function "
                        "(2-D: peaks; higher dimensions: Rastrigin) (default: random)")
    parser.add_argument("--sizes", nargs="+", default=None, metavar="ARCH",
                        help="architectures like 2-100-100-1 (input-hidden...-1)")
    parser.add_argument("--samples", type=int, default=None,
                        help="samples per sampling run (default: until --time-budget)")
    parser.add_argument("--time-budget", type=float, default=20.0,
                        help="seconds per sampling run (default: 20)")
    parser.add_argument("--mip-time-limit", type=float, default=30.0,
                        help="seconds per MIP solve (default: 30)")
    parser.add_argument("--batch-size", type=int, default=128, help="samples per LP batch (default: 128)")
    parser.add_argument("--throughput-lps", type=int, default=64,
                        help="region LPs in the throughput comparison (default: 64)")
    parser.add_argument("--train-seconds", type=float, default=5.0,
                        help="Adam training time per trained network (default: 5)")
    parser.add_argument("--mip-solver", action="append", choices=("highs", "gurobi"), default=None,
                        help="MIP solvers to run (repeatable; default: highs and gurobi)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default: 1, the thread count HiGHS and Gurobi get here, "
                        "so LP and MIP timings compare like with like)")
    parser.add_argument("--throughput-only", action="store_true",
                        help="re-measure only the LP throughput rows of these networks (random "
                        "networks are identical for a seed; trained ones are retrained)")
    parser.add_argument("--quick", action="store_true",
                        help="a small network with short budgets, under a minute (for tests)")
    parser.add_argument("--out", type=Path, default=Path("reports/relu"), help="output directory")


def main(args: argparse.Namespace) -> int:
    import torch

    from qpbench.relu.bench import BenchConfig, run, run_throughput_only
    from qpbench.relu.report import write_report

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    settings = {
        "sizes": tuple(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES[args.net])),
        "net": args.net,
        "samples": args.samples,
        "time_budget": args.time_budget,
        "mip_time_limit": args.mip_time_limit,
        "batch_size": args.batch_size,
        "throughput_lps": args.throughput_lps,
        "train_seconds": args.train_seconds,
        "mip_solvers": tuple(args.mip_solver or ("highs", "gurobi")),
        "seed": args.seed,
    }
    if args.quick:  # cap every budget so the whole run stays under a minute
        for key, cap in QUICK_CAPS.items():
            settings[key] = min(settings[key], cap)
    config = BenchConfig(**settings)
    start = time.perf_counter()
    if args.throughput_only:
        run_throughput_only(config, args.out)
    else:
        run(config, args.out)
    report = write_report(args.out)
    print(f"wrote {report} in {time.perf_counter() - start:.0f} s")
    return 0
