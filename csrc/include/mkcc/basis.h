// B-spline basis on a uniform grid: the one copy of the math for every C++ and CUDA kernel.
//
// Convention (efficient-kan): grid_range = (lo, hi), h = (hi - lo) / G, knots
// t_m = (m - K) * h + lo for m = 0 .. G + 2K. B_i (i = 0 .. G+K-1) is the order-K B-spline on
// knots t_i .. t_{i+K+1} (Cox-de Boor, half-open intervals at order 0).
//
// On knot interval m (t_m <= x < t_{m+1}, m in 0 .. G+2K-1) the non-zero functions are
// B_{m-K+r}, r = 0..K. With the local coordinate w = (x - t_m) / h in [0, 1) the uniform
// Cox-de Boor recursion reads
//   v_0[0] = 1,   v_d[r] = ((w + d - r) * v_{d-1}[r-1] + (r + 1 - w) * v_{d-1}[r]) / d
// (entries outside 0..d-1 are zero) and v_K[r] = B_{m-K+r}(x). The derivative is
//   dB_{m-K+r}/dx = (v_{K-1}[r-1] - v_{K-1}[r]) / h.
// Indices m-K+r outside 0 .. G+K-1 are not basis functions; callers give them zero weight.
#pragma once

#include <stdint.h>

#if defined(__CUDACC__)
#define MKCC_HOST_DEVICE __host__ __device__
#define MKCC_INLINE static __forceinline__
#define MKCC_UNROLL _Pragma("unroll")
#else
#define MKCC_HOST_DEVICE
#define MKCC_INLINE static inline __attribute__((always_inline))
#define MKCC_UNROLL _Pragma("GCC unroll 8")
#endif

