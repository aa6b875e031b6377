"""KANLinear, KAN and kan_linear against shared/KAN_LINEAR_SPEC.md, read loop by loop here:
efficient-kan's parameters and state dicts, per-feature (non-uniform) knots, update_grid,
regularization_loss, bad input naming the argument."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, note, settings
from hypothesis import strategies as st
from torch import nn

import mkcc_kernels
from mkcc_kernels import KAN, KANLinear, kan_linear

from .helpers import TOLERANCE, assert_close

F64 = torch.float64


# ---- the spec, read loop by loop (plain Python floats) --------------------------------------


def spec_basis(x: float, t: list[float], order: int) -> list[float]:
    """Cox-de Boor on one knot vector: half-open order-0 intervals, each interval's own width,
    zero outside [t_0, t_last)."""
    if not (t[0] <= x < t[-1]):
        return [0.0] * (len(t) - order - 1)
    b = [1.0 if t[m] <= x < t[m + 1] else 0.0 for m in range(len(t) - 1)]
    for d in range(1, order + 1):
        nxt = []
        for m in range(len(b) - 1):
            left = (x - t[m]) / (t[m + d] - t[m]) * b[m] if b[m] else 0.0
            right = (t[m + d + 1] - x) / (t[m + d + 1] - t[m + 1]) * b[m + 1] if b[m + 1] else 0.0
            nxt.append(left + right)
        b = nxt
    return b


def spec_forward(x, base_weight, spline_weight, grid, order, scaler=None):
    """y[n, o] = sum_i base[o, i] silu(x[n, i]) + sum_{i, j} scaled[o, i, j] B_{i, j}(x[n, i])."""
    out_f, in_f = base_weight.shape
    y = torch.zeros(x.shape[0], out_f, dtype=F64)
    for n in range(x.shape[0]):
        for i in range(in_f):
            v = float(x[n, i])
            silu = v / (1.0 + math.exp(-v))
            basis = spec_basis(v, grid[i].tolist(), order)
            for o in range(out_f):
                s = 1.0 if scaler is None else float(scaler[o, i])
                total = float(base_weight[o, i]) * silu
                total += sum(float(spline_weight[o, i, j]) * s * b for j, b in enumerate(basis))
                y[n, o] += total
    return y


def random_grid(in_features: int, grid_size: int, order: int, generator=None) -> torch.Tensor:
    """Non-uniform, strictly increasing knots per feature around [-1.5, 1.5]."""
    steps = torch.rand(in_features, grid_size + 2 * order, dtype=F64, generator=generator) + 0.2
    start = -1.5 - torch.rand(in_features, 1, dtype=F64, generator=generator)
    grid = torch.cat([start, start + steps.cumsum(-1)], dim=-1)
    return grid * 3.0 / (grid[:, -1:] - grid[:, :1])


def random_layer_tensors(out_f, in_f, grid_size, order, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(out_f, in_f, dtype=F64, generator=g),
        torch.randn(out_f, in_f, grid_size + order, dtype=F64, generator=g),
        random_grid(in_f, grid_size, order, g),
        torch.rand(out_f, in_f, dtype=F64, generator=g) + 0.5,
    )


# ---- the layer's contract ---------------------------------------------------------------------


def test_parameters_and_buffers_are_efficient_kans():
    layer = KANLinear(7, 5, grid_size=4, spline_order=2)
    shapes = {name: tuple(t.shape) for name, t in layer.state_dict().items()}
    assert shapes == {
        "grid": (7, 4 + 2 * 2 + 1),
        "base_weight": (5, 7),
        "spline_weight": (5, 7, 4 + 2),
        "spline_scaler": (5, 7),
    }
    assert "grid" in dict(layer.named_buffers())
    plain = KANLinear(7, 5, enable_standalone_scale_spline=False)
    assert set(plain.state_dict()) == {"grid", "base_weight", "spline_weight"}
    # the initial grid: the uniform knots (m - K) h + lo of every feature
    expected = torch.arange(-2, 4 + 2 + 1, dtype=torch.float32) * 0.5 - 1.0
    assert torch.equal(layer.grid, expected.expand(7, -1))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("scaled", [True, False])
def test_forward_and_gradients_follow_the_spec_on_non_uniform_knots(order, scaled):
    base, spline, grid, scaler = random_layer_tensors(3, 4, 5, order, seed=order)
    scaler = scaler if scaled else None
    x = torch.randn(9, 4, dtype=F64, generator=torch.Generator().manual_seed(7)) * 1.2
    x[0, 0] = float(grid[0, order + 2])  # exactly on a knot
    x[1, 1] = 5.0  # outside the grid
    expected = spec_forward(x, base, spline, grid, order, scaler)
    leaves = [t.clone().requires_grad_(True) for t in (x, base, spline)]
    scaler_leaf = None if scaler is None else scaler.clone().requires_grad_(True)
    out = kan_linear(*leaves, grid, order, scaler_leaf)
    assert_close(out, expected, TOLERANCE[F64], "output")
    # every gradient in fp64 against finite differences of the same function (off the knots,
    # where order-1 splines have kinks)
    leaves[0] = (x + 1e-3).requires_grad_(True)
    inputs = tuple(leaves) + (() if scaler_leaf is None else (scaler_leaf,))

    def fn(*args):
        return kan_linear(args[0], args[1], args[2], grid, order, *args[3:])

    assert torch.autograd.gradcheck(fn, inputs)


def test_efficient_kan_state_dict_loads_and_computes_its_function():
    """A state dict in efficient-kan's names and shapes (after an update made the grid
    non-uniform) loads, and the layer then computes efficient-kan's formula."""
    base, spline, grid, scaler = random_layer_tensors(4, 3, 5, 3, seed=3)
    state = {"grid": grid, "base_weight": base, "spline_weight": spline, "spline_scaler": scaler}
    layer = KANLinear(3, 4, dtype=F64)
    layer.load_state_dict(state)
    x = torch.randn(2, 6, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    out = layer(x)
    assert out.shape == (2, 6, 4)
    expected = spec_forward(x.reshape(-1, 3), base, spline, grid, 3, scaler).view(2, 6, 4)
    assert_close(out, expected, TOLERANCE[F64], "output after load_state_dict")


def spec_update(layer: KANLinear, x: torch.Tensor, margin: float = 0.01):
    """The spec's update_grid, step by step: the new grid and the new scaled coefficients."""
    n, in_f = x.shape
    k, g = layer.spline_order, layer.grid_size
    new_grid = torch.empty(in_f, g + 2 * k + 1, dtype=F64)
    for i in range(in_f):
        s = sorted(x[:, i].tolist())
        adaptive = [s[int(v)] for v in torch.linspace(0, n - 1, g + 1, dtype=F64).tolist()]
        step = (s[-1] - s[0] + 2 * margin) / g
        uniform = [s[0] - margin + m * step for m in range(g + 1)]
        mixed = [layer.grid_eps * u + (1 - layer.grid_eps) * a for u, a in zip(uniform, adaptive)]
        row = [mixed[0] - (k - m) * step for m in range(k)] + mixed
        row += [mixed[-1] + (m + 1) * step for m in range(k)]
        new_grid[i] = torch.tensor(row, dtype=F64)
    old = layer.scaled_spline_weight.detach()
    coeff = torch.empty_like(old)
    for i in range(in_f):
        old_basis = torch.tensor([spec_basis(float(v), layer.grid[i].tolist(), k) for v in x[:, i]])
        targets = old_basis.to(F64) @ old[:, i, :].T  # [N, out]
        new_basis = torch.tensor([spec_basis(float(v), new_grid[i].tolist(), k) for v in x[:, i]])
        coeff[:, i, :] = torch.linalg.lstsq(new_basis.to(F64), targets).solution.T
    return new_grid, coeff


def test_update_grid_follows_the_spec_and_keeps_the_function():
    torch.manual_seed(0)
    layer = KANLinear(3, 2, grid_size=4, dtype=F64)
    k = layer.spline_order
    with torch.no_grad():
        layer.spline_scaler.uniform_(0.5, 2.0)  # a scaler far from 1
        # scaled coefficients a * xi_j + b at the Greville abscissae xi_j = mean of knots
        # j + 1 .. j + K: each feature's spline part is the line a x + b inside the grid, which
        # every grid can represent, so a refit keeps it exactly
        xi = layer.grid.unfold(-1, k, 1)[:, 1 : 1 + layer.spline_weight.shape[-1]].mean(-1)
        a, b = torch.randn(2, 3, 1, dtype=F64), torch.randn(2, 3, 1, dtype=F64)
        layer.spline_weight.copy_((a * xi + b) / layer.spline_scaler.unsqueeze(-1))
    x = (torch.rand(40, 3, dtype=F64) * 1.8 - 0.9) * torch.tensor([0.3, 0.7, 1.0], dtype=F64)
    before = layer(x).detach()
    new_grid, coeff = spec_update(layer, x)
    layer.update_grid(x)
    assert_close(layer.grid, new_grid, 1e-12, "grid")
    # the refit: the same curves at the samples (the coefficients of functions that few or no
    # samples reach are barely determined by a least-squares fit, whose conditioning turns the
    # rounding of two ways of evaluating the basis into ~1e-7: curves, not coefficients)
    basis = layer.b_splines(x)
    ours = torch.einsum("nij,oij->nio", basis, layer.scaled_spline_weight.detach())
    assert_close(ours, torch.einsum("nij,oij->nio", basis, coeff), 1e-6, "refitted curves")
    # the function is kept, the scaler stored apart; storing the scaled fit undivided
    # (efficient-kan) would change it by the scaler
    assert_close(layer(x), before, 1e-9, "output after update_grid")
    with torch.no_grad():
        undivided = layer.spline_weight * layer.spline_scaler.unsqueeze(-1)
        changed = kan_linear(x, layer.base_weight, undivided, layer.grid, k, layer.spline_scaler)
    assert float((changed - before).abs().max()) > 0.1
    # and the layer then computes the spec's formula on the non-uniform grid it made
    expected = spec_forward(x[:5], layer.base_weight.detach(), layer.spline_weight.detach(),
                            layer.grid, k, layer.spline_scaler.detach())  # fmt: skip
    assert_close(layer(x[:5]), expected, TOLERANCE[F64], "output after update_grid")
    assert not torch.allclose(layer.grid[0], layer.grid[1])  # per-feature knots


def test_regularization_loss_follows_the_spec():
    layer = KANLinear(4, 3, dtype=F64)
    with torch.no_grad():
        layer.spline_weight.normal_()
        layer.spline_weight[0, 0].zero_()  # a zero row: 0 log 0 = 0
    l1 = layer.spline_weight.detach().abs().mean(-1)
    a = float(l1.sum())
    entropy = -sum(float(p) * math.log(float(p)) for p in (l1 / a).flatten() if p > 0)
    loss = layer.regularization_loss(2.0, 0.5).detach()
    assert math.isclose(float(loss), 2.0 * a + 0.5 * entropy, rel_tol=1e-12)


def test_kan_stack_updates_every_layer_and_sums_the_losses():
    torch.manual_seed(1)
    model = KAN([3, 5, 2], grid_size=4, dtype=F64)
    assert [tuple(m.base_weight.shape) for m in model.layers] == [(5, 3), (2, 5)]
    assert "layers.1.grid" in model.state_dict()
    x = torch.randn(32, 3, dtype=F64) * 0.4
    grids = [layer.grid.clone() for layer in model.layers]
    model(x, update_grid=True)
    for layer, grid in zip(model.layers, grids):
        assert not torch.equal(layer.grid, grid)
    # each layer's first inner knot is the smallest value of its own input (less grid_eps *
    # margin): the second layer's comes from the first layer's output after its update
    hidden = model.layers[0](x).detach()
    for layer, inputs in zip(model.layers, (x, hidden)):
        first = inputs.min(0).values - layer.grid_eps * 0.01
        assert_close(layer.grid[:, layer.spline_order], first, 1e-12, "first inner knot")
    total = sum(layer.regularization_loss().detach() for layer in model.layers)
    assert math.isclose(float(model.regularization_loss().detach()), float(total), rel_tol=1e-12)


def test_other_base_activations_run_the_reference_with_that_activation():
    torch.manual_seed(2)
    layer = KANLinear(3, 2, base_activation=nn.GELU, dtype=F64)
    x = torch.randn(5, 3, dtype=F64)
    basis = layer.b_splines(x)
    expected = nn.functional.gelu(x) @ layer.base_weight.T
    expected += torch.einsum("nij,oij->no", basis, layer.scaled_spline_weight)
    assert_close(layer(x), expected, TOLERANCE[F64], "GELU layer")


def test_compiles_without_graph_breaks():
    torch.manual_seed(3)
    layer = KANLinear(4, 3)
    x = torch.randn(6, 4)
    compiled = torch.compile(layer, fullgraph=True)
    assert_close(compiled(x), layer(x), TOLERANCE[torch.float32], "compiled output")


# ---- bad input ----------------------------------------------------------------------------


def test_module_names_the_wrong_feature_count():
    layer = KANLinear(7, 3)
    expected = r"^x: expected \[\.\.\., in_features\] with in_features = 7"
    with pytest.raises(ValueError, match=expected):
        layer(torch.randn(4, 8))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: g.index_put_((torch.tensor([1]), torch.tensor([4])), torch.tensor(-9.0)),
         r"^grid: expected non-decreasing knots in every row, row 1 decreases"),
        (lambda g: g.index_put_((torch.tensor([0]), torch.tensor([2])), torch.tensor(math.nan)),
         r"^grid: expected finite knots"),
    ],
    ids=["decreasing", "nan"],
)  # fmt: skip
def test_bad_knots_are_named(change, message):
    layer = KANLinear(3, 2)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    change(state["grid"])
    with pytest.raises(ValueError, match=message):
        layer.load_state_dict(state)
    with pytest.raises(ValueError, match=message):
        kan_linear(torch.randn(2, 3), layer.base_weight, layer.spline_weight, state["grid"])


