// Fused CPU kernels for the baseline instruction set of the target:
// the weight-gradient pass.
#define MKCC_CPU_ISA generic
#define MKCC_CPU_PASS_WEIGHT_GRAD
#include "kernels_impl.h"
