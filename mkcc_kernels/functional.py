"""``kan_conv1d``: the checks of ``checks.py``, padding, static backend choice, bias."""

from __future__ import annotations

import torch
from torch import Tensor

from .backends import resolve_backend
from .checks import (
    Padding,
    check_conv1d_tensors,
    check_span,
    grid_range_arg,
    int_arg,
    resolve_padding,
    spline_order_arg,
)
from .conv_args import Conv1dArgs
from .reference import kan_conv1d_reference, kan_conv1d_unfold


def kan_conv1d(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: Padding = 0,
    dilation: int = 1,
    groups: int = 1,
    spline_order: int = 3,
    grid_range: tuple[float, float] = (-1.0, 1.0),
    backend: str = "auto",
) -> Tensor:
    """KAN convolution: ``x [B, C_in, T]`` -> ``[B, C_out, T_out]``.

    ``y[b, o, t] = bias[o] + sum_{c, j} base_weight[o, c, j] * silu(x[b, c, p])
    + sum_i spline_weight[o, c, j, i] * B_i(x[b, c, p])`` with ``p = t*stride + j*dilation - pad``;
    taps outside ``[0, T)`` contribute nothing. ``base_weight: [C_out, C_in/groups, k]``,
    ``spline_weight: [C_out, C_in/groups, k, G + K]`` (``K = spline_order``), ``bias: [C_out]``.
    ``padding``: int, ``"same"`` (stride 1) or ``"valid"``. ``backend``: ``"auto"``, ``"cpu"``,
    ``"cuda"``, ``"triton"``, ``"reference"`` or ``"unfold"`` (see ``available_backends``).
    """
    stride = int_arg("stride", stride, 1)
    dilation = int_arg("dilation", dilation, 1)
    groups = int_arg("groups", groups, 1)
    spline_order = spline_order_arg(spline_order)
    grid_lo, grid_hi = grid_range_arg(grid_range)
    check_conv1d_tensors(x, base_weight, spline_weight, groups, spline_order, bias)
    kernel_size = base_weight.shape[2]
    pad_left, pad_right = resolve_padding(padding, kernel_size, stride, dilation)
    check_span(x.shape[2], kernel_size, dilation, pad_left, pad_right)
    backend = resolve_backend(backend, x)

    conv = Conv1dArgs(stride, pad_left, pad_right, dilation, groups, spline_order, grid_lo, grid_hi)
    if backend == "reference":
        out = kan_conv1d_reference(x, base_weight, spline_weight, conv)
    elif backend == "unfold":
        out = kan_conv1d_unfold(x, base_weight, spline_weight, conv)
    elif backend == "triton":
        out = torch.ops.mkcc.kan_conv1d_fwd_triton(x, base_weight, spline_weight, *conv)
    else:  # "cpu" and "cuda": the C++ kernels behind one schema
        out = torch.ops.mkcc.kan_conv1d_fwd(x, base_weight, spline_weight, *conv)
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out
