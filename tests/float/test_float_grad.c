/* Finite-difference tests of every float backward in src/float/ops.h: batchnorm (training with
 * batch statistics and eval with constant ones), relu / clip / leaky relu, broadcasting add /
 * sub / mul / div, max / average / global pooling, gemm (and hawq_sgemm's transposes), reshape,
 * transpose, concat, pad, softmax and the softmax cross-entropy loss, and the training
 * convolution (oneDNN's forward-training, backward-data and backward-weights primitives) over
 * random groups (plain, grouped, depthwise), kernel sizes, strides, dilations, asymmetric pads
 * and bias, din also in its overwrite mode. Batchnorm with a fused activation is checked
 * against the separate ops.
 *
 * Each case draws a random small shape, writes a double-precision reference forward here (no
 * code shared with src/float; rank-4 tensors in logical NCHW order, while the kernels see NHWC),
 * takes L = sum_i r_i y_i for random r (the kernel's dout) and compares the float backward's
 * gradients with central differences of L in double:
 *   err = max_i |got_i - fd_i| / max(1, max_i |fd_i|)  <=  the op's bound (listed in main).
 * Inputs stay away from kinks (relu at 0, clip bounds, max ties) so the differences are valid.
 *
 * Every gradient buffer is prefilled with random values and the backward is called twice: the
 * first call's delta is checked against the differences, the second must add the same again
 * (accumulation). Ops with several gradients are also called with all but one NULL (the one
 * left must come out bitwise the same), single-gradient ops with NULL (must not touch memory).
 * Large cases compare threads=1 with threads=2 bitwise: every backward here promises results
 * independent of the thread count, except gemm's din and dw (oneDNN's sgemm).
 *
 * Shapes and values come from a seeded RNG; the seed is printed (HAWQ_TEST_SEED=<n> replays). */
#include <float.h>
#include <math.h>
#include <stdbool.h>

#include "float/ops.h"
#include "float_test_util.h"

static const hawq_act BN_NO_ACT = {false, 0.0f, 0.0f};

#define DESC_SIZE 512
/* Central-difference step: truncation error ~ h^2 |f'''| ~ 1e-12, cancellation ~ 1e-16 |L| / h
 * ~ 1e-8 for the |L| <= ~100 of these small cases (the steps actually taken, (x + h) - x, are
 * used, so inputs of any magnitude are fine). */
#define FD_STEP 1e-6
/* Inputs keep at least this distance from kinks (>> the step). */
#define KINK_MARGIN 0.01
/* Accumulation: the second call's delta equals the first's up to the rounding of two float
 * additions onto prefilled values of magnitude <= 1: |d2 - d1| <= ~2^-22 max(1, |d|). */
#define ACCUM_BOUND 1e-6

/* ---------------------------------------------------------------------------------------------
 * Harness: per-op statistics and bounds, allocation, layout conversion.
 * ------------------------------------------------------------------------------------------- */

typedef struct grad_stats {
  const char *name;
  double bound; /* max |got - fd| / max(1, max |fd|) */
  int cases, failed, reported;
  double worst; /* the largest error seen */
} grad_stats;

static float *copy_floats(const float *x, int64_t n) {
  float *y = new_floats(n);
  memcpy(y, x, (size_t)n * sizeof(float));
  return y;
}

/* n distinct values, spread evenly over [-3, 3) in random order: no two closer than 6/n, so a
 * maximum never ties (within the FD step) with another value. */
static void fill_distinct(test_rng *rng, float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)(-3.0 + 6.0 * (double)i / (double)n);
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = test_rng_int(rng, 0, i);
    float t = x[i];
    x[i] = x[j];
    x[j] = t;
  }
}

/* Logical (NCHW for rank 4) <-> physical (NHWC for rank 4); a copy for every other rank. */
static void physical_to_logical_d(const double *physical, double *logical, int rank,
                                  const int64_t *dims) {
  if (rank != 4) {
    memcpy(logical, physical, (size_t)numel_of(rank, dims) * sizeof(double));
    return;
  }
  int64_t n = dims[0], c = dims[1], h = dims[2], w = dims[3];
  for (int64_t in = 0; in < n; in++)
    for (int64_t ic = 0; ic < c; ic++)
      for (int64_t ih = 0; ih < h; ih++)
        for (int64_t iw = 0; iw < w; iw++)
          logical[((in * c + ic) * h + ih) * w + iw] = physical[((in * h + ih) * w + iw) * c + ic];
}

/* ---------------------------------------------------------------------------------------------
 * Finite differences of L = sum r * forward(inputs), all in double.
 * ------------------------------------------------------------------------------------------- */

#define FD_MAX_INPUTS 5

typedef struct fd_problem fd_problem;
typedef void (*fd_forward)(const fd_problem *p, double *y);

struct fd_problem {
  fd_forward forward;
  const void *ctx; /* the op's attributes, for forward */
  int n_inputs;
  double *x[FD_MAX_INPUTS];
  int64_t len[FD_MAX_INPUTS];
  int64_t out_len;
  double *r, *y;
};

/* r: the output weights (the kernel's dout, in the reference's order). */
static fd_problem fd_new(fd_forward forward, const void *ctx, const float *r, int64_t out_len) {
  fd_problem p = {.forward = forward, .ctx = ctx, .out_len = out_len};
  p.r = new_doubles(out_len);
  p.y = new_doubles(out_len);
  for (int64_t i = 0; i < out_len; i++) p.r[i] = r[i];
  return p;
}
static void fd_add_input(fd_problem *p, const float *x, int64_t n) {
  REQUIRE(p->n_inputs < FD_MAX_INPUTS, "fd_add_input: too many inputs (a bug here)");
  p->x[p->n_inputs] = new_doubles(n);
  for (int64_t i = 0; i < n; i++) p->x[p->n_inputs][i] = x[i];
  p->len[p->n_inputs++] = n;
}
static void fd_free(fd_problem *p) {
  for (int i = 0; i < p->n_inputs; i++) free(p->x[i]);
  free(p->r);
  free(p->y);
}

static double fd_loss(const fd_problem *p) {
  p->forward(p, p->y);
  double sum = 0.0;
  for (int64_t i = 0; i < p->out_len; i++) sum += p->r[i] * p->y[i];
  return sum;
}

/* grad (len[which]) = dL/dx[which] by central differences. */
static void fd_gradient(const fd_problem *p, int which, double *grad) {
  double *x = p->x[which];
  for (int64_t i = 0; i < p->len[which]; i++) {
    double saved = x[i];
    x[i] = saved + FD_STEP;
    double up_step = x[i] - saved, up = fd_loss(p);
    x[i] = saved - FD_STEP;
    double down_step = saved - x[i], down = fd_loss(p);
    x[i] = saved;
    grad[i] = (up - down) / (up_step + down_step);
  }
}

/* ---------------------------------------------------------------------------------------------
 * Gradient buffers: prefilled, called into twice, checked.
 * ------------------------------------------------------------------------------------------- */

typedef struct grad_buf {
  int64_t n;
  float *buf;     /* what the backward accumulates into */
  float *prefill; /* its values before the first call */
  float *first;   /* after the first call */
} grad_buf;

static grad_buf grad_buf_new(test_rng *rng, int64_t n) {
  grad_buf g = {.n = n, .buf = new_floats(n), .first = new_floats(n)};
  fill_uniform(rng, g.buf, n, -1.0f, 1.0f);
  g.prefill = copy_floats(g.buf, n);
  return g;
}
static void grad_buf_free(grad_buf *g) {
  free(g->buf);
  free(g->prefill);
  free(g->first);
}
/* After the first call. */
static void grad_buf_mark(grad_buf *g) {
  memcpy(g->first, g->buf, (size_t)g->n * sizeof(float));
}

/* After the second call: checks that it added what the first did, and writes the first call's
 * delta (in the kernel's order) to delta. */
static void grad_buf_finish(grad_stats *st, const char *desc, const char *what, const grad_buf *g,
                            double *delta) {
  double worst = 0.0, scale = 1.0;
  int64_t at = -1;
  for (int64_t i = 0; i < g->n; i++) {
    delta[i] = (double)g->first[i] - g->prefill[i];
    scale = fmax(scale, fabs(delta[i]));
  }
  for (int64_t i = 0; i < g->n; i++) {
    double second = (double)g->buf[i] - g->first[i], err = fabs(second - delta[i]);
    if (isnan(err)) err = INFINITY; /* a NaN is the worst, and stays so */
    if (err > worst) {
      worst = err;
      at = i;
    }
  }
  CHECK_OP(st, worst <= ACCUM_BOUND * scale,
           "%s: %s: %s: the second call added %.9g at element %lld, the first %.9g "
           "(|difference| / max(1, max|delta|) = %.3g > %.3g): the backward must accumulate",
           st->name, desc, what, at >= 0 ? (double)g->buf[at] - g->first[at] : 0.0, (long long)at,
           at >= 0 ? delta[at] : 0.0, worst / scale, ACCUM_BOUND);
}

/* max|got - fd| / max(1, max|fd|) <= st->bound. */
static void check_fd(grad_stats *st, const char *desc, const char *what, const double *got,
                     const double *fd, int64_t n) {
  double diff = 0.0, scale = 1.0;
  int64_t at = -1;
  for (int64_t i = 0; i < n; i++) {
    scale = fmax(scale, fabs(fd[i]));
    double d = fabs(got[i] - fd[i]);
    if (isnan(d)) d = INFINITY; /* a NaN is the worst, and stays so */
    if (d > diff) {
      diff = d;
      at = i;
    }
  }
  double err = diff / scale;
  if (err > st->worst) st->worst = err;
  CHECK_OP(st, err <= st->bound,
           "%s: %s: %s: max|got - fd| / max(1, max|fd|) = %.3g > %.3g, worst at element %lld: "
           "got %.9g, finite differences %.9g",
           st->name, desc, what, err, st->bound, (long long)at, at >= 0 ? got[at] : 0.0,
           at >= 0 ? fd[at] : 0.0);
}

/* The full check of one gradient: accumulation, then the first call's delta (converted to the
 * reference's order by `rank`/`dims` when those are given) against input `which` of p. */
static void check_grad(grad_stats *st, const char *desc, const char *what, const grad_buf *g,
                       const fd_problem *p, int which, int rank, const int64_t *logical_dims) {
  double *delta = new_doubles(g->n), *fd = new_doubles(g->n);
  grad_buf_finish(st, desc, what, g, delta);
  if (logical_dims) {
    double *logical = new_doubles(g->n);
    physical_to_logical_d(delta, logical, rank, logical_dims);
    free(delta);
    delta = logical;
  }
  fd_gradient(p, which, fd);
  check_fd(st, desc, what, delta, fd, g->n);
  free(delta);
  free(fd);
}

/* Bitwise equality of two float arrays (threads=1 vs 2, NULL-pointer variants). */
static void check_same(grad_stats *st, const char *desc, const char *what, const float *a,
                       const float *b, int64_t n) {
  int64_t at = -1;
  for (int64_t i = 0; i < n && at < 0; i++)
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0) at = i;
  CHECK_OP(st, at < 0, "%s: %s: %s differ at element %lld: %.9g vs %.9g", st->name, desc, what,
           (long long)at, at >= 0 ? a[at] : 0.0, at >= 0 ? b[at] : 0.0);
}

/* ---------------------------------------------------------------------------------------------
 * batchnorm
 * ------------------------------------------------------------------------------------------- */

typedef struct bn_ctx {
  int64_t outer, c, inner;
  double eps;
  bool batch_stats;
  const double *mean, *rstd; /* the constants of eval mode */
} bn_ctx;

/* Inputs x (outer, c, inner), scale (c), bias (c). Training mode: the batch's mean and biased
 * variance; eval mode: the given constants. */
static void bn_ref(const fd_problem *p, double *y) {
  const bn_ctx *b = p->ctx;
  const double *x = p->x[0], *scale = p->x[1], *bias = p->x[2];
  double count = (double)(b->outer * b->inner);
  for (int64_t ch = 0; ch < b->c; ch++) {
    double mean, rstd;
    if (b->batch_stats) {
      double sum = 0.0, sq = 0.0;
      for (int64_t o = 0; o < b->outer; o++)
        for (int64_t i = 0; i < b->inner; i++) sum += x[(o * b->c + ch) * b->inner + i];
      mean = sum / count;
      for (int64_t o = 0; o < b->outer; o++)
        for (int64_t i = 0; i < b->inner; i++) {
          double d = x[(o * b->c + ch) * b->inner + i] - mean;
          sq += d * d;
        }
      rstd = 1.0 / sqrt(sq / count + b->eps);
    } else {
      mean = b->mean[ch];
      rstd = b->rstd[ch];
    }
    for (int64_t o = 0; o < b->outer; o++)
      for (int64_t i = 0; i < b->inner; i++) {
        int64_t at = (o * b->c + ch) * b->inner + i;
        y[at] = (x[at] - mean) * rstd * scale[ch] + bias[ch];
      }
  }
}

/* The training forward's outputs against double: batch mean and rstd, the running statistics
 * (unbiased variance, momentum), and y. Each is one float rounding of a double computation:
 * |got - ref| <= 1e-6 |ref| (+ 1e-12 for values near zero); y = (x - mean) * a + bias in float
 * adds ~2^-23 (|x| + |mean|) |a| + 2^-23 |y|, allowed for with 1e-6 and a factor 8. */
