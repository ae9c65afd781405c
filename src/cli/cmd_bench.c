/* hawq bench MODEL.hqm|MODEL.onnx: latency of the integer runtime, end to end and per layer.
 *
 * A float model is first quantized on synthetic calibration images (uniform random pixels: for
 * timing only, since latency does not depend on the values), so that models without a dataset
 * here (ImageNet-sized ResNet18/50, InceptionV3) can be timed. Every timing is the median of
 * --runs runs after --warmup runs; GOP/s counts 2 operations per multiply-accumulate of the
 * CONV layers (padded taps included, as the anchors count them). With --layers every CONV layer
 * is timed alone at every bit width of --layer-bits (weights and activations at that width, no
 * layer pinned), once per thread count: the latency table `hawq allocate` reads. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/file.h"
#include "core/graph.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "qrt/plan.h"
#include "quant/calib.h"
#include "quant/lower.h"
#include "quant/qmodel.h"

static const char help[] =
    "usage: hawq bench MODEL.hqm|MODEL.onnx [options]\n\n"
    "Times the integer runtime on one batch: median latency and GOP/s end to end, at each\n"
    "thread count, and with --layers the latency of every conv/FC layer at every bit width.\n"
    "A float ONNX model is quantized first, calibrated on synthetic random images.\n\n"
    "  --bits B          float models: 8 (default), 4, wXaY or a JSON config (hawq calibrate)\n"
    "  --calib-images N  float models: synthetic calibration images (default 8)\n"
    "  --save FILE.hqm   float models: also save the quantized model\n"
    "  --threads T[,T..] thread counts to time (default 1 and all cores)\n"
    "  --isa L           kernel level scalar|avx2|avx512vnni (default: the best this CPU has)\n"
    "  --batch B         images per run (default 1)\n"
    "  --int4-packed     keep 4-bit activations two per byte (by default the VNNI level\n"
    "                    stores those a convolution reads one per byte: faster)\n"
    "  --no-fusion       run each requantization of the residual stream as its own pass\n"
    "                    (by default the VNNI conv kernel that writes the stream does it)\n"
    "  --runs R          timed runs per figure (default 30); --warmup W untimed first (5)\n"
    "  --profile         also time every integer op as it runs, totalled by op type\n"
    "  --layers          also time each conv/FC layer alone at each of --layer-bits\n"
    "  --layer-bits L    bit widths of the layer table (default 4,8), weights = activations\n"
    "  -o FILE.json      write everything measured as JSON (the latency table)\n"
    "  --seed S          synthetic pixels' seed (default 1)\n"
    "  --json            print the JSON on stdout instead of tables\n";

#define MAX_LIST 16

typedef struct bench_opts {
  int threads[MAX_LIST], n_threads;
  int layer_bits[MAX_LIST], n_layer_bits;
  hawq_isa isa;
  int batch, runs, warmup;
  int plan_flags; /* HAWQ_QRT_PLAN_PACKED_INT4 or 0 */
} bench_opts;

/* "1,2" -> {1, 2}; each in [lo, hi]. */
static int parse_list(const char *what, const char *s, int lo, int hi, int *out, int *n) {
  *n = 0;
  for (const char *p = s; *p;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < lo || v > hi || (*end && *end != ',') || *n == MAX_LIST) {
      return cli_usage_error("bench", "%s must be a list of integers in [%d, %d], got '%s'", what,
                             lo, hi, s);
    }
    out[(*n)++] = (int)v;
    p = *end ? end + 1 : end;
  }
  return *n ? CLI_OK : cli_usage_error("bench", "%s is empty", what);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n & 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Uniform random pixels for `count` images of the graph's input shape. */
