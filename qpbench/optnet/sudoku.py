"""4x4 Sudoku from puzzle/solution pairs alone (OptNet paper, section 5.2).

A board is a (4, 4) integer array of digits 1..4, 0 marking a blank. Its one-hot encoding is
(4, 4, 4) with an all-zero digit vector for a blank. Everything here is for box size 2 (4x4
boards) but written in terms of ``box`` so that the formulas read like the rules.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor, nn

from qpbench.optnet.qp_layer import QPCallable

BOX = 2
SIZE = BOX * BOX  # digits, rows, columns, boxes
N_VARS = SIZE**3  # one-hot variables of a board
# Rank of the true rule matrix (see rule_matrix): the OptNet model learns this many rows.
N_EQUALITIES = 40


# ------------------------------------------------------------------------------ boards
def base_solution(box: int = BOX) -> np.ndarray:
    """A valid board: row r is the digit sequence shifted by box*(r % box) + r // box."""
    size = box * box
    r, c = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return (box * (r % box) + r // box + c) % size + 1


def is_valid_solution(board: np.ndarray, box: int = BOX) -> bool:
    """Every row, column and box holds each digit exactly once."""
    size = box * box
    digits = set(range(1, size + 1))
    board = np.asarray(board)
    if board.shape != (size, size):
        return False
    boxes = board.reshape(box, box, box, box).transpose(0, 2, 1, 3).reshape(size, size)
    return all(set(line) == digits for group in (board, board.T, boxes) for line in group)


def random_solution(
    rng: np.random.Generator, box: int = BOX, start: np.ndarray | None = None
) -> np.ndarray:
    """Apply validity-preserving symmetries to ``start`` (default: the base solution): digit
    relabelling, row swaps within bands, band swaps, column swaps within stacks, stack swaps and
    transposition. From the base solution alone these reach 192 of the 288 4x4 grids; starting
    from a random valid grid reaches all of them."""
    size = box * box
    board = base_solution(box) if start is None else np.asarray(start)
    board = rng.permutation(size)[board - 1] + 1  # relabel digits

    def line_order() -> np.ndarray:
        bands = rng.permutation(box)
        return np.concatenate([band * box + rng.permutation(box) for band in bands])

    board = board[line_order()][:, line_order()]
    if rng.random() < 0.5:
        board = board.T
    return np.ascontiguousarray(board)


def all_solutions(box: int = BOX) -> np.ndarray:
    """Every valid board (288 for 4x4), by filling rows with permutations that fit so far."""
    size = box * box
    perms = [np.array(p) + 1 for p in itertools.permutations(range(size))]
    boards: list[np.ndarray] = []

    def extend(rows: list[np.ndarray]) -> None:
        if len(rows) == size:
            board = np.stack(rows)
            if is_valid_solution(board, box):
                boards.append(board)
            return
        for perm in perms:
            if all((perm != row).all() for row in rows):  # columns stay distinct
                extend([*rows, perm])

    extend([])
    return np.stack(boards)


def make_puzzle(
    solution: np.ndarray, n_blanks: int, rng: np.random.Generator, solutions: np.ndarray
) -> np.ndarray:
    """Blank up to ``n_blanks`` cells of ``solution`` in random order, skipping any cell whose
    removal would let another board in ``solutions`` fit the givens (unique answer)."""
    puzzle = solution.copy()
    for flat in rng.permutation(solution.size):
        if (puzzle == 0).sum() >= n_blanks:
            break
        trial = puzzle.copy()
        trial.flat[flat] = 0
        given = trial > 0
        fits = (solutions[:, given] == trial[given]).all(axis=1).sum()
        if fits == 1:
            puzzle = trial
    return puzzle


def generate(
    count: int, seed: int, min_blanks: int = 6, max_blanks: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (puzzle, solution) pairs, each puzzle with a unique solution."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if not 0 <= min_blanks <= max_blanks <= SIZE * SIZE:
        raise ValueError(f"need 0 <= min_blanks <= max_blanks <= {SIZE * SIZE}")
    rng = np.random.default_rng(seed)
    solutions = all_solutions()
    puzzles, answers = [], []
    for _ in range(count):
        answer = random_solution(rng, start=solutions[rng.integers(len(solutions))])
        puzzles.append(make_puzzle(answer, int(rng.integers(min_blanks, max_blanks + 1)), rng, solutions))
        answers.append(answer)
    return np.stack(puzzles), np.stack(answers)


def one_hot(boards: np.ndarray | Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """(B, 4, 4) digits (0 = blank) -> (B, 4, 4, 4) one-hot; a blank is all zeros."""
    digits = torch.as_tensor(np.asarray(boards), dtype=torch.int64)
    encoded = torch.nn.functional.one_hot(digits, SIZE + 1)[..., 1:]
    return encoded.to(dtype)


def rule_matrix(box: int = BOX) -> np.ndarray:
    """The true rules as equalities on the one-hot variables x[r, c, d]: each cell holds one
    digit, and each row, column and box holds each digit once. Rows: 4 * size**2."""
    size = box * box
    rows = []
    for i, j in itertools.product(range(size), range(size)):
        cell = np.zeros((size, size, size))
        cell[i, j, :] = 1
        row = np.zeros((size, size, size))
        row[i, :, j] = 1  # row i holds digit j
        col = np.zeros((size, size, size))
        col[:, i, j] = 1  # column i holds digit j
        blk = np.zeros((size, size, size))
        br, bc = divmod(i, box)
        blk[br * box : (br + 1) * box, bc * box : (bc + 1) * box, j] = 1  # box i holds digit j
        rows += [cell, row, col, blk]
    return np.stack([r.reshape(-1) for r in rows])


# ------------------------------------------------------------------------------ models
class OptNetSudoku(nn.Module):
    """The paper's model: z = argmin 0.1/2 |z|^2 - puzzle'z  s.t.  A z = b, z >= 0, with A
    learned. b = A exp(log_z0) keeps the equalities feasible for every A (z0 > 0 satisfies
    them and the bounds)."""

    def __init__(
        self, qp: QPCallable, n_equalities: int = N_EQUALITIES, q_penalty: float = 0.1, seed: int = 0
    ) -> None:
        super().__init__()
        if n_equalities < 1:
            raise ValueError(f"n_equalities must be >= 1, got {n_equalities}")
        gen = torch.Generator().manual_seed(seed)
        self.qp = qp
        self.A = nn.Parameter(torch.rand(n_equalities, N_VARS, generator=gen, dtype=torch.float64))
        self.log_z0 = nn.Parameter(torch.zeros(N_VARS, dtype=torch.float64))
        self.register_buffer("Q", q_penalty * torch.eye(N_VARS, dtype=torch.float64))
        self.register_buffer("G", -torch.eye(N_VARS, dtype=torch.float64))
        self.register_buffer("h", torch.zeros(N_VARS, dtype=torch.float64))

    def forward(self, puzzles: Tensor) -> Tensor:
        p = -puzzles.reshape(puzzles.shape[0], -1).to(self.A.dtype)
        b = self.A @ self.log_z0.exp()
        z = self.qp(self.Q, p, self.G, self.h, self.A, b)
        return z.reshape(puzzles.shape).to(puzzles.dtype)


class FCSudoku(nn.Module):
    """The paper's baseline: a fully-connected ReLU network from puzzle to solution one-hot."""

    def __init__(self, hidden: tuple[int, ...] = (512, 512), seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        sizes = (N_VARS, *hidden)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b, dtype=torch.float64), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], N_VARS, dtype=torch.float64))
        self.net = nn.Sequential(*layers)

    def forward(self, puzzles: Tensor) -> Tensor:
        flat = puzzles.reshape(puzzles.shape[0], -1).to(torch.float64)
        return self.net(flat).reshape(puzzles.shape).to(puzzles.dtype)


# ------------------------------------------------------------------------------ metrics
def accuracy(predicted: Tensor, puzzles: Tensor, solutions: Tensor) -> dict[str, float]:
    """Boards fully solved, cells correct, and blank cells correct; a cell's digit is the
    argmax of its predicted one-hot vector."""
    guess = predicted.argmax(dim=-1)
    truth = solutions.argmax(dim=-1)
    blank = puzzles.sum(dim=-1) == 0
    right = guess == truth
    return {
        "board_acc": float(right.flatten(1).all(dim=1).double().mean()),
        "cell_acc": float(right.double().mean()),
        "blank_cell_acc": float(right[blank].double().mean()) if blank.any() else 1.0,
    }
