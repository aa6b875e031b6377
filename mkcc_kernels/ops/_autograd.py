"""Autograd shared by the fused ops: backward calls the backend's backward op, which recomputes
the basis; only ``x`` and the two weights are saved."""

from __future__ import annotations

import torch
from torch import Tensor


def _setup_context(ctx, inputs, output) -> None:
    x, base_weight, spline_weight, *conv_args = inputs
    ctx.save_for_backward(x, base_weight, spline_weight)
    ctx.conv_args = conv_args


def _no_double_backward(layer: str):
    def backward(ctx, *grads):
        raise RuntimeError(
            f"{layer}: gradients of gradients (double backward) are not implemented by the fused "
            "kernels; use backend='reference' for them"
        )

    return backward


def register(forward_op: str, backward_op: str, layer: str = "kan_conv1d") -> None:
    """Autograd of the op ``forward_op`` through the op ``backward_op`` ("mkcc::name"), which
    takes ``grad_out``, the forward's arguments, then the ``input_grad`` and ``weight_grad``
    flags, and returns the three gradients (empty where not asked for). Serves the 1-D and 2-D
    convolutions (``layer`` names the function in errors)."""
    backward_fn = getattr(torch.ops.mkcc, backward_op.split("::")[1])

    def backward(ctx, grad_out: Tensor):
        x, base_weight, spline_weight = ctx.saved_tensors
        needs_x, needs_base, needs_spline = ctx.needs_input_grad[:3]
        # No .contiguous(): the backward ops read grad_out through its strides, so the expanded
        # gradient of y.sum() is not materialized (a copy the size of y, and the heap growth
        # that glibc then trims and faults back in on every step).
        grad_x, grad_base, grad_spline = backward_fn(
            grad_out, x, base_weight, spline_weight, *ctx.conv_args,
            needs_x, needs_base or needs_spline,
        )  # fmt: skip
        return (
            grad_x if needs_x else None,
            grad_base if needs_base else None,
            grad_spline if needs_spline else None,
            *((None,) * len(ctx.conv_args)),
        )

    torch.library.register_autograd(forward_op, backward, setup_context=_setup_context)
    # Without this, backpropagating through the backward op would silently give no gradient.
    torch.library.register_autograd(
        backward_op,
        _no_double_backward(layer),
        setup_context=lambda ctx, inputs, output: None,
    )


def _setup_linear_context(ctx, inputs, output) -> None:
    x, base_weight, spline_weight, spline_scaler, grid, spline_order = inputs
    ctx.save_for_backward(x, base_weight, spline_weight, spline_scaler, grid)
    ctx.spline_order = spline_order


def _no_linear_double_backward(ctx, *grads):
    raise RuntimeError(
        "kan_linear: gradients of gradients (double backward) are not implemented by the fused "
        "kernels; use backend='reference' for them"
    )


def register_linear(forward_op: str, backward_op: str) -> None:
    """Autograd of a KANLinear op (``common.LINEAR_FORWARD_SCHEMA``) through its backward op
    (``common.LINEAR_BACKWARD_SCHEMA``): saves ``x``, the weights and the grid, nothing
    derived from them; the grid gets no gradient."""
    backward_fn = getattr(torch.ops.mkcc, backward_op.split("::")[1])

    def backward(ctx, grad_out: Tensor):
        x, base_weight, spline_weight, spline_scaler, grid = ctx.saved_tensors
        needs_x, needs_base, needs_spline, needs_scaler = ctx.needs_input_grad[:4]
        grad_x, grad_base, grad_spline, grad_scaler = backward_fn(
            grad_out, x, base_weight, spline_weight, spline_scaler, grid, ctx.spline_order,
            needs_x, needs_base or needs_spline or needs_scaler,
        )  # fmt: skip
        return (
            grad_x if needs_x else None,
            grad_base if needs_base else None,
            grad_spline if needs_spline else None,
            grad_scaler if needs_scaler else None,
            None,
            None,
        )

    torch.library.register_autograd(forward_op, backward, setup_context=_setup_linear_context)
    torch.library.register_autograd(
        backward_op,
        _no_linear_double_backward,
        setup_context=lambda ctx, inputs, output: None,
    )