static void check_bn_train_stats(grad_stats *st, const char *desc, const float *x, const float *y,
                                 int64_t outer, int64_t c, int64_t inner, const float *scale,
                                 const float *bias, float eps, float momentum, const float *rm0,
                                 const float *rv0, const float *rm, const float *rv,
                                 const float *mean_f, const float *rstd_f) {
  double count = (double)(outer * inner);
  int bad = 0;
  char what[160] = "";
  for (int64_t ch = 0; ch < c && !bad; ch++) {
    double sum = 0.0, sq = 0.0;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++) sum += x[(o * c + ch) * inner + i];
    double mean = sum / count;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++) {
        double d = x[(o * c + ch) * inner + i] - mean;
        sq += d * d;
      }
    double var = sq / count, rstd = 1.0 / sqrt(var + (double)eps);
    double unbiased = count > 1 ? sq / (count - 1) : var; /* one value: hawq keeps 0 */
    double ref_rm = (1.0 - (double)momentum) * rm0[ch] + (double)momentum * mean;
    double ref_rv = (1.0 - (double)momentum) * rv0[ch] + (double)momentum * unbiased;
    const double got[4] = {mean_f[ch], rstd_f[ch], rm[ch], rv[ch]};
    const double ref[4] = {mean, rstd, ref_rm, ref_rv};
    static const char *names[4] = {"batch_mean", "batch_rstd", "running_mean", "running_var"};
    for (int k = 0; k < 4 && !bad; k++) {
      if (!(fabs(got[k] - ref[k]) <= 1e-6 * fabs(ref[k]) + 1e-12)) {
        bad = 1;
        snprintf(what, sizeof what, "%s[%lld] = %.9g, double reference %.9g", names[k],
                 (long long)ch, got[k], ref[k]);
      }
    }
    double a = rstd * scale[ch];
    for (int64_t o = 0; o < outer && !bad; o++)
      for (int64_t i = 0; i < inner && !bad; i++) {
        int64_t at = (o * c + ch) * inner + i;
        double ref_y = (x[at] - mean) * a + bias[ch];
        double tol = 8e-6 * ((fabs((double)x[at]) + fabs(mean)) * fabs(a) + fabs(ref_y)) + 1e-12;
        if (!(fabs(y[at] - ref_y) <= tol)) {
          bad = 1;
          snprintf(what, sizeof what, "y[%lld] = %.9g, double reference %.9g (tolerance %.3g)",
                   (long long)at, (double)y[at], ref_y, tol);
        }
      }
  }
  CHECK_OP(st, !bad, "%s: %s: %s", st->name, desc, what);
}

static void run_batchnorm_case(grad_stats *st, grad_stats *stats_st, test_rng *rng, int64_t outer,
                               int64_t c, int64_t inner, bool train, float mean_offset,
                               int threads) {
  int64_t count = outer * c * inner;
  float *x = new_floats(count), *y = new_floats(count), *dy = new_floats(count);
  float *scale = new_floats(c), *bias = new_floats(c), *mean_f = new_floats(c);
  float *rstd_f = new_floats(c);
  fill_uniform(rng, x, count, mean_offset - 2.0f, mean_offset + 2.0f);
  fill_uniform(rng, scale, c, -2.0f, 2.0f);
  fill_uniform(rng, bias, c, -1.0f, 1.0f);
  fill_uniform(rng, dy, count, -1.0f, 1.0f);
  float eps = test_rng_int(rng, 0, 1) ? 1e-5f : 1e-3f;
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "%s (outer %lld, c %lld, inner %lld) x in [%g, %g) eps %g threads %d",
           train ? "train" : "eval", (long long)outer, (long long)c, (long long)inner,
           mean_offset - 2.0f, mean_offset + 2.0f, eps, threads);
  if (train) {
    float *rm = new_floats(c), *rv = new_floats(c);
    fill_uniform(rng, rm, c, -1.0f, 1.0f);
    fill_uniform(rng, rv, c, 0.5f, 2.0f);
    float *rm0 = copy_floats(rm, c), *rv0 = copy_floats(rv, c);
    float momentum = test_rng_int(rng, 0, 1) ? 0.1f : test_rng_float(rng, 0.0f, 1.0f);
    hawq_batchnorm_train_forward(x, y, outer, c, inner, scale, bias, eps, momentum, BN_NO_ACT, rm,
                                 rv, mean_f, rstd_f, threads);
    check_bn_train_stats(stats_st, desc, x, y, outer, c, inner, scale, bias, eps, momentum, rm0,
                         rv0, rm, rv, mean_f, rstd_f);
    free(rm);
    free(rv);
    free(rm0);
    free(rv0);
  } else {
    for (int64_t ch = 0; ch < c; ch++) {
      mean_f[ch] = test_rng_float(rng, -1.0f, 1.0f);
      rstd_f[ch] = (float)(1.0 / sqrt((double)test_rng_float(rng, 0.1f, 2.0f) + eps));
    }
  }
  double *mean_d = new_doubles(c), *rstd_d = new_doubles(c);
  for (int64_t ch = 0; ch < c; ch++) {
    mean_d[ch] = mean_f[ch];
    rstd_d[ch] = rstd_f[ch];
  }
  bn_ctx ctx = {outer, c, inner, eps, train, mean_d, rstd_d};
  fd_problem p = fd_new(bn_ref, &ctx, dy, count);
  fd_add_input(&p, x, count);
  fd_add_input(&p, scale, c);
  fd_add_input(&p, bias, c);
  grad_buf gx = grad_buf_new(rng, count), gs = grad_buf_new(rng, c), gb = grad_buf_new(rng, c);
  hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, mean_f, rstd_f, train,
                          gx.buf, false, gs.buf, gb.buf, threads);
  grad_buf_mark(&gx);
  grad_buf_mark(&gs);
  grad_buf_mark(&gb);
  hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, mean_f, rstd_f, train,
                          gx.buf, false, gs.buf, gb.buf, threads);
  check_grad(st, desc, "din", &gx, &p, 0, 0, NULL);
  check_grad(st, desc, "dscale", &gs, &p, 1, 0, NULL);
  check_grad(st, desc, "dbias", &gb, &p, 2, 0, NULL);
  /* Each gradient alone, with the others NULL: bitwise what the full call gives. */
  float *full[3] = {new_floats(count), new_floats(c), new_floats(c)};
  float *alone[3] = {new_floats(count), new_floats(c), new_floats(c)};
  hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, mean_f, rstd_f, train,
                          full[0], false, full[1], full[2], threads);
  hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, mean_f, rstd_f, train,
                          alone[0], false, NULL, NULL, threads);
  hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, mean_f, rstd_f, train,
                          NULL, false, alone[1], NULL, threads);
  hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, mean_f, rstd_f, train,
                          NULL, false, NULL, alone[2], threads);
  hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, mean_f, rstd_f, train,
                          NULL, false, NULL, NULL, threads);
  check_same(st, desc, "din alone / with the others", full[0], alone[0], count);
  check_same(st, desc, "dscale alone / with the others", full[1], alone[1], c);
  check_same(st, desc, "dbias alone / with the others", full[2], alone[2], c);
  for (int k = 0; k < 3; k++) {
    free(full[k]);
    free(alone[k]);
  }
  grad_buf_free(&gx);
  grad_buf_free(&gs);
  grad_buf_free(&gb);
  fd_free(&p);
  free(x);
  free(y);
  free(dy);
  free(scale);
  free(bias);
  free(mean_f);
  free(rstd_f);
  free(mean_d);
  free(rstd_d);
}

/* Large shapes (parallel): the training forward's outputs and both backwards with threads=1
 * and threads=2 must agree bitwise (per-channel sums run over channel tiles in a fixed order). */
static void run_batchnorm_threads_case(grad_stats *st, test_rng *rng, int64_t outer, int64_t c,
                                       int64_t inner) {
  int64_t count = outer * c * inner;
  float *x = new_floats(count), *dy = new_floats(count), *scale = new_floats(c);
  float *bias = new_floats(c);
  fill_uniform(rng, x, count, -2.0f, 2.0f);
  fill_uniform(rng, dy, count, -1.0f, 1.0f);
  fill_uniform(rng, scale, c, -2.0f, 2.0f);
  fill_uniform(rng, bias, c, -1.0f, 1.0f);
  float *out[2][9]; /* y, mean, rstd, running mean, running var, din, dscale, dbias, din eval */
  const int64_t sizes[9] = {count, c, c, c, c, count, c, c, count};
  for (int t = 0; t < 2; t++) {
    for (int k = 0; k < 9; k++) out[t][k] = new_floats(sizes[k]);
    for (int64_t ch = 0; ch < c; ch++) out[t][4][ch] = 1.0f;
    hawq_batchnorm_train_forward(x, out[t][0], outer, c, inner, scale, bias, 1e-5f, 0.1f, BN_NO_ACT,
                                 out[t][3], out[t][4], out[t][1], out[t][2], t + 1);
    hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, out[t][1], out[t][2],
                            true, out[t][5], false, out[t][6], out[t][7], t + 1);
    hawq_batchnorm_backward(x, dy, NULL, BN_NO_ACT, outer, c, inner, scale, out[t][1], out[t][2],
                            false, out[t][8], false, NULL, NULL, t + 1);
  }
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "(outer %lld, c %lld, inner %lld) threads 1 vs 2", (long long)outer,
           (long long)c, (long long)inner);
  static const char *names[9] = {"y",   "batch_mean", "batch_rstd", "running_mean", "running_var",
                                 "din", "dscale",     "dbias",      "eval din"};
  for (int k = 0; k < 9; k++) check_same(st, desc, names[k], out[0][k], out[1][k], sizes[k]);
  for (int t = 0; t < 2; t++)
    for (int k = 0; k < 9; k++) free(out[t][k]);
  free(x);
  free(dy);
  free(scale);
  free(bias);
}

/* An activation fused into batch norm (forward applies it, backward masks by its output, din
 * overwritten) gives exactly what the separate ops give: BN, then the activation, then BN's
 * backward of the masked gradient accumulated into zeros. Train and eval statistics. */
static void run_batchnorm_fused_case(grad_stats *st, test_rng *rng, int64_t outer, int64_t c,
                                     int64_t inner, hawq_act act, bool train) {
  int64_t count = outer * c * inner;
  float *x = new_floats(count), *dy = new_floats(count), *scale = new_floats(c);
  float *bias = new_floats(c), *mean = new_floats(c), *rstd = new_floats(c);
  fill_uniform(rng, x, count, -3.0f, 3.0f);
  fill_uniform(rng, dy, count, -1.0f, 1.0f);
  fill_uniform(rng, scale, c, -2.0f, 2.0f);
  fill_uniform(rng, bias, c, -1.0f, 1.0f);
  float *y_sep = new_floats(count), *y_fused = new_floats(count), *g = new_floats(count);
  float *dx_sep = new_floats(count), *dx_fused = new_floats(count);
  float *ds[2] = {new_floats(c), new_floats(c)}, *db[2] = {new_floats(c), new_floats(c)};
  hawq_batchnorm_train_forward(x, y_sep, outer, c, inner, scale, bias, 1e-5f, 0.1f, BN_NO_ACT, NULL,
                               NULL, mean, rstd, 2);
  hawq_batchnorm_train_forward(x, y_fused, outer, c, inner, scale, bias, 1e-5f, 0.1f, act, NULL,
                               NULL, NULL, NULL, 2);
  for (int64_t i = 0; i < count; i++) {
    float v = y_sep[i] < act.lo ? act.lo : y_sep[i] > act.hi ? act.hi : y_sep[i];
    g[i] = v > act.lo && v < act.hi ? dy[i] : 0.0f;
    y_sep[i] = v;
    dx_fused[i] = NAN; /* overwritten, never read */
  }
  hawq_batchnorm_backward(x, g, NULL, BN_NO_ACT, outer, c, inner, scale, mean, rstd, train, dx_sep,
                          false, ds[0], db[0], 2);
  hawq_batchnorm_backward(x, dy, y_fused, act, outer, c, inner, scale, mean, rstd, train, dx_fused,
                          true, ds[1], db[1], 2);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "fused act [%g, %g] (outer %lld, c %lld, inner %lld, %s)",
           (double)act.lo, (double)act.hi, (long long)outer, (long long)c, (long long)inner,
           train ? "train" : "eval");
  check_same(st, desc, "y", y_sep, y_fused, count);
  /* Equal values (written -0 and an accumulated 0 + -0 = +0 compare equal). */
  int64_t at = -1;
  for (int64_t i = 0; i < count && at < 0; i++)
    if (!(dx_sep[i] == dx_fused[i])) at = i;
  CHECK_OP(st, at < 0, "%s: %s: din differs at element %lld: %.9g vs %.9g", st->name, desc,
           (long long)at, at >= 0 ? dx_sep[at] : 0.0, at >= 0 ? dx_fused[at] : 0.0);
  check_same(st, desc, "dscale", ds[0], ds[1], c);
  check_same(st, desc, "dbias", db[0], db[1], c);
  float *bufs[] = {x, dy,     scale,    bias,  mean,  rstd,  y_sep, y_fused,
                   g, dx_sep, dx_fused, ds[0], ds[1], db[0], db[1]};
  for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) free(bufs[k]);
}

static void test_batchnorm(grad_stats *st, grad_stats *stats_st, test_rng *rng) {
  for (int i = 0; i < 240; i++) {
    int64_t inner = test_rng_int(rng, 0, 2) ? 1 : test_rng_int(rng, 2, 5);
    run_batchnorm_case(st, stats_st, rng, test_rng_int(rng, 1, 6), test_rng_int(rng, 1, 8), inner,
                       i % 2 == 0, 0.0f, (int)test_rng_int(rng, 1, 2));
  }
  /* A mean far from zero against a spread of ~1: float sums of squares would lose the variance
   * (larger offsets cost the float batch_mean the backward gets its accuracy). */
  run_batchnorm_case(st, stats_st, rng, 40, 3, 1, true, 50.0f, 1);
  run_batchnorm_case(st, stats_st, rng, 6, 2, 7, true, -50.0f, 2);
  /* More channels than one stack block (1024) holds. */
  run_batchnorm_case(st, stats_st, rng, 2, 1030, 1, true, 0.0f, 2);
  run_batchnorm_threads_case(st, rng, 4096, 16, 1);
  run_batchnorm_threads_case(st, rng, 2048, 40, 1);
  run_batchnorm_threads_case(st, rng, 3, 16, 1024);
  const hawq_act relu = {true, 0.0f, INFINITY}, relu6 = {true, 0.0f, 6.0f};
  for (int train = 0; train < 2; train++) {
    run_batchnorm_fused_case(st, rng, 700, 16, 1, relu, train);
    run_batchnorm_fused_case(st, rng, 300, 70, 1, relu6, train);
    run_batchnorm_fused_case(st, rng, 5, 3, 40, relu, train);
  }
}

