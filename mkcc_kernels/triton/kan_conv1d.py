"""Fused KANConv1d kernels: forward, input gradient, weight gradient (Triton).

Weights arrive packed as ``[groups, k, C_in/groups, F, C_out/groups]`` (``F`` = 1 + G + K padded
to a power of two, feature 0 the base weight, feature 1 + i spline function i, zero padding), so
that for one tap the rows ``(channel, feature)`` of a block of input channels are one matrix.
Every kernel evaluates silu and the basis of the ``x`` values it loads in registers, in fp32, and
contracts them with ``tl.dot`` accumulating in fp32; nothing expanded touches global memory.
A tap outside ``[0, T)`` contributes nothing (its features are zeroed).
"""

import triton
import triton.language as tl

from .basis import _tap_feature_derivatives, _tap_features


@triton.jit
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
    conv_stride,
    pad_left,
    dilation,
    kernel_size,
    grid_lo,
    grid_h,
    inv_h,
    SPLINE_ORDER: tl.constexpr,
    NUM_FUNCS: tl.constexpr,
    NUM_INTERVALS: tl.constexpr,
    NUM_FEATURES: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """One program: BLOCK_M output positions (batch x time) x BLOCK_N output channels of a group.
    An implicit GEMM over (tap, input-channel block): [M, C*F] features @ [C*F, N] weights."""
    pid_m = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1).to(tl.int64)
    group = tl.program_id(2).to(tl.int64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < batch * out_length
    b = rows // out_length
    t = rows % out_length
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < out_per_group
    channels = tl.arange(0, BLOCK_C)
    features = tl.arange(0, NUM_FEATURES)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for j in range(kernel_size):
        p = t * conv_stride + j * dilation - pad_left
        p_ok = row_ok & (p >= 0) & (p < length)
        for c0 in range(0, in_per_group, BLOCK_C):
            c = c0 + channels
            c_ok = c < in_per_group
            x_mask = p_ok[:, None] & c_ok[None, :]
            x_offsets = (
                b[:, None] * stride_xb
                + (group * in_per_group + c)[None, :] * stride_xc
                + p[:, None] * stride_xt
            )
            xv = tl.load(x_ptr + x_offsets, mask=x_mask, other=0.0).to(tl.float32)
            feats = _tap_features(
                xv, features, grid_lo, grid_h, inv_h, SPLINE_ORDER, NUM_FUNCS, NUM_INTERVALS
            )
            feats = tl.where(x_mask[:, :, None], feats, 0.0)
            a = tl.reshape(feats, (BLOCK_M, BLOCK_C * NUM_FEATURES))
            w_rows = ((group * kernel_size + j) * in_per_group + c)[
                :, None
            ] * NUM_FEATURES + features[None, :]
            w_rows = tl.reshape(w_rows, (BLOCK_C * NUM_FEATURES,))
            w_row_ok = tl.reshape(
                c_ok[:, None] & (features[None, :] >= 0), (BLOCK_C * NUM_FEATURES,)
            )
            wt = tl.load(
                w_ptr + w_rows[:, None] * out_per_group + cols[None, :],
                mask=w_row_ok[:, None] & col_ok[None, :],
                other=0.0,
            )
            if IEEE_FP32:
                acc = tl.dot(a, wt.to(tl.float32), acc, input_precision="ieee")
            else:
                acc = tl.dot(a.to(wt.dtype), wt, acc)
    out_offsets = (
        b[:, None] * stride_ob
        + (group * out_per_group + cols)[None, :] * stride_oc
        + t[:, None] * stride_ot
    )
    tl.store(
        out_ptr + out_offsets,
        acc.to(out_ptr.dtype.element_ty),
        mask=row_ok[:, None] & col_ok[None, :],
    )


@triton.jit
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
    conv_stride,
    pad_left,
    dilation,
    kernel_size,
    grid_lo,
    grid_h,
    inv_h,
    SPLINE_ORDER: tl.constexpr,
    NUM_FUNCS: tl.constexpr,
    NUM_INTERVALS: tl.constexpr,
    NUM_FEATURES: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_O: tl.constexpr,
):
    """One program: BLOCK_M input positions (batch x time) x BLOCK_C input channels.
    dx = sum_f feature_f'(x) * (sum_{tap, o} grad_out[o, t(tap)] * W[o, c, tap, f]); the inner
    sums are [M, O] @ [O, C*F] dots, the derivative contraction happens in registers.
    grad_out is contiguous [B, C_out, T_out]; dx contiguous [B, C_in, T]."""
    pid_m = tl.program_id(0).to(tl.int64)
    pid_c = tl.program_id(1).to(tl.int64)
    group = tl.program_id(2).to(tl.int64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < batch * length
    b = rows // length
    p = rows % length
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < in_per_group
    cin = group * in_per_group + c
    features = tl.arange(0, NUM_FEATURES)
    outs = tl.arange(0, BLOCK_O)
    w_rows = c[:, None] * NUM_FEATURES + features[None, :]
    w_rows = tl.reshape(w_rows, (BLOCK_C * NUM_FEATURES,))
    w_row_ok = tl.reshape(c_ok[:, None] & (features[None, :] >= 0), (BLOCK_C * NUM_FEATURES,))
    acc = tl.zeros((BLOCK_M, BLOCK_C * NUM_FEATURES), dtype=tl.float32)
    for j in range(kernel_size):
        shifted = p + pad_left - j * dilation
        t = shifted // conv_stride
        t_ok = row_ok & (shifted >= 0) & (shifted % conv_stride == 0) & (t < out_length)
        for o0 in range(0, out_per_group, BLOCK_O):
            o = o0 + outs
            o_ok = o < out_per_group
            gy = tl.load(
                gy_ptr
                + (b[:, None] * out_channels + (group * out_per_group + o)[None, :]) * out_length
                + t[:, None],
                mask=t_ok[:, None] & o_ok[None, :],
                other=0.0,
            )
            w_base = (group * kernel_size + j) * in_per_group * NUM_FEATURES
            wt = tl.load(
                w_ptr + (w_base + w_rows[None, :]) * out_per_group + o[:, None],
                mask=w_row_ok[None, :] & o_ok[:, None],
                other=0.0,
            )
            if IEEE_FP32:
                acc = tl.dot(gy.to(tl.float32), wt.to(tl.float32), acc, input_precision="ieee")
            else:
                acc = tl.dot(gy.to(wt.dtype), wt, acc)
    x_mask = row_ok[:, None] & c_ok[None, :]
    xv = tl.load(
        x_ptr + b[:, None] * stride_xb + cin[None, :] * stride_xc + p[:, None] * stride_xt,
        mask=x_mask,
        other=0.0,
    ).to(tl.float32)
    derivatives = _tap_feature_derivatives(
        xv, features, grid_lo, grid_h, inv_h, SPLINE_ORDER, NUM_FUNCS, NUM_INTERVALS
    )
    acc3 = tl.reshape(acc, (BLOCK_M, BLOCK_C, NUM_FEATURES))
    dx = tl.sum(acc3 * derivatives, axis=2)
    dx_offsets = (b[:, None] * in_channels + cin[None, :]) * length + p[:, None]
    tl.store(dx_ptr + dx_offsets, dx.to(dx_ptr.dtype.element_ty), mask=x_mask)


@triton.jit
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
    rows_per_split,
    grid_lo,
    grid_h,
    inv_h,
    SPLINE_ORDER: tl.constexpr,
    NUM_FUNCS: tl.constexpr,
    NUM_INTERVALS: tl.constexpr,
    NUM_FEATURES: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """One program: BLOCK_N output channels x (BLOCK_C input channels x F features) of one tap
    and group, reduced over one split of the batch x time rows: [N, M] @ [M, C*F] dots with the
    basis recomputed per tile. Each program owns its output block of the fp32 partial buffer
    ``[splits, groups, k, C_in/groups, F, C_out/groups]``: no atomics, deterministic."""
    pid_n = tl.program_id(0).to(tl.int64)
    pid_c = tl.program_id(1).to(tl.int64)
    pid_z = tl.program_id(2).to(tl.int64)
    j = pid_z % kernel_size
    group = (pid_z // kernel_size) % groups
    split = pid_z // (kernel_size * groups)
    o = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_ok = o < out_per_group
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < in_per_group
    features = tl.arange(0, NUM_FEATURES)
    total_rows = batch * out_length
    row_start = split * rows_per_split
    row_end = tl.minimum(row_start + rows_per_split, total_rows)
    acc = tl.zeros((BLOCK_N, BLOCK_C * NUM_FEATURES), dtype=tl.float32)
    for r0 in range(row_start, row_end, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        row_ok = rows < row_end
        b = rows // out_length
        t = rows % out_length
        p = t * conv_stride + j * dilation - pad_left
        p_ok = row_ok & (p >= 0) & (p < length)
        x_mask = p_ok[:, None] & c_ok[None, :]
        xv = tl.load(
            x_ptr
            + b[:, None] * stride_xb
            + (group * in_per_group + c)[None, :] * stride_xc
            + p[:, None] * stride_xt,
            mask=x_mask,
            other=0.0,
        ).to(tl.float32)
        feats = _tap_features(
            xv, features, grid_lo, grid_h, inv_h, SPLINE_ORDER, NUM_FUNCS, NUM_INTERVALS
        )
        feats = tl.where(x_mask[:, :, None], feats, 0.0)
        a = tl.reshape(feats, (BLOCK_M, BLOCK_C * NUM_FEATURES))
        gy = tl.load(
            gy_ptr
            + (b[:, None] * out_channels + (group * out_per_group + o)[None, :]) * out_length
            + t[:, None],
            mask=row_ok[:, None] & o_ok[None, :],
            other=0.0,
        )
        if IEEE_FP32:
            acc = tl.dot(tl.trans(gy.to(tl.float32)), a, acc, input_precision="ieee")
        else:
            acc = tl.dot(tl.trans(gy), a.to(gy.dtype), acc)
    cols = c[:, None] * NUM_FEATURES + features[None, :]
    cols = tl.reshape(cols, (BLOCK_C * NUM_FEATURES,))
    col_ok = tl.reshape(c_ok[:, None] & (features[None, :] >= 0), (BLOCK_C * NUM_FEATURES,))
    block = ((split * groups + group) * kernel_size + j) * in_per_group * NUM_FEATURES
    offsets = (block + cols[None, :]) * out_per_group + o[:, None]
    tl.store(dw_ptr + offsets, acc, mask=o_ok[:, None] & col_ok[None, :])
