/* hawq info MODEL: inputs, outputs, preprocessing, and every layer with its output shape,
 * parameters and MACs. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/graph.h"

static const char help[] =
    "usage: hawq info MODEL.onnx|MODEL.hqm [--json] [--verbose]\n\n"
    "Describes a model: inputs and outputs (logical ONNX shapes, N = batch), the input\n"
    "preprocessing from its metadata, and every layer with output shape, parameters and MACs\n"
    "per image. For an integer model (.hqm): every integer op with its types, weight bits,\n"
    "output scale and dyadic rescales, the model's weight size, MACs and BOPS, and the bit\n"
    "configuration and calibration it was made with.\n\n"
    "  --json      print the same as a JSON object\n"
    "  --verbose   (.hqm) every dyadic multiplier, weight scale and bias\n";

static void shape_string(const hawq_tensor *t, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int k = 0; k < t->rank && used < size; k++) {
    if (k == 0 && t->batched)
      used += (size_t)snprintf(buf + used, size - used, "N");
    else
      used +=
          (size_t)snprintf(buf + used, size - used, "%s%lld", k ? "x" : "", (long long)t->dims[k]);
  }
}

/* Short description of a node's attributes, e.g. "3x3/2 g32". */
static void node_detail(const hawq_graph *g, const hawq_node *n, char *buf, size_t size) {
  buf[0] = '\0';
  if (n->op == HAWQ_OP_CONV) {
    const hawq_tensor *w = &g->tensors[n->inputs[1]];
    const hawq_conv_attr *a = &n->attr.conv;
    int used = snprintf(buf, size, "%lldx%lld/%d", (long long)w->dims[2], (long long)w->dims[3],
                        a->stride[0]);
    if (a->groups > 1 && used < (int)size)
      used += snprintf(buf + used, size - used, " g%d", a->groups);
    if ((a->dilation[0] > 1 || a->dilation[1] > 1) && used < (int)size) {
      snprintf(buf + used, size - used, " d%d", a->dilation[0]);
    }
  } else if (n->op == HAWQ_OP_MAXPOOL || n->op == HAWQ_OP_AVGPOOL) {
    snprintf(buf, size, "%dx%d/%d", n->attr.pool.kernel[0], n->attr.pool.kernel[1],
             n->attr.pool.stride[0]);
  }
}

