"""The in-house solver against qpth on one GPU: batch sizes, sizes, dtypes, CUDA graphs on/off.

    python benchmarks/gpu_speed.py                      # on a CUDA machine -> reports/performance/cuda.{md,json}
    python benchmarks/gpu_speed.py --device cpu --quick # the same code on the CPU, tiny sizes (a smoke run)

Both solvers get the same seeded problems (``optnet_random``: n = m, no equalities) on the same
device. The in-house solver runs at eps_abs = 1e-5, eps_rel = 0 in float32 and 1e-8 in float64
(float32 cannot carry 1e-6 on these data), in its fixed-shape mode with CUDA graphs on and off (on
the CPU: compacting and fixed-shape);
qpth at its own defaults (its accuracy is reported, as the residuals every solver is judged by).
Each case: one untimed warm-up solve, then up to ``--repeats`` timed solves with the device
synchronized around each, cut at ``--case-budget`` seconds; median, min and max are reported, and
the ratio qpth / in-house (above 1: the in-house solver is faster) comes from the same run. A
whole run is bounded by ``--budget`` seconds: cases left when it is spent are listed as skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from qpbench.generators import generate
from qpbench.problem import QPBatch
from qpbench.solver import solve
from qpbench.timing import measure

EPS = {torch.float32: 1e-5, torch.float64: 1e-8}


@dataclass
class Case:
    n: int
    dtype: str
    batch: int
    solver: str  # inhouse-graphs, inhouse-eager, inhouse-compact, qpth
    median: float | None = None
    min: float | None = None
    max: float | None = None
    repeats: int = 0
    solved: int | None = None
    worst_residual: float | None = None
    iterations: int | None = None
    skipped: str = ""
    times: list[float] = field(default_factory=list)


def timed(fn: Any, device: torch.device, repeats: int, budget: float) -> tuple[Any, list[float]]:
    """One warm-up (kernels, allocator pools, cuBLAS/cuSOLVER handles), then the budgeted repeats."""
    result, stats = measure(fn, repeats=repeats, warmups=1, device=device, budget=budget)
    return result, list(stats.times)


def worst_residual(batch: QPBatch, z: torch.Tensor, lam: torch.Tensor | None) -> float:
    res = batch.to(dtype=torch.float64).residuals(z.double(), None if lam is None else lam.double())
    return float(max(float(v.max()) for v in res.values()))


def run_inhouse(batch: QPBatch, label: str, device: torch.device, args: argparse.Namespace) -> Case:
    mode, graphs = {"inhouse-graphs": ("fixed", True), "inhouse-eager": ("fixed", False),
                    "inhouse-compact": ("compact", False)}[label]
    eps = EPS[batch.dtype]
    sol, times = timed(lambda: solve(batch, eps_abs=eps, eps_rel=0.0, mode=mode, cuda_graphs=graphs),
                       device, args.repeats, args.case_budget)
    return Case(batch.n, str(batch.dtype).replace("torch.", ""), batch.batch_size, label,
                statistics.median(times), min(times), max(times), len(times), int(sol.solved.sum()),
                worst_residual(batch, sol.z, sol.lam), int(sol.info.iterations_loop), times=times)


def run_qpth(batch: QPBatch, device: torch.device, args: argparse.Namespace) -> Case:
    from qpbench.adapters.base import Tolerance
    from qpbench.adapters.registry import get_adapter

    case = Case(batch.n, str(batch.dtype).replace("torch.", ""), batch.batch_size, "qpth")
    adapter = get_adapter("qpth")
    ok, why = adapter.availability()
    reason = (None if ok else why) or adapter.unsupported_reason(batch, device.type)
    if reason:
        case.skipped = reason
        return case
    prepared = adapter.setup(batch, Tolerance.HIGH, float("inf"))
    try:
        out, times = timed(lambda: adapter.solve(prepared), device, args.repeats, args.case_budget)
    except RuntimeError as exc:  # torch's batched LU has failed on qpth's systems before
        case.skipped = f"solve failed: {type(exc).__name__}: {exc}"
        return case
    case.median, case.min, case.max, case.repeats, case.times = (
        statistics.median(times), min(times), max(times), len(times), times)
    case.solved = int((out.status == 0).sum())
    case.worst_residual = worst_residual(batch, out.z, out.lam)
    return case


def markdown(cases: list[Case], device_name: str, started: str, args: argparse.Namespace) -> str:
    lines = [
        f"# In-house solver vs qpth on {device_name}",
        "",
        f"Run {started} by `benchmarks/gpu_speed.py` (`{' '.join(args.argv)}`): optnet_random (n = m), "
        "times in ms (median [min, max] over the timed repeats), worst residual over the batch "
        "(max of primal, dual, gap; absolute), ratio = qpth median / the fastest in-house median.",
        "",
        "| n | dtype | B | solver | median ms | [min, max] | repeats | solved | worst residual | iterations "
        "| qpth / in-house |",
        "| --- " * 11 + "|",
    ]
    fastest = {}
    for c in cases:
        if c.solver.startswith("inhouse") and c.median is not None:
            key = (c.n, c.dtype, c.batch)
            fastest[key] = min(fastest.get(key, float("inf")), c.median)
    for c in cases:
        if c.skipped:
            lines.append(f"| {c.n} | {c.dtype} | {c.batch} | {c.solver} | skipped: {c.skipped} | | | | | | |")
            continue
        ratio = ""
        if c.solver == "qpth" and (c.n, c.dtype, c.batch) in fastest:
            ratio = f"{c.median / fastest[(c.n, c.dtype, c.batch)]:.2f}"
        lines.append(
            f"| {c.n} | {c.dtype} | {c.batch} | {c.solver} | {c.median * 1e3:.2f} | "
            f"[{c.min * 1e3:.2f}, {c.max * 1e3:.2f}] | {c.repeats} | {c.solved}/{c.batch} | "
            f"{c.worst_residual:.1e} | {c.iterations if c.iterations is not None else ''} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke run of the same code)")
    parser.add_argument("--sizes", default="100,500", help="n values (default 100,500)")
    parser.add_argument("--batch-sizes", default="1,8,64,512,4096", help="default 1,8,64,512,4096")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case-budget", type=float, default=4.0, help="seconds of timed repeats per case")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run (default 420)")
    parser.add_argument("--quick", action="store_true", help="n = 10, B = 1, 4 and 2 repeats")
    parser.add_argument("--out", type=Path, default=Path("reports/performance"))
    parser.add_argument("--name", default=None, help="file stem (default: the device type)")
    args = parser.parse_args(argv)
    args.argv = ["python benchmarks/gpu_speed.py", *(argv if argv is not None else __import__("sys").argv[1:])]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device on this machine (use --device cpu for a smoke run)")
    if args.quick:
        args.sizes, args.batch_sizes, args.repeats = "10", "1,4", 2
    sizes = [int(v) for v in args.sizes.split(",")]
    batches = [int(v) for v in args.batch_sizes.split(",")]
    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    first = "inhouse-graphs" if device.type == "cuda" else "inhouse-compact"
    labels = [first, "inhouse-eager", "qpth"]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    deadline = time.perf_counter() + args.budget
    cases: list[Case] = []
    for n in sizes:
        for dtype in dtypes:
            for B in batches:
                batch = generate("optnet_random", B, n, seed=0, dtype=dtype, device=device)
                for label in labels:
                    if time.perf_counter() > deadline:
                        cases.append(Case(n, str(dtype).replace("torch.", ""), B, label, skipped="run budget spent"))
                        continue
                    case = run_qpth(batch, device, args) if label == "qpth" else run_inhouse(batch, label, device, args)
                    cases.append(case)
                    shown = "skipped: " + case.skipped if case.skipped else f"{case.median * 1e3:.2f} ms"
                    print(f"n={n} {dtype} B={B} {label}: {shown}", flush=True)
                del batch
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    name = args.name or device.type
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(markdown(cases, device_name, started, args))
    (args.out / f"{name}.json").write_text(json.dumps([asdict(c) for c in cases], indent=1))
    print(f"wrote {args.out / (name + '.md')} and {args.out / (name + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
