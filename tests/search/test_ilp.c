/* The bit-allocation ILP (src/search/ilp.h):
 *   - the HAWQ-V3 authors' ResNet18 inputs (tests/search/fixtures/hawq_ilp_resnet18.json): all 9
 *     published optima (size, BOPS, latency at ratios 0.75 / 0.5 / 0.25) reproduced exactly:
 *     bit vectors, objectives, used values, limits from the ratio formula;
 *   - an infeasible budget names the resource and the smallest feasible value;
 *   - ties and pins honoured, checked against exhaustive enumeration on ResNet18;
 *   - 200 random 6-layer instances with candidates {2, 4, 8}, 1-3 limits, ties and pins, each
 *     checked against brute force over all 3^6 assignments;
 *   - the Pareto sweep's objective never increases with the budget;
 *   - malformed problems are refused, and GLPK prints nothing. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "search/ilp.h"
#include "test_util.h"

/* A copy of ../shared/testdata/hawq_ilp_resnet18.json (CI's clone may not sit beside it). */
#define TESTDATA "tests/search/fixtures/hawq_ilp_resnet18.json"
#define MAX_LAYERS 32

static bool close_rel(double a, double b, double rel) {
  return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-300;
}

static bool ties_hold(const hawq_ilp_problem *p, const int *bits) {
  for (int t = 0; t < p->n_ties; t++) {
    if (bits[p->ties[t][0]] != bits[p->ties[t][1]]) return false;
  }
  return true;
}

static bool pins_hold(const hawq_ilp_problem *p, const int *bits) {
  for (int i = 0; i < p->n_layers; i++) {
    if (p->layers[i].pin && bits[i] != p->layers[i].pin) return false;
  }
  return true;
}

static double total(const hawq_ilp_problem *p, int r, const int *bits) {
  double s = 0;
  for (int i = 0; i < p->n_layers; i++) {
    s += r < 0 ? p->layers[i].omega[bits[i]] : p->layers[i].cost[r][bits[i]];
  }
  return s;
}

/* ---- brute force: every assignment of allowed widths ---- */

typedef struct brute_result {
  bool feasible;
  double best;          /* the smallest total of `objective` */
  int bits[MAX_LAYERS]; /* one assignment reaching it */
} brute_result;

/* The limit check ilp.c uses: totals may pass a limit by 1e-9 of the resource's scale. */
static double scale_of(const hawq_ilp_problem *p, int r) {
  double s = 0;
  for (int i = 0; i < p->n_layers; i++) {
    double m = 0;
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      unsigned allowed = p->layers[i].pin ? HAWQ_ILP_BIT(p->layers[i].pin) : p->candidates;
      if (allowed & HAWQ_ILP_BIT(b)) m = fmax(m, fabs(p->layers[i].cost[r][b]));
    }
    s += m;
  }
  return s;
}

static bool limits_hold(const hawq_ilp_problem *p, unsigned limits, const int *bits) {
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (!(limits & (1u << r))) continue;
    double slack = 1e-9 * fmax(fabs(p->limit[r]), scale_of(p, r));
    if (total(p, r, bits) > p->limit[r] + slack) return false;
  }
  return true;
}

/* Minimises `objective` (-1: Omega) under the limits in `limits`, the ties and the pins. */
static brute_result brute_force(const hawq_ilp_problem *p, int objective, unsigned limits) {
  brute_result res = {.feasible = false, .best = INFINITY};
  int n = p->n_layers, choice[MAX_LAYERS] = {0}, bits[MAX_LAYERS];
  int opts[MAX_LAYERS][HAWQ_ILP_NBITS], n_opts[MAX_LAYERS];
  for (int i = 0; i < n; i++) {
    n_opts[i] = 0;
    unsigned allowed = p->layers[i].pin ? HAWQ_ILP_BIT(p->layers[i].pin) : p->candidates;
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      if (allowed & HAWQ_ILP_BIT(b)) opts[i][n_opts[i]++] = b;
    }
  }
  for (;;) {
    for (int i = 0; i < n; i++) bits[i] = opts[i][choice[i]];
    if (ties_hold(p, bits) && limits_hold(p, limits, bits)) {
      double t = total(p, objective, bits);
      if (t < res.best) {
        res.feasible = true;
        res.best = t;
        memcpy(res.bits, bits, sizeof(int) * (size_t)n);
      }
    }
    int i = 0;
    while (i < n && ++choice[i] == n_opts[i]) choice[i++] = 0;
    if (i == n) break;
  }
  return res;
}

