/* libFuzzer target for the ONNX importer: any bytes must import or be refused with one line,
 * never crash, leak or read out of bounds. What imports (with a symbolic batch, then again with
 * fixed shapes) must also be runnable: a float plan with batch 2 is made and run on zeros, and
 * its outputs must have the sizes the graph declares. Graphs too large to run quickly (a tensor
 * over ~1M elements, or too many multiply-adds) are imported and freed but not run. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "hawq/hawq.h"

#define FUZZ_BATCH 2
#define MAX_RUN_ELEMENTS ((int64_t)1 << 20) /* per tensor, whole batch */
#define MAX_RUN_WORK 2e7                    /* multiply-adds (or element visits), whole batch */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One line, non-empty, terminated inside the buffer. */
static bool message_ok(const hawq_error *err) {
  const char *end = memchr(err->msg, '\0', sizeof err->msg);
  return end && end != err->msg && !memchr(err->msg, '\n', (size_t)(end - err->msg));
}

static double elements(const hawq_tensor *t, int batch) {
  double n = 1;
  for (int d = 0; d < t->rank; d++) n *= (double)t->dims[d];
  return t->batched ? n * batch : n;
}

/* Whether running g is cheap: every tensor small, and a bounded amount of arithmetic. Computed
 * in double so that no product can overflow. */
static bool cheap_to_run(const hawq_graph *g, int batch) {
  for (int t = 0; t < g->n_tensors; t++) {
    if (elements(&g->tensors[t], batch) > (double)MAX_RUN_ELEMENTS) return false;
  }
  double work = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    double out = elements(&g->tensors[n->output], batch), per = 1;
    switch (n->op) {
      case HAWQ_OP_CONV:
      case HAWQ_OP_GEMM: {
        const hawq_tensor *w = &g->tensors[n->inputs[1]];
        for (int d = 1; d < w->rank; d++) per *= (double)w->dims[d];
        break;
      }
      case HAWQ_OP_MAXPOOL:
      case HAWQ_OP_AVGPOOL:
        per = (double)n->attr.pool.kernel[0] * (double)n->attr.pool.kernel[1];
        break;
      default:
        per = 1;
        for (int i = 0; i < n->n_inputs; i++) {
          if (n->inputs[i] >= 0) work += elements(&g->tensors[n->inputs[i]], batch);
        }
        break;
    }
    work += out * per;
  }
  return work <= MAX_RUN_WORK;
}

static void run_graph(const hawq_graph *g) {
  if (!cheap_to_run(g, FUZZ_BATCH)) return;
  hawq_float_plan_options po = {.batch = FUZZ_BATCH, .threads = 1};
  hawq_float_plan *p = NULL;
  hawq_error err;
  hawq_status st = hawq_float_plan_create(g, &po, &p, &err);
  if (st != HAWQ_OK) {
    /* A graph that imported must be plannable; only running out of memory is acceptable. */
    if (st != HAWQ_ERR_NO_MEMORY || !message_ok(&err) || p) __builtin_trap();
    return;
  }
  size_t n_in = hawq_graph_num_inputs(g);
  float **inputs = calloc(n_in ? n_in : 1, sizeof *inputs);
  bool ok = inputs != NULL;
  for (size_t i = 0; ok && i < n_in; i++) {
    hawq_tensor_info ti = hawq_graph_input(g, i);
    size_t count = 1;
    for (int d = 0; d < ti.rank; d++) count *= (size_t)ti.dims[d];
    if (ti.batched) count *= FUZZ_BATCH;
    inputs[i] = calloc(count ? count : 1, sizeof(float));
    ok = inputs[i] != NULL;
  }
  if (ok) {
    if (hawq_float_plan_run(p, (const float *const *)inputs, &err) != HAWQ_OK) __builtin_trap();
    for (size_t i = 0; i < hawq_graph_num_outputs(g); i++) {
      hawq_tensor_info ti = hawq_graph_output(g, i);
      size_t count = 1;
      for (int d = 0; d < ti.rank; d++) count *= (size_t)ti.dims[d];
      if (ti.batched) count *= FUZZ_BATCH;
      if (hawq_float_plan_output_size(p, i) != count) __builtin_trap();
      /* Touch every output element so ASan sees an undersized buffer. */
      const float *out = hawq_float_plan_output(p, i);
      volatile float sink = 0;
      for (size_t k = 0; k < count; k++) sink += out[k];
      (void)sink;
    }
  }
  for (size_t i = 0; inputs && i < n_in; i++) free(inputs[i]);
  free(inputs);
  hawq_float_plan_destroy(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (int pass = 0; pass < 2; pass++) {
    hawq_import_options opt = {.fixed_shapes = pass == 1};
    hawq_graph *g = NULL;
    hawq_error err;
    hawq_status st = hawq_graph_load_onnx_buffer(data, size, "fuzz", &opt, &g, &err);
    if (st != HAWQ_OK) {
      /* Refused: no graph, one line, and never a hawq bug (HAWQ_ERR_INTERNAL). */
      if (g || !message_ok(&err) || err.status != st || st == HAWQ_ERR_INTERNAL) __builtin_trap();
      continue;
    }
    if (!g) __builtin_trap();
    run_graph(g);
    hawq_graph_destroy(g);
  }
  return 0;
}
