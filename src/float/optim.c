/* Optimizers (SGD with momentum, AdamW) and learning-rate schedules, with PyTorch's update
 * rules so that recipes carry over:
 *   SGD:   g' = g + wd p;  v = m v + g';  p -= lr (nesterov ? g' + m v : v)
 *   AdamW: p -= lr wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *          p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * Weight decay applies to conv and gemm weights only (hawq_param.decay): decaying BN scales and
 * biases only hurts small networks. */
#include <math.h>
#include <stdlib.h>

#include "core/status.h"
#include "float/train.h"

struct hawq_optim {
  hawq_optim_options opt;
  int n_params;
  float **buf; /* per param: n_buffers arrays */
  int n_buffers;
  int64_t steps;
};

hawq_status hawq_optim_create(const hawq_optim_options *opt, hawq_train_plan *tp, hawq_optim **out,
                              hawq_error *err) {
  *out = NULL;
  hawq_optim *o = calloc(1, sizeof *o);
  if (!o) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  o->opt = *opt;
  if (o->opt.kind == HAWQ_OPTIM_ADAMW) {
    if (o->opt.beta1 == 0) o->opt.beta1 = 0.9f;
    if (o->opt.beta2 == 0) o->opt.beta2 = 0.999f;
    if (o->opt.eps == 0) o->opt.eps = 1e-8f;
  }
  o->n_buffers = o->opt.kind == HAWQ_OPTIM_ADAMW ? 2 : 1;
  o->n_params = hawq_train_plan_num_params(tp);
  o->buf = calloc((size_t)(o->n_params * o->n_buffers + 1), sizeof *o->buf);
  if (!o->buf) {
    free(o);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  }
  for (int i = 0; i < o->n_params; i++) {
    for (int b = 0; b < o->n_buffers; b++) {
      float **slot = &o->buf[i * o->n_buffers + b];
      *slot = hawq_alloc_floats((size_t)hawq_train_plan_param(tp, i)->numel);
      if (!*slot) {
        hawq_optim_destroy(o);
        return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory for the optimizer state");
      }
    }
  }
  *out = o;
  return HAWQ_OK;
}

void hawq_optim_destroy(hawq_optim *o) {
  if (!o) return;
  for (int i = 0; i < o->n_params * o->n_buffers; i++) hawq_free(o->buf[i]);
  free(o->buf);
  free(o);
}

int hawq_optim_num_buffers(const hawq_optim *o) {
  return o->n_buffers;
}

float *hawq_optim_buffer(hawq_optim *o, int param, int which) {
  return o->buf[param * o->n_buffers + which];
}

void hawq_optim_set_steps(hawq_optim *o, int64_t steps) {
  o->steps = steps;
}

static double grad_norm(hawq_train_plan *tp) {
  double sum = 0;
  for (int i = 0; i < hawq_train_plan_num_params(tp); i++) {
    const hawq_param *p = hawq_train_plan_param(tp, i);
    for (int64_t j = 0; j < p->numel; j++) sum += (double)p->grad[j] * p->grad[j];
  }
  return sqrt(sum);
}

double hawq_optim_step(hawq_optim *o, hawq_train_plan *tp, float lr) {
  const hawq_optim_options *opt = &o->opt;
  double norm = grad_norm(tp);
  float gscale = 1.0f;
  if (opt->clip_norm > 0 && norm > opt->clip_norm) gscale = (float)(opt->clip_norm / norm);
  o->steps++;
  float bc1 = 1, bc2 = 1;
  if (opt->kind == HAWQ_OPTIM_ADAMW) {
    bc1 = 1.0f - powf(opt->beta1, (float)o->steps);
    bc2 = 1.0f - powf(opt->beta2, (float)o->steps);
  }
  for (int i = 0; i < o->n_params; i++) {
    hawq_param *p = hawq_train_plan_param(tp, i);
    float *restrict w = p->value;
    const float *restrict g = p->grad;
    float wd = p->decay ? opt->weight_decay : 0.0f;
    int64_t n = p->numel;
    if (opt->kind == HAWQ_OPTIM_SGD) {
      float *restrict v = o->buf[i * o->n_buffers];
      float m = opt->momentum;
      for (int64_t j = 0; j < n; j++) {
        float gj = g[j] * gscale + wd * w[j];
        v[j] = m * v[j] + gj;
        w[j] -= lr * (opt->nesterov ? gj + m * v[j] : v[j]);
      }
    } else {
      float *restrict m1 = o->buf[i * o->n_buffers], *restrict m2 = o->buf[i * o->n_buffers + 1];
      float b1 = opt->beta1, b2 = opt->beta2, eps = opt->eps;
      for (int64_t j = 0; j < n; j++) {
        float gj = g[j] * gscale;
        w[j] -= lr * wd * w[j];
        m1[j] = b1 * m1[j] + (1 - b1) * gj;
        m2[j] = b2 * m2[j] + (1 - b2) * gj * gj;
        w[j] -= lr * (m1[j] / bc1) / (sqrtf(m2[j] / bc2) + eps);
      }
    }
  }
  return norm;
}

float hawq_schedule_lr(const hawq_schedule *s, int64_t step) {
  if (step < s->warmup) {
    /* linear from lr/100 to lr over the warm-up */
    float t = (float)(step + 1) / (float)s->warmup;
    return s->lr * (0.01f + 0.99f * t);
  }
  switch (s->kind) {
    case HAWQ_SCHEDULE_COSINE: {
      int64_t span = s->total - s->warmup;
      double t = span > 0 ? (double)(step - s->warmup) / (double)span : 1.0;
      if (t > 1) t = 1;
      return s->final_lr +
             (s->lr - s->final_lr) * (float)(0.5 * (1.0 + cos(3.14159265358979323846 * t)));
    }
    case HAWQ_SCHEDULE_STEP: {
      int64_t k = s->step_every > 0 ? (step - s->warmup) / s->step_every : 0;
      return s->lr * powf(s->gamma, (float)k);
    }
    case HAWQ_SCHEDULE_CONSTANT:
      break;
  }
  return s->lr;
}
