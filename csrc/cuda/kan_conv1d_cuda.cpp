// CUDA entry points of mkcc::kan_conv1d_fwd / mkcc::kan_conv1d_bwd: checks, device guard,
// current stream, weight packing (fp32, or the input dtype for the tensor-core forward), the
// choice of forward kernel, dtype dispatch and the deterministic split of the
// weight-gradient reduction.
#include <algorithm>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../host.h"
#include "kan_conv1d_cuda.h"

namespace mkcc {
namespace cuda {
namespace {

// The CUDA kernels vectorize nothing over output channels; any padding works (16: whole
// 64-byte lines of fp32).
constexpr int64_t kChannelAlign = 16;

// float32, float16 and bfloat16 only (the kernels are instantiated for these).
#define MKCC_DISPATCH_CUDA_TYPES(TYPE, NAME, ...)              \
  AT_DISPATCH_SWITCH(TYPE, NAME,                               \
                     AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__) \
                     AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__)  \
                     AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__))

// float16 and bfloat16: the tensor-core forward.
#define MKCC_DISPATCH_MMA_TYPES(TYPE, NAME, ...)              \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__) \
                                     AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__))

void check_cuda_inputs(const at::Tensor& x) {
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kHalf ||
                       x.scalar_type() == at::kBFloat16,
                   "x: backend 'cuda' supports float32, float16 and bfloat16, got ",
                   x.scalar_type());
  TORCH_CHECK_VALUE(x.is_cuda(), "x: backend 'cuda' needs CUDA tensors, got ", x.device());
}

void check_grid_size(int64_t blocks, const char* what) {
  TORCH_CHECK_VALUE(blocks <= std::numeric_limits<int32_t>::max(), "x: too large for the ", what,
                    " kernel's grid (", blocks, " blocks)");
}

// Weights in cuda_packed_layout, fp32: [groups][in_per_group][k][num_rows][out_stride].
at::Tensor pack_weights(const at::Tensor& base_weight, const at::Tensor& spline_weight,
                        const KanConv1dParams& p, const PackedLayout& layout,
                        at::ScalarType dtype) {
  const int64_t spline_count = p.grid_size + p.spline_order;
  auto packed = at::zeros(
      {p.groups, p.in_per_group, p.kernel_size, layout.num_rows, layout.out_stride},
      base_weight.options().dtype(dtype));
  auto channels = packed.narrow(4, 0, p.out_per_group);
  channels.select(3, 0).copy_(
      base_weight.reshape({p.groups, p.out_per_group, p.in_per_group, p.kernel_size})
          .permute({0, 2, 3, 1}));
  channels.narrow(3, 1 + p.spline_order, spline_count)
      .copy_(spline_weight
                 .reshape({p.groups, p.out_per_group, p.in_per_group, p.kernel_size,
                           spline_count})
                 .permute({0, 2, 3, 4, 1}));
  return packed;
}

// grad_out as [B][groups][T_out][out_stride] in `dtype`, output channels innermost, zero padded.
at::Tensor transpose_grad_out(const at::Tensor& grad_out, const KanConv1dParams& p,
                              const PackedLayout& layout, at::ScalarType dtype) {
  auto out = at::zeros({p.batch, p.groups, p.out_length, layout.out_stride},
                       grad_out.options().dtype(dtype));
  out.narrow(3, 0, p.out_per_group)
      .copy_(grad_out.reshape({p.batch, p.groups, p.out_per_group, p.out_length})
                 .transpose(2, 3));
  return out;
}

