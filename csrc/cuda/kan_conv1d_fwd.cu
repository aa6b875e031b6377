// Fused KANConv1d forward on CUDA.
//
// One block: a tile of kTileT output positions of one (batch, group), times kThreads output
// channels (one per thread). For each input channel of the group the block evaluates silu and
// the K + 1 non-zero basis values of the tile's input window once, into shared memory; every
// thread then adds silu * base + sum_r b_r * spline[row + r] over the taps for its channel, with
// the kTileT accumulators in registers (fp32). Output goes through shared memory so that the
// stores run along time.
#include <algorithm>

#include <c10/cuda/CUDAException.h>

#include "common.cuh"
#include "kan_conv1d_cuda.h"

namespace mkcc {
namespace cuda {
namespace {

constexpr int kTileT = 32;
constexpr int kThreads = 128;

struct ForwardSmem {
  int64_t window;
  size_t bytes(int order) const {
    return sizeof(float) * (window * (order + 2) + kTileT * (kThreads + 1)) + sizeof(int) * window;
  }
};

template <typename scalar_t, int K>
__global__ void __launch_bounds__(kThreads)
    kan_conv1d_fwd_kernel(ForwardArgs<scalar_t> a, int64_t num_tiles, int64_t window) {
  const KanConv1dParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const int64_t item = blockIdx.x;
  const int64_t tile = item % num_tiles;
  const int64_t g = (item / num_tiles) % p.groups;
  const int64_t b = item / (num_tiles * p.groups);
  const int64_t t0 = tile * kTileT;
  const int nt = static_cast<int>(min(static_cast<int64_t>(kTileT), p.out_length - t0));
  const int64_t first = t0 * p.stride - p.pad_left;
  const int64_t o = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  const bool active = o < p.out_per_group;
  const float inv_h = static_cast<float>(p.inv_h);

  extern __shared__ float smem[];
  float* s_silu = smem;                               // [window]
  float* s_values = s_silu + window;                  // [window][K + 1]
  float* s_out = s_values + window * (K + 1);         // [kTileT][kThreads + 1]
  int* s_row = reinterpret_cast<int*>(s_out + kTileT * (kThreads + 1));  // [window]

  float acc[kTileT];
#pragma unroll
  for (int t = 0; t < kTileT; ++t) acc[t] = 0.0f;

  for (int64_t c = 0; c < p.in_per_group; ++c) {
    const int64_t cin = g * p.in_per_group + c;
    const scalar_t* x_row = a.x + (b * p.in_channels + cin) * p.length;
    __syncthreads();  // the previous channel's features are no longer read
    for (int64_t q = threadIdx.x; q < window; q += kThreads) {
      const int64_t pos = first + q;
      if (pos < 0 || pos >= p.length) {
        s_row[q] = -1;  // a padding tap: contributes nothing
        continue;
      }
      int row;
      features<K>(to_float(x_row[pos]), a.knots, p.num_intervals, inv_h, s_silu[q], row,
                  s_values + q * (K + 1));
      s_row[q] = row;
    }
    __syncthreads();
    if (!active) continue;
    const float* w_channel = a.packed + cin * p.kernel_size * rows * os + o;
    for (int64_t j = 0; j < p.kernel_size; ++j) {
      const float* w_tap = w_channel + j * rows * os;
      const float base = w_tap[0];
#pragma unroll
      for (int t = 0; t < kTileT; ++t) {
        if (t < nt) {
          const int64_t q = t * p.stride + j * p.dilation;
          const int row = s_row[q];
          if (row >= 0) {
            float sum = s_silu[q] * base;
            const float* spline = w_tap + row * os;
#pragma unroll
            for (int r = 0; r <= K; ++r) sum += s_values[q * (K + 1) + r] * spline[r * os];
            acc[t] += sum;
          }
        }
      }
    }
  }

  __syncthreads();
#pragma unroll
  for (int t = 0; t < kTileT; ++t) s_out[t * (kThreads + 1) + threadIdx.x] = acc[t];
  __syncthreads();
  scalar_t* out = a.out + (b * p.out_channels + g * p.out_per_group) * p.out_length + t0;
  for (int idx = threadIdx.x; idx < kTileT * kThreads; idx += kThreads) {
    const int local_o = idx / kTileT;
    const int t = idx % kTileT;
    const int64_t channel = static_cast<int64_t>(blockIdx.y) * kThreads + local_o;
    if (t < nt && channel < p.out_per_group) {
      out[channel * p.out_length + t] = from_float<scalar_t>(s_out[t * (kThreads + 1) + local_o]);
    }
  }
}

}  // namespace

template <typename scalar_t>
void launch_forward(const ForwardArgs<scalar_t>& a, cudaStream_t stream) {
  const KanConv1dParams& p = a.p;
  const int64_t num_tiles = (p.out_length + kTileT - 1) / kTileT;
  const int64_t window = (kTileT - 1) * p.stride + (p.kernel_size - 1) * p.dilation + 1;
  const dim3 grid(static_cast<unsigned>(p.batch * p.groups * num_tiles),
                  static_cast<unsigned>((p.out_per_group + kThreads - 1) / kThreads));
  const size_t smem = ForwardSmem{window}.bytes(p.spline_order);
  MKCC_DISPATCH_ORDER(p.spline_order, [&] {
    auto kernel = kan_conv1d_fwd_kernel<scalar_t, K>;
    if (smem > 48 * 1024) {
      C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
    }
    kernel<<<grid, kThreads, smem, stream>>>(a, num_tiles, window);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template void launch_forward<float>(const ForwardArgs<float>&, cudaStream_t);
template void launch_forward<c10::Half>(const ForwardArgs<c10::Half>&, cudaStream_t);
template void launch_forward<c10::BFloat16>(const ForwardArgs<c10::BFloat16>&, cudaStream_t);

}  // namespace cuda
}  // namespace mkcc
