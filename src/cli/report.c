/* hawq report: the HTML page (report.h, docs/report.md). Three steps: each file is read into a
 * small struct, every field the page uses checked (strings into the cJSON trees, which live until
 * the page is written); the page is built in memory; it is written atomically. */
#include "cli/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/status.h"

#define MAX_JSON_BYTES (64u << 20)
#define R_BAD 1   /* bad input */
#define R_NOMEM 2 /* out of memory */

/* ---- errors ---- */

typedef struct errbuf {
  char *msg;
  size_t len;
} errbuf;

static int fail(errbuf *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(errbuf *e, int code, const char *fmt, ...) {
  if (e->msg && e->len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, e->len, fmt, ap);
    va_end(ap);
    for (char *c = e->msg; *c; c++) { /* one line, whatever the names contain */
      if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
    }
  }
  return code;
}

/* ---- JSON fields ---- */

/* A number that may be unknown (absent or null). */
typedef struct onum {
  bool has;
  double v;
} onum;

/* The file being read, for messages. */
typedef struct jctx {
  const char *path;
  errbuf *e;
} jctx;

static const char *describe(const cJSON *v, char *buf, size_t n) {
  if (!v) return "nothing (the field is missing)";
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? "true" : "false";
  if (cJSON_IsNumber(v)) {
    snprintf(buf, n, "%.10g", v->valuedouble);
    return buf;
  }
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "an invalid value";
}

/* "FILE: field 'WHERE.KEY': expected EXPECTED, got ..." */
static int bad_field(const jctx *j, const char *where, const char *key, const char *expected,
                     const cJSON *got) {
  char buf[64];
  return fail(j->e, R_BAD, "%s: field '%s%s%s': expected %s, got %s", j->path, where,
              *where && *key ? "." : "", key, expected, describe(got, buf, sizeof buf));
}

static const cJSON *field(const cJSON *obj, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static bool absent(const cJSON *v) {
  return !v || cJSON_IsNull(v);
}

/* A finite number >= min; absent or null gives has = false unless required. */
static int get_num(const jctx *j, const cJSON *obj, const char *where, const char *key,
                   bool required, double min, onum *out) {
  const cJSON *v = field(obj, key);
  out->has = false;
  out->v = 0;
  if (absent(v) && !required) return 0;
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min) {
    char exp[96];
    if (isinf(min)) {
      snprintf(exp, sizeof exp, "a finite number%s", required ? "" : " or null");
    } else {
      snprintf(exp, sizeof exp, "a number >= %g%s", min, required ? "" : " or null");
    }
    return bad_field(j, where, key, exp, v);
  }
  out->has = true;
  out->v = v->valuedouble;
  return 0;
}

/* An integer in [min, max]; absent or null gives has = false unless required. */
static int get_int(const jctx *j, const cJSON *obj, const char *where, const char *key,
                   bool required, double min, double max, onum *out) {
  const cJSON *v = field(obj, key);
  out->has = false;
  out->v = 0;
  if (absent(v) && !required) return 0;
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < min ||
      v->valuedouble > max) {
    char exp[96];
    if (max >= 9e15) {
      snprintf(exp, sizeof exp, "an integer >= %.0f%s", min, required ? "" : " or null");
    } else {
      snprintf(exp, sizeof exp, "an integer from %.0f to %.0f%s", min, max,
               required ? "" : " or null");
    }
    return bad_field(j, where, key, exp, v);
  }
  out->has = true;
  out->v = v->valuedouble;
  return 0;
}

/* A string; absent or null gives NULL unless required. */
static int get_str(const jctx *j, const cJSON *obj, const char *where, const char *key,
                   bool required, const char **out) {
  const cJSON *v = field(obj, key);
  *out = NULL;
  if (absent(v) && !required) return 0;
  if (!cJSON_IsString(v))
    return bad_field(j, where, key, required ? "a string" : "a string or null", v);
  *out = v->valuestring;
  return 0;
}

/* true/false as 1/0; absent or null gives -1. */
static int get_bool(const jctx *j, const cJSON *obj, const char *where, const char *key, int *out) {
  const cJSON *v = field(obj, key);
  *out = -1;
  if (absent(v)) return 0;
  if (!cJSON_IsBool(v)) return bad_field(j, where, key, "true, false or null", v);
  *out = cJSON_IsTrue(v) ? 1 : 0;
  return 0;
}

/* An object or array member that must have a given type (or may be absent when !required). */
static int get_kind(const jctx *j, const cJSON *obj, const char *where, const char *key,
                    bool required, bool array, const cJSON **out) {
  const cJSON *v = field(obj, key);
  *out = NULL;
  if (absent(v) && !required) return 0;
  if (array ? !cJSON_IsArray(v) : !cJSON_IsObject(v)) {
    const char *exp = array ? (required ? "an array" : "an array or null")
                            : (required ? "an object" : "an object or null");
    return bad_field(j, where, key, exp, v);
  }
  *out = v;
  return 0;
}

/* Reads path as one JSON object (trailing garbage is an error). */
static int load_json(const char *path, errbuf *e, cJSON **out) {
  *out = NULL;
  void *data = NULL;
  size_t size = 0;
  hawq_error herr;
  hawq_status st = hawq_read_file(path, MAX_JSON_BYTES, "", &data, &size, &herr);
  if (st) return fail(e, hawq_status_exit_code(st) == 2 ? R_NOMEM : R_BAD, "%s", herr.msg);
  char *text = realloc(data, size + 1);
  if (!text) {
    free(data);
    return fail(e, R_NOMEM, "%s: out of memory", path);
  }
  text[size] = '\0';
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, size + 1, &end, true);
  if (!root) {
    int line = 1, col = 1;
    if (end && end >= text && end <= text + size) {
      for (const char *c = text; c < end; c++) {
        if (*c == '\n') {
          line++;
          col = 1;
        } else {
          col++;
        }
      }
    }
    free(text);
    return fail(e, R_BAD, "%s: not valid JSON: syntax error at line %d, column %d", path, line,
                col);
  }
  free(text);
  if (!cJSON_IsObject(root)) {
    char buf[64];
    int rc = fail(e, R_BAD, "%s: expected a JSON object at the top level, got %s", path,
                  describe(root, buf, sizeof buf));
    cJSON_Delete(root);
    return rc;
  }
  *out = root;
  return 0;
}

static int check_format(const jctx *j, const cJSON *obj, const char *where, const char *format) {
  const cJSON *f = field(obj, "format");
  char exp[64];
  snprintf(exp, sizeof exp, "the string \"%s\"", format);
  if (!cJSON_IsString(f)) return bad_field(j, where, "format", exp, f);
  if (strcmp(f->valuestring, format)) {
    return fail(j->e, R_BAD, "%s: field '%s%sformat': expected \"%s\", got \"%.60s\"", j->path,
                where, *where ? "." : "", format, f->valuestring);
  }
  const cJSON *v = field(obj, "version");
  if (!cJSON_IsNumber(v) || v->valuedouble != 1) return bad_field(j, where, "version", "1", v);
  return 0;
}

/* ---- the three documents ---- */

enum { RES_SIZE, RES_BOPS, RES_LATENCY, N_RES };
static const char *const res_name[N_RES] = {"size", "bops", "latency"};

typedef struct sum_row {
  const char *config;
  onum top1, correct, images, size, bops, latency, threads, ft_epochs, ft_seconds;
} sum_row;

typedef struct stage_row {
  const char *name;
  onum seconds;
  int reused; /* -1 unknown */
} stage_row;

typedef struct summary_doc {
  cJSON *root;
  const char *model, *data;
  const cJSON *budgets;     /* object of strings, or NULL */
  const cJSON *bit_choices; /* array of integers, or NULL */
  int n_rows, n_stages;
  sum_row *rows;
  stage_row *stages;
  bool has_stages;
} summary_doc;

typedef struct sens_layer {
  const char *name, *op;
  double params, trace;
  onum se;
} sens_layer;

typedef struct sens_doc {
  cJSON *root;
  const char *model, *data;
  onum images, draws, seconds;
  int converged;
  int n;
  sens_layer *layers;
} sens_doc;

typedef struct bits_layer {
  const char *name;
  int w, a;
  onum omega;
  int pinned; /* -1 unknown */
} bits_layer;

typedef struct fpoint {
  double ratio, limit, objective;
  onum used[N_RES];
  char *bits; /* one digit per layer */
} fpoint;

typedef struct bits_doc {
  cJSON *root;
  int n;
  bits_layer *layers;
  bool has_ilp;
  const char *model;
  double objective;
  onum used[N_RES], limit[N_RES]; /* resources used; the budgets' limits */
  const char *units[N_RES];
  int sweep;        /* the swept resource */
  onum sweep_steps; /* budgets in the sweep */
  int n_front;
  fpoint *front;
  char *chosen; /* the chosen weight bits, one digit per layer */
} bits_doc;

static void summary_free(summary_doc *s) {
  free(s->rows);
  free(s->stages);
  cJSON_Delete(s->root);
}

static void sens_free(sens_doc *s) {
  free(s->layers);
  cJSON_Delete(s->root);
}

