// Host-side helpers shared by the CPU and CUDA entry points: argument checks that raise
// ValueError / TypeError naming the argument, the params struct, and the knot vector.
#pragma once

#include <tuple>

#include <ATen/ATen.h>

#include "mkcc/basis.h"
#include "mkcc/params.h"

namespace mkcc {

// Checks every argument of kan_conv1d_fwd / kan_conv1d_bwd and describes the call.
KanConv1dParams make_params(const at::Tensor& x, const at::Tensor& base_weight,
                            const at::Tensor& spline_weight, int64_t stride, int64_t pad_left,
                            int64_t pad_right, int64_t dilation, int64_t groups,
                            int64_t spline_order, double grid_lo, double grid_hi);

// Checks grad_out against the output shape of the call.
void check_grad_out(const at::Tensor& grad_out, const at::Tensor& x, const KanConv1dParams& p);

// The G + 2K + 1 knots (m - K) * h + lo, computed with the same tensor ops as the Python
// reference so that both agree bit for bit and inputs on a knot fall in the same interval.
at::Tensor make_knots(const KanConv1dParams& p, double grid_lo, double grid_hi,
                      const at::TensorOptions& options);

// The outputs of kan_conv1d_bwd: new tensors (see new_output) for the gradients asked for, empty
// [0] tensors for the others. For an empty batch the weight gradients are already zero.
std::tuple<at::Tensor, at::Tensor, at::Tensor> new_grad_outputs(
    const at::Tensor& x, const at::Tensor& base_weight, const at::Tensor& spline_weight,
    const KanConv1dParams& p, bool input_grad, bool weight_grad);

// The PassInputs / BackwardInputs (mkcc/params.h) of a call: x contiguous, knots and grad_out_t
// in W.
template <typename X, typename W>
PassInputs<X, W> pass_inputs(const KanConv1dParams& p, const PackedLayout& layout,
                             const at::Tensor& x, const at::Tensor& knots) {
  return {p, layout, x.const_data_ptr<X>(), knots.const_data_ptr<W>()};
}
template <typename X, typename W>
BackwardInputs<X, W> backward_inputs(const KanConv1dParams& p, const PackedLayout& layout,
                                     const at::Tensor& x, const at::Tensor& knots,
                                     const at::Tensor& grad_out_t) {
  return {pass_inputs<X, W>(p, layout, x, knots), grad_out_t.const_data_ptr<W>()};
}

// A new output tensor; filled with NaN when poisoning is on (the tests turn it on so that an
// element a kernel fails to write shows up as NaN).
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);
void set_poison_outputs(bool enabled);
bool poison_outputs();

// The entry points of the two ops (their schemas in registration.cpp), written once for every
// backend: the checks, the device guard, the outputs and the early returns are here, the passes
// in Backend, which provides
//   static void check_inputs(const at::Tensor& x);   // what the backend adds (dtype, device)
//   using Guard = ...;                               // constructed from x's device
//   static void forward(const at::Tensor& x, const at::Tensor& base_weight,
//                       const at::Tensor& spline_weight, const KanConv1dParams& p,
//                       double grid_lo, double grid_hi, at::Tensor& out);
//   static void backward(const at::Tensor& grad_out, const at::Tensor& x,
//                        const at::Tensor& base_weight, const at::Tensor& spline_weight,
//                        const KanConv1dParams& p, double grid_lo, double grid_hi,
//                        bool input_grad, bool weight_grad, at::Tensor& grad_x,
//                        at::Tensor& grad_base, at::Tensor& grad_spline);
// x reaches the backend contiguous, with a non-empty output (forward) or batch (backward); the
// outputs are new_output tensors that every pass must write in full.
struct NoGuard {
  explicit NoGuard(const at::Device&) {}
};

template <typename Backend>
at::Tensor kan_conv1d_fwd(const at::Tensor& x, const at::Tensor& base_weight,
                          const at::Tensor& spline_weight, int64_t stride, int64_t pad_left,
                          int64_t pad_right, int64_t dilation, int64_t groups,
                          int64_t spline_order, double grid_lo, double grid_hi) {
  const KanConv1dParams p = make_params(x, base_weight, spline_weight, stride, pad_left,
                                        pad_right, dilation, groups, spline_order, grid_lo,
                                        grid_hi);
  Backend::check_inputs(x);
  const typename Backend::Guard guard(x.device());
  auto out = new_output({p.batch, p.out_channels, p.out_length}, x.options());
  if (out.numel() > 0) {
    Backend::forward(x.contiguous(), base_weight, spline_weight, p, grid_lo, grid_hi, out);
  }
  return out;
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> kan_conv1d_bwd(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& base_weight,
    const at::Tensor& spline_weight, int64_t stride, int64_t pad_left, int64_t pad_right,
    int64_t dilation, int64_t groups, int64_t spline_order, double grid_lo, double grid_hi,
    bool input_grad, bool weight_grad) {
  const KanConv1dParams p = make_params(x, base_weight, spline_weight, stride, pad_left,
                                        pad_right, dilation, groups, spline_order, grid_lo,
                                        grid_hi);
  Backend::check_inputs(x);
  check_grad_out(grad_out, x, p);
  const typename Backend::Guard guard(x.device());
  at::Tensor grad_x, grad_base, grad_spline;
  std::tie(grad_x, grad_base, grad_spline) =
      new_grad_outputs(x, base_weight, spline_weight, p, input_grad, weight_grad);
  if (p.batch > 0 && (input_grad || weight_grad)) {
    Backend::backward(grad_out, x.contiguous(), base_weight, spline_weight, p, grid_lo, grid_hi,
                      input_grad, weight_grad, grad_x, grad_base, grad_spline);
  }
  return {grad_x, grad_base, grad_spline};
}

// Whether the CUDA forward may use its tensor-core kernel for fp16/bf16 (default on; the tests
// turn it off to check the CUDA-core kernel on the same inputs).
void set_cuda_tensor_cores(bool enabled);
bool cuda_tensor_cores();

}  // namespace mkcc
