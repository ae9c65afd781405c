/* Architectures hawq can build and train from scratch, as graphs in the same IR the importer
 * makes (so training, export and quantization treat them like any imported model):
 *
 *   resnet<6n+2>  (resnet8, resnet14, resnet20, resnet32, ...) He et al.'s CIFAR ResNets: a 3x3
 *                 stem of 16 channels, three stages of n basic blocks at 16/32/64 channels
 *                 (stride 2 entering stages 2 and 3, projection shortcuts: 1x1 conv + BN),
 *                 global average pool, one fully connected layer. For 28x28 or 32x32 inputs.
 *   resnet18, resnet50  torchvision's ResNets (basic / bottleneck blocks, v1.5 strides, 64..512
 *                 channels). Inputs of at least 112 pixels get the 7x7/2 stem and 3x3/2 max
 *                 pool; smaller ones a 3x3/1 stem without pooling, so they keep resolution.
 *
 * Initialisation follows torchvision: Kaiming normal (fan out) for convolutions, BN scale 1 and
 * bias 0, the fully connected layer uniform in +-1/sqrt(fan_in). Names follow PyTorch's module
 * paths (layer1.0.conv1.weight, ...). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "core/preprocess.h"
#include "core/rng.h"
#include "core/status.h"
#include "float/train.h"

typedef struct builder {
  hawq_graph *g;
  hawq_rng rng;
  bool failed;
  int64_t c, h, w; /* shape of the current activation */
  int x;           /* current activation tensor */
} builder;

static int add_param(builder *b, const char *name, int rank, const int64_t *dims) {
  if (b->failed) return -1;
  int t = hawq_graph_add_tensor(b->g, name, HAWQ_TENSOR_PARAM, rank, dims, false);
  if (t < 0) {
    b->failed = true;
    return -1;
  }
  hawq_tensor *tt = &b->g->tensors[t];
  tt->data = hawq_alloc_floats((size_t)hawq_tensor_numel(tt));
  if (!tt->data) b->failed = true;
  return t;
}

static int add_activation(builder *b, const char *name, int rank, const int64_t *dims) {
  if (b->failed) return -1;
  int t = hawq_graph_add_tensor(b->g, name, HAWQ_TENSOR_ACTIVATION, rank, dims, true);
  if (t < 0) b->failed = true;
  return t;
}

static int add_node(builder *b, hawq_op op, const char *name, const char *op_type, int n_inputs,
                    const int *inputs, int output) {
  if (b->failed) return -1;
  int k = hawq_graph_add_node(b->g, op, name, op_type, n_inputs, inputs, output);
  if (k < 0) b->failed = true;
  return k;
}

/* conv (no bias) of the current activation; returns the output tensor, which becomes current. */
static int conv(builder *b, const char *name, int64_t k, int kernel, int stride, int pad) {
  char buf[160];
  int64_t wd[4] = {k, b->c, kernel, kernel};
  snprintf(buf, sizeof buf, "%s.weight", name);
  int w = add_param(b, buf, 4, wd);
  if (w >= 0) {
    /* Kaiming normal, fan_out, gain sqrt(2); physical layout does not matter for iid draws. */
    double sd = sqrt(2.0 / (double)(k * kernel * kernel));
    hawq_tensor *t = &b->g->tensors[w];
    for (int64_t i = 0; i < hawq_tensor_numel(t); i++)
      t->data[i] = (float)(sd * hawq_rng_normal(&b->rng));
  }
  int64_t p = (b->h + 2 * pad - kernel) / stride + 1, q = (b->w + 2 * pad - kernel) / stride + 1;
  int64_t yd[4] = {1, k, p, q};
  int y = add_activation(b, name, 4, yd);
  int in[3] = {b->x, w, -1};
  int node = add_node(b, HAWQ_OP_CONV, name, "Conv", 3, in, y);
  if (node >= 0) {
    hawq_conv_attr *a = &b->g->nodes[node].attr.conv;
    *a = (hawq_conv_attr){
        .groups = 1, .stride = {stride, stride}, .dilation = {1, 1}, .pad = {pad, pad, pad, pad}};
  }
  b->x = y;
  b->c = k;
  b->h = p;
  b->w = q;
  return y;
}

static int batchnorm(builder *b, const char *name) {
  char buf[160];
  int64_t cd[1] = {b->c};
  const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
  int in[5] = {b->x, -1, -1, -1, -1};
  for (int i = 0; i < 4; i++) {
    snprintf(buf, sizeof buf, "%s.%s", name, suffix[i]);
    in[i + 1] = add_param(b, buf, 1, cd);
    if (in[i + 1] >= 0 && (i == 0 || i == 3)) {
      hawq_tensor *t = &b->g->tensors[in[i + 1]];
      for (int64_t j = 0; j < b->c; j++) t->data[j] = 1.0f;
    }
  }
  int64_t yd[4] = {1, b->c, b->h, b->w};
  int y = add_activation(b, name, 4, yd);
  int node = add_node(b, HAWQ_OP_BATCHNORM, name, "BatchNormalization", 5, in, y);
  if (node >= 0) b->g->nodes[node].attr.bn.epsilon = 1e-5f;
  b->x = y;
  return y;
}

