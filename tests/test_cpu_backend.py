"""The fused C++ CPU backend against the fp64 reference: forward and every gradient, over curated
odd configurations, both dtypes and every CPU instruction-set build."""

from __future__ import annotations

import threading

import pytest
import torch

import mkcc_kernels
from mkcc_kernels import _C
from mkcc_kernels.reference import knots

from .helpers import (
    CONFIGS,
    TOLERANCE,
    assert_close,
    compare_with_reference,
    compare_with_same_knots,
    make_inputs,
    run_layer,
)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_reference(config, dtype, cpu_isa):
    b, cin, cout, t, k, conv, grid = config
    x, base, spline = make_inputs(b, cin, cout, t, k, conv, grid, dtype)
    compare_with_reference("cpu", x, base, spline, dtype, f"[{cpu_isa}]", **conv)


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
        compare_with_reference("cpu", x, base, spline, dtype, f"[{cpu_isa}] knots", **conv)
    else:
        # Linear splines have a kink at every knot and an fp32 knot is not an fp64 knot: compare
        # with the reference computed on the same fp32 knots.
        compare_with_same_knots("cpu", x, base, spline, f"[{cpu_isa}] K=1 knots", **conv)


def test_non_contiguous_inputs():
    x, base, spline = make_inputs(3, 4, 6, 40, 3, {}, 5, torch.float64, seed=3)
    x_strided = torch.randn(3, 40, 8, dtype=torch.float64).transpose(1, 2)[:, ::2]
    x_strided.copy_(x)
    assert not x_strided.is_contiguous()
    base_t = base.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    spline_t = spline.transpose(0, 3).contiguous().transpose(0, 3)
    assert not base_t.is_contiguous() and not spline_t.is_contiguous()
    compare_with_reference(
        "cpu", x_strided, base_t, spline_t, torch.float64, "non-contiguous", stride=2, padding=1
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


@pytest.mark.parametrize(
    "length, conv",
    [(20000, {"padding": 1}), (30011, {"stride": 4099, "dilation": 700})],
    ids=["long-T", "long-stride"],
)
def test_long_inputs_in_bounded_blocks(length, conv):
    """Past the kernels' block of input positions (8192): the forward tiles and the weight
    gradient's time blocks join seamlessly."""
    x, base, spline = make_inputs(2, 3, 5, length, 3, conv, 5, torch.float64, seed=11)
    compare_with_reference("cpu", x, base, spline, torch.float64, "[cpu long]", **conv)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "length, conv",
    [(9, {"padding": 1}), (4, {"padding": 2, "dilation": 2}), (15, {"stride": 2})],
    ids=["T9", "T4-dilation", "T15-stride2"],
)
def test_short_outputs_blocked_over_batch(length, conv, threads):
    """Short outputs put several batch elements in one work item (17: a partial last block)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, base, spline = make_inputs(17, 5, 20, length, 3, conv, 5, torch.float64, seed=12)
        compare_with_reference("cpu", x, base, spline, torch.float64, "[cpu short]", **conv)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("layout", ["transposed", "expanded", "strided"])
def test_grad_out_in_any_layout(layout):
    """The backward reads grad_out through its strides (autograd hands over expanded tensors
    for sums and transposed ones after permutes): all gradients match the reference."""
    generator = torch.Generator().manual_seed(3)
    shape = (3, 20, 21)

    def rand(*size):
        return torch.randn(*size, generator=generator, dtype=torch.float64)

    x, base, spline = rand(3, 6, 21), rand(20, 3, 3), rand(20, 3, 3, 8)
    if layout == "transposed":
        grad_out = rand(3, 21, 20).transpose(1, 2)
    elif layout == "expanded":
        grad_out = rand(1, 20, 1).expand(*shape)
    else:
        grad_out = rand(3, 20, 42)[:, :, ::2]
    assert grad_out.shape == shape and not grad_out.is_contiguous()
    grads = {}
    for backend in ("cpu", "reference"):
        inputs = [t.clone().requires_grad_() for t in (x, base, spline)]
        out = mkcc_kernels.kan_conv1d(*inputs, padding=1, groups=2, backend=backend)
        grads[backend] = torch.autograd.grad(out, inputs, grad_out)
    for name, got, want in zip(("x", "base", "spline"), grads["cpu"], grads["reference"]):
        assert_close(got, want, TOLERANCE[torch.float64], f"{layout} grad_out: d{name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize(
    "batch, out_channels, length, conv",
    [
        (4, 210, 300, {"padding": 2}),
        (4, 200, 301, {"stride": 2, "dilation": 2, "padding": 3}),
        (4, 2 * 230, 140, {"groups": 2, "padding": "same"}),
        (17, 130, 15, {"padding": 2}),
    ],
    ids=["210", "200-stride2-dilation2", "groups2-230", "short-T-batch17"],
)
def test_wide_output_rows(batch, out_channels, length, conv, dtype, cpu_isa):
    """Output rows of 8 vectors or more take the forward's knot-bucket path: column blocks of the
    accumulator (a partial last block when the width is not a multiple of 4 vectors), and for
    short outputs the windows of several batch elements in one set of buckets (17: a partial
    last batch block)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # the work split these cases are sized for
    try:
        groups = conv.get("groups", 1)
        x, base, spline = make_inputs(
            batch, 3 * groups, out_channels, length, 5, conv, 5, dtype, seed=5
        )
        compare_with_reference("cpu", x, base, spline, dtype, f"[{cpu_isa}] wide rows", **conv)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_workspace_reused_across_calls(dtype):
    """Buffers kept from a call with NaN weights and a NaN grad_out, of other sizes and layouts,
    must not leak into later calls: every element a kernel reads is written in its own call
    (outputs are not poisoned here, so stale values stay what the earlier call left)."""
    _C.set_poison_outputs(False)
    mkcc_kernels.release_cpu_workspace()
    shapes = [
        (3, 20, 70, 90, 5, {"padding": 2}),
        (2, 6, 9, 31, 3, {"stride": 2, "padding": 1}),
        (4, 2 * 5, 2 * 40, 17, 7, {"groups": 2, "padding": "same"}),
        (2, 20, 70, 64, 5, {"dilation": 2}),
    ]
    for step, (b, cin, cout, t, k, conv) in enumerate(shapes):
        x, base, spline = make_inputs(b, cin, cout, t, k, conv, 5, dtype, seed=20 + step)
        compare_with_reference("cpu", x, base, spline, dtype, f"call {step}", **conv)
        nan_spline = spline.clone()
        nan_spline.view(-1)[::3] = float("nan")
        leaves = [t.clone().requires_grad_(True) for t in (x, base, nan_spline)]
        out = mkcc_kernels.kan_conv1d(*leaves, backend="cpu", **conv)
        out.backward(torch.full_like(out, float("nan")))
        assert torch.isnan(out).any() and torch.isnan(leaves[0].grad).any()
    assert mkcc_kernels.cpu_workspace_bytes() > 0


