/* The integer program ("QModel"): what lowering produces, what .hqm files hold, and what the
 * integer runtime (src/qrt) executes. ../ARCHITECTURE section 3 and docs/quantization.md are its
 * arithmetic contract.
 *
 * A QModel is a list of integer ops in execution order over integer tensors. Every tensor is one
 * sample's NHWC block (h, w, c); a flat vector (an FC's output) has h = w = 1. Values are
 * integers in [lo, hi] stored as `type`; the real value a tensor stands for is q * scale, but
 * scales are informative only (info, dequantizing logits at the API): nothing the runtime
 * computes reads a float.
 *
 * Storage of 4-bit tensors and weights: two values per byte, the even element in the low nibble
 * (bits 0-3), the odd one in the high nibble, as two's complement for signed types. Each pixel's
 * c channels of an activation, and each output channel's R*S*C/g weights, start on a byte:
 * a row of n 4-bit values takes (n + 1) / 2 bytes, the last high nibble zero when n is odd.
 *
 * Every rescale is a dyadic number m / 2^c applied by hawq_rescale below: m in [2^30, 2^31) and
 * 1 <= c <= 62, or m = 0 and c = 1, which maps every input to 0 (a ratio too small to matter).
 */
#ifndef HAWQ_QUANT_QMODEL_H
#define HAWQ_QUANT_QMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hawq/hawq.h"

typedef enum hawq_qtype {
  HAWQ_QT_U4,  /* packed, [0, 15] */
  HAWQ_QT_I4,  /* packed, [-8, 7] (lowering uses [-7, 7]) */
  HAWQ_QT_U8,  /* uint8_t */
  HAWQ_QT_I8,  /* int8_t */
  HAWQ_QT_I16, /* int16_t: the residual stream */
  HAWQ_QT_I32, /* int32_t: logits */
  HAWQ_QT_COUNT
} hawq_qtype;

typedef struct hawq_dyadic {
  int32_t m; /* [2^30, 2^31), or 0 with c == 1 */
  int32_t c; /* [1, 62] */
} hawq_dyadic;

typedef struct hawq_qtensor {
  char *name;
  hawq_qtype type;
  int32_t lo, hi;  /* every value lies in [lo, hi], within the type's range */
  int64_t h, w, c; /* per sample, NHWC */
  double scale;    /* real value = q * scale; informative (> 0) */
  int producer;    /* node index, -1 for the model input */
} hawq_qtensor;

typedef enum hawq_qop {
  /* inputs {pixels}: the raw image, U8 [0, 255], h x w x c. Per channel ch:
   * y = clamp(rescale(p * input_mul[ch] + input_add[ch], dyadic[ch]), lo, hi). */
  HAWQ_QOP_INPUT,
  /* inputs {x, residual or -1}. Convolution (Gemm is a convolution whose kernel covers the
   * whole input: R = h, S = w, no padding, output 1 x 1 x K):
   *   acc[k] = bias[k] + sum over taps and channels of x * weight   (int32, exact: proven)
   *   y[k]   = clamp(rescale(acc[k], dyadic[k]) + rescale(residual, residual_dyadic), lo, hi)
   * where the residual term is present only with a residual input (same shape as y); the sum
   * is formed in int64, so it cannot overflow before the clamp. Padded taps read 0. */
  HAWQ_QOP_CONV,
  /* inputs {a, b} (same shape): y = clamp(rescale(a, dyadic[0]) + rescale(b, dyadic[1]), lo, hi).
   */
  HAWQ_QOP_ADD,
  /* inputs {x}: y = clamp(rescale(x, dyadic[0]), lo, hi). */
  HAWQ_QOP_REQUANT,
  /* inputs {x}: y = max over the window's taps inside the input (padding never wins); same
   * type, range and scale as x. */
  HAWQ_QOP_MAXPOOL,
  /* inputs {x}: s = sum of the window's taps inside the input (int64), n = the window's count
   * (taps inside the padded input with count_include_pad, else taps inside the input; windows
   * follow the float engine's pool.c), y = clamp(rescale(s, dyadic[n - 1]), lo, hi). dyadic has
   * kernel[0] * kernel[1] entries. A global average pool is this with the kernel covering the
   * input (one count). Dilation is 1 (the float engine has no dilated average pool). */
  HAWQ_QOP_AVGPOOL,
  /* inputs {x0, x1, ...} (same h, w): channels joined in order, input i rescaled by dyadic[i]
   * and clamped to [lo, hi]. */
  HAWQ_QOP_CONCAT,
  HAWQ_QOP_COUNT
} hawq_qop;

