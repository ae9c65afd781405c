/* Lowering: a float graph, its calibrated ranges and a bit configuration become an integer
 * program (qmodel.h). docs/quantization.md explains every choice; in short:
 *
 *   Conv/Gemm [-> BatchNormalization] [-> Add(residual)] [-> Relu|Clip]   one QConv
 *   Add [-> Relu|Clip]                                                    one QAdd
 *   MaxPool, GlobalMaxPool / AveragePool, GlobalAveragePool / Concat      QMaxPool / QAvgPool /
 * QConcat Relu|Clip alone                                                       a clamping QRequant
 *   Flatten/Reshape to (N, C*H*W) before a Gemm                           folded into its weights
 *   Softmax at the output                                                 dropped (argmax is
 * unchanged)
 *
 * Each value a lowered op produces is stored at the bits its consumers read when they are all
 * Conv/Gemm layers (the widest, others get a QRequant), else at 16 bits (the residual stream,
 * pool and concat inputs); the logits are int32. Layers are the Conv and Gemm nodes, named as
 * in the float graph; each has weight bits and the bits of the activation it reads. */
#ifndef HAWQ_QUANT_LOWER_H
#define HAWQ_QUANT_LOWER_H

#include <stdbool.h>

#include "core/graph.h"
#include "quant/calib.h"
#include "quant/qmodel.h"

typedef struct hawq_layer_bits {
  char *name; /* a Conv or Gemm node of the float graph */
  int weight_bits, act_bits;
} hawq_layer_bits;

typedef struct hawq_bit_config {
  int weight_bits, act_bits; /* every layer not listed */
  bool pin_ends;             /* the first and the last layer at 8/8 unless listed */
  int n_layers;
  hawq_layer_bits *layers;
} hawq_bit_config;

/* spec: "8" or "4" (weights and activations, ends pinned at 8), "wXaY" (e.g. w4a8), or the path of
 * a JSON file: {"weight_bits": 8, "act_bits": 8, "pin_ends": true,
 *               "layers": {"<node name>": {"weight_bits": 4, "act_bits": 4}, ...}}
 * (every key optional; bits in [2, 8]; the keys "ilp" and "frontier", hawq allocate's summary, are
 * skipped). */
hawq_status hawq_bit_config_parse(const char *spec, hawq_bit_config *out, hawq_error *err);
void hawq_bit_config_free(hawq_bit_config *c);

/* The weight quantizer lowering applies to every output channel (docs/quantization.md):
 * symmetric, scale s = max|w| / (2^(bits-1) - 1) over the channel's n weights (1 when all are 0),
 * q = clamp(round(w / s), -(2^(bits-1) - 1), 2^(bits-1) - 1), rounding half away from zero. */
double hawq_weight_scale(const double *w, int64_t n, int bits);
int32_t hawq_weight_quantize(double w, double scale, int bits);

/* A quantizable layer of a float graph, in execution order. */
typedef struct hawq_qlayer {
  int node; /* the Conv or Gemm node */
  int weight_bits, act_bits;
} hawq_qlayer;

/* The graph's layers with the bits cfg gives them (*layers malloc'd, *n entries). Fails naming a
 * configured layer the graph does not have, or an unsupported construct. */
hawq_status hawq_resolve_bits(const hawq_graph *g, const hawq_bit_config *cfg, hawq_qlayer **layers,
                              int *n, hawq_error *err);

/* Lowers g. ranges: g->n_tensors calibrated ranges (hawq_calibrate); pp: the input preprocessing.
 * qtensor_of, when not NULL, receives for every float tensor the index of the qtensor holding its
 * value in its stored format (-1 for tensors that do not materialise). Fails with one line naming
 * the node: an unsupported op or pattern, an int32 accumulator bound that would overflow, a bias
 * that does not fit int32, or a rescale ratio out of the dyadic range. */
hawq_status hawq_lower(const hawq_graph *g, const hawq_calib_range *ranges,
                       const hawq_bit_config *cfg, const hawq_preprocess *pp, hawq_qmodel **out,
                       int *qtensor_of, hawq_error *err);

#endif
