/* Float forward kernels, NHWC. One file per op family (conv2d.c, pool.c, ...); the backward of
 * each will sit beside its forward. Tensor arguments carry their physical shapes; `threads` is
 * the number of OpenMP threads an op may use (1 = serial). Only the convolution allocates (a
 * oneDNN primitive, once, when it is created); the others write into caller-owned memory. */
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

/* ---- batchnorm.c ---- */
/* x viewed as (outer, c, inner): y = (x - mean) / sqrt(var + eps) * scale + bias. */
void hawq_batchnorm_forward(const float *in, float *out, int64_t outer, int64_t c, int64_t inner,
                            const float *scale, const float *bias, const float *mean,
                            const float *var, float eps, hawq_act act, int threads);

/* ---- activation.c: relu, clip, leaky relu ---- */
void hawq_relu_forward(const float *in, float *out, int64_t n, int threads);
void hawq_clip_forward(const float *in, float *out, int64_t n, float lo, float hi, int threads);
void hawq_leaky_relu_forward(const float *in, float *out, int64_t n, float alpha, int threads);

/* ---- binary.c: add, sub, mul, div with broadcasting ---- */
/* Physical shapes of rank `rank`; a and b have size 1 where they broadcast. */
void hawq_binary_forward(hawq_op op, int rank, const int64_t *out_dims, const float *a,
                         const int64_t *a_dims, const float *b, const int64_t *b_dims, hawq_act act,
                         float *out, int threads);

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

/* ---- gemm.c ---- */
/* out (rows, n) = in (rows, k) * w^T (w is (n, k)) + b */
void hawq_gemm_forward(const float *in, const float *w, const float *b, float *out, int64_t rows,
                       int64_t n, int64_t k, hawq_act act, int threads);
/* C (m,n) = A (m,k) * B^T (B is (n,k)) + beta C, row-major with leading dimensions, through
 * oneDNN's sgemm: single-threaded inside a parallel region, else the calling thread's OpenMP
 * thread count. */
void hawq_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                   int64_t ldb, float beta, float *c, int64_t ldc);

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

/* ---- softmax.c ---- */
/* Softmax over the middle axis of (outer, len, inner). */
void hawq_softmax_forward(const float *in, float *out, int64_t outer, int64_t len, int64_t inner,
                          int threads);

#endif
