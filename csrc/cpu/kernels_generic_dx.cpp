// Fused CPU kernels for the baseline instruction set of the target:
// the input-gradient pass.
#define MKCC_CPU_ISA generic
#define MKCC_CPU_PASS_INPUT_GRAD
#include "kernels_impl.h"
