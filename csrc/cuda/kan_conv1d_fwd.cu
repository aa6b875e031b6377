// Fused KANConv1d forward on CUDA: two kernels.
//
// CUDA cores (fp32, and fp16/bf16 where the tensor-core kernel does not fit): one block is a
// tile of kTileT output positions of one (batch, group), times kThreads output channels (one per
// thread). For each input channel of the group the block evaluates silu and the K + 1 non-zero
// basis values of the tile's input window once, into shared memory; every thread then adds
// silu * base + sum_r b_r * spline[row + r] over the taps for its channel, with the kTileT
// accumulators in registers (fp32). Output goes through shared memory so that the stores run
// along time.
//
// Tensor cores (fp16/bf16, sm_80+): an implicit GEMM out[o, t] = sum_(c, j, f) W[o, c, j, f] *
// F[c, f, t * stride + j * dilation] where F holds, per input element, silu and the G + K basis
// values (zero-padded to an even count). Per chunk of kMmaChannels input channels the block
// evaluates F once for its input window into shared memory (each x element once, reused by every
// tap and every output channel of the tile); per tap it stages the weight tile
// [kMmaOutTile][kMmaChannels * features] in shared memory and runs mma.sync m16n8k16 with fp32
// accumulators; the tap's shifted view of F is read straight from shared memory (32-bit
// fragment loads need no alignment beyond even feature offsets).
#include <algorithm>
#include <cstdint>

#include <c10/cuda/CUDAException.h>

#include "common.cuh"
#include "kan_conv1d_cuda.h"

namespace mkcc {
namespace cuda {
namespace {

constexpr int kTileT = 32;
constexpr int kThreads = kForwardChannels;

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


// ---- tensor-core forward -------------------------------------------------------------------

constexpr int kMmaThreads = 128;     // 4 warps, 2 x 2 over (output channels, time), 32 x 32 each
constexpr int kWeightRowPad = 8;     // elements of padding per staged weight row: spreads banks
constexpr int kOutPitch = kMmaTimeTile + 4;

// The mma.sync instruction for each 16-bit input type (fp32 accumulators).
template <typename scalar_t>
struct MmaInstruction;

template <>
struct MmaInstruction<c10::Half> {
  static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
  }
};

template <>
struct MmaInstruction<c10::BFloat16> {
  static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
  }
};

template <typename scalar_t>
__device__ __forceinline__ uint32_t load_pair(const scalar_t* address) {
  return *reinterpret_cast<const uint32_t*>(address);
}

template <typename scalar_t, int K>
__global__ void __launch_bounds__(kMmaThreads)
    kan_conv1d_fwd_mma_kernel(ForwardMmaArgs<scalar_t> a, int64_t num_tiles) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // the host launches this kernel only on sm_80 and newer
#else
  const KanConv1dParams& p = a.p;
  const int num_features = static_cast<int>(a.layout.features);
  const int window = static_cast<int>(a.layout.window);
  const int rows = kMmaChannels * num_features;  // reduction length of one (chunk, tap)
  const int pitch = rows + kWeightRowPad;
  const int64_t item = blockIdx.x;
  const int64_t tile = item % num_tiles;
  const int64_t g = (item / num_tiles) % p.groups;
  const int64_t b = item / (num_tiles * p.groups);
  const int64_t t0 = tile * kMmaTimeTile;
  const int64_t first = t0 * p.stride - p.pad_left;
  const int64_t o0 = static_cast<int64_t>(blockIdx.y) * kMmaOutTile;
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int group_id = lane >> 2;
  const int lane_in_group = lane & 3;
  const int warp_o = (warp >> 1) * 32;
  const int warp_t = (warp & 1) * 32;
  const float inv_h = static_cast<float>(p.inv_h);
  const int num_splines = static_cast<int>(p.grid_size) + K;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  scalar_t* s_weight = reinterpret_cast<scalar_t*>(smem_raw);
  scalar_t* s_feat = s_weight + kMmaOutTile * pitch;
  int* s_offset = reinterpret_cast<int*>(s_feat + kMmaChannels * window * num_features);
  float* s_out = reinterpret_cast<float*>(smem_raw);

