/* hawq allocate: mixed-precision bit widths by integer linear programming (src/search/ilp.h)
 * from a sensitivity file (hawq sensitivity) and optionally a latency table (hawq bench
 * --layers), under budgets on size, BOPS and latency; writes the bit configuration that
 * hawq calibrate --bits reads, with the ILP's summary and the Pareto frontier beside it
 * (docs/mixed_precision.md). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/file.h"
#include "core/status.h"
#include "search/cost.h"
#include "search/ilp.h"

static const char help[] =
    "usage: hawq allocate --sensitivity SENS.json [--latency LATENCY.json [--threads T]]\n"
    "                     [--size BUDGET] [--bops BUDGET] [--latency-budget BUDGET]\n"
    "                     [--bits 4,8] [--pin NAME=B ...] [--no-pin-ends]\n"
    "                     [--sweep [--sweep-steps N] [--sweep-resource size|bops|latency]]\n"
    "                     [--json] [-o BITS.json]\n\n"
    "Chooses one bit width per Conv/Gemm layer (weights and the activation it reads) that\n"
    "minimises the summed sensitivity Omega under the budgets, exactly (GLPK).\n\n"
    "  --sensitivity FILE  per-layer Omega, parameters, MACs and ties (hawq sensitivity -o)\n"
    "  --latency FILE      per-layer latency table (hawq bench --layers -o); enables\n"
    "                      --latency-budget and reports latency\n"
    "  --threads T         the table's thread count to use (default 1)\n"
    "  --size BUDGET       packed weight bytes: a bare number is a ratio r (all-4 + r * (all-8 -\n"
    "                      all-4), as in HAWQ-V3), or a size with a unit: 12000B, 1.5MB, 2MiB\n"
    "  --bops BUDGET       bit operations per image (MACs * b * b): a ratio, or with a unit:\n"
    "                      3.2G, 1500000bops\n"
    "  --latency-budget B  summed per-layer latency: a ratio, or a time: 2.5ms, 900us\n"
    "  --bits LIST         candidate bit widths, 2-8 (default 4,8)\n"
    "  --pin NAME=B        fix a layer's width (repeatable; overrides the pinned ends)\n"
    "  --no-pin-ends       let the first and the last layer choose (default: pinned at 8)\n"
    "  --sweep             also solve for N budgets from ratio 0 to 1 and report the frontier\n"
    "  --sweep-steps N     budgets in the sweep (default 21: 0, 0.05, ..., 1)\n"
    "  --sweep-resource R  the swept budget (default size); the other budgets still apply\n"
    "  --json              print the result as JSON (the same document as -o) instead of a table\n"
    "  -o FILE             write the bit configuration (hawq calibrate --bits FILE)\n\n"
    "all-4 and all-8 are the totals with every layer that is not pinned at the smallest and the\n"
    "largest candidate width (pinned layers at their pins).\n";

#define DEFAULT_SWEEP_STEPS 21

/* ---- options ---- */

typedef struct alloc_args {
  const char *sens_path, *latency_path, *bits, *sweep_resource, *out_path;
  const char *budget[HAWQ_N_RES]; /* as typed, NULL when not given */
  long long threads, sweep_steps; /* 0 until given, then the defaults 1 and 21 */
  bool no_pin_ends, sweep, json;
  const char **pins; /* "NAME=B" values of --pin */
  int n_pins;
} alloc_args;

/* Moves every "--pin V" and "--pin=V" out of argv into a->pins (cli_parse keeps only the last
 * value of a repeated option). */
