/* hawq's training arithmetic against PyTorch's: from the PyTorch-trained fixture
 * (tests/models/torch/fmnist_resnet14.onnx), three SGD steps (lr 0.05, Nesterov momentum 0.9,
 * weight decay 5e-4 on conv and linear weights) with BN in training mode on the first 64
 * Fashion-MNIST training images, as `tools/make_models.py sgdsteps` ran them in PyTorch 1.13.
 * Each step's loss must match PyTorch's within 1e-5 (relative), and the eval-mode logits of the
 * batch afterwards (which see every updated weight and BN running statistic) within 2e-4
 * (measured: 9e-7 and 1.5e-5).
 * This checks the whole chain at once: backward through the imported graph, the loss, the
 * optimizer's update rule, BN's batch statistics and running-statistics update. */
#include <math.h>

#include "core/graph.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "float/train.h"
#include "hawq/hawq.h"
#include "test_util.h"

#define STEM "tests/models/torch/fmnist_resnet14"
#define BATCH 64

int main(void) {
  hawq_error err;
  if (access(HAWQ_FASHION_MNIST_DIR, R_OK)) {
    printf("skipped: %s not found\n", HAWQ_FASHION_MNIST_DIR);
    return 77;
  }
  hawq_graph *g = NULL;
  hawq_dataset *ds = NULL;
  hawq_npy losses, logits;
  REQUIRE(!hawq_graph_load_onnx(STEM ".onnx", NULL, &g, &err), "%s", err.msg);
  REQUIRE(!hawq_dataset_load("fashion-mnist", "train", &ds, &err), "%s", err.msg);
  REQUIRE(!hawq_npy_read_file(STEM ".sgd_losses.npy", &losses, &err), "%s", err.msg);
  REQUIRE(!hawq_npy_read_file(STEM ".sgd_logits.npy", &logits, &err), "%s", err.msg);
  REQUIRE(logits.count == BATCH * 10 && losses.count >= 1, "sgd_logits.npy has %zu values",
          logits.count);
  hawq_train_plan *tp = NULL;
  hawq_optim *opt = NULL;
  REQUIRE(
      !hawq_train_plan_create(g, &(hawq_train_options){.batch = BATCH, .threads = 2}, &tp, &err),
      "%s", err.msg);
  REQUIRE(
      !hawq_optim_create(
          &(hawq_optim_options){
              .kind = HAWQ_OPTIM_SGD, .momentum = 0.9f, .nesterov = true, .weight_decay = 5e-4f},
          tp, &opt, &err),
      "%s", err.msg);
  const float *want_loss = losses.data, *want_logits = logits.data;
  float *x = malloc(BATCH * 28 * 28 * sizeof(float));
  int32_t y[BATCH];
  hawq_dataset_fill_batch(ds, 0, BATCH, &g->preprocess, x);
  for (int i = 0; i < BATCH; i++) y[i] = ds->labels[i];
  for (int64_t step = 0; step < (int64_t)losses.count; step++) {
    REQUIRE(!hawq_train_plan_forward(tp, x, true, &err), "%s", err.msg);
    double loss = hawq_train_plan_loss(tp, y, 0.0f, NULL);
    double want = want_loss[step];
    printf("step %lld: loss %.9f, PyTorch %.9f\n", (long long)step + 1, loss, want);
    CHECK(fabs(loss - want) <= 1e-5 * fabs(want), "step %lld: loss %.9g, PyTorch %.9g",
          (long long)step + 1, loss, want);
    hawq_train_plan_zero_grad(tp);
    REQUIRE(!hawq_train_plan_backward(tp, &err), "%s", err.msg);
    hawq_optim_step(opt, tp, 0.05f);
  }
  hawq_float_plan *fp = NULL;
  REQUIRE(!hawq_float_plan_create(g, &(hawq_float_plan_options){.batch = BATCH, .threads = 2}, &fp,
                                  &err),
          "%s", err.msg);
  REQUIRE(!hawq_float_plan_run(fp, (const float *const[]){x}, &err), "%s", err.msg);
  const float *z = hawq_float_plan_output(fp, 0);
  double worst = 0;
  for (int i = 0; i < BATCH * 10; i++) worst = fmax(worst, fabs((double)z[i] - want_logits[i]));
  printf("eval logits after %lld steps: max |hawq - PyTorch| = %.3g\n", (long long)losses.count,
         worst);
  CHECK(worst <= 2e-4, "logits after the steps differ from PyTorch's by %.3g", worst);
  hawq_float_plan_destroy(fp);
  hawq_optim_destroy(opt);
  hawq_train_plan_destroy(tp);
  free(x);
  hawq_npy_free(&losses);
  hawq_npy_free(&logits);
  hawq_dataset_destroy(ds);
  hawq_graph_destroy(g);
  return test_report("test_torch_sgd");
}
