/* Shared CLI helpers. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/file.h"
#include "core/graph.h"
#include "core/status.h"
#include "data/dataset.h"

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "hawq %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see 'hawq %s --help')\n", cmd);
  va_end(ap);
  return CLI_BAD_INPUT;
}

int cli_report(const hawq_error *err) {
  fprintf(stderr, "hawq: %s\n", err->msg[0] ? err->msg : hawq_status_string(err->status));
  return hawq_status_exit_code(err->status);
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, int n_opts,
              const char **pos, int max_pos, int *n_pos) {
  *n_pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return -1;
    if (arg[0] != '-' || arg[1] == '\0') {
      if (*n_pos == max_pos) return cli_usage_error(cmd, "unexpected argument '%s'", arg);
      pos[(*n_pos)++] = arg;
      continue;
    }
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const cli_opt *o = NULL;
    for (int k = 0; k < n_opts; k++) {
      if (strlen(opts[k].name) == len && !strncmp(opts[k].name, arg, len)) o = &opts[k];
    }
    if (!o) return cli_usage_error(cmd, "unknown option '%.*s'", (int)len, arg);
    if (o->kind == CLI_FLAG) {
      if (eq) return cli_usage_error(cmd, "option '%s' takes no value", o->name);
      *(bool *)o->target = true;
      continue;
    }
    const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!val) return cli_usage_error(cmd, "option '%s' needs a value", o->name);
    if (o->kind == CLI_STRING) {
      *(const char **)o->target = val;
      continue;
    }
    char *end = NULL;
    errno = 0;
    if (o->kind == CLI_DOUBLE) {
      double d = strtod(val, &end);
      if (end == val || *end || errno || !(d == d) || d - d != 0) {
        return cli_usage_error(cmd, "option '%s' expects a finite number, got '%s'", o->name, val);
      }
      if (d < o->min || d > o->max) {
        return cli_usage_error(cmd, "option '%s' is %g, expected %g to %g", o->name, d, o->min,
                               o->max);
      }
      *(double *)o->target = d;
      continue;
    }
    long long v = strtoll(val, &end, 10);
    if (end == val || *end || errno) {
      return cli_usage_error(cmd, "option '%s' expects an integer, got '%s'", o->name, val);
    }
    if ((double)v < o->min || (double)v > o->max) {
      return cli_usage_error(cmd, "option '%s' is %lld, expected %lld to %lld", o->name, v,
                             (long long)o->min, (long long)o->max);
    }
    *(long long *)o->target = v;
  }
  return 0;
}

int cli_parse_model(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts,
                    int n_opts, const char **model) {
  int n_pos, rc = cli_parse(cmd, argc, argv, opts, n_opts, model, 1, &n_pos);
  if (rc < 0) {
    fputs(help, stdout);
    return -1;
  }
  if (rc) return rc;
  if (n_pos != 1) return cli_usage_error(cmd, "expected one MODEL argument");
  return 0;
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_default_threads(void) {
#ifdef _OPENMP
  int n = omp_get_num_procs();
  return n > 0 ? n : 1;
#else
  return 1;
#endif
}

const char *cli_si(double v, char *buf, size_t size) {
  const char *units[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    u++;
  }
  if (u == 0)
    snprintf(buf, size, "%.0f", v);
  else
    snprintf(buf, size, "%.*f%s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
  return buf;
}

void cli_progress_start(cli_progress *p, const char *label, int64_t total) {
  p->label = label;
  p->total = total > 0 ? total : 1;
  p->tty = isatty(STDERR_FILENO);
  p->start = cli_now();
  p->last_draw = 0;
  p->last_decile = 0;
}

void cli_progress_update(cli_progress *p, int64_t done, const char *extra) {
  double now = cli_now(), elapsed = now - p->start;
  double frac = (double)done / (double)p->total;
  if (p->tty) {
    if (now - p->last_draw < 0.1 && done < p->total) return;
    p->last_draw = now;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int k = 0; k < 30; k++) bar[k] = k < fill ? '#' : '.';
    bar[30] = '\0';
    double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    fprintf(stderr, "\r%s [%s] %3.0f%% %lld/%lld %s ETA %.0fs \033[K", p->label, bar, 100 * frac,
            (long long)done, (long long)p->total, extra ? extra : "", eta);
  } else {
    int decile = (int)(frac * 10);
    if (decile <= p->last_decile) return; /* a line per 10 %, the last at 100 % */
    p->last_decile = decile;
    fprintf(stderr, "%s: %lld/%lld (%.0f%%) %s %.1fs\n", p->label, (long long)done,
            (long long)p->total, 100 * frac, extra ? extra : "", elapsed);
  }
  fflush(stderr);
}

