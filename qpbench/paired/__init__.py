"""Interleaved measurement for the regression check: solvers of one or two builds timed in turn,
solve by solve, on the same cases in one job.

* :mod:`qpbench.paired.build` makes the baseline build of commit REF (``git archive`` of REF plus
  a virtual environment that borrows every other package from the running one);
* :mod:`qpbench.paired.server` runs inside each build and times solves on request;
* :mod:`qpbench.paired.session` drives the servers in ABBA order and writes one results table
  per build: two builds with the judged solver for the paired check, or one build with the
  judged solver and its reference solvers for the unpaired one (and for the committed baseline).

The verdicts are the regression check's (:mod:`qpbench.regression`), from those tables. See
``docs/regression.md``.
"""
