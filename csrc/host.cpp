#include "host.h"

#include <atomic>
#include <cmath>
#include <limits>

#include <c10/util/Exception.h>

namespace mkcc {

KanConv1dParams make_params(const at::Tensor& x, const at::Tensor& base_weight,
                            const at::Tensor& spline_weight, int64_t stride, int64_t pad_left,
                            int64_t pad_right, int64_t dilation, int64_t groups,
                            int64_t spline_order, double grid_lo, double grid_hi) {
  TORCH_CHECK_VALUE(x.dim() == 3, "x: expected a 3-D tensor [batch, in_channels, length], got ",
                    x.dim(), "-D with shape ", x.sizes());
  TORCH_CHECK_VALUE(base_weight.dim() == 3,
                    "base_weight: expected a 3-D tensor [out_channels, in_channels / groups, "
                    "kernel_size], got shape ", base_weight.sizes());
  TORCH_CHECK_VALUE(spline_weight.dim() == 4,
                    "spline_weight: expected a 4-D tensor [out_channels, in_channels / groups, "
                    "kernel_size, grid_size + spline_order], got shape ", spline_weight.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(x.scalar_type()),
                   "x: expected a floating-point tensor, got ", x.scalar_type());
  TORCH_CHECK_TYPE(base_weight.scalar_type() == x.scalar_type() &&
                       spline_weight.scalar_type() == x.scalar_type(),
                   "base_weight, spline_weight: expected dtype ", x.scalar_type(),
                   " (that of x), got ", base_weight.scalar_type(), " and ",
                   spline_weight.scalar_type());
  TORCH_CHECK_VALUE(base_weight.device() == x.device() && spline_weight.device() == x.device(),
                    "base_weight, spline_weight: expected device ", x.device(),
                    " (that of x), got ", base_weight.device(), " and ", spline_weight.device());
  TORCH_CHECK_VALUE(stride >= 1, "stride: expected an integer >= 1, got ", stride);
  TORCH_CHECK_VALUE(dilation >= 1, "dilation: expected an integer >= 1, got ", dilation);
  TORCH_CHECK_VALUE(pad_left >= 0 && pad_right >= 0,
                    "padding: expected non-negative amounts, got (", pad_left, ", ", pad_right,
                    ")");
  TORCH_CHECK_VALUE(groups >= 1, "groups: expected an integer >= 1, got ", groups);
  TORCH_CHECK_VALUE(spline_order >= 1 && spline_order <= kMaxSplineOrder,
                    "spline_order: expected 1, 2, 3 or 4, got ", spline_order);
  TORCH_CHECK_VALUE(std::isfinite(grid_lo) && std::isfinite(grid_hi) && grid_lo < grid_hi,
                    "grid_range: expected finite (lo, hi) with lo < hi, got (", grid_lo, ", ",
                    grid_hi, ")");

  KanConv1dParams p{};
  p.batch = x.size(0);
  p.in_channels = x.size(1);
  p.length = x.size(2);
  p.out_channels = base_weight.size(0);
  p.kernel_size = base_weight.size(2);
  p.groups = groups;
  TORCH_CHECK_VALUE(p.in_channels >= 1, "x: expected in_channels >= 1, got shape ", x.sizes());
  TORCH_CHECK_VALUE(p.in_channels % groups == 0, "groups: in_channels (", p.in_channels,
                    ") must be divisible by groups (", groups, ")");
  TORCH_CHECK_VALUE(p.out_channels % groups == 0, "groups: out_channels (", p.out_channels,
                    ") must be divisible by groups (", groups, ")");
  p.in_per_group = p.in_channels / groups;
  p.out_per_group = p.out_channels / groups;
  TORCH_CHECK_VALUE(p.out_channels >= 1 && p.kernel_size >= 1,
                    "base_weight: expected out_channels >= 1 and kernel_size >= 1, got shape ",
                    base_weight.sizes());
  TORCH_CHECK_VALUE(base_weight.size(1) == p.in_per_group,
                    "base_weight: expected shape [out_channels, ", p.in_per_group,
                    ", kernel_size] for in_channels ", p.in_channels, " and groups ", groups,
                    ", got ", base_weight.sizes());
  TORCH_CHECK_VALUE(spline_weight.size(0) == p.out_channels &&
                        spline_weight.size(1) == p.in_per_group &&
                        spline_weight.size(2) == p.kernel_size,
                    "spline_weight: expected shape [", p.out_channels, ", ", p.in_per_group, ", ",
                    p.kernel_size, ", grid_size + spline_order] to match base_weight, got ",
                    spline_weight.sizes());
  p.spline_order = static_cast<int>(spline_order);
  p.grid_size = spline_weight.size(3) - spline_order;
  TORCH_CHECK_VALUE(p.grid_size >= 1, "spline_weight: last dimension must be grid_size + "
                    "spline_order with grid_size >= 1, got ", spline_weight.size(3),
                    " for spline_order ", spline_order);
  p.num_intervals = static_cast<int>(p.grid_size + 2 * spline_order);
  p.stride = stride;
  p.dilation = dilation;
  p.pad_left = pad_left;
  const int64_t span = dilation * (p.kernel_size - 1) + 1;
  const int64_t padded = p.length + pad_left + pad_right;
  TORCH_CHECK_VALUE(padded >= span, "kernel_size: the dilated kernel spans ", span,
                    " positions, longer than the padded input (", padded, ")");
  p.out_length = (padded - span) / stride + 1;
  p.inv_h = static_cast<double>(p.grid_size) / (grid_hi - grid_lo);
  return p;
}

void check_grad_out(const at::Tensor& grad_out, const at::Tensor& x, const KanConv1dParams& p) {
  TORCH_CHECK_VALUE(grad_out.dim() == 3 && grad_out.size(0) == p.batch &&
                        grad_out.size(1) == p.out_channels && grad_out.size(2) == p.out_length,
                    "grad_out: expected shape [", p.batch, ", ", p.out_channels, ", ",
                    p.out_length, "], got ", grad_out.sizes());
  TORCH_CHECK_TYPE(grad_out.scalar_type() == x.scalar_type(), "grad_out: expected dtype ",
                   x.scalar_type(), ", got ", grad_out.scalar_type());
  TORCH_CHECK_VALUE(grad_out.device() == x.device(), "grad_out: expected device ", x.device(),
                    ", got ", grad_out.device());
}

namespace {
std::atomic<bool>& poison_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}
std::atomic<bool>& tensor_core_flag() {
  static std::atomic<bool> flag{true};
  return flag;
}
}  // namespace