static void bits_free(bits_doc *b) {
  for (int k = 0; k < b->n_front; k++) free(b->front[k].bits);
  free(b->front);
  free(b->layers);
  free(b->chosen);
  cJSON_Delete(b->root);
}

static int read_summary(const char *path, errbuf *e, summary_doc *s) {
  jctx j = {path, e};
  int rc = load_json(path, e, &s->root);
  if (rc) return rc;
  const cJSON *root = s->root, *rows, *stages;
  if ((rc = check_format(&j, root, "", "hawq-quantize-summary")) ||
      (rc = get_str(&j, root, "", "model", true, &s->model)) ||
      (rc = get_str(&j, root, "", "data", false, &s->data)) ||
      (rc = get_kind(&j, root, "", "budgets", false, false, &s->budgets)) ||
      (rc = get_kind(&j, root, "", "bit_choices", false, true, &s->bit_choices)) ||
      (rc = get_kind(&j, root, "", "rows", true, true, &rows)) ||
      (rc = get_kind(&j, root, "", "stages", false, true, &stages))) {
    return rc;
  }
  const cJSON *v;
  cJSON_ArrayForEach(v, s->budgets) {
    if (!cJSON_IsString(v)) {
      return bad_field(&j, "budgets", v->string, "a string (the budget as given, e.g. \"0.5\")", v);
    }
  }
  int k = 0;
  cJSON_ArrayForEach(v, s->bit_choices) {
    char where[32];
    snprintf(where, sizeof where, "bit_choices[%d]", k++);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
        v->valuedouble > 32) {
      return bad_field(&j, where, "", "an integer from 1 to 32", v);
    }
  }
  s->n_rows = cJSON_GetArraySize(rows);
  s->rows = calloc((size_t)s->n_rows + 1, sizeof *s->rows);
  if (!s->rows) return fail(e, R_NOMEM, "%s: out of memory", path);
  k = 0;
  cJSON_ArrayForEach(v, rows) {
    char where[32];
    snprintf(where, sizeof where, "rows[%d]", k);
    sum_row *r = &s->rows[k++];
    if (!cJSON_IsObject(v)) return bad_field(&j, where, "", "an object", v);
    if ((rc = get_str(&j, v, where, "config", true, &r->config)) ||
        (rc = get_num(&j, v, where, "top1", false, 0, &r->top1)) ||
        (rc = get_int(&j, v, where, "top1_correct", false, 0, 9e15, &r->correct)) ||
        (rc = get_int(&j, v, where, "images", false, 1, 9e15, &r->images)) ||
        (rc = get_num(&j, v, where, "size_bytes", false, 0, &r->size)) ||
        (rc = get_num(&j, v, where, "bops", false, 0, &r->bops)) ||
        (rc = get_num(&j, v, where, "latency_ms", false, 0, &r->latency)) ||
        (rc = get_int(&j, v, where, "latency_threads", false, 1, 1e6, &r->threads)) ||
        (rc = get_num(&j, v, where, "finetune_epochs", false, 0, &r->ft_epochs)) ||
        (rc = get_num(&j, v, where, "finetune_seconds", false, 0, &r->ft_seconds))) {
      return rc;
    }
    if (r->top1.has && r->top1.v > 100) {
      return bad_field(&j, where, "top1", "a percentage from 0 to 100 or null", field(v, "top1"));
    }
    if (r->correct.has && r->images.has && r->correct.v > r->images.v) {
      return fail(e, R_BAD,
                  "%s: field '%s.top1_correct': expected at most 'images' (%.0f), got %.0f", path,
                  where, r->images.v, r->correct.v);
    }
  }
  s->has_stages = stages != NULL;
  s->n_stages = stages ? cJSON_GetArraySize(stages) : 0;
  s->stages = calloc((size_t)s->n_stages + 1, sizeof *s->stages);
  if (!s->stages) return fail(e, R_NOMEM, "%s: out of memory", path);
  k = 0;
  cJSON_ArrayForEach(v, stages) {
    char where[32];
    snprintf(where, sizeof where, "stages[%d]", k);
    stage_row *st = &s->stages[k++];
    if (!cJSON_IsObject(v)) return bad_field(&j, where, "", "an object", v);
    if ((rc = get_str(&j, v, where, "name", true, &st->name)) ||
        (rc = get_num(&j, v, where, "seconds", false, 0, &st->seconds)) ||
        (rc = get_bool(&j, v, where, "reused", &st->reused))) {
      return rc;
    }
  }
  return 0;
}

static int read_sens(const char *path, errbuf *e, sens_doc *s) {
  jctx j = {path, e};
  int rc = load_json(path, e, &s->root);
  if (rc) return rc;
  const cJSON *root = s->root, *layers;
  if ((rc = check_format(&j, root, "", "hawq-sensitivity")) ||
      (rc = get_str(&j, root, "", "model", true, &s->model)) ||
      (rc = get_str(&j, root, "", "data", false, &s->data)) ||
      (rc = get_int(&j, root, "", "images", false, 0, 9e15, &s->images)) ||
      (rc = get_int(&j, root, "", "draws", false, 0, 9e15, &s->draws)) ||
      (rc = get_num(&j, root, "", "seconds", false, 0, &s->seconds)) ||
      (rc = get_bool(&j, root, "", "converged", &s->converged)) ||
      (rc = get_kind(&j, root, "", "layers", true, true, &layers))) {
    return rc;
  }
  s->n = cJSON_GetArraySize(layers);
  if (s->n == 0) return bad_field(&j, "", "layers", "a non-empty array", layers);
  s->layers = calloc((size_t)s->n, sizeof *s->layers);
  if (!s->layers) return fail(e, R_NOMEM, "%s: out of memory", path);
  int k = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, layers) {
    char where[32];
    snprintf(where, sizeof where, "layers[%d]", k);
    sens_layer *l = &s->layers[k];
    if (!cJSON_IsObject(v)) return bad_field(&j, where, "", "an object", v);
    onum params, trace;
    if ((rc = get_str(&j, v, where, "name", true, &l->name)) ||
        (rc = get_str(&j, v, where, "op", true, &l->op)) ||
        (rc = get_int(&j, v, where, "params", true, 1, 9e15, &params)) ||
        (rc = get_num(&j, v, where, "trace", true, -INFINITY, &trace)) ||
        (rc = get_num(&j, v, where, "trace_se", false, 0, &l->se))) {
      return rc;
    }
    l->params = params.v;
    l->trace = trace.v;
    for (int i = 0; i < k; i++) {
      if (!strcmp(s->layers[i].name, l->name)) {
        return fail(e, R_BAD,
                    "%s: field 'layers[%d].name': layer '%.80s' appears twice (also layers[%d])",
                    path, k, l->name, i);
      }
    }
    k++;
  }
  return 0;
}

static int resource_index(const char *name) {
  for (int r = 0; r < N_RES; r++) {
    if (!strcmp(name, res_name[r])) return r;
  }
  return -1;
}

/* {"size": .., "bops": .., "latency": ..}: any subset, finite numbers. */
static int read_resources(const jctx *j, const cJSON *obj, const char *where, const char *key,
                          bool required, onum *out) {
  const cJSON *o;
  int rc = get_kind(j, obj, where, key, required, false, &o);
  if (rc) return rc;
  char sub[64];
  snprintf(sub, sizeof sub, "%s%s%s", where, *where ? "." : "", key);
  for (int r = 0; r < N_RES; r++) {
    out[r].has = false;
    if (o && (rc = get_num(j, o, sub, res_name[r], false, -INFINITY, &out[r]))) return rc;
  }
  return 0;
}

static int read_ilp(const jctx *j, const cJSON *ilp, bits_doc *b) {
  int rc;
  const cJSON *budgets, *sweep, *layers;
  onum objective;
  if ((rc = check_format(j, ilp, "ilp", "hawq-allocation")) ||
      (rc = get_str(j, ilp, "ilp", "model", false, &b->model)) ||
      (rc = get_num(j, ilp, "ilp", "objective", true, -INFINITY, &objective)) ||
      (rc = read_resources(j, ilp, "ilp", "used", true, b->used)) ||
      (rc = get_kind(j, ilp, "ilp", "budgets", false, false, &budgets)) ||
      (rc = get_kind(j, ilp, "ilp", "sweep", false, false, &sweep)) ||
      (rc = get_kind(j, ilp, "ilp", "layers", false, true, &layers))) {
    return rc;
  }
  b->objective = objective.v;
  const cJSON *units = field(ilp, "units");
  for (int r = 0; r < N_RES; r++) {
    const cJSON *u = cJSON_IsObject(units) ? field(units, res_name[r]) : NULL;
    b->units[r] = cJSON_IsString(u) ? u->valuestring : NULL; /* decoration only */
    const cJSON *bud = budgets ? field(budgets, res_name[r]) : NULL;
    if (absent(bud)) continue;
    char where[32];
    snprintf(where, sizeof where, "ilp.budgets.%s", res_name[r]);
    if (!cJSON_IsObject(bud)) return bad_field(j, "ilp.budgets", res_name[r], "an object", bud);
    if ((rc = get_num(j, bud, where, "limit", true, -INFINITY, &b->limit[r]))) return rc;
  }
  b->sweep = RES_SIZE;
  if (sweep) {
    const char *res;
    if ((rc = get_str(j, sweep, "ilp.sweep", "resource", true, &res)) ||
        (rc = get_int(j, sweep, "ilp.sweep", "steps", false, 1, 1e9, &b->sweep_steps))) {
      return rc;
    }
    b->sweep = resource_index(res);
    if (b->sweep < 0) {
      return fail(j->e, R_BAD,
                  "%s: field 'ilp.sweep.resource': expected \"size\", \"bops\" or \"latency\", "
                  "got \"%.40s\"",
                  j->path, res);
    }
  }
  int k = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, layers) { /* the pins and Omegas of the chosen allocation */
    char where[32];
    snprintf(where, sizeof where, "ilp.layers[%d]", k++);
    const char *name;
    onum omega;
    int pinned;
    if (!cJSON_IsObject(v)) return bad_field(j, where, "", "an object", v);
    if ((rc = get_str(j, v, where, "name", true, &name)) ||
        (rc = get_num(j, v, where, "omega", false, -INFINITY, &omega)) ||
        (rc = get_bool(j, v, where, "pinned", &pinned))) {
      return rc;
    }
    for (int i = 0; i < b->n; i++) {
      if (!strcmp(b->layers[i].name, name)) {
        b->layers[i].omega = omega;
        b->layers[i].pinned = pinned;
      }
    }
  }
  return 0;
}

