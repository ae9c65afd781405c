/* The scalar reference integer runtime: workspace layout, the op loop and argmax. The kernels
 * (one function per op) live in conv.c, pool.c and eltwise.c; qrt.h states the contract.
 *
 * Workspace: tensor t's slot holds batch samples of its per-sample bytes back to back, rounded
 * up to 64 bytes; slots follow one another in tensor order. Slot offsets are recomputed by a
 * walk over the tensors (a few hundred additions per node) rather than stored, so the runtime
 * needs no memory of its own and calls nothing but memcpy. */
#include <string.h>

#include "qrt/qrt_internal.h"

static size_t align64(size_t x) {
  return (x + 63) & ~(size_t)63;
}

static size_t slot_bytes(const hawq_qtensor *t, int batch) {
  return align64((size_t)batch * (size_t)qrt_sample_bytes(t));
}

/* Bytes of all tensor slots; SIZE_MAX on overflow. */
static size_t slots_bytes(const hawq_qmodel *m, int batch) {
  size_t total = 0;
  for (int t = 0; t < m->n_tensors; t++) {
    size_t bytes;
    /* A validated model has < 2^48 bytes per sample; a huge batch could still overflow. */
    if (__builtin_mul_overflow((size_t)batch, (size_t)qrt_sample_bytes(&m->tensors[t]), &bytes) ||
        bytes > SIZE_MAX - 63 || __builtin_add_overflow(total, align64(bytes), &total)) {
      return SIZE_MAX;
    }
  }
  return total;
}

/* The slots, then one scratch area as large as the largest op's need. */
size_t hawq_qrt_workspace_size(const hawq_qmodel *m, int batch) {
  size_t total = slots_bytes(m, batch), scratch = 0;
  for (int i = 0; i < m->n_nodes; i++) {
    if (m->nodes[i].op != HAWQ_QOP_CONV) continue;
    size_t s = hawq_qrt_conv_scratch(m, &m->nodes[i], 1);
    scratch = s > scratch ? s : scratch;
  }
  if (total == SIZE_MAX || __builtin_add_overflow(total, scratch, &total)) return SIZE_MAX;
  return total;
}

void *hawq_qrt_tensor(const hawq_qmodel *m, void *workspace, int batch, int t) {
  size_t offset = 0;
  for (int i = 0; i < t; i++) offset += slot_bytes(&m->tensors[i], batch);
  return (uint8_t *)workspace + offset;
}

void qrt_run_node_reference(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  switch (n->op) {
    case HAWQ_QOP_INPUT:
      hawq_qrt_input(m, n, a);
      break;
    case HAWQ_QOP_CONV:
      hawq_qrt_conv(m, n, a);
      break;
    case HAWQ_QOP_ADD:
      hawq_qrt_add(m, n, a);
      break;
    case HAWQ_QOP_REQUANT:
      hawq_qrt_requant(m, n, a);
      break;
    case HAWQ_QOP_MAXPOOL:
      hawq_qrt_maxpool(m, n, a);
      break;
    case HAWQ_QOP_AVGPOOL:
      hawq_qrt_avgpool(m, n, a);
      break;
    case HAWQ_QOP_CONCAT:
      hawq_qrt_concat(m, n, a);
      break;
    case HAWQ_QOP_COUNT:
      break; /* rejected by hawq_qmodel_validate */
  }
}

void hawq_qrt_run(const hawq_qmodel *m, const uint8_t *pixels, int batch, void *workspace,
                  int32_t *logits) {
  const hawq_qtensor *in = &m->tensors[m->input];
  memcpy(hawq_qrt_tensor(m, workspace, batch, m->input), pixels,
         (size_t)batch * (size_t)qrt_sample_bytes(in));
  void *scratch = (uint8_t *)workspace + slots_bytes(m, batch);
  for (int i = 0; i < m->n_nodes; i++) {
    const hawq_qnode *n = &m->nodes[i];
    qrt_args a = {.out = hawq_qrt_tensor(m, workspace, batch, n->output),
                  .scratch = scratch,
                  .batch = batch,
                  .threads = 1};
    for (int j = 0; j < n->n_inputs; j++) {
      a.in[j] = n->inputs[j] >= 0 ? hawq_qrt_tensor(m, workspace, batch, n->inputs[j]) : NULL;
    }
    qrt_run_node_reference(m, n, &a);
  }
  if (logits) {
    const hawq_qtensor *out = &m->tensors[m->output]; /* I32, 1 x 1 x classes */
    memcpy(logits, hawq_qrt_tensor(m, workspace, batch, m->output),
           (size_t)batch * (size_t)qrt_sample_bytes(out));
  }
}

int64_t hawq_qrt_argmax(const int32_t *v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}
