/* Fully connected layers (Gemm / MatMul with constant weights) over oneDNN's sgemm. */
#include <oneapi/dnnl/dnnl.h>

#include "float/ops.h"

void hawq_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                   int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) { /* nothing to multiply: C = beta C */
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  /* Arguments are valid by construction (positive sizes, leading dimensions >= widths), so
   * oneDNN cannot refuse them. */
  dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

void hawq_gemm_forward(const float *in, const float *w, const float *b, float *out, int64_t rows,
                       int64_t n, int64_t k, hawq_act act, int threads) {
  if (threads < 1) threads = 1;
  hawq_sgemm_nt(rows, n, k, in, k, w, k, 0.0f, out, n);
  if (!b && !act.on) return;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && rows > 64)
  for (int64_t i = 0; i < rows; i++) {
    float *o = out + i * n;
    for (int64_t j = 0; j < n; j++) o[j] = hawq_act_apply(act, o[j] + (b ? b[j] : 0.0f));
  }
}