static int read_bits(const char *path, errbuf *e, bits_doc *b) {
  jctx j = {path, e};
  int rc = load_json(path, e, &b->root);
  if (rc) return rc;
  const cJSON *root = b->root, *layers, *ilp, *front;
  if ((rc = get_kind(&j, root, "", "layers", true, false, &layers)) ||
      (rc = get_kind(&j, root, "", "ilp", false, false, &ilp)) ||
      (rc = get_kind(&j, root, "", "frontier", false, true, &front))) {
    return rc;
  }
  b->n = cJSON_GetArraySize(layers);
  if (b->n == 0) return bad_field(&j, "", "layers", "a non-empty object", layers);
  b->layers = calloc((size_t)b->n, sizeof *b->layers);
  b->chosen = calloc((size_t)b->n + 1, 1);
  if (!b->layers || !b->chosen) return fail(e, R_NOMEM, "%s: out of memory", path);
  int k = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, layers) {
    char where[160];
    snprintf(where, sizeof where, "layers.%.120s", v->string);
    bits_layer *l = &b->layers[k];
    l->name = v->string;
    l->pinned = -1;
    onum w, a;
    if (!cJSON_IsObject(v)) return bad_field(&j, where, "", "an object", v);
    if ((rc = get_int(&j, v, where, "weight_bits", true, 2, 8, &w)) ||
        (rc = get_int(&j, v, where, "act_bits", true, 2, 8, &a))) {
      return rc;
    }
    l->w = (int)w.v;
    l->a = (int)a.v;
    for (int i = 0; i < k; i++) {
      if (!strcmp(b->layers[i].name, l->name)) {
        return fail(e, R_BAD, "%s: field '%s': layer '%.80s' appears twice", path, where, l->name);
      }
    }
    b->chosen[k++] = (char)('0' + l->w);
  }
  if (ilp) {
    b->has_ilp = true;
    if ((rc = read_ilp(&j, ilp, b))) return rc;
  } else if (front) {
    return bad_field(&j, "", "ilp", "an object (the chosen allocation the frontier is drawn with)",
                     NULL);
  }
  b->n_front = front ? cJSON_GetArraySize(front) : 0;
  b->front = calloc((size_t)b->n_front + 1, sizeof *b->front);
  if (!b->front) return fail(e, R_NOMEM, "%s: out of memory", path);
  k = 0;
  cJSON_ArrayForEach(v, front) {
    char where[32];
    snprintf(where, sizeof where, "frontier[%d]", k);
    fpoint *p = &b->front[k++];
    onum ratio, limit, objective;
    const cJSON *bits;
    if (!cJSON_IsObject(v)) return bad_field(&j, where, "", "an object", v);
    if ((rc = get_num(&j, v, where, "ratio", true, -INFINITY, &ratio)) ||
        (rc = get_num(&j, v, where, "limit", true, -INFINITY, &limit)) ||
        (rc = get_num(&j, v, where, "objective", true, -INFINITY, &objective)) ||
        (rc = read_resources(&j, v, where, "used", true, p->used)) ||
        (rc = get_kind(&j, v, where, "bits", true, true, &bits))) {
      return rc;
    }
    p->ratio = ratio.v;
    p->limit = limit.v;
    p->objective = objective.v;
    if (!p->used[b->sweep].has) {
      char sub[48];
      snprintf(sub, sizeof sub, "%s.used", where);
      return bad_field(&j, sub, res_name[b->sweep], "a number (the swept resource)", NULL);
    }
    if (cJSON_GetArraySize(bits) != b->n) {
      return fail(e, R_BAD,
                  "%s: field '%s.bits': expected %d widths (one per layer of 'layers'), got %d",
                  path, where, b->n, cJSON_GetArraySize(bits));
    }
    p->bits = calloc((size_t)b->n + 1, 1);
    if (!p->bits) return fail(e, R_NOMEM, "%s: out of memory", path);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, bits) {
      if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 2 ||
          x->valuedouble > 8) {
        char sub[64];
        snprintf(sub, sizeof sub, "%s.bits[%d]", where, i);
        return bad_field(&j, sub, "", "an integer from 2 to 8", x);
      }
      p->bits[i++] = (char)('0' + (int)x->valuedouble);
    }
  }
  if (b->n_front && !b->used[b->sweep].has) {
    return bad_field(&j, "ilp.used", res_name[b->sweep], "a number (the swept resource)", NULL);
  }
  return 0;
}

/* ---- the page buffer ---- */

