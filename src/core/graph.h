/* The float graph: hawq's one IR for a trained network, made by the ONNX importer and read by
 * the float engine (and later by training, calibration and lowering).
 *
 * Tensors have a logical shape in ONNX order (N,C,H,W for images) and a physical layout: rank 4
 * is stored NHWC, every other rank row-major in logical order. A *batched* tensor has the batch
 * as dimension 0; its dims[0] is recorded as 1 and becomes the plan's batch size. Parameters
 * (initializers and folded constants) are stored in physical layout; a convolution's weight,
 * logical (K, C/g, R, S), is therefore stored (K, R, S, C/g).
 *
 * Nodes are in execution order and each has exactly one output tensor. Shape subgraphs,
 * Identity, Dropout and constant expressions are folded away by the importer; what is left is
 * the compute ops below. */
#ifndef HAWQ_CORE_GRAPH_H
#define HAWQ_CORE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hawq/hawq.h"

/* Largest tensor hawq accepts, in elements, per sample for batched tensors: 2^32 floats is
 * 16 GiB. Shapes beyond it are refused at import instead of failing in malloc. */
#define HAWQ_MAX_TENSOR_ELEMENTS ((int64_t)1 << 32)

typedef enum hawq_tensor_kind {
  HAWQ_TENSOR_INPUT,      /* graph input, filled by the caller */
  HAWQ_TENSOR_ACTIVATION, /* computed by a node */
  HAWQ_TENSOR_PARAM,      /* constant data owned by the graph */
} hawq_tensor_kind;

typedef struct hawq_tensor {
  char *name; /* ONNX value name (unique in the graph) */
  hawq_tensor_kind kind;
  int rank;
  int64_t dims[HAWQ_MAX_RANK]; /* logical; dims[0] == 1 when batched */
  bool batched;
  float *data;  /* HAWQ_TENSOR_PARAM only: physical layout, 64-byte aligned */
  int producer; /* index of the node computing it, -1 otherwise */
} hawq_tensor;

typedef enum hawq_op {
  HAWQ_OP_CONV,
  HAWQ_OP_BATCHNORM,
  HAWQ_OP_RELU,
  HAWQ_OP_CLIP,
  HAWQ_OP_LEAKY_RELU,
  HAWQ_OP_ADD,
  HAWQ_OP_SUB,
  HAWQ_OP_MUL,
  HAWQ_OP_DIV,
  HAWQ_OP_MAXPOOL,
  HAWQ_OP_AVGPOOL,
  HAWQ_OP_GLOBAL_AVGPOOL,
  HAWQ_OP_GLOBAL_MAXPOOL,
  HAWQ_OP_GEMM,
  HAWQ_OP_RESHAPE,
  HAWQ_OP_TRANSPOSE,
  HAWQ_OP_CONCAT,
  HAWQ_OP_PAD,
  HAWQ_OP_SOFTMAX,
  HAWQ_OP_FAKEQUANT, /* quantization-aware training only (quant/qat.c); never imported */
  HAWQ_OP_COUNT
} hawq_op;

/* inputs: X, W (K,R,S,C/g), B (K) or -1. */
typedef struct hawq_conv_attr {
  int groups;
  int stride[2];   /* h, w */
  int dilation[2]; /* h, w */
  int pad[4];      /* top, left, bottom, right */
} hawq_conv_attr;

/* inputs: X. */
typedef struct hawq_pool_attr {
  int kernel[2];
  int stride[2];
  int dilation[2];
  int pad[4]; /* top, left, bottom, right (ceil_mode already folded into the output size) */
  bool count_include_pad;
} hawq_pool_attr;

/* inputs: X, scale, bias, mean, var (all (C)); channel axis is logical axis 1. */
typedef struct hawq_batchnorm_attr {
  float epsilon;
} hawq_batchnorm_attr;

/* inputs: X. */
typedef struct hawq_clip_attr {
  float min, max;
} hawq_clip_attr;

typedef struct hawq_leaky_relu_attr {
  float alpha;
} hawq_leaky_relu_attr;

/* Y (rows, n_out) = X (rows, k) * W^T + B: inputs X (rank >= 2, rank != 4, rows = product of
 * all but the last dim), W (n_out, k), B (n_out) or -1. Gemm's alpha and beta are folded into W
 * and B; a bias that is not a vector becomes a separate Add. */
typedef struct hawq_gemm_attr {
  int unused;
} hawq_gemm_attr;

/* inputs: X; logical reshape (the output tensor carries the shape). */
typedef struct hawq_reshape_attr {
  int unused;
} hawq_reshape_attr;

/* inputs: X; output logical dim i is input logical dim perm[i]. */
typedef struct hawq_transpose_attr {
  int perm[HAWQ_MAX_RANK];
} hawq_transpose_attr;

