// CPU passes of mkcc::kan_linear_fwd / mkcc::kan_linear_bwd (schemas in registration.cpp):
// argument checks, weight packing (KANConv1d's layouts with C_in = in, k = 1), the work split
// over at::parallel_for. Saves nothing: autograd keeps x, the weights and the grid, and the
// backward recomputes the basis.
#include <algorithm>
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
void run_linear_forward(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(linear_forward, a, begin, end, scratch);
}

template <typename Args>
void run_linear_input_grad(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(linear_input_grad, a, begin, end, scratch);
}

template <typename Args>
void run_linear_weight_grad(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(linear_weight_grad, a, begin, end, scratch);
}

void check_like(const char* name, const at::Tensor& t, const at::Tensor& x) {
  TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type(), name, ": expected dtype ",
                   x.scalar_type(), " (that of x), got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == x.device(), name, ": expected a tensor on ", x.device(),
                    " (that of x), got ", t.device());
}

// Every argument of the two ops, checked; the call's description.
KanLinearParams linear_params(const at::Tensor& x, const at::Tensor& base_weight,
                              const at::Tensor& spline_weight,
                              const std::optional<at::Tensor>& spline_scaler,
                              const at::Tensor& grid, int64_t spline_order) {
  TORCH_CHECK_VALUE(spline_order >= 1 && spline_order <= kMaxSplineOrder,
                    "spline_order: expected an integer in [1, ", kMaxSplineOrder, "], got ",
                    spline_order);
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                   "x: backend 'cpu' supports float32 and float64, got ", x.scalar_type(),
                   " (use backend='reference' for other dtypes)");
  TORCH_CHECK_VALUE(x.dim() == 2, "x: expected a 2-D tensor [N, in_features], got ", x.dim(),
                    " dimensions");
  check_like("base_weight", base_weight, x);
  check_like("spline_weight", spline_weight, x);
  check_like("grid", grid, x);
  TORCH_CHECK_VALUE(base_weight.dim() == 2 && base_weight.numel() > 0,
                    "base_weight: expected a 2-D tensor [out_features >= 1, in_features >= 1], "
                    "got shape ", base_weight.sizes());
  const int64_t out = base_weight.size(0);
  const int64_t in = base_weight.size(1);
  TORCH_CHECK_VALUE(x.size(1) == in, "x: expected [N, in_features] with in_features = ", in,
                    " (that of base_weight), got shape ", x.sizes());
  TORCH_CHECK_VALUE(spline_weight.dim() == 3 && spline_weight.size(0) == out &&
                        spline_weight.size(1) == in,
                    "spline_weight: expected shape [", out, ", ", in,
                    ", grid_size + spline_order] to match base_weight, got ",
                    spline_weight.sizes());
  const int64_t grid_size = spline_weight.size(2) - spline_order;
  TORCH_CHECK_VALUE(grid_size >= 1,
                    "spline_weight: last dimension must be grid_size + spline_order with "
                    "grid_size >= 1, got ", spline_weight.size(2), " for spline_order ",
                    spline_order);
  TORCH_CHECK_VALUE(grid.dim() == 2 && grid.size(0) == in &&
                        grid.size(1) == grid_size + 2 * spline_order + 1,
                    "grid: expected shape [", in, ", ", grid_size + 2 * spline_order + 1,
                    "] ([in_features, grid_size + 2 * spline_order + 1]), got ", grid.sizes());
  if (spline_scaler.has_value()) {
    check_like("spline_scaler", *spline_scaler, x);
    TORCH_CHECK_VALUE(spline_scaler->dim() == 2 && spline_scaler->size(0) == out &&
                          spline_scaler->size(1) == in,
                      "spline_scaler: expected shape [", out, ", ", in, "], got ",
                      spline_scaler->sizes());
  }
  KanLinearParams p;
  p.batch = x.size(0);
  p.in_features = in;
  p.out_features = out;
  p.grid_size = grid_size;
  p.spline_order = static_cast<int>(spline_order);
  p.num_intervals = static_cast<int>(grid_size + 2 * spline_order);
  return p;
}

// The KANConv1d call whose packed weights are KANLinear's: C_in = in, k = 1, one group.
KanConv1dParams as_conv(const KanLinearParams& p) {
  KanConv1dParams c{};
  c.batch = p.batch;
  c.in_channels = c.in_per_group = p.in_features;
  c.out_channels = c.out_per_group = p.out_features;
  c.length = c.out_length = 1;
  c.kernel_size = c.stride = c.dilation = c.groups = 1;
  c.grid_size = p.grid_size;
  c.spline_order = p.spline_order;
  c.num_intervals = p.num_intervals;
  return c;
}

// spline_weight times the scaler ([out, in, 1, S]: one tap), a per-call temporary.
at::Tensor scaled_spline(const at::Tensor& spline_weight,
                         const std::optional<at::Tensor>& spline_scaler) {
  const auto scaled =
      spline_scaler.has_value() ? spline_weight * spline_scaler->unsqueeze(-1) : spline_weight;
  return scaled.unsqueeze(2);
}

