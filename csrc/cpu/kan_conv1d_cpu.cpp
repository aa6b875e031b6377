// CPU passes of mkcc::kan_conv1d_fwd / mkcc::kan_conv1d_bwd (entry points in host.h): weight
// packing, work split over at::parallel_for, and the choice of instruction-set build.
#include <algorithm>
#include <cstring>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../host.h"
#include "isa.h"
#include "kernels.h"
#include "packing.h"
#include "workspace.h"

namespace mkcc {
namespace cpu {
namespace {

// Output positions per forward work item: a 128 x out_stride accumulator tile stays in L2, and
// each input channel's weights are fetched once per 128 positions (1.04-1.07x faster than 64,
// 256 no better: bench/NOTES.md); smaller tiles when that leaves too few items for the threads.
constexpr int64_t kMaxTimeTile = 128;
constexpr int64_t kMinTimeTile = 16;
// Output positions per forward work item when it blocks several batch elements (short outputs).
constexpr int64_t kMaxBatchPositions = 128;

template <typename Args>
void run_forward(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(forward, a, begin, end, scratch);
}

template <typename Args>
void run_input_grad(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(input_grad, a, begin, end, scratch);
}

template <typename Args>
void run_weight_grad(const Args& a, int64_t begin, int64_t end, void* scratch) {
  MKCC_CPU_CALL(weight_grad, a, begin, end, scratch);
}

// The CPU passes behind the ops' entry points (host.h).
struct CpuBackend {
  using Guard = NoGuard;

  static void check_inputs(const at::Tensor& x) {
    TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                     "x: backend 'cpu' supports float32 and float64, got ", x.scalar_type(),
                     " (use backend='reference' for other dtypes)");
  }

  static void forward(const at::Tensor& x, const at::Tensor& base_weight,
                      const at::Tensor& spline_weight, const KanConv1dParams& p, double grid_lo,
                      double grid_hi, at::Tensor& out) {
    const PackedLayout layout = cpu_packed_layout(p);
    const auto packed = pack_weights_cpu(base_weight, spline_weight, p, layout, x.scalar_type());
    const auto knots = make_knots(p, grid_lo, grid_hi, x.options());

    const int64_t threads = at::get_num_threads();
    int64_t time_tile = std::min(p.out_length, kMaxTimeTile);
    while (time_tile > kMinTimeTile &&
           p.batch * p.groups * ((p.out_length + time_tile - 1) / time_tile) < 4 * threads) {
      time_tile /= 2;
    }
    time_tile = time_block_for_window(p, time_tile);  // long strides: a bounded window
    const int64_t num_tiles = (p.out_length + time_tile - 1) / time_tile;
    // Short outputs: several batch elements per item, so that each input channel's weights are
    // read once for up to kMaxBatchPositions positions (while every thread still gets 2 items;
    // measured in bench/NOTES.md: 8 elements of 15 positions 1.08x faster than 4).
    int64_t batch_block = 1;
    if (num_tiles == 1) {
      batch_block = std::max<int64_t>(1, kMaxBatchPositions / time_tile);
      while (batch_block > 1 &&
             (p.groups * ((p.batch + batch_block - 1) / batch_block) < 2 * threads ||
              batch_block * forward_window(p, time_tile) > kMaxWindow)) {
        batch_block /= 2;
      }
    }
    const int64_t num_batch_blocks = (p.batch + batch_block - 1) / batch_block;

    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kan_conv1d_fwd_cpu", [&] {
      ForwardArgs<scalar_t> a{pass_inputs<scalar_t, scalar_t>(p, layout, x, knots),
                              packed.const_data_ptr<scalar_t>(),
                              out.mutable_data_ptr<scalar_t>(),
                              time_tile,
                              num_tiles,
                              batch_block,
                              num_batch_blocks};
      const int64_t bytes =
          forward_scratch(p, layout, time_tile, batch_block, sizeof(scalar_t)).bytes;
      at::parallel_for(0, num_batch_blocks * p.groups * num_tiles, 1,
                       [&](int64_t begin, int64_t end) {
                         auto scratch = scratch_buffer(bytes);
                         run_forward(a, begin, end, scratch.mutable_data_ptr());
                       });
    });
  }

