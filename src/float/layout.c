/* Data movement: reshape, transpose, concat and pad of tensors whose logical shape is in ONNX
 * order while rank-4 tensors are stored NHWC. Every op here reasons in logical axes and maps
 * them to physical ones, so models that reshape or concatenate images behave exactly as in
 * ONNX. */
#include <string.h>

#include "float/ops.h"

static int64_t numel(int rank, const int64_t *d) {
  int64_t n = 1;
  for (int k = 0; k < rank; k++) n *= d[k];
  return n;
}

void hawq_reshape_forward(const float *in, int in_rank, const int64_t *in_dims, float *out,
                          int out_rank, const int64_t *out_dims, float *scratch) {
  int64_t n = numel(in_rank, in_dims);
  if (in_rank != 4 && out_rank != 4) {
    if (out != in) memcpy(out, in, (size_t)n * sizeof(float));
  } else if (in_rank == 4 && out_rank != 4) {
    hawq_tensor_to_logical(in, out, 4, in_dims);
  } else if (in_rank != 4) {
    hawq_tensor_to_physical(in, out, 4, out_dims);
  } else {
    hawq_tensor_to_logical(in, scratch, 4, in_dims);
    hawq_tensor_to_physical(scratch, out, 4, out_dims);
  }
}

/* Physical axis -> logical axis for a given rank. */
static int logical_axis_of(int rank, int phys) {
  if (rank != 4) return phys;
  static const int to_nchw[4] = {0, 2, 3, 1};
  return to_nchw[phys];
}

static void physical_strides(int rank, const int64_t *pdims, int64_t *st) {
  int64_t s = 1;
  for (int k = rank - 1; k >= 0; k--) {
    st[k] = s;
    s *= pdims[k];
  }
}

/* The output's physical dims (out_p) and, for each output physical axis, the stride of the
 * input element it walks (src_st): output physical axis k is output logical axis L, which is
 * input logical axis perm[L], stored at input physical axis phys(perm[L]). */
static void transpose_walk(int rank, const int64_t *in_dims, const int *perm, int64_t *out_p,
                           int64_t *src_st) {
  int64_t in_p[HAWQ_MAX_RANK], in_st[HAWQ_MAX_RANK], out_log[HAWQ_MAX_RANK];
  hawq_physical_dims(rank, in_dims, in_p);
  physical_strides(rank, in_p, in_st);
  for (int k = 0; k < rank; k++) out_log[k] = in_dims[perm[k]];
  hawq_physical_dims(rank, out_log, out_p);
  for (int k = 0; k < rank; k++) {
    int l = logical_axis_of(rank, k);
    src_st[k] = in_st[hawq_physical_axis(rank, perm[l])];
  }
}

void hawq_transpose_forward(const float *in, int rank, const int64_t *in_dims, const int *perm,
                            float *out) {
  int64_t out_p[HAWQ_MAX_RANK], src_st[HAWQ_MAX_RANK];
  transpose_walk(rank, in_dims, perm, out_p, src_st);
  int64_t total = numel(rank, out_p), idx[HAWQ_MAX_RANK] = {0};
  for (int64_t i = 0; i < total; i++) {
    int64_t off = 0;
    for (int k = 0; k < rank; k++) off += idx[k] * src_st[k];
    out[i] = in[off];
    for (int k = rank - 1; k >= 0; k--) {
      if (++idx[k] < out_p[k]) break;
      idx[k] = 0;
    }
  }
}

void hawq_concat_forward(int n_in, const float *const *in, const int64_t (*in_dims)[HAWQ_MAX_RANK],
                         int rank, int axis, float *out) {
  int pa = hawq_physical_axis(rank, axis);
  int64_t pd[HAWQ_MAX_RANK];
  hawq_physical_dims(rank, in_dims[0], pd);
  int64_t outer = 1, inner = 1, total_axis = 0;
  for (int k = 0; k < pa; k++) outer *= pd[k];
  for (int k = pa + 1; k < rank; k++) inner *= pd[k];
  for (int i = 0; i < n_in; i++) {
    int64_t p[HAWQ_MAX_RANK];
    hawq_physical_dims(rank, in_dims[i], p);
    total_axis += p[pa];
  }
  int64_t offset = 0;
  for (int i = 0; i < n_in; i++) {
    int64_t p[HAWQ_MAX_RANK];
    hawq_physical_dims(rank, in_dims[i], p);
    int64_t run = p[pa] * inner;
    for (int64_t o = 0; o < outer; o++) {
      memcpy(out + (o * total_axis + offset) * inner, in[i] + o * run, (size_t)run * sizeof(float));
    }
    offset += p[pa];
  }
}

