/* sens.json and latency.json into the ILP's arrays (cost.h). The readers check every field they
 * use and name the file, the layer and the field in their one-line errors; fields they do not
 * use (delta, trace_se, the latency table's shapes) are not checked. */
#include "search/cost.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/status.h"

#define MAX_JSON_BYTES (64u << 20)

static hawq_status parse_json(const char *path, cJSON **root, hawq_error *err) {
  void *data = NULL;
  size_t size = 0;
  hawq_status st = hawq_read_file(path, MAX_JSON_BYTES, "", &data, &size, err);
  if (st) return st;
  *root = cJSON_ParseWithLength(data, size);
  free(data);
  if (!cJSON_IsObject(*root)) {
    cJSON_Delete(*root);
    *root = NULL;
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: not a JSON object", path);
  }
  return HAWQ_OK;
}

/* "format" and "version" as expected. */
static hawq_status check_format(const char *path, const cJSON *root, const char *format,
                                hawq_error *err) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
  if (!cJSON_IsString(f) || strcmp(f->valuestring, format)) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'format' is not \"%s\"", path, format);
  }
  if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: 'version' must be 1 (%s)", path, format);
  }
  return HAWQ_OK;
}

static bool is_count(const cJSON *v, double min) {
  return cJSON_IsNumber(v) && v->valuedouble >= min && v->valuedouble <= 9007199254740992.0 &&
         v->valuedouble == floor(v->valuedouble);
}

static bool is_finite(const cJSON *v) {
  return cJSON_IsNumber(v) && isfinite(v->valuedouble);
}

/* ---- sens.json ---- */

void hawq_sens_free(hawq_sens_file *s) {
  if (!s) return;
  for (int i = 0; i < s->n_layers; i++) {
    free(s->layers[i].name);
    free(s->layers[i].op);
  }
  free(s->layers);
  free(s->ties);
  free(s->model);
  free(s);
}

int hawq_sens_find(const hawq_sens_file *s, const char *name) {
  for (int i = 0; i < s->n_layers; i++) {
    if (!strcmp(s->layers[i].name, name)) return i;
  }
  return -1;
}

/* "omega": {"2": .., ..., "8": ..}: any subset of 2..8, finite numbers. */
static hawq_status read_omega(const char *path, const char *name, const cJSON *o, double *omega,
                              hawq_error *err) {
  for (int b = 0; b < HAWQ_ILP_NBITS; b++) omega[b] = NAN;
  if (!cJSON_IsObject(o)) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': 'omega' must be an object", path, name);
  }
  const cJSON *v;
  cJSON_ArrayForEach(v, o) {
    char *end;
    long b = strtol(v->string, &end, 10);
    if (*end || end == v->string || b < HAWQ_ILP_MIN_BITS || b > HAWQ_ILP_MAX_BITS) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': omega key '%s' is not a bit width 2-8",
                       path, name, v->string);
    }
    if (!is_finite(v)) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': omega '%s' is not a finite number",
                       path, name, v->string);
    }
    omega[b] = v->valuedouble;
  }
  return HAWQ_OK;
}

static hawq_status read_sens_layer(const char *path, int k, const cJSON *l, hawq_sens_layer *out,
                                   hawq_error *err) {
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(l, "name");
  if (!cJSON_IsString(name) || !name->valuestring[0]) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layers[%d]: 'name' must be a non-empty string", path,
                     k);
  }
  const char *n = name->valuestring;
  const cJSON *op = cJSON_GetObjectItemCaseSensitive(l, "op");
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(l, "params");
  const cJSON *macs = cJSON_GetObjectItemCaseSensitive(l, "macs");
  const cJSON *trace = cJSON_GetObjectItemCaseSensitive(l, "trace");
  if (!cJSON_IsString(op)) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': 'op' must be a string", path, n);
  }
  if (!is_count(params, 1)) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': 'params' must be a positive integer",
                     path, n);
  }
  if (!is_count(macs, 0)) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': 'macs' must be an integer >= 0", path,
                     n);
  }
  if (!is_finite(trace)) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': 'trace' must be a finite number", path,
                     n);
  }
  out->params = (int64_t)params->valuedouble;
  out->macs = (int64_t)macs->valuedouble;
  out->trace = trace->valuedouble;
  hawq_status st =
      read_omega(path, n, cJSON_GetObjectItemCaseSensitive(l, "omega"), out->omega, err);
  if (st) return st;
  out->name = strdup(n);
  out->op = strdup(op->valuestring);
  if (!out->name || !out->op) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
  return HAWQ_OK;
}

static hawq_status read_sens_layers(const char *path, const cJSON *layers, hawq_sens_file *s,
                                    hawq_error *err) {
  int n = cJSON_GetArraySize(layers);
  if (!cJSON_IsArray(layers) || n < 1) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'layers' must be a non-empty array", path);
  }
  s->layers = calloc((size_t)n, sizeof *s->layers);
  if (!s->layers) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
  const cJSON *l;
  cJSON_ArrayForEach(l, layers) {
    hawq_sens_layer *out = &s->layers[s->n_layers];
    if (!cJSON_IsObject(l)) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layers[%d] is not an object", path, s->n_layers);
    }
    hawq_status st = read_sens_layer(path, s->n_layers, l, out, err);
    s->n_layers++; /* counted even when half-read, so that hawq_sens_free frees it */
    if (st) return st;
    if (hawq_sens_find(s, out->name) < s->n_layers - 1) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s' appears twice", path, out->name);
    }
  }
  return HAWQ_OK;
}

