/* Training throughput of hawq's float engine: bench_train (--arch A [--size S] [--channels C]
 * [--classes K] | --model M.onnx) [--batch B] [--threads T] [--steps N] [--warmup W]
 * [--profile 1]. Times forward + loss + backward + SGD step on one fixed random batch (no data
 * loading, as bench/train_torch.py does for PyTorch) and prints one JSON line: the median step
 * time and images/s. --profile prints the forward and backward time of every op type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/graph.h"
#include "core/rng.h"
#include "float/train.h"
#include "hawq/hawq.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  const char *arch = NULL, *model = NULL;
  int size = 28, channels = 1, classes = 10, batch = 128, threads = 1, steps = 30, warmup = 5;
  int profile = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--arch"))
      arch = v;
    else if (!strcmp(k, "--model"))
      model = v;
    else if (!strcmp(k, "--size"))
      size = atoi(v);
    else if (!strcmp(k, "--channels"))
      channels = atoi(v);
    else if (!strcmp(k, "--classes"))
      classes = atoi(v);
    else if (!strcmp(k, "--batch"))
      batch = atoi(v);
    else if (!strcmp(k, "--threads"))
      threads = atoi(v);
    else if (!strcmp(k, "--steps"))
      steps = atoi(v);
    else if (!strcmp(k, "--warmup"))
      warmup = atoi(v);
    else if (!strcmp(k, "--profile"))
      profile = atoi(v);
    else {
      fprintf(stderr, "bench_train: unknown option %s\n", k);
      return 1;
    }
  }
  if (!arch == !model || steps < 1 || batch < 1) {
    fprintf(stderr,
            "usage: bench_train (--arch A | --model M.onnx) [--batch B] [--threads T] "
            "[--steps N]\n");
    return 1;
  }
  hawq_error err;
  hawq_graph *g = NULL;
  hawq_status st = arch ? hawq_arch_build(&(hawq_arch_options){.name = arch,
                                                               .channels = channels,
                                                               .height = size,
                                                               .width = size,
                                                               .classes = classes,
                                                               .seed = 1},
                                          &g, &err)
                        : hawq_graph_load_onnx(model, NULL, &g, &err);
  hawq_train_plan *tp = NULL;
  hawq_optim *opt = NULL;
  if (!st) {
    st = hawq_train_plan_create(
        g, &(hawq_train_options){.batch = batch, .threads = threads, .profile = profile}, &tp,
        &err);
  }
  if (!st) {
    st = hawq_optim_create(
        &(hawq_optim_options){
            .kind = HAWQ_OPTIM_SGD, .momentum = 0.9f, .nesterov = true, .weight_decay = 5e-4f},
        tp, &opt, &err);
  }
  if (st) {
    fprintf(stderr, "bench_train: %s\n", err.msg);
    return 1;
  }
  const hawq_tensor *in = &g->tensors[g->inputs[0]];
  int64_t per = hawq_tensor_numel(in), n_classes = 0;
  hawq_train_plan_logits(tp, &n_classes);
  float *x = malloc((size_t)(per * batch) * sizeof(float));
  int32_t *y = malloc((size_t)batch * sizeof(int32_t));
  hawq_rng rng = hawq_rng_seed(0);
  for (int64_t i = 0; i < per * batch; i++) x[i] = (float)hawq_rng_normal(&rng);
  for (int i = 0; i < batch; i++) y[i] = (int32_t)hawq_rng_below(&rng, (uint64_t)n_classes);
  double *times = malloc((size_t)steps * sizeof(double));
  for (int s = 0; s < warmup + steps; s++) {
    double t0 = now_s();
    if (hawq_train_plan_forward(tp, x, true, &err)) break;
    hawq_train_plan_loss(tp, y, 0.0f, NULL);
    hawq_train_plan_zero_grad(tp);
    if (hawq_train_plan_backward(tp, &err)) break;
    hawq_optim_step(opt, tp, 0.05f);
    if (s >= warmup) times[s - warmup] = now_s() - t0;
  }
  qsort(times, (size_t)steps, sizeof *times, cmp_double);
  double med = times[steps / 2];
  printf(
      "{\"engine\": \"hawq\", \"arch\": \"%s\", \"batch\": %d, \"threads\": %d, "
      "\"median_step_s\": %.6f, \"images_per_s\": %.1f, \"activation_mib\": %.1f}\n",
      arch ? arch : model, batch, threads, med, batch / med,
      (double)hawq_train_plan_bytes(tp) / 1048576);
  if (profile) {
    double fwd[HAWQ_OP_COUNT] = {0}, bwd[HAWQ_OP_COUNT] = {0}, total = 0;
    for (int k = 0; k < g->n_nodes; k++) {
      double f, b;
      hawq_train_plan_node_seconds(tp, k, &f, &b);
      fwd[g->nodes[k].op] += f;
      bwd[g->nodes[k].op] += b;
      total += f + b;
    }
    for (int op = 0; op < HAWQ_OP_COUNT; op++) {
      if (fwd[op] + bwd[op] == 0) continue;
      fprintf(stderr, "  %-16s forward %7.2f ms  backward %7.2f ms  (%4.1f%%)\n",
              hawq_op_name((hawq_op)op), 1e3 * fwd[op] / (warmup + steps),
              1e3 * bwd[op] / (warmup + steps), 100 * (fwd[op] + bwd[op]) / total);
    }
  }
  free(times);
  free(x);
  free(y);
  hawq_optim_destroy(opt);
  hawq_train_plan_destroy(tp);
  hawq_graph_destroy(g);
  return 0;
}
