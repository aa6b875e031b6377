// CPU kernels: the input-gradient pass (per tap the coefficient silu'(x) * base + the
// spline derivative from weight differences, times grad_out, positions in registers).
// A part of kernels_impl.h, which includes it inside the instruction-set build's namespace
// (internal linkage); not a header of its own.

// Input gradient of NP consecutive input positions whose every tap reads an output (stride 1),
// NV vectors of output channels from o0: per tap, the coefficient phi'(x) = silu'(x) * base row +
// sum_r N_r(x) / h * difference row r (K rows) times grad_out, summed in registers and added to
// dx once. w_block: the channel's column block from o0 (cpu_input_grad_layout: [k][rows][NV
// vectors]); the scratch row offsets are row indices.
// kChecked (NP = 1): any position and stride; taps that read no output are skipped.
template <typename T, int K, int NV, int NP, bool kChecked = false>
inline void input_grad_positions(const RowTaps& taps, const Scratch<T>& s,
                                 const T* __restrict__ w_block, int64_t rows, int64_t os,
                                 const T* __restrict__ gy_group, int64_t pos, int64_t q,
                                 int64_t o0, T* __restrict__ dx) {
  using V = typename Vector<T>::type;
  constexpr int kLanes = kVectorBytes / sizeof(T);
  constexpr int64_t kWidth = NV * kLanes;  // the block's row stride
  V acc[NP][2];
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) acc[i][0] = acc[i][1] = V{};
  for (int64_t j = 0; j < taps.count; ++j) {
    int64_t t = pos + taps.pad - j * taps.spacing;
    if (kChecked) {
      t = tap_output(taps, pos, j);
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
inline void input_grad_run(const RowTaps& taps, const Scratch<T>& s,
                           const T* __restrict__ w_channel, int64_t rows, int64_t os,
                           const T* __restrict__ gy_group, int64_t chunk_start, int64_t begin,
                           int64_t end, int64_t o0, T* __restrict__ dx_row) {
  const T* w_block = w_channel + o0 * taps.count * rows;
  int64_t pos = begin;
  for (; pos + NP <= end; pos += NP) {
    input_grad_positions<T, K, NV, NP>(taps, s, w_block, rows, os, gy_group, pos,
                                       pos - chunk_start, o0, dx_row + pos);
  }
  for (; pos < end; ++pos) {
    input_grad_positions<T, K, NV, 1>(taps, s, w_block, rows, os, gy_group, pos,
                                      pos - chunk_start, o0, dx_row + pos);
  }
}

// Positions [begin, end) of a chunk (scratch index = position - chunk_start) whose every tap
// reads an output, over every column block: blocks of 8, 4, 2, 1 packed vectors
// (input_grad_block_vectors), kPackSplit of this build's vectors each.
template <typename T, int K>
inline void input_grad_columns(const RowTaps& taps, const Scratch<T>& s,
                               const T* __restrict__ w_channel, int64_t rows, int64_t os,
                               const T* __restrict__ gy_group, int64_t chunk_start, int64_t begin,
                               int64_t end, T* __restrict__ dx_row) {
  constexpr int64_t kPackLanes = kPackVectorBytes / sizeof(T);  // columns per packed vector
  int64_t o0 = 0;
  for (; o0 + 8 * kPackLanes <= os; o0 += 8 * kPackLanes) {
    input_grad_run<T, K, 8 * kPackSplit, input_grad_tile_positions(8)>(
        taps, s, w_channel, rows, os, gy_group, chunk_start, begin, end, o0, dx_row);
  }
  for (; o0 + 4 * kPackLanes <= os; o0 += 4 * kPackLanes) {
    input_grad_run<T, K, 4 * kPackSplit, input_grad_tile_positions(4)>(
        taps, s, w_channel, rows, os, gy_group, chunk_start, begin, end, o0, dx_row);
  }
  for (; o0 + 2 * kPackLanes <= os; o0 += 2 * kPackLanes) {
    input_grad_run<T, K, 2 * kPackSplit, input_grad_tile_positions(2)>(
        taps, s, w_channel, rows, os, gy_group, chunk_start, begin, end, o0, dx_row);
  }
  for (; o0 < os; o0 += kPackLanes) {
    input_grad_run<T, K, kPackSplit, input_grad_tile_positions(1)>(
        taps, s, w_channel, rows, os, gy_group, chunk_start, begin, end, o0, dx_row);
  }
}

// One position (any stride, each tap checked) over every column block.
template <typename T, int K>
inline void input_grad_checked(const RowTaps& taps, const Scratch<T>& s,
                               const T* __restrict__ w_channel, int64_t rows, int64_t os,
                               const T* __restrict__ gy_group, int64_t pos, int64_t q,
                               T* __restrict__ dx) {
  constexpr int64_t kPackLanes = kPackVectorBytes / sizeof(T);  // columns per packed vector
  const int64_t block = taps.count * rows;  // times the block's columns
  int64_t o0 = 0;
  for (; o0 + 8 * kPackLanes <= os; o0 += 8 * kPackLanes) {
    input_grad_positions<T, K, 8 * kPackSplit, 1, true>(taps, s, w_channel + o0 * block, rows, os,
                                                        gy_group, pos, q, o0, dx);
  }
  for (; o0 + 4 * kPackLanes <= os; o0 += 4 * kPackLanes) {
    input_grad_positions<T, K, 4 * kPackSplit, 1, true>(taps, s, w_channel + o0 * block, rows, os,
                                                        gy_group, pos, q, o0, dx);
  }
  for (; o0 + 2 * kPackLanes <= os; o0 += 2 * kPackLanes) {
    input_grad_positions<T, K, 2 * kPackSplit, 1, true>(taps, s, w_channel + o0 * block, rows, os,
                                                        gy_group, pos, q, o0, dx);
  }
  for (; o0 < os; o0 += kPackLanes) {
    input_grad_positions<T, K, kPackSplit, 1, true>(taps, s, w_channel + o0 * block, rows, os,
                                                    gy_group, pos, q, o0, dx);
  }
}

// Adds the input gradient of the row positions [c0, c0 + n) through one row of taps (whose
// features are at scratch positions 0 .. n) to dx_row: w_channel the taps' packed block
// (cpu_input_grad_layout), gy_row the grad_out rows [taps.outputs][os] they read. Interior
// positions (stride 1, every tap reading an output) without checks, the others tap by tap.
template <typename T, int K>
inline void input_grad_span(const RowTaps& taps, const Scratch<T>& s,
                            const T* __restrict__ w_channel, int64_t rows, int64_t os,
                            const T* __restrict__ gy_row, int64_t c0, int64_t n,
                            T* __restrict__ dx_row) {
  const int64_t span = (taps.count - 1) * taps.spacing;
  const int64_t full_begin = taps.step == 1 ? (span - taps.pad > 0 ? span - taps.pad : 0) : 0;
  const int64_t full_end = taps.step == 1 ? taps.outputs - taps.pad : 0;
  int64_t lo = full_begin > c0 ? full_begin : c0;
  int64_t hi = full_end < c0 + n ? full_end : c0 + n;
  if (hi < lo) hi = lo;
  if (hi > lo) {
    input_grad_columns<T, K>(taps, s, w_channel, rows, os, gy_row, c0, lo, hi, dx_row);
  }
  // The other positions (near the ends, or any stride): each tap checked.
  for (int64_t pos = c0; pos < c0 + n; ++pos) {
    if (pos == lo && hi > lo) pos = hi;
    if (pos >= c0 + n) break;
    input_grad_checked<T, K>(taps, s, w_channel, rows, os, gy_row, pos, pos - c0, dx_row + pos);
  }
}

// Positions [c0, c0 + n) of the input gradient of item (batch element b, input channel cin),
// whose features are at scratch positions 0 .. n.
template <typename T, int K>
inline void input_grad_chunk(const InputGradArgs<T>& a, const Scratch<T>& s, int64_t b,
                             int64_t cin, int64_t c0, int64_t n) {
  const KanConv1dParams& p = a.p;
  const RowTaps taps = conv1d_taps(p);
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const int64_t g = cin / p.in_per_group;
  T* dx_row = a.grad_x + (b * p.in_channels + cin) * p.length;
  const T* w_channel = a.packed_weight + cin * taps.count * rows * os;
  const T* gy_group = a.grad_out_t + (b * p.groups + g) * p.out_length * os;
  for (int64_t q = 0; q < n; ++q) dx_row[c0 + q] = T(0);
  input_grad_span<T, K>(taps, s, w_channel, rows, os, gy_group, c0, n, dx_row);
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