static hawq_dataset *synthetic_images(int64_t count, int h, int w, int c, uint64_t seed) {
  hawq_dataset *ds = calloc(1, sizeof *ds);
  size_t bytes = (size_t)(count * h * w * c);
  if (!ds || !(ds->images = malloc(bytes)) || !(ds->labels = calloc((size_t)count, 1))) {
    hawq_dataset_destroy(ds);
    return NULL;
  }
  ds->count = count;
  ds->height = h, ds->width = w, ds->channels = c;
  ds->num_classes = 1;
  snprintf(ds->source, sizeof ds->source, "synthetic uniform random pixels (seed %llu)",
           (unsigned long long)seed);
  hawq_rng rng = hawq_rng_seed(seed);
  for (size_t i = 0; i < bytes; i++) ds->images[i] = (uint8_t)(hawq_rng_next(&rng) >> 56);
  return ds;
}

/* Quantizes a float model: synthetic calibration, then lowering with bit configuration cfg. */
static int quantize(const char *path, const hawq_bit_config *cfg, int64_t calib_images,
                    uint64_t seed, hawq_qmodel **out) {
  hawq_error err;
  hawq_graph *g = NULL;
  hawq_dataset *ds = NULL;
  hawq_calib_range *ranges = NULL;
  int rc = CLI_OK;
  if (hawq_graph_load_onnx(path, NULL, &g, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  const hawq_tensor *in = g->n_inputs == 1 ? &g->tensors[g->inputs[0]] : NULL;
  if (!in || in->rank != 4 || in->dims[1] < 1 || in->dims[2] < 1 || in->dims[3] < 1) {
    fprintf(stderr, "hawq: %s: needs one image input of shape N x C x H x W\n", path);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  ds = synthetic_images(calib_images, (int)in->dims[2], (int)in->dims[3], (int)in->dims[1], seed);
  ranges = calloc((size_t)g->n_tensors, sizeof *ranges);
  if (!ds || !ranges) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }
  hawq_calib_options co = hawq_calib_defaults();
  co.images = calib_images;
  co.batch = hawq_calib_batch_limit(g, (int)calib_images, (size_t)2 << 30);
  co.threads = cli_default_threads();
  if (hawq_calibrate(g, ds, &g->preprocess, &co, ranges, NULL, NULL, &err) ||
      hawq_lower(g, ranges, cfg, &g->preprocess, out, NULL, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  (*out)->calibration_json = hawq_calib_json(&co, ds->source);
  (*out)->source_name = strdup(path);
done:
  free(ranges);
  hawq_dataset_destroy(ds);
  hawq_graph_destroy(g);
  return rc;
}

/* A runnable plan with its workspace and input pixels. */
typedef struct bench_run {
  hawq_qrt_plan *plan;
  void *ws;
  uint8_t *pixels;
} bench_run;

static void bench_run_free(bench_run *r) {
  hawq_qrt_plan_destroy(r->plan);
  free(r->ws);
  free(r->pixels);
  memset(r, 0, sizeof *r);
}

static int bench_run_make(const hawq_qmodel *m, const bench_opts *o, int threads, int flags,
                          bench_run *r) {
  memset(r, 0, sizeof *r);
  const hawq_qtensor *in = &m->tensors[m->input];
  size_t pixels = (size_t)(o->batch * in->h * in->w * in->c);
  r->plan = hawq_qrt_plan_create(m, o->isa, threads, o->batch, flags | o->plan_flags);
  r->pixels = malloc(pixels);
  if (r->plan) {
    size_t ws = (hawq_qrt_plan_workspace_size(r->plan) + 63) & ~(size_t)63;
    r->ws = aligned_alloc(64, ws ? ws : 64);
    if (r->ws) memset(r->ws, 0, ws); /* touch it: page faults are not the kernels' time */
  }
  if (!r->plan || !r->ws || !r->pixels) {
    bench_run_free(r);
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  hawq_rng rng = hawq_rng_seed(7);
  for (size_t i = 0; i < pixels; i++) r->pixels[i] = (uint8_t)(hawq_rng_next(&rng) >> 56);
  return CLI_OK;
}

/* Median milliseconds of whole runs; times (o->runs entries) keeps them, sorted. */
static double time_ms(const bench_run *r, const bench_opts *o, double *times) {
  for (int i = 0; i < o->warmup + o->runs; i++) {
    double t0 = cli_now();
    hawq_qrt_plan_run(r->plan, r->pixels, o->batch, r->ws, NULL);
    if (i >= o->warmup) times[i - o->warmup] = (cli_now() - t0) * 1e3;
  }
  return median(times, o->runs);
}

/* Index of the l-th CONV node of m, or -1. */
static int conv_node(const hawq_qmodel *m, int l) {
  for (int i = 0; i < m->n_nodes; i++) {
    if (m->nodes[i].op == HAWQ_QOP_CONV && l-- == 0) return i;
  }
  return -1;
}

static cJSON *layer_json(const hawq_qmodel *m, int i) {
  const hawq_qnode *n = &m->nodes[i];
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  cJSON *l = cJSON_CreateObject();
  cJSON_AddStringToObject(l, "name", n->name);
  cJSON_AddNumberToObject(l, "macs", (double)hawq_qmodel_cost(m, i).macs);
  cJSON_AddItemToObject(l, "kernel", cJSON_CreateIntArray(n->kernel, 2));
  cJSON_AddItemToObject(l, "stride", cJSON_CreateIntArray(n->stride, 2));
  cJSON_AddNumberToObject(l, "groups", n->groups);
  cJSON *io = cJSON_AddObjectToObject(l, "shape");
  cJSON_AddNumberToObject(io, "in_channels", (double)x->c);
  cJSON_AddNumberToObject(io, "out_channels", (double)y->c);
  cJSON_AddNumberToObject(io, "out_h", (double)y->h);
  cJSON_AddNumberToObject(io, "out_w", (double)y->w);
  cJSON_AddObjectToObject(l, "ms");
  return l;
}

/* The per-layer table: every CONV layer alone, at each thread count, in the models mb (one per
 * bit width of o->layer_bits, every layer at that width). The widths are timed interleaved, run
 * by run, so that a change in the machine's speed hits them alike and their ratio holds. Fills
 * layers (a JSON array of {name, macs, kernel, stride, groups, shape, ms: {threads: {bits: ms}}})
 * and totals ({threads: {bits: sum of the layers' ms}}). */
static int time_layers(hawq_qmodel *const *mb, const bench_opts *o, cJSON *layers, cJSON *totals) {
  int nb = o->n_layer_bits, n_layers = 0, rc = CLI_OK;
  while (conv_node(mb[0], n_layers) >= 0) n_layers++;
  for (int bi = 1; bi < nb; bi++) {
    for (int l = 0; l < n_layers; l++) {
      int a = conv_node(mb[0], l), b = conv_node(mb[bi], l);
      if (b < 0 || strcmp(mb[0]->nodes[a].name, mb[bi]->nodes[b].name)) {
        fprintf(stderr, "hawq: bench: the %d-bit model's layers differ from the %d-bit model's\n",
                o->layer_bits[bi], o->layer_bits[0]);
        return CLI_INTERNAL;
      }
    }
  }
  for (int l = 0; l < n_layers; l++)
    cJSON_AddItemToArray(layers, layer_json(mb[0], conv_node(mb[0], l)));
  bench_run r[MAX_LIST];
  double *times = malloc(sizeof(double) * (size_t)(nb * o->runs));
  if (!times) {
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  for (int ti = 0; ti < o->n_threads && !rc; ti++) {
    int made = 0;
    for (; made < nb; made++) {
      if ((rc = bench_run_make(mb[made], o, o->threads[ti], HAWQ_QRT_PLAN_KEEP_ALL, &r[made])))
        break;
      hawq_qrt_plan_run(r[made].plan, r[made].pixels, o->batch, r[made].ws, NULL); /* fill all */
    }
    char tkey[16];
    snprintf(tkey, sizeof tkey, "%d", o->threads[ti]);
    cJSON *tt = cJSON_AddObjectToObject(totals, tkey);
    double sum[MAX_LIST] = {0};
    for (int l = 0; l < n_layers && !rc; l++) {
      for (int it = 0; it < o->warmup + o->runs; it++) {
        for (int bi = 0; bi < nb; bi++) {
          double t0 = cli_now();
          hawq_qrt_plan_run_node(r[bi].plan, conv_node(mb[bi], l), r[bi].pixels, o->batch,
                                 r[bi].ws);
          double ms = (cli_now() - t0) * 1e3;
          if (it >= o->warmup) times[bi * o->runs + it - o->warmup] = ms;
        }
      }
      cJSON *per_t =
          cJSON_AddObjectToObject(cJSON_GetObjectItem(cJSON_GetArrayItem(layers, l), "ms"), tkey);
      for (int bi = 0; bi < nb; bi++) {
        char key[16];
        snprintf(key, sizeof key, "%d", o->layer_bits[bi]);
        double t = median(times + bi * o->runs, o->runs);
        sum[bi] += t;
        cJSON_AddNumberToObject(per_t, key, t);
      }
    }
    for (int bi = 0; bi < nb; bi++) {
      char key[16];
      snprintf(key, sizeof key, "%d", o->layer_bits[bi]);
      cJSON_AddNumberToObject(tt, key, sum[bi]);
    }
    while (made > 0) bench_run_free(&r[--made]);
  }
  free(times);
  return rc;
}

static void print_layers(const cJSON *layers, const bench_opts *o) {
  printf("\nper-layer median ms (batch %d, %s)\n%-40s %9s", o->batch, hawq_isa_name(o->isa),
         "layer", "MMACs");
  for (int ti = 0; ti < o->n_threads; ti++) {
    for (int bi = 0; bi < o->n_layer_bits; bi++) {
      char h[32];
      snprintf(h, sizeof h, "t%d/%db", o->threads[ti], o->layer_bits[bi]);
      printf(" %9s", h);
    }
  }
  printf("\n");
  const cJSON *l;
  cJSON_ArrayForEach(l, layers) {
    const char *name = cJSON_GetObjectItem(l, "name")->valuestring;
    size_t len = strlen(name);
    printf("%-40s %9.2f", len > 40 ? name + len - 40 : name,
           cJSON_GetObjectItem(l, "macs")->valuedouble / 1e6);
    const cJSON *ms = cJSON_GetObjectItem(l, "ms");
    for (int ti = 0; ti < o->n_threads; ti++) {
      char tkey[16];
      snprintf(tkey, sizeof tkey, "%d", o->threads[ti]);
      for (int bi = 0; bi < o->n_layer_bits; bi++) {
        char key[16];
        snprintf(key, sizeof key, "%d", o->layer_bits[bi]);
        const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(ms, tkey), key);
        printf(" %9.3f", v ? v->valuedouble : 0.0);
      }
    }
    printf("\n");
  }
}

/* Where a run's time goes: full runs with every op timed as it runs in sequence (a run's own
 * cache state, unlike --layers), medians per op over the runs, totalled by op type, and the
 * slowest ops listed. */
static int profile_ops(const hawq_qmodel *m, const bench_opts *o, cJSON *root, bool json) {
  cJSON *prof = cJSON_AddArrayToObject(root, "profile");
  int nn = m->n_nodes;
  double *t = malloc(sizeof(double) * (size_t)(nn * o->runs)),
         *med = malloc(sizeof(double) * (size_t)nn);
  if (!t || !med) {
    free(t);
    free(med);
    fprintf(stderr, "hawq: out of memory\n");
    return CLI_INTERNAL;
  }
  for (int ti = 0; ti < o->n_threads; ti++) {
    bench_run r;
    int rc = bench_run_make(m, o, o->threads[ti], 0, &r);
    if (rc) {
      free(t);
      free(med);
      return rc;
    }
    for (int it = 0; it < o->warmup + o->runs; it++) {
      for (int i = 0; i < nn; i++) {
        double t0 = cli_now();
        hawq_qrt_plan_run_node(r.plan, i, r.pixels, o->batch, r.ws);
        if (it >= o->warmup) t[i * o->runs + it - o->warmup] = (cli_now() - t0) * 1e3;
      }
    }
    double by_op[HAWQ_QOP_COUNT] = {0}, total = 0;
    int count[HAWQ_QOP_COUNT] = {0};
    for (int i = 0; i < nn; i++) {
      med[i] = median(t + i * o->runs, o->runs);
      by_op[m->nodes[i].op] += med[i];
      count[m->nodes[i].op]++;
      total += med[i];
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "threads", o->threads[ti]);
    cJSON_AddNumberToObject(e, "sum_ms", total);
    cJSON *ops = cJSON_AddArrayToObject(e, "ops");
    for (int i = 0; i < nn; i++) {
      cJSON *op = cJSON_CreateObject();
      cJSON_AddStringToObject(op, "name", m->nodes[i].name);
      cJSON_AddStringToObject(op, "op", hawq_qop_name(m->nodes[i].op));
      cJSON_AddNumberToObject(op, "ms", med[i]);
      cJSON_AddItemToArray(ops, op);
    }
    if (!json)
      printf("\nops in sequence, %d thread(s): medians sum to %.3f ms\n", o->threads[ti], total);
    for (int op = 0; op < HAWQ_QOP_COUNT; op++) {
      if (!count[op]) continue;
      cJSON_AddNumberToObject(e, hawq_qop_name((hawq_qop)op), by_op[op]);
      if (!json) {
        printf("  %-10s %4d ops %9.3f ms %5.1f %%\n", hawq_qop_name((hawq_qop)op), count[op],
               by_op[op], total > 0 ? 100 * by_op[op] / total : 0.0);
      }
    }
    if (!json) { /* the slowest ops, in order */
      printf("  slowest:\n");
      for (int k = 0; k < 8 && k < nn; k++) {
        int best = -1;
        for (int i = 0; i < nn; i++) {
          if (med[i] >= 0 && (best < 0 || med[i] > med[best])) best = i;
        }
        printf("    %9.3f ms  %-10s %s\n", med[best], hawq_qop_name(m->nodes[best].op),
               m->nodes[best].name);
        med[best] = -1;
      }
    }
    cJSON_AddItemToArray(prof, e);
    bench_run_free(&r);
  }
  free(t);
  free(med);
  return CLI_OK;
}

int cmd_bench(int argc, char **argv) {
  const char *bits = "8", *threads_s = NULL, *isa_name = NULL, *out_path = NULL, *save = NULL;
  const char *layer_bits_s = "4,8";
  long long batch = 1, runs = 30, warmup = 5, calib_images = 8, seed = 1;
  bool layers = false, json = false, profile = false, int4_packed = false, no_fusion = false;
  const cli_opt opts[] = {
      {"--bits", CLI_STRING, &bits, 0, 0},     {"--calib-images", CLI_INT, &calib_images, 1, 4096},
      {"--save", CLI_STRING, &save, 0, 0},     {"--threads", CLI_STRING, &threads_s, 0, 0},
      {"--isa", CLI_STRING, &isa_name, 0, 0},  {"--batch", CLI_INT, &batch, 1, 4096},
      {"--runs", CLI_INT, &runs, 1, 100000},   {"--warmup", CLI_INT, &warmup, 0, 100000},
      {"--layers", CLI_FLAG, &layers, 0, 0},   {"--int4-packed", CLI_FLAG, &int4_packed, 0, 0},
      {"--profile", CLI_FLAG, &profile, 0, 0}, {"--layer-bits", CLI_STRING, &layer_bits_s, 0, 0},
      {"-o", CLI_STRING, &out_path, 0, 0},     {"--seed", CLI_INT, &seed, 0, (long long)1 << 62},
      {"--json", CLI_FLAG, &json, 0, 0},       {"--no-fusion", CLI_FLAG, &no_fusion, 0, 0},
  };
  const char *path;
  int rc = cli_parse_model("bench", help, argc, argv, opts, sizeof opts / sizeof opts[0], &path);
  if (rc) return rc < 0 ? CLI_OK : rc;
  bench_opts o = {.batch = (int)batch,
                  .runs = (int)runs,
                  .warmup = (int)warmup,
                  .plan_flags = (int4_packed ? HAWQ_QRT_PLAN_PACKED_INT4 : 0) |
                                (no_fusion ? HAWQ_QRT_PLAN_NO_FUSION : 0)};
  if ((rc = cli_parse_isa("bench", isa_name, &o.isa))) return rc;
  if (threads_s) {
    if ((rc = parse_list("--threads", threads_s, 1, 1024, o.threads, &o.n_threads))) return rc;
  } else {
    o.threads[o.n_threads++] = 1;
    if (cli_default_threads() > 1) o.threads[o.n_threads++] = cli_default_threads();
  }
  if ((rc = parse_list("--layer-bits", layer_bits_s, 2, 8, o.layer_bits, &o.n_layer_bits)))
    return rc;
  bool is_q = cli_is_qmodel(path);
  if (is_q && save) return cli_usage_error("bench", "--save applies to float models");
  if (is_q && layers) {
    return cli_usage_error("bench",
                           "--layers needs the float model (each layer is requantized "
                           "at every bit width)");
  }

  hawq_error err;
  hawq_qmodel *m = NULL;
  double *times = malloc(sizeof(double) * (size_t)runs);
  cJSON *root = cJSON_CreateObject();
  if (!times || !root) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }
  if (is_q) {
    if (hawq_qmodel_load(path, &m, &err)) {
      rc = cli_report(&err);
      goto done;
    }
  } else {
    hawq_bit_config cfg = {0};
    if (hawq_bit_config_parse(bits, &cfg, &err)) {
      rc = cli_report(&err);
      goto done;
    }
    rc = quantize(path, &cfg, calib_images, (uint64_t)seed, &m);
    hawq_bit_config_free(&cfg);
    if (rc) goto done;
    if (save && hawq_qmodel_save(m, save, &err)) {
      rc = cli_report(&err);
      goto done;
    }
  }
  hawq_qcost cost = hawq_qmodel_cost(m, -1);
  cJSON_AddStringToObject(root, "format", "hawq-latency");
  cJSON_AddNumberToObject(root, "version", 1);
  cJSON_AddStringToObject(root, "model", path);
  cJSON_AddStringToObject(root, "isa", hawq_isa_name(o.isa));
  cJSON_AddNumberToObject(root, "batch", o.batch);
  cJSON_AddNumberToObject(root, "runs", o.runs);
  cJSON_AddNumberToObject(root, "warmup", o.warmup);
  cJSON_AddNumberToObject(root, "macs", (double)cost.macs);
  cJSON_AddNumberToObject(root, "weight_bytes", (double)cost.bytes);
  if (!is_q) cJSON_AddStringToObject(root, "bits", bits);
  if (!json) {
    printf("%s: %d integer ops, %.3f GMACs/image, weights %.2f MB, isa %s, batch %d\n", path,
           m->n_nodes, cost.macs / 1e9, cost.bytes / 1e6, hawq_isa_name(o.isa), o.batch);
  }
  cJSON *e2e = cJSON_AddArrayToObject(root, "end_to_end");
  for (int ti = 0; ti < o.n_threads; ti++) {
    bench_run r;
    if ((rc = bench_run_make(m, &o, o.threads[ti], 0, &r))) goto done;
    double ms = time_ms(&r, &o, times);
    double lo = times[0], hi = times[o.runs - 1];
    double gops = 2.0 * (double)cost.macs * o.batch / (ms * 1e6);
    hawq_qrt_plan_stats s = hawq_qrt_plan_get_stats(r.plan);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "threads", o.threads[ti]);
    cJSON_AddNumberToObject(e, "median_ms", ms);
    cJSON_AddNumberToObject(e, "min_ms", lo);
    cJSON_AddNumberToObject(e, "max_ms", hi);
    cJSON_AddNumberToObject(e, "gops", gops);
    cJSON_AddNumberToObject(e, "fast_conv_nodes", s.fast_nodes);
    cJSON_AddNumberToObject(e, "conv_nodes", s.conv_nodes);
    cJSON_AddNumberToObject(e, "arena_bytes", (double)s.arena_bytes);
    cJSON_AddNumberToObject(e, "all_slots_bytes", (double)s.all_slots_bytes);
    cJSON_AddNumberToObject(e, "scratch_bytes", (double)s.scratch_bytes);
    cJSON_AddNumberToObject(e, "packed_bytes", (double)s.packed_bytes);
    cJSON_AddNumberToObject(e, "int4_tensors_as_bytes", s.int4_as_bytes);
    cJSON_AddNumberToObject(e, "fused_requants", s.fused_requants);
    cJSON_AddItemToArray(e2e, e);
    if (!json) {
      printf(
          "threads %d: median %.3f ms (min %.3f, max %.3f) over %d runs, %.1f GOP/s; "
          "%d/%d conv on %s kernels\n",
          o.threads[ti], ms, lo, hi, o.runs, gops, s.fast_nodes, s.conv_nodes,
          hawq_isa_name(o.isa));
      printf(
          "  memory: activations %.2f MB planned (%.2f MB unplanned), scratch %.2f MB, "
          "packed weights %.2f MB%s\n",
          s.arena_bytes / 1e6, s.all_slots_bytes / 1e6, s.scratch_bytes / 1e6, s.packed_bytes / 1e6,
          s.int4_as_bytes ? "; 4-bit activations read by convs as bytes" : "");
      if (s.fused_requants) {
        printf("  %d requantizations fused into their convolutions\n", s.fused_requants);
      }
    }
    bench_run_free(&r);
  }
  if (profile && (rc = profile_ops(m, &o, root, json))) goto done;
  if (layers) {
    cJSON *table = cJSON_AddArrayToObject(root, "layers");
    cJSON *totals = cJSON_AddObjectToObject(root, "layer_sum_ms");
    cJSON *lb = cJSON_AddArrayToObject(root, "layer_bits");
    hawq_qmodel *mb[MAX_LIST] = {0};
    for (int bi = 0; bi < o.n_layer_bits && !rc; bi++) {
      cJSON_AddItemToArray(lb, cJSON_CreateNumber(o.layer_bits[bi]));
      /* Uniform bits, no layer pinned: every layer at every width. */
      hawq_bit_config cfg = {.weight_bits = o.layer_bits[bi], .act_bits = o.layer_bits[bi]};
      rc = quantize(path, &cfg, calib_images, (uint64_t)seed, &mb[bi]);
    }
    if (!rc) rc = time_layers(mb, &o, table, totals);
    for (int bi = 0; bi < o.n_layer_bits; bi++) hawq_qmodel_destroy(mb[bi]);
    if (rc) goto done;
    if (!json) print_layers(table, &o);
  }
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    cJSON_AddNumberToObject(root, "peak_rss_bytes", (double)ru.ru_maxrss * 1024.0);
    if (!json) printf("peak resident memory %.1f MB\n", ru.ru_maxrss / 1024.0);
  }
  char *text = cJSON_Print(root);
  if (!text) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }
  if (json) puts(text);
  if (out_path && hawq_write_file_atomic(out_path, text, strlen(text), &err)) rc = cli_report(&err);
  cJSON_free(text);
done:
  cJSON_Delete(root);
  free(times);
  hawq_qmodel_destroy(m);
  return rc;
}
