/* The public integer-model API (include/hawq/hawq.h): shape, workspace and classification over
 * the scalar reference runtime. */
#include <stdint.h>

#include "core/status.h"
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
