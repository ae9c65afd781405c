/* hawq eval MODEL --data D: top-1 / top-5 accuracy and throughput of the float engine on a
 * labelled dataset, one summary line (or JSON), optional logits dump. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/graph.h"
#include "core/preprocess.h"
#include "core/status.h"
#include "data/dataset.h"
#include "data/npy.h"

static const char help[] =
    "usage: hawq eval MODEL.onnx|MODEL.hqm --data D [options]\n\n"
    "Runs the model on a labelled dataset and reports top-1 and top-5 accuracy and images/s.\n"
    "A .hqm model runs on the integer runtime (raw pixels in, integer logits out).\n\n"
    "  --data D          'fashion-mnist' (Debian package dataset-fashion-mnist) or a directory\n"
    "                    with the same IDX file names (gzipped or not)\n"
    "  --split S         test (default) or train\n"
    "  --limit N         evaluate the first N images only\n"
    "  --batch B         images per forward pass (default 100)\n"
    "  --threads T       worker threads (default: all cores)\n"
    "  --isa L           .hqm only: kernel level scalar|avx2|avx512vnni (default: the best\n"
    "                    this CPU has; every level gives the same results)\n"
    "  --mean M[,M..]    override the model's preprocessing mean (pixels are first scaled to\n"
    "  --std S[,S..]     [0,1]); one value, or one per channel\n"
    "  --logits FILE     write all logits as a float32 .npy file (images x classes)\n"
    "  --json            print the result as JSON\n";

/* Rank of the label's logit among the row: number of classes scoring strictly higher. */
static int label_rank(const float *row, int classes, int label) {
  int higher = 0;
  for (int c = 0; c < classes; c++) {
    if (row[c] > row[label] || (row[c] == row[label] && c < label)) higher++;
  }
  return higher;
}

