// CPU kernels of KANLinear: the KANConv1d micro-kernels over row tiles of x [N, in], each input
// feature one tap on its own knots (features_on_knots). The pass of the translation unit
// (MKCC_CPU_PASS_*) picks the function compiled here.
// A part of kernels_impl.h, which includes it inside the instruction-set build's namespace
// (internal linkage); not a header of its own.

// The features of input features [i0, i0 + count) of rows [n0, n0 + nr) at scratch positions
// (i - i0) * row_tile + (n - n0) (feature i - i0's block: batch_view): each feature's column
// gathered into s.inputs, then evaluated on its knots.
template <typename T, int K, bool kDerivatives>
inline void linear_features(const LinearInputs<T>& a, int64_t n0, int64_t nr, int64_t i0,
                            int64_t count, int64_t out_stride, const Scratch<T>& s) {
  const KanLinearParams& p = a.p;
  const int64_t knots_per_feature = p.num_intervals + 1;
  for (int64_t f = 0; f < count; ++f) {
    T* column = s.inputs + f * a.row_tile;
    const T* x = a.x + n0 * p.in_features + i0 + f;
    for (int64_t n = 0; n < nr; ++n) column[n] = x[n * p.in_features];
    features_on_knots<T, K, kDerivatives>(column, nr, a.knots + (i0 + f) * knots_per_feature,
                                          p.num_intervals, out_stride,
                                          batch_view<T, K>(s, f, a.row_tile));
  }
}

#if defined(MKCC_CPU_PASS_FORWARD)
// Row tile `item`: accumulators [row_tile][out_stride] in scratch, feature chunk by feature
// chunk (forward_columns: positions in registers, the chunk's weights from L1), then copied out.
template <typename T, int K>
void linear_forward_impl(const LinearForwardArgs<T>& a, int64_t begin, int64_t end,
                         void* scratch_base) {
  const KanLinearParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const Scratch<T> s = carve<T>(scratch_base, linear_forward_scratch(a.layout, a.row_tile,
                                                                     sizeof(T)));
  for (int64_t item = begin; item < end; ++item) {
    const int64_t n0 = item * a.row_tile;
    const int64_t nr = p.batch - n0 < a.row_tile ? p.batch - n0 : a.row_tile;
    memset(s.accumulator, 0, sizeof(T) * nr * os);
    for (int64_t i0 = 0; i0 < p.in_features; i0 += kLinearFeatureChunk) {
      const int64_t count =
          p.in_features - i0 < kLinearFeatureChunk ? p.in_features - i0 : kLinearFeatureChunk;
      linear_features<T, K, false>(a, n0, nr, i0, count, os, s);
      const RowTaps taps{count, 1, a.row_tile, 0, nr};
      forward_columns<T, K>(taps, s, a.packed_weight + i0 * rows * os, rows, os, nr,
                            s.accumulator);
    }
    for (int64_t n = 0; n < nr; ++n) {
      memcpy(a.out + (n0 + n) * p.out_features, s.accumulator + n * os,
             sizeof(T) * p.out_features);
    }
  }
}
#elif defined(MKCC_CPU_PASS_INPUT_GRAD)
// Row tile `item`: per feature, the coefficient silu'(x) * base + sum_r B_{j, K-1}(x) *
// derivative row r times the grad_out row, summed over output channels (input_grad_columns),
// into a [chunk][row_tile] buffer, then scattered to grad_x's rows.
template <typename T, int K>
void linear_input_grad_impl(const LinearInputGradArgs<T>& a, int64_t begin, int64_t end,
                            void* scratch_base) {
  const KanLinearParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const Scratch<T> s = carve<T>(scratch_base, linear_input_grad_scratch(a.row_tile, sizeof(T)));
  for (int64_t item = begin; item < end; ++item) {
    const int64_t n0 = item * a.row_tile;
    const int64_t nr = p.batch - n0 < a.row_tile ? p.batch - n0 : a.row_tile;
    const T* gy = a.grad_out_rows + n0 * os;
    const RowTaps taps{1, 1, 0, 0, nr};
    for (int64_t i0 = 0; i0 < p.in_features; i0 += kLinearFeatureChunk) {
      const int64_t count =
          p.in_features - i0 < kLinearFeatureChunk ? p.in_features - i0 : kLinearFeatureChunk;
      linear_features<T, K, true>(a, n0, nr, i0, count, 1, s);  // row indices
      memset(s.accumulator, 0, sizeof(T) * count * a.row_tile);
      for (int64_t f = 0; f < count; ++f) {
        input_grad_columns<T, K>(taps, batch_view<T, K>(s, f, a.row_tile),
                                 a.packed_weight + (i0 + f) * rows * os, rows, os, gy, 0, 0, nr,
                                 s.accumulator + f * a.row_tile);
      }
      for (int64_t n = 0; n < nr; ++n) {
        T* dx = a.grad_x + (n0 + n) * p.in_features + i0;
        for (int64_t f = 0; f < count; ++f) dx[f] = s.accumulator[f * a.row_tile + n];
      }
    }
  }
}
#else
// Input features [begin, end), each item owning its features' gradient blocks: row tile by row
// tile (the tile's grad_out rows stay in L2 while the features run over them), each feature's
// rows sorted by knot interval and every bucket's sums in registers (weight_grad_bucket).
template <typename T, int K>
void linear_weight_grad_impl(const LinearWeightGradArgs<T>& a, int64_t begin, int64_t end,
                             void* scratch_base) {
  const KanLinearParams& p = a.p;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const ScratchLayout layout = linear_weight_grad_scratch(p, a.row_tile, sizeof(T));
  const Scratch<T> s = carve<T>(scratch_base, layout);
  const int64_t buckets = p.grid_size;  // first rows 0 .. G - 1
  int64_t* order = s.index;             // [row_tile] sorted by bucket
  int64_t* local = order + a.row_tile;  // [row_tile]
  int64_t* first_row = local + a.row_tile;
  int64_t* start = first_row + a.row_tile;  // [buckets + 1]
  int64_t* cursor = start + buckets + 1;    // [buckets + 1]
  constexpr int64_t kLanes = kVectorBytes / sizeof(T);
  constexpr int kBlock = bucket_vectors<K>();
  memset(a.packed_grad + begin * rows * os, 0, sizeof(T) * (end - begin) * rows * os);
  for (int64_t n0 = 0; n0 < p.batch; n0 += a.row_tile) {
    const int64_t nr = p.batch - n0 < a.row_tile ? p.batch - n0 : a.row_tile;
    const T* gy = a.grad_out_rows + n0 * os;
    for (int64_t i = begin; i < end; ++i) {
      linear_features<T, K, false>(a, n0, nr, i, 1, os, s);
      bucket_by_interval(s, 1, nr, 0, os, buckets, order, local, first_row, start, cursor);
      const SortedEntries sorted{order, local, first_row, 0};
      T* grad_base = a.packed_grad + i * rows * os;
      for (int64_t m = 0; m < buckets; ++m) {
        if (start[m + 1] == start[m]) continue;
        T* grad_spline = grad_base + (1 + m) * os;
        int64_t o0 = 0;
        for (; o0 + kBlock * kLanes <= os; o0 += kBlock * kLanes) {
          weight_grad_bucket<T, K, kBlock>(sorted, start[m], start[m + 1], s, gy, os, o0,
                                           grad_base, grad_spline);
        }
        for (; o0 < os; o0 += kLanes) {
          weight_grad_bucket<T, K, 1>(sorted, start[m], start[m + 1], s, gy, os, o0, grad_base,
                                      grad_spline);
        }
      }
    }
  }
}
#endif
