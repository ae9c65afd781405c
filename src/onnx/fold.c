/* Constant folding: evaluates the ops of shape subgraphs and constant expressions at import
 * time, on logical row-major data. Integers are linear forms c + n*N in the batch size N (see
 * onnx_internal.h), so "Shape(x)[0]" stays symbolic through Gather/Unsqueeze/Concat and the
 * Reshape that consumes it learns which dimension is the batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "onnx/onnx_internal.h"

static void copy_elem(value *dst, int64_t di, const value *src, int64_t si) {
  if (dst->type == CONST_FLOAT)
    dst->f[di] = src->f[si];
  else
    dst->i[di] = src->i[si];
}

static hawq_status oom(const node_ctx *c, hawq_error *err) {
  return node_fail(c, err, HAWQ_ERR_NO_MEMORY, "out of memory folding a constant");
}

static bool make_like(value *out, const value *like, int rank, const int64_t *dims) {
  if (!value_make_const(out, like->type, rank, dims)) return false;
  out->onnx_dtype = like->onnx_dtype;
  return true;
}

/* axis made non-negative; -1 (invalid for every caller) when far out of range. */
static int norm_axis(int64_t axis, int rank) {
  if (axis < -2 * HAWQ_MAX_RANK || axis > 2 * HAWQ_MAX_RANK) return -1;
  return (int)(axis < 0 ? axis + rank : axis);
}

/* Folding may shrink or reorder constants without limit (a transposed weight), but a result
 * larger than every input (broadcasting, ConstantOfShape, Concat, Gather) is capped, so a tiny
 * hostile file cannot make the importer allocate gigabytes. */
#define HAWQ_MAX_FOLD_GROWTH ((int64_t)1 << 24)

static hawq_status check_growth(const node_ctx *c, int rank, const int64_t *dims,
                                int64_t largest_input, hawq_error *err) {
  int64_t n = shape_numel(rank, dims);
  if (n < 0 || (n > HAWQ_MAX_FOLD_GROWTH && n > largest_input)) {
    return node_fail(c, err, HAWQ_ERR_UNSUPPORTED,
                     "folding would build a constant of more than 2^24 elements from smaller "
                     "inputs");
  }
  return HAWQ_OK;
}

/* Row-major strides of a shape. */
static void strides_of(int rank, const int64_t *dims, int64_t *st) {
  int64_t s = 1;
  for (int k = rank - 1; k >= 0; k--) {
    st[k] = s;
    s *= dims[k];
  }
}

hawq_status read_axes(const node_ctx *c, const Onnx__NodeProto *n, value *const *in, int n_in,
                      int64_t *axes, int *count, hawq_error *err) {
  if (c->opset < 13) return attr_ints(c, n, "axes", HAWQ_MAX_RANK, axes, count, err);
  if (n_in < 2 || !in[1]) {
    *count = -1;
    return HAWQ_OK;
  }
  return const_ints(c, in[1], "input 'axes'", HAWQ_MAX_RANK, axes, count, err);
}

hawq_status fold_unsqueeze_shape(const node_ctx *c, int rank, const int64_t *dims,
                                 const int64_t *axes, int n_axes, int *out_rank, int64_t *out_dims,
                                 hawq_error *err) {
  int r = rank + n_axes;
  if (n_axes < 0 || r > HAWQ_MAX_RANK) {
    return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "result would have rank %d, at most %d", r,
                     HAWQ_MAX_RANK);
  }
  bool is_new[HAWQ_MAX_RANK] = {false};
  for (int k = 0; k < n_axes; k++) {
    int a = norm_axis(axes[k], r);
    if (a < 0 || a >= r || is_new[a]) {
      return node_fail(c, err, HAWQ_ERR_PARSE, "axis %lld is out of range or repeated for rank %d",
                       (long long)axes[k], r);
    }
    is_new[a] = true;
  }
  for (int k = 0, src = 0; k < r; k++) out_dims[k] = is_new[k] ? 1 : dims[src++];
  *out_rank = r;
  return HAWQ_OK;
}

