/* hawq meta MODEL: show a model's metadata, or write its input preprocessing into a copy. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/graph.h"
#include "core/preprocess.h"
#include "core/status.h"
#include "onnx/export.h"

static const char help[] =
    "usage: hawq meta MODEL.onnx [--mean M[,M..]] [--std S[,S..]] [--pixel-scale X] [-o OUT.onnx]\n"
    "                 [--json]\n\n"
    "Without options, prints the model's metadata_props and the input preprocessing hawq reads\n"
    "from them. With --mean/--std/--pixel-scale, writes a copy of the model to OUT (which may be\n"
    "MODEL itself) with hawq.input.* set: x = (pixel * pixel_scale - mean[c]) / std[c]; one\n"
    "value applies to every channel. Everything else in the file is kept as it is.\n";

int cmd_meta(int argc, char **argv) {
  const char *mean = NULL, *std = NULL, *scale = NULL, *out = NULL;
  bool json = false;
  const cli_opt opts[] = {
      {"--mean", CLI_STRING, &mean, 0, 0},         {"--std", CLI_STRING, &std, 0, 0},
      {"--pixel-scale", CLI_STRING, &scale, 0, 0}, {"-o", CLI_STRING, &out, 0, 0},
      {"--json", CLI_FLAG, &json, 0, 0},
  };
  const char *pos[1];
  int rc = cli_parse_model("meta", help, argc, argv, opts, sizeof opts / sizeof opts[0], &pos[0]);
  if (rc) return rc < 0 ? CLI_OK : rc;
  bool setting = mean || std || scale;
  if (setting && !out) return cli_usage_error("meta", "-o OUT.onnx is needed to write metadata");
  if (!setting && out) return cli_usage_error("meta", "-o given but nothing to set");

  hawq_error err;
  hawq_graph *g = NULL;
  if (hawq_graph_load_onnx(pos[0], NULL, &g, &err)) return cli_report(&err);
  rc = CLI_OK;
  if (setting) {
    hawq_preprocess pp = g->preprocess;
    if (hawq_preprocess_override(&pp, mean, std, scale, &err)) {
      rc = cli_report(&err);
      goto done;
    }
    const hawq_tensor *in = &g->tensors[g->inputs[0]];
    int input_channels = in->rank == 4 ? (int)in->dims[1] : pp.channels;
    if (hawq_preprocess_check(&pp, input_channels, pos[0], &err) ||
        hawq_onnx_write_preprocess(pos[0], out, &pp, &err)) {
      rc = cli_report(&err);
      goto done;
    }
    printf("wrote %s\n", out);
    goto done;
  }
  const hawq_preprocess *pp = &g->preprocess;
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON *props = cJSON_AddObjectToObject(o, "metadata_props");
    for (int k = 0; k < g->n_meta; k++)
      cJSON_AddStringToObject(props, g->meta_key[k], g->meta_value[k]);
    cJSON *pre = cJSON_AddObjectToObject(o, "preprocess");
    cJSON_AddNumberToObject(pre, "pixel_scale", pp->pixel_scale);
    cJSON *mv = cJSON_AddArrayToObject(pre, "mean"), *sv = cJSON_AddArrayToObject(pre, "std");
    for (int c = 0; c < pp->channels; c++) {
      cJSON_AddItemToArray(mv, cJSON_CreateNumber(pp->mean[c]));
      cJSON_AddItemToArray(sv, cJSON_CreateNumber(pp->std[c]));
    }
    cJSON_AddBoolToObject(pre, "from_metadata", pp->has_metadata);
    char *text = cJSON_Print(o);
    if (text) puts(text);
    cJSON_free(text);
    cJSON_Delete(o);
  } else {
    for (int k = 0; k < g->n_meta; k++) printf("%s = %s\n", g->meta_key[k], g->meta_value[k]);
    if (!g->n_meta) printf("(no metadata_props)\n");
    printf("preprocess: x = (pixel * %.9g - mean) / std, mean", (double)pp->pixel_scale);
    for (int c = 0; c < pp->channels; c++) printf("%s%.6g", c ? "," : " ", (double)pp->mean[c]);
    printf(" std");
    for (int c = 0; c < pp->channels; c++) printf("%s%.6g", c ? "," : " ", (double)pp->std[c]);
    printf(" (%s)\n", pp->has_metadata ? "from metadata" : "defaults");
  }
done:
  hawq_graph_destroy(g);
  return rc;
}