static int take_pins(int *argc, char **argv, alloc_args *a) {
  a->pins = malloc(sizeof *a->pins * (size_t)(*argc > 0 ? *argc : 1));
  if (!a->pins) {
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  int kept = 1;
  for (int i = 1; i < *argc; i++) {
    if (!strncmp(argv[i], "--pin=", 6)) {
      a->pins[a->n_pins++] = argv[i] + 6;
    } else if (!strcmp(argv[i], "--pin")) {
      if (i + 1 == *argc) return cli_usage_error("allocate", "option '--pin' needs a value");
      a->pins[a->n_pins++] = argv[++i];
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  return CLI_OK;
}

static int parse_args(int argc, char **argv, alloc_args *a) {
  int rc = take_pins(&argc, argv, a);
  if (rc) return rc;
  const cli_opt opts[] = {
      {"--sensitivity", CLI_STRING, &a->sens_path, 0, 0},
      {"--latency", CLI_STRING, &a->latency_path, 0, 0},
      {"--threads", CLI_INT, &a->threads, 1, 4096},
      {"--size", CLI_STRING, &a->budget[HAWQ_RES_SIZE], 0, 0},
      {"--bops", CLI_STRING, &a->budget[HAWQ_RES_BOPS], 0, 0},
      {"--latency-budget", CLI_STRING, &a->budget[HAWQ_RES_LATENCY], 0, 0},
      {"--bits", CLI_STRING, &a->bits, 0, 0},
      {"--no-pin-ends", CLI_FLAG, &a->no_pin_ends, 0, 0},
      {"--sweep", CLI_FLAG, &a->sweep, 0, 0},
      {"--sweep-steps", CLI_INT, &a->sweep_steps, 2, 1001},
      {"--sweep-resource", CLI_STRING, &a->sweep_resource, 0, 0},
      {"--json", CLI_FLAG, &a->json, 0, 0},
      {"-o", CLI_STRING, &a->out_path, 0, 0},
  };
  const char *pos[1];
  int n_pos;
  rc = cli_parse("allocate", argc, argv, opts, sizeof opts / sizeof opts[0], pos, 0, &n_pos);
  if (rc < 0) {
    fputs(help, stdout);
    return -1;
  }
  if (rc) return rc;
  if (!a->sens_path) return cli_usage_error("allocate", "--sensitivity SENS.json is required");
  if (!a->latency_path && (a->threads || a->budget[HAWQ_RES_LATENCY])) {
    return cli_usage_error("allocate", "--threads and --latency-budget need --latency FILE");
  }
  if (!a->sweep && (a->sweep_steps || a->sweep_resource)) {
    return cli_usage_error("allocate", "--sweep-steps and --sweep-resource need --sweep");
  }
  if (!a->threads) a->threads = 1;
  if (!a->sweep_steps) a->sweep_steps = DEFAULT_SWEEP_STEPS;
  return CLI_OK;
}

/* "4,8" into a mask of widths. */
static int parse_bits(const char *s, unsigned *mask) {
  *mask = 0;
  const char *p = s;
  for (;;) {
    char *end;
    long b = strtol(p, &end, 10);
    if (end == p || b < HAWQ_ILP_MIN_BITS || b > HAWQ_ILP_MAX_BITS || (*mask & HAWQ_ILP_BIT(b)) ||
        (*end && *end != ',')) {
      return cli_usage_error("allocate", "--bits '%s': expected distinct widths 2-8, e.g. 4,8", s);
    }
    *mask |= HAWQ_ILP_BIT(b);
    if (!*end) return CLI_OK;
    p = end + 1;
  }
}

static int parse_resource(const char *s, hawq_resource *r) {
  for (int k = 0; k < HAWQ_N_RES; k++) {
    if (!strcmp(s, hawq_resource_name((hawq_resource)k))) {
      *r = (hawq_resource)k;
      return CLI_OK;
    }
  }
  return cli_usage_error("allocate", "--sweep-resource '%s': expected size, bops or latency", s);
}

/* ---- budgets ---- */

typedef struct budget {
  bool given, ratio;
  double value; /* the ratio, or the limit in the cost model's units (bytes, BOPS, ms) */
} budget;

typedef struct unit_suffix {
  const char *suffix;
  double factor;
} unit_suffix;

static const unit_suffix size_units[] = {{"B", 1},           {"kB", 1e3},           {"KB", 1e3},
                                         {"MB", 1e6},        {"GB", 1e9},           {"KiB", 1024.0},
                                         {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {NULL, 0}};
static const unit_suffix bops_units[] = {
    {"bops", 1},    {"BOPS", 1},    {"K", 1e3},      {"Kbops", 1e3},  {"KBOPS", 1e3},
    {"M", 1e6},     {"Mbops", 1e6}, {"MBOPS", 1e6},  {"G", 1e9},      {"Gbops", 1e9},
    {"GBOPS", 1e9}, {"T", 1e12},    {"Tbops", 1e12}, {"TBOPS", 1e12}, {NULL, 0}};
static const unit_suffix latency_units[] = {{"ms", 1}, {"us", 1e-3}, {"s", 1e3}, {NULL, 0}};
static const unit_suffix *const units_of[HAWQ_N_RES] = {size_units, bops_units, latency_units};
static const char *const flag_of[HAWQ_N_RES] = {"--size", "--bops", "--latency-budget"};
static const char *const unit_hint[HAWQ_N_RES] = {"12000B, 1.5MB, 2MiB", "3.2G, 1500000bops",
                                                  "2.5ms, 900us"};
/* A bare number this large is surely meant as an absolute amount without its unit. */
#define MAX_BARE_RATIO 10

/* A bare number is a ratio; a number with one of the resource's units an absolute limit. */
static int parse_budget(hawq_resource r, const char *s, budget *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || !isfinite(v)) {
    return cli_usage_error("allocate", "%s '%s': expected a ratio such as 0.5, or e.g. %s",
                           flag_of[r], s, unit_hint[r]);
  }
  out->given = true;
  if (!*end) {
    if (fabs(v) > MAX_BARE_RATIO) {
      return cli_usage_error("allocate",
                             "%s '%s': a bare number is a ratio (all-4 + r * (all-8 - all-4)); "
                             "give an absolute budget with its unit, e.g. %s",
                             flag_of[r], s, unit_hint[r]);
    }
    out->ratio = true;
    out->value = v;
    return CLI_OK;
  }
  for (const unit_suffix *u = units_of[r]; u->suffix; u++) {
    if (!strcmp(end, u->suffix)) {
      if (v < 0) return cli_usage_error("allocate", "%s '%s' is negative", flag_of[r], s);
      out->ratio = false;
      out->value = v * u->factor;
      return CLI_OK;
    }
  }
  return cli_usage_error("allocate", "%s '%s': unknown unit '%s' (e.g. %s)", flag_of[r], s, end,
                         unit_hint[r]);
}

/* "17456 B", "1990000000 BOPS", "2.51 ms": exact enough to be typed back as a budget. */
static const char *format_amount(hawq_resource r, double v, char *buf, size_t size) {
  if (r == HAWQ_RES_LATENCY) {
    snprintf(buf, size, "%.6g ms", v);
  } else {
    snprintf(buf, size, "%.0f %s", v, r == HAWQ_RES_SIZE ? "B" : "BOPS");
  }
  return buf;
}

/* ---- the problem ---- */

typedef struct allocation {
  alloc_args a;
  hawq_sens_file *sens;
  double (*ms)[HAWQ_ILP_NBITS]; /* the latency table per layer, or NULL */
  hawq_ilp_layer *layers;
  hawq_ilp_problem p;
  budget budgets[HAWQ_N_RES];
  double all_min[HAWQ_N_RES], all_max[HAWQ_N_RES];
  int *bits;
  hawq_ilp_solution sol;
  hawq_resource sweep_resource;
  hawq_ilp_frontier *frontier;
} allocation;

static void allocation_free(allocation *x) {
  hawq_ilp_frontier_free(x->frontier);
  free(x->bits);
  free(x->layers);
  free(x->ms);
  hawq_sens_free(x->sens);
  free(x->a.pins);
}

/* The ends at 8 bits (unless --no-pin-ends), then every --pin NAME=B. */
static int apply_pins(allocation *x) {
  hawq_ilp_layer *l = x->layers;
  int n = x->sens->n_layers;
  if (!x->a.no_pin_ends) l[0].pin = l[n - 1].pin = 8;
  for (int k = 0; k < x->a.n_pins; k++) {
    const char *s = x->a.pins[k], *eq = strrchr(s, '=');
    char *end = NULL;
    long b = eq ? strtol(eq + 1, &end, 10) : 0;
    if (!eq || eq == s || end == eq + 1 || *end || b < HAWQ_ILP_MIN_BITS || b > HAWQ_ILP_MAX_BITS) {
      return cli_usage_error("allocate", "--pin '%s': expected NAME=B with B in 2-8", s);
    }
    char name[1024];
    snprintf(name, sizeof name, "%.*s", (int)(eq - s), s);
    int i = hawq_sens_find(x->sens, name);
    if (i < 0) {
      fprintf(stderr, "hawq: %s: --pin '%s': no layer '%s'\n", x->a.sens_path, s, name);
      return CLI_BAD_INPUT;
    }
    l[i].pin = (int)b;
  }
  return CLI_OK;
}

/* Omega (and latency, with a table) must exist at every width a layer may take. */
static int check_inputs_cover(const allocation *x) {
  for (int i = 0; i < x->p.n_layers; i++) {
    const hawq_ilp_layer *l = &x->layers[i];
    unsigned allowed = l->pin ? HAWQ_ILP_BIT(l->pin) : x->p.candidates;
    for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
      if (!(allowed & HAWQ_ILP_BIT(b))) continue;
      if (!isfinite(l->omega[b])) {
        fprintf(stderr, "hawq: %s: layer '%s' has no omega at %d bits\n", x->a.sens_path, l->name,
                b);
        return CLI_BAD_INPUT;
      }
      if (x->ms && !isfinite(l->cost[HAWQ_RES_LATENCY][b])) {
        fprintf(stderr, "hawq: %s: layer '%s' has no time at %d bits (%lld thread(s))\n",
                x->a.latency_path, l->name, b, x->a.threads);
        return CLI_BAD_INPUT;
      }
    }
  }
  return CLI_OK;
}

static int load_inputs(allocation *x) {
  hawq_error err;
  if (hawq_sens_read(x->a.sens_path, &x->sens, &err)) return cli_report(&err);
  int n = x->sens->n_layers;
  x->layers = calloc((size_t)n, sizeof *x->layers);
  x->bits = calloc((size_t)n, sizeof *x->bits);
  if (x->a.latency_path) x->ms = calloc((size_t)n, sizeof *x->ms);
  if (!x->layers || !x->bits || (x->a.latency_path && !x->ms)) {
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  if (x->ms && hawq_latency_read(x->a.latency_path, (int)x->a.threads, x->sens, x->ms, &err)) {
    return cli_report(&err);
  }
  hawq_cost_fill(x->sens, (const double(*)[HAWQ_ILP_NBITS])x->ms, x->layers);
  return CLI_OK;
}

static int build_problem(allocation *x) {
  hawq_ilp_problem *p = &x->p;
  p->n_layers = x->sens->n_layers;
  p->layers = x->layers;
  p->n_ties = x->sens->n_ties;
  p->ties = (const int(*)[2])x->sens->ties;
  p->has_cost[HAWQ_RES_SIZE] = p->has_cost[HAWQ_RES_BOPS] = true;
  p->has_cost[HAWQ_RES_LATENCY] = x->ms != NULL;
  int rc = apply_pins(x);
  if (!rc) rc = check_inputs_cover(x);
  if (rc) return rc;
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (!p->has_cost[r]) continue;
    hawq_ilp_extremes(p, (hawq_resource)r, &x->all_min[r], &x->all_max[r]);
    const budget *b = &x->budgets[r];
    if (!b->given) continue;
    p->has_limit[r] = true;
    p->limit[r] = b->ratio ? hawq_ilp_ratio_limit(p, (hawq_resource)r, b->value) : b->value;
  }
  return CLI_OK;
}

/* Where a total sits on the ratio scale of its resource. */
static double ratio_of(const allocation *x, int r, double v) {
  double span = x->all_max[r] - x->all_min[r];
  return span != 0 ? (v - x->all_min[r]) / span : 0;
}

static int report_infeasible(const allocation *x, const hawq_error *err) {
  int r = x->sol.infeasible_resource;
  if (r < 0) {
    fprintf(stderr, "hawq: %s: %s\n", x->a.sens_path, err->msg);
    return CLI_BAD_INPUT;
  }
  char lim[64], min[64];
  hawq_resource res = (hawq_resource)r;
  fprintf(stderr,
          "hawq: allocate: %s %s (%s, ratio %.4g) cannot be met: the smallest feasible %s is %s "
          "(ratio %.4g) under the ties, pins and other budgets\n",
          flag_of[r], x->a.budget[r], format_amount(res, x->p.limit[r], lim, sizeof lim),
          ratio_of(x, r, x->p.limit[r]), hawq_resource_name(res),
          format_amount(res, x->sol.min_feasible, min, sizeof min),
          ratio_of(x, r, x->sol.min_feasible));
  return CLI_BAD_INPUT;
}

static int solve(allocation *x) {
  hawq_error err;
  x->sol.bits = x->bits;
  hawq_status st = hawq_ilp_solve(&x->p, &x->sol, &err);
  if (st && x->sol.infeasible) return report_infeasible(x, &err);
  if (st) return cli_report(&err);
  if (!x->a.sweep) return CLI_OK;
  int n = (int)x->a.sweep_steps;
  double *ratios = malloc(sizeof(double) * (size_t)n);
  if (!ratios) {
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  for (int k = 0; k < n; k++) ratios[k] = (double)k / (n - 1);
  st = hawq_ilp_sweep(&x->p, x->sweep_resource, ratios, n, &x->frontier, &err);
  free(ratios);
  if (st) {
    fprintf(stderr, "hawq: allocate --sweep: no budget of the sweep is feasible: %s\n", err.msg);
    return hawq_status_exit_code(st);
  }
  return CLI_OK;
}

/* ---- output ---- */

static cJSON *resource_object(const allocation *x, const double *v) {
  cJSON *o = cJSON_CreateObject();
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (x->p.has_cost[r]) cJSON_AddNumberToObject(o, hawq_resource_name((hawq_resource)r), v[r]);
  }
  return o;
}

static cJSON *budgets_json(const allocation *x) {
  cJSON *o = cJSON_CreateObject();
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (!x->p.has_limit[r]) continue;
    cJSON *b = cJSON_AddObjectToObject(o, hawq_resource_name((hawq_resource)r));
    cJSON_AddStringToObject(b, "given", x->a.budget[r]);
    cJSON_AddNumberToObject(b, "limit", x->p.limit[r]);
    cJSON_AddNumberToObject(b, "ratio", ratio_of(x, r, x->p.limit[r]));
  }
  return o;
}

static cJSON *layers_summary_json(const allocation *x) {
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0; i < x->p.n_layers; i++) {
    const hawq_ilp_layer *l = &x->layers[i];
    int b = x->bits[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", l->name);
    cJSON_AddNumberToObject(o, "bits", b);
    cJSON_AddBoolToObject(o, "pinned", l->pin != 0);
    cJSON_AddNumberToObject(o, "omega", l->omega[b]);
    double cost[HAWQ_N_RES];
    for (int r = 0; r < HAWQ_N_RES; r++) cost[r] = l->cost[r][b];
    cJSON *c = resource_object(x, cost);
    cJSON *item = c->child;
    while (item) { /* the costs inline: "size", "bops", "latency" */
      cJSON *next = item->next;
      cJSON_AddItemToObject(o, item->string, cJSON_DetachItemViaPointer(c, item));
      item = next;
    }
    cJSON_Delete(c);
    cJSON_AddItemToArray(arr, o);
  }
  return arr;
}

static cJSON *ilp_json(const allocation *x) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "format", "hawq-allocation");
  cJSON_AddNumberToObject(o, "version", 1);
  cJSON_AddStringToObject(o, "sensitivity", x->a.sens_path);
  cJSON_AddStringToObject(o, "model", x->sens->model);
  if (x->ms) {
    cJSON_AddStringToObject(o, "latency", x->a.latency_path);
    cJSON_AddNumberToObject(o, "threads", (double)x->a.threads);
  }
  cJSON *cand = cJSON_AddArrayToObject(o, "candidate_bits");
  for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
    if (x->p.candidates & HAWQ_ILP_BIT(b)) cJSON_AddItemToArray(cand, cJSON_CreateNumber(b));
  }
  cJSON *pins = cJSON_AddObjectToObject(o, "pins");
  for (int i = 0; i < x->p.n_layers; i++) {
    if (x->layers[i].pin) cJSON_AddNumberToObject(pins, x->layers[i].name, x->layers[i].pin);
  }
  cJSON_AddItemToObject(o, "budgets", budgets_json(x));
  cJSON_AddNumberToObject(o, "objective", x->sol.objective);
  cJSON_AddItemToObject(o, "used", resource_object(x, x->sol.used));
  cJSON_AddItemToObject(o, "all_min", resource_object(x, x->all_min));
  cJSON_AddItemToObject(o, "all_max", resource_object(x, x->all_max));
  cJSON *units = cJSON_AddObjectToObject(o, "units");
  cJSON_AddStringToObject(units, "size", "bytes of packed weights");
  cJSON_AddStringToObject(units, "bops", "bit operations per image");
  if (x->ms) cJSON_AddStringToObject(units, "latency", "ms");
  if (x->frontier) {
    cJSON *sw = cJSON_AddObjectToObject(o, "sweep");
    cJSON_AddStringToObject(sw, "resource", hawq_resource_name(x->sweep_resource));
    cJSON_AddNumberToObject(sw, "steps", (double)x->a.sweep_steps);
  }
  cJSON_AddItemToObject(o, "layers", layers_summary_json(x));
  return o;
}

