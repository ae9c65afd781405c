/* Fully connected layers (Gemm / MatMul with constant weights), and the sgemm entry point the
 * convolution shares. OpenBLAS is linked in its OpenMP build (see CMakeLists.txt): called inside
 * one of hawq's parallel loops it runs single-threaded and is safe to call concurrently; called
 * outside, it uses the thread count the plan set for the run. */
#include <cblas.h>

#include "float/ops.h"

void hawq_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                   int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k, 1.0f,
              a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

void hawq_gemm_forward(const float *in, const float *w, const float *b, float *out, int64_t rows,
                       int64_t n, int64_t k, hawq_act act, int threads) {
  if (threads < 1) threads = 1;
  /* Split the larger of rows and output columns across threads, in blocks of 16 columns. */
  int64_t row_parts = rows >= n ? threads : 1;
  int64_t col_parts = rows >= n ? 1 : threads;
  int64_t rchunk = (rows + row_parts - 1) / row_parts;
  int64_t cchunk = ((n + col_parts - 1) / col_parts + 15) & ~(int64_t)15;
  int64_t tasks = row_parts * col_parts;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t r0 = (t / col_parts) * rchunk, c0 = (t % col_parts) * cchunk;
    int64_t nr = rows - r0 < rchunk ? rows - r0 : rchunk;
    int64_t nc = n - c0 < cchunk ? n - c0 : cchunk;
    if (nr <= 0 || nc <= 0) continue;
    float *o = out + r0 * n + c0;
    hawq_sgemm_nt(nr, nc, k, in + r0 * k, k, w + c0 * k, k, 0.0f, o, n);
    for (int64_t i = 0; i < nr; i++) {
      for (int64_t j = 0; j < nc; j++) {
        float v = o[i * n + j] + (b ? b[c0 + j] : 0.0f);
        o[i * n + j] = hawq_act_apply(act, v);
      }
    }
  }
}
