"""Comparison helpers of the test suite."""

from __future__ import annotations

import torch

import mkcc_kernels

# Largest allowed error of a backend against the fp64 reference, relative to the largest
# magnitude of the reference value (so sums of many terms are judged on their scale).
TOLERANCE = {
    torch.float64: 1e-10,
    torch.float32: 3e-5,
}


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
        grad_out = torch.randn(out.shape, dtype=out.dtype)
    grads = torch.autograd.grad(
        out, leaves + ([bias_leaf] if bias_leaf is not None else []), grad_out
    )
    return out.detach(), list(grads), grad_out
