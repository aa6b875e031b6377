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

// The CUDA kernels vectorize nothing over output channels; any padding works. 16 keeps the
// packed layout identical to the CPU one.
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

at::Tensor kan_conv1d_fwd_cuda(const at::Tensor& x, const at::Tensor& base_weight,
                               const at::Tensor& spline_weight, int64_t stride, int64_t pad_left,
                               int64_t pad_right, int64_t dilation, int64_t groups,
                               int64_t spline_order, double grid_lo, double grid_hi) {
  const KanConv1dParams p = make_params(x, base_weight, spline_weight, stride, pad_left,
                                        pad_right, dilation, groups, spline_order, grid_lo,
                                        grid_hi);
  check_cuda_inputs(x);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = new_output({p.batch, p.out_channels, p.out_length}, x.options());
  if (out.numel() == 0) return out;

  const auto x_contig = x.contiguous();
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
                                 x_contig.const_data_ptr<scalar_t>(),
                                 knots.const_data_ptr<float>(),
                                 packed.const_data_ptr<scalar_t>(),
                                 out.mutable_data_ptr<scalar_t>()};
      launch_forward_mma(a, stream);
    });
    return out;
  }

  check_grid_size(p.batch * p.groups * ((p.out_length + 31) / 32), "forward");
  TORCH_CHECK_VALUE((p.out_per_group + kForwardChannels - 1) / kForwardChannels <= 65535,
                    "base_weight: too many output channels per group for the forward grid (",
                    p.out_per_group, ")");
  const PackedLayout layout = packed_layout(p, kChannelAlign);
  const auto packed = pack_weights(base_weight, spline_weight, p, layout, at::kFloat);
  MKCC_DISPATCH_CUDA_TYPES(x.scalar_type(), "kan_conv1d_fwd_cuda", [&] {
    ForwardArgs<scalar_t> a{p,
                            layout,
                            x_contig.const_data_ptr<scalar_t>(),
                            knots.const_data_ptr<float>(),
                            packed.const_data_ptr<float>(),
                            out.mutable_data_ptr<scalar_t>()};
    launch_forward(a, stream);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kan_conv1d_bwd_cuda(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& base_weight,
    const at::Tensor& spline_weight, int64_t stride, int64_t pad_left, int64_t pad_right,
    int64_t dilation, int64_t groups, int64_t spline_order, double grid_lo, double grid_hi,
    bool input_grad, bool weight_grad) {
  const KanConv1dParams p = make_params(x, base_weight, spline_weight, stride, pad_left,
                                        pad_right, dilation, groups, spline_order, grid_lo,
                                        grid_hi);
  check_cuda_inputs(x);
  check_grad_out(grad_out, x, p);
  const c10::cuda::CUDAGuard guard(x.device());

  at::Tensor grad_x, grad_base, grad_spline;
  std::tie(grad_x, grad_base, grad_spline) =
      new_grad_outputs(x, base_weight, spline_weight, p, input_grad, weight_grad);
  if (p.batch == 0 || (!input_grad && !weight_grad)) return {grad_x, grad_base, grad_spline};

  const auto x_contig = x.contiguous();
  const PackedLayout layout = packed_layout(p, kChannelAlign);
  const auto knots = make_knots(p, grid_lo, grid_hi, x.options().dtype(at::kFloat));
  const auto grad_out_t = transpose_grad_out(grad_out, p, layout, at::kFloat);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  MKCC_DISPATCH_CUDA_TYPES(x.scalar_type(), "kan_conv1d_bwd_cuda", [&] {
    if (input_grad) {
      check_grid_size((p.batch * p.in_channels * p.length + 255) / 256, "input-gradient");
      const auto packed = pack_weights(base_weight, spline_weight, p, layout, at::kFloat);
      InputGradArgs<scalar_t> a{p,
                                layout,
                                x_contig.const_data_ptr<scalar_t>(),
                                knots.const_data_ptr<float>(),
                                packed.const_data_ptr<float>(),
                                grad_out_t.const_data_ptr<float>(),
                                grad_x.mutable_data_ptr<scalar_t>()};
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
      WeightGradArgs<scalar_t> a{p,
                                 layout,
                                 x_contig.const_data_ptr<scalar_t>(),
                                 knots.const_data_ptr<float>(),
                                 grad_out_t.const_data_ptr<float>(),
                                 partial.mutable_data_ptr<float>(),
                                 splits,
                                 rows_per_split};
      launch_weight_grad(a, stream);
      unpack_weight_grad(partial.sum(0), p, 1 + p.spline_order, grad_base, grad_spline);
    }
  });
  return {grad_x, grad_base, grad_spline};
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(mkcc, CUDA, m) {
  m.impl("kan_conv1d_fwd", &cuda::kan_conv1d_fwd_cuda);
  m.impl("kan_conv1d_bwd", &cuda::kan_conv1d_bwd_cuda);
}

}  // namespace mkcc
