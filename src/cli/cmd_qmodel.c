/* The integer-model side of the CLI: `hawq eval|info MODEL.hqm` (reached from cmd_eval and
 * cmd_info when the model is a .hqm file) and `hawq run MODEL.hqm`. Classification runs the
 * integer runtime through the public API; floats appear only in what is printed. */
#include <cjson/cJSON.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "quant/dyadic.h"
#include "quant/qmodel.h"

bool cli_is_qmodel(const char *path) {
  size_t n = strlen(path);
  return n > 4 && !strcmp(path + n - 4, ".hqm");
}

static int load(const char *path, hawq_qmodel **m) {
  hawq_error err;
  if (hawq_qmodel_load(path, m, &err)) return cli_report(&err);
  return CLI_OK;
}

/* The dataset must have the model's image shape and no more classes than it has logits. */
static int check_data(const char *path, const hawq_qmodel *m, const hawq_dataset *ds) {
  hawq_qmodel_shape s = hawq_qmodel_get_shape(m);
  if (s.height != ds->height || s.width != ds->width || s.channels != ds->channels) {
    fprintf(stderr, "hawq: %s: takes %lldx%lldx%lld images (HxWxC), the %s has %dx%dx%d\n", path,
            (long long)s.height, (long long)s.width, (long long)s.channels, ds->source, ds->height,
            ds->width, ds->channels);
    return CLI_BAD_INPUT;
  }
  if (s.classes < ds->num_classes) {
    fprintf(stderr, "hawq: %s: has %lld classes, the %s has %d\n", path, (long long)s.classes,
            ds->source, ds->num_classes);
    return CLI_BAD_INPUT;
  }
  return CLI_OK;
}

static void *workspace_alloc(size_t size) {
  return aligned_alloc(64, (size + 63) & ~(size_t)63);
}

