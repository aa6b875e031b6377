"""Fused KANConv1d kernels: forward, input gradient, weight gradient (Triton).

Features: feature 0 of a tap is silu(x), feature 1 + i spline function i; ``F`` (the packed
feature count) is 1 + G + K rounded up to a multiple of ``FEATURES`` (16, the smallest ``tl.dot``
depth), handled ``FEATURES`` at a time, so the tile sizes and registers do not grow with the grid
size. Every kernel evaluates silu and the basis of the ``x`` values it loads in registers, in
fp32, as ``[C, F, M]`` tiles (see ``basis.py``), and contracts them with ``tl.dot`` accumulating
in fp32; nothing expanded touches global memory. A tap outside ``[0, T)`` contributes nothing
(its features are zeroed). Grids are one-dimensional (no 65,535 limit on any axis), row and
element offsets are 64-bit, and the packed weights are zero-padded to whole tiles so that their
loads need no masks. Integer arguments are not specialized by value (one build per launch
configuration, whatever the shape).
"""

import triton
import triton.language as tl

from .core import _contract, _tap_features

_SIZES = (
    "batch",
    "length",
    "out_length",
    "in_channels",
    "in_per_group",
    "out_per_group",
    "out_channels",
    "groups",
    "conv_stride",
    "pad_left",
    "dilation",
    "kernel_size",
    "num_funcs",
    "num_intervals",
    "feature_blocks",
    "rows_per_split",
    "splits",
)
_STRIDES = ("stride_ob", "stride_oc", "stride_ot", "stride_xb", "stride_xc", "stride_xt")


def _unspecialized(fn):
    """``triton.jit`` with every size and stride argument left unspecialized (no recompilation
    when one of them happens to be 1 or a multiple of 16)."""
    names = fn.__code__.co_varnames[: fn.__code__.co_argcount]
    return triton.jit(do_not_specialize=[n for n in names if n in _SIZES + _STRIDES])(fn)


