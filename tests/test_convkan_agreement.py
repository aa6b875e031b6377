"""KANConv2d against the ``convkan`` package's ``ConvKAN`` (skipped when it is not installed: it
is a benchmark extra, ``pip install convkan``).

``ConvKAN`` runs efficient-kan's ``KANLinear`` on every ``F.unfold`` patch: per group, the patch
of ``C_in/groups * kh * kw`` values in the order (channel, kernel row, kernel column) is its
input vector, and output channel ``o`` is group ``o // (C_out/groups)``'s output
``o % (C_out/groups)``. Its parameters are therefore views of ours:

    base_weight    [groups, C_out/groups, C_in/groups * kh * kw]        = ours, reshaped
    spline_weight * spline_scaler[..., None]
                   [groups, C_out/groups, C_in/groups * kh * kw, G + K]  = ours, reshaped

(its spline scaler is a separate parameter, efficient-kan's "standalone scale"), on the same
uniform knots ``(m - K) * h + lo``, ``m = 0 .. G + 2K`` (kept per group and input feature, built
in the default dtype), with SiLU as the base activation and no bias. What differs is the zero
padding: it pads ``x`` with zeros, so a padded tap adds ``phi(0) = sum_i spline_weight[i] *
B_i(0)``, while ours adds nothing (the expanded features are zero-padded). The layers agree at
``padding=0`` and, at any padding, on the output positions whose taps are all inside the image.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mkcc_kernels
from mkcc_kernels.reference import knots

from .helpers import TOLERANCE, assert_close

convkan = pytest.importorskip("convkan", reason="convkan is not installed (pip install convkan)")

GRID_SIZE, SPLINE_ORDER = 5, 3
BACKENDS = ["reference", "cpu"]


def fused_op_available() -> bool:
    return hasattr(torch.ops.mkcc, "kan_conv2d_fwd")


def skip_missing(backend: str) -> None:
    if backend == "cpu" and not fused_op_available():
        pytest.skip(
            "this build of mkcc_kernels has no fused KANConv2d CPU op "
            "(torch.ops.mkcc.kan_conv2d_fwd); rebuild the extension"
        )


def convkan_from_ours(layer: mkcc_kernels.KANConv2d, padding=0):
    """A ``convkan.ConvKAN`` with ``layer``'s geometry and weights (spline scaler 1, our knots in
    our dtype)."""
    groups = layer.groups
    out_channels, in_per_group, kh, kw = layer.base_weight.shape
    dtype = layer.base_weight.dtype
    theirs = convkan.ConvKAN(
        layer.in_channels,
        out_channels,
        (kh, kw),
        stride=layer.stride,
        padding=padding,
        dilation=layer.dilation,
        groups=groups,
        grid_size=layer.grid_size,
        spline_order=layer.spline_order,
        grid_range=layer.grid_range,
    ).to(dtype)
    kan = theirs.kan_layer
    per_group = (groups, out_channels // groups, in_per_group * kh * kw)
    t = knots(layer.grid_size, layer.spline_order, layer.grid_range, dtype)
    with torch.no_grad():
        kan.base_weight.copy_(layer.base_weight.reshape(per_group))
        kan.spline_weight.copy_(layer.spline_weight.reshape(*per_group, -1))
        kan.spline_scaler.fill_(1.0)
        kan.grid.copy_(t.expand_as(kan.grid))
    return theirs


def ours_from_convkan(theirs, backend: str) -> mkcc_kernels.KANConv2d:
    """The other direction, from ConvKAN's own (random) initialization: our spline weight is its
    scaled spline weight."""
    kan = theirs.kan_layer
    dtype = kan.base_weight.dtype
    layer = mkcc_kernels.KANConv2d(
        theirs.in_channels,
        theirs.out_channels,
        theirs.kernel_size,
        stride=theirs.stride,
        dilation=theirs.dilation,
        groups=theirs.groups,
        bias=False,
        grid_size=kan.grid_size,
        spline_order=kan.spline_order,
        backend=backend,
        dtype=dtype,
    )
    with torch.no_grad():
        layer.base_weight.copy_(kan.base_weight.reshape(layer.base_weight.shape))
        layer.spline_weight.copy_(kan.scaled_spline_weight.reshape(layer.spline_weight.shape))
    return layer


GEOMETRIES = [
    # in, out, kernel, stride, dilation, groups
    (3, 8, 3, 1, 1, 1),
    (4, 6, (3, 2), (2, 1), 1, 1),
    (6, 4, 3, 1, (2, 1), 2),
    (8, 8, 3, 2, 2, 8),  # depthwise
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "-".join(map(str, g)))
def test_forward_and_gradients_agree_at_padding_0(backend, geometry):
    skip_missing(backend)
    c_in, c_out, kernel, stride, dilation, groups = geometry
    torch.manual_seed(0)
    ours = mkcc_kernels.KANConv2d(
        c_in, c_out, kernel, stride=stride, dilation=dilation, groups=groups, bias=False,
        backend=backend, dtype=torch.float64, scale_noise=1.0,
    )  # fmt: skip
    with torch.no_grad():  # splines of the same size as the base term
        ours.spline_weight.normal_()
    theirs = convkan_from_ours(ours)
    x = (1.5 * torch.randn(3, c_in, 11, 10, dtype=torch.float64)).requires_grad_(True)
    out = ours(x)
    expected = theirs(x)
    assert_close(out, expected, TOLERANCE[torch.float64], f"{backend} vs convkan, forward")

    grad_out = torch.randn_like(out)
    ours_grads = torch.autograd.grad(out, [x, ours.base_weight, ours.spline_weight], grad_out)
    kan = theirs.kan_layer
    theirs_grads = torch.autograd.grad(expected, [x, kan.base_weight, kan.spline_weight], grad_out)
    for name, a, b in zip(("x", "base_weight", "spline_weight"), ours_grads, theirs_grads):
        assert_close(a.reshape(b.shape), b, TOLERANCE[torch.float64], f"{backend}: grad {name}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_convkan_scaled_spline_weight_is_our_spline_weight(backend):
    skip_missing(backend)
    torch.manual_seed(1)
    theirs = convkan.ConvKAN(4, 6, 3, groups=2)  # its own initialization, random scaler
    ours = ours_from_convkan(theirs, backend)
    x = torch.randn(2, 4, 9, 9)
    # fp32 on its fp32 knots (built as ours are, in fp32)
    assert_close(ours(x), theirs(x), TOLERANCE[torch.float32], f"{backend} vs convkan, fp32")


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_convention_differs(backend):
    """ConvKAN pads ``x`` (a padded tap adds ``phi(0)``): it equals ours on the zero-padded input
    at padding 0; ours at padding 1 matches it only on the interior."""
    skip_missing(backend)
    torch.manual_seed(2)
    ours = mkcc_kernels.KANConv2d(
        3, 5, 3, padding=1, bias=False, backend=backend, dtype=torch.float64, scale_noise=1.0
    )
    theirs = convkan_from_ours(ours, padding=1)
    x = torch.randn(2, 3, 8, 7, dtype=torch.float64)
    with torch.no_grad():
        out, expected = ours(x), theirs(x)
        on_padded_x = mkcc_kernels.kan_conv2d(
            F.pad(x, (1, 1, 1, 1)), ours.base_weight, ours.spline_weight, backend=backend
        )
    tol = TOLERANCE[torch.float64]
    assert_close(on_padded_x, expected, tol, "convkan at padding 1 = ours on F.pad(x) at 0")
    assert_close(out[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], tol, "interior")
    border = (out - expected).abs()
    border[..., 1:-1, 1:-1] = 0
    assert float(border.max()) > 1e-3  # phi(0) != 0: the borders differ
