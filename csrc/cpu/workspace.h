// Buffers the CPU ops use only inside one call (packed weights, transposed grad_out, per-chunk
// weight-gradient sums), kept per calling thread and reused by later calls. Fresh buffers of this
// size are new pages to the kernel (mmap'd, or heap that glibc had trimmed), faulted in and
// zeroed on first touch: ~30 MB per backward pass at (16, 256, 256, 512, 5), ~10 % of its time
// (bench/NOTES.md).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace mkcc {
namespace cpu {

// One buffer per use, so that a call can hold all of them at once.
enum class WorkspaceSlot : int {
  forward_weights = 0,
  input_grad_weights,
  grad_out_rows,
  weight_grad_sums,
  count
};

// A tensor of `sizes` and `dtype` on the calling thread's buffer for `slot`, valid until the
// thread next asks for that slot (within one op call: once per slot). Its contents are left from
// earlier calls (NaN while outputs are poisoned), so every element must be written before it is
// read. When keeping the buffer would take this thread's buffers past the limit, a new tensor
// that is not kept is returned instead.
at::Tensor workspace_tensor(WorkspaceSlot slot, at::IntArrayRef sizes, at::ScalarType dtype);

// Bytes the calling thread's buffers hold.
int64_t workspace_bytes();
// Frees the calling thread's buffers.
void release_workspace();
// The most bytes one thread's buffers may hold (0: none kept); process-wide.
void set_workspace_limit(int64_t bytes);
int64_t workspace_limit();

}  // namespace cpu
}  // namespace mkcc