/* ---------------------------------------------------------------------------------------------
 * relu, clip, leaky relu
 * ------------------------------------------------------------------------------------------- */

typedef enum act_kind { ACT_RELU, ACT_CLIP, ACT_LEAKY } act_kind;

typedef struct act_ctx {
  act_kind kind;
  float lo, hi, alpha;
} act_ctx;

static void act_ref(const fd_problem *p, double *y) {
  const act_ctx *a = p->ctx;
  const double *x = p->x[0];
  for (int64_t i = 0; i < p->out_len; i++) {
    switch (a->kind) {
      case ACT_RELU:
        y[i] = x[i] > 0.0 ? x[i] : 0.0;
        break;
      case ACT_CLIP:
        y[i] = fmin(fmax(x[i], a->lo), a->hi);
        break;
      default:
        y[i] = x[i] >= 0.0 ? x[i] : x[i] * a->alpha;
        break;
    }
  }
}

static void act_backward(const act_ctx *a, const float *x, const float *dy, float *dx, int64_t n,
                         int threads) {
  switch (a->kind) {
    case ACT_RELU:
      hawq_relu_backward(x, dy, dx, n, threads);
      break;
    case ACT_CLIP:
      hawq_clip_backward(x, dy, dx, n, a->lo, a->hi, threads);
      break;
    default:
      hawq_leaky_relu_backward(x, dy, dx, n, a->alpha, threads);
      break;
  }
}

static const char *act_name(act_kind kind) {
  return kind == ACT_RELU ? "relu" : kind == ACT_CLIP ? "clip" : "leaky_relu";
}

static act_ctx random_act(test_rng *rng, act_kind kind) {
  act_ctx a = {kind, 0.0f, 0.0f, 0.0f};
  a.lo = test_rng_float(rng, -2.0f, 0.5f);
  a.hi = a.lo + test_rng_float(rng, 0.1f, 3.0f);
  int bounds = (int)test_rng_int(rng, 0, 3);
  if (bounds == 1) a.lo = -INFINITY;
  if (bounds == 2) a.hi = INFINITY;
  a.alpha = test_rng_int(rng, 0, 1) ? 0.01f : test_rng_float(rng, 0.0f, 1.0f);
  return a;
}

/* A value in [-3, 3) at least KINK_MARGIN from 0 and from the clip bounds. */
static float away_from_kinks(test_rng *rng, const act_ctx *a) {
  for (;;) {
    float v = test_rng_float(rng, -3.0f, 3.0f);
    if (fabsf(v) >= KINK_MARGIN && !(fabsf(v - a->lo) < KINK_MARGIN) &&
        !(fabsf(v - a->hi) < KINK_MARGIN))
      return v;
  }
}

static void run_act_case(grad_stats *st, test_rng *rng, act_kind kind, int64_t n, int threads) {
  act_ctx a = random_act(rng, kind);
  float *x = new_floats(n), *dy = new_floats(n);
  for (int64_t i = 0; i < n; i++) x[i] = away_from_kinks(rng, &a);
  fill_uniform(rng, dy, n, -1.0f, 1.0f);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "%s [%g, %g] alpha %g n %lld threads %d", act_name(kind), a.lo, a.hi,
           a.alpha, (long long)n, threads);
  fd_problem p = fd_new(act_ref, &a, dy, n);
  fd_add_input(&p, x, n);
  grad_buf gx = grad_buf_new(rng, n);
  act_backward(&a, x, dy, gx.buf, n, threads);
  grad_buf_mark(&gx);
  act_backward(&a, x, dy, gx.buf, n, threads);
  act_backward(&a, x, dy, NULL, n, threads); /* not wanted: nothing to do */
  check_grad(st, desc, "din", &gx, &p, 0, 0, NULL);
  grad_buf_free(&gx);
  fd_free(&p);
  free(x);
  free(dy);
}

/* The documented choices at the kinks and for NaN, where finite differences say nothing: relu
 * passes nothing at 0, clip nothing at its bounds, leaky relu scales by alpha at 0. */
static void test_act_kinks(grad_stats *st) {
  const float x[6] = {0.0f, -0.0f, -1.0f, 2.0f, NAN, 0.5f};
  const float dy[6] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  const float relu[6] = {0, 0, 0, 1, 0, 1}, clip[6] = {1, 1, 0, 0, 0, 1};
  const float leaky[6] = {0.25f, 0.25f, 0.25f, 1, 0.25f, 1};
  float got[6] = {0};
  hawq_relu_backward(x, dy, got, 6, 1);
  check_same(&st[ACT_RELU], "x = 0, -0, -1, 2, NaN, 0.5", "relu din", got, relu, 6);
  memset(got, 0, sizeof got);
  hawq_clip_backward(x, dy, got, 6, -1.0f, 2.0f, 1); /* -1 and 2 are the bounds */
  check_same(&st[ACT_CLIP], "clip [-1, 2] at x = 0, -0, -1, 2, NaN, 0.5", "clip din", got, clip, 6);
  memset(got, 0, sizeof got);
  hawq_leaky_relu_backward(x, dy, got, 6, 0.25f, 1);
  check_same(&st[ACT_LEAKY], "alpha 0.25 at x = 0, -0, -1, 2, NaN, 0.5", "leaky_relu din", got,
             leaky, 6);
}

static void run_act_threads_case(grad_stats *st, test_rng *rng, act_kind kind, int64_t n) {
  act_ctx a = random_act(rng, kind);
  float *x = new_floats(n), *dy = new_floats(n), *d1 = new_floats(n), *d2 = new_floats(n);
  fill_uniform(rng, x, n, -3.0f, 3.0f);
  fill_uniform(rng, dy, n, -1.0f, 1.0f);
  act_backward(&a, x, dy, d1, n, 1);
  act_backward(&a, x, dy, d2, n, 2);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "%s n %lld threads 1 vs 2", act_name(kind), (long long)n);
  check_same(st, desc, "din", d1, d2, n);
  free(x);
  free(dy);
  free(d1);
  free(d2);
}

static void test_activations(grad_stats *st, test_rng *rng) {
  for (int kind = 0; kind < 3; kind++) {
    for (int i = 0; i < 100; i++)
      run_act_case(&st[kind], rng, (act_kind)kind, test_rng_int(rng, 1, 300),
                   (int)test_rng_int(rng, 1, 2));
    run_act_threads_case(&st[kind], rng, (act_kind)kind, 100003);
  }
  test_act_kinks(st);
}

/* ---------------------------------------------------------------------------------------------
 * add, sub, mul, div with broadcasting
 * ------------------------------------------------------------------------------------------- */

typedef struct binary_ctx {
  hawq_op op;
  int rank;
  const int64_t *out_dims, *a_dims, *b_dims;
} binary_ctx;

static const char *binary_name(hawq_op op) {
  switch (op) {
    case HAWQ_OP_ADD:
      return "add";
    case HAWQ_OP_SUB:
      return "sub";
    case HAWQ_OP_MUL:
      return "mul";
    default:
      return "div";
  }
}

/* Flat index into a broadcast operand of output element `flat`. */
static int64_t broadcast_index(int64_t flat, int rank, const int64_t *out_dims,
                               const int64_t *dims) {
  int64_t coord[HAWQ_MAX_RANK], at = 0;
  unravel(flat, rank, out_dims, coord);
  for (int k = 0; k < rank; k++) at = at * dims[k] + (dims[k] == 1 ? 0 : coord[k]);
  return at;
}

static double binary_apply(hawq_op op, double x, double z) {
  switch (op) {
    case HAWQ_OP_ADD:
      return x + z;
    case HAWQ_OP_SUB:
      return x - z;
    case HAWQ_OP_MUL:
      return x * z;
    default:
      return x / z;
  }
}

static void binary_ref(const fd_problem *p, double *y) {
  const binary_ctx *b = p->ctx;
  for (int64_t i = 0; i < p->out_len; i++) {
    double x = p->x[0][broadcast_index(i, b->rank, b->out_dims, b->a_dims)];
    double z = p->x[1][broadcast_index(i, b->rank, b->out_dims, b->b_dims)];
    y[i] = binary_apply(b->op, x, z);
  }
}

/* Values in [-2, 2); divisors at least 0.25 from zero. */
static void fill_operands(test_rng *rng, hawq_op op, float *a, int64_t na, float *b, int64_t nb) {
  fill_uniform(rng, a, na, -2.0f, 2.0f);
  fill_uniform(rng, b, nb, -2.0f, 2.0f);
  if (op == HAWQ_OP_DIV)
    for (int64_t i = 0; i < nb; i++) b[i] = (b[i] < 0 ? -0.25f : 0.25f) + b[i] * 0.875f;
}

static void describe_binary(char *desc, size_t size, hawq_op op, int rank, const int64_t *a_dims,
                            const int64_t *b_dims, int threads) {
  char ad[128], bd[128];
  format_dims(rank, a_dims, ad, sizeof ad);
  format_dims(rank, b_dims, bd, sizeof bd);
  snprintf(desc, size, "%s a%s b%s threads %d", binary_name(op), ad, bd, threads);
}

static void run_binary_case(grad_stats *st, test_rng *rng, hawq_op op, int rank,
                            const int64_t *out_dims, const int64_t *a_dims, const int64_t *b_dims,
                            int threads) {
  int64_t na = numel_of(rank, a_dims), nb = numel_of(rank, b_dims), n = numel_of(rank, out_dims);
  float *a = new_floats(na), *b = new_floats(nb), *dy = new_floats(n);
  fill_operands(rng, op, a, na, b, nb);
  fill_uniform(rng, dy, n, -1.0f, 1.0f);
  char desc[DESC_SIZE];
  describe_binary(desc, sizeof desc, op, rank, a_dims, b_dims, threads);
  binary_ctx ctx = {op, rank, out_dims, a_dims, b_dims};
  fd_problem p = fd_new(binary_ref, &ctx, dy, n);
  fd_add_input(&p, a, na);
  fd_add_input(&p, b, nb);
  grad_buf ga = grad_buf_new(rng, na), gb = grad_buf_new(rng, nb);
  hawq_binary_backward(op, rank, out_dims, a, a_dims, b, b_dims, dy, ga.buf, gb.buf, threads);
  grad_buf_mark(&ga);
  grad_buf_mark(&gb);
  hawq_binary_backward(op, rank, out_dims, a, a_dims, b, b_dims, dy, ga.buf, gb.buf, threads);
  check_grad(st, desc, "da", &ga, &p, 0, 0, NULL);
  check_grad(st, desc, "db", &gb, &p, 1, 0, NULL);
  float *full_a = new_floats(na), *full_b = new_floats(nb);
  float *alone_a = new_floats(na), *alone_b = new_floats(nb);
  hawq_binary_backward(op, rank, out_dims, a, a_dims, b, b_dims, dy, full_a, full_b, threads);
  hawq_binary_backward(op, rank, out_dims, a, a_dims, b, b_dims, dy, alone_a, NULL, threads);
  hawq_binary_backward(op, rank, out_dims, a, a_dims, b, b_dims, dy, NULL, alone_b, threads);
  hawq_binary_backward(op, rank, out_dims, a, a_dims, b, b_dims, dy, NULL, NULL, threads);
  check_same(st, desc, "da alone / with db", full_a, alone_a, na);
  check_same(st, desc, "db alone / with da", full_b, alone_b, nb);
  free(full_a);
  free(full_b);
  free(alone_a);
  free(alone_b);
  grad_buf_free(&ga);
  grad_buf_free(&gb);
  fd_free(&p);
  free(a);
  free(b);
  free(dy);
}

/* Large NHWC shapes (the parallel paths): threads=1 and threads=2 agree bitwise, and both match
 * the analytic gradient summed in double (err as for the finite differences). */
static void run_binary_threads_case(grad_stats *st, test_rng *rng, hawq_op op,
                                    const int64_t *out_dims, const int64_t *a_dims,
                                    const int64_t *b_dims) {
  const int rank = 4;
  int64_t na = numel_of(rank, a_dims), nb = numel_of(rank, b_dims), n = numel_of(rank, out_dims);
  float *a = new_floats(na), *b = new_floats(nb), *dy = new_floats(n);
  fill_operands(rng, op, a, na, b, nb);
  fill_uniform(rng, dy, n, -1.0f, 1.0f);
  float *da[2] = {new_floats(na), new_floats(na)}, *db[2] = {new_floats(nb), new_floats(nb)};
  for (int t = 0; t < 2; t++)
    hawq_binary_backward(op, rank, out_dims, a, a_dims, b, b_dims, dy, da[t], db[t], t + 1);
  char desc[DESC_SIZE];
  describe_binary(desc, sizeof desc, op, rank, a_dims, b_dims, 2);
  check_same(st, desc, "da threads 1 vs 2", da[0], da[1], na);
  check_same(st, desc, "db threads 1 vs 2", db[0], db[1], nb);
  double *ref_a = new_doubles(na), *ref_b = new_doubles(nb), *got = new_doubles(na + nb);
  for (int64_t i = 0; i < n; i++) {
    int64_t ia = broadcast_index(i, rank, out_dims, a_dims);
    int64_t ib = broadcast_index(i, rank, out_dims, b_dims);
    double x = a[ia], z = b[ib], g = dy[i];
    switch (op) {
      case HAWQ_OP_ADD:
        ref_a[ia] += g;
        ref_b[ib] += g;
        break;
      case HAWQ_OP_SUB:
        ref_a[ia] += g;
        ref_b[ib] -= g;
        break;
      case HAWQ_OP_MUL:
        ref_a[ia] += g * z;
        ref_b[ib] += g * x;
        break;
      default:
        ref_a[ia] += g / z;
        ref_b[ib] -= g * x / (z * z);
        break;
    }
  }
  for (int64_t i = 0; i < na; i++) got[i] = da[0][i];
  for (int64_t i = 0; i < nb; i++) got[na + i] = db[0][i];
  check_fd(st, desc, "da against the analytic gradient", got, ref_a, na);
  check_fd(st, desc, "db against the analytic gradient", got + na, ref_b, nb);
  for (int t = 0; t < 2; t++) {
    free(da[t]);
    free(db[t]);
  }
  free(ref_a);
  free(ref_b);
  free(got);
  free(a);
  free(b);
  free(dy);
}