#define HAWQ_QMAX_INPUTS 64

typedef struct hawq_qnode {
  hawq_qop op;
  char *name; /* the float graph node it lowers (its conv, gemm, add, pool, ...) */
  int n_inputs;
  int inputs[HAWQ_QMAX_INPUTS]; /* tensor indices; -1 for an absent optional input */
  int output;

  /* CONV, MAXPOOL, AVGPOOL geometry (output size = the float graph's, stored in the tensor) */
  int kernel[2], stride[2], dilation[2];
  int pad[4];             /* top, left, bottom, right */
  int groups;             /* CONV */
  bool count_include_pad; /* AVGPOOL */

  /* CONV */
  int weight_bits;      /* 2..8; <= 4 is stored packed */
  int8_t *weight;       /* K x R x S x C/g, each output channel's row packed when bits <= 4 */
  int32_t *bias;        /* K */
  double *weight_scale; /* K, informative */
  hawq_dyadic residual_dyadic;

  /* INPUT: per channel of the pixels */
  int32_t *input_mul, *input_add;

  int n_dyadic;
  hawq_dyadic
      *dyadic; /* INPUT: c; CONV: K; ADD: 2; REQUANT: 1; AVGPOOL: kernel count; CONCAT: n_inputs */
} hawq_qnode;

struct hawq_qmodel {
  int n_tensors;
  hawq_qtensor *tensors;
  int n_nodes;
  hawq_qnode *nodes;
  int input;  /* tensor index of the pixels: U8 [0, 255], producer -1 */
  int output; /* tensor index of the logits: I32, 1 x 1 x classes */

  hawq_preprocess preprocess; /* the float model's, informative (the INPUT node applies it) */
  /* Provenance, shown by `hawq info`; JSON strings, may be NULL. */
  char *bits_json;        /* the bit configuration per layer */
  char *calibration_json; /* method, momentum or percentile, images, seed */
  char *source_name;      /* the float model's file name */
  uint32_t source_crc32;  /* of the float model file's bytes */
  uint64_t source_size;
};

/* ---- The one rescaling primitive ----
 * |x| < 2^31 and m < 2^31 keep x * m inside int64; round half up, then arithmetic shift (gcc and
 * clang shift signed values arithmetically). */
