// CPU kernels: the work scratch and the basis features of input positions (silu, the
// K + 1 non-zero B-spline values and their packed rows), per row and per window.
// A part of kernels_impl.h, which includes it inside the instruction-set build's namespace
// (internal linkage); not a header of its own.

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
    s.silu_values[q] = kDerivatives ? silu_derivative(xv, e) : silu(xv, e);
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

// Per-feature knots (KANLinear: each input feature its own non-decreasing knot vector t of
// num_intervals + 1 knots, uniform or not): the features of x[q], q < n, into scratch positions
// 0 .. n as features_scalar writes them. kDerivatives false: silu(x), the K + 1 basis values
// on their clamped rows, row offsets (rows of out_stride values) for cpu_packed_layout.
// kDerivatives true: silu'(x) and the K degree K - 1 values B_{j, K-1}(x) on their clamped
// rows of cpu_input_grad_layout, whose per-feature weights are K (w_j - w_{j-1}) /
// (t_{j+K} - t_j) (d/dx of the spline; 0 where that width is 0), values[K] zero. Inputs outside
// [t_0, t_{M-1}) get zero basis values on rows 1 .. K + 1. The math is basis.h's
// (interval_constants, bspline_values_nonuniform); grids of up to kTableIntervals intervals
// take a branch-free loop that selects from a per-interval table (vector code), larger ones a
// binary search per position.
constexpr int kTableIntervals = 16;
constexpr int kSortBlock = 256;

__attribute__((always_inline)) inline float exp_in_loop(float v) { return exp_branch_free(v); }
__attribute__((always_inline)) inline double exp_in_loop(double v) { return exp(v); }

template <typename T, int K, bool kDerivatives>
__attribute__((always_inline)) inline int nonuniform_position_values(T u, const T* constants,
                                                                     int m, int grid_size,
                                                                     T* values) {
  if constexpr (kDerivatives) {
    bspline_values_nonuniform<K, K - 1>(u, constants, values);
    values[K] = T(0);
    return clamp_to_rows<T, K>(m - K + 1, grid_size + 1, values);
  } else {
    bspline_values_nonuniform<K, K>(u, constants, values);
    return clamp_to_rows<T, K + 1>(m - K, grid_size - 1, values);
  }
}

// The N non-zero values (degree N - 1) of `count` inputs on one knot interval, from its
// constants (interval_constants) into values[k * (K + 1) + r]: a vector loop, the constants
// broadcast (a function of its own: inside features_on_knots GCC 12 does not vectorize it).
template <typename T, int K, int N>
__attribute__((noinline)) void interval_values(const T* __restrict__ x, int64_t count,
                                               const T* __restrict__ constants,
                                               T* __restrict__ values) {
  T k[IntervalConstants<K>::kCount];
  for (int c = 0; c < IntervalConstants<K>::kCount; ++c) k[c] = constants[c];
#pragma GCC ivdep
  for (int64_t q = 0; q < count; ++q) {
    T v[K + 1];
    bspline_values_nonuniform<K, N - 1>(x[q] - k[0], k, v);
#pragma GCC unroll 8
    for (int r = 0; r < N; ++r) values[q * (K + 1) + r] = v[r];
    if (N == K) values[q * (K + 1) + K] = T(0);
  }
}

