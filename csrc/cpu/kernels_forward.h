// CPU kernels: the forward pass (output tiles of several positions in registers, or
// knot-interval buckets with the weights in registers) and the transposes.
// A part of kernels_impl.h, which includes it inside the instruction-set build's namespace
// (internal linkage); not a header of its own.

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
inline void forward_buckets_block(const RowTaps& taps, const Scratch<T>& s,
                                  const int64_t* pairs, const int64_t* pair_start,
                                  int64_t buckets, const T* w_channel, int64_t rows, int64_t os,
                                  int64_t o0, T* acc) {
  constexpr int64_t kLanes = kVectorBytes / sizeof(T);
  for (int64_t j = 0; j < taps.count; ++j) {
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
// every tap of one input channel, every line of them (padding taps have zero features: no check
// in the loop). NP * NV
// accumulators stay in registers: enough independent chains that the FMAs' latency is hidden
// (each accumulator takes K + 2 dependent FMAs per tap).
template <typename T, int K, int NV, int NP, int64_t kRowStride = 0>
inline void forward_positions(const RowTaps& taps, const Scratch<T>& s,
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
  const int64_t step = taps.step;
  int64_t line_first = t * step;  // the current line's position of tap 0
  int64_t j = 0;                  // the tap within the line (no division per tap)
  for (int64_t tap = 0; tap < taps.lines * taps.count; ++tap) {
    const int64_t q0 = line_first + j * taps.spacing;
    if (++j == taps.count) {
      j = 0;
      line_first += taps.line_spacing;
    }
    const T* w_tap = w_channel + tap * rows * ld + o0;
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
inline void forward_outputs(const RowTaps& taps, const Scratch<T>& s,
                            const T* __restrict__ w_channel, int64_t rows, int64_t os,
                            int64_t nt, int64_t o0, T* __restrict__ acc) {
  int64_t t = 0;
  for (; t + NP <= nt; t += NP) {
    forward_positions<T, K, NV, NP, kRowStride>(taps, s, w_channel, rows, os, t, o0, acc + t * os);
  }
  for (; t < nt; ++t) {
    forward_positions<T, K, NV, 1, kRowStride>(taps, s, w_channel, rows, os, t, o0, acc + t * os);
  }
}

// Outputs [0, nt) of a tile, every column block of its os-wide accumulator rows (the widest
// register tiles first; a single block of 1, 2 or 4 vectors with its row stride as a constant).
template <typename T, int K>
inline void forward_columns(const RowTaps& taps, const Scratch<T>& s,
                            const T* __restrict__ w_channel, int64_t rows, int64_t os, int64_t nt,
                            T* __restrict__ acc) {
  constexpr int64_t kLanes = kVectorBytes / sizeof(T);
  if (os == 4 * kLanes && kForwardWidest >= 4) {
    forward_outputs<T, K, 4, forward_tile_positions(4), 4 * kLanes>(taps, s, w_channel, rows, os,
                                                                  nt, 0, acc);
    return;
  }
  if (os == 2 * kLanes) {
    forward_outputs<T, K, 2, forward_tile_positions(2), 2 * kLanes>(taps, s, w_channel, rows, os,
                                                                  nt, 0, acc);
    return;
  }
  if (os == kLanes) {
    forward_outputs<T, K, 1, forward_tile_positions(1), kLanes>(taps, s, w_channel, rows, os, nt,
                                                              0, acc);
    return;
  }
  int64_t o0 = 0;
  for (; kForwardWidest >= 8 && o0 + 8 * kLanes <= os; o0 += 8 * kLanes) {
    forward_outputs<T, K, 8, forward_tile_positions(8)>(taps, s, w_channel, rows, os, nt, o0,
                                                        acc);
  }
  for (; kForwardWidest >= 4 && o0 + 4 * kLanes <= os; o0 += 4 * kLanes) {
    forward_outputs<T, K, 4, forward_tile_positions(4)>(taps, s, w_channel, rows, os, nt, o0,
                                                        acc);
  }
  for (; o0 + 2 * kLanes <= os; o0 += 2 * kLanes) {
    forward_outputs<T, K, 2, forward_tile_positions(2)>(taps, s, w_channel, rows, os, nt, o0,
                                                        acc);
  }
  for (; o0 < os; o0 += kLanes) {
    forward_outputs<T, K, 1, forward_tile_positions(1)>(taps, s, w_channel, rows, os, nt, o0,
                                                        acc);
  }
}

template <typename T, int K>
void forward_impl(const ForwardArgs<T>& a, int64_t begin, int64_t end, void* scratch_base) {
  const KanConv1dParams& p = a.p;
  const RowTaps taps = conv1d_taps(p);
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
  int64_t* pairs = pair_start + taps.count * buckets + 1;  // [2 * k * positions]
  constexpr int64_t kLanes = kVectorBytes / sizeof(T);

  for (int64_t item = begin; item < end; ++item) {
    const int64_t tile = item % a.num_time_tiles;
    const int64_t g = (item / a.num_time_tiles) % p.groups;
    const int64_t b0 = item / (a.num_time_tiles * p.groups) * a.batch_block;
    const int64_t nb = (p.batch - b0 < a.batch_block) ? p.batch - b0 : a.batch_block;
    const int64_t t0 = tile * a.time_tile;
    const int64_t nt = (p.out_length - t0 < a.time_tile) ? p.out_length - t0 : a.time_tile;
    const int64_t first = t0 * taps.step - taps.pad;
    const int64_t window = forward_window(p, nt);
    // Positions grouped by knot interval keep a bucket's weight rows in registers; that pays
    // for wide output rows and short tiles when buckets hold several positions (see
    // forward_uses_buckets).
    const bool use_buckets = forward_uses_buckets(p, a.layout, nb * window, sizeof(T), nt);
    memset(s.accumulator, 0, sizeof(T) * nb * nt * os);

    for (int64_t c = 0; c < p.in_per_group; ++c) {
      const int64_t cin = g * p.in_per_group + c;
      const T* w_channel = a.packed_weight + cin * taps.count * rows * os;
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
          forward_columns<T, K>(taps, sb, w_channel, rows, os, nt, acc);
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
      for (int64_t j = 0; j < taps.count; ++j) {
        for (int64_t m = 0; m < buckets; ++m) {
          const int64_t done = pair_start[j * buckets + m];
          pair_start[j * buckets + m + 1] =
              done + bucket_pairs_blocked(order, local, first_row, start[m], start[m + 1],
                                          j * taps.spacing, taps.step, nt, pairs + 2 * done);
        }
      }
      const int64_t acc_rows = nb * nt;
      int64_t o0 = 0;
      for (; bucket_vectors<K>() >= 4 && o0 + 4 * kLanes <= os; o0 += 4 * kLanes) {
        forward_buckets_block<T, K, 4>(taps, s, pairs, pair_start, buckets, w_channel, rows, os, o0,
                                       s.accumulator + o0 * acc_rows);
      }
      for (; bucket_vectors<K>() >= 2 && o0 + 2 * kLanes <= os; o0 += 2 * kLanes) {
        forward_buckets_block<T, K, 2>(taps, s, pairs, pair_start, buckets, w_channel, rows, os, o0,
                                       s.accumulator + o0 * acc_rows);
      }
      for (; o0 < os; o0 += kLanes) {
        forward_buckets_block<T, K, 1>(taps, s, pairs, pair_start, buckets, w_channel, rows, os, o0,
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