hawq_status fold_squeeze_shape(const node_ctx *c, int rank, const int64_t *dims,
                               const int64_t *axes, int n_axes, bool keep_axis0, int *out_rank,
                               int64_t *out_dims, hawq_error *err) {
  bool drop[HAWQ_MAX_RANK] = {false};
  if (n_axes < 0) {
    for (int k = keep_axis0 ? 1 : 0; k < rank; k++) drop[k] = dims[k] == 1;
  } else {
    for (int k = 0; k < n_axes; k++) {
      int a = norm_axis(axes[k], rank);
      if (a < 0 || a >= rank) {
        return node_fail(c, err, HAWQ_ERR_PARSE, "axis %lld is out of range for rank %d",
                         (long long)axes[k], rank);
      }
      if (dims[a] != 1) {
        return node_fail(c, err, HAWQ_ERR_PARSE, "cannot squeeze axis %d of size %lld", a,
                         (long long)dims[a]);
      }
      if (a == 0 && keep_axis0) {
        return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "squeezing axis 0 removes the batch");
      }
      drop[a] = true;
    }
  }
  int r = 0;
  for (int k = 0; k < rank; k++) {
    if (!drop[k]) out_dims[r++] = dims[k];
  }
  *out_rank = r;
  return HAWQ_OK;
}

/* Reshape target resolution on plain (non-symbolic) dims, for constants and fixed shapes. */
hawq_status resolve_reshape(const node_ctx *c, int64_t in_numel, int in_rank,
                            const int64_t *in_dims, const int64_t *target, int n_target,
                            bool allowzero, int64_t *out_dims, hawq_error *err) {
  int infer = -1;
  int64_t known = 1;
  for (int k = 0; k < n_target; k++) {
    int64_t t = target[k];
    if (t == 0 && !allowzero) {
      if (k >= in_rank) {
        return node_fail(c, err, HAWQ_ERR_PARSE, "shape entry %d is 0 (copy) but input has rank %d",
                         k, in_rank);
      }
      t = in_dims[k];
    } else if (t == -1) {
      if (infer >= 0) return node_fail(c, err, HAWQ_ERR_PARSE, "shape has more than one -1");
      infer = k;
      continue;
    } else if (t < 0) {
      return node_fail(c, err, HAWQ_ERR_PARSE, "shape entry %d is %lld", k, (long long)t);
    }
    out_dims[k] = t;
    if (t != 0 && known > HAWQ_MAX_TENSOR_ELEMENTS / t) {
      return node_fail(c, err, HAWQ_ERR_PARSE, "shape has more than 2^32 elements");
    }
    known *= t;
  }
  if (infer >= 0) {
    if (known == 0 || in_numel % known != 0) {
      return node_fail(c, err, HAWQ_ERR_PARSE,
                       "cannot infer the -1 entry: %lld elements into "
                       "blocks of %lld",
                       (long long)in_numel, (long long)known);
    }
    out_dims[infer] = in_numel / known;
  } else if (known != in_numel) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "shape holds %lld elements, the input %lld",
                     (long long)known, (long long)in_numel);
  }
  return HAWQ_OK;
}

static hawq_status fold_gather(const node_ctx *c, const Onnx__NodeProto *n, value *const *in,
                               value *out, hawq_error *err) {
  const value *data = in[0], *idx = in[1];
  if (idx->type != CONST_INT) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "indices must be integers");
  }
  int64_t axis64;
  hawq_status st = attr_int(c, n, "axis", 0, &axis64, err);
  if (st) return st;
  int axis = norm_axis(axis64, data->rank);
  if (data->rank == 0 || axis < 0 || axis >= data->rank) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "axis %lld is out of range for rank %d",
                     (long long)axis64, data->rank);
  }
  int r = data->rank - 1 + idx->rank;
  if (r > HAWQ_MAX_RANK) return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "result rank %d", r);
  int64_t dims[HAWQ_MAX_RANK];
  int k = 0;
  for (int a = 0; a < axis; a++) dims[k++] = data->dims[a];
  for (int a = 0; a < idx->rank; a++) dims[k++] = idx->dims[a];
  for (int a = axis + 1; a < data->rank; a++) dims[k++] = data->dims[a];
  if ((st = check_growth(c, r, dims, data->count > idx->count ? data->count : idx->count, err))) {
    return st;
  }
  if (!make_like(out, data, r, dims)) return oom(c, err);
  int64_t outer = 1, inner = 1, len = data->dims[axis];
  for (int a = 0; a < axis; a++) outer *= data->dims[a];
  for (int a = axis + 1; a < data->rank; a++) inner *= data->dims[a];
  for (int64_t j = 0; j < idx->count; j++) {
    if (idx->i[j].n != 0) {
      value_free(out);
      return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "indices depend on the batch size");
    }
    int64_t ix = idx->i[j].c;
    if (ix < 0) ix += len;
    if (ix < 0 || ix >= len) {
      value_free(out);
      return node_fail(c, err, HAWQ_ERR_PARSE, "index %lld is out of range [0, %lld)",
                       (long long)idx->i[j].c, (long long)len);
    }
    for (int64_t o = 0; o < outer; o++) {
      for (int64_t q = 0; q < inner; q++) {
        copy_elem(out, (o * idx->count + j) * inner + q, data, (o * len + ix) * inner + q);
      }
    }
  }
  return HAWQ_OK;
}

