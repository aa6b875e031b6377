// Weight packing of the CPU ops (packing.h).
#include "packing.h"

namespace mkcc {
namespace cpu {

at::Tensor pack_weights_cpu(const at::Tensor& base_weight, const at::Tensor& spline_weight,
                            const KanConv1dParams& p, const PackedLayout& layout,
                            at::ScalarType dtype, bool input_grad,
                            const at::Tensor& difference_scale) {
  const auto base = base_weight.to(dtype).contiguous();      // [C_out, Cg, k]
  const auto spline = spline_weight.to(dtype).contiguous();  // [C_out, Cg, k, S]
  auto packed = workspace_tensor(
      input_grad ? WorkspaceSlot::input_grad_weights : WorkspaceSlot::forward_weights,
      {p.groups, p.in_per_group, p.kernel_size, layout.num_rows, layout.out_stride}, dtype);
  const int64_t S = p.grid_size + p.spline_order;
  const int64_t k = p.kernel_size;
  const int64_t rows = layout.num_rows;  // 1 + S, or 2 + S for the input gradient
  const int64_t lanes = kPackVectorBytes / static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t os = layout.out_stride;
  const int64_t cog = p.out_per_group;
  const int64_t cg = p.in_per_group;
  const auto scale = difference_scale.defined() ? difference_scale.to(dtype).contiguous()
                                                : difference_scale;
  AT_DISPATCH_FLOATING_TYPES(dtype, "pack_weights_cpu", [&] {
    const scalar_t* scales = scale.defined() ? scale.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* b = base.const_data_ptr<scalar_t>();
    const scalar_t* w = spline.const_data_ptr<scalar_t>();
    scalar_t* out = packed.mutable_data_ptr<scalar_t>();
    for_each_input_channel<scalar_t>(p, [&](int64_t item, int64_t first, scalar_t* local_base,
                                            scalar_t* local_spline) {
      copy_runs(b + first, cg * k, local_base, k, cog, k);
      copy_runs(w + first * S, cg * k * S, local_spline, k * S, cog, k * S);
      scalar_t* block = out + item * k * rows * os;
      // Column blocks: one of all out_stride columns, or the input gradient's blocks.
      for (int64_t c0 = 0; c0 < os;) {
        const int64_t width = input_grad ? input_grad_block_vectors(c0, os, lanes) * lanes : os;
        const int64_t c1 = std::min(cog, c0 + width);  // real columns [c0, c1)
        for (int64_t j = 0; j < k; ++j) {
          const scalar_t* tap_base = local_base + j;           // + o * k
          const scalar_t* tap_spline = local_spline + j * S;   // + o * k * S
          scalar_t* tap = block + c0 * k * rows + j * rows * width - c0;  // column o at o
          for (int64_t row = 0; row < rows; ++row) {
            scalar_t* dst = tap + row * width;
            const int64_t i = row - 1;  // spline value (or difference) i
            if (row == 0) {
              for (int64_t o = c0; o < c1; ++o) dst[o] = tap_base[o * k];
            } else if (!input_grad) {
              for (int64_t o = c0; o < c1; ++o) dst[o] = tap_spline[o * k * S + i];
            } else {  // value i minus value i - 1 (absent ones are zero)
              const scalar_t factor = scales ? scales[(item * k + j) * (S + 1) + i] : 1;
              for (int64_t o = c0; o < c1; ++o) {
                const scalar_t* v = tap_spline + o * k * S;
                dst[o] = factor * ((i < S ? v[i] : scalar_t(0)) - (i > 0 ? v[i - 1] : scalar_t(0)));
              }
            }
            for (int64_t o = std::max(c0, c1); o < c0 + width; ++o) dst[o] = scalar_t(0);
          }
        }
        c0 += width;
      }
    });
  });
  return packed;
}


}  // namespace cpu
}  // namespace mkcc
