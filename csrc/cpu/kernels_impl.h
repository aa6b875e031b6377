// Loop nests of the fused CPU kernels. Included once per instruction set and pass by
// kernels_<isa>_<pass>.cpp, each of which defines MKCC_CPU_ISA (the namespace), the target, its
// vector registers (MKCC_CPU_VECTOR_BYTES wide, MKCC_CPU_VECTOR_REGISTERS of them; without them
// the target's baseline) and one of
// MKCC_CPU_PASS_FORWARD (with the transposes), MKCC_CPU_PASS_INPUT_GRAD and
// MKCC_CPU_PASS_WEIGHT_GRAD before including this file: a pass's entry points are compiled in
// its own translation unit, so that a build compiles the nine in parallel.
// Only C headers are used here, and every helper has internal linkage, so no inline function
// compiled for a wider instruction set can be picked by the linker for a narrower one.
//
// The contraction loops run over the packed output-channel axis, contiguous and padded to a
// multiple of the vector width, which the compiler vectorizes.
#ifndef MKCC_CPU_ISA
#error "define MKCC_CPU_ISA before including kernels_impl.h"
#endif
#if !defined(MKCC_CPU_VECTOR_BYTES)  // the target's baseline (the generic build):
#define MKCC_CPU_VECTOR_BYTES 16      // 16-byte registers: 16 xmm (x86-64) or 32 NEON (AArch64)
#if defined(__aarch64__)
#define MKCC_CPU_VECTOR_REGISTERS 32
#else
#define MKCC_CPU_VECTOR_REGISTERS 16
#endif
#endif
#if !defined(MKCC_CPU_VECTOR_REGISTERS)
#error "define MKCC_CPU_VECTOR_REGISTERS with MKCC_CPU_VECTOR_BYTES before including kernels_impl.h"
#endif
#if defined(MKCC_CPU_PASS_FORWARD) + defined(MKCC_CPU_PASS_INPUT_GRAD) + \
        defined(MKCC_CPU_PASS_WEIGHT_GRAD) != 1
#error "define exactly one MKCC_CPU_PASS_* before including kernels_impl.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