static hawq_status fold_concat(const node_ctx *c, const Onnx__NodeProto *n, value *const *in,
                               int n_in, value *out, hawq_error *err) {
  int64_t axis64;
  hawq_status st = attr_int(c, n, "axis", 0, &axis64, err);
  if (st) return st;
  const value *first = in[0];
  int rank = first->rank;
  int axis = norm_axis(axis64, rank);
  if (axis < 0 || axis >= rank) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "axis %lld is out of range for rank %d",
                     (long long)axis64, rank);
  }
  int64_t dims[HAWQ_MAX_RANK];
  memcpy(dims, first->dims, sizeof dims);
  dims[axis] = 0;
  for (int k = 0; k < n_in; k++) {
    const value *v = in[k];
    if (!v) return node_fail(c, err, HAWQ_ERR_PARSE, "input %d is empty", k);
    if (v->type != first->type || v->rank != rank) {
      return node_fail(c, err, HAWQ_ERR_PARSE, "input %d does not match input 0 in type or rank",
                       k);
    }
    for (int a = 0; a < rank; a++) {
      if (a != axis && v->dims[a] != first->dims[a]) {
        return node_fail(c, err, HAWQ_ERR_PARSE, "input %d has size %lld on axis %d, expected %lld",
                         k, (long long)v->dims[a], a, (long long)first->dims[a]);
      }
    }
    dims[axis] += v->dims[axis];
  }
  int64_t largest = 0;
  for (int k = 0; k < n_in; k++) largest = in[k]->count > largest ? in[k]->count : largest;
  if ((st = check_growth(c, rank, dims, largest, err))) return st;
  if (!make_like(out, first, rank, dims)) return oom(c, err);
  int64_t outer = 1, inner = 1;
  for (int a = 0; a < axis; a++) outer *= dims[a];
  for (int a = axis + 1; a < rank; a++) inner *= dims[a];
  int64_t offset = 0;
  for (int k = 0; k < n_in; k++) {
    int64_t len = in[k]->dims[axis];
    for (int64_t o = 0; o < outer; o++) {
      for (int64_t q = 0; q < len * inner; q++) {
        copy_elem(out, (o * dims[axis] + offset) * inner + q, in[k], o * len * inner + q);
      }
    }
    offset += len;
  }
  return HAWQ_OK;
}

static hawq_status fold_cast(const node_ctx *c, const Onnx__NodeProto *n, const value *x,
                             value *out, hawq_error *err) {
  int64_t to;
  hawq_status st = attr_int(c, n, "to", 0, &to, err);
  if (st) return st;
  bool to_float = to == ONNX_FLOAT || to == ONNX_DOUBLE;
  bool to_int = to == ONNX_INT64 || to == ONNX_INT32 || to == ONNX_INT16 || to == ONNX_INT8 ||
                to == ONNX_UINT8 || to == ONNX_UINT16 || to == ONNX_UINT32 || to == ONNX_UINT64 ||
                to == ONNX_BOOL;
  if (!to_float && !to_int) {
    return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "cast to %s is not supported",
                     onnx_dtype_name((int)to));
  }
  if (!value_make_const(out, to_float ? CONST_FLOAT : CONST_INT, x->rank, x->dims)) {
    return oom(c, err);
  }
  out->onnx_dtype = (int)to;
  for (int64_t k = 0; k < x->count; k++) {
    if (to_float) {
      if (x->type == CONST_INT && x->i[k].n != 0) {
        value_free(out);
        return node_fail(c, err, HAWQ_ERR_UNSUPPORTED,
                         "a batch-size-dependent value cast to float is not supported");
      }
      out->f[k] = x->type == CONST_FLOAT ? x->f[k] : (float)x->i[k].c;
    } else if (x->type == CONST_INT) {
      out->i[k] = x->i[k];
      if (to == ONNX_BOOL) out->i[k] = (hawq_sym){x->i[k].c != 0 || x->i[k].n != 0, 0};
    } else {
      float v = x->f[k];
      if (!(fabsf(v) < 9.2e18f)) {
        value_free(out);
        return node_fail(c, err, HAWQ_ERR_PARSE, "value %g does not fit the integer type", v);
      }
      out->i[k] = (hawq_sym){to == ONNX_BOOL ? (v != 0) : (int64_t)v, 0};
    }
  }
  return HAWQ_OK;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

