"""Regression check: compare two results tables and decide whether the solver got worse.

Reads only results tables (``qpbench.results``), never a solver. Three kinds of evidence:

* **accuracy and robustness** (machine-independent, compared directly): outcome, success and
  correct rates, status counts, residuals, objective and gradient errors, iteration counts;
* **work counts** (load-independent, compared exactly): iterations, factorizations, solves and
  data passes the solver counted;
* **speed**, with three verdicts (pass, regression, inconclusive) against a promised detectable
  slowdown: from paired ratios when the two tables were measured interleaved in one job
  (``qpbench.paired``), else from ratios to references measured in the same run.

    comparison = compare_tables(baseline_df, current_df, CompareOptions())
    comparison.verdict            # Verdict.PASS / REGRESSION / INCONCLUSIVE
    print(comparison.render())

See ``docs/regression.md`` for the rules and the measurements behind every default.
"""

from qpbench.regression.check import AGGREGATE, CaseDiff, CaseSpeed, Comparison, compare_tables
from qpbench.regression.decision import PAIRED_PROMISE, UNPAIRED_PROMISE, Estimate, Promise, Verdict
from qpbench.regression.environment import environment_notes
from qpbench.regression.options import AUTO, CALIBRATION, CompareOptions
from qpbench.regression.rows import KEY_COLUMNS, Finding

__all__ = [
    "AGGREGATE",
    "AUTO",
    "CALIBRATION",
    "KEY_COLUMNS",
    "PAIRED_PROMISE",
    "UNPAIRED_PROMISE",
    "CaseDiff",
    "CaseSpeed",
    "CompareOptions",
    "Comparison",
    "Estimate",
    "Finding",
    "Promise",
    "Verdict",
    "compare_tables",
    "environment_notes",
]
