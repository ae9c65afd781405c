/* Float kernels, NHWC. One file per op family (conv2d.c, pool.c, ...), each backward beside its
 * forward, in the llm.c manner: the forward keeps (or the caller keeps) what the backward needs,
 * and every backward *accumulates* (+=) into the gradients it is given, so a tensor read by two
 * nodes collects both contributions. A NULL gradient pointer means "not wanted".
 * Tensor arguments carry their physical shapes; `threads` is the number of OpenMP threads an op
 * may use (1 = serial). Only the convolution allocates (oneDNN primitives, once, when it is
 * created); the others write into caller-owned memory. */
#ifndef HAWQ_FLOAT_OPS_H
#define HAWQ_FLOAT_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/graph.h"

/* An activation fused into an op's epilogue: y = min(max(y, lo), hi). */
typedef struct hawq_act {
  bool on;
  float lo, hi;
} hawq_act;

static inline float hawq_act_apply(hawq_act a, float v) {
  if (!a.on) return v;
  return v < a.lo ? a.lo : v > a.hi ? a.hi : v;
}

/* ---- conv2d.c: through oneDNN ---- */
/* The oneDNN CPU engine and stream a plan's primitives run on. */
typedef struct hawq_dnnl_context {
  struct dnnl_engine *engine;
  struct dnnl_stream *stream;
} hawq_dnnl_context;
hawq_status hawq_dnnl_context_create(hawq_dnnl_context *ctx, hawq_error *err);
void hawq_dnnl_context_destroy(hawq_dnnl_context *ctx);

typedef struct hawq_conv2d_shape {
  int64_t n, h, w, c; /* input NHWC */
  int64_t p, q, k;    /* output N,P,Q,K */
  int r, s;           /* kernel */
  hawq_conv_attr attr;
} hawq_conv2d_shape;

/* A convolution prepared for one shape and batch: oneDNN chooses the kernel for this CPU, the
 * weights w (K, R, S, C/g) are copied into its layout, the activation becomes a post-op. The
 * bias b (K, or NULL) is referenced, not copied: it must outlive the convolution. */
typedef struct hawq_conv2d hawq_conv2d;
hawq_status hawq_conv2d_create(const hawq_dnnl_context *ctx, const hawq_conv2d_shape *s,
                               const float *w, const float *b, hawq_act act, hawq_conv2d **out,
                               hawq_error *err);
/* in (n,h,w,c) -> out (n,p,q,k). Threads: the calling thread's OpenMP thread count. */
hawq_status hawq_conv2d_forward(hawq_conv2d *c, const float *in, float *out, hawq_error *err);
void hawq_conv2d_destroy(hawq_conv2d *c); /* NULL is fine */
/* oneDNN's name for the kernel it chose, e.g. "brgconv:avx512_core". */
const char *hawq_conv2d_impl(const hawq_conv2d *c);

/* A convolution for training: oneDNN's forward-training, backward-data and backward-weights
 * primitives for one shape and batch. The weights (K, R, S, C/g) change every step, so they are
 * passed to each call (and reordered into the kernels' layout when those want another). */
typedef struct hawq_conv2d_train hawq_conv2d_train;
hawq_status hawq_conv2d_train_create(const hawq_dnnl_context *ctx, const hawq_conv2d_shape *s,
                                     bool with_bias, hawq_conv2d_train **out, hawq_error *err);
/* out = conv(in, w) + b (b NULL when created without bias). */
hawq_status hawq_conv2d_train_forward(hawq_conv2d_train *c, const float *in, const float *w,
                                      const float *b, float *out, hawq_error *err);
/* din, dw, db += gradients (din and db may be NULL); with overwrite_din, din = its gradient
 * (written straight by oneDNN, no scratch pass). */
hawq_status hawq_conv2d_train_backward(hawq_conv2d_train *c, const float *in, const float *w,
                                       const float *dout, float *din, bool overwrite_din, float *dw,
                                       float *db, hawq_error *err);
void hawq_conv2d_train_destroy(hawq_conv2d_train *c); /* NULL is fine */

