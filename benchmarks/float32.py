"""The in-house solver in float32 against itself in float64, on every generated family.

    python benchmarks/float32.py                                   # default sizes, seeds, tolerances
    python benchmarks/float32.py --sizes 64 --seeds 0 --setting reg_floor=1e-6 --setting reg_finetune_floor=1e-7
    python benchmarks/float32.py --eps-abs 1e-5 --eps-rel 1e-5    # a tighter float32 tolerance

Each family is generated at every ``--sizes`` n and ``--seeds`` seed, ``--batch`` problems a
batch, in float64 and (the same seed) in float32. The float64 solve with its defaults gives each
problem's expected status; the float32 solve runs with float32's defaults, or ``--eps-abs``,
``--eps-rel`` and any ``--setting``. Reported per family: the problems whose float32 status
differs from float64's, how many of them are ``solved_inaccurate``, and the float32 iterations
(mean and maximum), with the totals last.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch

from qpbench.generators import FAMILIES, generate
from qpbench.solver import solve
from qpbench.solver.settings import parse_overrides
from qpbench.status import Status


@dataclass
class Tally:
    """The float32 outcomes of one family (or of all of them)."""

    problems: int = 0
    differing: int = 0
    inaccurate: int = 0
    iterations: list[int] = field(default_factory=list)

    def add(self, status32: torch.Tensor, status64: torch.Tensor, iterations: torch.Tensor) -> None:
        differs = status32 != status64
        self.problems += status32.numel()
        self.differing += int(differs.sum())
        self.inaccurate += int((differs & (status32 == int(Status.SOLVED_INACCURATE))).sum())
        self.iterations += iterations.tolist()

    def absorb(self, other: Tally) -> None:
        self.problems += other.problems
        self.differing += other.differing
        self.inaccurate += other.inaccurate
        self.iterations += other.iterations

    def row(self, name: str) -> str:
        mean = sum(self.iterations) / max(1, len(self.iterations))
        worst = max(self.iterations, default=0)
        return f"| {name} | {self.problems} | {self.differing} | {self.inaccurate} | {mean:.2f} | {worst} |"


def family_tally(family: str, sizes: list[int], seeds: list[int], batch: int, settings: dict[str, object]) -> Tally:
    tally = Tally()
    for n in sizes:
        if n < FAMILIES[family].min_n:
            continue
        for seed in seeds:
            expected = solve(generate(family, batch, n, seed=seed, dtype=torch.float64)).status
            sol = solve(generate(family, batch, n, seed=seed, dtype=torch.float32), **settings)
            tally.add(sol.status, expected, sol.iterations)
    return tally


def _integers(text: str, option: str, parser: argparse.ArgumentParser, least: int) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        parser.error(f"{option}: not integers: {text!r}")
    if any(v < least for v in values):
        parser.error(f"{option}: every value must be >= {least}, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,35,80,150", help="comma-separated n (default 10,35,80,150)")
    parser.add_argument("--seeds", default="31,32", help="comma-separated seeds (default 31,32)")
    parser.add_argument("--batch", type=int, default=24, help="problems per generated batch (default 24)")
    parser.add_argument("--families", default=None, help="comma-separated families (default: all)")
    parser.add_argument("--eps-abs", type=float, default=None, help="float32 eps_abs (default: float32's)")
    parser.add_argument("--eps-rel", type=float, default=None, help="float32 eps_rel (default: float32's)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the float32 solves (e.g. reg_floor=1e-6); repeatable")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    sizes = _integers(args.sizes, "--sizes", parser, 1)
    seeds = _integers(args.seeds, "--seeds", parser, 0)
    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    families = sorted(FAMILIES) if args.families is None else args.families.split(",")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"--families: unknown {unknown}; choose from {', '.join(sorted(FAMILIES))}")
    tolerances = {"eps_abs": args.eps_abs, "eps_rel": args.eps_rel}
    try:
        settings = {**{k: v for k, v in tolerances.items() if v is not None}, **parse_overrides(args.setting)}
    except ValueError as exc:
        parser.error(f"--setting: {exc}")
    torch.set_num_threads(args.threads)
    print("| family | problems | float32 status differs from float64 | of them solved_inaccurate "
          "| mean iterations | max iterations |")
    print("| --- | --- | --- | --- | --- | --- |")
    total = Tally()
    for family in families:
        tally = family_tally(family, sizes, seeds, args.batch, settings)
        print(tally.row(family), flush=True)
        total.absorb(tally)
    print(total.row("all"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