int q_eval(const char *path, const char *data, const char *split, long long limit, long long batch,
           long long threads, const char *isa_name, const char *logits_path, bool json) {
  hawq_qmodel *m = NULL;
  hawq_qrunner *runner = NULL;
  hawq_dataset *ds = NULL;
  hawq_error err;
  int32_t *logits = NULL;
  hawq_isa isa;
  int rc = cli_parse_isa("eval", isa_name, &isa);
  if (rc) return rc;
  if ((rc = load(path, &m))) return rc;
  if (hawq_dataset_load(data, split, &ds, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  if ((rc = check_data(path, m, ds))) goto done;
  int64_t total = limit && limit < ds->count ? limit : ds->count;
  int64_t classes = hawq_qmodel_get_shape(m).classes;
  int64_t per_image = (int64_t)ds->height * ds->width * ds->channels;
  if (batch > total) batch = total;
  if (!(logits = malloc((size_t)(total * classes) * sizeof *logits))) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }
  /* One runner (read-only once made) shared by the threads, each classifying whole batches in
   * its own workspace. */
  hawq_qrunner_options ro = {.isa = isa, .threads = 1, .max_batch = (int)batch};
  if (hawq_qrunner_create(m, &ro, &runner, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  size_t ws_size = hawq_qrunner_workspace_size(runner);
  int64_t top1 = 0, top5 = 0, done_images = 0;
  int n_chunks = (int)((total + batch - 1) / batch);
  cli_progress prog;
  cli_progress_start(&prog, "eval", total);
  double t0 = cli_now();
  bool failed = false;
  /* Each thread classifies whole batches in its own workspace. */
#pragma omp parallel num_threads((int)threads) reduction(+ : top1, top5)
  {
    void *ws = workspace_alloc(ws_size);
    int32_t *cls = malloc((size_t)batch * sizeof *cls);
    hawq_error e;
#pragma omp for schedule(dynamic, 1)
    for (int chunk = 0; chunk < n_chunks; chunk++) {
      int64_t first = (int64_t)chunk * batch;
      int n = (int)(total - first < batch ? total - first : batch);
      if (!ws || !cls ||
          hawq_qrunner_classify(runner, ds->images + first * per_image, n, ws, ws_size, cls,
                                logits + first * classes, &e)) {
#pragma omp atomic write
        failed = true;
        continue;
      }
      for (int i = 0; i < n; i++) {
        const int32_t *row = logits + (first + i) * classes;
        int label = ds->labels[first + i], higher = 0;
        for (int64_t c = 0; c < classes; c++) {
          higher += row[c] > row[label] || (row[c] == row[label] && c < label);
        }
        top1 += higher == 0;
        top5 += higher < 5;
      }
#ifdef _OPENMP
      if (omp_get_thread_num() == 0)
#endif
      {
        int64_t d;
#pragma omp atomic read
        d = done_images;
        cli_progress_update(&prog, d + n, NULL);
      }
#pragma omp atomic update
      done_images += n;
    }
    free(ws);
    free(cls);
  }
  double seconds = cli_now() - t0;
  cli_progress_finish(&prog);
  if (failed) {
    fprintf(stderr, "hawq: %s: out of memory for the workspace\n", path);
    rc = CLI_INTERNAL;
    goto done;
  }
  if (logits_path) {
    /* Dequantized at the boundary: logit = q * scale. */
    float *f = malloc((size_t)(total * classes) * sizeof *f);
    if (!f) {
      fprintf(stderr, "hawq: out of memory\n");
      rc = CLI_INTERNAL;
      goto done;
    }
    double scale = hawq_qmodel_logit_scale(m);
    for (int64_t i = 0; i < total * classes; i++) f[i] = (float)(logits[i] * scale);
    int64_t dims[2] = {total, classes};
    hawq_status st = hawq_npy_write_f32(logits_path, 2, dims, f, &err);
    free(f);
    if (st) {
      rc = cli_report(&err);
      goto done;
    }
  }
  char engine[64];
  snprintf(engine, sizeof engine, "integer runtime, %s", hawq_isa_name(isa));
  cli_eval_result r = {path, ds->source,   engine,  total, top1,
                       top5, (int)classes, seconds, batch, threads};
  cli_print_eval(&r, json);
done:
  free(logits);
  hawq_dataset_destroy(ds);
  hawq_qrunner_destroy(runner);
  hawq_qmodel_destroy(m);
  return rc;
}

static const char *type_name(const hawq_qtensor *t) {
  return hawq_qtype_name(t->type);
}

int q_info(const char *path, bool json, bool verbose) {
  hawq_qmodel *m = NULL;
  int rc = load(path, &m);
  if (rc) return rc;
  hawq_qcost total = hawq_qmodel_cost(m, -1);
  hawq_qmodel_shape s = hawq_qmodel_get_shape(m);
  if (json) {
    cJSON *o = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(o, "ops");
    cJSON_AddStringToObject(o, "model", path);
    cJSON_AddNumberToObject(o, "height", (double)s.height);
    cJSON_AddNumberToObject(o, "width", (double)s.width);
    cJSON_AddNumberToObject(o, "channels", (double)s.channels);
    cJSON_AddNumberToObject(o, "classes", (double)s.classes);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)total.bytes);
    cJSON_AddNumberToObject(o, "params", (double)total.params);
    cJSON_AddNumberToObject(o, "macs", (double)total.macs);
    cJSON_AddNumberToObject(o, "bops", (double)total.bops);
    cJSON_AddNumberToObject(o, "logit_scale", hawq_qmodel_logit_scale(m));
    if (m->bits_json) cJSON_AddRawToObject(o, "bits", m->bits_json);
    if (m->calibration_json) cJSON_AddRawToObject(o, "calibration", m->calibration_json);
    if (m->source_name) cJSON_AddStringToObject(o, "source", m->source_name);
    for (int k = 0; k < m->n_nodes; k++) {
      const hawq_qnode *n = &m->nodes[k];
      const hawq_qtensor *y = &m->tensors[n->output];
      cJSON *l = cJSON_CreateObject();
      cJSON_AddStringToObject(l, "name", n->name);
      cJSON_AddStringToObject(l, "op", hawq_qop_name(n->op));
      cJSON_AddStringToObject(l, "out_type", type_name(y));
      cJSON_AddNumberToObject(l, "out_scale", y->scale);
      cJSON_AddNumberToObject(l, "out_lo", y->lo);
      cJSON_AddNumberToObject(l, "out_hi", y->hi);
      if (n->op == HAWQ_QOP_CONV) {
        hawq_qcost c = hawq_qmodel_cost(m, k);
        cJSON_AddNumberToObject(l, "weight_bits", n->weight_bits);
        cJSON_AddStringToObject(l, "in_type", type_name(&m->tensors[n->inputs[0]]));
        cJSON_AddNumberToObject(l, "macs", (double)c.macs);
        cJSON_AddNumberToObject(l, "bops", (double)c.bops);
        cJSON_AddNumberToObject(l, "bytes", (double)c.bytes);
      }
      if (n->op == HAWQ_QOP_CONV && n->n_inputs > 1 && n->inputs[1] >= 0) {
        cJSON *r = cJSON_AddArrayToObject(l, "residual_dyadic");
        cJSON_AddItemToArray(r, cJSON_CreateNumber(n->residual_dyadic.m));
        cJSON_AddItemToArray(r, cJSON_CreateNumber(n->residual_dyadic.c));
      }
      cJSON *dy = cJSON_AddArrayToObject(l, "dyadic");
      for (int i = 0; i < n->n_dyadic; i++) {
        cJSON *d = cJSON_CreateArray();
        cJSON_AddItemToArray(d, cJSON_CreateNumber(n->dyadic[i].m));
        cJSON_AddItemToArray(d, cJSON_CreateNumber(n->dyadic[i].c));
        cJSON_AddItemToArray(dy, d);
      }
      cJSON_AddItemToArray(layers, l);
    }
    char *str = cJSON_Print(o);
    if (str) puts(str);
    cJSON_free(str);
    cJSON_Delete(o);
    hawq_qmodel_destroy(m);
    return CLI_OK;
  }
  char a[32], b[32], c[32];
  printf("%s: integer-only model, %lldx%lldx%lld uint8 pixels -> %lld int32 logits\n", path,
         (long long)s.height, (long long)s.width, (long long)s.channels, (long long)s.classes);
  if (m->source_name)
    printf("source: %s (crc32 %08x, %llu bytes)\n", m->source_name, (unsigned)m->source_crc32,
           (unsigned long long)m->source_size);
  if (m->calibration_json) printf("calibration: %s\n", m->calibration_json);
  printf("\n%-4s %-28s %-8s %-9s %-5s %-10s %-12s %s\n", "#", "op", "kind", "in->out", "wbits",
         "out scale", "MACs", "rescale m/2^c (first; range of ratios)");
  for (int k = 0; k < m->n_nodes; k++) {
    const hawq_qnode *n = &m->nodes[k];
    const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
    char types[32], wb[8] = "-", macs[32] = "-", dy[96] = "-";
    snprintf(types, sizeof types, "%s->%s", type_name(x), type_name(y));
    if (n->op == HAWQ_QOP_CONV) {
      snprintf(wb, sizeof wb, "%d", n->weight_bits);
      cli_si((double)hawq_qmodel_cost(m, k).macs, macs, sizeof macs);
    }
    if (n->n_dyadic > 0) {
      double lo = hawq_dyadic_value(n->dyadic[0]), hi = lo;
      for (int i = 1; i < n->n_dyadic; i++) {
        double v = hawq_dyadic_value(n->dyadic[i]);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
      }
      snprintf(dy, sizeof dy, "%d/2^%d; %.3g..%.3g", n->dyadic[0].m, n->dyadic[0].c, lo, hi);
    }
    printf("%-4d %-28.28s %-8s %-9s %-5s %-10.3g %-12s %s\n", k, n->name, hawq_qop_name(n->op),
           types, wb, y->scale, macs, dy);
    if (verbose) {
      for (int i = 0; i < n->n_dyadic; i++) {
        printf("       dyadic[%d] = %d / 2^%d = %.9g", i, n->dyadic[i].m, n->dyadic[i].c,
               hawq_dyadic_value(n->dyadic[i]));
        if (n->op == HAWQ_QOP_CONV) {
          printf("  weight scale %.6g  bias %d", n->weight_scale ? n->weight_scale[i] : 0.0,
                 n->bias[i]);
        }
        printf("\n");
      }
      if (n->op == HAWQ_QOP_CONV && n->n_inputs > 1 && n->inputs[1] >= 0) {
        printf("       residual '%s': %d / 2^%d = %.9g\n", m->tensors[n->inputs[1]].name,
               n->residual_dyadic.m, n->residual_dyadic.c, hawq_dyadic_value(n->residual_dyadic));
      }
    }
  }
  printf("\nweights %s bytes (%s parameters), %s MACs, %s BOPS per image\n",
         cli_si((double)total.bytes, a, sizeof a), cli_si((double)total.params, b, sizeof b),
         cli_si((double)total.macs, c, sizeof c), cli_si((double)total.bops, (char[32]){0}, 32));
  if (m->bits_json) printf("bits: %s\n", m->bits_json);
  hawq_qmodel_destroy(m);
  return CLI_OK;
}

static const char run_help[] =
    "usage: hawq run MODEL.hqm (--image FILE.png | --data D --index I) [options]\n\n"
    "Classifies one image with the integer runtime and prints its class (and, with --logits,\n"
    "every class's logit).\n\n"
    "  --image FILE   a PNG image of the model's size (grayscale or RGB as the model takes)\n"
    "  --data D       a dataset ('fashion-mnist' or an IDX directory) ...\n"
    "  --index I      ... and the image's index in it\n"
    "  --split S      test (default) or train\n"
    "  --logits       also print the logits (integers, and dequantized)\n"
    "  --isa L        kernel level scalar|avx2|avx512vnni (default: the best this CPU has)\n"
    "  --threads T    threads inside the run (default 1)\n"
    "  --json         print the result as JSON\n";

/* Reads a PNG into h x w x channels uint8 with libpng's simplified API. */
static int read_png(const char *path, int64_t h, int64_t w, int64_t channels, uint8_t *out) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path)) {
    fprintf(stderr, "hawq: %s: not a readable PNG image (%s)\n", path, img.message);
    return CLI_BAD_INPUT;
  }
  if ((int64_t)img.height != h || (int64_t)img.width != w) {
    fprintf(stderr, "hawq: %s: image is %ux%u, the model takes %lldx%lld (HxW)\n", path, img.height,
            img.width, (long long)h, (long long)w);
    png_image_free(&img);
    return CLI_BAD_INPUT;
  }
  if (channels != 1 && channels != 3) {
    fprintf(stderr, "hawq: %s: the model takes %lld channels; PNG input gives 1 or 3\n", path,
            (long long)channels);
    png_image_free(&img);
    return CLI_BAD_INPUT;
  }
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (!png_image_finish_read(&img, NULL, out, 0, NULL)) {
    fprintf(stderr, "hawq: %s: cannot decode the PNG image (%s)\n", path, img.message);
    return CLI_BAD_INPUT;
  }
  return CLI_OK;
}