/* ---- batchnorm.c ---- */
/* x viewed as (outer, c, inner): y = (x - mean) / sqrt(var + eps) * scale + bias. */
void hawq_batchnorm_forward(const float *in, float *out, int64_t outer, int64_t c, int64_t inner,
                            const float *scale, const float *bias, const float *mean,
                            const float *var, float eps, hawq_act act, int threads);
/* Training mode: normalizes with the batch's own statistics (biased variance, as PyTorch),
 * applies the fused activation act, writes the statistics to batch_mean (c) and batch_rstd (c)
 * = 1/sqrt(var_b + eps) for the backward, and updates running_mean/running_var (c) as PyTorch
 * does with momentum m: running = (1 - m) * running + m * batch, the variance unbiased (times
 * count/(count-1)). Any of the four statistics pointers may be NULL. */
void hawq_batchnorm_train_forward(const float *in, float *out, int64_t outer, int64_t c,
                                  int64_t inner, const float *scale, const float *bias, float eps,
                                  float momentum, hawq_act act, float *running_mean,
                                  float *running_var, float *batch_mean, float *batch_rstd,
                                  int threads);
/* dx, dscale, dbias += gradients of y = act((x - mean) * rstd * scale + bias), where `out` is
 * the forward's output y (read only when act.on: the gradient passes where lo < y < hi).
 * batch_stats: mean and rstd are the batch's (training mode; the gradient flows through them),
 * else they are constants (eval mode: mean = running mean, rstd = 1/sqrt(running var + eps)).
 * overwrite: din is written (=) rather than accumulated (+=), sparing the caller a zeroing. */
void hawq_batchnorm_backward(const float *in, const float *dout, const float *out, hawq_act act,
                             int64_t outer, int64_t c, int64_t inner, const float *scale,
                             const float *mean, const float *rstd, bool batch_stats, float *din,
                             bool overwrite, float *dscale, float *dbias, int threads);

/* ---- activation.c: relu, clip, leaky relu ---- */
void hawq_relu_forward(const float *in, float *out, int64_t n, int threads);
void hawq_clip_forward(const float *in, float *out, int64_t n, float lo, float hi, int threads);
void hawq_leaky_relu_forward(const float *in, float *out, int64_t n, float alpha, int threads);
/* Backward from the forward's input x: relu passes dout where x > 0; clip where lo < x < hi
 * (PyTorch's hardtanh, ReLU6's gradient); leaky relu scales by alpha where x <= 0. */
void hawq_relu_backward(const float *in, const float *dout, float *din, int64_t n, int threads);
void hawq_clip_backward(const float *in, const float *dout, float *din, int64_t n, float lo,
                        float hi, int threads);
void hawq_leaky_relu_backward(const float *in, const float *dout, float *din, int64_t n,
                              float alpha, int threads);

/* ---- binary.c: add, sub, mul, div with broadcasting ---- */
/* Physical shapes of rank `rank`; a and b have size 1 where they broadcast. */
void hawq_binary_forward(hawq_op op, int rank, const int64_t *out_dims, const float *a,
                         const int64_t *a_dims, const float *b, const int64_t *b_dims, hawq_act act,
                         float *out, int threads);
/* da, db (either may be NULL) += gradients of out = a op b, summed over broadcast axes. */
void hawq_binary_backward(hawq_op op, int rank, const int64_t *out_dims, const float *a,
                          const int64_t *a_dims, const float *b, const int64_t *b_dims,
                          const float *dout, float *da, float *db, int threads);

/* The residual add with a fused activation, out = act(a + b), all of n elements: da and db
 * (either may be NULL) get dout where lo < out < hi (everywhere when act is off), written when
 * their overwrite flag is set, else accumulated. */
void hawq_add_act_backward(const float *out, const float *dout, hawq_act act, int64_t n, float *da,
                           bool overwrite_a, float *db, bool overwrite_b, int threads);

