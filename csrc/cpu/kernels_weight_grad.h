// CPU kernels: the weight-gradient pass (positions sorted by knot interval, each bucket's
// sums of silu * grad_out and b_r * grad_out in registers).
// A part of kernels_impl.h, which includes it inside the instruction-set build's namespace
// (internal linkage); not a header of its own.

// The entries of one knot-interval bucket for one tap, as (position, grad_out row): from the
// list of pairs that bucket_pairs_blocked makes (any stride), or straight from the bucket's
// sorted entries (stride 1: entry i is window position local[i] of the element whose grad_out
// rows start at first_row[i], and tap shift `shift` reads row first_row[i] + local[i] - shift).
struct PairEntries {
  const int64_t* __restrict__ pairs;
  int64_t position(int64_t i) const { return pairs[2 * i]; }
  int64_t row(int64_t i) const { return pairs[2 * i + 1]; }
};
struct SortedEntries {
  const int64_t* __restrict__ order;
  const int64_t* __restrict__ local;
  const int64_t* __restrict__ first_row;
  int64_t shift;
  int64_t position(int64_t i) const { return order[i]; }
  int64_t row(int64_t i) const { return first_row[i] + local[i] - shift; }
};

// Entries [begin, end) of one knot-interval bucket of one tap, NV vectors of output channels
// from o0: sums silu * grad_out and b_r * grad_out over the entries in registers, then adds them
// to the gradient rows (base row and the bucket's K + 1 spline rows).
template <typename T, int K, int NV, typename Entries>
inline void weight_grad_bucket(const Entries& entries, int64_t begin, int64_t end,
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
  for (int64_t i = begin; i < end; ++i) {
    const int64_t pos = entries.position(i);
    const T* gy_row = gy + entries.row(i) * os + o0;
    const T silu_value = s.silu_values[pos];
    T values[K + 1];
    for (int r = 0; r <= K; ++r) values[r] = s.basis_values[pos * (K + 1) + r];
    for (int v = 0; v < NV; ++v) {
      const V go = load_vector(gy_row + v * kLanes);
      acc_base[v] += silu_value * go;
      for (int r = 0; r <= K; ++r) acc_spline[r][v] += values[r] * go;
    }
  }
  for (int v = 0; v < NV; ++v) {
    T* base = grad_base + o0 + v * kLanes;
    store_vector(base, load_vector(base) + acc_base[v]);
    for (int r = 0; r <= K; ++r) {
      T* spline = grad_spline + r * os + o0 + v * kLanes;
      store_vector(spline, load_vector(spline) + acc_spline[r][v]);
    }
  }
}

template <typename T, int K>
void weight_grad_impl(const WeightGradArgs<T>& a, int64_t begin, int64_t end,
                      void* scratch_base) {
  const KanConv1dParams& p = a.p;
  const RowTaps taps = conv1d_taps(p);
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
        a.packed_grad + (chunk * p.in_channels + cin) * taps.count * rows * os;
    memset(grad_channel, 0, sizeof(T) * taps.count * rows * os);  // this item's block

    // Work blocks: nb batch elements x nt output positions from (b0, t0); the windows of the
    // nb elements lie end to end in the scratch, and their knot buckets are shared.
    for (int64_t b0 = chunk * chunk_size; b0 < b_end; b0 += batch_block) {
      const int64_t nb = b_end - b0 < batch_block ? b_end - b0 : batch_block;
      for (int64_t t0 = 0; t0 < p.out_length; t0 += time_block) {
        const int64_t nt = t0 + time_block < p.out_length ? time_block : p.out_length - t0;
        const int64_t window = forward_window(p, nt);
        evaluate_windows<T, K>(a.x + (b0 * p.in_channels + cin) * p.length,
                               p.in_channels * p.length, nb, p.length, t0 * taps.step - taps.pad,
                               window, a.knots, p.num_intervals, inv_h, os, s);
        const int64_t row_stride = p.groups * p.out_length;  // grad_out rows per batch element
        bucket_by_interval(s, nb, window, row_stride, os, buckets, order, local, first_row, start,
                           cursor);
        const T* gy_block = a.grad_out_t + ((b0 * p.groups + g) * p.out_length + t0) * os;
        for (int64_t j = 0; j < taps.count; ++j) {
          T* grad_base = grad_channel + j * rows * os;
          for (int64_t m = 0; m < buckets; ++m) {
            if (taps.step == 1) {
              // the bucket's entries that tap j pairs with an output of the block: window
              // positions [shift, shift + nt), a range of the bucket
              const int64_t shift = j * taps.spacing;
              const SortedEntries sorted{order, local, first_row, shift};
              int64_t lo, hi;
              local_range(local, start[m], start[m + 1], shift, shift + nt, &lo, &hi);
              if (hi == lo) continue;
              T* grad_spline = grad_base + (1 + m) * os;
              int64_t o0 = 0;
              for (; o0 + kBlock * kLanes <= os; o0 += kBlock * kLanes) {
                weight_grad_bucket<T, K, kBlock>(sorted, lo, hi, s, gy_block, os, o0, grad_base,
                                                 grad_spline);
              }
              for (; o0 < os; o0 += kLanes) {
                weight_grad_bucket<T, K, 1>(sorted, lo, hi, s, gy_block, os, o0, grad_base,
                                            grad_spline);
              }
              continue;
            }
            // Output t0 + t of element bl reads window position t * step + j * spacing.
            const int64_t count =
                bucket_pairs_blocked(order, local, first_row, start[m], start[m + 1],
                                     j * taps.spacing, taps.step, nt, pairs);
            if (count == 0) continue;
            T* grad_spline = grad_base + (1 + m) * os;
            int64_t o0 = 0;
            for (; o0 + kBlock * kLanes <= os; o0 += kBlock * kLanes) {
              weight_grad_bucket<T, K, kBlock>(PairEntries{pairs}, 0, count, s, gy_block, os, o0,
                                               grad_base, grad_spline);
            }
            for (; o0 < os; o0 += kLanes) {
              weight_grad_bucket<T, K, 1>(PairEntries{pairs}, 0, count, s, gy_block, os, o0,
                                          grad_base, grad_spline);
            }
          }
        }
      }
    }
  }
}
