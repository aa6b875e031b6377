// Which build of the fused CPU kernels runs: the widest the processor supports, unless set.
#pragma once

#include <string>
#include <vector>

namespace mkcc {
namespace cpu {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

// The instruction sets this build has kernels for and this processor can run.
std::vector<std::string> supported_isas();
// The one in use.
std::string active_isa();
// Selects one of supported_isas() (used by the tests to cover every build); raises otherwise.
void set_active_isa(const std::string& name);

Isa current_isa();

}  // namespace cpu
}  // namespace mkcc
