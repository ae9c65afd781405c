/* hawq quantize MODEL.onnx --data D -o OUT.hqm: the whole pipeline in one command (fp32 and INT8
 * baselines, sensitivity, latency table, ILP, fine-tuning, the integer model, latency, summary
 * and report; docs/quantize.md).
 *
 * Every stage runs this same executable as child processes (posix_spawn of /proc/self/exe, no
 * shell), with its stdout captured to the stage's file (a temporary file renamed on success) and
 * its stderr to DIR/<stage>.log. DIR/stages.json records each finished stage: its commands and
 * the size and CRC-32 of its input and output files and of this executable. A rerun skips a
 * stage whose record matches;
 * a changed option reruns that stage, and the stages after it rerun because their input files
 * changed. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/file.h"
#include "data/dataset.h"

extern char **environ; /* the process environment (POSIX), handed to the children */

static const char help[] =
    "usage: hawq quantize MODEL.onnx --data D -o OUT.hqm [options]\n\n"
    "The whole pipeline: evaluates the fp32 model, quantizes it to INT8 (post-training), measures\n"
    "the per-layer Hessian sensitivities and the per-layer latency table, chooses mixed-precision\n"
    "bit widths by the ILP under the budgets, fine-tunes with quantization in the loop, and\n"
    "writes the integer model; then evaluates and times fp32, INT8 and mixed, and writes a summary "
    "(and\n"
    "with -r an HTML report). Each stage is a 'hawq' command run as a child process; its files\n"
    "and log are in the work directory, and a rerun reuses every stage whose command and input\n"
    "files are unchanged.\n\n"
    "  --data D              'fashion-mnist' or a directory of IDX files (see hawq eval)\n"
    "  -o FILE               the integer model to write (.hqm), atomically\n"
    "  --work DIR            the work directory (default: OUT.work, e.g. out.hqm.work)\n"
    "  -r FILE               also write the HTML report (hawq report)\n"
    "  --fresh               discard the work directory's records: run every stage\n"
    "budgets (hawq allocate; default --size 0.5):\n"
    "  --size R              weight bytes: a ratio (all-4 + R * (all-8 - all-4)) or e.g. 200KB\n"
    "  --bops R              bit operations per image: a ratio or e.g. 1.2G\n"
    "  --latency-budget R    summed per-layer latency: a ratio or e.g. 0.2ms\n"
    "  --bits LIST           candidate bit widths (default 4,8)\n"
    "  --no-pin-ends         let the first and last layer choose too (default: 8 bits)\n"
    "fine-tuning (hawq finetune):\n"
    "  --finetune-epochs E   epochs (default 1; fractions allowed); 0: no fine-tuning, the\n"
    "                        mixed model is quantized post-training (hawq calibrate)\n"
    "  --finetune-steps N    optimisation steps instead of epochs\n"
    "  --finetune-args \"..\"  more hawq finetune options, split at spaces (e.g. \"--lr 0.001\")\n"
    "other stages:\n"
    "  --sens-images N       hawq sensitivity --images N (default 512)\n"
    "  --sens-args \"..\"      more hawq sensitivity options (e.g. \"--max-draws 50\")\n"
    "  --calib-images N      calibration images of every quantization (default 1024)\n"
    "  --eval-limit N        evaluate on the first N test images (default all)\n"
    "  --threads T           worker threads of every stage (default: all cores); the latency\n"
    "                        table and ILP use T threads, the latency rows 1 thread\n"
    "  --json                print the summary as JSON instead of a table\n";

/* ---- the options and the run's state ---- */

enum { QZ_SIZE, QZ_BOPS, QZ_LATENCY, QZ_N_BUDGETS };
static const char *const budget_flag[QZ_N_BUDGETS] = {"--size", "--bops", "--latency-budget"};
static const char *const budget_key[QZ_N_BUDGETS] = {"size", "bops", "latency"};

typedef struct qz_opts {
  const char *model, *data, *out, *work, *report, *bits, *ft_args, *sens_args;
  const char *budget[QZ_N_BUDGETS];
  bool no_pin_ends, json, fresh;
  double ft_epochs;
  long long ft_steps, sens_images, calib_images, eval_limit, threads;
} qz_opts;

enum {
  ST_FP32,
  ST_INT8,
  ST_SENS,
  ST_LATENCY,
  ST_ILP,
  ST_MIXED,
  ST_MIXED_EVAL,
  ST_BENCH,
  QZ_N_RUN_STAGES, /* the stages that run commands; the last one writes the outputs */
  QZ_N_STAGES = QZ_N_RUN_STAGES + 1
};

#define QZ_SELF "/proc/self/exe"
#define QZ_MAX_ARGS 128
#define QZ_MAX_CMDS 3
#define QZ_MAX_FILES 8
#define QZ_LOG_TAIL 4096
#define QZ_ONE_THREAD "OMP_NUM_THREADS=1"
/* Paths of the dry runs that check options before the expensive stages: an error that names one
 * means the options parsed. */
#define QZ_DRY "/nonexistent/hawq-quantize-dry-run"

typedef struct qz_cmd {
  const char *argv[QZ_MAX_ARGS + 1]; /* argv[0] "hawq", NULL-terminated */
  int argc;
  bool overflow;
  bool one_thread; /* run with OMP_NUM_THREADS=1 (the latency rows: one thread, OpenMP too) */
  const char *out; /* stdout goes to this file (atomically), or NULL: to the log */
} qz_cmd;

typedef struct qz_stage {
  const char *name, *product; /* product: shown in the progress line */
  qz_cmd cmd[QZ_MAX_CMDS];
  int n_cmds;
  const char *in[QZ_MAX_FILES], *out[QZ_MAX_FILES];
  int n_in, n_out;
  bool uses_data;
} qz_stage;

typedef struct qz_done {
  const char *name;
  double seconds;
  bool reused;
} qz_done;

typedef struct qz {
  qz_opts o;
  const char *dir, *state_path, *data_dir;
  char threads[32];
  char **pool; /* every string made by qz_str, freed at the end */
  size_t n_pool, cap_pool;
  bool oom;
  cJSON *state; /* stages.json */
  qz_done done[QZ_N_RUN_STAGES];
  int n_done;
  bool tty;
} qz;

static char *qz_keep(qz *q, char *s) {
  if (!s) {
    q->oom = true;
    return "";
  }
  if (q->n_pool == q->cap_pool) {
    size_t cap = q->cap_pool ? 2 * q->cap_pool : 64;
    char **p = realloc(q->pool, cap * sizeof *p);
    if (!p) {
      free(s);
      q->oom = true;
      return "";
    }
    q->pool = p;
    q->cap_pool = cap;
  }
  q->pool[q->n_pool++] = s;
  return s;
}

