/* hawq sensitivity MODEL --data D -o sens.json: per-layer Hessian traces by Hutchinson's method
 * and the sensitivities Omega_i(b) that `hawq allocate` minimises (src/search/hessian.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/file.h"
#include "core/graph.h"
#include "core/preprocess.h"
#include "data/dataset.h"
#include "search/hessian.h"

static const char help[] =
    "usage: hawq sensitivity MODEL.onnx --data D -o SENS.json [options]\n\n"
    "How sensitive each Conv/Gemm layer is to quantization, for mixed precision: the trace of\n"
    "the loss Hessian's block of the layer's BN-folded weights, by Hutchinson's method\n"
    "(Rademacher vectors over all parameters, Hessian-vector products by central differences\n"
    "of gradients), and Omega(b) = trace / weights * ||Q_b(W) - W||^2 for b = 2..8. Writes\n"
    "sens.json, which 'hawq allocate' reads.\n\n"
    "  --data D          'fashion-mnist' or a directory of IDX files (see hawq eval)\n"
    "  -o FILE           the sensitivities to write (JSON)\n"
    "  --images N        the loss is the mean over the first N images (default 512)\n"
    "  --split S         train (default) or test\n"
    "  --batch B         images per forward/backward pass (default 128)\n"
    "  --tol T           stop once the summed trace moves by less than T (relative) at 5\n"
    "                    draws in a row (default 1e-3)\n"
    "  --min-draws M     at least M draws (default 32)\n"
    "  --max-draws M     at most M draws (default 200)\n"
    "  --seed S          the Rademacher draws (default 1); the same seed and thread count\n"
    "                    give the same output\n"
    "  --step R          finite-difference step relative to the parameters' RMS (default\n"
    "                    1e-3)\n"
    "  --threads T       worker threads (default: all cores)\n"
    "  --mean M, --std S override the model's preprocessing (see hawq eval)\n"
    "  --json            print the result as JSON (the file's contents) instead of a table\n";

typedef struct progress_ctx {
  cli_progress bar;
} progress_ctx;

static void on_draw(void *ctx, int draws, double total, double rel) {
  progress_ctx *p = ctx;
  char extra[128], change[32] = "-", eta[48] = "";
  if (draws > 1) snprintf(change, sizeof change, "%.1e", rel);
  /* The bar shows an ETA on a terminal; plain lines get one here. Both are to max draws, an
   * upper bound: the run stops earlier once the summed trace settles. */
  if (!p->bar.tty) {
    double per = (cli_now() - p->bar.start) / draws;
    snprintf(eta, sizeof eta, " ETA <= %.0fs", per * (double)(p->bar.total - draws));
  }
  snprintf(extra, sizeof extra, "trace %.6g change %s%s", total, change, eta);
  cli_progress_update(&p->bar, draws, extra);
}

static void print_table(const hawq_sensitivity *s, double seconds) {
  printf("%-28s %8s %24s %12s %12s\n", "layer", "weights", "trace +- se", "omega(4)", "omega(8)");
  for (int i = 0; i < s->n_layers; i++) {
    const hawq_layer_sensitivity *l = &s->layers[i];
    char tr[64];
    snprintf(tr, sizeof tr, "%.5g +- %.2g", l->trace, l->trace_se);
    printf("%-28s %8lld %24s %12.4g %12.4g\n", l->name, (long long)l->params, tr, l->omega[4],
           l->omega[8]);
  }
  for (int k = 0; k < s->n_ties; k++) {
    printf("tie:");
    for (int m = s->tie_start[k]; m < s->tie_start[k + 1]; m++)
      printf(" %s", s->layers[s->tie_layer[m]].name);
    printf("\n");
  }
  printf("summed trace %.6g, %d draws (%s), %lld images, %.1f s\n", s->total_trace, s->draws,
         s->converged ? "converged" : "max draws reached", (long long)s->images, seconds);
}