static hawq_status fold_slice(const node_ctx *c, const Onnx__NodeProto *n, value *const *in,
                              int n_in, value *out, hawq_error *err) {
  const value *x = in[0];
  int64_t starts[HAWQ_MAX_RANK], ends[HAWQ_MAX_RANK], axes[HAWQ_MAX_RANK], steps[HAWQ_MAX_RANK];
  int ns, ne, na = -1, nst = -1;
  hawq_status st;
  if (c->opset < 10) {
    if ((st = attr_ints(c, n, "starts", HAWQ_MAX_RANK, starts, &ns, err)) ||
        (st = attr_ints(c, n, "ends", HAWQ_MAX_RANK, ends, &ne, err)) ||
        (st = attr_ints(c, n, "axes", HAWQ_MAX_RANK, axes, &na, err))) {
      return st;
    }
  } else {
    if (n_in < 3 || !in[1] || !in[2])
      return node_fail(c, err, HAWQ_ERR_PARSE, "needs starts and ends");
    if ((st = const_ints(c, in[1], "input 'starts'", HAWQ_MAX_RANK, starts, &ns, err)) ||
        (st = const_ints(c, in[2], "input 'ends'", HAWQ_MAX_RANK, ends, &ne, err))) {
      return st;
    }
    if (n_in > 3 && in[3] &&
        (st = const_ints(c, in[3], "input 'axes'", HAWQ_MAX_RANK, axes, &na, err))) {
      return st;
    }
    if (n_in > 4 && in[4] &&
        (st = const_ints(c, in[4], "input 'steps'", HAWQ_MAX_RANK, steps, &nst, err))) {
      return st;
    }
  }
  if (ns < 0 || ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns)) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "starts, ends, axes and steps differ in length");
  }
  int64_t b[HAWQ_MAX_RANK], stp[HAWQ_MAX_RANK], dims[HAWQ_MAX_RANK];
  bool seen[HAWQ_MAX_RANK] = {false};
  for (int a = 0; a < x->rank; a++) {
    b[a] = 0;
    stp[a] = 1;
    dims[a] = x->dims[a];
  }
  for (int k = 0; k < ns; k++) {
    int a = na >= 0 ? norm_axis(axes[k], x->rank) : k;
    if (a < 0 || a >= x->rank || seen[a]) {
      return node_fail(c, err, HAWQ_ERR_PARSE, "slice axis %d is out of range or repeated", a);
    }
    seen[a] = true;
    int64_t step = nst >= 0 ? steps[k] : 1, d = x->dims[a];
    if (step == 0) return node_fail(c, err, HAWQ_ERR_PARSE, "step 0");
    if (step < -INT64_MAX) step = -INT64_MAX; /* so that -step exists; the result is the same */
    int64_t s = starts[k], e = ends[k];
    if (s < 0) s += d;
    if (e < 0) e += d;
    int64_t len;
    if (step > 0) {
      s = clamp64(s, 0, d);
      e = clamp64(e, 0, d);
      len = e > s ? (e - s - 1) / step + 1 : 0;
    } else {
      s = clamp64(s, -1, d - 1);
      e = clamp64(e, -1, d - 1);
      len = s > e ? (s - e - 1) / (-step) + 1 : 0;
    }
    b[a] = s;
    stp[a] = step;
    dims[a] = len;
  }
  if (!make_like(out, x, x->rank, dims)) return oom(c, err);
  int64_t xs[HAWQ_MAX_RANK], idx[HAWQ_MAX_RANK] = {0};
  strides_of(x->rank, x->dims, xs);
  for (int64_t k = 0; k < out->count; k++) {
    int64_t src = 0;
    for (int a = 0; a < x->rank; a++) src += (b[a] + idx[a] * stp[a]) * xs[a];
    copy_elem(out, k, x, src);
    for (int a = x->rank - 1; a >= 0; a--) {
      if (++idx[a] < dims[a]) break;
      idx[a] = 0;
    }
  }
  return HAWQ_OK;
}

