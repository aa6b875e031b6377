"""Pure-PyTorch KAN layers: the B-spline basis (uniform or per-feature knots), the
basis-expansion references (KANConv1d / KANConv2d: expansion + ``conv1d`` / ``conv2d``;
KANLinear: expansion + ``linear``; the fp64 oracles of the tests) and the naive unfold
baselines. Any device, any floating dtype.

Padding semantics (all convolutions): a tap that falls outside the input contributes nothing,
i.e. the expanded features are zero-padded, not ``x`` (``phi(0) != 0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .conv_args import DEFAULT_CONV1D, DEFAULT_CONV2D, Conv1dArgs, Conv2dArgs


def knots(
    grid_size: int,
    spline_order: int,
    grid_range: tuple[float, float],
    dtype: torch.dtype,
    device: torch.device | str | None = None,
) -> Tensor:
    """The ``G + 2K + 1`` uniform knots ``t_m = (m - K) * h + lo`` (efficient-kan's grid)."""
    lo, hi = grid_range
    h = (hi - lo) / grid_size
    return (
        torch.arange(-spline_order, grid_size + spline_order + 1, dtype=dtype, device=device) * h
        + lo
    )


def bspline_basis_on(x: Tensor, t: Tensor, spline_order: int) -> Tensor:
    """``B_j(x)`` on the knots ``t`` by the Cox-de Boor recursion: ``t [..., M]`` broadcasts
    against ``x[..., None]`` (``[M]``: one knot vector for every element; ``[C, M]`` for
    ``x [..., C]``: one per feature, as KANLinear's grid). Shape ``[*x.shape, M - K - 1]``.

    Half-open intervals at order 0, each divided by its own width (non-uniform knots), with
    ``0 / 0 = 0`` where repeated knots make a width zero (the order-below function is zero
    there); every function is zero outside ``[t_0, t_{M-1})``, for ``±inf`` and NaN too (NaN
    still reaches the output through ``silu``).
    """
    lo, hi = t[..., 0], t[..., -1]
    inside = (x >= lo) & (x < hi)
    # Outside the grid every order-0 indicator is zero (set so: at t_0, where the recursion is
    # evaluated there, an interval past repeated first knots would hold it); evaluating the
    # recursion at a finite point keeps 0 * inf from turning into NaN.
    xe = torch.where(inside, x, lo).unsqueeze(-1)
    bases = ((xe >= t[..., :-1]) & (xe < t[..., 1:]) & inside.unsqueeze(-1)).to(x.dtype)
    for d in range(1, spline_order + 1):
        left = _nonzero(t[..., d:-1] - t[..., : -(d + 1)])
        right = _nonzero(t[..., d + 1 :] - t[..., 1:-d])
        bases = (xe - t[..., : -(d + 1)]) / left * bases[..., :-1] + (
            t[..., d + 1 :] - xe
        ) / right * bases[..., 1:]
    return bases


def _nonzero(width: Tensor) -> Tensor:
    """Knot-interval widths with the zero ones (repeated knots) replaced by 1: the function they
    divide is zero there, so the term is 0 rather than 0 / 0."""
    return torch.where(width == 0, torch.ones_like(width), width)


def bspline_basis(
    x: Tensor, grid_size: int, spline_order: int, grid_range: tuple[float, float]
) -> Tensor:
    """``B_i(x)`` for ``i = 0 .. G+K-1`` on the uniform knots (``knots``): shape
    ``[*x.shape, G+K]`` (``bspline_basis_on``)."""
    t = knots(grid_size, spline_order, grid_range, x.dtype, x.device)
    return bspline_basis_on(x, t, spline_order)


def spline_features(x: Tensor, t: Tensor, spline_order: int) -> Tensor:
    """``[silu(x), B_0(x), ..]`` on the knots ``t`` (as ``bspline_basis_on``) on a new last
    axis."""
    return torch.cat([F.silu(x).unsqueeze(-1), bspline_basis_on(x, t, spline_order)], dim=-1)


def tap_features(
    x: Tensor, grid_size: int, spline_order: int, grid_range: tuple[float, float]
) -> Tensor:
    """``[silu(x), B_0(x), .., B_{G+K-1}(x)]`` on the uniform knots, on a new last axis:
    ``[*x.shape, 1 + G + K]``."""
    t = knots(grid_size, spline_order, grid_range, x.dtype, x.device)
    return spline_features(x, t, spline_order)


def _standard_strides(t: Tensor) -> Tensor:
    """``t`` with row-major strides, copied only when its strides differ. With size-1
    dimensions reshape can return a view whose strides make the convolution pick channels-last
    (``contiguous()`` keeps such strides: the tensor counts as contiguous), and the fp64 CPU
    convolution's backward then fails (found by the property tests)."""
    expected, step = [], 1
    for size in reversed(t.shape):
        expected.append(step)
        step *= size
    if list(t.stride()) == expected[::-1]:
        return t
    return t.clone(memory_format=torch.contiguous_format)


def _tap_weights(base_weight: Tensor, spline_weight: Tensor) -> Tensor:
    """``[C_out, C_in/groups, *taps, 1 + G + K]``: the base weight first, as in ``tap_features``."""
    return torch.cat([base_weight.unsqueeze(-1), spline_weight], dim=-1)


# The layer-independent core of the references: every KAN layer is its plain counterpart
# (conv1d, conv2d, linear) applied to the expanded features with the expanded weights.


def expand_features(
    x: Tensor, grid_size: int, spline_order: int, grid_range: tuple[float, float]
) -> Tensor:
    """``x [B, C, *spatial]`` -> ``[B, C * (1 + G + K), *spatial]``: channel c's features
    (``tap_features``) are channels ``c * (1 + G + K) ..`` of the result."""
    features = tap_features(x, grid_size, spline_order, grid_range)  # [B, C, *spatial, F]
    return _standard_strides(features.movedim(-1, 2).flatten(1, 2))


def expand_weights(base_weight: Tensor, spline_weight: Tensor) -> Tensor:
    """``base_weight [O, C_g, *taps]`` and ``spline_weight [O, C_g, *taps, G + K]`` -> the plain
    layer's weight ``[O, C_g * (1 + G + K), *taps]`` over ``expand_features``."""
    return _standard_strides(_tap_weights(base_weight, spline_weight).movedim(-1, 2).flatten(1, 2))


def kan_conv1d_reference(
    x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv: Conv1dArgs = DEFAULT_CONV1D
) -> Tensor:
    """Basis expansion then one ``conv1d``: ``x [B, C_in, T]`` -> ``[B, C_out, T_out]`` (no bias).

    The expanded tensor ``[B, C_in * (1 + G + K), T]`` is materialized (and, under autograd,
    saved): this is the clear form, not the fast one.
    """
    stride, pad_left, pad_right, dilation, groups, spline_order, lo, hi = conv
    grid_range = (lo, hi)
    grid_size = spline_weight.shape[-1] - spline_order
    features = expand_features(x, grid_size, spline_order, grid_range)  # [B, C * F, T]
    weight = expand_weights(base_weight, spline_weight)  # [C_out, Cg * F, k]
    if pad_left == pad_right and x.shape[2] > 0:  # conv1d's own padding rejects an empty input
        return F.conv1d(features, weight, None, stride, pad_left, dilation, groups)
    features = F.pad(features, (pad_left, pad_right))
    return F.conv1d(features, weight, None, stride, 0, dilation, groups)


def kan_conv1d_unfold(
    x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv: Conv1dArgs = DEFAULT_CONV1D
) -> Tensor:
    """The naive baseline as it is usually written: unfold the windows, evaluate the basis for
    every tap, one (batched over groups) matmul. ``[B, C_in, T]`` -> ``[B, C_out, T_out]``."""
    stride, pad_left, pad_right, dilation, groups, spline_order, lo, hi = conv
    grid_range = (lo, hi)
    batch, in_channels, length = x.shape
    out_channels, in_per_group, kernel_size = base_weight.shape
    grid_size = spline_weight.shape[-1] - spline_order
    span = dilation * (kernel_size - 1) + 1
    padded = F.pad(x, (pad_left, pad_right))
    valid = F.pad(torch.ones(length, dtype=x.dtype, device=x.device), (pad_left, pad_right))
    windows = padded.unfold(-1, span, stride)[..., ::dilation]  # [B, C, T_out, k]
    valid = valid.unfold(-1, span, stride)[..., ::dilation]  # [T_out, k]
    out_length = windows.shape[2]
    features = tap_features(windows, grid_size, spline_order, grid_range)
    features = features * valid.unsqueeze(-1)  # padding taps contribute nothing
    num_features = features.shape[-1]
    # [B, groups, Cg, T_out, k, F] -> [B, groups, T_out, Cg * k * F]
    features = features.reshape(batch, groups, in_per_group, out_length, kernel_size, num_features)
    features = features.permute(0, 1, 3, 2, 4, 5).reshape(
        batch, groups, out_length, in_per_group * kernel_size * num_features
    )
    weight = _tap_weights(base_weight, spline_weight).reshape(
        groups, out_channels // groups, in_per_group * kernel_size * num_features
    )
    out = torch.matmul(features, weight.transpose(1, 2).unsqueeze(0))  # [B, groups, T_out, Cog]
    return out.permute(0, 1, 3, 2).reshape(batch, out_channels, out_length).contiguous()


def kan_conv2d_reference(
    x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv: Conv2dArgs = DEFAULT_CONV2D
) -> Tensor:
    """Basis expansion then one ``conv2d``: ``x [B, C_in, H, W]`` -> ``[B, C_out, H_out, W_out]``
    (no bias). The expanded features are zero-padded (a padded tap contributes nothing)."""
    sh, sw, top, bottom, left, right, dh, dw, groups, spline_order, lo, hi = conv
    grid_size = spline_weight.shape[-1] - spline_order
    features = expand_features(x, grid_size, spline_order, (lo, hi))  # [B, C * F, H, W]
    weight = expand_weights(base_weight, spline_weight)  # [C_out, Cg * F, kh, kw]
    features = F.pad(features, (left, right, top, bottom))
    return F.conv2d(features, weight, None, (sh, sw), 0, (dh, dw), groups)


def kan_conv2d_unfold(
    x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv: Conv2dArgs = DEFAULT_CONV2D
) -> Tensor:
    """The naive baseline as image KAN-convolution libraries write it: ``F.unfold`` the patches,
    evaluate the basis for every tap of every patch, one (batched over groups) matmul.
    ``[B, C_in, H, W]`` -> ``[B, C_out, H_out, W_out]``."""
    sh, sw, top, bottom, left, right, dh, dw, groups, spline_order, lo, hi = conv
    batch, in_channels, height, width = x.shape
    out_channels, in_per_group, kh, kw = base_weight.shape
    grid_size = spline_weight.shape[-1] - spline_order
    padded = F.pad(x, (left, right, top, bottom))
    valid = F.pad(x.new_ones(1, 1, height, width), (left, right, top, bottom))
    geometry = dict(kernel_size=(kh, kw), dilation=(dh, dw), stride=(sh, sw))
    patches = F.unfold(padded, **geometry)  # [B, C * kh * kw, L]
    valid = F.unfold(valid, **geometry)  # [1, kh * kw, L]
    positions = patches.shape[-1]
    out_h = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + left + right - dw * (kw - 1) - 1) // sw + 1
    features = tap_features(patches, grid_size, spline_order, (lo, hi))  # [B, C*kh*kw, L, F]
    num_features = features.shape[-1]
    features = features.view(batch, in_channels, kh * kw, positions, num_features)
    features = features * valid.view(1, 1, kh * kw, positions, 1)  # padding taps: nothing
    # [B, groups, Cg, taps, L, F] -> [B, groups, L, Cg * taps * F]
    features = features.view(batch, groups, in_per_group, kh * kw, positions, num_features)
    features = features.permute(0, 1, 4, 2, 3, 5).reshape(
        batch, groups, positions, in_per_group * kh * kw * num_features
    )
    weight = _tap_weights(base_weight, spline_weight).reshape(
        groups, out_channels // groups, in_per_group * kh * kw * num_features
    )
    out = torch.matmul(features, weight.transpose(1, 2).unsqueeze(0))  # [B, groups, L, Cog]
    return out.permute(0, 1, 3, 2).reshape(batch, out_channels, out_h, out_w).contiguous()


def kan_linear_reference(
    x: Tensor, base_weight: Tensor, weight: Tensor, grid: Tensor, order: int, activation=F.silu
) -> Tensor:
    """KANLinear as the expansion + one ``linear``: ``x [N, in]`` -> ``[N, out]`` with the
    features ``[activation(x), B_0(x), ..]`` of each input feature on that feature's knots
    ``grid [in, G + 2K + 1]`` and ``weight [out, in, G + K]`` the (scaled) spline weight."""
    features = torch.cat([activation(x).unsqueeze(-1), bspline_basis_on(x, grid, order)], dim=-1)
    return F.linear(features.flatten(1), expand_weights(base_weight, weight))
