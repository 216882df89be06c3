"""Dense, batched model predictive control QPs after the OSQP benchmark suite's ``control``
class (osqp/osqp_benchmarks ``problem_classes/control.py``), with n the total variable count."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import torch

from qpbench.generators._common import cpu_generator, eye, finish, ones, rand, randn, zeros
from qpbench.generators._registry import register
from qpbench.problem import QPBatch

PREFERRED_HORIZON = 10


@lru_cache(maxsize=256)
def mpc_sizes(n: int) -> tuple[int, int, int]:
    """(states nx, inputs nu, horizon T) with (T + 1) nx + T nu == n exactly.

    The original fixes T = 10 and nu = nx / 2, which reaches only some n. Here every n >= 3 is
    reachable: among horizons 5..15 (or, when none fits, any horizon) and all nx, pick the
    split whose nu/nx is closest to 1/2, with a small penalty for moving T away from 10.
    """
    for horizons in (range(5, 16), range(1, n)):
        # min keeps the first of equal scores: the smallest T, then the smallest nx.
        best = min(_splits(n, horizons), key=lambda split: split[0], default=None)
        if best is not None:
            return best[1], best[2], best[3]
    raise ValueError(f"n = {n} is too small for the control family (needs n >= 3)")


def _splits(n: int, horizons: range) -> Iterator[tuple[float, int, int, int]]:
    """(score, nx, nu, T) for every nx, nu >= 1 with (T + 1) nx + T nu == n, T in horizons."""
    for T in horizons:
        for nx in range(1, n // (T + 1) + 1):
            rest = n - (T + 1) * nx
            if rest >= T and rest % T == 0:
                nu = rest // T
                yield abs(nu / nx - 0.5) + 0.05 * abs(T - PREFERRED_HORIZON), nx, nu, T


def control_rows(n: int) -> tuple[int, int]:
    nx, _, T = mpc_sizes(n)
    return 2 * n, (T + 1) * nx


@register(
    "control",
    description="Linear MPC over a horizon T: quadratic state and input costs, dynamics as "
    "equalities, state and input bounds as inequalities.",
    sizes=control_rows,
    ignores=("m", "k"),
    min_n=3,
)
def control(B: int, n: int, m: int, k: int, seed: int, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
    """Variables z = [x_0 .. x_T, u_0 .. u_{T-1}] with (nx, nu, T) from :func:`mpc_sizes`.

    Dynamics A_dyn = I + 0.1 N(0,1), rescaled when needed so that ||A_dyn||_inf <= 0.99
    (the original instead clips eigenvalues, which does not bound every state component);
    B_dyn ~ N(0,1). Costs: Q_x = diag(U[0,1) kept with probability 0.7), R = 0.1 I and a
    terminal Q_N = Q_x + I (the original solves a Riccati equation for Q_N; a per-problem DARE
    would dominate batched generation); Q = 2 blockdiag(Q_x .. Q_x, Q_N, R .. R), p = 0.
    Equalities: x_0 = x_init and x_{t+1} = A_dyn x_t + B_dyn u_t (k = (T + 1) nx).
    Inequalities: bounds |x_t| <= x_max with x_max ~ 1 + U[0,1), |u_t| <= u_max with
    u_max ~ U[0,1) (m = 2n). x_init ~ U(-0.5, 0.5).
    Feasible: with u = 0, ||x_t||_inf <= 0.99^t ||x_init||_inf <= 0.5 < x_max.
    Bounded: every variable is boxed (and Q is PSD).
    """
    nx, nu, T = mpc_sizes(n)
    gen = cpu_generator(seed)
    dyn = eye(nx) + 0.1 * randn(gen, B, nx, nx)
    inf_norm = dyn.abs().sum(-1).amax(-1)
    dyn = dyn * (0.99 / inf_norm).clamp(max=1.0).view(B, 1, 1)
    inputs = randn(gen, B, nx, nu)
    state_cost = rand(gen, B, nx) * (rand(gen, B, nx) < 0.7)
    x_max = 1.0 + rand(gen, B, nx)
    u_max = rand(gen, B, nu)
    x_init = rand(gen, B, nx) - 0.5

    diag = torch.cat(
        [state_cost.repeat(1, T), state_cost + 1.0, 0.1 * ones(B, T * nu)], dim=-1
    )
    Q = torch.diag_embed(2 * diag)
    p = zeros(B, n)

    # Row block t of the dynamics: x_{t+1} - A x_t - B u_t = 0; block 0 pins x_0.
    n_states = (T + 1) * nx
    A = zeros(B, n_states, n)
    A[:, :, :n_states] = eye(n_states)
    for t in range(T):
        rows = slice((t + 1) * nx, (t + 2) * nx)
        A[:, rows, t * nx : (t + 1) * nx] = -dyn
        A[:, rows, n_states + t * nu : n_states + (t + 1) * nu] = -inputs
    b = torch.cat([x_init, zeros(B, T * nx)], dim=-1)

    G = torch.cat([eye(n), -eye(n)])
    upper = torch.cat([x_max.repeat(1, T + 1), u_max.repeat(1, T)], dim=-1)
    h = torch.cat([upper, upper], dim=-1)
    return finish("control", seed, "solved", dtype, device, Q, p, G, h, A, b, states=nx, inputs=nu, horizon=T)