static unsigned limit_mask(const hawq_ilp_problem *p) {
  unsigned m = 0;
  for (int r = 0; r < HAWQ_N_RES; r++) m |= p->has_limit[r] ? 1u << r : 0;
  return m;
}

/* ---- the authors' ResNet18 ---- */

typedef struct resnet18 {
  cJSON *root;
  int n;
  hawq_ilp_layer layers[MAX_LAYERS];
  int ties[8][2];
  int n_ties;
  double omega4_sum; /* the constant their objective leaves out: sum trace * delta(4) */
} resnet18;

static const cJSON *field(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  REQUIRE(v, "%s: no '%s'", TESTDATA, name);
  return v;
}

static double at(const cJSON *inputs, const char *name, int i) {
  const cJSON *v = cJSON_GetArrayItem(field(inputs, name), i);
  REQUIRE(cJSON_IsNumber(v), "%s: %s[%d]", TESTDATA, name, i);
  return v->valuedouble;
}

/* Omega_i(b) = trace_i * delta_i(b); size 0.5 * P * x (x = 1 at 4 bits, 2 at 8), in the file's
 * units (Mi params); BOPS from the file's MACs/1e6 as its "units" say: MACs/64 at 4 bits,
 * MACs/16 at 8; latency the T4 table. */
static bool resnet18_load(resnet18 *m) {
  size_t size;
  char *text = test_read_file(TESTDATA, &size);
  if (!text) return false;
  m->root = cJSON_ParseWithLength(text, size);
  free(text);
  REQUIRE(m->root, "%s: not JSON", TESTDATA);
  const cJSON *in = field(m->root, "inputs");
  m->n = cJSON_GetArraySize(field(in, "Hutchinson_trace"));
  REQUIRE(m->n == 19, "%s: %d layers, expected 19", TESTDATA, m->n);
  m->omega4_sum = 0;
  for (int i = 0; i < m->n; i++) {
    hawq_ilp_layer *l = &m->layers[i];
    memset(l, 0, sizeof *l);
    double tr = at(in, "Hutchinson_trace", i), p = at(in, "parameters", i), b = at(in, "bops", i);
    l->omega[4] = tr * at(in, "delta_weights_4bit_square", i);
    l->omega[8] = tr * at(in, "delta_weights_8bit_square", i);
    l->cost[HAWQ_RES_SIZE][4] = 0.5 * p * 1;
    l->cost[HAWQ_RES_SIZE][8] = 0.5 * p * 2;
    l->cost[HAWQ_RES_BOPS][4] = b / 64;
    l->cost[HAWQ_RES_BOPS][8] = b / 16;
    l->cost[HAWQ_RES_LATENCY][4] = at(in, "latency_int4", i);
    l->cost[HAWQ_RES_LATENCY][8] = at(in, "latency_int8", i);
    m->omega4_sum += l->omega[4];
  }
  const cJSON *ties = field(in, "ties"), *t;
  m->n_ties = 0;
  cJSON_ArrayForEach(t, ties) {
    REQUIRE(m->n_ties < 8 && cJSON_GetArraySize(t) == 2, "%s: ties", TESTDATA);
    m->ties[m->n_ties][0] = cJSON_GetArrayItem(t, 0)->valueint;
    m->ties[m->n_ties][1] = cJSON_GetArrayItem(t, 1)->valueint;
    m->n_ties++;
  }
  return true;
}

