"""Optimizing trained ReLU networks through batches of LPs (Perakis & Tsiourvas 2022).

See ``docs/relu.md``. Public entry points:

* :func:`from_sequential`, :func:`random_network`, :func:`train_network` - networks
* :func:`region_lps`, :func:`lifted_region_lps`, :func:`unique_patterns` - the LP family
* :func:`sampling_search` - the sampling LP algorithm (``enhanced=True`` for neighbour search)
* :func:`solve_mip` - the big-M MIP baseline (HiGHS or Gurobi), optionally warm-started
"""

from qpbench.relu.lp_solvers import LPBatchResult, solve_lps
from qpbench.relu.mip import MipResult, build_mip, solve_mip
from qpbench.relu.network import ReluNet, from_sequential, random_network, train_network
from qpbench.relu.regions import lifted_region_lps, region_lps, sample_box, unique_patterns
from qpbench.relu.sampling import SearchResult, sampling_search

__all__ = [
    "LPBatchResult",
    "MipResult",
    "ReluNet",
    "SearchResult",
    "build_mip",
    "from_sequential",
    "lifted_region_lps",
    "random_network",
    "region_lps",
    "sample_box",
    "sampling_search",
    "solve_lps",
    "solve_mip",
    "train_network",
    "unique_patterns",
]