void hawq_pad_forward(const float *in, int rank, const int64_t *in_dims, const int64_t *pads,
                      float value, float *out, int threads) {
  /* pads: logical begin[HAWQ_MAX_RANK], end[HAWQ_MAX_RANK]; permute to physical. */
  int64_t ip[HAWQ_MAX_RANK], op[HAWQ_MAX_RANK], begin[HAWQ_MAX_RANK], ist[HAWQ_MAX_RANK];
  hawq_physical_dims(rank, in_dims, ip);
  for (int k = 0; k < rank; k++) {
    int l = logical_axis_of(rank, k);
    begin[k] = pads[l];
    op[k] = ip[k] + pads[l] + pads[HAWQ_MAX_RANK + l];
  }
  physical_strides(rank, ip, ist);
  int64_t inner = rank ? op[rank - 1] : 1, rows = 1;
  for (int k = 0; k + 1 < rank; k++) rows *= op[k];
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && rows > 64)
  for (int64_t row = 0; row < rows; row++) {
    float *o = out + row * inner;
    int64_t rem = row, src = 0;
    bool inside = true;
    for (int k = rank - 2; k >= 0; k--) {
      int64_t idx = rem % op[k] - begin[k];
      rem /= op[k];
      if (idx < 0 || idx >= ip[k]) inside = false;
      src += idx * ist[k];
    }
    int64_t lo = begin[rank - 1], w = ip[rank - 1];
    for (int64_t i = 0; i < inner; i++) {
      int64_t x = i - lo;
      o[i] = (inside && x >= 0 && x < w) ? in[src + x] : value;
    }
  }
}

/* ---- backwards: din += the forward's adjoint ---- */

/* physical (NHWC) += logical (NCHW), for dims (N,C,H,W). */
static void add_nchw_to_nhwc(const float *logical, float *physical, const int64_t *dims) {
  int64_t n = dims[0], c = dims[1], hw = dims[2] * dims[3];
  for (int64_t b = 0; b < n; b++) {
    const float *src = logical + b * c * hw;
    float *dst = physical + b * c * hw;
    for (int64_t p = 0; p < hw; p++)
      for (int64_t ch = 0; ch < c; ch++) dst[p * c + ch] += src[ch * hw + p];
  }
}

/* logical (NCHW) += physical (NHWC), for dims (N,C,H,W). */
static void add_nhwc_to_nchw(const float *physical, float *logical, const int64_t *dims) {
  int64_t n = dims[0], c = dims[1], hw = dims[2] * dims[3];
  for (int64_t b = 0; b < n; b++) {
    const float *src = physical + b * c * hw;
    float *dst = logical + b * c * hw;
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t p = 0; p < hw; p++) dst[ch * hw + p] += src[p * c + ch];
  }
}

void hawq_reshape_backward(const float *dout, int out_rank, const int64_t *out_dims, float *din,
                           int in_rank, const int64_t *in_dims, float *scratch) {
  if (!din) return;
  if (in_rank != 4 && out_rank != 4) {
    int64_t n = numel(in_rank, in_dims);
    for (int64_t i = 0; i < n; i++) din[i] += dout[i];
  } else if (out_rank != 4) { /* dout is in the logical order of din's NCHW */
    add_nchw_to_nhwc(dout, din, in_dims);
  } else if (in_rank != 4) { /* din is logical; dout is NHWC */
    add_nhwc_to_nchw(dout, din, out_dims);
  } else {
    hawq_tensor_to_logical(dout, scratch, 4, out_dims);
    add_nchw_to_nhwc(scratch, din, in_dims);
  }
}

