// Fused KANConv1d backward on CUDA.
//
// Input gradient: one thread per input element (batch, channel, position). It evaluates silu'
// and the K + 1 basis derivatives of its input in registers and contracts them with
// grad_out (transposed to [B][groups][T_out][C_out/groups], output channels innermost) against
// the packed weights of its channel, over the taps that read it. fp32 throughout.
//
// Weight gradient: one block per (input channel, tap, block of kWeightGradThreads output
// channels, split of the batch x time rows); one thread per output channel. The block evaluates
// the features of a chunk of rows into shared memory; each thread adds feature x grad_out into
// its own column of a [num_rows][kWeightGradThreads] shared accumulator (no two threads share
// an entry, no atomics) and writes the column to its split's slice of the fp32 partial buffer.
// The host sums the splits in a fixed order: deterministic.
#include <c10/cuda/CUDAException.h>

#include "common.cuh"
#include "kan_conv1d_cuda.h"

namespace mkcc {
namespace cuda {
namespace {

constexpr int kInputGradThreads = 256;
constexpr int kChunk = kWeightGradThreads;  // rows whose features are staged at a time

template <typename scalar_t, int K>
__global__ void __launch_bounds__(kInputGradThreads)
    kan_conv1d_input_grad_kernel(InputGradArgs<scalar_t> a) {
  const KanConv1dParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kInputGradThreads + threadIdx.x;
  if (idx >= p.batch * p.in_channels * p.length) return;
  const int64_t pos = idx % p.length;
  const int64_t cin = (idx / p.length) % p.in_channels;
  const int64_t b = idx / (p.length * p.in_channels);
  const int64_t g = cin / p.in_per_group;
  const float inv_h = static_cast<float>(p.inv_h);

  const float xv = to_float(a.x[idx]);
  const float silu_grad = silu_derivative(xv, expf(-xv));
  float derivative[K + 1];
  int row = 1;
  const int m = knot_interval(xv, a.knots, p.num_intervals, inv_h);
  if (m < 0) {
#pragma unroll
    for (int r = 0; r <= K; ++r) derivative[r] = 0.0f;
  } else {
    float values[K + 1];
    bspline_values_and_derivatives<K>((xv - a.knots[m]) * inv_h, inv_h, values, derivative);
    row = 1 + m;
  }

  const float* w_channel = a.packed + cin * p.kernel_size * rows * os;
  const float* gy_group = a.grad_out_t + (b * p.groups + g) * p.out_length * os;
  float total = 0.0f;
  for (int64_t j = 0; j < p.kernel_size; ++j) {
    const int64_t t = tap_output(conv1d_taps(p), pos, j);
    if (t == -2) break;
    if (t < 0) continue;
    const float* gy = gy_group + t * os;
    const float* base = w_channel + j * rows * os;
    const float* spline = base + row * os;
    for (int64_t o = 0; o < p.out_per_group; ++o) {
      float coef = silu_grad * base[o];
#pragma unroll
      for (int r = 0; r <= K; ++r) coef += derivative[r] * spline[r * os + o];
      total += coef * gy[o];
    }
  }
  a.grad_x[idx] = from_float<scalar_t>(total);
}

template <typename scalar_t, int K>
__global__ void __launch_bounds__(kWeightGradThreads)
    kan_conv1d_weight_grad_kernel(WeightGradArgs<scalar_t> a) {
  const KanConv1dParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const int64_t o_blocks = (os + kWeightGradThreads - 1) / kWeightGradThreads;
  int64_t item = blockIdx.x;
  const int64_t o_block = item % o_blocks;
  item /= o_blocks;
  const int64_t j = item % p.kernel_size;
  item /= p.kernel_size;
  const int64_t cin = item % p.in_channels;
  const int64_t split = item / p.in_channels;
  const int64_t g = cin / p.in_per_group;
  const int64_t o = o_block * kWeightGradThreads + threadIdx.x;
  const bool active = o < os;  // padded channels accumulate zeros
  const float inv_h = static_cast<float>(p.inv_h);
  const int64_t total_rows = p.batch * p.out_length;
  const int64_t row_begin = split * a.rows_per_split;
  const int64_t row_end = min(row_begin + a.rows_per_split, total_rows);

  extern __shared__ float smem[];
  float* s_acc = smem;                                  // [rows][kWeightGradThreads]
  float* s_silu = s_acc + rows * kWeightGradThreads;    // [kChunk]
  float* s_values = s_silu + kChunk;                    // [kChunk][K + 1]
  int64_t* s_gy = reinterpret_cast<int64_t*>(s_values + kChunk * (K + 1));  // [kChunk]
  int* s_row = reinterpret_cast<int*>(s_gy + kChunk);   // [kChunk]

  for (int64_t r = 0; r < rows; ++r) s_acc[r * kWeightGradThreads + threadIdx.x] = 0.0f;

  for (int64_t start = row_begin; start < row_end; start += kChunk) {
    __syncthreads();  // the previous chunk's features are no longer read
    const int64_t flat = start + threadIdx.x;
    int row = -1;
    if (flat < row_end) {
      const int64_t b = flat / p.out_length;
      const int64_t t = flat % p.out_length;
      const int64_t pos = t * p.stride + j * p.dilation - p.pad_left;
      if (pos >= 0 && pos < p.length) {
        const float xv = to_float(a.x[(b * p.in_channels + cin) * p.length + pos]);
        features<K>(xv, a.knots, p.num_intervals, inv_h, s_silu[threadIdx.x], row,
                    s_values + threadIdx.x * (K + 1));
        s_gy[threadIdx.x] = ((b * p.groups + g) * p.out_length + t) * os;
      }
    }
    s_row[threadIdx.x] = row;
    __syncthreads();
    if (!active) continue;
    const int64_t count = min(static_cast<int64_t>(kChunk), row_end - start);
    for (int64_t i = 0; i < count; ++i) {
      const int r0 = s_row[i];
      if (r0 < 0) continue;
      const float go = a.grad_out_t[s_gy[i] + o];
      s_acc[threadIdx.x] += s_silu[i] * go;
#pragma unroll
      for (int r = 0; r <= K; ++r) {
        s_acc[(r0 + r) * kWeightGradThreads + threadIdx.x] += s_values[i * (K + 1) + r] * go;
      }
    }
  }

  if (!active) return;
  float* out = a.partial + ((split * p.in_channels + cin) * p.kernel_size + j) * rows * os + o;
  for (int64_t r = 0; r < rows; ++r) out[r * os] = s_acc[r * kWeightGradThreads + threadIdx.x];
}

size_t weight_grad_smem(int64_t rows, int order) {
  return sizeof(float) * (rows * kWeightGradThreads + kChunk * (order + 2)) +
         sizeof(int64_t) * kChunk + sizeof(int) * kChunk;
}

}  // namespace

int64_t weight_grad_blocks(const KanConv1dParams& p, const PackedLayout& layout) {
  return p.in_channels * p.kernel_size *
         ((layout.out_stride + kWeightGradThreads - 1) / kWeightGradThreads);
}

template <typename scalar_t>
void launch_input_grad(const InputGradArgs<scalar_t>& a, cudaStream_t stream) {
  const int64_t total = a.p.batch * a.p.in_channels * a.p.length;
  const unsigned blocks = static_cast<unsigned>((total + kInputGradThreads - 1) / kInputGradThreads);
  MKCC_DISPATCH_ORDER(a.p.spline_order, [&] {
    kan_conv1d_input_grad_kernel<scalar_t, K><<<blocks, kInputGradThreads, 0, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template <typename scalar_t>
void launch_weight_grad(const WeightGradArgs<scalar_t>& a, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(a.splits * weight_grad_blocks(a.p, a.layout));
  const size_t smem = weight_grad_smem(a.layout.num_rows, a.p.spline_order);
  MKCC_DISPATCH_ORDER(a.p.spline_order, [&] {
    auto kernel = kan_conv1d_weight_grad_kernel<scalar_t, K>;
    if (smem > 48 * 1024) {
      C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
    }
    kernel<<<blocks, kWeightGradThreads, smem, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template void launch_input_grad<float>(const InputGradArgs<float>&, cudaStream_t);
template void launch_input_grad<c10::Half>(const InputGradArgs<c10::Half>&, cudaStream_t);
template void launch_input_grad<c10::BFloat16>(const InputGradArgs<c10::BFloat16>&,
                                               cudaStream_t);
template void launch_weight_grad<float>(const WeightGradArgs<float>&, cudaStream_t);
template void launch_weight_grad<c10::Half>(const WeightGradArgs<c10::Half>&, cudaStream_t);
template void launch_weight_grad<c10::BFloat16>(const WeightGradArgs<c10::BFloat16>&,
                                                cudaStream_t);

}  // namespace cuda
}  // namespace mkcc