static void test_binary(grad_stats *st, test_rng *rng) {
  const hawq_op ops[4] = {HAWQ_OP_ADD, HAWQ_OP_SUB, HAWQ_OP_MUL, HAWQ_OP_DIV};
  static const int64_t max_dim[HAWQ_MAX_RANK + 1] = {1, 12, 7, 5, 4, 3, 2};
  for (int i = 0; i < 600; i++) {
    int rank = (int)test_rng_int(rng, 1, HAWQ_MAX_RANK);
    int64_t out[HAWQ_MAX_RANK], a[HAWQ_MAX_RANK], b[HAWQ_MAX_RANK];
    for (int k = 0; k < rank; k++) out[k] = test_rng_int(rng, 1, max_dim[rank]);
    int pattern = (int)test_rng_int(rng, 0, 4);
    for (int k = 0; k < rank; k++) {
      a[k] = out[k];
      switch (pattern) {
        case 0: /* equal shapes */
          b[k] = out[k];
          break;
        case 1: /* size-1 dims on either side, independently */
          b[k] = test_rng_int(rng, 0, 2) ? out[k] : 1;
          a[k] = test_rng_int(rng, 0, 3) ? out[k] : 1;
          if (a[k] == 1 && b[k] == 1) b[k] = out[k];
          break;
        case 2: /* scalar */
          b[k] = 1;
          break;
        case 3: /* per-last-dim vector (per channel in NHWC) */
          b[k] = k == rank - 1 ? out[k] : 1;
          break;
        default: /* middle dims broadcast */
          b[k] = (k > 0 && k < rank - 1) ? 1 : out[k];
          break;
      }
    }
    int64_t *first = a, *second = b;
    if (test_rng_int(rng, 0, 1)) { /* the broadcast operand on the left */
      first = b;
      second = a;
    }
    run_binary_case(st, rng, ops[i % 4], rank, out, first, second, (int)test_rng_int(rng, 1, 2));
  }
  /* Rows longer than the kernel's 256-element tiles, reduced and not. */
  const int64_t long_out[2] = {3, 600}, long_row[2] = {1, 600}, long_col[2] = {3, 1};
  const int64_t long_one[2] = {1, 1};
  for (int k = 0; k < 4; k++) {
    run_binary_case(st, rng, ops[k], 2, long_out, long_out, long_row, 1 + k % 2);
    run_binary_case(st, rng, ops[k], 2, long_out, long_col, long_out, 1 + k % 2);
    run_binary_case(st, rng, ops[k], 2, long_out, long_out, long_one, 1 + k % 2);
  }
  /* Residual add, per channel, scalar, middle broadcast (both sides), per image. */
  const int64_t big[4] = {2, 40, 40, 32}, chan[4] = {1, 1, 1, 32}, one[4] = {1, 1, 1, 1};
  const int64_t mid[4] = {2, 1, 40, 32}, image[4] = {2, 1, 1, 1};
  for (int k = 0; k < 4; k++) {
    run_binary_threads_case(st, rng, ops[k], big, big, big);
    run_binary_threads_case(st, rng, ops[k], big, big, chan);
    run_binary_threads_case(st, rng, ops[k], big, one, big);
    run_binary_threads_case(st, rng, ops[k], big, mid, big);
    run_binary_threads_case(st, rng, ops[k], big, big, image);
  }
}

/* ---------------------------------------------------------------------------------------------
 * max and average pooling, global pooling
 * ------------------------------------------------------------------------------------------- */

typedef struct pool_case {
  int64_t n, c, h, w, p, q;
  int kernel[2], stride[2], dilation[2], pad[4];
  bool is_max, ceil_mode, count_include_pad;
  int threads;
} pool_case;

/* Output extent as PyTorch (and hawq's importer) computes it, ceil_mode included. */
static int64_t pool_out_extent(int64_t in, int kernel, int dilation, int stride, int pad_begin,
                               int pad_end, bool ceil_mode) {
  int64_t keff = (int64_t)(kernel - 1) * dilation + 1, span = in + pad_begin + pad_end - keff;
  int64_t o = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (o - 1) * stride >= in + pad_begin) o--;
  return o;
}

/* MaxPool / AveragePool on logical (N,C,H,W) doubles with PyTorch's window rules: the average
 * divides by the window clipped to the padded input (count_include_pad) or by the real inputs
 * under it. */
static void pool_ref(const fd_problem *p, double *y) {
  const pool_case *pc = p->ctx;
  const double *x = p->x[0];
  for (int64_t in = 0; in < pc->n; in++)
    for (int64_t ic = 0; ic < pc->c; ic++)
      for (int64_t op = 0; op < pc->p; op++)
        for (int64_t oq = 0; oq < pc->q; oq++) {
          const double *plane = x + (in * pc->c + ic) * pc->h * pc->w;
          int64_t hstart = op * pc->stride[0] - pc->pad[0];
          int64_t wstart = oq * pc->stride[1] - pc->pad[1];
          double v;
          if (pc->is_max) {
            v = -INFINITY;
            for (int r = 0; r < pc->kernel[0]; r++) {
              int64_t ih = hstart + (int64_t)r * pc->dilation[0];
              if (ih < 0 || ih >= pc->h) continue;
              for (int t = 0; t < pc->kernel[1]; t++) {
                int64_t iw = wstart + (int64_t)t * pc->dilation[1];
                if (iw >= 0 && iw < pc->w) v = fmax(v, plane[ih * pc->w + iw]);
              }
            }
          } else {
            int64_t hend = hstart + pc->kernel[0], wend = wstart + pc->kernel[1];
            if (hend > pc->h + pc->pad[2]) hend = pc->h + pc->pad[2];
            if (wend > pc->w + pc->pad[3]) wend = pc->w + pc->pad[3];
            int64_t padded_count = (hend - hstart) * (wend - wstart);
            int64_t h_lo = hstart < 0 ? 0 : hstart, w_lo = wstart < 0 ? 0 : wstart;
            int64_t h_hi = hend > pc->h ? pc->h : hend, w_hi = wend > pc->w ? pc->w : wend;
            double sum = 0.0;
            for (int64_t ih = h_lo; ih < h_hi; ih++)
              for (int64_t iw = w_lo; iw < w_hi; iw++) sum += plane[ih * pc->w + iw];
            int64_t divisor = pc->count_include_pad ? padded_count : (h_hi - h_lo) * (w_hi - w_lo);
            v = divisor > 0 ? sum / (double)divisor : 0.0;
          }
          y[((in * pc->c + ic) * pc->p + op) * pc->q + oq] = v;
        }
}

static hawq_pool_shape pool_shape_of(const pool_case *pc) {
  hawq_pool_shape s = {.n = pc->n, .h = pc->h, .w = pc->w, .c = pc->c, .p = pc->p, .q = pc->q};
  for (int i = 0; i < 2; i++) {
    s.attr.kernel[i] = pc->kernel[i];
    s.attr.stride[i] = pc->stride[i];
    s.attr.dilation[i] = pc->dilation[i];
  }
  for (int i = 0; i < 4; i++) s.attr.pad[i] = pc->pad[i];
  s.attr.count_include_pad = pc->count_include_pad;
  return s;
}

static void pool_backward(const pool_case *pc, const float *x, const float *dy, float *dx,
                          int threads) {
  hawq_pool_shape s = pool_shape_of(pc);
  if (pc->is_max)
    hawq_maxpool_backward(&s, x, dy, dx, threads);
  else
    hawq_avgpool_backward(&s, dy, dx, threads);
}

static void describe_pool(char *desc, size_t size, const pool_case *pc) {
  snprintf(desc, size,
           "%s x(%lld,%lld,%lld,%lld) kernel %dx%d stride %d,%d dilation %d,%d pads t%d l%d b%d "
           "r%d ceil_mode %d count_include_pad %d threads %d",
           pc->is_max ? "max" : "avg", (long long)pc->n, (long long)pc->c, (long long)pc->h,
           (long long)pc->w, pc->kernel[0], pc->kernel[1], pc->stride[0], pc->stride[1],
           pc->dilation[0], pc->dilation[1], pc->pad[0], pc->pad[1], pc->pad[2], pc->pad[3],
           pc->ceil_mode, pc->count_include_pad, pc->threads);
}

static void run_pool_case(grad_stats *st, test_rng *rng, const pool_case *pc) {
  int64_t x_dims[4] = {pc->n, pc->c, pc->h, pc->w}, y_dims[4] = {pc->n, pc->c, pc->p, pc->q};
  int64_t x_count = numel_of(4, x_dims), y_count = numel_of(4, y_dims);
  float *x = new_floats(x_count), *x_phys = new_floats(x_count);
  float *dy = new_floats(y_count), *dy_phys = new_floats(y_count);
  fill_distinct(rng, x, x_count); /* no ties within a window */
  fill_uniform(rng, dy, y_count, -1.0f, 1.0f);
  logical_to_physical(x, x_phys, 4, x_dims);
  logical_to_physical(dy, dy_phys, 4, y_dims);
  char desc[DESC_SIZE];
  describe_pool(desc, sizeof desc, pc);
  fd_problem p = fd_new(pool_ref, pc, dy, y_count);
  fd_add_input(&p, x, x_count);
  grad_buf gx = grad_buf_new(rng, x_count);
  pool_backward(pc, x_phys, dy_phys, gx.buf, pc->threads);
  grad_buf_mark(&gx);
  pool_backward(pc, x_phys, dy_phys, gx.buf, pc->threads);
  pool_backward(pc, x_phys, dy_phys, NULL, pc->threads);
  check_grad(st, desc, "din", &gx, &p, 0, 4, x_dims);
  /* The same with the other thread count: bitwise equal. */
  float *d1 = new_floats(x_count), *d2 = new_floats(x_count);
  pool_backward(pc, x_phys, dy_phys, d1, 1);
  pool_backward(pc, x_phys, dy_phys, d2, 2);
  check_same(st, desc, "din threads 1 vs 2", d1, d2, x_count);
  free(d1);
  free(d2);
  grad_buf_free(&gx);
  fd_free(&p);
  free(x);
  free(x_phys);
  free(dy);
  free(dy_phys);
}

/* Smallest input extent a kernel fits in, given the pads. */
static int64_t min_extent(int kernel, int dilation, int pad_sum) {
  int64_t m = (int64_t)(kernel - 1) * dilation + 1 - pad_sum;
  return m < 1 ? 1 : m;
}

/* True when some max pooling window has no tap inside the input (possible with dilation):
 * its output is -inf and nothing flows back; the random cases avoid it. */
static bool has_empty_window(const pool_case *pc) {
  for (int axis = 0; axis < 2; axis++) {
    int64_t extent = axis ? pc->w : pc->h, outs = axis ? pc->q : pc->p;
    for (int64_t o = 0; o < outs; o++) {
      bool any = false;
      for (int r = 0; r < pc->kernel[axis]; r++) {
        int64_t i = o * pc->stride[axis] - pc->pad[axis] + (int64_t)r * pc->dilation[axis];
        any |= i >= 0 && i < extent;
      }
      if (!any) return true;
    }
  }
  return false;
}

static pool_case random_pool_case(test_rng *rng, bool is_max, int64_t max_c) {
  for (;;) {
    pool_case pc;
    memset(&pc, 0, sizeof pc);
    pc.is_max = is_max;
    pc.n = test_rng_int(rng, 1, 2);
    pc.c = test_rng_int(rng, 1, max_c);
    for (int i = 0; i < 2; i++) {
      pc.kernel[i] = (int)test_rng_int(rng, 1, 3);
      pc.stride[i] = (int)test_rng_int(rng, 1, 3);
      pc.dilation[i] = is_max ? (int)test_rng_int(rng, 1, 2) : 1;
    }
    for (int i = 0; i < 4; i++) pc.pad[i] = (int)test_rng_int(rng, 0, pc.kernel[i % 2] - 1);
    pc.h = test_rng_int(rng, min_extent(pc.kernel[0], pc.dilation[0], pc.pad[0] + pc.pad[2]), 7);
    pc.w = test_rng_int(rng, min_extent(pc.kernel[1], pc.dilation[1], pc.pad[1] + pc.pad[3]), 7);
    pc.ceil_mode = test_rng_int(rng, 0, 1);
    pc.count_include_pad = !is_max && test_rng_int(rng, 0, 1);
    pc.threads = (int)test_rng_int(rng, 1, 2);
    pc.p = pool_out_extent(pc.h, pc.kernel[0], pc.dilation[0], pc.stride[0], pc.pad[0], pc.pad[2],
                           pc.ceil_mode);
    pc.q = pool_out_extent(pc.w, pc.kernel[1], pc.dilation[1], pc.stride[1], pc.pad[1], pc.pad[3],
                           pc.ceil_mode);
    if (pc.p >= 1 && pc.q >= 1 && !(is_max && has_empty_window(&pc))) return pc;
  }
}

/* Ties: with every input equal, each max pooling output sends its gradient to the first tap of
 * its window in scan order (row by row), as the forward picks it; -inf everywhere likewise. */