/* A formatted string that lives until the end of the run ("" and q->oom when out of memory). */
static char *qz_str(qz *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *qz_str(qz *q, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s) {
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  return qz_keep(q, s);
}

static const char *qz_path(qz *q, const char *file) {
  return qz_str(q, "%s/%s", q->dir, file);
}

static void qz_free(qz *q) {
  for (size_t k = 0; k < q->n_pool; k++) free(q->pool[k]);
  free(q->pool);
  cJSON_Delete(q->state);
}

/* ---- commands ---- */

static qz_cmd *new_cmd(qz_stage *s, const char *out) {
  qz_cmd *c = &s->cmd[s->n_cmds++];
  c->argv[0] = "hawq";
  c->argc = 1;
  c->out = out;
  return c;
}

static void arg(qz_cmd *c, const char *a) {
  if (c->argc == QZ_MAX_ARGS) {
    c->overflow = true;
    return;
  }
  c->argv[c->argc++] = a;
  c->argv[c->argc] = NULL;
}

/* Appends each of the NULL-terminated arguments. */
static void args(qz_cmd *c, ...) {
  va_list ap;
  va_start(ap, c);
  for (const char *a; (a = va_arg(ap, const char *));) arg(c, a);
  va_end(ap);
}

/* "--name value" when value is given. */
static void opt(qz_cmd *c, const char *name, const char *value) {
  if (value) args(c, name, value, NULL);
}

static void opt_int(qz *q, qz_cmd *c, const char *name, long long value) {
  if (value >= 0) args(c, name, qz_str(q, "%lld", value), NULL);
}

/* Appends the words of a --*-args string (split at blanks; no quoting). */
static void split_args(qz *q, qz_cmd *c, const char *s) {
  if (!s) return;
  char *copy = qz_str(q, "%s", s), *save = NULL;
  for (char *w = strtok_r(copy, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) arg(c, w);
}

static void add_in(qz_stage *s, const char *path) {
  s->in[s->n_in++] = path;
}
static void add_out(qz_stage *s, const char *path) {
  s->out[s->n_out++] = path;
}

/* The budgets, widths and pins of hawq allocate, as given (default --size 0.5). */
static void budget_args(const qz *q, qz_cmd *c) {
  bool any = false;
  for (int r = 0; r < QZ_N_BUDGETS; r++) {
    opt(c, budget_flag[r], q->o.budget[r]);
    any = any || q->o.budget[r];
  }
  if (!any) opt(c, "--size", "0.5");
  opt(c, "--bits", q->o.bits);
  if (q->o.no_pin_ends) arg(c, "--no-pin-ends");
}

static bool finetunes(const qz *q) {
  return q->o.ft_steps > 0 || q->o.ft_epochs > 0;
}

/* A number as typed: 0.1 as "0.1", not "0.10000000000000001" (and exact either way). */
static const char *number(qz *q, double v) {
  const char *s = qz_str(q, "%.15g", v);
  return strtod(s, NULL) == v ? s : qz_str(q, "%.17g", v);
}

/* The finetune options that select the amount of training and the images. */
static void finetune_args(qz *q, qz_cmd *c) {
  if (q->o.ft_steps > 0)
    opt_int(q, c, "--steps", q->o.ft_steps);
  else
    opt(c, "--epochs", number(q, q->o.ft_epochs));
  opt_int(q, c, "--eval-limit", q->o.eval_limit);
  opt_int(q, c, "--calib-images", q->o.calib_images);
  split_args(q, c, q->o.ft_args);
}

/* Stage k's commands, inputs and outputs. */
static void build_stage(qz *q, int k, qz_stage *s) {
  const qz_opts *o = &q->o;
  const char *model = o->model, *data = o->data, *t = q->threads;
  const char *int8 = qz_path(q, "int8.hqm"), *mixed = qz_path(q, "mixed.hqm");
  const char *sens = qz_path(q, "sens.json"), *lat = qz_path(q, "latency.json");
  const char *bits = qz_path(q, "bits.json");
  qz_cmd *c;
  memset(s, 0, sizeof *s);
  switch (k) {
    case ST_FP32:
      s->name = "fp32-eval";
      s->product = qz_path(q, "fp32.eval.json");
      c = new_cmd(s, s->product);
      args(c, "eval", model, "--data", data, "--json", "--threads", t, NULL);
      opt_int(q, c, "--limit", o->eval_limit);
      c = new_cmd(s, qz_path(q, "fp32.info.json"));
      args(c, "info", model, "--json", NULL);
      add_in(s, model);
      s->uses_data = true;
      break;
    case ST_INT8:
      s->name = "int8-ptq";
      s->product = int8;
      c = new_cmd(s, qz_path(q, "int8.calibrate.json"));
      args(c, "calibrate", model, "--data", data, "--bits", "8", "-o", int8, "--json", "--threads",
           t, NULL);
      opt_int(q, c, "--calib-images", o->calib_images);
      c = new_cmd(s, qz_path(q, "int8.eval.json"));
      args(c, "eval", int8, "--data", data, "--json", "--threads", t, NULL);
      opt_int(q, c, "--limit", o->eval_limit);
      c = new_cmd(s, qz_path(q, "int8.info.json"));
      args(c, "info", int8, "--json", NULL);
      add_in(s, model);
      add_out(s, int8);
      s->uses_data = true;
      break;
    case ST_SENS:
      s->name = "sensitivity";
      s->product = sens;
      c = new_cmd(s, NULL);
      args(c, "sensitivity", model, "--data", data, "-o", sens, "--threads", t, NULL);
      opt_int(q, c, "--images", o->sens_images);
      split_args(q, c, o->sens_args);
      add_in(s, model);
      add_out(s, sens);
      s->uses_data = true;
      break;
    case ST_LATENCY:
      s->name = "latency-table";
      s->product = lat;
      c = new_cmd(s, NULL);
      args(c, "bench", model, "--layers", "--layer-bits", o->bits ? o->bits : "4,8", "--threads", t,
           "--runs", "10", "-o", lat, NULL);
      add_in(s, model);
      add_out(s, lat);
      break;
    case ST_ILP:
      s->name = "ilp";
      s->product = bits;
      c = new_cmd(s, NULL);
      args(c, "allocate", "--sensitivity", sens, "--latency", lat, "--threads", t, NULL);
      budget_args(q, c);
      args(c, "--sweep", "-o", bits, NULL);
      add_in(s, sens);
      add_in(s, lat);
      add_out(s, bits);
      break;
    case ST_MIXED:
      s->product = mixed;
      if (finetunes(q)) {
        s->name = "finetune";
        c = new_cmd(s, qz_path(q, "finetune.json"));
        args(c, "finetune", model, "--data", data, "--bits", bits, "-o", mixed, "--json",
             "--threads", t, NULL);
        finetune_args(q, c);
      } else {
        s->name = "mixed-ptq";
        c = new_cmd(s, qz_path(q, "mixed.calibrate.json"));
        args(c, "calibrate", model, "--data", data, "--bits", bits, "-o", mixed, "--json",
             "--threads", t, NULL);
        opt_int(q, c, "--calib-images", o->calib_images);
      }
      add_in(s, model);
      add_in(s, bits);
      add_out(s, mixed);
      s->uses_data = true;
      break;
    case ST_MIXED_EVAL:
      s->name = "mixed-eval";
      s->product = qz_path(q, "mixed.eval.json");
      c = new_cmd(s, s->product);
      args(c, "eval", mixed, "--data", data, "--json", "--threads", t, NULL);
      opt_int(q, c, "--limit", o->eval_limit);
      c = new_cmd(s, qz_path(q, "mixed.info.json"));
      args(c, "info", mixed, "--json", NULL);
      add_in(s, mixed);
      s->uses_data = true;
      break;
    case ST_BENCH:
      /* Latency per image, one thread, batch 1: the integer runtime's median (hawq bench) for
       * the integer models; for fp32 the float engine through hawq eval at batch 1. */
      s->name = "latency";
      s->product = qz_path(q, "{fp32.latency,int8.bench,mixed.bench}.json");
      c = new_cmd(s, qz_path(q, "fp32.latency.json"));
      c->one_thread = true;
      args(c, "eval", model, "--data", data, "--batch", "1", "--threads", "1", "--limit", "300",
           "--json", NULL);
      c = new_cmd(s, qz_path(q, "int8.bench.json"));
      c->one_thread = true;
      args(c, "bench", int8, "--threads", "1", "--json", NULL);
      c = new_cmd(s, qz_path(q, "mixed.bench.json"));
      c->one_thread = true;
      args(c, "bench", mixed, "--threads", "1", "--json", NULL);
      add_in(s, model);
      add_in(s, int8);
      add_in(s, mixed);
      s->uses_data = true;
      break;
    default:
      break;
  }
  /* Files a command captures are outputs too. */
  for (int i = 0; i < s->n_cmds; i++) {
    if (s->cmd[i].out) add_out(s, s->cmd[i].out);
  }
}

/* ---- fingerprints and the stage records ---- */

/* Size and CRC-32 of a file's bytes, streamed; false if it cannot be read. */
static bool file_crc(const char *path, uint32_t *crc, long long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  unsigned char buf[1 << 16];
  uLong c = crc32(0L, Z_NULL, 0);
  long long n = 0;
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
    c = crc32(c, buf, (uInt)got);
    n += (long long)got;
  }
  bool ok = !ferror(f);
  fclose(f);
  *crc = (uint32_t)c;
  *size = n;
  return ok;
}

/* {"size": N, "crc32": C}, or NULL if the file cannot be read. */
static cJSON *fingerprint(const char *path) {
  uint32_t crc;
  long long size;
  if (!file_crc(path, &crc, &size)) return NULL;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "size", (double)size);
  cJSON_AddNumberToObject(o, "crc32", (double)crc);
  return o;
}

