// What the CPU ops' host code shares: the call into the instruction-set build the processor
// supports, the packed weights of cpu_packed_layout / cpu_input_grad_layout and the weight
// gradients read back from them, grad_out as rows, and the per-thread scratch.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "isa.h"
#include "kernels.h"
#include "workspace.h"

namespace mkcc {
namespace cpu {

// Calls `function` of the instruction-set build that current_isa() picked (the one place that
// switches on it).
#if defined(__x86_64__)
#define MKCC_CPU_CALL(function, ...)                                  \
  switch (current_isa()) {                                            \
    case Isa::avx512: return avx512::function(__VA_ARGS__);           \
    case Isa::avx2: return avx2::function(__VA_ARGS__);               \
    default: return generic::function(__VA_ARGS__);                   \
  }
#else
#define MKCC_CPU_CALL(function, ...) return generic::function(__VA_ARGS__)
#endif

// count runs of `run` values, src_step and dst_step apart.
template <typename scalar_t>
void copy_runs(const scalar_t* src, int64_t src_step, scalar_t* dst, int64_t dst_step,
               int64_t count, int64_t run) {
  for (int64_t i = 0; i < count; ++i) {
    memcpy(dst + i * dst_step, src + i * src_step, sizeof(scalar_t) * run);
  }
}

// fn(item, first, local_base, local_spline) for every (group, input channel) item, in parallel:
// `first` is where the item's values for output channel 0 start in a [C_out, Cg, k] tensor (times
// S in the [C_out, Cg, k, S] one; the next output channel's are Cg * k values on), and the
// thread's local buffers hold [C_out / groups][k] and [C_out / groups][k][S] values, contents
// left from the previous item (every value is set before it is read).
template <typename scalar_t, typename Fn>
void for_each_input_channel(const KanConv1dParams& p, const Fn& fn) {
  const int64_t k = p.kernel_size;
  const int64_t S = p.grid_size + p.spline_order;
  const int64_t cog = p.out_per_group;
  const int64_t cg = p.in_per_group;
  at::parallel_for(0, p.groups * cg, 1, [&](int64_t begin, int64_t end) {
    std::unique_ptr<scalar_t[]> local_base(new scalar_t[cog * k]);
    std::unique_ptr<scalar_t[]> local_spline(new scalar_t[cog * k * S]);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t g = item / cg;
      const int64_t c = item % cg;
      fn(item, (g * cog * cg + c) * k, local_base.get(), local_spline.get());
    }
  });
}

// Weights packed for the kernels, written by a loop over (group, input channel) items, each of
// which fills its channel's block of k * num_rows * out_stride values (padded lanes included)
// once. An item first copies its channel's values into local [C_out / groups][k] and
// [C_out / groups][k][S] buffers (one contiguous run of each per output channel), then writes the
// block in destination order, whole rows of contiguous stores. (Stores in source order put
// each value on its own cache line of a fresh buffer; loads in destination order straight from
// the weights hop between output channels C_in * k * S values apart, which at C_in = 192 and
// k = 7 fall into 8 of L1's 64 sets. Either was ~15 % of a forward at (32, 192, 128, 15, 7).)
// With `input_grad` false the [k][num_rows][out_stride] rows of cpu_packed_layout (spline
// weights); with `input_grad` true the column blocks of cpu_input_grad_layout (differences of
// consecutive spline weights).
// difference_scale (undefined, or [groups * Cg * k][S + 1]) multiplies difference i of each
// (channel, tap): KANLinear's per-feature K / (t_{i+K} - t_i) on non-uniform knots.
at::Tensor pack_weights_cpu(const at::Tensor& base_weight, const at::Tensor& spline_weight,
                            const KanConv1dParams& p, const PackedLayout& layout,
                            at::ScalarType dtype, bool input_grad = false,
                            const at::Tensor& difference_scale = at::Tensor());

// The weight gradients from the packed per-chunk sums (cpu_packed_layout): chunks added in a
// fixed order, written into grad_base [C_out, Cg, k] and grad_spline [C_out, Cg, k, S]
// (contiguous, x's dtype: see new_grad_outputs), one (group, input channel) per item. As in
// pack_weights_cpu, the other way round: whole packed rows are summed into local [C_out / groups]
// [k] and [C_out / groups][k][S] buffers, which go out as one run of each per output channel.
template <typename scalar_t>
void unpack_weight_grad_cpu(const at::Tensor& packed_grad, int64_t chunks,
                            const KanConv1dParams& p, const PackedLayout& layout,
                            at::Tensor& grad_base, at::Tensor& grad_spline) {
  const int64_t S = p.grid_size + p.spline_order;
  const int64_t k = p.kernel_size;
  const int64_t rows = layout.num_rows;  // 1 + S
  const int64_t os = layout.out_stride;
  const int64_t block = k * rows * os;  // one (group, input channel)
  const int64_t chunk_stride = p.groups * p.in_per_group * block;
  const int64_t cog = p.out_per_group;
  const int64_t cg = p.in_per_group;
  const scalar_t* packed = packed_grad.const_data_ptr<scalar_t>();
  scalar_t* gb = grad_base.mutable_data_ptr<scalar_t>();
  scalar_t* gs = grad_spline.mutable_data_ptr<scalar_t>();
  for_each_input_channel<scalar_t>(p, [&](int64_t item, int64_t first, scalar_t* local_base,
                                          scalar_t* local_spline) {
    const scalar_t* src = packed + item * block;
    for (int64_t j = 0; j < k; ++j) {
      for (int64_t row = 0; row < rows; ++row) {
        const scalar_t* sums = src + (j * rows + row) * os;
        scalar_t* dst = row == 0 ? local_base + j : local_spline + j * S + row - 1;
        const int64_t dst_step = row == 0 ? k : k * S;
        for (int64_t o = 0; o < cog; ++o) {
          scalar_t sum = sums[o];
          for (int64_t chunk = 1; chunk < chunks; ++chunk) sum += sums[chunk * chunk_stride + o];
          dst[o * dst_step] = sum;
        }
      }
    }
    copy_runs(local_base, k, gb + first, cg * k, cog, k);
    copy_runs(local_spline, k * S, gs + first * S, cg * k * S, cog, k * S);
  });
}

template <typename T>
void run_transpose(const T* src, int64_t src_stride, int64_t rows, int64_t cols, T* dst,
                   int64_t dst_stride) {
  MKCC_CPU_CALL(transpose, src, src_stride, rows, cols, dst, dst_stride);
}

// grad_out as [B][groups][T_out][out_stride], output channels innermost, padded lanes zero
// (read through its strides: autograd often hands over expanded or transposed tensors), in
// blocks of 16 x 16 so that both sides stay in cache; with contiguous rows, by vector blocks.
template <typename scalar_t>
at::Tensor transpose_grad_out_cpu(const at::Tensor& grad_out, const KanConv1dParams& p,
                                  const PackedLayout& layout) {
  auto out = workspace_tensor(WorkspaceSlot::grad_out_rows,
                              {p.batch, p.groups, p.out_length, layout.out_stride},
                              grad_out.scalar_type());
  const int64_t os = layout.out_stride;
  const int64_t cog = p.out_per_group;
  const int64_t T = p.out_length;
  const int64_t sb = grad_out.stride(0);
  const int64_t sc = grad_out.stride(1);
  const int64_t st = grad_out.stride(2);
  const scalar_t* src = grad_out.const_data_ptr<scalar_t>();
  scalar_t* dst = out.mutable_data_ptr<scalar_t>();
  constexpr int64_t kBlock = 16;
  const int64_t t_blocks = (T + kBlock - 1) / kBlock;
  at::parallel_for(0, p.batch * p.groups * t_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t0 = item % t_blocks * kBlock;
      const int64_t bg = item / t_blocks;  // b * groups + g
      const int64_t b = bg / p.groups;
      const int64_t g = bg % p.groups;
      const int64_t t1 = std::min(T, t0 + kBlock);
      const scalar_t* in = src + b * sb + g * cog * sc;
      scalar_t* o_rows = dst + bg * T * os;
      if (st == 1) {  // rows of grad_out contiguous: vector blocks
        run_transpose(in + t0, sc, cog, t1 - t0, o_rows + t0 * os, os);
      } else {
        for (int64_t o0 = 0; o0 < cog; o0 += kBlock) {
          const int64_t o1 = std::min(cog, o0 + kBlock);
          for (int64_t t = t0; t < t1; ++t) {
            for (int64_t o = o0; o < o1; ++o) o_rows[t * os + o] = in[o * sc + t * st];
          }
        }
      }
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t o = cog; o < os; ++o) o_rows[t * os + o] = scalar_t(0);
      }
    }
  });
  return out;
}

// 64-byte aligned per-thread scratch (CPU allocations of ATen are 64-byte aligned).
inline at::Tensor scratch_buffer(int64_t bytes) {
  return at::empty({std::max<int64_t>(bytes, 64)}, at::kByte);
}

}  // namespace cpu
}  // namespace mkcc