static hawq_ilp_problem resnet18_problem(const resnet18 *m) {
  hawq_ilp_problem p = {.n_layers = m->n,
                        .layers = m->layers,
                        .candidates = HAWQ_ILP_BIT(4) | HAWQ_ILP_BIT(8),
                        .has_cost = {true, true, true},
                        .n_ties = m->n_ties,
                        .ties = (const int(*)[2])m->ties};
  return p;
}

static int resource_of(const char *kind) {
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (!strcmp(kind, hawq_resource_name((hawq_resource)r))) return r;
  }
  REQUIRE(0, "%s: unknown kind '%s'", TESTDATA, kind);
  return -1;
}

static void test_published_optima(const resnet18 *m) {
  const cJSON *sol;
  int solved = 0;
  cJSON_ArrayForEach(sol, field(m->root, "solutions")) {
    hawq_ilp_problem p = resnet18_problem(m);
    int r = resource_of(field(sol, "kind")->valuestring);
    double ratio = field(sol, "ratio")->valuedouble;
    p.has_limit[r] = true;
    p.limit[r] = hawq_ilp_ratio_limit(&p, (hawq_resource)r, ratio);
    CHECK(close_rel(p.limit[r], field(sol, "limit")->valuedouble, 1e-12),
          "%s %.2f: limit %.17g, published %.17g", hawq_resource_name(r), ratio, p.limit[r],
          field(sol, "limit")->valuedouble);
    int bits[MAX_LAYERS];
    hawq_ilp_solution s = {.bits = bits};
    hawq_error err;
    hawq_status st = hawq_ilp_solve(&p, &s, &err);
    CHECK(st == HAWQ_OK, "%s %.2f: %s", hawq_resource_name(r), ratio, err.msg);
    if (st) continue;
    const cJSON *want = field(sol, "bits");
    char got_s[64] = "", want_s[64] = "";
    for (int i = 0; i < p.n_layers; i++) {
      got_s[i] = (char)('0' + bits[i]);
      want_s[i] = (char)('0' + cJSON_GetArrayItem(want, i)->valueint);
    }
    CHECK(!strcmp(got_s, want_s), "%s %.2f: bits %s, published %s", hawq_resource_name(r), ratio,
          got_s, want_s);
    double objective = s.objective - m->omega4_sum;
    CHECK(close_rel(objective, field(sol, "objective")->valuedouble, 1e-9),
          "%s %.2f: objective %.17g, published %.17g", hawq_resource_name(r), ratio, objective,
          field(sol, "objective")->valuedouble);
    CHECK(close_rel(s.used[r], field(sol, "used")->valuedouble, 1e-9),
          "%s %.2f: used %.17g, published %.17g", hawq_resource_name(r), ratio, s.used[r],
          field(sol, "used")->valuedouble);
    CHECK(s.used[r] <= p.limit[r], "%s %.2f: used %.17g over the limit", hawq_resource_name(r),
          ratio, s.used[r]);
    CHECK(ties_hold(&p, bits), "%s %.2f: a tie broken", hawq_resource_name(r), ratio);
    for (int q = 0; q < HAWQ_N_RES; q++) {
      CHECK(close_rel(s.used[q], total(&p, q, bits), 1e-12), "used[%d]", q);
    }
    solved++;
  }
  CHECK(solved == 9, "%d of 9 published optima solved", solved);
}

