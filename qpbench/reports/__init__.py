"""Timing reports: a results directory -> Markdown report with PNG plots, and one HTML file.

``build_report(results_dir, out_dir=None, reference=None)`` reads only the results table and its
environment record (never a solver) and returns the path of ``report.md``.
"""

from qpbench.reports.build import build_report

__all__ = ["build_report"]
