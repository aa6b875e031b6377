"""Fake kernels and autograd of the C++ ops ``mkcc::kan_conv1d_fwd`` / ``mkcc::kan_conv1d_bwd``
(CPU kernels now; CUDA kernels register behind the same schema).

Backward saves only ``x`` and the two weights; it calls ``mkcc::kan_conv1d_bwd``, which
recomputes the basis.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _out_length(
    length: int, kernel_size: int, stride: int, pad_left: int, pad_right: int, dilation: int
):
    return (length + pad_left + pad_right - dilation * (kernel_size - 1) - 1) // stride + 1


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
    out_length = _out_length(
        x.shape[2], base_weight.shape[2], stride, pad_left, pad_right, dilation
    )
    return x.new_empty((x.shape[0], base_weight.shape[0], out_length))


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


def _setup_context(ctx, inputs, output) -> None:
    x, base_weight, spline_weight, *conv_args = inputs
    ctx.save_for_backward(x, base_weight, spline_weight)
    ctx.conv_args = conv_args


def _backward(ctx, grad_out: Tensor):
    x, base_weight, spline_weight = ctx.saved_tensors
    needs_x, needs_base, needs_spline = ctx.needs_input_grad[:3]
    grad_x, grad_base, grad_spline = torch.ops.mkcc.kan_conv1d_bwd(
        grad_out.contiguous(),
        x,
        base_weight,
        spline_weight,
        *ctx.conv_args,
        needs_x,
        needs_base or needs_spline,
    )
    no_grad_for_args = (None,) * len(ctx.conv_args)
    return (
        grad_x if needs_x else None,
        grad_base if needs_base else None,
        grad_spline if needs_spline else None,
        *no_grad_for_args,
    )


torch.library.register_autograd("mkcc::kan_conv1d_fwd", _backward, setup_context=_setup_context)


def _no_double_backward(ctx, *grads):
    raise RuntimeError(
        "kan_conv1d: gradients of gradients (double backward) are not implemented by the fused "
        "kernels; use backend='reference' for them"
    )


# Without this, backpropagating through the backward op would silently give no gradient.
torch.library.register_autograd(
    "mkcc::kan_conv1d_bwd", _no_double_backward, setup_context=lambda ctx, inputs, output: None
)
