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
