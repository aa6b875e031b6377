"""Fake kernels and autograd of the C++ ops ``mkcc::kan_conv1d_fwd`` / ``mkcc::kan_conv1d_bwd``
(CPU kernels now; CUDA kernels register behind the same schema).

Backward saves only ``x`` and the two weights; it calls ``mkcc::kan_conv1d_bwd``, which
recomputes the basis.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._autograd import register
from .common import out_length


@torch.library.register_fake("mkcc::kan_conv1d_fwd")
def _kan_conv1d_fwd_fake(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    stride: int,
    pad_left: int,
    pad_right: int,
    dilation: int,
    groups: int,
    spline_order: int,
    grid_lo: float,
    grid_hi: float,
) -> Tensor:
    torch._check(x.dim() == 3, lambda: "x: expected a 3-D tensor")
    length_out = out_length(x.shape[2], base_weight.shape[2], stride, pad_left, pad_right, dilation)
    return x.new_empty((x.shape[0], base_weight.shape[0], length_out))


@torch.library.register_fake("mkcc::kan_conv1d_bwd")
def _kan_conv1d_bwd_fake(
    grad_out: Tensor,
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    stride: int,
    pad_left: int,
    pad_right: int,
    dilation: int,
    groups: int,
    spline_order: int,
    grid_lo: float,
    grid_hi: float,
    input_grad: bool,
    weight_grad: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    grad_x = x.new_empty(x.shape) if input_grad else x.new_empty((0,))
    if weight_grad:
        return (
            grad_x,
            base_weight.new_empty(base_weight.shape),
            spline_weight.new_empty(spline_weight.shape),
        )
    return grad_x, x.new_empty((0,)), x.new_empty((0,))


register("mkcc::kan_conv1d_fwd", "mkcc::kan_conv1d_bwd")
