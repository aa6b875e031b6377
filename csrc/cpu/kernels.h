// Fused CPU kernels of KANConv1d: the interface between the torch-facing host code and the
// loop nests, which are compiled once per instruction set (kernels_impl.h) and picked at run
// time. Nothing here includes torch headers, so each instruction-set build stays self-contained.
#pragma once

#include <stdint.h>

#include "mkcc/basis.h"
#include "mkcc/params.h"

namespace mkcc {
namespace cpu {

// Vector width the packed output-channel axis is padded to (one 64-byte line of fp32).
constexpr int64_t kChannelAlign = 16;

// The CPU backend's packed weights, one layout for the forward and the weight gradient (the
// input gradient's below is derived from it; kan_conv1d_cpu.cpp's pack_weights_cpu writes both
// and unpack_weight_grad_cpu reads the weight gradient back):
// [groups][in_per_group][k][1 + G + K][out_stride], row 0 the base weight, row 1 + i spline
// function i. Unlike the CUDA layout (cuda_packed_layout's 1 + G + 3K rows) there are no zero
// rows for the functions that do not exist near the ends of the grid: the kernels clamp the
// first row and move the basis values with it (clamp_to_rows), which keeps each tap's weights
// 40 % smaller (G = 5, K = 3) for L1 and for the packing.
inline PackedLayout cpu_packed_layout(const KanConv1dParams& p) {
  PackedLayout layout;
  layout.num_rows = 1 + p.grid_size + p.spline_order;
  layout.out_stride = (p.out_per_group + kChannelAlign - 1) / kChannelAlign * kChannelAlign;
  return layout;
}

// The input gradient's packed weights: per (group, input channel) the output-channel axis in
// column blocks (input_grad_block_vectors), each block [k][2 + G + K][its columns], so that a
// block's weights are contiguous in L1 while the kernel runs over positions. Row 0 is the base
// weight, row 1 + j the difference w_j - w_{j-1} of spline weights j = 0 .. G + K (w_{-1} =
// w_{G+K} = 0): on a uniform grid d/dx sum_i w_i B_i(x) = sum_j (w_j - w_{j-1}) N_j(x) / h with
// the order K - 1 functions N_j, of which K are non-zero at any x, so the input gradient
// contracts K rows per tap instead of the K + 1 basis derivatives.
inline PackedLayout cpu_input_grad_layout(const KanConv1dParams& p) {
  PackedLayout layout = cpu_packed_layout(p);
  layout.num_rows = 2 + p.grid_size + p.spline_order;
  return layout;
}

// The unit of the input gradient's column blocks: 64-byte vectors, whatever the vector width of
// the instruction-set build that reads them.
constexpr int64_t kPackVectorBytes = 64;

// Vectors in the input gradient's column block from column o0 (of out_stride, `lanes` per
// 64-byte vector): 8 while they fit, then 4, 2, 1, as its kernels walk the columns.
static inline int64_t input_grad_block_vectors(int64_t o0, int64_t out_stride, int64_t lanes) {
  for (int64_t v = 8; v > 1; v /= 2) {
    if (o0 + v * lanes <= out_stride) return v;
  }
  return 1;
}

// The passes' arguments (PassInputs, BackwardInputs: mkcc/params.h), in x's dtype T.
template <typename T>
struct ForwardArgs : PassInputs<T, T> {
  const T* packed_weight;  // [C_in][k][num_rows][out_stride] (cpu_packed_layout)
  T* out;                  // [B, C_out, T_out]
  int64_t time_tile;       // output positions per work item
  int64_t num_time_tiles;
  int64_t batch_block;     // batch elements per work item (> 1 only for short outputs)
  int64_t num_batch_blocks;
};

template <typename T>
struct InputGradArgs : BackwardInputs<T, T> {
  // [C_in][column blocks][k][num_rows][block columns] (cpu_input_grad_layout)
  const T* packed_weight;
  T* grad_x;               // [B, C_in, T]
};

template <typename T>
struct WeightGradArgs : BackwardInputs<T, T> {
  T* packed_grad;          // [num_batch_chunks][C_in][k][num_rows][out_stride], set by the items
  int64_t num_batch_chunks;
};

// Per-thread scratch: accumulators (forward only) and, for a run of input positions, the
// silu values, the K+1 non-zero basis values and the packed row offset of each position.
// This is the only basis storage: a cache-sized tile, never the expanded tensor.
struct ScratchLayout {
  int64_t accumulator_elems;
  int64_t positions;
  int64_t index_elems;  // int64 work space (the weight gradient's position buckets)
  int64_t bytes;
};

static inline int64_t round_up_64(int64_t bytes) { return (bytes + 63) / 64 * 64; }

static inline ScratchLayout scratch_layout(int64_t accumulator_elems, int64_t positions,
                                           int64_t element_size, int64_t index_elems = 0) {
  ScratchLayout s;
  s.accumulator_elems = accumulator_elems;
  s.positions = positions;
  s.index_elems = index_elems;
  s.bytes = round_up_64(accumulator_elems * element_size) +
            2 * round_up_64(positions * element_size) +
            round_up_64(positions * (kMaxSplineOrder + 1) * element_size) +
            round_up_64(positions * static_cast<int64_t>(sizeof(int64_t))) +
            round_up_64(index_elems * static_cast<int64_t>(sizeof(int64_t)));
  return s;
}

// Input positions a forward time tile reads.
static inline int64_t forward_window(const KanConv1dParams& p, int64_t time_tile) {
  return (time_tile - 1) * p.stride + (p.kernel_size - 1) * p.dilation + 1;
}

// Knot-interval buckets pay (forward and weight gradient) when they hold several positions.
constexpr int64_t kMinPositionsPerBucket = 4;

// The forward uses them for output rows of 8 vectors or more: each (tap, bucket) keeps its K + 2
// weight rows of a column block of up to 4 vectors in registers and adds to accumulators that
// stay in L1. Up to 7 vectors, per-position register accumulators reading the weights from L1
// are as fast or faster (bench/NOTES.md, 2 threads, per-position against buckets: 64 channels
// 1.08x faster, 80-96 even, 128 channels 1.09x slower, 192 channels 1.16x slower).
constexpr int64_t kMaxPositionPathRowBytes = 7 * 64;
// Except for short output tiles (several batch elements per item, each a few outputs long),
// where the per-position path spends much of its time on remainders of fewer than NP positions:
// from 3 vectors, buckets are faster there (bench/NOTES.md, 15 outputs: 48 channels 1.16x,
// 64 channels 1.08-1.13x, 32 channels even, 16 channels 1.06x slower; 64 channels at 30 outputs
// 1.06x faster, at 60 outputs 1.03x slower; 4-8 batch elements per item). A single-element
// tile takes this route only when its window alone has enough positions (kernels spanning 13 or
// more positions), which was not measured.
constexpr int64_t kShortTileOutputs = 32;
constexpr int64_t kMinShortTileRowBytes = 3 * 64;

// positions: the input positions a work item evaluates per channel (its batch elements' windows);
// outputs: the outputs per batch element of the item.
static inline bool forward_uses_buckets(const KanConv1dParams& p, const PackedLayout& layout,
                                        int64_t positions, int64_t element_size,
                                        int64_t outputs) {
  const int64_t row_bytes = layout.out_stride * element_size;
  const bool wide = row_bytes > kMaxPositionPathRowBytes;
  const bool short_tile = outputs <= kShortTileOutputs && row_bytes >= kMinShortTileRowBytes;
  return (wide || short_tile) && positions >= kMinPositionsPerBucket * p.num_intervals;
}

static inline ScratchLayout forward_scratch(const KanConv1dParams& p, const PackedLayout& layout,
                                            int64_t time_tile, int64_t batch_block,
                                            int64_t element_size) {
  // Features of each batch element's window; index: the windows' positions sorted by knot
  // interval, bucket starts and cursors, per sorted position its place in its window and its
  // element's first output row, and the (position, output index) pairs of every (tap, bucket)
  // with their starts.
  const int64_t positions = batch_block * forward_window(p, time_tile);
  const int64_t intervals = p.num_intervals;
  return scratch_layout(batch_block * time_tile * layout.out_stride, positions, element_size,
                        (3 + 2 * p.kernel_size) * positions + 2 * (intervals + 1) +
                            p.kernel_size * intervals + 1);
}

// Input positions a work item evaluates at once, at most (unless a single output's taps span
// more): bounds the per-thread scratch whatever the length, stride and dilation.
constexpr int64_t kMaxWindow = 8192;

// Output positions whose windows fit in kMaxWindow input positions (at least 1, at most `limit`).
static inline int64_t time_block_for_window(const KanConv1dParams& p, int64_t limit) {
  const int64_t span = (p.kernel_size - 1) * p.dilation + 1;
  const int64_t fit = span >= kMaxWindow ? 1 : (kMaxWindow - span) / p.stride + 1;
  const int64_t block = fit < limit ? fit : limit;
  return block > 0 ? block : 1;
}

// The input gradient evaluates silu', the basis derivatives and the row offsets of a row in chunks
// of at most this many positions (per-thread scratch).
constexpr int64_t kInputGradChunk = 1024;

// Windows and rows shorter than this are gathered several at a time and their features evaluated
// in one pass: the vector loop over positions needs more than a handful of them.
constexpr int64_t kShortRow = 64;

// Input rows whose features the input gradient evaluates together (short rows, several items):
// about kShortRowPositions positions (1024 measured the same at T = 15: bench/NOTES.md).
constexpr int64_t kShortRowPositions = 256;
static inline int64_t input_grad_rows_per_pass(const KanConv1dParams& p) {
  return p.length > 0 && p.length < kShortRow ? (kShortRowPositions + p.length - 1) / p.length
                                              : 1;
}

static inline ScratchLayout input_grad_scratch(const KanConv1dParams& p, int64_t element_size) {
  const int64_t chunk = p.length < kInputGradChunk ? p.length : kInputGradChunk;
  const int64_t positions = chunk * input_grad_rows_per_pass(p);
  return scratch_layout(0, positions > 0 ? positions : 1, element_size);
}

// The grad_out rows a weight-gradient block reads (again for every tap and knot bucket) stay
// within this many bytes, so that they come from L2 rather than L3 (bench/NOTES.md: 1.07-1.14x
// faster than unbounded blocks; 256 KB and 1 MB a little slower than 512 KB).
constexpr int64_t kWeightGradRowBytes = 512 * 1024;

// The weight gradient walks each channel in blocks of output positions (row_bytes: one grad_out
// row); per block it sorts the window's positions by knot interval: the sorted positions, bucket
// starts and cursors, per tap the (position, output time) pairs of a bucket, and per sorted
// position its place in its element's window and that element's first output row.
static inline int64_t weight_grad_time_block(const KanConv1dParams& p, int64_t row_bytes) {
  int64_t limit = kWeightGradRowBytes / row_bytes;
  limit = limit < 16 ? 16 : limit;
  return time_block_for_window(p, limit < p.out_length ? limit : p.out_length);
}

// When one time block covers the whole output, the weight gradient buckets the windows of up to
// this many batch elements together (fuller buckets for short outputs).
static inline int64_t weight_grad_batch_block(const KanConv1dParams& p, int64_t row_bytes) {
  if (weight_grad_time_block(p, row_bytes) < p.out_length) return 1;
  const int64_t per_window = kMaxWindow / forward_window(p, p.out_length);
  const int64_t per_budget = kWeightGradRowBytes / (p.out_length * row_bytes);
  int64_t block = per_window < p.batch ? per_window : p.batch;
  block = per_budget < block ? per_budget : block;
  return block > 0 ? block : 1;
}

static inline ScratchLayout weight_grad_scratch(const KanConv1dParams& p, int64_t row_bytes,
                                                int64_t element_size) {
  const int64_t positions = weight_grad_batch_block(p, row_bytes) *
                            forward_window(p, weight_grad_time_block(p, row_bytes));
  return scratch_layout(0, positions, element_size,
                        5 * positions + 2 * (static_cast<int64_t>(p.num_intervals) + 1));
}

// KANLinear (x [N, in] -> [N, out], each input feature its own knots): the same micro-kernels
// over a row tile. Its weights are those of a KANConv1d with C_in = in, k = 1 and one group
// (cpu_packed_layout, cpu_input_grad_layout; kan_linear_cpu.cpp packs them), the features of
// input feature i at scratch positions i * row_tile .. (one tap per feature, RowTaps spacing
// row_tile), grad_out as rows [N][out_stride] (padded lanes zero).
struct KanLinearParams {
  int64_t batch;  // N
  int64_t in_features;
  int64_t out_features;
  int64_t grid_size;
  int spline_order;
  int num_intervals;  // G + 2K: feature i's knots are knots[i * (G + 2K + 1) ..]
};

template <typename T>
struct LinearInputs {
  KanLinearParams p;
  PackedLayout layout;
  const T* x;      // [N, in]
  const T* knots;  // [in, G + 2K + 1]
  int64_t row_tile;
};

template <typename T>
struct LinearForwardArgs : LinearInputs<T> {
  const T* packed_weight;  // [in][1 + G + K][out_stride]
  T* out;                  // [N, out]
};

template <typename T>
struct LinearInputGradArgs : LinearInputs<T> {
  const T* grad_out_rows;  // [N][out_stride]
  const T* packed_weight;  // cpu_input_grad_layout, per-feature derivative weights
  T* grad_x;               // [N, in]
};

template <typename T>
struct LinearWeightGradArgs : LinearInputs<T> {
  const T* grad_out_rows;  // [N][out_stride]
  T* packed_grad;          // [in][1 + G + K][out_stride], each feature's block set by its item
};

// Input features whose features a forward or input-gradient row tile evaluates at once: their
// packed weights (a column block of each) stay in L1 while the tile's rows run over them.
constexpr int64_t kLinearFeatureChunk = 16;

static inline ScratchLayout linear_forward_scratch(const PackedLayout& layout, int64_t row_tile,
                                                   int64_t element_size) {
  return scratch_layout(row_tile * layout.out_stride, row_tile * kLinearFeatureChunk,
                        element_size);
}

static inline ScratchLayout linear_input_grad_scratch(int64_t row_tile, int64_t element_size) {
  return scratch_layout(row_tile * kLinearFeatureChunk, row_tile * kLinearFeatureChunk,
                        element_size);
}

// The weight gradient evaluates one feature of a row tile at a time and sorts its rows by knot
// interval (order, local, first_row, bucket starts and cursors).
static inline ScratchLayout linear_weight_grad_scratch(const KanLinearParams& p, int64_t row_tile,
                                                       int64_t element_size) {
  return scratch_layout(0, row_tile, element_size, 3 * row_tile + 2 * (p.grid_size + 1));
}

// KANConv2d (x [B, C_in, H, W]) on the same micro-kernels: `row` is the convolution along the
// width, the 1-D call of one image row (length W, out_length W_out, kernel_size kw, stride sw,
// pad_left the left padding, dilation dw; channels, groups and spline as the 2-D call), and
// kernel row i of input channel c is the 1-D channel c * kh + i of the packed weights (the
// [C_out, Cg, kh, kw] weights seen as [C_out, Cg * kh, kw]: cpu_packed_layout and
// cpu_input_grad_layout unchanged). Output row oh reads input row oh * stride_h + i * dilation_h
// - pad_top through kernel row i; rows outside the image contribute nothing.
struct KanConv2dParams {
  KanConv1dParams row;
  int64_t height;      // H
  int64_t out_height;  // H_out
  int64_t kernel_h;
  int64_t stride_h;
  int64_t pad_top;
  int64_t dilation_h;
};

// Input rows that output rows [oh0, oh0 + nh) read: from oh0 * stride_h - pad_top on.
static inline int64_t conv2d_window_rows(const KanConv2dParams& p, int64_t nh) {
  return (nh - 1) * p.stride_h + (p.kernel_h - 1) * p.dilation_h + 1;
}

// Input positions an output row reads along the width: from -pad_left on.
static inline int64_t conv2d_window_width(const KanConv2dParams& p) {
  return forward_window(p.row, p.row.out_length);
}

template <typename T>
struct Conv2dForwardArgs {
  KanConv2dParams p;
  PackedLayout layout;
  const T* x;              // [B, C_in, H, W]
  const T* knots;
  const T* packed_weight;  // [C_in * kh][kw][num_rows][out_stride] (cpu_packed_layout)
  T* out;                  // [B, C_out, H_out, W_out]
  int64_t row_tile;        // output rows per work item
  int64_t num_row_tiles;
};

template <typename T>
struct Conv2dBackwardArgs {
  KanConv2dParams p;
  PackedLayout layout;
  const T* x;
  const T* knots;
  const T* grad_out_t;  // [B][groups][H_out * W_out][out_stride]
  // input gradient: [C_in * kh][column blocks][kw][num_rows][block columns]
  // (cpu_input_grad_layout); weight gradient: unused
  const T* packed_weight;
  T* grad_x;            // [B, C_in, H, W] (input gradient)
  T* packed_grad;       // [chunks][C_in * kh][kw][num_rows][out_stride] (weight gradient)
  int64_t num_batch_chunks;
  int64_t row_tile;     // input rows per features pass (input gradient), output rows per block
                        // (weight gradient)
};

static inline ScratchLayout conv2d_forward_scratch(const KanConv2dParams& p,
                                                   const PackedLayout& layout, int64_t row_tile,
                                                   int64_t element_size) {
  return scratch_layout(row_tile * p.row.out_length * layout.out_stride,
                        conv2d_window_rows(p, row_tile) * conv2d_window_width(p), element_size);
}

static inline ScratchLayout conv2d_input_grad_scratch(const KanConv2dParams& p, int64_t row_tile,
                                                      int64_t element_size) {
  return scratch_layout(0, row_tile * p.row.length, element_size);
}

// The weight gradient sorts the positions its output rows read through one kernel row (at most
// row_tile * window width) by knot interval: order, local, first_row, pairs (2 per position),
// bucket starts and cursors.
static inline ScratchLayout conv2d_weight_grad_scratch(const KanConv2dParams& p, int64_t row_tile,
                                                       int64_t element_size) {
  const int64_t width = conv2d_window_width(p);
  return scratch_layout(0, conv2d_window_rows(p, row_tile) * width, element_size,
                        5 * row_tile * width + 2 * (static_cast<int64_t>(p.row.num_intervals) + 1));
}

// Work items: forward over (batch block, group, time tile); input gradient over (input channel,
// batch element); weight gradient over (batch chunk, input channel), each writing its own slice.
// KANLinear: forward and input gradient over row tiles, weight gradient over input features.
// KANConv2d: forward over (batch element, group, output row tile), input gradient over (input
// channel, batch element), weight gradient over (batch chunk, input channel).
// transpose: dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols.
#define MKCC_DECLARE_CPU_KERNELS(ISA)                                                        \
  namespace ISA {                                                                            \
  void forward(const ForwardArgs<float>& a, int64_t begin, int64_t end, void* scratch);     \
  void forward(const ForwardArgs<double>& a, int64_t begin, int64_t end, void* scratch);    \
  void input_grad(const InputGradArgs<float>& a, int64_t begin, int64_t end, void* scratch); \
  void input_grad(const InputGradArgs<double>& a, int64_t begin, int64_t end,               \
                  void* scratch);                                                            \
  void weight_grad(const WeightGradArgs<float>& a, int64_t begin, int64_t end,              \
                   void* scratch);                                                           \
  void weight_grad(const WeightGradArgs<double>& a, int64_t begin, int64_t end,             \
                   void* scratch);                                                           \
  void linear_forward(const LinearForwardArgs<float>& a, int64_t begin, int64_t end,        \
                      void* scratch);                                                        \
  void linear_forward(const LinearForwardArgs<double>& a, int64_t begin, int64_t end,       \
                      void* scratch);                                                        \
  void linear_input_grad(const LinearInputGradArgs<float>& a, int64_t begin, int64_t end,   \
                         void* scratch);                                                     \
  void linear_input_grad(const LinearInputGradArgs<double>& a, int64_t begin, int64_t end,  \
                         void* scratch);                                                     \
  void linear_weight_grad(const LinearWeightGradArgs<float>& a, int64_t begin, int64_t end, \
                          void* scratch);                                                    \
  void linear_weight_grad(const LinearWeightGradArgs<double>& a, int64_t begin, int64_t end,\
                          void* scratch);                                                    \
  void conv2d_forward(const Conv2dForwardArgs<float>& a, int64_t begin, int64_t end,        \
                      void* scratch);                                                        \
  void conv2d_forward(const Conv2dForwardArgs<double>& a, int64_t begin, int64_t end,       \
                      void* scratch);                                                        \
  void conv2d_input_grad(const Conv2dBackwardArgs<float>& a, int64_t begin, int64_t end,    \
                         void* scratch);                                                     \
  void conv2d_input_grad(const Conv2dBackwardArgs<double>& a, int64_t begin, int64_t end,   \
                         void* scratch);                                                     \
  void conv2d_weight_grad(const Conv2dBackwardArgs<float>& a, int64_t begin, int64_t end,   \
                          void* scratch);                                                    \
  void conv2d_weight_grad(const Conv2dBackwardArgs<double>& a, int64_t begin, int64_t end,  \
                          void* scratch);                                                    \
  void transpose(const float* src, int64_t src_stride, int64_t rows, int64_t cols,          \
                 float* dst, int64_t dst_stride);                                            \
  void transpose(const double* src, int64_t src_stride, int64_t rows, int64_t cols,         \
                 double* dst, int64_t dst_stride);                                           \
  }

MKCC_DECLARE_CPU_KERNELS(generic)
#if defined(__x86_64__)
MKCC_DECLARE_CPU_KERNELS(avx2)
MKCC_DECLARE_CPU_KERNELS(avx512)
#endif

#undef MKCC_DECLARE_CPU_KERNELS

}  // namespace cpu
}  // namespace mkcc
