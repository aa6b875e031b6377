// Fused CPU kernels for x86-64 with AVX2 and FMA, used when the processor has them:
// the input-gradient pass.
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,bmi,bmi2,f16c,popcnt")
#define MKCC_CPU_ISA avx2
#define MKCC_CPU_VECTOR_BYTES 32
#define MKCC_CPU_VECTOR_REGISTERS 16
#define MKCC_CPU_PASS_INPUT_GRAD
#include "kernels_impl.h"
#endif
