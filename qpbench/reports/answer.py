"""The report's first screen: per problem size and batch size, which solver is fastest per problem
and with what success; which solvers failed, on which test and why; what did not run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from qpbench import metrics
from qpbench.reports import formatting as fmt
from qpbench.reports import summary
from qpbench.reports.context import ReportContext
from qpbench.reports.document import Block, Heading, Paragraph, table
from qpbench.results import ROW_OK

SIZE_KEYS = ["suite", "family", "n", "m", "k", "dtype", "device", "tolerance"]


@dataclass(frozen=True)
class Entry:
    """One solver at one batch size of a problem size (seeds merged)."""

    solver: str
    per_problem: float  # median solve time of the batch / B, seconds
    succeeded: int
    problems: int

    @property
    def all_solved(self) -> bool:
        return self.succeeded >= self.problems > 0

    def success(self) -> str:
        return f"{self.succeeded}/{self.problems}"


def answer_section(ctx: ReportContext) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Fastest solver per problem size and batch size"),
        Paragraph(
            "Time per problem = the batch's median solve time / B (the solver's own batching or its loop "
            "over the batch, whichever it does). 'Fastest' is the quickest solver that ran, whatever its "
            "success; when it did not solve every problem, the next column names the quickest that did. "
            "'x fastest' compares with that one."
        ),
    ]
    generated = ctx.frame[(ctx.frame["problem"] == "") & (ctx.frame["outcome"] == ROW_OK)]
    groups = sorted(generated.groupby(SIZE_KEYS, sort=True, dropna=False), key=_tolerance_last)
    for (suite, family, n, m, k, dtype, device, tolerance), rows in groups:
        label = f"{family} {fmt.sizes(n, m, k)}, {dtype} on {device}, tolerance {tolerance}"
        if ctx.frame["suite"].nunique() > 1:
            label += f", suite {suite}"
        blocks.append(table(f"Fastest per batch size — {label}", *_size_table(rows, ctx.reference)))
    blocks += _test_set_tables(ctx)
    if len(blocks) == 2:
        blocks.append(Paragraph("No solver gave an answer on any case."))
    blocks += failed_section(ctx)
    return blocks


def _tolerance_last(item: tuple[tuple, pd.DataFrame]) -> tuple:
    keys = item[0]
    return (*keys[:-1], summary.TOLERANCE_ORDER.get(keys[-1], 9), keys[-1])


def entries(rows: pd.DataFrame) -> list[Entry]:
    """Per solver: the median over seeds of its per-problem time, and its successes (summed)."""
    found = []
    for solver, mine in rows.groupby("solver", sort=False):
        per_problem = (mine["solve_time_median"] / mine["batch_size"]).median()
        if pd.notna(per_problem) and per_problem > 0:
            found.append(Entry(str(solver), float(per_problem), int(mine["problems_ok"].sum()),
                               int(mine["batch_size"].sum())))  # fmt: skip
    return sorted(found, key=lambda e: e.per_problem)


def _size_table(rows: pd.DataFrame, reference: str | None) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    ref = reference or "—"
    headers = (
        "B", "fastest", "time per problem [s]", "its success", "fastest solving every problem",
        f"{ref} per problem [s]", f"{ref} success", f"{ref} x fastest", "solvers solving every problem",
    )  # fmt: skip
    body = []
    for batch_size, at_b in rows.groupby("batch_size", sort=True):
        ranked = entries(at_b)
        if not ranked:
            continue
        fastest = ranked[0]
        complete = [e for e in ranked if e.all_solved]
        best = complete[0] if complete else None
        mine = next((e for e in ranked if e.solver == reference), None)
        compare_to = best or fastest
        body.append(
            (
                fmt.integer(batch_size),
                fastest.solver,
                fmt.sci(fastest.per_problem),
                fastest.success(),
                ("the same" if best is fastest else f"{best.solver} ({fmt.sci(best.per_problem)})") if best else "none",
                fmt.sci(mine.per_problem) if mine else "not run",
                mine.success() if mine else fmt.DASH,
                fmt.ratio(mine.per_problem / compare_to.per_problem) if mine else fmt.DASH,
                f"{len(complete)} of {len(ranked)}",
            )
        )
    return headers, body


def _test_set_tables(ctx: ReportContext) -> list[Block]:
    """Per test set and tolerance: who solved most, and the best failure-penalized geomean."""
    ran = ctx.frame[ctx.frame["problem"] != ""]
    blocks: list[Block] = []
    keys = ["suite", "family", "dtype", "device", "tolerance"]
    for (_, family, dtype, device, tolerance), rows in sorted(ran.groupby(keys, sort=True), key=_tolerance_last):
        rates = metrics.success_rates(rows)
        if rates.empty:
            continue
        geo, _, _ = summary.penalized_geomeans(rows, ctx.time_limit)
        most = rates.sort_values(["successes", "solver"], ascending=[False, True]).iloc[0]
        best = geo.sort_values("geomean").iloc[0] if not geo.empty else None
        mine = rates[rates["solver"] == ctx.reference]
        mine_geo = geo[geo["solver"] == ctx.reference]
        cases = int(rates["cases"].max())
        title = f"Test set {family}, {dtype} on {device}, tolerance {tolerance} ({cases} problems, one per batch)"
        body = [
            ("most problems solved", str(most["solver"]), f"{int(most['successes'])}/{int(most['problems'])}"),
            ("best failure-penalized geomean", str(best["solver"]) if best is not None else fmt.DASH,
             fmt.sci(best["geomean"]) + " s" if best is not None else fmt.DASH),
        ]  # fmt: skip
        if not mine.empty:
            ratio = float(mine_geo["relative"].iloc[0]) if not mine_geo.empty else float("nan")
            body.append((f"{ctx.reference}", f"{int(mine['successes'].iloc[0])}/{int(mine['problems'].iloc[0])} solved",
                         f"geomean {fmt.ratio(ratio)} x best"))  # fmt: skip
        blocks.append(table(title, ("", "solver", "value"), body))
    return blocks


def failed_section(ctx: ReportContext) -> list[Block]:
    failed = summary.failed_solvers(ctx.frame, ctx.solvers)
    blocks: list[Block] = []
    if failed:
        blocks.append(
            table(
                "Solvers that failed problems (all cases; details in Failures)",
                ("solver", "failed / run", "failed test (problems)", "why"),
                [(f["solver"], f"{f['failed']}/{f['problems']}", f["tests"], f["why"]) for f in failed],
            )
        )
    ran = set(metrics.attempted(ctx.frame)["solver"])
    clean = [s for s in ctx.solvers if s in ran and s not in {f["solver"] for f in failed}]
    if clean:
        blocks.append(Paragraph(f"Every problem it ran was solved by: {', '.join(clean)}."))
    not_run = summary.not_run_summary(ctx.frame)
    if not_run:
        lines = [f"{r['outcome']} ({summary.short_text(r['reason'], 100)}): {_names(r['solvers'])}, {r['rows']} rows"
                 for r in not_run]  # fmt: skip
        blocks.append(Paragraph("Not run on some cases others ran (counted against them): " + "; ".join(lines) + "."))
    return blocks


def _names(solvers: list[str], limit: int = 12) -> str:
    shown = ", ".join(solvers[:limit])
    return shown if len(solvers) <= limit else f"{shown} and {len(solvers) - limit} more"
