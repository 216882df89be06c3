"""Loader of the Maros–Mészáros convex QP test set (``.mat`` files, see ``problems/maros_meszaros.md``).

Each file holds min 1/2 x'Px + q'x + r s.t. l <= Ax <= u with +-1e20 for infinite bounds. On
load, rows with u - l < 1e-10 become equalities A_i z = l_i; every other finite side becomes an
inequality row (u side: A_i z <= u_i, l side: -A_i z <= -l_i), as qpbenchmark converts them.
The files list variable bounds as identity rows of A; they are kept as ordinary rows (so a
variable bound can appear next to an equal general row: duplicated rows are harmless here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from qpbench.problem import QPBatch, as_batch, check_device

ENV_VAR = "QPBENCH_MAROS_MESZAROS_DIR"
INFINITY = 1e20
# Bounds at or beyond this magnitude are infinite (a margin below the 1e20 marker).
INFINITE_ABOVE = 0.9 * INFINITY
EQUALITY_GAP = 1e-10
OPTCOSTS_FILE = "OPTCOSTS.json"


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder of ``.mat`` files: ``path`` if given, else ``$QPBENCH_MAROS_MESZAROS_DIR``."""
    if path is None:
        env = os.environ.get(ENV_VAR)
        if not env:
            raise FileNotFoundError(
                f"no Maros–Mészáros data folder: pass data_dir or set the environment variable {ENV_VAR} "
                "to the folder holding the .mat files"
            )
        path, source = env, f"${ENV_VAR}"
    else:
        source = "data_dir"
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{source} = {str(folder)!r} is not a folder")
    return folder


# The public ``data_dir`` name is also the argument name of the functions below.
_resolve_dir = data_dir


def _problem_path(folder: Path, name: str) -> Path:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty problem name, got {name!r}")
    path = folder / f"{name}.mat"
    if not path.is_file():
        raise ValueError(f"name = {name!r}: no file {path.name} in {folder}")
    return path


@lru_cache(maxsize=512)
def _read(path: str, mtime: float) -> dict[str, np.ndarray]:
    """Dense float64 arrays of one file (cached per path and modification time)."""
    import scipy.io

    raw = scipy.io.loadmat(path)

    def dense(x) -> np.ndarray:  # the files store P and A sparse, but accept dense ones too
        return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)

    P, A = dense(raw["P"]), dense(raw["A"])
    data = {
        "P": 0.5 * (P + P.T),
        "q": np.asarray(raw["q"], dtype=np.float64).reshape(-1),
        "r": np.asarray(raw["r"], dtype=np.float64).reshape(-1)[:1],
        "A": A,
        "l": np.asarray(raw["l"], dtype=np.float64).reshape(-1),
        "u": np.asarray(raw["u"], dtype=np.float64).reshape(-1),
    }
    n, m = P.shape[0], A.shape[0]
    if data["q"].shape != (n,) or A.shape[1] != n or data["l"].shape != (m,) or data["u"].shape != (m,):
        raise ValueError(f"{path}: inconsistent sizes (P {P.shape}, A {A.shape})")
    return data


@lru_cache(maxsize=512)
def _is_convex_file(path: str, mtime: float) -> bool:
    """Whether P is PSD up to about the tolerance of QPBatch's own check (sqrt(eps) relative):
    a Cholesky factorization of P + sqrt(eps) * max|P| * I exists. Much cheaper than the
    eigenvalues, which matters for the 1000-variable problems."""
    P = torch.from_numpy(_read(path, mtime)["P"])
    shift = float(torch.finfo(torch.float64).eps) ** 0.5 * max(1.0, float(P.abs().max()))
    info = torch.linalg.cholesky_ex(P + shift * torch.eye(P.shape[0], dtype=P.dtype)).info
    return int(info) == 0


def _is_convex(folder: Path, name: str) -> bool:
    path = _problem_path(folder, name)
    return _is_convex_file(str(path), path.stat().st_mtime)


