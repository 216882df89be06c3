"""Markdown tables and plots from ``relu_results.jsonl`` (nothing here runs a solver)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from qpbench.relu.bench import RESULTS_FILE

METHOD_ORDER = (
    "sampling", "sampling+enhanced",
    "mip-highs", "mip-highs+lpbounds", "mip-highs+lpbounds+warm",
    "mip-gurobi", "mip-gurobi+lpbounds", "mip-gurobi+lpbounds+warm",
)


def load_rows(out: Path) -> list[dict[str, Any]]:
    path = Path(out) / RESULTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {RESULTS_FILE} in {out}")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line from an interrupted run
    return _latest_per_network(rows)


def _latest_per_network(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep only the newest rows of each (network, kind): a re-run appends rather than
    overwrites, and a throughput-only run replaces just the throughput row."""
    newest: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["network"], r["kind"])
        newest[key] = max(newest.get(key, 0.0), r.get("timestamp", 0.0))
    # Rows of one network's run are written together, within a second.
    return [r for r in rows if newest[(r["network"], r["kind"])] - r.get("timestamp", 0.0) < 5.0]


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def _method_key(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per network: the two sampling algorithms against the best cold MIP."""
    lines = [
        "## Summary per network",
        "",
        "Gap: to the proven optimum when one exists (marked =), else certified by the tightest MIP",
        "bound (marked ≤). Cold MIP: the best value any MIP found without a warm start.",
        "",
        "| network | sampling f (s to best) | enhanced f (s to best) | best cold MIP f (method, s to best) "
        "| MIP bound | sampling gap | enhanced gap | LP/s ratio in-house / HiGHS |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for net in dict.fromkeys(r["network"] for r in rows):
        mine = {r["method"]: r for r in rows if r["network"] == net and r["kind"] == "search"}
        thr = next((r for r in rows if r["network"] == net and r["kind"] == "throughput"), {})

        def found(r: dict[str, Any] | None) -> str:
            if not r or r.get("best_value") is None:
                return "none"
            return f"{r['best_value']:.6f} ({_fmt(r.get('time_to_best'), '.2f')})"

        def gap(r: dict[str, Any] | None) -> str:
            if not r:
                return "–"
            if r.get("gap_abs") is not None:
                return f"= {r['gap_abs']:.2e}"
            return f"≤ {_fmt(r.get('gap_to_bound'), '.3g')}"

        cold = [r for m, r in mine.items() if m.startswith("mip-") and not m.endswith("+warm")
                and r.get("best_value") is not None]
        best_cold = max(cold, key=lambda r: r["best_value"]) if cold else None
        cold_text = (f"{best_cold['best_value']:.6f} ({best_cold['method']}, "
                     f"{_fmt(best_cold.get('time_to_best'), '.2f')})" if best_cold else "none found")
        upper = next((r.get("upper_bound") for r in mine.values() if r.get("upper_bound") is not None), None)
        proven = any(r.get("status") == "optimal" for r in mine.values())
        lines.append(
            f"| {net} | {found(mine.get('sampling'))} | {found(mine.get('sampling+enhanced'))} | {cold_text} | "
            f"{_fmt(upper, '.4g')}{' (optimal)' if proven else ''} | {gap(mine.get('sampling'))} | "
            f"{gap(mine.get('sampling+enhanced'))} | {_fmt(thr.get('ratio_inhouse_over_highs'), '.2f')} |"
        )
    return [*lines, ""]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# Optimizing trained ReLU networks: sampling LPs vs the big-M MIP", ""]
    lines += [
        "Best value of max f(x) over the box found by each method, seconds to reach it, total seconds,",
        "and the gap to the MIP optimum where some MIP proved it (gap = optimum − value; relative to",
        "|optimum|). Where no MIP proved optimality, 'gap ≤' is certified: the tightest MIP upper",
        "bound minus the value. Sampling runs stop at their time budget (checked between batches);",
        "MIPs at their time limit (+lpbounds: LP-tightened big-M bounds, their time included).",
        "A warm-started MIP (+warm) starts from the best sampled point: its times exclude the sampling",
        "that found that point.",
        "",
        *_summary(rows),
        "## Best value, time and gap per network",
        "",
        "| network | method | best f | time to best (s) | total (s) | MIP bound | gap | rel. gap | gap ≤ "
        "| status | samples | LPs (neighbour) | LPs failed | LP/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    searches = [r for r in rows if r["kind"] == "search"]
    networks = list(dict.fromkeys(r["network"] for r in rows))
    for net in networks:
        for r in sorted((r for r in searches if r["network"] == net), key=lambda r: _method_key(r["method"])):
            status = r.get("status", "")
            if r.get("reason"):
                status = f"{status}: {r['reason']}"
            lines.append(
                f"| {net} | {r['method']} | {_fmt(r.get('best_value'), '.6f')} | "
                f"{_fmt(r.get('time_to_best'), '.2f')} | {_fmt(r.get('seconds'), '.1f')} | "
                f"{_fmt(r.get('bound'), '.6g')} | "
                f"{_fmt(r.get('gap_abs'), '.2e')} | {_fmt(r.get('gap_rel'), '.2e')} | "
                f"{_fmt(r.get('gap_to_bound'), '.3g')} | {status} | "
                f"{_fmt(r.get('samples'), 'd')} | {_fmt(r.get('lps_solved'), 'd')}"
                f"{' (' + str(r['neighbour_lps']) + ')' if r.get('neighbour_lps') else ''} | "
                f"{_fmt(r.get('lp_failures'), 'd')} | {_fmt(r.get('lps_per_s'), '.0f')} |"
            )
    lines += [
        "",
        "## LP throughput: in-house batched solver vs HiGHS one LP at a time",
        "",
        "Same deduplicated region LPs (reduced form), one warm-up, then one timed call per backend.",
        "HiGHS LP/s counts passing each prepared model and solving it; 'with setup' adds converting",
        "the dense tensors to HiGHS models ('–': not recorded by that run).",
        "",
        "| network | LPs | n | m | in-house LP/s | HiGHS LP/s | HiGHS LP/s with setup "
        "| ratio in-house / HiGHS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r["kind"] != "throughput":
            continue
        lines.append(
            f"| {r['network']} | {r['lps']} | {r['n']} | {r['m']} | "
            f"{_fmt(r.get('inhouse_lps_per_s'), '.1f')} | "
            f"{_fmt(r.get('highs_lps_per_s'), '.1f')} | {_fmt(r.get('highs_lps_per_s_with_setup'), '.1f')} | "
            f"{_fmt(r.get('ratio_inhouse_over_highs'), '.3f')} |"
        )
    lines.append("")
    return "\n".join(lines)


def plot_traces(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per network: gap of the best value found to the best known value, vs time.

    The reference is the proven MIP optimum where there is one, else the best value any method
    found; both axes are logarithmic (a gap of 0 is drawn at 1e-9).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for net in dict.fromkeys(r["network"] for r in rows):
        mine = sorted((r for r in rows if r["network"] == net and r["kind"] == "search" and r.get("trace")),
                      key=lambda r: _method_key(r["method"]))
        if not mine:
            continue
        optima = [r["optimum"] for r in rows if r["network"] == net and r.get("optimum") is not None]
        reference = optima[0] if optima else max(r["best_value"] for r in mine if r.get("best_value") is not None)
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in mine:
            trace = [(max(t, 1e-3), max(reference - v, 1e-9)) for t, v in r["trace"]]
            end = max(r.get("seconds") or trace[-1][0], trace[-1][0])
            times = [t for t, _ in trace] + [end]
            gaps = [g for _, g in trace] + [trace[-1][1]]
            ax.step(times, gaps, where="post", label=r["method"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("seconds")
        ax.set_ylabel("MIP optimum − best f" if optima else "best known − best f")
        ax.set_title(net)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out) / f"trace-{net.replace(':', '-')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def environment_lines(out: Path) -> list[str]:
    """One line per run's environment record: when, where, how many threads, how loaded."""
    lines = []
    for path in sorted(Path(out).glob("environment-*.json")):
        env = json.loads(path.read_text())
        config = env.get("suite", {}).get("config", {})
        load = env.get("load_average")
        mode = env.get("mode", "run")  # records before the mode field existed
        lines.append(
            f"* `{path.name}` ({mode} run of {', '.join(config.get('sizes', []))}): {env.get('date')}, "
            f"{env.get('cpu_model')} ({env.get('cpu_cores')} cores), "
            f"torch threads {env.get('torch_threads')}, load average at the end "
            f"{', '.join(f'{v:.1f}' for v in load) if load else '–'}, git "
            f"{(env.get('git') or {}).get('commit', '')[:10]}; sampling budget "
            f"{config.get('time_budget')} s, MIP limit {config.get('mip_time_limit')} s, "
            f"batch {config.get('batch_size')}"
        )
    return lines


def write_report(out: Path) -> Path:
    rows = load_rows(out)
    plots = plot_traces(rows, out)
    text = markdown(rows)
    env = environment_lines(out)
    if env:
        text += "\n## Environment\n\n" + "\n".join(env) + "\n"
    if plots:
        images = "\n".join(f"![{p.stem}]({p.name})" for p in plots)
        text += "\n## Gap to the best known value vs time\n\n" + images + "\n"
    path = Path(out) / "report.md"
    path.write_text(text, encoding="utf-8")
    return path
