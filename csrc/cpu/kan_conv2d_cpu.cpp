// CPU passes of mkcc::kan_conv2d_fwd / mkcc::kan_conv2d_bwd (schemas in registration.cpp):
// argument checks naming the argument, the call as KanConv2dParams (the 1-D call along the width
// plus the height geometry), weight packing through the 1-D packer (kernel rows as channels),
// the work split over at::parallel_for. Saves nothing: autograd keeps x and the weights, and the
// backward recomputes the basis.
#include <algorithm>
#include <cmath>
#include <tuple>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../host.h"
#include "kernels.h"
#include "packing.h"
#include "workspace.h"

namespace mkcc {
namespace cpu {
namespace {

template <typename Args>
void run_conv2d_forward(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(conv2d_forward, a, begin, end, scratch);
}

template <typename Args>
void run_conv2d_input_grad(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(conv2d_input_grad, a, begin, end, scratch);
}

template <typename Args>
void run_conv2d_weight_grad(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(conv2d_weight_grad, a, begin, end, scratch);
}

// Output length of one dimension (nn.Conv2d's), checking that the kernel fits.
int64_t out_size(const char* axis, int64_t size, int64_t kernel, int64_t stride, int64_t pad_lo,
                 int64_t pad_hi, int64_t dilation) {
  const int64_t span = dilation * (kernel - 1) + 1;
  const int64_t padded = size + pad_lo + pad_hi;
  TORCH_CHECK_VALUE(padded >= span, "kernel_size: the dilated kernel spans ", span, " positions ",
                    "along the ", axis, ", longer than the padded input (", padded, ")");
  return (padded - span) / stride + 1;
}

// Every argument of the two ops, checked; the call's description.
KanConv2dParams conv2d_params(const at::Tensor& x, const at::Tensor& base_weight,
                              const at::Tensor& spline_weight, int64_t stride_h, int64_t stride_w,
                              int64_t pad_top, int64_t pad_bottom, int64_t pad_left,
                              int64_t pad_right, int64_t dilation_h, int64_t dilation_w,
                              int64_t groups, int64_t spline_order, double grid_lo,
                              double grid_hi) {
  TORCH_CHECK_VALUE(x.dim() == 4, "x: expected a 4-D tensor [batch, in_channels, height, width], ",
                    "got shape ", x.sizes());
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                   "x: backend 'cpu' supports float32 and float64, got ", x.scalar_type(),
                   " (use backend='reference' for other dtypes)");
  TORCH_CHECK_VALUE(base_weight.dim() == 4,
                    "base_weight: expected a 4-D tensor [out_channels, in_channels / groups, "
                    "kernel_h, kernel_w], got shape ", base_weight.sizes());
  TORCH_CHECK_VALUE(spline_weight.dim() == 5,
                    "spline_weight: expected a 5-D tensor [out_channels, in_channels / groups, "
                    "kernel_h, kernel_w, grid_size + spline_order], got shape ",
                    spline_weight.sizes());
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor&>{"base_weight",
                                                                          base_weight},
                                {"spline_weight", spline_weight}}) {
    TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type(), name, ": expected dtype ",
                     x.scalar_type(), " (that of x), got ", t.scalar_type());
    TORCH_CHECK_VALUE(t.device() == x.device(), name, ": expected device ", x.device(),
                      " (that of x), got ", t.device());
  }
  TORCH_CHECK_VALUE(stride_h >= 1 && stride_w >= 1, "stride: expected integers >= 1, got (",
                    stride_h, ", ", stride_w, ")");
  TORCH_CHECK_VALUE(dilation_h >= 1 && dilation_w >= 1,
                    "dilation: expected integers >= 1, got (", dilation_h, ", ", dilation_w, ")");
  TORCH_CHECK_VALUE(pad_top >= 0 && pad_bottom >= 0 && pad_left >= 0 && pad_right >= 0,
                    "padding: expected non-negative amounts, got (", pad_top, ", ", pad_bottom,
                    ", ", pad_left, ", ", pad_right, ")");
  TORCH_CHECK_VALUE(groups >= 1, "groups: expected an integer >= 1, got ", groups);
  TORCH_CHECK_VALUE(spline_order >= 1 && spline_order <= kMaxSplineOrder,
                    "spline_order: expected 1, 2, 3 or 4, got ", spline_order);
  TORCH_CHECK_VALUE(std::isfinite(grid_lo) && std::isfinite(grid_hi) && grid_lo < grid_hi,
                    "grid_range: expected finite (lo, hi) with lo < hi, got (", grid_lo, ", ",
                    grid_hi, ")");
  KanConv2dParams p{};
  KanConv1dParams& r = p.row;
  r.batch = x.size(0);
  r.in_channels = x.size(1);
  p.height = x.size(2);
  r.length = x.size(3);
  r.out_channels = base_weight.size(0);
  p.kernel_h = base_weight.size(2);
  r.kernel_size = base_weight.size(3);
  r.groups = groups;
  TORCH_CHECK_VALUE(r.in_channels >= 1, "x: expected in_channels >= 1, got shape ", x.sizes());
  TORCH_CHECK_VALUE(r.in_channels % groups == 0 && r.out_channels % groups == 0,
                    "groups: in_channels (", r.in_channels, ") and out_channels (",
                    r.out_channels, ") must both be divisible by groups (", groups, ")");
  r.in_per_group = r.in_channels / groups;
  r.out_per_group = r.out_channels / groups;
  TORCH_CHECK_VALUE(r.out_channels >= 1 && p.kernel_h >= 1 && r.kernel_size >= 1 &&
                        base_weight.size(1) == r.in_per_group,
                    "base_weight: expected shape [out_channels, ", r.in_per_group,
                    ", kernel_h, kernel_w] for in_channels ", r.in_channels, " and groups ",
                    groups, ", got ", base_weight.sizes());
  TORCH_CHECK_VALUE(spline_weight.sizes().slice(0, 4) == base_weight.sizes(),
                    "spline_weight: expected shape [", r.out_channels, ", ", r.in_per_group, ", ",
                    p.kernel_h, ", ", r.kernel_size,
                    ", grid_size + spline_order] to match base_weight, got ",
                    spline_weight.sizes());
  r.spline_order = static_cast<int>(spline_order);
  r.grid_size = spline_weight.size(4) - spline_order;
  TORCH_CHECK_VALUE(r.grid_size >= 1, "spline_weight: last dimension must be grid_size + "
                    "spline_order with grid_size >= 1, got ", spline_weight.size(4),
                    " for spline_order ", spline_order);
  r.num_intervals = static_cast<int>(r.grid_size + 2 * spline_order);
  r.inv_h = static_cast<double>(r.grid_size) / (grid_hi - grid_lo);
  r.stride = stride_w;
  r.dilation = dilation_w;
  r.pad_left = pad_left;
  r.out_length = out_size("width", r.length, r.kernel_size, stride_w, pad_left, pad_right,
                          dilation_w);
  p.stride_h = stride_h;
  p.dilation_h = dilation_h;
  p.pad_top = pad_top;
  p.out_height = out_size("height", p.height, p.kernel_h, stride_h, pad_top, pad_bottom,
                          dilation_h);
  return p;
}

