/* Fully connected layers (Gemm / MatMul with constant weights) over oneDNN's sgemm. */
#include <oneapi/dnnl/dnnl.h>

#include "float/ops.h"

void hawq_sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) { /* nothing to multiply: C = beta C */
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  /* Arguments are valid by construction (positive sizes, leading dimensions >= widths), so
   * oneDNN cannot refuse them. */
  char opa = (ta == 'T' || ta == 't') ? 'T' : 'N', opb = (tb == 'T' || tb == 't') ? 'T' : 'N';
  dnnl_sgemm(opa, opb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

void hawq_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                   int64_t ldb, float beta, float *c, int64_t ldc) {
  hawq_sgemm('N', 'T', m, n, k, a, lda, b, ldb, beta, c, ldc);
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

/* The bias gradient sums dout's columns: each task owns a run of columns (split further when
 * there are fewer runs than threads) and adds the rows in order, in double, so the result does
 * not depend on the thread count. */
#define GEMM_DB_TILE 256
#define GEMM_DB_MIN_TILE 16

static void column_sums_into(const float *dout, float *db, int64_t rows, int64_t n, int threads) {
  int64_t width = n < GEMM_DB_TILE ? n : GEMM_DB_TILE;
  if (threads > 1 && (n + width - 1) / width < threads) {
    int64_t w = (n + threads - 1) / threads;
    w = (w + GEMM_DB_MIN_TILE - 1) / GEMM_DB_MIN_TILE * GEMM_DB_MIN_TILE;
    if (w < width) width = w;
  }
  int64_t tiles = (n + width - 1) / width;
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && tiles > 1 && rows * n > 65536)
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t j0 = tile * width, jw = n - j0 < width ? n - j0 : width;
    double acc[GEMM_DB_TILE];
    for (int64_t j = 0; j < jw; j++) acc[j] = 0.0;
    for (int64_t i = 0; i < rows; i++) {
      const float *g = dout + i * n + j0;
      for (int64_t j = 0; j < jw; j++) acc[j] += g[j];
    }
    for (int64_t j = 0; j < jw; j++) db[j0 + j] += (float)acc[j];
  }
}

void hawq_gemm_backward(const float *in, const float *w, const float *dout, float *din, float *dw,
                        float *db, int64_t rows, int64_t n, int64_t k, int threads) {
  if (threads < 1) threads = 1;
  if (rows <= 0 || n <= 0) return; /* dout is empty: nothing flows back */
  /* din (rows,k) += dout (rows,n) * w (n,k) */
  if (din) hawq_sgemm('N', 'N', rows, k, n, dout, n, w, k, 1.0f, din, k);
  /* dw (n,k) += dout^T (n,rows) * in (rows,k) */
  if (dw) hawq_sgemm('T', 'N', n, k, rows, dout, n, in, k, 1.0f, dw, k);
  if (db) column_sums_into(dout, db, rows, n, threads);
}