static cJSON *frontier_json(const allocation *x) {
  cJSON *arr = cJSON_CreateArray();
  for (int k = 0; k < x->frontier->n_points; k++) {
    const hawq_ilp_point *pt = &x->frontier->points[k];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "ratio", pt->ratio);
    cJSON_AddNumberToObject(o, "limit", pt->limit);
    cJSON_AddNumberToObject(o, "objective", pt->objective);
    cJSON_AddItemToObject(o, "used", resource_object(x, pt->used));
    cJSON_AddItemToObject(o, "bits", cJSON_CreateIntArray(pt->bits, x->p.n_layers));
    cJSON_AddItemToArray(arr, o);
  }
  return arr;
}

/* The bit configuration hawq calibrate --bits reads (every layer listed), with "ilp" and
 * "frontier", which it skips. */
static cJSON *document_json(const allocation *x) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddNumberToObject(root, "weight_bits", 8);
  cJSON_AddNumberToObject(root, "act_bits", 8);
  cJSON_AddBoolToObject(root, "pin_ends", false);
  cJSON *layers = cJSON_AddObjectToObject(root, "layers");
  for (int i = 0; i < x->p.n_layers; i++) {
    cJSON *l = cJSON_AddObjectToObject(layers, x->layers[i].name);
    cJSON_AddNumberToObject(l, "weight_bits", x->bits[i]);
    cJSON_AddNumberToObject(l, "act_bits", x->bits[i]);
  }
  cJSON_AddItemToObject(root, "ilp", ilp_json(x));
  if (x->frontier) cJSON_AddItemToObject(root, "frontier", frontier_json(x));
  return root;
}