/* ---- pool.c: max and average pooling, global pooling ---- */
typedef struct hawq_pool_shape {
  int64_t n, h, w, c, p, q;
  hawq_pool_attr attr;
} hawq_pool_shape;
void hawq_maxpool_forward(const hawq_pool_shape *s, const float *in, float *out, int threads);
void hawq_avgpool_forward(const hawq_pool_shape *s, const float *in, float *out, int threads);
/* in (n, hw, c) -> out (n, c) */
void hawq_global_avgpool_forward(const float *in, float *out, int64_t n, int64_t hw, int64_t c,
                                 int threads);
void hawq_global_maxpool_forward(const float *in, float *out, int64_t n, int64_t hw, int64_t c,
                                 int threads);
/* din += gradient. Max pooling routes each output's gradient to the first maximum of its
 * window (recomputed from the input x), as PyTorch does. */
void hawq_maxpool_backward(const hawq_pool_shape *s, const float *in, const float *dout, float *din,
                           int threads);
void hawq_avgpool_backward(const hawq_pool_shape *s, const float *dout, float *din, int threads);
void hawq_global_avgpool_backward(const float *dout, float *din, int64_t n, int64_t hw, int64_t c,
                                  int threads);
void hawq_global_maxpool_backward(const float *in, const float *dout, float *din, int64_t n,
                                  int64_t hw, int64_t c, int threads);

/* ---- gemm.c ---- */
/* out (rows, n) = in (rows, k) * w^T (w is (n, k)) + b */
void hawq_gemm_forward(const float *in, const float *w, const float *b, float *out, int64_t rows,
                       int64_t n, int64_t k, hawq_act act, int threads);
/* C (m,n) = A (m,k) * B^T (B is (n,k)) + beta C, row-major with leading dimensions, through
 * oneDNN's sgemm: single-threaded inside a parallel region, else the calling thread's OpenMP
 * thread count. */
void hawq_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                   int64_t ldb, float beta, float *c, int64_t ldc);
/* C (m,n) = op(A) * op(B) + beta C, op = transpose when ta/tb is 'T'; row-major. */
void hawq_sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/* din (rows,k) += dout * w; dw (n,k) += dout^T * in; db (n) += column sums of dout. Any of the
 * three may be NULL. */
void hawq_gemm_backward(const float *in, const float *w, const float *dout, float *din, float *dw,
                        float *db, int64_t rows, int64_t n, int64_t k, int threads);

/* ---- layout.c: reshape, transpose, concat, pad ---- */
/* Reshape between logical shapes: a copy when neither side is rank 4, else via NCHW order
 * (scratch: numel floats when both sides are rank 4). Dims have the batch filled in. */
void hawq_reshape_forward(const float *in, int in_rank, const int64_t *in_dims, float *out,
                          int out_rank, const int64_t *out_dims, float *scratch);
/* Logical transpose of a physically stored tensor. */
void hawq_transpose_forward(const float *in, int rank, const int64_t *in_dims, const int *perm,
                            float *out);
/* Concat along logical axis of rank-`rank` tensors; in_dims[i] are logical with the batch. */
void hawq_concat_forward(int n_in, const float *const *in, const int64_t (*in_dims)[HAWQ_MAX_RANK],
                         int rank, int axis, float *out);
/* Constant pad (negative pads crop). dims logical with the batch. */
void hawq_pad_forward(const float *in, int rank, const int64_t *in_dims, const int64_t *pads,
                      float value, float *out, int threads);
/* Backwards of the above: din += the gradient (dims as in the forward). Reshape's scratch holds
 * numel floats when either side is rank 4. */
void hawq_reshape_backward(const float *dout, int out_rank, const int64_t *out_dims, float *din,
                           int in_rank, const int64_t *in_dims, float *scratch);
void hawq_transpose_backward(const float *dout, int rank, const int64_t *in_dims, const int *perm,
                             float *din);
void hawq_concat_backward(int n_in, float *const *din, const int64_t (*in_dims)[HAWQ_MAX_RANK],
                          int rank, int axis, const float *dout);
void hawq_pad_backward(const float *dout, int rank, const int64_t *in_dims, const int64_t *pads,
                       float *din, int threads);

/* ---- softmax.c ---- */
/* Softmax over the middle axis of (outer, len, inner). */
void hawq_softmax_forward(const float *in, float *out, int64_t outer, int64_t len, int64_t inner,
                          int threads);
