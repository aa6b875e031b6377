"""What the op registrations share: the KANConv1d op signature (written once for the Python ops;
``csrc/registration.cpp`` defines the C++ ops with the same text, and a test holds the two
together), the output shapes of the fake kernels, and the outputs' allocation."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _C
from ..conv_args import Conv1dArgs

__all__ = [
    "BACKWARD_SCHEMA",
    "CONV2D_ARGUMENTS",
    "CONV2D_BACKWARD_SCHEMA",
    "CONV2D_FORWARD_SCHEMA",
    "LINEAR_BACKWARD_SCHEMA",
    "LINEAR_FORWARD_SCHEMA",
    "CONV1D_ARGUMENTS",
    "FORWARD_SCHEMA",
    "Conv1dArgs",
    "conv2d_forward_shape",
    "fake_backward",
    "fake_conv2d_backward",
    "fake_conv2d_forward",
    "fake_forward",
    "fake_linear_backward",
    "fake_linear_forward",
    "forward_shape",
    "new_output",
    "out_length",
]

# The arguments after the tensors: the geometry of the taps (as resolved by ``kan_conv1d``) and
# the spline (order, grid range); ``Conv1dArgs`` holds them as one value.
CONV1D_ARGUMENTS = (
    "int stride, int pad_left, int pad_right, int dilation, int groups, int spline_order, "
    "float grid_lo, float grid_hi"
)
FORWARD_SCHEMA = (
    f"(Tensor x, Tensor base_weight, Tensor spline_weight, {CONV1D_ARGUMENTS}) -> Tensor"
)
# Gradients with respect to x and to both weights; one that is not asked for comes back as an
# empty tensor of shape [0].
BACKWARD_SCHEMA = (
    f"(Tensor grad_out, Tensor x, Tensor base_weight, Tensor spline_weight, {CONV1D_ARGUMENTS}, "
    "bool input_grad, bool weight_grad) -> (Tensor, Tensor, Tensor)"
)

# KANConv2d: x [B, C_in, H, W], base_weight [C_out, C_in / groups, kh, kw], spline_weight
# [C_out, C_in / groups, kh, kw, G + K]; the arguments after the tensors as ``Conv2dArgs``.
CONV2D_ARGUMENTS = (
    "int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, "
    "int dilation_h, int dilation_w, int groups, int spline_order, float grid_lo, float grid_hi"
)
CONV2D_FORWARD_SCHEMA = (
    f"(Tensor x, Tensor base_weight, Tensor spline_weight, {CONV2D_ARGUMENTS}) -> Tensor"
)
CONV2D_BACKWARD_SCHEMA = (
    f"(Tensor grad_out, Tensor x, Tensor base_weight, Tensor spline_weight, {CONV2D_ARGUMENTS}, "
    "bool input_grad, bool weight_grad) -> (Tensor, Tensor, Tensor)"
)

# KANLinear on 2-D inputs ``x [N, in]`` (the functional flattens leading dimensions):
# ``base_weight [out, in]``, ``spline_weight [out, in, G + K]`` (unscaled), ``spline_scaler
# [out, in]`` or None, ``grid [in, G + 2K + 1]`` (each feature's knots, non-decreasing). The scaler
# is an input of the ops (not folded into the spline weight before them), so that autograd saves
# no scaled copy of the weights.
LINEAR_FORWARD_SCHEMA = (
    "(Tensor x, Tensor base_weight, Tensor spline_weight, Tensor? spline_scaler, Tensor grid, "
    "int spline_order) -> Tensor"
)
# Gradients with respect to x, base_weight, spline_weight and spline_scaler; one not asked for
# (input_grad / weight_grad false, or no scaler) comes back as an empty tensor of shape [0].
LINEAR_BACKWARD_SCHEMA = (
    "(Tensor grad_out, Tensor x, Tensor base_weight, Tensor spline_weight, Tensor? spline_scaler, "
    "Tensor grid, int spline_order, bool input_grad, bool weight_grad) "
    "-> (Tensor, Tensor, Tensor, Tensor)"
)


def out_length(length, kernel_size, stride, pad_left, pad_right, dilation):
    """T_out as ``nn.Conv1d`` computes it (works on SymInts)."""
    return (length + pad_left + pad_right - dilation * (kernel_size - 1) - 1) // stride + 1


def forward_shape(x: Tensor, base_weight: Tensor, stride, pad_left, pad_right, dilation, *_):
    """``[B, C_out, T_out]`` of a forward op called with these arguments."""
    length_out = out_length(x.shape[2], base_weight.shape[2], stride, pad_left, pad_right, dilation)
    return x.shape[0], base_weight.shape[0], length_out


def conv2d_forward_shape(
    x: Tensor, base_weight: Tensor, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right,
    dilation_h, dilation_w, *_,
):  # fmt: skip
    """``[B, C_out, H_out, W_out]`` of a 2-D forward op called with these arguments."""
    kh, kw = base_weight.shape[2], base_weight.shape[3]
    out_h = out_length(x.shape[2], kh, stride_h, pad_top, pad_bottom, dilation_h)
    out_w = out_length(x.shape[3], kw, stride_w, pad_left, pad_right, dilation_w)
    return x.shape[0], base_weight.shape[0], out_h, out_w


def new_output(shape, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialized output; NaN-filled while the tests poison outputs, so that an element a
    kernel fails to write shows up."""
    out = torch.empty(shape, dtype=dtype or like.dtype, device=like.device)
    if _C.poison_outputs():
        out.fill_(float("nan"))
    return out


