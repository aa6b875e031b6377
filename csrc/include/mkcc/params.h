// Plain-old-data description of one KANConv1d call, shared by the CPU and CUDA launchers.
// Tensors are contiguous; sizes are int64 so that offsets never overflow.
#pragma once

#include <stdint.h>

#include "mkcc/basis.h"  // MKCC_HOST_DEVICE, MKCC_INLINE

namespace mkcc {

struct KanConv1dParams {
  int64_t batch;
  int64_t in_channels;
  int64_t out_channels;
  int64_t length;          // T
  int64_t out_length;      // T_out
  int64_t kernel_size;     // k
  int64_t stride;
  int64_t pad_left;        // taps at p = t*stride + j*dilation - pad_left
  int64_t dilation;
  int64_t groups;
  int64_t in_per_group;    // C_in / groups
  int64_t out_per_group;   // C_out / groups
  int64_t grid_size;       // G
  int spline_order;        // K
  int num_intervals;       // G + 2K knot intervals
  double inv_h;            // 1 / h
};

// The output position that reads input position `pos` through tap j, -1 when none does, and -2
// when no later tap can either (tap j reads position t * stride + j * dilation - pad_left).
MKCC_HOST_DEVICE MKCC_INLINE int64_t tap_output(const KanConv1dParams& p, int64_t pos,
                                                int64_t j) {
  const int64_t shifted = pos + p.pad_left - j * p.dilation;
  if (shifted < 0) return -2;
  if (shifted % p.stride != 0) return -1;
  const int64_t t = shifted / p.stride;
  return t < p.out_length ? t : -1;
}

// Packed weights used by the CPU kernels: [groups][in_per_group][k][num_rows][out_stride],
// output channels innermost (padded with zeros to out_stride). Row 0 holds base_weight;
// row 1 + s holds spline function i = s - K for slot s in 0 .. G + 3K - 1, so the K+1 functions
// of knot interval m sit in rows 1 + m .. 1 + m + K. Slots that are not basis functions
// (s < K or s >= G + 2K) are zero rows.
struct PackedLayout {
  int64_t num_rows;    // 1 + G + 3K
  int64_t out_stride;  // out_per_group rounded up to the vector width
};

inline PackedLayout packed_layout(const KanConv1dParams& p, int64_t vector_width) {
  PackedLayout layout;
  layout.num_rows = 1 + p.grid_size + 3 * p.spline_order;
  layout.out_stride = (p.out_per_group + vector_width - 1) / vector_width * vector_width;
  return layout;
}

}  // namespace mkcc
