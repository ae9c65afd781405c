/* Writing ONNX files: a model's input preprocessing into a copy of its file, and a whole
 * hawq_graph as a new ONNX model (opset 13), optionally with extra float initializers that no
 * node uses (training checkpoints keep optimizer state there), and reading those back. */
#ifndef HAWQ_ONNX_EXPORT_H
#define HAWQ_ONNX_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "hawq/hawq.h"

/* Copies the ONNX model at in_path to out_path (which may be the same path) with the
 * hawq.input.* metadata_props set from pp, every other field unchanged. The output is written
 * atomically. */
hawq_status hawq_onnx_write_preprocess(const char *in_path, const char *out_path,
                                       const hawq_preprocess *pp, hawq_error *err);

typedef struct hawq_onnx_write_options {
  /* Extra metadata_props; a key the graph already has gets the new value. */
  size_t n_meta;
  const char *const *meta_keys;
  const char *const *meta_values;
  /* Extra float initializers not used by any node, written after the graph's own. data is
   * row-major in the given (logical) shape; names must differ from the graph's tensor names. */
  size_t n_extra;
  const struct hawq_onnx_extra_tensor {
    const char *name;
    int rank; /* 0 to HAWQ_MAX_RANK */
    const int64_t *dims;
    const float *data;
  } * extra;
} hawq_onnx_write_options;

/* Writes g to path as an ONNX model: ir_version 7, opset 13, producer "hawq", the nodes in
 * order as standard ONNX ops, every parameter an initializer in logical layout, batched inputs
 * and outputs with dimension 0 named "N". metadata_props are the graph's own, its input
 * preprocessing (when it has one) and opt's. Same graph and options give the same bytes. What
 * ONNX opset 13 cannot express (e.g. dilated average pooling) fails with one line naming the
 * node. The file is written atomically. opt may be NULL. */
hawq_status hawq_onnx_write_graph(const hawq_graph *g, const char *path,
                                  const hawq_onnx_write_options *opt, hawq_error *err);

/* One initializer read back by hawq_onnx_read_extra. */
typedef struct hawq_onnx_extra_item {
  char *name;
  int rank;
  int64_t dims[HAWQ_MAX_RANK];
  int64_t count; /* product of dims */
  float *data;   /* count values, row-major */
} hawq_onnx_extra_item;

typedef struct hawq_onnx_extra_set {
  size_t n;
  hawq_onnx_extra_item *items; /* in file order */
} hawq_onnx_extra_set;

/* The float32 initializers of the model at path whose names start with prefix ("" for all),
 * copied, in file order; initializers of other element types are skipped. *out is set (possibly
 * with n = 0) on success; free it with hawq_onnx_extra_set_free. */
hawq_status hawq_onnx_read_extra(const char *path, const char *prefix, hawq_onnx_extra_set **out,
                                 hawq_error *err);
void hawq_onnx_extra_set_free(hawq_onnx_extra_set *set); /* NULL is fine */

#endif
