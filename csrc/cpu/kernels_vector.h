// CPU kernels: this build's vectors, its register tiles, transposes through registers and
// the knot-interval buckets that the forward and weight-gradient passes share.
// A part of kernels_impl.h, which includes it inside the instruction-set build's namespace
// (internal linkage); not a header of its own.

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
// are the windows of nb batch elements, each `window` long, element e's at scratch positions
// e * stride .. (stride: `window` when they lie end to end, the default): sorted entry i is
// position order[i], which is position local[i] of the window of element e, whose rows start at
// first_row[i] = e * row_step. Within a bucket the entries are in increasing local[i] (then e),
// so that the entries of a range of window positions are a range of entries. start and cursor
// hold G + 1.
template <typename T>
void bucket_by_interval(const Scratch<T>& s, int64_t nb, int64_t window, int64_t row_step,
                        int64_t os, int64_t buckets, int64_t* order, int64_t* local,
                        int64_t* first_row, int64_t* start, int64_t* cursor,
                        int64_t stride = -1) {
  if (stride < 0) stride = window;
  // row_offset / os by a multiplication (exact for these small integers; an integer division
  // per position was a visible part of the weight gradient)
  const double inv_os = 1.0 / static_cast<double>(os);
  for (int64_t m = 0; m <= buckets; ++m) start[m] = 0;
  for (int64_t e = 0; e < nb; ++e) {
    const int64_t* offsets = s.row_offset + e * stride;
    for (int64_t t = 0; t < window; ++t) {
      if (offsets[t] >= 0) {
        ++start[static_cast<int64_t>(static_cast<double>(offsets[t]) * inv_os + 0.5)];
      }
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
      const int64_t offset = s.row_offset[e * stride + t];
      if (offset >= 0) {
        const int64_t row = static_cast<int64_t>(static_cast<double>(offset) * inv_os + 0.5);
        const int64_t i = cursor[row - 1]++;
        order[i] = e * stride + t;
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

// The spline order is validated by the host code (1..4): f(SplineOrder<K>{}) with K as a
// compile-time constant, the one place where the order becomes a template argument.
template <int K>
struct SplineOrder {
  static constexpr int value = K;
};
template <typename F>
inline void with_spline_order(int order, F&& f) {
  switch (order) {
    case 1: f(SplineOrder<1>{}); break;
    case 2: f(SplineOrder<2>{}); break;
    case 3: f(SplineOrder<3>{}); break;
    default: f(SplineOrder<4>{}); break;
  }
}
