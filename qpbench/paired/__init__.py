"""Paired measurement for the regression check: a baseline build of commit REF and the candidate
(the environment running the check), measured interleaved on the same cases in one job.

* :mod:`qpbench.paired.build` makes the baseline build (``git archive`` of REF plus a virtual
  environment that borrows every other package from the running one);
* :mod:`qpbench.paired.server` runs inside each build and times single solves on request;
* :mod:`qpbench.paired.session` drives both servers in ABBA order and writes one results table
  per build.

The verdict is the regression check's (:mod:`qpbench.regression`), from those two tables. See
``docs/regression.md``.
"""