/* The dataset directory's regular files by name, each {"size", "mtime"} (the files are large:
 * their modification times stand for their contents). */
static cJSON *data_fingerprint(const char *dir) {
  cJSON *o = cJSON_CreateObject();
  DIR *d = opendir(dir);
  if (!d) return o;
  for (struct dirent *e; (e = readdir(d));) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "size", (double)st.st_size);
    cJSON_AddNumberToObject(f, "mtime",
                            (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec);
    cJSON_AddItemToObject(o, e->d_name, f);
  }
  closedir(d);
  return o;
}

/* {"program": fingerprint, "commands": [[argv...], ...], "inputs": {path: fingerprint},
 * "data": {...}}: what must match for the stage's outputs to be reused. The program is this
 * executable, which runs every stage: a rebuilt hawq (other kernels, other lowering) reruns
 * them all. */
static cJSON *stage_key(const qz *q, const qz_stage *s) {
  cJSON *key = cJSON_CreateObject();
  cJSON *self = fingerprint(QZ_SELF);
  cJSON_AddItemToObject(key, "program", self ? self : cJSON_CreateNull());
  cJSON *cmds = cJSON_AddArrayToObject(key, "commands");
  for (int i = 0; i < s->n_cmds; i++) {
    cJSON *a = cJSON_CreateArray();
    if (s->cmd[i].one_thread) cJSON_AddItemToArray(a, cJSON_CreateString(QZ_ONE_THREAD));
    for (int j = 1; j < s->cmd[i].argc; j++) {
      cJSON_AddItemToArray(a, cJSON_CreateString(s->cmd[i].argv[j]));
    }
    cJSON_AddItemToArray(cmds, a);
  }
  cJSON *in = cJSON_AddObjectToObject(key, "inputs");
  for (int i = 0; i < s->n_in; i++) {
    cJSON *f = fingerprint(s->in[i]);
    cJSON_AddItemToObject(in, s->in[i], f ? f : cJSON_CreateNull());
  }
  if (s->uses_data) cJSON_AddItemToObject(key, "data", data_fingerprint(q->data_dir));
  return key;
}

static bool same_item(const cJSON *a, const cJSON *b, const char *name) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, name);
  const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, name);
  if (!x && !y) return true;
  return x && y && cJSON_Compare(x, y, true);
}

/* The stage's record matches the key and its outputs are the files it wrote. */
static bool reusable(const qz *q, const qz_stage *s, const cJSON *key, double *seconds) {
  const cJSON *rec = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(q->state, "stages"), s->name);
  if (!cJSON_IsObject(rec) || !same_item(rec, key, "program") || !same_item(rec, key, "commands") ||
      !same_item(rec, key, "inputs") || !same_item(rec, key, "data")) {
    return false;
  }
  const cJSON *outs = cJSON_GetObjectItemCaseSensitive(rec, "outputs");
  for (int i = 0; i < s->n_out; i++) {
    cJSON *now = fingerprint(s->out[i]);
    const cJSON *then = cJSON_GetObjectItemCaseSensitive(outs, s->out[i]);
    bool same = now && then && cJSON_Compare(now, then, true);
    cJSON_Delete(now);
    if (!same) return false;
  }
  const cJSON *sec = cJSON_GetObjectItemCaseSensitive(rec, "seconds");
  *seconds = cJSON_IsNumber(sec) ? sec->valuedouble : 0;
  return true;
}

