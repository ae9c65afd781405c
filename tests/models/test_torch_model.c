/* A model hawq did not train, against PyTorch: tests/models/torch/fmnist_resnet14.onnx (the
 * foundation issue's bundled model, now a fixture) was trained and exported by
 * tools/make_models.py, which saved PyTorch's logits for the first 100 Fashion-MNIST test images,
 * its prediction for every test image and the gap between its top two logits. hawq must give
 * logits within 1e-4 of PyTorch's and the same prediction on every image, except where PyTorch's
 * top two logits are within 1e-4 of each other (a tie that float rounding may break either way).
 */
#include <math.h>

#include "core/graph.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "hawq/hawq.h"
#include "test_util.h"

#define MODEL "tests/models/torch/fmnist_resnet14.onnx"
#define STEM "tests/models/torch/fmnist_resnet14"

int main(void) {
  hawq_error err;
  hawq_graph *g = NULL;
  hawq_dataset *ds = NULL;
  if (access(HAWQ_FASHION_MNIST_DIR, R_OK)) {
    printf("skipped: %s not found (apt-get install dataset-fashion-mnist)\n",
           HAWQ_FASHION_MNIST_DIR);
    return 77;
  }
  REQUIRE(hawq_graph_load_onnx(MODEL, NULL, &g, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(hawq_dataset_load("fashion-mnist", "test", &ds, &err) == HAWQ_OK, "%s", err.msg);
  hawq_npy logits100, pred, gap;
  REQUIRE(hawq_npy_read_file(STEM ".torch_logits100.npy", &logits100, &err) == HAWQ_OK, "%s",
          err.msg);
  REQUIRE(hawq_npy_read_file(STEM ".torch_pred.npy", &pred, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(hawq_npy_read_file(STEM ".torch_top2gap.npy", &gap, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(
      pred.count == (size_t)ds->count && gap.count == (size_t)ds->count && logits100.count == 1000,
      "reference files do not match the test set");
  hawq_preprocess pp = hawq_graph_preprocess(g);
  CHECK(
      pp.has_metadata && fabsf(pp.mean[0] - 0.2860f) < 1e-6f && fabsf(pp.std[0] - 0.3530f) < 1e-6f,
      "preprocessing metadata: mean %g std %g", pp.mean[0], pp.std[0]);

  const int batch = 100, classes = 10;
  hawq_float_plan *plan = NULL;
  hawq_float_plan_options po = {.batch = batch, .threads = 2};
  REQUIRE(hawq_float_plan_create(g, &po, &plan, &err) == HAWQ_OK, "%s", err.msg);
  float *input = malloc(sizeof(float) * batch * 28 * 28);
  const float *torch_logits = logits100.data;
  const uint8_t *torch_pred = pred.data;
  const float *torch_gap = gap.data;
  int64_t correct = 0, torch_correct = 0, differing = 0, ties = 0;
  double worst = 0;
  for (int64_t first = 0; first < ds->count; first += batch) {
    hawq_dataset_fill_batch(ds, first, batch, &pp, input);
    const float *ins[1] = {input};
    REQUIRE(hawq_float_plan_run(plan, ins, &err) == HAWQ_OK, "%s", err.msg);
    const float *out = hawq_float_plan_output(plan, 0);
    for (int i = 0; i < batch; i++) {
      int64_t img = first + i;
      const float *row = out + i * classes;
      int best = 0;
      for (int c = 1; c < classes; c++) best = row[c] > row[best] ? c : best;
      correct += best == ds->labels[img];
      torch_correct += torch_pred[img] == ds->labels[img];
      if (img < 100) {
        for (int c = 0; c < classes; c++) {
          double d = fabs((double)row[c] - torch_logits[img * classes + c]);
          worst = d > worst ? d : worst;
        }
      }
      if (torch_gap[img] < 1e-4f) ties++;
      if (best != torch_pred[img]) {
        differing++;
        CHECK(torch_gap[img] < 1e-4f,
              "image %lld: hawq predicts %d, PyTorch %d with a top-two gap of %g", (long long)img,
              best, torch_pred[img], torch_gap[img]);
      }
    }
  }
  CHECK(worst <= 1e-4, "logits of the first 100 images differ from PyTorch's by up to %g", worst);
  printf(
      "hawq top-1 %.2f%% (%lld/%lld), PyTorch %.2f%% (%lld); %lld predictions differ (%lld "
      "near-ties in PyTorch); max |logit difference| on 100 images %.3g\n",
      100.0 * (double)correct / (double)ds->count, (long long)correct, (long long)ds->count,
      100.0 * (double)torch_correct / (double)ds->count, (long long)torch_correct,
      (long long)differing, (long long)ties, worst);
  CHECK(llabs(correct - torch_correct) <= differing, "accuracy differs beyond the near-ties");
  free(input);
  hawq_float_plan_destroy(plan);
  hawq_npy_free(&logits100);
  hawq_npy_free(&pred);
  hawq_npy_free(&gap);
  hawq_dataset_destroy(ds);
  hawq_graph_destroy(g);
  return test_report("test_torch_model");
}
