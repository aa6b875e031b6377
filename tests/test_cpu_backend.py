"""The fused C++ CPU backend against the fp64 reference: forward and every gradient, over curated
odd configurations, both dtypes and every CPU instruction-set build."""

from __future__ import annotations

import pytest
import torch

import mkcc_kernels
from mkcc_kernels.reference import knots

from .helpers import TOLERANCE, assert_close, run_layer

# id: (B, C_in, C_out, T, k, conv keyword arguments, grid_size)
CONFIGS = {
    "plain-k3": (2, 3, 5, 20, 3, {"padding": 1}, 5),
    "T1-k1": (3, 2, 4, 1, 1, {}, 5),
    "T1-k3-pad1": (2, 3, 4, 1, 3, {"padding": 1}, 5),
    "k-longer-than-T": (2, 3, 4, 3, 7, {"padding": 3}, 5),
    "stride2-dilation3": (2, 4, 6, 29, 3, {"stride": 2, "dilation": 3, "padding": 2}, 5),
    "stride3-no-pad": (2, 3, 7, 31, 4, {"stride": 3}, 5),
    "groups2": (2, 6, 4, 17, 3, {"groups": 2, "padding": 1}, 5),
    "depthwise": (2, 5, 10, 16, 5, {"groups": 5, "padding": 2}, 5),
    "same-even-k": (2, 3, 4, 12, 4, {"padding": "same"}, 5),
    "G1": (2, 3, 4, 10, 3, {"padding": 1}, 1),
    "K1": (2, 3, 4, 10, 3, {"padding": 1, "spline_order": 1}, 5),
    "K2": (2, 3, 4, 10, 3, {"padding": 1, "spline_order": 2}, 4),
    "K4": (2, 3, 4, 10, 3, {"padding": 1, "spline_order": 4}, 7),
    "grid-range": (2, 3, 4, 10, 3, {"padding": 1, "grid_range": (-0.5, 3.0)}, 6),
    "C_out-37-not-aligned": (2, 3, 37, 9, 3, {}, 5),
    "many-time-tiles": (2, 4, 20, 150, 5, {"padding": 2}, 5),
    "wide-channels": (2, 24, 40, 70, 5, {"stride": 2, "padding": 2}, 5),
}


def make_inputs(batch, in_channels, out_channels, length, k, conv, grid_size, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    groups = conv.get("groups", 1)
    order = conv.get("spline_order", 3)
    lo, hi = conv.get("grid_range", (-1.0, 1.0))
    # Mostly inside the extended grid, some beyond it on both sides.
    x = torch.randn(batch, in_channels, length, generator=generator, dtype=torch.float64)
    x = (x * 0.8 * (hi - lo) + (lo + hi) / 2).to(dtype)
    base = torch.randn(
        out_channels, in_channels // groups, k, generator=generator, dtype=torch.float64
    )
    spline = torch.randn(
        out_channels,
        in_channels // groups,
        k,
        grid_size + order,
        generator=generator,
        dtype=torch.float64,
    )
    return x, base.to(dtype), spline.to(dtype)


def compare_with_reference(x, base, spline, dtype, what, **conv):
    out, grads, grad_out = run_layer("cpu", x, base, spline, **conv)
    ref_out, ref_grads, _ = run_layer(
        "reference", x.double(), base.double(), spline.double(), grad_out=grad_out.double(), **conv
    )
    tol = TOLERANCE[dtype]
    assert out.dtype == dtype
    assert_close(out, ref_out, tol, f"{what} output")
    for name, grad, ref in zip(("x", "base_weight", "spline_weight"), grads, ref_grads):
        assert grad.dtype == dtype
        assert_close(grad, ref, tol, f"{what} grad {name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_reference(config, dtype, cpu_isa):
    b, cin, cout, t, k, conv, grid = config
    x, base, spline = make_inputs(b, cin, cout, t, k, conv, grid, dtype)
    compare_with_reference(x, base, spline, dtype, f"[{cpu_isa}]", **conv)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_inputs_on_knots_and_outside_grid(order, dtype, cpu_isa):
    grid_size, grid_range = 4, (-1.0, 1.5)
    t = knots(grid_size, order, grid_range, dtype)
    special = torch.cat(
        [t, t[:1] - 0.25, t[-1:] + 0.25, t[:1] - 1e-3, torch.tensor([-7.0, 9.0], dtype=dtype)]
    )
    generator = torch.Generator().manual_seed(order)
    picks = torch.randint(0, special.numel(), (2, 3, 24), generator=generator)
    x = special[picks]
    base = torch.randn(5, 3, 3, generator=generator, dtype=torch.float64).to(dtype)
    spline = torch.randn(5, 3, 3, grid_size + order, generator=generator, dtype=torch.float64).to(
        dtype
    )
    conv = {"padding": 1, "spline_order": order, "grid_range": grid_range}
    if dtype == torch.float64 or order >= 2:
        compare_with_reference(x, base, spline, dtype, f"[{cpu_isa}] knots", **conv)
    else:
        # Linear splines have a kink at every knot: an fp32 knot is not an fp64 knot, so only the
        # forward value (continuous there) is comparable with the fp64 reference.
        out = mkcc_kernels.kan_conv1d(x, base, spline, backend="cpu", **conv)
        ref = mkcc_kernels.kan_conv1d(
            x.double(), base.double(), spline.double(), backend="reference", **conv
        )
        assert_close(out, ref, TOLERANCE[dtype], "fp32 K=1 knots output")


def test_non_contiguous_inputs():
    x, base, spline = make_inputs(3, 4, 6, 40, 3, {}, 5, torch.float64, seed=3)
    x_strided = torch.randn(3, 40, 8, dtype=torch.float64).transpose(1, 2)[:, ::2]
    x_strided.copy_(x)
    assert not x_strided.is_contiguous()
    base_t = base.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    spline_t = spline.transpose(0, 3).contiguous().transpose(0, 3)
    assert not base_t.is_contiguous() and not spline_t.is_contiguous()
    compare_with_reference(
        x_strided, base_t, spline_t, torch.float64, "non-contiguous", stride=2, padding=1
    )


def test_expanded_grad_out():
    """``y.sum().backward()`` hands the kernel a stride-0 gradient."""
    x, base, spline = make_inputs(2, 3, 4, 15, 3, {}, 5, torch.float64, seed=4)
    grads = {}
    for backend in ("cpu", "reference"):
        leaves = [t.clone().requires_grad_(True) for t in (x, base, spline)]
        mkcc_kernels.kan_conv1d(*leaves, padding=1, backend=backend).sum().backward()
        grads[backend] = [leaf.grad for leaf in leaves]
    for name, a, b in zip(("x", "base", "spline"), grads["cpu"], grads["reference"]):
        assert_close(a, b, TOLERANCE[torch.float64], f"sum().backward() grad {name}")


@pytest.mark.parametrize("wanted", ["x", "weights", "spline-only"])
def test_partial_gradients(wanted):
    x, base, spline = make_inputs(2, 3, 4, 12, 3, {}, 5, torch.float64, seed=5)
    grads = {}
    for backend in ("cpu", "reference"):
        xs = x.clone().requires_grad_(wanted == "x")
        bs = base.clone().requires_grad_(wanted == "weights")
        ss = spline.clone().requires_grad_(wanted != "x")
        out = mkcc_kernels.kan_conv1d(xs, bs, ss, padding=1, backend=backend)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out))
        grads[backend] = [t.grad for t in (xs, bs, ss)]
    for a, b in zip(grads["cpu"], grads["reference"]):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close(a, b, TOLERANCE[torch.float64], f"{wanted} gradients")


