"""KKT forms of the regularized Newton system, behind one interface (``KKTSystem``)."""

from qpbench.solver.kkt.base import Direction, Factorization, KKTSystem, SharedRHS, bmtv, bmv
from qpbench.solver.kkt.dual import DualKKT, dual_form_suitable
from qpbench.solver.kkt.reduced import ReducedKKT

__all__ = [
    "Direction",
    "DualKKT",
    "Factorization",
    "KKTSystem",
    "ReducedKKT",
    "SharedRHS",
    "bmtv",
    "bmv",
    "dual_form_suitable",
]