static int save_state(qz *q) {
  char *text = cJSON_Print(q->state);
  if (!text) {
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  hawq_error err;
  int rc = hawq_write_file_atomic(q->state_path, text, strlen(text), &err) ? cli_report(&err) : 0;
  cJSON_free(text);
  return rc;
}

/* The records of an earlier run, or a new document (a missing or unreadable file means that
 * nothing is reused). */
static void load_state(qz *q) {
  void *text = NULL;
  size_t n = 0;
  hawq_error err;
  cJSON *doc = NULL;
  if (!q->o.fresh && !hawq_read_file(q->state_path, (uint64_t)64 << 20, "", &text, &n, &err)) {
    doc = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(doc, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "hawq-quantize-stages") ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "stages"))) {
      cJSON_Delete(doc);
      doc = NULL;
    }
  }
  if (!doc) {
    doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "format", "hawq-quantize-stages");
    cJSON_AddNumberToObject(doc, "version", 1);
    cJSON_AddObjectToObject(doc, "stages");
  }
  q->state = doc;
}

/* ---- child processes ---- */

/* Spawns this executable with argv, stdin from /dev/null, stdout to out_fd (-1: /dev/null) and
 * stderr to err_fd, in this process's environment (with one_thread, OMP_NUM_THREADS=1 in place
 * of any setting); returns 0 or an errno value. */
static int spawn(const char *const *argv, bool one_thread, int out_fd, int err_fd, pid_t *pid) {
  char **env = environ;
  if (one_thread) {
    size_t n = 0, k = 0;
    while (environ[n]) n++;
    env = malloc((n + 2) * sizeof *env);
    if (!env) return ENOMEM;
    for (size_t i = 0; i < n; i++) {
      if (strncmp(environ[i], "OMP_NUM_THREADS=", 16)) env[k++] = environ[i];
    }
    env[k++] = QZ_ONE_THREAD;
    env[k] = NULL;
  }
  posix_spawn_file_actions_t fa;
  int e = posix_spawn_file_actions_init(&fa);
  if (e) {
    if (env != environ) free(env);
    return e;
  }
  e = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (!e) {
    e = out_fd >= 0
            ? posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO)
            : posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  }
  if (!e) e = posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
  fflush(NULL);
  if (!e) e = posix_spawn(pid, QZ_SELF, &fa, NULL, (char *const *)argv, env);
  posix_spawn_file_actions_destroy(&fa);
  if (env != environ) free(env);
  return e;
}