static void test_infeasible_resnet18(const resnet18 *m) {
  hawq_ilp_problem p = resnet18_problem(m);
  int bits[MAX_LAYERS];
  hawq_error err;
  double all4, all8;
  hawq_ilp_extremes(&p, HAWQ_RES_SIZE, &all4, &all8);
  CHECK(close_rel(all4, 5.3203125, 1e-15) && close_rel(all8, 10.640625, 1e-15), "all4 %g all8 %g",
        all4, all8);

  /* A ratio below all-4: the smallest feasible size is all-4. */
  p.has_limit[HAWQ_RES_SIZE] = true;
  p.limit[HAWQ_RES_SIZE] = hawq_ilp_ratio_limit(&p, HAWQ_RES_SIZE, -0.5);
  hawq_ilp_solution s = {.bits = bits};
  hawq_status st = hawq_ilp_solve(&p, &s, &err);
  CHECK(st == HAWQ_ERR_INVALID_ARG && s.infeasible && s.infeasible_resource == HAWQ_RES_SIZE,
        "size -0.5: status %d infeasible %d resource %d", st, s.infeasible, s.infeasible_resource);
  CHECK(close_rel(s.min_feasible, all4, 1e-12), "size -0.5: min feasible %.17g, all-4 %.17g",
        s.min_feasible, all4);
  CHECK(strstr(err.msg, "size limit 2.66015625 cannot be met") &&
            strstr(err.msg, "smallest feasible size is 5.3203125"),
        "message: %s", err.msg);

  /* Pins and ties raise the smallest size: layer 14 pinned at 8, tied to 16. */
  hawq_ilp_layer layers[MAX_LAYERS];
  memcpy(layers, m->layers, sizeof layers);
  layers[14].pin = 8;
  p.layers = layers;
  p.limit[HAWQ_RES_SIZE] = 5.5;
  s = (hawq_ilp_solution){.bits = bits};
  st = hawq_ilp_solve(&p, &s, &err);
  double want = all4 + 0.5 * (1.125 + 0.125);
  CHECK(st && s.infeasible_resource == HAWQ_RES_SIZE && close_rel(s.min_feasible, want, 1e-12),
        "pinned: min feasible %.17g, expected %.17g (%s)", s.min_feasible, want, err.msg);

  /* Two limits: a BOPS limit below all-4 is the one named, all-4 BOPS (which meets the size
   * limit) its smallest feasible value. */
  p.layers = m->layers;
  p.limit[HAWQ_RES_SIZE] = hawq_ilp_ratio_limit(&p, HAWQ_RES_SIZE, 0.5);
  p.has_limit[HAWQ_RES_BOPS] = true;
  p.limit[HAWQ_RES_BOPS] = hawq_ilp_ratio_limit(&p, HAWQ_RES_BOPS, -0.1);
  double b4, b8;
  hawq_ilp_extremes(&p, HAWQ_RES_BOPS, &b4, &b8);
  s = (hawq_ilp_solution){.bits = bits};
  st = hawq_ilp_solve(&p, &s, &err);
  CHECK(st && s.infeasible_resource == HAWQ_RES_BOPS && close_rel(s.min_feasible, b4, 1e-12),
        "bops -0.1: resource %d min %.17g, all-4 %.17g (%s)", s.infeasible_resource, s.min_feasible,
        b4, err.msg);
}

/* Pins and ties against exhaustive enumeration of the 2^19 ResNet18 assignments. */
static void test_pins_ties_resnet18(const resnet18 *m) {
  hawq_ilp_layer layers[MAX_LAYERS];
  memcpy(layers, m->layers, sizeof layers);
  layers[0].pin = 4;  /* the most sensitive layer at 4 */
  layers[18].pin = 8; /* the largest at 8 */
  layers[15].pin = 2; /* a width outside the candidates */
  int ties[9][2];
  memcpy(ties, m->ties, sizeof(int) * 2 * (size_t)m->n_ties);
  ties[m->n_ties][0] = 1; /* chained: 1 = 2 = 3 */
  ties[m->n_ties][1] = 2;
  ties[m->n_ties + 1][0] = 3;
  ties[m->n_ties + 1][1] = 2;
  hawq_ilp_problem p = resnet18_problem(m);
  p.layers = layers;
  p.ties = (const int(*)[2])ties;
  p.n_ties = m->n_ties + 2;
  p.has_limit[HAWQ_RES_SIZE] = true;
  p.limit[HAWQ_RES_SIZE] = hawq_ilp_ratio_limit(&p, HAWQ_RES_SIZE, 0.5);
  p.has_limit[HAWQ_RES_LATENCY] = true;
  p.limit[HAWQ_RES_LATENCY] = hawq_ilp_ratio_limit(&p, HAWQ_RES_LATENCY, 0.6);
  int bits[MAX_LAYERS];
  hawq_ilp_solution s = {.bits = bits};
  hawq_error err;
  hawq_status st = hawq_ilp_solve(&p, &s, &err);
  REQUIRE(st == HAWQ_OK, "pins and ties: %s", err.msg);
  CHECK(pins_hold(&p, bits) && ties_hold(&p, bits), "pins or ties broken");
  brute_result b = brute_force(&p, -1, limit_mask(&p));
  CHECK(b.feasible && close_rel(s.objective, b.best, 1e-12), "objective %.17g, brute force %.17g",
        s.objective, b.best);
  CHECK(limits_hold(&p, limit_mask(&p), bits), "limits broken");
  CHECK(close_rel(s.used[HAWQ_RES_BOPS], total(&p, HAWQ_RES_BOPS, bits), 1e-12), "BOPS reported");

  /* Pins that a tie cannot reconcile: named before any solve. */
  layers[4].pin = 8;
  layers[6].pin = 4;
  s = (hawq_ilp_solution){.bits = bits};
  st = hawq_ilp_solve(&p, &s, &err);
  CHECK(st == HAWQ_ERR_INVALID_ARG && s.infeasible && s.infeasible_resource == -1 &&
            strstr(err.msg, "'(unnamed)' (pinned at 8 bits)") &&
            strstr(err.msg, "(pinned at 4 bits)") && strstr(err.msg, "no common bit width"),
        "tie conflict: %s", err.msg);
}