// Rows per forward / input-gradient work item: a row_tile x out_stride accumulator tile in L2
// (and every feature chunk's weights fetched once per tile); halved while the threads would get
// fewer than two items each.
int64_t row_tile_for(const KanLinearParams& p) {
  const int64_t threads = at::get_num_threads();
  int64_t tile = 128;
  while (tile > 16 && (p.batch + tile - 1) / tile < 2 * threads) tile /= 2;
  return tile;
}

// Rows per weight-gradient tile: their grad_out rows (about 256 KB) stay in L2 while every
// feature of the item runs over them.
int64_t weight_grad_row_tile(const PackedLayout& layout, int64_t element_size) {
  const int64_t rows = (256 * 1024) / (layout.out_stride * element_size);
  return std::min<int64_t>(512, std::max<int64_t>(16, rows));
}

at::Tensor kan_linear_fwd_cpu(const at::Tensor& x_in, const at::Tensor& base_weight,
                              const at::Tensor& spline_weight,
                              const std::optional<at::Tensor>& spline_scaler,
                              const at::Tensor& grid, int64_t spline_order) {
  const KanLinearParams p =
      linear_params(x_in, base_weight, spline_weight, spline_scaler, grid, spline_order);
  auto out = new_output({p.batch, p.out_features}, x_in.options());
  if (p.batch == 0) return out;
  const auto x = x_in.contiguous();
  const auto knots = grid.contiguous();
  const KanConv1dParams c = as_conv(p);
  const PackedLayout layout = cpu_packed_layout(c);
  const auto packed = pack_weights_cpu(base_weight.unsqueeze(2),
                                       scaled_spline(spline_weight, spline_scaler), c, layout,
                                       x.scalar_type());
  const int64_t tile = row_tile_for(p);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kan_linear_fwd_cpu", [&] {
    LinearForwardArgs<scalar_t> a;
    a.p = p;
    a.layout = layout;
    a.x = x.const_data_ptr<scalar_t>();
    a.knots = knots.const_data_ptr<scalar_t>();
    a.row_tile = tile;
    a.packed_weight = packed.const_data_ptr<scalar_t>();
    a.out = out.mutable_data_ptr<scalar_t>();
    const int64_t bytes = linear_forward_scratch(layout, tile, sizeof(scalar_t)).bytes;
    at::parallel_for(0, (p.batch + tile - 1) / tile, 1, [&](int64_t begin, int64_t end) {
      auto scratch = scratch_buffer(bytes);
      run_linear_forward(a, begin, end, scratch.mutable_data_ptr());
    });
  });
  return out;
}

