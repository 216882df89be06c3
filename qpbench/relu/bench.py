"""The experiment behind ``qpbench relu``: sampling LP algorithms vs the big-M MIP.

For each network: the sampling LP algorithm and its enhanced variant (both on the in-house
batched solver when it is available), HiGHS and Gurobi on the MIP, cold and warm-started from
the best sampled point, and the LP throughput of the in-house solver (one batched call) against
HiGHS (one LP per call) on the same region LPs. One JSON line per result; the report is built
from those lines only.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qpbench.relu.lp_solvers import default_backend, inhouse_available, solve_lps
from qpbench.relu.mip import solve_mip
from qpbench.relu.network import TEST_FUNCTIONS, ReluNet, parse_architecture, random_network, train_network
from qpbench.relu.regions import region_lps, sample_box, unique_patterns
from qpbench.relu.sampling import sampling_search

RESULTS_FILE = "relu_results.jsonl"
NET_KINDS = ("random", "trained")


@dataclass(frozen=True)
class BenchConfig:
    sizes: tuple[str, ...]
    net: str = "random"
    samples: int | None = None  # per sampling run; None = until the time budget
    time_budget: float = 20.0  # seconds per sampling run
    mip_time_limit: float = 30.0  # seconds per MIP solve
    batch_size: int = 128
    throughput_lps: int = 64  # region LPs timed on both LP backends
    train_seconds: float = 5.0
    mip_solvers: tuple[str, ...] = ("highs", "gurobi")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.net not in NET_KINDS:
            raise ValueError(f"net must be one of {NET_KINDS}, got {self.net!r}")
        if not self.sizes:
            raise ValueError("sizes must name at least one architecture, e.g. 2-100-100-1")
        for spec in self.sizes:
            parse_architecture(spec)
        if self.time_budget <= 0 or self.mip_time_limit <= 0:
            raise ValueError("time_budget and mip_time_limit must be positive")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.batch_size < 1 or self.throughput_lps < 1:
            raise ValueError("batch_size and throughput_lps must be >= 1")


def make_network(
    spec: str, kind: str, seed: int, train_seconds: float
) -> tuple[ReluNet, float, dict[str, Any]]:
    """(network, box half-width, description). Trained 2-D nets fit 'peaks', others Rastrigin."""
    dims = parse_architecture(spec)
    if kind == "random":
        return random_network(dims, seed), 1.0, {"function": "none"}
    function = "peaks" if dims[0] == 2 else "rastrigin"
    net, mse = train_network(dims, function, seconds=train_seconds, seed=seed)
    return net, TEST_FUNCTIONS[function][1], {"function": function, "train_mse": mse}


def measure_throughput(net: ReluNet, lo: torch.Tensor, hi: torch.Tensor, count: int, seed: int,
                       backends: tuple[str, ...]) -> dict[str, Any]:
    """LPs per second on the same deduplicated region LPs, each backend once after a warm-up."""
    gen = torch.Generator().manual_seed(seed + 1)
    x = sample_box(lo, hi, 4 * count, gen)
    uniq = unique_patterns(net.patterns(x))
    patterns = uniq.patterns[:count]
    batch = region_lps(net, patterns, lo, hi)
    row: dict[str, Any] = {"lps": batch.batch_size, "n": batch.n, "m": batch.m}
    warm = batch[: min(4, batch.batch_size)]
    for backend in backends:
        solve_lps(warm, backend)  # warm-up: imports, first-call allocations
        out = solve_lps(batch, backend)
        row[f"{backend}_seconds"] = out.seconds
        row[f"{backend}_lps_per_s"] = batch.batch_size / out.seconds
        row[f"{backend}_solved"] = int(out.solved.sum())
        if "setup_seconds" in out.info:  # HiGHS: dense tensors -> HiGHS models, before solving
            setup = out.info["setup_seconds"]
            row[f"{backend}_setup_seconds"] = setup
            row[f"{backend}_lps_per_s_with_setup"] = batch.batch_size / (out.seconds + setup)
    if {"inhouse", "highs"} <= set(backends):
        row["ratio_inhouse_over_highs"] = row["inhouse_lps_per_s"] / row["highs_lps_per_s"]
    return row


def _time_to_best(trace: list[tuple[float, float]]) -> float | None:
    """First time the trace reached its final value (later entries may only repeat it)."""
    if not trace:
        return None
    final = trace[-1][1]
    return next(t for t, v in trace if v >= final - 1e-9 * (1 + abs(final)))


def _search_row(base: dict[str, Any], res: Any) -> dict[str, Any]:
    return {
        **base,
        "kind": "search",
        "method": res.method,
        "best_value": res.best_value,
        "time_to_best": _time_to_best(res.trace),
        "seconds": res.seconds,
        "samples": res.samples,
        "lps_solved": res.lps_solved,
        "lp_failures": res.lp_failures,
        "lp_seconds": res.lp_seconds,
        "lps_per_s": res.lps_solved / res.lp_seconds if res.lp_seconds else None,
        "trace": res.trace,
        "backend": res.info.get("backend"),
        "form": res.info.get("form"),
        "neighbour_lps": res.info.get("neighbour_lps"),
        "improving_moves": res.info.get("improving_moves"),
        "status": "budget",
    }


# (bounds, warm start) per MIP solver: the plain big-M, the LP-tightened one, and that warm-started.
MIP_VARIANTS = (("interval", False), ("lp", False), ("lp", True))


def mip_method(solver: str, bounds: str, warm: bool) -> str:
    return f"mip-{solver}" + ("+lpbounds" if bounds == "lp" else "") + ("+warm" if warm else "")


def _mip_row(base: dict[str, Any], res: Any) -> dict[str, Any]:
    finite = math.isfinite(res.best_value)
    return {
        **base,
        "kind": "search",
        "method": mip_method(res.solver, res.info.get("bounds", "interval"), res.warm_start),
        "best_value": res.best_value if finite else None,
        "time_to_best": _time_to_best(res.trace),
        "seconds": res.seconds,
        "bound": res.bound if math.isfinite(res.bound) else None,
        "status": res.status,
        "reason": res.reason,
        "trace": res.trace,
        **{f"mip_{k}": v for k, v in res.info.items()},
    }


def _network_setup(spec: str, config: BenchConfig
                   ) -> tuple[ReluNet, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(network, box lo, box hi, the columns every row of this network starts with)."""
    net, width, described = make_network(spec, config.net, config.seed, config.train_seconds)
    lo = torch.full((net.input_dim,), -width, dtype=net.dtype)
    base = {"network": f"{config.net}:{spec}", "net_kind": config.net, "architecture": spec,
            "input_dim": net.input_dim, "hidden": net.n_hidden, "seed": config.seed, **described}
    return net, lo, -lo, base


