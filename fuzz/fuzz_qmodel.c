/* libFuzzer target for .hqm files (src/quant/qmodel_io.c): any bytes must load or be refused with
 * one line, never crash, leak or read out of bounds. Random changes rarely survive the digest, so
 * every input is read twice: as hawq_qmodel_load_buffer does, and with the digest check off
 * (HAWQ_QMODEL_READ_NO_DIGEST), which lets mutated models reach hawq_qmodel_validate and the
 * runtime. A model that loads must
 *   - run in the reference integer runtime (src/qrt) on an all-zero and an all-255 image, batch 1,
 *     without a sanitizer report: validation is all that stands between a file and the runtime;
 *   - give the same logits through an execution plan at the CPU's best kernel level (packed
 *     weights, memory plan, vectorised ops), 2 threads, or trap;
 *   - save again and load again (with the digest checked) to a model with the same digest.
 * Models whose workspace exceeds 64 MiB or that take too many multiply-adds are loaded but not
 * run. Seed corpus: tests/quant/fixtures/ (tiny_v1.hqm). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hawq/hawq.h"
#include "qrt/plan.h"
#include "qrt/qrt.h"
#include "quant/qmodel.h"
#include "quant/qmodel_io.h"

#define MAX_WORKSPACE ((size_t)64 << 20)
#define MAX_MACS ((int64_t)20 << 20) /* per image; conv MACs, pools and the rest are cheaper */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One line, non-empty, terminated inside the buffer. */
static bool message_ok(const hawq_error *err) {
  const char *end = memchr(err->msg, '\0', sizeof err->msg);
  return end && end != err->msg && !memchr(err->msg, '\n', (size_t)(end - err->msg));
}

/* Work beyond convolutions: every tensor's bytes (pools visit each input a bounded number of
 * times per output, and their windows are at most the kernel). */
static bool cheap_to_run(const hawq_qmodel *m) {
  if (hawq_qmodel_cost(m, -1).macs > MAX_MACS) return false;
  double work = 0; /* in double: a pool's kernel may be 2^20 x 2^20 */
  for (int i = 0; i < m->n_nodes; i++) {
    const hawq_qnode *n = &m->nodes[i];
    const hawq_qtensor *y = &m->tensors[n->output];
    double per = 1;
    if (n->op == HAWQ_QOP_MAXPOOL || n->op == HAWQ_QOP_AVGPOOL) {
      per = (double)n->kernel[0] * n->kernel[1];
    }
    work += (double)y->h * (double)y->w * (double)y->c * per;
  }
  return work <= (double)MAX_MACS;
}

static void run(const hawq_qmodel *m) {
  if (!cheap_to_run(m)) return;
  size_t ws_size = hawq_qrt_workspace_size(m, 1);
  if (ws_size == 0 || ws_size > MAX_WORKSPACE) return;
  const hawq_qtensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
  size_t pixels_size = (size_t)(in->h * in->w * in->c);
  void *ws = aligned_alloc(64, (ws_size + 63) / 64 * 64);
  uint8_t *pixels = malloc(pixels_size);
  int32_t *logits = malloc((size_t)out->c * sizeof *logits);
  hawq_qrt_plan *plan = hawq_qrt_plan_create(m, hawq_isa_best(), 2, 1, 0);
  size_t plan_ws_size = plan ? hawq_qrt_plan_workspace_size(plan) : 0;
  void *plan_ws = plan ? aligned_alloc(64, (plan_ws_size + 64) / 64 * 64) : NULL;
  int32_t *plan_logits = malloc((size_t)out->c * sizeof *plan_logits);
  if (ws && pixels && logits) {
    for (int pass = 0; pass < 2; pass++) {
      memset(pixels, pass ? 255 : 0, pixels_size);
      hawq_qrt_run(m, pixels, 1, ws, logits);
      volatile int64_t sink = hawq_qrt_argmax(logits, out->c);
      (void)sink;
      if (plan_ws && plan_logits) {
        hawq_qrt_plan_run(plan, pixels, 1, plan_ws, plan_logits);
        if (memcmp(logits, plan_logits, (size_t)out->c * sizeof *logits)) __builtin_trap();
      }
    }
  }
  hawq_qrt_plan_destroy(plan);
  free(plan_ws);
  free(plan_logits);
  free(ws);
  free(pixels);
  free(logits);
}

/* Saving a loaded model and loading that (digest checked) must give the same model. */
static void round_trip(const hawq_qmodel *m) {
  void *bytes = NULL;
  size_t n = 0;
  hawq_error err;
  hawq_status st = hawq_qmodel_serialize(m, "fuzz-resave", &bytes, &n, &err);
  if (st != HAWQ_OK) {
    /* Whatever loads is writable. */
    if (st != HAWQ_ERR_NO_MEMORY || !message_ok(&err)) __builtin_trap();
    return;
  }
  hawq_qmodel *again = NULL;
  st = hawq_qmodel_load_buffer(bytes, n, "fuzz-resave", &again, &err);
  if (st != HAWQ_OK && st != HAWQ_ERR_NO_MEMORY) __builtin_trap();
  if (again && hawq_qmodel_digest(again) != hawq_qmodel_digest(m)) __builtin_trap();
  hawq_qmodel_destroy(again);
  free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (int pass = 0; pass < 2; pass++) {
    hawq_qmodel *m = NULL;
    hawq_error err;
    hawq_status st =
        pass ? hawq_qmodel_read_buffer(data, size, "fuzz", HAWQ_QMODEL_READ_NO_DIGEST, &m, &err)
             : hawq_qmodel_load_buffer(data, size, "fuzz", &m, &err);
    if (st != HAWQ_OK) {
      /* Refused: no model, one line, and never a hawq bug (HAWQ_ERR_INTERNAL). */
      if (m || !message_ok(&err) || err.status != st || st == HAWQ_ERR_INTERNAL) __builtin_trap();
      continue;
    }
    if (!m) __builtin_trap();
    run(m);
    round_trip(m);
    hawq_qmodel_destroy(m);
  }
  return 0;
}
