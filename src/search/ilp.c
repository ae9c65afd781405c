/* Bit allocation by integer linear programming with GLPK (ilp.h; docs/mixed_precision.md).
 *
 * Every solve builds a fresh GLPK problem: one binary column per layer and allowed width, a
 * one-hot row per layer, a row per limited resource, a row per tie and width. Two numerical
 * choices keep GLPK's tolerances far from the decisions:
 *   - each row and the objective are shifted by every layer's smallest term (a constant, since
 *     each layer takes exactly one width) and scaled to a largest coefficient of 1, so a
 *     ResNet's 10^10 BOPS and a toy's 0.5 MB are solved alike;
 *   - the widths GLPK returns are checked against the limits in double; a choice that only
 *     GLPK's feasibility tolerance let through is cut off (a no-good row) and the problem
 *     solved again, so the result always meets every limit (up to LIMIT_SLACK).
 * GLPK keeps no state between calls here that we rely on; messages are off. */
#include "search/ilp.h"

#include <glpk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

/* A limit is met when the total exceeds it by at most this fraction of the resource's scale:
 * a budget from a ratio (all_min + r * (all_max - all_min)) may round one ulp below the total
 * it is meant to allow. */
#define LIMIT_SLACK 1e-9
/* Branch and bound prunes a node whose bound is within this fraction of the incumbent (GLPK's
 * default, 1e-7, could miss optima that close). */
#define OBJECTIVE_TOLERANCE 1e-10
/* Re-solves after cutting off a choice that violates a limit in double arithmetic. */
#define MAX_CUTS 64

const char *hawq_resource_name(hawq_resource r) {
  switch (r) {
    case HAWQ_RES_SIZE:
      return "size";
    case HAWQ_RES_BOPS:
      return "bops";
    case HAWQ_RES_LATENCY:
      return "latency";
    case HAWQ_N_RES:
      break;
  }
  return "?";
}

/* ---- the problem ---- */

static unsigned allowed_bits(const hawq_ilp_problem *p, int i) {
  int pin = p->layers[i].pin;
  return pin ? HAWQ_ILP_BIT(pin) : p->candidates;
}

static int lowest_bit(unsigned mask) {
  for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
    if (mask & HAWQ_ILP_BIT(b)) return b;
  }
  return 0;
}

static int highest_bit(unsigned mask) {
  for (int b = HAWQ_ILP_MAX_BITS; b >= HAWQ_ILP_MIN_BITS; b--) {
    if (mask & HAWQ_ILP_BIT(b)) return b;
  }
  return 0;
}

static const char *layer_name(const hawq_ilp_problem *p, int i) {
  return p->layers[i].name ? p->layers[i].name : "(unnamed)";
}

/* The objective (objective < 0: Omega) or a resource's cost of layer i at b bits. */
static double term(const hawq_ilp_problem *p, int objective, int i, int b) {
  const hawq_ilp_layer *l = &p->layers[i];
  return objective < 0 ? l->omega[b] : l->cost[objective][b];
}

static hawq_status check_terms(const hawq_ilp_problem *p, int i, hawq_error *err) {
  unsigned allowed = allowed_bits(p, i);
  for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
    if (!(allowed & HAWQ_ILP_BIT(b))) continue;
    if (!isfinite(p->layers[i].omega[b])) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "ilp: layer '%s': Omega at %d bits is not finite",
                       layer_name(p, i), b);
    }
    for (int r = 0; r < HAWQ_N_RES; r++) {
      if (p->has_cost[r] && !isfinite(p->layers[i].cost[r][b])) {
        return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "ilp: layer '%s': no %s cost at %d bits",
                         layer_name(p, i), hawq_resource_name((hawq_resource)r), b);
      }
    }
  }
  return HAWQ_OK;
}