static void print_layers(const allocation *x) {
  int w = 5; /* the name column fits the longest name */
  for (int i = 0; i < x->p.n_layers; i++) {
    int len = (int)strlen(x->sens->layers[i].name);
    w = len > w ? len : w;
  }
  printf("%4s  %-*s %-5s %10s %11s %11s %5s\n", "#", w, "layer", "op", "params", "trace",
         "Omega(b)", "bits");
  for (int i = 0; i < x->p.n_layers; i++) {
    const hawq_sens_layer *s = &x->sens->layers[i];
    int b = x->bits[i];
    printf("%4d  %-*s %-5s %10lld %11.4g %11.4g %5d%s\n", i, w, s->name, s->op,
           (long long)s->params, s->trace, x->layers[i].omega[b], b,
           x->layers[i].pin ? "  pinned" : "");
  }
}

static void print_totals(const allocation *x) {
  int hi = 0;
  for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
    if (x->p.candidates & HAWQ_ILP_BIT(b)) hi = b;
  }
  printf("objective %.6g (summed Omega)\n", x->sol.objective);
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (!x->p.has_cost[r]) continue;
    char used[64], lim[64], si[32];
    hawq_resource res = (hawq_resource)r;
    printf("%-8s  %s", hawq_resource_name(res),
           format_amount(res, x->sol.used[r], used, sizeof used));
    if (r != HAWQ_RES_LATENCY) printf(" (%s)", cli_si(x->sol.used[r], si, sizeof si));
    printf(" = %.4g x all-%d, ratio %.4g", x->all_max[r] != 0 ? x->sol.used[r] / x->all_max[r] : 0,
           hi, ratio_of(x, r, x->sol.used[r]));
    if (x->p.has_limit[r]) {
      printf("; budget %s = %s", x->a.budget[r],
             format_amount((hawq_resource)r, x->p.limit[r], lim, sizeof lim));
    }
    if (r == HAWQ_RES_LATENCY) printf(" (%lld thread(s))", x->a.threads);
    printf("\n");
  }
}