int cmd_sensitivity(int argc, char **argv) {
  const char *data = NULL, *output = NULL, *split = "train", *mean = NULL, *std = NULL;
  hawq_hessian_options ho = hawq_hessian_defaults();
  long long images = 512, batch = ho.batch, threads = cli_default_threads(), seed = 1;
  long long min_draws = ho.min_draws, max_draws = ho.max_draws;
  double tol = ho.tol, step = ho.step;
  bool json = false;
  const cli_opt opts[] = {
      {"--data", CLI_STRING, &data, 0, 0},
      {"-o", CLI_STRING, &output, 0, 0},
      {"--images", CLI_INT, &images, 1, 1e9},
      {"--split", CLI_STRING, &split, 0, 0},
      {"--batch", CLI_INT, &batch, 1, 65536},
      {"--tol", CLI_DOUBLE, &tol, 1e-12, 0.5},
      {"--min-draws", CLI_INT, &min_draws, 2, 1e7},
      {"--max-draws", CLI_INT, &max_draws, 2, 1e7},
      {"--seed", CLI_INT, &seed, 0, (double)((long long)1 << 53)},
      {"--step", CLI_DOUBLE, &step, 1e-7, 0.1},
      {"--threads", CLI_INT, &threads, 1, 1024},
      {"--mean", CLI_STRING, &mean, 0, 0},
      {"--std", CLI_STRING, &std, 0, 0},
      {"--json", CLI_FLAG, &json, 0, 0},
  };
  const char *model;
  int rc =
      cli_parse_model("sensitivity", help, argc, argv, opts, sizeof opts / sizeof opts[0], &model);
  if (rc) return rc < 0 ? CLI_OK : rc;
  if (!data) return cli_usage_error("sensitivity", "--data is required");
  if (!output) return cli_usage_error("sensitivity", "-o FILE.json is required");
  if (strcmp(split, "test") && strcmp(split, "train")) {
    return cli_usage_error("sensitivity", "--split must be 'train' or 'test', got '%s'", split);
  }
  if (min_draws > max_draws) {
    return cli_usage_error("sensitivity", "--min-draws %lld is more than --max-draws %lld",
                           min_draws, max_draws);
  }
  /* The run takes minutes: refuse an output directory that cannot be written before it. */
  {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", output);
    char *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir ? 1 : 0] = '\0';
    if (access(slash ? dir : ".", W_OK) != 0) {
      fprintf(stderr, "hawq: %s: cannot write to directory '%s'\n", output, slash ? dir : ".");
      return CLI_BAD_INPUT;
    }
  }
  ho.batch = (int)batch;
  ho.threads = (int)threads;
  ho.tol = tol;
  ho.min_draws = (int)min_draws;
  ho.max_draws = (int)max_draws;
  ho.seed = (uint64_t)seed;
  ho.step = step;

  hawq_error err;
  hawq_graph *g = NULL;
  hawq_dataset *ds = NULL;
  hawq_sensitivity *s = NULL, *layers = NULL;
  float *x = NULL;
  int32_t *y = NULL;
  char *text = NULL;
  if (hawq_graph_load_onnx(model, NULL, &g, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  /* The layer analysis (is the model one hawq can lower?) before the data are read. */
  if (hawq_sensitivity_layers(g, &layers, &err) || hawq_dataset_load(data, split, &ds, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  hawq_preprocess pp = g->preprocess;
  if (hawq_preprocess_override(&pp, mean, std, NULL, &err) ||
      hawq_preprocess_check(&pp, ds->channels, "preprocessing", &err)) {
    rc = cli_report(&err);
    goto done;
  }
  const hawq_tensor *in = &g->tensors[g->inputs[0]];
  if (in->dims[1] != ds->channels || in->dims[2] != ds->height || in->dims[3] != ds->width) {
    fprintf(stderr,
            "hawq: %s: input '%s' expects %lldx%lldx%lld images (CxHxW), the %s has %dx%dx%d\n",
            model, in->name, (long long)in->dims[1], (long long)in->dims[2], (long long)in->dims[3],
            ds->source, ds->channels, ds->height, ds->width);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  int64_t n = images < ds->count ? images : ds->count;
  int64_t per = (int64_t)ds->height * ds->width * ds->channels;
  x = malloc((size_t)(n * per) * sizeof *x);
  y = malloc((size_t)n * sizeof *y);
  if (!x || !y) {
    fprintf(stderr, "hawq: out of memory for %lld images\n", (long long)n);
    rc = CLI_INTERNAL;
    goto done;
  }
  hawq_dataset_fill_batch(ds, 0, n, &pp, x);
  for (int64_t i = 0; i < n; i++) y[i] = ds->labels[i];
  int64_t weights = 0;
  for (int i = 0; i < layers->n_layers; i++) weights += layers->layers[i].params;
  fprintf(stderr,
          "hawq sensitivity: %d layers (%lld weights), %lld images of the %s, batch %lld, %lld "
          "threads, seed %lld\n",
          layers->n_layers, (long long)weights, (long long)n, ds->source,
          (long long)(batch < n ? batch : n), threads, seed);
  progress_ctx pc;
  cli_progress_start(&pc.bar, "sensitivity", max_draws);
  double t0 = cli_now();
  if (hawq_sensitivity_compute(g, x, y, n, &ho, on_draw, &pc, &s, &err)) {
    cli_progress_finish(&pc.bar);
    rc = cli_report(&err);
    goto done;
  }
  double seconds = cli_now() - t0;
  cli_progress_finish(&pc.bar);
  hawq_sensitivity_info info = {
      .model = model, .data = data, .seed = (uint64_t)seed, .tol = tol, .seconds = seconds};
  if (!(text = hawq_sensitivity_json(s, &info))) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }
  size_t len = strlen(text);
  text[len] = '\n'; /* the terminating NUL becomes a final newline in the file */
  if (hawq_write_file_atomic(output, text, len + 1, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  text[len] = '\0';
  if (json) {
    puts(text);
  } else {
    print_table(s, seconds);
    printf("wrote %s\n", output);
  }
done:
  free(text);
  free(x);
  free(y);
  hawq_sensitivity_free(s);
  hawq_sensitivity_free(layers);
  hawq_dataset_destroy(ds);
  hawq_graph_destroy(g);
  return rc;
}
