// Plain-old-data description of one KANConv1d call, shared by the CPU and CUDA kernels.
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

// The taps of a row contraction, as a layer describes them to the kernels' core: along a row of
// input positions, output t (0 <= t < outputs) reads position t * step + j * spacing - pad
// through tap j (0 <= j < count); a position outside the row is padding and contributes
// nothing. Tap j's weights are block j of an input channel's packed weights. KANConv1d: a row per
// (batch element, input channel), the kernel's taps (conv1d_taps). A linear layer is one tap over
// a row of inputs (step 1); a 2-D convolution a row of taps per kernel row. The forward's
// micro-kernel also walks several lines of taps (a 2-D kernel's rows over rows of features laid
// line_spacing apart): tap (l, j) reads position t * step + l * line_spacing + j * spacing and
// its weights are block l * count + j; the other passes take one line.
struct RowTaps {
  int64_t count;
  int64_t step;
  int64_t spacing;
  int64_t pad;
  int64_t outputs;
  int64_t lines = 1;
  int64_t line_spacing = 0;
};

MKCC_HOST_DEVICE MKCC_INLINE RowTaps conv1d_taps(const KanConv1dParams& p) {
  return RowTaps{p.kernel_size, p.stride, p.dilation, p.pad_left, p.out_length};
}

// The output that reads position `pos` through tap j, -1 when none does, and -2 when no later
// tap can either.
MKCC_HOST_DEVICE MKCC_INLINE int64_t tap_output(const RowTaps& taps, int64_t pos, int64_t j) {
  const int64_t shifted = pos + taps.pad - j * taps.spacing;
  if (shifted < 0) return -2;
  if (shifted % taps.step != 0) return -1;
  const int64_t t = shifted / taps.step;
  return t < taps.outputs ? t : -1;
}

// The shape of one packed weight block (per group and input channel, per tap): num_rows rows of
// out_stride values, output channels innermost and zero-padded to out_stride. What the rows hold
// is each backend's own layout, documented where it is made: cpu/kernels.h (cpu_packed_layout,
// cpu_input_grad_layout) and cuda/kan_conv1d_cuda.h (cuda_packed_layout).
struct PackedLayout {
  int64_t num_rows;
  int64_t out_stride;
};

// What every pass of every backend reads (the kernels' argument structs derive from these): the
// call, the packed weights' block shape, x [B, C_in, T] (contiguous) and the G + 2K + 1 knots;
// the backward passes also grad_out as rows [B][groups][T_out][out_stride] (output channels
// innermost, padded lanes zero). X is x's element type, W that of the knots, the packed weights
// and the gradient rows (the CPU backend: X; CUDA: float).
template <typename X, typename W>
struct PassInputs {
  KanConv1dParams p;
  PackedLayout layout;
  const X* x;
  const W* knots;
};

template <typename X, typename W>
struct BackwardInputs : PassInputs<X, W> {
  const W* grad_out_t;
};

}  // namespace mkcc
