/* Training: gradients of any imported or built graph, an optimizer, and learning-rate schedules.
 *
 * A train plan runs a graph forward for a fixed batch keeping every intermediate tensor (the
 * backward reads them), then backward from a softmax cross-entropy loss on the graph's logits,
 * leaving the gradient of every trainable parameter. Trainable parameters are the initializers
 * of the trainable ops: Conv and Gemm weights and biases, BatchNormalization scale and bias.
 * BN running statistics are buffers, updated by forwards in training mode. Other constants
 * (a Mul by a constant, a Pad value) stay fixed.
 *
 *   hawq_train_plan *tp;
 *   hawq_train_plan_create(g, &(hawq_train_options){.batch = 128, .threads = 2}, &tp, &err);
 *   for (each batch) {
 *     hawq_train_plan_forward(tp, images, true, &err);        // BN uses batch statistics
 *     double loss = hawq_train_plan_loss(tp, labels, 0.0f, &correct);
 *     hawq_train_plan_zero_grad(tp);
 *     hawq_train_plan_backward(tp, &err);
 *     hawq_optim_step(opt, tp, lr);                            // updates g's parameters
 *   }
 *
 * The plan updates the graph's parameter data in place; the graph must outlive it. Creating a
 * plan gives every trainable op its own parameters and BN buffers: an initializer that two of
 * them read (exporters merge equal initializers) is copied, adding tensors to the graph. */
#ifndef HAWQ_FLOAT_TRAIN_H
#define HAWQ_FLOAT_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/graph.h"

typedef struct hawq_train_options {
  int batch;         /* samples per step, >= 1 */
  int threads;       /* 0 means 1 */
  float bn_momentum; /* running-statistics momentum (PyTorch's convention); 0 means 0.1 */
  bool profile;      /* time every node's forward and backward */
} hawq_train_options;

typedef struct hawq_train_plan hawq_train_plan;

/* One trainable parameter: the graph tensor, its gradient, and whether weight decay applies
 * (conv and gemm weights; not biases or BN parameters). */
typedef struct hawq_param {
  int tensor;
  int64_t numel;
  float *value; /* the graph's data (physical layout) */
  float *grad;  /* same layout */
  bool decay;
} hawq_param;

hawq_status hawq_train_plan_create(hawq_graph *g, const hawq_train_options *opt,
                                   hawq_train_plan **out, hawq_error *err);
void hawq_train_plan_destroy(hawq_train_plan *p);

/* input: the batch in physical layout (NHWC). training: BN uses and updates batch statistics;
 * else it uses the running ones (as at inference). */
hawq_status hawq_train_plan_forward(hawq_train_plan *p, const float *input, bool training,
                                    hawq_error *err);
/* The logits of the last forward, (batch, classes) row-major. */
const float *hawq_train_plan_logits(const hawq_train_plan *p, int64_t *classes);
/* Softmax cross-entropy of the last forward's logits against labels (batch of them, each in
 * [0, classes)); remembers them for the backward. *correct (may be NULL) counts top-1 hits. */
double hawq_train_plan_loss(hawq_train_plan *p, const int32_t *labels, float smoothing,
                            int64_t *correct);
/* Zeroes the parameter gradients (activation gradients are reset by every backward). */
void hawq_train_plan_zero_grad(hawq_train_plan *p);
/* Accumulates d(loss)/d(param) into every parameter gradient. The gradients are those of the
 * `training` mode the last forward ran in (batch or running BN statistics). */
hawq_status hawq_train_plan_backward(hawq_train_plan *p, hawq_error *err);

/* The same with a weighted loss: d(loss)/d(logits) = ce_weight * (the cross-entropy's, from the
 * last hawq_train_plan_loss) + extra_grad (batch x classes, may be NULL), e.g. a distillation
 * term's. */
hawq_status hawq_train_plan_backward_ex(hawq_train_plan *p, float ce_weight,
                                        const float *extra_grad, hawq_error *err);