static int wait_child(pid_t pid, int *status) {
  while (waitpid(pid, status, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

/* Runs argv with stderr into a buffer, for the dry runs; returns 0 or an errno value. */
static int run_captured(const char *const *argv, char *buf, size_t size, int *status) {
  int fds[2];
  if (pipe(fds)) return errno;
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  pid_t pid;
  int e = spawn(argv, false, -1, fds[1], &pid);
  close(fds[1]);
  size_t n = 0;
  if (!e) {
    char sink[512];
    for (;;) {
      ssize_t got =
          n + 1 < size ? read(fds[0], buf + n, size - 1 - n) : read(fds[0], sink, sizeof sink);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      if (n + 1 < size) n += (size_t)got;
    }
    e = wait_child(pid, status);
  }
  close(fds[0]);
  buf[n] = '\0';
  return e;
}

/* Checks options by a run that stops at the sentinel path: an error naming QZ_DRY means that
 * every option parsed; any other error is the options', reported as quantize's own. */
static int dry_run(const qz_cmd *c, const char *what) {
  char buf[4096];
  int status = 0;
  int e = run_captured(c->argv, buf, sizeof buf, &status);
  if (e) {
    fprintf(stderr, "hawq: quantize: cannot run %s: %s\n", QZ_SELF, strerror(e));
    return CLI_INTERNAL;
  }
  if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) || strstr(buf, QZ_DRY)) return CLI_OK;
  char *line = buf, *nl = strchr(buf, '\n');
  if (nl) *nl = '\0';
  /* "hawq <cmd>: message (see 'hawq <cmd> --help')" or "hawq: message" -> "message" */
  if (!strncmp(line, "hawq", 4)) {
    char *colon = strstr(line, ": ");
    if (colon) line = colon + 2;
  }
  char *see = strstr(line, " (see 'hawq ");
  if (see) *see = '\0';
  return cli_usage_error("quantize", "%s%s", what, line);
}

/* The last non-empty line of a file (at most QZ_LOG_TAIL bytes from its end). */
static void last_line(const char *path, char *out, size_t size) {
  snprintf(out, size, "(its log %s is empty)", path);
  FILE *f = fopen(path, "rb");
  if (!f) return;
  char buf[QZ_LOG_TAIL + 1];
  long start = 0;
  if (!fseek(f, 0, SEEK_END)) {
    long end = ftell(f);
    start = end > QZ_LOG_TAIL ? end - QZ_LOG_TAIL : 0;
  }
  fseek(f, start, SEEK_SET);
  size_t n = fread(buf, 1, QZ_LOG_TAIL, f);
  fclose(f);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
  buf[n] = '\0';
  if (!n) return;
  char *line = buf + n;
  while (line > buf && line[-1] != '\n' && line[-1] != '\r') line--;
  size_t len = strlen(line) < size ? strlen(line) : size - 1;
  memcpy(out, line, len);
  out[len] = '\0';
}

static void progress(const qz *q, int k, const char *name, const char *what, const char *product) {
  fprintf(stderr, "%s[%d/%d] %-14s %8s  -> %s\n", q->tty ? "\r\033[K" : "", k + 1, QZ_N_STAGES,
          name, what, product);
  fflush(stderr);
}

/* Runs stage k's commands unless its record allows reusing its outputs. */
static int run_stage(qz *q, int k) {
  qz_stage s;
  build_stage(q, k, &s);
  if (q->oom) {
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  for (int i = 0; i < s.n_cmds; i++) {
    if (s.cmd[i].overflow) {
      return cli_usage_error("quantize", "stage '%s': more than %d arguments", s.name, QZ_MAX_ARGS);
    }
  }
  cJSON *key = stage_key(q, &s);
  cJSON *stages = cJSON_GetObjectItemCaseSensitive(q->state, "stages");
  double seconds = 0;
  char what[32];
  if (!q->o.fresh && reusable(q, &s, key, &seconds)) {
    cJSON_Delete(key);
    q->done[q->n_done++] = (qz_done){s.name, seconds, true};
    progress(q, k, s.name, "reused", s.product);
    return CLI_OK;
  }
  /* Forget the old record first: an interrupted stage is never taken for a finished one. */
  cJSON_DeleteItemFromObjectCaseSensitive(stages, s.name);
  int rc = save_state(q);
  const char *log = qz_path(q, qz_str(q, "%s.log", s.name));
  int log_fd = rc ? -1 : open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (!rc && log_fd < 0) {
    fprintf(stderr, "hawq: %s: cannot write: %s\n", log, strerror(errno));
    rc = CLI_BAD_INPUT;
  }
  if (!rc && q->tty) {
    fprintf(stderr, "[%d/%d] %-14s  running (log %s)", k + 1, QZ_N_STAGES, s.name, log);
    fflush(stderr);
  }
  double t0 = cli_now();
  for (int i = 0; i < s.n_cmds && !rc; i++) {
    const qz_cmd *c = &s.cmd[i];
    const char *tmp = c->out ? qz_str(q, "%s.tmp.%ld", c->out, (long)getpid()) : NULL;
    int out_fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666) : log_fd;
    if (out_fd < 0 || q->oom) {
      fprintf(stderr, "%shawq: %s: cannot write: %s\n", q->tty ? "\n" : "", c->out,
              q->oom ? "out of memory" : strerror(errno));
      rc = q->oom ? CLI_INTERNAL : CLI_BAD_INPUT;
      break;
    }
    pid_t pid;
    int status = 0, e = spawn(c->argv, c->one_thread, out_fd, log_fd, &pid);
    if (!e) e = wait_child(pid, &status);
    bool ok = !e && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (tmp && close(out_fd) && ok) {
      e = errno;
      ok = false;
    }
    if (ok && tmp && rename(tmp, c->out)) {
      e = errno;
      ok = false;
    }
    if (ok) continue;
    if (tmp) remove(tmp);
    if (q->tty) fputc('\n', stderr);
    if (e) {
      fprintf(stderr, "hawq: quantize: stage '%s': cannot run '%s %s': %s\n", s.name, QZ_SELF,
              c->argv[1], strerror(e));
      rc = CLI_INTERNAL;
    } else {
      char line[1024];
      last_line(log, line, sizeof line);
      if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        fprintf(stderr, "hawq: quantize: stage '%s' failed (exit %d): %s\n", s.name, code, line);
        rc = code == CLI_BAD_INPUT ? CLI_BAD_INPUT : CLI_INTERNAL;
      } else {
        fprintf(stderr, "hawq: quantize: stage '%s' failed (signal %d): %s\n", s.name,
                WIFSIGNALED(status) ? WTERMSIG(status) : 0, line);
        rc = CLI_INTERNAL;
      }
    }
  }
  if (log_fd >= 0) close(log_fd);
  seconds = cli_now() - t0;
  if (!rc) {
    cJSON *outs = cJSON_AddObjectToObject(key, "outputs");
    for (int i = 0; i < s.n_out && !rc; i++) {
      cJSON *f = fingerprint(s.out[i]);
      if (!f) {
        if (q->tty) fputc('\n', stderr);
        fprintf(stderr, "hawq: quantize: stage '%s' wrote no %s (see %s)\n", s.name, s.out[i], log);
        rc = CLI_INTERNAL;
      }
      cJSON_AddItemToObject(outs, s.out[i], f);
    }
  }
  if (!rc) {
    cJSON_AddNumberToObject(key, "seconds", seconds);
    cJSON_AddItemToObject(stages, s.name, key);
    key = NULL;
    rc = save_state(q);
  }
  cJSON_Delete(key);
  if (rc) return rc;
  q->done[q->n_done++] = (qz_done){s.name, seconds, false};
  snprintf(what, sizeof what, "%.1f s", seconds);
  progress(q, k, s.name, what, s.product);
  return CLI_OK;
}

/* ---- the summary ---- */

typedef struct qz_docs {
  cJSON *fp32_eval, *fp32_info, *fp32_lat, *int8_eval, *int8_info, *int8_bench, *mixed_eval,
      *mixed_info, *mixed_bench, *finetune;
} qz_docs;

static int load_doc(qz *q, const char *file, cJSON **doc) {
  const char *path = qz_path(q, file);
  void *text = NULL;
  size_t n = 0;
  hawq_error err;
  if (hawq_read_file(path, (uint64_t)64 << 20, "", &text, &n, &err)) return cli_report(&err);
  *doc = cJSON_ParseWithLength(text, n);
  free(text);
  if (!cJSON_IsObject(*doc)) {
    fprintf(stderr, "hawq: %s: not a JSON object\n", path);
    return CLI_INTERNAL;
  }
  return CLI_OK;
}

static void docs_free(qz_docs *d) {
  cJSON *all[] = {d->fp32_eval,  d->fp32_info,  d->fp32_lat,   d->int8_eval,   d->int8_info,
                  d->int8_bench, d->mixed_eval, d->mixed_info, d->mixed_bench, d->finetune};
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) cJSON_Delete(all[k]);
}

/* A number field of a stage's output; reports a missing one (an internal error: the stage's
 * command wrote it). */
static int num(qz *q, const cJSON *doc, const char *file, const char *key, double *v) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(doc, key);
  if (!cJSON_IsNumber(x)) {
    fprintf(stderr, "hawq: %s: no number '%s'\n", qz_path(q, file), key);
    return CLI_INTERNAL;
  }
  *v = x->valuedouble;
  return CLI_OK;
}

/* The median one-thread latency of hawq bench --json. */
static int bench_ms(qz *q, const cJSON *doc, const char *file, double *ms) {
  const cJSON *e2e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "end_to_end"), 0);
  return num(q, e2e, file, "median_ms", ms);
}

