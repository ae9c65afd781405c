/* 2-D convolution, NHWC, float, through oneDNN.
 *
 * A convolution is prepared once per shape and batch: oneDNN picks the fastest implementation
 * it has for this CPU (decided from CPUID feature bits at run time: AVX-512, AVX2, SSE4.1 ...),
 * the weights are reordered once into the layout that implementation wants, and the fused
 * activation becomes an eltwise post-op. hawq keeps its weights as (K, R, S, C/g), which is
 * oneDNN's "ohwi" (one group) or "gohwi" (grouped, depthwise included); activations stay NHWC
 * ("nhwc") so no layout conversion happens per call.
 *
 * Why oneDNN and not im2col + OpenBLAS: measured on this project's machine, one core, ResNet-50
 * layer shapes, oneDNN's convolutions run at 165-215 GFLOP/s and OpenBLAS 0.3.21's sgemm at
 * 75-110 GFLOP/s (and only after OPENBLAS_CORETYPE is forced: it does not recognise the CPU and
 * falls back to SSE3 kernels at 25 GFLOP/s). docs/design.md has the numbers. */
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "float/conv2d_dnnl.h"

struct hawq_conv2d {
  dnnl_primitive_t prim;
  dnnl_memory_t src, weights, bias, dst;
  dnnl_stream_t stream; /* borrowed from the context */
  const char *impl;     /* oneDNN's name for the kernel it chose */
};

hawq_status hawq_dnnl_fail(hawq_error *err, const char *what, dnnl_status_t s) {
  return hawq_fail(err, s == dnnl_out_of_memory ? HAWQ_ERR_NO_MEMORY : HAWQ_ERR_UNSUPPORTED,
                   "oneDNN could not %s (status %d)", what, (int)s);
}

dnnl_status_t hawq_conv2d_descs_init(const hawq_conv2d_shape *s, hawq_conv2d_descs *d) {
  const hawq_conv_attr *a = &s->attr;
  memset(d, 0, sizeof *d);
  dnnl_dims_t src_dims = {s->n, s->c, s->h, s->w}, dst_dims = {s->n, s->k, s->p, s->q};
  dnnl_dims_t bias_dims = {s->k};
  dnnl_status_t st = dnnl_memory_desc_init_by_tag(&d->src, 4, src_dims, dnnl_f32, dnnl_nhwc);
  if (!st) st = dnnl_memory_desc_init_by_tag(&d->dst, 4, dst_dims, dnnl_f32, dnnl_nhwc);
  if (!st) st = dnnl_memory_desc_init_by_tag(&d->bias, 1, bias_dims, dnnl_f32, dnnl_a);
  if (!st && a->groups == 1) {
    dnnl_dims_t wd = {s->k, s->c, s->r, s->s};
    st = dnnl_memory_desc_init_by_tag(&d->w_user, 4, wd, dnnl_f32, dnnl_ohwi);
    if (!st) st = dnnl_memory_desc_init_by_tag(&d->w_any, 4, wd, dnnl_f32, dnnl_format_tag_any);
  } else if (!st) {
    dnnl_dims_t wd = {a->groups, s->k / a->groups, s->c / a->groups, s->r, s->s};
    st = dnnl_memory_desc_init_by_tag(&d->w_user, 5, wd, dnnl_f32, dnnl_gohwi);
    if (!st) st = dnnl_memory_desc_init_by_tag(&d->w_any, 5, wd, dnnl_f32, dnnl_format_tag_any);
  }
  d->strides[0] = a->stride[0];
  d->strides[1] = a->stride[1];
  d->dilates[0] = a->dilation[0] - 1; /* oneDNN counts gaps */
  d->dilates[1] = a->dilation[1] - 1;
  d->pad_l[0] = a->pad[0];
  d->pad_l[1] = a->pad[1];
  d->pad_r[0] = a->pad[2];
  d->pad_r[1] = a->pad[3];
  return st;
}

hawq_status hawq_dnnl_context_create(hawq_dnnl_context *ctx, hawq_error *err) {
  memset(ctx, 0, sizeof *ctx);
  dnnl_status_t s = dnnl_engine_create(&ctx->engine, dnnl_cpu, 0);
  if (s) return hawq_dnnl_fail(err, "create a CPU engine", s);
  s = dnnl_stream_create(&ctx->stream, ctx->engine, dnnl_stream_default_flags);
  if (s) {
    dnnl_engine_destroy(ctx->engine);
    ctx->engine = NULL;
    return hawq_dnnl_fail(err, "create a stream", s);
  }
  return HAWQ_OK;
}

void hawq_dnnl_context_destroy(hawq_dnnl_context *ctx) {
  if (ctx->stream) dnnl_stream_destroy(ctx->stream);
  if (ctx->engine) dnnl_engine_destroy(ctx->engine);
  memset(ctx, 0, sizeof *ctx);
}

void hawq_conv2d_destroy(hawq_conv2d *c) {
  if (!c) return;
  if (c->prim) dnnl_primitive_destroy(c->prim);
  if (c->src) dnnl_memory_destroy(c->src);
  if (c->weights) dnnl_memory_destroy(c->weights);
  if (c->bias) dnnl_memory_destroy(c->bias);
  if (c->dst) dnnl_memory_destroy(c->dst);
  free(c);
}