/* The frontier over 21 size ratios: increasing budgets, non-increasing objective, the
 * published optima on it. */
static void test_sweep_resnet18(const resnet18 *m) {
  hawq_ilp_problem p = resnet18_problem(m);
  double ratios[21];
  for (int k = 0; k <= 20; k++) ratios[k] = k * 0.05;
  for (int r = 0; r < HAWQ_N_RES; r++) {
    hawq_ilp_frontier *f = NULL;
    hawq_error err;
    hawq_status st = hawq_ilp_sweep(&p, (hawq_resource)r, ratios, 21, &f, &err);
    REQUIRE(st == HAWQ_OK, "sweep %s: %s", hawq_resource_name(r), err.msg);
    CHECK(f->n_points >= 2 && f->n_points <= 21, "%d points", f->n_points);
    CHECK(f->points[0].ratio == 0 && f->points[f->n_points - 1].bits[0] == 8, "ends");
    for (int k = 0; k < f->n_points; k++) {
      const hawq_ilp_point *pt = &f->points[k];
      CHECK(pt->used[r] <= pt->limit, "point %d over its budget", k);
      CHECK(ties_hold(&p, pt->bits), "point %d breaks a tie", k);
      if (k == 0) continue;
      CHECK(pt->ratio > pt[-1].ratio && pt->limit > pt[-1].limit, "point %d budget order", k);
      CHECK(pt->objective <= pt[-1].objective, "%s point %d objective %.17g > %.17g",
            hawq_resource_name(r), k, pt->objective, pt[-1].objective);
      CHECK(memcmp(pt->bits, pt[-1].bits, sizeof(int) * 19), "point %d not merged", k);
    }
    /* Each published optimum is the frontier's point for the largest ratio <= its own. */
    const cJSON *sol;
    cJSON_ArrayForEach(sol, field(m->root, "solutions")) {
      if (resource_of(field(sol, "kind")->valuestring) != r) continue;
      double ratio = field(sol, "ratio")->valuedouble;
      int k = f->n_points - 1;
      while (k > 0 && f->points[k].ratio > ratio + 1e-12) k--;
      CHECK(close_rel(f->points[k].objective - m->omega4_sum, field(sol, "objective")->valuedouble,
                      1e-9),
            "sweep %s at %.2f: objective %.17g", hawq_resource_name(r), ratio,
            f->points[k].objective - m->omega4_sum);
    }
    hawq_ilp_frontier_free(f);
  }

  /* Every budget infeasible: an error, no frontier. */
  hawq_ilp_problem q = resnet18_problem(m);
  q.has_limit[HAWQ_RES_BOPS] = true;
  q.limit[HAWQ_RES_BOPS] = 1;
  hawq_ilp_frontier *f = NULL;
  hawq_error err;
  CHECK(hawq_ilp_sweep(&q, HAWQ_RES_SIZE, ratios, 21, &f, &err) == HAWQ_ERR_INVALID_ARG && !f &&
            strstr(err.msg, "bops limit 1 cannot be met"),
        "all-infeasible sweep: %s", err.msg);
}

