"""The B-spline basis for the Triton kernels: the one Triton copy of the math in
``csrc/include/mkcc/basis.h`` (same convention, same closed form, fp32 arithmetic).

On knot interval ``m`` (``t_m <= x < t_{m+1}``) the non-zero functions are ``B_{m-K+r}``,
``r = 0..K``; with ``w = (x - t_m) / h`` in ``[0, 1)`` their values are the pieces of the uniform
B-spline of order K below, and ``dB_{m-K+r}/dx = (piece_{K-1, r-1} - piece_{K-1, r}) / h``.

Feature tiles are laid out ``[C, F, M]`` (input channels, features, rows), rows innermost: the
per-input values (interval, pieces, silu) are computed once on a ``[C, M]`` tile whose rows run
across a warp's lanes, so broadcasting them along the feature axis keeps each thread's share
small (a few inputs, all their features). The ``[C * F, M]`` reshape is then the K x N operand of
a dot that reads it from shared memory.
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
def _select_piece(r, p0, p1, p2, p3, p4, ORDER: tl.constexpr):
    """``p_r`` for an integer tensor r (broadcast), zero where r is outside 0..ORDER (pieces past
    ORDER are zero, so they are not selected at all)."""
    piece = tl.where(r == 0, p0, 0.0)
    if ORDER >= 1:
        piece = tl.where(r == 1, p1, piece)
    if ORDER >= 2:
        piece = tl.where(r == 2, p2, piece)
    if ORDER >= 3:
        piece = tl.where(r == 3, p3, piece)
    if ORDER >= 4:
        piece = tl.where(r == 4, p4, piece)
    return piece


@triton.jit
def _locate(x, grid_lo, grid_h, inv_h, num_intervals, SPLINE_ORDER: tl.constexpr):
    """(inside, m, w): whether x lies in [t_0, t_{G+2K}), its knot interval m and local
    coordinate w, with knots t_m = (m - K) * h + lo; the interval is settled against the knots
    themselves so that an input on a knot falls where Cox-de Boor puts it."""
    t_first = (0 - SPLINE_ORDER) * grid_h + grid_lo
    t_last = (num_intervals - SPLINE_ORDER) * grid_h + grid_lo
    inside = (x >= t_first) & (x < t_last)
    u = tl.where(inside, (x - t_first) * inv_h, 0.0)
    m = tl.minimum(tl.maximum(tl.floor(u).to(tl.int32), 0), num_intervals - 1)
    t_m = (m - SPLINE_ORDER).to(tl.float32) * grid_h + grid_lo
    m = tl.where((x < t_m) & (m > 0), m - 1, m)
    t_next = (m + 1 - SPLINE_ORDER).to(tl.float32) * grid_h + grid_lo
    m = tl.where((x >= t_next) & (m < num_intervals - 1), m + 1, m)
    t_m = (m - SPLINE_ORDER).to(tl.float32) * grid_h + grid_lo
    w = tl.where(inside, (x - t_m) * inv_h, 0.0)
    return inside, m, w


@triton.jit
def _spread(
    first,
    m,
    inside,
    features,
    num_funcs,
    p0,
    p1,
    p2,
    p3,
    p4,
    SPLINE_ORDER: tl.constexpr,
):
    """[C, F, M] from per-input values of shape [C, M]: feature 0 is ``first``, feature 1 + i is
    piece ``i - (m - K)`` of interval m (zero off the interval's K + 1 functions and outside the
    grid), features past G + K are zero. ``features`` holds the absolute feature indices of the
    block."""
    f = features[None, :, None]
    r = f - 1 - (m[:, None, :] - SPLINE_ORDER)
    pieces = _select_piece(
        r,
        p0[:, None, :],
        p1[:, None, :],
        p2[:, None, :],
        p3[:, None, :],
        p4[:, None, :],
        SPLINE_ORDER,
    )
    pieces = tl.where(inside[:, None, :] & (f >= 1) & (f <= num_funcs), pieces, 0.0)
    return tl.where(f == 0, first[:, None, :], pieces)


@triton.jit
def _tap_features(
    x,
    mask,
    f0,
    grid_lo,
    grid_h,
    inv_h,
    num_funcs,
    num_intervals,
    SPLINE_ORDER: tl.constexpr,
    FEATURES: tl.constexpr,
    DERIVATIVE: tl.constexpr,
):
    """Features ``f0 .. f0 + FEATURES - 1`` of ``[silu(x), B_0(x), .., B_{G+K-1}(x), 0 ..]`` for
    x of shape [C, M] (fp32), zero where ``mask`` is false: shape [C, FEATURES, M]. With
    ``DERIVATIVE`` their derivatives ``[silu'(x), B_0'(x), ..]``, derivative piece r being
    ``(q_{r-1} - q_r) / h`` with q the order K - 1 pieces (zero past K - 1)."""
    features = f0 + tl.arange(0, FEATURES)
    inside, m, w = _locate(x, grid_lo, grid_h, inv_h, num_intervals, SPLINE_ORDER)
    if DERIVATIVE:
        sig = 1.0 / (1.0 + tl.exp(-x))
        q0, q1, q2, q3, q4 = _bspline_pieces(w, SPLINE_ORDER - 1)
        values = _spread(
            sig * (1.0 + x * (1.0 - sig)),
            m,
            inside,
            features,
            num_funcs,
            -q0 * inv_h,
            (q0 - q1) * inv_h,
            (q1 - q2) * inv_h,
            (q2 - q3) * inv_h,
            (q3 - q4) * inv_h,
            SPLINE_ORDER,
        )
    else:
        p0, p1, p2, p3, p4 = _bspline_pieces(w, SPLINE_ORDER)
        values = _spread(
            x / (1.0 + tl.exp(-x)), m, inside, features, num_funcs, p0, p1, p2, p3, p4,
            SPLINE_ORDER,
        )  # fmt: skip
    return tl.where(mask[:, None, :], values, 0.0)