static int relu(builder *b, const char *name) {
  int64_t yd[4] = {1, b->c, b->h, b->w};
  int y = add_activation(b, name, 4, yd);
  int in[1] = {b->x};
  add_node(b, HAWQ_OP_RELU, name, "Relu", 1, in, y);
  b->x = y;
  return y;
}

static int add(builder *b, const char *name, int other) {
  int64_t yd[4] = {1, b->c, b->h, b->w};
  int y = add_activation(b, name, 4, yd);
  int in[2] = {b->x, other};
  add_node(b, HAWQ_OP_ADD, name, "Add", 2, in, y);
  b->x = y;
  return y;
}

/* conv + BN (+ relu) */
static void conv_bn(builder *b, const char *prefix, const char *conv_name, const char *bn_name,
                    int64_t k, int kernel, int stride, bool with_relu) {
  char cn[128], bn[128], rn[128];
  snprintf(cn, sizeof cn, "%s%s", prefix, conv_name);
  snprintf(bn, sizeof bn, "%s%s", prefix, bn_name);
  conv(b, cn, k, kernel, stride, kernel / 2);
  batchnorm(b, bn);
  if (with_relu) {
    snprintf(rn, sizeof rn, "%s%s.relu", prefix, bn_name);
    relu(b, rn);
  }
}

/* A residual block: basic (two 3x3) or bottleneck (1x1, 3x3 with the stride, 1x1 to 4*width). */
static void block(builder *b, const char *prefix, int64_t width, int stride, bool bottleneck) {
  int64_t out_c = bottleneck ? 4 * width : width;
  int in = b->x;
  int64_t in_c = b->c, in_h = b->h, in_w = b->w;
  if (bottleneck) {
    conv_bn(b, prefix, "conv1", "bn1", width, 1, 1, true);
    conv_bn(b, prefix, "conv2", "bn2", width, 3, stride, true);
    conv_bn(b, prefix, "conv3", "bn3", out_c, 1, 1, false);
  } else {
    conv_bn(b, prefix, "conv1", "bn1", width, 3, stride, true);
    conv_bn(b, prefix, "conv2", "bn2", width, 3, 1, false);
  }
  int main_path = b->x;
  int64_t oc = b->c, oh = b->h, ow = b->w;
  int shortcut = in;
  if (stride != 1 || in_c != out_c) {
    b->x = in;
    b->c = in_c;
    b->h = in_h;
    b->w = in_w;
    conv_bn(b, prefix, "downsample.0", "downsample.1", out_c, 1, stride, false);
    shortcut = b->x;
  }
  b->x = main_path;
  b->c = oc;
  b->h = oh;
  b->w = ow;
  char an[128], rn[128];
  snprintf(an, sizeof an, "%sadd", prefix);
  snprintf(rn, sizeof rn, "%srelu", prefix);
  add(b, an, shortcut);
  relu(b, rn);
}

static void classifier(builder *b, int classes) {
  int64_t pd[4] = {1, b->c, 1, 1};
  int pooled = add_activation(b, "avgpool", 4, pd);
  int in1[1] = {b->x};
  add_node(b, HAWQ_OP_GLOBAL_AVGPOOL, "avgpool", "GlobalAveragePool", 1, in1, pooled);
  int64_t fd[2] = {1, b->c};
  int flat = add_activation(b, "flatten", 2, fd);
  int in2[1] = {pooled};
  add_node(b, HAWQ_OP_RESHAPE, "flatten", "Flatten", 1, in2, flat);
  int64_t wd[2] = {classes, b->c}, bd[1] = {classes};
  int w = add_param(b, "fc.weight", 2, wd), bias = add_param(b, "fc.bias", 1, bd);
  if (!b->failed) {
    double bound = 1.0 / sqrt((double)b->c);
    for (int64_t i = 0; i < classes * b->c; i++) {
      b->g->tensors[w].data[i] = (float)(bound * (2 * hawq_rng_uniform(&b->rng) - 1));
    }
    for (int64_t i = 0; i < classes; i++) {
      b->g->tensors[bias].data[i] = (float)(bound * (2 * hawq_rng_uniform(&b->rng) - 1));
    }
  }
  int64_t ld[2] = {1, classes};
  int logits = add_activation(b, "logits", 2, ld);
  int in3[3] = {flat, w, bias};
  add_node(b, HAWQ_OP_GEMM, "fc", "Gemm", 3, in3, logits);
  b->x = logits;
}