hawq_status read_perm(const node_ctx *c, const Onnx__NodeProto *n, int rank, int *perm,
                      hawq_error *err) {
  int64_t p[HAWQ_MAX_RANK];
  int np;
  hawq_status st = attr_ints(c, n, "perm", HAWQ_MAX_RANK, p, &np, err);
  if (st) return st;
  if (np < 0) {
    for (int a = 0; a < rank; a++) perm[a] = rank - 1 - a;
    return HAWQ_OK;
  }
  if (np != rank) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "perm has %d entries for rank %d", np, rank);
  }
  bool seen[HAWQ_MAX_RANK] = {false};
  for (int a = 0; a < rank; a++) {
    int v = norm_axis(p[a], rank);
    if (v < 0 || v >= rank || seen[v]) {
      return node_fail(c, err, HAWQ_ERR_PARSE, "perm is not a permutation of 0..%d", rank - 1);
    }
    seen[v] = true;
    perm[a] = v;
  }
  return HAWQ_OK;
}

static hawq_status fold_transpose(const node_ctx *c, const Onnx__NodeProto *n, const value *x,
                                  value *out, hawq_error *err) {
  int perm[HAWQ_MAX_RANK];
  hawq_status st = read_perm(c, n, x->rank, perm, err);
  if (st) return st;
  int64_t dims[HAWQ_MAX_RANK], xs[HAWQ_MAX_RANK], idx[HAWQ_MAX_RANK] = {0};
  for (int a = 0; a < x->rank; a++) dims[a] = x->dims[perm[a]];
  if (!make_like(out, x, x->rank, dims)) return oom(c, err);
  strides_of(x->rank, x->dims, xs);
  for (int64_t k = 0; k < out->count; k++) {
    int64_t src = 0;
    for (int a = 0; a < x->rank; a++) src += idx[a] * xs[perm[a]];
    copy_elem(out, k, x, src);
    for (int a = x->rank - 1; a >= 0; a--) {
      if (++idx[a] < dims[a]) break;
      idx[a] = 0;
    }
  }
  return HAWQ_OK;
}

static hawq_status fold_reshape_like(const node_ctx *c, const value *x, int rank,
                                     const int64_t *dims, value *out, hawq_error *err) {
  if (!make_like(out, x, rank, dims)) return oom(c, err);
  if (out->count != x->count) {
    value_free(out);
    return node_fail(c, err, HAWQ_ERR_INTERNAL, "reshape changed the element count");
  }
  if (x->type == CONST_FLOAT)
    memcpy(out->f, x->f, (size_t)x->count * sizeof(float));
  else
    memcpy(out->i, x->i, (size_t)x->count * sizeof(hawq_sym));
  return HAWQ_OK;
}