/* fp32 / int8 / mixed: accuracy from the eval document, the rest as given. */
static int add_row(qz *q, cJSON *rows, const char *config, const cJSON *eval, const char *file,
                   double size, double bops, double ms, cJSON **row) {
  double top1, correct, images;
  int rc;
  if ((rc = num(q, eval, file, "top1", &top1)) ||
      (rc = num(q, eval, file, "top1_correct", &correct)) ||
      (rc = num(q, eval, file, "images", &images))) {
    return rc;
  }
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "config", config);
  cJSON_AddNumberToObject(r, "top1", top1);
  cJSON_AddNumberToObject(r, "top1_correct", correct);
  cJSON_AddNumberToObject(r, "images", images);
  cJSON_AddNumberToObject(r, "size_bytes", size);
  if (bops >= 0)
    cJSON_AddNumberToObject(r, "bops", bops);
  else
    cJSON_AddNullToObject(r, "bops");
  cJSON_AddNumberToObject(r, "latency_ms", ms);
  cJSON_AddNumberToObject(r, "latency_threads", 1);
  cJSON_AddItemToArray(rows, r);
  if (row) *row = r;
  return CLI_OK;
}

static cJSON *summary_doc(qz *q, const qz_docs *d, int *rc) {
  double params, ips, ms, size, bops, ft_epochs = 0, ft_seconds = 0;
  cJSON *doc = cJSON_CreateObject(), *mixed = NULL;
  cJSON_AddStringToObject(doc, "format", "hawq-quantize-summary");
  cJSON_AddNumberToObject(doc, "version", 1);
  cJSON_AddStringToObject(doc, "model", q->o.model);
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(d->fp32_eval, "data");
  cJSON_AddStringToObject(doc, "data", cJSON_IsString(data) ? data->valuestring : q->o.data);
  cJSON *budgets = cJSON_AddObjectToObject(doc, "budgets");
  bool any = false;
  for (int r = 0; r < QZ_N_BUDGETS; r++) {
    if (q->o.budget[r]) cJSON_AddStringToObject(budgets, budget_key[r], q->o.budget[r]);
    any = any || q->o.budget[r];
  }
  if (!any) cJSON_AddStringToObject(budgets, "size", "0.5");
  cJSON *choices = cJSON_AddArrayToObject(doc, "bit_choices");
  const char *list = q->o.bits ? q->o.bits : "4,8";
  for (const char *p = list; *p;) {
    char *end;
    long b = strtol(p, &end, 10);
    if (end == p) break;
    cJSON_AddItemToArray(choices, cJSON_CreateNumber((double)b));
    p = *end == ',' ? end + 1 : end;
  }
  cJSON *rows = cJSON_AddArrayToObject(doc, "rows");
  if ((*rc = num(q, d->fp32_info, "fp32.info.json", "params", &params)) ||
      (*rc = num(q, d->fp32_lat, "fp32.latency.json", "images_per_second", &ips)) ||
      (*rc = add_row(q, rows, "fp32", d->fp32_eval, "fp32.eval.json", 4 * params, -1, 1e3 / ips,
                     NULL)) ||
      (*rc = num(q, d->int8_info, "int8.info.json", "weight_bytes", &size)) ||
      (*rc = num(q, d->int8_info, "int8.info.json", "bops", &bops)) ||
      (*rc = bench_ms(q, d->int8_bench, "int8.bench.json", &ms)) ||
      (*rc = add_row(q, rows, "int8", d->int8_eval, "int8.eval.json", size, bops, ms, NULL)) ||
      (*rc = num(q, d->mixed_info, "mixed.info.json", "weight_bytes", &size)) ||
      (*rc = num(q, d->mixed_info, "mixed.info.json", "bops", &bops)) ||
      (*rc = bench_ms(q, d->mixed_bench, "mixed.bench.json", &ms)) ||
      (*rc = add_row(q, rows, "mixed", d->mixed_eval, "mixed.eval.json", size, bops, ms, &mixed)) ||
      (d->finetune && ((*rc = num(q, d->finetune, "finetune.json", "epochs", &ft_epochs)) ||
                       (*rc = num(q, d->finetune, "finetune.json", "seconds", &ft_seconds))))) {
    cJSON_Delete(doc);
    return NULL;
  }
  cJSON_AddNumberToObject(mixed, "finetune_epochs", ft_epochs);
  cJSON_AddNumberToObject(mixed, "finetune_seconds", ft_seconds);
  cJSON *stages = cJSON_AddArrayToObject(doc, "stages");
  for (int k = 0; k < q->n_done; k++) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "name", q->done[k].name);
    cJSON_AddNumberToObject(s, "seconds", q->done[k].seconds);
    cJSON_AddBoolToObject(s, "reused", q->done[k].reused);
    cJSON_AddItemToArray(stages, s);
  }
  return doc;
}

static double row_num(const cJSON *row, const char *key) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(row, key);
  return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

static void print_summary(const qz *q, const cJSON *doc) {
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(doc, "data");
  printf("hawq quantize: %s on %s\n", q->o.model, data->valuestring);
  printf("budget");
  const cJSON *b;
  cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(doc, "budgets")) {
    printf(" %s %s", b->string, b->valuestring);
  }
  printf(", bit widths %s, work directory %s\n\n", q->o.bits ? q->o.bits : "4,8", q->dir);
  printf("%-7s %22s %10s %8s %12s  %s\n", "config", "top-1", "weights", "BOPS", "latency",
         "fine-tuning");
  const cJSON *row;
  cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(doc, "rows")) {
    const char *config = cJSON_GetObjectItemCaseSensitive(row, "config")->valuestring;
    char acc[64], size[32], bops[32], ms[32], s1[16], s2[16];
    snprintf(acc, sizeof acc, "%.2f%% (%.0f/%.0f)", row_num(row, "top1"),
             row_num(row, "top1_correct"), row_num(row, "images"));
    snprintf(size, sizeof size, "%sB", cli_si(row_num(row, "size_bytes"), s1, sizeof s1));
    double bo = row_num(row, "bops");
    snprintf(bops, sizeof bops, "%s", bo >= 0 ? cli_si(bo, s2, sizeof s2) : "-");
    snprintf(ms, sizeof ms, "%.3f ms%s", row_num(row, "latency_ms"),
             strcmp(config, "fp32") ? "" : "*");
    printf("%-7s %22s %10s %8s %12s", config, acc, size, bops, ms);
    double fe = row_num(row, "finetune_epochs"), fs = row_num(row, "finetune_seconds");
    if (fe > 0)
      printf("  %.3g epoch(s), %.1f s", fe, fs);
    else if (fe == 0)
      printf("  none (post-training)");
    printf("\n");
  }
  printf(
      "latency per image at batch 1 on 1 thread: int8 and mixed the integer runtime's median\n"
      "(hawq bench); * fp32 the float engine's mean over 300 images (hawq eval --batch 1)\n");
}