@_unspecialized
def _kan_conv1d_fwd_kernel(
    out_ptr,
    stride_ob,
    stride_oc,
    stride_ot,
    x_ptr,
    stride_xb,
    stride_xc,
    stride_xt,
    w_ptr,
    batch,
    length,
    out_length,
    in_per_group,
    out_per_group,
    groups,
    conv_stride,
    pad_left,
    dilation,
    kernel_size,
    num_funcs,
    num_intervals,
    feature_blocks,
    grid_lo,
    grid_h,
    inv_h,
    SPLINE_ORDER: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    FEATURES: tl.constexpr,
):
    """One program: BLOCK_N output channels of a group x BLOCK_M output positions (batch x time).
    An implicit GEMM, transposed: ``out^T [N, M] = W^T [N, C*F] @ features [C*F, M]`` over the
    steps (tap, input-channel block, feature block). Weights packed
    ``[groups, N_pad, k, C_pad, F]`` (``N_pad``, ``C_pad`` whole blocks, zero-filled)."""
    pid = tl.program_id(0).to(tl.int64)
    n_blocks = tl.cdiv(out_per_group, BLOCK_N)
    m_blocks = tl.cdiv(batch.to(tl.int64) * out_length, BLOCK_M)
    pid_n = pid % n_blocks
    pid_m = (pid // n_blocks) % m_blocks
    group = pid // (n_blocks * m_blocks)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < batch.to(tl.int64) * out_length
    b = rows // out_length
    t = (rows % out_length).to(tl.int32)
    x_rows = x_ptr + b * stride_xb + (group * in_per_group).to(tl.int64) * stride_xc
    x_channels = tl.arange(0, BLOCK_C).to(tl.int64) * stride_xc
    channels = tl.arange(0, BLOCK_C)
    c_blocks = tl.cdiv(in_per_group, BLOCK_C)
    padded_features = feature_blocks * FEATURES
    row_length = tl.multiple_of(kernel_size * c_blocks * BLOCK_C * padded_features, FEATURES)
    cols = tl.arange(0, BLOCK_N)
    depth = tl.arange(0, BLOCK_C * FEATURES)
    # (channel, feature) of a tile column: consecutive channels are padded_features apart.
    w_tile = (
        cols[:, None] * row_length
        + ((depth // FEATURES) * padded_features + depth % FEATURES)[None, :]
    )
    w_rows = w_ptr + ((group * n_blocks + pid_n).to(tl.int64) * BLOCK_N) * row_length
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for step in range(kernel_size * c_blocks * feature_blocks):
        f0 = (step % feature_blocks) * FEATURES
        c0 = ((step // feature_blocks) % c_blocks) * BLOCK_C
        j = step // (feature_blocks * c_blocks)
        p = t * conv_stride + j * dilation - pad_left
        p_ok = row_ok & (p >= 0) & (p < length)
        c = c0 + channels
        x_mask = (c < in_per_group)[:, None] & p_ok[None, :]
        xv = tl.load(
            x_rows[None, :]
            + p[None, :].to(tl.int64) * stride_xt
            + (x_channels + c0.to(tl.int64) * stride_xc)[:, None],
            mask=x_mask,
            other=0.0,
        ).to(tl.float32)
        feats = _tap_features(
            xv, x_mask, f0, grid_lo, grid_h, inv_h, num_funcs, num_intervals, SPLINE_ORDER,
            FEATURES, False,
        )  # fmt: skip
        feats = tl.reshape(feats, (BLOCK_C * FEATURES, BLOCK_M))
        offset = (j * c_blocks * BLOCK_C + c0) * padded_features + f0
        acc = _contract(tl.load(w_rows + offset + w_tile), feats, acc, IEEE_FP32)
    o = pid_n * BLOCK_N + cols
    out_offsets = (
        b[None, :] * stride_ob
        + (group * out_per_group + o).to(tl.int64)[:, None] * stride_oc
        + t[None, :].to(tl.int64) * stride_ot
    )
    tl.store(
        out_ptr + out_offsets,
        acc.to(out_ptr.dtype.element_ty),
        mask=(o < out_per_group)[:, None] & row_ok[None, :],
    )


@_unspecialized
def _kan_conv1d_bwd_dx_kernel(
    dx_ptr,
    x_ptr,
    stride_xb,
    stride_xc,
    stride_xt,
    gy_ptr,
    w_ptr,
    batch,
    length,
    out_length,
    in_channels,
    in_per_group,
    out_per_group,
    out_channels,
    groups,
    conv_stride,
    pad_left,
    dilation,
    kernel_size,
    num_funcs,
    num_intervals,
    feature_blocks,
    grid_lo,
    grid_h,
    inv_h,
    SPLINE_ORDER: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_O: tl.constexpr,
    FEATURES: tl.constexpr,
):
    """One program: BLOCK_C input channels x BLOCK_M input positions (batch x time) x one
    feature block. ``dx = sum_f feature_f'(x) * S_f`` with ``S [C*F, M] = sum_{tap, o}
    W [C*F, O] @ grad_out [O, M(tap)]``; the derivative contraction happens in registers. With
    one feature block ``dx_ptr`` is dx, contiguous ``[B, C_in, T]``; with several it is an fp32
    ``[feature_blocks, B, C_in, T]`` of per-block sums, added up afterwards. Weights packed
    ``[groups, k, C_pad, F, O_pad]``; grad_out contiguous ``[B, C_out, T_out]``."""
    pid = tl.program_id(0).to(tl.int64)
    c_blocks = tl.cdiv(in_per_group, BLOCK_C)
    m_blocks = tl.cdiv(batch.to(tl.int64) * length, BLOCK_M)
    pid_c = pid % c_blocks
    rest = pid // c_blocks
    fb = rest % feature_blocks
    rest = rest // feature_blocks
    pid_m = rest % m_blocks
    group = rest // m_blocks
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < batch.to(tl.int64) * length
    b = rows // length
    p = (rows % length).to(tl.int32)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    o_blocks = tl.cdiv(out_per_group, BLOCK_O)
    padded_outs = tl.multiple_of(o_blocks * BLOCK_O, BLOCK_O)
    padded_features = feature_blocks * FEATURES
    outs = tl.arange(0, BLOCK_O)
    depth = tl.arange(0, BLOCK_C * FEATURES)
    w_tile = ((depth // FEATURES) * padded_features + depth % FEATURES)[:, None] * padded_outs + (
        outs[None, :]
    )
    w_block = (group * kernel_size * c_blocks + pid_c) * BLOCK_C
    w_rows = w_ptr + (w_block * padded_features + fb * FEATURES) * padded_outs
    w_tap = c_blocks * BLOCK_C * padded_features * padded_outs
    gy_rows = gy_ptr + (b * out_channels + group * out_per_group) * out_length
    acc = tl.zeros((BLOCK_C * FEATURES, BLOCK_M), dtype=tl.float32)
    for step in range(kernel_size * o_blocks):
        o0 = (step % o_blocks) * BLOCK_O
        j = step // o_blocks
        shifted = p + pad_left - j * dilation
        t = shifted // conv_stride
        t_ok = row_ok & (shifted >= 0) & (shifted % conv_stride == 0) & (t < out_length)
        o = o0 + outs
        gy = tl.load(
            gy_rows[None, :] + o.to(tl.int64)[:, None] * out_length + t[None, :],
            mask=(o < out_per_group)[:, None] & t_ok[None, :],
            other=0.0,
        )
        acc = _contract(tl.load(w_rows + j.to(tl.int64) * w_tap + o0 + w_tile), gy, acc, IEEE_FP32)
    c_ok = c < in_per_group
    cin = (group * in_per_group + c).to(tl.int64)
    x_mask = c_ok[:, None] & row_ok[None, :]
    xv = tl.load(
        x_ptr + (b * stride_xb + p.to(tl.int64) * stride_xt)[None, :] + cin[:, None] * stride_xc,
        mask=x_mask,
        other=0.0,
    ).to(tl.float32)
    derivatives = _tap_features(
        xv, x_mask, fb * FEATURES, grid_lo, grid_h, inv_h, num_funcs, num_intervals,
        SPLINE_ORDER, FEATURES, True,
    )  # fmt: skip
    dx = tl.sum(tl.reshape(acc, (BLOCK_C, FEATURES, BLOCK_M)) * derivatives, axis=1)
    dx_offsets = ((fb * batch + b[None, :]) * in_channels + cin[:, None]) * length + p[None, :]
    tl.store(dx_ptr + dx_offsets, dx.to(dx_ptr.dtype.element_ty), mask=x_mask)


@_unspecialized
def _kan_conv1d_bwd_dw_kernel(
    dw_ptr,
    x_ptr,
    stride_xb,
    stride_xc,
    stride_xt,
    gy_ptr,
    batch,
    length,
    out_length,
    in_per_group,
    out_per_group,
    out_channels,
    groups,
    conv_stride,
    pad_left,
    dilation,
    kernel_size,
    num_funcs,
    num_intervals,
    feature_blocks,
    rows_per_split,
    grid_lo,
    grid_h,
    inv_h,
    SPLINE_ORDER: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    FEATURES: tl.constexpr,
):
    """One program: (BLOCK_C input channels x FEATURES features) x BLOCK_N output channels of one
    tap and group, reduced over one split of the batch x time rows:
    ``features [C*F, M] @ grad_out^T [M, N]`` with the basis recomputed per tile. Each program
    owns its whole tile of the fp32 partial buffer ``[splits, groups, k, C_pad, F, N_pad]``: no
    atomics, no masks, deterministic."""
    pid = tl.program_id(0).to(tl.int64)
    n_blocks = tl.cdiv(out_per_group, BLOCK_N)
    c_blocks = tl.cdiv(in_per_group, BLOCK_C)
    pid_n = pid % n_blocks
    rest = pid // n_blocks
    fb = rest % feature_blocks
    rest = rest // feature_blocks
    pid_c = rest % c_blocks
    rest = rest // c_blocks
    j = rest % kernel_size
    rest = rest // kernel_size
    group = rest % groups
    split = rest // groups
    o = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_ok = o < out_per_group
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < in_per_group
    f0 = fb * FEATURES
    total_rows = batch.to(tl.int64) * out_length
    row_start = split.to(tl.int64) * rows_per_split
    row_end = tl.minimum(row_start + rows_per_split, total_rows)
    x_channels = x_ptr + (group * in_per_group + c).to(tl.int64)[:, None] * stride_xc
    gy_channels = gy_ptr + (group * out_per_group + o).to(tl.int64)[None, :] * out_length
    acc = tl.zeros((BLOCK_C * FEATURES, BLOCK_N), dtype=tl.float32)
    for r0 in range(row_start, row_end, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        row_ok = rows < row_end
        b = rows // out_length
        t = rows % out_length
        p = t * conv_stride + j * dilation - pad_left
        p_ok = row_ok & (p >= 0) & (p < length)
        x_mask = c_ok[:, None] & p_ok[None, :]
        xv = tl.load(
            x_channels + (b * stride_xb + p * stride_xt)[None, :], mask=x_mask, other=0.0
        ).to(tl.float32)
        feats = _tap_features(
            xv, x_mask, f0, grid_lo, grid_h, inv_h, num_funcs, num_intervals, SPLINE_ORDER,
            FEATURES, False,
        )  # fmt: skip
        feats = tl.reshape(feats, (BLOCK_C * FEATURES, BLOCK_M))
        gy = tl.load(
            gy_channels + (b * out_channels * out_length + t)[:, None],
            mask=row_ok[:, None] & o_ok[None, :],
            other=0.0,
        )
        acc = _contract(feats.to(gy.dtype), gy, acc, IEEE_FP32)
    c_pad = c_blocks * BLOCK_C
    n_pad = n_blocks * BLOCK_N
    padded_features = feature_blocks * FEATURES
    tile = (((split * groups + group) * kernel_size + j) * c_pad + pid_c * BLOCK_C).to(tl.int64)
    depth = tl.arange(0, BLOCK_C * FEATURES)
    tile_rows = (depth // FEATURES) * padded_features + fb * FEATURES + depth % FEATURES
    offsets = (tile * padded_features + tile_rows[:, None]) * n_pad + o[None, :]
    tl.store(dw_ptr + offsets, acc)