typedef struct sbuf {
  char *p;
  size_t len, cap;
  bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (b->len + n + 1 > cap) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) {
  sb_putn(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    sb_putn(b, tmp, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) {
    b->oom = true;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb_putn(b, big, (size_t)n);
  free(big);
}

/* Text from the inputs, HTML-escaped (also inside attributes); control characters become spaces.
 * max_chars > 0 shortens it to that many characters with an ellipsis. */
static void sb_esc_n(sbuf *b, const char *s, int max_chars) {
  int chars = 0;
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if ((*c & 0xc0) != 0x80 && max_chars > 0 && ++chars > max_chars) {
      sb_puts(b, "\xe2\x80\xa6"); /* … */
      return;
    }
    switch (*c) {
      case '&':
        sb_puts(b, "&amp;");
        break;
      case '<':
        sb_puts(b, "&lt;");
        break;
      case '>':
        sb_puts(b, "&gt;");
        break;
      case '"':
        sb_puts(b, "&quot;");
        break;
      case '\'':
        sb_puts(b, "&#39;");
        break;
      default:
        if (*c < 0x20 || *c == 0x7f) {
          sb_puts(b, " ");
        } else {
          sb_putn(b, (const char *)c, 1);
        }
    }
  }
}

static void sb_esc(sbuf *b, const char *s) {
  sb_esc_n(b, s, 0);
}

/* ---- numbers as text ---- */

#define DASH "<span class=\"na\">&mdash;</span>"
#define MINUS "\xe2\x88\x92" /* − */

/* 1234567 -> "1,234,567" */
static const char *fmt_int(double v, char *buf, size_t n) {
  char digits[64];
  snprintf(digits, sizeof digits, "%.0f", fabs(v));
  size_t len = strlen(digits), o = 0;
  if (v <= -0.5 && o + 1 < n) buf[o++] = '-';
  for (size_t i = 0; i < len && o + 2 < n; i++) {
    if (i && (len - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = digits[i];
  }
  buf[o] = '\0';
  return buf;
}

/* Three significant digits with an SI prefix: "1.99 G", "274 kB". */
static const char *fmt_si(double v, const char *unit, char *buf, size_t n) {
  static const char *const prefix[] = {"", "k", "M", "G", "T", "P"};
  int p = 0;
  while (fabs(v) >= 999.5 && p < 5) {
    v /= 1000;
    p++;
  }
  snprintf(buf, n, "%.3g%s%s%s", v, *prefix[p] || *unit ? "&#8201;" : "", prefix[p], unit);
  return buf;
}

/* A number to `digits` significant digits, with a real minus sign. */
static const char *fmt_g(double v, int digits, char *buf, size_t n) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%.*g", digits, fabs(v));
  snprintf(buf, n, "%s%s", v < 0 ? MINUS : "", tmp);
  return buf;
}

/* A quantity of a resource: bytes, bit operations or milliseconds. */
static const char *fmt_res(int r, double v, char *buf, size_t n) {
  if (r == RES_SIZE) return fmt_si(v, "B", buf, n);
  if (r == RES_BOPS) return fmt_si(v, "", buf, n);
  char g[48];
  snprintf(buf, n, "%s&#8201;ms", fmt_g(v, 3, g, sizeof g));
  return buf;
}

/* ---- the page ---- */

static const char css[] =
    ":root{--ink:#1d2733;--muted:#5f6b7a;--faint:#9aa5b1;--line:#e3e7ed;--bg:#f5f7fa;"
    "--accent:#2f6690;--chosen:#d1495b}\n"
    "*{box-sizing:border-box}\n"
    "html{background:#fff}\n"
    "body{margin:0;color:var(--ink);font:14px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,"
    "\"Helvetica Neue\",\"DejaVu Sans\",\"Liberation Sans\",Arial,sans-serif}\n"
    "main{max-width:1000px;margin:0 auto;padding:28px 20px 36px}\n"
    "h1{font-size:26px;line-height:1.2;margin:0;font-weight:650;letter-spacing:-.01em}\n"
    "h2{font-size:18px;margin:34px 0 6px;padding-bottom:6px;border-bottom:1px solid var(--line);"
    "font-weight:620}\n"
    "p{margin:6px 0 10px}\n"
    ".eyebrow{margin:0 0 2px;font-size:12px;font-weight:650;color:var(--accent);"
    "text-transform:uppercase;letter-spacing:.08em}\n"
    "#bits td{padding-top:3px;padding-bottom:3px}\n"
    ".caption{color:var(--muted);font-size:12.5px;margin:4px 0 12px}\n"
    "code,.mono{font-family:ui-monospace,\"SFMono-Regular\",Menlo,\"DejaVu Sans Mono\","
    "\"Liberation Mono\",monospace;font-size:12.5px}\n"
    "dl.meta{display:grid;grid-template-columns:140px 1fr;gap:3px 16px;margin:18px 0 0}\n"
    "dl.meta dt{color:var(--muted)}\n"
    "dl.meta dd{margin:0;overflow-wrap:anywhere}\n"
    ".cards{display:flex;gap:12px;margin:22px 0 0;flex-wrap:wrap}\n"
    ".card{flex:1 1 0;min-width:170px;border:1px solid var(--line);border-radius:10px;"
    "padding:10px 16px 12px;background:var(--bg)}\n"
    ".card .cfg{font-size:12px;font-weight:650;color:var(--muted);text-transform:uppercase;"
    "letter-spacing:.06em}\n"
    ".card .big{font-size:26px;font-weight:650;line-height:1.25}\n"
    ".card .line{font-size:12.5px;color:var(--muted)}\n"
    "table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}\n"
    "th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:right;"
    "vertical-align:top}\n"
    "th{font-weight:600;color:var(--muted);font-size:11.5px;text-transform:uppercase;"
    "letter-spacing:.04em;background:var(--bg);vertical-align:bottom}\n"
    ".l{text-align:left}\n"
    "tfoot td{font-weight:600;border-bottom:none}\n"
    ".sm{display:block;font-size:11.5px;color:var(--muted);line-height:1.3}\n"
    ".na{color:var(--faint)}\n"
    ".down{color:#b3261e}\n"
    ".up{color:#1b7f3b}\n"
    ".cfgname{font-weight:600}\n"
    ".badge{display:inline-block;font-size:11px;padding:0 7px;border-radius:9px;"
    "background:#e8eef5;color:var(--accent);font-weight:600}\n"
    ".meter{height:9px;background:var(--bg);border-radius:3px;margin-top:6px;min-width:220px}\n"
    ".meter span{display:block;height:100%;background:var(--accent);border-radius:3px;"
    "opacity:.8}\n"
    ".meter.reused span{background:var(--faint)}\n"
    ".chip{display:inline-block;min-width:28px;padding:0 8px;border-radius:9px;font-weight:650;"
    "font-size:12px;text-align:center}\n"
    ".b2{background:#b2182b;color:#fff}.b3{background:#e0603a;color:#fff}"
    ".b4{background:#f4a259;color:#3a2410}.b5{background:#f6d27a;color:#3a2d10}"
    ".b6{background:#9ecae1;color:#0d2a40}.b7{background:#5b9bd0;color:#fff}"
    ".b8{background:#2f6690;color:#fff}.bx{background:#cfd6de;color:#333}\n"
    ".legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12.5px;color:var(--muted);"
    "margin:6px 0 8px}\n"
    ".legend .chip{margin-right:4px}\n"
    ".warn{background:#fff5e6;border:1px solid #f0c98a;border-radius:8px;padding:8px 12px;"
    "margin:16px 0 0;font-size:13px}\n"
    ".note{background:var(--bg);border:1px dashed var(--faint);border-radius:8px;"
    "padding:14px 16px;color:var(--muted)}\n"
    "svg{display:block;margin:6px 0 0;overflow:visible}\n"
    "svg text{font-family:inherit;fill:var(--ink)}\n"
    "svg .tick{font-size:11px;fill:var(--muted)}\n"
    "svg .axis-title{font-size:12px;fill:var(--muted);font-weight:600}\n"
    "svg .name{font-size:12px}\n"
    "svg .val{font-size:11px;fill:var(--muted);font-variant-numeric:tabular-nums}\n"
    "svg .axis{stroke:var(--faint);stroke-width:1}\n"
    "svg .grid{stroke:#edf0f4;stroke-width:1}\n"
    "svg .bar{stroke:none}\n"
    "svg .bar.nonpos{fill:#cfd6de}\n"
    "svg .err{stroke:var(--ink);stroke-width:1.1;opacity:.75}\n"
    "svg .layer:hover .bar{opacity:.8}\n"
    "svg .frontier-line{fill:none;stroke:var(--accent);stroke-width:1.6;opacity:.55}\n"
    "svg .frontier-point{fill:var(--accent);stroke:#fff;stroke-width:1.5}\n"
    "svg .chosen-point{fill:none;stroke:var(--chosen);stroke-width:3}\n"
    "svg .budget{stroke:var(--chosen);stroke-width:1.2;stroke-dasharray:5 4}\n"
    "svg .chosen-label{fill:var(--chosen);font-size:12px;font-weight:650}\n"
    "details{margin-top:10px}\n"
    "summary{cursor:pointer;color:var(--accent);font-size:13px}\n"
    "tr.chosen-row td{background:#fdf0f2}\n"
    "footer{margin-top:40px;padding-top:10px;border-top:1px solid var(--line);"
    "color:var(--muted);font-size:12px}\n";

/* The basename, to compare model paths written from different directories. */
static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static const sum_row *find_row(const summary_doc *s, const char *config) {
  for (int k = 0; k < s->n_rows; k++) {
    if (!strcmp(s->rows[k].config, config)) return &s->rows[k];
  }
  return NULL;
}

static const char *config_note(const char *config) {
  if (!strcmp(config, "fp32")) return "float model";
  if (!strcmp(config, "int8")) return "integer-only, 8-bit";
  if (!strcmp(config, "int4")) return "integer-only, 4-bit";
  if (!strcmp(config, "mixed")) return "integer-only, mixed precision";
  return NULL;
}

static const bits_layer *find_bits(const bits_doc *b, const char *name) {
  for (int k = 0; k < b->n; k++) {
    if (!strcmp(b->layers[k].name, name)) return &b->layers[k];
  }
  return NULL;
}

static const sens_layer *find_sens(const sens_doc *s, const char *name) {
  for (int k = 0; k < s->n; k++) {
    if (!strcmp(s->layers[k].name, name)) return &s->layers[k];
  }
  return NULL;
}

static void render_header(sbuf *b, const summary_doc *s, const sens_doc *sens, const bits_doc *bits,
                          const char *const paths[3]) {
  char t1[64], t2[64];
  sb_puts(b, "<header>\n<p class=\"eyebrow\">hawq quantization report</p>\n<h1>");
  sb_esc(b, base_name(s->model));
  sb_puts(b, "</h1>\n<dl class=\"meta\">\n<dt>Model</dt><dd><code>");
  sb_esc(b, s->model);
  sb_puts(b, "</code></dd>\n<dt>Data</dt><dd>");
  if (s->data) {
    sb_esc(b, s->data);
  } else {
    sb_puts(b, DASH);
  }
  sb_puts(b, "</dd>\n<dt>Budgets</dt><dd>");
  int nb = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, s->budgets) {
    sb_puts(b, nb++ ? "; " : "");
    sb_esc(b, v->string);
    sb_puts(b, " <code>");
    sb_esc(b, v->valuestring);
    sb_puts(b, "</code>");
    int r = resource_index(v->string);
    if (r >= 0 && bits->limit[r].has) {
      sb_printf(b, " = %s", fmt_res(r, bits->limit[r].v, t1, sizeof t1));
      if (r == RES_SIZE)
        sb_printf(b, " (%s bytes of packed weights)", fmt_int(bits->limit[r].v, t2, sizeof t2));
    }
  }
  if (!nb) sb_puts(b, "none (the most accurate allocation)");
  sb_puts(b, "</dd>\n<dt>Bit choices</dt><dd>");
  int nc = 0;
  cJSON_ArrayForEach(v, s->bit_choices) sb_printf(b, "%s%d", nc++ ? ", " : "", (int)v->valuedouble);
  if (!nc) sb_puts(b, DASH);
  sb_puts(b, "</dd>\n<dt>Sensitivity</dt><dd>");
  sb_printf(b, "%d layers", sens->n);
  if (sens->draws.has) sb_printf(b, ", Hutchinson trace from %.0f draws", sens->draws.v);
  if (sens->images.has) sb_printf(b, " on %.0f images", sens->images.v);
  if (sens->data) {
    sb_puts(b, " of ");
    sb_esc(b, sens->data);
  }
  if (sens->converged >= 0) sb_puts(b, sens->converged ? " (converged)" : " (not converged)");
  if (sens->seconds.has) sb_printf(b, ", %.1f s", sens->seconds.v);
  sb_puts(b, "</dd>\n<dt>Allocation</dt><dd>");
  int n8 = 0, nlow = 0;
  for (int k = 0; k < bits->n; k++) {
    if (bits->layers[k].w >= 8) {
      n8++;
    } else {
      nlow++;
    }
  }
  sb_printf(b, "%d layers: %d at 8 bits, %d below", bits->n, n8, nlow);
  if (bits->has_ilp) {
    sb_printf(b, "; ILP objective %s (summed &Omega;)", fmt_g(bits->objective, 4, t1, sizeof t1));
    for (int r = 0; r < N_RES; r++) {
      if (bits->used[r].has)
        sb_printf(b, ", %s %s", res_name[r], fmt_res(r, bits->used[r].v, t1, sizeof t1));
    }
  }
  sb_puts(b, "</dd>\n<dt>Inputs</dt><dd>");
  for (int k = 0; k < 3; k++) {
    sb_puts(b, k ? ", <code>" : "<code>");
    sb_esc(b, paths[k]);
    sb_puts(b, "</code>");
  }
  sb_puts(b, "</dd>\n</dl>\n");

  /* Inputs that do not belong together are shown, not refused. */
  int missing_bits = 0, missing_sens = 0;
  for (int k = 0; k < sens->n; k++) missing_bits += !find_bits(bits, sens->layers[k].name);
  for (int k = 0; k < bits->n; k++) missing_sens += !find_sens(sens, bits->layers[k].name);
  bool model_differs = strcmp(base_name(s->model), base_name(sens->model)) != 0 ||
                       (bits->model && strcmp(base_name(bits->model), base_name(sens->model)));
  if (missing_bits || missing_sens || model_differs) {
    sb_puts(b, "<div class=\"warn\"><strong>The inputs may not belong together:</strong>");
    if (model_differs) {
      sb_puts(b, " the summary is of <code>");
      sb_esc(b, s->model);
      sb_puts(b, "</code>, the sensitivities of <code>");
      sb_esc(b, sens->model);
      if (bits->model) {
        sb_puts(b, "</code>, the allocation of <code>");
        sb_esc(b, bits->model);
      }
      sb_puts(b, "</code>.");
    }
    if (missing_bits) sb_printf(b, " %d layer(s) of SENS have no bits in BITS.", missing_bits);
    if (missing_sens) sb_printf(b, " %d layer(s) of BITS are not in SENS.", missing_sens);
    sb_puts(b, "</div>\n");
  }
  sb_puts(b, "</header>\n");
}

static void render_cards(sbuf *b, const summary_doc *s) {
  if (!s->n_rows) return;
  const sum_row *fp = find_row(s, "fp32");
  char t[64], u[64];
  sb_puts(b, "<div class=\"cards\">\n");
  for (int k = 0; k < s->n_rows; k++) {
    const sum_row *r = &s->rows[k];
    sb_puts(b, "<div class=\"card\"><div class=\"cfg\">");
    sb_esc_n(b, r->config, 24);
    sb_puts(b, "</div><div class=\"big\">");
    if (r->top1.has) {
      sb_printf(b, "%.2f&#8201;%%", r->top1.v);
    } else {
      sb_puts(b, DASH);
    }
    sb_puts(b, "</div><div class=\"line\">top-1");
    if (r != fp && fp && fp->top1.has && r->top1.has) {
      double d = r->top1.v - fp->top1.v;
      sb_printf(b, ", %s%.2f pt vs fp32", d < 0 ? MINUS : "+", fabs(d));
    }
    sb_puts(b, "</div><div class=\"line\">");
    if (r->size.has) {
      sb_puts(b, fmt_si(r->size.v, "B", t, sizeof t));
      if (r != fp && fp && fp->size.has && r->size.v > 0) {
        sb_printf(b, ", %s&times; smaller", fmt_g(fp->size.v / r->size.v, 3, u, sizeof u));
      }
    } else {
      sb_puts(b, "size unknown");
    }
    if (r->latency.has)
      sb_printf(b, " &middot; %s", fmt_res(RES_LATENCY, r->latency.v, t, sizeof t));
    sb_puts(b, "</div></div>\n");
  }
  sb_puts(b, "</div>\n");
}

static void render_summary(sbuf *b, const summary_doc *s) {
  const sum_row *fp = find_row(s, "fp32");
  bool ft = false;
  for (int k = 0; k < s->n_rows; k++) ft |= s->rows[k].ft_epochs.has || s->rows[k].ft_seconds.has;
  char t[64], u[64];
  sb_puts(b,
          "<h2>Accuracy, size and speed</h2>\n<table id=\"summary\">\n<thead><tr>"
          "<th class=\"l\">config</th><th>top-1</th><th>&Delta; top-1</th><th>size</th>"
          "<th>BOPS</th><th>latency</th>");
  if (ft) sb_puts(b, "<th>fine-tuning</th>");
  sb_puts(b, "</tr></thead>\n<tbody>\n");
  for (int k = 0; k < s->n_rows; k++) {
    const sum_row *r = &s->rows[k];
    sb_puts(b, "<tr class=\"summary-row\"><td class=\"l\"><span class=\"cfgname\">");
    sb_esc_n(b, r->config, 40);
    sb_puts(b, "</span>");
    const char *note = config_note(r->config);
    if (note) sb_printf(b, "<span class=\"sm\">%s</span>", note);
    sb_puts(b, "</td><td>");
    if (r->top1.has) {
      sb_printf(b, "%.2f&#8201;%%", r->top1.v);
    } else {
      sb_puts(b, DASH);
    }
    if (r->correct.has || r->images.has) {
      sb_puts(b, "<span class=\"sm\">");
      sb_puts(b, r->correct.has ? fmt_int(r->correct.v, t, sizeof t) : "?");
      sb_printf(b, " / %s</span>", r->images.has ? fmt_int(r->images.v, u, sizeof u) : "?");
    }
    sb_puts(b, "</td><td>");
    if (r == fp) {
      sb_puts(b, "<span class=\"na\">reference</span>");
    } else if (fp && fp->top1.has && r->top1.has) {
      double d = r->top1.v - fp->top1.v;
      sb_printf(b, "<span class=\"%s\">%s%.2f pt</span>", d < 0 ? "down" : "up",
                d < 0 ? MINUS : "+", fabs(d));
    } else {
      sb_puts(b, DASH);
    }
    sb_puts(b, "</td><td>");
    if (r->size.has) {
      sb_printf(b, "%s B", fmt_int(r->size.v, t, sizeof t));
      if (r != fp && fp && fp->size.has && r->size.v > 0) {
        sb_printf(b, "<span class=\"sm\">%s&times; smaller than fp32</span>",
                  fmt_g(fp->size.v / r->size.v, 3, u, sizeof u));
      } else {
        sb_printf(b, "<span class=\"sm\">%s</span>", fmt_si(r->size.v, "B", u, sizeof u));
      }
    } else {
      sb_puts(b, DASH);
    }
    sb_puts(b, "</td><td>");
    sb_puts(b, r->bops.has ? fmt_si(r->bops.v, "", t, sizeof t) : DASH);
    sb_puts(b, "</td><td>");
    if (r->latency.has) {
      sb_puts(b, fmt_res(RES_LATENCY, r->latency.v, t, sizeof t));
    } else {
      sb_puts(b, DASH);
    }
    if (r->threads.has) {
      sb_printf(b, "<span class=\"sm\">%.0f thread%s</span>", r->threads.v,
                r->threads.v == 1 ? "" : "s");
    }
    sb_puts(b, "</td>");
    if (ft) {
      sb_puts(b, "<td>");
      if (r->ft_seconds.has) {
        sb_printf(b, "%.1f&#8201;s", r->ft_seconds.v);
      } else if (!r->ft_epochs.has) {
        sb_puts(b, DASH);
      }
      if (r->ft_epochs.has) {
        sb_printf(b, "<span class=\"sm\">%s epoch%s</span>", fmt_g(r->ft_epochs.v, 3, t, sizeof t),
                  r->ft_epochs.v == 1 ? "" : "s");
      }
      sb_puts(b, "</td>");
    }
    sb_puts(b, "</tr>\n");
  }
  sb_puts(b, "</tbody>\n</table>\n");
  sb_printf(b,
            "<p class=\"caption\">Top-1 on the evaluation data; size is the model file&#8217;s "
            "bytes, BOPS the bit operations per image (MACs &times; weight bits &times; "
            "activation bits), latency the median per image.%s</p>\n",
            s->n_rows ? "" : " The summary has no rows.");
}

static void render_stages(sbuf *b, const summary_doc *s) {
  sb_puts(b, "<h2>Pipeline stages</h2>\n");
  if (!s->n_stages) {
    sb_printf(b, "<p class=\"note\">%s</p>\n",
              s->has_stages ? "The summary lists no stages." : "The summary has no stage timings.");
    return;
  }
  double total = 0;
  for (int k = 0; k < s->n_stages; k++)
    total += s->stages[k].seconds.has ? s->stages[k].seconds.v : 0;
  sb_puts(b,
          "<table id=\"stages\">\n<thead><tr><th class=\"l\">stage</th><th>time</th>"
          "<th class=\"l\">share of the run</th><th class=\"l\"></th></tr></thead>\n<tbody>\n");
  for (int k = 0; k < s->n_stages; k++) {
    const stage_row *st = &s->stages[k];
    sb_puts(b, "<tr class=\"stage-row\"><td class=\"l mono\">");
    sb_esc_n(b, st->name, 60);
    sb_puts(b, "</td><td>");
    if (st->seconds.has) {
      sb_printf(b, "%.1f&#8201;s", st->seconds.v);
    } else {
      sb_puts(b, DASH);
    }
    double share = st->seconds.has && total > 0 ? 100 * st->seconds.v / total : 0;
    sb_printf(b,
              "</td><td class=\"l\"><div class=\"meter%s\"><span style=\"width:%.1f%%\"></span>"
              "</div></td><td class=\"l\">%s</td></tr>\n",
              st->reused == 1 ? " reused" : "", share,
              st->reused == 1 ? "<span class=\"badge\">reused</span>" : "");
  }
  sb_printf(b,
            "</tbody>\n<tfoot><tr><td class=\"l\">total</td><td>%.1f&#8201;s</td><td></td>"
            "<td></td></tr></tfoot>\n</table>\n",
            total);
}

/* ---- SVG helpers ---- */

typedef struct axis {
  bool log;
  double lo, hi; /* the domain (log: powers of ten) */
  double p0, p1; /* pixels of lo and hi */
} axis;

static double ax_map(const axis *a, double v) {
  double t;
  if (a->log) {
    double lv = v > 0 ? log10(v) : log10(a->lo);
    t = (lv - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
  } else {
    t = (v - a->lo) / (a->hi - a->lo);
  }
  if (t < -0.02) t = -0.02;
  if (t > 1.02) t = 1.02;
  return a->p0 + t * (a->p1 - a->p0);
}

static double nice_step(double span, int target) {
  double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* A linear domain around [lo, hi] ending on round ticks. */
static void ax_linear(axis *a, double lo, double hi, int target) {
  if (!(hi > lo)) {
    double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
    lo -= d;
    hi += d;
  }
  double step = nice_step(hi - lo, target);
  a->log = false;
  a->lo = floor(lo / step) * step;
  a->hi = ceil(hi / step) * step;
}

/* A log domain (lo, hi > 0): from the decade below lo to the decade above hi (for bars), or
 * (tight) a little beyond the data (for points). */
static void ax_log(axis *a, double lo, double hi, bool tight) {
  a->log = true;
  a->lo = tight ? lo / 1.6 : pow(10, floor(log10(lo)));
  a->hi = tight ? hi * 1.6 : pow(10, ceil(log10(hi)));
  if (a->hi <= a->lo) a->hi = a->lo * 10;
}

/* Tick positions: every decade (every other one when there are many), or round steps. */
static int ax_ticks(const axis *a, int target, double *ticks, int max) {
  int n = 0;
  if (a->log) {
    int e0 = (int)ceil(log10(a->lo) - 1e-9), e1 = (int)floor(log10(a->hi) + 1e-9);
    int every = (e1 - e0) / 8 + 1;
    bool minor = e1 - e0 < 2; /* few decades: 2 and 5 times each as well */
    for (int e = e0 - 1; e <= e1 && n < max; e += every) {
      for (int m = 1; m <= 5 && n < max; m += m == 1 ? 1 : 3) {
        double v = m * pow(10, e);
        if ((m == 1 || minor) && v >= a->lo * (1 - 1e-9) && v <= a->hi * (1 + 1e-9)) ticks[n++] = v;
      }
    }
    return n;
  }
  double step = nice_step(a->hi - a->lo, target);
  for (double k = ceil(a->lo / step - 1e-9); k * step <= a->hi + step * 1e-9 && n < max; k++) {
    ticks[n++] = fabs(k) < 1e-12 ? 0 : k * step;
  }
  return n;
}

/* A tick label: 10^e for decades, else a short number (or a resource's amount when r >= 0). */
static void sb_tick_label(sbuf *b, const axis *a, double v, int r) {
  char t[64];
  if (a->log) {
    int e = (int)floor(log10(v) + 1e-9), m = (int)lround(v / pow(10, e));
    if (e >= 0 && e <= 3) {
      sb_printf(b, "%.0f", v);
    } else {
      if (m != 1) sb_printf(b, "%d&#215;", m);
      sb_printf(b, "10<tspan dy=\"-5\" font-size=\"8.5\">%s%d</tspan>", e < 0 ? MINUS : "", abs(e));
    }
    return;
  }
  if (r >= 0) {
    sb_puts(b, fmt_res(r, v, t, sizeof t));
  } else {
    sb_puts(b, fmt_g(v, 3, t, sizeof t));
  }
}

/* The widths' colour class (b2..b8; bx unknown). */
static const char *bits_class(int bits) {
  static const char *const cls[] = {"b2", "b3", "b4", "b5", "b6", "b7", "b8"};
  return bits >= 2 && bits <= 8 ? cls[bits - 2] : "bx";
}

static const char *bits_fill(int bits) {
  static const char *const fill[] = {"#b2182b", "#e0603a", "#f4a259", "#f6d27a",
                                     "#9ecae1", "#5b9bd0", "#2f6690"};
  return bits >= 2 && bits <= 8 ? fill[bits - 2] : "#cfd6de";
}

static void render_legend(sbuf *b, const bits_doc *bits, bool unknown) {
  bool seen[9] = {false};
  for (int k = 0; k < bits->n; k++) seen[bits->layers[k].w] = seen[bits->layers[k].a] = true;
  sb_puts(b, "<div class=\"legend\">");
  for (int w = 8; w >= 2; w--) {
    if (seen[w])
      sb_printf(b, "<span><span class=\"chip %s\">%d</span>%d bits</span>", bits_class(w), w, w);
  }
  if (unknown) sb_puts(b, "<span><span class=\"chip bx\">?</span>not in BITS</span>");
  sb_puts(b, "</div>\n");
}

/* ---- per-layer sensitivity ---- */

static void render_sensitivity(sbuf *b, const sens_doc *s, const bits_doc *bits) {
  const int n = s->n;
  const double W = 960, left = 206, right = 150, top = 30, bottom = 50;
  const double rowh = n <= 32 ? 20 : n <= 64 ? 15 : 12, pw = W - left - right;
  const double H = top + n * rowh + bottom;
  double minpos = INFINITY, maxpos = 0, lo = 0, hi = 0;
  int npos = 0;
  bool unknown = false;
  for (int k = 0; k < n; k++) {
    const sens_layer *l = &s->layers[k];
    double v = l->trace / l->params, e = l->se.has ? l->se.v / l->params : 0;
    if (v > 0) {
      npos++;
      minpos = fmin(minpos, v);
      maxpos = fmax(maxpos, v + e);
    }
    lo = fmin(lo, v - e);
    hi = fmax(hi, v + e);
    unknown |= !find_bits(bits, l->name);
  }
  axis ax = {.p0 = left, .p1 = left + pw};
  if (npos >= 2 && maxpos / minpos >= 30) {
    ax_log(&ax, minpos, maxpos, false);
  } else {
    ax_linear(&ax, lo, hi, 6);
  }
  char t1[64], t2[64], t3[64];
  sb_puts(b, "<h2>Per-layer sensitivity</h2>\n");
  sb_printf(b,
            "<p class=\"caption\">Mean Hessian trace per weight, Tr(H<sub>i</sub>)&#8201;/&#8201;"
            "n<sub>i</sub>, of each Conv/Gemm layer in execution order, with &plusmn;1 standard "
            "error (Hutchinson); %s. HAWQ-V3&#8217;s cost of quantizing a layer to b bits is "
            "&Omega;<sub>i</sub>(b) = Tr(H<sub>i</sub>)&#8201;/&#8201;n<sub>i</sub> &middot; "
            "&#8214;Q<sub>b</sub>(W<sub>i</sub>) &minus; W<sub>i</sub>&#8214;&sup2;. Bars are "
            "coloured by the layer&#8217;s chosen weight bits.</p>\n",
            !ax.log    ? "linear scale"
            : npos < n ? "log scale; a trace at or below zero (noise on a flat layer) is drawn "
                         "as a grey stub"
                       : "log scale");
  render_legend(b, bits, unknown);
  sb_printf(b,
            "<svg id=\"sensitivity\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "role=\"img\" aria-label=\"per-layer Hessian trace per weight\">\n",
            W, H, W, H);
  double ybot = top + n * rowh + 4;
  double ticks[32];
  int nt = ax_ticks(&ax, 6, ticks, 32);
  sb_puts(b, "<g class=\"x-axis\">\n");
  for (int k = 0; k < nt; k++) {
    double x = ax_map(&ax, ticks[k]);
    sb_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x,
              top - 4, x, ybot);
    sb_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x,
              ybot + 16);
    sb_tick_label(b, &ax, ticks[k], -1);
    sb_puts(b, "</text>\n");
  }
  sb_printf(b, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", left,
            ybot, left + pw, ybot);
  if (!ax.log && ax.lo < 0) {
    double x0 = ax_map(&ax, 0);
    sb_printf(b, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x0,
              top - 4, x0, ybot);
  }
  sb_printf(b,
            "<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">mean Hessian "
            "trace per weight, Tr(H)&#8201;/&#8201;n%s</text>\n",
            left + pw / 2, ybot + 38, ax.log ? " (log scale)" : "");
  sb_printf(b,
            "<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">layer "
            "(execution order)</text>\n",
            left - 10, top - 12);
  sb_printf(b, "<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\">Tr(H) &plusmn; se / n</text>\n",
            left + pw + 12, top - 12);
  sb_puts(b, "</g>\n");
  double x0 = ax.log ? left : ax_map(&ax, 0);
  for (int k = 0; k < n; k++) {
    const sens_layer *l = &s->layers[k];
    const bits_layer *bl = find_bits(bits, l->name);
    double v = l->trace / l->params, e = l->se.has ? l->se.v / l->params : 0;
    double y = top + k * rowh, yc = y + rowh / 2, bh = rowh * 0.64;
    sb_puts(b, "<g class=\"layer\"><title>");
    sb_esc(b, l->name);
    sb_puts(b, " (");
    sb_esc_n(b, l->op, 16);
    sb_puts(b, "): Tr(H) = ");
    sb_puts(b, fmt_g(l->trace, 5, t1, sizeof t1));
    if (l->se.has) sb_printf(b, " &plusmn; %s", fmt_g(l->se.v, 3, t2, sizeof t2));
    sb_printf(b, ", %s weights, Tr(H)/n = %s", fmt_int(l->params, t3, sizeof t3),
              fmt_g(v, 4, t1, sizeof t1));
    if (bl) sb_printf(b, "; chosen W%dA%d", bl->w, bl->a);
    sb_puts(b, "</title>");
    bool stub = ax.log && v <= 0;
    double xv = stub ? left + 4 : ax_map(&ax, v);
    double xa = fmin(x0, xv), w = fabs(xv - x0);
    sb_printf(b,
              "<rect class=\"bar%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
              "rx=\"2\" fill=\"%s\"/>",
              stub ? " nonpos" : "", xa, yc - bh / 2, w < 0.5 ? 0.5 : w, bh,
              stub ? "#cfd6de" : bits_fill(bl ? bl->w : 0));
    if (l->se.has && e > 0 && !stub) {
      double xl = ax_map(&ax, v - e), xr = ax_map(&ax, v + e), c = bh * 0.3;
      sb_printf(b, "<path class=\"err\" d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\"/>", xl,
                yc, xr, xl, yc - c, yc + c, xr, yc - c, yc + c);
    }
    sb_printf(b, "<text class=\"name mono\" x=\"%.1f\" y=\"%.1f\" dy=\".35em\" text-anchor=\"end\"",
              left - 10, yc);
    if (rowh < 15) sb_puts(b, " style=\"font-size:10px\"");
    sb_puts(b, ">");
    sb_esc_n(b, l->name, 26);
    sb_printf(b, "</text><text class=\"val\" x=\"%.1f\" y=\"%.1f\" dy=\".35em\">", left + pw + 12,
              yc);
    sb_puts(b, fmt_g(l->trace, 3, t1, sizeof t1));
    if (l->se.has) sb_printf(b, " &plusmn; %s", fmt_g(l->se.v, 2, t2, sizeof t2));
    sb_printf(b, " / %s", fmt_int(l->params, t3, sizeof t3));
    if (stub) sb_puts(b, " (&le; 0)");
    sb_puts(b, "</text></g>\n");
  }
  sb_puts(b, "</svg>\n");
}

/* ---- chosen bits ---- */

static void render_bits(sbuf *b, const sens_doc *s, const bits_doc *bits) {
  char t[64];
  sb_puts(b, "<h2>Chosen bit widths</h2>\n");
  sb_printf(b,
            "<p class=\"caption\">Weight and activation bits of each layer of BITS (the "
            "activation is the one the layer reads)%s.</p>\n",
            bits->has_ilp ? "; &Omega; at the chosen width is the layer&#8217;s term of the ILP "
                            "objective, and pinned layers were fixed before the ILP ran"
                          : "");
  render_legend(b, bits, false);
  sb_puts(b,
          "<table id=\"bits\">\n<thead><tr><th>#</th><th class=\"l\">layer</th><th class=\"l\">"
          "op</th><th>weights</th><th>weight bits</th><th>act. bits</th><th>&Omega;(chosen)"
          "</th><th class=\"l\">pinned</th></tr></thead>\n<tbody>\n");
  for (int k = 0; k < bits->n; k++) {
    const bits_layer *l = &bits->layers[k];
    const sens_layer *sl = find_sens(s, l->name);
    sb_printf(b,
              "<tr class=\"layer-bits\" data-weight-bits=\"%d\" data-act-bits=\"%d\"><td>%d</td>"
              "<td class=\"l mono\">",
              l->w, l->a, k);
    sb_esc_n(b, l->name, 48);
    sb_puts(b, "</td><td class=\"l\">");
    if (sl) {
      sb_esc_n(b, sl->op, 16);
    } else {
      sb_puts(b, DASH);
    }
    sb_puts(b, "</td><td>");
    sb_puts(b, sl ? fmt_int(sl->params, t, sizeof t) : DASH);
    sb_printf(b, "</td><td><span class=\"chip %s\">%d</span></td>", bits_class(l->w), l->w);
    sb_printf(b, "<td><span class=\"chip %s\">%d</span></td><td>", bits_class(l->a), l->a);
    if (l->omega.has) {
      snprintf(t, sizeof t, "%.3e", l->omega.v);
      sb_puts(b, t);
    } else {
      sb_puts(b, DASH);
    }
    sb_printf(b, "</td><td class=\"l\">%s</td></tr>\n",
              l->pinned == 1 ? "<span class=\"badge\">pinned</span>" : "");
  }
  sb_puts(b, "</tbody>\n</table>\n");
}

/* ---- Pareto frontier ---- */

static void point_title(sbuf *b, const bits_doc *bits, const fpoint *p) {
  char t[64];
  sb_printf(b, "<title>ratio %.3g, limit %s: objective ", p->ratio,
            fmt_res(bits->sweep, p->limit, t, sizeof t));
  sb_puts(b, fmt_g(p->objective, 4, t, sizeof t));
  for (int r = 0; r < N_RES; r++) {
    if (p->used[r].has) sb_printf(b, ", %s %s", res_name[r], fmt_res(r, p->used[r].v, t, sizeof t));
  }
  sb_printf(b, "; bits %s</title>", p->bits);
}

static void render_frontier(sbuf *b, const bits_doc *bits) {
  const int r = bits->sweep;
  char t1[64], t2[64];
  sb_puts(b, "<h2>Pareto frontier</h2>\n");
  if (!bits->n_front) {
    sb_puts(b,
            "<p class=\"note\" id=\"frontier-none\">BITS has no Pareto frontier: run "
            "<code>hawq allocate --sweep</code> to get one.");
    if (bits->has_ilp) {
      sb_printf(b, " The chosen allocation has objective %s (summed &Omega;)",
                fmt_g(bits->objective, 4, t1, sizeof t1));
      if (bits->used[RES_SIZE].has) {
        sb_printf(b, " at %s of packed weights",
                  fmt_res(RES_SIZE, bits->used[RES_SIZE].v, t2, sizeof t2));
      }
      sb_puts(b, ".");
    }
    sb_puts(b, "</p>\n");
    return;
  }
  const int n = bits->n_front;
  const double W = 960, H = 400, left = 92, right = 24, top = 24, bottom = 58;
  double cx = bits->used[r].v, cy = bits->objective;
  double xlo = cx, xhi = cx, ylo = cy, yhi = cy;
  for (int k = 0; k < n; k++) {
    xlo = fmin(xlo, bits->front[k].used[r].v);
    xhi = fmax(xhi, bits->front[k].used[r].v);
    ylo = fmin(ylo, bits->front[k].objective);
    yhi = fmax(yhi, bits->front[k].objective);
  }
  bool budget = bits->limit[r].has;
  if (budget) {
    xlo = fmin(xlo, bits->limit[r].v);
    xhi = fmax(xhi, bits->limit[r].v);
  }
  double pad = (xhi - xlo) * 0.04;
  axis ax = {.p0 = left, .p1 = W - right}, ay = {.p0 = H - bottom, .p1 = top};
  ax_linear(&ax, xlo - pad, xhi + pad, 8);
  if (ylo > 0 && yhi / ylo >= 20) {
    ax_log(&ay, ylo, yhi, true);
  } else {
    ax_linear(&ay, ylo - (yhi - ylo) * 0.05, yhi + (yhi - ylo) * 0.05, 6);
  }
  sb_printf(b,
            "<p class=\"caption\">The best allocation (least summed &Omega;) for each of %.0f "
            "%s budgets from all-4 to all-8 (<code>hawq allocate --sweep</code>): %d distinct "
            "allocations. Each point is one allocation at the %s it uses; the red ring is the "
            "chosen one%s.</p>\n",
            bits->sweep_steps.has ? bits->sweep_steps.v : n, res_name[r], n, res_name[r],
            budget ? ", the dashed line its budget" : "");
  sb_printf(b,
            "<svg id=\"frontier\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "role=\"img\" aria-label=\"Pareto frontier\">\n",
            W, H, W, H);
  double ticks[32];
  int nt = ax_ticks(&ax, 8, ticks, 32);
  for (int k = 0; k < nt; k++) {
    double x = ax_map(&ax, ticks[k]);
    sb_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, top,
              x, H - bottom);
    sb_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x,
              H - bottom + 17);
    sb_tick_label(b, &ax, ticks[k], r);
    sb_puts(b, "</text>\n");
  }
  nt = ax_ticks(&ay, 6, ticks, 32);
  for (int k = 0; k < nt; k++) {
    double y = ax_map(&ay, ticks[k]);
    sb_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", left, y,
              W - right, y);
    sb_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" dy=\".35em\" text-anchor=\"end\">",
              left - 8, y);
    sb_tick_label(b, &ay, ticks[k], -1);
    sb_puts(b, "</text>\n");
  }
  sb_printf(b, "<path class=\"axis\" fill=\"none\" d=\"M%.1f %.1fV%.1fH%.1f\"/>\n", left, top,
            H - bottom, W - right);
  sb_printf(b, "<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            (left + W - right) / 2, H - 14);
  sb_printf(b, "%s", res_name[r]);
  if (bits->units[r]) {
    sb_puts(b, " (");
    sb_esc_n(b, bits->units[r], 40);
    sb_puts(b, ")");
  }
  sb_puts(b, "</text>\n");
  sb_printf(b,
            "<text class=\"axis-title\" transform=\"translate(18 %.1f) rotate(-90)\" "
            "text-anchor=\"middle\">summed &Omega; (ILP objective)%s</text>\n",
            (top + H - bottom) / 2, ay.log ? ", log scale" : "");
  if (budget) {
    double x = ax_map(&ax, bits->limit[r].v);
    sb_printf(b,
              "<line class=\"budget\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
              "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\">budget %s</text>\n",
              x, top, x, H - bottom, x + 5, top + 10, fmt_res(r, bits->limit[r].v, t1, sizeof t1));
  }
  /* The staircase: from each allocation the objective holds until the next one is affordable. */
  int *order = malloc(sizeof *order * (size_t)n);
  if (!order) {
    b->oom = true;
    return;
  }
  for (int k = 0; k < n; k++) {
    int i = k;
    while (i > 0 && bits->front[order[i - 1]].used[r].v > bits->front[k].used[r].v) {
      order[i] = order[i - 1];
      i--;
    }
    order[i] = k;
  }
  sb_puts(b, "<path class=\"frontier-line\" d=\"");
  for (int k = 0; k < n; k++) {
    const fpoint *p = &bits->front[order[k]];
    double x = ax_map(&ax, p->used[r].v), y = ax_map(&ay, p->objective);
    if (k == 0) {
      sb_printf(b, "M%.1f %.1f", x, y);
    } else {
      sb_printf(b, "H%.1fV%.1f", x, y);
    }
  }
  sb_puts(b, "\"/>\n");
  free(order);
  for (int k = 0; k < n; k++) {
    const fpoint *p = &bits->front[k];
    sb_printf(b, "<circle class=\"frontier-point\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\">",
              ax_map(&ax, p->used[r].v), ax_map(&ay, p->objective));
    point_title(b, bits, p);
    sb_puts(b, "</circle>\n");
  }
  double px = ax_map(&ax, cx), py = ax_map(&ay, cy);
  sb_printf(b,
            "<circle class=\"chosen-point\" cx=\"%.1f\" cy=\"%.1f\" r=\"10\"><title>chosen: "
            "objective %s, %s %s; bits %s</title></circle>\n",
            px, py, fmt_g(cy, 4, t1, sizeof t1), res_name[r], fmt_res(r, cx, t2, sizeof t2),
            bits->chosen);
  bool right_half = px > (left + W - right) / 2;
  sb_printf(b,
            "<text class=\"chosen-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">chosen</text>\n",
            right_half ? px - 15 : px + 15, py - 12, right_half ? "end" : "start");
  /* legend */
  double lx = W - right - 190, ly = top + 12;
  sb_printf(b,
            "<g class=\"legend\"><rect x=\"%.1f\" y=\"%.1f\" width=\"184\" height=\"%d\" rx=\"6\" "
            "fill=\"#fff\" stroke=\"#e3e7ed\"/>"
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#2f6690\"/><text class=\"tick\" "
            "x=\"%.1f\" y=\"%.1f\" dy=\".35em\">frontier allocation</text>"
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"7\" fill=\"none\" stroke=\"#d1495b\" "
            "stroke-width=\"3\"/><text class=\"tick\" x=\"%.1f\" y=\"%.1f\" dy=\".35em\">chosen "
            "allocation</text>",
            lx, ly - 10, budget ? 66 : 46, lx + 14, ly + 2, lx + 28, ly + 2, lx + 14, ly + 22,
            lx + 28, ly + 22);
  if (budget) {
    sb_printf(b,
              "<line class=\"budget\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/><text "
              "class=\"tick\" x=\"%.1f\" y=\"%.1f\" dy=\".35em\">%s budget</text>",
              lx + 6, ly + 42, lx + 22, ly + 42, lx + 28, ly + 42, res_name[r]);
  }
  sb_puts(b, "</g>\n</svg>\n");

  /* The points as a table, folded. */
  sb_puts(b,
          "<details><summary>The frontier as a table</summary>\n<table id=\"frontier-table\">"
          "<thead><tr><th>ratio</th><th>limit</th><th>objective</th>");
  for (int q = 0; q < N_RES; q++) {
    if (bits->used[q].has || bits->front[0].used[q].has) sb_printf(b, "<th>%s</th>", res_name[q]);
  }
  sb_puts(b, "<th class=\"l\">weight bits per layer</th></tr></thead>\n<tbody>\n");
  for (int k = 0; k < n; k++) {
    const fpoint *p = &bits->front[k];
    bool chosen = !strcmp(p->bits, bits->chosen);
    sb_printf(b, "<tr%s><td>%.3f</td><td>%s</td>", chosen ? " class=\"chosen-row\"" : "", p->ratio,
              fmt_res(r, p->limit, t1, sizeof t1));
    sb_printf(b, "<td>%s</td>", fmt_g(p->objective, 4, t1, sizeof t1));
    for (int q = 0; q < N_RES; q++) {
      if (!(bits->used[q].has || bits->front[0].used[q].has)) continue;
      sb_printf(b, "<td>%s</td>", p->used[q].has ? fmt_res(q, p->used[q].v, t1, sizeof t1) : DASH);
    }
    sb_printf(b, "<td class=\"l mono\">%s</td></tr>\n", p->bits);
  }
  sb_puts(b, "</tbody></table></details>\n");
}