static hawq_status validate(const hawq_ilp_problem *p, hawq_error *err) {
  const unsigned all = HAWQ_ILP_BIT(HAWQ_ILP_MAX_BITS + 1) - HAWQ_ILP_BIT(HAWQ_ILP_MIN_BITS);
  if (p->n_layers < 1 || !p->layers) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "ilp: no layers");
  }
  if (!p->candidates || (p->candidates & ~all)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "ilp: candidate bit widths must be in [%d, %d]",
                     HAWQ_ILP_MIN_BITS, HAWQ_ILP_MAX_BITS);
  }
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (p->has_limit[r] && (!p->has_cost[r] || !isfinite(p->limit[r]))) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                       "ilp: the %s limit needs costs and a finite value",
                       hawq_resource_name((hawq_resource)r));
    }
  }
  for (int i = 0; i < p->n_layers; i++) {
    int pin = p->layers[i].pin;
    if (pin && (pin < HAWQ_ILP_MIN_BITS || pin > HAWQ_ILP_MAX_BITS)) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                       "ilp: layer '%s' pinned at %d bits, not in [%d, %d]", layer_name(p, i), pin,
                       HAWQ_ILP_MIN_BITS, HAWQ_ILP_MAX_BITS);
    }
    hawq_status st = check_terms(p, i, err);
    if (st) return st;
  }
  if (p->n_ties && !p->ties) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "ilp: ties missing");
  for (int t = 0; t < p->n_ties; t++) {
    int a = p->ties[t][0], c = p->ties[t][1];
    if (a < 0 || a >= p->n_layers || c < 0 || c >= p->n_layers || a == c) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "ilp: tie %d (%d, %d) is not two distinct layers",
                       t, a, c);
    }
  }
  return HAWQ_OK;
}

void hawq_ilp_extremes(const hawq_ilp_problem *p, hawq_resource r, double *all_min,
                       double *all_max) {
  double lo = 0, hi = 0;
  for (int i = 0; i < p->n_layers; i++) {
    unsigned allowed = allowed_bits(p, i);
    lo += p->layers[i].cost[r][lowest_bit(allowed)];
    hi += p->layers[i].cost[r][highest_bit(allowed)];
  }
  *all_min = lo;
  *all_max = hi;
}

double hawq_ilp_ratio_limit(const hawq_ilp_problem *p, hawq_resource r, double ratio) {
  double lo, hi;
  hawq_ilp_extremes(p, r, &lo, &hi);
  return lo + ratio * (hi - lo);
}

/* The scale of a resource's totals: the sum of every layer's largest allowed cost. */
static double resource_scale(const hawq_ilp_problem *p, int r) {
  double s = 0;
  for (int i = 0; i < p->n_layers; i++) {
    double m = 0;
    unsigned allowed = allowed_bits(p, i);
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      if (allowed & HAWQ_ILP_BIT(b)) m = fmax(m, fabs(p->layers[i].cost[r][b]));
    }
    s += m;
  }
  return s;
}

static double limit_with_slack(const hawq_ilp_problem *p, int r) {
  return p->limit[r] + LIMIT_SLACK * fmax(fabs(p->limit[r]), resource_scale(p, r));
}

static void fill_totals(const hawq_ilp_problem *p, hawq_ilp_solution *s) {
  s->objective = 0;
  for (int i = 0; i < p->n_layers; i++) s->objective += p->layers[i].omega[s->bits[i]];
  for (int r = 0; r < HAWQ_N_RES; r++) {
    s->used[r] = 0;
    if (!p->has_cost[r]) continue;
    for (int i = 0; i < p->n_layers; i++) s->used[r] += p->layers[i].cost[r][s->bits[i]];
  }
}

/* ---- ties and pins alone: groups of tied layers need a width they all allow ---- */

static int find_root(int *parent, int i) {
  while (parent[i] != i) {
    parent[i] = parent[parent[i]]; /* path halving */
    i = parent[i];
  }
  return i;
}

/* "pinned at 8 bits" or "free, bits 4,8". */
static const char *describe_allowed(const hawq_ilp_problem *p, int i, char *buf, size_t size) {
  if (p->layers[i].pin) {
    snprintf(buf, size, "pinned at %d bits", p->layers[i].pin);
    return buf;
  }
  int len = snprintf(buf, size, "free, bits ");
  for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS && len < (int)size; b++) {
    if (p->candidates & HAWQ_ILP_BIT(b)) {
      len += snprintf(buf + len, size - (size_t)len, "%s%d",
                      b == lowest_bit(p->candidates) ? "" : ",", b);
    }
  }
  return buf;
}

