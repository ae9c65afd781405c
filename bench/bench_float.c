/* Latency of the float engine on one model: bench_float MODEL [--batch B] [--threads T]
 * [--runs R] [--warmup W] [--profile 1]. Input is N(0,1) noise (latency does not depend on values).
 * Prints one JSON line: median, min and max milliseconds per run, and GFLOP/s (2 x MACs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/graph.h"
#include "hawq/hawq.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_float MODEL [--batch B] [--threads T] [--runs R] [--warmup W]\n");
    return 1;
  }
  int batch = 1, threads = 1, runs = 30, warmup = 5, profile = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--batch"))
      batch = v;
    else if (!strcmp(argv[i], "--threads"))
      threads = v;
    else if (!strcmp(argv[i], "--runs"))
      runs = v;
    else if (!strcmp(argv[i], "--warmup"))
      warmup = v;
    else if (!strcmp(argv[i], "--profile"))
      profile = v;
    else {
      fprintf(stderr, "bench_float: unknown option %s\n", argv[i]);
      return 1;
    }
  }
  if (batch < 1 || threads < 1 || runs < 1 || warmup < 0) {
    fprintf(stderr, "bench_float: batch, threads and runs must be >= 1\n");
    return 1;
  }
  hawq_error err;
  hawq_graph *g = NULL;
  if (hawq_graph_load_onnx(argv[1], NULL, &g, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  hawq_float_plan *p = NULL;
  hawq_float_plan_options po = {.batch = batch, .threads = threads, .profile = profile != 0};
  if (hawq_float_plan_create(g, &po, &p, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  int64_t macs = 0;
  for (int k = 0; k < g->n_nodes; k++) macs += hawq_node_macs(g, k);
  const hawq_tensor *in = &g->tensors[g->inputs[0]];
  size_t n = (size_t)hawq_tensor_numel(in) * (size_t)batch;
  float *x = malloc(n * sizeof(float));
  uint64_t s = 12345;
  for (size_t i = 0; i < n; i++) { /* Box-Muller on a LCG: values do not matter for latency */
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((s >> 11) + 0.5) / 9007199254740992.0;
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = ((s >> 11) + 0.5) / 9007199254740992.0;
    x[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
  }
  const float *ins[1] = {x};
  double *ms = malloc((size_t)runs * sizeof(double));
  for (int i = 0; i < warmup + runs; i++) {
    double t0 = now_ms();
    if (hawq_float_plan_run(p, ins, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    if (i >= warmup) ms[i - warmup] = now_ms() - t0;
  }
  qsort(ms, (size_t)runs, sizeof(double), cmp_double);
  double median = runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
  printf(
      "{\"engine\": \"hawq fp32\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, "
      "\"runs\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, "
      "\"gflops\": %.1f, \"activation_mib\": %.1f}\n",
      argv[1], batch, threads, runs, median, ms[0], ms[runs - 1],
      2.0 * (double)macs * batch / (median * 1e6),
      (double)hawq_float_plan_activation_bytes(p) / 1048576.0);
  if (profile) { /* time per op kind, per run, on stderr */
    double by_op[HAWQ_OP_COUNT] = {0}, total = 0;
    for (int k = 0; k < g->n_nodes; k++) {
      double t = hawq_float_plan_node_seconds(p, (size_t)k);
      by_op[g->nodes[k].op] += t;
      total += t;
    }
    for (int op = 0; op < HAWQ_OP_COUNT; op++) {
      if (by_op[op] > 0) {
        fprintf(stderr, "  %-16s %8.3f ms/run %5.1f%%\n", hawq_op_name((hawq_op)op),
                1e3 * by_op[op] / (warmup + runs), 100 * by_op[op] / total);
      }
    }
  }
  free(ms);
  free(x);
  hawq_float_plan_destroy(p);
  hawq_graph_destroy(g);
  return 0;
}