def test_functional_rejects_mismatches_naming_the_argument():
    base, spline = torch.randn(2, 3), torch.randn(2, 3, 8)
    grid = KANLinear(3, 2).grid
    x = torch.randn(4, 3)
    wrong_features = r"^x: expected \[\.\.\., in_features\] with in_features = 3"
    with pytest.raises(ValueError, match=wrong_features):
        kan_linear(torch.randn(4, 5), base, spline, grid)
    with pytest.raises(TypeError, match=r"^spline_weight: expected dtype torch.float32"):
        kan_linear(x, base, spline.double(), grid)
    with pytest.raises(TypeError, match=r"^grid: expected dtype torch.float32"):
        kan_linear(x, base, spline, grid.double())
    with pytest.raises(ValueError, match=r"^grid: expected shape \[3, 12\]"):
        kan_linear(x, base, spline, grid[:, :-1])
    with pytest.raises(ValueError, match=r"^spline_scaler: expected shape \(2, 3\)"):
        kan_linear(x, base, spline, grid, spline_scaler=torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"^backend: KANLinear runs on 'auto', 'cpu'"):
        kan_linear(x, base, spline, grid, backend="unfold")
    with pytest.raises(ValueError, match=r"^spline_order: expected 1, 2, 3 or 4"):
        kan_linear(x, base, spline, grid, spline_order=5)
    with pytest.raises(ValueError, match=r"^grid: expected shape \[2, 5\]"):
        KANLinear(2, 1, grid_size=2, spline_order=1).load_state_dict(
            {"grid": torch.zeros(2, 6), "base_weight": torch.zeros(1, 2),
             "spline_weight": torch.zeros(1, 2, 3), "spline_scaler": torch.zeros(1, 2)}
        )  # fmt: skip


