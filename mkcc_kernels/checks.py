"""Argument checks of the Python boundary, in one place: what must raise before a call reaches a
backend (the functional form, the modules, the Triton ops, which have no C++ host checks
behind them). Each error names the argument and what was expected. The C++ ops check their own
arguments again in ``csrc/host.cpp`` (they can be called directly through ``torch.ops``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

Padding = int | str | Sequence[int]

# Spline orders the kernels are built for (1 linear .. 4 quartic).
SPLINE_ORDERS = (1, 2, 3, 4)


def int_arg(name: str, value, minimum: int) -> int:
    """An int (or a 1-tuple, as ``nn.Conv1d`` accepts) >= minimum."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def spline_order_arg(spline_order) -> int:
    if isinstance(spline_order, bool) or not isinstance(spline_order, int):
        raise TypeError(f"spline_order: expected an int, got {spline_order!r}")
    if spline_order not in SPLINE_ORDERS:
        raise ValueError(f"spline_order: expected 1, 2, 3 or 4, got {spline_order}")
    return spline_order


def grid_range_arg(grid_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in grid_range)
    except (TypeError, ValueError):
        raise TypeError(
            f"grid_range: expected a pair of numbers (lo, hi), got {grid_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"grid_range: expected finite (lo, hi) with lo < hi, got ({lo}, {hi})")
    return lo, hi


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
            f"divisible by groups ({groups})"
        )


def resolve_padding(
    padding: Padding, kernel_size: int, stride: int, dilation: int
) -> tuple[int, int]:
    """(left, right) padding for an int, a 1-tuple, ``"valid"`` or ``"same"`` (as
    ``nn.Conv1d``: the extra position of an odd total goes on the right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if stride != 1:
                raise ValueError(f"padding: 'same' needs stride 1, got stride {stride}")
            total = dilation * (kernel_size - 1)
            return total // 2, total - total // 2
        raise ValueError(f"padding: expected an int, 'same' or 'valid', got {padding!r}")
    amount = int_arg("padding", padding, 0)
    return amount, amount


def _check_like(name: str, value: Tensor, x: Tensor) -> None:
    """``value`` is a tensor of x's dtype and device."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.dtype != x.dtype:
        raise TypeError(f"{name}: expected dtype {x.dtype} (that of x), got {value.dtype}")
    if value.device != x.device:
        raise ValueError(f"{name}: expected device {x.device} (that of x), got {value.device}")


