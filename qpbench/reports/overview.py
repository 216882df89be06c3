"""The report's opening and summary sections: run description, machine, per suite and tolerance
level success rates, failure-penalized times, performance profiles, residuals; and the definitions."""

from __future__ import annotations

from qpbench.reports import formatting as fmt
from qpbench.reports import plots, summary
from qpbench.reports.context import ReportContext
from qpbench.reports.document import Block, Heading, Image, Paragraph, table
from qpbench.reports.environment import environment_rows, suite_groups

PROFILE_TAUS = (1.0, 2.0, 10.0)


def intro(ctx: ReportContext) -> list[Block]:
    outcomes = ctx.frame["outcome"].value_counts()
    counts = ", ".join(f"{name} {int(outcomes.get(name, 0))}" for name in outcomes.index.sort_values())
    runs = ", ".join(r for r in dict.fromkeys(ctx.frame["run_id"]) if r) or fmt.DASH
    return [
        Paragraph(
            f"Rows: {len(ctx.frame)} ({counts or 'none'}). Run id: {runs}. "
            f"Speed-ups are relative to `{ctx.reference or fmt.DASH}`. "
            "Times are seconds; residuals are absolute infinity norms. Definitions are at the end."
        )
    ]


def environment_section(ctx: ReportContext) -> list[Block]:
    rows = environment_rows(ctx.environment)
    blocks: list[Block] = [Heading(2, "Machine and versions")]
    if not rows:
        blocks.append(Paragraph("No environment.json was found beside the results table."))
    blocks.append(table("Machine and versions (environment.json)", ("key", "value"), rows))
    headers, groups = suite_groups(ctx.environment)
    if groups:
        blocks.append(table("Suite case groups (environment.json)", headers, groups))
    return blocks


def contents_section(ctx: ReportContext) -> list[Block]:
    frame = ctx.frame

    def values(col: str) -> str:
        items = [v for v in dict.fromkeys(frame[col]) if v != ""]
        return ", ".join(items) or fmt.DASH

    def numbers(col: str) -> str:
        items = sorted({int(v) for v in frame[col].dropna()})
        return ", ".join(str(v) for v in items) or fmt.DASH

    sizes = sorted({(int(r.n), int(r.m), int(r.k)) for r in frame[["n", "m", "k"]].dropna().itertuples()})
    versions = []
    for solver in ctx.solvers:
        found = [v for v in dict.fromkeys(frame.loc[frame["solver"] == solver, "solver_version"]) if v]
        versions.append((solver, ", ".join(found) or fmt.DASH))
    rows = [
        ("suites", values("suite")),
        ("families / test sets", values("family")),
        ("test-set problems", str(len({p for p in frame["problem"] if p}))),
        ("sizes (n, m, k)", "; ".join(f"({n}, {m}, {k})" for n, m, k in sizes) or fmt.DASH),
        ("batch sizes", numbers("batch_size")),
        ("dtypes", values("dtype")),
        ("devices", values("device")),
        ("tolerance levels", values("tolerance")),
        ("cases", str(frame["case_id"].nunique())),
        ("torch threads", numbers("torch_threads")),
    ]
    return [
        Heading(2, "What was run"),
        table("Run contents", ("item", "value"), rows),
        table("Solver versions", ("solver", "version"), versions),
    ]


