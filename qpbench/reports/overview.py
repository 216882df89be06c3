"""The report's opening lines, the summary sections (success rates, failure-penalized times,
performance profiles, residuals per suite and tolerance level), the definitions, and the closing
sections on what was run and on the machine and versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qpbench.reports import formatting as fmt
from qpbench.reports import plots, summary
from qpbench.reports.context import ReportContext
from qpbench.reports.document import Block, Heading, Image, Paragraph, table
from qpbench.reports.environment import dask_worker_rows, environment_rows, solver_option_rows, suite_groups
from qpbench.reports.machines import MachineGroup

PROFILE_TAUS = (1.0, 2.0, 10.0)
LICENCE_WORD = "licence"  # an adapter's version names a restricted licence, e.g. "(size-limited licence)"


def intro(ctx: ReportContext, groups: Sequence[MachineGroup] = ()) -> list[Block]:
    """Two or three lines: what ran where, restricted licences, and what this machine could not run."""
    frame, env = ctx.frame, ctx.environment
    runs = ", ".join(r for r in dict.fromkeys(frame["run_id"]) if r) or fmt.DASH
    threads = ", ".join(str(int(t)) for t in sorted(set(frame["torch_threads"].dropna()))) or fmt.DASH
    ran = frame[frame["outcome"].isin(summary.ATTEMPTED)]
    where = f"on {len(groups)} machines (see Machines)" if len(groups) > 1 else f"on {_machine_text(env)}"
    lines = [
        Paragraph(
            f"Run {runs} {where}, torch threads {threads}; "
            f"{ran['solver'].nunique()} solvers ran on {ran['case_id'].nunique()} cases. Times are seconds, "
            f"residuals absolute infinity norms; speed-ups are against `{ctx.reference or fmt.DASH}`. "
            "Definitions, what was run, and the machine and versions are at the end."
        )
    ]
    restricted = licence_notes(frame)
    if restricted:
        lines.append(Paragraph("Restricted licence: " + "; ".join(restricted) + "."))
    idle = summary.unrunnable_cases(frame)
    if idle:
        parts = [f"{i['cases']} cases ({i['devices'] or 'any device'}): {i['reason']}" for i in idle]
        lines.append(Paragraph("Cases no solver ran, left out of every comparison: " + "; ".join(parts) + "."))
    return lines


def _machine_text(env: Mapping[str, Any]) -> str:
    """'Intel Xeon (2 cores, no GPU)' from the run record."""
    cpu_record = env.get("cpu") if isinstance(env.get("cpu"), Mapping) else {}
    cpu = env.get("cpu_model") or cpu_record.get("model") or fmt.DASH
    cores = env.get("cpu_cores") or cpu_record.get("cores")
    gpus = env.get("gpus") or []
    gpu = ", ".join(str(g.get("name", "?")) for g in gpus if isinstance(g, Mapping)) or "no GPU"
    return f"{cpu} ({cores or '?'} cores, {gpu})"


def licence_notes(frame: Any) -> list[str]:
    """'gurobi 13.0.3 (size-limited licence)' for every solver whose version names a licence."""
    notes = []
    for solver, version in frame[["solver", "solver_version"]].drop_duplicates().itertuples(index=False):
        if LICENCE_WORD in version:
            notes.append(f"{solver} {version}")
    return notes


def summary_sections(ctx: ReportContext) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Summary per suite and tolerance level")]
    for suite, tolerance, rows in summary.suite_tolerance_groups(ctx.frame):
        eps = rows["tolerance_eps"].dropna()
        eps_value = float(eps.iloc[0]) if not eps.empty else None
        label = f"suite {suite}, tolerance {tolerance}" + (f" ({eps_value:g})" if eps_value else "")
        blocks.append(Heading(3, label.capitalize()))
        blocks.append(_success_table(rows, ctx, label))
        fastest = _geomean_blocks(rows, ctx, label, blocks)
        ratios, n_profile = summary.performance_profile(rows, ctx.solvers, summary.penalty_time(rows, ctx.time_limit))
        blocks.append(_profile_table(ratios, n_profile, label))
        blocks.append(_residual_table(rows, ctx, label))
        title = f"Performance profile, {label}"
        path = ctx.plot_path(f"profile-{suite}-{tolerance}")
        blocks.append(Image(plots.performance_profile(ratios, n_profile, ctx.style, title, path, fastest), title))
        title = f"Accuracy vs time, {label}"
        path = ctx.plot_path(f"accuracy-{suite}-{tolerance}")
        blocks.append(Image(plots.accuracy_vs_time(rows, eps_value, ctx.style, title, path, fastest), title))
    return blocks


def _success_table(rows: Any, ctx: ReportContext, label: str) -> Block:
    success = summary.success_table(rows, ctx.solvers)
    cases = summary.compared(rows)["case_id"].nunique() if not rows.empty else 0
    headers = ("solver", "cases run", "not run", "problems", "succeeded", "failed", "success rate",
               "success where run", "correct rate", "multipliers")  # fmt: skip
    return table(
        f"Success rate — {label} (every solver over the same {cases} cases)",
        headers,
        [
            (
                r["solver"],
                r["cases_run"],
                r["not_run"],
                fmt.integer(r["problems"]),
                fmt.integer(r["succeeded"]),
                fmt.integer(r["failed"]),
                fmt.percent(r["success_rate"]),
                fmt.percent(r["success_rate_run"]),
                fmt.percent(r["correct_rate"]),
                r["multipliers"] or fmt.DASH,
            )
            for r in success
        ],
    )


def _geomean_blocks(rows: Any, ctx: ReportContext, label: str, blocks: list[Block]) -> str | None:
    """Append the failure-penalized geomean table; return the fastest solver by it (or None)."""
    geo, shift, penalty = summary.penalized_geomeans(rows, ctx.time_limit)
    source = "time limit" if ctx.time_limit is not None else f"{summary.PENALTY_FACTOR:g}x slowest solve"
    title = (
        f"Failure-penalized shifted geometric mean of solve time — {label} "
        f"(1.0 = best; shift {shift:.2e} s; a failed or not-run case counts {penalty:.2e} s, {source})"
    )
    order = {s: i for i, s in enumerate(ctx.solvers)}
    geo = geo.assign(_order=geo["solver"].map(order)).sort_values("_order")
    body = [
        (r.solver, fmt.ratio(r.relative), fmt.sci(r.geomean), fmt.sci(r.min), fmt.sci(r.median), fmt.sci(r.max),
         f"{int(r.cases_run)} of {int(r.cases)}")
        for r in geo.itertuples()
    ]  # fmt: skip
    headers = ("solver", "relative (1.0 = best)", "shifted geomean [s]", "min [s]", "median [s]", "max [s]",
               "cases run")  # fmt: skip
    blocks.append(table(title, headers, body))
    if geo.empty:
        blocks.append(Paragraph("No solver succeeded on any case here, so there is no ranking by time."))
        return None
    return str(geo.sort_values("geomean").iloc[0]["solver"])


def _profile_table(ratios: Any, n_profile: int, label: str) -> Block:
    at = {tau: summary.profile_at(ratios, tau) for tau in PROFILE_TAUS}
    solved = summary.solved_share(ratios)
    headers = ("solver", *(f"within {tau:g}x of fastest" for tau in PROFILE_TAUS), "solved at all")
    body = [(s, *(fmt.percent(at[tau][s]) for tau in PROFILE_TAUS), fmt.percent(solved[s])) for s in ratios.columns]
    return table(f"Performance profile — {label} ({n_profile} cases solved by some solver)", headers, body)


def _residual_table(rows: Any, ctx: ReportContext, label: str) -> Block:
    columns = ("primal_res_max", "dual_res_max", "gap_max", "primal_res_median", "dual_res_median", "gap_median",
               "obj_rel_err_max")  # fmt: skip
    headers = ("solver", "rows", "primal max", "dual max", "gap max", "primal median", "dual median",
               "gap median", "objective rel. error max")  # fmt: skip
    found = summary.residual_table(rows, ctx.solvers)
    body = [(r["solver"], r["rows"], *(fmt.sci(r[c]) for c in columns)) for r in found]
    return table(f"Residuals over rows that ran — {label}", headers, body)


def definitions_section() -> list[Block]:
    return [
        Heading(2, "Definitions"),
        Paragraph(
            "Attempted: outcome ok, failed, timeout, crashed or oom. Not run: unsupported (the solver "
            "cannot take the case), unavailable (its package or licence is missing), or skipped (the "
            "suite did not select it for the case). A problem succeeded when the solver reported it "
            "solved and its primal and dual residuals and duality gap are all below the tolerance (for "
            "batches built to be infeasible or unbounded: when the solver reported the intended status); "
            "a solver that returns z only is judged with multipliers recovered at its z (multipliers = "
            "recovered; docs/solvers.md). A failed problem is counted under the test it failed: status "
            "(not reported solved), primal, dual or gap (reported solved, residual above the tolerance). "
            "A case (row) succeeded when every problem in its batch did. Correct rate = share of the "
            "problems run where the solver's own 'solved' flag agrees with the residual check."
        ),
        Paragraph(
            "Same cases for every solver: within a suite and tolerance level, every solver is compared on "
            "every case some solver ran. A case a solver did not run stays in its denominators: success "
            "rate = problems succeeded / all problems ('success where run' divides by the problems it "
            "ran), its time counts the penalty, its performance ratio is infinite. Cases no solver ran "
            "(what this machine cannot run) are left out of every comparison."
        ),
        Paragraph(
            "Failure-penalized shifted geometric mean (qpbench.metrics): over those cases, the batch's "
            "median solve time if the case succeeded, else the penalty (the run's time limit from "
            "environment.json; when none is recorded, "
            f"{summary.PENALTY_FACTOR:g}x the slowest solve measured in the group); then "
            "exp(mean(log(t + s))) - s with the shift s = 10% of the median successful time; divided by "
            "the best solver's value, so 1.0 = best."
        ),
        Paragraph(
            "Performance profile (Dolan and Moré): per case some solver succeeded on, solver time / "
            "fastest successful time; the profile at tau is the share of those cases with a ratio at most "
            "tau (a failure or a case not run never counts). In the plots the in-house solver (black) and "
            "the fastest solver of the plot are drawn strong and named in bold; the others are quieter."
        ),
    ]


def contents_section(ctx: ReportContext) -> list[Block]:
    frame = ctx.frame

    def values(col: str) -> str:
        items = [v for v in dict.fromkeys(frame[col]) if v != ""]
        return ", ".join(items) or fmt.DASH

    def numbers(col: str) -> str:
        items = sorted({int(v) for v in frame[col].dropna()})
        return ", ".join(str(v) for v in items) or fmt.DASH

    sizes = sorted({(int(r.n), int(r.m), int(r.k)) for r in frame[["n", "m", "k"]].dropna().itertuples()})
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
    outcomes = frame["outcome"].value_counts()
    counts = ", ".join(f"{name} {int(outcomes.get(name, 0))}" for name in outcomes.index.sort_values())
    blocks: list[Block] = [
        Heading(2, "What was run"),
        Paragraph(f"Rows: {len(frame)} ({counts or 'none'})."),
        table("Run contents", ("item", "value"), rows),
    ]
    headers, groups = suite_groups(ctx.environment)
    if groups:
        blocks.append(table("Suite case groups (environment.json)", headers, groups))
    return blocks


def environment_section(ctx: ReportContext) -> list[Block]:
    rows = environment_rows(ctx.environment)
    blocks: list[Block] = [Heading(2, "Machine and versions")]
    if not rows:
        blocks.append(Paragraph("No environment.json was found beside the results table."))
    blocks.append(table("Machine and versions (environment.json)", ("key", "value"), rows))
    versions = []
    for solver in ctx.solvers:
        found = [v for v in dict.fromkeys(ctx.frame.loc[ctx.frame["solver"] == solver, "solver_version"]) if v]
        versions.append((solver, ", ".join(found) or fmt.DASH))
    blocks.append(table("Solver versions", ("solver", "version"), versions))
    workers = dask_worker_rows(ctx.environment)
    if workers:
        headers = ("address", "host", "machine", "threads", "resources", "thread variables")
        blocks.append(table("Dask workers that measured this run (environment.json, dask.workers)", headers, workers))
    options = solver_option_rows(ctx.environment, ctx.solvers)
    if options:
        blocks.append(table("Solver options each solver ran with (environment.json, solver_options)",
                            ("solver", "tolerance", "time limit [s]", "options"), options))  # fmt: skip
    return blocks
