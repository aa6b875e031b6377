#include "isa.h"

#include <atomic>

#include <c10/util/Exception.h>

namespace mkcc {
namespace cpu {
namespace {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

bool processor_supports(Isa isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi2");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c");
    default:
      return true;
  }
#else
  return isa == Isa::generic;
#endif
}

Isa widest_supported() {
  for (Isa isa : {Isa::avx512, Isa::avx2}) {
    if (processor_supports(isa)) return isa;
  }
  return Isa::generic;
}

std::atomic<int>& active() {
  static std::atomic<int> value{static_cast<int>(widest_supported())};
  return value;
}

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512}) {
    if (processor_supports(isa)) names.emplace_back(isa_name(isa));
  }
  return names;
}

std::string active_isa() { return isa_name(current_isa()); }

void set_active_isa(const std::string& name) {
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512}) {
    if (name == isa_name(isa)) {
      TORCH_CHECK_VALUE(processor_supports(isa), "isa: this processor cannot run '", name, "'");
      active().store(static_cast<int>(isa));
      return;
    }
  }
  TORCH_CHECK_VALUE(false, "isa: expected one of 'generic', 'avx2', 'avx512', got '", name, "'");
}

Isa current_isa() { return static_cast<Isa>(active().load()); }

}  // namespace cpu
}  // namespace mkcc