def summary_sections(ctx: ReportContext) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Summary per suite and tolerance level")]
    for suite, tolerance, rows in summary.suite_tolerance_groups(ctx.frame):
        eps = rows["tolerance_eps"].dropna()
        eps_value = float(eps.iloc[0]) if not eps.empty else None
        label = f"suite {suite}, tolerance {tolerance}" + (f" ({eps_value:g})" if eps_value else "")
        blocks.append(Heading(3, label.capitalize()))

        success = summary.success_table(rows, ctx.solvers)
        blocks.append(
            table(
                f"Success rate — {label}",
                (
                    "solver",
                    "cases attempted",
                    "cases all solved",
                    "cases not run",
                    "problems",
                    "problems succeeded",
                    "success rate",
                    "correct rate",
                ),
                [
                    (
                        r["solver"],
                        r["cases_attempted"],
                        r["cases_succeeded"],
                        r["cases_not_run"],
                        r["problems"],
                        r["problems_succeeded"],
                        fmt.percent(r["success_rate"]),
                        fmt.percent(r["correct_rate"]),
                    )
                    for r in success
                ],
            )
        )

        geo, shift, penalty = summary.penalized_geomeans(rows, ctx.time_limit)
        source = "time limit" if ctx.time_limit is not None else f"{summary.PENALTY_FACTOR:g}x slowest solve"
        geo_title = (
            f"Failure-penalized shifted geometric mean of solve time — {label} "
            f"(1.0 = best; shift {shift:.2e} s; a failure counts {penalty:.2e} s, {source})"
        )
        order = {s: i for i, s in enumerate(ctx.solvers)}
        geo = geo.assign(_order=geo["solver"].map(order)).sort_values("_order")
        geo_rows = [
            (r.solver, fmt.ratio(r.relative), fmt.sci(r.geomean), fmt.sci(r.min), fmt.sci(r.median), fmt.sci(r.max),
             int(r.cases))
            for r in geo.itertuples()
        ]  # fmt: skip
        headers = ("solver", "relative (1.0 = best)", "shifted geomean [s]", "min [s]", "median [s]", "max [s]",
                   "cases it ran")  # fmt: skip
        blocks.append(table(geo_title, headers, geo_rows))
        if geo.empty:
            blocks.append(Paragraph("No solver succeeded on any case here, so there is no ranking by time."))

        ratios, n_profile = summary.performance_profile(rows, ctx.solvers, penalty)
        at = {tau: summary.profile_at(ratios, tau) for tau in PROFILE_TAUS}
        solved = summary.solved_share(ratios)
        headers = ("solver", *(f"within {tau:g}x of fastest" for tau in PROFILE_TAUS), "solved at all")
        profile_rows = [
            (s, *(fmt.percent(at[tau][s]) for tau in PROFILE_TAUS), fmt.percent(solved[s])) for s in ratios.columns
        ]
        profile_title = f"Performance profile — {label} ({n_profile} cases solved by some solver)"
        blocks.append(table(profile_title, headers, profile_rows))

        residuals = summary.residual_table(rows, ctx.solvers)
        blocks.append(
            table(
                f"Residuals over rows that ran — {label}",
                (
                    "solver",
                    "rows",
                    "primal max",
                    "dual max",
                    "gap max",
                    "primal median",
                    "dual median",
                    "gap median",
                    "objective rel. error max",
                ),
                [
                    (
                        r["solver"],
                        r["rows"],
                        *(
                            fmt.sci(r[c])
                            for c in (
                                "primal_res_max",
                                "dual_res_max",
                                "gap_max",
                                "primal_res_median",
                                "dual_res_median",
                                "gap_median",
                                "obj_rel_err_max",
                            )
                        ),
                    )
                    for r in residuals
                ],
            )
        )

        title = f"Performance profile, {label}"
        path = ctx.plot_path(f"profile-{suite}-{tolerance}")
        blocks.append(Image(plots.performance_profile(ratios, n_profile, ctx.style, title, path), title))
        title = f"Accuracy vs time, {label}"
        path = ctx.plot_path(f"accuracy-{suite}-{tolerance}")
        blocks.append(Image(plots.accuracy_vs_time(rows, eps_value, ctx.style, title, path), title))
    return blocks


def definitions_section() -> list[Block]:
    return [
        Heading(2, "Definitions"),
        Paragraph(
            "Attempted: outcome ok, failed, timeout, crashed or oom (unsupported and unavailable rows never "
            "ran). A problem succeeded when the solver reported it solved and its primal and dual residuals "
            "and duality gap are all below the tolerance (for batches built to be infeasible or unbounded: "
            "when the solver reported the intended status). A case (row) succeeded when every problem in "
            "its batch did. Success rate = problems succeeded / problems attempted; correct rate = share "
            "of problems where the solver's own 'solved' flag agrees with the residual check."
        ),
        Paragraph(
            "Failure-penalized shifted geometric mean (qpbench.metrics): over the cases each solver "
            "attempted, the batch's median solve time if the case succeeded, else the penalty (the run's "
            "time limit from environment.json; when none is recorded, "
            f"{summary.PENALTY_FACTOR:g}x the slowest solve measured in the group); then "
            "exp(mean(log(t + s))) - s with the shift s = 10% of the median successful time; divided by "
            "the best solver's value, so 1.0 = best. Cases a solver could not take (unsupported) are not "
            "in its mean: compare the 'cases it ran' column before comparing means."
        ),
        Paragraph(
            "Performance profile (Dolan and Moré): per case some solver succeeded on, solver time / "
            "fastest successful time; the profile at tau is the share of those cases with a ratio at most "
            "tau (a failure or an unsupported case never counts)."
        ),
    ]