/* inputs: n tensors (at most HAWQ_MAX_CONCAT_INPUTS), joined on logical axis. */
#define HAWQ_MAX_CONCAT_INPUTS 64
typedef struct hawq_concat_attr {
  int axis;
} hawq_concat_attr;

/* inputs: X; logical pads (begin for every axis, then end; negative crops), constant value. */
typedef struct hawq_pad_attr {
  int64_t pads[2 * HAWQ_MAX_RANK];
  float value;
} hawq_pad_attr;

/* inputs: X; softmax over logical axes [axis, axis_end) taken as one flattened axis
 * (axis_end = axis + 1 since opset 13; = rank before). */
typedef struct hawq_softmax_attr {
  int axis, axis_end;
} hawq_softmax_attr;

/* inputs: X (and S with given_scales). Fake quantization, the float image of the integer
 * contract (ARCHITECTURE section 3) for quantization-aware training, with a straight-through
 * gradient:
 *   per_channel (weights): per row r of dim 0, s_r = max|x_r| / (2^(bits-1) - 1) (1 when the
 *     row is 0), y = clamp(round(x / s_r), -(2^(bits-1) - 1), 2^(bits-1) - 1) * s_r, rounding
 *     half away from zero, in double; the gradient passes unchanged.
 *   given_scales (biases): per row r of dim 0, y = round(x_r / S[r]) * S[r] in double, S a
 *     constant of the graph (the accumulator's scale); the gradient passes unchanged.
 *   else (activations): y = clamp(round(x / scale), lo, hi) * scale; the gradient passes where
 *     round(x / scale) lies in [lo, hi].
 * Made by quant/qat.c, which sets scale, lo and hi from lowering; importers never make it. */
typedef struct hawq_fakequant_attr {
  bool per_channel;
  bool given_scales;
  int bits;       /* per_channel */
  double scale;   /* per tensor, > 0 */
  int32_t lo, hi; /* per tensor */
} hawq_fakequant_attr;

typedef struct hawq_node {
  hawq_op op;
  char *name;    /* the ONNX node's name, or "<OpType>_<index>" when it has none */
  char *op_type; /* the ONNX op type it came from (messages, info) */
  int n_inputs;
  int *inputs; /* n_inputs tensor indices, owned; -1 for an absent optional input */
  int output;
  union {
    hawq_conv_attr conv;
    hawq_pool_attr pool;
    hawq_batchnorm_attr bn;
    hawq_clip_attr clip;
    hawq_leaky_relu_attr leaky;
    hawq_gemm_attr gemm;
    hawq_reshape_attr reshape;
    hawq_transpose_attr transpose;
    hawq_concat_attr concat;
    hawq_pad_attr pad;
    hawq_softmax_attr softmax;
    hawq_fakequant_attr fakequant;
  } attr;
} hawq_node;

#define HAWQ_MAX_METADATA 64

struct hawq_graph {
  char *source; /* file name (messages) */
  int64_t opset;
  int n_tensors, cap_tensors;
  hawq_tensor *tensors;
  int n_nodes, cap_nodes;
  hawq_node *nodes;
  int n_inputs, n_outputs;
  int *inputs;  /* tensor indices of the runtime graph inputs */
  int *outputs; /* tensor indices of the graph outputs */
  int n_meta;
  char *meta_key[HAWQ_MAX_METADATA];
  char *meta_value[HAWQ_MAX_METADATA];
  char *producer_name;        /* e.g. "pytorch 1.13.0" */
  hawq_preprocess preprocess; /* from metadata_props (hawq.input.*), validated at import */
};

/* Elements of a tensor per sample (batched) or in all (not batched); dims were checked at
 * import, so this cannot overflow. */
int64_t hawq_tensor_numel(const hawq_tensor *t);

/* Physical dims of a logical shape: (d0, d2, d3, d1) for rank 4, else the same. */
void hawq_physical_dims(int rank, const int64_t *logical, int64_t *physical);
/* Physical axis holding logical axis `axis`. */
int hawq_physical_axis(int rank, int axis);

const char *hawq_op_name(hawq_op op);

/* Construction helpers for the importer and tests. Return the new index, or -1 if out of
 * memory. Names are copied. */
hawq_graph *hawq_graph_new(const char *source);
int hawq_graph_add_tensor(hawq_graph *g, const char *name, hawq_tensor_kind kind, int rank,
                          const int64_t *dims, bool batched);
int hawq_graph_add_node(hawq_graph *g, hawq_op op, const char *name, const char *op_type,
                        int n_inputs, const int *inputs, int output);
/* 64-byte aligned zeroed float array for a parameter; NULL if out of memory. */
float *hawq_alloc_floats(size_t n);
void hawq_free(void *p);

/* Parameters and MACs of one node (MACs per sample; padded taps counted, as the anchors do). */
int64_t hawq_node_params(const hawq_graph *g, int node);
int64_t hawq_node_macs(const hawq_graph *g, int node);

#endif