def _read_problem(folder: Path, name: str) -> dict[str, np.ndarray]:
    path = _problem_path(folder, name)
    return _read(str(path), path.stat().st_mtime)


def convert(P: np.ndarray, q: np.ndarray, A: np.ndarray, l: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
    """l <= Ax <= u  ->  G z <= h, A_eq z = b (dense float64 arrays Q, p, G, h, A, b)."""
    lower_finite = l > -INFINITE_ABOVE
    upper_finite = u < INFINITE_ABOVE
    equality = lower_finite & upper_finite & (u - l < EQUALITY_GAP)
    upper_rows = upper_finite & ~equality
    lower_rows = lower_finite & ~equality
    G = np.vstack([A[upper_rows], -A[lower_rows]])
    h = np.concatenate([u[upper_rows], -l[lower_rows]])
    return {"Q": P, "p": q, "G": G, "h": h, "A": A[equality], "b": l[equality]}


@lru_cache(maxsize=8)
def _optcosts(path: str, mtime: float) -> dict[str, float]:
    with open(path, encoding="utf-8") as handle:
        return {str(k): float(v) for k, v in json.load(handle).items()}


def reference_objectives(data_dir: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Published optimal objectives (including the offset r) by problem name; {} without the file."""
    path = _resolve_dir(data_dir) / OPTCOSTS_FILE
    if not path.is_file():
        return {}
    return _optcosts(str(path), path.stat().st_mtime)


def problem_sizes(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[int, int, int]:
    """(n, m, k) of a problem after conversion (m inequality rows, k equality rows)."""
    raw = _read_problem(_resolve_dir(data_dir), name)
    qp = convert(raw["P"], raw["q"], raw["A"], raw["l"], raw["u"])
    return raw["P"].shape[0], qp["G"].shape[0], qp["A"].shape[0]


def list_problems(
    data_dir: str | os.PathLike[str] | None = None,
    max_n: int | None = None,
    max_rows: int | None = None,
    convex_only: bool = False,
) -> list[str]:
    """Problem names in the folder, sorted; ``max_n`` keeps problems with at most that many
    variables, ``max_rows`` those with at most that many constraint rows after conversion
    (inequality plus equality rows: the rows a dense solver has to handle); ``convex_only``
    drops problems whose Q is not PSD."""
    for arg, value in (("max_n", max_n), ("max_rows", max_rows)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{arg} must be a non-negative int or None, got {value!r}")
    folder = _resolve_dir(data_dir)
    names = sorted(path.stem for path in folder.glob("*.mat"))
    if max_n is None and max_rows is None and not convex_only:
        return names
    kept = []
    for name in names:
        n, m, k = problem_sizes(name, folder)
        if (max_n is not None and n > max_n) or (max_rows is not None and m + k > max_rows):
            continue
        if convex_only and not _is_convex(folder, name):
            continue
        kept.append(name)
    return kept


def load(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> QPBatch:
    """One problem as a dense QPBatch of batch size 1.

    ``meta``: problem, objective_offset (r: add it to 1/2 z'Qz + p'z to compare with published
    values), reference_objective (from OPTCOSTS.json, r included; None when not listed),
    n, original_m (rows l <= Ax <= u in the file), m, k and convex.

    Q's positive semidefiniteness is checked once per file by the loader (``convex``), so the
    QPBatch runs only its basic checks. A problem whose Q is not PSD (VALUES: smallest
    eigenvalue about -1.3e-5) still loads, with ``convex`` False, so that a suite can list it
    and report it rather than crash. Select convex problems with
    ``list_problems(convex_only=True)``.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    device = check_device(device)
    folder = _resolve_dir(data_dir)
    raw = _read_problem(folder, name)
    qp = convert(raw["P"], raw["q"], raw["A"], raw["l"], raw["u"])
    n = raw["P"].shape[0]
    meta = {
        "problem": name,
        "objective_offset": float(raw["r"][0]) if raw["r"].size else 0.0,
        "reference_objective": reference_objectives(folder).get(name),
        "n": n,
        "original_m": raw["A"].shape[0],
        "m": qp["G"].shape[0],
        "k": qp["A"].shape[0],
        "convex": _is_convex(folder, name),
    }
    tensors = {
        key: torch.from_numpy(np.ascontiguousarray(value)).unsqueeze(0).to(device=device, dtype=dtype)
        for key, value in qp.items()
    }
    return as_batch(**tensors, check="basic", name=name, meta=meta)  # a block with no rows is left out


def _pad(batch: QPBatch, n: int, m: int, k: int) -> QPBatch:
    """Embed one problem in sizes (n, m, k) without changing its solution or objective.

    Extra variables w get cost 1/2 w'w and no linear term, so they are 0 at the optimum;
    each extra equality row pins one extra variable (w_j = 0), which keeps A of full row
    rank; extra inequality rows read 0'z <= 1, always slack with multiplier 0.
    """
    n0, m0, k0 = batch.n, batch.m, batch.k
    like = {"dtype": batch.dtype, "device": batch.device}
    Q = torch.zeros(1, n, n, **like)
    Q[:, :n0, :n0] = batch.Q
    Q[:, n0:, n0:] = torch.eye(n - n0, **like)
    p = torch.zeros(1, n, **like)
    p[:, :n0] = batch.p
    G = torch.zeros(1, m, n, **like)
    G[:, :m0, :n0] = batch.expanded("G")
    h = torch.ones(1, m, **like)
    h[:, :m0] = batch.expanded("h")
    A = torch.zeros(1, k, n, **like)
    A[:, :k0, :n0] = batch.expanded("A")
    extra = torch.arange(k - k0, device=batch.device)
    A[:, k0 + extra, n0 + extra] = 1.0
    b = torch.zeros(1, k, **like)
    b[:, :k0] = batch.expanded("b")
    return QPBatch(Q, p, G, h, A, b, name=batch.name, meta=batch.meta, check="none")


def load_group(
    names: Sequence[str],
    data_dir: str | os.PathLike[str] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    pad: bool = False,
) -> list[QPBatch]:
    """Load several problems as batches.

    ``pad=False``: one batch per distinct (n, m, k), problems in the order given (problems of
    equal sizes share a batch, nothing is changed).
    ``pad=True``: a single batch. Every problem is embedded in common sizes (see
    :func:`_pad`): k = the largest k, m = the largest m, and n = the largest n_i + (k - k_i),
    so each problem has enough padding variables for its padding equalities. The first n_i
    entries of z (m_i of lam, k_i of nu) are the original problem's solution; the objective is
    unchanged.

    Each batch's meta lists per problem: problems, sizes (n, m, k as loaded),
    objective_offsets and reference_objectives.
    """
    if isinstance(names, str) or not names:
        raise ValueError("names must be a non-empty sequence of problem names")
    folder = _resolve_dir(data_dir)
    loaded = [load(name, folder, dtype, device) for name in names]
    if pad:
        k = max(b.k for b in loaded)
        m = max(b.m for b in loaded)
        n = max(b.n + k - b.k for b in loaded)
        groups = [[_pad(b, n, m, k) for b in loaded]]
        originals = [loaded]
    else:
        by_size: dict[tuple[int, int, int], list[QPBatch]] = {}
        for b in loaded:
            by_size.setdefault((b.n, b.m, b.k), []).append(b)
        groups = originals = list(by_size.values())
    batches = []
    for group, source in zip(groups, originals, strict=True):
        meta = {
            "problems": [b.meta["problem"] for b in source],
            "sizes": [(b.n, b.m, b.k) for b in source],
            "objective_offsets": [b.meta["objective_offset"] for b in source],
            "reference_objectives": [b.meta["reference_objective"] for b in source],
            "padded": pad,
        }
        joined = QPBatch.concat(group, name="+".join(meta["problems"]))
        batches.append(replace(joined, meta=meta))
    return batches
