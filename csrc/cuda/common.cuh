// Device helpers shared by the CUDA kernels: dtype conversion and the per-position features
// (silu, knot interval, basis values) built on mkcc/basis.h.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_runtime.h>

#include "mkcc/basis.h"

namespace mkcc {
namespace cuda {

template <typename scalar_t>
__device__ __forceinline__ float to_float(scalar_t v) {
  return static_cast<float>(v);
}

template <typename scalar_t>
__device__ __forceinline__ scalar_t from_float(float v) {
  return static_cast<scalar_t>(v);
}

// silu(x), the packed row of knot interval m (1 + m; 1 with zero values outside the grid) and
// the K + 1 non-zero basis values of one input.
template <int K>
__device__ __forceinline__ void features(float xv, const float* __restrict__ knots,
                                         int num_intervals, float inv_h, float& silu_value,
                                         int& row, float* values) {
  silu_value = silu(xv, expf(-xv));
  const int m = knot_interval(xv, knots, num_intervals, inv_h);
  if (m < 0) {
#pragma unroll
    for (int r = 0; r <= K; ++r) values[r] = 0.0f;
    row = 1;
  } else {
    bspline_values<K>((xv - knots[m]) * inv_h, values);
    row = 1 + m;
  }
}

// Calls fn.template operator()<K>() for the runtime spline order (validated by the host: 1..4).
#define MKCC_DISPATCH_ORDER(ORDER, ...)         \
  switch (ORDER) {                              \
    case 1: { constexpr int K = 1; __VA_ARGS__(); break; } \
    case 2: { constexpr int K = 2; __VA_ARGS__(); break; } \
    case 3: { constexpr int K = 3; __VA_ARGS__(); break; } \
    default: { constexpr int K = 4; __VA_ARGS__(); break; } \
  }

}  // namespace cuda
}  // namespace mkcc