int cmd_run(int argc, char **argv) {
  const char *image = NULL, *data = NULL, *split = "test", *isa_name = NULL;
  long long index = -1, threads = 1;
  bool show_logits = false, json = false;
  const cli_opt opts[] = {
      {"--image", CLI_STRING, &image, 0, 0},      {"--data", CLI_STRING, &data, 0, 0},
      {"--index", CLI_INT, &index, 0, 1e12},      {"--split", CLI_STRING, &split, 0, 0},
      {"--logits", CLI_FLAG, &show_logits, 0, 0}, {"--json", CLI_FLAG, &json, 0, 0},
      {"--isa", CLI_STRING, &isa_name, 0, 0},     {"--threads", CLI_INT, &threads, 1, 1024},
  };
  const char *path;
  int rc = cli_parse_model("run", run_help, argc, argv, opts, sizeof opts / sizeof opts[0], &path);
  if (rc) return rc < 0 ? CLI_OK : rc;
  if (!image == !data)
    return cli_usage_error("run", "give either --image FILE or --data D --index I");
  if (data && index < 0) return cli_usage_error("run", "--data needs --index I");
  if (strcmp(split, "test") && strcmp(split, "train")) {
    return cli_usage_error("run", "--split must be 'test' or 'train', got '%s'", split);
  }
  hawq_isa isa;
  if ((rc = cli_parse_isa("run", isa_name, &isa))) return rc;
  hawq_qmodel *m = NULL;
  hawq_qrunner *runner = NULL;
  hawq_dataset *ds = NULL;
  uint8_t *pixels = NULL;
  int32_t *logits = NULL;
  void *ws = NULL;
  hawq_error err;
  if ((rc = load(path, &m))) return rc;
  hawq_qrunner_options ro = {.isa = isa, .threads = (int)threads, .max_batch = 1};
  if (hawq_qrunner_create(m, &ro, &runner, &err)) {
    rc = cli_report(&err);
    hawq_qmodel_destroy(m);
    return rc;
  }
  hawq_qmodel_shape s = hawq_qmodel_get_shape(m);
  int64_t per_image = s.height * s.width * s.channels;
  pixels = malloc((size_t)per_image);
  logits = malloc((size_t)s.classes * sizeof *logits);
  size_t ws_size = hawq_qrunner_workspace_size(runner);
  ws = workspace_alloc(ws_size);
  if (!pixels || !logits || !ws) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }
  int label = -1;
  if (image) {
    if ((rc = read_png(image, s.height, s.width, s.channels, pixels))) goto done;
  } else {
    if (hawq_dataset_load(data, split, &ds, &err)) {
      rc = cli_report(&err);
      goto done;
    }
    if ((rc = check_data(path, m, ds))) goto done;
    if (index >= ds->count) {
      fprintf(stderr, "hawq: --index %lld: the %s has %lld images\n", index, ds->source,
              (long long)ds->count);
      rc = CLI_BAD_INPUT;
      goto done;
    }
    memcpy(pixels, ds->images + index * per_image, (size_t)per_image);
    label = ds->labels[index];
  }
  int32_t cls;
  if (hawq_qrunner_classify(runner, pixels, 1, ws, ws_size, &cls, logits, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  double scale = hawq_qmodel_logit_scale(m);
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "class", cls);
    if (label >= 0) cJSON_AddNumberToObject(o, "label", label);
    if (show_logits) {
      cJSON *a = cJSON_AddArrayToObject(o, "logits");
      for (int64_t c = 0; c < s.classes; c++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(logits[c]));
      cJSON_AddNumberToObject(o, "logit_scale", scale);
    }
    char *str = cJSON_Print(o);
    if (str) puts(str);
    cJSON_free(str);
    cJSON_Delete(o);
  } else {
    printf("class %d", cls);
    if (label >= 0) printf(" (label %d)", label);
    printf("\n");
    if (show_logits) {
      for (int64_t c = 0; c < s.classes; c++) {
        printf("  %3lld  %11d  %10.5f\n", (long long)c, logits[c], logits[c] * scale);
      }
    }
  }
done:
  free(ws);
  free(pixels);
  free(logits);
  hawq_dataset_destroy(ds);
  hawq_qrunner_destroy(runner);
  hawq_qmodel_destroy(m);
  return rc;
}