void cli_progress_finish(cli_progress *p) {
  if (p->tty) fprintf(stderr, "\r\033[K");
  fflush(stderr);
}

void cli_print_eval(const cli_eval_result *r, bool json) {
  double top1 = 100.0 * (double)r->top1 / (double)r->images;
  double top5 = 100.0 * (double)r->top5 / (double)r->images;
  double ips = (double)r->images / r->seconds;
  if (!json) {
    printf("top-1 %.2f%% (%lld/%lld)", top1, (long long)r->top1, (long long)r->images);
    if (r->classes >= 5) printf("  top-5 %.2f%%", top5);
    printf("  %.0f img/s%s%s%s\n", ips, r->engine ? " (" : "", r->engine ? r->engine : "",
           r->engine ? ")" : "");
    return;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model", r->model);
  if (r->engine) cJSON_AddStringToObject(o, "engine", r->engine);
  cJSON_AddStringToObject(o, "data", r->data);
  cJSON_AddNumberToObject(o, "images", (double)r->images);
  cJSON_AddNumberToObject(o, "top1", top1);
  cJSON_AddNumberToObject(o, "top1_correct", (double)r->top1);
  if (r->classes >= 5) cJSON_AddNumberToObject(o, "top5", top5);
  cJSON_AddNumberToObject(o, "images_per_second", ips);
  cJSON_AddNumberToObject(o, "seconds", r->seconds);
  cJSON_AddNumberToObject(o, "batch", (double)r->batch);
  cJSON_AddNumberToObject(o, "threads", (double)r->threads);
  char *s = cJSON_Print(o);
  if (s) puts(s);
  cJSON_free(s);
  cJSON_Delete(o);
}

int cli_parse_isa(const char *cmd, const char *name, hawq_isa *out) {
  hawq_isa best = hawq_isa_best();
  if (!name) {
    *out = best;
    return CLI_OK;
  }
  hawq_isa isa = hawq_isa_parse(name);
  if (isa == HAWQ_ISA_COUNT) {
    return cli_usage_error(cmd, "--isa must be scalar, avx2 or avx512vnni, got '%s'", name);
  }
  if (isa > best) {
    return cli_usage_error(cmd, "--isa %s: this CPU lacks it (the best level here is %s)", name,
                           hawq_isa_name(best));
  }
  *out = isa;
  return CLI_OK;
}

hawq_status cli_file_crc(const char *path, uint32_t *crc, uint64_t *size, hawq_error *err) {
  void *data = NULL;
  size_t n = 0;
  hawq_status st = hawq_read_file(path, (uint64_t)4 << 30, "", &data, &n, err);
  if (st) return st;
  uLong c = crc32(0L, Z_NULL, 0);
  for (size_t off = 0; off < n;) {
    uInt chunk = n - off > (1u << 30) ? (1u << 30) : (uInt)(n - off);
    c = crc32(c, (const Bytef *)data + off, chunk);
    off += chunk;
  }
  free(data);
  *crc = (uint32_t)c;
  *size = n;
  return HAWQ_OK;
}

int cli_check_image_input(const char *model, const hawq_graph *g, const hawq_dataset *ds) {
  const hawq_tensor *in = g->n_inputs == 1 ? &g->tensors[g->inputs[0]] : NULL;
  if (!in || in->rank != 4 || in->dims[1] != ds->channels || in->dims[2] != ds->height ||
      in->dims[3] != ds->width) {
    fprintf(stderr, "hawq: %s: needs one image input of %dx%dx%d (CxHxW) to match the %s\n", model,
            ds->channels, ds->height, ds->width, ds->source);
    return CLI_BAD_INPUT;
  }
  return CLI_OK;
}
