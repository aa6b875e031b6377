"""``kan_conv1d``: argument checks, padding, static backend choice, bias."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .backends import resolve_backend
from .reference import kan_conv1d_reference, kan_conv1d_unfold

Padding = int | str | Sequence[int]


def _int_arg(name: str, value, minimum: int) -> int:
    """An int (or a 1-tuple, as ``nn.Conv1d`` accepts) >= minimum."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


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
    amount = _int_arg("padding", padding, 0)
    return amount, amount


def _grid_range_arg(grid_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in grid_range)
    except (TypeError, ValueError):
        raise TypeError(
            f"grid_range: expected a pair of numbers (lo, hi), got {grid_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"grid_range: expected finite (lo, hi) with lo < hi, got ({lo}, {hi})")
    return lo, hi


def _check_tensors(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    bias: Tensor | None,
    groups: int,
    spline_order: int,
) -> None:
    for name, value in (("x", x), ("base_weight", base_weight), ("spline_weight", spline_weight)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if x.dim() != 3:
        raise ValueError(
            f"x: expected a 3-D tensor [batch, in_channels, length], got shape {tuple(x.shape)}"
        )
    if not x.dtype.is_floating_point:
        raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
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
    for name, value in (("base_weight", base_weight), ("spline_weight", spline_weight)):
        if value.dtype != x.dtype:
            raise TypeError(f"{name}: expected dtype {x.dtype} (that of x), got {value.dtype}")
        if value.device != x.device:
            raise ValueError(f"{name}: expected device {x.device} (that of x), got {value.device}")
    in_channels = x.shape[1]
    if in_channels == 0:
        raise ValueError(f"x: expected in_channels >= 1, got shape {tuple(x.shape)}")
    out_channels, in_per_group, kernel_size = base_weight.shape
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
            f"divisible by groups ({groups})"
        )
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
        if bias.dtype != x.dtype:
            raise TypeError(f"bias: expected dtype {x.dtype} (that of x), got {bias.dtype}")
        if bias.device != x.device:
            raise ValueError(f"bias: expected device {x.device} (that of x), got {bias.device}")


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
    stride = _int_arg("stride", stride, 1)
    dilation = _int_arg("dilation", dilation, 1)
    groups = _int_arg("groups", groups, 1)
    if isinstance(spline_order, bool) or not isinstance(spline_order, int):
        raise TypeError(f"spline_order: expected an int, got {spline_order!r}")
    if not 1 <= spline_order <= 4:
        raise ValueError(f"spline_order: expected 1, 2, 3 or 4, got {spline_order}")
    grid_lo, grid_hi = _grid_range_arg(grid_range)
    _check_tensors(x, base_weight, spline_weight, bias, groups, spline_order)
    kernel_size = base_weight.shape[2]
    pad_left, pad_right = resolve_padding(padding, kernel_size, stride, dilation)
    span = dilation * (kernel_size - 1) + 1
    padded = x.shape[2] + pad_left + pad_right
    if padded < span:
        raise ValueError(
            f"kernel_size: the kernel ({kernel_size}, dilation {dilation}) spans {span} positions, "
            f"longer than the padded input ({padded})"
        )
    backend = resolve_backend(backend, x)

    conv_args = (stride, pad_left, pad_right, dilation, groups, spline_order)
    if backend == "reference":
        out = kan_conv1d_reference(x, base_weight, spline_weight, *conv_args, (grid_lo, grid_hi))
    elif backend == "unfold":
        out = kan_conv1d_unfold(x, base_weight, spline_weight, *conv_args, (grid_lo, grid_hi))
    elif backend == "triton":
        out = torch.ops.mkcc.kan_conv1d_fwd_triton(
            x, base_weight, spline_weight, *conv_args, grid_lo, grid_hi
        )
    else:  # "cpu" and "cuda": the C++ kernels behind one schema
        out = torch.ops.mkcc.kan_conv1d_fwd(
            x, base_weight, spline_weight, *conv_args, grid_lo, grid_hi
        )
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out
