"""Sections on gradients (backward time, gradient error) and on every failure."""

from __future__ import annotations

from qpbench.reports import formatting as fmt
from qpbench.reports import plots, summary
from qpbench.reports.context import ReportContext
from qpbench.reports.document import Block, Heading, Image, Paragraph, table


def gradient_section(ctx: ReportContext) -> list[Block]:
    grads = summary.gradient_table(ctx.frame, ctx.solvers)
    if not grads:
        return []
    blocks: list[Block] = [
        Heading(2, "Gradients"),
        Paragraph(
            "Convention: for a parameter shared by the whole batch (given unbatched), qpbench's layer "
            "returns the SUM of the per-problem gradients; qpth returns their MEAN. Gradient errors are "
            "relative, against central finite differences in float64."
        ),
        table(
            "Backward pass and gradient accuracy per solver (all suites and tolerances)",
            (
                "solver",
                "rows",
                "forward median [s]",
                "backward median [s]",
                "backward / forward (median)",
                "gradient rel. error max",
                "gradient rel. error median",
            ),
            [
                (
                    g["solver"],
                    g["rows"],
                    fmt.sci(g["forward_median"]),
                    fmt.sci(g["backward_median"]),
                    fmt.ratio(g["ratio_median"]),
                    fmt.sci(g["grad_err_max"]),
                    fmt.sci(g["grad_err_median"]),
                )
                for g in grads
            ],
        ),
    ]
    measured = ctx.frame[ctx.frame["backward_time_median"].notna()]
    if not measured.empty:
        title = "Backward vs forward time (all suites)"
        path = plots.backward_vs_forward(measured, ctx.style, title, ctx.plot_path("backward-forward"))
        blocks.append(Image(path, title))
    return blocks


def failure_section(ctx: ReportContext) -> list[Block]:
    failed = summary.failure_rows(ctx.frame)
    order = {s: i for i, s in enumerate(ctx.solvers)}
    failed = failed.assign(
        _order=failed["solver"].map(order),
        _tol=failed["tolerance"].map(lambda t: summary.TOLERANCE_ORDER.get(t, 9)),
        _worst=summary.worst_residual(failed),
    ).sort_values(["_order", "suite", "family", "problem", "n", "m", "k", "batch_size", "dtype", "device", "_tol"])
    rows = []
    for _, r in failed.iterrows():
        problem = r["problem"] or r["family"]
        message = r["error"] if r["outcome"] != "ok" else r["problem_errors"]
        rows.append(
            (
                r["solver"],
                r["suite"],
                f"{problem} {fmt.sizes(r['n'], r['m'], r['k'])}",
                fmt.integer(r["batch_size"]),
                f"{r['dtype']}/{r['device']}",
                r["tolerance"],
                r["outcome"],
                f"{int(r['problems_ok'])}/{fmt.integer(r['batch_size'])}",
                summary.failed_tests(r) or fmt.DASH,
                summary.status_summary(r) or fmt.DASH,
                fmt.sci(r["_worst"]),
                summary.short_text(message) or fmt.DASH,
            )
        )
    not_run = summary.not_run_summary(ctx.frame)
    idle = summary.unrunnable_cases(ctx.frame)
    blocks: list[Block] = [
        Heading(2, "Failures"),
        Paragraph(
            "Every attempted row where not all problems of the batch succeeded: the outcome of the row, "
            "the test its failed problems failed (status: not reported solved; primal, dual, gap: reported "
            "solved with that residual above the tolerance), the statuses the solver reported, the worst "
            "of its residuals (max of primal, dual, gap), and the solver's message or the error raised."
        ),
        table(
            f"Failed or partly failed rows ({len(rows)})",
            ("solver", "suite", "problem", "B", "dtype/device", "tolerance", "outcome", "succeeded", "failed test",
             "statuses", "worst residual", "message"),
            rows,
        ),
        table(
            f"Not run: unsupported, unavailable or skipped ({sum(r['rows'] for r in not_run)} rows)",
            ("outcome", "reason", "solvers", "rows"),
            [(r["outcome"], summary.short_text(r["reason"]) or fmt.DASH, ", ".join(r["solvers"]), r["rows"])
             for r in not_run],
        ),
    ]
    if idle:
        blocks.append(
            Paragraph(
                "Cases no solver ran (what this machine cannot run, such as CUDA cases without a GPU), "
                "one line per reason: "
                + "; ".join(f"{i['reason']}: {i['cases']} cases, {i['rows']} rows" for i in idle)
                + "."
            )
        )
    return blocks
