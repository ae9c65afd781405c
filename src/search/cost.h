/* The ILP's inputs from files (docs/mixed_precision.md, "Cost model"): per-layer sensitivity from
 * sens.json (written by hawq sensitivity) and per-layer latency from latency.json (written by
 * hawq bench --layers), turned into the objective and cost arrays of ilp.h:
 *
 *   Omega_i(b)    sens.json's "omega" at b bits (Tr(H_i) / n_i * ||Q_b(W_i) - W_i||^2)
 *   size_i(b)     ceil(n_i * b / 8) bytes: the packed weights (two 4-bit values a byte, ...)
 *   bops_i(b)     MACs_i * b * b per image: weights and the activation read both at b bits
 *   latency_i(b)  the table's median ms for the layer alone at b bits and the chosen threads
 *
 * Every reader fails with one line naming the file and the field. */
#ifndef HAWQ_SEARCH_COST_H
#define HAWQ_SEARCH_COST_H

#include <stdint.h>

#include "hawq/hawq.h"
#include "search/ilp.h"

typedef struct hawq_sens_layer {
  char *name;                   /* the Conv or Gemm node */
  char *op;                     /* "Conv" or "Gemm" */
  int64_t params;               /* n_i: weights */
  int64_t macs;                 /* per image */
  double trace;                 /* Tr(H_i) */
  double omega[HAWQ_ILP_NBITS]; /* by bits; NAN where the file has none */
} hawq_sens_layer;

typedef struct hawq_sens_file {
  char *model;
  int n_layers;
  hawq_sens_layer *layers; /* in execution order */
  int n_ties;
  int (*ties)[2]; /* pairs of layer indices: a group of k tied layers gives k - 1 pairs */
} hawq_sens_file;

/* Reads sens.json ("format": "hawq-sensitivity", "version": 1). */
hawq_status hawq_sens_read(const char *path, hawq_sens_file **out, hawq_error *err);
void hawq_sens_free(hawq_sens_file *s); /* NULL is fine */

/* Reads latency.json ("format": "hawq-latency", "version": 1) and fills ms[i][b] for every
 * layer i of s at `threads` threads (NAN at widths the table lacks). Fails naming a layer of s
 * the table does not have, or a thread count it was not measured at. */
hawq_status hawq_latency_read(const char *path, int threads, const hawq_sens_file *s,
                              double (*ms)[HAWQ_ILP_NBITS], hawq_error *err);

/* Fills layers[0 .. s->n_layers) (names point into s): Omega, size and BOPS at every width
 * 2..8, latency from ms (NULL: none, NAN). Pins are left 0. */
void hawq_cost_fill(const hawq_sens_file *s, const double (*ms)[HAWQ_ILP_NBITS],
                    hawq_ilp_layer *layers);

/* The index of the layer called name, or -1. */
int hawq_sens_find(const hawq_sens_file *s, const char *name);

#endif
