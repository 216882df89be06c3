"""Check each differentiable solver's gradients against central finite differences.

The loss is sum_b c_b' z_b with a seeded random c. Finite differences are taken in float64 from
exact solves of the perturbed problems with the reference solver's active set (see
docs/gradcheck.md); problems whose active set changes within the step, or that are degenerate,
are listed separately and not counted as errors. Gradients of shared tensors are compared in the
SUM convention (qpth's MEAN is rescaled).

Exit codes: 0 every solver within --threshold; 1 a solver exceeded it, raised, or no problem could
be compared; 2 bad input (unknown solver or family, a non-differentiable solver).
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "gradcheck"
HELP = "check solvers' QP gradients against finite differences; exit 1 above --threshold"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--solvers", nargs="+", default=None, metavar="NAME",
                        help="differentiable adapters to check (default: every available one)")
    parser.add_argument("--family", default="optnet_random", help="generator family (default: optnet_random)")
    parser.add_argument("--n", type=int, default=8, help="variables (default: 8)")
    parser.add_argument("--m", type=int, default=None, help="inequality rows (default: the family's for n)")
    parser.add_argument("--k", type=int, default=None, help="equality rows (default: the family's for n)")
    parser.add_argument("--batch", type=int, default=2, help="problems in the batch (default: 2)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="dtype the solvers run in; finite differences are always float64")
    parser.add_argument("--device", default="cpu", help="device the solvers run on (default: cpu)")
    parser.add_argument("--tolerance", choices=("low", "mid", "high"), default="high",
                        help="accuracy level the solvers run at (default: high, 1e-9)")
    parser.add_argument("--threshold", type=float, default=1e-5,
                        help="largest acceptable relative gradient error (default: 1e-5)")
    parser.add_argument("--mode", choices=("auto", "full", "directional"), default="auto",
                        help="full Jacobians, random directional derivatives, or auto (full when n <= 10)")
    parser.add_argument("--directions", type=int, default=4,
                        help="random directions per parameter in directional mode (default: 4)")
    parser.add_argument("--step", type=float, default=1e-5,
                        help="finite-difference step, times max(1, max|P|) per parameter (default: 1e-5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the problems, loss and directions")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="also write the report as JSON")


def _select_adapters(names: list[str] | None) -> list:
    from qpbench.adapters import registry

    if names is None:
        chosen = [a for a in registry.available_adapters() if a.capabilities.differentiable]
        if not chosen:
            raise ValueError("no differentiable solver is available (see `qpbench solvers`)")
        return chosen
    chosen = []
    for name in names:
        try:
            adapter = registry.get_adapter(name)
        except ValueError as exc:  # it lists the known names, under its own argument's name ("name: ")
            raise ValueError(f"--solvers: {str(exc).removeprefix('name: ')}") from None
        if not adapter.capabilities.differentiable:
            raise ValueError(f"--solvers: {name!r} is not differentiable")
        ok, reason = adapter.availability()
        if not ok:
            raise ValueError(f"--solvers: {name!r} is not available ({reason})")
        chosen.append(adapter)
    return chosen


def main(args: argparse.Namespace) -> int:
    import json

    import torch

    from qpbench.generators import generate
    from qpbench.gradcheck import check_gradients

    adapters = _select_adapters(args.solvers)
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    batch = generate(args.family, batch_size=args.batch, n=args.n, m=args.m, k=args.k, seed=args.seed,
                     dtype=dtype, device=args.device)
    report = check_gradients(batch, adapters, args.mode, directions_per_parameter=args.directions,
                             step=args.step, threshold=args.threshold, seed=args.seed,
                             tolerance=args.tolerance)
    report.meta["family"] = args.family
    print(report.format())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if report.passed() else 1