/* Elementwise binary op with broadcasting; ints are linear forms in N. */
static hawq_status fold_binary(const node_ctx *c, const char *op, const value *a, const value *b,
                               value *out, hawq_error *err) {
  if (a->type != b->type) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "inputs have different element types");
  }
  int r;
  int64_t dims[HAWQ_MAX_RANK];
  if (!broadcast_shape(a->rank, a->dims, b->rank, b->dims, &r, dims)) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "input shapes do not broadcast");
  }
  hawq_status st = check_growth(c, r, dims, a->count > b->count ? a->count : b->count, err);
  if (st) return st;
  if (!make_like(out, a, r, dims)) return oom(c, err);
  int64_t as[HAWQ_MAX_RANK], bs[HAWQ_MAX_RANK], idx[HAWQ_MAX_RANK] = {0};
  {
    int64_t s = 1, t = 1;
    for (int k = r - 1; k >= 0; k--) {
      int ia = k - (r - a->rank), ib = k - (r - b->rank);
      int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
      as[k] = da == 1 ? 0 : s;
      bs[k] = db == 1 ? 0 : t;
      s *= da;
      t *= db;
    }
  }
  char o = op[0];
  for (int64_t k = 0; k < out->count; k++) {
    int64_t ia = 0, ib = 0;
    for (int d = 0; d < r; d++) {
      ia += idx[d] * as[d];
      ib += idx[d] * bs[d];
    }
    if (a->type == CONST_FLOAT) {
      float x = a->f[ia], y = b->f[ib];
      out->f[k] = o == 'A' ? x + y : o == 'S' ? x - y : o == 'M' ? x * y : x / y;
    } else {
      hawq_sym x = a->i[ia], y = b->i[ib], z;
      bool overflow = false;
      if (o == 'A') {
        overflow = __builtin_add_overflow(x.c, y.c, &z.c) || __builtin_add_overflow(x.n, y.n, &z.n);
      } else if (o == 'S') {
        overflow = __builtin_sub_overflow(x.c, y.c, &z.c) || __builtin_sub_overflow(x.n, y.n, &z.n);
      } else if (o == 'M') {
        if (x.n != 0 && y.n != 0) goto nonlinear;
        hawq_sym v = x.n ? x : y, f = x.n ? y : x; /* v may hold N, f does not */
        overflow = __builtin_mul_overflow(v.c, f.c, &z.c) || __builtin_mul_overflow(v.n, f.c, &z.n);
      } else {
        if (y.n != 0) goto nonlinear;
        if (y.c == 0) {
          value_free(out);
          return node_fail(c, err, HAWQ_ERR_PARSE, "integer division by zero");
        }
        overflow = y.c == -1 && (x.c == INT64_MIN || x.n == INT64_MIN);
        if (!overflow && x.n != 0 && (x.n % y.c != 0 || x.c % y.c != 0)) goto nonlinear;
        if (!overflow) z = (hawq_sym){x.c / y.c, x.n / y.c};
      }
      if (overflow) {
        value_free(out);
        return node_fail(c, err, HAWQ_ERR_PARSE, "integer overflow in shape arithmetic");
      }
      out->i[k] = z;
    }
    for (int d = r - 1; d >= 0; d--) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  return HAWQ_OK;
nonlinear:
  value_free(out);
  return node_fail(c, err, HAWQ_ERR_UNSUPPORTED,
                   "shape arithmetic that is not linear in the batch size is not supported");
}

static hawq_status fold_unary_float(const node_ctx *c, const char *op, const value *x, value *out,
                                    hawq_error *err) {
  if (x->type != CONST_FLOAT && strcmp(op, "Neg") != 0) {
    return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "integer input is not supported");
  }
  if (!value_copy(out, x)) return oom(c, err);
  for (int64_t k = 0; k < x->count; k++) {
    if (x->type == CONST_INT) {
      out->i[k] = (hawq_sym){-x->i[k].c, -x->i[k].n};
    } else if (op[0] == 'N') {
      out->f[k] = -x->f[k];
    } else if (op[0] == 'S') {
      out->f[k] = sqrtf(x->f[k]);
    } else {
      out->f[k] = 1.0f / x->f[k];
    }
  }
  return HAWQ_OK;
}

