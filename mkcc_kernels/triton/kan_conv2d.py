"""Fused KANConv2d kernels: forward, input gradient, weight gradient (Triton).

The KANConv1d kernels (``kan_conv1d.py``) in two dimensions: the same tiles, feature blocks,
packed-weight layouts and contractions (``core.py``), with a 2-D geometry. A GEMM row is an
output pixel ``(b, oh, ow)`` (forward, weight gradient) or an input pixel ``(b, ih, iw)`` (input
gradient), flattened as ``b * pixels + y * width + x``; a tap is a kernel element ``(i, j)``,
numbered ``i * kernel_w + j`` (the packed weights hold ``kernel_h * kernel_w`` taps where the
1-D ones hold ``k``). Each dimension has its own stride, padding (top / left: the bottom and
right padding only shape the output) and dilation. A tap outside the input contributes nothing
(its features are zeroed, never x). Every kernel evaluates silu and the K + 1 non-zero basis
values of the ``x`` values it loads in fp32 registers (``basis.py``) and contracts them with
``tl.dot``, accumulating in fp32: nothing expanded touches global memory.

Grids are one-dimensional (program ids, under 2^31, are decomposed in 32 bits: 64-bit divisions
are subroutine calls on the GPU); batch offsets and flattened rows are 64-bit, pixels within an
image 32-bit (the planner keeps ``H * W`` and ``H_out * W_out`` under 2^30). x, the output and
grad_out are read and written through their strides (channels-last inputs and the stride-0
grad_out of ``y.sum()`` need no copy). Integer arguments are not specialized by value.
"""

import triton
import triton.language as tl

from .core import _contract, _tap_features

# Arguments that are not sizes or strides (pointers end in ``_ptr``; constexprs are annotated).
_FLOATS = ("grid_lo", "grid_h", "inv_h")


def _unspecialized(fn):
    """``triton.jit`` with every size and stride argument left unspecialized (one build per
    launch configuration, whatever the shape)."""
    names = fn.__code__.co_varnames[: fn.__code__.co_argcount]
    sizes = [
        n
        for n in names
        if not n.endswith("_ptr") and n not in _FLOATS and n not in fn.__annotations__
    ]
    return triton.jit(do_not_specialize=sizes)(fn)


@triton.jit
def _first_row(block, BLOCK_M: tl.constexpr, pixels):
    """``(b, pixel)`` of the flattened row ``block * BLOCK_M`` (``b * pixels + pixel``; block an
    int32 scalar, BLOCK_M a power of two up to 256) by long division in 32 bits, one bit of
    BLOCK_M at a time: a 64-bit division is a subroutine call on the GPU, whose calling
    convention makes ptxas spill. Invariant: ``block * 2^i = b * pixels + rest``, ``rest <
    pixels < 2^30``, so doubling ``rest`` stays in 32 bits."""
    tl.static_assert(BLOCK_M <= 256)
    b = block // pixels
    rest = block - b * pixels
    b = b.to(tl.int64)
    for bit in tl.static_range(8):
        if (1 << bit) < BLOCK_M:
            rest = rest * 2
            carry = rest >= pixels
            b = b * 2 + carry.to(tl.int64)
            rest = tl.where(carry, rest - pixels, rest)
    return b, rest


@triton.jit
def _block_rows(b0, p0, BLOCK_M: tl.constexpr, width, pixels):
    """``(b, y, x)`` of the BLOCK_M flattened rows from row ``(b0, p0)`` on, pixels ``y * width
    + x``: 32-bit divisions. b int64, y and x int32."""
    local = p0 + tl.arange(0, BLOCK_M)
    step = local // pixels
    pixel = local - step * pixels
    y = pixel // width
    return b0 + step, y, pixel - y * width


@triton.jit
def _tap_input(out_pos, tap, conv_stride, dilation, pad, size):
    """Along one dimension: the input position that output position ``out_pos`` reads through
    kernel element ``tap``, and whether it lies inside the input."""
    p = out_pos * conv_stride + tap * dilation - pad
    return p, (p >= 0) & (p < size)


@triton.jit
def _tap_output(in_pos, tap, conv_stride, dilation, pad, out_size):
    """Along one dimension: the output position that reads input position ``in_pos`` through
    kernel element ``tap``, and whether there is one."""
    shifted = in_pos + pad - tap * dilation
    o = shifted // conv_stride
    return o, (shifted >= 0) & (shifted % conv_stride == 0) & (o < out_size)


@triton.jit
def _offsets(y, x, stride_y, stride_x):
    """Element offsets (int64) of pixels ``(y, x)`` through the strides."""
    return y.to(tl.int64) * stride_y + x.to(tl.int64) * stride_x