// The 1-D call whose packed weights are the 2-D call's: kernel row i of channel c is channel
// c * kh + i, k = kw.
KanConv1dParams packing_params(const KanConv2dParams& p) {
  KanConv1dParams c = p.row;
  c.in_channels *= p.kernel_h;
  c.in_per_group *= p.kernel_h;
  return c;
}

// The 1-D call whose grad_out rows are the 2-D call's: one row of H_out * W_out outputs.
KanConv1dParams plane_params(const KanConv2dParams& p) {
  KanConv1dParams c = p.row;
  c.out_length = p.out_height * p.row.out_length;
  return c;
}

at::Tensor pack_conv2d_weights(const at::Tensor& base_weight, const at::Tensor& spline_weight,
                               const KanConv2dParams& p, const PackedLayout& layout,
                               at::ScalarType dtype, bool input_grad) {
  const KanConv1dParams c = packing_params(p);
  const int64_t out = c.out_channels;
  return pack_weights_cpu(base_weight.reshape({out, c.in_per_group, c.kernel_size}),
                          spline_weight.reshape({out, c.in_per_group, c.kernel_size, -1}), c,
                          layout, dtype, input_grad);
}

// Output rows per forward work item: about 128 outputs (as KANConv1d's time tiles), fewer
// while the threads would get fewer than 4 items each.
int64_t forward_row_tile(const KanConv2dParams& p) {
  const int64_t threads = at::get_num_threads();
  int64_t tile = std::clamp<int64_t>(128 / p.row.out_length, 1, p.out_height);
  while (tile > 1 && p.row.batch * p.row.groups * ((p.out_height + tile - 1) / tile) <
                         4 * threads) {
    tile = (tile + 1) / 2;
  }
  return tile;
}