  for (int half_row = threadIdx.x; half_row < rows / 2; half_row += kMmaThreads) {
    const int r = 2 * half_row;
    s_offset[half_row] = (r / num_features) * window * num_features + r % num_features;
  }

  float acc[2][4][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

  const scalar_t* x_group = a.x + (b * p.in_channels + g * p.in_per_group) * p.length;
  for (int64_t chunk = 0; chunk < a.layout.chunks; ++chunk) {
    __syncthreads();  // the previous chunk's features and weights are no longer read
    for (int idx = threadIdx.x; idx < kMmaChannels * window; idx += kMmaThreads) {
      const int c = idx / window;
      const int64_t channel = chunk * kMmaChannels + c;
      const int64_t pos = first + (idx - c * window);
      scalar_t* feat = s_feat + static_cast<int64_t>(idx) * num_features;
      uint32_t* words = reinterpret_cast<uint32_t*>(feat);
      for (int w = 0; w < num_features / 2; ++w) words[w] = 0u;
      // Padding taps and the channels past the group contribute nothing.
      if (channel >= p.in_per_group || pos < 0 || pos >= p.length) continue;
      float silu_value;
      int row;
      float values[K + 1];
      features<K>(to_float(x_group[channel * p.length + pos]), a.knots, p.num_intervals, inv_h,
                  silu_value, row, values);
      feat[0] = from_float<scalar_t>(silu_value);
      // Basis i = m - K + r (row = 1 + m) is feature 1 + i.
#pragma unroll
      for (int r = 0; r <= K; ++r) {
        const int f = row - K + r;
        if (f >= 1 && f <= num_splines) feat[f] = from_float<scalar_t>(values[r]);
      }
    }

    for (int64_t j = 0; j < p.kernel_size; ++j) {
      if (j > 0) __syncthreads();  // the previous tap's fragments are loaded
      const scalar_t* w_tile =
          a.packed +
          (((g * p.kernel_size + j) * a.layout.chunks + chunk) * a.layout.out_padded + o0) * rows;
      const int vectors_per_row = rows / 8;  // 16-byte vectors
      for (int v = threadIdx.x; v < kMmaOutTile * vectors_per_row; v += kMmaThreads) {
        const int o = v / vectors_per_row;
        const int col = v - o * vectors_per_row;
        *reinterpret_cast<uint4*>(s_weight + o * pitch + col * 8) =
            __ldg(reinterpret_cast<const uint4*>(w_tile + static_cast<int64_t>(o) * rows) + col);
      }
      __syncthreads();

      const int64_t shift = j * p.dilation;
      int column[4];
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        column[ni] =
            static_cast<int>((warp_t + ni * 8 + group_id) * p.stride + shift) * num_features;
      }
      for (int step = 0; step < num_features; ++step) {  // 16 reduction rows per step
        uint32_t a_frag[2][4];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
          const scalar_t* w =
              s_weight + (warp_o + mi * 16 + group_id) * pitch + step * 16 + lane_in_group * 2;
          a_frag[mi][0] = load_pair(w);
          a_frag[mi][1] = load_pair(w + 8 * pitch);
          a_frag[mi][2] = load_pair(w + 8);
          a_frag[mi][3] = load_pair(w + 8 * pitch + 8);
        }
        const int offset_low = s_offset[step * 8 + lane_in_group];
        const int offset_high = s_offset[step * 8 + 4 + lane_in_group];
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          const uint32_t b_frag[2] = {load_pair(s_feat + offset_low + column[ni]),
                                      load_pair(s_feat + offset_high + column[ni])};
#pragma unroll
          for (int mi = 0; mi < 2; ++mi) MmaInstruction<scalar_t>::run(acc[mi][ni], a_frag[mi], b_frag);
        }
      }
    }
  }

  __syncthreads();
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int o = warp_o + mi * 16 + group_id;
      const int t = warp_t + ni * 8 + lane_in_group * 2;
      s_out[o * kOutPitch + t] = acc[mi][ni][0];
      s_out[o * kOutPitch + t + 1] = acc[mi][ni][1];
      s_out[(o + 8) * kOutPitch + t] = acc[mi][ni][2];
      s_out[(o + 8) * kOutPitch + t + 1] = acc[mi][ni][3];
    }
  }
  __syncthreads();
  const int64_t nt = min(static_cast<int64_t>(kMmaTimeTile), p.out_length - t0);
  scalar_t* out = a.out + (b * p.out_channels + g * p.out_per_group) * p.out_length + t0;
  for (int idx = threadIdx.x; idx < kMmaOutTile * kMmaTimeTile; idx += kMmaThreads) {
    const int o = idx / kMmaTimeTile;
    const int t = idx % kMmaTimeTile;
    const int64_t channel = o0 + o;
    if (t < nt && channel < p.out_per_group) {
      out[channel * p.out_length + t] = from_float<scalar_t>(s_out[o * kOutPitch + t]);
    }
  }
