"""Fused KANLinear kernels (efficient-kan's layer): forward, input gradient, weight gradient
(Triton).

The same tiles as the KANConv1d kernels (``kan_conv1d.py``) with one tap and per-feature knots:
feature 0 of an input feature is silu(x), feature 1 + j spline function j on that feature's own
knot vector (a row of the layer's grid, non-uniform, possibly with repeated knots); ``F`` (the
packed feature count) is 1 + G + K rounded up to a multiple of ``FEATURES`` (16), handled
``FEATURES`` at a time. Every kernel locates the knot interval of the ``x`` values it loads
against the knots themselves, evaluates silu and the K + 1 non-zero basis values there by
Cox-de Boor (``basis._knot_features``) in fp32 registers as ``[C, F, M]`` tiles, and contracts
them with ``tl.dot`` accumulating in fp32; nothing expanded touches global memory. Grids are
one-dimensional, row offsets 64-bit, packed weights zero-padded to whole tiles (loads without
masks). Sizes and strides are not specialized by value.
"""

import triton
import triton.language as tl

from .basis import _knot_features
from .core import _contract

_SIZES = (
    "batch",
    "in_features",
    "out_features",
    "num_funcs",
    "num_knots",
    "feature_blocks",
    "rows_per_split",
)
_STRIDES = ("stride_on", "stride_oo", "stride_xn", "stride_xi", "stride_gn", "stride_go")


def _unspecialized(fn):
    """``triton.jit`` with every size and stride argument left unspecialized."""
    names = fn.__code__.co_varnames[: fn.__code__.co_argcount]
    return triton.jit(do_not_specialize=[n for n in names if n in _SIZES + _STRIDES])(fn)