@_unspecialized
def _kan_conv2d_fwd_kernel(
    out_ptr,
    stride_ob,
    stride_oc,
    stride_oh,
    stride_ow,
    x_ptr,
    stride_xb,
    stride_xc,
    stride_xh,
    stride_xw,
    w_ptr,
    batch,
    height,
    width,
    out_height,
    out_width,
    in_per_group,
    out_per_group,
    stride_h,
    stride_w,
    pad_top,
    pad_left,
    dilation_h,
    dilation_w,
    kernel_h,
    kernel_w,
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
    """One program: BLOCK_N output channels of a group x BLOCK_M output pixels. An implicit
    GEMM, transposed: ``out^T [N, M] = W^T [N, C*F] @ features [C*F, M]`` over the steps (tap,
    input-channel block, feature block). Weights packed ``[groups, N_pad, taps, C_pad, F]``
    (``N_pad``, ``C_pad`` whole blocks, zero-filled)."""
    pid = tl.program_id(0)
    n_blocks = tl.cdiv(out_per_group, BLOCK_N)
    pixels = out_height * out_width
    m_blocks = tl.cdiv(batch.to(tl.int64) * pixels, BLOCK_M).to(tl.int32)
    pid_n = pid % n_blocks
    pid_m = (pid // n_blocks) % m_blocks
    group = pid // (n_blocks * m_blocks)
    b0, p0 = _first_row(pid_m, BLOCK_M, pixels)
    b, oh, ow = _block_rows(b0, p0, BLOCK_M, out_width, pixels)
    row_ok = b < batch
    x_rows = x_ptr + b * stride_xb + (group * in_per_group).to(tl.int64) * stride_xc
    x_channels = tl.arange(0, BLOCK_C).to(tl.int64) * stride_xc
    channels = tl.arange(0, BLOCK_C)
    c_blocks = tl.cdiv(in_per_group, BLOCK_C)
    padded_features = feature_blocks * FEATURES
    taps = kernel_h * kernel_w
    row_length = tl.multiple_of(taps * c_blocks * BLOCK_C * padded_features, FEATURES)
    cols = tl.arange(0, BLOCK_N)
    depth = tl.arange(0, BLOCK_C * FEATURES)
    # (channel, feature) of a tile column: consecutive channels are padded_features apart.
    w_tile = (
        cols[:, None] * row_length
        + ((depth // FEATURES) * padded_features + depth % FEATURES)[None, :]
    )
    w_rows = w_ptr + ((group * n_blocks + pid_n).to(tl.int64) * BLOCK_N) * row_length
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for step in range(taps * c_blocks * feature_blocks):
        f0 = (step % feature_blocks) * FEATURES
        c0 = ((step // feature_blocks) % c_blocks) * BLOCK_C
        tap = step // (feature_blocks * c_blocks)
        ih, h_ok = _tap_input(oh, tap // kernel_w, stride_h, dilation_h, pad_top, height)
        iw, w_ok = _tap_input(ow, tap % kernel_w, stride_w, dilation_w, pad_left, width)
        x_mask = (c0 + channels < in_per_group)[:, None] & (row_ok & h_ok & w_ok)[None, :]
        xv = tl.load(
            x_rows[None, :]
            + _offsets(ih, iw, stride_xh, stride_xw)[None, :]
            + (x_channels + c0.to(tl.int64) * stride_xc)[:, None],
            mask=x_mask,
            other=0.0,
        ).to(tl.float32)
        feats = _tap_features(
            xv, x_mask, f0, grid_lo, grid_h, inv_h, num_funcs, num_intervals, SPLINE_ORDER,
            FEATURES, False,
        )  # fmt: skip
        feats = tl.reshape(feats, (BLOCK_C * FEATURES, BLOCK_M))
        offset = (tap * c_blocks * BLOCK_C + c0) * padded_features + f0
        acc = _contract(tl.load(w_rows + offset + w_tile), feats, acc, IEEE_FP32)
    o = pid_n * BLOCK_N + cols
    out_rows = b * stride_ob + _offsets(oh, ow, stride_oh, stride_ow)
    out_offsets = out_rows[None, :] + (group * out_per_group + o).to(tl.int64)[:, None] * stride_oc
    tl.store(
        out_ptr + out_offsets,
        acc.to(out_ptr.dtype.element_ty),
        mask=(o < out_per_group)[:, None] & row_ok[None, :],
    )


@_unspecialized
def _kan_conv2d_bwd_dx_kernel(
    dx_ptr,
    x_ptr,
    stride_xb,
    stride_xc,
    stride_xh,
    stride_xw,
    gy_ptr,
    stride_gb,
    stride_gc,
    stride_gh,
    stride_gw,
    w_ptr,
    batch,
    height,
    width,
    out_height,
    out_width,
    in_channels,
    in_per_group,
    out_per_group,
    stride_h,
    stride_w,
    pad_top,
    pad_left,
    dilation_h,
    dilation_w,
    kernel_h,
    kernel_w,
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
    """One program: BLOCK_C input channels x BLOCK_M input pixels x one feature block.
    ``dx = sum_f feature_f'(x) * S_f`` with ``S [C*F, M] = sum_{tap, o} W [C*F, O] @
    grad_out [O, M(tap)]``, ``grad_out`` gathered at the output pixel that reads each input
    pixel through the tap (none where the strides skip it); the derivative contraction happens
    in registers. With one feature block ``dx_ptr`` is dx, contiguous ``[B, C_in, H, W]``; with
    several it is an fp32 ``[feature_blocks, B, C_in, H, W]`` of per-block sums, added up
    afterwards. Weights packed ``[groups, taps, C_pad, F, O_pad]``."""
    pid = tl.program_id(0)
    c_blocks = tl.cdiv(in_per_group, BLOCK_C)
    pixels = height * width
    m_blocks = tl.cdiv(batch.to(tl.int64) * pixels, BLOCK_M).to(tl.int32)
    pid_c = pid % c_blocks
    rest = pid // c_blocks
    fb = rest % feature_blocks
    rest = rest // feature_blocks
    pid_m = rest % m_blocks
    group = rest // m_blocks
    b0, p0 = _first_row(pid_m, BLOCK_M, pixels)
    b, ih, iw = _block_rows(b0, p0, BLOCK_M, width, pixels)
    row_ok = b < batch
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    taps = kernel_h * kernel_w
    o_blocks = tl.cdiv(out_per_group, BLOCK_O)
    padded_outs = tl.multiple_of(o_blocks * BLOCK_O, BLOCK_O)
    padded_features = feature_blocks * FEATURES
    outs = tl.arange(0, BLOCK_O)
    depth = tl.arange(0, BLOCK_C * FEATURES)
    w_tile = ((depth // FEATURES) * padded_features + depth % FEATURES)[:, None] * padded_outs + (
        outs[None, :]
    )
    w_block = (group * taps * c_blocks + pid_c).to(tl.int64) * BLOCK_C
    w_rows = w_ptr + (w_block * padded_features + fb * FEATURES) * padded_outs
    w_tap = c_blocks * BLOCK_C * padded_features * padded_outs
    gy_rows = gy_ptr + b * stride_gb + (group * out_per_group).to(tl.int64) * stride_gc
    acc = tl.zeros((BLOCK_C * FEATURES, BLOCK_M), dtype=tl.float32)
    for step in range(taps * o_blocks):
        o0 = (step % o_blocks) * BLOCK_O
        tap = step // o_blocks
        oh, h_ok = _tap_output(ih, tap // kernel_w, stride_h, dilation_h, pad_top, out_height)
        ow, w_ok = _tap_output(iw, tap % kernel_w, stride_w, dilation_w, pad_left, out_width)
        o = o0 + outs
        gy = tl.load(
            gy_rows[None, :]
            + _offsets(oh, ow, stride_gh, stride_gw)[None, :]
            + o.to(tl.int64)[:, None] * stride_gc,
            mask=(o < out_per_group)[:, None] & (row_ok & h_ok & w_ok)[None, :],
            other=0.0,
        )
        w = tl.load(w_rows + tap.to(tl.int64) * w_tap + o0 + w_tile)
        acc = _contract(w, gy, acc, IEEE_FP32)
    c_ok = c < in_per_group
    cin = (group * in_per_group + c).to(tl.int64)
    x_mask = c_ok[:, None] & row_ok[None, :]
    x_rows = b * stride_xb + _offsets(ih, iw, stride_xh, stride_xw)
    xv = tl.load(
        x_ptr + x_rows[None, :] + cin[:, None] * stride_xc,
        mask=x_mask,
        other=0.0,
    ).to(tl.float32)
    derivatives = _tap_features(
        xv, x_mask, fb * FEATURES, grid_lo, grid_h, inv_h, num_funcs, num_intervals,
        SPLINE_ORDER, FEATURES, True,
    )  # fmt: skip
    dx = tl.sum(tl.reshape(acc, (BLOCK_C, FEATURES, BLOCK_M)) * derivatives, axis=1)
    pixel = ih * width + iw
    dx_offsets = ((fb.to(tl.int64) * batch + b[None, :]) * in_channels + cin[:, None]) * pixels + (
        pixel[None, :]
    )
    tl.store(dx_ptr + dx_offsets, dx.to(dx_ptr.dtype.element_ty), mask=x_mask)


@_unspecialized
def _kan_conv2d_bwd_dw_kernel(
    dw_ptr,
    x_ptr,
    stride_xb,
    stride_xc,
    stride_xh,
    stride_xw,
    gy_ptr,
    stride_gb,
    stride_gc,
    stride_gh,
    stride_gw,
    batch,
    height,
    width,
    out_height,
    out_width,
    in_per_group,
    out_per_group,
    groups,
    stride_h,
    stride_w,
    pad_top,
    pad_left,
    dilation_h,
    dilation_w,
    kernel_h,
    kernel_w,
    num_funcs,
    num_intervals,
    feature_blocks,
    blocks_per_split,
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
    """One program: (BLOCK_C input channels x FEATURES features) x BLOCK_N output channels of
    one tap and group, reduced over one split of the output pixels (batch x H_out x W_out, a
    split ``blocks_per_split`` blocks of BLOCK_M):
    ``features [C*F, M] @ grad_out [M, N]`` with the basis recomputed per tile. Each program
    owns its whole tile of the fp32 partial buffer ``[splits, groups, taps, C_pad, F, N_pad]``:
    no atomics, no masks, deterministic."""
    pid = tl.program_id(0)
    n_blocks = tl.cdiv(out_per_group, BLOCK_N)
    c_blocks = tl.cdiv(in_per_group, BLOCK_C)
    taps = kernel_h * kernel_w
    pid_n = pid % n_blocks
    rest = pid // n_blocks
    fb = rest % feature_blocks
    rest = rest // feature_blocks
    pid_c = rest % c_blocks
    rest = rest // c_blocks
    tap = rest % taps
    rest = rest // taps
    group = rest % groups
    split = rest // groups
    i = tap // kernel_w
    j = tap % kernel_w
    o = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_ok = o < out_per_group
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < in_per_group
    f0 = fb * FEATURES
    # This program's tile of the partial buffer, addressed before the loop so that only one
    # pointer stays live through it.
    padded_features = feature_blocks * FEATURES
    n_pad = n_blocks * BLOCK_N
    tile = ((split.to(tl.int64) * groups + group) * taps + tap) * c_blocks + pid_c
    dw_tile = dw_ptr + (tile * BLOCK_C * padded_features + f0) * n_pad
    pixels = out_height * out_width
    # Blocks of BLOCK_M output pixels, numbered in 32 bits; a split is whole blocks, and a row
    # past the last one has b >= batch.
    total_blocks = tl.cdiv(batch.to(tl.int64) * pixels, BLOCK_M).to(tl.int32)
    first_block = split * blocks_per_split
    last_block = tl.minimum(first_block + blocks_per_split, total_blocks)
    x_channels = x_ptr + (group * in_per_group + c).to(tl.int64)[:, None] * stride_xc
    gy_channels = gy_ptr + (group * out_per_group + o).to(tl.int64)[None, :] * stride_gc
    # The row block's first row as (b0, p0), advanced in 32 bits from one block to the next.
    b0, p0 = _first_row(first_block, BLOCK_M, pixels)
    acc = tl.zeros((BLOCK_C * FEATURES, BLOCK_N), dtype=tl.float32)
    for _ in range(first_block, last_block):
        b, oh, ow = _block_rows(b0, p0, BLOCK_M, out_width, pixels)
        row_ok = b < batch
        ih, h_ok = _tap_input(oh, i, stride_h, dilation_h, pad_top, height)
        iw, w_ok = _tap_input(ow, j, stride_w, dilation_w, pad_left, width)
        x_mask = c_ok[:, None] & (row_ok & h_ok & w_ok)[None, :]
        xv = tl.load(
            x_channels + (b * stride_xb + _offsets(ih, iw, stride_xh, stride_xw))[None, :],
            mask=x_mask,
            other=0.0,
        ).to(tl.float32)
        feats = _tap_features(
            xv, x_mask, f0, grid_lo, grid_h, inv_h, num_funcs, num_intervals, SPLINE_ORDER,
            FEATURES, False,
        )  # fmt: skip
        feats = tl.reshape(feats, (BLOCK_C * FEATURES, BLOCK_M))
        gy = tl.load(
            gy_channels + (b * stride_gb + _offsets(oh, ow, stride_gh, stride_gw))[:, None],
            mask=row_ok[:, None] & o_ok[None, :],
            other=0.0,
        )
        acc = _contract(feats.to(gy.dtype), gy, acc, IEEE_FP32)
        p0 += BLOCK_M
        carry = p0 // pixels
        b0 += carry
        p0 -= carry * pixels
    depth = tl.arange(0, BLOCK_C * FEATURES)
    tile_rows = (depth // FEATURES) * padded_features + depth % FEATURES
    tl.store(dw_tile + tile_rows[:, None] * n_pad + o[None, :], acc)