def test_workspace_limit_and_release():
    x, base, spline = make_inputs(2, 8, 24, 50, 5, {"padding": 2}, 5, torch.float64, seed=31)
    limit = mkcc_kernels.cpu_workspace_limit()
    assert limit == 256 << 20
    try:
        mkcc_kernels.release_cpu_workspace()
        assert mkcc_kernels.cpu_workspace_bytes() == 0
        kept_out, kept_grads, grad_out = run_layer("cpu", x, base, spline, padding=2)
        held = mkcc_kernels.cpu_workspace_bytes()
        assert held > 0
        run_layer("cpu", x, base, spline, grad_out=grad_out, padding=2)
        assert mkcc_kernels.cpu_workspace_bytes() == held  # reused, not grown
        mkcc_kernels.release_cpu_workspace()
        assert mkcc_kernels.cpu_workspace_bytes() == 0

        mkcc_kernels.set_cpu_workspace_limit(0)
        assert mkcc_kernels.cpu_workspace_limit() == 0
        out, grads, _ = run_layer("cpu", x, base, spline, grad_out=grad_out, padding=2)
        assert mkcc_kernels.cpu_workspace_bytes() == 0
        assert torch.equal(out, kept_out)
        for got, want in zip(grads, kept_grads):
            assert torch.equal(got, want)

        # A limit that holds the forward's weights but not every backward buffer: some calls
        # allocate their own, with the same results.
        mkcc_kernels.set_cpu_workspace_limit(held // 2)
        out, grads, _ = run_layer("cpu", x, base, spline, grad_out=grad_out, padding=2)
        assert 0 < mkcc_kernels.cpu_workspace_bytes() <= held // 2
        assert torch.equal(out, kept_out)
        for got, want in zip(grads, kept_grads):
            assert torch.equal(got, want)
    finally:
        mkcc_kernels.set_cpu_workspace_limit(limit)
        mkcc_kernels.release_cpu_workspace()


def test_workspace_is_per_thread():
    x, base, spline = make_inputs(2, 8, 24, 50, 5, {"padding": 2}, 5, torch.float64, seed=32)
    mkcc_kernels.release_cpu_workspace()
    expected_out, expected_grads, grad_out = run_layer("cpu", x, base, spline, padding=2)
    held = mkcc_kernels.cpu_workspace_bytes()
    results = {}

    def worker():
        results["before"] = mkcc_kernels.cpu_workspace_bytes()
        results["run"] = run_layer("cpu", x, base, spline, grad_out=grad_out, padding=2)
        results["after"] = mkcc_kernels.cpu_workspace_bytes()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert results["before"] == 0 and results["after"] == held
    assert mkcc_kernels.cpu_workspace_bytes() == held
    assert torch.equal(results["run"][0], expected_out)
    for got, want in zip(results["run"][1], expected_grads):
        assert torch.equal(got, want)


@pytest.mark.parametrize(
    "value, error",
    [(-1, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError)],
    ids=["negative", "float", "str", "bool"],
)
def test_workspace_limit_rejects_bad_values(value, error):
    with pytest.raises(error, match="nbytes"):
        mkcc_kernels.set_cpu_workspace_limit(value)