// grad_out as rows [N][out_stride] (read through its strides, padded lanes zero); grad_out
// itself when it already is.
template <typename scalar_t>
at::Tensor grad_out_rows(const at::Tensor& grad_out, const KanLinearParams& p,
                         const PackedLayout& layout) {
  const int64_t os = layout.out_stride;
  if (grad_out.is_contiguous() && os == p.out_features) return grad_out;
  auto rows = workspace_tensor(WorkspaceSlot::grad_out_rows, {p.batch, os},
                               grad_out.scalar_type());
  const scalar_t* src = grad_out.const_data_ptr<scalar_t>();
  scalar_t* dst = rows.mutable_data_ptr<scalar_t>();
  const int64_t sn = grad_out.stride(0);
  const int64_t so = grad_out.stride(1);
  at::parallel_for(0, p.batch, 64, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t o = 0; o < p.out_features; ++o) dst[n * os + o] = src[n * sn + o * so];
      for (int64_t o = p.out_features; o < os; ++o) dst[n * os + o] = scalar_t(0);
    }
  });
  return rows;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> kan_linear_bwd_cpu(
    const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& base_weight,
    const at::Tensor& spline_weight, const std::optional<at::Tensor>& spline_scaler,
    const at::Tensor& grid, int64_t spline_order, bool input_grad, bool weight_grad) {
  const KanLinearParams p =
      linear_params(x_in, base_weight, spline_weight, spline_scaler, grid, spline_order);
  check_like("grad_out", grad_out, x_in);
  TORCH_CHECK_VALUE(grad_out.dim() == 2 && grad_out.size(0) == p.batch &&
                        grad_out.size(1) == p.out_features,
                    "grad_out: expected shape [", p.batch, ", ", p.out_features,
                    "] (the forward's output), got ", grad_out.sizes());
  const auto options = x_in.options();
  at::Tensor grad_x = input_grad ? new_output(x_in.sizes(), options) : at::empty({0}, options);
  at::Tensor grad_base = at::empty({0}, options);
  at::Tensor grad_spline = at::empty({0}, options);
  at::Tensor grad_scaler = at::empty({0}, options);
  if (weight_grad) {
    grad_base = new_output(base_weight.sizes(), options);
    grad_spline = new_output(spline_weight.sizes(), options);
    if (spline_scaler.has_value()) grad_scaler = new_output(spline_scaler->sizes(), options);
  }
  if (p.batch == 0 || !(input_grad || weight_grad)) {
    if (weight_grad) {
      grad_base.zero_();
      grad_spline.zero_();
      if (spline_scaler.has_value()) grad_scaler.zero_();
    }
    return {grad_x, grad_base, grad_spline, grad_scaler};
  }
  const auto x = x_in.contiguous();
  const auto knots = grid.contiguous();
  const KanConv1dParams c = as_conv(p);
  const PackedLayout layout = cpu_packed_layout(c);
  const auto scaled = scaled_spline(spline_weight, spline_scaler);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kan_linear_bwd_cpu", [&] {
    const auto gy = grad_out_rows<scalar_t>(grad_out, p, layout);
    LinearInputs<scalar_t> inputs;
    inputs.p = p;
    inputs.layout = layout;
    inputs.x = x.const_data_ptr<scalar_t>();
    inputs.knots = knots.const_data_ptr<scalar_t>();
    if (input_grad) {
      // d/dx sum_j w_j B_j = sum_j K (w_j - w_{j-1}) / (t_{j+K} - t_j) B_{j, K-1}: the packed
      // differences times each feature's K / width (0 for a zero width).
      const int64_t S = p.grid_size + p.spline_order;
      const auto widths = knots.narrow(1, p.spline_order, S + 1) - knots.narrow(1, 0, S + 1);
      const auto scale = at::where(widths > 0, static_cast<double>(p.spline_order) / widths,
                                   at::zeros_like(widths));
      LinearInputGradArgs<scalar_t> a;
      static_cast<LinearInputs<scalar_t>&>(a) = inputs;
      a.layout = cpu_input_grad_layout(c);
      a.row_tile = row_tile_for(p);
      const auto packed = pack_weights_cpu(base_weight.unsqueeze(2), scaled, c, a.layout,
                                           x.scalar_type(), /*input_grad=*/true, scale);
      a.grad_out_rows = gy.const_data_ptr<scalar_t>();
      a.packed_weight = packed.const_data_ptr<scalar_t>();
      a.grad_x = grad_x.mutable_data_ptr<scalar_t>();
      const int64_t bytes = linear_input_grad_scratch(a.row_tile, sizeof(scalar_t)).bytes;
      at::parallel_for(0, (p.batch + a.row_tile - 1) / a.row_tile, 1,
                       [&](int64_t begin, int64_t end) {
                         auto scratch = scratch_buffer(bytes);
                         run_linear_input_grad(a, begin, end, scratch.mutable_data_ptr());
                       });
    }
    if (weight_grad) {
      // Each item owns whole features' gradient blocks (no reduction across threads).
      auto packed_grad =
          workspace_tensor(WorkspaceSlot::weight_grad_sums,
                           {p.in_features, 1, layout.num_rows, layout.out_stride},
                           x.scalar_type());
      LinearWeightGradArgs<scalar_t> a;
      static_cast<LinearInputs<scalar_t>&>(a) = inputs;
      a.row_tile = weight_grad_row_tile(layout, sizeof(scalar_t));
      a.grad_out_rows = gy.const_data_ptr<scalar_t>();
      a.packed_grad = packed_grad.mutable_data_ptr<scalar_t>();
      const int64_t bytes = linear_weight_grad_scratch(p, a.row_tile, sizeof(scalar_t)).bytes;
      at::parallel_for(0, p.in_features, 1, [&](int64_t begin, int64_t end) {
        auto scratch = scratch_buffer(bytes);
        run_linear_weight_grad(a, begin, end, scratch.mutable_data_ptr());
      });
      // The gradient of the scaled spline weight, then through the scaler's product.
      auto grad_scaled = spline_scaler.has_value() ? at::empty_like(scaled) : grad_spline;
      auto grad_base_tap = grad_base.view({p.out_features, p.in_features, 1});
      auto grad_scaled_tap = grad_scaled.view({p.out_features, p.in_features, 1, -1});
      unpack_weight_grad_cpu<scalar_t>(packed_grad, 1, c, layout, grad_base_tap,
                                       grad_scaled_tap);
      if (spline_scaler.has_value()) {
        const auto g = grad_scaled.squeeze(2);
        at::mul_out(grad_spline, g, spline_scaler->unsqueeze(-1));
        at::sum_out(grad_scaler, g * spline_weight, {-1});
      }
    }
  });
  return {grad_x, grad_base, grad_spline, grad_scaler};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(mkcc, CPU, m) {
  m.impl("kan_linear_fwd", &cpu::kan_linear_fwd_cpu);
  m.impl("kan_linear_bwd", &cpu::kan_linear_bwd_cpu);
}

}  // namespace mkcc
