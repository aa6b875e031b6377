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

// Weights packed as [C_in][k][num_rows][out_stride] (see PackedLayout), in `dtype`.
at::Tensor pack_weights(const at::Tensor& base_weight, const at::Tensor& spline_weight,
                        const KanConv1dParams& p, const PackedLayout& layout,
                        at::ScalarType dtype);

// grad_out as [B][groups][T_out][out_stride] in `dtype`, output channels innermost, zero padded.
at::Tensor transpose_grad_out(const at::Tensor& grad_out, const KanConv1dParams& p,
                              const PackedLayout& layout, at::ScalarType dtype);

// Writes a packed weight gradient (any shape ending in [C_in][k][num_rows][out_stride] with
// C_in * k * num_rows * out_stride elements; row 0 the base weight, row first_spline_row + i
// spline function i) into grad_base [C_out, Cg, k] and grad_spline [C_out, Cg, k, G + K].
void unpack_weight_grad(const at::Tensor& packed_grad, const KanConv1dParams& p,
                        int64_t first_spline_row, at::Tensor& grad_base, at::Tensor& grad_spline);

// The outputs of kan_conv1d_bwd: new tensors (see new_output) for the gradients asked for, empty
// [0] tensors for the others. For an empty batch the weight gradients are already zero.
std::tuple<at::Tensor, at::Tensor, at::Tensor> new_grad_outputs(
    const at::Tensor& x, const at::Tensor& base_weight, const at::Tensor& spline_weight,
    const KanConv1dParams& p, bool input_grad, bool weight_grad);

// A new output tensor; filled with NaN when poisoning is on (the tests turn it on so that an
// element a kernel fails to write shows up as NaN).
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);
void set_poison_outputs(bool enabled);
bool poison_outputs();

// Whether the CUDA forward may use its tensor-core kernel for fp16/bf16 (default on; the tests
// turn it off to check the CUDA-core kernel on the same inputs).
void set_cuda_tensor_cores(bool enabled);
bool cuda_tensor_cores();

}  // namespace mkcc