def check_conv1d_tensors(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    groups: int,
    spline_order: int,
    bias: Tensor | None = None,
) -> None:
    """The tensors of a KAN convolution: ``x [B, C_in, T]`` (floating point),
    ``base_weight [C_out, C_in / groups, k]``, ``spline_weight [C_out, C_in / groups, k, G + K]``
    with ``G >= 1``, ``bias [C_out]`` or None; all of x's dtype and device."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(
            f"x: expected a 3-D tensor [batch, in_channels, length], got shape {tuple(x.shape)}"
        )
    if not x.dtype.is_floating_point:
        raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
    _check_like("base_weight", base_weight, x)
    _check_like("spline_weight", spline_weight, x)
    if base_weight.dim() != 3:
        raise ValueError(
            "base_weight: expected a 3-D tensor [out_channels, in_channels / groups, kernel_size],"
            f" got shape {tuple(base_weight.shape)}"
        )
    if spline_weight.dim() != 4:
        raise ValueError(
            "spline_weight: expected a 4-D tensor [out_channels, in_channels / groups, "
            f"kernel_size, grid_size + spline_order], got shape {tuple(spline_weight.shape)}"
        )
    in_channels = x.shape[1]
    if in_channels == 0:
        raise ValueError(f"x: expected in_channels >= 1, got shape {tuple(x.shape)}")
    out_channels, in_per_group, kernel_size = base_weight.shape
    check_groups(in_channels, out_channels, groups)
    if in_per_group != in_channels // groups or out_channels == 0 or kernel_size == 0:
        raise ValueError(
            f"base_weight: expected shape [out_channels, {in_channels // groups}, kernel_size] for "
            f"in_channels {in_channels} and groups {groups}, got {tuple(base_weight.shape)}"
        )
    if tuple(spline_weight.shape[:3]) != tuple(base_weight.shape):
        raise ValueError(
            f"spline_weight: expected shape [{out_channels}, {in_per_group}, {kernel_size}, "
            f"grid_size + spline_order] to match base_weight, got {tuple(spline_weight.shape)}"
        )
    if spline_weight.shape[3] - spline_order < 1:
        raise ValueError(
            f"spline_weight: last dimension must be grid_size + spline_order with grid_size >= 1,"
            f" got {spline_weight.shape[3]} for spline_order {spline_order}"
        )
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"bias: expected a torch.Tensor or None, got {type(bias).__name__}")
        if tuple(bias.shape) != (out_channels,):
            raise ValueError(f"bias: expected shape ({out_channels},), got {tuple(bias.shape)}")
        _check_like("bias", bias, x)


def check_span(
    length: int, kernel_size: int, dilation: int, pad_left: int, pad_right: int, axis: str = ""
):
    """The kernel fits the padded input (``nn.Conv1d``'s condition for an output); ``axis``
    names the dimension of a 2-D call ("height", "width")."""
    span = dilation * (kernel_size - 1) + 1
    padded = length + pad_left + pad_right
    if padded < span:
        raise ValueError(
            f"kernel_size: the kernel ({kernel_size}, dilation {dilation}) spans {span} positions, "
            f"longer than the padded input{' ' + axis if axis else ''} ({padded})"
        )


def check_conv1d_call(x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv) -> None:
    """Every argument of a KANConv1d op (``ops.common.Conv1dArgs``, padding resolved): what
    ``kan_conv1d`` checks, for callers of the op itself."""
    for name in ("stride", "dilation", "groups"):
        int_arg(name, getattr(conv, name), 1)
    int_arg("pad_left", conv.pad_left, 0)
    int_arg("pad_right", conv.pad_right, 0)
    spline_order_arg(conv.spline_order)
    grid_range_arg((conv.grid_lo, conv.grid_hi))
    check_conv1d_tensors(x, base_weight, spline_weight, conv.groups, conv.spline_order)
    check_span(x.shape[2], base_weight.shape[2], conv.dilation, conv.pad_left, conv.pad_right)


def check_grad_out(grad_out: Tensor, x: Tensor, shape: tuple[int, ...]) -> None:
    """The output gradient of a backward op: a tensor of the forward output's ``shape`` and of
    x's dtype and device."""
    if not isinstance(grad_out, Tensor):
        raise TypeError(f"grad_out: expected a torch.Tensor, got {type(grad_out).__name__}")
    if tuple(grad_out.shape) != tuple(shape):
        raise ValueError(
            f"grad_out: expected shape {list(shape)} (the forward's output), got "
            f"{tuple(grad_out.shape)}"
        )
    _check_like("grad_out", grad_out, x)


def check_kan_linear_tensors(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    grid: Tensor,
    spline_order: int,
    spline_scaler: Tensor | None = None,
) -> None:
    """The tensors of a KANLinear call: ``x [..., in]`` (floating point), ``base_weight
    [out, in]``, ``spline_weight [out, in, G + K]`` with ``G >= 1``, ``grid [in, G + 2K + 1]``,
    ``spline_scaler [out, in]`` or None; all of x's dtype and device."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
    for name, value in (("base_weight", base_weight), ("spline_weight", spline_weight),
                        ("grid", grid)):  # fmt: skip
        _check_like(name, value, x)
    if base_weight.dim() != 2 or 0 in base_weight.shape:
        raise ValueError(
            "base_weight: expected a 2-D tensor [out_features >= 1, in_features >= 1], got shape "
            f"{tuple(base_weight.shape)}"
        )
    out_features, in_features = base_weight.shape
    if x.dim() < 1 or x.shape[-1] != in_features:
        raise ValueError(
            f"x: expected [..., in_features] with in_features = {in_features} (that of "
            f"base_weight), got shape {tuple(x.shape)}"
        )
    if spline_weight.dim() != 3 or tuple(spline_weight.shape[:2]) != (out_features, in_features):
        raise ValueError(
            f"spline_weight: expected shape [{out_features}, {in_features}, grid_size + "
            f"spline_order] to match base_weight, got {tuple(spline_weight.shape)}"
        )
    grid_size = spline_weight.shape[2] - spline_order
    if grid_size < 1:
        raise ValueError(
            f"spline_weight: last dimension must be grid_size + spline_order with grid_size >= 1,"
            f" got {spline_weight.shape[2]} for spline_order {spline_order}"
        )
    expected = (in_features, grid_size + 2 * spline_order + 1)
    if tuple(grid.shape) != expected:
        raise ValueError(
            f"grid: expected shape {list(expected)} ([in_features, grid_size + 2 * spline_order "
            f"+ 1]), got {tuple(grid.shape)}"
        )
    if spline_scaler is not None:
        _check_like("spline_scaler", spline_scaler, x)
        if tuple(spline_scaler.shape) != (out_features, in_features):
            raise ValueError(
                f"spline_scaler: expected shape ({out_features}, {in_features}), got "
                f"{tuple(spline_scaler.shape)}"
            )


def check_knots(grid: Tensor, name: str = "grid") -> None:
    """Finite, non-decreasing knots along the last axis, with some width (a data-dependent
    check: it reads the values)."""
    if not bool(torch.isfinite(grid).all()):
        raise ValueError(f"{name}: expected finite knots, got NaN or infinite values")
    steps = grid[..., 1:] - grid[..., :-1]
    if bool((steps < 0).any()):
        row = int((steps < 0).any(-1).nonzero()[0, 0]) if grid.dim() > 1 else 0
        raise ValueError(f"{name}: expected non-decreasing knots in every row, row {row} decreases")
    if bool((grid[..., -1] <= grid[..., 0]).any()):
        raise ValueError(f"{name}: expected knots spanning an interval (last > first) in every row")


def pair_arg(name: str, value, minimum: int) -> tuple[int, int]:
    """An int (used for both dimensions) or a pair of ints, each >= minimum (as ``nn.Conv2d``)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
        return int_arg(name, value[0], minimum), int_arg(name, value[1], minimum)
    value = int_arg(name, value, minimum)
    return value, value


def resolve_padding2d(
    padding: Padding, kernel_size: tuple[int, int], stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:  # fmt: skip
    """(top, bottom, left, right) padding for an int, a pair, ``"valid"`` or ``"same"`` (as
    ``nn.Conv2d``: the extra row or column of an odd total goes at the bottom or right)."""
    if isinstance(padding, str):
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"padding: 'same' needs stride 1, got stride {stride}")
        pads = [resolve_padding(padding, k, 1, d) for k, d in zip(kernel_size, dilation)]
    else:
        pads = [(p, p) for p in pair_arg("padding", padding, 0)]
    return pads[0] + pads[1]


def check_conv2d_tensors(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    groups: int,
    spline_order: int,
    bias: Tensor | None = None,
) -> None:
    """The tensors of a 2-D KAN convolution: ``x [B, C_in, H, W]`` (floating point),
    ``base_weight [C_out, C_in / groups, kh, kw]``, ``spline_weight [C_out, C_in / groups, kh,
    kw, G + K]`` with ``G >= 1``, ``bias [C_out]`` or None; all of x's dtype and device."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            "x: expected a 4-D tensor [batch, in_channels, height, width], got shape "
            f"{tuple(x.shape)}"
        )
    if not x.dtype.is_floating_point:
        raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
    _check_like("base_weight", base_weight, x)
    _check_like("spline_weight", spline_weight, x)
    if base_weight.dim() != 4:
        raise ValueError(
            "base_weight: expected a 4-D tensor [out_channels, in_channels / groups, kernel_h, "
            f"kernel_w], got shape {tuple(base_weight.shape)}"
        )
    if spline_weight.dim() != 5:
        raise ValueError(
            "spline_weight: expected a 5-D tensor [out_channels, in_channels / groups, kernel_h, "
            f"kernel_w, grid_size + spline_order], got shape {tuple(spline_weight.shape)}"
        )
    in_channels = x.shape[1]
    if in_channels == 0:
        raise ValueError(f"x: expected in_channels >= 1, got shape {tuple(x.shape)}")
    out_channels, in_per_group, kernel_h, kernel_w = base_weight.shape
    check_groups(in_channels, out_channels, groups)
    if in_per_group != in_channels // groups or 0 in (out_channels, kernel_h, kernel_w):
        raise ValueError(
            f"base_weight: expected shape [out_channels, {in_channels // groups}, kernel_h, "
            f"kernel_w] for in_channels {in_channels} and groups {groups}, got "
            f"{tuple(base_weight.shape)}"
        )
    if tuple(spline_weight.shape[:4]) != tuple(base_weight.shape):
        raise ValueError(
            f"spline_weight: expected shape [{out_channels}, {in_per_group}, {kernel_h}, "
            f"{kernel_w}, grid_size + spline_order] to match base_weight, got "
            f"{tuple(spline_weight.shape)}"
        )
    if spline_weight.shape[4] - spline_order < 1:
        raise ValueError(
            f"spline_weight: last dimension must be grid_size + spline_order with grid_size >= 1,"
            f" got {spline_weight.shape[4]} for spline_order {spline_order}"
        )
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"bias: expected a torch.Tensor or None, got {type(bias).__name__}")
        if tuple(bias.shape) != (out_channels,):
            raise ValueError(f"bias: expected shape ({out_channels},), got {tuple(bias.shape)}")
        _check_like("bias", bias, x)


def check_conv2d_call(x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv) -> None:
    """Every argument of a KANConv2d op (``conv_args.Conv2dArgs``, padding resolved)."""
    for name in ("stride_h", "stride_w", "dilation_h", "dilation_w", "groups"):
        int_arg(name, getattr(conv, name), 1)
    for name in ("pad_top", "pad_bottom", "pad_left", "pad_right"):
        int_arg(name, getattr(conv, name), 0)
    spline_order_arg(conv.spline_order)
    grid_range_arg((conv.grid_lo, conv.grid_hi))
    check_conv2d_tensors(x, base_weight, spline_weight, conv.groups, conv.spline_order)
    check_conv2d_span(x, base_weight, conv)


def check_conv2d_span(x: Tensor, base_weight: Tensor, conv) -> None:
    """The kernel fits the padded input in both dimensions."""
    check_span(x.shape[2], base_weight.shape[2], conv.dilation_h, conv.pad_top, conv.pad_bottom,
               "height")  # fmt: skip
    check_span(x.shape[3], base_weight.shape[3], conv.dilation_w, conv.pad_left, conv.pad_right,
               "width")  # fmt: skip