template <typename T, int K, bool kDerivatives>
inline void features_on_knots(const T* x, int64_t n, const T* t, int num_intervals,
                              int64_t out_stride, const Scratch<T>& s) {
  constexpr int C = IntervalConstants<K>::kCount;
  const int num_knots = num_intervals + 1;
  const int grid_size = num_intervals - 2 * K;
  if (num_intervals > kTableIntervals) {
    for (int64_t q = 0; q < n; ++q) {
      const T xv = x[q];
      const T e = exp_of(-xv);
      s.silu_values[q] = kDerivatives ? silu_derivative(xv, e) : silu(xv, e);
      const int m = knot_interval_nonuniform(xv, t, num_knots);
      T values[K + 1];
      int first = 0;
      if (m >= 0) {
        T constants[C];
        interval_constants<K>(t, num_knots, m, constants, 1);
        first = nonuniform_position_values<T, K, kDerivatives>(xv - constants[0], constants, m,
                                                               grid_size, values);
      }
      for (int r = 0; r <= K; ++r) s.basis_values[q * (K + 1) + r] = m >= 0 ? values[r] : T(0);
      s.row_offset[q] = (1 + static_cast<int64_t>(first)) * out_stride;
    }
    return;
  }
  // Blocks of kSortBlock positions: (1) silu and the knot interval, a vector loop (the interval
  // by counting the inner knots at or below x, padded with +inf); (2) the positions sorted by
  // interval (counting sort); (3) per interval, the basis values of its positions in a vector
  // loop with that interval's constants broadcast (no table lookup per position); (4) the values
  // moved back to their positions. Inputs outside the grid form one more bucket, of zeros.
  // Per interval: its constants, its clamped first row (as a packed row offset) and the shift
  // that moves its values there (clamp_to_rows, applied when they are moved back).
  constexpr int N = kDerivatives ? K : K + 1;  // non-zero values per position
  T table[kTableIntervals * C];  // interval m's constants at m * C
  T inner[kTableIntervals];
  int64_t offsets[kTableIntervals + 1];
  int shifts[kTableIntervals + 1];
  for (int m = 0; m < num_intervals; ++m) {
    interval_constants<K>(t, num_knots, m, table + m * C, 1);
    const int first = kDerivatives ? m - K + 1 : m - K;
    const int max_first = kDerivatives ? grid_size + 1 : grid_size - 1;
    const int clamped = first < 0 ? 0 : (first > max_first ? max_first : first);
    offsets[m] = (1 + static_cast<int64_t>(clamped)) * out_stride;
    shifts[m] = clamped - first;
  }
  offsets[num_intervals] = out_stride;  // outside: rows 1 .. K + 1, finite weights times zero
  shifts[num_intervals] = 0;
  for (int i = 0; i < kTableIntervals; ++i) {
    inner[i] = i >= 1 && i < num_intervals ? t[i] : static_cast<T>(__builtin_inf());
  }
  const T lo = t[0];
  const T hi = t[num_intervals];
  const int outside = num_intervals;
  for (int64_t b0 = 0; b0 < n; b0 += kSortBlock) {
    const int64_t nb = n - b0 < kSortBlock ? n - b0 : kSortBlock;
    const T* xb = x + b0;
    int32_t interval[kSortBlock];
#pragma GCC ivdep
    for (int64_t q = 0; q < nb; ++q) {
      const T xv = xb[q];
      const T e = exp_in_loop(-xv);
      s.silu_values[b0 + q] = kDerivatives ? silu_derivative(xv, e) : silu(xv, e);
    }
    // The interval, or `outside` (NaN too): integer sums and a min in a loop of their own, which
    // GCC vectorizes (a select on `lo <= x < hi`, or these sums beside the exp, it does not).
    for (int64_t q = 0; q < nb; ++q) {
      const T xv = xb[q];
      int32_t m = 0;
#pragma GCC unroll 16
      for (int i = 1; i < kTableIntervals; ++i) m += xv >= inner[i];
      m += xv >= lo ? 0 : 2 * kTableIntervals;
      m += xv < hi ? 0 : 2 * kTableIntervals;
      interval[q] = m < outside ? m : outside;
    }
    // Counting sort with kCounters interleaved counters (position q counts in set q % kCounters):
    // a run of positions in one interval then increments independent counters, not one counter
    // whose every increment waits for the previous store (bench/NOTES.md).
    constexpr int kCounters = 4;
    int32_t counts[kCounters][kTableIntervals + 1];
    for (int l = 0; l < kCounters; ++l) {
      for (int m = 0; m <= outside; ++m) counts[l][m] = 0;
    }
    for (int64_t q = 0; q < nb; ++q) ++counts[q % kCounters][interval[q]];
    int32_t start[kTableIntervals + 2];
    int32_t cursor[kCounters][kTableIntervals + 1];
    int32_t total = 0;
    for (int m = 0; m <= outside; ++m) {
      start[m] = total;
      for (int l = 0; l < kCounters; ++l) {
        cursor[l][m] = total;
        total += counts[l][m];
      }
    }
    start[outside + 1] = total;
    int32_t order[kSortBlock];
    T sorted[kSortBlock];
    for (int64_t q = 0; q < nb; ++q) {
      const int32_t k = cursor[q % kCounters][interval[q]]++;
      order[k] = static_cast<int32_t>(q);
      sorted[k] = xb[q];
    }
    T values[kSortBlock * (K + 1)];
    for (int m = 0; m < num_intervals; ++m) {
      const int32_t count = start[m + 1] - start[m];
      T* bucket = values + start[m] * (K + 1);
      interval_values<T, K, N>(sorted + start[m], count, table + m * C, bucket);
      const int shift = shifts[m];
      if (shift == 0) continue;
      // near the ends of the grid: the values move to the clamped first row (clamp_to_rows)
      for (int32_t k = 0; k < count; ++k) {
        T* v = bucket + k * (K + 1);
        T moved[K + 1];
        for (int r = 0; r <= K; ++r) {
          moved[r] = r < N && r + shift >= 0 && r + shift < N ? v[r + shift] : T(0);
        }
        for (int r = 0; r <= K; ++r) v[r] = moved[r];
      }
    }
    for (int32_t k = start[outside]; k < start[outside + 1]; ++k) {
      for (int r = 0; r <= K; ++r) values[k * (K + 1) + r] = T(0);
    }
    for (int32_t k = 0; k < nb; ++k) {
      const int64_t q = b0 + order[k];
      memcpy(s.basis_values + q * (K + 1), values + k * (K + 1), sizeof(T) * (K + 1));
      s.row_offset[q] = offsets[interval[order[k]]];
    }
  }
}
