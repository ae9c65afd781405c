/* Calibration: per-tensor ranges over the first N images (see calib.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "float/ops.h"
#include "quant/calib.h"

hawq_calib_options hawq_calib_defaults(void) {
  return (hawq_calib_options){.images = 1024, .batch = 64, .momentum = 0.99, .threads = 1};
}

/* k-th smallest of v[0..n) (0-based), reordering v: Hoare's selection. */
static float select_kth(float *v, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    float pivot = v[lo + (hi - lo) / 2];
    int64_t i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) {
        float t = v[i];
        v[i++] = v[j];
        v[j--] = t;
      }
    }
    if (k <= j)
      hi = j;
    else if (k >= i)
      lo = i;
    else
      return v[k];
  }
  return v[k];
}

/* The batch's range of n values: extremes, or percentiles (nearest rank, as torch.kthvalue). */
static void batch_range(const float *x, int64_t n, double percentile, float *scratch, double *lo,
                        double *hi) {
  if (percentile <= 0) {
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < n; i++) {
      mn = x[i] < mn ? x[i] : mn;
      mx = x[i] > mx ? x[i] : mx;
    }
    *lo = mn;
    *hi = mx;
    return;
  }
  int64_t k_hi = (int64_t)ceil(percentile / 100.0 * (double)n) - 1;
  if (k_hi < 0) k_hi = 0;
  if (k_hi > n - 1) k_hi = n - 1;
  int64_t k_lo = n - 1 - k_hi;
  memcpy(scratch, x, (size_t)n * sizeof(float));
  *hi = select_kth(scratch, n, k_hi);
  *lo = select_kth(scratch, n, k_lo);
}

int hawq_calib_batch_limit(const hawq_graph *g, int requested, size_t max_bytes) {
  uint64_t per_image = 0;
  for (int t = 0; t < g->n_tensors; t++) {
    if (g->tensors[t].kind != HAWQ_TENSOR_PARAM) {
      per_image += (uint64_t)hawq_tensor_numel(&g->tensors[t]) * sizeof(float);
    }
  }
  uint64_t fit = per_image ? max_bytes / per_image : (uint64_t)requested;
  if (fit < 1) fit = 1;
  return fit < (uint64_t)requested ? (int)fit : requested;
}

hawq_status hawq_calibrate(const hawq_graph *g, const hawq_dataset *ds, const hawq_preprocess *pp,
                           const hawq_calib_options *opt, hawq_calib_range *ranges,
                           hawq_calib_progress progress, void *ctx, hawq_error *err) {
  if (opt->images < 1 || opt->batch < 1 || opt->momentum < 0 || opt->momentum >= 1 ||
      opt->percentile < 0 || opt->percentile > 100 ||
      (opt->percentile > 0 && opt->percentile <= 50)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "calibration options: images %lld, batch %d, momentum %g, percentile %g; "
                     "expected images >= 1, batch >= 1, momentum in [0, 1), percentile 0 or in "
                     "(50, 100]",
                     (long long)opt->images, opt->batch, opt->momentum, opt->percentile);
  }
  if (g->n_inputs != 1) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: has %d inputs, calibration needs one image input", g->source,
                     g->n_inputs);
  }
  int64_t total = opt->images < ds->count ? opt->images : ds->count;
  int batch = opt->batch < total ? opt->batch : (int)total;
  hawq_float_plan *plan = NULL;
  hawq_float_plan_options po = {.batch = batch, .threads = opt->threads, .keep_all = true};
  hawq_status st = hawq_float_plan_create(g, &po, &plan, err);
  if (st) return st;
  int64_t per_image = (int64_t)ds->height * ds->width * ds->channels;
  int64_t largest = 0;
  for (int t = 0; t < g->n_tensors; t++) {
    ranges[t] = (hawq_calib_range){0};
    if (g->tensors[t].kind != HAWQ_TENSOR_PARAM) {
      int64_t n = hawq_tensor_numel(&g->tensors[t]);
      largest = n > largest ? n : largest;
    }
  }
  float *input = malloc((size_t)(batch * per_image) * sizeof(float));
  float *scratch = opt->percentile > 0 ? malloc((size_t)(largest * batch) * sizeof(float)) : NULL;
  if (!input || (opt->percentile > 0 && !scratch)) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "calibration: out of memory");
    goto done;
  }
  bool first_batch = true;
  for (int64_t first = 0; first < total; first += batch) {
    /* A short last batch runs padded with zeros; only its first n samples are measured (the
     * batch is a tensor's outermost dimension). */
    int64_t n = total - first < batch ? total - first : batch;
    hawq_dataset_fill_batch(ds, first, n, pp, input);
    if (n < batch)
      memset(input + n * per_image, 0, (size_t)((batch - n) * per_image) * sizeof(float));
    const float *inputs[1] = {input};
    if ((st = hawq_float_plan_run(plan, inputs, err))) goto done;
    for (int t = 0; t < g->n_tensors; t++) {
      const hawq_tensor *tt = &g->tensors[t];
      if (tt->kind == HAWQ_TENSOR_PARAM) continue;
      int64_t count = hawq_tensor_numel(tt) * (tt->batched ? n : 1);
      double lo, hi;
      batch_range(hawq_float_plan_tensor(plan, t), count, opt->percentile, scratch, &lo, &hi);
      hawq_calib_range *r = &ranges[t];
      if (first_batch) {
        *r = (hawq_calib_range){lo, hi, true};
      } else if (opt->momentum == 0) {
        r->min = lo < r->min ? lo : r->min;
        r->max = hi > r->max ? hi : r->max;
      } else {
        r->min = opt->momentum * r->min + (1 - opt->momentum) * lo;
        r->max = opt->momentum * r->max + (1 - opt->momentum) * hi;
      }
    }
    first_batch = false;
    if (progress) progress(ctx, first + n, total);
  }
done:
  free(input);
  free(scratch);
  hawq_float_plan_destroy(plan);
  return st;
}

char *hawq_calib_json(const hawq_calib_options *opt, const char *data_source) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "method", opt->percentile > 0 ? "percentile" : "minmax");
  if (opt->percentile > 0) cJSON_AddNumberToObject(o, "percentile", opt->percentile);
  cJSON_AddNumberToObject(o, "momentum", opt->momentum);
  cJSON_AddNumberToObject(o, "images", (double)opt->images);
  cJSON_AddNumberToObject(o, "batch", opt->batch);
  cJSON_AddStringToObject(o, "images_from", "the first images of the data, in file order");
  if (data_source) cJSON_AddStringToObject(o, "data", data_source);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}
