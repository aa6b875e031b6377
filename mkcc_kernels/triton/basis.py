"""The B-spline basis for the Triton kernels: the one Triton copy of the math in
``csrc/include/mkcc/basis.h`` (same convention, same closed form, fp32 arithmetic).

On knot interval ``m`` (``t_m <= x < t_{m+1}``) the non-zero functions are ``B_{m-K+r}``,
``r = 0..K``; with ``w = (x - t_m) / h`` in ``[0, 1)`` their values are the pieces of the uniform
B-spline of order K below, and ``dB_{m-K+r}/dx = (piece_{K-1, r-1} - piece_{K-1, r}) / h``.
"""

import triton
import triton.language as tl


@triton.jit
def _bspline_pieces(w, ORDER: tl.constexpr):
    """The ORDER + 1 non-zero uniform B-spline values at local coordinate w (padded with zeros
    to five), for ORDER in 0..4."""
    zero = w * 0.0
    v = 1.0 - w
    if ORDER == 0:
        return zero + 1.0, zero, zero, zero, zero
    elif ORDER == 1:
        return v, w, zero, zero, zero
    elif ORDER == 2:
        return 0.5 * v * v, 0.5 + w * (1.0 - w), 0.5 * w * w, zero, zero
    elif ORDER == 3:
        w2 = w * w
        w3 = w2 * w
        return (
            v * v * v / 6.0,
            (3.0 * w3 - 6.0 * w2 + 4.0) / 6.0,
            (-3.0 * w3 + 3.0 * w2 + 3.0 * w + 1.0) / 6.0,
            w3 / 6.0,
            zero,
        )
    else:
        w2 = w * w
        w3 = w2 * w
        w4 = w3 * w
        return (
            v * v * v * v / 24.0,
            (-4.0 * w4 + 12.0 * w3 - 6.0 * w2 - 12.0 * w + 11.0) / 24.0,
            (6.0 * w4 - 12.0 * w3 - 6.0 * w2 + 12.0 * w + 11.0) / 24.0,
            (-4.0 * w4 + 4.0 * w3 + 6.0 * w2 + 4.0 * w + 1.0) / 24.0,
            w4 / 24.0,
        )


@triton.jit
def _select_piece(r, p0, p1, p2, p3, p4):
    """``p_r`` for an integer tensor r (broadcast), zero where r is outside 0..4."""
    return tl.where(
        r == 0,
        p0,
        tl.where(r == 1, p1, tl.where(r == 2, p2, tl.where(r == 3, p3, tl.where(r == 4, p4, 0.0)))),
    )


@triton.jit
def _locate(x, grid_lo, grid_h, inv_h, SPLINE_ORDER: tl.constexpr, NUM_INTERVALS: tl.constexpr):
    """(inside, m, w): whether x lies in [t_0, t_{G+2K}), its knot interval m and local
    coordinate w, with knots t_m = (m - K) * h + lo; the interval is settled against the knots
    themselves so that an input on a knot falls where Cox-de Boor puts it."""
    t_first = (0 - SPLINE_ORDER) * grid_h + grid_lo
    t_last = (NUM_INTERVALS - SPLINE_ORDER) * grid_h + grid_lo
    inside = (x >= t_first) & (x < t_last)
    u = tl.where(inside, (x - t_first) * inv_h, 0.0)
    m = tl.minimum(tl.maximum(tl.floor(u).to(tl.int32), 0), NUM_INTERVALS - 1)
    t_m = (m - SPLINE_ORDER).to(tl.float32) * grid_h + grid_lo
    m = tl.where((x < t_m) & (m > 0), m - 1, m)
    t_next = (m + 1 - SPLINE_ORDER).to(tl.float32) * grid_h + grid_lo
    m = tl.where((x >= t_next) & (m < NUM_INTERVALS - 1), m + 1, m)
    t_m = (m - SPLINE_ORDER).to(tl.float32) * grid_h + grid_lo
    w = tl.where(inside, (x - t_m) * inv_h, 0.0)
    return inside, m, w


@triton.jit
def _spread(
    first,
    m,
    inside,
    features,
    p0,
    p1,
    p2,
    p3,
    p4,
    SPLINE_ORDER: tl.constexpr,
    NUM_FUNCS: tl.constexpr,
):
    """[M, C, F] from per-input values: feature 0 is ``first``, feature 1 + i is piece
    ``i - (m - K)`` of interval m (zero off the interval's K + 1 functions and outside the grid),
    features past 1 + G + K are zero."""
    f = features[None, None, :]
    r = f - 1 - (m[:, :, None] - SPLINE_ORDER)
    pieces = _select_piece(
        r, p0[:, :, None], p1[:, :, None], p2[:, :, None], p3[:, :, None], p4[:, :, None]
    )
    pieces = tl.where(inside[:, :, None] & (f >= 1) & (f <= NUM_FUNCS), pieces, 0.0)
    return tl.where(f == 0, first[:, :, None], pieces)


@triton.jit
def _tap_features(
    x,
    features,
    grid_lo,
    grid_h,
    inv_h,
    SPLINE_ORDER: tl.constexpr,
    NUM_FUNCS: tl.constexpr,
    NUM_INTERVALS: tl.constexpr,
):
    """``[silu(x), B_0(x), .., B_{G+K-1}(x), 0 ..]`` for x of shape [M, C] (fp32) along a new last
    axis indexed by ``features`` (an arange of the padded feature count): shape [M, C, F]."""
    inside, m, w = _locate(x, grid_lo, grid_h, inv_h, SPLINE_ORDER, NUM_INTERVALS)
    p0, p1, p2, p3, p4 = _bspline_pieces(w, SPLINE_ORDER)
    silu = x / (1.0 + tl.exp(-x))
    return _spread(silu, m, inside, features, p0, p1, p2, p3, p4, SPLINE_ORDER, NUM_FUNCS)


@triton.jit
def _tap_feature_derivatives(
    x,
    features,
    grid_lo,
    grid_h,
    inv_h,
    SPLINE_ORDER: tl.constexpr,
    NUM_FUNCS: tl.constexpr,
    NUM_INTERVALS: tl.constexpr,
):
    """d/dx of ``_tap_features``: ``[silu'(x), B_0'(x), ..]``, shape [M, C, F]. Derivative piece
    r is ``(q_{r-1} - q_r) / h`` with q the order K - 1 pieces (zero past K - 1)."""
    inside, m, w = _locate(x, grid_lo, grid_h, inv_h, SPLINE_ORDER, NUM_INTERVALS)
    q0, q1, q2, q3, q4 = _bspline_pieces(w, SPLINE_ORDER - 1)
    sig = 1.0 / (1.0 + tl.exp(-x))
    silu_grad = sig * (1.0 + x * (1.0 - sig))
    return _spread(
        silu_grad,
        m,
        inside,
        features,
        -q0 * inv_h,
        (q0 - q1) * inv_h,
        (q1 - q2) * inv_h,
        (q2 - q3) * inv_h,
        (q3 - q4) * inv_h,
        SPLINE_ORDER,
        NUM_FUNCS,
    )