/* din += gradient of softmax, from its output y. */
void hawq_softmax_backward(const float *out, const float *dout, float *din, int64_t outer,
                           int64_t len, int64_t inner, int threads);

/* ---- fakequant.c: fake quantization for quantization-aware training (graph.h) ---- */
/* Activations: out = clamp(round(in / scale), lo, hi) * scale over n values (in == out is
 * fine). */
void hawq_fakequant_forward(const float *in, float *out, int64_t n, double scale, int32_t lo,
                            int32_t hi, int threads);
/* din += dout where round(in / scale) lies in [lo, hi] (the straight-through estimator with the
 * clamp's mask). */
void hawq_fakequant_backward(const float *in, const float *dout, float *din, int64_t n,
                             double scale, int32_t lo, int32_t hi, int threads);
/* Weights: each of `rows` rows of `per` values quantized symmetrically at `bits` with its own
 * scale max|row| / (2^(bits-1) - 1), as lowering quantizes them. */
void hawq_fakequant_rows_forward(const float *in, float *out, int64_t rows, int64_t per, int bits,
                                 int threads);
/* Biases: each row r of `rows` rows of `per` values rounded to a multiple of scales[r]. */
void hawq_fakequant_given_forward(const float *in, const float *scales, float *out, int64_t rows,
                                  int64_t per);
/* min and max of n values (n >= 1). */
void hawq_min_max(const float *x, int64_t n, float *min, float *max, int threads);

/* ---- loss.c: softmax cross-entropy over logits (rows, classes) ---- */
/* Mean over rows of -sum_c t_c log softmax(z)_c, with targets t = (1 - smoothing) one-hot(label)
 * + smoothing / classes. Writes the softmax to probs (rows, classes), kept for the backward, and
 * returns the loss (double accumulation). Labels must be in [0, classes). */
double hawq_cross_entropy_forward(const float *logits, const int32_t *labels, int64_t rows,
                                  int64_t classes, float smoothing, float *probs, int threads);
/* dlogits += scale * (probs - targets) / rows. */
void hawq_cross_entropy_backward(const float *probs, const int32_t *labels, int64_t rows,
                                 int64_t classes, float smoothing, float scale, float *dlogits,
                                 int threads);

/* ---- engine.c: one node's forward, shared by the inference and training engines ---- */
/* Runs node n (any op but Conv, whose prepared primitive the caller runs) reading buf[t] with
 * logical dims dims[t] (batch filled in) and writing y. w and b are the Gemm's weights and bias
 * in use; act is an activation fused into the epilogue (BatchNorm, Add/Sub/Mul/Div, Gemm);
 * workspace holds a Reshape's scratch. BatchNorm runs in inference form. */
void hawq_node_forward(const hawq_graph *g, const hawq_node *n, float *const *buf,
                       const int64_t (*dims)[HAWQ_MAX_RANK], const float *w, const float *b,
                       hawq_act act, float *y, float *workspace, int threads);
/* A Conv node's shape for tensors of logical dims `dims` (batch filled in). */
hawq_conv2d_shape hawq_conv2d_shape_of(const hawq_graph *g, const hawq_node *n,
                                       const int64_t (*dims)[HAWQ_MAX_RANK]);
/* Tensor t's buffer in a plan made with keep_all (physical layout, the plan's batch), valid after
 * a run; graph inputs are the caller's arrays. */
const float *hawq_float_plan_tensor(const hawq_float_plan *p, int t);
/* Monotonic clock, seconds (per-node profiling). */
double hawq_seconds_now(void);
hawq_pool_shape hawq_pool_shape_of(const hawq_node *n, const int64_t *in_dims,
                                   const int64_t *out_dims);
/* (outer, c, inner) view around logical axis 1 of a physically stored tensor (BatchNorm). */
void hawq_channel_view(int rank, const int64_t *dims, int64_t *outer, int64_t *c, int64_t *inner);
/* A Softmax's (outer, len, inner) view of its physical input. */
void hawq_softmax_view(const hawq_node *n, int rank, const int64_t *dims, int64_t *outer,
                       int64_t *len, int64_t *inner);

#endif
