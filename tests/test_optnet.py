"""OptNet experiments: data generators, models that learn, TV baseline, command smoke test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qpbench.optnet import denoising, sudoku
from qpbench.optnet.qp_layer import make_qp_function, resolve_solver
from qpbench.optnet.training import batch_losses

torch.set_num_threads(1)
SOLVERS = ["qpth", pytest.param("inhouse", marks=pytest.mark.skipif(
    resolve_solver("auto") != "inhouse", reason="qpbench.layer has not landed yet"))]
SHORT = 30  # signal length in the denoising tests: the paper's 100 makes each QP 7x costlier


# ------------------------------------------------------------------------------ sudoku data
def test_generated_solutions_are_valid_and_puzzles_match_them():
    puzzles, solutions = sudoku.generate(200, seed=1, min_blanks=6, max_blanks=10)
    assert puzzles.shape == solutions.shape == (200, 4, 4)
    for puzzle, solution in zip(puzzles, solutions, strict=True):
        assert sudoku.is_valid_solution(solution)
        for lines in (solution, solution.T, solution.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)):
            assert all(sorted(line) == [1, 2, 3, 4] for line in lines)
        given = puzzle > 0
        assert (puzzle[given] == solution[given]).all()
        assert 6 <= (~given).sum() <= 10
    assert len({s.tobytes() for s in solutions}) > 100  # the symmetries really vary the boards


def test_symmetries_keep_boards_valid_and_generation_reaches_every_grid():
    rng = np.random.default_rng(0)
    assert all(sudoku.is_valid_solution(sudoku.random_solution(rng)) for _ in range(100))
    _, solutions = sudoku.generate(3000, seed=11, min_blanks=0, max_blanks=0)
    assert len({s.tobytes() for s in solutions}) == 288


def test_puzzles_have_a_unique_solution():
    everything = sudoku.all_solutions()
    assert len(everything) == 288  # the known count of 4x4 Sudoku grids
    puzzles, solutions = sudoku.generate(50, seed=2, min_blanks=10, max_blanks=12)
    for puzzle, solution in zip(puzzles, solutions, strict=True):
        given = puzzle > 0
        fits = everything[(everything[:, given] == puzzle[given]).all(axis=1)]
        assert len(fits) == 1 and (fits[0] == solution).all()


def test_validity_check_rejects_broken_boards():
    board = sudoku.base_solution()
    assert sudoku.is_valid_solution(board)
    broken = board.copy()
    broken[0, [0, 1]] = broken[0, [1, 0]]  # row stays a permutation, columns break
    assert not sudoku.is_valid_solution(broken)


def test_one_hot_solutions_satisfy_the_true_rules_of_rank_40():
    rules = sudoku.rule_matrix()
    assert np.linalg.matrix_rank(rules) == sudoku.N_EQUALITIES
    x = sudoku.one_hot(sudoku.all_solutions()).reshape(288, -1).numpy()
    np.testing.assert_allclose(rules @ x.T, 1.0)
    blank = sudoku.one_hot(np.zeros((1, 4, 4), dtype=int))
    assert blank.shape == (1, 4, 4, 4) and blank.sum() == 0


def test_accuracy_counts_boards_and_cells():
    _, solutions = sudoku.generate(4, seed=3)
    puzzles = solutions.copy()
    puzzles[:, 0, 0] = 0
    truth = sudoku.one_hot(solutions)
    guess = truth.clone()
    guess[0, 0, 0] = guess[0, 0, 0].roll(1)  # one wrong (blank) cell on board 0
    acc = sudoku.accuracy(guess, sudoku.one_hot(puzzles), truth)
    assert acc["board_acc"] == pytest.approx(3 / 4)
    assert acc["cell_acc"] == pytest.approx(63 / 64)
    assert acc["blank_cell_acc"] == pytest.approx(3 / 4)


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="count"):
        sudoku.generate(0, seed=0)
    with pytest.raises(ValueError, match="min_blanks"):
        sudoku.generate(3, seed=0, min_blanks=9, max_blanks=5)


# ------------------------------------------------------------------------------ sudoku models
@pytest.mark.parametrize("solver", SOLVERS)
def test_optnet_sudoku_output_is_feasible_and_training_reduces_loss(solver):
    puzzles, solutions = sudoku.generate(20, seed=4)
    x, y = sudoku.one_hot(puzzles), sudoku.one_hot(solutions)
    model = sudoku.OptNetSudoku(make_qp_function(solver))
    with torch.no_grad():
        z = model(x[:5]).reshape(5, -1)
        b = model.A @ model.log_z0.exp()
    assert z.min() >= -1e-6  # z >= 0
    torch.testing.assert_close(z @ model.A.T, b.expand(5, -1), atol=1e-5, rtol=1e-5)  # A z = b
    losses = batch_losses(model, x, y, steps=5, lr=0.1, batch_size=20)
    assert losses[-1] < 0.8 * losses[0]


def test_fc_sudoku_training_reduces_loss():
    puzzles, solutions = sudoku.generate(30, seed=5)
    x, y = sudoku.one_hot(puzzles), sudoku.one_hot(solutions)
    losses = batch_losses(sudoku.FCSudoku(hidden=(64,)), x, y, steps=20, lr=1e-2, batch_size=30)
    assert losses[-1] < 0.5 * losses[0]


# ------------------------------------------------------------------------------ denoising
def test_signals_are_piecewise_constant_in_range():
    noisy, clean = denoising.piecewise_constant(40, seed=6, max_segments=9)
    assert noisy.shape == clean.shape == (40, 100)
    jumps = (clean.diff(dim=1) != 0).sum(dim=1)
    assert jumps.max() <= 8 and jumps.min() >= 0
    assert clean.min() >= 10 and clean.max() <= 99 and (clean == clean.round()).all()
    assert 8 < (noisy - clean).std() < 12  # sigma = 10


def test_tv_qp_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    noisy, _ = denoising.piecewise_constant(2, seed=7, length=SHORT)
    z = denoising.tv_denoise(make_qp_function("qpth"), noisy, lam=15.0)
    x = cp.Variable(SHORT)
    y = noisy[1].numpy()
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + 15.0 * cp.norm1(cp.diff(x)))).solve(
        solver=cp.CLARABEL
    )
    np.testing.assert_allclose(z[1].numpy(), x.value, atol=0.05)


@pytest.mark.parametrize("solver", SOLVERS)
def test_tv_baseline_beats_the_noisy_input(solver):
    noisy, clean = denoising.piecewise_constant(30, seed=8, length=SHORT, max_segments=3)
    qp = make_qp_function(solver)
    lam, grid = denoising.best_tv_lambda(qp, noisy, clean, [5.0, 20.0])
    noisy_mse = float(((noisy - clean) ** 2).mean())
    assert grid[lam] < 0.5 * noisy_mse
    assert set(grid) == {5.0, 20.0}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("start", ["random", "tv"])
def test_optnet_denoiser_training_reduces_loss(solver, start):
    noisy, clean = denoising.piecewise_constant(20, seed=9, length=SHORT, max_segments=3)
    qp = make_qp_function(solver)
    if start == "random":
        model, lr = denoising.OptNetDenoiser.random(qp, length=SHORT, seed=1), 3e-2
    else:  # under-smoothed start: learning must raise the weight of the differences
        model, lr = denoising.OptNetDenoiser.from_tv(qp, lam=2.0, length=SHORT), 1e-2
    losses = batch_losses(model, noisy, clean, steps=4, lr=lr, batch_size=20)
    # From TV the start is already good: a small but clear gain; from random D a large one.
    assert losses[-1] < (0.995 if start == "tv" else 0.95) * losses[0]


def test_fc_denoiser_training_reduces_loss():
    noisy, clean = denoising.piecewise_constant(50, seed=10)
    losses = batch_losses(denoising.FCDenoiser(hidden=64), noisy, clean, steps=30, lr=1e-2, batch_size=50)
    assert losses[-1] < 0.5 * losses[0]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="solver"):
        make_qp_function("cplex")
    with pytest.raises(ValueError, match="count"):
        denoising.piecewise_constant(0, seed=0)
    with pytest.raises(ValueError, match="grid"):
        denoising.best_tv_lambda(make_qp_function("qpth"), torch.zeros(1, 5), torch.zeros(1, 5), [])


# ------------------------------------------------------------------------------ command
def test_command_writes_table_json_and_plot(tmp_path):
    from qpbench.cli import main

    code = main(["optnet", "sudoku", "--quick", "--epochs", "1", "--train-size", "20", "--test-size", "10",
                 "--out", str(tmp_path)])
    assert code == 0
    record = json.loads((tmp_path / "sudoku.json").read_text())
    assert set(record["final"]) == {"fc", "optnet"}
    assert record["solver"] == resolve_solver("auto") and record["config"]["epochs"] == 1
    assert len(record["curves"][1]["test_loss"]) == 2  # before training and after epoch 1
    assert (tmp_path / "sudoku_curves.png").stat().st_size > 1000
    table = (tmp_path / "results.md").read_text()
    assert "OptNet (learned A)" in table and "Sudoku" in table
