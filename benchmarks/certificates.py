"""How often the in-house solver certifies infeasible and unbounded problems, and how often it
wrongly claims either for a feasible one, at several tolerances and in both dtypes.

    python benchmarks/certificates.py                  # eps_abs 1e-6, 1e-8, 1e-10; float64 and float32
    python benchmarks/certificates.py --batch 40 --tolerances 1e-8

Infeasible and unbounded: the ``primal_infeasible`` and ``dual_infeasible`` families at
n = 5, 10, 20, 40, 80 (seeds 0 to 4), ``--batch`` problems each. Feasible: every family whose
problems are feasible and bounded, at n = 5, 20, 60. Every solve uses ``eps_rel = 0``.
"""

from __future__ import annotations

import argparse

import torch

from qpbench.generators import FAMILIES, generate
from qpbench.solver import solve
from qpbench.status import Status

INFEASIBLE_SIZES = [(5, 0), (10, 1), (20, 2), (40, 3), (80, 4)]
FEASIBLE_SIZES = [(5, 0), (20, 2), (60, 4)]
EXPECTED = {"primal_infeasible": Status.PRIMAL_INFEASIBLE, "dual_infeasible": Status.DUAL_INFEASIBLE}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def detection(family: str, dtype: torch.dtype, eps: float, batch: int) -> tuple[int, int, int]:
    """(certified, problems, declared solved)."""
    hit = total = solved = 0
    for n, seed in INFEASIBLE_SIZES:
        sol = solve(generate(family, batch, n, seed=seed, dtype=dtype), eps_abs=eps, eps_rel=0.0)
        hit += int((sol.status == int(EXPECTED[family])).sum())
        solved += int(sol.solved.sum())
        total += batch
    return hit, total, solved


def false_claims(dtype: torch.dtype, eps: float, batch: int) -> tuple[int, int, int]:
    """(declared infeasible or unbounded, problems, solved) over the feasible families."""
    claims = total = solved = 0
    for name, family in sorted(FAMILIES.items()):
        if family.expected_status != "solved":
            continue
        for n, seed in FEASIBLE_SIZES:
            sol = solve(generate(name, batch, n, seed=seed, dtype=dtype), eps_abs=eps, eps_rel=0.0)
            wrong = (sol.status == int(Status.PRIMAL_INFEASIBLE)) | (sol.status == int(Status.DUAL_INFEASIBLE))
            claims += int(wrong.sum())
            solved += int(sol.solved.sum())
            total += batch
    return claims, total, solved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tolerances", default="1e-6,1e-8,1e-10", help="comma-separated eps_abs values")
    parser.add_argument("--dtypes", default="float64,float32", help="comma-separated: float64, float32")
    parser.add_argument("--batch", type=int, default=20, help="problems per generated batch (default 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    try:
        tolerances = [float(t) for t in args.tolerances.split(",")]
    except ValueError:
        parser.error(f"--tolerances: not numbers: {args.tolerances!r}")
    unknown = [d for d in args.dtypes.split(",") if d not in DTYPES]
    if unknown:
        parser.error(f"--dtypes: unknown {unknown}; choose from {', '.join(DTYPES)}")
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    torch.set_num_threads(args.threads)
    print("| set | dtype | eps_abs | result |")
    print("| --- | --- | --- | --- |")
    for dname in args.dtypes.split(","):
        for eps in tolerances:
            for family in sorted(EXPECTED):
                hit, total, solved = detection(family, DTYPES[dname], eps, args.batch)
                result = f"{hit}/{total} certified, {solved} declared solved"
                print(f"| {family} | {dname} | {eps:g} | {result} |", flush=True)
            claims, total, solved = false_claims(DTYPES[dname], eps, args.batch)
            result = f"{claims} false claims of {total}; {solved} solved"
            print(f"| feasible families | {dname} | {eps:g} | {result} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