def fake_forward(x: Tensor, base_weight: Tensor, spline_weight: Tensor, *conv) -> Tensor:
    """The fake kernel of a forward op (``FORWARD_SCHEMA``)."""
    torch._check(x.dim() == 3, lambda: "x: expected a 3-D tensor")
    return x.new_empty(forward_shape(x, base_weight, *conv))


def fake_backward(grad_out, x, base_weight, spline_weight, *conv_and_flags):
    """The fake kernel of a backward op (``BACKWARD_SCHEMA``)."""
    input_grad, weight_grad = conv_and_flags[-2:]
    grad_x = x.new_empty(x.shape if input_grad else (0,))
    if not weight_grad:
        return grad_x, x.new_empty((0,)), x.new_empty((0,))
    return (
        grad_x,
        base_weight.new_empty(base_weight.shape),
        spline_weight.new_empty(spline_weight.shape),
    )


def fake_conv2d_forward(x: Tensor, base_weight: Tensor, spline_weight: Tensor, *conv) -> Tensor:
    """The fake kernel of a 2-D forward op (``CONV2D_FORWARD_SCHEMA``)."""
    torch._check(x.dim() == 4, lambda: "x: expected a 4-D tensor")
    return x.new_empty(conv2d_forward_shape(x, base_weight, *conv))


# The backward's outputs have the same shapes in 1-D and 2-D.
fake_conv2d_backward = fake_backward


def fake_linear_forward(x, base_weight, spline_weight, spline_scaler, grid, spline_order):
    """The fake kernel of a KANLinear forward op (``LINEAR_FORWARD_SCHEMA``)."""
    torch._check(x.dim() == 2, lambda: "x: expected a 2-D tensor [N, in_features]")
    return x.new_empty((x.shape[0], base_weight.shape[0]))


def fake_linear_backward(
    grad_out, x, base_weight, spline_weight, spline_scaler, grid, spline_order, input_grad,
    weight_grad,
):  # fmt: skip
    """The fake kernel of a KANLinear backward op (``LINEAR_BACKWARD_SCHEMA``)."""
    empty = x.new_empty((0,))
    grad_x = x.new_empty(x.shape) if input_grad else empty
    if not weight_grad:
        return grad_x, empty, x.new_empty((0,)), x.new_empty((0,))
    grad_scaler = x.new_empty((0,)) if spline_scaler is None else x.new_empty(spline_scaler.shape)
    return (
        grad_x,
        base_weight.new_empty(base_weight.shape),
        spline_weight.new_empty(spline_weight.shape),
        grad_scaler,
    )
