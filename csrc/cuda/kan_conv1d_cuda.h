// Launchers of the fused CUDA kernels (defined in kan_conv1d_fwd.cu / kan_conv1d_bwd.cu, called
// by the host entry kan_conv1d_cuda.cpp) and the CUDA backend's packed layouts. Inputs are
// contiguous; weights and gradients are in cuda_packed_layout, in fp32 (the tensor-core forward:
// MmaLayout, in x's dtype); x, out and grad_x in the input dtype scalar_t (float, c10::Half or
// c10::BFloat16). All arithmetic is fp32.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "mkcc/params.h"

namespace mkcc {
namespace cuda {

// The CUDA-core kernels' packed weights (all three passes):
// [groups][in_per_group][k][1 + G + 3K][out_stride], output channels innermost (zero-padded to
// out_stride). Row 0 holds base_weight; row 1 + s holds spline function i = s - K for slot s in
// 0 .. G + 3K - 1, so the K + 1 functions of knot interval m sit in rows 1 + m .. 1 + m + K
// whatever m; slots that are not basis functions (s < K or s >= G + 2K) are zero rows. (The CPU
// layout drops those rows and clamps instead: cpu/kernels.h.)
inline PackedLayout cuda_packed_layout(const KanConv1dParams& p, int64_t vector_width) {
  PackedLayout layout;
  layout.num_rows = 1 + p.grid_size + 3 * p.spline_order;
  layout.out_stride = (p.out_per_group + vector_width - 1) / vector_width * vector_width;
  return layout;
}

// The passes' arguments (PassInputs, BackwardInputs: mkcc/params.h), x in scalar_t, the rest
// in fp32.
template <typename scalar_t>
struct ForwardArgs : PassInputs<scalar_t, float> {
  const float* packed;    // [C_in][k][num_rows][out_stride] (cuda_packed_layout)
  scalar_t* out;          // [B, C_out, T_out]
};

// The CUDA-core forward: output channels (one thread each) per block, grid.y = their blocks.
constexpr int kForwardChannels = 128;

// The tensor-core forward (fp16/bf16, sm_80+): an implicit GEMM whose reduction runs over
// (input channel, feature) for each tap, features = silu and the G + K basis values, padded to an
// even count. Tiles: kMmaOutTile output channels x kMmaTimeTile positions per block, kMmaChannels
// input channels per reduction chunk.
constexpr int kMmaOutTile = 64;
constexpr int kMmaTimeTile = 64;
constexpr int kMmaChannels = 16;

struct MmaLayout {
  int64_t features;      // 1 + G + K rounded up to even
  int64_t out_padded;    // out_per_group rounded up to kMmaOutTile
  int64_t chunks;        // ceil(in_per_group / kMmaChannels)
  int64_t window;        // input positions one time tile reads
};

MmaLayout mma_layout(const KanConv1dParams& p);
// Shared memory of one tensor-core forward block.
size_t forward_mma_smem_bytes(const MmaLayout& layout);

template <typename scalar_t>
struct ForwardMmaArgs {
  KanConv1dParams p;
  MmaLayout layout;
  const scalar_t* x;      // [B, C_in, T]
  const float* knots;     // [G + 2K + 1]
  const scalar_t* packed; // [groups][k][chunks][out_padded][kMmaChannels][features]
  scalar_t* out;          // [B, C_out, T_out]
};

template <typename scalar_t>
struct InputGradArgs : BackwardInputs<scalar_t, float> {
  const float* packed;      // cuda_packed_layout
  scalar_t* grad_x;         // [B, C_in, T]
};

template <typename scalar_t>
struct WeightGradArgs : BackwardInputs<scalar_t, float> {
  float* partial;           // [splits][C_in][k][num_rows][out_stride], every entry written
  int64_t splits;
  int64_t rows_per_split;   // of the B * T_out (batch, time) rows
};

template <typename scalar_t>
void launch_forward(const ForwardArgs<scalar_t>& args, cudaStream_t stream);
template <typename scalar_t>
void launch_forward_mma(const ForwardMmaArgs<scalar_t>& args, cudaStream_t stream);
template <typename scalar_t>
void launch_input_grad(const InputGradArgs<scalar_t>& args, cudaStream_t stream);
template <typename scalar_t>
void launch_weight_grad(const WeightGradArgs<scalar_t>& args, cudaStream_t stream);

// Blocks of the weight-gradient kernel before splitting the (batch, time) rows.
int64_t weight_grad_blocks(const KanConv1dParams& p, const PackedLayout& layout);
// Output channels per weight-gradient block.
constexpr int kWeightGradThreads = 128;

}  // namespace cuda
}  // namespace mkcc
