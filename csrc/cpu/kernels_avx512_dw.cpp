// Fused CPU kernels for x86-64 with AVX-512 (F, VL, BW, DQ), used when the processor has them:
// the weight-gradient pass.
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi,bmi2,f16c,popcnt")
#define MKCC_CPU_ISA avx512
#define MKCC_CPU_VECTOR_BYTES 64
#define MKCC_CPU_VECTOR_REGISTERS 32
#define MKCC_CPU_PASS_WEIGHT_GRAD
#include "kernels_impl.h"
#endif
