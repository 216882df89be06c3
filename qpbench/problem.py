"""The batched dense QP model.

    minimize_z   1/2 z'Qz + p'z
    subject to   G z <= h     (m rows, m may be 0)
                 A z  = b     (k rows, k may be 0)

Each of the six tensors is either batched (leading dimension B) or shared by the whole batch
(no leading dimension), as qpth allows. A batch with no batched tensor has B = 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

_FLOAT_DTYPES = (torch.float32, torch.float64)
# (name, rank when shared, which sizes the trailing dims are)
_LAYOUT: dict[str, tuple[int, tuple[str, ...]]] = {
    "Q": (2, ("n", "n")),
    "p": (1, ("n",)),
    "G": (2, ("m", "n")),
    "h": (1, ("m",)),
    "A": (2, ("k", "n")),
    "b": (1, ("k",)),
}
NAMES: tuple[str, ...] = tuple(_LAYOUT)


def check_device(device: torch.device | str) -> torch.device:
    """``device`` as a torch.device that can hold tensors here; ValueError naming it otherwise (torch
    itself raises RuntimeError for an unknown name and AssertionError for CUDA on a CPU-only build)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: CUDA is not available here (torch.cuda.is_available() is False)")
    return parsed


# Upper bounds at or above this magnitude mean "no bound" (the Maros-Meszaros convention).
INFINITE_BOUND = 1e20


def absent_rows(h: Tensor) -> Tensor:
    """Rows of G z <= h without a bound (h = +inf or >= INFINITE_BOUND): they constrain nothing."""
    return h >= INFINITE_BOUND


def _check_upper_bounds(h: Tensor) -> None:
    """h may hold +inf (a row that is absent) but no NaN and no -inf (a row nothing satisfies)."""
    if not h.numel():
        return
    bad = torch.isnan(h) | (h <= -INFINITE_BOUND)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        value = float(h[index])
        where = f"h[{', '.join(map(str, index))}]"
        if value != value:
            raise ValueError(f"{where} is NaN; give a bound, or +inf for a row without one")
        raise ValueError(
            f"{where} = {value:g}: an upper bound of -inf (or <= -{INFINITE_BOUND:g}) can never be met; "
            "fix the row or drop it (+inf means a row without bound)"
        )


def _check_semidefinite(Q: Tensor, tol: float) -> None:
    """Q is positive semidefinite up to tol * |Q|: a Cholesky factorization of Q + tol |Q|_F I
    (a third of the flops of an eigendecomposition, which only a failing Q gets, for the message)."""
    scale = torch.linalg.matrix_norm(Q).clamp_min(1.0)
    shifted = Q + (tol * scale).unsqueeze(-1).unsqueeze(-1) * torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
    _, info = torch.linalg.cholesky_ex(shifted)
    if bool((info != 0).any()):
        bad = torch.nonzero((info != 0).reshape(-1)).squeeze(1)
        lowest = torch.linalg.eigvalsh(Q.reshape(-1, *Q.shape[-2:])[bad])[..., 0].min()
        where = f" (problems {bad.tolist()[:10]})" if Q.dim() == 3 else ""
        raise ValueError(
            f"Q is not positive semidefinite{where}: smallest eigenvalue {float(lowest):.3g}; the problem is not convex"
        )


