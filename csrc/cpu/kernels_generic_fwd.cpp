// Fused CPU kernels for the baseline instruction set of the target:
// the forward pass and the transposes.
#define MKCC_CPU_ISA generic
#define MKCC_CPU_PASS_FORWARD
#include "kernels_impl.h"