namespace mkcc {

// Largest supported spline order.
constexpr int kMaxSplineOrder = 4;

// Knot interval of x, or -1 when x is outside [t_0, t_{G+2K}) (NaN included).
// `knots` holds the G+2K+1 knots exactly as the reference computes them, so that the
// half-open interval test agrees with Cox-de Boor even for inputs that sit on a knot.
template <typename T>
MKCC_HOST_DEVICE MKCC_INLINE int knot_interval(T x, const T* knots, int num_intervals, T inv_h) {
  if (!(x >= knots[0] && x < knots[num_intervals])) {
    return -1;
  }
  T u = (x - knots[0]) * inv_h;
  int m = static_cast<int>(u);  // u >= 0 here, so truncation is floor
  m = m < 0 ? 0 : (m > num_intervals - 1 ? num_intervals - 1 : m);
  // u can be off by one ulp next to a knot: settle on the exact half-open interval.
  while (m > 0 && x < knots[m]) {
    --m;
  }
  while (m < num_intervals - 1 && x >= knots[m + 1]) {
    ++m;
  }
  return m;
}

// The K+1 non-zero basis values on an interval at local coordinate w.
template <int K, typename T>
MKCC_HOST_DEVICE MKCC_INLINE void bspline_values(T w, T* values) {
  T v[K + 1];
  v[0] = T(1);
MKCC_UNROLL
  for (int d = 1; d <= K; ++d) {
    T next[K + 1];
MKCC_UNROLL
    for (int r = 0; r <= d; ++r) {
      T left = r >= 1 ? (w + T(d - r)) * v[r - 1] : T(0);
      T right = r <= d - 1 ? (T(r + 1) - w) * v[r] : T(0);
      next[r] = (left + right) / T(d);
    }
MKCC_UNROLL
    for (int r = 0; r <= d; ++r) {
      v[r] = next[r];
    }
  }
MKCC_UNROLL
  for (int r = 0; r <= K; ++r) {
    values[r] = v[r];
  }
}

// The K+1 non-zero basis values and their derivatives d/dx (inv_h = 1 / h).
template <int K, typename T>
MKCC_HOST_DEVICE MKCC_INLINE void bspline_values_and_derivatives(T w, T inv_h, T* values,
                                                                 T* derivatives) {
  T lower[K];
  bspline_values<K - 1>(w, lower);
MKCC_UNROLL
  for (int r = 0; r <= K; ++r) {
    T left = r >= 1 ? lower[r - 1] : T(0);
    T right = r <= K - 1 ? lower[r] : T(0);
    derivatives[r] = (left - right) * inv_h;
  }
  // One more recursion step from the order K-1 values gives the order K values.
MKCC_UNROLL
  for (int r = 0; r <= K; ++r) {
    T left = r >= 1 ? (w + T(K - r)) * lower[r - 1] : T(0);
    T right = r <= K - 1 ? (T(r + 1) - w) * lower[r] : T(0);
    values[r] = (left + right) / T(K);
  }
}

// Non-uniform knots (KANLinear's per-feature grids, any non-decreasing t_0 .. t_{M-1}):
// Cox-de Boor in the triangular form of Piegl and Tiller (The NURBS Book, A2.2) on knot
// interval m (t_m <= x < t_{m+1}), written in u = x - t_m with per-interval constants
//   a_j = t_m - t_{m+1-j},  b_j = t_{m+j} - t_m                       (j = 1 .. K)
//   c_{j,r} = 1 / (t_{m+r+1} - t_{m+1-j+r})                          (j = 1 .. K, r < j)
// so that left_j = x - t_{m+1-j} = u + a_j and right_j = t_{m+j} - x = b_j - u. A zero width
// (repeated knots) gives c = 0 (the reference's 0 / 0 = 0), and so does a knot index outside
// 0 .. M-1: such terms only reach functions that do not exist (index < 0 or > M - K - 2),
// which callers drop. The degree-D values (D <= K) are B_{m-D+r, D}(x), r = 0 .. D.
template <int K>
struct IntervalConstants {
  static constexpr int kInverse = K * (K + 1) / 2;  // c_{j,r} at (j - 1) * j / 2 + r
  static constexpr int kCount = 1 + 2 * K + kInverse;  // t_m, a_1..a_K, b_1..b_K, c
};

// The constants of interval m (IntervalConstants<K>::kCount values, `stride` apart: t_m, a_j,
// b_j, c_{j,r}) from the M knots t.
template <int K, typename T>
MKCC_HOST_DEVICE MKCC_INLINE void interval_constants(const T* t, int num_knots, int m,
                                                     T* out, int64_t stride) {
  out[0] = t[m];
MKCC_UNROLL
  for (int j = 1; j <= K; ++j) {
    out[j * stride] = m + 1 - j >= 0 ? t[m] - t[m + 1 - j] : T(0);
    out[(K + j) * stride] = m + j < num_knots ? t[m + j] - t[m] : T(0);
  }
MKCC_UNROLL
  for (int j = 1; j <= K; ++j) {
MKCC_UNROLL
    for (int r = 0; r < j; ++r) {
      const int hi = m + r + 1;
      const int lo = m + 1 - j + r;
      const T width = lo >= 0 && hi < num_knots ? t[hi] - t[lo] : T(0);
      out[(1 + 2 * K + (j - 1) * j / 2 + r) * stride] = width > T(0) ? T(1) / width : T(0);
    }
  }
}

// The D + 1 non-zero degree-D values at u = x - t_m from interval m's constants (`k`, laid out
// as interval_constants wrote them with stride 1, or gathered).
template <int K, int D, typename T>
MKCC_HOST_DEVICE MKCC_INLINE void bspline_values_nonuniform(T u, const T* k, T* values) {
  const T* a = k + 1;
  const T* b = k + 1 + K;
  const T* c = k + 1 + 2 * K;
  values[0] = T(1);
MKCC_UNROLL
  for (int j = 1; j <= D; ++j) {
    T saved = T(0);
MKCC_UNROLL
    for (int r = 0; r < j; ++r) {
      const T temp = values[r] * c[(j - 1) * j / 2 + r];
      values[r] = saved + (b[r] - u) * temp;   // right_{r+1}
      saved = (u + a[j - r - 1]) * temp;       // left_{j-r}
    }
    values[j] = saved;
  }
}

// Knot interval of x among M non-decreasing knots t (the last m with t_m <= x), or -1 when x
// is outside [t_0, t_{M-1}) (NaN included). Repeated knots make empty intervals, never chosen.
template <typename T>
MKCC_HOST_DEVICE MKCC_INLINE int knot_interval_nonuniform(T x, const T* t, int num_knots) {
  if (!(x >= t[0] && x < t[num_knots - 1])) return -1;
  int lo = 0;
  int hi = num_knots - 2;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (t[mid] <= x) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// silu(x) = x * sigmoid(x), written as torch writes it so that results agree bit for bit
// where the exponential does.
template <typename T>
MKCC_HOST_DEVICE MKCC_INLINE T silu(T x, T exp_neg_x) {
  return x / (T(1) + exp_neg_x);
}

// d silu / dx = s * (1 + x * (1 - s)) with s = sigmoid(x).
template <typename T>
MKCC_HOST_DEVICE MKCC_INLINE T silu_derivative(T x, T exp_neg_x) {
  T s = T(1) / (T(1) + exp_neg_x);
  return s * (T(1) + x * (T(1) - s));
}

}  // namespace mkcc
