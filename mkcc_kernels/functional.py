"""``kan_conv1d`` and ``kan_conv2d``: the checks of ``checks.py``, padding, static backend
choice, bias."""

from __future__ import annotations

import torch
from torch import Tensor

from .backends import resolve_backend, resolve_conv2d_backend
from .checks import (
    Padding,
    check_conv1d_tensors,
    check_conv2d_span,
    check_conv2d_tensors,
    check_span,
    grid_range_arg,
    int_arg,
    pair_arg,
    resolve_padding,
    resolve_padding2d,
    spline_order_arg,
)
from .conv_args import Conv1dArgs, Conv2dArgs
from .reference import (
    kan_conv1d_reference,
    kan_conv1d_unfold,
    kan_conv2d_reference,
    kan_conv2d_unfold,
)


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


def kan_conv2d(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    spline_order: int = 3,
    grid_range: tuple[float, float] = (-1.0, 1.0),
    backend: str = "auto",
) -> Tensor:
    """2-D KAN convolution: ``x [B, C_in, H, W]`` -> ``[B, C_out, H_out, W_out]``.

    ``y[b, o, u, v] = bias[o] + sum_{c, i, j} phi_{o, c, i, j}(x[b, c, u*sh + i*dh - pad_top,
    v*sw + j*dw - pad_left])`` with ``phi(x) = base_weight[o, c, i, j] * silu(x) +
    sum_m spline_weight[o, c, i, j, m] * B_m(x)``; taps outside the input contribute nothing.
    ``base_weight: [C_out, C_in/groups, kh, kw]``, ``spline_weight: [C_out, C_in/groups, kh, kw,
    G + K]``, ``bias: [C_out]``. ``stride``, ``dilation``: int or pair; ``padding``: int, pair,
    ``"same"`` (stride 1) or ``"valid"``. ``backend``: ``"auto"``, ``"cpu"``, ``"triton"``,
    ``"reference"`` or ``"unfold"`` (``available_backends(layer="conv2d")``). A channels-last
    ``x`` gives a channels-last output, as ``nn.Conv2d``.
    """
    stride = pair_arg("stride", stride, 1)
    dilation = pair_arg("dilation", dilation, 1)
    groups = int_arg("groups", groups, 1)
    spline_order = spline_order_arg(spline_order)
    grid_lo, grid_hi = grid_range_arg(grid_range)
    check_conv2d_tensors(x, base_weight, spline_weight, groups, spline_order, bias)
    kernel_size = (base_weight.shape[2], base_weight.shape[3])
    pads = resolve_padding2d(padding, kernel_size, stride, dilation)
    conv = Conv2dArgs(*stride, *pads, *dilation, groups, spline_order, grid_lo, grid_hi)
    check_conv2d_span(x, base_weight, conv)
    backend = resolve_conv2d_backend(backend, x)

    if backend == "reference":
        out = kan_conv2d_reference(x, base_weight, spline_weight, conv)
    elif backend == "unfold":
        out = kan_conv2d_unfold(x, base_weight, spline_weight, conv)
    elif backend == "triton":
        out = torch.ops.mkcc.kan_conv2d_fwd_triton(x, base_weight, spline_weight, *conv)
    else:
        out = torch.ops.mkcc.kan_conv2d_fwd(x, base_weight, spline_weight, *conv)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    if x.dim() == 4 and x.shape[1] > 1 and not x.is_contiguous():
        if x.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
    return out