// The weight gradients from a sum in cuda_packed_layout (row 0 the base weight, row
// first_spline_row + i spline function i) into grad_base [C_out, Cg, k] and grad_spline
// [C_out, Cg, k, G + K].
void unpack_weight_grad(const at::Tensor& packed_grad, const KanConv1dParams& p,
                        int64_t first_spline_row, at::Tensor& grad_base, at::Tensor& grad_spline) {
  // [groups, Cg, k, rows, Cog] -> [groups, Cog, Cg, k(, G+K)]
  const auto total =
      packed_grad.reshape({p.groups, p.in_per_group, p.kernel_size, packed_grad.size(-2),
                           packed_grad.size(-1)})
          .narrow(4, 0, p.out_per_group);
  grad_base.copy_(total.select(3, 0).permute({0, 3, 1, 2}).reshape(grad_base.sizes()));
  grad_spline.copy_(total.narrow(3, first_spline_row, p.grid_size + p.spline_order)
                        .permute({0, 4, 1, 2, 3})
                        .reshape(grad_spline.sizes()));
}

// Whether the forward runs on tensor cores: fp16/bf16 inputs, sm_80 or newer, the block's shared
// memory within the device's limit (long strides or dilations and large grids fall back to the
// CUDA-core kernel), and not turned off with set_cuda_tensor_cores(false).
bool forward_uses_tensor_cores(const at::Tensor& x, const MmaLayout& layout) {
  if (x.scalar_type() != at::kHalf && x.scalar_type() != at::kBFloat16) return false;
  if (!cuda_tensor_cores()) return false;
  const cudaDeviceProp* props = at::cuda::getCurrentDeviceProperties();
  return props->major >= 8 && forward_mma_smem_bytes(layout) <= props->sharedMemPerBlockOptin;
}

// Weights for the tensor-core forward, in x's dtype:
// [groups][k][chunks][out_padded][kMmaChannels][features], feature 0 = base_weight, 1 + i =
// spline function i, zero padding elsewhere (channels past the group, the odd feature).
at::Tensor pack_weights_mma(const at::Tensor& base_weight, const at::Tensor& spline_weight,
                            const KanConv1dParams& p, const MmaLayout& layout,
                            at::ScalarType dtype) {
  const int64_t spline_count = p.grid_size + p.spline_order;
  auto packed = at::zeros({p.groups, layout.out_padded, layout.chunks * kMmaChannels,
                           p.kernel_size, layout.features},
                          base_weight.options().dtype(dtype));
  auto used = packed.narrow(1, 0, p.out_per_group).narrow(2, 0, p.in_per_group);
  used.select(4, 0).copy_(
      base_weight.reshape({p.groups, p.out_per_group, p.in_per_group, p.kernel_size}));
  used.narrow(4, 1, spline_count)
      .copy_(spline_weight.reshape(
          {p.groups, p.out_per_group, p.in_per_group, p.kernel_size, spline_count}));
  return packed
      .view({p.groups, layout.out_padded, layout.chunks, kMmaChannels, p.kernel_size,
             layout.features})
      .permute({0, 4, 2, 1, 3, 5})
      .contiguous();
}

// The CUDA passes behind the ops' entry points (host.h).
struct CudaBackend {
  using Guard = c10::cuda::CUDAGuard;

  static void check_inputs(const at::Tensor& x) { check_cuda_inputs(x); }

