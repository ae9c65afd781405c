/* Softmax cross-entropy over logits (rows, classes), with label smoothing. Per row, with
 * lse = log sum_c exp(z_c) (max-subtracted, in double) and targets t = (1 - s) onehot + s / C:
 *   loss = -sum_c t_c (z_c - lse) = (1 - s) (lse - z_label) + s (lse - mean_c z_c),
 * and d loss / d z = softmax(z) - t. */
#include <math.h>

#include "float/ops.h"

/* The rows are summed in LOSS_BLOCKS fixed blocks, then the blocks in order, so the loss does
 * not depend on the thread count (an OpenMP reduction's order is unspecified). */
#define LOSS_BLOCKS 64

/* One row: writes its softmax to p and returns its loss. */
static double cross_entropy_row(const float *z, int32_t label, int64_t classes, double smoothing,
                                float *p) {
  double mx = z[0], sum = 0.0, sum_z = 0.0;
  for (int64_t c = 1; c < classes; c++) mx = z[c] > mx ? z[c] : mx;
  for (int64_t c = 0; c < classes; c++) {
    sum += exp((double)z[c] - mx);
    sum_z += z[c];
  }
  double lse = mx + log(sum);
  for (int64_t c = 0; c < classes; c++) p[c] = (float)exp((double)z[c] - lse);
  return (1.0 - smoothing) * (lse - z[label]) + smoothing * (lse - sum_z / (double)classes);
}

double hawq_cross_entropy_forward(const float *logits, const int32_t *labels, int64_t rows,
                                  int64_t classes, float smoothing, float *probs, int threads) {
  if (rows <= 0 || classes <= 0) return 0.0;
  if (threads < 1) threads = 1;
  int64_t blocks = rows < LOSS_BLOCKS ? rows : LOSS_BLOCKS;
  double partial[LOSS_BLOCKS];
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && rows * classes > 16384)
  for (int64_t blk = 0; blk < blocks; blk++) {
    int64_t r0 = rows * blk / blocks, r1 = rows * (blk + 1) / blocks;
    double acc = 0.0;
    for (int64_t r = r0; r < r1; r++)
      acc += cross_entropy_row(logits + r * classes, labels[r], classes, smoothing,
                               probs + r * classes);
    partial[blk] = acc;
  }
  double total = 0.0;
  for (int64_t blk = 0; blk < blocks; blk++) total += partial[blk];
  return total / (double)rows;
}

void hawq_cross_entropy_backward(const float *probs, const int32_t *labels, int64_t rows,
                                 int64_t classes, float smoothing, float scale, float *dlogits,
                                 int threads) {
  if (!dlogits || rows <= 0 || classes <= 0) return;
  if (threads < 1) threads = 1;
  float coef = (float)((double)scale / (double)rows);
  float off = (float)((double)smoothing / (double)classes); /* every class's target share */
  float on = (float)(1.0 - (double)smoothing);              /* the label's extra share */
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && rows * classes > 16384)
  for (int64_t r = 0; r < rows; r++) {
    const float *p = probs + r * classes;
    float *g = dlogits + r * classes;
    int64_t label = labels[r];
    for (int64_t c = 0; c < classes; c++) g[c] += coef * (p[c] - (c == label ? on + off : off));
  }
}
