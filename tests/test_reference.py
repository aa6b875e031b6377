"""The pure-PyTorch reference and unfold baseline against a direct, loop-by-loop reading of the
spec (its own scalar Cox-de Boor), and the basis's defining properties."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import mkcc_kernels
from mkcc_kernels.conv_args import Conv1dArgs
from mkcc_kernels.reference import bspline_basis, kan_conv1d_reference, kan_conv1d_unfold

from .helpers import assert_close


def cox_de_boor(x: float, i: int, order: int, knots: list[float]) -> float:
    if order == 0:
        return 1.0 if knots[i] <= x < knots[i + 1] else 0.0
    left = (x - knots[i]) / (knots[i + order] - knots[i]) * cox_de_boor(x, i, order - 1, knots)
    right = (
        (knots[i + order + 1] - x)
        / (knots[i + order + 1] - knots[i + 1])
        * cox_de_boor(x, i + 1, order - 1, knots)
    )
    return left + right


def spec_knots(grid_size: int, order: int, lo: float, hi: float) -> list[float]:
    h = (hi - lo) / grid_size
    return [(m - order) * h + lo for m in range(grid_size + 2 * order + 1)]


def spec_kan_conv1d(
    x, base_weight, spline_weight, stride, pad_left, pad_right, dilation, groups, order, lo, hi
):
    """The spec's formula, one output element at a time, in Python floats. The basis is zero
    outside the grid, so for x = +-Inf only the silu term remains (Python's float arithmetic then
    gives silu(+Inf) = +Inf and silu(-Inf) = -Inf / Inf = NaN, as torch does)."""
    batch, in_channels, length = x.shape
    out_channels, in_per_group, k = base_weight.shape
    n_spline = spline_weight.shape[-1]
    knots = spec_knots(n_spline - order, order, lo, hi)
    out_length = (length + pad_left + pad_right - dilation * (k - 1) - 1) // stride + 1
    out = torch.zeros(batch, out_channels, out_length, dtype=torch.float64)
    out_per_group = out_channels // groups
    for b in range(batch):
        for o in range(out_channels):
            g = o // out_per_group
            for t in range(out_length):
                total = 0.0
                for c in range(in_per_group):
                    for j in range(k):
                        p = t * stride + j * dilation - pad_left
                        if not 0 <= p < length:
                            continue
                        v = float(x[b, g * in_per_group + c, p])
                        total += float(base_weight[o, c, j]) * v / (1 + math.exp(-v))
                        if not math.isfinite(v):
                            continue
                        for i in range(n_spline):
                            total += float(spline_weight[o, c, j, i]) * cox_de_boor(
                                v, i, order, knots
                            )
                out[b, o, t] = total
    return out


CONFIGS = {
    # id: (B, C_in, C_out, T, k, stride, pad_left, pad_right, dilation, groups, G, K, grid_range)
    "plain": (2, 3, 4, 9, 3, 1, 1, 1, 1, 1, 5, 3, (-1.0, 1.0)),
    "stride2-dil2": (1, 2, 3, 11, 3, 2, 2, 2, 2, 1, 4, 2, (-1.0, 1.0)),
    "groups": (2, 4, 6, 7, 2, 1, 0, 1, 1, 2, 3, 1, (-2.0, 0.5)),
    "k-longer-than-T": (1, 2, 2, 2, 5, 1, 2, 2, 1, 1, 1, 4, (-1.0, 1.0)),
    "T1": (2, 2, 3, 1, 1, 1, 0, 0, 1, 1, 6, 3, (0.0, 3.0)),
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize(
    "impl", [kan_conv1d_reference, kan_conv1d_unfold], ids=["reference", "unfold"]
)
def test_matches_spec_formula(impl, config):
    b, cin, cout, t, k, s, pl, pr, d, g, grid, order, (lo, hi) = config
    torch.manual_seed(1)
    x = torch.randn(b, cin, t, dtype=torch.float64) * 1.5 * (hi - lo) / 2 + (lo + hi) / 2
    base = torch.randn(cout, cin // g, k, dtype=torch.float64)
    spline = torch.randn(cout, cin // g, k, grid + order, dtype=torch.float64)
    expected = spec_kan_conv1d(x, base, spline, s, pl, pr, d, g, order, lo, hi)
    actual = impl(x, base, spline, Conv1dArgs(s, pl, pr, d, g, order, lo, hi))
    assert_close(actual, expected, 1e-12, impl.__name__)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("grid_size", [1, 5])
def test_basis_partition_of_unity_and_support(order, grid_size):
    lo, hi = -1.0, 2.0
    knots = spec_knots(grid_size, order, lo, hi)
    inside = torch.rand(2000, dtype=torch.float64) * (hi - lo) + lo
    basis = bspline_basis(inside, grid_size, order, (lo, hi))
    assert basis.shape == (2000, grid_size + order)
    assert_close(basis.sum(-1), torch.ones(2000, dtype=torch.float64), 1e-13, "sum of basis")
    assert int((basis != 0).sum(-1).max()) <= order + 1
    extended = torch.rand(2000, dtype=torch.float64) * (knots[-1] - knots[0]) + knots[0]
    for value in extended[:50].tolist():
        row = bspline_basis(torch.tensor([value], dtype=torch.float64), grid_size, order, (lo, hi))
        spec = torch.tensor(
            [[cox_de_boor(value, i, order, knots) for i in range(grid_size + order)]],
            dtype=torch.float64,
        )
        assert_close(row, spec, 1e-13, f"basis at {value}")
    outside = torch.tensor(
        [knots[0] - 1e-9, knots[-1], knots[-1] + 3, float("inf"), float("-inf"), float("nan")],
        dtype=torch.float64,
    )
    assert bool((bspline_basis(outside, grid_size, order, (lo, hi)) == 0).all())


def test_basis_derivative_is_analytic():
    """d/dx B_{i,K} = (B_{i,K-1} - B_{i+1,K-1}) / h on the uniform grid."""
    grid_size, order, lo, hi = 5, 3, -1.0, 1.0
    h = (hi - lo) / grid_size
    x = (torch.rand(500, dtype=torch.float64) * 4 - 2).requires_grad_(True)
    basis = bspline_basis(x, grid_size, order, (lo, hi))
    grads = torch.stack(
        [
            torch.autograd.grad(basis[:, i].sum(), x, retain_graph=True)[0]
            for i in range(basis.shape[1])
        ],
        dim=-1,
    )
    # Order K-1 on the same knots: grid size G + 2 over (lo - h, hi + h).
    lower = bspline_basis(x.detach(), grid_size + 2, order - 1, (lo - h, hi + h))
    expected = (lower[:, :-1] - lower[:, 1:]) / h
    assert_close(grads, expected, 1e-12, "basis derivative")


def test_padding_contributes_nothing():
    """Padding zero-pads the expanded features, not x: phi(0) != 0 would leak into the borders."""
    torch.manual_seed(2)
    x = torch.randn(1, 2, 6, dtype=torch.float64)
    base = torch.randn(3, 2, 3, dtype=torch.float64)
    spline = torch.randn(3, 2, 3, 8, dtype=torch.float64)
    padded = kan_conv1d_reference(x, base, spline, Conv1dArgs(1, 1, 1))
    inner = kan_conv1d_reference(x, base, spline, Conv1dArgs(1, 0, 0))
    assert_close(padded[..., 1:-1], inner, 1e-13, "interior")
    # The first output sees taps 1, 2 at positions 0, 1 only.
    edge = kan_conv1d_reference(x[..., :2], base[..., 1:], spline[..., 1:, :], Conv1dArgs())
    assert_close(padded[..., :1], edge, 1e-13, "left border")
    zero_padded_x = kan_conv1d_reference(F.pad(x, (1, 1)), base, spline, Conv1dArgs())
    assert (zero_padded_x[..., 0] - padded[..., 0]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "channels, groups, k, conv",
    [(1, 1, 3, {"padding": "same"}), (2, 2, 2, {"padding": 1})],
    ids=["same-k3", "groups2-k2"],
)
def test_reference_backward_with_size_one_dimensions(channels, groups, k, conv):
    """T = 1 and one channel per group: reshape gives views with odd strides on size-1
    dimensions, which made the fp64 convolution's backward fail (found by the property tests)."""
    x = torch.randn(1, channels, 1, dtype=torch.float64, requires_grad=True)
    base = torch.randn(channels, 1, k, dtype=torch.float64, requires_grad=True)
    spline = torch.randn(channels, 1, k, 2, dtype=torch.float64, requires_grad=True)
    args = {**conv, "groups": groups, "spline_order": 1, "grid_range": (0.0, 1.0)}
    out = mkcc_kernels.kan_conv1d(x, base, spline, backend="reference", **args)
    grads = torch.autograd.grad(out.sum(), (x, base, spline))
    expected = mkcc_kernels.kan_conv1d(x, base, spline, backend="cpu", **args)
    expected_grads = torch.autograd.grad(expected.sum(), (x, base, spline))
    assert torch.allclose(out, expected)
    for grad, expected_grad in zip(grads, expected_grads):
        assert torch.allclose(grad, expected_grad)