/* Fails naming two tied layers when a group of tied layers has no width they all allow (pins
 * disagree, or a pin outside the candidates). Without limits, that is the only way the problem
 * can be infeasible. */
static hawq_status check_tie_groups(const hawq_ilp_problem *p, hawq_ilp_solution *s,
                                    hawq_error *err) {
  int n = p->n_layers;
  int *parent = malloc(sizeof(int) * (size_t)n);
  unsigned *common = malloc(sizeof(unsigned) * (size_t)n);
  if (!parent || !common) {
    free(parent);
    free(common);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "ilp: out of memory");
  }
  for (int i = 0; i < n; i++) parent[i] = i;
  for (int t = 0; t < p->n_ties; t++) {
    parent[find_root(parent, p->ties[t][0])] = find_root(parent, p->ties[t][1]);
  }
  for (int i = 0; i < n; i++) common[i] = ~0u;
  for (int i = 0; i < n; i++) common[find_root(parent, i)] &= allowed_bits(p, i);
  hawq_status st = HAWQ_OK;
  for (int i = 0; i < n && !st; i++) {
    int root = find_root(parent, i);
    if (common[root]) continue;
    int other = -1; /* a group member sharing no width with i, else any other member */
    for (int j = 0; j < n; j++) {
      if (j == i || find_root(parent, j) != root) continue;
      if (other < 0 || !(allowed_bits(p, i) & allowed_bits(p, j))) other = j;
    }
    char da[64], db[64];
    s->infeasible = true;
    st = hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                   "ilp: tied layers '%s' (%s) and '%s' (%s) can take no common bit width",
                   layer_name(p, i), describe_allowed(p, i, da, sizeof da), layer_name(p, other),
                   describe_allowed(p, other, db, sizeof db));
  }
  free(parent);
  free(common);
  return st;
}

/* ---- one GLPK solve ---- */

/* What to minimise and under which limits. */
typedef struct ilp_query {
  int objective;   /* -1: total Omega; else the resource whose total is minimised */
  unsigned limits; /* bit r set: resource r's limit applies */
} ilp_query;

/* A GLPK problem under construction: columns per (layer, width), scratch for one row. */
typedef struct ilp_model {
  const hawq_ilp_problem *p;
  glp_prob *lp;
  int *col; /* [layer * HAWQ_ILP_NBITS + bits]: GLPK column, 0 where the width is not allowed */
  int *ind; /* one row's column indices, 1-based as GLPK wants */
  double *val;
} ilp_model;

static void model_free(ilp_model *m) {
  if (m->lp) glp_delete_prob(m->lp);
  free(m->col);
  free(m->ind);
  free(m->val);
}

static double min_term(const hawq_ilp_problem *p, int objective, int i) {
  double m = INFINITY;
  unsigned allowed = allowed_bits(p, i);
  for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
    if (allowed & HAWQ_ILP_BIT(b)) m = fmin(m, term(p, objective, i, b));
  }
  return m;
}

/* Fills the scratch row with every column's shifted term (term - the layer's smallest) and
 * returns its length; *shift gets the sum of the smallest terms, *scale the largest shifted
 * coefficient. */
static int shifted_row(ilp_model *m, int objective, double *shift, double *scale) {
  const hawq_ilp_problem *p = m->p;
  int len = 0;
  *shift = 0;
  *scale = 0;
  for (int i = 0; i < p->n_layers; i++) {
    double lo = min_term(p, objective, i);
    *shift += lo;
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      int j = m->col[i * HAWQ_ILP_NBITS + b];
      if (!j) continue;
      len++;
      m->ind[len] = j;
      m->val[len] = term(p, objective, i, b) - lo;
      *scale = fmax(*scale, m->val[len]);
    }
  }
  return len;
}

