/* Batch normalization, inference form: per-channel y = x * a + d with a = scale/sqrt(var+eps)
 * and d = bias - mean * a, on x viewed as (outer, c, inner). NHWC images are (N*H*W, C, 1). */
#include <math.h>

#include "float/ops.h"

void hawq_batchnorm_forward(const float *in, float *out, int64_t outer, int64_t c, int64_t inner,
                            const float *scale, const float *bias, const float *mean,
                            const float *var, float eps, hawq_act act, int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && outer > 1)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t ch = 0; ch < c; ch++) {
      float a = scale[ch] / sqrtf(var[ch] + eps), d = bias[ch] - mean[ch] * a;
      const float *x = in + (o * c + ch) * inner;
      float *y = out + (o * c + ch) * inner;
      for (int64_t i = 0; i < inner; i++) y[i] = hawq_act_apply(act, x[i] * a + d);
    }
  }
}
