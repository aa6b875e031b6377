// CPU kernels of KANConv2d: the KANConv1d micro-kernels along image rows, one row of taps per
// kernel row (KanConv2dParams: kernel row i of input channel c is packed as the 1-D channel
// c * kh + i). Each pass evaluates an input row's features once per work item and contracts them
// through every kernel row that reads it. The pass of the translation unit (MKCC_CPU_PASS_*)
// picks the function compiled here.
// A part of kernels_impl.h, which includes it inside the instruction-set build's namespace
// (internal linkage); not a header of its own.

// The input rows [first_row + lo, first_row + hi) (those inside the image of the window rows
// [0, rows) from first_row) of channel row x_channel ([H][W]): each row's window of `width`
// positions from -pad_left, at scratch positions r * width .. (padding columns: zero features
// with zero_padding, else row offset -1). With zero_padding the window rows outside the image
// get zero features too.
template <typename T, int K>
inline void conv2d_window_features(const KanConv2dParams& p, const T* x_channel,
                                   int64_t first_row, int64_t rows, int64_t lo, int64_t hi,
                                   const T* knots, int64_t os, const Scratch<T>& s,
                                   bool zero_padding) {
  const KanConv1dParams& r = p.row;
  const int64_t width = conv2d_window_width(p);
  if (zero_padding) {
    mark_padding<T, K>(0, 0, lo * width, os, s, true);
    mark_padding<T, K>(0, 0, (rows - hi) * width, os, batch_view<T, K>(s, hi, width), true);
  }
  if (hi <= lo) return;
  evaluate_windows<T, K>(x_channel + (first_row + lo) * r.length, r.length, hi - lo, r.length,
                         -r.pad_left, width, knots, r.num_intervals, static_cast<T>(r.inv_h), os,
                         batch_view<T, K>(s, lo, width), zero_padding);
}

// The window rows [lo, hi) of `rows` from first_row that lie inside the image.
inline void conv2d_inside_rows(const KanConv2dParams& p, int64_t first_row, int64_t rows,
                               int64_t* lo, int64_t* hi) {
  inside_range(p.height, first_row, rows, lo, hi);
}