static void run_maxpool_ties_case(grad_stats *st, const pool_case *pc, float value) {
  int64_t x_count = pc->n * pc->h * pc->w * pc->c, y_count = pc->n * pc->p * pc->q * pc->c;
  float *x = new_floats(x_count), *dy = new_floats(y_count), *got = new_floats(x_count);
  float *want = new_floats(x_count);
  for (int64_t i = 0; i < x_count; i++) x[i] = value;
  for (int64_t i = 0; i < y_count; i++) dy[i] = (float)(i % 7 + 1);
  pool_backward(pc, x, dy, got, pc->threads);
  for (int64_t b = 0; b < pc->n; b++)
    for (int64_t op = 0; op < pc->p; op++)
      for (int64_t oq = 0; oq < pc->q; oq++) {
        int64_t first = -1;
        for (int r = 0; r < pc->kernel[0] && first < 0; r++) {
          int64_t ih = op * pc->stride[0] - pc->pad[0] + (int64_t)r * pc->dilation[0];
          for (int t = 0; t < pc->kernel[1] && first < 0 && ih >= 0 && ih < pc->h; t++) {
            int64_t iw = oq * pc->stride[1] - pc->pad[1] + (int64_t)t * pc->dilation[1];
            if (iw >= 0 && iw < pc->w) first = ih * pc->w + iw;
          }
        }
        for (int64_t ch = 0; ch < pc->c && first >= 0; ch++)
          want[(b * pc->h * pc->w + first) * pc->c + ch] +=
              dy[((b * pc->p + op) * pc->q + oq) * pc->c + ch];
      }
  char desc[DESC_SIZE];
  describe_pool(desc, sizeof desc, pc);
  check_same(st, desc, value == 0.0f ? "din with all inputs 0" : "din with all inputs -inf", got,
             want, x_count);
  free(x);
  free(dy);
  free(got);
  free(want);
}

typedef struct global_pool_ctx {
  int64_t n, hw, c;
  bool is_max;
} global_pool_ctx;

/* (n, hw, c) -> (n, c): the mean or the maximum over hw. */
static void global_pool_ref(const fd_problem *p, double *y) {
  const global_pool_ctx *g = p->ctx;
  for (int64_t b = 0; b < g->n; b++)
    for (int64_t k = 0; k < g->c; k++) {
      double acc = g->is_max ? -INFINITY : 0.0;
      for (int64_t i = 0; i < g->hw; i++) {
        double v = p->x[0][(b * g->hw + i) * g->c + k];
        acc = g->is_max ? fmax(acc, v) : acc + v;
      }
      y[b * g->c + k] = g->is_max ? acc : acc / (double)g->hw;
    }
}

static void global_pool_backward(const global_pool_ctx *g, const float *x, const float *dy,
                                 float *dx, int threads) {
  if (g->is_max)
    hawq_global_maxpool_backward(x, dy, dx, g->n, g->hw, g->c, threads);
  else
    hawq_global_avgpool_backward(dy, dx, g->n, g->hw, g->c, threads);
}

static void run_global_pool_case(grad_stats *st, test_rng *rng, bool is_max, int64_t n, int64_t hw,
                                 int64_t c, int threads, bool fd) {
  global_pool_ctx g = {n, hw, c, is_max};
  int64_t x_count = n * hw * c;
  float *x = new_floats(x_count), *dy = new_floats(n * c);
  fill_distinct(rng, x, x_count);
  fill_uniform(rng, dy, n * c, -1.0f, 1.0f);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "%s (n %lld, hw %lld, c %lld) threads %d", is_max ? "max" : "avg",
           (long long)n, (long long)hw, (long long)c, threads);
  if (fd) {
    fd_problem p = fd_new(global_pool_ref, &g, dy, n * c);
    fd_add_input(&p, x, x_count);
    grad_buf gx = grad_buf_new(rng, x_count);
    global_pool_backward(&g, x, dy, gx.buf, threads);
    grad_buf_mark(&gx);
    global_pool_backward(&g, x, dy, gx.buf, threads);
    global_pool_backward(&g, x, dy, NULL, threads);
    check_grad(st, desc, "din", &gx, &p, 0, 0, NULL);
    grad_buf_free(&gx);
    fd_free(&p);
  }
  float *d1 = new_floats(x_count), *d2 = new_floats(x_count);
  global_pool_backward(&g, x, dy, d1, 1);
  global_pool_backward(&g, x, dy, d2, 2);
  check_same(st, desc, "din threads 1 vs 2", d1, d2, x_count);
  free(d1);
  free(d2);
  free(x);
  free(dy);
}

static void test_pooling(grad_stats *max_st, grad_stats *avg_st, grad_stats *gmax_st,
                         grad_stats *gavg_st, test_rng *rng) {
  for (int i = 0; i < 200; i++) {
    pool_case pc = random_pool_case(rng, true, 3);
    run_pool_case(max_st, rng, &pc);
    pc = random_pool_case(rng, false, 3);
    run_pool_case(avg_st, rng, &pc);
  }
  /* Channel tiles split across threads (one image, more than 16 channels). */
  for (int i = 0; i < 4; i++) {
    pool_case pc = random_pool_case(rng, i % 2 == 0, 3);
    pc.n = 1;
    pc.c = 20 + i;
    pc.threads = 2;
    run_pool_case(i % 2 == 0 ? max_st : avg_st, rng, &pc);
  }
  /* More channels than one tile (64). */
  for (int i = 0; i < 2; i++) {
    pool_case pc = random_pool_case(rng, i == 0, 3);
    pc.c = 70;
    run_pool_case(i == 0 ? max_st : avg_st, rng, &pc);
  }
  /* ceil_mode windows that run past the padded input: 3x3 stride 2 on 6x7, with and without
   * pads and count_include_pad (PyTorch: 3x3 out, the last windows clipped). */
  for (int v = 0; v < 8; v++) {
    pool_case pc;
    memset(&pc, 0, sizeof pc);
    pc.is_max = v & 4;
    pc.n = 1;
    pc.c = 2;
    pc.h = 6;
    pc.w = 7;
    pc.kernel[0] = pc.kernel[1] = 3;
    pc.stride[0] = pc.stride[1] = 2;
    pc.dilation[0] = pc.dilation[1] = 1;
    for (int i = 0; i < 4; i++) pc.pad[i] = (v & 1) ? 1 : 0;
    pc.ceil_mode = true;
    pc.count_include_pad = (v & 2) != 0;
    pc.threads = 1 + (v & 1);
    pc.p = pool_out_extent(pc.h, 3, 1, 2, pc.pad[0], pc.pad[2], true);
    pc.q = pool_out_extent(pc.w, 3, 1, 2, pc.pad[1], pc.pad[3], true);
    run_pool_case(pc.is_max ? max_st : avg_st, rng, &pc);
  }
  for (int i = 0; i < 6; i++) {
    pool_case pc = random_pool_case(rng, true, 20);
    run_maxpool_ties_case(max_st, &pc, i % 3 ? 0.0f : -INFINITY);
  }
  for (int i = 0; i < 100; i++) {
    bool is_max = i % 2;
    run_global_pool_case(is_max ? gmax_st : gavg_st, rng, is_max, test_rng_int(rng, 1, 3),
                         test_rng_int(rng, 1, 30), test_rng_int(rng, 1, 6),
                         (int)test_rng_int(rng, 1, 2), true);
  }
  run_global_pool_case(gmax_st, rng, true, 2, 5, 70, 2, true); /* more channels than a tile */
  /* Large enough to run in parallel; one image with channel tiles split across threads. */
  run_global_pool_case(gavg_st, rng, false, 8, 196, 64, 2, false);
  run_global_pool_case(gmax_st, rng, true, 8, 196, 64, 2, false);
  run_global_pool_case(gmax_st, rng, true, 1, 1024, 40, 2, false);
}

/* ---------------------------------------------------------------------------------------------
 * gemm and sgemm
 * ------------------------------------------------------------------------------------------- */

typedef struct gemm_ctx {
  int64_t rows, n, k;
} gemm_ctx;

/* Inputs x (rows, k), w (n, k), b (n): y = x w^T + b. */
static void gemm_ref(const fd_problem *p, double *y) {
  const gemm_ctx *g = p->ctx;
  for (int64_t i = 0; i < g->rows; i++)
    for (int64_t j = 0; j < g->n; j++) {
      double acc = p->x[2][j];
      for (int64_t t = 0; t < g->k; t++) acc += p->x[0][i * g->k + t] * p->x[1][j * g->k + t];
      y[i * g->n + j] = acc;
    }
}

static void run_gemm_case(grad_stats *st, test_rng *rng, int64_t rows, int64_t n, int64_t k,
                          int threads) {
  gemm_ctx g = {rows, n, k};
  float *x = new_floats(rows * k), *w = new_floats(n * k), *b = new_floats(n);
  float *dy = new_floats(rows * n);
  fill_uniform(rng, x, rows * k, -1.0f, 1.0f);
  fill_uniform(rng, w, n * k, -1.0f, 1.0f);
  fill_uniform(rng, b, n, -1.0f, 1.0f);
  fill_uniform(rng, dy, rows * n, -1.0f, 1.0f);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "x(%lld,%lld) w(%lld,%lld) threads %d", (long long)rows, (long long)k,
           (long long)n, (long long)k, threads);
  fd_problem p = fd_new(gemm_ref, &g, dy, rows * n);
  fd_add_input(&p, x, rows * k);
  fd_add_input(&p, w, n * k);
  fd_add_input(&p, b, n);
  grad_buf gx = grad_buf_new(rng, rows * k), gw = grad_buf_new(rng, n * k);
  grad_buf gb = grad_buf_new(rng, n);
  hawq_gemm_backward(x, w, dy, gx.buf, gw.buf, gb.buf, rows, n, k, threads);
  grad_buf_mark(&gx);
  grad_buf_mark(&gw);
  grad_buf_mark(&gb);
  hawq_gemm_backward(x, w, dy, gx.buf, gw.buf, gb.buf, rows, n, k, threads);
  check_grad(st, desc, "din", &gx, &p, 0, 0, NULL);
  check_grad(st, desc, "dw", &gw, &p, 1, 0, NULL);
  check_grad(st, desc, "db", &gb, &p, 2, 0, NULL);
  float *full[3] = {new_floats(rows * k), new_floats(n * k), new_floats(n)};
  float *alone[3] = {new_floats(rows * k), new_floats(n * k), new_floats(n)};
  hawq_gemm_backward(x, w, dy, full[0], full[1], full[2], rows, n, k, threads);
  hawq_gemm_backward(x, w, dy, alone[0], NULL, NULL, rows, n, k, threads);
  hawq_gemm_backward(x, w, dy, NULL, alone[1], NULL, rows, n, k, threads);
  hawq_gemm_backward(x, w, dy, NULL, NULL, alone[2], rows, n, k, threads);
  hawq_gemm_backward(x, w, dy, NULL, NULL, NULL, rows, n, k, threads);
  check_same(st, desc, "din alone / with the others", full[0], alone[0], rows * k);
  check_same(st, desc, "dw alone / with the others", full[1], alone[1], n * k);
  check_same(st, desc, "db alone / with the others", full[2], alone[2], n);
  for (int i = 0; i < 3; i++) {
    free(full[i]);
    free(alone[i]);
  }
  grad_buf_free(&gx);
  grad_buf_free(&gw);
  grad_buf_free(&gb);
  fd_free(&p);
  free(x);
  free(w);
  free(b);
  free(dy);
}

/* db (column sums, split into column tiles across threads) threads 1 vs 2. */
static void run_gemm_threads_case(grad_stats *st, test_rng *rng, int64_t rows, int64_t n) {
  float *dy = new_floats(rows * n), *db1 = new_floats(n), *db2 = new_floats(n);
  fill_uniform(rng, dy, rows * n, -1.0f, 1.0f);
  hawq_gemm_backward(NULL, NULL, dy, NULL, NULL, db1, rows, n, 1, 1);
  hawq_gemm_backward(NULL, NULL, dy, NULL, NULL, db2, rows, n, 1, 2);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "dout(%lld,%lld) threads 1 vs 2", (long long)rows, (long long)n);
  check_same(st, desc, "db", db1, db2, n);
  free(dy);
  free(db1);
  free(db2);
}

/* C (m,n) = op(A) op(B) + beta C, row-major with leading dimensions, every transpose pair: the
 * padding columns of C stay untouched; |got - ref| <= 1e-5 (1 + |ref|) for k <= 60 products of
 * magnitude <= 1 (float accumulation). */
static void run_sgemm_case(grad_stats *st, test_rng *rng, char ta, char tb, int64_t m, int64_t n,
                           int64_t k, float beta) {
  int64_t a_rows = ta == 'T' ? k : m, a_cols = ta == 'T' ? m : k;
  int64_t b_rows = tb == 'T' ? n : k, b_cols = tb == 'T' ? k : n;
  int64_t lda = a_cols + test_rng_int(rng, 0, 3), ldb = b_cols + test_rng_int(rng, 0, 3);
  int64_t ldc = n + test_rng_int(rng, 0, 3);
  float *a = new_floats(a_rows * lda), *b = new_floats(b_rows * ldb), *c = new_floats(m * ldc);
  fill_uniform(rng, a, a_rows * lda, -1.0f, 1.0f);
  fill_uniform(rng, b, b_rows * ldb, -1.0f, 1.0f);
  const float sentinel = 12345.0f;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < ldc; j++)
      c[i * ldc + j] = j >= n ? sentinel : beta == 0.0f ? NAN : test_rng_float(rng, -1.0f, 1.0f);
  double *ref = new_doubles(m * n);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double acc = beta == 0.0f ? 0.0 : (double)beta * c[i * ldc + j];
      for (int64_t t = 0; t < k; t++) {
        double av = ta == 'T' ? a[t * lda + i] : a[i * lda + t];
        double bv = tb == 'T' ? b[j * ldb + t] : b[t * ldb + j];
        acc += av * bv;
      }
      ref[i * n + j] = acc;
    }
  hawq_sgemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
  int64_t bad = 0, sentinel_bad = 0, first = -1;
  for (int64_t i = 0; i < m; i++) {
    for (int64_t j = 0; j < n; j++) {
      double got = c[i * ldc + j], want = ref[i * n + j];
      if (!(fabs(got - want) <= 1e-5 * (1.0 + fabs(want)))) {
        if (first < 0) first = i * n + j;
        bad++;
      }
    }
    for (int64_t j = n; j < ldc; j++) sentinel_bad += c[i * ldc + j] != sentinel;
  }
  CHECK_OP(st, bad == 0 && sentinel_bad == 0,
           "%s: %c%c m %lld n %lld k %lld lda %lld ldb %lld ldc %lld beta %g: %lld wrong (first "
           "%lld: got %.9g, expected %.9g), %lld padding elements overwritten",
           st->name, ta, tb, (long long)m, (long long)n, (long long)k, (long long)lda,
           (long long)ldb, (long long)ldc, beta, (long long)bad, (long long)first,
           first >= 0 ? c[(first / n) * ldc + first % n] : 0.0, first >= 0 ? ref[first] : 0.0,
           (long long)sentinel_bad);
  free(a);
  free(b);
  free(c);
  free(ref);
}

