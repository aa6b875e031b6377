#include "workspace.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../host.h"

namespace mkcc {
namespace cpu {
namespace {

constexpr int64_t kDefaultLimit = int64_t{256} << 20;
constexpr size_t kAlignment = 64;
constexpr size_t kNumSlots = static_cast<size_t>(WorkspaceSlot::count);

std::atomic<int64_t> limit_bytes{kDefaultLimit};

// Raw memory rather than tensors: a thread's buffers are freed at thread exit, when the
// allocator and profiler state behind at::Tensor may already be gone.
struct Buffer {
  void* data = nullptr;
  int64_t bytes = 0;
};

struct ThreadBuffers {
  std::array<Buffer, kNumSlots> slots;
  ~ThreadBuffers() { release(); }
  void release() {
    for (auto& slot : slots) {
      std::free(slot.data);
      slot = Buffer{};
    }
  }
  int64_t total() const {
    int64_t sum = 0;
    for (const auto& slot : slots) sum += slot.bytes;
    return sum;
  }
};

ThreadBuffers& thread_buffers() {
  static thread_local ThreadBuffers buffers;
  return buffers;
}

}  // namespace

at::Tensor workspace_tensor(WorkspaceSlot slot, at::IntArrayRef sizes, at::ScalarType dtype) {
  const auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  const int64_t bytes =
      c10::multiply_integers(sizes) * static_cast<int64_t>(c10::elementSize(dtype));
  ThreadBuffers& buffers = thread_buffers();
  Buffer& buffer = buffers.slots.at(static_cast<size_t>(slot));
  at::Tensor out;
  if (buffer.bytes >= bytes) {
    out = at::from_blob(buffer.data, sizes, options);
  } else {
    const int64_t rounded = (bytes + 4095) / 4096 * 4096;
    if (buffers.total() - buffer.bytes + rounded > limit_bytes.load(std::memory_order_relaxed)) {
      out = at::empty(sizes, options);  // over the limit: not kept
    } else {
      std::free(buffer.data);
      buffer = Buffer{};
      void* data = std::aligned_alloc(kAlignment, static_cast<size_t>(rounded));
      TORCH_CHECK(data != nullptr, "mkcc cpu workspace: could not allocate ", rounded, " bytes");
      buffer = Buffer{data, rounded};
      out = at::from_blob(buffer.data, sizes, options);
    }
  }
  // Stale or uninitialized values become NaN while outputs are poisoned, so that the tests see
  // a value a kernel reads before writing it (all-ones bits are a NaN in float32 and float64).
  if (poison_outputs() && bytes > 0) std::memset(out.data_ptr(), 0xFF, static_cast<size_t>(bytes));
  return out;
}

int64_t workspace_bytes() { return thread_buffers().total(); }

void release_workspace() { thread_buffers().release(); }

void set_workspace_limit(int64_t bytes) {
  if (bytes < 0) {
    throw std::invalid_argument("nbytes: expected a byte count >= 0, got " +
                                std::to_string(bytes));
  }
  limit_bytes.store(bytes, std::memory_order_relaxed);
}

int64_t workspace_limit() { return limit_bytes.load(std::memory_order_relaxed); }

}  // namespace cpu
}  // namespace mkcc