/* The min and max of the input of per-tensor FakeQuant node `node` in the last forward (the
 * batch's range, for quantization-aware training); false for any other node. */
bool hawq_train_plan_batch_range(const hawq_train_plan *p, int node, float *min, float *max);

/* Gives every Conv, Gemm and BatchNormalization node its own parameter tensors, copying an
 * initializer that several read (hawq_train_plan_create does this to its graph). */
hawq_status hawq_graph_untie_params(hawq_graph *g, hawq_error *err);

/* Tensor t's value from the last forward (batch first, physical layout), or NULL when the plan
 * does not keep it (an activation fused away). */
const float *hawq_train_plan_value(const hawq_train_plan *p, int t);

int hawq_train_plan_num_params(const hawq_train_plan *p);
hawq_param *hawq_train_plan_param(hawq_train_plan *p, int i);
/* With options.profile: seconds node `node` spent in forwards and in backwards so far. */
void hawq_train_plan_node_seconds(const hawq_train_plan *p, int node, double *forward,
                                  double *backward);
/* Bytes of activations, gradients and caches the plan holds. */
size_t hawq_train_plan_bytes(const hawq_train_plan *p);

/* ---- arch.c: architectures built from scratch (see arch.c for the list) ---- */

typedef struct hawq_arch_options {
  const char *name; /* "resnet20", "resnet18", ... */
  int channels, height, width;
  int classes;
  uint64_t seed; /* initialisation */
} hawq_arch_options;

/* A freshly initialised graph with input "input" (N, C, H, W) and output "logits" (N, classes);
 * preprocessing is the default (pixels / 255), for the caller to set. */
hawq_status hawq_arch_build(const hawq_arch_options *o, hawq_graph **out, hawq_error *err);

/* ---- optim.c ---- */

typedef enum hawq_optim_kind { HAWQ_OPTIM_SGD, HAWQ_OPTIM_ADAMW } hawq_optim_kind;

typedef struct hawq_optim_options {
  hawq_optim_kind kind;
  float momentum;          /* SGD (PyTorch's form: v = m v + g; p -= lr v) */
  bool nesterov;           /* SGD */
  float weight_decay;      /* SGD: L2 added to the gradient; AdamW: decoupled; decay params only */
  float beta1, beta2, eps; /* AdamW; 0 means 0.9, 0.999, 1e-8 */
  float clip_norm;         /* > 0: scale gradients so their global L2 norm is at most this */
} hawq_optim_options;

typedef struct hawq_optim hawq_optim;

hawq_status hawq_optim_create(const hawq_optim_options *opt, hawq_train_plan *tp, hawq_optim **out,
                              hawq_error *err);
void hawq_optim_destroy(hawq_optim *o);
/* One update of every parameter of tp from its gradient. Returns the gradient's global L2 norm
 * (before clipping). */
double hawq_optim_step(hawq_optim *o, hawq_train_plan *tp, float lr);
/* Optimizer state for checkpoints: `n_buffers` arrays per parameter (1 for SGD, 2 for AdamW),
 * each numel floats, and the step count. */
int hawq_optim_num_buffers(const hawq_optim *o);
float *hawq_optim_buffer(hawq_optim *o, int param, int which);
void hawq_optim_set_steps(hawq_optim *o, int64_t steps); /* resuming: AdamW's bias correction */

typedef enum hawq_schedule_kind {
  HAWQ_SCHEDULE_COSINE,
  HAWQ_SCHEDULE_STEP,
  HAWQ_SCHEDULE_CONSTANT
} hawq_schedule_kind;

typedef struct hawq_schedule {
  hawq_schedule_kind kind;
  float lr;           /* peak learning rate */
  float final_lr;     /* cosine: where it ends */
  int64_t warmup;     /* steps of linear warm-up from lr/100 to lr */
  int64_t total;      /* all steps */
  int64_t step_every; /* step: multiply by gamma every this many steps */
  float gamma;        /* step */
} hawq_schedule;

/* Learning rate at step (0-based). */
float hawq_schedule_lr(const hawq_schedule *s, int64_t step);

#endif