static void test_gemm(grad_stats *st, grad_stats *sgemm_st, test_rng *rng) {
  for (int i = 0; i < 150; i++)
    run_gemm_case(st, rng, test_rng_int(rng, 1, 8), test_rng_int(rng, 1, 8),
                  test_rng_int(rng, 1, 12), (int)test_rng_int(rng, 1, 2));
  run_gemm_case(st, rng, 2, 300, 2, 2); /* db in column tiles */
  run_gemm_threads_case(st, rng, 4096, 40);
  run_gemm_threads_case(st, rng, 100, 1000);
  const char ops[4][2] = {{'N', 'N'}, {'N', 'T'}, {'T', 'N'}, {'T', 'T'}};
  for (int i = 0; i < 200; i++) {
    run_sgemm_case(sgemm_st, rng, ops[i % 4][0], ops[i % 4][1], test_rng_int(rng, 1, 20),
                   test_rng_int(rng, 1, 20), test_rng_int(rng, 1, 60),
                   test_rng_int(rng, 0, 2)   ? 1.0f
                   : test_rng_int(rng, 0, 1) ? 0.0f
                                             : 0.5f);
  }
}

/* ---------------------------------------------------------------------------------------------
 * reshape, transpose, concat, pad (references on logical data; the kernels see NHWC for rank 4)
 * ------------------------------------------------------------------------------------------- */

static void random_dims(test_rng *rng, int rank, int64_t max_dim, int64_t *dims) {
  for (int k = 0; k < rank; k++) dims[k] = test_rng_int(rng, 1, max_dim);
}

/* The output weights r in logical order and as the kernel's physical dout. */
static void random_dout(test_rng *rng, int rank, const int64_t *dims, float **logical,
                        float **physical) {
  int64_t n = numel_of(rank, dims);
  *logical = new_floats(n);
  *physical = new_floats(n);
  fill_uniform(rng, *logical, n, -1.0f, 1.0f);
  logical_to_physical(*logical, *physical, rank, dims);
}

static void identity_ref(const fd_problem *p, double *y) { /* reshape keeps the logical order */
  memcpy(y, p->x[0], (size_t)p->out_len * sizeof(double));
}

static void run_reshape_case(grad_stats *st, test_rng *rng, int in_rank, int out_rank) {
  int64_t in_dims[HAWQ_MAX_RANK], out_dims[HAWQ_MAX_RANK];
  random_dims(rng, in_rank, in_rank >= 4 ? 4 : 6, in_dims);
  int64_t count = numel_of(in_rank, in_dims), rest = count;
  for (int k = 0; k < out_rank - 1; k++) { /* a random factorization of count */
    int64_t divisors[64], nd = 0;
    for (int64_t d = 1; d <= rest && nd < 64; d++)
      if (rest % d == 0) divisors[nd++] = d;
    out_dims[k] = divisors[test_rng_int(rng, 0, nd - 1)];
    rest /= out_dims[k];
  }
  out_dims[out_rank - 1] = rest;
  float *x = new_floats(count), *r, *dy;
  fill_uniform(rng, x, count, -1.0f, 1.0f);
  random_dout(rng, out_rank, out_dims, &r, &dy);
  float *scratch = new_floats(count);
  char id[128], od[128], desc[DESC_SIZE];
  format_dims(in_rank, in_dims, id, sizeof id);
  format_dims(out_rank, out_dims, od, sizeof od);
  snprintf(desc, sizeof desc, "%s -> %s", id, od);
  fd_problem p = fd_new(identity_ref, NULL, r, count);
  fd_add_input(&p, x, count);
  grad_buf gx = grad_buf_new(rng, count);
  hawq_reshape_backward(dy, out_rank, out_dims, gx.buf, in_rank, in_dims, scratch);
  grad_buf_mark(&gx);
  hawq_reshape_backward(dy, out_rank, out_dims, gx.buf, in_rank, in_dims, scratch);
  hawq_reshape_backward(dy, out_rank, out_dims, NULL, in_rank, in_dims, scratch);
  check_grad(st, desc, "din", &gx, &p, 0, in_rank, in_dims);
  grad_buf_free(&gx);
  fd_free(&p);
  free(x);
  free(r);
  free(dy);
  free(scratch);
}

typedef struct transpose_ctx {
  int rank;
  const int64_t *in_dims, *out_dims;
  const int *perm;
} transpose_ctx;

/* ONNX Transpose: output coordinate i is input coordinate perm[i]. */
static void transpose_ref(const fd_problem *p, double *y) {
  const transpose_ctx *t = p->ctx;
  int64_t coord[HAWQ_MAX_RANK];
  for (int64_t i = 0; i < p->out_len; i++) {
    unravel(i, t->rank, t->out_dims, coord);
    int64_t src = 0;
    for (int k = 0; k < t->rank; k++) {
      int64_t in_coord = 0;
      for (int j = 0; j < t->rank; j++)
        if (t->perm[j] == k) in_coord = coord[j];
      src = src * t->in_dims[k] + in_coord;
    }
    y[i] = p->x[0][src];
  }
}

static void run_transpose_case(grad_stats *st, test_rng *rng, int rank) {
  int64_t in_dims[HAWQ_MAX_RANK], out_dims[HAWQ_MAX_RANK];
  int perm[HAWQ_MAX_RANK];
  random_dims(rng, rank, rank >= 6 ? 2 : rank == 5 ? 3 : 4, in_dims);
  for (int k = 0; k < rank; k++) perm[k] = k;
  for (int k = rank - 1; k > 0; k--) { /* Fisher-Yates */
    int j = (int)test_rng_int(rng, 0, k), t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
  }
  for (int k = 0; k < rank; k++) out_dims[k] = in_dims[perm[k]];
  int64_t count = numel_of(rank, in_dims);
  float *x = new_floats(count), *r, *dy;
  fill_uniform(rng, x, count, -1.0f, 1.0f);
  random_dout(rng, rank, out_dims, &r, &dy);
  char id[128], desc[DESC_SIZE];
  format_dims(rank, in_dims, id, sizeof id);
  int used = snprintf(desc, sizeof desc, "x%s perm [", id);
  for (int k = 0; k < rank; k++)
    used += snprintf(desc + used, sizeof desc - (size_t)used, "%s%d", k ? "," : "", perm[k]);
  snprintf(desc + used, sizeof desc - (size_t)used, "]");
  transpose_ctx ctx = {rank, in_dims, out_dims, perm};
  fd_problem p = fd_new(transpose_ref, &ctx, r, count);
  fd_add_input(&p, x, count);
  grad_buf gx = grad_buf_new(rng, count);
  hawq_transpose_backward(dy, rank, in_dims, perm, gx.buf);
  grad_buf_mark(&gx);
  hawq_transpose_backward(dy, rank, in_dims, perm, gx.buf);
  hawq_transpose_backward(dy, rank, in_dims, perm, NULL);
  check_grad(st, desc, "din", &gx, &p, 0, rank, in_dims);
  grad_buf_free(&gx);
  fd_free(&p);
  free(x);
  free(r);
  free(dy);
}

#define MAX_CONCAT_INPUTS FD_MAX_INPUTS

typedef struct concat_ctx {
  int rank, axis, n_in;
  int64_t (*dims)[HAWQ_MAX_RANK];
  const int64_t *out_dims;
} concat_ctx;

static void concat_ref(const fd_problem *p, double *y) {
  const concat_ctx *c = p->ctx;
  int64_t coord[HAWQ_MAX_RANK];
  for (int64_t i = 0; i < p->out_len; i++) {
    unravel(i, c->rank, c->out_dims, coord);
    int src = 0;
    while (coord[c->axis] >= c->dims[src][c->axis]) coord[c->axis] -= c->dims[src++][c->axis];
    int64_t off = 0;
    for (int k = 0; k < c->rank; k++) off = off * c->dims[src][k] + coord[k];
    y[i] = p->x[src][off];
  }
}

static void run_concat_case(grad_stats *st, test_rng *rng, int rank, int axis, int n_in) {
  int64_t base[HAWQ_MAX_RANK], dims[MAX_CONCAT_INPUTS][HAWQ_MAX_RANK], out_dims[HAWQ_MAX_RANK];
  random_dims(rng, rank, 3, base);
  float *x[MAX_CONCAT_INPUTS];
  int64_t axis_total = 0;
  for (int i = 0; i < n_in; i++) {
    memcpy(dims[i], base, sizeof base);
    dims[i][axis] = test_rng_int(rng, 1, 3);
    axis_total += dims[i][axis];
    x[i] = new_floats(numel_of(rank, dims[i]));
    fill_uniform(rng, x[i], numel_of(rank, dims[i]), -1.0f, 1.0f);
  }
  memcpy(out_dims, base, sizeof base);
  out_dims[axis] = axis_total;
  int64_t count = numel_of(rank, out_dims);
  float *r, *dy;
  random_dout(rng, rank, out_dims, &r, &dy);
  char desc[DESC_SIZE];
  int used = snprintf(desc, sizeof desc, "axis %d inputs", axis);
  for (int i = 0; i < n_in; i++) {
    char d[128];
    format_dims(rank, dims[i], d, sizeof d);
    used += snprintf(desc + used, sizeof desc - (size_t)used, " %s", d);
  }
  concat_ctx ctx = {rank, axis, n_in, dims, out_dims};
  fd_problem p = fd_new(concat_ref, &ctx, r, count);
  grad_buf g[MAX_CONCAT_INPUTS];
  float *bufs[MAX_CONCAT_INPUTS];
  for (int i = 0; i < n_in; i++) {
    fd_add_input(&p, x[i], numel_of(rank, dims[i]));
    g[i] = grad_buf_new(rng, numel_of(rank, dims[i]));
    bufs[i] = g[i].buf;
  }
  const int64_t(*cdims)[HAWQ_MAX_RANK] = (const int64_t(*)[HAWQ_MAX_RANK])dims;
  hawq_concat_backward(n_in, bufs, cdims, rank, axis, dy);
  for (int i = 0; i < n_in; i++) grad_buf_mark(&g[i]);
  hawq_concat_backward(n_in, bufs, cdims, rank, axis, dy);
  for (int i = 0; i < n_in; i++) {
    char what[32];
    snprintf(what, sizeof what, "din[%d]", i);
    check_grad(st, desc, what, &g[i], &p, i, rank, dims[i]);
  }
  /* One input not wanted: the others get bitwise what a call with all of them gives. */
  int skip = (int)test_rng_int(rng, 0, n_in - 1);
  float *full[MAX_CONCAT_INPUTS], *partial[MAX_CONCAT_INPUTS];
  for (int i = 0; i < n_in; i++) {
    full[i] = new_floats(g[i].n);
    partial[i] = i == skip ? NULL : new_floats(g[i].n);
  }
  hawq_concat_backward(n_in, full, cdims, rank, axis, dy);
  hawq_concat_backward(n_in, partial, cdims, rank, axis, dy);
  for (int i = 0; i < n_in; i++)
    if (i != skip) check_same(st, desc, "din with another input NULL", full[i], partial[i], g[i].n);
  for (int i = 0; i < n_in; i++) {
    free(full[i]);
    free(partial[i]);
    grad_buf_free(&g[i]);
    free(x[i]);
  }
  fd_free(&p);
  free(r);
  free(dy);
}

typedef struct pad_ctx {
  int rank;
  const int64_t *in_dims, *out_dims, *pads;
  double value;
} pad_ctx;

static void pad_ref(const fd_problem *p, double *y) {
  const pad_ctx *c = p->ctx;
  int64_t coord[HAWQ_MAX_RANK];
  for (int64_t i = 0; i < p->out_len; i++) {
    unravel(i, c->rank, c->out_dims, coord);
    bool inside = true;
    int64_t src = 0;
    for (int k = 0; k < c->rank; k++) {
      int64_t at = coord[k] - c->pads[k];
      inside = inside && at >= 0 && at < c->in_dims[k];
      src = src * c->in_dims[k] + at;
    }
    y[i] = inside ? p->x[0][src] : c->value;
  }
}

static void run_pad_case(grad_stats *st, test_rng *rng, int rank, const int64_t *in_dims,
                         const int64_t *pads, int threads, bool fd) {
  int64_t out_dims[HAWQ_MAX_RANK];
  for (int k = 0; k < rank; k++) out_dims[k] = in_dims[k] + pads[k] + pads[HAWQ_MAX_RANK + k];
  int64_t in_count = numel_of(rank, in_dims), out_count = numel_of(rank, out_dims);
  float *x = new_floats(in_count), *r, *dy;
  fill_uniform(rng, x, in_count, -1.0f, 1.0f);
  random_dout(rng, rank, out_dims, &r, &dy);
  char id[128], desc[DESC_SIZE];
  format_dims(rank, in_dims, id, sizeof id);
  int used = snprintf(desc, sizeof desc, "x%s threads %d pads (begin,end)", id, threads);
  for (int k = 0; k < rank; k++)
    used += snprintf(desc + used, sizeof desc - (size_t)used, " %lld,%lld", (long long)pads[k],
                     (long long)pads[HAWQ_MAX_RANK + k]);
  if (fd) {
    pad_ctx ctx = {rank, in_dims, out_dims, pads, 0.5};
    fd_problem p = fd_new(pad_ref, &ctx, r, out_count);
    fd_add_input(&p, x, in_count);
    grad_buf gx = grad_buf_new(rng, in_count);
    hawq_pad_backward(dy, rank, in_dims, pads, gx.buf, threads);
    grad_buf_mark(&gx);
    hawq_pad_backward(dy, rank, in_dims, pads, gx.buf, threads);
    hawq_pad_backward(dy, rank, in_dims, pads, NULL, threads);
    check_grad(st, desc, "din", &gx, &p, 0, rank, in_dims);
    grad_buf_free(&gx);
    fd_free(&p);
  }
  float *d1 = new_floats(in_count), *d2 = new_floats(in_count);
  hawq_pad_backward(dy, rank, in_dims, pads, d1, 1);
  hawq_pad_backward(dy, rank, in_dims, pads, d2, 2);
  check_same(st, desc, "din threads 1 vs 2", d1, d2, in_count);
  free(d1);
  free(d2);
  free(x);
  free(r);
  free(dy);
}

