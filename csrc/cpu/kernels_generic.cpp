// Fused CPU kernels built for the baseline instruction set of the target.
#define MKCC_CPU_ISA generic
#include "kernels_impl.h"
