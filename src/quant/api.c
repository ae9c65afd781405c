/* The public integer-model API (include/hawq/hawq.h): shape, workspace and classification over
 * the scalar reference runtime, and runners over execution plans (src/qrt/plan.h). */
#include <stdint.h>
#include <stdlib.h>

#include "core/status.h"
#include "qrt/plan.h"
#include "qrt/qrt.h"
#include "quant/qmodel.h"

hawq_qmodel_shape hawq_qmodel_get_shape(const hawq_qmodel *m) {
  const hawq_qtensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
  return (hawq_qmodel_shape){in->h, in->w, in->c, out->c};
}

size_t hawq_qmodel_workspace_size(const hawq_qmodel *m, int batch) {
  return hawq_qrt_workspace_size(m, batch < 1 ? 1 : batch);
}

hawq_status hawq_qmodel_classify(const hawq_qmodel *m, const uint8_t *pixels, int batch,
                                 void *workspace, size_t workspace_size, int32_t *classes,
                                 int32_t *logits, hawq_error *err) {
  if (!m || !pixels || !workspace || !classes || batch < 1) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "hawq_qmodel_classify: model, pixels, workspace and classes must be given and "
                     "batch >= 1 (got batch %d)",
                     batch);
  }
  if ((uintptr_t)workspace % 64) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "hawq_qmodel_classify: the workspace must be 64-byte aligned");
  }
  size_t need = hawq_qrt_workspace_size(m, batch);
  if (workspace_size < need) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "hawq_qmodel_classify: workspace of %zu bytes, %zu needed for batch %d",
                     workspace_size, need, batch);
  }
  hawq_qrt_run(m, pixels, batch, workspace, logits);
  int64_t n = m->tensors[m->output].c;
  const int32_t *out = hawq_qrt_tensor(m, workspace, batch, m->output);
  for (int i = 0; i < batch; i++) classes[i] = (int32_t)hawq_qrt_argmax(out + i * n, n);
  return HAWQ_OK;
}

double hawq_qmodel_logit_scale(const hawq_qmodel *m) {
  return m->tensors[m->output].scale;
}

struct hawq_qrunner {
  const hawq_qmodel *m;
  hawq_qrt_plan *plan;
  int max_batch;
};

hawq_status hawq_qrunner_create(const hawq_qmodel *m, const hawq_qrunner_options *o,
                                hawq_qrunner **out, hawq_error *err) {
  hawq_qrunner_options opts = o ? *o : (hawq_qrunner_options){.isa = HAWQ_ISA_COUNT};
  hawq_isa best = hawq_isa_best();
  if (!m || !out) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "hawq_qrunner_create: no model");
  *out = NULL;
  if (opts.isa == HAWQ_ISA_COUNT) opts.isa = best;
  if (opts.isa < 0 || opts.isa > best) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "hawq_qrunner_create: this CPU lacks %s (the best level here is %s)",
                     hawq_isa_name(opts.isa), hawq_isa_name(best));
  }
  if (opts.threads < 0 || opts.max_batch < 0) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "hawq_qrunner_create: threads and max_batch must be >= 0");
  }
  hawq_qrunner *r = calloc(1, sizeof *r);
  if (r) {
    r->m = m;
    r->max_batch = opts.max_batch < 1 ? 1 : opts.max_batch;
    r->plan = hawq_qrt_plan_create(m, opts.isa, opts.threads, r->max_batch, 0);
  }
  if (!r || !r->plan) {
    free(r);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "hawq_qrunner_create: out of memory");
  }
  *out = r;
  return HAWQ_OK;
}

void hawq_qrunner_destroy(hawq_qrunner *r) {
  if (!r) return;
  hawq_qrt_plan_destroy(r->plan);
  free(r);
}

hawq_isa hawq_qrunner_isa(const hawq_qrunner *r) {
  return hawq_qrt_plan_get_stats(r->plan).isa;
}

size_t hawq_qrunner_workspace_size(const hawq_qrunner *r) {
  return hawq_qrt_plan_workspace_size(r->plan);
}

hawq_status hawq_qrunner_classify(const hawq_qrunner *r, const uint8_t *pixels, int batch,
                                  void *workspace, size_t workspace_size, int32_t *classes,
                                  int32_t *logits, hawq_error *err) {
  if (!r || !pixels || !workspace || !classes || batch < 1 || batch > r->max_batch) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "hawq_qrunner_classify: runner, pixels, workspace and classes must be given "
                     "and 1 <= batch <= %d (got batch %d)",
                     r ? r->max_batch : 1, batch);
  }
  if ((uintptr_t)workspace % 64) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "hawq_qrunner_classify: the workspace must be 64-byte aligned");
  }
  size_t need = hawq_qrt_plan_workspace_size(r->plan);
  if (workspace_size < need) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "hawq_qrunner_classify: workspace of %zu bytes, %zu needed", workspace_size,
                     need);
  }
  hawq_qrt_plan_run(r->plan, pixels, batch, workspace, logits);
  int64_t n = r->m->tensors[r->m->output].c;
  const int32_t *out = hawq_qrt_plan_tensor(r->plan, workspace, r->m->output);
  for (int i = 0; i < batch; i++) classes[i] = (int32_t)hawq_qrt_argmax(out + i * n, n);
  return HAWQ_OK;
}