/* Binary columns, with the shifted and scaled objective. */
static void set_objective(ilp_model *m, int objective) {
  double shift, scale;
  int len = shifted_row(m, objective, &shift, &scale);
  for (int k = 1; k <= len; k++) {
    glp_set_col_kind(m->lp, m->ind[k], GLP_BV);
    glp_set_obj_coef(m->lp, m->ind[k], scale > 0 ? m->val[k] / scale : 0);
  }
}

static void add_row(ilp_model *m, int len, int type, double lb, double ub) {
  int row = glp_add_rows(m->lp, 1);
  glp_set_mat_row(m->lp, row, len, m->ind, m->val);
  glp_set_row_bnds(m->lp, row, type, lb, ub);
}

static void add_one_hot_rows(ilp_model *m) {
  const hawq_ilp_problem *p = m->p;
  for (int i = 0; i < p->n_layers; i++) {
    int len = 0;
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      int j = m->col[i * HAWQ_ILP_NBITS + b];
      if (!j) continue;
      len++;
      m->ind[len] = j;
      m->val[len] = 1;
    }
    add_row(m, len, GLP_FX, 1, 1);
  }
}

/* x_{a,b} - x_{c,b} = 0 for every width either allows (a width only one allows is forced 0). */
static void add_tie_rows(ilp_model *m) {
  const hawq_ilp_problem *p = m->p;
  for (int t = 0; t < p->n_ties; t++) {
    int a = p->ties[t][0], c = p->ties[t][1];
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      int ja = m->col[a * HAWQ_ILP_NBITS + b], jc = m->col[c * HAWQ_ILP_NBITS + b];
      if (!ja && !jc) continue;
      int len = 0;
      if (ja) {
        m->ind[++len] = ja;
        m->val[len] = 1;
      }
      if (jc) {
        m->ind[++len] = jc;
        m->val[len] = -1;
      }
      add_row(m, len, GLP_FX, 0, 0);
    }
  }
}

/* Returns false when a limit cannot be met even by every layer's cheapest width. */
static bool add_limit_rows(ilp_model *m, unsigned limits) {
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (!(limits & (1u << r))) continue;
    double shift, scale;
    int len = shifted_row(m, r, &shift, &scale);
    double rhs = limit_with_slack(m->p, r) - shift;
    if (rhs < 0) return false;
    if (scale == 0) continue; /* every choice costs the same: the limit holds */
    for (int k = 1; k <= len; k++) m->val[k] /= scale;
    add_row(m, len, GLP_UP, 0, rhs / scale);
  }
  return true;
}

/* Builds the query's problem; *trivially_infeasible when a limit is below its cheapest total. */
static hawq_status model_build(ilp_model *m, ilp_query q, bool *trivially_infeasible,
                               hawq_error *err) {
  const hawq_ilp_problem *p = m->p;
  size_t cells = (size_t)p->n_layers * HAWQ_ILP_NBITS;
  m->col = calloc(cells, sizeof *m->col);
  m->ind = malloc((cells + 1) * sizeof *m->ind);
  m->val = malloc((cells + 1) * sizeof *m->val);
  if (!m->col || !m->ind || !m->val)
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "ilp: out of memory");
  m->lp = glp_create_prob();
  glp_set_obj_dir(m->lp, GLP_MIN);
  for (int i = 0; i < p->n_layers; i++) {
    unsigned allowed = allowed_bits(p, i);
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      if (allowed & HAWQ_ILP_BIT(b)) m->col[i * HAWQ_ILP_NBITS + b] = glp_add_cols(m->lp, 1);
    }
  }
  set_objective(m, q.objective);
  add_one_hot_rows(m);
  add_tie_rows(m);
  *trivially_infeasible = !add_limit_rows(m, q.limits);
  return HAWQ_OK;
}