def _tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance for symmetry and PSD checks: sqrt(eps) of the dtype."""
    return float(torch.finfo(dtype).eps) ** 0.5


@dataclass(frozen=True)
class DataProducts:
    """A candidate's products with the data, each (B, .): Qz, Gz (rows without bound included),
    Az, G'lam (lam of rows without bound taken as 0) and A'nu."""

    Qz: Tensor
    Gz: Tensor
    Az: Tensor
    Gt_lam: Tensor
    At_nu: Tensor


@dataclass(frozen=True, eq=False)
class QPBatch:
    """A batch of dense QPs; validated on construction (see :meth:`validate`).

    ``check`` selects how much validation runs: ``"full"`` (default: shapes, dtypes, devices,
    finiteness, symmetry and positive semidefiniteness of Q), ``"basic"`` (all but the
    eigenvalue check, for hot paths such as a network layer), or ``"none"``.
    """

    Q: Tensor
    p: Tensor
    G: Tensor | None = None
    h: Tensor | None = None
    A: Tensor | None = None
    b: Tensor | None = None
    name: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    check: str = "full"

    def __post_init__(self) -> None:
        if self.check not in ("full", "basic", "none"):
            raise ValueError(f"check must be 'full', 'basic' or 'none', got {self.check!r}")
        if not isinstance(self.Q, Tensor):
            raise ValueError(f"Q must be a torch.Tensor, got {type(self.Q).__name__}")
        if not isinstance(self.p, Tensor):
            raise ValueError(f"p must be a torch.Tensor, got {type(self.p).__name__}")
        # Fill absent constraint blocks with empty tensors so every later step is uniform.
        n = self.Q.shape[-1] if self.Q.dim() >= 1 else 0
        like = {"dtype": self.Q.dtype, "device": self.Q.device}
        for mat, vec in (("G", "h"), ("A", "b")):
            M, v = getattr(self, mat), getattr(self, vec)
            if (M is None) != (v is None):
                raise ValueError(f"{mat} and {vec} must be given together (one of them is None)")
            if M is None:
                object.__setattr__(self, mat, torch.zeros(0, n, **like))
                object.__setattr__(self, vec, torch.zeros(0, **like))
        if self.check != "none":
            self.validate(psd=self.check == "full")

    # ----------------------------------------------------------------- validation
    def validate(self, psd: bool = True) -> None:
        """Raise ``ValueError`` naming the argument at fault. Runs before any solve."""
        tensors = self.tensors()
        for name, t in tensors.items():
            if not isinstance(t, Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dtype not in _FLOAT_DTYPES:
                raise ValueError(f"{name} has dtype {t.dtype}; expected torch.float32 or torch.float64")
        dtypes = {t.dtype for t in tensors.values()}
        if len(dtypes) > 1:
            found = ", ".join(f"{k}={t.dtype}" for k, t in tensors.items())
            raise ValueError(f"mixed dtypes ({found}); convert all six tensors to one dtype")
        devices = {t.device for t in tensors.values()}
        if len(devices) > 1:
            found = ", ".join(f"{k}={t.device}" for k, t in tensors.items())
            raise ValueError(f"mixed devices ({found}); move all six tensors to one device")

        sizes: dict[str, int] = {}
        batch: dict[str, int] = {}
        for name, (rank, dims) in _LAYOUT.items():
            t = tensors[name]
            if t.dim() not in (rank, rank + 1):
                raise ValueError(
                    f"{name} must have shape {dims} (shared) or (B, {', '.join(dims)}) (batched); "
                    f"got shape {tuple(t.shape)}"
                )
            if t.dim() == rank + 1:
                batch[name] = t.shape[0]
            for dim_name, size in zip(dims, t.shape[t.dim() - rank :], strict=True):
                if dim_name in sizes and sizes[dim_name] != size:
                    raise ValueError(
                        f"{name} has {dim_name} = {size} but an earlier argument implies "
                        f"{dim_name} = {sizes[dim_name]} (shape {tuple(t.shape)})"
                    )
                sizes.setdefault(dim_name, size)
        if sizes["n"] == 0:
            raise ValueError("Q must have at least one variable (n = 0)")
        if len(set(batch.values())) > 1:
            found = ", ".join(f"{k}: B={v}" for k, v in batch.items())
            raise ValueError(f"mismatched batch sizes ({found})")
        if any(v == 0 for v in batch.values()):
            raise ValueError("batch size must be at least 1 (a batched tensor has leading dim 0)")

        for name, t in tensors.items():
            if name == "h":
                _check_upper_bounds(t)
            elif t.numel() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or Inf; only h may hold +inf (a row without bound)")

        Q = self.Q
        scale = Q.abs().amax(dim=(-2, -1)).clamp_min(1.0) if Q.numel() else None
        tol = _tolerance(Q.dtype)
        asym = (Q - Q.transpose(-1, -2)).abs().amax(dim=(-2, -1))
        if bool((asym > tol * scale).any()):
            raise ValueError(
                f"Q is not symmetric (max |Q - Q^T| = {float(asym.max()):.3g}); pass (Q + Q^T)/2"
            )
        if psd:
            _check_semidefinite(Q, tol)

    # ----------------------------------------------------------------- shape facts
    def tensors(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in NAMES}

    def is_batched(self, name: str) -> bool:
        return getattr(self, name).dim() == _LAYOUT[name][0] + 1

    @property
    def batch_size(self) -> int:
        for name in NAMES:
            if self.is_batched(name):
                return getattr(self, name).shape[0]
        return 1

    @property
    def n(self) -> int:
        return self.Q.shape[-1]

    @property
    def m(self) -> int:
        return self.G.shape[-2]

    @property
    def k(self) -> int:
        return self.A.shape[-2]

    @property
    def dtype(self) -> torch.dtype:
        return self.Q.dtype

    @property
    def device(self) -> torch.device:
        return self.Q.device

    def __len__(self) -> int:
        return self.batch_size

    def __repr__(self) -> str:
        shared = [k for k in NAMES if not self.is_batched(k)]
        return (
            f"QPBatch(name={self.name!r}, B={self.batch_size}, n={self.n}, m={self.m}, k={self.k}, "
            f"dtype={self.dtype}, device={self.device}, shared={shared})"
        )

    # ----------------------------------------------------------------- conversion
    def expanded(self, name: str) -> Tensor:
        """Tensor ``name`` with a batch dimension (a view for shared tensors; no copy)."""
        t = getattr(self, name)
        if self.is_batched(name):
            return t
        return t.unsqueeze(0).expand(self.batch_size, *t.shape)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> QPBatch:
        """A copy on another device and/or dtype (validation is not repeated)."""
        moved = {k: t.to(device=device, dtype=dtype) for k, t in self.tensors().items()}
        return replace(self, **moved, check="none")

    def __getitem__(self, index: int | slice | Tensor | list[int]) -> QPBatch:
        """Select problems of the batch; shared tensors stay shared. An int keeps a batch of 1."""
        if isinstance(index, int):
            if not -self.batch_size <= index < self.batch_size:
                raise IndexError(f"index {index} out of range for batch of {self.batch_size}")
            index = slice(index, index + 1 if index != -1 else None)
        picked = {k: (t[index] if self.is_batched(k) else t) for k, t in self.tensors().items()}
        # A batch has at least one problem (construction refuses B = 0; the solver needs one).
        if any(t.shape[0] == 0 for k, t in picked.items() if self.is_batched(k)):
            raise IndexError(f"index {index!r} selects no problem of a batch of {self.batch_size}")
        if not any(self.is_batched(k) for k in NAMES):
            # Nothing batched: the only problem is problem 0; indexing must still be in range.
            probe = torch.arange(1)[index]
            if probe.numel() != 1:
                raise IndexError("this batch holds a single (fully shared) problem")
        return replace(self, **picked, check="none")

    def batched(self) -> QPBatch:
        """A copy where every tensor carries the batch dimension (contiguous)."""
        return replace(self, **{k: self.expanded(k).contiguous() for k in NAMES}, check="none")

    @staticmethod
    def concat(batches: list[QPBatch], name: str = "") -> QPBatch:
        """Stack batches of identical sizes (n, m, k) into one batch."""
        if not batches:
            raise ValueError("batches must not be empty")
        first = batches[0]
        for i, bt in enumerate(batches):
            if (bt.n, bt.m, bt.k) != (first.n, first.m, first.k):
                raise ValueError(
                    f"batches[{i}] has sizes (n, m, k) = {(bt.n, bt.m, bt.k)}, "
                    f"expected {(first.n, first.m, first.k)}"
                )
        joined = {k: torch.cat([bt.expanded(k) for bt in batches]) for k in NAMES}
        return QPBatch(**joined, name=name or first.name, meta=dict(first.meta), check="none")

    # ----------------------------------------------------------------- evaluation
    def objective(self, z: Tensor) -> Tensor:
        """1/2 z'Qz + p'z for each problem; z has shape (B, n). Returns (B,)."""
        Qz = torch.matmul(self.Q, z.unsqueeze(-1)).squeeze(-1)  # broadcasts a shared Q
        return 0.5 * (z * Qz).sum(-1) + (self.expanded("p") * z).sum(-1)

    def residuals(self, z: Tensor, lam: Tensor | None = None, nu: Tensor | None = None) -> dict[str, Tensor]:
        """KKT residuals (infinity norms, absolute) of a candidate (z, lambda, nu), each (B,).

        primal = max(|Az - b|_inf, |[Gz - h]_+|_inf)
        dual   = |Qz + p + A'nu + G'lam|_inf
        gap    = |z'Qz + p'z + b'nu + h'lam|
        Missing multipliers count as zero (so dual and gap then measure only z).
        """
        return self.residuals_and_products(z, lam, nu)[0]

    def residuals_and_products(
        self, z: Tensor, lam: Tensor | None = None, nu: Tensor | None = None
    ) -> tuple[dict[str, Tensor], DataProducts]:
        """``residuals``, and the products with the data they were made of (for a caller that
        needs them too, such as the scales of a relative tolerance: no second pass over the data)."""
        B = self.batch_size
        z = z.to(self.dtype)
        if z.shape != (B, self.n):
            raise ValueError(f"z must have shape ({B}, {self.n}), got {tuple(z.shape)}")
        lam = torch.zeros(B, self.m, dtype=self.dtype, device=z.device) if lam is None else lam.to(self.dtype)
        nu = torch.zeros(B, self.k, dtype=self.dtype, device=z.device) if nu is None else nu.to(self.dtype)
        Q, p = self.expanded("Q"), self.expanded("p")
        G, h = self.expanded("G"), self.expanded("h")
        A, b = self.expanded("A"), self.expanded("b")

        def mv(M: Tensor, v: Tensor) -> Tensor:
            return torch.bmm(M, v.unsqueeze(-1)).squeeze(-1)

        def mtv(M: Tensor, v: Tensor) -> Tensor:
            return torch.bmm(M.transpose(1, 2), v.unsqueeze(-1)).squeeze(-1)

        zero = torch.zeros(B, dtype=self.dtype, device=z.device)
        # A row without bound (h = +inf) is never violated and contributes nothing to the gap.
        absent = absent_rows(h)
        lam = lam.masked_fill(absent, 0.0)
        h = h.masked_fill(absent, 0.0)
        Gz, Az, Qz = mv(G, z), mv(A, z), mv(Q, z)
        Gt_lam, At_nu = mtv(G, lam), mtv(A, nu)
        ineq = (Gz - h).masked_fill(absent, float("-inf")).clamp_min(0).amax(-1) if self.m else zero
        eq = (Az - b).abs().amax(-1) if self.k else zero
        stat = Qz + p
        if self.m:
            stat = stat + Gt_lam
        if self.k:
            stat = stat + At_nu
        gap = (z * Qz).sum(-1) + (p * z).sum(-1) + (b * nu).sum(-1) + (h * lam).sum(-1)
        residuals = {"primal": torch.maximum(ineq, eq), "dual": stat.abs().amax(-1), "gap": gap.abs()}
        return residuals, DataProducts(Qz=Qz, Gz=Gz, Az=Az, Gt_lam=Gt_lam, At_nu=At_nu)


def as_batch(
    Q: Tensor,
    p: Tensor,
    G: Tensor | None = None,
    h: Tensor | None = None,
    A: Tensor | None = None,
    b: Tensor | None = None,
    check: str = "full",
    *,
    name: str = "",
    meta: Mapping[str, Any] | None = None,
) -> QPBatch:
    """Build a :class:`QPBatch` from qpth-style arguments (empty tensors mean 'no rows')."""
    def none_if_empty(t: Tensor | None) -> Tensor | None:
        return None if t is None or t.numel() == 0 else t

    G, h, A, b = (none_if_empty(t) for t in (G, h, A, b))
    return QPBatch(Q=Q, p=p, G=G, h=h, A=A, b=b, name=name, meta={} if meta is None else meta, check=check)
