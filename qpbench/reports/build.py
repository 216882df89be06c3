"""Assemble the report: results table + environment record -> report.md, report.html, plots/*.png.

Reads only :func:`qpbench.results.load_table` and :func:`qpbench.results.load_environment`; never
imports a solver (DESIGN.md, "Architecture").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qpbench.reports import formatting as fmt
from qpbench.reports import plots, summary
from qpbench.reports.document import Block, Heading, Image, Paragraph, table, to_html, to_markdown
from qpbench.reports.environment import environment_rows, suite_groups
from qpbench.results import ROW_OK, load_environment, load_table

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"
DEFAULT_REFERENCE = "inhouse"
PROFILE_TAUS = (1.0, 2.0, 10.0)


def build_report(results_dir: Path | str, out_dir: Path | str | None = None, reference: str | None = None) -> Path:
    """Write report.md, report.html and plots/ for a results directory; return report.md's path.

    ``reference`` is the solver speed-ups are measured against (default: "inhouse" when it is in
    the table, else the first solver in the table).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results_dir {results_dir} is not a directory")
    frame = summary.prepare(load_table(results_dir))
    environment = load_environment(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    plot_dir = out / PLOTS_DIR
    plot_dir.mkdir(parents=True, exist_ok=True)
    for stale in plot_dir.glob("*.png"):  # never link a plot left over from an older report
        stale.unlink()

    solvers = summary.ordered_solvers(frame)
    reference = _choose_reference(solvers, reference)
    context = _Context(frame, environment, solvers, reference, out, plots.SolverStyle(tuple(solvers)))
    title = f"qpbench report: {', '.join(_suite_names(frame, environment)) or 'no suite'}"

    blocks: list[Block] = [Heading(1, title), *_intro(context)]
    blocks += _environment_section(context)
    blocks += _contents_section(context)
    if frame.empty:
        blocks.append(Paragraph("The results table has no rows: nothing was measured."))
    else:
        blocks += _summary_sections(context)
        blocks += _batch_sections(context)
        blocks += _test_set_sections(context)
        blocks += _gradient_section(context)
        blocks += _failure_section(context)
    blocks += _definitions_section()

    report = out / REPORT_MD
    report.write_text(to_markdown(blocks, out), encoding="utf-8")
    (out / REPORT_HTML).write_text(to_html(blocks, title), encoding="utf-8")
    return report


class _Context:
    """What every section needs; plot file names are made unique here."""

    def __init__(
        self,
        frame: pd.DataFrame,
        environment: Mapping[str, Any],
        solvers: list[str],
        reference: str | None,
        out: Path,
        style: plots.SolverStyle,
    ) -> None:
        self.frame = frame
        self.environment = environment
        self.solvers = solvers
        self.reference = reference
        self.out = out
        self.style = style
        self.time_limit = summary.time_limit_from(environment)
        self._used: set[str] = set()

    def plot_path(self, label: str) -> Path:
        name = fmt.slug(label)
        candidate, i = name, 2
        while candidate in self._used:
            candidate, i = f"{name}-{i}", i + 1
        self._used.add(candidate)
        return self.out / PLOTS_DIR / f"{candidate}.png"


def _choose_reference(solvers: list[str], reference: str | None) -> str | None:
    if reference is not None:
        if reference not in solvers:
            known = ", ".join(solvers) or "none"
            raise ValueError(f"reference solver {reference!r} is not in the results table (solvers: {known})")
        return reference
    if DEFAULT_REFERENCE in solvers:
        return DEFAULT_REFERENCE
    return solvers[0] if solvers else None


def _suite_names(frame: pd.DataFrame, environment: Mapping[str, Any]) -> list[str]:
    names = list(dict.fromkeys(frame["suite"]))
    if not names:
        suite = environment.get("suite")
        if isinstance(suite, Mapping):
            suite = suite.get("name")
        if suite:
            names = [str(suite)]
    return names


def _intro(ctx: _Context) -> list[Block]:
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


def _environment_section(ctx: _Context) -> list[Block]:
    rows = environment_rows(ctx.environment)
    blocks: list[Block] = [Heading(2, "Machine and versions")]
    if not rows:
        blocks.append(Paragraph("No environment.json was found beside the results table."))
    blocks.append(table("Machine and versions (environment.json)", ("key", "value"), rows))
    headers, groups = suite_groups(ctx.environment)
    if groups:
        blocks.append(table("Suite case groups (environment.json)", headers, groups))
    return blocks


def _contents_section(ctx: _Context) -> list[Block]:
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


def _summary_sections(ctx: _Context) -> list[Block]:
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
        headers = ("solver", *(f"within {tau:g}x of fastest" for tau in PROFILE_TAUS), "solved at all")
        profile_rows = [
            (
                s,
                *(fmt.percent(at[tau][s]) for tau in PROFILE_TAUS),
                fmt.percent(summary.solved_share(ratios)[s]),
            )
            for s in ratios.columns
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

        profile_title = f"Performance profile, {label}"
        blocks.append(
            Image(
                plots.performance_profile(
                    ratios, n_profile, ctx.style, profile_title, ctx.plot_path(f"profile-{suite}-{tolerance}")
                ),
                profile_title,
            )
        )
        scatter_title = f"Accuracy vs time, {label}"
        blocks.append(
            Image(
                plots.accuracy_vs_time(
                    rows, eps_value, ctx.style, scatter_title, ctx.plot_path(f"accuracy-{suite}-{tolerance}")
                ),
                scatter_title,
            )
        )
    return blocks


_BATCH_KEYS = ["suite", "family", "n", "m", "k", "dtype", "device", "tolerance"]


def _batch_sections(ctx: _Context) -> list[Block]:
    """Per generated family, size, dtype/device and tolerance: times against batch size."""
    generated = ctx.frame[(ctx.frame["problem"] == "") & ctx.frame["outcome"].isin(summary.ATTEMPTED)]
    blocks: list[Block] = [Heading(2, "Time vs batch size")]
    if generated.empty:
        blocks.append(Paragraph("No generated batches were run (test-set problems appear in the profiles above)."))
        return blocks
    groups = sorted(
        generated.groupby(_BATCH_KEYS, sort=True, dropna=False),
        key=lambda item: (*item[0][:-1], summary.TOLERANCE_ORDER.get(item[0][-1], 9), item[0][-1]),
    )
    for (suite, family, n, m, k, dtype, device, tolerance), rows in groups:
        label = f"{family} {fmt.sizes(n, m, k)}, {dtype} on {device}, tolerance {tolerance}, suite {suite}"
        blocks.append(Heading(3, label))
        blocks.append(table(f"Batch times — {label}", *_batch_table(rows, ctx)))
        measured = rows[rows["outcome"] == ROW_OK]
        sizes = f"n{fmt.integer(n)}-m{fmt.integer(m)}-k{fmt.integer(k)}"
        slug = f"{suite}-{family}-{sizes}-{dtype}-{device}-{tolerance}"
        short = f"{family} {fmt.sizes(n, m, k)}, {dtype}/{device}, tol {tolerance}"
        for kind, title, per_problem in (
            ("time", f"Batch solve time vs B\n{short}", False),
            ("per-problem", f"Time per problem vs B\n{short}", True),
        ):
            path = plots.time_vs_batch(measured, ctx.style, title, ctx.plot_path(f"{kind}-{slug}"), per_problem)
            blocks.append(Image(path, title.replace("\n", ", ")))
        others = set(measured["solver"]) - {ctx.reference}
        if ctx.reference not in set(measured["solver"]) or not others:
            blocks.append(Paragraph(f"No speed-up plot: `{ctx.reference}` and no other solver both ran here."))
        else:
            title = f"Speed-up over {ctx.reference} vs B\n{short}"
            path = plots.speedup_vs_batch(measured, ctx.reference, ctx.style, title, ctx.plot_path(f"speedup-{slug}"))
            blocks.append(Image(path, title.replace("\n", ", ")))
    return blocks


def _test_set_sections(ctx: _Context) -> list[Block]:
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
        key=lambda item: (*item[0][:-1], summary.TOLERANCE_ORDER.get(item[0][-1], 9), item[0][-1]),
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


def _batch_table(rows: pd.DataFrame, ctx: _Context) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
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


def _gradient_section(ctx: _Context) -> list[Block]:
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


def _failure_section(ctx: _Context) -> list[Block]:
    failed = summary.failure_rows(ctx.frame)
    order = {s: i for i, s in enumerate(ctx.solvers)}
    failed = failed.assign(
        _order=failed["solver"].map(order),
        _tol=failed["tolerance"].map(lambda t: summary.TOLERANCE_ORDER.get(t, 9)),
        _worst=failed[["primal_res_max", "dual_res_max", "gap_max"]].max(axis=1, skipna=True),
    ).sort_values(["_order", "suite", "family", "problem", "n", "m", "k", "batch_size", "dtype", "device", "_tol"])
    rows = []
    for _, r in failed.iterrows():
        problem = r["problem"] or r["family"]
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
                summary.status_summary(r) or fmt.DASH,
                fmt.sci(r["_worst"]),
                _short(r["error"]) or fmt.DASH,
            )
        )
    not_run = summary.not_run_summary(ctx.frame)
    return [
        Heading(2, "Failures"),
        Paragraph(
            "Every attempted row where not all problems of the batch succeeded: the outcome of the row, the "
            "per-problem statuses the solver reported, the worst of its residuals (max of primal, dual, gap; "
            "a 'solved' status with a residual above the tolerance is a wrong answer), and the error raised."
        ),
        table(
            f"Failed or partly failed rows ({len(rows)})",
            (
                "solver",
                "suite",
                "problem",
                "B",
                "dtype/device",
                "tolerance",
                "outcome",
                "succeeded",
                "statuses",
                "worst residual",
                "error",
            ),
            rows,
        ),
        table(
            f"Not run: unsupported or unavailable ({sum(r['rows'] for r in not_run)} rows)",
            ("solver", "outcome", "reason", "rows"),
            [(r["solver"], r["outcome"], _short(r["reason"]) or fmt.DASH, r["rows"]) for r in not_run],
        ),
    ]


def _short(text: str, limit: int = 160) -> str:
    """First line of an error, shortened: a full traceback belongs in the results table."""
    line = text.strip().splitlines()[-1] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _definitions_section() -> list[Block]:
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
