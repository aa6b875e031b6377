"""Comparison helpers of the test suite."""

from __future__ import annotations

import torch

import mkcc_kernels

# Largest allowed error of a backend against the fp64 reference, relative to the largest
# magnitude of the reference value (so sums of many terms are judged on their scale).
TOLERANCE = {
    torch.float64: 1e-10,
    torch.float32: 3e-5,
    torch.float16: 1e-2,
    torch.bfloat16: 5e-2,
}
# fp32 through TF32 tensor-core dots (inputs rounded to 10-bit mantissas, fp32 accumulation).
TOLERANCE_TF32 = 5e-3


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    """|actual - expected| <= tol * max(1, max|expected|), with the errors in the message."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    actual = actual.detach().double()
    expected = expected.detach().double()
    nan_match = torch.isnan(actual) == torch.isnan(expected)
    assert bool(nan_match.all()), f"{what}: NaN pattern differs ({int((~nan_match).sum())} places)"
    finite = ~torch.isnan(expected)
    if not bool(finite.any()):
        return
    diff = (actual - expected)[finite].abs()
    scale = max(1.0, float(expected[finite].abs().max()))
    max_abs = float(diff.max())
    rel = diff / expected[finite].abs().clamp_min(1e-30)
    assert max_abs <= tol * scale, (
        f"{what}: max abs error {max_abs:.3e} > {tol:.1e} * scale {scale:.3e} "
        f"(max rel error {float(rel.max()):.3e})"
    )


def run_layer(
    backend: str,
    x: torch.Tensor,
    base_weight: torch.Tensor,
    spline_weight: torch.Tensor,
    grad_out: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    **conv,
):
    """Output and the gradients of (x, base_weight, spline_weight[, bias]) for a given grad_out."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, base_weight, spline_weight)]
    bias_leaf = None if bias is None else bias.detach().clone().requires_grad_(True)
    out = mkcc_kernels.kan_conv1d(*leaves, bias=bias_leaf, backend=backend, **conv)
    if grad_out is None:
        grad_out = torch.randn(out.shape, dtype=out.dtype, device=out.device)
    grads = torch.autograd.grad(
        out, leaves + ([bias_leaf] if bias_leaf is not None else []), grad_out
    )
    return out.detach(), list(grads), grad_out


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
    "long-K1": (2, 3, 20, 130, 3, {"padding": 1, "spline_order": 1}, 5),
    "long-K4-stride2": (2, 3, 40, 200, 3, {"stride": 2, "spline_order": 4}, 4),
    "wide-channels": (2, 24, 40, 70, 5, {"stride": 2, "padding": 2}, 5),
    # output rows of exactly one column block (CPU: 4 vectors of fp64 / of fp32) over several
    # 16 x 16 transpose blocks and their edges
    "C_out-30-one-block": (2, 3, 30, 40, 5, {"padding": 2}, 5),
    "C_out-64-long": (2, 2, 64, 140, 5, {"padding": "same"}, 5),
    # CPU: a short output tile (several batch elements per work item) with rows of 3-7 vectors,
    # which the forward sums by knot bucket
    "short-tile-buckets": (32, 3, 50, 12, 3, {"padding": 1}, 5),
    # 1 + G + K = 18 features: the Triton kernels contract them in two blocks of 16
    "G13-K4-two-feature-blocks": (2, 5, 6, 20, 3, {"padding": 1, "spline_order": 4}, 13),
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


def compare_with_reference(backend, x, base, spline, dtype, what, tol=None, device="cpu", **conv):
    """Output and all gradients of ``backend`` (inputs moved to ``device``) against the fp64
    reference on the CPU."""
    out, grads, grad_out = run_layer(backend, *(t.to(device) for t in (x, base, spline)), **conv)
    ref_out, ref_grads, _ = run_layer(
        "reference", *(t.detach().cpu().double() for t in (x, base, spline)),
        grad_out=grad_out.cpu().double(), **conv,
    )  # fmt: skip
    tol = TOLERANCE[dtype] if tol is None else tol
    assert out.dtype == dtype
    assert_close(out, ref_out, tol, f"{what} output")
    for name, grad, ref in zip(("x", "base_weight", "spline_weight"), grads, ref_grads):
        assert grad.dtype == dtype
        assert_close(grad, ref, tol, f"{what} grad {name}")


def compare_with_same_knots(backend, x, base, spline, what, device="cpu", **conv):
    """fp32 against the reference run in fp32 itself, whose knots are the same fp32 numbers: at
    inputs on a knot both pick the same interval, so even the kinks of linear splines (where the
    derivative jumps) must agree."""
    out, grads, grad_out = run_layer(backend, *(t.to(device) for t in (x, base, spline)), **conv)
    ref_out, ref_grads, _ = run_layer("reference", x, base, spline, grad_out=grad_out.cpu(), **conv)
    tol = TOLERANCE[torch.float32]
    assert_close(out.cpu(), ref_out, tol, f"{what} output")
    for name, grad, ref in zip(("x", "base_weight", "spline_weight"), grads, ref_grads):
        assert_close(grad.cpu(), ref, tol, f"{what} grad {name}")