/* Stage 9: the summary, the report and the integer model. */
static int write_outputs(qz *q) {
  double t0 = cli_now();
  qz_docs d = {0};
  int rc;
  if ((rc = load_doc(q, "fp32.eval.json", &d.fp32_eval)) ||
      (rc = load_doc(q, "fp32.info.json", &d.fp32_info)) ||
      (rc = load_doc(q, "fp32.latency.json", &d.fp32_lat)) ||
      (rc = load_doc(q, "int8.eval.json", &d.int8_eval)) ||
      (rc = load_doc(q, "int8.info.json", &d.int8_info)) ||
      (rc = load_doc(q, "int8.bench.json", &d.int8_bench)) ||
      (rc = load_doc(q, "mixed.eval.json", &d.mixed_eval)) ||
      (rc = load_doc(q, "mixed.info.json", &d.mixed_info)) ||
      (rc = load_doc(q, "mixed.bench.json", &d.mixed_bench)) ||
      (finetunes(q) && (rc = load_doc(q, "finetune.json", &d.finetune)))) {
    docs_free(&d);
    return rc;
  }
  cJSON *doc = summary_doc(q, &d, &rc);
  docs_free(&d);
  if (!doc) return rc;
  char *text = cJSON_Print(doc);
  const char *summary = qz_path(q, "summary.json");
  hawq_error err;
  if (!text || q->oom) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
  } else if (hawq_write_file_atomic(summary, text, strlen(text), &err)) {
    rc = cli_report(&err);
  }
  if (!rc && q->o.report) {
    qz_stage s = {.name = "report"};
    qz_cmd *c = new_cmd(&s, NULL);
    args(c, "report", "--summary", summary, "--sensitivity", qz_path(q, "sens.json"), "--bits",
         qz_path(q, "bits.json"), "-o", q->o.report, NULL);
    const char *log = qz_path(q, "report.log");
    int log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    pid_t pid;
    int status = 0, e = log_fd < 0 ? errno : spawn(c->argv, false, log_fd, log_fd, &pid);
    if (!e) e = wait_child(pid, &status);
    if (log_fd >= 0) close(log_fd);
    if (e) {
      fprintf(stderr, "hawq: quantize: stage 'outputs': cannot run 'hawq report': %s\n",
              strerror(e));
      rc = CLI_INTERNAL;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
      char line[1024];
      last_line(log, line, sizeof line);
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 2;
      fprintf(stderr, "hawq: quantize: stage 'outputs' failed (exit %d): %s\n", code, line);
      rc = code == CLI_BAD_INPUT ? CLI_BAD_INPUT : CLI_INTERNAL;
    }
  }
  /* The integer model last: a run that fails leaves no new OUT. */
  if (!rc) {
    void *model = NULL;
    size_t n = 0;
    if (hawq_read_file(qz_path(q, "mixed.hqm"), (uint64_t)16 << 30, "", &model, &n, &err) ||
        hawq_write_file_atomic(q->o.out, model, n, &err)) {
      rc = cli_report(&err);
    }
    free(model);
  }
  if (!rc) {
    char what[32];
    snprintf(what, sizeof what, "%.1f s", cli_now() - t0);
    progress(q, QZ_N_RUN_STAGES, "outputs", what,
             q->o.report ? qz_str(q, "%s, %s, %s", q->o.out, summary, q->o.report) : q->o.out);
    if (q->o.json) {
      puts(text);
    } else {
      print_summary(q, doc);
      printf("wrote %s\n", q->o.out);
    }
  }
  cJSON_free(text);
  cJSON_Delete(doc);
  return rc;
}

/* ---- checks before anything is written ---- */

/* The directory a file is to be written in must exist and be writable. */
static int check_writable(const char *flag, const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) slash[slash == dir ? 1 : 0] = '\0';
  const char *d = slash ? dir : ".";
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    return cli_usage_error("quantize", "%s %s: is a directory", flag, path);
  }
  if (access(d, W_OK) != 0) {
    fprintf(stderr, "hawq: %s: cannot write to directory '%s'\n", path, d);
    return CLI_BAD_INPUT;
  }
  return CLI_OK;
}