#endif
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

// Shared memory: the staged weight tile [kMmaOutTile][rows + kWeightRowPad], the features
// [kMmaChannels][window][features] and, per even reduction row r, the offset of (c, f) =
// (r / features, r % features) in the feature array; the output tile reuses the space.
size_t forward_mma_smem_bytes(const MmaLayout& layout) {
  const int64_t rows = kMmaChannels * layout.features;
  const int64_t main = 2 * (kMmaOutTile * (rows + kWeightRowPad) +
                            kMmaChannels * layout.window * layout.features) +
                       static_cast<int64_t>(sizeof(int)) * (rows / 2);
  const int64_t out = static_cast<int64_t>(sizeof(float)) * kMmaOutTile * kOutPitch;
  return static_cast<size_t>(std::max(main, out));
}

MmaLayout mma_layout(const KanConv1dParams& p) {
  MmaLayout layout;
  layout.features = (1 + p.grid_size + p.spline_order + 1) / 2 * 2;
  layout.out_padded = (p.out_per_group + kMmaOutTile - 1) / kMmaOutTile * kMmaOutTile;
  layout.chunks = (p.in_per_group + kMmaChannels - 1) / kMmaChannels;
  layout.window = (kMmaTimeTile - 1) * p.stride + (p.kernel_size - 1) * p.dilation + 1;
  return layout;
}

template <typename scalar_t>
void launch_forward_mma(const ForwardMmaArgs<scalar_t>& a, cudaStream_t stream) {
  const KanConv1dParams& p = a.p;
  const int64_t num_tiles = (p.out_length + kMmaTimeTile - 1) / kMmaTimeTile;
  const dim3 grid(static_cast<unsigned>(p.batch * p.groups * num_tiles),
                  static_cast<unsigned>(a.layout.out_padded / kMmaOutTile));
  const size_t smem = forward_mma_smem_bytes(a.layout);
  MKCC_DISPATCH_ORDER(p.spline_order, [&] {
    auto kernel = kan_conv1d_fwd_mma_kernel<scalar_t, K>;
    if (smem > 48 * 1024) {
      C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
    }
    kernel<<<grid, kMmaThreads, smem, stream>>>(a, num_tiles);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template void launch_forward<float>(const ForwardArgs<float>&, cudaStream_t);
template void launch_forward<c10::Half>(const ForwardArgs<c10::Half>&, cudaStream_t);
template void launch_forward<c10::BFloat16>(const ForwardArgs<c10::BFloat16>&, cudaStream_t);
template void launch_forward_mma<c10::Half>(const ForwardMmaArgs<c10::Half>&, cudaStream_t);
template void launch_forward_mma<c10::BFloat16>(const ForwardMmaArgs<c10::BFloat16>&,
                                                 cudaStream_t);

}  // namespace cuda
}  // namespace mkcc