namespace mkcc {
namespace cpu {
namespace MKCC_CPU_ISA {
namespace {

inline float exp_of(float v) { return expf(v); }
inline double exp_of(double v) { return exp(v); }

template <typename T>
struct Scratch {
  T* accumulator;
  T* silu_values;
  T* inputs;        // [positions]: short windows or rows gathered for one features pass
  T* basis_values;  // [positions][K + 1]
  int64_t* row_offset;
  int64_t* index;  // int64 work space
};

template <typename T>
Scratch<T> carve(void* base, const ScratchLayout& s) {
  char* ptr = static_cast<char*>(base);
  Scratch<T> out;
  out.accumulator = reinterpret_cast<T*>(ptr);
  ptr += round_up_64(s.accumulator_elems * static_cast<int64_t>(sizeof(T)));
  out.silu_values = reinterpret_cast<T*>(ptr);
  ptr += round_up_64(s.positions * static_cast<int64_t>(sizeof(T)));
  out.inputs = reinterpret_cast<T*>(ptr);
  ptr += round_up_64(s.positions * static_cast<int64_t>(sizeof(T)));
  out.basis_values = reinterpret_cast<T*>(ptr);
  ptr += round_up_64(s.positions * (kMaxSplineOrder + 1) * static_cast<int64_t>(sizeof(T)));
  out.row_offset = reinterpret_cast<int64_t*>(ptr);
  ptr += round_up_64(s.positions * static_cast<int64_t>(sizeof(int64_t)));
  out.index = reinterpret_cast<int64_t*>(ptr);
  return out;
}

// exp for the vectorized float basis loop: branch-free, so that the loop compiles to vector
// code (libm's expf is a call). Cody-Waite reduction v = n ln 2 + r, |r| <= ln 2 / 2, and a
// degree-7 Taylor polynomial (truncation < 1e-8 relative; against double exp over every float
// in [-87, 88.72283]: at most 0.94 ulp). Overflow gives +inf and NaN stays NaN, as with expf;
// inputs below -87 give exp(-87) (silu only adds the result to 1, where that is 1 either way).
// Always inlined, as are position_values and clamp_to_rows: the features loop vectorizes only with
// them in its body (a call per position, GCC's choice once the kernels had more call sites, made
// the forward at (32, 10, 64, 450, 5) twice as slow).
__attribute__((always_inline)) inline float exp_branch_free(float v) {
  const bool overflow = v > 88.72283f;
  const bool is_nan = v != v;
  float c = v < -87.0f ? -87.0f : v;
  c = c > 88.72283f ? 88.72283f : c;
  c = is_nan ? 0.0f : c;
  // n = round(c / ln 2), an integer in [-126, 128]; the shift keeps the truncation a floor
  const int32_t whole = static_cast<int32_t>(c * 1.44269504088896341f + 128.5f) - 128;
  const float n = static_cast<float>(whole);
  const float r = (c - n * 0.693359375f) - n * -2.12194440e-4f;
  float poly = 1.0f / 5040.0f;
  poly = poly * r + 1.0f / 720.0f;
  poly = poly * r + 1.0f / 120.0f;
  poly = poly * r + 1.0f / 24.0f;
  poly = poly * r + 1.0f / 6.0f;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.0f;
  poly = poly * r + 1.0f;
  // 2^n as 2^min(n, 127) times 1 or 2: 2^128 has no float exponent encoding
  const int32_t low = whole < 127 ? whole : 127;
  const float scale = __builtin_bit_cast(float, (low + 127) << 23);
  float result = poly * scale * static_cast<float>(1 + whole - low);
  result = overflow ? __builtin_inff() : result;
  return is_nan ? v : result;
}

// The CPU kernels' packed rows hold only functions that exist (cpu_packed_layout: row 1 + i the
// basis function i; cpu_input_grad_layout: row 1 + j the weight difference j). On knot interval m
// the N non-zero values belong to rows first .. first + N - 1 (first = m - K for the K + 1 basis
// values, m - K + 1 for the K derivative terms), and within K intervals of either end of the grid
// some of those rows do not exist. The first row is clamped to [0, max_first] and the N values
// move with it; values of rows that do not exist drop out (their weights are zero), and the rows
// that no value reaches get zero (finite weights times zero). Returns the clamped first row.
// Branch-free, so that it stays inside vector loops.
template <typename T, int N>
__attribute__((always_inline)) inline int clamp_to_rows(int first, int max_first, T* values) {
  int clamped = first > 0 ? first : 0;
  clamped = clamped < max_first ? clamped : max_first;
  // The shift, in [-K, K], compared as T: with int comparisons GCC stops vectorizing the
  // callers' loop for K >= 2.
  const T shift = static_cast<T>(clamped - first);
  T moved[N];
#pragma GCC unroll 8
  for (int r = 0; r < N; ++r) moved[r] = T(0);
#pragma GCC unroll 8
  for (int r = 0; r < N; ++r) {
#pragma GCC unroll 8
    for (int from = 0; from < N; ++from) {
      moved[r] += (static_cast<T>(from - r) == shift) ? values[from] : T(0);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < N; ++r) values[r] = moved[r];
  return clamped;
}

// The values of one position on knot interval m at local coordinate w, moved to its clamped first
// row (returned): with kDerivatives false the K + 1 basis values (rows of cpu_packed_layout),
// with kDerivatives true the K order K - 1 values over h (rows of cpu_input_grad_layout, whose
// weight differences make them the derivative), values[K] zero.
template <typename T, int K, bool kDerivatives>
__attribute__((always_inline)) inline int position_values(T w, int m, int grid_size, T inv_h,
                                                          T* values) {
  if constexpr (kDerivatives) {
    bspline_values<K - 1>(w, values);
#pragma GCC unroll 8
    for (int r = 0; r < K; ++r) values[r] *= inv_h;
    values[K] = T(0);
    return clamp_to_rows<T, K>(m - K + 1, grid_size + 1, values);
  } else {
    bspline_values<K>(w, values);
    return clamp_to_rows<T, K + 1>(m - K, grid_size - 1, values);
  }
}

// The features of x[q] for q in [0, n) into scratch position q (every x[q] inside the row): with
// kDerivatives false silu(x) and the K + 1 basis values of its rows (forward, weight gradient),
// with kDerivatives true silu'(x) and the K derivative terms of position_values (input
// gradient), and the row offset. One position at a time with libm's exp (fp64, large grids).
template <typename T, int K, bool kDerivatives>
inline void features_scalar(const T* x, int64_t n, const T* knots, int num_intervals, T inv_h,
                            int64_t out_stride, const Scratch<T>& s) {
  for (int64_t q = 0; q < n; ++q) {
    T* out = s.basis_values + q * (K + 1);
    const T xv = x[q];
    const T e = exp_of(-xv);
    s.silu_values[q] = kDerivatives ? silu_derivative(xv, e) : silu(xv, e);
    const int m = knot_interval(xv, knots, num_intervals, inv_h);
    if (m < 0) {
      for (int r = 0; r <= K; ++r) out[r] = T(0);
      s.row_offset[q] = out_stride;  // rows 1..K+1: finite weights times zero
    } else {
      T values[K + 1];
      const T w = (xv - knots[m]) * inv_h;
      const int first =
          position_values<T, K, kDerivatives>(w, m, num_intervals - 2 * K, inv_h, values);
      for (int r = 0; r <= K; ++r) out[r] = values[r];
      s.row_offset[q] = (1 + static_cast<int64_t>(first)) * out_stride;
    }
  }
}

// float, grids of up to kTable - 1 intervals: the same features with no branches in the loop
// body, so that it runs as vector code. The interval is found by counting the inner knots at or
// below x (exactly the half-open test of knot_interval, with no table lookups by index); `table`
// holds the knots padded with +inf to kTable entries.
template <int K, bool kDerivatives, int kTable>
inline void features_vector(const float* x, int64_t n, const float* table, int num_intervals,
                            float inv_h, int64_t out_stride, const Scratch<float>& s) {
  const float lo = table[0];
  const float hi = table[num_intervals];
  const int grid_size = num_intervals - 2 * K;
  float knot[kTable];
  for (int i = 0; i < kTable; ++i) knot[i] = table[i];
#pragma GCC ivdep
  for (int64_t q = 0; q < n; ++q) {
    const float xv = x[q];
    const float e = exp_branch_free(-xv);
    if constexpr (kDerivatives) {
      const float sig = 1.0f / (1.0f + e);
      s.silu_values[q] = sig * (1.0f + xv * (1.0f - sig));
    } else {
      s.silu_values[q] = xv / (1.0f + e);
    }
    const bool inside = (xv >= lo) & (xv < hi);  // false for NaN
    int m = 0;
    float left = lo;
    for (int i = 1; i < kTable - 1; ++i) {  // knot[i] = +inf past the last knot
      const bool above = xv >= knot[i];
      m += static_cast<int>(above);
      left = above ? knot[i] : left;
    }
    float values[K + 1];
    const float w = (xv - left) * inv_h;
    const int first = position_values<float, K, kDerivatives>(w, m, grid_size, inv_h, values);
    for (int r = 0; r <= K; ++r) s.basis_values[q * (K + 1) + r] = inside ? values[r] : 0.0f;
    // outside the grid: rows 1..K+1, finite weights times zero
    s.row_offset[q] = (1 + static_cast<int64_t>(inside ? first : 0)) * out_stride;
  }
}

template <int K, bool kDerivatives>
inline void features(const double* x, int64_t n, const double* knots, int num_intervals,
                     double inv_h, int64_t out_stride, const Scratch<double>& s) {
  features_scalar<double, K, kDerivatives>(x, n, knots, num_intervals, inv_h, out_stride, s);
}

template <int K, bool kDerivatives>
inline void features(const float* x, int64_t n, const float* knots, int num_intervals,
                     float inv_h, int64_t out_stride, const Scratch<float>& s) {
  if (num_intervals > 15) {
    features_scalar<float, K, kDerivatives>(x, n, knots, num_intervals, inv_h, out_stride, s);
    return;
  }
  float table[16];
  for (int i = 0; i < 16; ++i) table[i] = i <= num_intervals ? knots[i] : __builtin_inff();
  features_vector<K, kDerivatives, 16>(x, n, table, num_intervals, inv_h, out_stride, s);
}

// The same scratch seen from the features of batch element `block` of a work item.
template <typename T, int K>
Scratch<T> batch_view(const Scratch<T>& s, int64_t block, int64_t window) {
  Scratch<T> view = s;
  view.silu_values += block * window;
  view.basis_values += block * window * (K + 1);
  view.row_offset += block * window;
  return view;
}

// The window positions [begin, end) of x[first .. first + count) that lie inside [0, length).
inline void inside_range(int64_t length, int64_t first, int64_t count, int64_t* begin,
                         int64_t* end) {
  int64_t b = first < 0 ? -first : 0;
  int64_t e = length - first < count ? length - first : count;
  if (b > count) b = count;
  if (e < b) e = b;
  *begin = b;
  *end = e;
}

// Scratch positions [0, count) outside [begin, end) are padding taps: row_offset -1 (callers skip
// them), or zero silu and basis values on rows 1 .. K + 1.
template <typename T, int K>
inline void mark_padding(int64_t begin, int64_t end, int64_t count, int64_t out_stride,
                         const Scratch<T>& s, bool zero_features_for_padding) {
  for (int64_t q = 0; q < count; ++q) {
    if (q == begin) q = end;
    if (q >= count) break;
    if (zero_features_for_padding) {
      s.silu_values[q] = T(0);
      for (int r = 0; r <= K; ++r) s.basis_values[q * (K + 1) + r] = T(0);
      s.row_offset[q] = out_stride;
    } else {
      s.row_offset[q] = -1;
    }
  }
}

// silu and the non-zero basis values of x[first .. first + count) of one channel, stored at
// scratch positions 0 .. count. Positions outside [0, length) (padding taps) contribute nothing:
// either row_offset -1 (callers skip them), or zero silu and basis values on rows 1 .. K + 1, so
// that a loop without the check adds zero times finite weights. Inputs outside the grid get zero
// basis values on those rows.
template <typename T, int K>
void evaluate_basis(const T* x_row, int64_t length, int64_t first, int64_t count,
                    const T* knots, int num_intervals, T inv_h, int64_t out_stride,
                    const Scratch<T>& s, bool zero_features_for_padding = false) {
  int64_t begin, end;
  inside_range(length, first, count, &begin, &end);
  mark_padding<T, K>(begin, end, count, out_stride, s, zero_features_for_padding);
  if (end == begin) return;
  // Scratch position q holds x_row[first + q].
  Scratch<T> inner = s;
  inner.silu_values += begin;
  inner.basis_values += begin * (K + 1);
  inner.row_offset += begin;
  features<K, false>(x_row + (first + begin), end - begin, knots, num_intervals, inv_h,
                     out_stride, inner);
}

// The same for the windows of nb batch elements laid end to end (element bl's window at scratch
// positions bl * window ..; its row at x_rows + bl * row_stride). Short windows are gathered
// first, so that one features pass (a vector loop) covers them all.
template <typename T, int K>
void evaluate_windows(const T* x_rows, int64_t row_stride, int64_t nb, int64_t length,
                      int64_t first, int64_t window, const T* knots, int num_intervals, T inv_h,
                      int64_t out_stride, const Scratch<T>& s,
                      bool zero_features_for_padding = false) {
  if (nb == 1 || window >= kShortRow) {
    for (int64_t bl = 0; bl < nb; ++bl) {
      evaluate_basis<T, K>(x_rows + bl * row_stride, length, first, window, knots, num_intervals,
                           inv_h, out_stride, batch_view<T, K>(s, bl, window),
                           zero_features_for_padding);
    }
    return;
  }
  int64_t begin, end;
  inside_range(length, first, window, &begin, &end);
  for (int64_t bl = 0; bl < nb; ++bl) {  // padding taps as 0 (marked below)
    T* gathered = s.inputs + bl * window;
    for (int64_t q = 0; q < begin; ++q) gathered[q] = T(0);
    if (end > begin) memcpy(gathered + begin, x_rows + bl * row_stride + first + begin,
                            sizeof(T) * (end - begin));
    for (int64_t q = end; q < window; ++q) gathered[q] = T(0);
  }
  features<K, false>(s.inputs, nb * window, knots, num_intervals, inv_h, out_stride, s);
  if (begin == 0 && end == window) return;
  for (int64_t bl = 0; bl < nb; ++bl) {
    mark_padding<T, K>(begin, end, window, out_stride, batch_view<T, K>(s, bl, window),
                       zero_features_for_padding);
  }
}

// One vector register of T (GCC vector extension). Its width is the build's own: a vector wider
// than the registers is not a machine type, and GCC keeps such values on the stack. (The AVX2
// build once ran on 64-byte vectors, memcpy loads and AVX-512's tiles: the MKCC layers 6-11x
// slower than now, bench/NOTES.md "AVX2 builds".)
constexpr int kVectorBytes = MKCC_CPU_VECTOR_BYTES;
typedef float VecF __attribute__((vector_size(kVectorBytes), aligned(4), may_alias));
typedef double VecD __attribute__((vector_size(kVectorBytes), aligned(8), may_alias));
// Unaligned loads and stores of one vector. Not memcpy: GCC expands a fixed-size memcpy with the
// moves of the command line's instruction set, not the target pragma's, so in these builds a
// vector memcpy became 16-byte pieces through the stack (an FMA with its operand in memory).
inline VecF load_vector(const float* p) { return *reinterpret_cast<const VecF*>(p); }
inline VecD load_vector(const double* p) { return *reinterpret_cast<const VecD*>(p); }
inline void store_vector(float* p, const VecF& v) { *reinterpret_cast<VecF*>(p) = v; }
inline void store_vector(double* p, const VecD& v) { *reinterpret_cast<VecD*>(p) = v; }
template <typename T>
struct Vector;
template <>
struct Vector<float> {
  using type = VecF;
};
template <>
struct Vector<double> {
  using type = VecD;
};

// Register tiles, sized against the build's register file: a tile larger than it spills, and an
// accumulator on the stack turns every FMA into a load, an FMA and a store. With 32 registers
// (AVX-512; AArch64) the tiles measured on AVX-512; with 16 (AVX2, x86-64 baseline) at most 3/4
// of them hold accumulators (or weights kept in registers), the rest the broadcast values and
// loads.
constexpr int kRegisterVectors = MKCC_CPU_VECTOR_REGISTERS;
// The input gradient's packed column blocks count 64-byte vectors (kPackVectorBytes), each
// kPackSplit of this build's vectors.
constexpr int kPackSplit = kPackVectorBytes / kVectorBytes;
constexpr bool kWideRegisters = kRegisterVectors >= 32;
constexpr int kTileVectors = kRegisterVectors * 3 / 4;
constexpr int at_least_one(int n) { return n > 0 ? n : 1; }

// Forward (forward_positions): NP output positions of NV vectors of accumulators, for column
// blocks of NV = 8, 4, 2, 1 vectors up to the widest that fits.
constexpr int kForwardWidest = kWideRegisters || kTileVectors >= 8 ? 8 : 4;
constexpr int forward_tile_positions(int nv) {
  return kWideRegisters ? (nv >= 8 ? 2 : nv == 4 ? 4 : nv == 2 ? 6 : 8)
                        : at_least_one(kTileVectors / nv);
}
// Input gradient (input_grad_positions): NP positions of two accumulators each, next to the
// coefficient, weight and grad_out vectors.
constexpr int input_grad_tile_positions(int nv) {
  return kWideRegisters ? (nv >= 8 ? 2 : nv == 4 ? 3 : nv == 2 ? 4 : 8)
                        : at_least_one((kRegisterVectors - 3) / 2);
}
// Knot-interval buckets (forward_bucket, weight_grad_*): K + 2 rows of NV vectors in registers.
template <int K>
constexpr int bucket_vectors() {
  return kWideRegisters ? 4 : (2 * (K + 2) <= kTileVectors ? 2 : 1);
}

// Two-source lane shuffles of the transpose below: low halves and high halves of a and b
// interleaved (a0 b0 a1 b1 ...).
typedef int32_t MaskF __attribute__((vector_size(kVectorBytes)));
typedef int64_t MaskD __attribute__((vector_size(kVectorBytes)));
#if MKCC_CPU_VECTOR_BYTES == 64
#define MKCC_LOW_F {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23}
#define MKCC_HIGH_F {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31}
#define MKCC_LOW_D {0, 8, 1, 9, 2, 10, 3, 11}
#define MKCC_HIGH_D {4, 12, 5, 13, 6, 14, 7, 15}
#elif MKCC_CPU_VECTOR_BYTES == 32
#define MKCC_LOW_F {0, 8, 1, 9, 2, 10, 3, 11}
#define MKCC_HIGH_F {4, 12, 5, 13, 6, 14, 7, 15}
#define MKCC_LOW_D {0, 4, 1, 5}
#define MKCC_HIGH_D {2, 6, 3, 7}
#elif MKCC_CPU_VECTOR_BYTES == 16
#define MKCC_LOW_F {0, 4, 1, 5}
#define MKCC_HIGH_F {2, 6, 3, 7}
#define MKCC_LOW_D {0, 2}
#define MKCC_HIGH_D {1, 3}
#else
#error "MKCC_CPU_VECTOR_BYTES: expected 16, 32 or 64"
#endif
inline void interleave(const VecF* a, const VecF* b, VecF* low, VecF* high) {
  *low = __builtin_shuffle(*a, *b, MaskF MKCC_LOW_F);
  *high = __builtin_shuffle(*a, *b, MaskF MKCC_HIGH_F);
}
inline void interleave(const VecD* a, const VecD* b, VecD* low, VecD* high) {
  *low = __builtin_shuffle(*a, *b, MaskD MKCC_LOW_D);
  *high = __builtin_shuffle(*a, *b, MaskD MKCC_HIGH_D);
}
#undef MKCC_LOW_F
#undef MKCC_HIGH_F
#undef MKCC_LOW_D
#undef MKCC_HIGH_D

// In-register transpose of an L x L block (L vectors of L lanes, L a power of two): log2(L)
// rounds, each of which interleaves row i with row i + L / 2 into rows 2i and 2i + 1. Lane l of
// row i moves to lane 2 (l mod L / 2) + [i >= L / 2] of row 2i + [l >= L / 2]: the bits of the
// (row, lane) pair rotate by one, so after log2(L) rounds row i holds column i.
template <typename V, int L>
inline void transpose_block(V* rows) {
#pragma GCC unroll 8
  for (int round = 1; round < L; round *= 2) {
    V next[L];
#pragma GCC unroll 16
    for (int i = 0; i < L / 2; ++i) {
      interleave(&rows[i], &rows[i + L / 2], &next[2 * i], &next[2 * i + 1]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < L; ++i) rows[i] = next[i];
  }
}

// dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols: L x L blocks through
// registers (contiguous vector loads and stores), the edges one value at a time.
template <typename T>
inline void transpose_rows(const T* __restrict__ src, int64_t src_stride, int64_t rows,
                           int64_t cols, T* __restrict__ dst, int64_t dst_stride) {
  using V = typename Vector<T>::type;
  constexpr int L = kVectorBytes / sizeof(T);
  const int64_t full_rows = rows / L * L;
  const int64_t full_cols = cols / L * L;
  for (int64_t c0 = 0; c0 < full_cols; c0 += L) {
    for (int64_t r0 = 0; r0 < full_rows; r0 += L) {
      V block[L];
#pragma GCC unroll 16
      for (int i = 0; i < L; ++i) block[i] = load_vector(src + (r0 + i) * src_stride + c0);
      transpose_block<V, L>(block);
#pragma GCC unroll 16
      for (int i = 0; i < L; ++i) store_vector(dst + (c0 + i) * dst_stride + r0, block[i]);
    }
    for (int64_t r = full_rows; r < rows; ++r) {
      for (int64_t c = c0; c < c0 + L; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
    }
  }
  for (int64_t c = full_cols; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r) dst[c * dst_stride + r] = src[r * src_stride + c];
  }
}

// Counting sort of the positions q in [0, nb * window) that are not padding taps by their first
// spline row (row_offset / out_stride - 1, in [0, G); inputs outside the grid share bucket 0,
// with zero basis values): bucket m holds sorted entries start[m] .. start[m + 1]. The positions
// are the windows of nb batch elements laid end to end, each `window` long: sorted entry i is
// position order[i], which is position local[i] of the window of element e, whose rows start at
// first_row[i] = e * row_step. Within a bucket the entries are in increasing local[i] (then e),
// so that the entries of a range of window positions are a range of entries. start and cursor
// hold G + 1.
template <typename T>
void bucket_by_interval(const Scratch<T>& s, int64_t nb, int64_t window, int64_t row_step,
                        int64_t os, int64_t buckets, int64_t* order, int64_t* local,
                        int64_t* first_row, int64_t* start, int64_t* cursor) {
  // row_offset / os by a multiplication (exact for these small integers; an integer division
  // per position was a visible part of the weight gradient)
  const double inv_os = 1.0 / static_cast<double>(os);
  const int64_t count = nb * window;
  for (int64_t m = 0; m <= buckets; ++m) start[m] = 0;
  for (int64_t q = 0; q < count; ++q) {
    if (s.row_offset[q] >= 0) {
      ++start[static_cast<int64_t>(static_cast<double>(s.row_offset[q]) * inv_os + 0.5)];
    }
  }
  for (int64_t m = 1; m <= buckets; ++m) start[m] += start[m - 1];
  for (int64_t m = 0; m < buckets; ++m) cursor[m] = start[m];
  // Window position by window position, then element by element, so that local and first_row
  // need no division (one per entry was a third of the weight gradient's bookkeeping).
  if (nb == 1) {
    for (int64_t t = 0; t < window; ++t) {
      const int64_t offset = s.row_offset[t];
      if (offset >= 0) {
        const int64_t row = static_cast<int64_t>(static_cast<double>(offset) * inv_os + 0.5);
        const int64_t i = cursor[row - 1]++;
        order[i] = t;
        local[i] = t;
        first_row[i] = 0;
      }
    }
    return;
  }
  for (int64_t t = 0; t < window; ++t) {
    for (int64_t e = 0; e < nb; ++e) {
      const int64_t offset = s.row_offset[e * window + t];
      if (offset >= 0) {
        const int64_t row = static_cast<int64_t>(static_cast<double>(offset) * inv_os + 0.5);
        const int64_t i = cursor[row - 1]++;
        order[i] = e * window + t;
        local[i] = t;
        first_row[i] = e * row_step;
      }
    }
  }
}

// The entries of [begin, end) whose window position is in [first, last) (local is increasing
// within a bucket): a range, found by walking in from both ends (the entries outside it are few,
// and a binary search's unpredictable branches cost more).
inline void local_range(const int64_t* local, int64_t begin, int64_t end, int64_t first,
                        int64_t last, int64_t* range_begin, int64_t* range_end) {
  while (begin < end && local[begin] < first) ++begin;
  while (end > begin && local[end - 1] >= last) --end;
  *range_begin = begin;
  *range_end = end;
}

// The (position, output row) pairs of one bucket for one tap when the positions are the windows
// of one or more batch elements laid end to end, each `window` long: sorted entry i is position
// `local[i]` of the window of the element whose output rows start at `first_row[i]` (both
// computed once per block, not per tap); it pairs with output row first_row[i] + t when local[i]
// = t * stride + shift with 0 <= t < limit. Returns how many.
inline int64_t bucket_pairs_blocked(const int64_t* order, const int64_t* local,
                                    const int64_t* first_row, int64_t begin, int64_t end,
                                    int64_t shift, int64_t stride, int64_t limit,
                                    int64_t* pairs) {
  int64_t count = 0;
  if (stride == 1) {  // the entries of window positions [shift, shift + limit): a range
    int64_t lo, hi;
    local_range(local, begin, end, shift, shift + limit, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i, ++count) {
      pairs[2 * count] = order[i];
      pairs[2 * count + 1] = first_row[i] + local[i] - shift;
    }
    return count;
  }
  for (int64_t i = begin; i < end; ++i) {
    int64_t t = local[i] - shift;
    if (t < 0) continue;
    if (stride != 1) {
      if (t % stride != 0) continue;
      t /= stride;
    }
    if (t >= limit) continue;
    pairs[2 * count] = order[i];
    pairs[2 * count + 1] = first_row[i] + t;
    ++count;
  }
  return count;
}

// Forward of one knot-interval bucket of one tap, NV vectors of output channels from o0: the
// tap's base row and the bucket's K + 1 spline rows stay in registers while every position of the
// bucket adds silu * base + sum_r b_r * spline_r to its output row.
template <typename T, int K, int NV>
inline void forward_bucket(const int64_t* __restrict__ pairs, int64_t count, const Scratch<T>& s,
                           const T* __restrict__ w_base, const T* __restrict__ w_spline,
                           int64_t os, int64_t o0, T* __restrict__ acc, int64_t acc_stride) {
  using V = typename Vector<T>::type;
  constexpr int kLanes = kVectorBytes / sizeof(T);
  V base[NV];
  V spline[K + 1][NV];
  for (int v = 0; v < NV; ++v) {
    base[v] = load_vector(w_base + o0 + v * kLanes);
    for (int r = 0; r <= K; ++r) {
      spline[r][v] = load_vector(w_spline + r * os + o0 + v * kLanes);
    }
  }
  for (int64_t i = 0; i < count; ++i) {
    const int64_t q = pairs[2 * i];
    const T silu_value = s.silu_values[q];
    const T* values = s.basis_values + q * (K + 1);
    T* out = acc + pairs[2 * i + 1] * acc_stride;
    for (int v = 0; v < NV; ++v) {
      V x;
      x = load_vector(out + v * kLanes);
      x += silu_value * base[v];
      for (int r = 0; r <= K; ++r) x += values[r] * spline[r][v];
      store_vector(out + v * kLanes, x);
    }
  }
}

// Every tap and bucket of one input channel for the column block of NV vectors from o0, whose
// accumulators (one row of NV vectors per output position of the item) are at acc: pairs of tap
// j, bucket m are pairs[2 * pair_start[j * buckets + m] ...].
template <typename T, int K, int NV>
inline void forward_buckets_block(const KanConv1dParams& p, const Scratch<T>& s,
                                  const int64_t* pairs, const int64_t* pair_start,
                                  int64_t buckets, const T* w_channel, int64_t rows, int64_t os,
                                  int64_t o0, T* acc) {
  constexpr int64_t kLanes = kVectorBytes / sizeof(T);
  for (int64_t j = 0; j < p.kernel_size; ++j) {
    const T* w_tap = w_channel + j * rows * os;
    for (int64_t m = 0; m < buckets; ++m) {
      const int64_t begin = pair_start[j * buckets + m];
      const int64_t count = pair_start[j * buckets + m + 1] - begin;
      if (count == 0) continue;
      forward_bucket<T, K, NV>(pairs + 2 * begin, count, s, w_tap, w_tap + (1 + m) * os, os, o0,
                               acc, NV * kLanes);
    }
  }
}

// Forward of NP consecutive output positions from t, NV vectors of output channels from o0, over
// every tap of one input channel (padding taps have zero features: no check in the loop). NP * NV
// accumulators stay in registers: enough independent chains that the FMAs' latency is hidden
// (each accumulator takes K + 2 dependent FMAs per tap).
template <typename T, int K, int NV, int NP, int64_t kRowStride = 0>
inline void forward_positions(const KanConv1dParams& p, const Scratch<T>& s,
                              const T* __restrict__ w_channel, int64_t rows, int64_t os,
                              int64_t t, int64_t o0, T* __restrict__ acc_rows) {
  using V = typename Vector<T>::type;
  constexpr int kLanes = kVectorBytes / sizeof(T);
  // a row stride known at compile time makes every weight and accumulator vector a constant
  // displacement from one pointer per position
  const int64_t ld = kRowStride > 0 ? kRowStride : os;
  V acc[NP][NV];
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = load_vector(acc_rows + i * ld + o0 + v * kLanes);
    }
  }
  const int64_t step = p.stride;
  for (int64_t j = 0; j < p.kernel_size; ++j) {
    const int64_t q0 = t * step + j * p.dilation;
    const T* w_tap = w_channel + j * rows * ld + o0;
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) {
      const int64_t q = q0 + i * step;
      // One pointer per spline row, so that each vector is a constant displacement from it.
      const T* w_row[K + 1];
      w_row[0] = w_tap + s.row_offset[q];
#pragma GCC unroll 8
      for (int r = 1; r <= K; ++r) w_row[r] = w_row[r - 1] + ld;
      const T silu_value = s.silu_values[q];
      const T* values = s.basis_values + q * (K + 1);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        V w;
        w = load_vector(w_tap + v * kLanes);
        acc[i][v] += silu_value * w;
#pragma GCC unroll 8
        for (int r = 0; r <= K; ++r) {
          w = load_vector(w_row[r] + v * kLanes);
          acc[i][v] += values[r] * w;
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      store_vector(acc_rows + i * ld + o0 + v * kLanes, acc[i][v]);
    }
  }
}

// Outputs [0, nt) of one batch element's tile, NV vectors of output channels from o0: NP
// positions at a time, the rest one by one.
template <typename T, int K, int NV, int NP, int64_t kRowStride = 0>
inline void forward_outputs(const KanConv1dParams& p, const Scratch<T>& s,
                            const T* __restrict__ w_channel, int64_t rows, int64_t os,
                            int64_t nt, int64_t o0, T* __restrict__ acc) {
  int64_t t = 0;
  for (; t + NP <= nt; t += NP) {
    forward_positions<T, K, NV, NP, kRowStride>(p, s, w_channel, rows, os, t, o0, acc + t * os);
  }
  for (; t < nt; ++t) {
    forward_positions<T, K, NV, 1, kRowStride>(p, s, w_channel, rows, os, t, o0, acc + t * os);
  }
}

template <typename T, int K>
void forward_impl(const ForwardArgs<T>& a, int64_t begin, int64_t end, void* scratch_base) {
  const KanConv1dParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const ScratchLayout layout =
      forward_scratch(p, a.layout, a.time_tile, a.batch_block, sizeof(T));
  const Scratch<T> s = carve<T>(scratch_base, layout);
  const T inv_h = static_cast<T>(p.inv_h);
  const int64_t buckets = p.grid_size;  // first rows 0 .. G - 1
  const int64_t max_positions = layout.positions;  // batch_block windows
  int64_t* order = s.index;                        // [positions]
  int64_t* local = order + max_positions;          // [positions] per sorted entry
  int64_t* first_row = local + max_positions;      // [positions] per sorted entry
  int64_t* start = first_row + max_positions;      // [buckets + 1]
  int64_t* cursor = start + buckets + 1;           // [buckets + 1]
  int64_t* pair_start = cursor + buckets + 1;      // [k * buckets + 1]
  int64_t* pairs = pair_start + p.kernel_size * buckets + 1;  // [2 * k * positions]
  constexpr int64_t kLanes = kVectorBytes / sizeof(T);

  for (int64_t item = begin; item < end; ++item) {
    const int64_t tile = item % a.num_time_tiles;
    const int64_t g = (item / a.num_time_tiles) % p.groups;
    const int64_t b0 = item / (a.num_time_tiles * p.groups) * a.batch_block;
    const int64_t nb = (p.batch - b0 < a.batch_block) ? p.batch - b0 : a.batch_block;
    const int64_t t0 = tile * a.time_tile;
    const int64_t nt = (p.out_length - t0 < a.time_tile) ? p.out_length - t0 : a.time_tile;
    const int64_t first = t0 * p.stride - p.pad_left;
    const int64_t window = forward_window(p, nt);
    // Positions grouped by knot interval keep a bucket's weight rows in registers; that pays
    // for wide output rows and short tiles when buckets hold several positions (see
    // forward_uses_buckets).
    const bool use_buckets = forward_uses_buckets(p, a.layout, nb * window, sizeof(T), nt);
    memset(s.accumulator, 0, sizeof(T) * nb * nt * os);

    for (int64_t c = 0; c < p.in_per_group; ++c) {
      const int64_t cin = g * p.in_per_group + c;
      const T* w_channel = a.packed_weight + cin * p.kernel_size * rows * os;
      evaluate_windows<T, K>(a.x + (b0 * p.in_channels + cin) * p.length,
                             p.in_channels * p.length, nb, p.length, first, window, a.knots,
                             p.num_intervals, inv_h, os, s, !use_buckets);
      if (!use_buckets) {
        // Per output position, every tap with the accumulators in registers (NP positions at
        // once, so that enough FMA chains are independent) and the weight rows read from L1
        // (reused by the nb * nt positions of the item).
        for (int64_t bl = 0; bl < nb; ++bl) {
          const Scratch<T> sb = batch_view<T, K>(s, bl, window);
          T* acc = s.accumulator + bl * nt * os;
          // rows of one column block: the stride as a constant
          if (os == 4 * kLanes && kForwardWidest >= 4) {
            forward_outputs<T, K, 4, forward_tile_positions(4), 4 * kLanes>(p, sb, w_channel,
                                                                          rows, os, nt, 0, acc);
            continue;
          }
          if (os == 2 * kLanes) {
            forward_outputs<T, K, 2, forward_tile_positions(2), 2 * kLanes>(p, sb, w_channel,
                                                                          rows, os, nt, 0, acc);
            continue;
          }
          if (os == kLanes) {
            forward_outputs<T, K, 1, forward_tile_positions(1), kLanes>(p, sb, w_channel, rows,
                                                                      os, nt, 0, acc);
            continue;
          }
          int64_t o0 = 0;
          for (; kForwardWidest >= 8 && o0 + 8 * kLanes <= os; o0 += 8 * kLanes) {
            forward_outputs<T, K, 8, forward_tile_positions(8)>(p, sb, w_channel, rows, os, nt,
                                                                o0, acc);
          }
          for (; kForwardWidest >= 4 && o0 + 4 * kLanes <= os; o0 += 4 * kLanes) {
            forward_outputs<T, K, 4, forward_tile_positions(4)>(p, sb, w_channel, rows, os, nt,
                                                                o0, acc);
          }
          for (; o0 + 2 * kLanes <= os; o0 += 2 * kLanes) {
            forward_outputs<T, K, 2, forward_tile_positions(2)>(p, sb, w_channel, rows, os, nt,
                                                                o0, acc);
          }
          for (; o0 < os; o0 += kLanes) {
            forward_outputs<T, K, 1, forward_tile_positions(1)>(p, sb, w_channel, rows, os, nt,
                                                                o0, acc);
          }
        }
        continue;
      }
      // The windows of the nb elements lie end to end in the scratch and share the buckets;
      // accumulator row bl * nt + t is output t0 + t of element b0 + bl.
      bucket_by_interval(s, nb, window, nt, os, buckets, order, local, first_row, start, cursor);
      // The (position, accumulator row) pairs of every (tap, bucket), then column blocks of the
      // accumulator outermost: a block's accumulators (nb * nt rows of NV vectors, contiguous)
      // stay in L1 while every tap and bucket adds to them.
      pair_start[0] = 0;
      for (int64_t j = 0; j < p.kernel_size; ++j) {
        for (int64_t m = 0; m < buckets; ++m) {
          const int64_t done = pair_start[j * buckets + m];
          pair_start[j * buckets + m + 1] =
              done + bucket_pairs_blocked(order, local, first_row, start[m], start[m + 1],
                                          j * p.dilation, p.stride, nt, pairs + 2 * done);
        }
      }
      const int64_t acc_rows = nb * nt;
      int64_t o0 = 0;
      for (; bucket_vectors<K>() >= 4 && o0 + 4 * kLanes <= os; o0 += 4 * kLanes) {
        forward_buckets_block<T, K, 4>(p, s, pairs, pair_start, buckets, w_channel, rows, os, o0,
                                       s.accumulator + o0 * acc_rows);
      }
      for (; bucket_vectors<K>() >= 2 && o0 + 2 * kLanes <= os; o0 += 2 * kLanes) {
        forward_buckets_block<T, K, 2>(p, s, pairs, pair_start, buckets, w_channel, rows, os, o0,
                                       s.accumulator + o0 * acc_rows);
      }
      for (; o0 < os; o0 += kLanes) {
        forward_buckets_block<T, K, 1>(p, s, pairs, pair_start, buckets, w_channel, rows, os, o0,
                                       s.accumulator + o0 * acc_rows);
      }
    }

    if (use_buckets) {  // column blocks: columns [c0, c0 + width) at c0 * nb * nt, rows of width
      int64_t c0 = 0;
      while (c0 < p.out_per_group) {
        const int64_t width = bucket_vectors<K>() >= 4 && c0 + 4 * kLanes <= os   ? 4 * kLanes
                              : bucket_vectors<K>() >= 2 && c0 + 2 * kLanes <= os ? 2 * kLanes
                                                                                  : kLanes;
        const int64_t c1 = c0 + width < p.out_per_group ? c0 + width : p.out_per_group;
        for (int64_t bl = 0; bl < nb; ++bl) {
          T* out = a.out + ((b0 + bl) * p.out_channels + g * p.out_per_group) * p.out_length + t0;
          const T* acc = s.accumulator + c0 * nb * nt + bl * nt * width;
          transpose_rows(acc, width, nt, c1 - c0, out + c0 * p.out_length, p.out_length);
        }
        c0 += width;
      }
      continue;
    }
    for (int64_t bl = 0; bl < nb; ++bl) {
      T* out = a.out + ((b0 + bl) * p.out_channels + g * p.out_per_group) * p.out_length + t0;
      transpose_rows(s.accumulator + bl * nt * os, os, nt, p.out_per_group, out, p.out_length);
    }
  }
}

// Input gradient of NP consecutive input positions whose every tap reads an output (stride 1),
// NV vectors of output channels from o0: per tap, the coefficient phi'(x) = silu'(x) * base row +
// sum_r N_r(x) / h * difference row r (K rows) times grad_out, summed in registers and added to
// dx once. w_block: the channel's column block from o0 (cpu_input_grad_layout: [k][rows][NV
// vectors]); the scratch row offsets are row indices.
// kChecked (NP = 1): any position and stride; taps that read no output are skipped.
template <typename T, int K, int NV, int NP, bool kChecked = false>
inline void input_grad_positions(const KanConv1dParams& p, const Scratch<T>& s,
                                 const T* __restrict__ w_block, int64_t rows, int64_t os,
                                 const T* __restrict__ gy_group, int64_t pos, int64_t q,
                                 int64_t o0, T* __restrict__ dx) {
  using V = typename Vector<T>::type;
  constexpr int kLanes = kVectorBytes / sizeof(T);
  constexpr int64_t kWidth = NV * kLanes;  // the block's row stride
  V acc[NP][2];
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) acc[i][0] = acc[i][1] = V{};
  for (int64_t j = 0; j < p.kernel_size; ++j) {
    int64_t t = pos + p.pad_left - j * p.dilation;
    if (kChecked) {
      t = tap_output(p, pos, j);
      if (t == -2) break;
      if (t < 0) continue;
    }
    const T* w_tap = w_block + j * rows * kWidth;
    const T* gy_tap = gy_group + t * os + o0;
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) {
      const T* w_row[K];
      w_row[0] = w_tap + s.row_offset[q + i] * kWidth;
#pragma GCC unroll 8
      for (int r = 1; r < K; ++r) w_row[r] = w_row[r - 1] + kWidth;
      const T silu_grad = s.silu_values[q + i];
      const T* derivative = s.basis_values + (q + i) * (K + 1);
      const T* gy = gy_tap + i * os;
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        V w;
        w = load_vector(w_tap + v * kLanes);
        V coef = silu_grad * w;
#pragma GCC unroll 8
        for (int r = 0; r < K; ++r) {
          w = load_vector(w_row[r] + v * kLanes);
          coef += derivative[r] * w;
        }
        V g;
        g = load_vector(gy + v * kLanes);
        acc[i][v & 1] += coef * g;
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) {
    const V sum = acc[i][0] + acc[i][1];
    T total = T(0);
    for (int l = 0; l < kLanes; ++l) total += sum[l];
    dx[i] += total;
  }
}

// Positions [begin, end) of a chunk (scratch index = position - chunk_start), NV vectors of
// output channels from o0: NP positions at a time, the rest one by one.
template <typename T, int K, int NV, int NP>
inline void input_grad_run(const KanConv1dParams& p, const Scratch<T>& s,
                           const T* __restrict__ w_channel, int64_t rows, int64_t os,
                           const T* __restrict__ gy_group, int64_t chunk_start, int64_t begin,
                           int64_t end, int64_t o0, T* __restrict__ dx_row) {
  const T* w_block = w_channel + o0 * p.kernel_size * rows;
  int64_t pos = begin;
  for (; pos + NP <= end; pos += NP) {
    input_grad_positions<T, K, NV, NP>(p, s, w_block, rows, os, gy_group, pos,
                                       pos - chunk_start, o0, dx_row + pos);
  }
  for (; pos < end; ++pos) {
    input_grad_positions<T, K, NV, 1>(p, s, w_block, rows, os, gy_group, pos,
                                      pos - chunk_start, o0, dx_row + pos);
  }
}

// One position (any stride, each tap checked) over every column block.
template <typename T, int K>
inline void input_grad_checked(const KanConv1dParams& p, const Scratch<T>& s,
                               const T* __restrict__ w_channel, int64_t rows, int64_t os,
                               const T* __restrict__ gy_group, int64_t pos, int64_t q,
                               T* __restrict__ dx) {
  constexpr int64_t kPackLanes = kPackVectorBytes / sizeof(T);  // columns per packed vector
  const int64_t block = p.kernel_size * rows;  // times the block's columns
  int64_t o0 = 0;
  for (; o0 + 8 * kPackLanes <= os; o0 += 8 * kPackLanes) {
    input_grad_positions<T, K, 8 * kPackSplit, 1, true>(p, s, w_channel + o0 * block, rows, os,
                                                        gy_group, pos, q, o0, dx);
  }
  for (; o0 + 4 * kPackLanes <= os; o0 += 4 * kPackLanes) {
    input_grad_positions<T, K, 4 * kPackSplit, 1, true>(p, s, w_channel + o0 * block, rows, os,
                                                        gy_group, pos, q, o0, dx);
  }
  for (; o0 + 2 * kPackLanes <= os; o0 += 2 * kPackLanes) {
    input_grad_positions<T, K, 2 * kPackSplit, 1, true>(p, s, w_channel + o0 * block, rows, os,
                                                        gy_group, pos, q, o0, dx);
  }
  for (; o0 < os; o0 += kPackLanes) {
    input_grad_positions<T, K, kPackSplit, 1, true>(p, s, w_channel + o0 * block, rows, os,
                                                    gy_group, pos, q, o0, dx);
  }
}

// Positions [c0, c0 + n) of the input gradient of item (batch element b, input channel cin),
// whose features are at scratch positions 0 .. n.
template <typename T, int K>
inline void input_grad_chunk(const InputGradArgs<T>& a, const Scratch<T>& s, int64_t b,
                             int64_t cin, int64_t c0, int64_t n) {
  const KanConv1dParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  constexpr int64_t kPackLanes = kPackVectorBytes / sizeof(T);  // columns per packed vector
  const int64_t g = cin / p.in_per_group;
  T* dx_row = a.grad_x + (b * p.in_channels + cin) * p.length;
  const T* w_channel = a.packed_weight + cin * p.kernel_size * rows * os;
  const T* gy_group = a.grad_out_t + (b * p.groups + g) * p.out_length * os;
  // Input positions every tap of which reads an output (stride 1): no checks there.
  const int64_t span = (p.kernel_size - 1) * p.dilation;
  const int64_t full_begin = p.stride == 1 ? (span - p.pad_left > 0 ? span - p.pad_left : 0) : 0;
  const int64_t full_end = p.stride == 1 ? p.out_length - p.pad_left : 0;

  for (int64_t q = 0; q < n; ++q) dx_row[c0 + q] = T(0);
  int64_t lo = full_begin > c0 ? full_begin : c0;
  int64_t hi = full_end < c0 + n ? full_end : c0 + n;
  if (hi < lo) hi = lo;
  if (hi > lo) {
    // column blocks of 8, 4, 2, 1 packed vectors (input_grad_block_vectors), kPackSplit of
    // this build's vectors each
    int64_t o0 = 0;
    for (; o0 + 8 * kPackLanes <= os; o0 += 8 * kPackLanes) {
      input_grad_run<T, K, 8 * kPackSplit, input_grad_tile_positions(8)>(
          p, s, w_channel, rows, os, gy_group, c0, lo, hi, o0, dx_row);
    }
    for (; o0 + 4 * kPackLanes <= os; o0 += 4 * kPackLanes) {
      input_grad_run<T, K, 4 * kPackSplit, input_grad_tile_positions(4)>(
          p, s, w_channel, rows, os, gy_group, c0, lo, hi, o0, dx_row);
    }
    for (; o0 + 2 * kPackLanes <= os; o0 += 2 * kPackLanes) {
      input_grad_run<T, K, 2 * kPackSplit, input_grad_tile_positions(2)>(
          p, s, w_channel, rows, os, gy_group, c0, lo, hi, o0, dx_row);
    }
    for (; o0 < os; o0 += kPackLanes) {
      input_grad_run<T, K, kPackSplit, input_grad_tile_positions(1)>(
          p, s, w_channel, rows, os, gy_group, c0, lo, hi, o0, dx_row);
    }
  }
  // The other positions (near the ends, or any stride): each tap checked.
  for (int64_t pos = c0; pos < c0 + n; ++pos) {
    if (pos == lo && hi > lo) pos = hi;
    if (pos >= c0 + n) break;
    input_grad_checked<T, K>(p, s, w_channel, rows, os, gy_group, pos, pos - c0, dx_row + pos);
  }
}

template <typename T, int K>
void input_grad_impl(const InputGradArgs<T>& a, int64_t begin, int64_t end,
                     void* scratch_base) {
  const KanConv1dParams& p = a.p;
  const T inv_h = static_cast<T>(p.inv_h);
  const ScratchLayout layout = input_grad_scratch(p, sizeof(T));
  const Scratch<T> s = carve<T>(scratch_base, layout);
  const int64_t per_pass = input_grad_rows_per_pass(p);
  const int64_t chunk = layout.positions / per_pass;

  // Items run over the batch fastest, so that consecutive items of a thread read the same
  // input channel's weights (from L1/L2).
  for (int64_t item = begin; item < end;) {
    if (per_pass > 1) {
      // Short rows: the rows of up to per_pass items gathered end to end, one features pass.
      const int64_t count = end - item < per_pass ? end - item : per_pass;
      for (int64_t r = 0; r < count; ++r) {
        const int64_t b = (item + r) % p.batch;
        const int64_t cin = (item + r) / p.batch;
        memcpy(s.inputs + r * p.length, a.x + (b * p.in_channels + cin) * p.length,
               sizeof(T) * p.length);
      }
      features<K, true>(s.inputs, count * p.length, a.knots, p.num_intervals, inv_h, 1,
                        s);  // row indices
      for (int64_t r = 0; r < count; ++r) {
        input_grad_chunk<T, K>(a, batch_view<T, K>(s, r, p.length), (item + r) % p.batch,
                               (item + r) / p.batch, 0, p.length);
      }
      item += count;
      continue;
    }
    const int64_t b = item % p.batch;
    const int64_t cin = item / p.batch;
    const T* x_row = a.x + (b * p.in_channels + cin) * p.length;
    for (int64_t c0 = 0; c0 < p.length; c0 += chunk) {
      const int64_t n = p.length - c0 < chunk ? p.length - c0 : chunk;
      features<K, true>(x_row + c0, n, a.knots, p.num_intervals, inv_h, 1, s);  // row indices
      input_grad_chunk<T, K>(a, s, b, cin, c0, n);
    }
    ++item;
  }
}

// One knot-interval bucket of one tap, NV vectors of output channels from o0: sums
// silu * grad_out and b_r * grad_out over the bucket's (position, grad_out row) pairs in
// registers, then adds them to the gradient rows (base row and the bucket's K + 1 spline rows).
template <typename T, int K, int NV>
inline void weight_grad_bucket(const int64_t* __restrict__ pairs, int64_t count,
                               const Scratch<T>& s, const T* __restrict__ gy, int64_t os,
                               int64_t o0, T* __restrict__ grad_base,
                               T* __restrict__ grad_spline) {
  using V = typename Vector<T>::type;
  constexpr int kLanes = kVectorBytes / sizeof(T);
  V acc_base[NV];
  V acc_spline[K + 1][NV];
  for (int v = 0; v < NV; ++v) {
    acc_base[v] = V{};
    for (int r = 0; r <= K; ++r) acc_spline[r][v] = V{};
  }
  for (int64_t i = 0; i < count; ++i) {
    const int64_t pos = pairs[2 * i];
    const T* gy_row = gy + pairs[2 * i + 1] * os + o0;
    const T silu_value = s.silu_values[pos];
    T values[K + 1];
    for (int r = 0; r <= K; ++r) values[r] = s.basis_values[pos * (K + 1) + r];
    for (int v = 0; v < NV; ++v) {
      V go;
      go = load_vector(gy_row + v * kLanes);
      acc_base[v] += silu_value * go;
      for (int r = 0; r <= K; ++r) acc_spline[r][v] += values[r] * go;
    }
  }
  for (int v = 0; v < NV; ++v) {
    V sum;
    T* base = grad_base + o0 + v * kLanes;
    sum = load_vector(base);
    sum += acc_base[v];
    store_vector(base, sum);
    for (int r = 0; r <= K; ++r) {
      T* spline = grad_spline + r * os + o0 + v * kLanes;
      sum = load_vector(spline);
      sum += acc_spline[r][v];
      store_vector(spline, sum);
    }
  }
}

// The same for stride 1, straight from the sorted entries of one bucket (no pair list): entry i
// is window position local[i] of the element whose output rows start at first_row[i]; for tap
// shift `shift` it reads grad_out row first_row[i] + local[i] - shift. [begin, end): the bucket's
// entries whose row is one of the block's outputs (local[i] - shift in [0, outputs)).
template <typename T, int K, int NV>
inline void weight_grad_sorted(const int64_t* __restrict__ order,
                               const int64_t* __restrict__ local,
                               const int64_t* __restrict__ first_row, int64_t begin, int64_t end,
                               int64_t shift, const Scratch<T>& s, const T* __restrict__ gy,
                               int64_t os, int64_t o0, T* __restrict__ grad_base,
                               T* __restrict__ grad_spline) {
  using V = typename Vector<T>::type;
  constexpr int kLanes = kVectorBytes / sizeof(T);
  V acc_base[NV];
  V acc_spline[K + 1][NV];
  for (int v = 0; v < NV; ++v) {
    acc_base[v] = V{};
    for (int r = 0; r <= K; ++r) acc_spline[r][v] = V{};
  }
  for (int64_t i = begin; i < end; ++i) {
    const int64_t t = local[i] - shift;
    const int64_t pos = order[i];
    const T* gy_row = gy + (first_row[i] + t) * os + o0;
    const T silu_value = s.silu_values[pos];
    T values[K + 1];
    for (int r = 0; r <= K; ++r) values[r] = s.basis_values[pos * (K + 1) + r];
    for (int v = 0; v < NV; ++v) {
      V go;
      go = load_vector(gy_row + v * kLanes);
      acc_base[v] += silu_value * go;
      for (int r = 0; r <= K; ++r) acc_spline[r][v] += values[r] * go;
    }
  }
  for (int v = 0; v < NV; ++v) {
    V sum;
    T* base = grad_base + o0 + v * kLanes;
    sum = load_vector(base);
    sum += acc_base[v];
    store_vector(base, sum);
    for (int r = 0; r <= K; ++r) {
      T* spline = grad_spline + r * os + o0 + v * kLanes;
      sum = load_vector(spline);
      sum += acc_spline[r][v];
      store_vector(spline, sum);
    }
  }
}

template <typename T, int K>
void weight_grad_impl(const WeightGradArgs<T>& a, int64_t begin, int64_t end,
                      void* scratch_base) {
  const KanConv1dParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const T inv_h = static_cast<T>(p.inv_h);
  const int64_t row_bytes = a.layout.out_stride * static_cast<int64_t>(sizeof(T));
  const ScratchLayout layout = weight_grad_scratch(p, row_bytes, sizeof(T));
  const Scratch<T> s = carve<T>(scratch_base, layout);
  const int64_t chunk_size = (p.batch + a.num_batch_chunks - 1) / a.num_batch_chunks;
  const int64_t buckets = p.grid_size;  // first rows 0 .. G - 1
  const int64_t time_block = weight_grad_time_block(p, row_bytes);
  const int64_t batch_block = weight_grad_batch_block(p, row_bytes);
  int64_t* order = s.index;                   // [positions] sorted by bucket
  int64_t* start = order + layout.positions;  // [buckets + 1]
  int64_t* cursor = start + buckets + 1;      // [buckets + 1]
  int64_t* pairs = cursor + buckets + 1;      // [2 * positions] (position, grad_out row)
  int64_t* local = pairs + 2 * layout.positions;       // [positions] per sorted entry
  int64_t* first_row = local + layout.positions;       // [positions] per sorted entry
  constexpr int64_t kLanes = kVectorBytes / sizeof(T);  // os: a multiple of 64 bytes
  constexpr int kBlock = bucket_vectors<K>();            // column block (then single vectors)

  for (int64_t item = begin; item < end; ++item) {
    const int64_t cin = item % p.in_channels;
    const int64_t chunk = item / p.in_channels;
    const int64_t g = cin / p.in_per_group;
    const int64_t b_end = (chunk + 1) * chunk_size < p.batch ? (chunk + 1) * chunk_size : p.batch;
    T* grad_channel =
        a.packed_grad + (chunk * p.in_channels + cin) * p.kernel_size * rows * os;
    memset(grad_channel, 0, sizeof(T) * p.kernel_size * rows * os);  // this item's block

    // Work blocks: nb batch elements x nt output positions from (b0, t0); the windows of the
    // nb elements lie end to end in the scratch, and their knot buckets are shared.
    for (int64_t b0 = chunk * chunk_size; b0 < b_end; b0 += batch_block) {
      const int64_t nb = b_end - b0 < batch_block ? b_end - b0 : batch_block;
      for (int64_t t0 = 0; t0 < p.out_length; t0 += time_block) {
        const int64_t nt = t0 + time_block < p.out_length ? time_block : p.out_length - t0;
        const int64_t window = forward_window(p, nt);
        evaluate_windows<T, K>(a.x + (b0 * p.in_channels + cin) * p.length,
                               p.in_channels * p.length, nb, p.length, t0 * p.stride - p.pad_left,
                               window, a.knots, p.num_intervals, inv_h, os, s);
        const int64_t row_stride = p.groups * p.out_length;  // grad_out rows per batch element
        bucket_by_interval(s, nb, window, row_stride, os, buckets, order, local, first_row, start,
                           cursor);
        const T* gy_block = a.grad_out_t + ((b0 * p.groups + g) * p.out_length + t0) * os;
        for (int64_t j = 0; j < p.kernel_size; ++j) {
          T* grad_base = grad_channel + j * rows * os;
          for (int64_t m = 0; m < buckets; ++m) {
            if (p.stride == 1) {
              // the bucket's entries that tap j pairs with an output of the block: window
              // positions [shift, shift + nt), a range of the bucket
              const int64_t shift = j * p.dilation;
              int64_t lo, hi;
              local_range(local, start[m], start[m + 1], shift, shift + nt, &lo, &hi);
              if (hi == lo) continue;
              T* grad_spline = grad_base + (1 + m) * os;
              int64_t o0 = 0;
              for (; o0 + kBlock * kLanes <= os; o0 += kBlock * kLanes) {
                weight_grad_sorted<T, K, kBlock>(order, local, first_row, lo, hi, shift, s,
                                                 gy_block, os, o0, grad_base, grad_spline);
              }
              for (; o0 < os; o0 += kLanes) {
                weight_grad_sorted<T, K, 1>(order, local, first_row, lo, hi, shift, s, gy_block,
                                            os, o0, grad_base, grad_spline);
              }
              continue;
            }
            // Output t0 + t of element bl reads window position t * stride + j * dilation.
            const int64_t count =
                bucket_pairs_blocked(order, local, first_row, start[m], start[m + 1],
                                     j * p.dilation, p.stride, nt, pairs);
            if (count == 0) continue;
            T* grad_spline = grad_base + (1 + m) * os;
            int64_t o0 = 0;
            for (; o0 + kBlock * kLanes <= os; o0 += kBlock * kLanes) {
              weight_grad_bucket<T, K, kBlock>(pairs, count, s, gy_block, os, o0, grad_base,
                                               grad_spline);
            }
            for (; o0 < os; o0 += kLanes) {
              weight_grad_bucket<T, K, 1>(pairs, count, s, gy_block, os, o0, grad_base,
                                          grad_spline);
            }
          }
        }
      }
    }
  }
}

// The spline order is validated by the host code (1..4).
template <typename T>
void forward_entry(const ForwardArgs<T>& a, int64_t begin, int64_t end, void* scratch) {
  switch (a.p.spline_order) {
    case 1: forward_impl<T, 1>(a, begin, end, scratch); break;
    case 2: forward_impl<T, 2>(a, begin, end, scratch); break;
    case 3: forward_impl<T, 3>(a, begin, end, scratch); break;
    default: forward_impl<T, 4>(a, begin, end, scratch); break;
  }
}

template <typename T>
void input_grad_entry(const InputGradArgs<T>& a, int64_t begin, int64_t end, void* scratch) {
  switch (a.p.spline_order) {
    case 1: input_grad_impl<T, 1>(a, begin, end, scratch); break;
    case 2: input_grad_impl<T, 2>(a, begin, end, scratch); break;
    case 3: input_grad_impl<T, 3>(a, begin, end, scratch); break;
    default: input_grad_impl<T, 4>(a, begin, end, scratch); break;
  }
}

template <typename T>
void weight_grad_entry(const WeightGradArgs<T>& a, int64_t begin, int64_t end, void* scratch) {
  switch (a.p.spline_order) {
    case 1: weight_grad_impl<T, 1>(a, begin, end, scratch); break;
    case 2: weight_grad_impl<T, 2>(a, begin, end, scratch); break;
    case 3: weight_grad_impl<T, 3>(a, begin, end, scratch); break;
    default: weight_grad_impl<T, 4>(a, begin, end, scratch); break;
  }
}

}  // namespace

#if defined(MKCC_CPU_PASS_FORWARD)
void forward(const ForwardArgs<float>& a, int64_t begin, int64_t end, void* scratch) {
  forward_entry(a, begin, end, scratch);
}
void forward(const ForwardArgs<double>& a, int64_t begin, int64_t end, void* scratch) {
  forward_entry(a, begin, end, scratch);
}
void transpose(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst,
               int64_t dst_stride) {
  transpose_rows(src, src_stride, rows, cols, dst, dst_stride);
}
void transpose(const double* src, int64_t src_stride, int64_t rows, int64_t cols, double* dst,
               int64_t dst_stride) {
  transpose_rows(src, src_stride, rows, cols, dst, dst_stride);
}
#endif

#if defined(MKCC_CPU_PASS_INPUT_GRAD)
void input_grad(const InputGradArgs<float>& a, int64_t begin, int64_t end, void* scratch) {
  input_grad_entry(a, begin, end, scratch);
}
void input_grad(const InputGradArgs<double>& a, int64_t begin, int64_t end, void* scratch) {
  input_grad_entry(a, begin, end, scratch);
}
#endif

#if defined(MKCC_CPU_PASS_WEIGHT_GRAD)
void weight_grad(const WeightGradArgs<float>& a, int64_t begin, int64_t end, void* scratch) {
  weight_grad_entry(a, begin, end, scratch);
}
void weight_grad(const WeightGradArgs<double>& a, int64_t begin, int64_t end, void* scratch) {
  weight_grad_entry(a, begin, end, scratch);
}
#endif

}  // namespace MKCC_CPU_ISA
}  // namespace cpu
}  // namespace mkcc