/* Reads the chosen widths of an optimal GLPK solution. */
static hawq_status read_bits(const ilp_model *m, int *bits, hawq_error *err) {
  const hawq_ilp_problem *p = m->p;
  for (int i = 0; i < p->n_layers; i++) {
    bits[i] = 0;
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      int j = m->col[i * HAWQ_ILP_NBITS + b];
      if (!j || glp_mip_col_val(m->lp, j) < 0.5) continue;
      if (bits[i]) {
        return hawq_fail(err, HAWQ_ERR_INTERNAL, "ilp: GLPK chose two widths for layer '%s'",
                         layer_name(p, i));
      }
      bits[i] = b;
    }
    if (!bits[i]) {
      return hawq_fail(err, HAWQ_ERR_INTERNAL, "ilp: GLPK chose no width for layer '%s'",
                       layer_name(p, i));
    }
  }
  return HAWQ_OK;
}

/* The first limit of q the widths exceed in double arithmetic (beyond the slack), or -1. */
static int violated_limit(const hawq_ilp_problem *p, unsigned limits, const int *bits) {
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (!(limits & (1u << r))) continue;
    double total = 0;
    for (int i = 0; i < p->n_layers; i++) total += p->layers[i].cost[r][bits[i]];
    if (total > limit_with_slack(p, r)) return r;
  }
  return -1;
}

/* sum_i x_{i,bits[i]} <= n - 1: forbids exactly this choice. */
static void add_no_good_row(ilp_model *m, const int *bits) {
  int n = m->p->n_layers;
  for (int i = 0; i < n; i++) {
    m->ind[i + 1] = m->col[i * HAWQ_ILP_NBITS + bits[i]];
    m->val[i + 1] = 1;
  }
  add_row(m, n, GLP_UP, 0, n - 1);
}

/* Runs GLPK; *feasible false when nothing meets the constraints. */
static hawq_status model_solve(ilp_model *m, bool *feasible, hawq_error *err) {
  glp_iocp parm;
  glp_init_iocp(&parm);
  parm.presolve = GLP_ON;
  parm.msg_lev = GLP_MSG_OFF;
  parm.tol_obj = OBJECTIVE_TOLERANCE;
  int ret = glp_intopt(m->lp, &parm);
  int status = glp_mip_status(m->lp);
  *feasible = false;
  if (ret == GLP_ENOPFS || (ret == 0 && status == GLP_NOFEAS)) return HAWQ_OK;
  if (ret == 0 && status == GLP_OPT) {
    *feasible = true;
    return HAWQ_OK;
  }
  return hawq_fail(err, HAWQ_ERR_INTERNAL, "ilp: GLPK glp_intopt returned %d (MIP status %d)", ret,
                   status);
}

/* Minimises the query's objective; bits filled when *feasible. */
static hawq_status solve_query(const hawq_ilp_problem *p, ilp_query q, int *bits, bool *feasible,
                               hawq_error *err) {
  ilp_model m = {.p = p};
  bool trivially_infeasible = false;
  hawq_status st = model_build(&m, q, &trivially_infeasible, err);
  *feasible = false;
  for (int cut = 0; !st && !trivially_infeasible && cut <= MAX_CUTS; cut++) {
    st = model_solve(&m, feasible, err);
    if (st || !*feasible) break;
    if ((st = read_bits(&m, bits, err))) break;
    if (violated_limit(p, q.limits, bits) < 0) break;
    *feasible = false;
    if (cut == MAX_CUTS) {
      st = hawq_fail(err, HAWQ_ERR_INTERNAL, "ilp: GLPK's solutions keep exceeding a limit");
    }
    add_no_good_row(&m, bits);
  }
  model_free(&m);
  return st;
}

/* ---- infeasible limits: which one, and what it would need ---- */

static unsigned all_limits(const hawq_ilp_problem *p) {
  unsigned mask = 0;
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (p->has_limit[r]) mask |= 1u << r;
  }
  return mask;
}

/* The main problem is infeasible and the ties and pins are not to blame: finds a limit that
 * cannot be met even when its resource alone is minimised under everything else. */