hawq_status fold_node(const node_ctx *c, const Onnx__NodeProto *n, value *const *in, int n_in,
                      value *out, bool *handled, hawq_error *err) {
  const char *op = n->op_type ? n->op_type : "";
  *handled = true;
  const value *x = n_in > 0 ? in[0] : NULL;
  hawq_status st;
  if (!x && strcmp(op, "Concat") != 0) {
    return node_fail(c, err, HAWQ_ERR_PARSE, "missing input 0");
  }

  if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
    return value_copy(out, x) ? HAWQ_OK : oom(c, err);
  }
  if (!strcmp(op, "Shape")) {
    int64_t start, end;
    if ((st = attr_int(c, n, "start", 0, &start, err)) ||
        (st = attr_int(c, n, "end", x->rank, &end, err))) {
      return st;
    }
    if (start < 0) start += x->rank;
    if (end < 0) end += x->rank;
    start = clamp64(start, 0, x->rank);
    end = clamp64(end, start, x->rank);
    int64_t len = end - start;
    if (!value_make_const(out, CONST_INT, 1, &len)) return oom(c, err);
    for (int64_t k = 0; k < len; k++) out->i[k] = (hawq_sym){x->dims[start + k], 0};
    return HAWQ_OK;
  }
  if (!strcmp(op, "Gather")) {
    if (n_in < 2 || !in[1]) return node_fail(c, err, HAWQ_ERR_PARSE, "needs 2 inputs");
    return fold_gather(c, n, in, out, err);
  }
  if (!strcmp(op, "Concat")) return fold_concat(c, n, in, n_in, out, err);
  if (!strcmp(op, "Cast")) return fold_cast(c, n, x, out, err);
  if (!strcmp(op, "Slice")) return fold_slice(c, n, in, n_in, out, err);
  if (!strcmp(op, "Transpose")) return fold_transpose(c, n, x, out, err);
  if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
    int64_t axes[HAWQ_MAX_RANK], dims[HAWQ_MAX_RANK];
    int na, r;
    if ((st = read_axes(c, n, in, n_in, axes, &na, err))) return st;
    if (op[0] == 'U') {
      if (na < 0) return node_fail(c, err, HAWQ_ERR_PARSE, "missing axes");
      st = fold_unsqueeze_shape(c, x->rank, x->dims, axes, na, &r, dims, err);
    } else {
      st = fold_squeeze_shape(c, x->rank, x->dims, axes, na, false, &r, dims, err);
    }
    if (st) return st;
    return fold_reshape_like(c, x, r, dims, out, err);
  }
  if (!strcmp(op, "Flatten")) {
    int64_t axis;
    if ((st = attr_int(c, n, "axis", 1, &axis, err))) return st;
    int a = norm_axis(axis, x->rank);
    if (a < 0 || a > x->rank) return node_fail(c, err, HAWQ_ERR_PARSE, "axis out of range");
    int64_t dims[2] = {1, 1};
    for (int k = 0; k < x->rank; k++) dims[k < a ? 0 : 1] *= x->dims[k];
    return fold_reshape_like(c, x, 2, dims, out, err);
  }
  if (!strcmp(op, "Reshape")) {
    if (n_in < 2 || !in[1]) return node_fail(c, err, HAWQ_ERR_PARSE, "needs a shape input");
    int64_t target[HAWQ_MAX_RANK], dims[HAWQ_MAX_RANK], allowzero;
    int nt;
    if ((st = const_ints(c, in[1], "input 'shape'", HAWQ_MAX_RANK, target, &nt, err)) ||
        (st = attr_int(c, n, "allowzero", 0, &allowzero, err)) ||
        (st = resolve_reshape(c, x->count, x->rank, x->dims, target, nt, allowzero != 0, dims,
                              err))) {
      return st;
    }
    return fold_reshape_like(c, x, nt, dims, out, err);
  }
  if (!strcmp(op, "ConstantOfShape")) {
    int64_t dims[HAWQ_MAX_RANK];
    int nd;
    if ((st = const_ints(c, x, "input 'shape'", HAWQ_MAX_RANK, dims, &nd, err))) return st;
    value fill = {0};
    const Onnx__AttributeProto *a = attr_find(n, "value");
    if (a && a->t) {
      if ((st = tensor_to_value(a->t, NULL, "attribute 'value'", &fill, err))) return st;
      if (fill.count != 1) {
        value_free(&fill);
        return node_fail(c, err, HAWQ_ERR_PARSE, "attribute 'value' must hold one element");
      }
    } else {
      int64_t one = 1;
      if (!value_make_const(&fill, CONST_FLOAT, 1, &one)) return oom(c, err);
    }
    for (int k = 0; k < nd; k++) {
      if (dims[k] < 0) {
        value_free(&fill);
        return node_fail(c, err, HAWQ_ERR_PARSE, "shape entry %d is negative", k);
      }
    }
    if ((st = check_growth(c, nd, dims, 1, err))) {
      value_free(&fill);
      return st;
    }
    if (!make_like(out, &fill, nd, dims)) {
      value_free(&fill);
      return node_fail(c, err, HAWQ_ERR_UNSUPPORTED, "shape is too large or out of memory");
    }
    for (int64_t k = 0; k < out->count; k++) copy_elem(out, k, &fill, 0);
    value_free(&fill);
    return HAWQ_OK;
  }
  if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) {
    if (n_in < 2 || !in[1]) return node_fail(c, err, HAWQ_ERR_PARSE, "needs 2 inputs");
    return fold_binary(c, op, x, in[1], out, err);
  }
  if (!strcmp(op, "Neg") || !strcmp(op, "Sqrt") || !strcmp(op, "Reciprocal")) {
    return fold_unary_float(c, op, x, out, err);
  }
  *handled = false;
  return HAWQ_OK;
}
