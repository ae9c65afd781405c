/* hawq calibrate MODEL --data D --bits B -o model.hqm: post-training quantization. Calibrates
 * activation ranges on the first images of the training split, lowers the float graph to the
 * integer program and writes it (atomically). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/file.h"
#include "core/graph.h"
#include "core/preprocess.h"
#include "data/dataset.h"
#include "quant/calib.h"
#include "quant/lower.h"
#include "quant/qmodel.h"

static const char help[] =
    "usage: hawq calibrate MODEL.onnx --data D --bits B -o MODEL.hqm [options]\n\n"
    "Post-training quantization: measures every activation's range on the first images of\n"
    "the data's training split, then lowers the model to an integer-only program (BN folded,\n"
    "per-channel symmetric weights, dyadic rescales) and writes it as a .hqm file.\n\n"
    "  --data D             'fashion-mnist' or a directory of IDX files (see hawq eval)\n"
    "  --bits B             8 or 4 (weights and activations; the first and last layer stay\n"
    "                       at 8), wXaY (e.g. w4a8), or a JSON file: {\"weight_bits\": 8,\n"
    "                       \"act_bits\": 8, \"pin_ends\": true, \"layers\": {\"<node>\":\n"
    "                       {\"weight_bits\": 4, \"act_bits\": 4}}}\n"
    "  -o FILE              the integer model to write (.hqm)\n"
    "  --calib-images N     calibrate on the first N images (default 1024)\n"
    "  --calib-split S      train (default) or test\n"
    "  --percentile P       per batch, the P-th percentile instead of the max (e.g. 99.99)\n"
    "  --momentum M         moving average of the ranges over batches (default 0.99;\n"
    "                       0 keeps the extremes over all batches)\n"
    "  --batch B            calibration batch size (default 64)\n"
    "  --threads T          worker threads (default: all cores)\n"
    "  --mean M, --std S    override the model's preprocessing (see hawq eval)\n"
    "  --json               print a JSON summary\n";

static void show_progress(void *ctx, int64_t done, int64_t total) {
  (void)total;
  cli_progress_update(ctx, done, NULL);
}

int cmd_calibrate(int argc, char **argv) {
  const char *data = NULL, *bits = NULL, *output = NULL, *split = "train", *mean = NULL,
             *std = NULL;
  hawq_calib_options co = hawq_calib_defaults();
  long long images = co.images, batch = co.batch, threads = cli_default_threads();
  double momentum = co.momentum, percentile = 0;
  bool json = false;
  const cli_opt opts[] = {
      {"--data", CLI_STRING, &data, 0, 0},
      {"--bits", CLI_STRING, &bits, 0, 0},
      {"-o", CLI_STRING, &output, 0, 0},
      {"--calib-images", CLI_INT, &images, 1, 1e9},
      {"--calib-split", CLI_STRING, &split, 0, 0},
      {"--percentile", CLI_DOUBLE, &percentile, 50.000001, 100},
      {"--momentum", CLI_DOUBLE, &momentum, 0, 0.999999},
      {"--batch", CLI_INT, &batch, 1, 65536},
      {"--threads", CLI_INT, &threads, 1, 1024},
      {"--mean", CLI_STRING, &mean, 0, 0},
      {"--std", CLI_STRING, &std, 0, 0},
      {"--json", CLI_FLAG, &json, 0, 0},
  };
  const char *model;
  int rc =
      cli_parse_model("calibrate", help, argc, argv, opts, sizeof opts / sizeof opts[0], &model);
  if (rc) return rc < 0 ? CLI_OK : rc;
  if (!data) return cli_usage_error("calibrate", "--data is required");
  if (!bits) return cli_usage_error("calibrate", "--bits is required (8, 4, wXaY or a JSON file)");
  if (!output) return cli_usage_error("calibrate", "-o FILE.hqm is required");
  if (strcmp(split, "test") && strcmp(split, "train")) {
    return cli_usage_error("calibrate", "--calib-split must be 'train' or 'test', got '%s'", split);
  }
  co.images = images;
  co.batch = (int)batch;
  co.threads = (int)threads;
  co.momentum = momentum;
  co.percentile = percentile;

  hawq_error err;
  hawq_graph *g = NULL;
  hawq_dataset *ds = NULL;
  hawq_calib_range *ranges = NULL;
  hawq_qmodel *qm = NULL;
  hawq_bit_config cfg = {0};
  if (hawq_bit_config_parse(bits, &cfg, &err) || hawq_graph_load_onnx(model, NULL, &g, &err) ||
      hawq_dataset_load(data, split, &ds, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  hawq_preprocess pp = g->preprocess;
  if (hawq_preprocess_override(&pp, mean, std, NULL, &err) ||
      hawq_preprocess_check(&pp, ds->channels, "preprocessing", &err)) {
    rc = cli_report(&err);
    goto done;
  }
  if ((rc = cli_check_image_input(model, g, ds))) goto done;
  /* Check the bit configuration against the graph before the (slower) calibration. */
  hawq_qlayer *layers = NULL;
  int n_layers = 0;
  if (hawq_resolve_bits(g, &cfg, &layers, &n_layers, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  free(layers);
  /* Calibration keeps every intermediate tensor of a batch: at most 2 GiB of them. */
  int fit = hawq_calib_batch_limit(g, co.batch, (size_t)2 << 30);
  if (fit < co.batch) {
    fprintf(stderr, "hawq calibrate: batch %d instead of %d, to keep the activations under 2 GiB\n",
            fit, co.batch);
    co.batch = fit;
  }
  if (!(ranges = calloc((size_t)g->n_tensors, sizeof *ranges))) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }
  cli_progress prog;
  int64_t total = co.images < ds->count ? co.images : ds->count;
  co.images = total;
  cli_progress_start(&prog, "calibrate", total);
  double t0 = cli_now();
  if (hawq_calibrate(g, ds, &pp, &co, ranges, show_progress, &prog, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  cli_progress_finish(&prog);
  double calib_seconds = cli_now() - t0;
  if (hawq_lower(g, ranges, &cfg, &pp, &qm, NULL, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  qm->calibration_json = hawq_calib_json(&co, ds->source);
  qm->source_name = strdup(model);
  if (cli_file_crc(model, &qm->source_crc32, &qm->source_size, &err) ||
      hawq_qmodel_save(qm, output, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  hawq_qcost cost = hawq_qmodel_cost(qm, -1);
  int64_t float_params = 0;
  for (int k = 0; k < g->n_nodes; k++) float_params += hawq_node_params(g, k);
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "output", output);
    cJSON_AddNumberToObject(o, "calib_images", (double)total);
    cJSON_AddNumberToObject(o, "calib_seconds", calib_seconds);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)cost.bytes);
    cJSON_AddNumberToObject(o, "float_bytes", 4.0 * (double)float_params);
    cJSON_AddNumberToObject(o, "bops", (double)cost.bops);
    cJSON_AddNumberToObject(o, "macs", (double)cost.macs);
    cJSON_AddRawToObject(o, "bits", qm->bits_json ? qm->bits_json : "null");
    char *s = cJSON_Print(o);
    if (s) puts(s);
    cJSON_free(s);
    cJSON_Delete(o);
  } else {
    char a[32], b[32];
    printf(
        "wrote %s: %d integer ops, weights %s bytes (fp32 %s), %s BOPS per image; calibrated "
        "on %lld images in %.1f s\n",
        output, qm->n_nodes, cli_si((double)cost.bytes, a, sizeof a),
        cli_si(4.0 * (double)float_params, b, sizeof b),
        cli_si((double)cost.bops, (char[32]){0}, 32), (long long)total, calib_seconds);
  }
done:
  hawq_bit_config_free(&cfg);
  free(ranges);
  hawq_qmodel_destroy(qm);
  hawq_dataset_destroy(ds);
  hawq_graph_destroy(g);
  return rc;
}