static inline int64_t hawq_rescale(int64_t x, hawq_dyadic d) {
  return (x * d.m + ((int64_t)1 << (d.c - 1))) >> d.c;
}
static inline int64_t hawq_clamp64(int64_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* ---- Helpers (qmodel.c) ---- */
const char *hawq_qop_name(hawq_qop op);
const char *hawq_qtype_name(hawq_qtype t);
int hawq_qtype_bits(hawq_qtype t);
/* The type's full range, e.g. [-128, 127] for I8. */
void hawq_qtype_range(hawq_qtype t, int32_t *lo, int32_t *hi);
/* Bytes of one row of n values of type t (packed types: (n + 1) / 2). */
int64_t hawq_qtype_row_bytes(hawq_qtype t, int64_t n);
/* Bytes of one sample of tensor t: h * w * row_bytes(c). */
int64_t hawq_qtensor_bytes(const hawq_qtensor *t);
/* Bytes of a CONV node's weights: K * row_bytes(R*S*C/g) at its weight bits. 0 for other ops and
 * for a geometry hawq_qmodel_validate rejects before reading weights (bits outside 2..8, kernel
 * outside 1..2^20, groups < 1, rows over 2^31 values), so a file reader may call it first. */
int64_t hawq_qnode_weight_bytes(const hawq_qmodel *m, const hawq_qnode *n);

/* Element access, static inline so that the runtime's objects (checked for float instructions)
 * contain all the code they run. No division: a nibble's byte is i >> 1, its shift (i & 1) * 4.
 * These are for clarity, not speed: a kernel's inner loop may hoist the switch on the type. */

/* Element i of a row of type t (packed types unpack a nibble, I4 sign-extended). */
static inline int32_t hawq_qrow_get(hawq_qtype t, const void *row, int64_t i) {
  switch (t) {
    case HAWQ_QT_U4:
      return (((const uint8_t *)row)[i >> 1] >> ((i & 1) << 2)) & 15;
    case HAWQ_QT_I4:
      return (((((const uint8_t *)row)[i >> 1] >> ((i & 1) << 2)) & 15) ^ 8) - 8;
    case HAWQ_QT_U8:
      return ((const uint8_t *)row)[i];
    case HAWQ_QT_I8:
      return ((const int8_t *)row)[i];
    case HAWQ_QT_I16:
      return ((const int16_t *)row)[i];
    case HAWQ_QT_I32:
      return ((const int32_t *)row)[i];
    case HAWQ_QT_COUNT:
      break;
  }
  return 0;
}

/* Stores v (already within the type's range) as element i of a row of type t; a packed store
 * keeps the byte's other nibble. */
static inline void hawq_qrow_set(hawq_qtype t, void *row, int64_t i, int32_t v) {
  switch (t) {
    case HAWQ_QT_U4:
    case HAWQ_QT_I4: {
      uint8_t *b = (uint8_t *)row + (i >> 1);
      int shift = (int)((i & 1) << 2);
      *b = (uint8_t)((*b & ~(15 << shift)) | (((uint32_t)v & 15) << shift));
      break;
    }
    case HAWQ_QT_U8:
      ((uint8_t *)row)[i] = (uint8_t)v;
      break;
    case HAWQ_QT_I8:
      ((int8_t *)row)[i] = (int8_t)v;
      break;
    case HAWQ_QT_I16:
      ((int16_t *)row)[i] = (int16_t)v;
      break;
    case HAWQ_QT_I32:
      ((int32_t *)row)[i] = v;
      break;
    case HAWQ_QT_COUNT:
      break;
  }
}

/* Weight i of output channel k's row of row_len values (R*S*C/g) of a CONV node. */
static inline int32_t hawq_qweight_get(const hawq_qnode *n, int64_t row_len, int64_t k, int64_t i) {
  if (n->weight_bits <= 4) {
    const uint8_t *row = (const uint8_t *)n->weight + k * ((row_len + 1) >> 1);
    return (((row[i >> 1] >> ((i & 1) << 2)) & 15) ^ 8) - 8;
  }
  return n->weight[k * row_len + i];
}

/* Frees a node's arrays (weight, bias, weight_scale, input_mul, input_add, dyadic), not its name.
 */
void hawq_qnode_free_arrays(hawq_qnode *n);

/* The empty model and its parts; hawq_qmodel_destroy frees every pointer in it. */
hawq_qmodel *hawq_qmodel_new(void);
/* Appends a tensor (name copied) / node (zeroed but for op, name, inputs and output); index or -1
 * when out of memory. */
int hawq_qmodel_add_tensor(hawq_qmodel *m, const char *name, hawq_qtype type, int32_t lo,
                           int32_t hi, int64_t h, int64_t w, int64_t c, double scale);
int hawq_qmodel_add_node(hawq_qmodel *m, hawq_qop op, const char *name, int n_inputs,
                         const int *inputs, int output);

/* Checks everything the runtime relies on, so that a model that passes cannot make it read or
 * write out of bounds or overflow: indices, execution order (every input produced earlier), shapes
 * of every op against its geometry, types and ranges, dyadic parameters, array sizes, and the
 * int32 accumulator bound of every CONV (max|x| * sum|w_k| + |bias_k| < 2^31) and AVGPOOL
 * (count * max|x| < 2^31). what names the source in messages (a file name). Fails with one line
 * naming the node or tensor. */
hawq_status hawq_qmodel_validate(const hawq_qmodel *m, const char *what, hawq_error *err);

/* MACs and BOPS (MACs * weight bits * input bits) per sample, parameters and packed weight bytes
 * (weights + int32 biases) of CONV node i, or totals over the model with i = -1. */
typedef struct hawq_qcost {
  int64_t macs, bops, params, bytes;
} hawq_qcost;
hawq_qcost hawq_qmodel_cost(const hawq_qmodel *m, int node);

#endif
