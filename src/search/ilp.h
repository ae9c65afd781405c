/* Mixed precision, part two: bit allocation by integer linear programming (ARCHITECTURE.md
 * section 4, docs/mixed_precision.md). One binary x_{i,b} per layer i and allowed bit width b,
 * exactly one per layer:
 *
 *   minimise    sum_{i,b} Omega_i(b) x_{i,b}
 *   subject to  sum_b x_{i,b} = 1                           for every layer i
 *               sum_{i,b} cost_r_i(b) x_{i,b} <= limit_r     for every resource r with a limit
 *               x_{a,b} = x_{c,b}                            for every tie (a, c) and every b
 *
 * where the resources are model size, BOPS and latency (any of them at once), a free layer may
 * take any width of the candidate set and a pinned layer only its pin. GLPK solves it exactly
 * (branch and bound, presolve on, silent). The module knows nothing about files or units: the
 * caller fills Omega and the costs (src/search/cost.h does it from sens.json and latency.json).
 *
 *   hawq_ilp_problem p = {.n_layers = n, .layers = layers, .candidates = HAWQ_ILP_BIT(4) |
 *                         HAWQ_ILP_BIT(8), .has_cost = {true, true}};
 *   p.has_limit[HAWQ_RES_SIZE] = true;
 *   p.limit[HAWQ_RES_SIZE] = hawq_ilp_ratio_limit(&p, HAWQ_RES_SIZE, 0.5);
 *   hawq_ilp_solution s = {.bits = bits};
 *   if (hawq_ilp_solve(&p, &s, &err)) ... s.infeasible says whether a limit was too tight ...
 */
#ifndef HAWQ_SEARCH_ILP_H
#define HAWQ_SEARCH_ILP_H

#include <stdbool.h>

#include "hawq/hawq.h"

#define HAWQ_ILP_MIN_BITS 2
#define HAWQ_ILP_MAX_BITS 8
/* Per-bit arrays are indexed by the bit width itself, 0 .. HAWQ_ILP_MAX_BITS. */
#define HAWQ_ILP_NBITS (HAWQ_ILP_MAX_BITS + 1)
/* A set of bit widths is a mask with bit b set for width b. */
#define HAWQ_ILP_BIT(b) (1u << (b))

typedef enum hawq_resource {
  HAWQ_RES_SIZE,    /* model size (cost.h: bytes of packed weights) */
  HAWQ_RES_BOPS,    /* bit operations (cost.h: MACs * b_w * b_a per image) */
  HAWQ_RES_LATENCY, /* latency (cost.h: ms from the hawq bench --layers table) */
  HAWQ_N_RES
} hawq_resource;

/* "size", "bops", "latency". */
const char *hawq_resource_name(hawq_resource r);

typedef struct hawq_ilp_layer {
  const char *name;                        /* for messages */
  double omega[HAWQ_ILP_NBITS];            /* the objective term at each width */
  double cost[HAWQ_N_RES][HAWQ_ILP_NBITS]; /* each resource's cost at each width */
  int pin;                                 /* 0: free; else the only width allowed */
} hawq_ilp_layer;

typedef struct hawq_ilp_problem {
  int n_layers;
  const hawq_ilp_layer *layers;
  unsigned candidates;        /* widths a free layer may take (HAWQ_ILP_BIT masks, 2..8) */
  bool has_cost[HAWQ_N_RES];  /* the resource's costs are filled (used values get reported) */
  bool has_limit[HAWQ_N_RES]; /* the resource is limited (needs has_cost) */
  double limit[HAWQ_N_RES];   /* in the costs' units */
  int n_ties;
  const int (*ties)[2]; /* pairs of layer indices that must take the same width */
} hawq_ilp_problem;

/* Omega and the costs must be finite at every width a layer may take (for the resources with
 * has_cost); other entries are never read. */

typedef struct hawq_ilp_solution {
  int *bits;               /* the caller's array of n_layers: the chosen widths */
  double objective;        /* sum of Omega at the chosen widths */
  double used[HAWQ_N_RES]; /* each resource's total at the chosen widths (0 without costs) */
  /* When the limits cannot be met (hawq_ilp_solve returns HAWQ_ERR_INVALID_ARG): */
  bool infeasible;
  int infeasible_resource; /* the limit that cannot be met, or -1 (ties and pins conflict, or
                              only the limits together are infeasible) */
  double min_feasible;     /* that resource's smallest total under the ties, pins and the
                              other limits */
} hawq_ilp_solution;

/* Solves p exactly. HAWQ_OK with the optimum in s; HAWQ_ERR_INVALID_ARG with s->infeasible set
 * and a one-line message naming the resource, its limit and its smallest feasible value when
 * the constraints cannot be met (a second ILP minimises that resource under everything else);
 * HAWQ_ERR_INVALID_ARG without s->infeasible for a malformed problem. */
hawq_status hawq_ilp_solve(const hawq_ilp_problem *p, hawq_ilp_solution *s, hawq_error *err);

/* A resource's total with every free layer at the smallest (all_min) and the largest (all_max)
 * candidate width, pinned layers at their pins: the ends of the ratio scale. */
void hawq_ilp_extremes(const hawq_ilp_problem *p, hawq_resource r, double *all_min,
                       double *all_max);

/* The limit a budget ratio means, as in HAWQ-V3: all_min + ratio * (all_max - all_min). */
double hawq_ilp_ratio_limit(const hawq_ilp_problem *p, hawq_resource r, double ratio);

/* ---- Pareto sweep ---- */

typedef struct hawq_ilp_point {
  double ratio, limit; /* the swept resource's budget */
  double objective;
  double used[HAWQ_N_RES];
  int *bits; /* n_layers widths (points into the frontier's storage) */
} hawq_ilp_point;

typedef struct hawq_ilp_frontier {
  hawq_resource resource;
  int n_layers;
  int n_points;
  hawq_ilp_point *points; /* by increasing budget */
  int *bits_storage;
} hawq_ilp_frontier;

/* Solves p once per ratio of `ratios` (n, increasing) with the limit of `r` set to
 * hawq_ilp_ratio_limit(p, r, ratio); the other limits, ties and pins stay. Budgets that cannot
 * be met are left out (when none can, the last one's error is returned); a point whose widths
 * equal the previous point's is merged into it (the smallest budget that reaches it is kept).
 * The objective never increases along the frontier. *out is malloc'd: free with
 * hawq_ilp_frontier_free. */
hawq_status hawq_ilp_sweep(const hawq_ilp_problem *p, hawq_resource r, const double *ratios, int n,
                           hawq_ilp_frontier **out, hawq_error *err);

void hawq_ilp_frontier_free(hawq_ilp_frontier *f); /* NULL is fine */

#endif