static void cifar_resnet(builder *b, int blocks_per_stage, int classes) {
  conv_bn(b, "", "conv1", "bn1", 16, 3, 1, true);
  const int64_t widths[3] = {16, 32, 64};
  for (int s = 0; s < 3; s++) {
    for (int i = 0; i < blocks_per_stage; i++) {
      char prefix[64];
      snprintf(prefix, sizeof prefix, "layer%d.%d.", s + 1, i);
      block(b, prefix, widths[s], s > 0 && i == 0 ? 2 : 1, false);
    }
  }
  classifier(b, classes);
}

static void imagenet_resnet(builder *b, const int *blocks, bool bottleneck, int classes) {
  if (b->h >= 112 && b->w >= 112) {
    conv_bn(b, "", "conv1", "bn1", 64, 7, 2, true);
    int64_t p = (b->h + 2 - 3) / 2 + 1, q = (b->w + 2 - 3) / 2 + 1;
    int64_t yd[4] = {1, b->c, p, q};
    int y = add_activation(b, "maxpool", 4, yd);
    int in[1] = {b->x};
    int node = add_node(b, HAWQ_OP_MAXPOOL, "maxpool", "MaxPool", 1, in, y);
    if (node >= 0) {
      b->g->nodes[node].attr.pool = (hawq_pool_attr){
          .kernel = {3, 3}, .stride = {2, 2}, .dilation = {1, 1}, .pad = {1, 1, 1, 1}};
    }
    b->x = y;
    b->h = p;
    b->w = q;
  } else {
    conv_bn(b, "", "conv1", "bn1", 64, 3, 1, true);
  }
  const int64_t widths[4] = {64, 128, 256, 512};
  for (int s = 0; s < 4; s++) {
    for (int i = 0; i < blocks[s]; i++) {
      char prefix[64];
      snprintf(prefix, sizeof prefix, "layer%d.%d.", s + 1, i);
      block(b, prefix, widths[s], s > 0 && i == 0 ? 2 : 1, bottleneck);
    }
  }
  classifier(b, classes);
}

/* Depth of a CIFAR ResNet name ("resnet20" -> 20), or 0. */
static int cifar_depth(const char *name) {
  if (strncmp(name, "resnet", 6) != 0) return 0;
  char *end;
  long d = strtol(name + 6, &end, 10);
  if (*end || d < 8 || d > 200 || (d - 2) % 6 != 0) return 0;
  return (int)d;
}

hawq_status hawq_arch_build(const hawq_arch_options *o, hawq_graph **out, hawq_error *err) {
  *out = NULL;
  const char *name = o->name ? o->name : "";
  bool is18 = !strcmp(name, "resnet18"), is50 = !strcmp(name, "resnet50");
  int depth = is18 || is50 ? 0 : cifar_depth(name);
  if (!is18 && !is50 && !depth) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "unknown architecture '%s': expected resnet18, resnet50 or resnet<6n+2> "
                     "(resnet8, resnet14, resnet20, resnet32, ...)",
                     name);
  }
  if (o->channels < 1 || o->channels > HAWQ_MAX_CHANNELS || o->height < 8 || o->width < 8 ||
      o->height > 4096 || o->width > 4096 || o->classes < 2 || o->classes > 100000) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "architecture '%s': input %dx%dx%d and %d classes are out of range (1-%d "
                     "channels, 8-4096 pixels, 2-100000 classes)",
                     name, o->channels, o->height, o->width, o->classes, HAWQ_MAX_CHANNELS);
  }
  char source[96];
  snprintf(source, sizeof source, "<%s>", name);
  builder b = {.g = hawq_graph_new(source), .rng = hawq_rng_seed(o->seed)};
  if (!b.g) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  b.g->opset = 13;
  b.c = o->channels;
  b.h = o->height;
  b.w = o->width;
  int64_t in_dims[4] = {1, o->channels, o->height, o->width};
  b.x = hawq_graph_add_tensor(b.g, "input", HAWQ_TENSOR_INPUT, 4, in_dims, true);
  b.g->inputs = malloc(sizeof(int));
  b.g->outputs = malloc(sizeof(int));
  if (b.x < 0 || !b.g->inputs || !b.g->outputs) b.failed = true;
  if (!b.failed) {
    b.g->n_inputs = 1;
    b.g->inputs[0] = b.x;
  }
  if (depth) {
    cifar_resnet(&b, (depth - 2) / 6, o->classes);
  } else {
    static const int blocks18[4] = {2, 2, 2, 2}, blocks50[4] = {3, 4, 6, 3};
    imagenet_resnet(&b, is18 ? blocks18 : blocks50, is50, o->classes);
  }
  if (b.failed || b.h < 1 || b.w < 1) {
    hawq_graph_destroy(b.g);
    return b.failed ? hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory building '%s'", name)
                    : hawq_fail(err, HAWQ_ERR_INVALID_ARG, "input too small for '%s'", name);
  }
  b.g->n_outputs = 1;
  b.g->outputs[0] = b.x;
  b.g->preprocess = hawq_preprocess_default();
  *out = b.g;
  return HAWQ_OK;
}