int cmd_info(int argc, char **argv) {
  bool json = false, verbose = false;
  const cli_opt opts[] = {{"--json", CLI_FLAG, &json, 0, 0},
                          {"--verbose", CLI_FLAG, &verbose, 0, 0}};
  const char *pos[1];
  int rc = cli_parse_model("info", help, argc, argv, opts, 2, &pos[0]);
  if (rc) return rc < 0 ? CLI_OK : rc;
  if (cli_is_qmodel(pos[0])) return q_info(pos[0], json, verbose);

  hawq_error err;
  hawq_graph *g = NULL;
  if (hawq_graph_load_onnx(pos[0], NULL, &g, &err)) return cli_report(&err);

  int64_t total_params = 0, total_macs = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    total_params += hawq_node_params(g, k);
    total_macs += hawq_node_macs(g, k);
  }
  const hawq_preprocess *pp = &g->preprocess;
  char shape[128], si1[32], si2[32];

  if (json) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", pos[0]);
    cJSON_AddStringToObject(root, "producer", g->producer_name ? g->producer_name : "");
    cJSON_AddNumberToObject(root, "opset", (double)g->opset);
    cJSON *ins = cJSON_AddArrayToObject(root, "inputs");
    cJSON *outs = cJSON_AddArrayToObject(root, "outputs");
    for (int pass = 0; pass < 2; pass++) {
      int n = pass ? g->n_outputs : g->n_inputs;
      for (int i = 0; i < n; i++) {
        const hawq_tensor *t = &g->tensors[pass ? g->outputs[i] : g->inputs[i]];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        shape_string(t, shape, sizeof shape);
        cJSON_AddStringToObject(o, "shape", shape);
        cJSON_AddItemToArray(pass ? outs : ins, o);
      }
    }
    cJSON *pre = cJSON_AddObjectToObject(root, "preprocess");
    cJSON_AddNumberToObject(pre, "pixel_scale", pp->pixel_scale);
    cJSON *mean = cJSON_AddArrayToObject(pre, "mean"), *sd = cJSON_AddArrayToObject(pre, "std");
    for (int c = 0; c < pp->channels; c++) {
      cJSON_AddItemToArray(mean, cJSON_CreateNumber(pp->mean[c]));
      cJSON_AddItemToArray(sd, cJSON_CreateNumber(pp->std[c]));
    }
    cJSON_AddBoolToObject(pre, "from_metadata", pp->has_metadata);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int k = 0; k < g->n_nodes; k++) {
      const hawq_node *n = &g->nodes[k];
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", n->name);
      cJSON_AddStringToObject(o, "op", hawq_op_name(n->op));
      cJSON_AddStringToObject(o, "onnx_op", n->op_type);
      shape_string(&g->tensors[n->output], shape, sizeof shape);
      cJSON_AddStringToObject(o, "output_shape", shape);
      cJSON_AddNumberToObject(o, "params", (double)hawq_node_params(g, k));
      cJSON_AddNumberToObject(o, "macs", (double)hawq_node_macs(g, k));
      cJSON_AddItemToArray(layers, o);
    }
    cJSON_AddNumberToObject(root, "params", (double)total_params);
    cJSON_AddNumberToObject(root, "macs", (double)total_macs);
    char *s = cJSON_Print(root);
    if (s) puts(s);
    cJSON_free(s);
    cJSON_Delete(root);
    hawq_graph_destroy(g);
    return s ? CLI_OK : CLI_INTERNAL;
  }

  printf("model       %s (%s, opset %lld)\n", pos[0], g->producer_name ? g->producer_name : "?",
         (long long)g->opset);
  for (int i = 0; i < g->n_inputs; i++) {
    shape_string(&g->tensors[g->inputs[i]], shape, sizeof shape);
    printf("input       %s  %s float32\n", g->tensors[g->inputs[i]].name, shape);
  }
  for (int i = 0; i < g->n_outputs; i++) {
    shape_string(&g->tensors[g->outputs[i]], shape, sizeof shape);
    printf("output      %s  %s float32\n", g->tensors[g->outputs[i]].name, shape);
  }
  printf("preprocess  x = (pixel * %.6g - mean) / std, mean", pp->pixel_scale);
  for (int c = 0; c < pp->channels; c++) printf("%s%.4g", c ? "," : " ", pp->mean[c]);
  printf(" std");
  for (int c = 0; c < pp->channels; c++) printf("%s%.4g", c ? "," : " ", pp->std[c]);
  printf(" (%s)\n\n", pp->has_metadata ? "model metadata" : "defaults: no hawq.input.* metadata");
  printf("%4s  %-40s %-15s %-10s %-16s %10s %10s\n", "#", "layer", "op", "", "output", "params",
         "MACs");
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    char detail[64];
    node_detail(g, n, detail, sizeof detail);
    shape_string(&g->tensors[n->output], shape, sizeof shape);
    int64_t params = hawq_node_params(g, k), macs = hawq_node_macs(g, k);
    printf("%4d  %-40.40s %-15s %-10s %-16s %10s %10s\n", k, n->name, hawq_op_name(n->op), detail,
           shape, params ? cli_si((double)params, si1, sizeof si1) : "-",
           macs ? cli_si((double)macs, si2, sizeof si2) : "-");
  }
  printf("\n%d layers, %lld parameters (%s), %s MACs per image\n", g->n_nodes,
         (long long)total_params, cli_si((double)total_params, si1, sizeof si1),
         cli_si((double)total_macs, si2, sizeof si2));
  hawq_graph_destroy(g);
  return CLI_OK;
}