/* "ties": [["a", "b", ...], ...]: groups of two or more layers, stored as chained pairs. */
static hawq_status read_ties(const char *path, const cJSON *ties, hawq_sens_file *s,
                             hawq_error *err) {
  if (!cJSON_IsArray(ties)) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'ties' must be an array of arrays of layer names",
                     path);
  }
  int pairs = 0;
  const cJSON *g;
  cJSON_ArrayForEach(g, ties) {
    if (!cJSON_IsArray(g) || cJSON_GetArraySize(g) < 2) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'ties': each group must list two or more layers",
                       path);
    }
    pairs += cJSON_GetArraySize(g) - 1;
  }
  s->ties = malloc(sizeof *s->ties * (size_t)(pairs ? pairs : 1));
  if (!s->ties) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
  cJSON_ArrayForEach(g, ties) {
    int prev = -1;
    const cJSON *name;
    cJSON_ArrayForEach(name, g) {
      int i = cJSON_IsString(name) ? hawq_sens_find(s, name->valuestring) : -1;
      if (i < 0) {
        return hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'ties': '%s' is not a layer", path,
                         cJSON_IsString(name) ? name->valuestring : "(not a string)");
      }
      if (prev >= 0 && prev != i) {
        s->ties[s->n_ties][0] = prev;
        s->ties[s->n_ties][1] = i;
        s->n_ties++;
      }
      prev = i;
    }
  }
  return HAWQ_OK;
}

hawq_status hawq_sens_read(const char *path, hawq_sens_file **out, hawq_error *err) {
  *out = NULL;
  cJSON *root = NULL;
  hawq_status st = parse_json(path, &root, err);
  if (st) return st;
  hawq_sens_file *s = calloc(1, sizeof *s);
  if (!s) {
    cJSON_Delete(root);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
  }
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  st = check_format(path, root, "hawq-sensitivity", err);
  if (!st && !cJSON_IsString(model)) {
    st = hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'model' must be a string", path);
  }
  if (!st && !(s->model = strdup(model->valuestring))) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
  }
  if (!st) st = read_sens_layers(path, cJSON_GetObjectItemCaseSensitive(root, "layers"), s, err);
  if (!st) st = read_ties(path, cJSON_GetObjectItemCaseSensitive(root, "ties"), s, err);
  cJSON_Delete(root);
  if (st) {
    hawq_sens_free(s);
    return st;
  }
  *out = s;
  return HAWQ_OK;
}

/* ---- latency.json ---- */

/* The table's layer called name, or NULL. */
static const cJSON *find_latency_layer(const cJSON *layers, const char *name) {
  const cJSON *l;
  cJSON_ArrayForEach(l, layers) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(l, "name");
    if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return l;
  }
  return NULL;
}

/* One layer's {"<bits>": ms} at the thread count into ms[b]. */
static hawq_status read_layer_times(const char *path, const char *name, const cJSON *l,
                                    const char *tkey, double *ms, hawq_error *err) {
  const cJSON *per_t =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(l, "ms"), tkey);
  if (!cJSON_IsObject(per_t)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "%s: layer '%s' has no times at %s thread(s) (see --threads)", path, name,
                     tkey);
  }
  for (int b = 0; b < HAWQ_ILP_NBITS; b++) ms[b] = NAN;
  const cJSON *v;
  cJSON_ArrayForEach(v, per_t) {
    char *end;
    long b = strtol(v->string, &end, 10);
    if (*end || end == v->string || b < HAWQ_ILP_MIN_BITS || b > HAWQ_ILP_MAX_BITS) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': ms key '%s' is not a bit width 2-8",
                       path, name, v->string);
    }
    if (!is_finite(v) || v->valuedouble < 0) {
      return hawq_fail(err, HAWQ_ERR_PARSE, "%s: layer '%s': ms at %ld bits is not a time", path,
                       name, b);
    }
    ms[b] = v->valuedouble;
  }
  return HAWQ_OK;
}

hawq_status hawq_latency_read(const char *path, int threads, const hawq_sens_file *s,
                              double (*ms)[HAWQ_ILP_NBITS], hawq_error *err) {
  cJSON *root = NULL;
  hawq_status st = parse_json(path, &root, err);
  if (st) return st;
  st = check_format(path, root, "hawq-latency", err);
  const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
  if (!st && !cJSON_IsArray(layers)) {
    st = hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'layers' must be an array (run hawq bench --layers)",
                   path);
  }
  char tkey[16];
  snprintf(tkey, sizeof tkey, "%d", threads);
  for (int i = 0; i < s->n_layers && !st; i++) {
    const char *name = s->layers[i].name;
    const cJSON *l = find_latency_layer(layers, name);
    if (!l) {
      st = hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "%s: no layer '%s' (a layer of the sensitivity file)", path, name);
      break;
    }
    st = read_layer_times(path, name, l, tkey, ms[i], err);
  }
  cJSON_Delete(root);
  return st;
}

/* ---- the cost model ---- */

void hawq_cost_fill(const hawq_sens_file *s, const double (*ms)[HAWQ_ILP_NBITS],
                    hawq_ilp_layer *layers) {
  for (int i = 0; i < s->n_layers; i++) {
    const hawq_sens_layer *sl = &s->layers[i];
    hawq_ilp_layer *l = &layers[i];
    memset(l, 0, sizeof *l);
    l->name = sl->name;
    for (int b = 0; b < HAWQ_ILP_NBITS; b++) {
      bool valid = b >= HAWQ_ILP_MIN_BITS;
      l->omega[b] = sl->omega[b];
      l->cost[HAWQ_RES_SIZE][b] = valid ? (double)((sl->params * b + 7) / 8) : NAN;
      l->cost[HAWQ_RES_BOPS][b] = valid ? (double)sl->macs * b * b : NAN;
      l->cost[HAWQ_RES_LATENCY][b] = ms ? ms[i][b] : NAN;
    }
  }
}
