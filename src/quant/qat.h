/* Quantization-aware fine-tuning (ARCHITECTURE sections 1 and 3, "Simulation").
 *
 * The float model is trained with FakeQuant nodes (graph.h) placed where lowering quantizes:
 *   - every Conv/Gemm weight, per output channel at the layer's weight bits (after BN folding);
 *   - every value lowering stores (the graph input, each op's output at its storage width:
 *     4/8 bits where convolutions read it, 16 for the residual stream, pools and concats);
 *   - the requantized copy a convolution reads when the value is stored wider.
 * Their scales and integer ranges are not re-derived here: each step lowers the current
 * weights and activation ranges (hawq_lower) and copies every quantizer's scale and clamp from
 * the integer program, so the simulation follows lowering's rules by construction, and the
 * model lowered at the end has exactly the scales it was trained with. Gradients pass the
 * rounding straight through (the STE), masked where an activation is clamped.
 *
 * Activation ranges start from calibration and follow the batches' min and max by an
 * exponential moving average (momentum 0.99, as HAWQ-V3's QuantAct) until act_freeze_step,
 * then stay fixed. BatchNormalization runs on batch statistics, updating its running ones, for
 * the first bn_freeze_step steps (HAWQ-V3's unfolded path: weights quantized before BN); then it
 * is folded into the convolution with its running statistics, which stay frozen, and the folded
 * weights W' are what is quantized and trained (its folded path). bn_freeze_step 0 folds from
 * the start, as HAWQ-V3's documented --fix-BN runs do.
 *
 * Optional knowledge distillation from the fp32 model: loss = (1 - a) * CE + a * T^2 *
 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.
 *
 *   hawq_qat *q;
 *   hawq_qat_create(g, &cfg, ranges, &opt, &q, &err);   // ranges: hawq_calibrate on g
 *   for (step...) hawq_qat_step(q, images, labels, lr, &loss, &correct, &err);
 *   hawq_qat_fold(q, &err);                               // if bn_freeze_step was not reached
 *   hawq_qat_logits(q, images, &logits, &err);            // the fake-quant model, eval mode
 *   hawq_qat_lower(q, &qmodel, &err);                     // the integer program
 *   hawq_qat_destroy(q);
 */
#ifndef HAWQ_QUANT_QAT_H
#define HAWQ_QUANT_QAT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/graph.h"
#include "float/train.h"
#include "quant/calib.h"
#include "quant/lower.h"

typedef struct hawq_qat_options {
  int batch;   /* images per step (>= 1) */
  int threads; /* 0 means 1 */
  hawq_optim_options optim;
  int64_t bn_freeze_step;     /* steps with live BN before folding (0: fold at once) */
  int64_t act_freeze_step;    /* steps that update the activation ranges (< 0: all) */
  double act_momentum;        /* EMA weight of the old range, [0, 1) */
  double distill_weight;      /* a in [0, 1]; 0: no distillation */
  double distill_temperature; /* T > 0 */
  float bn_momentum;          /* live BN's running-statistics momentum; 0 means 0.1 */
} hawq_qat_options;

/* Defaults: batch 128, SGD momentum 0.9 (Nesterov) weight decay 1e-4, BN folded at once,
 * ranges always updated with momentum 0.99, no distillation (a 0.5, T 4.0 when enabled). */
hawq_qat_options hawq_qat_defaults(void);

typedef struct hawq_qat hawq_qat;

/* g: the float model (copied; with distillation it is also the teacher and must outlive q).
 * cfg: the bit widths (borrowed: must outlive q). ranges: g->n_tensors calibrated ranges. Fails
 * like hawq_lower on a model it cannot lower. */
hawq_status hawq_qat_create(const hawq_graph *g, const hawq_bit_config *cfg,
                            const hawq_calib_range *ranges, const hawq_qat_options *opt,
                            hawq_qat **out, hawq_error *err);
void hawq_qat_destroy(hawq_qat *q);

/* One optimisation step on a batch of opt->batch images (NHWC, preprocessed) and labels: the
 * quantizers' scales from the current ranges, forward, loss, backward, update, then the range
 * update. *loss and *correct (top-1 hits) may be NULL. */
hawq_status hawq_qat_step(hawq_qat *q, const float *images, const int32_t *labels, float lr,
                          double *loss, int64_t *correct, hawq_error *err);

/* Folds BN now (no-op once folded). */
hawq_status hawq_qat_fold(hawq_qat *q, hawq_error *err);
bool hawq_qat_folded(const hawq_qat *q);
int64_t hawq_qat_steps(const hawq_qat *q);

/* The fake-quant model's logits on a batch of opt->batch images, inference mode (BN, when not
 * yet folded, by its running statistics). *logits (batch x classes) stays valid until the next
 * call on q. */
hawq_status hawq_qat_logits(hawq_qat *q, const float *images, const float **logits,
                            int64_t *classes, hawq_error *err);

/* Lowers the current weights and ranges (folding BN first if needed). */
hawq_status hawq_qat_lower(hawq_qat *q, hawq_qmodel **out, hawq_error *err);

/* The current float model (BN folded once hawq_qat_fold has run) and its activation ranges,
 * for saving; owned by q. */
const hawq_graph *hawq_qat_graph(hawq_qat *q);
const hawq_calib_range *hawq_qat_ranges(const hawq_qat *q);

/* The value that tensor `name` of the float model had in the last forward (after its fake
 * quantizer when it has one; the batch first, NHWC), or NULL when the forward does not keep it. */
const float *hawq_qat_value(const hawq_qat *q, const char *name);

/* The distillation term weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)), the
 * mean over rows of (rows x classes) logits, and its gradient with respect to the student's
 * logits into grad (rows x classes; may be NULL). */
double hawq_distill_loss(const float *student, const float *teacher, int64_t rows, int64_t classes,
                         double temperature, double weight, float *grad);

/* Number of fake quantizers: weights (per channel) and activations. */
void hawq_qat_count(const hawq_qat *q, int *weights, int *activations);

#endif
