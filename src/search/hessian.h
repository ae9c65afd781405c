/* Mixed precision, part one: how sensitive each quantizable layer is to quantization
 * (ARCHITECTURE.md section 4, docs/mixed_precision.md). For every Conv and Gemm layer i:
 *
 *   Tr(H_i)       the trace of the loss Hessian's diagonal block of the layer's weights, by
 *                 Hutchinson's method: E[v_i^T (H v)_i] = Tr(H_i) for Rademacher v over all
 *                 trainable parameters; H v by central differences of gradients;
 *   delta_i(b)    ||Q_b(W'_i) - W'_i||^2, the squared error of lowering's weight quantizer at b
 *                 bits (b = 2..8);
 *   Omega_i(b)    Tr(H_i) / n_i * delta_i(b), n_i the layer's weight count.
 *
 * Everything is on BN-folded weights W': the loss is differentiated with respect to the weights
 * of a copy of the graph in which every BatchNormalization that lowering folds into the Conv or
 * Gemm before it is folded (hawq_graph_fold_bn), which is the W' that lowering quantizes. The
 * loss is the mean softmax cross-entropy over the given images, the graph run in inference mode
 * (BN by its running statistics), and H is its Hessian with ReLU, Clip and LeakyRelu held on
 * their linear pieces at theta (the Hessian autograd gives; hessian.c says why). Results are
 * reproducible: the same inputs, options, seed and thread count give the same bits.
 *
 *   hawq_hessian_options o = hawq_hessian_defaults();
 *   hawq_sensitivity *s;
 *   hawq_sensitivity_compute(g, images, labels, n, &o, NULL, NULL, &s, &err);
 *   ... s->layers[i].trace, .trace_se, .omega[4] ...
 *   hawq_sensitivity_free(s);
 */
#ifndef HAWQ_SEARCH_HESSIAN_H
#define HAWQ_SEARCH_HESSIAN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/graph.h"

/* The stopping rule: the summed trace's relative change |T_n - T_(n-1)| / |T_n| below tol at
 * this many consecutive draws (and at least min_draws in all). One draw that happens to land
 * near the running mean is not convergence: with a single draw, as in PyHessian, runs whose
 * per-draw spread is 30 % of the trace stopped after a median 38 draws, 3.3 % off (simulated);
 * with 5 they run to about 200 draws, 1.5 % off. */
#define HAWQ_HESSIAN_CALM_DRAWS 5

#define HAWQ_SENS_MIN_BITS 2
#define HAWQ_SENS_MAX_BITS 8

typedef struct hawq_hessian_options {
  int batch;     /* images per forward/backward pass (default 128) */
  int threads;   /* 0 means 1 */
  double tol;    /* stop once the summed trace moves by less than this, relatively (1e-3) */
  int min_draws; /* never stop before this many draws (32) */
  int max_draws; /* stop here, unconverged (200) */
  uint64_t seed; /* Rademacher draws */
  double step;   /* finite-difference step relative to the parameters' RMS (1e-3) */
} hawq_hessian_options;

hawq_hessian_options hawq_hessian_defaults(void);

typedef struct hawq_layer_sensitivity {
  char *name;      /* the Conv or Gemm node, as in the graph */
  hawq_op op;      /* HAWQ_OP_CONV or HAWQ_OP_GEMM */
  int node;        /* its index in the caller's graph */
  int64_t params;  /* n_i: the weight count (the bias is not quantized by Q_b) */
  int64_t macs;    /* per image */
  double trace;    /* Tr(H_i), the mean over draws */
  double trace_se; /* its standard error: sample std of the per-draw estimates / sqrt(draws) */
  double delta[HAWQ_SENS_MAX_BITS + 1]; /* indexed by bits, 2..8 */
  double omega[HAWQ_SENS_MAX_BITS + 1];
} hawq_layer_sensitivity;

typedef struct hawq_sensitivity {
  int n_layers;
  hawq_layer_sensitivity *layers; /* in execution order */
  /* Ties: groups of two or more layers reading one tensor (they share its activation bits).
   * Group k is layers tie_layer[tie_start[k] .. tie_start[k + 1]). */
  int n_ties;
  int *tie_start, *tie_layer;
  int64_t images;
  int draws;
  bool converged;     /* stopped on tol (else at max_draws) */
  double total_trace; /* sum of the layers' traces */
  double rel_change;  /* the summed trace's relative change at the last draw */
  double epsilon;     /* the absolute step per parameter */
} hawq_sensitivity;

/* Called after every draw: draws so far, the current summed trace and its relative change. */
typedef void (*hawq_hessian_progress)(void *ctx, int draws, double total_trace, double rel_change);

/* A copy of g in which every BatchNormalization that is the only consumer of a Conv or Gemm
 * output is folded into it (the rule lowering uses): W' = W a, b' = (b - mean) a + beta with
 * a = gamma / sqrt(var + eps), computed in double as lowering does and stored as float. The
 * Conv/Gemm nodes keep their names; other nodes are copied unchanged. */
hawq_status hawq_graph_fold_bn(const hawq_graph *g, hawq_graph **out, hawq_error *err);

/* The quantizable layers of g (lowering's list, hawq_resolve_bits), with their weight counts,
 * MACs, ties and delta_i(b) on BN-folded weights; traces and Omega zero. */
hawq_status hawq_sensitivity_layers(const hawq_graph *g, hawq_sensitivity **out, hawq_error *err);

/* The whole sensitivity analysis. images: n preprocessed images in the graph input's physical
 * layout (NHWC), labels: n class indices. progress may be NULL. */
hawq_status hawq_sensitivity_compute(const hawq_graph *g, const float *images,
                                     const int32_t *labels, int64_t n,
                                     const hawq_hessian_options *opt,
                                     hawq_hessian_progress progress, void *ctx,
                                     hawq_sensitivity **out, hawq_error *err);

void hawq_sensitivity_free(hawq_sensitivity *s); /* NULL is fine */

/* ||Q_b(W) - W||^2 of a weight tensor of `rows` output channels of `per` weights each, with
 * lowering's quantizer (hawq_weight_scale, hawq_weight_quantize). */
double hawq_weight_quant_error(const double *w, int64_t rows, int64_t per, int bits);

/* Descriptive fields of sens.json that the computation does not know. */
typedef struct hawq_sensitivity_info {
  const char *model, *data;
  uint64_t seed;
  double tol;
  double seconds;
} hawq_sensitivity_info;

/* sens.json ("format": "hawq-sensitivity", version 1; docs/mixed_precision.md), malloc'd;
 * NULL if out of memory. */
char *hawq_sensitivity_json(const hawq_sensitivity *s, const hawq_sensitivity_info *info);

#endif