static hawq_status explain_infeasible(const hawq_ilp_problem *p, hawq_ilp_solution *s,
                                      hawq_error *err) {
  unsigned limits = all_limits(p);
  s->infeasible = true;
  s->infeasible_resource = -1;
  s->min_feasible = NAN;
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (!(limits & (1u << r))) continue;
    ilp_query q = {.objective = r, .limits = limits & ~(1u << r)};
    bool feasible;
    hawq_status st = solve_query(p, q, s->bits, &feasible, err);
    if (st) return st;
    if (!feasible) continue;
    double total = 0;
    for (int i = 0; i < p->n_layers; i++) total += p->layers[i].cost[r][s->bits[i]];
    s->infeasible_resource = r;
    s->min_feasible = total;
    const char *name = hawq_resource_name((hawq_resource)r);
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "ilp: the %s limit %.10g cannot be met: the smallest feasible %s is %.10g "
                     "(under the ties, pins and other limits)",
                     name, p->limit[r], name, total);
  }
  return hawq_fail(
      err, HAWQ_ERR_INVALID_ARG,
      "ilp: the limits cannot be met together (each alone can, with the ties and pins)");
}

hawq_status hawq_ilp_solve(const hawq_ilp_problem *p, hawq_ilp_solution *s, hawq_error *err) {
  s->infeasible = false;
  s->infeasible_resource = -1;
  s->min_feasible = NAN;
  hawq_status st = validate(p, err);
  if (!st) st = check_tie_groups(p, s, err);
  if (st) return st;
  ilp_query q = {.objective = -1, .limits = all_limits(p)};
  bool feasible;
  if ((st = solve_query(p, q, s->bits, &feasible, err))) return st;
  if (!feasible) return explain_infeasible(p, s, err);
  fill_totals(p, s);
  return HAWQ_OK;
}

/* ---- Pareto sweep ---- */

void hawq_ilp_frontier_free(hawq_ilp_frontier *f) {
  if (!f) return;
  free(f->points);
  free(f->bits_storage);
  free(f);
}

static hawq_ilp_frontier *frontier_new(int n_layers, int n, hawq_resource r) {
  hawq_ilp_frontier *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->resource = r;
  f->n_layers = n_layers;
  f->points = calloc((size_t)(n ? n : 1), sizeof *f->points);
  f->bits_storage = calloc((size_t)(n ? n : 1) * (size_t)n_layers, sizeof *f->bits_storage);
  if (!f->points || !f->bits_storage) {
    hawq_ilp_frontier_free(f);
    return NULL;
  }
  return f;
}

static bool same_bits(const int *a, const int *b, int n) {
  return !memcmp(a, b, sizeof(int) * (size_t)n);
}

hawq_status hawq_ilp_sweep(const hawq_ilp_problem *p, hawq_resource r, const double *ratios, int n,
                           hawq_ilp_frontier **out, hawq_error *err) {
  *out = NULL;
  if ((int)r < 0 || r >= HAWQ_N_RES || !p->has_cost[r]) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "ilp: the swept resource has no costs");
  }
  if (n < 1) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "ilp: no budgets to sweep");
  hawq_ilp_frontier *f = frontier_new(p->n_layers, n, r);
  if (!f) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "ilp: out of memory");
  hawq_ilp_problem q = *p;
  q.has_limit[r] = true;
  for (int k = 0; k < n; k++) {
    hawq_ilp_point *pt = &f->points[f->n_points];
    hawq_ilp_solution s = {.bits = f->bits_storage + (size_t)f->n_points * (size_t)p->n_layers};
    q.limit[r] = hawq_ilp_ratio_limit(p, r, ratios[k]);
    hawq_status st = hawq_ilp_solve(&q, &s, err);
    if (st && s.infeasible) continue;
    if (st) {
      hawq_ilp_frontier_free(f);
      return st;
    }
    if (f->n_points && same_bits(s.bits, pt[-1].bits, p->n_layers)) continue;
    *pt = (hawq_ilp_point){
        .ratio = ratios[k], .limit = q.limit[r], .objective = s.objective, .bits = s.bits};
    memcpy(pt->used, s.used, sizeof pt->used);
    f->n_points++;
  }
  if (!f->n_points) { /* err holds the last budget's reason */
    hawq_ilp_frontier_free(f);
    return HAWQ_ERR_INVALID_ARG;
  }
  hawq_error_clear(err);
  *out = f;
  return HAWQ_OK;
}