static void render_page(sbuf *b, const summary_doc *s, const sens_doc *sens, const bits_doc *bits,
                        const char *const paths[3]) {
  sb_puts(b,
          "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>hawq "
          "report: ");
  sb_esc(b, base_name(s->model));
  sb_printf(b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<main>\n", css);
  render_header(b, s, sens, bits, paths);
  render_cards(b, s);
  render_summary(b, s);
  render_stages(b, s);
  render_sensitivity(b, sens, bits);
  render_bits(b, sens, bits);
  render_frontier(b, bits);
  sb_puts(b,
          "<footer>Written by <code>hawq report</code>. Self-contained: inline CSS and SVG, no "
          "scripts, nothing fetched.</footer>\n</main>\n</body>\n</html>\n");
}

int hawq_report_write(const char *html_path, const char *summary_path, const char *sens_path,
                      const char *bits_path, char *err, size_t err_len) {
  errbuf e = {err, err_len};
  if (err && err_len) err[0] = '\0';
  summary_doc s = {0};
  sens_doc sens = {0};
  bits_doc bits = {0};
  sbuf b = {0};
  int rc = read_summary(summary_path, &e, &s);
  if (!rc) rc = read_sens(sens_path, &e, &sens);
  if (!rc) rc = read_bits(bits_path, &e, &bits);
  if (!rc) {
    const char *const paths[3] = {summary_path, sens_path, bits_path};
    render_page(&b, &s, &sens, &bits, paths);
    if (b.oom) rc = fail(&e, R_NOMEM, "%s: out of memory", html_path);
  }
  if (!rc) {
    hawq_error herr;
    hawq_status st = hawq_write_file_atomic(html_path, b.p, b.len, &herr);
    if (st) rc = fail(&e, hawq_status_exit_code(st) == 2 ? R_NOMEM : R_BAD, "%s", herr.msg);
  }
  free(b.p);
  summary_free(&s);
  sens_free(&sens);
  bits_free(&bits);
  return rc;
}