static void test_layout(grad_stats *reshape_st, grad_stats *transpose_st, grad_stats *concat_st,
                        grad_stats *pad_st, test_rng *rng) {
  /* Reshape: rank 4 <-> 2 and 3, 4 -> 4 through scratch, and plain copies between others. */
  const int reshape_ranks[][2] = {{4, 2}, {4, 3}, {2, 4}, {3, 4}, {4, 4}, {4, 1},
                                  {1, 4}, {2, 3}, {3, 5}, {5, 4}, {4, 5}};
  const int n_reshape = (int)(sizeof reshape_ranks / sizeof reshape_ranks[0]);
  for (int i = 0; i < 6 * n_reshape; i++)
    run_reshape_case(reshape_st, rng, reshape_ranks[i % n_reshape][0],
                     reshape_ranks[i % n_reshape][1]);
  for (int i = 0; i < 80; i++) run_transpose_case(transpose_st, rng, 2 + i % 5);
  for (int i = 0; i < 90; i++) { /* every axis of ranks 1 to 5 */
    int rank = 1 + i % 5;
    run_concat_case(concat_st, rng, rank, (i / 5) % rank,
                    (int)test_rng_int(rng, 2, MAX_CONCAT_INPUTS));
  }
  for (int i = 0; i < 120; i++) { /* negative pads crop */
    int rank = 1 + i % 5;
    int64_t dims[HAWQ_MAX_RANK], pads[2 * HAWQ_MAX_RANK] = {0};
    random_dims(rng, rank, rank >= 4 ? 4 : 6, dims);
    for (int k = 0; k < rank; k++) {
      do {
        pads[k] = test_rng_int(rng, -3, 3);
        pads[HAWQ_MAX_RANK + k] = test_rng_int(rng, -3, 3);
      } while (dims[k] + pads[k] + pads[HAWQ_MAX_RANK + k] < 1);
    }
    run_pad_case(pad_st, rng, rank, dims, pads, (int)test_rng_int(rng, 1, 2), true);
  }
  /* Large enough to run in parallel (more than 64 rows). */
  const int64_t img[4] = {2, 8, 20, 20}, mat[2] = {100, 50};
  int64_t img_pads[2 * HAWQ_MAX_RANK] = {0, 1, 2, -3}, mat_pads[2 * HAWQ_MAX_RANK] = {-2, 3};
  img_pads[HAWQ_MAX_RANK + 0] = 1;
  img_pads[HAWQ_MAX_RANK + 1] = -2;
  img_pads[HAWQ_MAX_RANK + 2] = 1;
  img_pads[HAWQ_MAX_RANK + 3] = 4;
  mat_pads[HAWQ_MAX_RANK + 0] = 5;
  mat_pads[HAWQ_MAX_RANK + 1] = -7;
  run_pad_case(pad_st, rng, 4, img, img_pads, 2, false);
  run_pad_case(pad_st, rng, 2, mat, mat_pads, 2, false);
}

/* ---------------------------------------------------------------------------------------------
 * softmax and cross-entropy
 * ------------------------------------------------------------------------------------------- */

typedef struct softmax_ctx {
  int64_t outer, len, inner;
} softmax_ctx;

static void softmax_ref(const fd_problem *p, double *y) {
  const softmax_ctx *s = p->ctx;
  for (int64_t o = 0; o < s->outer; o++)
    for (int64_t i = 0; i < s->inner; i++) {
      const double *x = p->x[0] + o * s->len * s->inner + i;
      double *out = y + o * s->len * s->inner + i, mx = -INFINITY, sum = 0.0;
      for (int64_t t = 0; t < s->len; t++) mx = fmax(mx, x[t * s->inner]);
      for (int64_t t = 0; t < s->len; t++) sum += exp(x[t * s->inner] - mx);
      for (int64_t t = 0; t < s->len; t++) out[t * s->inner] = exp(x[t * s->inner] - mx) / sum;
    }
}

static void run_softmax_case(grad_stats *st, test_rng *rng, int64_t outer, int64_t len,
                             int64_t inner, float center, int threads) {
  softmax_ctx ctx = {outer, len, inner};
  int64_t count = outer * len * inner;
  float *x = new_floats(count), *y = new_floats(count), *dy = new_floats(count);
  fill_uniform(rng, x, count, center - 3.0f, center + 3.0f);
  fill_uniform(rng, dy, count, -1.0f, 1.0f);
  hawq_softmax_forward(x, y, outer, len, inner, threads); /* the backward reads the output */
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "(outer %lld, len %lld, inner %lld) x in [%g, %g) threads %d",
           (long long)outer, (long long)len, (long long)inner, center - 3.0f, center + 3.0f,
           threads);
  fd_problem p = fd_new(softmax_ref, &ctx, dy, count);
  fd_add_input(&p, x, count);
  grad_buf gx = grad_buf_new(rng, count);
  hawq_softmax_backward(y, dy, gx.buf, outer, len, inner, threads);
  grad_buf_mark(&gx);
  hawq_softmax_backward(y, dy, gx.buf, outer, len, inner, threads);
  hawq_softmax_backward(y, dy, NULL, outer, len, inner, threads);
  check_grad(st, desc, "din", &gx, &p, 0, 0, NULL);
  float *d1 = new_floats(count), *d2 = new_floats(count);
  hawq_softmax_backward(y, dy, d1, outer, len, inner, 1);
  hawq_softmax_backward(y, dy, d2, outer, len, inner, 2);
  check_same(st, desc, "din threads 1 vs 2", d1, d2, count);
  free(d1);
  free(d2);
  grad_buf_free(&gx);
  fd_free(&p);
  free(x);
  free(y);
  free(dy);
}

typedef struct ce_ctx {
  int64_t rows, classes;
  const int32_t *labels;
  double smoothing, scale;
  double *probs; /* written by the reference: softmax of the unperturbed logits */
} ce_ctx;

/* scale * mean over rows of -sum_c t_c log softmax(z)_c, t = (1 - s) onehot + s / classes,
 * with a max-subtracted log-sum-exp. */
static double ce_ref_loss(const ce_ctx *c, const double *z, double *probs) {
  double total = 0.0;
  for (int64_t r = 0; r < c->rows; r++) {
    const double *zr = z + r * c->classes;
    double mx = -INFINITY, sum = 0.0;
    for (int64_t k = 0; k < c->classes; k++) mx = fmax(mx, zr[k]);
    for (int64_t k = 0; k < c->classes; k++) sum += exp(zr[k] - mx);
    double lse = mx + log(sum);
    for (int64_t k = 0; k < c->classes; k++) {
      double target =
          c->smoothing / (double)c->classes + (k == c->labels[r] ? 1.0 - c->smoothing : 0.0);
      total -= target * (zr[k] - lse);
      if (probs) probs[r * c->classes + k] = exp(zr[k] - lse);
    }
  }
  return total / (double)c->rows;
}

static void ce_ref(const fd_problem *p, double *y) {
  const ce_ctx *c = p->ctx;
  y[0] = c->scale * ce_ref_loss(c, p->x[0], NULL);
}

static void run_ce_case(grad_stats *st, grad_stats *fwd_st, test_rng *rng, int64_t rows,
                        int64_t classes, float smoothing, float spread, float center, int threads) {
  float *z = new_floats(rows * classes), *probs = new_floats(rows * classes);
  int32_t *labels = alloc_bytes((size_t)rows * sizeof(int32_t));
  fill_uniform(rng, z, rows * classes, center - spread, center + spread);
  for (int64_t r = 0; r < rows; r++) labels[r] = (int32_t)test_rng_int(rng, 0, classes - 1);
  float scale = test_rng_int(rng, 0, 1) ? 1.0f : test_rng_float(rng, 0.25f, 4.0f);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc,
           "rows %lld classes %lld smoothing %g scale %g logits in [%g, %g) threads %d",
           (long long)rows, (long long)classes, smoothing, scale, center - spread, center + spread,
           threads);
  double *ref_probs = new_doubles(rows * classes);
  ce_ctx ctx = {rows, classes, labels, smoothing, scale, ref_probs};
  double *zd = new_doubles(rows * classes);
  for (int64_t i = 0; i < rows * classes; i++) zd[i] = z[i];
  double ref_loss = ce_ref_loss(&ctx, zd, ref_probs);
  double loss = hawq_cross_entropy_forward(z, labels, rows, classes, smoothing, probs, threads);
  /* The loss is a double computation on the same floats: 1e-12 relative. The probabilities are
   * rounded to float once: 2^-23 relative. */
  int64_t bad_p = -1;
  for (int64_t i = 0; i < rows * classes && bad_p < 0; i++)
    if (!(fabs(probs[i] - ref_probs[i]) <= 0x1p-23 * ref_probs[i] + 1e-38)) bad_p = i;
  CHECK_OP(fwd_st, fabs(loss - ref_loss) <= 1e-12 * (1.0 + fabs(ref_loss)) && bad_p < 0,
           "%s: %s: loss %.17g, double reference %.17g; first wrong probability at %lld: %.9g vs "
           "%.9g",
           fwd_st->name, desc, loss, ref_loss, (long long)bad_p, bad_p >= 0 ? probs[bad_p] : 0.0,
           bad_p >= 0 ? ref_probs[bad_p] : 0.0);
  const float one = 1.0f;
  fd_problem p = fd_new(ce_ref, &ctx, &one, 1);
  fd_add_input(&p, z, rows * classes);
  grad_buf gz = grad_buf_new(rng, rows * classes);
  hawq_cross_entropy_backward(probs, labels, rows, classes, smoothing, scale, gz.buf, threads);
  grad_buf_mark(&gz);
  hawq_cross_entropy_backward(probs, labels, rows, classes, smoothing, scale, gz.buf, threads);
  hawq_cross_entropy_backward(probs, labels, rows, classes, smoothing, scale, NULL, threads);
  check_grad(st, desc, "dlogits", &gz, &p, 0, 0, NULL);
  grad_buf_free(&gz);
  fd_free(&p);
  free(z);
  free(zd);
  free(probs);
  free(ref_probs);
  free(labels);
}

/* Large (parallel): loss, probabilities and gradient bitwise equal for threads 1 and 2. */
static void run_ce_threads_case(grad_stats *st, test_rng *rng, int64_t rows, int64_t classes) {
  float *z = new_floats(rows * classes), *p1 = new_floats(rows * classes);
  float *p2 = new_floats(rows * classes), *g1 = new_floats(rows * classes);
  float *g2 = new_floats(rows * classes);
  int32_t *labels = alloc_bytes((size_t)rows * sizeof(int32_t));
  fill_uniform(rng, z, rows * classes, -5.0f, 5.0f);
  for (int64_t r = 0; r < rows; r++) labels[r] = (int32_t)test_rng_int(rng, 0, classes - 1);
  double l1 = hawq_cross_entropy_forward(z, labels, rows, classes, 0.1f, p1, 1);
  double l2 = hawq_cross_entropy_forward(z, labels, rows, classes, 0.1f, p2, 2);
  hawq_cross_entropy_backward(p1, labels, rows, classes, 0.1f, 1.0f, g1, 1);
  hawq_cross_entropy_backward(p2, labels, rows, classes, 0.1f, 1.0f, g2, 2);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "rows %lld classes %lld threads 1 vs 2", (long long)rows,
           (long long)classes);
  CHECK_OP(st, memcmp(&l1, &l2, sizeof l1) == 0, "%s: %s: loss %.17g vs %.17g", st->name, desc, l1,
           l2);
  check_same(st, desc, "probs", p1, p2, rows * classes);
  check_same(st, desc, "dlogits", g1, g2, rows * classes);
  free(z);
  free(p1);
  free(p2);
  free(g1);
  free(g2);
  free(labels);
}

static void test_softmax_and_loss(grad_stats *softmax_st, grad_stats *ce_st, grad_stats *ce_fwd_st,
                                  test_rng *rng) {
  const float centers[3] = {0.0f, 100.0f, -1000.0f};
  for (int i = 0; i < 150; i++)
    run_softmax_case(softmax_st, rng, test_rng_int(rng, 1, 4), test_rng_int(rng, 1, 12),
                     test_rng_int(rng, 0, 1) ? 1 : test_rng_int(rng, 2, 4), centers[i % 3],
                     (int)test_rng_int(rng, 1, 2));
  for (int i = 0; i < 120; i++) {
    float smoothing = i % 4 == 0 ? 0.0f : i % 4 == 1 ? 0.1f : test_rng_float(rng, 0.0f, 0.5f);
    run_ce_case(ce_st, ce_fwd_st, rng, test_rng_int(rng, 1, 8), test_rng_int(rng, 1, 12), smoothing,
                5.0f, 0.0f, (int)test_rng_int(rng, 1, 2));
  }
  /* Stability: logits far from zero and far apart (exp would overflow or underflow). */
  run_ce_case(ce_st, ce_fwd_st, rng, 4, 10, 0.0f, 5.0f, 1000.0f, 1);
  run_ce_case(ce_st, ce_fwd_st, rng, 4, 10, 0.1f, 5.0f, -1000.0f, 2);
  run_ce_case(ce_st, ce_fwd_st, rng, 4, 10, 0.1f, 200.0f, 0.0f, 1);
  run_ce_threads_case(ce_st, rng, 3000, 10);
}

