"""Loaders of external QP test sets into :class:`qpbench.problem.QPBatch` (``maros_meszaros``)."""