  static void backward(const at::Tensor& grad_out, const at::Tensor& x,
                       const at::Tensor& base_weight, const at::Tensor& spline_weight,
                       const KanConv1dParams& p, double grid_lo, double grid_hi,
                       bool input_grad, bool weight_grad, at::Tensor& grad_x,
                       at::Tensor& grad_base, at::Tensor& grad_spline) {
    const PackedLayout layout = cpu_packed_layout(p);
    const auto knots = make_knots(p, grid_lo, grid_hi, x.options());
    const auto grad_out_t = AT_DISPATCH_FLOATING_TYPES(
        x.scalar_type(), "transpose_grad_out_cpu",
        [&] { return transpose_grad_out_cpu<scalar_t>(grad_out, p, layout); });
    const int64_t threads = at::get_num_threads();

    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "kan_conv1d_bwd_cpu", [&] {
      if (input_grad) {
        const PackedLayout dx_layout = cpu_input_grad_layout(p);
        const auto packed = pack_weights_cpu(base_weight, spline_weight, p, dx_layout,
                                             x.scalar_type(), /*input_grad=*/true);
        InputGradArgs<scalar_t> a{
            backward_inputs<scalar_t, scalar_t>(p, dx_layout, x, knots, grad_out_t),
            packed.const_data_ptr<scalar_t>(), grad_x.mutable_data_ptr<scalar_t>()};
        const int64_t bytes = input_grad_scratch(p, sizeof(scalar_t)).bytes;
        at::parallel_for(0, p.batch * p.in_channels, 1, [&](int64_t begin, int64_t end) {
          auto scratch = scratch_buffer(bytes);
          run_input_grad(a, begin, end, scratch.mutable_data_ptr());
        });
      }
      if (weight_grad) {
        // Each item owns one input channel of one batch chunk, so no two threads write the
        // same gradient entry; chunks (fixed by the thread count) are summed in order
        // afterwards.
        const int64_t chunks =
            p.in_channels >= 2 * threads
                ? 1
                : std::min(p.batch, (2 * threads + p.in_channels - 1) / p.in_channels);
        // Not zero-filled here: each work item zeroes the block it owns (while it is
        // cache-hot).
        auto packed_grad = workspace_tensor(WorkspaceSlot::weight_grad_sums,
                                            {chunks, p.groups, p.in_per_group, p.kernel_size,
                                             layout.num_rows, layout.out_stride},
                                            x.scalar_type());
        WeightGradArgs<scalar_t> a{
            backward_inputs<scalar_t, scalar_t>(p, layout, x, knots, grad_out_t),
            packed_grad.mutable_data_ptr<scalar_t>(), chunks};
        const int64_t bytes =
            weight_grad_scratch(p, layout.out_stride * static_cast<int64_t>(sizeof(scalar_t)),
                                sizeof(scalar_t))
                .bytes;
        at::parallel_for(0, chunks * p.in_channels, 1, [&](int64_t begin, int64_t end) {
          auto scratch = scratch_buffer(bytes);
          run_weight_grad(a, begin, end, scratch.mutable_data_ptr());
        });
        unpack_weight_grad_cpu<scalar_t>(packed_grad, chunks, p, layout, grad_base,
                                         grad_spline);
      }
    });
  }
};

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(mkcc, CPU, m) {
  m.impl("kan_conv1d_fwd", &kan_conv1d_fwd<cpu::CpuBackend>);
  m.impl("kan_conv1d_bwd", &kan_conv1d_bwd<cpu::CpuBackend>);
}

}  // namespace mkcc
