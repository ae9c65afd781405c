/* Shared between the ONNX importer's files: the value environment and its helpers.
 *
 * While importing, every ONNX value name maps to a *value*: either a runtime tensor of the IR
 * graph, or a constant held in logical row-major order. Integer constants are kept as linear
 * forms c + n*N in the (symbolic) batch size N, so that the exporter's shape subgraphs
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) fold exactly whatever batch a plan later
 * uses; anything that would need a nonlinear function of N is refused. */
#ifndef HAWQ_ONNX_INTERNAL_H
#define HAWQ_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/graph.h"
#include "onnx/onnx.pb-c.h"

typedef struct hawq_sym {
  int64_t c, n; /* value = c + n * N */
} hawq_sym;

typedef enum value_kind { VALUE_RUNTIME = 1, VALUE_CONST } value_kind;
typedef enum const_type { CONST_FLOAT = 1, CONST_INT } const_type;

typedef struct value {
  value_kind kind;
  int tensor; /* VALUE_RUNTIME: IR tensor index */
  /* VALUE_CONST: */
  const_type type;
  int onnx_dtype; /* the ONNX element type it came as (for Cast/messages) */
  int rank;
  int64_t dims[HAWQ_MAX_RANK];
  int64_t count;
  float *f;    /* CONST_FLOAT: count values */
  hawq_sym *i; /* CONST_INT: count values */
  /* The IR parameter already made from this constant (index + 1; 0 = none) and its shape, so a
   * weight shared by several nodes is stored once. */
  int param_plus1;
  int param_rank;
  int64_t param_dims[HAWQ_MAX_RANK];
} value;

/* ONNX TensorProto.DataType values used here. */
enum {
  ONNX_FLOAT = 1,
  ONNX_UINT8 = 2,
  ONNX_INT8 = 3,
  ONNX_UINT16 = 4,
  ONNX_INT16 = 5,
  ONNX_INT32 = 6,
  ONNX_INT64 = 7,
  ONNX_STRING = 8,
  ONNX_BOOL = 9,
  ONNX_FLOAT16 = 10,
  ONNX_DOUBLE = 11,
  ONNX_UINT32 = 12,
  ONNX_UINT64 = 13,
};

const char *onnx_dtype_name(int dtype);

/* Context of the node being imported, for messages: "<file>: node 'x' (Conv, opset 13): ". */
typedef struct node_ctx {
  const char *file;
  const char *node_name; /* display name */
  const char *op_type;
  int64_t opset;
} node_ctx;

hawq_status node_fail(const node_ctx *ctx, hawq_error *err, hawq_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- values ---- */
void value_free(value *v);
/* A zeroed constant of the given type and shape (data allocated); false if out of memory or
 * the shape is too large. */
bool value_make_const(value *v, const_type type, int rank, const int64_t *dims);
bool value_copy(value *dst, const value *src);
int64_t shape_numel(int rank, const int64_t *dims);

/* Decodes an initializer / Constant tensor. base_dir is the model's directory for external
 * data (NULL when loading from memory). what names it in messages. */
hawq_status tensor_to_value(const Onnx__TensorProto *t, const char *base_dir, const char *what,
                            value *out, hawq_error *err);

/* ---- attributes ---- */
const Onnx__AttributeProto *attr_find(const Onnx__NodeProto *n, const char *name);
/* Each returns the default when absent; fails on a wrong attribute type. */
hawq_status attr_int(const node_ctx *c, const Onnx__NodeProto *n, const char *name, int64_t def,
                     int64_t *out, hawq_error *err);
hawq_status attr_float(const node_ctx *c, const Onnx__NodeProto *n, const char *name, float def,
                       float *out, hawq_error *err);
/* *count = -1 when absent. */
hawq_status attr_ints(const node_ctx *c, const Onnx__NodeProto *n, const char *name, int max,
                      int64_t *out, int *count, hawq_error *err);
/* NULL-terminated copy into buf; def when absent. */
hawq_status attr_string(const node_ctx *c, const Onnx__NodeProto *n, const char *name,
                        const char *def, char *buf, size_t size, hawq_error *err);

/* ---- constant folding (fold.c) ----
 * Evaluates op_type on constant inputs. Returns HAWQ_ERR_UNSUPPORTED with a message for ops it
 * cannot fold; *handled is false when op_type is not a foldable op at all. */
hawq_status fold_node(const node_ctx *c, const Onnx__NodeProto *n, value *const *in, int n_in,
                      value *out, bool *handled, hawq_error *err);

/* Numpy-style broadcast of two shapes; false if incompatible. */
bool broadcast_shape(int ra, const int64_t *a, int rb, const int64_t *b, int *rout, int64_t *out);

/* Reads an int constant input as plain integers (refusing batch-dependent values). */
hawq_status const_ints(const node_ctx *c, const value *v, const char *what, int max, int64_t *out,
                       int *count, hawq_error *err);

/* ---- wire.c ---- */
#define HAWQ_MAX_ONNX_NESTING 64
/* False when messages in the protobuf nest deeper than max_depth (<= HAWQ_MAX_ONNX_NESTING)
 * through ONNX's recursive fields; true otherwise, including for malformed input. */
bool onnx_nesting_within(const uint8_t *buf, size_t len, int max_depth);

/* Shape helpers shared by folding and runtime import. keep_axis0: never squeeze axis 0. */
hawq_status fold_unsqueeze_shape(const node_ctx *c, int rank, const int64_t *dims,
                                 const int64_t *axes, int n_axes, int *out_rank, int64_t *out_dims,
                                 hawq_error *err);
hawq_status fold_squeeze_shape(const node_ctx *c, int rank, const int64_t *dims,
                               const int64_t *axes, int n_axes, bool keep_axis0, int *out_rank,
                               int64_t *out_dims, hawq_error *err);
/* Reshape's target with 0 (copy) and -1 (infer) resolved against plain dims. */
hawq_status resolve_reshape(const node_ctx *c, int64_t in_numel, int in_rank,
                            const int64_t *in_dims, const int64_t *target, int n_target,
                            bool allowzero, int64_t *out_dims, hawq_error *err);
/* The axes of Squeeze/Unsqueeze (attribute before opset 13, input since); *count = -1 when
 * absent. */
hawq_status read_axes(const node_ctx *c, const Onnx__NodeProto *n, value *const *in, int n_in,
                      int64_t *axes, int *count, hawq_error *err);
/* Transpose's perm attribute (default: reversed axes), validated. */
hawq_status read_perm(const node_ctx *c, const Onnx__NodeProto *n, int rank, int *perm,
                      hawq_error *err);

#endif
