/* 2-D convolution for training, NHWC, through oneDNN: forward (training), backward data and
 * backward weights for one shape and batch.
 *
 * The weights change after every step, so each call takes the caller's (K, R, S, C/g) array and
 * reorders it into whatever layout the chosen kernel wants (a copy of K*R*S*C/g floats, small
 * next to the activations). oneDNN writes its gradients; hawq's contract is to accumulate, so
 * they land in scratch buffers owned by the convolution and are added to the caller's. */
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "core/status.h"
#include "float/conv2d_dnnl.h"

/* A weight layout that may differ between the user's and a kernel's: a reorder and the memory
 * it fills (NULL when the layouts agree and the user's array is used directly). */
typedef struct weight_view {
  dnnl_memory_t user;   /* user layout (handle set per call) */
  dnnl_memory_t kernel; /* kernel layout (own memory), or NULL */
  dnnl_primitive_t reorder;
} weight_view;

struct hawq_conv2d_train {
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  dnnl_primitive_t fwd, bwd_data, bwd_weights;
  dnnl_memory_t src, dst, bias, diff_src, diff_dst, diff_bias;
  weight_view fwd_w, bwd_data_w;
  weight_view diff_w; /* reorder from the kernel's diff-weights layout to the user's */
  float *diff_src_buf, *diff_w_buf, *diff_b_buf;
  int64_t src_numel, w_numel, k;
};

static void weight_view_destroy(weight_view *v) {
  if (v->reorder) dnnl_primitive_destroy(v->reorder);
  if (v->user) dnnl_memory_destroy(v->user);
  if (v->kernel) dnnl_memory_destroy(v->kernel);
  memset(v, 0, sizeof *v);
}

void hawq_conv2d_train_destroy(hawq_conv2d_train *c) {
  if (!c) return;
  dnnl_primitive_t prims[3] = {c->fwd, c->bwd_data, c->bwd_weights};
  for (int i = 0; i < 3; i++)
    if (prims[i]) dnnl_primitive_destroy(prims[i]);
  dnnl_memory_t mems[6] = {c->src, c->dst, c->bias, c->diff_src, c->diff_dst, c->diff_bias};
  for (int i = 0; i < 6; i++)
    if (mems[i]) dnnl_memory_destroy(mems[i]);
  weight_view_destroy(&c->fwd_w);
  weight_view_destroy(&c->bwd_data_w);
  weight_view_destroy(&c->diff_w);
  hawq_free(c->diff_src_buf);
  hawq_free(c->diff_w_buf);
  hawq_free(c->diff_b_buf);
  free(c);
}

/* Prepares the memories to move weights between `from` and `to` layouts; when they are the
 * same layout no reorder is needed and v->kernel stays NULL. */
static dnnl_status_t weight_view_init(weight_view *v, dnnl_engine_t engine,
                                      const dnnl_memory_desc_t *user_md,
                                      const dnnl_memory_desc_t *kernel_md, bool to_kernel) {
  dnnl_status_t s = dnnl_memory_create(&v->user, user_md, engine, DNNL_MEMORY_NONE);
  if (s || dnnl_memory_desc_equal(user_md, kernel_md)) return s;
  s = dnnl_memory_create(&v->kernel, kernel_md, engine, DNNL_MEMORY_ALLOCATE);
  dnnl_primitive_desc_t rpd = NULL;
  if (!s) {
    s = to_kernel
            ? dnnl_reorder_primitive_desc_create(&rpd, user_md, engine, kernel_md, engine, NULL)
            : dnnl_reorder_primitive_desc_create(&rpd, kernel_md, engine, user_md, engine, NULL);
  }
  if (!s) s = dnnl_primitive_create(&v->reorder, rpd);
  if (rpd) dnnl_primitive_desc_destroy(rpd);
  return s;
}

/* The weights memory a kernel reads: the user's array directly, or its reordered copy. */
static dnnl_status_t weights_for_kernel(weight_view *v, dnnl_stream_t stream, const float *w,
                                        dnnl_memory_t *out) {
  dnnl_status_t s = dnnl_memory_set_data_handle(v->user, (void *)w);
  if (s) return s;
  if (!v->kernel) {
    *out = v->user;
    return dnnl_success;
  }
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, v->user}, {DNNL_ARG_TO, v->kernel}};
  s = dnnl_primitive_execute(v->reorder, stream, 2, args);
  *out = v->kernel;
  return s;
}

