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


# ---- per-feature knots (KANLinear) ----------------------------------------------------------
#
# Each input feature has its own non-decreasing knot vector ``t_0 .. t_{M-1}`` (a row of the
# layer's grid, possibly non-uniform, possibly with repeated knots). An element x of feature c
# lies in interval m (``t_m <= x < t_{m+1}``, the one non-empty half-open interval holding it:
# m counts the inner knots at or below x) when ``t_0 <= x < t_{M-1}``; its non-zero functions
# are ``B_{m-K+r}``, r = 0..K, computed by Cox-de Boor on the 2K knots ``t_{m-K+1} .. t_{m+K}``
# around it, each quotient divided by its own knot width. For every function that exists
# (0 <= m-K+r <= M-K-2) those widths contain [t_m, t_{m+1}) and are not zero; near the ends of
# the grid the recursion also produces functions with no index, from knots clamped into the
# grid: they never feed an existing one and ``_spread`` drops them. A zero width (which only
# those can meet) divides as 1 (the reference's 0 / 0 = 0).


@triton.jit
def _nonzero(width):
    return tl.where(width == 0.0, 1.0, width)


@triton.jit
def _knot_at(o: tl.constexpr, km3, km2, km1, k0, k1, k2, k3, k4):
    """``t_{m+o}`` from the gathered knots ``t_{m-3} .. t_{m+4}``, o a compile-time offset."""
    if o == -3:
        return km3
    elif o == -2:
        return km2
    elif o == -1:
        return km1
    elif o == 0:
        return k0
    elif o == 1:
        return k1
    elif o == 2:
        return k2
    elif o == 3:
        return k3
    else:
        return k4


@triton.jit
def _quotient(b, R: tl.constexpr, D: tl.constexpr, km3, km2, km1, k0, k1, k2, k3, k4):
    """``B_{m-D+1+R, D-1} / (t_{m+R+1} - t_{m+R+1-D})``: an order D - 1 function over the width
    of its support, the factor both order-D functions it feeds take from it (and, times D, its
    part of their derivatives)."""
    lo = _knot_at(R + 1 - D, km3, km2, km1, k0, k1, k2, k3, k4)
    hi = _knot_at(R + 1, km3, km2, km1, k0, k1, k2, k3, k4)
    return b / _nonzero(hi - lo)


@triton.jit
def _quotients(b0, b1, b2, b3, D: tl.constexpr, km3, km2, km1, k0, k1, k2, k3, k4):
    """``_quotient`` of the D non-zero functions of order D - 1 (``b0 .. b_{D-1}``), zero past
    them."""
    zero = b0 * 0.0
    s0 = _quotient(b0, 0, D, km3, km2, km1, k0, k1, k2, k3, k4)
    s1 = zero
    s2 = zero
    s3 = zero
    if D >= 2:
        s1 = _quotient(b1, 1, D, km3, km2, km1, k0, k1, k2, k3, k4)
    if D >= 3:
        s2 = _quotient(b2, 2, D, km3, km2, km1, k0, k1, k2, k3, k4)
    if D >= 4:
        s3 = _quotient(b3, 3, D, km3, km2, km1, k0, k1, k2, k3, k4)
    return s0, s1, s2, s3


@triton.jit
def _cox_de_boor_level(x, b0, b1, b2, b3, D: tl.constexpr, km3, km2, km1, k0, k1, k2, k3, k4):
    """The D + 1 non-zero functions of order D on interval m, ``B_{m-D+r, D}`` r = 0..D (padded
    with zeros to five), from the D of order D - 1 (``b0 .. b_{D-1}``) by Cox-de Boor:
    ``B_{m-D+r, D} = (x - t_{m-D+r}) s_{r-1} + (t_{m+r+1} - x) s_r`` with ``s = _quotients``
    (``s_{-1} = s_D = 0``)."""
    zero = x * 0.0
    s0, s1, s2, s3 = _quotients(b0, b1, b2, b3, D, km3, km2, km1, k0, k1, k2, k3, k4)
    p0 = (k1 - x) * s0
    p1 = (x - _knot_at(1 - D, km3, km2, km1, k0, k1, k2, k3, k4)) * s0
    p2 = zero
    p3 = zero
    p4 = zero
    if D >= 2:
        p1 += (k2 - x) * s1
        p2 = (x - _knot_at(2 - D, km3, km2, km1, k0, k1, k2, k3, k4)) * s1
    if D >= 3:
        p2 += (k3 - x) * s2
        p3 = (x - _knot_at(3 - D, km3, km2, km1, k0, k1, k2, k3, k4)) * s2
    if D >= 4:
        p3 += (k4 - x) * s3
        p4 = (x - _knot_at(4 - D, km3, km2, km1, k0, k1, k2, k3, k4)) * s3
    return p0, p1, p2, p3, p4