#if defined(MKCC_CPU_PASS_FORWARD)
// Output rows [oh0, oh0 + nh) of one batch element and group per item: accumulators
// [nh * W_out][out_stride] in scratch; per input channel the window rows' features, then for
// every output row the 1-D forward over the kernel's rows of taps (forward_columns with kh
// lines), then transposed into the output.
template <typename T, int K>
void conv2d_forward_impl(const Conv2dForwardArgs<T>& a, int64_t begin, int64_t end,
                         void* scratch_base) {
  const KanConv2dParams& p = a.p;
  const KanConv1dParams& r = p.row;
  RowTaps taps = conv1d_taps(r);
  const int64_t width = conv2d_window_width(p);
  taps.lines = p.kernel_h;
  taps.line_spacing = p.dilation_h * width;
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const int64_t ow = r.out_length;
  const int64_t plane = p.out_height * ow;
  const Scratch<T> s =
      carve<T>(scratch_base, conv2d_forward_scratch(p, a.layout, a.row_tile, sizeof(T)));
  for (int64_t item = begin; item < end; ++item) {
    const int64_t tile = item % a.num_row_tiles;
    const int64_t g = (item / a.num_row_tiles) % r.groups;
    const int64_t b = item / (a.num_row_tiles * r.groups);
    const int64_t oh0 = tile * a.row_tile;
    const int64_t nh = p.out_height - oh0 < a.row_tile ? p.out_height - oh0 : a.row_tile;
    const int64_t first_row = oh0 * p.stride_h - p.pad_top;
    const int64_t window_rows = conv2d_window_rows(p, nh);
    int64_t lo, hi;
    conv2d_inside_rows(p, first_row, window_rows, &lo, &hi);
    memset(s.accumulator, 0, sizeof(T) * nh * ow * os);
    for (int64_t c = 0; c < r.in_per_group; ++c) {
      const int64_t cin = g * r.in_per_group + c;
      conv2d_window_features<T, K>(p, a.x + (b * r.in_channels + cin) * p.height * r.length,
                                   first_row, window_rows, lo, hi, a.knots, os, s, true);
      // Every kernel row at once (rows outside the image have zero features), so that the
      // accumulators stay in registers over all kh * kw taps of the channel.
      for (int64_t oh = 0; oh < nh; ++oh) {
        forward_columns<T, K>(taps, batch_view<T, K>(s, oh * p.stride_h, width),
                              a.packed_weight + cin * p.kernel_h * taps.count * rows * os, rows,
                              os, ow, s.accumulator + oh * ow * os);
      }
    }
    T* out = a.out + (b * r.out_channels + g * r.out_per_group) * plane + oh0 * ow;
    transpose_rows(s.accumulator, os, nh * ow, r.out_per_group, out, plane);
  }
}
#elif defined(MKCC_CPU_PASS_INPUT_GRAD)
// Item (input channel, batch element), the batch fastest: the channel's input rows in passes of
// row_tile rows (features with derivatives, row indices), each row's gradient the sum over the
// kernel rows that read it of the 1-D input gradient of that row (input_grad_span) on the
// grad_out row it feeds.
template <typename T, int K>
void conv2d_input_grad_impl(const Conv2dBackwardArgs<T>& a, int64_t begin, int64_t end,
                            void* scratch_base) {
  const KanConv2dParams& p = a.p;
  const KanConv1dParams& r = p.row;
  const RowTaps taps = conv1d_taps(r);
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const int64_t w = r.length;
  const int64_t ow = r.out_length;
  const T inv_h = static_cast<T>(r.inv_h);
  const Scratch<T> s =
      carve<T>(scratch_base, conv2d_input_grad_scratch(p, a.row_tile, sizeof(T)));
  for (int64_t item = begin; item < end; ++item) {
    const int64_t b = item % r.batch;
    const int64_t cin = item / r.batch;
    const int64_t g = cin / r.in_per_group;
    const T* x_channel = a.x + (b * r.in_channels + cin) * p.height * w;
    T* dx_channel = a.grad_x + (b * r.in_channels + cin) * p.height * w;
    const T* gy_group = a.grad_out_t + (b * r.groups + g) * p.out_height * ow * os;
    for (int64_t ih0 = 0; ih0 < p.height; ih0 += a.row_tile) {
      const int64_t n = p.height - ih0 < a.row_tile ? p.height - ih0 : a.row_tile;
      features<K, true>(x_channel + ih0 * w, n * w, a.knots, r.num_intervals, inv_h, 1, s);
      for (int64_t ih = ih0; ih < ih0 + n; ++ih) {
        T* dx_row = dx_channel + ih * w;
        for (int64_t q = 0; q < w; ++q) dx_row[q] = T(0);
        const Scratch<T> sr = batch_view<T, K>(s, ih - ih0, w);
        for (int64_t i = 0; i < p.kernel_h; ++i) {
          const int64_t shifted = ih + p.pad_top - i * p.dilation_h;
          if (shifted < 0) break;  // and every later kernel row
          if (shifted % p.stride_h != 0) continue;
          const int64_t oh = shifted / p.stride_h;
          if (oh >= p.out_height) continue;
          input_grad_span<T, K>(taps, sr,
                                a.packed_weight + (cin * p.kernel_h + i) * taps.count * rows * os,
                                rows, os, gy_group + oh * ow * os, 0, w, dx_row);
        }
      }
    }
  }
}
#else
// Item (batch chunk, input channel), owning the channel's gradient block of its chunk: per batch
// element and block of output rows, the window rows' features once; per kernel row i the
// positions its output rows read (window rows oh * stride_h + i * dilation_h, one "element"
// per output row) sorted by knot interval, then per kernel column and bucket the 1-D sums
// (weight_grad_bucket) over the block's grad_out rows.
template <typename T, int K>
void conv2d_weight_grad_impl(const Conv2dBackwardArgs<T>& a, int64_t begin, int64_t end,
                             void* scratch_base) {
  const KanConv2dParams& p = a.p;
  const KanConv1dParams& r = p.row;
  const RowTaps taps = conv1d_taps(r);
  const int64_t os = a.layout.out_stride;
  const int64_t rows = a.layout.num_rows;
  const int64_t width = conv2d_window_width(p);
  const int64_t ow = r.out_length;
  const ScratchLayout layout = conv2d_weight_grad_scratch(p, a.row_tile, sizeof(T));
  const Scratch<T> s = carve<T>(scratch_base, layout);
  const int64_t chunk_size = (r.batch + a.num_batch_chunks - 1) / a.num_batch_chunks;
  const int64_t buckets = r.grid_size;  // first rows 0 .. G - 1
  const int64_t sorted_max = a.row_tile * width;
  int64_t* order = s.index;                  // [sorted_max] sorted by bucket
  int64_t* start = order + sorted_max;       // [buckets + 1]
  int64_t* cursor = start + buckets + 1;     // [buckets + 1]
  int64_t* pairs = cursor + buckets + 1;     // [2 * sorted_max] (position, grad_out row)
  int64_t* local = pairs + 2 * sorted_max;   // [sorted_max] per sorted entry
  int64_t* first_row = local + sorted_max;   // [sorted_max] per sorted entry
  constexpr int64_t kLanes = kVectorBytes / sizeof(T);
  constexpr int kBlock = bucket_vectors<K>();
  const int64_t block = taps.count * rows * os;  // one kernel row of one channel

  for (int64_t item = begin; item < end; ++item) {
    const int64_t cin = item % r.in_channels;
    const int64_t chunk = item / r.in_channels;
    const int64_t g = cin / r.in_per_group;
    const int64_t b_end = (chunk + 1) * chunk_size < r.batch ? (chunk + 1) * chunk_size : r.batch;
    T* grad_channel =
        a.packed_grad + (chunk * r.in_channels + cin) * p.kernel_h * block;
    memset(grad_channel, 0, sizeof(T) * p.kernel_h * block);
    for (int64_t b = chunk * chunk_size; b < b_end; ++b) {
      const T* x_channel = a.x + (b * r.in_channels + cin) * p.height * r.length;
      for (int64_t oh0 = 0; oh0 < p.out_height; oh0 += a.row_tile) {
        const int64_t nh = p.out_height - oh0 < a.row_tile ? p.out_height - oh0 : a.row_tile;
        const int64_t row0 = oh0 * p.stride_h - p.pad_top;  // the window's first input row
        const int64_t window_rows = conv2d_window_rows(p, nh);
        int64_t lo, hi;
        conv2d_inside_rows(p, row0, window_rows, &lo, &hi);
        if (hi <= lo) continue;  // every tap of the block is padding
        conv2d_window_features<T, K>(p, x_channel, row0, window_rows, lo, hi, a.knots, os, s,
                                     false);
        // Rows outside the image: skipped by the sort.
        for (int64_t q = 0; q < lo * width; ++q) s.row_offset[q] = -1;
        for (int64_t q = hi * width; q < window_rows * width; ++q) s.row_offset[q] = -1;
        const T* gy_block = a.grad_out_t + ((b * r.groups + g) * p.out_height + oh0) * ow * os;
        for (int64_t i = 0; i < p.kernel_h; ++i) {
          // output row oh of the block reads window row oh * stride_h + i * dilation_h
          const Scratch<T> si = batch_view<T, K>(s, i * p.dilation_h, width);
          bucket_by_interval(si, nh, width, ow, os, buckets, order, local, first_row, start,
                             cursor, p.stride_h * width);
          for (int64_t j = 0; j < taps.count; ++j) {
            T* grad_base = grad_channel + (i * taps.count + j) * rows * os;
            for (int64_t m = 0; m < buckets; ++m) {
              const int64_t count =
                  bucket_pairs_blocked(order, local, first_row, start[m], start[m + 1],
                                       j * taps.spacing, taps.step, ow, pairs);
              if (count == 0) continue;
              T* grad_spline = grad_base + (1 + m) * os;
              int64_t o0 = 0;
              for (; o0 + kBlock * kLanes <= os; o0 += kBlock * kLanes) {
                weight_grad_bucket<T, K, kBlock>(PairEntries{pairs}, 0, count, si, gy_block, os,
                                                 o0, grad_base, grad_spline);
              }
              for (; o0 < os; o0 += kLanes) {
                weight_grad_bucket<T, K, 1>(PairEntries{pairs}, 0, count, si, gy_block, os, o0,
                                            grad_base, grad_spline);
              }
            }
          }
        }
      }
    }
  }
}
#endif