@_unspecialized
def _kan_linear_fwd_kernel(
    out_ptr,
    stride_on,
    stride_oo,
    x_ptr,
    stride_xn,
    stride_xi,
    w_ptr,
    knots_ptr,
    batch,
    in_features,
    out_features,
    num_funcs,
    num_knots,
    feature_blocks,
    SPLINE_ORDER: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    FEATURES: tl.constexpr,
):
    """One program: BLOCK_N outputs x BLOCK_M rows. ``out^T [N, M] = W^T [N, C*F] @ features
    [C*F, M]`` over the steps (input-feature block, feature block). Weights packed
    ``[N_pad, C_pad, F]`` (whole blocks, zero-filled); knots contiguous ``[in, num_knots]``."""
    pid = tl.program_id(0).to(tl.int64)
    n_blocks = tl.cdiv(out_features, BLOCK_N)
    pid_n = pid % n_blocks
    pid_m = pid // n_blocks
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < batch
    x_rows = x_ptr + rows * stride_xn
    channels = tl.arange(0, BLOCK_C)
    c_blocks = tl.cdiv(in_features, BLOCK_C)
    padded_features = feature_blocks * FEATURES
    row_length = tl.multiple_of(c_blocks * BLOCK_C * padded_features, FEATURES)
    cols = tl.arange(0, BLOCK_N)
    depth = tl.arange(0, BLOCK_C * FEATURES)
    # (channel, feature) of a tile column: consecutive channels are padded_features apart.
    w_tile = (
        cols[:, None] * row_length
        + ((depth // FEATURES) * padded_features + depth % FEATURES)[None, :]
    )
    w_rows = w_ptr + (pid_n * BLOCK_N) * row_length
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for step in range(c_blocks * feature_blocks):
        f0 = (step % feature_blocks) * FEATURES
        c0 = (step // feature_blocks) * BLOCK_C
        c = c0 + channels
        c_ok = c < in_features
        x_mask = c_ok[:, None] & row_ok[None, :]
        xv = tl.load(
            x_rows[None, :] + c.to(tl.int64)[:, None] * stride_xi, mask=x_mask, other=0.0
        ).to(tl.float32)
        feats = _knot_features(
            xv, x_mask, f0, knots_ptr, c * num_knots, c_ok, num_funcs, num_knots, SPLINE_ORDER,
            FEATURES, False,
        )  # fmt: skip
        feats = tl.reshape(feats, (BLOCK_C * FEATURES, BLOCK_M))
        acc = _contract(tl.load(w_rows + c0 * padded_features + f0 + w_tile), feats, acc, IEEE_FP32)
    o = pid_n * BLOCK_N + cols
    out_offsets = rows[None, :] * stride_on + o.to(tl.int64)[:, None] * stride_oo
    tl.store(
        out_ptr + out_offsets,
        acc.to(out_ptr.dtype.element_ty),
        mask=(o < out_features)[:, None] & row_ok[None, :],
    )


@_unspecialized
def _kan_linear_bwd_dx_kernel(
    dx_ptr,
    x_ptr,
    stride_xn,
    stride_xi,
    gy_ptr,
    stride_gn,
    stride_go,
    w_ptr,
    knots_ptr,
    batch,
    in_features,
    out_features,
    num_funcs,
    num_knots,
    feature_blocks,
    SPLINE_ORDER: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_O: tl.constexpr,
    FEATURES: tl.constexpr,
):
    """One program: BLOCK_C input features x BLOCK_M rows x one feature block. ``dx = sum_f
    feature_f'(x) * S_f`` with ``S [C*F, M] = sum_o W [C*F, O] @ grad_out^T [O, M]``; the
    derivative contraction happens in registers. With one feature block ``dx_ptr`` is dx,
    contiguous ``[N, in]``; with several an fp32 ``[feature_blocks, N, in]`` of per-block sums,
    added up afterwards. Weights packed ``[C_pad, F, O_pad]``; grad_out read through its
    strides."""
    pid = tl.program_id(0).to(tl.int64)
    c_blocks = tl.cdiv(in_features, BLOCK_C)
    pid_c = pid % c_blocks
    rest = pid // c_blocks
    fb = (rest % feature_blocks).to(tl.int32)
    pid_m = rest // feature_blocks
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < batch
    c = (pid_c * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int32)
    o_blocks = tl.cdiv(out_features, BLOCK_O)
    padded_outs = tl.multiple_of(o_blocks * BLOCK_O, BLOCK_O)
    padded_features = feature_blocks * FEATURES
    outs = tl.arange(0, BLOCK_O)
    depth = tl.arange(0, BLOCK_C * FEATURES)
    w_tile = ((depth // FEATURES) * padded_features + depth % FEATURES)[:, None] * padded_outs + (
        outs[None, :]
    )
    w_rows = w_ptr + ((pid_c * BLOCK_C) * padded_features + fb * FEATURES) * padded_outs
    gy_rows = gy_ptr + rows * stride_gn
    acc = tl.zeros((BLOCK_C * FEATURES, BLOCK_M), dtype=tl.float32)
    for o0 in range(0, out_features, BLOCK_O):
        o = o0 + outs
        gy = tl.load(
            gy_rows[None, :] + o.to(tl.int64)[:, None] * stride_go,
            mask=(o < out_features)[:, None] & row_ok[None, :],
            other=0.0,
        )
        acc = _contract(tl.load(w_rows + o0 + w_tile), gy, acc, IEEE_FP32)
    c_ok = c < in_features
    x_mask = c_ok[:, None] & row_ok[None, :]
    xv = tl.load(
        x_ptr + (rows * stride_xn)[None, :] + c.to(tl.int64)[:, None] * stride_xi,
        mask=x_mask,
        other=0.0,
    ).to(tl.float32)
    derivatives = _knot_features(
        xv, x_mask, fb * FEATURES, knots_ptr, c * num_knots, c_ok, num_funcs, num_knots,
        SPLINE_ORDER, FEATURES, True,
    )  # fmt: skip
    dx = tl.sum(tl.reshape(acc, (BLOCK_C, FEATURES, BLOCK_M)) * derivatives, axis=1)
    dx_offsets = (fb.to(tl.int64) * batch + rows[None, :]) * in_features + c.to(tl.int64)[:, None]
    tl.store(dx_ptr + dx_offsets, dx.to(dx_ptr.dtype.element_ty), mask=x_mask)


@_unspecialized
def _kan_linear_bwd_dw_kernel(
    dw_ptr,
    x_ptr,
    stride_xn,
    stride_xi,
    gy_ptr,
    stride_gn,
    stride_go,
    knots_ptr,
    batch,
    in_features,
    out_features,
    num_funcs,
    num_knots,
    feature_blocks,
    rows_per_split,
    SPLINE_ORDER: tl.constexpr,
    IEEE_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    FEATURES: tl.constexpr,
):
    """One program: (BLOCK_C input features x FEATURES features) x BLOCK_N outputs, reduced over
    one split of the rows: ``features [C*F, M] @ grad_out [M, N]`` with the basis recomputed per
    tile. Each program owns its whole tile of the fp32 partial buffer ``[splits, C_pad, F,
    N_pad]``: no atomics, no masks, deterministic. The gradient of base_weight is feature 0's,
    that of the scaled spline weight features 1 .. G + K."""
    pid = tl.program_id(0).to(tl.int64)
    n_blocks = tl.cdiv(out_features, BLOCK_N)
    c_blocks = tl.cdiv(in_features, BLOCK_C)
    pid_n = pid % n_blocks
    rest = pid // n_blocks
    fb = (rest % feature_blocks).to(tl.int32)
    rest = rest // feature_blocks
    pid_c = rest % c_blocks
    split = rest // c_blocks
    o = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_ok = o < out_features
    c = (pid_c * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int32)
    c_ok = c < in_features
    f0 = fb * FEATURES
    row_start = split * rows_per_split
    row_end = tl.minimum(row_start + rows_per_split, batch)
    x_channels = x_ptr + c.to(tl.int64)[:, None] * stride_xi
    gy_outs = gy_ptr + o.to(tl.int64)[None, :] * stride_go
    knot_rows = c * num_knots
    acc = tl.zeros((BLOCK_C * FEATURES, BLOCK_N), dtype=tl.float32)
    for r0 in range(row_start, row_end, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        row_ok = rows < row_end
        x_mask = c_ok[:, None] & row_ok[None, :]
        xv = tl.load(x_channels + (rows * stride_xn)[None, :], mask=x_mask, other=0.0).to(
            tl.float32
        )
        feats = _knot_features(
            xv, x_mask, f0, knots_ptr, knot_rows, c_ok, num_funcs, num_knots, SPLINE_ORDER,
            FEATURES, False,
        )  # fmt: skip
        feats = tl.reshape(feats, (BLOCK_C * FEATURES, BLOCK_M))
        gy = tl.load(
            gy_outs + (rows * stride_gn)[:, None],
            mask=row_ok[:, None] & o_ok[None, :],
            other=0.0,
        )
        acc = _contract(feats.to(gy.dtype), gy, acc, IEEE_FP32)
    c_pad = c_blocks * BLOCK_C
    n_pad = n_blocks * BLOCK_N
    padded_features = feature_blocks * FEATURES
    tile = (split * c_pad + pid_c * BLOCK_C).to(tl.int64)
    depth = tl.arange(0, BLOCK_C * FEATURES)
    tile_rows = (depth // FEATURES) * padded_features + fb * FEATURES + depth % FEATURES
    offsets = (tile * padded_features + tile_rows[:, None]) * n_pad + o[None, :]
    tl.store(dw_ptr + offsets, acc)
