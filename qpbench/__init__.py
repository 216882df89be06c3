"""qpbench: benchmarking suite for batched dense QPs, and a batched differentiable PDIPM solver."""

from qpbench.problem import QPBatch, as_batch
from qpbench.status import Status

__version__ = "0.1.0"

__all__ = ["QPBatch", "Status", "__version__", "as_batch"]
