"""KANLinear's fused CPU kernels (``backend="cpu"``, ops ``mkcc::kan_linear_fwd`` /
``mkcc::kan_linear_bwd``) against the fp64 reference on fresh random per-feature knots
(non-uniform, repeated, made by ``update_grid``), every gradient, every CPU kernel build, what
autograd saves, the PyTorch tools (opcheck, torch.compile, torch.export), bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mkcc_kernels import KANLinear, kan_linear
from mkcc_kernels.kan_linear import scaled_spline_weight
from mkcc_kernels.reference import kan_linear_reference

from .helpers import TOLERANCE, assert_close
from .test_kan_linear import random_grid

F64 = torch.float64


def layer_tensors(out_f, in_f, grid_size, order, dtype, seed, repeated=False):
    """Weights, a scaler around 1 and non-uniform knots per feature (a repeated knot when
    asked), fresh per seed."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(out_f, in_f, dtype=F64, generator=g)
    spline = torch.randn(out_f, in_f, grid_size + order, dtype=F64, generator=g)
    scaler = torch.rand(out_f, in_f, dtype=F64, generator=g) + 0.5
    grid = random_grid(in_f, grid_size, order, g)
    if repeated and grid.shape[1] > 4:
        grid[::2, 3] = grid[::2, 2]  # a zero-width interval in every other feature
    return [t.to(dtype) for t in (base, spline, scaler, grid)]