  static void forward(const at::Tensor& x, const at::Tensor& base_weight,
                      const at::Tensor& spline_weight, const KanConv1dParams& p, double grid_lo,
                      double grid_hi, at::Tensor& out) {
    const auto knots = make_knots(p, grid_lo, grid_hi, x.options().dtype(at::kFloat));
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    const MmaLayout mma = mma_layout(p);
    if (forward_uses_tensor_cores(x, mma)) {
      check_grid_size(p.batch * p.groups * ((p.out_length + kMmaTimeTile - 1) / kMmaTimeTile),
                      "forward");
      TORCH_CHECK_VALUE(mma.out_padded / kMmaOutTile <= 65535,
                        "base_weight: too many output channels per group for the forward grid (",
                        p.out_per_group, ")");
      const auto packed = pack_weights_mma(base_weight, spline_weight, p, mma, x.scalar_type());
      MKCC_DISPATCH_MMA_TYPES(x.scalar_type(), "kan_conv1d_fwd_cuda_mma", [&] {
        ForwardMmaArgs<scalar_t> a{p,
                                   mma,
                                   x.const_data_ptr<scalar_t>(),
                                   knots.const_data_ptr<float>(),
                                   packed.const_data_ptr<scalar_t>(),
                                   out.mutable_data_ptr<scalar_t>()};
        launch_forward_mma(a, stream);
      });
      return;
    }

    check_grid_size(p.batch * p.groups * ((p.out_length + 31) / 32), "forward");
    TORCH_CHECK_VALUE((p.out_per_group + kForwardChannels - 1) / kForwardChannels <= 65535,
                      "base_weight: too many output channels per group for the forward grid (",
                      p.out_per_group, ")");
    const PackedLayout layout = cuda_packed_layout(p, kChannelAlign);
    const auto packed = pack_weights(base_weight, spline_weight, p, layout, at::kFloat);
    MKCC_DISPATCH_CUDA_TYPES(x.scalar_type(), "kan_conv1d_fwd_cuda", [&] {
      ForwardArgs<scalar_t> a{pass_inputs<scalar_t, float>(p, layout, x, knots),
                              packed.const_data_ptr<float>(), out.mutable_data_ptr<scalar_t>()};
      launch_forward(a, stream);
    });
  }

  static void backward(const at::Tensor& grad_out, const at::Tensor& x,
                       const at::Tensor& base_weight, const at::Tensor& spline_weight,
                       const KanConv1dParams& p, double grid_lo, double grid_hi,
                       bool input_grad, bool weight_grad, at::Tensor& grad_x,
                       at::Tensor& grad_base, at::Tensor& grad_spline) {
    const PackedLayout layout = cuda_packed_layout(p, kChannelAlign);
    const auto knots = make_knots(p, grid_lo, grid_hi, x.options().dtype(at::kFloat));
    const auto grad_out_t = transpose_grad_out(grad_out, p, layout, at::kFloat);
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

    MKCC_DISPATCH_CUDA_TYPES(x.scalar_type(), "kan_conv1d_bwd_cuda", [&] {
      if (input_grad) {
        check_grid_size((p.batch * p.in_channels * p.length + 255) / 256, "input-gradient");
        const auto packed = pack_weights(base_weight, spline_weight, p, layout, at::kFloat);
        InputGradArgs<scalar_t> a{
            backward_inputs<scalar_t, float>(p, layout, x, knots, grad_out_t),
            packed.const_data_ptr<float>(), grad_x.mutable_data_ptr<scalar_t>()};
        launch_input_grad(a, stream);
      }
      if (weight_grad) {
        // Split the (batch, time) rows so that there are about two blocks per multiprocessor,
        // each split at least 512 rows long; the splits are summed in order (deterministic).
        const int64_t rows = p.batch * p.out_length;
        const int64_t blocks = weight_grad_blocks(p, layout);
        const int64_t target =
            2 * at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
        const int64_t splits =
            std::max<int64_t>(1, std::min((target + blocks - 1) / blocks, (rows + 511) / 512));
        const int64_t rows_per_split = (rows + splits - 1) / splits;
        check_grid_size(splits * blocks, "weight-gradient");
        auto partial = new_output(
            {splits, p.in_channels, p.kernel_size, layout.num_rows, layout.out_stride},
            x.options().dtype(at::kFloat));
        WeightGradArgs<scalar_t> a{
            backward_inputs<scalar_t, float>(p, layout, x, knots, grad_out_t),
            partial.mutable_data_ptr<float>(), splits, rows_per_split};
        launch_weight_grad(a, stream);
        unpack_weight_grad(partial.sum(0), p, 1 + p.spline_order, grad_base, grad_spline);
      }
    });
  }
};

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(mkcc, CUDA, m) {
  m.impl("kan_conv1d_fwd", &kan_conv1d_fwd<cuda::CudaBackend>);
  m.impl("kan_conv1d_bwd", &kan_conv1d_bwd<cuda::CudaBackend>);
}

}  // namespace mkcc