static void print_frontier(const allocation *x) {
  const hawq_ilp_frontier *f = x->frontier;
  printf("\nPareto frontier over %s: %d distinct allocations from %lld budgets (ratio 0 to 1)\n",
         hawq_resource_name(f->resource), f->n_points, x->a.sweep_steps);
  printf("%7s %13s %12s", "ratio", "limit", "objective");
  for (int r = 0; r < HAWQ_N_RES; r++) {
    if (x->p.has_cost[r]) printf(" %13s", hawq_resource_name((hawq_resource)r));
  }
  printf("  bits per layer\n");
  for (int k = 0; k < f->n_points; k++) {
    const hawq_ilp_point *pt = &f->points[k];
    printf("%7.3f %13.6g %12.6g", pt->ratio, pt->limit, pt->objective);
    for (int r = 0; r < HAWQ_N_RES; r++) {
      if (x->p.has_cost[r]) printf(" %13.6g", pt->used[r]);
    }
    printf("  ");
    for (int i = 0; i < f->n_layers; i++) putchar('0' + pt->bits[i]);
    printf("\n");
  }
}

static void print_table(const allocation *x) {
  printf("hawq allocate: %d layers of %s (%s), %d ties, bit widths", x->p.n_layers, x->a.sens_path,
         x->sens->model, x->p.n_ties);
  const char *sep = " ";
  for (int b = HAWQ_ILP_MIN_BITS; b <= HAWQ_ILP_MAX_BITS; b++) {
    if (!(x->p.candidates & HAWQ_ILP_BIT(b))) continue;
    printf("%s%d", sep, b);
    sep = ",";
  }
  printf("\n");
  print_layers(x);
  print_totals(x);
  if (x->frontier) print_frontier(x);
}