def test_empty_batch():
    x, base, spline = make_inputs(0, 3, 4, 12, 3, {}, 5, torch.float32)
    out, grads, _ = run_layer("cpu", x, base, spline, padding=1)
    assert out.shape == (0, 4, 12)
    assert grads[0].shape == x.shape
    assert bool((grads[1] == 0).all()) and bool((grads[2] == 0).all())


def test_bias_is_added():
    x, base, spline = make_inputs(2, 3, 4, 12, 3, {}, 5, torch.float64, seed=6)
    bias = torch.randn(4, dtype=torch.float64)
    out, grads, grad_out = run_layer("cpu", x, base, spline, bias=bias, padding=1)
    ref, ref_grads, _ = run_layer(
        "reference", x, base, spline, grad_out=grad_out, bias=bias, padding=1
    )
    assert_close(out, ref, 1e-10, "output with bias")
    assert_close(grads[3], grad_out.sum((0, 2)), 1e-12, "grad bias")
    assert_close(grads[3], ref_grads[3], 1e-12, "grad bias vs reference")


def test_gradcheck_fp64():
    x, base, spline = make_inputs(2, 4, 4, 9, 3, {"groups": 2}, 3, torch.float64, seed=7)
    inputs = tuple(t.clone().requires_grad_(True) for t in (x, base, spline))

    def layer(x, base, spline):
        return mkcc_kernels.kan_conv1d(
            x, base, spline, stride=2, padding=2, dilation=2, groups=2, backend="cpu"
        )

    assert torch.autograd.gradcheck(layer, inputs, eps=1e-6, atol=1e-7)


def test_nan_poisons_exactly_the_windows_that_cover_it():
    x, base, spline = make_inputs(1, 2, 3, 12, 3, {}, 5, torch.float64, seed=8)
    x[0, 1, 5] = float("nan")
    out = mkcc_kernels.kan_conv1d(x, base, spline, padding=1, backend="cpu")
    ref = mkcc_kernels.kan_conv1d(x, base, spline, padding=1, backend="reference")
    assert_close(out, ref, 1e-10, "NaN input")
    assert torch.isnan(out[0, :, 4:7]).all() and not torch.isnan(out[0, :, :4]).any()


def test_deterministic_for_fixed_threads():
    x, base, spline = make_inputs(4, 6, 8, 64, 5, {}, 5, torch.float32, seed=9)
    first = run_layer("cpu", x, base, spline, grad_out=torch.ones(4, 8, 60))
    second = run_layer("cpu", x, base, spline, grad_out=torch.ones(4, 8, 60))
    assert torch.equal(first[0], second[0])
    for a, b in zip(first[1], second[1]):
        assert torch.equal(a, b)
