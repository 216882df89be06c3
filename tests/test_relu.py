"""ReLU-network optimization through region LPs (qpbench.relu): correctness on small networks."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from qpbench.relu import (
    from_sequential,
    lifted_region_lps,
    random_network,
    region_lps,
    sample_box,
    sampling_search,
    solve_lps,
    solve_mip,
    unique_patterns,
)
from qpbench.relu.mip import GUROBI_SIZE_LIMIT, build_mip, lp_tightened_bounds
from qpbench.relu.network import interval_bounds, parse_architecture
from qpbench.relu.regions import affine_maps, cheaper_form
from qpbench.relu.sampling import boundary_neurons, neighbour_patterns

LO, HI = -torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)


@pytest.fixture(scope="module")
def net():
    return random_network((2, 12, 10, 1), seed=3)


@pytest.fixture(scope="module")
def samples():
    return sample_box(LO, HI, 64, torch.Generator().manual_seed(0))


def lp_value(batch, z):
    """Network value the LP claims at z: -objective + offset (pure LP, no proximal term)."""
    return -batch.objective(z) + batch.meta["offset"]


# ----------------------------------------------------------------------------- networks
def test_from_sequential_matches_torch_forward():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    net = from_sequential(model)
    x = torch.randn(7, 3, dtype=torch.float64)
    assert torch.allclose(net.forward(x), model(x)[:, 0], atol=1e-12)
    assert net.architecture == "3-5-4-1"


@pytest.mark.parametrize(
    "model, word",
    [
        (nn.Linear(2, 1), "Sequential"),
        (nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)), "ReLU"),
        (nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)), "scalar output"),
        (nn.Sequential(nn.Linear(2, 1)), "hidden"),
    ],
)
def test_from_sequential_rejects_other_layouts(model, word):
    with pytest.raises(ValueError, match=word):
        from_sequential(model)


def test_parse_architecture_rejects_malformed_sizes():
    assert parse_architecture("2-100-100-1") == (2, 100, 100, 1)
    for bad in ("2-x-1", "2-1", "2-10-3"):
        with pytest.raises(ValueError, match="sizes"):
            parse_architecture(bad)


# ----------------------------------------------------------------------------- regions
def test_affine_map_reproduces_the_network_inside_each_region(net, samples):
    patterns = net.patterns(samples)
    _, _, c, c0 = affine_maps(net, patterns)
    assert torch.allclose((c * samples).sum(1) + c0, net.forward(samples), atol=1e-12)


def test_each_sample_is_feasible_for_its_own_region_lp(net, samples):
    batch = region_lps(net, net.patterns(samples), LO, HI)
    assert batch.n == 2 and batch.m == net.n_hidden + 4
    assert float(batch.residuals(samples)["primal"].max()) == 0.0


def test_unique_patterns_deduplicates_and_maps_back():
    patterns = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=torch.bool)
    uniq = unique_patterns(patterns)
    assert uniq.patterns.shape == (3, 3)
    assert torch.equal(uniq.patterns[uniq.inverse], patterns)
    assert torch.equal(patterns[uniq.first], uniq.patterns)
    assert sorted(uniq.first.tolist()) == [0, 1, 4]  # the first sample of each pattern
    with pytest.raises(ValueError, match="patterns"):
        unique_patterns(patterns.int())


@pytest.mark.parametrize("backend", ["highs", "inhouse"])
def test_lp_optimum_forward_value_equals_lp_objective(net, samples, backend):
    uniq = unique_patterns(net.patterns(samples))
    batch = region_lps(net, uniq.patterns, LO, HI)
    out = solve_lps(batch, backend)
    assert bool(out.solved.all()), out.status
    # The optimum lies in its region: the network and the LP agree there, and it beats the sample.
    assert torch.allclose(net.forward(out.z), lp_value(batch, out.z), atol=1e-6)
    assert bool((net.forward(out.z) >= net.forward(samples[uniq.first]) - 1e-6).all())
    assert float(batch.residuals(out.z)["primal"].max()) < 1e-6


def test_inhouse_and_highs_agree_on_region_optima(net, samples):
    batch = region_lps(net, unique_patterns(net.patterns(samples)).patterns, LO, HI)
    a, b = solve_lps(batch, "inhouse"), solve_lps(batch, "highs")
    assert torch.allclose(lp_value(batch, a.z), lp_value(batch, b.z), atol=1e-6)


def test_lifted_form_has_the_same_optima_as_reduced(net, samples):
    patterns = unique_patterns(net.patterns(samples)).patterns
    reduced, lifted = region_lps(net, patterns, LO, HI), lifted_region_lps(net, patterns, LO, HI)
    assert lifted.n == 2 + net.n_hidden and lifted.k == net.n_hidden
    zr, zl = solve_lps(reduced, "highs").z, solve_lps(lifted, "highs").z
    assert torch.allclose(lp_value(reduced, zr), lp_value(lifted, zl), atol=1e-7)
    assert torch.allclose(net.forward(zl[:, :2]), lp_value(lifted, zl), atol=1e-6)
    assert cheaper_form(net, dense=True) == "reduced"


def test_proximal_term_makes_a_strictly_convex_qp_with_nearly_the_lp_value(net, samples):
    uniq = unique_patterns(net.patterns(samples))
    lp = region_lps(net, uniq.patterns, LO, HI)
    qp = region_lps(net, uniq.patterns, LO, HI, proximal=1e-6, centers=samples[uniq.first])
    assert bool((torch.linalg.eigvalsh(qp.expanded("Q")) > 0).all())
    f_lp = net.forward(solve_lps(lp, "highs").z)
    f_qp = net.forward(solve_lps(qp, "inhouse").z)
    assert bool((f_qp <= f_lp + 1e-7).all()) and bool((f_qp >= f_lp - 1e-4).all())
    with pytest.raises(ValueError, match="centers"):
        region_lps(net, uniq.patterns, LO, HI, proximal=1e-6)
    with pytest.raises(ValueError, match="proximal"):
        region_lps(net, uniq.patterns, LO, HI, proximal=-1.0)


@pytest.mark.parametrize(
    "lo, hi, word",
    [(torch.zeros(3), torch.ones(3), "lo"), (torch.ones(2), torch.zeros(2), "lo must be <= hi"),
     (torch.zeros(2), torch.tensor([1.0, float("inf")]), "hi")],
)
def test_bad_box_raises(net, samples, lo, hi, word):
    with pytest.raises(ValueError, match=word):
        region_lps(net, net.patterns(samples), lo, hi)


def test_bad_patterns_and_backend_raise(net, samples):
    with pytest.raises(ValueError, match="patterns"):
        region_lps(net, torch.ones(3, 5, dtype=torch.bool), LO, HI)
    batch = region_lps(net, net.patterns(samples[:2]), LO, HI)
    with pytest.raises(ValueError, match="backend"):
        solve_lps(batch, "simplex-by-hand")


# ----------------------------------------------------------------------------- search
def test_neighbour_patterns_flip_exactly_one_boundary_neuron():
    patterns = torch.tensor([[True, False, True], [False, False, False]])
    boundary = torch.tensor([[True, False, True], [False, True, False]])
    flipped, parent = neighbour_patterns(patterns, boundary, max_flips=8)
    assert parent.tolist() == [0, 0, 1]
    assert ((flipped ^ patterns[parent]).sum(1) == 1).all()
    assert neighbour_patterns(patterns, boundary, max_flips=1)[0].shape[0] == 2


def test_lp_optima_sit_on_region_borders(net, samples):
    uniq = unique_patterns(net.patterns(samples))
    z = solve_lps(region_lps(net, uniq.patterns, LO, HI), "highs").z
    on_border = boundary_neurons(net, z, 1e-7)
    inside_box = ((z - LO).abs() > 1e-7).all(1) & ((z - HI).abs() > 1e-7).all(1)
    # A vertex of a 2-D region strictly inside the box needs two tight neuron constraints.
    assert bool((on_border[inside_box].sum(1) >= 2).all())


def test_sampling_search_reaches_its_budget_and_reports_a_true_value(net):
    res = sampling_search(net, LO, HI, max_samples=96, batch_size=32, backend="highs", seed=1)
    assert res.samples == 96
    assert res.lps_solved >= 1 and res.lp_failures == 0
    assert res.best_value == pytest.approx(float(net.forward(res.best_x.reshape(1, -1))[0]), abs=1e-12)
    assert bool(((res.best_x >= LO) & (res.best_x <= HI)).all())
    values = [v for _, v in res.trace]
    assert values == sorted(values)


def test_enhanced_search_is_never_worse_than_plain_sampling(net):
    common = {"max_samples": 64, "batch_size": 32, "backend": "inhouse", "seed": 2}
    plain = sampling_search(net, LO, HI, **common)
    enhanced = sampling_search(net, LO, HI, enhanced=True, **common)
    assert enhanced.best_value >= plain.best_value - 1e-9
    assert enhanced.lps_solved >= plain.lps_solved


def test_sampling_search_on_lifted_lps_finds_the_same_best_point(net):
    common = {"max_samples": 64, "batch_size": 32, "backend": "highs", "seed": 4}
    reduced = sampling_search(net, LO, HI, form="reduced", **common)
    lifted = sampling_search(net, LO, HI, form="lifted", **common)
    assert lifted.info["form"] == "lifted" and lifted.lps_solved == reduced.lps_solved
    assert lifted.best_value == pytest.approx(reduced.best_value, abs=1e-7)
    with pytest.raises(ValueError, match="form"):
        sampling_search(net, LO, HI, form="sparse", **common)


def test_sampling_search_needs_a_stopping_rule(net):
    with pytest.raises(ValueError, match="max_samples or time_budget"):
        sampling_search(net, LO, HI)
    with pytest.raises(ValueError, match="batch_size"):
        sampling_search(net, LO, HI, max_samples=4, batch_size=0)


# ----------------------------------------------------------------------------- MIP
def test_interval_bounds_contain_every_sampled_preactivation(net, samples):
    _, pre = net.forward_with_preactivations(samples)
    for a, (L, U) in zip(pre, interval_bounds(net, LO, HI), strict=True):
        assert bool((a >= L - 1e-12).all() and (a <= U + 1e-12).all())


def test_lp_tightened_bounds_are_valid_and_no_looser_than_intervals(net, samples):
    _, pre = net.forward_with_preactivations(samples)
    tight, loose = lp_tightened_bounds(net, LO, HI), interval_bounds(net, LO, HI)
    for a, (L, U), (Li, Ui) in zip(pre, tight, loose, strict=True):
        assert bool((a >= L - 1e-9).all() and (a <= U + 1e-9).all())
        assert bool((L - Li >= -1e-12).all() and (Ui - U >= -1e-12).all())
    assert bool((tight[1][1] - tight[1][0] < loose[1][1] - loose[1][0] - 1e-9).any())


def test_mip_start_vector_from_a_point_is_feasible(net, samples):
    model = build_mip(net, LO, HI)
    for x in samples[:8]:
        v = model.point_from_input(net, x)
        ax = model.rows @ v
        assert (ax <= model.row_hi + 1e-9).all() and (ax >= model.row_lo - 1e-9).all()
        assert model.cost @ v + model.offset == pytest.approx(float(net.forward(x.reshape(1, -1))[0]))


@pytest.mark.parametrize("solver", ["highs", "gurobi"])
def test_mip_optimum_bounds_every_sampled_value(net, samples, solver):
    pytest.importorskip("highspy" if solver == "highs" else "gurobipy", reason=f"{solver} not installed")
    search = sampling_search(net, LO, HI, max_samples=64, backend="highs", seed=0)
    mip = solve_mip(net, LO, HI, solver, time_limit=30)
    assert mip.status == "optimal", mip.reason
    assert mip.best_value >= float(net.forward(samples).max()) - 1e-9
    assert mip.best_value >= search.best_value - 1e-7
    assert mip.bound >= mip.best_value - 1e-6
    warm = solve_mip(net, LO, HI, solver, time_limit=30, warm_start=search.best_x, bounds="lp")
    assert warm.warm_start and warm.best_value == pytest.approx(mip.best_value, abs=1e-7)
    assert warm.info["bounds"] == "lp" and warm.info["bound_seconds"] > 0


def test_gurobi_skips_models_over_the_licence_limit_with_a_reason():
    pytest.importorskip("gurobipy", reason="gurobipy not installed")
    wide = random_network((2, 1100, 1), seed=0)
    res = solve_mip(wide, LO, HI, "gurobi", time_limit=1, warm_start=torch.zeros(2, dtype=torch.float64))
    assert res.status == "skipped" and res.warm_start and res.info["bounds"] == "interval"
    assert str(GUROBI_SIZE_LIMIT) in res.reason and res.best_x is None


def test_mip_bad_input_raises(net):
    with pytest.raises(ValueError, match="solver"):
        solve_mip(net, LO, HI, "cplex")
    with pytest.raises(ValueError, match="time_limit"):
        solve_mip(net, LO, HI, "highs", time_limit=0)
    with pytest.raises(ValueError, match="bounds"):
        solve_mip(net, LO, HI, "highs", time_limit=1, bounds="exact")
    with pytest.raises(ValueError, match="warm_start"):
        solve_mip(net, LO, HI, "highs", time_limit=1, warm_start=torch.zeros(3, dtype=torch.float64))


# ----------------------------------------------------------------------------- command
def test_relu_command_quick_run_writes_rows_and_report(tmp_path):
    from qpbench.cli import main

    out = tmp_path / "relu"
    code = main(["relu", "--quick", "--sizes", "2-8-8-1", "--samples", "32", "--time-budget", "0.5",
                 "--mip-time-limit", "5", "--mip-solver", "highs", "--out", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in (out / "relu_results.jsonl").read_text().splitlines()]
    methods = {r["method"] for r in rows if r["kind"] == "search"}
    assert methods == {"sampling", "sampling+enhanced", "mip-highs", "mip-highs+lpbounds",
                       "mip-highs+lpbounds+warm"}
    mip = next(r for r in rows if r.get("method") == "mip-highs")
    assert mip["status"] == "optimal"
    for r in rows:
        if r["kind"] == "search":
            assert r["gap_abs"] >= -1e-7  # nothing beats a proven optimum
            assert r["gap_to_bound"] >= r["gap_abs"] - 1e-7
    thr = next(r for r in rows if r["kind"] == "throughput")
    assert thr["inhouse_solved"] == thr["highs_solved"] == thr["lps"]
    report = (out / "report.md").read_text()
    assert "random:2-8-8-1" in report and "ratio in-house / HiGHS" in report


def test_relu_command_rejects_bad_sizes(tmp_path, capsys):
    from qpbench.cli import main

    assert main(["relu", "--sizes", "2-10", "--out", str(tmp_path)]) == 2
    assert "sizes" in capsys.readouterr().err

