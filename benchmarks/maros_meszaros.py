"""The in-house solver on the Maros–Mészáros test set: per-problem outcome at each accuracy level.

    python benchmarks/maros_meszaros.py                         # all problems, low/mid/high -> stdout
    python benchmarks/maros_meszaros.py --json out.json --markdown table.md
    python benchmarks/maros_meszaros.py --padded 4              # also: padded batches of 4 problems
    python benchmarks/maros_meszaros.py --problems HS21 QAFIRO  # a few problems

Each problem is solved as a batch of one in float64, with ``eps_abs`` = the level's tolerance
(low 1e-3, mid 1e-6, high 1e-9) and ``eps_rel`` = 0; it *meets* the level when the solver says
solved and all three residuals (primal, dual, gap; absolute, infinity norm, on the original data)
are at most that tolerance: qpbenchmark's rule. With ``--padded G`` the problems, in order of
size, are also solved in padded batches of G (``load_group(pad=True)``), and every problem's
status there is compared with its status alone. The data are found through
``QPBENCH_MAROS_MESZAROS_DIR``; torch runs on one thread unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from qpbench.loaders.maros_meszaros import list_problems, load, load_group
from qpbench.problem import QPBatch
from qpbench.solver import solve

LEVELS = {"low": 1e-3, "mid": 1e-6, "high": 1e-9}


@dataclass
class Outcome:
    problem: str
    level: str
    n: int
    m: int
    k: int
    status: str
    meets: bool
    iterations: int
    primal: float
    dual: float
    gap: float
    objective_error: float
    seconds: float
    form: str


def level_settings(level: str, settings: dict[str, object]) -> dict[str, object]:
    """The solver's settings at a level: eps_abs the level's, eps_rel 0, unless ``--setting``
    names them (then the solve stops at that tolerance; the level is still judged absolutely)."""
    return {"eps_abs": LEVELS[level], "eps_rel": 0.0, **settings}


def solve_one(name: str, batch: QPBatch, level: str, settings: dict[str, object]) -> Outcome:
    start = time.perf_counter()
    sol = solve(batch, **level_settings(level, settings))
    seconds = time.perf_counter() - start
    res = {key: float(v[0]) for key, v in batch.residuals(sol.z, sol.lam, sol.nu).items()}
    status = sol.statuses()[0].label
    objective = float(batch.objective(sol.z)[0]) + batch.meta["objective_offset"]
    reference = batch.meta["reference_objective"]
    return Outcome(
        problem=name,
        level=level,
        n=batch.n,
        m=batch.m,
        k=batch.k,
        status=status,
        meets=status == "solved" and all(v <= LEVELS[level] for v in res.values()),
        iterations=int(sol.iterations[0]),
        primal=res["primal"],
        dual=res["dual"],
        gap=res["gap"],
        objective_error=abs(objective - reference) / max(1.0, abs(reference)),
        seconds=seconds,
        form=sol.info.kkt_form,
    )


def padded_statuses(names: list[str], level: str, group: int, settings: dict[str, object]) -> dict[str, str]:
    """Each problem's status when solved in a padded batch with its neighbours in size."""
    by_size = sorted(names, key=lambda name: (load(name).n, name))
    out: dict[str, str] = {}
    for start in range(0, len(by_size), group):
        chunk = by_size[start : start + group]
        (batch,) = load_group(chunk, pad=True)
        sol = solve(batch, **level_settings(level, settings))
        out.update({name: s.label for name, s in zip(chunk, sol.statuses(), strict=True)})
        print(f"  padded {chunk}: {[s.label for s in sol.statuses()]}", file=sys.stderr, flush=True)
    return out


def markdown(outcomes: list[Outcome], levels: list[str]) -> str:
    lines = []
    for level in levels:
        rows = [o for o in outcomes if o.level == level]
        met = sum(o.meets for o in rows)
        lines += [
            f"### {level} (eps_abs = {LEVELS[level]:g}): {met} of {len(rows)} meet it",
            "",
            "| problem | n | m | k | status | meets | iterations | primal | dual | gap "
            "| objective rel. error | seconds | form |",
            "| --- " * 13 + "|",
        ]
        lines += [
            f"| {o.problem} | {o.n} | {o.m} | {o.k} | {o.status} | {'yes' if o.meets else '**no**'} | {o.iterations} "
            f"| {o.primal:.1e} | {o.dual:.1e} | {o.gap:.1e} | {o.objective_error:.1e} | {o.seconds:.2f} | {o.form} |"
            for o in rows
        ]
        lines.append("")
    return "\n".join(lines)


def parse_settings(items: list[str], parser: argparse.ArgumentParser) -> dict[str, object]:
    """``--setting`` KEY=VALUE pairs as solver settings; a bad one ends the run with its reason."""
    from qpbench.solver.settings import parse_overrides

    try:
        return parse_overrides(items)
    except ValueError as exc:
        parser.error(f"--setting: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="low,mid,high", help="comma-separated: low, mid, high")
    parser.add_argument("--problems", nargs="*", help="problem names (default: every problem in the folder)")
    parser.add_argument("--max-n", type=int, default=None, help="only problems with at most this many variables")
    parser.add_argument("--padded", type=int, default=0, help="also solve padded batches of this many problems")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a solver setting (e.g. scale_cost=true, max_iter=300); repeatable")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--markdown", type=Path, help="write the per-problem tables here")
    args = parser.parse_args(argv)
    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    unknown = set(levels) - set(LEVELS)
    if unknown:
        parser.error(f"--levels: unknown {sorted(unknown)}; choose from {', '.join(LEVELS)}")
    if args.padded < 0:
        parser.error("--padded must be >= 0")
    settings = parse_settings(args.setting, parser)
    torch.set_num_threads(args.threads)
    names = args.problems or list_problems(max_n=args.max_n)
    outcomes: list[Outcome] = []
    padded: dict[str, dict[str, str]] = {}
    for level in levels:
        for name in names:
            o = solve_one(name, load(name), level, settings)
            outcomes.append(o)
            print(
                f"{level:4s} {name:10s} n={o.n:5d} m={o.m:5d} k={o.k:4d} {o.status:18s}"
                f" {'meets' if o.meets else 'MISSES'}"
                f" it={o.iterations:3d} primal={o.primal:.1e} dual={o.dual:.1e} gap={o.gap:.1e}"
                f" obj_err={o.objective_error:.1e} {o.seconds:.2f}s {o.form}",
                flush=True,
            )
        met = sum(o.meets for o in outcomes if o.level == level)
        print(f"== {level}: {met}/{len(names)} meet eps_abs = {LEVELS[level]:g}", flush=True)
        if args.padded:
            padded[level] = padded_statuses(names, level, args.padded, settings)
            alone = {o.problem: o.status for o in outcomes if o.level == level}
            differ = {name: (alone[name], padded[level][name]) for name in names if alone[name] != padded[level][name]}
            print(
                f"== {level} padded in groups of {args.padded}: statuses differ for {len(differ)}: {differ}", flush=True
            )
    if args.json:
        args.json.write_text(json.dumps({"outcomes": [asdict(o) for o in outcomes], "padded": padded}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(outcomes, levels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