/* ---- random instances against brute force ---- */

static void random_instance(test_rng *rng, hawq_ilp_layer *layers, int n, hawq_ilp_problem *p,
                            int (*ties)[2]) {
  const int widths[3] = {2, 4, 8};
  for (int i = 0; i < n; i++) {
    hawq_ilp_layer *l = &layers[i];
    memset(l, 0, sizeof *l);
    for (int b = 0; b < HAWQ_ILP_NBITS; b++) { /* unreadable entries poisoned */
      l->omega[b] = NAN;
      for (int r = 0; r < HAWQ_N_RES; r++) l->cost[r][b] = NAN;
    }
    int64_t params = test_rng_int(rng, 1, 5000), macs = test_rng_int(rng, 1, 100000);
    double sens = test_rng_float(rng, 0.01f, 10.0f);
    for (int k = 0; k < 3; k++) {
      int b = widths[k];
      l->omega[b] = sens * ldexp(1.0, -2 * b) * test_rng_float(rng, 0.5f, 1.5f);
      l->cost[HAWQ_RES_SIZE][b] = (double)((params * b + 7) / 8);
      l->cost[HAWQ_RES_BOPS][b] = (double)(macs * b * b);
      l->cost[HAWQ_RES_LATENCY][b] = test_rng_float(rng, 0.1f, 2.0f); /* not monotone */
    }
    l->pin = test_rng_int(rng, 0, 9) == 0 ? widths[test_rng_int(rng, 0, 2)] : 0;
  }
  p->n_ties = (int)test_rng_int(rng, 0, 2);
  for (int t = 0; t < p->n_ties; t++) {
    ties[t][0] = (int)test_rng_int(rng, 0, n - 1);
    do ties[t][1] = (int)test_rng_int(rng, 0, n - 1);
    while (ties[t][1] == ties[t][0]);
  }
  int n_limits = (int)test_rng_int(rng, 1, 3);
  bool used[HAWQ_N_RES] = {false};
  for (int k = 0; k < n_limits; k++) {
    int r;
    do r = (int)test_rng_int(rng, 0, HAWQ_N_RES - 1);
    while (used[r]);
    used[r] = true;
    p->has_limit[r] = true;
    p->limit[r] = hawq_ilp_ratio_limit(p, (hawq_resource)r, test_rng_float(rng, -0.15f, 1.0f));
  }
}