static int write_output(const allocation *x) {
  cJSON *doc = document_json(x);
  char *text = doc ? cJSON_Print(doc) : NULL;
  cJSON_Delete(doc);
  if (!text) {
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  int rc = CLI_OK;
  hawq_error err;
  if (x->a.json)
    puts(text);
  else
    print_table(x);
  if (x->a.out_path) {
    if (hawq_write_file_atomic(x->a.out_path, text, strlen(text), &err)) {
      rc = cli_report(&err);
    } else if (!x->a.json) {
      printf("wrote %s\n", x->a.out_path);
    }
  }
  cJSON_free(text);
  return rc;
}

int cmd_allocate(int argc, char **argv) {
  allocation x = {.sweep_resource = HAWQ_RES_SIZE};
  int rc = parse_args(argc, argv, &x.a);
  if (rc) {
    free(x.a.pins);
    return rc < 0 ? CLI_OK : rc;
  }
  rc = parse_bits(x.a.bits ? x.a.bits : "4,8", &x.p.candidates);
  for (int r = 0; r < HAWQ_N_RES && !rc; r++) {
    if (x.a.budget[r]) rc = parse_budget((hawq_resource)r, x.a.budget[r], &x.budgets[r]);
  }
  if (!rc && x.a.sweep_resource) rc = parse_resource(x.a.sweep_resource, &x.sweep_resource);
  if (!rc && x.sweep_resource == HAWQ_RES_LATENCY && !x.a.latency_path) {
    rc = cli_usage_error("allocate", "--sweep-resource latency needs --latency FILE");
  }
  if (!rc) rc = load_inputs(&x);
  if (!rc) rc = build_problem(&x);
  if (!rc) rc = solve(&x);
  if (!rc) rc = write_output(&x);
  allocation_free(&x);
  return rc;
}
