// Loop nests of the fused CPU kernels. Included once per instruction set and pass by
// kernels_<isa>_<pass>.cpp, each of which defines MKCC_CPU_ISA (the namespace), the target, its
// vector registers (MKCC_CPU_VECTOR_BYTES wide, MKCC_CPU_VECTOR_REGISTERS of them; without them
// the target's baseline) and one of
// MKCC_CPU_PASS_FORWARD (with the transposes), MKCC_CPU_PASS_INPUT_GRAD and
// MKCC_CPU_PASS_WEIGHT_GRAD before including this file: a pass's entry points are compiled in
// its own translation unit, so that a build compiles the nine in parallel. The code is in parts:
// kernels_basis.h (scratch and basis features), kernels_vector.h (vectors, register tiles,
// transposes, knot buckets, the spline-order dispatch) and one file per pass
// (kernels_forward.h, kernels_input_grad.h, kernels_weight_grad.h), and KANLinear's and
// KANConv2d's use of the same micro-kernels in each pass's unit (kernels_linear.h,
// kernels_conv2d.h).
// Only C headers are used here, and every helper has internal linkage, so no inline function
// compiled for a wider instruction set can be picked by the linker for a narrower one.
//
// The layer-independent core and its first client: the features of a run of input positions
// (kernels_basis.h: silu, the K + 1 non-zero basis values and the packed row offset of each
// position, in per-thread scratch) are contracted with an input channel's packed weights over
// the taps a layer describes (RowTaps, mkcc/params.h) by the micro-kernels at the top of each
// pass file (forward_positions / forward_bucket, input_grad_positions, weight_grad_bucket);
// each pass's *_impl is KANConv1d's use of them (work items, windows, knot buckets). The
// contraction loops run over the packed output-channel axis, contiguous and padded to a
// multiple of the vector width, which the compiler vectorizes.
#ifndef MKCC_CPU_ISA
#error "define MKCC_CPU_ISA before including kernels_impl.h"
#endif
#if !defined(MKCC_CPU_VECTOR_BYTES)  // the target's baseline (the generic build):
#define MKCC_CPU_VECTOR_BYTES 16      // 16-byte registers: 16 xmm (x86-64) or 32 NEON (AArch64)
#if defined(__aarch64__)
#define MKCC_CPU_VECTOR_REGISTERS 32
#else
#define MKCC_CPU_VECTOR_REGISTERS 16
#endif
#endif
#if !defined(MKCC_CPU_VECTOR_REGISTERS)
#error "define MKCC_CPU_VECTOR_REGISTERS with MKCC_CPU_VECTOR_BYTES before including kernels_impl.h"
#endif
#if defined(MKCC_CPU_PASS_FORWARD) + defined(MKCC_CPU_PASS_INPUT_GRAD) + \
        defined(MKCC_CPU_PASS_WEIGHT_GRAD) != 1
#error "define exactly one MKCC_CPU_PASS_* before including kernels_impl.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

// The kernels assume that floating-point operations do not trap (as every torch kernel does):
// without that, GCC 12 will not if-convert a float-to-int conversion next to a select, and the
// features loops (exp_branch_free, the knot-interval counts) stay scalar (bench/NOTES.md,
// "Vector features again"). Results are unchanged: no operation is reordered or contracted.
#pragma GCC optimize("no-trapping-math")

namespace mkcc {
namespace cpu {
namespace MKCC_CPU_ISA {
namespace {

// The parts every pass uses, then the pass's own.
#include "kernels_basis.h"
#include "kernels_vector.h"
#if defined(MKCC_CPU_PASS_FORWARD)
#include "kernels_forward.h"
#elif defined(MKCC_CPU_PASS_INPUT_GRAD)
#include "kernels_input_grad.h"
#else
#include "kernels_weight_grad.h"
#endif
#include "kernels_linear.h"
#include "kernels_conv2d.h"

}  // namespace

inline int spline_order_of(const KanConv1dParams& p) { return p.spline_order; }
inline int spline_order_of(const KanLinearParams& p) { return p.spline_order; }
inline int spline_order_of(const KanConv2dParams& p) { return p.row.spline_order; }

// A pass's entry points (kernels.h) for float and double: impl<T, K> with the spline order as
// a compile-time constant.
#define MKCC_CPU_PASS_ENTRY(T, function, Args, impl)                                  \
  void function(const Args<T>& a, int64_t begin, int64_t end, void* scratch) {        \
    with_spline_order(spline_order_of(a.p),                                           \
                      [&](auto k) { impl<T, decltype(k)::value>(a, begin, end, scratch); }); \
  }
#define MKCC_CPU_PASS_ENTRIES(function, Args, impl) \
  MKCC_CPU_PASS_ENTRY(float, function, Args, impl)  \
  MKCC_CPU_PASS_ENTRY(double, function, Args, impl)

#if defined(MKCC_CPU_PASS_FORWARD)
MKCC_CPU_PASS_ENTRIES(forward, ForwardArgs, forward_impl)
MKCC_CPU_PASS_ENTRIES(linear_forward, LinearForwardArgs, linear_forward_impl)
MKCC_CPU_PASS_ENTRIES(conv2d_forward, Conv2dForwardArgs, conv2d_forward_impl)
void transpose(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst,
               int64_t dst_stride) {
  transpose_rows(src, src_stride, rows, cols, dst, dst_stride);
}
void transpose(const double* src, int64_t src_stride, int64_t rows, int64_t cols, double* dst,
               int64_t dst_stride) {
  transpose_rows(src, src_stride, rows, cols, dst, dst_stride);
}
#elif defined(MKCC_CPU_PASS_INPUT_GRAD)
MKCC_CPU_PASS_ENTRIES(input_grad, InputGradArgs, input_grad_impl)
MKCC_CPU_PASS_ENTRIES(linear_input_grad, LinearInputGradArgs, linear_input_grad_impl)
MKCC_CPU_PASS_ENTRIES(conv2d_input_grad, Conv2dBackwardArgs, conv2d_input_grad_impl)
#else
MKCC_CPU_PASS_ENTRIES(weight_grad, WeightGradArgs, weight_grad_impl)
MKCC_CPU_PASS_ENTRIES(linear_weight_grad, LinearWeightGradArgs, linear_weight_grad_impl)
MKCC_CPU_PASS_ENTRIES(conv2d_weight_grad, Conv2dBackwardArgs, conv2d_weight_grad_impl)
#endif

#undef MKCC_CPU_PASS_ENTRIES
#undef MKCC_CPU_PASS_ENTRY

}  // namespace MKCC_CPU_ISA
}  // namespace cpu
}  // namespace mkcc