void set_poison_outputs(bool enabled) { poison_flag().store(enabled); }
bool poison_outputs() { return poison_flag().load(); }
void set_cuda_tensor_cores(bool enabled) { tensor_core_flag().store(enabled); }
bool cuda_tensor_cores() { return tensor_core_flag().load(); }

at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  auto out = at::empty(sizes, options);
  if (poison_outputs()) out.fill_(std::numeric_limits<double>::quiet_NaN());
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> new_grad_outputs(
    const at::Tensor& x, const at::Tensor& base_weight, const at::Tensor& spline_weight,
    const KanConv1dParams& p, bool input_grad, bool weight_grad) {
  const auto options = x.options();
  at::Tensor grad_x = input_grad ? new_output({p.batch, p.in_channels, p.length}, options)
                                 : at::empty({0}, options);
  at::Tensor grad_base =
      weight_grad ? new_output(base_weight.sizes(), options) : at::empty({0}, options);
  at::Tensor grad_spline =
      weight_grad ? new_output(spline_weight.sizes(), options) : at::empty({0}, options);
  if (weight_grad && p.batch == 0) {
    grad_base.zero_();
    grad_spline.zero_();
  }
  return {grad_x, grad_base, grad_spline};
}

at::Tensor make_knots(const KanConv1dParams& p, double grid_lo, double grid_hi,
                      const at::TensorOptions& options) {
  const double h = (grid_hi - grid_lo) / static_cast<double>(p.grid_size);
  const int64_t order = p.spline_order;
  return at::arange(-order, p.grid_size + order + 1, options) * h + grid_lo;
}

}  // namespace mkcc