static void test_random_instances(void) {
  test_rng rng = test_rng_seeded("test_ilp random instances");
  int agree = 0, infeasible = 0;
  for (int inst = 0; inst < 200; inst++) {
    hawq_ilp_layer layers[6];
    int ties[2][2];
    hawq_ilp_problem p = {.n_layers = 6,
                          .layers = layers,
                          .candidates = HAWQ_ILP_BIT(2) | HAWQ_ILP_BIT(4) | HAWQ_ILP_BIT(8),
                          .has_cost = {true, true, true},
                          .ties = (const int(*)[2])ties};
    random_instance(&rng, layers, 6, &p, ties);
    int bits[6];
    hawq_ilp_solution s = {.bits = bits};
    hawq_error err;
    hawq_status st = hawq_ilp_solve(&p, &s, &err);
    brute_result b = brute_force(&p, -1, limit_mask(&p));
    if (b.feasible) {
      CHECK(st == HAWQ_OK, "instance %d: brute force feasible, ilp: %s", inst, err.msg);
      if (st) continue;
      CHECK(close_rel(s.objective, b.best, 1e-9), "instance %d: objective %.17g, brute %.17g", inst,
            s.objective, b.best);
      CHECK(close_rel(s.objective, total(&p, -1, bits), 1e-12), "instance %d: objective", inst);
      CHECK(ties_hold(&p, bits) && pins_hold(&p, bits) && limits_hold(&p, limit_mask(&p), bits),
            "instance %d: the ILP's widths break a constraint", inst);
      agree++;
      continue;
    }
    infeasible++;
    CHECK(st == HAWQ_ERR_INVALID_ARG && s.infeasible, "instance %d: infeasible, ilp status %d",
          inst, st);
    if (s.infeasible_resource >= 0) {
      int r = s.infeasible_resource;
      brute_result m = brute_force(&p, r, limit_mask(&p) & ~(1u << r));
      CHECK(m.feasible && close_rel(s.min_feasible, m.best, 1e-12) && m.best > p.limit[r],
            "instance %d: %s min feasible %.17g, brute %.17g, limit %.17g", inst,
            hawq_resource_name(r), s.min_feasible, m.best, p.limit[r]);
    } else {
      /* No single limit to blame: each one's minimum under the others meets it, or nothing
       * meets the others (or the ties and pins). */
      for (int r = 0; r < HAWQ_N_RES; r++) {
        if (!p.has_limit[r]) continue;
        brute_result m = brute_force(&p, r, limit_mask(&p) & ~(1u << r));
        CHECK(!m.feasible, "instance %d: the %s limit could have been named (%s)", inst,
              hawq_resource_name(r), err.msg);
      }
    }
  }
  printf("test_ilp: 200 random instances: %d optimal as brute force, %d infeasible\n", agree,
         infeasible);
  CHECK(agree >= 50 && infeasible >= 5, "too few of a kind: %d feasible, %d infeasible", agree,
        infeasible);
}

/* ---- malformed problems, and silence ---- */

static void test_malformed(void) {
  hawq_ilp_layer layers[2] = {{.name = "a"}, {.name = "b"}};
  for (int i = 0; i < 2; i++) {
    for (int b = 4; b <= 8; b += 4) {
      layers[i].omega[b] = 1.0 / b;
      layers[i].cost[HAWQ_RES_SIZE][b] = b;
    }
  }
  int bits[2], ties[1][2] = {{1, 1}};
  hawq_error err;
  hawq_ilp_problem good = {.n_layers = 2,
                           .layers = layers,
                           .candidates = HAWQ_ILP_BIT(4) | HAWQ_ILP_BIT(8),
                           .has_cost = {true}};
  hawq_ilp_solution s = {.bits = bits};
  CHECK(hawq_ilp_solve(&good, &s, &err) == HAWQ_OK && bits[0] == 8 && bits[1] == 8 &&
            s.used[HAWQ_RES_SIZE] == 16 && s.used[HAWQ_RES_BOPS] == 0,
        "tiny problem: %s", err.msg);

  hawq_ilp_problem p = good;
  p.candidates = HAWQ_ILP_BIT(4) | HAWQ_ILP_BIT(9);
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_ERR_INVALID_ARG && !s.infeasible, "9 bits");
  p = good;
  p.candidates = HAWQ_ILP_BIT(4) | HAWQ_ILP_BIT(2);
  layers[0].omega[2] = NAN;
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_ERR_INVALID_ARG &&
            strstr(err.msg, "layer 'a': Omega at 2 bits is not finite"),
        "missing Omega: %s", err.msg);
  p = good;
  p.has_limit[HAWQ_RES_LATENCY] = true;
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_ERR_INVALID_ARG, "limit without costs");
  p = good;
  p.has_cost[HAWQ_RES_BOPS] = true;
  layers[1].cost[HAWQ_RES_BOPS][4] = NAN;
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_ERR_INVALID_ARG &&
            strstr(err.msg, "layer 'b': no bops cost at 4 bits"),
        "missing cost: %s", err.msg);
  p = good;
  p.n_ties = 1;
  p.ties = (const int(*)[2])ties;
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_ERR_INVALID_ARG, "self tie");
  p = good;
  layers[0].pin = 9;
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_ERR_INVALID_ARG, "pin 9");
  layers[0].pin = 0;
  p.n_layers = 0;
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_ERR_INVALID_ARG, "no layers");
  hawq_ilp_frontier *f = NULL;
  double ratio = 0.5;
  CHECK(hawq_ilp_sweep(&good, HAWQ_RES_LATENCY, &ratio, 1, &f, &err) == HAWQ_ERR_INVALID_ARG && !f,
        "sweep over a resource without costs");
}