def test_exported_at_the_top_level():
    assert mkcc_kernels.KANLinear is KANLinear and mkcc_kernels.KAN is KAN


def test_kan_passes_options_to_every_layer_and_names_unknown_ones():
    model = KAN([2, 3, 1], grid_size=3, spline_order=2, dtype=F64)
    assert all(m.grid.shape == (m.in_features, 3 + 4 + 1) for m in model.layers)
    assert all(m.base_weight.dtype == F64 for m in model.layers)
    with pytest.raises(TypeError, match=r"^grid_sise: not an argument of KANLinear"):
        KAN([2, 1], grid_sise=3)
    with pytest.raises(ValueError, match=r"^layers_hidden: expected at least two widths"):
        KAN([4])


# ---- random cases (hypothesis) ----------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(0, 6),
    in_features=st.integers(1, 4),
    out_features=st.integers(1, 3),
    grid_size=st.integers(1, 6),
    order=st.integers(1, 4),
    scaled=st.booleans(),
    repeated=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_cases_follow_the_spec(
    rows, in_features, out_features, grid_size, order, scaled, repeated, seed
):
    """Random shapes, orders and non-uniform knots (with a repeated knot in some cases: a
    zero-width interval contributes 0), x partly outside the grid and on knots."""
    base, spline, grid, scaler = random_layer_tensors(
        out_features, in_features, grid_size, order, seed
    )
    if repeated and grid_size + 2 * order >= 3:
        grid[:, 2] = grid[:, 1]
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(rows, in_features, dtype=F64, generator=g) * 1.5
    if rows:
        x[0, 0] = float(grid[0, min(order + 1, grid.shape[1] - 1)])
    scaler = scaler if scaled else None
    note(f"x={x.tolist()} grid={grid.tolist()}")
    out = kan_linear(x, base, spline, grid, order, scaler)
    expected = spec_forward(x, base, spline, grid, order, scaler)
    assert out.shape == (rows, out_features)
    assert_close(out, expected, TOLERANCE[F64], "output")