hawq_status hawq_conv2d_train_create(const hawq_dnnl_context *ctx, const hawq_conv2d_shape *s,
                                     bool with_bias, hawq_conv2d_train **out, hawq_error *err) {
  *out = NULL;
  hawq_conv2d_train *c = calloc(1, sizeof *c);
  if (!c) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  c->engine = ctx->engine;
  c->stream = ctx->stream;
  c->k = s->k;
  c->src_numel = s->n * s->h * s->w * s->c;
  c->w_numel = s->k * s->r * s->s * (s->c / s->attr.groups);
  hawq_conv2d_descs d;
  dnnl_primitive_desc_t fpd = NULL, dpd = NULL, wpd = NULL;
  dnnl_status_t st = hawq_conv2d_descs_init(s, &d);
  dnnl_convolution_desc_t fd, dd, wd;
  if (!st) {
    st = dnnl_dilated_convolution_forward_desc_init(
        &fd, dnnl_forward_training, dnnl_convolution_direct, &d.src, &d.w_any,
        with_bias ? &d.bias : NULL, &d.dst, d.strides, d.dilates, d.pad_l, d.pad_r);
  }
  if (!st) {
    st = dnnl_dilated_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &d.src,
                                                          &d.w_any, &d.dst, d.strides, d.dilates,
                                                          d.pad_l, d.pad_r);
  }
  if (!st) {
    st = dnnl_dilated_convolution_backward_weights_desc_init(
        &wd, dnnl_convolution_direct, &d.src, &d.w_any, with_bias ? &d.bias : NULL, &d.dst,
        d.strides, d.dilates, d.pad_l, d.pad_r);
  }
  if (st) {
    hawq_dnnl_fail(err, "describe the training convolution", st);
    goto fail;
  }
  if ((st = dnnl_primitive_desc_create(&fpd, &fd, NULL, c->engine, NULL)) ||
      (st = dnnl_primitive_desc_create(&dpd, &dd, NULL, c->engine, fpd)) ||
      (st = dnnl_primitive_desc_create(&wpd, &wd, NULL, c->engine, fpd))) {
    hawq_dnnl_fail(err, "find training convolution kernels", st);
    goto fail;
  }
  const dnnl_memory_desc_t *fwd_w_md = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
  const dnnl_memory_desc_t *bwd_w_md = dnnl_primitive_desc_query_md(dpd, dnnl_query_weights_md, 0);
  const dnnl_memory_desc_t *diff_w_md =
      dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 0);
  st = weight_view_init(&c->fwd_w, c->engine, &d.w_user, fwd_w_md, true);
  if (!st) st = weight_view_init(&c->bwd_data_w, c->engine, &d.w_user, bwd_w_md, true);
  if (!st) st = weight_view_init(&c->diff_w, c->engine, &d.w_user, diff_w_md, false);
  if (!st) st = dnnl_memory_create(&c->src, &d.src, c->engine, DNNL_MEMORY_NONE);
  if (!st) st = dnnl_memory_create(&c->dst, &d.dst, c->engine, DNNL_MEMORY_NONE);
  if (!st) st = dnnl_memory_create(&c->diff_src, &d.src, c->engine, DNNL_MEMORY_NONE);
  if (!st) st = dnnl_memory_create(&c->diff_dst, &d.dst, c->engine, DNNL_MEMORY_NONE);
  if (!st && with_bias) st = dnnl_memory_create(&c->bias, &d.bias, c->engine, DNNL_MEMORY_NONE);
  if (!st && with_bias) {
    st = dnnl_memory_create(&c->diff_bias, &d.bias, c->engine, DNNL_MEMORY_NONE);
  }
  if (!st) st = dnnl_primitive_create(&c->fwd, fpd);
  if (!st) st = dnnl_primitive_create(&c->bwd_data, dpd);
  if (!st) st = dnnl_primitive_create(&c->bwd_weights, wpd);
  if (st) {
    hawq_dnnl_fail(err, "set up the training convolution", st);
    goto fail;
  }
  c->diff_src_buf = hawq_alloc_floats((size_t)c->src_numel);
  c->diff_w_buf = hawq_alloc_floats((size_t)c->w_numel);
  c->diff_b_buf = hawq_alloc_floats((size_t)s->k);
  if (!c->diff_src_buf || !c->diff_w_buf || !c->diff_b_buf) {
    hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    goto fail;
  }
  dnnl_primitive_desc_destroy(fpd);
  dnnl_primitive_desc_destroy(dpd);
  dnnl_primitive_desc_destroy(wpd);
  *out = c;
  return HAWQ_OK;