int cmd_eval(int argc, char **argv) {
  const char *data = NULL, *split = "test", *mean = NULL, *std = NULL, *logits_path = NULL;
  const char *isa = NULL;
  long long limit = 0, batch = 100, threads = cli_default_threads();
  bool json = false;
  const cli_opt opts[] = {
      {"--data", CLI_STRING, &data, 0, 0},
      {"--split", CLI_STRING, &split, 0, 0},
      {"--limit", CLI_INT, &limit, 1, (long long)1 << 40},
      {"--batch", CLI_INT, &batch, 1, 65536},
      {"--threads", CLI_INT, &threads, 1, 1024},
      {"--isa", CLI_STRING, &isa, 0, 0},
      {"--mean", CLI_STRING, &mean, 0, 0},
      {"--std", CLI_STRING, &std, 0, 0},
      {"--logits", CLI_STRING, &logits_path, 0, 0},
      {"--json", CLI_FLAG, &json, 0, 0},
  };
  const char *pos[1];
  int rc = cli_parse_model("eval", help, argc, argv, opts, sizeof opts / sizeof opts[0], &pos[0]);
  if (rc) return rc < 0 ? CLI_OK : rc;
  if (!data) return cli_usage_error("eval", "--data is required");
  if (strcmp(split, "test") && strcmp(split, "train")) {
    return cli_usage_error("eval", "--split must be 'test' or 'train', got '%s'", split);
  }
  if (cli_is_qmodel(pos[0])) {
    if (mean || std)
      return cli_usage_error("eval", "--mean/--std: an integer model's preprocessing is fixed");
    return q_eval(pos[0], data, split, limit, batch, threads, isa, logits_path, json);
  }
  if (isa) return cli_usage_error("eval", "--isa applies to integer models (.hqm)");

  hawq_error err;
  hawq_graph *g = NULL;
  hawq_dataset *ds = NULL;
  hawq_float_plan *plan = NULL;
  float *input = NULL, *all_logits = NULL;
  rc = CLI_OK;
  if (hawq_graph_load_onnx(pos[0], NULL, &g, &err) || hawq_dataset_load(data, split, &ds, &err)) {
    rc = cli_report(&err);
    goto done;
  }

  /* The model must take one image batch (N, C, H, W) matching the data and give (N, classes). */
  if (g->n_inputs != 1) {
    fprintf(stderr, "hawq: %s: has %d inputs; eval needs a model with one image input\n", pos[0],
            g->n_inputs);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  const hawq_tensor *in = &g->tensors[g->inputs[0]], *out = &g->tensors[g->outputs[0]];
  if (in->rank != 4) {
    fprintf(stderr, "hawq: %s: input '%s' has rank %d, expected an image batch (N,C,H,W)\n", pos[0],
            in->name, in->rank);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  if (in->dims[1] != ds->channels || in->dims[2] != ds->height || in->dims[3] != ds->width) {
    fprintf(stderr,
            "hawq: %s: input '%s' expects %lldx%lldx%lld images (CxHxW), the %s has %dx%dx%d\n",
            pos[0], in->name, (long long)in->dims[1], (long long)in->dims[2],
            (long long)in->dims[3], ds->source, ds->channels, ds->height, ds->width);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  if (out->rank != 2 || out->dims[1] < ds->num_classes) {
    fprintf(stderr, "hawq: %s: output '%s' is not (N, classes) with at least %d classes\n", pos[0],
            out->name, ds->num_classes);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  int classes = (int)out->dims[1];
  hawq_preprocess pp = g->preprocess;
  if (hawq_preprocess_override(&pp, mean, std, NULL, &err) ||
      hawq_preprocess_check(&pp, ds->channels, "preprocessing", &err)) {
    rc = cli_report(&err);
    goto done;
  }

  int64_t total = limit && limit < ds->count ? limit : ds->count;
  if (batch > total) batch = total;
  hawq_float_plan_options po = {.batch = (int)batch, .threads = (int)threads};
  if (hawq_float_plan_create(g, &po, &plan, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  int64_t per_image = (int64_t)ds->height * ds->width * ds->channels;
  input = malloc((size_t)(batch * per_image) * sizeof(float));
  if (logits_path) all_logits = malloc((size_t)(total * classes) * sizeof(float));
  if (!input || (logits_path && !all_logits)) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }

  cli_eval_result r = {.classes = classes};
  cli_progress prog;
  cli_progress_start(&prog, "eval", total);
  double t0 = cli_now();
  for (int64_t first = 0; first < total; first += batch) {
    int64_t n = total - first < batch ? total - first : batch;
    hawq_dataset_fill_batch(ds, first, n, &pp, input);
    /* A short last batch runs padded: the plan's batch is fixed, extra rows are ignored. */
    if (n < batch)
      memset(input + n * per_image, 0, (size_t)((batch - n) * per_image) * sizeof(float));
    const float *inputs[1] = {input};
    if (hawq_float_plan_run(plan, inputs, &err)) {
      rc = cli_report(&err);
      goto done;
    }
    const float *logits = hawq_float_plan_output(plan, 0);
    for (int64_t i = 0; i < n; i++) {
      int rank = label_rank(logits + i * classes, classes, ds->labels[first + i]);
      r.top1 += rank == 0;
      r.top5 += rank < 5;
    }
    if (all_logits)
      memcpy(all_logits + first * classes, logits, (size_t)(n * classes) * sizeof(float));
    r.images += n;
    char extra[64];
    snprintf(extra, sizeof extra, "top-1 %.2f%% %.0f img/s",
             100.0 * (double)r.top1 / (double)r.images, (double)r.images / (cli_now() - t0));
    cli_progress_update(&prog, r.images, extra);
  }
  r.seconds = cli_now() - t0;
  cli_progress_finish(&prog);
  if (logits_path) {
    int64_t dims[2] = {total, classes};
    if (hawq_npy_write_f32(logits_path, 2, dims, all_logits, &err)) {
      rc = cli_report(&err);
      goto done;
    }
  }
  r.model = pos[0];
  r.data = ds->source;
  r.batch = batch;
  r.threads = threads;
  cli_print_eval(&r, json);
done:
  free(input);
  free(all_logits);
  hawq_float_plan_destroy(plan);
  hawq_dataset_destroy(ds);
  hawq_graph_destroy(g);
  return rc;
}
