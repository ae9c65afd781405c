/* The QModel's helpers: type sizes, construction, destruction, cost, and the validator that
 * stands between a file and the integer runtime (src/qrt). See qmodel.h for the format. */
#include "quant/qmodel.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

/* ---- Names and sizes ---- */

const char *hawq_qop_name(hawq_qop op) {
  switch (op) {
    case HAWQ_QOP_INPUT:
      return "QInput";
    case HAWQ_QOP_CONV:
      return "QConv";
    case HAWQ_QOP_ADD:
      return "QAdd";
    case HAWQ_QOP_REQUANT:
      return "QRequant";
    case HAWQ_QOP_MAXPOOL:
      return "QMaxPool";
    case HAWQ_QOP_AVGPOOL:
      return "QAvgPool";
    case HAWQ_QOP_CONCAT:
      return "QConcat";
    case HAWQ_QOP_COUNT:
      break;
  }
  return "?";
}

const char *hawq_qtype_name(hawq_qtype t) {
  switch (t) {
    case HAWQ_QT_U4:
      return "u4";
    case HAWQ_QT_I4:
      return "i4";
    case HAWQ_QT_U8:
      return "u8";
    case HAWQ_QT_I8:
      return "i8";
    case HAWQ_QT_I16:
      return "i16";
    case HAWQ_QT_I32:
      return "i32";
    case HAWQ_QT_COUNT:
      break;
  }
  return "?";
}

int hawq_qtype_bits(hawq_qtype t) {
  switch (t) {
    case HAWQ_QT_U4:
    case HAWQ_QT_I4:
      return 4;
    case HAWQ_QT_U8:
    case HAWQ_QT_I8:
      return 8;
    case HAWQ_QT_I16:
      return 16;
    case HAWQ_QT_I32:
      return 32;
    case HAWQ_QT_COUNT:
      break;
  }
  return 0;
}

void hawq_qtype_range(hawq_qtype t, int32_t *lo, int32_t *hi) {
  int32_t l = 0, h = 0;
  switch (t) {
    case HAWQ_QT_U4:
      l = 0, h = 15;
      break;
    case HAWQ_QT_I4:
      l = -8, h = 7;
      break;
    case HAWQ_QT_U8:
      l = 0, h = 255;
      break;
    case HAWQ_QT_I8:
      l = -128, h = 127;
      break;
    case HAWQ_QT_I16:
      l = INT16_MIN, h = INT16_MAX;
      break;
    case HAWQ_QT_I32:
      l = INT32_MIN, h = INT32_MAX;
      break;
    case HAWQ_QT_COUNT:
      break;
  }
  if (lo) *lo = l;
  if (hi) *hi = h;
}

int64_t hawq_qtype_row_bytes(hawq_qtype t, int64_t n) {
  int bits = hawq_qtype_bits(t);
  return bits == 4 ? (n + 1) / 2 : n * (bits / 8);
}

int64_t hawq_qtensor_bytes(const hawq_qtensor *t) {
  return t->h * t->w * hawq_qtype_row_bytes(t->type, t->c);
}

/* Bytes of one output channel's weight row of n values at `bits` (packed at <= 4 bits). */
static int64_t weight_row_bytes(int bits, int64_t n) {
  return bits <= 4 ? (n + 1) / 2 : n;
}

/* R*S*C/g of a CONV node, or -1 when it exceeds 2^31 or its geometry lies outside what
 * hawq_qmodel_validate accepts (a file reader may call this before validating: nothing here can
 * overflow). */
static int64_t conv_row_len(const hawq_qmodel *m, const hawq_qnode *n) {
  if (n->n_inputs < 1 || n->inputs[0] < 0 || n->inputs[0] >= m->n_tensors || n->groups < 1) {
    return -1;
  }
  int64_t c = m->tensors[n->inputs[0]].c;
  if (c < 1 || c > ((int64_t)1 << 31)) return -1;
  for (int d = 0; d < 2; d++) {
    if (n->kernel[d] < 1 || n->kernel[d] > (1 << 20)) return -1;
  }
  /* R*S <= 2^40; (C/g) > floor(2^31 / RS) exactly when the product exceeds 2^31. */
  int64_t rs = (int64_t)n->kernel[0] * n->kernel[1], cg = c / n->groups;
  if (rs > ((int64_t)1 << 31) || cg > (((int64_t)1 << 31) / rs)) return -1;
  return rs * cg;
}