/* A limit exceeded by less than GLPK's feasibility tolerance (1e-7) but more than ilp.c's
 * slack (1e-9 of the scale) is still a limit: the cheaper choice must win. */
static void test_tolerance(void) {
  hawq_ilp_layer layers[2] = {{.name = "a"}, {.name = "b"}};
  for (int i = 0; i < 2; i++) {
    layers[i].omega[4] = 1 + i;
    layers[i].omega[8] = 0;
    layers[i].cost[HAWQ_RES_SIZE][4] = 0;
    layers[i].cost[HAWQ_RES_SIZE][8] = 1;
  }
  hawq_ilp_problem p = {.n_layers = 2,
                        .layers = layers,
                        .candidates = HAWQ_ILP_BIT(4) | HAWQ_ILP_BIT(8),
                        .has_cost = {true},
                        .has_limit = {true},
                        .limit = {1 - 3e-8}};
  int bits[2];
  hawq_ilp_solution s = {.bits = bits};
  hawq_error err;
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_OK && bits[0] == 4 && bits[1] == 4 &&
            s.used[HAWQ_RES_SIZE] == 0,
        "limit 1 - 3e-8: %d %d used %g (%s)", bits[0], bits[1], s.used[HAWQ_RES_SIZE], err.msg);
  p.limit[HAWQ_RES_SIZE] = 1 - 1e-10; /* within the slack: one layer at 8 */
  CHECK(hawq_ilp_solve(&p, &s, &err) == HAWQ_OK && bits[0] == 4 && bits[1] == 8,
        "limit 1 - 1e-10: %d %d (%s)", bits[0], bits[1], err.msg);
}

/* GLPK must not write to stdout (hawq allocate --json prints JSON there). */
static void test_silent(const resnet18 *m) {
  fflush(stdout);
  char path[512];
  snprintf(path, sizeof path, "%s/stdout.txt", test_tmpdir());
  int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(saved >= 0 && fd >= 0, "redirecting stdout");
  dup2(fd, 1);
  close(fd);
  hawq_ilp_problem p = resnet18_problem(m);
  int bits[MAX_LAYERS];
  hawq_ilp_solution s = {.bits = bits};
  hawq_error err;
  p.has_limit[HAWQ_RES_LATENCY] = true;
  p.limit[HAWQ_RES_LATENCY] = hawq_ilp_ratio_limit(&p, HAWQ_RES_LATENCY, 0.4);
  hawq_status ok = hawq_ilp_solve(&p, &s, &err);
  p.limit[HAWQ_RES_LATENCY] = hawq_ilp_ratio_limit(&p, HAWQ_RES_LATENCY, -1);
  hawq_status bad = hawq_ilp_solve(&p, &s, &err);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  struct stat st;
  CHECK(stat(path, &st) == 0 && st.st_size == 0, "GLPK wrote %lld bytes to stdout",
        (long long)st.st_size);
  CHECK(ok == HAWQ_OK && bad == HAWQ_ERR_INVALID_ARG, "silent solves: %d %d", ok, bad);
  unlink(path);
}

int main(void) {
  resnet18 m = {0};
  if (resnet18_load(&m)) {
    test_published_optima(&m);
    test_infeasible_resnet18(&m);
    test_pins_ties_resnet18(&m);
    test_sweep_resnet18(&m);
    test_silent(&m);
    cJSON_Delete(m.root);
  } else {
    CHECK(false, "%s: cannot read the published ResNet18 inputs", TESTDATA);
  }
  test_random_instances();
  test_malformed();
  test_tolerance();
  rmdir(test_tmpdir());
  return test_report("test_ilp");
}