@triton.jit
def _cox_de_boor(x, ORDER: tl.constexpr, km3, km2, km1, k0, k1, k2, k3, k4):
    """The ORDER + 1 non-zero functions of order ORDER (0..4) on interval m, padded to five."""
    zero = x * 0.0
    p0, p1, p2, p3, p4 = zero + 1.0, zero, zero, zero, zero
    if ORDER >= 1:
        p0, p1, p2, p3, p4 = _cox_de_boor_level(
            x, p0, p1, p2, p3, 1, km3, km2, km1, k0, k1, k2, k3, k4
        )
    if ORDER >= 2:
        p0, p1, p2, p3, p4 = _cox_de_boor_level(
            x, p0, p1, p2, p3, 2, km3, km2, km1, k0, k1, k2, k3, k4
        )
    if ORDER >= 3:
        p0, p1, p2, p3, p4 = _cox_de_boor_level(
            x, p0, p1, p2, p3, 3, km3, km2, km1, k0, k1, k2, k3, k4
        )
    if ORDER >= 4:
        p0, p1, p2, p3, p4 = _cox_de_boor_level(
            x, p0, p1, p2, p3, 4, km3, km2, km1, k0, k1, k2, k3, k4
        )
    return p0, p1, p2, p3, p4


@triton.jit
def _knot(knots_ptr, knot_rows, m, o: tl.constexpr, num_knots, mask):
    """``t_{m+o}`` of each element's feature, the index clamped into the knot vector (a clamped
    knot only serves functions that do not exist); 0 where ``mask`` is false."""
    index = tl.minimum(tl.maximum(m + o, 0), num_knots - 1)
    return tl.load(knots_ptr + knot_rows + index, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _knot_features(
    x,
    mask,
    f0,
    knots_ptr,
    knot_rows,
    channel_ok,
    num_funcs,
    num_knots,
    SPLINE_ORDER: tl.constexpr,
    FEATURES: tl.constexpr,
    DERIVATIVE: tl.constexpr,
):
    """``_tap_features`` on per-feature knots: features ``f0 .. f0 + FEATURES - 1`` of
    ``[silu(x), B_0(x), .., B_{G+K-1}(x), 0 ..]`` (or their derivatives) for x of shape [C, M]
    (fp32), zero where ``mask`` is false: [C, FEATURES, M]. Feature c's knots are
    ``knots_ptr + knot_rows[c] + 0 .. num_knots - 1`` (``knot_rows`` [C], ``channel_ok`` [C]
    the features that exist). Derivative r of interval m is ``K (s_{r-1} - s_r)`` with ``s``
    the ``_quotients`` of the order K - 1 functions (the spline derivative formula)."""
    features = f0 + tl.arange(0, FEATURES)
    rows = knot_rows[:, None]
    ok = channel_ok[:, None]
    t_first = tl.load(knots_ptr + rows, mask=ok, other=0.0).to(tl.float32)
    t_last = tl.load(knots_ptr + rows + num_knots - 1, mask=ok, other=0.0).to(tl.float32)
    inside = (x >= t_first) & (x < t_last)
    m = tl.zeros(x.shape, dtype=tl.int32)
    for k in range(1, num_knots - 1):
        t_k = tl.load(knots_ptr + knot_rows + k, mask=channel_ok, other=0.0).to(tl.float32)
        m += (x >= t_k[:, None]).to(tl.int32)
    # Outside the grid (and for NaN) m is 0 and the recursion runs at t_0: finite, then dropped.
    xe = tl.where(inside, x, t_first)
    lanes = mask & ok
    km3 = xe * 0.0
    km2 = km3
    km1 = km3
    k2 = km3
    k3 = km3
    k4 = km3
    k0 = _knot(knots_ptr, rows, m, 0, num_knots, lanes)
    k1 = _knot(knots_ptr, rows, m, 1, num_knots, lanes)
    if SPLINE_ORDER >= 2:
        km1 = _knot(knots_ptr, rows, m, -1, num_knots, lanes)
        k2 = _knot(knots_ptr, rows, m, 2, num_knots, lanes)
    if SPLINE_ORDER >= 3:
        km2 = _knot(knots_ptr, rows, m, -2, num_knots, lanes)
        k3 = _knot(knots_ptr, rows, m, 3, num_knots, lanes)
    if SPLINE_ORDER >= 4:
        km3 = _knot(knots_ptr, rows, m, -3, num_knots, lanes)
        k4 = _knot(knots_ptr, rows, m, 4, num_knots, lanes)
    if DERIVATIVE:
        sig = 1.0 / (1.0 + tl.exp(-x))
        q0, q1, q2, q3, _ = _cox_de_boor(xe, SPLINE_ORDER - 1, km3, km2, km1, k0, k1, k2, k3, k4)
        s0, s1, s2, s3 = _quotients(q0, q1, q2, q3, SPLINE_ORDER, km3, km2, km1, k0, k1, k2, k3, k4)
        values = _spread(
            sig * (1.0 + x * (1.0 - sig)), m, inside, features, num_funcs,
            -SPLINE_ORDER * s0, SPLINE_ORDER * (s0 - s1), SPLINE_ORDER * (s1 - s2),
            SPLINE_ORDER * (s2 - s3), SPLINE_ORDER * s3, SPLINE_ORDER,
        )  # fmt: skip
    else:
        p0, p1, p2, p3, p4 = _cox_de_boor(xe, SPLINE_ORDER, km3, km2, km1, k0, k1, k2, k3, k4)
        values = _spread(
            x / (1.0 + tl.exp(-x)), m, inside, features, num_funcs, p0, p1, p2, p3, p4,
            SPLINE_ORDER,
        )  # fmt: skip
    return tl.where(mask[:, None, :], values, 0.0)