/* A transpose is a permutation: din[the source of output i] += dout[i]. */
void hawq_transpose_backward(const float *dout, int rank, const int64_t *in_dims, const int *perm,
                             float *din) {
  if (!din) return;
  int64_t out_p[HAWQ_MAX_RANK], src_st[HAWQ_MAX_RANK];
  transpose_walk(rank, in_dims, perm, out_p, src_st);
  int64_t total = numel(rank, out_p), idx[HAWQ_MAX_RANK] = {0};
  for (int64_t i = 0; i < total; i++) {
    int64_t off = 0;
    for (int k = 0; k < rank; k++) off += idx[k] * src_st[k];
    din[off] += dout[i];
    for (int k = rank - 1; k >= 0; k--) {
      if (++idx[k] < out_p[k]) break;
      idx[k] = 0;
    }
  }
}

/* Each input's slice of dout, added to din[i] (skipped where din[i] is NULL). */
void hawq_concat_backward(int n_in, float *const *din, const int64_t (*in_dims)[HAWQ_MAX_RANK],
                          int rank, int axis, const float *dout) {
  int pa = hawq_physical_axis(rank, axis);
  int64_t pd[HAWQ_MAX_RANK];
  hawq_physical_dims(rank, in_dims[0], pd);
  int64_t outer = 1, inner = 1, total_axis = 0;
  for (int k = 0; k < pa; k++) outer *= pd[k];
  for (int k = pa + 1; k < rank; k++) inner *= pd[k];
  for (int i = 0; i < n_in; i++) {
    int64_t p[HAWQ_MAX_RANK];
    hawq_physical_dims(rank, in_dims[i], p);
    total_axis += p[pa];
  }
  int64_t offset = 0;
  for (int i = 0; i < n_in; i++) {
    int64_t p[HAWQ_MAX_RANK];
    hawq_physical_dims(rank, in_dims[i], p);
    int64_t run = p[pa] * inner;
    if (din[i]) {
      for (int64_t o = 0; o < outer; o++) {
        const float *src = dout + (o * total_axis + offset) * inner;
        float *dst = din[i] + o * run;
        for (int64_t j = 0; j < run; j++) dst[j] += src[j];
      }
    }
    offset += p[pa];
  }
}

/* The gradient of the elements the forward copied (padding and cropped-away input get none).
 * Output rows map to distinct input rows, so the rows run in parallel without races. */
void hawq_pad_backward(const float *dout, int rank, const int64_t *in_dims, const int64_t *pads,
                       float *din, int threads) {
  if (!din) return;
  int64_t ip[HAWQ_MAX_RANK], op[HAWQ_MAX_RANK], begin[HAWQ_MAX_RANK], ist[HAWQ_MAX_RANK];
  hawq_physical_dims(rank, in_dims, ip);
  for (int k = 0; k < rank; k++) {
    int l = logical_axis_of(rank, k);
    begin[k] = pads[l];
    op[k] = ip[k] + pads[l] + pads[HAWQ_MAX_RANK + l];
  }
  physical_strides(rank, ip, ist);
  int64_t inner = rank ? op[rank - 1] : 1, rows = 1;
  for (int k = 0; k + 1 < rank; k++) rows *= op[k];
  /* Along the last axis, output i holds input i - lo where that is inside [0, w). */
  int64_t lo = rank ? begin[rank - 1] : 0, w = rank ? ip[rank - 1] : 1;
  int64_t i0 = lo > 0 ? lo : 0, i1 = lo + w < inner ? lo + w : inner;
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && rows > 64)
  for (int64_t row = 0; row < rows; row++) {
    int64_t rem = row, src = 0;
    bool inside = true;
    for (int k = rank - 2; k >= 0; k--) {
      int64_t idx = rem % op[k] - begin[k];
      rem /= op[k];
      if (idx < 0 || idx >= ip[k]) inside = false;
      src += idx * ist[k];
    }
    if (!inside) continue;
    const float *g = dout + row * inner;
    float *dx = din + src;
    for (int64_t i = i0; i < i1; i++) dx[i - lo] += g[i];
  }
}
