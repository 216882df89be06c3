"""Speed of the in-house solver in two source trees, as ratios measured in one run.

    python benchmarks/solver_ab.py --baseline /path/to/old/checkout --candidate .
    python benchmarks/solver_ab.py --baseline ../old --rounds 9 --cases 1x100,128x100

Each round starts one fresh process per tree, alternating which goes first, and each process
times ``solve`` on the same seeded problems (``optnet_random``, n = m, float64, one torch thread,
eps_abs = 1e-8, eps_rel = 0; a warm-up solve first, then the fastest of ``--repeats`` solves).
Alternating processes in one job means both trees see the same machine load, so the ratio
candidate / baseline is what the comparison reports: its median over the rounds, with the
spread (min, max). A tree is a checkout whose ``qpbench`` package is imported by putting the
tree first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

# Runs inside each tree's process: prints one JSON line {case: seconds}.
_WORKER = r"""
import json, sys, time, torch
torch.set_num_threads(1)
try:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
except ImportError:
    pass
from qpbench.generators import generate
from qpbench.solver import solve
cases, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for label, (B, n) in cases.items():
    batch = generate("optnet_random", B, n, seed=0)
    solve(batch, eps_abs=1e-8, eps_rel=0.0)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        solve(batch, eps_abs=1e-8, eps_rel=0.0)
        best = min(best, time.perf_counter() - start)
    out[label] = best
print(json.dumps(out))
"""


def time_tree(tree: Path, cases: dict[str, tuple[int, int]], repeats: int) -> dict[str, float]:
    code = f"import sys; sys.path.insert(0, {str(tree)!r})\n" + _WORKER
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cases), str(repeats)], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"the solver in {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_cases(text: str) -> dict[str, tuple[int, int]]:
    cases = {}
    for item in text.split(","):
        try:
            B, n = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--cases: {item!r} is not BxN (e.g. 128x100)") from None
        if B < 1 or n < 1:
            raise SystemExit(f"--cases: {item!r} needs B >= 1 and n >= 1")
        cases[f"B={B} n={n}"] = (B, n)
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="checkout holding the baseline qpbench")
    parser.add_argument("--candidate", type=Path, default=Path("."), help="checkout holding the candidate (default .)")
    parser.add_argument("--cases", default="1x100,128x100", help="comma-separated BxN (default 1x100,128x100)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--repeats", type=int, default=5, help="timed solves per process; the fastest counts")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args(argv)
    for name in ("baseline", "candidate"):
        tree = getattr(args, name).resolve()
        if not (tree / "qpbench" / "solver").is_dir():
            parser.error(f"--{name}: {tree} holds no qpbench/solver")
        setattr(args, name, tree)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be >= 1")
    cases = parse_cases(args.cases)
    ratios: dict[str, list[float]] = {label: [] for label in cases}
    times: dict[str, dict[str, list[float]]] = {"baseline": {c: [] for c in cases}, "candidate": {c: [] for c in cases}}
    for r in range(args.rounds):
        order = ["baseline", "candidate"] if r % 2 == 0 else ["candidate", "baseline"]
        got = {name: time_tree(getattr(args, name), cases, args.repeats) for name in order}
        for label in cases:
            for name in order:
                times[name][label].append(got[name][label])
            ratios[label].append(got["candidate"][label] / got["baseline"][label])
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{c} {ratios[c][-1]:.3f}" for c in cases), flush=True)
    print("\n| case | baseline median s | candidate median s | candidate / baseline: median (min, max) |")
    print("| --- | --- | --- | --- |")
    for label in cases:
        b, c, q = times["baseline"][label], times["candidate"][label], ratios[label]
        print(
            f"| {label} | {statistics.median(b):.4f} | {statistics.median(c):.4f} "
            f"| {statistics.median(q):.3f} ({min(q):.3f}, {max(q):.3f}) |"
        )
    if args.json:
        args.json.write_text(json.dumps({"cases": cases, "times": times, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