at::Tensor kan_conv2d_fwd_cpu(const at::Tensor& x_in, const at::Tensor& base_weight,
                              const at::Tensor& spline_weight, int64_t stride_h, int64_t stride_w,
                              int64_t pad_top, int64_t pad_bottom, int64_t pad_left,
                              int64_t pad_right, int64_t dilation_h, int64_t dilation_w,
                              int64_t groups, int64_t spline_order, double grid_lo,
                              double grid_hi) {
  const KanConv2dParams p = conv2d_params(x_in, base_weight, spline_weight, stride_h, stride_w,
                                          pad_top, pad_bottom, pad_left, pad_right, dilation_h,
                                          dilation_w, groups, spline_order, grid_lo, grid_hi);
  const KanConv1dParams& r = p.row;
  auto out = new_output({r.batch, r.out_channels, p.out_height, r.out_length}, x_in.options());
  if (out.numel() == 0) return out;
  const auto x = x_in.contiguous();
  const PackedLayout layout = cpu_packed_layout(packing_params(p));
  const auto packed =
      pack_conv2d_weights(base_weight, spline_weight, p, layout, x.scalar_type(), false);
  const auto knots = make_knots(r, grid_lo, grid_hi, x.options());
  const int64_t tile = forward_row_tile(p);
  const int64_t tiles = (p.out_height + tile - 1) / tile;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kan_conv2d_fwd_cpu", [&] {
    Conv2dForwardArgs<scalar_t> a{p,
                                  layout,
                                  x.const_data_ptr<scalar_t>(),
                                  knots.const_data_ptr<scalar_t>(),
                                  packed.const_data_ptr<scalar_t>(),
                                  out.mutable_data_ptr<scalar_t>(),
                                  tile,
                                  tiles};
    const int64_t bytes = conv2d_forward_scratch(p, layout, tile, sizeof(scalar_t)).bytes;
    at::parallel_for(0, r.batch * r.groups * tiles, 1, [&](int64_t begin, int64_t end) {
      auto scratch = scratch_buffer(bytes);
      run_conv2d_forward(a, begin, end, scratch.mutable_data_ptr());
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kan_conv2d_bwd_cpu(
    const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& base_weight,
    const at::Tensor& spline_weight, int64_t stride_h, int64_t stride_w, int64_t pad_top,
    int64_t pad_bottom, int64_t pad_left, int64_t pad_right, int64_t dilation_h,
    int64_t dilation_w, int64_t groups, int64_t spline_order, double grid_lo, double grid_hi,
    bool input_grad, bool weight_grad) {
  const KanConv2dParams p = conv2d_params(x_in, base_weight, spline_weight, stride_h, stride_w,
                                          pad_top, pad_bottom, pad_left, pad_right, dilation_h,
                                          dilation_w, groups, spline_order, grid_lo, grid_hi);
  const KanConv1dParams& r = p.row;
  TORCH_CHECK_TYPE(grad_out.scalar_type() == x_in.scalar_type(), "grad_out: expected dtype ",
                   x_in.scalar_type(), " (that of x), got ", grad_out.scalar_type());
  TORCH_CHECK_VALUE(grad_out.device() == x_in.device(), "grad_out: expected device ",
                    x_in.device(), " (that of x), got ", grad_out.device());
  TORCH_CHECK_VALUE(grad_out.dim() == 4 && grad_out.size(0) == r.batch &&
                        grad_out.size(1) == r.out_channels &&
                        grad_out.size(2) == p.out_height && grad_out.size(3) == r.out_length,
                    "grad_out: expected shape [", r.batch, ", ", r.out_channels, ", ",
                    p.out_height, ", ", r.out_length, "] (the forward's output), got ",
                    grad_out.sizes());
  const auto options = x_in.options();
  at::Tensor grad_x = input_grad ? new_output(x_in.sizes(), options) : at::empty({0}, options);
  at::Tensor grad_base =
      weight_grad ? new_output(base_weight.sizes(), options) : at::empty({0}, options);
  at::Tensor grad_spline =
      weight_grad ? new_output(spline_weight.sizes(), options) : at::empty({0}, options);
  // No outputs, or no inputs (every tap padding): zero gradients.
  const bool empty = p.out_height * r.out_length == 0 || x_in.numel() == 0;
  if (r.batch == 0 || empty || !(input_grad || weight_grad)) {
    if (input_grad) grad_x.zero_();
    if (weight_grad) {
      grad_base.zero_();
      grad_spline.zero_();
    }
    return {grad_x, grad_base, grad_spline};
  }
  const auto x = x_in.contiguous();
  const KanConv1dParams packing = packing_params(p);
  const PackedLayout layout = cpu_packed_layout(packing);
  const auto knots = make_knots(r, grid_lo, grid_hi, x.options());
  const int64_t threads = at::get_num_threads();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kan_conv2d_bwd_cpu", [&] {
    // grad_out as rows [B][groups][H_out * W_out][out_stride] (the 1-D transpose over the plane)
    const auto grad_out_t = transpose_grad_out_cpu<scalar_t>(
        grad_out.reshape({r.batch, r.out_channels, -1}), plane_params(p), layout);
    Conv2dBackwardArgs<scalar_t> a{};
    a.p = p;
    a.x = x.const_data_ptr<scalar_t>();
    a.knots = knots.const_data_ptr<scalar_t>();
    a.grad_out_t = grad_out_t.const_data_ptr<scalar_t>();
    if (input_grad) {
      Conv2dBackwardArgs<scalar_t> d = a;
      d.layout = cpu_input_grad_layout(packing);
      const auto packed =
          pack_conv2d_weights(base_weight, spline_weight, p, d.layout, x.scalar_type(), true);
      d.packed_weight = packed.const_data_ptr<scalar_t>();
      d.grad_x = grad_x.mutable_data_ptr<scalar_t>();
      // input rows per features pass: about kInputGradChunk positions
      d.row_tile = std::clamp<int64_t>(kInputGradChunk / r.length, 1, p.height);
      const int64_t bytes = conv2d_input_grad_scratch(p, d.row_tile, sizeof(scalar_t)).bytes;
      at::parallel_for(0, r.batch * r.in_channels, 1, [&](int64_t begin, int64_t end) {
        auto scratch = scratch_buffer(bytes);
        run_conv2d_input_grad(d, begin, end, scratch.mutable_data_ptr());
      });
    }
    if (weight_grad) {
      // Each item owns one input channel of one batch chunk (no two threads write the same
      // entry); the chunks are summed in order when unpacking.
      const int64_t chunks =
          r.in_channels >= 2 * threads
              ? 1
              : std::min(r.batch, (2 * threads + r.in_channels - 1) / r.in_channels);
      auto packed_grad = workspace_tensor(WorkspaceSlot::weight_grad_sums,
                                          {chunks, r.groups, packing.in_per_group,
                                           r.kernel_size, layout.num_rows, layout.out_stride},
                                          x.scalar_type());
      Conv2dBackwardArgs<scalar_t> w = a;
      w.layout = layout;
      w.packed_grad = packed_grad.mutable_data_ptr<scalar_t>();
      w.num_batch_chunks = chunks;
      // output rows per block: their grad_out rows within kWeightGradRowBytes (from L2)
      const int64_t row_bytes = r.out_length * layout.out_stride *
                                static_cast<int64_t>(sizeof(scalar_t));
      w.row_tile = std::clamp<int64_t>(kWeightGradRowBytes / row_bytes, 1, p.out_height);
      const int64_t bytes = conv2d_weight_grad_scratch(p, w.row_tile, sizeof(scalar_t)).bytes;
      at::parallel_for(0, chunks * r.in_channels, 1, [&](int64_t begin, int64_t end) {
        auto scratch = scratch_buffer(bytes);
        run_conv2d_weight_grad(w, begin, end, scratch.mutable_data_ptr());
      });
      auto grad_base_rows = grad_base.view({r.out_channels, packing.in_per_group, r.kernel_size});
      auto grad_spline_rows =
          grad_spline.view({r.out_channels, packing.in_per_group, r.kernel_size, -1});
      unpack_weight_grad_cpu<scalar_t>(packed_grad, chunks, packing, layout, grad_base_rows,
                                       grad_spline_rows);
    }
  });
  return {grad_x, grad_base, grad_spline};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(mkcc, CPU, m) {
  m.impl("kan_conv2d_fwd", &cpu::kan_conv2d_fwd_cpu);
  m.impl("kan_conv2d_bwd", &cpu::kan_conv2d_bwd_cpu);
}

}  // namespace mkcc
