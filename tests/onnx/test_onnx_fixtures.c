/* Real exporter output: small CNNs that tools/make_models.py exported from PyTorch 1.13 at
 * opsets 11, 13 and 17 (do_constant_folding=False, dynamic batch), with PyTorch's outputs on a
 * random batch. hawq must import each and reproduce PyTorch within 1e-4, at the exported batch
 * and with the batch split into single images (the batch is symbolic). */
#include <math.h>

#include "core/graph.h"
#include "data/npy.h"
#include "hawq/hawq.h"
#include "test_util.h"

#define FIXTURES "tests/onnx/fixtures"

static double max_err(const float *got, const float *want, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]) / (1.0 + fabs((double)want[i]));
    if (!(d <= worst)) worst = d; /* NaN propagates */
  }
  return worst;
}

/* Runs g on the logical input x (rank 4), batch-at-once or one image at a time, into out. */
static int run(const hawq_graph *g, const hawq_npy *x, int batch, float *out, size_t out_per) {
  int64_t n = x->dims[0], per = (int64_t)x->count / n;
  int64_t dims[4] = {batch, x->dims[1], x->dims[2], x->dims[3]};
  float *phys = malloc((size_t)(per * batch) * sizeof(float));
  hawq_error err;
  hawq_float_plan *p = NULL;
  hawq_float_plan_options po = {.batch = batch, .threads = 2};
  if (hawq_float_plan_create(g, &po, &p, &err)) {
    fprintf(stderr, "plan: %s\n", err.msg);
    free(phys);
    return -1;
  }
  for (int64_t i = 0; i < n; i += batch) {
    hawq_tensor_to_physical((const float *)x->data + i * per, phys, 4, dims);
    const float *ins[1] = {phys};
    if (hawq_float_plan_run(p, ins, &err)) {
      fprintf(stderr, "run: %s\n", err.msg);
      break;
    }
    memcpy(out + i * out_per, hawq_float_plan_output(p, 0),
           (size_t)batch * out_per * sizeof(float));
  }
  hawq_float_plan_destroy(p);
  free(phys);
  return 0;
}

int main(void) {
  const char *names[] = {"convzoo", "inception"};
  const int opsets[] = {11, 13, 17};
  for (size_t m = 0; m < sizeof names / sizeof names[0]; m++) {
    char path[256];
    hawq_npy x, y;
    hawq_error err;
    snprintf(path, sizeof path, FIXTURES "/%s.input.npy", names[m]);
    REQUIRE(hawq_npy_read_file(path, &x, &err) == HAWQ_OK, "%s", err.msg);
    snprintf(path, sizeof path, FIXTURES "/%s.output.npy", names[m]);
    REQUIRE(hawq_npy_read_file(path, &y, &err) == HAWQ_OK, "%s", err.msg);
    for (size_t o = 0; o < sizeof opsets / sizeof opsets[0]; o++) {
      snprintf(path, sizeof path, FIXTURES "/%s_opset%d.onnx", names[m], opsets[o]);
      hawq_graph *g = NULL;
      CHECK(hawq_graph_load_onnx(path, NULL, &g, &err) == HAWQ_OK, "%s", err.msg);
      if (!g) continue;
      size_t out_per = y.count / (size_t)y.dims[0];
      float *got = calloc(y.count, sizeof(float));
      for (int batch = 1; batch <= (int)x.dims[0]; batch += (int)x.dims[0] - 1) {
        memset(got, 0, y.count * sizeof(float));
        CHECK(run(g, &x, batch, got, out_per) == 0, "%s: run failed", path);
        double e = max_err(got, y.data, y.count);
        CHECK(e < 1e-4, "%s batch %d: max error %.3g vs PyTorch", path, batch, e);
        printf("%s batch %d: max relative error %.2g\n", path, batch, e);
      }
      free(got);
      hawq_graph_destroy(g);
    }
    hawq_npy_free(&x);
    hawq_npy_free(&y);
  }
  return test_report("test_onnx_fixtures");
}