fail:
  if (fpd) dnnl_primitive_desc_destroy(fpd);
  if (dpd) dnnl_primitive_desc_destroy(dpd);
  if (wpd) dnnl_primitive_desc_destroy(wpd);
  hawq_conv2d_train_destroy(c);
  return err ? err->status : HAWQ_ERR_UNSUPPORTED;
}

hawq_status hawq_conv2d_train_forward(hawq_conv2d_train *c, const float *in, const float *w,
                                      const float *b, float *out, hawq_error *err) {
  dnnl_memory_t wmem = NULL;
  dnnl_status_t st = weights_for_kernel(&c->fwd_w, c->stream, w, &wmem);
  if (!st) st = dnnl_memory_set_data_handle(c->src, (void *)in);
  if (!st) st = dnnl_memory_set_data_handle(c->dst, out);
  if (!st && c->bias) st = dnnl_memory_set_data_handle(c->bias, (void *)b);
  if (!st) {
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->src},
                               {DNNL_ARG_WEIGHTS, wmem},
                               {DNNL_ARG_DST, c->dst},
                               {DNNL_ARG_BIAS, c->bias}};
    st = dnnl_primitive_execute(c->fwd, c->stream, c->bias ? 4 : 3, args);
  }
  if (!st) st = dnnl_stream_wait(c->stream);
  return st ? hawq_dnnl_fail(err, "run a training convolution", st) : HAWQ_OK;
}

static void add_into(float *restrict dst, const float *restrict src, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

hawq_status hawq_conv2d_train_backward(hawq_conv2d_train *c, const float *in, const float *w,
                                       const float *dout, float *din, bool overwrite_din, float *dw,
                                       float *db, hawq_error *err) {
  dnnl_status_t st = dnnl_memory_set_data_handle(c->diff_dst, (void *)dout);
  if (!st && din) {
    dnnl_memory_t wmem = NULL;
    st = weights_for_kernel(&c->bwd_data_w, c->stream, w, &wmem);
    if (!st) st = dnnl_memory_set_data_handle(c->diff_src, overwrite_din ? din : c->diff_src_buf);
    if (!st) {
      dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, c->diff_dst},
                                 {DNNL_ARG_WEIGHTS, wmem},
                                 {DNNL_ARG_DIFF_SRC, c->diff_src}};
      st = dnnl_primitive_execute(c->bwd_data, c->stream, 3, args);
    }
  }
  if (!st && (dw || db)) {
    /* Diff weights land in the kernel's layout, then are reordered into diff_w_buf. */
    dnnl_memory_t dwmem = c->diff_w.kernel ? c->diff_w.kernel : c->diff_w.user;
    st = dnnl_memory_set_data_handle(c->diff_w.user, c->diff_w_buf);
    if (!st) st = dnnl_memory_set_data_handle(c->src, (void *)in);
    if (!st && c->diff_bias) st = dnnl_memory_set_data_handle(c->diff_bias, c->diff_b_buf);
    if (!st) {
      dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->src},
                                 {DNNL_ARG_DIFF_DST, c->diff_dst},
                                 {DNNL_ARG_DIFF_WEIGHTS, dwmem},
                                 {DNNL_ARG_DIFF_BIAS, c->diff_bias}};
      st = dnnl_primitive_execute(c->bwd_weights, c->stream, c->diff_bias ? 4 : 3, args);
    }
    if (!st && c->diff_w.kernel) {
      dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, c->diff_w.kernel}, {DNNL_ARG_TO, c->diff_w.user}};
      st = dnnl_primitive_execute(c->diff_w.reorder, c->stream, 2, args);
    }
  }
  if (!st) st = dnnl_stream_wait(c->stream);
  if (st) return hawq_dnnl_fail(err, "run a convolution backward", st);
  if (din && !overwrite_din) add_into(din, c->diff_src_buf, c->src_numel);
  if (dw) add_into(dw, c->diff_w_buf, c->w_numel);
  if (db && c->diff_bias) add_into(db, c->diff_b_buf, c->k);
  return HAWQ_OK;
}