/* Words of --finetune-args and --sens-args that would take over what quantize sets. */
static int check_passed(const char *flag, const char *s, const char *const *reserved) {
  if (!s) return CLI_OK;
  char copy[4096], *save = NULL;
  snprintf(copy, sizeof copy, "%s", s);
  for (char *w = strtok_r(copy, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
    for (const char *const *r = reserved; *r; r++) {
      size_t n = strlen(*r);
      if (!strncmp(w, *r, n) && (w[n] == '\0' || w[n] == '=')) {
        return cli_usage_error("quantize", "%s: '%s' is set by hawq quantize itself", flag, *r);
      }
    }
  }
  return CLI_OK;
}

/* The budgets, widths and passed-through options, by the commands that will read them: runs
 * that stop at a missing input file (QZ_DRY) once their options have parsed. */
static int check_options(qz *q) {
  static const char *const ft_reserved[] = {"-o",        "--data",   "--bits",  "--json",
                                            "--threads", "--epochs", "--steps", NULL};
  static const char *const sens_reserved[] = {"-o", "--data", "--json", "--threads", NULL};
  int rc;
  if (q->o.ft_args && !finetunes(q)) {
    return cli_usage_error("quantize", "--finetune-args: --finetune-epochs 0 does no fine-tuning");
  }
  if ((rc = check_passed("--finetune-args", q->o.ft_args, ft_reserved)) ||
      (rc = check_passed("--sens-args", q->o.sens_args, sens_reserved))) {
    return rc;
  }
  qz_stage s = {0};
  qz_cmd *c = new_cmd(&s, NULL);
  args(c, "allocate", "--sensitivity", QZ_DRY ".json", "--latency", QZ_DRY ".lat.json", "--threads",
       q->threads, NULL);
  budget_args(q, c);
  args(c, "--sweep", "-o", QZ_DRY ".bits.json", NULL);
  if (q->oom) return CLI_INTERNAL;
  if ((rc = dry_run(c, ""))) return rc;
  if (q->o.sens_args) {
    c = new_cmd(&s, NULL);
    args(c, "sensitivity", QZ_DRY ".onnx", "--data", q->o.data, "-o", QZ_DRY ".json", NULL);
    split_args(q, c, q->o.sens_args);
    if (q->oom || c->overflow) return CLI_INTERNAL;
    if ((rc = dry_run(c, "--sens-args: "))) return rc;
  }
  if (finetunes(q) && q->o.ft_args) {
    c = new_cmd(&s, NULL);
    args(c, "finetune", QZ_DRY ".onnx", "--data", q->o.data, "--bits", "8", "-o", QZ_DRY ".hqm",
         NULL);
    finetune_args(q, c);
    if (q->oom || c->overflow) return CLI_INTERNAL;
    if ((rc = dry_run(c, "--finetune-args: "))) return rc;
  }
  return CLI_OK;
}

static int check_inputs(qz *q) {
  const qz_opts *o = &q->o;
  struct stat st;
  if (stat(o->model, &st) != 0) {
    fprintf(stderr, "hawq: %s: %s\n", o->model, strerror(errno));
    return CLI_BAD_INPUT;
  }
  if (!S_ISREG(st.st_mode) || access(o->model, R_OK) != 0) {
    fprintf(stderr, "hawq: %s: not a readable file\n", o->model);
    return CLI_BAD_INPUT;
  }
  if (cli_is_qmodel(o->model)) {
    fprintf(stderr, "hawq: %s: an integer model (.hqm); hawq quantize starts from the fp32 ONNX\n",
            o->model);
    return CLI_BAD_INPUT;
  }
  bool fmnist = !strcmp(o->data, "fashion-mnist");
  q->data_dir = fmnist ? HAWQ_FASHION_MNIST_DIR : o->data;
  if (stat(q->data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    if (fmnist) {
      fprintf(stderr, "hawq: %s: no such directory (apt-get install dataset-fashion-mnist)\n",
              q->data_dir);
    } else {
      fprintf(stderr,
              "hawq: %s: no such directory, expected 'fashion-mnist' or a directory of IDX "
              "files\n",
              q->data_dir);
    }
    return CLI_BAD_INPUT;
  }
  int rc;
  if ((rc = check_writable("-o", o->out)) ||
      (o->report && (rc = check_writable("-r", o->report)))) {
    return rc;
  }
  if (access(QZ_SELF, X_OK) != 0) {
    fprintf(stderr, "hawq: quantize: cannot run %s: %s\n", QZ_SELF, strerror(errno));
    return CLI_INTERNAL;
  }
  return CLI_OK;
}

/* Creates the work directory (one level) and takes its lock: one run at a time. */
static int open_work_dir(qz *q, int *lock_fd) {
  if (mkdir(q->dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "hawq: %s: cannot create the work directory: %s\n", q->dir, strerror(errno));
    return CLI_BAD_INPUT;
  }
  struct stat st;
  if (stat(q->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "hawq: %s: not a directory (--work)\n", q->dir);
    return CLI_BAD_INPUT;
  }
  const char *lock = qz_path(q, "stages.lock");
  *lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (*lock_fd < 0) {
    fprintf(stderr, "hawq: %s: cannot write: %s\n", lock, strerror(errno));
    return CLI_BAD_INPUT;
  }
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(*lock_fd, F_SETLK, &fl) != 0) {
    fprintf(stderr, "hawq: %s: another hawq quantize is using this work directory\n", q->dir);
    return CLI_BAD_INPUT;
  }
  return CLI_OK;
}

int cmd_quantize(int argc, char **argv) {
  qz q = {.o = {.ft_epochs = 1,
                .ft_steps = -1,
                .sens_images = -1,
                .calib_images = -1,
                .eval_limit = -1,
                .threads = cli_default_threads()}};
  qz_opts *o = &q.o;
  const cli_opt opts[] = {
      {"--data", CLI_STRING, &o->data, 0, 0},
      {"-o", CLI_STRING, &o->out, 0, 0},
      {"--work", CLI_STRING, &o->work, 0, 0},
      {"-r", CLI_STRING, &o->report, 0, 0},
      {"--fresh", CLI_FLAG, &o->fresh, 0, 0},
      {"--size", CLI_STRING, &o->budget[QZ_SIZE], 0, 0},
      {"--bops", CLI_STRING, &o->budget[QZ_BOPS], 0, 0},
      {"--latency-budget", CLI_STRING, &o->budget[QZ_LATENCY], 0, 0},
      {"--bits", CLI_STRING, &o->bits, 0, 0},
      {"--no-pin-ends", CLI_FLAG, &o->no_pin_ends, 0, 0},
      {"--finetune-epochs", CLI_DOUBLE, &o->ft_epochs, 0, 1e6},
      {"--finetune-steps", CLI_INT, &o->ft_steps, 1, 1e12},
      {"--finetune-args", CLI_STRING, &o->ft_args, 0, 0},
      {"--sens-images", CLI_INT, &o->sens_images, 1, 1e9},
      {"--sens-args", CLI_STRING, &o->sens_args, 0, 0},
      {"--calib-images", CLI_INT, &o->calib_images, 1, 1e9},
      {"--eval-limit", CLI_INT, &o->eval_limit, 1, (double)((long long)1 << 40)},
      {"--threads", CLI_INT, &o->threads, 1, 1024},
      {"--json", CLI_FLAG, &o->json, 0, 0},
  };
  int rc =
      cli_parse_model("quantize", help, argc, argv, opts, sizeof opts / sizeof opts[0], &o->model);
  if (rc) return rc < 0 ? CLI_OK : rc;
  if (!o->data) return cli_usage_error("quantize", "--data is required");
  if (!o->out) return cli_usage_error("quantize", "-o OUT.hqm is required");
  if (!*o->out) return cli_usage_error("quantize", "-o: empty path");
  snprintf(q.threads, sizeof q.threads, "%lld", o->threads);
  q.tty = isatty(STDERR_FILENO);
  int lock_fd = -1;
  if (o->work) {
    size_t n = strlen(o->work);
    while (n > 1 && o->work[n - 1] == '/') n--;
    q.dir = qz_str(&q, "%.*s", (int)n, o->work);
  } else {
    q.dir = qz_str(&q, "%s.work", o->out);
  }
  q.state_path = qz_path(&q, "stages.json");
  if (q.oom) {
    rc = CLI_INTERNAL;
    fprintf(stderr, "hawq: out of memory\n");
  }
  if (!rc) rc = check_inputs(&q);
  if (!rc) rc = check_options(&q);
  if (!rc) rc = open_work_dir(&q, &lock_fd);
  if (!rc) {
    load_state(&q);
    if (o->fresh) rc = save_state(&q);
  }
  for (int k = 0; k < QZ_N_RUN_STAGES && !rc; k++) rc = run_stage(&q, k);
  if (!rc) rc = write_outputs(&q);
  if (lock_fd >= 0) close(lock_fd);
  qz_free(&q);
  return rc;
}