/* Copies user weights (K,R,S,C/g) into the primitive's weight memory, reordering if needed. */
static dnnl_status_t load_weights(const hawq_dnnl_context *ctx, const dnnl_memory_desc_t *user_md,
                                  const float *w, dnnl_memory_t dst) {
  dnnl_memory_t user = NULL;
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t reorder = NULL;
  dnnl_status_t s = dnnl_memory_create(&user, user_md, ctx->engine, (void *)w);
  if (!s) {
    const dnnl_memory_desc_t *dst_md;
    s = dnnl_memory_get_memory_desc(dst, &dst_md);
    if (!s)
      s = dnnl_reorder_primitive_desc_create(&rpd, user_md, ctx->engine, dst_md, ctx->engine, NULL);
  }
  if (!s) s = dnnl_primitive_create(&reorder, rpd);
  if (!s) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, dst}};
    s = dnnl_primitive_execute(reorder, ctx->stream, 2, args);
  }
  if (!s) s = dnnl_stream_wait(ctx->stream);
  if (reorder) dnnl_primitive_destroy(reorder);
  if (rpd) dnnl_primitive_desc_destroy(rpd);
  if (user) dnnl_memory_destroy(user);
  return s;
}

hawq_status hawq_conv2d_create(const hawq_dnnl_context *ctx, const hawq_conv2d_shape *s,
                               const float *w, const float *b, hawq_act act, hawq_conv2d **out,
                               hawq_error *err) {
  *out = NULL;
  hawq_conv2d *c = calloc(1, sizeof *c);
  if (!c) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  c->stream = ctx->stream;
  hawq_conv2d_descs d;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t post_ops = NULL;
  dnnl_status_t st = hawq_conv2d_descs_init(s, &d);
  dnnl_convolution_desc_t cd;
  if (!st) {
    st = dnnl_dilated_convolution_forward_desc_init(
        &cd, dnnl_forward_inference, dnnl_convolution_direct, &d.src, &d.w_any, b ? &d.bias : NULL,
        &d.dst, d.strides, d.dilates, d.pad_l, d.pad_r);
  }
  if (!st && act.on) {
    st = dnnl_primitive_attr_create(&attr);
    if (!st) st = dnnl_post_ops_create(&post_ops);
    if (!st) {
      bool relu = act.lo == 0.0f && act.hi > 3.0e38f;
      st = relu ? dnnl_post_ops_append_eltwise(post_ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f)
                : dnnl_post_ops_append_eltwise(post_ops, 1.0f, dnnl_eltwise_clip, act.lo, act.hi);
    }
    if (!st) st = dnnl_primitive_attr_set_post_ops(attr, post_ops);
  }
  if (st) {
    hawq_dnnl_fail(err, "describe the convolution", st);
    goto fail;
  }
  st = dnnl_primitive_desc_create(&pd, &cd, attr, ctx->engine, NULL);
  if (st) {
    hawq_dnnl_fail(err, "find a convolution kernel", st);
    goto fail;
  }
  const char *impl = NULL;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  c->impl = impl ? impl : "?";
  const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  st = dnnl_memory_create(&c->weights, wmd, ctx->engine, DNNL_MEMORY_ALLOCATE);
  if (!st) st = load_weights(ctx, &d.w_user, w, c->weights);
  if (!st && b) st = dnnl_memory_create(&c->bias, &d.bias, ctx->engine, (void *)b);
  if (!st) st = dnnl_memory_create(&c->src, &d.src, ctx->engine, DNNL_MEMORY_NONE);
  if (!st) st = dnnl_memory_create(&c->dst, &d.dst, ctx->engine, DNNL_MEMORY_NONE);
  if (!st) st = dnnl_primitive_create(&c->prim, pd);
  if (st) {
    hawq_dnnl_fail(err, "set up the convolution", st);
    goto fail;
  }
  /* impl points into pd, which is destroyed below: keep oneDNN's static string via the
   * primitive's own descriptor instead. */
  const_dnnl_primitive_desc_t ppd = NULL;
  if (dnnl_primitive_get_primitive_desc(c->prim, &ppd) == dnnl_success) {
    dnnl_primitive_desc_query(ppd, dnnl_query_impl_info_str, 0, &c->impl);
  }
  dnnl_primitive_desc_destroy(pd);
  if (post_ops) dnnl_post_ops_destroy(post_ops);
  if (attr) dnnl_primitive_attr_destroy(attr);
  *out = c;
  return HAWQ_OK;
fail:
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (post_ops) dnnl_post_ops_destroy(post_ops);
  if (attr) dnnl_primitive_attr_destroy(attr);
  hawq_conv2d_destroy(c);
  return err ? err->status : HAWQ_ERR_UNSUPPORTED;
}

const char *hawq_conv2d_impl(const hawq_conv2d *c) {
  return c->impl;
}

hawq_status hawq_conv2d_forward(hawq_conv2d *c, const float *in, float *out, hawq_error *err) {
  dnnl_status_t st = dnnl_memory_set_data_handle(c->src, (void *)in);
  if (!st) st = dnnl_memory_set_data_handle(c->dst, out);
  if (!st) {
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->src},
                               {DNNL_ARG_WEIGHTS, c->weights},
                               {DNNL_ARG_DST, c->dst},
                               {DNNL_ARG_BIAS, c->bias}};
    st = dnnl_primitive_execute(c->prim, c->stream, c->bias ? 4 : 3, args);
  }
  if (!st) st = dnnl_stream_wait(c->stream);
  return st ? hawq_dnnl_fail(err, "run a convolution", st) : HAWQ_OK;
}