/* ------------------------------------------------------------------------------------------- */

#define STATS(op_name, max_err) \
  { .name = (op_name), .bound = (max_err) }

/* ---------------------------------------------------------------------------------------------
 * conv2d (oneDNN training primitives): forward, din, dw, db
 * ------------------------------------------------------------------------------------------- */

typedef struct conv_ctx {
  int64_t n, c, h, w, k, p, q;
  int r, s, groups;
  hawq_conv_attr a;
} conv_ctx;

/* Reference convolution in double, logical layouts: x (n,c,h,w), w (k,c/g,r,s), b (k). */
static void conv_ref(const fd_problem *p, double *y) {
  const conv_ctx *cx = p->ctx;
  const double *x = p->x[0], *wt = p->x[1], *b = p->n_inputs > 2 ? p->x[2] : NULL;
  int64_t cg = cx->c / cx->groups, kg = cx->k / cx->groups;
  for (int64_t in = 0; in < cx->n; in++)
    for (int64_t ok = 0; ok < cx->k; ok++)
      for (int64_t oh = 0; oh < cx->p; oh++)
        for (int64_t ow = 0; ow < cx->q; ow++) {
          double acc = b ? b[ok] : 0.0;
          int64_t g = ok / kg;
          for (int64_t ic = 0; ic < cg; ic++)
            for (int kr = 0; kr < cx->r; kr++)
              for (int ks = 0; ks < cx->s; ks++) {
                int64_t ih = oh * cx->a.stride[0] - cx->a.pad[0] + (int64_t)kr * cx->a.dilation[0];
                int64_t iw = ow * cx->a.stride[1] - cx->a.pad[1] + (int64_t)ks * cx->a.dilation[1];
                if (ih < 0 || ih >= cx->h || iw < 0 || iw >= cx->w) continue;
                acc += x[((in * cx->c + g * cg + ic) * cx->h + ih) * cx->w + iw] *
                       wt[((ok * cg + ic) * cx->r + kr) * cx->s + ks];
              }
          y[((in * cx->k + ok) * cx->p + oh) * cx->q + ow] = acc;
        }
}

static void run_conv_case(grad_stats *st, grad_stats *fwd_st, test_rng *rng,
                          const hawq_dnnl_context *ctx) {
  conv_ctx cx;
  for (;;) {                                 /* draw until the output is non-empty */
    int kind = (int)test_rng_int(rng, 0, 2); /* plain, grouped, depthwise */
    cx.groups = kind == 0   ? 1
                : kind == 1 ? (int)test_rng_int(rng, 2, 3)
                            : (int)test_rng_int(rng, 2, 5);
    int64_t cg = kind == 2 ? 1 : test_rng_int(rng, 1, 3);
    int64_t kg = kind == 2 ? test_rng_int(rng, 1, 2) : test_rng_int(rng, 1, 3);
    cx.n = test_rng_int(rng, 1, 2);
    cx.c = cg * cx.groups;
    cx.k = kg * cx.groups;
    cx.h = test_rng_int(rng, 2, 7);
    cx.w = test_rng_int(rng, 2, 7);
    cx.r = (int)test_rng_int(rng, 1, 3);
    cx.s = (int)test_rng_int(rng, 1, 3);
    cx.a.groups = cx.groups;
    for (int d = 0; d < 2; d++) {
      cx.a.stride[d] = (int)test_rng_int(rng, 1, 3);
      cx.a.dilation[d] = (int)test_rng_int(rng, 1, 2);
    }
    for (int d = 0; d < 4; d++) cx.a.pad[d] = (int)test_rng_int(rng, 0, 2);
    int64_t eh = (int64_t)(cx.r - 1) * cx.a.dilation[0] + 1;
    int64_t ew = (int64_t)(cx.s - 1) * cx.a.dilation[1] + 1;
    int64_t ph = cx.h + cx.a.pad[0] + cx.a.pad[2] - eh, pw = cx.w + cx.a.pad[1] + cx.a.pad[3] - ew;
    if (ph < 0 || pw < 0) continue;
    cx.p = ph / cx.a.stride[0] + 1;
    cx.q = pw / cx.a.stride[1] + 1;
    break;
  }
  bool with_bias = test_rng_int(rng, 0, 1);
  int64_t xn = cx.n * cx.c * cx.h * cx.w, wn = cx.k * (cx.c / cx.groups) * cx.r * cx.s;
  int64_t yn = cx.n * cx.k * cx.p * cx.q;
  int64_t xdims[4] = {cx.n, cx.c, cx.h, cx.w}, wdims[4] = {cx.k, cx.c / cx.groups, cx.r, cx.s};
  int64_t ydims[4] = {cx.n, cx.k, cx.p, cx.q};
  float *x = new_floats(xn), *w = new_floats(wn), *b = new_floats(cx.k), *dy = new_floats(yn);
  fill_uniform(rng, x, xn, -1.0f, 1.0f);
  fill_uniform(rng, w, wn, -1.0f, 1.0f);
  fill_uniform(rng, b, cx.k, -1.0f, 1.0f);
  fill_uniform(rng, dy, yn, -1.0f, 1.0f);
  /* The kernel's layouts: x and y NHWC, w (K, R, S, C/g) -- the NCHW -> NHWC map of (K, C/g,
   * R, S). */
  float *xp = new_floats(xn), *wp = new_floats(wn), *dyp = new_floats(yn), *yp = new_floats(yn);
  logical_to_physical(x, xp, 4, xdims);
  logical_to_physical(w, wp, 4, wdims);
  logical_to_physical(dy, dyp, 4, ydims);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc,
           "n %lld c %lld h %lld w %lld k %lld kernel %dx%d groups %d stride %d,%d dilation "
           "%d,%d pads %d,%d,%d,%d%s",
           (long long)cx.n, (long long)cx.c, (long long)cx.h, (long long)cx.w, (long long)cx.k,
           cx.r, cx.s, cx.groups, cx.a.stride[0], cx.a.stride[1], cx.a.dilation[0],
           cx.a.dilation[1], cx.a.pad[0], cx.a.pad[1], cx.a.pad[2], cx.a.pad[3],
           with_bias ? " bias" : "");
  hawq_conv2d_shape shape = {.n = cx.n,
                             .h = cx.h,
                             .w = cx.w,
                             .c = cx.c,
                             .p = cx.p,
                             .q = cx.q,
                             .k = cx.k,
                             .r = cx.r,
                             .s = cx.s,
                             .attr = cx.a};
  hawq_error err;
  hawq_conv2d_train *cv = NULL;
  REQUIRE(!hawq_conv2d_train_create(ctx, &shape, with_bias, &cv, &err), "%s: %s", desc, err.msg);
  fd_problem p = fd_new(conv_ref, &cx, dy, yn);
  fd_add_input(&p, x, xn);
  fd_add_input(&p, w, wn);
  if (with_bias) fd_add_input(&p, b, cx.k);

  /* Forward against the reference. */
  REQUIRE(!hawq_conv2d_train_forward(cv, xp, wp, with_bias ? b : NULL, yp, &err), "%s", err.msg);
  double *ref = new_doubles(yn), *got = new_doubles(yn), *got_l = new_doubles(yn);
  conv_ref(&p, ref);
  for (int64_t i = 0; i < yn; i++) got[i] = yp[i];
  physical_to_logical_d(got, got_l, 4, ydims);
  check_fd(fwd_st, desc, "forward", got_l, ref, yn);

  /* Backward: accumulate twice into prefilled buffers, then against finite differences. */
  grad_buf gx = grad_buf_new(rng, xn), gw = grad_buf_new(rng, wn), gb = grad_buf_new(rng, cx.k);
  for (int call = 0; call < 2; call++) {
    REQUIRE(!hawq_conv2d_train_backward(cv, xp, wp, dyp, gx.buf, false, gw.buf,
                                        with_bias ? gb.buf : NULL, &err),
            "%s", err.msg);
    if (call == 0) {
      grad_buf_mark(&gx);
      grad_buf_mark(&gw);
      grad_buf_mark(&gb);
    }
  }
  check_grad(st, desc, "din", &gx, &p, 0, 4, xdims);
  check_grad(st, desc, "dw", &gw, &p, 1, 4, wdims);
  if (with_bias) check_grad(st, desc, "db", &gb, &p, 2, 0, NULL);

  /* overwrite_din writes din (a NaN-filled buffer) with what accumulating into zeros gives. */
  float *over = new_floats(xn), *zero = new_floats(xn), *scratch_w = new_floats(wn);
  for (int64_t i = 0; i < xn; i++) over[i] = NAN;
  REQUIRE(!hawq_conv2d_train_backward(cv, xp, wp, dyp, over, true, scratch_w, NULL, &err), "%s",
          err.msg);
  REQUIRE(!hawq_conv2d_train_backward(cv, xp, wp, dyp, zero, false, scratch_w, NULL, &err), "%s",
          err.msg);
  int64_t at = -1;
  for (int64_t i = 0; i < xn && at < 0; i++)
    if (!(over[i] == zero[i])) at = i;
  CHECK_OP(st, at < 0, "%s: %s: overwritten din differs at element %lld: %.9g vs %.9g", st->name,
           desc, (long long)at, at >= 0 ? over[at] : 0.0, at >= 0 ? zero[at] : 0.0);

  hawq_conv2d_train_destroy(cv);
  grad_buf_free(&gx);
  grad_buf_free(&gw);
  grad_buf_free(&gb);
  fd_free(&p);
  float *bufs[] = {x, w, b, dy, xp, wp, dyp, yp, over, zero, scratch_w};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
  free(ref);
  free(got);
  free(got_l);
}

static void test_conv(grad_stats *st, grad_stats *fwd_st, test_rng *rng) {
  hawq_dnnl_context ctx;
  hawq_error err;
  REQUIRE(!hawq_dnnl_context_create(&ctx, &err), "%s", err.msg);
  for (int i = 0; i < 60; i++) run_conv_case(st, fwd_st, rng, &ctx);
  hawq_dnnl_context_destroy(&ctx);
}

int main(void) {
  test_rng rng = test_rng_seeded("test_float_grad");
  /* Bounds on err = max|got - fd| / max(1, max|fd|). The finite differences are good to ~1e-8;
   * the rest is float rounding in the kernels (gradient buffers are prefilled with values of
   * magnitude <= 1, so each float addition into them costs up to ~1.2e-7):
   * - 1e-6: activations, reshape / transpose / concat / pad, global pooling: one or two float
   *   operations per element (observed <= ~1e-7);
   * - 2e-6: max and average pooling: up to 9 overlapping windows add into one input;
   * - 1e-5: gemm (oneDNN's float sums of <= 12 products), softmax, cross-entropy (observed
   *   <= ~1e-6);
   * - 2e-5: broadcasting binary ops: float products and quotients of up to ~32, summed over
   *   the broadcast axes (observed <= ~3e-6);
   * - 1e-5: conv2d (oneDNN forward-training, backward-data, backward-weights): float sums of
   *   <= 75 products, checked for every element of din, dw and db;
   * - 1e-4: batchnorm: the gradients use the float batch mean (half an ulp of the mean, times
   *   sums of dy) and subtract terms that nearly cancel when a channel's values nearly
   *   coincide (observed <= ~1e-5).
   * A wrong term, index or factor gives errors of ~1e-2 or more. The other three only count
   * checks: their tolerances are in their messages. */
  grad_stats bn = STATS("batchnorm", 1e-4), bn_stats = STATS("batchnorm_stats", 0.0);
  grad_stats act[3] = {STATS("relu", 1e-6), STATS("clip", 1e-6), STATS("leaky_relu", 1e-6)};
  grad_stats binary = STATS("binary", 2e-5);
  grad_stats maxpool = STATS("maxpool", 2e-6), avgpool = STATS("avgpool", 2e-6);
  grad_stats gmax = STATS("global_maxpool", 1e-6), gavg = STATS("global_avgpool", 1e-6);
  grad_stats gemm = STATS("gemm", 1e-5), sgemm = STATS("sgemm", 0.0);
  grad_stats reshape = STATS("reshape", 1e-6), transpose = STATS("transpose", 1e-6);
  grad_stats concat = STATS("concat", 1e-6), pad = STATS("pad", 1e-6);
  grad_stats softmax = STATS("softmax", 1e-5), ce = STATS("cross_entropy", 1e-5);
  grad_stats ce_fwd = STATS("cross_entropy_fwd", 0.0);
  grad_stats conv = STATS("conv2d", 1e-5), conv_fwd = STATS("conv2d_fwd", 1e-5);

  test_batchnorm(&bn, &bn_stats, &rng);
  test_activations(act, &rng);
  test_binary(&binary, &rng);
  test_pooling(&maxpool, &avgpool, &gmax, &gavg, &rng);
  test_gemm(&gemm, &sgemm, &rng);
  test_layout(&reshape, &transpose, &concat, &pad, &rng);
  test_softmax_and_loss(&softmax, &ce, &ce_fwd, &rng);
  test_conv(&conv, &conv_fwd, &rng);

  const grad_stats *all[] = {&bn,      &bn_stats, &act[0],  &act[1], &act[2], &binary,  &maxpool,
                             &avgpool, &gmax,     &gavg,    &gemm,   &sgemm,  &reshape, &transpose,
                             &concat,  &pad,      &softmax, &ce,     &ce_fwd, &conv,    &conv_fwd};
  printf("  %-18s %6s %6s %10s %10s\n", "op", "checks", "failed", "bound", "worst err");
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    const grad_stats *s = all[i];
    printf("  %-18s %6d %6d", s->name, s->cases, s->failed);
    if (s->bound > 0)
      printf(" %10.1e %10.2e", s->bound, s->worst);
    else
      printf(" %10s %10s", "-", "-");
    if (s->failed > s->reported) printf(" (%d failures not printed)", s->failed - s->reported);
    printf("\n");
  }
  return test_report("test_float_grad");
}