def inputs_for(grid, rows, dtype, seed):
    """x over the grid and beyond, some exactly on knots, some outside."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, grid.shape[0], dtype=F64, generator=g) * 1.4
    if rows:
        x[0] = grid[:, grid.shape[1] // 2].to(F64)  # on a knot
        x[-1, 0] = 7.5  # outside
    return x.to(dtype)


def reference_and_grads(x, base, spline, scaler, grid, order, grad_out):
    """The fp64 reference and its gradients (x, base, spline, scaler)."""
    leaves = [t.detach().double().requires_grad_(True) for t in (x, base, spline)]
    sc = None if scaler is None else scaler.detach().double().requires_grad_(True)
    out = kan_linear_reference(
        leaves[0], leaves[1], scaled_spline_weight(leaves[2], sc), grid.double(), order
    )
    out.backward(grad_out.double())
    grads = [t.grad for t in leaves] + ([sc.grad] if sc is not None else [])
    return out.detach(), grads


def fused_and_grads(x, base, spline, scaler, grid, order, grad_out):
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, base, spline)]
    sc = None if scaler is None else scaler.detach().clone().requires_grad_(True)
    out = kan_linear(leaves[0], leaves[1], leaves[2], grid, order, sc, backend="cpu")
    out.backward(grad_out)
    grads = [t.grad for t in leaves] + ([sc.grad] if sc is not None else [])
    return out.detach(), grads


NAMES = ("grad_x", "grad_base_weight", "grad_spline_weight", "grad_spline_scaler")

# (N, in, out): one element; rows, features and outputs off every tile (row tiles of up to 128,
# feature chunks of 16, outputs padded to the vector width); a wide output row.
SHAPES = [(1, 1, 1), (37, 5, 3), (130, 17, 33), (300, 40, 70), (64, 3, 130)]


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_and_every_gradient_match_the_fp64_reference(cpu_isa, shape, order, dtype):
    rows, in_f, out_f = shape
    seed = hash((shape, order)) % 2**16
    base, spline, scaler, grid = layer_tensors(out_f, in_f, 5, order, dtype, seed, repeated=True)
    x = inputs_for(grid, rows, dtype, seed + 1)
    grad_out = torch.randn(rows, out_f, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    for sc in (scaler, None):
        expected, expected_grads = reference_and_grads(x, base, spline, sc, grid, order, grad_out)
        out, grads = fused_and_grads(x, base, spline, sc, grid, order, grad_out)
        tol = TOLERANCE[dtype]
        assert_close(out, expected, tol, f"{cpu_isa} output")
        for name, got, want in zip(NAMES, grads, expected_grads):
            assert_close(got, want, tol, f"{cpu_isa} {name}")


@pytest.mark.parametrize("grid_size, order", [(12, 3), (5, 4), (1, 1)])
def test_grids_of_any_size(grid_size, order):
    """Grids past the table of the vector loop (more than 16 intervals) and the smallest."""
    base, spline, scaler, grid = layer_tensors(9, 6, grid_size, order, torch.float32, grid_size)
    x = inputs_for(grid, 50, torch.float32, 3)
    grad_out = torch.randn(50, 9)
    expected, expected_grads = reference_and_grads(x, base, spline, scaler, grid, order, grad_out)
    out, grads = fused_and_grads(x, base, spline, scaler, grid, order, grad_out)
    assert_close(out, expected, TOLERANCE[torch.float32], "output")
    for name, got, want in zip(NAMES, grads, expected_grads):
        assert_close(got, want, TOLERANCE[torch.float32], name)


def test_grids_made_by_update_grid_and_the_layer_on_them():
    torch.manual_seed(11)
    layer = KANLinear(12, 7, dtype=F64)
    data = torch.randn(400, 12, dtype=F64) * 0.8 + 0.3
    layer.update_grid(data)
    widths = layer.grid[:, 1:] - layer.grid[:, :-1]
    assert not torch.allclose(widths[0], widths[1])  # per-feature, non-uniform knots
    x = data[:70].clone().requires_grad_(True)
    out = layer(x)
    assert layer.backend == "auto"
    expected = kan_linear_reference(
        x.detach(), layer.base_weight, layer.scaled_spline_weight, layer.grid, 3
    )
    assert_close(out, expected, TOLERANCE[F64], "output on an updated grid")
    out.sum().backward()
    ref_x = x.detach().clone().requires_grad_(True)
    kan_linear_reference(
        ref_x, layer.base_weight, layer.scaled_spline_weight, layer.grid, 3
    ).sum().backward()
    assert_close(x.grad, ref_x.grad, TOLERANCE[F64], "grad_x on an updated grid")


def test_gradcheck_in_fp64():
    base, spline, scaler, grid = layer_tensors(3, 4, 4, 3, F64, 5)
    x = (torch.rand(6, 4, dtype=F64) * 2 - 1).requires_grad_(True)
    leaves = [t.clone().requires_grad_(True) for t in (base, spline, scaler)]

    def fn(x, base, spline, scaler):
        return kan_linear(x, base, spline, grid, 3, scaler, backend="cpu")

    assert torch.autograd.gradcheck(fn, (x, *leaves))


def test_leading_dimensions_and_strided_grad_out():
    base, spline, scaler, grid = layer_tensors(16, 5, 5, 3, torch.float32, 8)
    x = inputs_for(grid, 24, torch.float32, 9).view(2, 3, 4, 5).requires_grad_(True)
    out = kan_linear(x, base, spline, grid, 3, scaler, backend="cpu")
    assert out.shape == (2, 3, 4, 16)
    out.sum().backward()  # an expanded (stride 0) grad_out
    ref = x.detach().clone().requires_grad_(True)
    kan_linear(ref, base, spline, grid, 3, scaler, backend="reference").sum().backward()
    assert_close(x.grad, ref.grad, TOLERANCE[torch.float32], "grad_x from y.sum()")
    x.grad = None
    out = kan_linear(x, base, spline, grid, 3, scaler, backend="cpu")
    (out.transpose(0, 3) * 2).sum().backward()
    assert_close(x.grad, 2 * ref.grad, TOLERANCE[torch.float32], "grad_x, transposed grad_out")


def test_empty_batch():
    base, spline, scaler, grid = layer_tensors(4, 3, 5, 3, torch.float32, 1)
    leaves = [t.clone().requires_grad_(True) for t in (base, spline, scaler)]
    x = torch.empty(0, 3, requires_grad=True)
    out = kan_linear(x, leaves[0], leaves[1], grid, 3, leaves[2], backend="cpu")
    assert out.shape == (0, 4)
    out.sum().backward()
    assert x.grad.shape == (0, 3)
    for leaf in leaves:
        assert torch.equal(leaf.grad, torch.zeros_like(leaf))


def test_autograd_saves_only_x_the_weights_and_the_grid():
    layer = KANLinear(20, 10)
    x = torch.randn(64, 20, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    mine = {t.untyped_storage().data_ptr() for t in (x, layer.grid, *layer.parameters())}
    assert saved and {t.untyped_storage().data_ptr() for t in saved} <= mine
    bound = sum(t.numel() for t in (x, layer.grid, *layer.parameters()))
    unique = {t.untyped_storage().data_ptr(): t.numel() for t in saved}
    assert sum(unique.values()) <= bound


def test_opcheck():
    base, spline, scaler, grid = layer_tensors(5, 4, 5, 3, torch.float32, 2)
    x = inputs_for(grid, 9, torch.float32, 3)
    for sc in (scaler, None):
        args = (x.requires_grad_(True), base.requires_grad_(True), spline.requires_grad_(True),
                None if sc is None else sc.requires_grad_(True), grid, 3)  # fmt: skip
        torch.library.opcheck(torch.ops.mkcc.kan_linear_fwd.default, args)
        grad_out = torch.randn(9, 5)
        bargs = (grad_out, *[a.detach() if isinstance(a, torch.Tensor) else a for a in args],
                 True, True)  # fmt: skip
        torch.library.opcheck(torch.ops.mkcc.kan_linear_bwd.default, bargs)


def test_compile_fullgraph_and_export_round_trip(tmp_path):
    torch.manual_seed(4)
    layer = KANLinear(6, 4, backend="cpu")
    x = torch.randn(10, 6)
    compiled = torch.compile(layer, fullgraph=True)
    assert_close(compiled(x), layer(x), TOLERANCE[torch.float32], "compiled output")
    xg = x.clone().requires_grad_(True)
    compiled(xg).sum().backward()
    ref = x.clone().requires_grad_(True)
    layer(ref).sum().backward()
    assert_close(xg.grad, ref.grad, TOLERANCE[torch.float32], "compiled grad_x")
    program = torch.export.export(layer, (x,))
    path = tmp_path / "kan_linear.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path)
    assert_close(loaded.module()(x), layer(x), TOLERANCE[torch.float32], "exported output")
    assert "mkcc.kan_linear_fwd" in str(program.graph)


def test_double_backward_is_a_clear_error():
    base, spline, scaler, grid = layer_tensors(3, 2, 5, 3, F64, 6)
    x = torch.randn(4, 2, dtype=F64, requires_grad=True)
    out = kan_linear(x, base, spline, grid, 3, scaler, backend="cpu")
    (gx,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gx.sum().backward()


# ---- bad input ----------------------------------------------------------------------------


def test_ops_name_the_bad_argument():
    base, spline, scaler, grid = layer_tensors(4, 3, 5, 3, torch.float32, 1)
    x = torch.randn(5, 3)
    op, bwd = torch.ops.mkcc.kan_linear_fwd, torch.ops.mkcc.kan_linear_bwd
    with pytest.raises(ValueError, match=r"^x: expected \[N, in_features\] with in_features = 3"):
        op(torch.randn(5, 4), base, spline, scaler, grid, 3)
    with pytest.raises(ValueError, match=r"^x: expected a 2-D tensor"):
        op(x.view(5, 3, 1), base, spline, scaler, grid, 3)
    with pytest.raises(TypeError, match=r"^grid: expected dtype Double|^grid: expected dtype"):
        op(x, base, spline, scaler, grid.double(), 3)
    with pytest.raises(TypeError, match=r"^x: backend 'cpu' supports float32 and float64"):
        op(x.half(), base.half(), spline.half(), scaler.half(), grid.half(), 3)
    with pytest.raises(ValueError, match=r"^spline_scaler: expected shape \[4, 3\]"):
        op(x, base, spline, scaler.T, grid, 3)
    with pytest.raises(ValueError, match=r"^grid: expected shape \[3, 12\]"):
        op(x, base, spline, scaler, grid[:, 1:], 3)
    with pytest.raises(ValueError, match=r"^spline_order: expected an integer in \[1, 4\]"):
        op(x, base, spline, scaler, grid, 0)
    with pytest.raises(ValueError, match=r"^grad_out: expected shape \[5, 4\]"):
        bwd(torch.randn(5, 3), x, base, spline, scaler, grid, 3, True, True)


def test_module_and_functional_name_the_bad_argument():
    with pytest.raises(ValueError, match=r"^backend: 'cpu' computes silu as the base activation"):
        KANLinear(3, 2, base_activation=nn.GELU, backend="cpu")
    layer = KANLinear(3, 2, backend="cpu")
    with pytest.raises(ValueError, match=r"^x: expected \[\.\.\., in_features\] with in_features"):
        layer(torch.randn(4, 5))
    with pytest.raises(TypeError, match=r"^x: backend 'cpu' supports float32, float64, got"):
        kan_linear(torch.randn(2, 3, dtype=torch.bfloat16), layer.base_weight.bfloat16(),
                   layer.spline_weight.bfloat16(), layer.grid.bfloat16(),
                   backend="cpu")  # fmt: skip
    with pytest.raises(ValueError, match=r"^backend: KANLinear runs on 'auto', 'cpu', 'triton'"):
        kan_linear(torch.randn(2, 3), layer.base_weight, layer.spline_weight, layer.grid,
                   backend="cuda")  # fmt: skip
    grid = layer.grid.clone()
    grid[1, 5] = float("nan")
    with pytest.raises(ValueError, match=r"^grid: expected finite knots"):
        kan_linear(torch.randn(2, 3), layer.base_weight, layer.spline_weight, grid, backend="cpu")
