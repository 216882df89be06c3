"""Sections on batch-size scaling (generated families) and per-problem times (test sets)."""

from __future__ import annotations

import pandas as pd

from qpbench.reports import formatting as fmt
from qpbench.reports import plots, summary
from qpbench.reports.context import ReportContext
from qpbench.reports.document import Block, Heading, Image, Paragraph, table
from qpbench.results import ROW_OK

_BATCH_KEYS = ["suite", "family", "n", "m", "k", "dtype", "device", "tolerance"]


def batch_sections(ctx: ReportContext) -> list[Block]:
    """Per generated family, size, dtype/device and tolerance: times against batch size."""
    generated = ctx.frame[(ctx.frame["problem"] == "") & ctx.frame["outcome"].isin(summary.ATTEMPTED)]
    blocks: list[Block] = [Heading(2, "Time vs batch size")]
    if generated.empty:
        blocks.append(Paragraph("No generated batches were run (test-set problems appear in the profiles above)."))
        return blocks
    groups = sorted(
        generated.groupby(_BATCH_KEYS, sort=True, dropna=False),
        key=_tolerance_last,
    )
    for (suite, family, n, m, k, dtype, device, tolerance), rows in groups:
        label = f"{family} {fmt.sizes(n, m, k)}, {dtype} on {device}, tolerance {tolerance}, suite {suite}"
        blocks.append(Heading(3, label))
        blocks.append(table(f"Batch times — {label}", *_batch_table(rows, ctx)))
        measured = rows[rows["outcome"] == ROW_OK]
        sizes = f"n{fmt.integer(n)}-m{fmt.integer(m)}-k{fmt.integer(k)}"
        slug = f"{suite}-{family}-{sizes}-{dtype}-{device}-{tolerance}"
        short = f"{family} {fmt.sizes(n, m, k)}, {dtype}/{device}, tol {tolerance}"
        fastest = fastest_at_largest_batch(measured)
        for kind, title, per_problem in (
            ("time", f"Batch solve time vs B\n{short}", False),
            ("per-problem", f"Time per problem vs B\n{short}", True),
        ):
            path = ctx.plot_path(f"{kind}-{slug}")
            path = plots.time_vs_batch(measured, ctx.style, title, path, per_problem, fastest)
            blocks.append(Image(path, title.replace("\n", ", ")))
        others = set(measured["solver"]) - {ctx.reference}
        if ctx.reference not in set(measured["solver"]) or not others:
            blocks.append(Paragraph(f"No speed-up plot: `{ctx.reference}` and no other solver both ran here."))
        else:
            title = f"Speed-up over {ctx.reference} vs B\n{short}"
            path = ctx.plot_path(f"speedup-{slug}")
            path = plots.speedup_vs_batch(measured, ctx.reference, ctx.style, title, path, fastest)
            blocks.append(Image(path, title.replace("\n", ", ")))
    return blocks


def fastest_at_largest_batch(rows: pd.DataFrame) -> str | None:
    """The solver a batch plot draws strong: fastest at the largest batch size among the rows that
    solved every problem (None when none did)."""
    ok = rows[rows["row_ok"] & (rows["solve_time_median"] > 0)]
    if ok.empty:
        return None
    largest = ok[ok["batch_size"] == ok["batch_size"].max()]
    return str(largest.sort_values("solve_time_median").iloc[0]["solver"])


def test_set_sections(ctx: ReportContext) -> list[Block]:
    """Per test set, dtype/device and tolerance: one line per problem, one column per solver."""
    ran = ctx.frame[ctx.frame["problem"] != ""]
    if ran.empty:
        return []
    blocks: list[Block] = [
        Heading(2, "Test-set problems"),
        Paragraph(
            "Median solve time [s] per problem; `*` marks a run that did not succeed (see Failures), and a "
            "word is the outcome of a row that gave no time (failed, timeout, crashed, oom, unsupported, "
            "unavailable)."
        ),
    ]
    keys = ["suite", "family", "dtype", "device", "tolerance"]
    groups = sorted(
        ran.groupby(keys, sort=True),
        key=_tolerance_last,
    )
    for (suite, family, dtype, device, tolerance), rows in groups:
        solvers = [s for s in ctx.solvers if s in set(rows["solver"])]
        cells: dict[tuple[str, float], dict[str, str]] = {}
        sizes: dict[tuple[str, float], str] = {}
        for r in rows.itertuples():
            key = (r.problem, r.batch_size)
            sizes[key] = fmt.sizes(r.n, r.m, r.k)
            if r.outcome == ROW_OK and pd.notna(r.solve_time_median):
                cell = fmt.sci(r.solve_time_median) + ("" if r.row_ok else "*")
            else:
                cell = r.outcome or fmt.DASH
            cells.setdefault(key, {})[r.solver] = cell
        body = []
        for key in sorted(cells):
            by_solver = cells[key]
            body.append((key[0], sizes[key], fmt.integer(key[1]), *(by_solver.get(s, fmt.DASH) for s in solvers)))
        title = f"Solve time per problem — {family}, {dtype} on {device}, tolerance {tolerance}, suite {suite}"
        blocks.append(table(title, ("problem", "sizes", "B", *solvers), body))
    return blocks


def _tolerance_last(item: tuple[tuple, pd.DataFrame]) -> tuple:
    """Sort key of a groupby item whose last key is the tolerance level: low < mid < high."""
    keys = item[0]
    return (*keys[:-1], summary.TOLERANCE_ORDER.get(keys[-1], 9), keys[-1])


def _batch_table(rows: pd.DataFrame, ctx: ReportContext) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """One line per row (solver, batch size, seed); speed-up against the reference on the same seed."""
    headers = ("solver", "B", "seed", "outcome", "succeeded", "median [s]", "min [s]", "max [s]", "per problem [s]",
               f"speed-up vs {ctx.reference or fmt.DASH}")  # fmt: skip
    ref_rows = rows[(rows["solver"] == ctx.reference) & (rows["outcome"] == ROW_OK)]
    ref_time = {
        (b, seed): t
        for b, seed, t in zip(ref_rows["batch_size"], ref_rows["seed"], ref_rows["solve_time_median"], strict=True)
    }
    body = []
    order = {s: i for i, s in enumerate(ctx.solvers)}
    ordered = rows.assign(_order=rows["solver"].map(order)).sort_values(["_order", "batch_size", "seed"])
    for _, r in ordered.iterrows():
        ok = r["outcome"] == ROW_OK
        time = r["solve_time_median"] if ok else None
        reference = ref_time.get((r["batch_size"], r["seed"]), float("nan"))
        speedup = reference / time if ok and time else None
        body.append(
            (
                r["solver"],
                fmt.integer(r["batch_size"]),
                fmt.integer(r["seed"]),
                r["outcome"],
                f"{int(r['problems_ok'])}/{fmt.integer(r['batch_size'])}",
                fmt.sci(time),
                fmt.sci(r["solve_time_min"] if ok else None),
                fmt.sci(r["solve_time_max"] if ok else None),
                fmt.sci(time / r["batch_size"] if ok and time and r["batch_size"] else None),
                fmt.ratio(speedup),
            )
        )
    return headers, body