def _throughput_backends() -> tuple[str, ...]:
    """The LP backends the throughput row compares: the in-house solver (when there) and HiGHS."""
    return ("inhouse", "highs") if inhouse_available() else ("highs",)


def _throughput_row(net: ReluNet, lo: torch.Tensor, hi: torch.Tensor, base: dict[str, Any],
                    config: BenchConfig, backends: tuple[str, ...]) -> dict[str, Any]:
    return {**base, "kind": "throughput",
            **measure_throughput(net, lo, hi, config.throughput_lps, config.seed, backends)}


def _throughput_log(spec: str, row: dict[str, Any], backends: tuple[str, ...]) -> str:
    return f"  {spec} throughput " + ", ".join(f"{b}: {row[b + '_lps_per_s']:.1f} LP/s" for b in backends)


def run_network(spec: str, config: BenchConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """All methods on one network, one row each, plus the LP throughput row."""
    net, lo, hi, base = _network_setup(spec, config)
    rows: list[dict[str, Any]] = []
    backend = default_backend()
    searches = []
    for enhanced in (False, True):
        res = sampling_search(net, lo, hi, max_samples=config.samples, time_budget=config.time_budget,
                              batch_size=config.batch_size, backend=backend, enhanced=enhanced,
                              seed=config.seed)
        searches.append(res)
        rows.append(_search_row(base, res))
        log(f"  {spec} {res.method:18s} best {res.best_value:+.6f}  {res.lps_solved} LPs "
            f"in {res.seconds:.1f} s ({backend})")
    best_x = max(searches, key=lambda r: r.best_value).best_x  # warm start for the MIPs
    for solver in config.mip_solvers:
        for bounds, warm in MIP_VARIANTS:
            res = solve_mip(net, lo, hi, solver, config.mip_time_limit, best_x if warm else None,
                            bounds=bounds)
            rows.append(_mip_row(base, res))
            log(f"  {spec} {mip_method(solver, bounds, warm):26s} "
                f"{res.status:10s} best {res.best_value:+.6f} bound {res.bound:+.6f} in {res.seconds:.1f} s"
                + (f" ({res.reason})" if res.reason else ""))
    backends = _throughput_backends()
    thr = _throughput_row(net, lo, hi, base, config, backends)
    rows.append(thr)
    log(_throughput_log(spec, thr, backends))
    _add_gaps(rows)
    return rows


def _add_gaps(rows: list[dict[str, Any]]) -> None:
    """Gap of every search row to the proven MIP optimum (when some MIP proved one), and
    otherwise the certified bound on it: the tightest MIP upper bound minus the value."""
    bounds = [r["bound"] for r in rows if r.get("bound") is not None and r.get("status") != "skipped"]
    if bounds:
        upper = min(bounds)
        for r in rows:
            r["upper_bound"] = upper
            if r["kind"] == "search" and r.get("best_value") is not None:
                r["gap_to_bound"] = upper - r["best_value"]
    proven = [r for r in rows if r.get("status") == "optimal" and r.get("best_value") is not None]
    if not proven:
        return
    optimum = max(r["best_value"] for r in proven)
    for r in rows:
        r["optimum"] = optimum
        if r["kind"] == "search" and r.get("best_value") is not None:
            r["gap_abs"] = optimum - r["best_value"]
            r["gap_rel"] = (optimum - r["best_value"]) / max(abs(optimum), 1e-12)


def run(config: BenchConfig, out: Path, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every network of the config, append rows to ``out/relu_results.jsonl``, write the report."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / RESULTS_FILE
    all_rows: list[dict[str, Any]] = []
    for spec in config.sizes:
        log(f"{config.net} network {spec}")
        rows = run_network(spec, config, log)
        # Written per network: gaps are known only once its MIPs are done.
        with open(results, "a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({**row, "timestamp": time.time()}, default=float) + "\n")
        all_rows.extend(rows)
    _write_environment(out, config, "full")
    return all_rows


def run_throughput_only(config: BenchConfig, out: Path, log: Callable[[str], None] = print) -> None:
    """Re-measure only the LP throughput rows (the report then uses these, keeping the searches)."""
    out.mkdir(parents=True, exist_ok=True)
    backends = _throughput_backends()
    with open(out / RESULTS_FILE, "a", encoding="utf-8") as fh:
        for spec in config.sizes:
            net, lo, hi, base = _network_setup(spec, config)
            row = _throughput_row(net, lo, hi, base, config, backends)
            fh.write(json.dumps({**row, "timestamp": time.time()}, default=float) + "\n")
            log(_throughput_log(spec, row, backends))
    _write_environment(out, config, "throughput-only")


def _write_environment(out: Path, config: BenchConfig, mode: str = "full") -> None:
    from qpbench.runner.environment import environment_record

    record = environment_record(f"relu-{int(time.time())}", {"name": "relu", "config": vars(config)},
                                torch.get_num_threads(), "in-process")
    record["load_average"] = os.getloadavg()
    record["mode"] = mode
    path = out / f"environment-{config.net}-{int(time.time())}.json"  # one per run, never overwritten
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