int64_t hawq_qnode_weight_bytes(const hawq_qmodel *m, const hawq_qnode *n) {
  if (n->op != HAWQ_QOP_CONV || n->output < 0 || n->output >= m->n_tensors) return 0;
  if (n->weight_bits < 2 || n->weight_bits > 8) return 0;
  int64_t len = conv_row_len(m, n), k = m->tensors[n->output].c;
  if (len < 1 || k < 1 || k > ((int64_t)1 << 31)) return 0;
  return k * weight_row_bytes(n->weight_bits, len);
}

/* ---- Construction and destruction ---- */

void hawq_qnode_free_arrays(hawq_qnode *n) {
  free(n->weight);
  free(n->bias);
  free(n->weight_scale);
  free(n->input_mul);
  free(n->input_add);
  free(n->dyadic);
}

hawq_qmodel *hawq_qmodel_new(void) {
  hawq_qmodel *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->input = -1;
  m->output = -1;
  return m;
}

static char *copy_name(const char *s) {
  if (!s) s = "";
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int hawq_qmodel_add_tensor(hawq_qmodel *m, const char *name, hawq_qtype type, int32_t lo,
                           int32_t hi, int64_t h, int64_t w, int64_t c, double scale) {
  if (!m || m->n_tensors < 0 || m->n_tensors == INT32_MAX) return -1;
  /* One realloc per tensor keeps the array exactly n long, so arrays built elsewhere (the
   * file reader) stay valid to append to; models have hundreds of tensors, not millions. */
  hawq_qtensor *t = realloc(m->tensors, (size_t)(m->n_tensors + 1) * sizeof *t);
  if (!t) return -1;
  m->tensors = t;
  hawq_qtensor *x = &t[m->n_tensors];
  memset(x, 0, sizeof *x);
  x->name = copy_name(name);
  if (!x->name) return -1;
  x->type = type;
  x->lo = lo;
  x->hi = hi;
  x->h = h;
  x->w = w;
  x->c = c;
  x->scale = scale;
  x->producer = -1;
  return m->n_tensors++;
}

int hawq_qmodel_add_node(hawq_qmodel *m, hawq_qop op, const char *name, int n_inputs,
                         const int *inputs, int output) {
  if (!m || m->n_nodes < 0 || m->n_nodes == INT32_MAX) return -1;
  if (n_inputs < 0 || n_inputs > HAWQ_QMAX_INPUTS || (n_inputs > 0 && !inputs)) return -1;
  hawq_qnode *nodes = realloc(m->nodes, (size_t)(m->n_nodes + 1) * sizeof *nodes);
  if (!nodes) return -1;
  m->nodes = nodes;
  hawq_qnode *n = &nodes[m->n_nodes];
  memset(n, 0, sizeof *n);
  n->name = copy_name(name);
  if (!n->name) return -1;
  n->op = op;
  n->n_inputs = n_inputs;
  for (int i = 0; i < HAWQ_QMAX_INPUTS; i++) n->inputs[i] = i < n_inputs ? inputs[i] : -1;
  n->output = output;
  if (output >= 0 && output < m->n_tensors) m->tensors[output].producer = m->n_nodes;
  return m->n_nodes++;
}

void hawq_qmodel_destroy(hawq_qmodel *m) {
  if (!m) return;
  for (int i = 0; m->tensors && i < m->n_tensors; i++) free(m->tensors[i].name);
  free(m->tensors);
  for (int i = 0; m->nodes && i < m->n_nodes; i++) {
    free(m->nodes[i].name);
    hawq_qnode_free_arrays(&m->nodes[i]);
  }
  free(m->nodes);
  free(m->bits_json);
  free(m->calibration_json);
  free(m->source_name);
  free(m);
}

/* ---- Cost ---- */

static hawq_qcost node_cost(const hawq_qmodel *m, int i) {
  hawq_qcost c = {0, 0, 0, 0};
  const hawq_qnode *n = &m->nodes[i];
  if (n->op != HAWQ_QOP_CONV || n->output < 0 || n->output >= m->n_tensors) return c;
  int64_t len = conv_row_len(m, n);
  if (len < 0) return c;
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  c.macs = y->h * y->w * y->c * len;
  c.bops = c.macs * n->weight_bits * hawq_qtype_bits(x->type);
  c.params = y->c * len + y->c;
  c.bytes = hawq_qnode_weight_bytes(m, n) + 4 * y->c;
  return c;
}

hawq_qcost hawq_qmodel_cost(const hawq_qmodel *m, int node) {
  hawq_qcost total = {0, 0, 0, 0};
  if (!m || !m->nodes) return total;
  if (node >= 0) return node < m->n_nodes ? node_cost(m, node) : total;
  for (int i = 0; i < m->n_nodes; i++) {
    hawq_qcost c = node_cost(m, i);
    total.macs += c.macs;
    total.bops += c.bops;
    total.params += c.params;
    total.bytes += c.bytes;
  }
  return total;
}

/* ---- Validation ----
 * Everything the runtime relies on, checked in an order that makes each check safe to compute:
 * the model's arrays, then every tensor on its own, then who produces what, then every node
 * against its tensors. All arithmetic on untrusted numbers is int64 on values bounded first. */

#define LIMIT_ELEMENTS ((int64_t)1 << 31) /* per tensor, per sample */
#define LIMIT_GEOMETRY (1 << 20)          /* kernel, stride, dilation, pads */
#define LIMIT_MODEL_BYTES ((int64_t)1 << 48)
#define I32_BOUND ((int64_t)1 << 31) /* every proven |value| stays below this */

typedef struct vctx {
  const hawq_qmodel *m;
  const char *what;
  hawq_error *err;
} vctx;

static const char *safe_name(const char *s) {
  return s ? s : "?";
}

static hawq_status HAWQ_PRINTF(3, 4) node_fail(const vctx *v, int i, const char *fmt, ...) {
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  const hawq_qnode *n = &v->m->nodes[i];
  return hawq_fail(v->err, HAWQ_ERR_PARSE, "%s: node '%s' (%s): %s", v->what, safe_name(n->name),
                   hawq_qop_name(n->op), buf);
}

static hawq_status HAWQ_PRINTF(3, 4) tensor_fail(const vctx *v, int t, const char *fmt, ...) {
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return hawq_fail(v->err, HAWQ_ERR_PARSE, "%s: tensor '%s': %s", v->what,
                   safe_name(v->m->tensors[t].name), buf);
}

static bool dyadic_ok(hawq_dyadic d) {
  if (d.m == 0) return d.c == 1;
  return d.m >= ((int32_t)1 << 30) && d.c >= 1 && d.c <= 62; /* m < 2^31: it is an int32 */
}

/* Largest |value| a tensor can hold: its range bounds every element. */
static int64_t max_abs(const hawq_qtensor *t) {
  int64_t lo = t->lo < 0 ? -(int64_t)t->lo : t->lo, hi = t->hi < 0 ? -(int64_t)t->hi : t->hi;
  return lo > hi ? lo : hi;
}

static hawq_status check_tensor(const vctx *v, int i) {
  const hawq_qtensor *t = &v->m->tensors[i];
  if (!t->name) return hawq_fail(v->err, HAWQ_ERR_PARSE, "%s: tensor %d has no name", v->what, i);
  if ((int)t->type < 0 || t->type >= HAWQ_QT_COUNT) {
    return tensor_fail(v, i, "type is %d, expected 0..%d", (int)t->type, HAWQ_QT_COUNT - 1);
  }
  int64_t dims[3] = {t->h, t->w, t->c}, elems = 1;
  for (int d = 0; d < 3; d++) {
    if (dims[d] < 1 || dims[d] > LIMIT_ELEMENTS) {
      return tensor_fail(v, i, "shape %lld x %lld x %lld has a dimension outside [1, 2^31]",
                         (long long)t->h, (long long)t->w, (long long)t->c);
    }
    elems *= dims[d]; /* <= 2^31 * 2^31 before the check below */
    if (elems > LIMIT_ELEMENTS) {
      return tensor_fail(v, i, "shape %lld x %lld x %lld has more than 2^31 elements",
                         (long long)t->h, (long long)t->w, (long long)t->c);
    }
  }
  int32_t lo, hi;
  hawq_qtype_range(t->type, &lo, &hi);
  if (t->lo > t->hi || t->lo < lo || t->hi > hi) {
    return tensor_fail(v, i, "range [%d, %d], expected lo <= hi within %s [%d, %d]", t->lo, t->hi,
                       hawq_qtype_name(t->type), lo, hi);
  }
  if (!(t->scale > 0) || !isfinite(t->scale)) {
    return tensor_fail(v, i, "scale %g, expected finite and > 0", t->scale);
  }
  return HAWQ_OK;
}

/* Every tensor but the model input is the output of exactly one node and records it as its
 * producer; the input is nobody's output. */
static hawq_status check_producers(const vctx *v) {
  const hawq_qmodel *m = v->m;
  int *count = calloc((size_t)m->n_tensors, sizeof *count);
  if (!count) return hawq_fail(v->err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", v->what);
  hawq_status st = HAWQ_OK;
  for (int i = 0; i < m->n_nodes && !st; i++) {
    const hawq_qnode *n = &m->nodes[i];
    if (!n->name) {
      st = hawq_fail(v->err, HAWQ_ERR_PARSE, "%s: node %d has no name", v->what, i);
    } else if ((int)n->op < 0 || n->op >= HAWQ_QOP_COUNT) {
      st = node_fail(v, i, "op is %d, expected 0..%d", (int)n->op, HAWQ_QOP_COUNT - 1);
    } else if (n->output < 0 || n->output >= m->n_tensors) {
      st = node_fail(v, i, "output tensor index %d, expected 0..%d", n->output, m->n_tensors - 1);
    } else if (n->output == m->input) {
      st = node_fail(v, i, "output is the model input '%s', expected a tensor of its own",
                     safe_name(m->tensors[n->output].name));
    } else if (count[n->output]++ > 0) {
      st = node_fail(v, i, "output '%s' is produced a second time, expected exactly once",
                     m->tensors[n->output].name);
    } else if (m->tensors[n->output].producer != i) {
      st = node_fail(v, i, "output '%s' records producer %d, expected %d",
                     m->tensors[n->output].name, m->tensors[n->output].producer, i);
    }
  }
  for (int t = 0; t < m->n_tensors && !st; t++) {
    if (t == m->input) {
      if (m->tensors[t].producer != -1) {
        st = tensor_fail(v, t, "model input records producer %d, expected -1",
                         m->tensors[t].producer);
      }
    } else if (count[t] == 0) {
      st = tensor_fail(v, t, "no node produces it, expected exactly one");
    }
  }
  free(count);
  return st;
}

/* Kernel, stride, dilation >= 1 and pads >= 0, all bounded. */
static hawq_status check_geometry(const vctx *v, int i) {
  const hawq_qnode *n = &v->m->nodes[i];
  static const char *const dim[2] = {"height", "width"};
  for (int d = 0; d < 2; d++) {
    if (n->kernel[d] < 1 || n->kernel[d] > LIMIT_GEOMETRY) {
      return node_fail(v, i, "kernel %s %d, expected 1..2^20", dim[d], n->kernel[d]);
    }
    if (n->stride[d] < 1 || n->stride[d] > LIMIT_GEOMETRY) {
      return node_fail(v, i, "stride %s %d, expected 1..2^20", dim[d], n->stride[d]);
    }
    if (n->dilation[d] < 1 || n->dilation[d] > LIMIT_GEOMETRY) {
      return node_fail(v, i, "dilation %s %d, expected 1..2^20", dim[d], n->dilation[d]);
    }
  }
  for (int k = 0; k < 4; k++) {
    if (n->pad[k] < 0 || n->pad[k] > LIMIT_GEOMETRY) {
      return node_fail(v, i, "pad %d is %d, expected 0..2^20", k, n->pad[k]);
    }
  }
  return HAWQ_OK;
}

/* A convolution's output size along dimension d (0: height, 1: width) of an input of size in:
 * floor((in + pads - effective kernel) / stride) + 1, or -1 when the kernel does not fit. */
static int64_t conv_out_size(const hawq_qnode *n, int d, int64_t in) {
  int64_t k_eff = (int64_t)(n->kernel[d] - 1) * n->dilation[d] + 1;
  int64_t span = in + n->pad[d] + n->pad[d + 2] - k_eff;
  return span < 0 ? -1 : span / n->stride[d] + 1;
}

static hawq_status check_same_shape(const vctx *v, int i, const char *role, int t, int u) {
  const hawq_qtensor *a = &v->m->tensors[t], *b = &v->m->tensors[u];
  if (a->h != b->h || a->w != b->w || a->c != b->c) {
    return node_fail(v, i,
                     "%s '%s' is %lld x %lld x %lld, expected %lld x %lld x %lld (output '%s')",
                     role, a->name, (long long)a->h, (long long)a->w, (long long)a->c,
                     (long long)b->h, (long long)b->w, (long long)b->c, b->name);
  }
  return HAWQ_OK;
}

static hawq_status check_dyadics(const vctx *v, int i, int expected) {
  const hawq_qnode *n = &v->m->nodes[i];
  if (n->n_dyadic != expected || !n->dyadic) {
    return node_fail(v, i, "n_dyadic %d%s, expected %d", n->n_dyadic,
                     n->dyadic ? "" : " with no array", expected);
  }
  for (int k = 0; k < n->n_dyadic; k++) {
    if (!dyadic_ok(n->dyadic[k])) {
      return node_fail(v, i,
                       "dyadic[%d] = %d / 2^%d, expected m in [2^30, 2^31) and c in 1..62, "
                       "or m = 0 and c = 1",
                       k, n->dyadic[k].m, n->dyadic[k].c);
    }
  }
  return HAWQ_OK;
}

static hawq_status check_input_op(const vctx *v, int i) {
  const hawq_qmodel *m = v->m;
  const hawq_qnode *n = &m->nodes[i];
  if (n->n_inputs != 1 || n->inputs[0] != m->input) {
    return node_fail(v, i, "inputs %d (first %d), expected 1: the model input %d", n->n_inputs,
                     n->inputs[0], m->input);
  }
  const hawq_qtensor *x = &m->tensors[n->inputs[0]];
  hawq_status st = check_same_shape(v, i, "input", n->inputs[0], n->output);
  if (st) return st;
  if (!n->input_mul || !n->input_add) {
    return node_fail(v, i, "input_mul/input_add missing, expected %lld entries each",
                     (long long)x->c);
  }
  if ((st = check_dyadics(v, i, x->c > INT32_MAX ? -1 : (int)x->c))) return st;
  /* p * mul + add is linear in p, so its extremes are at the pixel range's ends. */
  for (int64_t ch = 0; ch < x->c; ch++) {
    int64_t a = (int64_t)x->lo * n->input_mul[ch] + n->input_add[ch];
    int64_t b = (int64_t)x->hi * n->input_mul[ch] + n->input_add[ch];
    if (a <= -I32_BOUND || a >= I32_BOUND || b <= -I32_BOUND || b >= I32_BOUND) {
      return node_fail(v, i,
                       "channel %lld: p * %d + %d reaches %lld for p in [%d, %d], expected "
                       "|value| < 2^31",
                       (long long)ch, n->input_mul[ch], n->input_add[ch],
                       (long long)((a < 0 ? -a : a) > (b < 0 ? -b : b) ? a : b), x->lo, x->hi);
    }
  }
  return HAWQ_OK;
}

/* Weights of one output channel's row: each within +-(2^(bits-1) - 1), a packed row's unused
 * last nibble zero (the format is canonical); returns sum |w|, or -1 after failing. */
static int64_t conv_row_abs_sum(const vctx *v, int i, int64_t len, int64_t k, hawq_status *st) {
  const hawq_qnode *n = &v->m->nodes[i];
  int32_t wmax = (1 << (n->weight_bits - 1)) - 1;
  int64_t sum = 0;
  for (int64_t j = 0; j < len; j++) {
    int32_t w = hawq_qweight_get(n, len, k, j);
    if (w < -wmax || w > wmax) {
      *st = node_fail(v, i,
                      "weight %lld of output channel %lld is %d, expected within +-%d (%d bits)",
                      (long long)j, (long long)k, w, wmax, n->weight_bits);
      return -1;
    }
    sum += w < 0 ? -w : w;
  }
  if (n->weight_bits <= 4 && (len & 1) && hawq_qweight_get(n, len, k, len) != 0) {
    *st = node_fail(v, i, "output channel %lld: packed row's padding nibble is %d, expected 0",
                    (long long)k, hawq_qweight_get(n, len, k, len));
    return -1;
  }
  return sum;
}

static hawq_status check_conv(const vctx *v, int i) {
  const hawq_qmodel *m = v->m;
  const hawq_qnode *n = &m->nodes[i];
  if (n->n_inputs < 1 || n->n_inputs > 2) {
    return node_fail(v, i, "%d inputs, expected 1 or 2 (x, residual)", n->n_inputs);
  }
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  bool residual = n->n_inputs == 2 && n->inputs[1] >= 0;
  hawq_status st;
  if (residual && (st = check_same_shape(v, i, "residual", n->inputs[1], n->output))) return st;
  if ((st = check_geometry(v, i))) return st;
  if (n->groups < 1 || x->c % n->groups != 0 || y->c % n->groups != 0) {
    return node_fail(v, i,
                     "groups %d, expected >= 1 dividing input channels %lld and output "
                     "channels %lld",
                     n->groups, (long long)x->c, (long long)y->c);
  }
  int64_t p = conv_out_size(n, 0, x->h), q = conv_out_size(n, 1, x->w);
  if (p != y->h || q != y->w) {
    return node_fail(v, i,
                     "output '%s' is %lld x %lld, expected %lld x %lld from input %lld x %lld "
                     "(kernel %d x %d, stride %d x %d, dilation %d x %d, pads %d %d %d %d)",
                     y->name, (long long)y->h, (long long)y->w, (long long)p, (long long)q,
                     (long long)x->h, (long long)x->w, n->kernel[0], n->kernel[1], n->stride[0],
                     n->stride[1], n->dilation[0], n->dilation[1], n->pad[0], n->pad[1], n->pad[2],
                     n->pad[3]);
  }
  int64_t len = conv_row_len(m, n);
  if (len < 1) {
    return node_fail(v, i, "weight rows of %d x %d x %lld values, expected at most 2^31",
                     n->kernel[0], n->kernel[1], (long long)(x->c / n->groups));
  }
  if (n->weight_bits < 2 || n->weight_bits > 8) {
    return node_fail(v, i, "weight_bits %d, expected 2..8", n->weight_bits);
  }
  if (!n->weight || !n->bias) {
    return node_fail(v, i, "%s missing, expected %lld output channels",
                     !n->weight ? "weight" : "bias", (long long)y->c);
  }
  if ((st = check_dyadics(v, i, y->c > INT32_MAX ? -1 : (int)y->c))) return st;
  if (residual && !dyadic_ok(n->residual_dyadic)) {
    return node_fail(v, i,
                     "residual_dyadic = %d / 2^%d, expected m in [2^30, 2^31) and c in "
                     "1..62, or m = 0 and c = 1",
                     n->residual_dyadic.m, n->residual_dyadic.c);
  }
  /* The int32 accumulator: |acc| <= max|x| * sum |w_k| + |bias_k| must stay below 2^31. sum |w|
   * <= 2^31 * 127, so compare by division rather than multiply. */
  int64_t xmax = max_abs(x);
  for (int64_t k = 0; k < y->c; k++) {
    int64_t sum = conv_row_abs_sum(v, i, len, k, &st);
    if (sum < 0) return st;
    int64_t b = n->bias[k] < 0 ? -(int64_t)n->bias[k] : n->bias[k];
    int64_t room = I32_BOUND - 1 - b; /* >= -1 */
    if (room < 0 || (sum > 0 && xmax > room / sum)) {
      return node_fail(v, i,
                       "output channel %lld: accumulator bound max|x| %lld * sum|w| %lld + |bias| "
                       "%lld, expected < 2^31",
                       (long long)k, (long long)xmax, (long long)sum, (long long)b);
    }
  }
  return HAWQ_OK;
}

static hawq_status check_add(const vctx *v, int i) {
  const hawq_qnode *n = &v->m->nodes[i];
  if (n->n_inputs != 2) return node_fail(v, i, "%d inputs, expected 2", n->n_inputs);
  hawq_status st;
  if ((st = check_same_shape(v, i, "input a", n->inputs[0], n->output)) ||
      (st = check_same_shape(v, i, "input b", n->inputs[1], n->output))) {
    return st;
  }
  return check_dyadics(v, i, 2);
}

static hawq_status check_requant(const vctx *v, int i) {
  const hawq_qnode *n = &v->m->nodes[i];
  if (n->n_inputs != 1) return node_fail(v, i, "%d inputs, expected 1", n->n_inputs);
  hawq_status st = check_same_shape(v, i, "input", n->inputs[0], n->output);
  return st ? st : check_dyadics(v, i, 1);
}

/* Pool windows along dimension d: the stored output size must be the float engine's (floor, or
 * ceil_mode's with PyTorch's rule that the last window starts inside the input or its left
 * padding), and every window must have a tap inside the input (padding never wins a max, and an
 * average needs a count >= 1). */
static hawq_status check_pool_dim(const vctx *v, int i, int d, int64_t in, int64_t out) {
  const hawq_qnode *n = &v->m->nodes[i];
  int64_t k_eff = (int64_t)(n->kernel[d] - 1) * n->dilation[d] + 1, s = n->stride[d];
  int64_t pad0 = n->pad[d], span = in + pad0 + n->pad[d + 2] - k_eff;
  int64_t floor_out = span < 0 ? -1 : span / s + 1;
  int64_t ceil_out = span < 0 ? -1 : (span + s - 1) / s + 1;
  if (ceil_out > 0 && (ceil_out - 1) * s >= in + pad0) ceil_out--;
  if (span < 0 || (out != floor_out && out != ceil_out)) {
    return node_fail(v, i,
                     "output %s %lld, expected %lld (or %lld with ceil_mode) from input %lld "
                     "(kernel %d, stride %d, dilation %d, pads %d %d)",
                     d ? "width" : "height", (long long)out, (long long)floor_out,
                     (long long)ceil_out, (long long)in, n->kernel[d], n->stride[d], n->dilation[d],
                     n->pad[d], n->pad[d + 2]);
  }
  for (int64_t o = 0; o < out; o++) {
    int64_t h0 = o * s - pad0, dil = n->dilation[d];
    int64_t r0 = h0 >= 0 ? 0 : (-h0 + dil - 1) / dil; /* first tap at or after 0 */
    if (r0 >= n->kernel[d] || h0 + r0 * dil >= in) {
      return node_fail(v, i, "window %lld along the %s has no tap inside the input, expected one",
                       (long long)o, d ? "width" : "height");
    }
  }
  return HAWQ_OK;
}

static hawq_status check_pool(const vctx *v, int i) {
  const hawq_qmodel *m = v->m;
  const hawq_qnode *n = &m->nodes[i];
  if (n->n_inputs != 1) return node_fail(v, i, "%d inputs, expected 1", n->n_inputs);
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  hawq_status st;
  if ((st = check_geometry(v, i))) return st;
  if (y->c != x->c) {
    return node_fail(v, i, "output '%s' has %lld channels, expected %lld (input '%s')", y->name,
                     (long long)y->c, (long long)x->c, x->name);
  }
  if ((st = check_pool_dim(v, i, 0, x->h, y->h)) || (st = check_pool_dim(v, i, 1, x->w, y->w))) {
    return st;
  }
  if (n->op == HAWQ_QOP_MAXPOOL) {
    if (y->type != x->type || y->lo != x->lo || y->hi != x->hi) {
      return node_fail(v, i, "output '%s' is %s [%d, %d], expected the input's %s [%d, %d]",
                       y->name, hawq_qtype_name(y->type), y->lo, y->hi, hawq_qtype_name(x->type),
                       x->lo, x->hi);
    }
    return HAWQ_OK;
  }
  /* AVGPOOL: windows are contiguous (the float engine has no dilated average pool). */
  if (n->dilation[0] != 1 || n->dilation[1] != 1) {
    return node_fail(v, i, "dilation %d x %d, expected 1 x 1 for average pooling", n->dilation[0],
                     n->dilation[1]);
  }
  /* Every count is at most the kernel's; its sum of max|x| each must fit below 2^31. */
  int64_t taps = (int64_t)n->kernel[0] * n->kernel[1], xmax = max_abs(x);
  if (taps > INT32_MAX || (xmax > 0 && taps > (I32_BOUND - 1) / xmax)) {
    return node_fail(v, i, "window sum bound %lld taps * max|x| %lld, expected < 2^31",
                     (long long)taps, (long long)xmax);
  }
  return check_dyadics(v, i, (int)taps);
}

static hawq_status check_concat(const vctx *v, int i) {
  const hawq_qmodel *m = v->m;
  const hawq_qnode *n = &m->nodes[i];
  const hawq_qtensor *y = &m->tensors[n->output];
  if (n->n_inputs < 1) return node_fail(v, i, "%d inputs, expected >= 1", n->n_inputs);
  int64_t channels = 0;
  for (int j = 0; j < n->n_inputs; j++) {
    const hawq_qtensor *x = &m->tensors[n->inputs[j]];
    if (x->h != y->h || x->w != y->w) {
      return node_fail(v, i, "input %d '%s' is %lld x %lld, expected %lld x %lld (output '%s')", j,
                       x->name, (long long)x->h, (long long)x->w, (long long)y->h, (long long)y->w,
                       y->name);
    }
    channels += x->c;
  }
  if (channels != y->c) {
    return node_fail(v, i, "output '%s' has %lld channels, expected %lld (the inputs' sum)",
                     y->name, (long long)y->c, (long long)channels);
  }
  return check_dyadics(v, i, n->n_inputs);
}

/* Inputs: indices in range, each produced by an earlier node (or the model input). Only CONV's
 * second input (the residual) may be absent (-1). */
static hawq_status check_node_inputs(const vctx *v, int i) {
  const hawq_qmodel *m = v->m;
  const hawq_qnode *n = &m->nodes[i];
  if (n->n_inputs < 1 || n->n_inputs > HAWQ_QMAX_INPUTS) {
    return node_fail(v, i, "%d inputs, expected 1..%d", n->n_inputs, HAWQ_QMAX_INPUTS);
  }
  for (int j = 0; j < n->n_inputs; j++) {
    int t = n->inputs[j];
    if (t == -1 && n->op == HAWQ_QOP_CONV && j == 1) continue;
    if (t < 0 || t >= m->n_tensors) {
      return node_fail(v, i, "input %d is tensor index %d, expected 0..%d", j, t, m->n_tensors - 1);
    }
    int p = m->tensors[t].producer;
    if (t != m->input && (p < 0 || p >= i)) {
      return node_fail(v, i, "input %d '%s' is produced by node %d, expected an earlier node", j,
                       m->tensors[t].name, p);
    }
  }
  return HAWQ_OK;
}

hawq_status hawq_qmodel_validate(const hawq_qmodel *m, const char *what, hawq_error *err) {
  vctx v = {m, what ? what : "qmodel", err};
  if (!m) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no model", v.what);
  if (m->n_tensors < 1 || !m->tensors) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: %d tensors, expected >= 1", v.what, m->n_tensors);
  }
  if (m->n_nodes < 1 || !m->nodes) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: %d nodes, expected >= 1", v.what, m->n_nodes);
  }
  hawq_status st;
  int64_t bytes = 0;
  for (int t = 0; t < m->n_tensors; t++) {
    if ((st = check_tensor(&v, t))) return st;
    bytes += hawq_qtensor_bytes(&m->tensors[t]) + 64; /* <= 2^33 + 64 each */
    if (bytes > LIMIT_MODEL_BYTES) {
      return tensor_fail(&v, t, "tensors take more than 2^48 bytes per sample, expected fewer");
    }
  }
  if (m->input < 0 || m->input >= m->n_tensors) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: input tensor index %d, expected 0..%d", v.what,
                     m->input, m->n_tensors - 1);
  }
  if (m->output < 0 || m->output >= m->n_tensors || m->output == m->input) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: output tensor index %d, expected 0..%d, not the input", v.what, m->output,
                     m->n_tensors - 1);
  }
  const hawq_qtensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
  if (in->type != HAWQ_QT_U8 || in->lo != 0 || in->hi != 255) {
    return tensor_fail(&v, m->input, "model input is %s [%d, %d], expected u8 [0, 255]",
                       hawq_qtype_name(in->type), in->lo, in->hi);
  }
  if (out->type != HAWQ_QT_I32 || out->h != 1 || out->w != 1) {
    return tensor_fail(&v, m->output,
                       "model output is %s %lld x %lld x %lld, expected i32 1 x 1 x "
                       "classes",
                       hawq_qtype_name(out->type), (long long)out->h, (long long)out->w,
                       (long long)out->c);
  }
  if ((st = check_producers(&v))) return st;
  for (int i = 0; i < m->n_nodes; i++) {
    if ((st = check_node_inputs(&v, i))) return st;
    switch (m->nodes[i].op) {
      case HAWQ_QOP_INPUT:
        st = check_input_op(&v, i);
        break;
      case HAWQ_QOP_CONV:
        st = check_conv(&v, i);
        break;
      case HAWQ_QOP_ADD:
        st = check_add(&v, i);
        break;
      case HAWQ_QOP_REQUANT:
        st = check_requant(&v, i);
        break;
      case HAWQ_QOP_MAXPOOL:
      case HAWQ_QOP_AVGPOOL:
        st = check_pool(&v, i);
        break;
      case HAWQ_QOP_CONCAT:
        st = check_concat(&v, i);
        break;
      case HAWQ_QOP_COUNT:
        st = node_fail(&v, i, "op is %d, expected 0..%d", (int)m->nodes[i].op, HAWQ_QOP_COUNT - 1);
        break;
    }
    if (st) return st;
  }
  return HAWQ_OK;
}
