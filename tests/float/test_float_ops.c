/* Randomized tests of every float forward kernel in src/float/ops.h against naive references
 * written here from the ONNX / PyTorch definitions (no code shared with src/float), computed in
 * double on logical (NCHW for rank 4) data: conv2d (oneDNN primitives: grouped, depthwise with
 * channel multiplier 1 and 2, 1x1 pointwise, dilated, strided, asymmetric pads, fused
 * activations, 1-4 threads), batchnorm, relu / clip / leaky relu, broadcasting add / sub / mul /
 * div, max and average pooling (ceil mode, count_include_pad), global pooling, gemm and sgemm_nt
 * with leading dimensions, reshape, transpose, concat, pad and softmax, each with 1 and 2 threads.
 *
 * Outputs are prefilled with NaN, so an element a kernel forgets to write fails. A failing case
 * prints the op, the whole case and the first differing logical index; after MAX_REPORTS failing
 * cases an op is only counted. Shapes come from a seeded RNG (HAWQ_TEST_SEED=<n> replays a run). */
#include <float.h>
#include <math.h>
#include <stdbool.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "float/ops.h"
#include "float_test_util.h"

/* The oneDNN engine and stream the conv2d cases run on. */
static hawq_dnnl_context *dnnl_ctx;

#define DESC_SIZE 512

/* ---------------------------------------------------------------------------------------------
 * Harness: allocation, random data, layout conversion, comparison with limited reporting.
 * ------------------------------------------------------------------------------------------- */

typedef struct op_stats {
  const char *name;
  int cases, failed, reported;
} op_stats;

static void fill_nan(float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = NAN;
}

/* Logical (NCHW for rank 4) <-> physical (NHWC for rank 4); a copy for every other rank. */
static void physical_to_logical(const float *physical, float *logical, int rank,
                                const int64_t *dims) {
  if (rank != 4) {
    memcpy(logical, physical, (size_t)numel_of(rank, dims) * sizeof(float));
    return;
  }
  int64_t n = dims[0], c = dims[1], h = dims[2], w = dims[3];
  for (int64_t in = 0; in < n; in++)
    for (int64_t ic = 0; ic < c; ic++)
      for (int64_t ih = 0; ih < h; ih++)
        for (int64_t iw = 0; iw < w; iw++)
          logical[((in * c + ic) * h + ih) * w + iw] = physical[((in * h + ih) * w + iw) * c + ic];
}

static void format_coord(int64_t flat, int rank, const int64_t *dims, char *buf, size_t size) {
  int64_t coord[HAWQ_MAX_RANK];
  unravel(flat, rank, dims, coord);
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int k = 0; k < rank && used < size; k++) {
    used += (size_t)snprintf(buf + used, size - used, "%s%lld", k ? "," : "", (long long)coord[k]);
  }
  if (used < size) snprintf(buf + used, size - used, "]");
}

typedef enum cmp_kind {
  /* Bit-exact: max pooling, relu / clip / leaky relu, layout ops. */
  CMP_EXACT,
  /* One float rounding of the exact result (elementwise +, -, *, /): the correctly rounded
   * float is within 2^-24 |ref|; 1e-6 |ref| allows that and a reciprocal-multiply divide. */
  CMP_ROUNDED,
  /* Float accumulation of up to a few hundred terms of magnitude <= ~1 (conv, gemm, pooling
   * averages, batchnorm, softmax): the rounding error observed in practice is ~sqrt(n) * 2^-24
   * * sum|terms| <= ~1e-5; the bound |got - ref| <= 1e-4 (1 + |ref|) leaves a wide margin while
   * a single dropped or doubled term (magnitude ~0.01 to 1) still fails. */
  CMP_ACCUM,
} cmp_kind;

static double tolerance(cmp_kind kind, double ref) {
  switch (kind) {
    case CMP_EXACT:
      return 0.0;
    case CMP_ROUNDED:
      return 1e-6 * fabs(ref);
    default:
      return 1e-4 * (1.0 + fabs(ref));
  }
}

/* Compares `got` with `ref`, both in logical order of shape dims; one CHECK per case. */
static bool compare_output(op_stats *st, const char *desc, const float *got, const double *ref,
                           int rank, const int64_t *dims, cmp_kind kind) {
  int64_t n = numel_of(rank, dims), bad = 0, first = -1;
  for (int64_t i = 0; i < n; i++) {
    double g = got[i], err = fabs(g - ref[i]);
    bool ok = g == ref[i] || err <= tolerance(kind, ref[i]);
    if (!ok) {
      if (first < 0) first = i;
      bad++;
    }
  }
  char where[128] = "-", shape[128];
  format_dims(rank, dims, shape, sizeof shape);
  if (first >= 0) format_coord(first, rank, dims, where, sizeof where);
  double g = first >= 0 ? got[first] : 0, r = first >= 0 ? ref[first] : 0;
  CHECK_OP(st, bad == 0,
           "%s: %s: %lld of %lld outputs of shape %s wrong, first at logical index %s: got %.9g, "
           "expected %.9g (tolerance %.3g)",
           st->name, desc, (long long)bad, (long long)n, shape, where, g, r,
           first >= 0 ? tolerance(kind, r) : 0.0);
  return bad == 0;
}

static hawq_act random_act(test_rng *rng) {
  switch (test_rng_int(rng, 0, 5)) {
    case 0:
    case 1:
      return (hawq_act){false, 0.0f, 0.0f};
    case 2:
      return (hawq_act){true, 0.0f, INFINITY}; /* ReLU */
    case 3:
      return (hawq_act){true, 0.0f, 6.0f}; /* ReLU6 */
    case 4:
      return (hawq_act){true, 0.0f, 0.5f}; /* a ReLU6-like clip that bites often */
    default: {
      float lo = test_rng_float(rng, -1.0f, 0.0f);
      return (hawq_act){true, lo, lo + test_rng_float(rng, 0.1f, 1.5f)};
    }
  }
}

static double ref_act(hawq_act act, double v) {
  if (!act.on) return v;
  if (v < act.lo) return act.lo;
  if (v > act.hi) return act.hi;
  return v;
}

static void format_act(hawq_act act, char *buf, size_t size) {
  if (!act.on)
    snprintf(buf, size, "none");
  else if (act.lo == 0.0f && isinf(act.hi))
    snprintf(buf, size, "relu");
  else if (act.lo == 0.0f && act.hi == 6.0f)
    snprintf(buf, size, "relu6");
  else
    snprintf(buf, size, "clip[%.9g,%.9g]", act.lo, act.hi);
}

/* ---------------------------------------------------------------------------------------------
 * conv2d
 * ------------------------------------------------------------------------------------------- */

typedef struct conv_case {
  int64_t n, c, h, w, k;
  int r, s, groups;
  int stride[2], dilation[2], pad[4]; /* pad: top, left, bottom, right */
  bool bias;
  hawq_act act;
  int threads;
} conv_case;

/* ONNX Conv on logical data: x (N,C,H,W), w (K,C/g,R,S), b (K) or NULL -> y (N,K,P,Q). */
static void ref_conv2d(const conv_case *cc, int64_t p_out, int64_t q_out, const float *x,
                       const float *w, const float *b, double *y) {
  int64_t cg = cc->c / cc->groups, kg = cc->k / cc->groups;
  for (int64_t in = 0; in < cc->n; in++) {
    for (int64_t ok = 0; ok < cc->k; ok++) {
      int64_t group = ok / kg;
      for (int64_t op = 0; op < p_out; op++) {
        for (int64_t oq = 0; oq < q_out; oq++) {
          double acc = b ? b[ok] : 0.0;
          for (int64_t ci = 0; ci < cg; ci++) {
            int64_t ic = group * cg + ci;
            for (int kr = 0; kr < cc->r; kr++) {
              int64_t ih = op * cc->stride[0] - cc->pad[0] + (int64_t)kr * cc->dilation[0];
              if (ih < 0 || ih >= cc->h) continue;
              for (int ks = 0; ks < cc->s; ks++) {
                int64_t iw = oq * cc->stride[1] - cc->pad[1] + (int64_t)ks * cc->dilation[1];
                if (iw < 0 || iw >= cc->w) continue;
                acc += (double)x[((in * cc->c + ic) * cc->h + ih) * cc->w + iw] *
                       (double)w[((ok * cg + ci) * cc->r + kr) * cc->s + ks];
              }
            }
          }
          y[((in * cc->k + ok) * p_out + op) * q_out + oq] = ref_act(cc->act, acc);
        }
      }
    }
  }
}

static void run_conv_case(op_stats *st, test_rng *rng, const conv_case *cc) {
  int64_t keff_h = (int64_t)(cc->r - 1) * cc->dilation[0] + 1;
  int64_t keff_w = (int64_t)(cc->s - 1) * cc->dilation[1] + 1;
  int64_t p_out = (cc->h + cc->pad[0] + cc->pad[2] - keff_h) / cc->stride[0] + 1;
  int64_t q_out = (cc->w + cc->pad[1] + cc->pad[3] - keff_w) / cc->stride[1] + 1;
  int64_t cg = cc->c / cc->groups;
  int64_t x_dims[4] = {cc->n, cc->c, cc->h, cc->w}, y_dims[4] = {cc->n, cc->k, p_out, q_out};
  int64_t x_count = numel_of(4, x_dims), y_count = numel_of(4, y_dims);
  int64_t w_count = cc->k * cg * cc->r * cc->s;

  float *x = new_floats(x_count), *x_phys = new_floats(x_count);
  float *w = new_floats(w_count), *w_phys = new_floats(w_count);
  float *b = cc->bias ? new_floats(cc->k) : NULL;
  fill_uniform(rng, x, x_count, -1.0f, 1.0f);
  fill_uniform(rng, w, w_count, -1.0f, 1.0f);
  if (b) fill_uniform(rng, b, cc->k, -1.0f, 1.0f);
  logical_to_physical(x, x_phys, 4, x_dims);
  /* ONNX (K, C/g, R, S) -> the kernel's (K, R, S, C/g). */
  for (int64_t ok = 0; ok < cc->k; ok++)
    for (int64_t ci = 0; ci < cg; ci++)
      for (int kr = 0; kr < cc->r; kr++)
        for (int ks = 0; ks < cc->s; ks++)
          w_phys[((ok * cc->r + kr) * cc->s + ks) * cg + ci] =
              w[((ok * cg + ci) * cc->r + kr) * cc->s + ks];

  hawq_conv2d_shape shape = {.n = cc->n,
                             .h = cc->h,
                             .w = cc->w,
                             .c = cc->c,
                             .p = p_out,
                             .q = q_out,
                             .k = cc->k,
                             .r = cc->r,
                             .s = cc->s};
  shape.attr.groups = cc->groups;
  for (int i = 0; i < 2; i++) {
    shape.attr.stride[i] = cc->stride[i];
    shape.attr.dilation[i] = cc->dilation[i];
  }
  for (int i = 0; i < 4; i++) shape.attr.pad[i] = cc->pad[i];
  bool depthwise = cc->groups > 1 && cc->groups == cc->c;
  float *y_phys = new_floats(y_count), *y = new_floats(y_count);
  fill_nan(y_phys, y_count);
  hawq_conv2d *conv = NULL;
  hawq_error err;
  const char *impl = "?";
  bool created = hawq_conv2d_create(dnnl_ctx, &shape, w_phys, b, cc->act, &conv, &err) == HAWQ_OK;
  CHECK_OP(st, created, "conv2d: create failed: %s", err.msg);
  if (created) {
    impl = hawq_conv2d_impl(conv);
#ifdef _OPENMP
    omp_set_num_threads(cc->threads);
#endif
    bool ran = hawq_conv2d_forward(conv, x_phys, y_phys, &err) == HAWQ_OK;
    CHECK_OP(st, ran, "conv2d: forward failed: %s", err.msg);
  }
  physical_to_logical(y_phys, y, 4, y_dims);

  double *ref = new_doubles(y_count);
  ref_conv2d(cc, p_out, q_out, x, w, b, ref);

  char act[64], desc[DESC_SIZE];
  format_act(cc->act, act, sizeof act);
  snprintf(desc, sizeof desc,
           "x(%lld,%lld,%lld,%lld) w(%lld,%lld,%d,%d) groups %d stride %d,%d dilation %d,%d "
           "pads t%d l%d b%d r%d bias %s act %s threads %d (%s, oneDNN %s)",
           (long long)cc->n, (long long)cc->c, (long long)cc->h, (long long)cc->w, (long long)cc->k,
           (long long)cg, cc->r, cc->s, cc->groups, cc->stride[0], cc->stride[1], cc->dilation[0],
           cc->dilation[1], cc->pad[0], cc->pad[1], cc->pad[2], cc->pad[3], cc->bias ? "yes" : "no",
           act, cc->threads, depthwise ? "depthwise" : "dense", impl);
  compare_output(st, desc, y, ref, 4, y_dims, CMP_ACCUM);

  free(x);
  free(x_phys);
  free(w);
  free(w_phys);
  hawq_conv2d_destroy(conv);
  free(b);
  free(y_phys);
  free(y);
  free(ref);
}

/* Smallest input extent a kernel fits in, given the pads. */
static int64_t min_extent(int kernel, int dilation, int pad_sum) {
  int64_t keff = (int64_t)(kernel - 1) * dilation + 1, m = keff - pad_sum;
  return m < 1 ? 1 : m;
}

static conv_case random_conv_case(test_rng *rng) {
  conv_case cc;
  memset(&cc, 0, sizeof cc);
  int mode = (int)test_rng_int(rng, 0, 9);
  /* Channels and groups. */
  switch (mode) {
    case 3:
    case 4: { /* groups 2 or 3 */
      int g = mode == 3 ? 2 : 3;
      cc.groups = g;
      cc.c = g * test_rng_int(rng, 1, 20 / g);
      cc.k = g * test_rng_int(rng, 1, 6);
      break;
    }
    case 5: { /* a random divisor of c */
      cc.c = test_rng_int(rng, 2, 20);
      int divisors[20], nd = 0;
      for (int d = 2; d < cc.c; d++)
        if (cc.c % d == 0) divisors[nd++] = d;
      cc.groups = nd ? divisors[test_rng_int(rng, 0, nd - 1)] : (int)cc.c;
      cc.k = cc.groups * test_rng_int(rng, 1, 4);
      break;
    }
    case 6:
    case 7: /* depthwise, channel multiplier 1 or 2 */
      cc.c = test_rng_int(rng, 2, 20);
      cc.groups = (int)cc.c;
      cc.k = cc.c * (mode == 6 ? 1 : 2);
      break;
    default: /* ungrouped (modes 8 and 9 are made pointwise below) */
      cc.groups = 1;
      cc.c = test_rng_int(rng, 1, 20);
      cc.k = test_rng_int(rng, 1, 20);
      break;
  }
  /* Kernel, strides, dilations, pads. */
  int kshape = (int)test_rng_int(rng, 0, 5);
  if (kshape == 0) {
    cc.r = 1;
    cc.s = 3;
  } else if (kshape == 1) {
    cc.r = 3;
    cc.s = 1;
  } else {
    cc.r = (int)test_rng_int(rng, 1, 5);
    cc.s = (int)test_rng_int(rng, 1, 5);
  }
  for (int i = 0; i < 2; i++) {
    cc.stride[i] = (int)test_rng_int(rng, 1, 3);
    cc.dilation[i] = test_rng_int(rng, 0, 2) ? 1 : (int)test_rng_int(rng, 2, 3);
  }
  for (int i = 0; i < 4; i++) cc.pad[i] = (int)test_rng_int(rng, 0, 3);
  if (mode >= 8) { /* 1x1 stride 1 unpadded ungrouped: the pointwise path */
    cc.r = cc.s = 1;
    cc.stride[0] = cc.stride[1] = 1;
    for (int i = 0; i < 4; i++) cc.pad[i] = 0;
  }
  cc.n = test_rng_int(rng, 1, 3);
  int64_t min_h = min_extent(cc.r, cc.dilation[0], cc.pad[0] + cc.pad[2]);
  int64_t min_w = min_extent(cc.s, cc.dilation[1], cc.pad[1] + cc.pad[3]);
  cc.h = test_rng_int(rng, min_h, min_h + 14);
  cc.w = test_rng_int(rng, min_w, min_w + 14);
  cc.bias = test_rng_int(rng, 0, 1);
  cc.act = random_act(rng);
  cc.threads = (int)test_rng_int(rng, 1, 2);
  return cc;
}

/* A square conv with equal pads and strides: the fixed cases below. */
static conv_case square_conv(int64_t n, int64_t c, int64_t hw, int64_t k, int kernel, int stride,
                             int pad, int groups, int threads) {
  conv_case cc;
  memset(&cc, 0, sizeof cc);
  cc.n = n;
  cc.c = c;
  cc.h = cc.w = hw;
  cc.k = k;
  cc.r = cc.s = kernel;
  cc.groups = groups;
  cc.stride[0] = cc.stride[1] = stride;
  cc.dilation[0] = cc.dilation[1] = 1;
  for (int i = 0; i < 4; i++) cc.pad[i] = pad;
  cc.bias = true;
  cc.act = (hawq_act){true, 0.0f, INFINITY};
  cc.threads = threads;
  return cc;
}

static void test_conv2d(op_stats *st, test_rng *rng) {
  /* Each case creates a oneDNN primitive (a JIT compilation), so fewer than for the cheap ops. */
  for (int i = 0; i < 1500; i++) {
    conv_case cc = random_conv_case(rng);
    run_conv_case(st, rng, &cc);
  }
  /* Medium shapes with every attribute random, 1-4 threads. */
  for (int i = 0; i < 120; i++) {
    conv_case cc = random_conv_case(rng);
    int64_t scale = test_rng_int(rng, 2, 4);
    cc.c *= scale;
    cc.k *= scale;
    if (cc.groups > 1) cc.groups *= (int)scale; /* keeps depthwise depthwise */
    cc.n = test_rng_int(rng, 1, 2);
    cc.h += test_rng_int(rng, 0, 20);
    cc.w += test_rng_int(rng, 0, 20);
    cc.threads = (int)test_rng_int(rng, 1, 4);
    run_conv_case(st, rng, &cc);
  }
  conv_case fixed[] = {
      /* Larger images, serial and parallel. */
      square_conv(1, 16, 40, 16, 3, 1, 1, 1, 1),
      square_conv(1, 16, 40, 16, 3, 1, 1, 1, 2),
      /* Batch of 3. */
      square_conv(3, 8, 24, 12, 3, 1, 1, 1, 2),
      /* First-layer style: 3 channels, 5x5 stride 2. */
      square_conv(1, 3, 40, 8, 5, 2, 2, 1, 2),
      /* Small images, many output channels, more threads than rows of work. */
      square_conv(1, 64, 3, 96, 3, 1, 1, 1, 2),
      square_conv(1, 64, 3, 96, 3, 1, 1, 1, 4),
      square_conv(1, 64, 3, 40, 3, 1, 1, 1, 2),
      square_conv(1, 64, 3, 40, 3, 1, 1, 1, 3),
      square_conv(1, 32, 3, 64, 3, 1, 1, 2, 4),
      /* Pointwise, with batch. */
      square_conv(1, 64, 4, 100, 1, 1, 0, 1, 2),
      square_conv(1, 64, 4, 100, 1, 1, 0, 1, 3),
      square_conv(2, 32, 20, 24, 1, 1, 0, 1, 2),
      square_conv(2, 32, 20, 24, 1, 1, 0, 1, 1),
      /* Grouped. */
      square_conv(1, 20, 40, 8, 3, 1, 1, 4, 2),
      /* Depthwise, larger. */
      square_conv(2, 32, 17, 32, 3, 2, 1, 32, 2),
      square_conv(2, 32, 17, 64, 3, 2, 1, 32, 2),
      square_conv(1, 24, 30, 24, 5, 1, 2, 24, 1),
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) run_conv_case(st, rng, &fixed[i]);
  /* A larger case with dilation, asymmetric pads and no bias / ReLU6. */
  conv_case dil = square_conv(1, 16, 40, 16, 3, 1, 0, 1, 2);
  dil.dilation[0] = 2;
  dil.dilation[1] = 3;
  dil.pad[0] = 2;
  dil.pad[1] = 3;
  dil.pad[2] = 1;
  dil.pad[3] = 0;
  dil.bias = false;
  dil.act = (hawq_act){true, 0.0f, 6.0f};
  run_conv_case(st, rng, &dil);
}

/* ---------------------------------------------------------------------------------------------
 * batchnorm
 * ------------------------------------------------------------------------------------------- */

static void run_batchnorm_case(op_stats *st, test_rng *rng, int64_t outer, int64_t c, int64_t inner,
                               hawq_act act, int threads) {
  int64_t count = outer * c * inner, dims[3] = {outer, c, inner};
  float *x = new_floats(count), *y = new_floats(count);
  float *scale = new_floats(c), *bias = new_floats(c), *mean = new_floats(c), *var = new_floats(c);
  fill_uniform(rng, x, count, -3.0f, 3.0f);
  fill_uniform(rng, scale, c, -2.0f, 2.0f);
  fill_uniform(rng, bias, c, -1.0f, 1.0f);
  fill_uniform(rng, mean, c, -1.0f, 1.0f);
  fill_uniform(rng, var, c, 0.01f, 2.0f);
  float eps = test_rng_int(rng, 0, 1) ? 1e-5f : 1e-3f;
  fill_nan(y, count);
  hawq_batchnorm_forward(x, y, outer, c, inner, scale, bias, mean, var, eps, act, threads);
  double *ref = new_doubles(count);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t i = 0; i < inner; i++) {
        int64_t at = (o * c + ch) * inner + i;
        double v =
            ((double)x[at] - mean[ch]) / sqrt((double)var[ch] + (double)eps) * scale[ch] + bias[ch];
        ref[at] = ref_act(act, v);
      }
  char a[64], desc[DESC_SIZE];
  format_act(act, a, sizeof a);
  snprintf(desc, sizeof desc, "(outer %lld, c %lld, inner %lld) eps %g act %s threads %d",
           (long long)outer, (long long)c, (long long)inner, eps, a, threads);
  compare_output(st, desc, y, ref, 3, dims, CMP_ACCUM);
  free(x);
  free(y);
  free(scale);
  free(bias);
  free(mean);
  free(var);
  free(ref);
}

static void test_batchnorm(op_stats *st, test_rng *rng) {
  for (int i = 0; i < 600; i++) {
    int64_t inner = test_rng_int(rng, 0, 2) ? 1 : test_rng_int(rng, 2, 40);
    run_batchnorm_case(st, rng, test_rng_int(rng, 1, 6), test_rng_int(rng, 1, 20), inner,
                       random_act(rng), (int)test_rng_int(rng, 1, 2));
  }
  run_batchnorm_case(st, rng, 4096, 16, 1, (hawq_act){true, 0.0f, 6.0f}, 2);
  run_batchnorm_case(st, rng, 3, 16, 1024, (hawq_act){false, 0.0f, 0.0f}, 2);
}

/* ---------------------------------------------------------------------------------------------
 * relu, clip, leaky relu
 * ------------------------------------------------------------------------------------------- */

typedef enum unary_kind { UNARY_RELU, UNARY_CLIP, UNARY_LEAKY } unary_kind;

static void run_unary_case(op_stats *st, test_rng *rng, unary_kind kind, int64_t n, int threads) {
  float *x = new_floats(n), *y = new_floats(n);
  double *ref = new_doubles(n);
  fill_uniform(rng, x, n, -4.0f, 4.0f);
  float lo = test_rng_float(rng, -2.0f, 0.5f), hi = lo + test_rng_float(rng, 0.0f, 3.0f);
  int bounds = (int)test_rng_int(rng, 0, 3);
  if (bounds == 1) lo = -INFINITY;
  if (bounds == 2) hi = INFINITY;
  float alpha = test_rng_int(rng, 0, 1) ? 0.01f : test_rng_float(rng, 0.0f, 1.0f);
  /* Boundary values: zeros and the clip bounds themselves. */
  const float specials[4] = {0.0f, -0.0f, isfinite(lo) ? lo : -1.0f, isfinite(hi) ? hi : 1.0f};
  for (int64_t i = 0; i < n; i += 7) x[i] = specials[test_rng_int(rng, 0, 3)];
  fill_nan(y, n);
  char desc[DESC_SIZE];
  switch (kind) {
    case UNARY_RELU:
      hawq_relu_forward(x, y, n, threads);
      for (int64_t i = 0; i < n; i++) ref[i] = x[i] > 0.0f ? x[i] : 0.0;
      snprintf(desc, sizeof desc, "relu n %lld threads %d", (long long)n, threads);
      break;
    case UNARY_CLIP:
      hawq_clip_forward(x, y, n, lo, hi, threads);
      for (int64_t i = 0; i < n; i++) ref[i] = fmin(fmax((double)x[i], lo), hi);
      snprintf(desc, sizeof desc, "clip [%.9g, %.9g] n %lld threads %d", lo, hi, (long long)n,
               threads);
      break;
    default:
      hawq_leaky_relu_forward(x, y, n, alpha, threads);
      /* The product of two floats is exact in double, so rounding it once to float is exactly
       * the float product the kernel computes. */
      for (int64_t i = 0; i < n; i++) ref[i] = x[i] >= 0.0f ? x[i] : (float)((double)x[i] * alpha);
      snprintf(desc, sizeof desc, "leaky_relu alpha %.9g n %lld threads %d", alpha, (long long)n,
               threads);
      break;
  }
  int64_t dims[1] = {n};
  compare_output(st, desc, y, ref, 1, dims, CMP_EXACT);
  free(x);
  free(y);
  free(ref);
}

static void test_activations(op_stats *relu, op_stats *clip, op_stats *leaky, test_rng *rng) {
  op_stats *stats[3] = {relu, clip, leaky};
  for (int kind = 0; kind < 3; kind++) {
    for (int i = 0; i < 300; i++) {
      run_unary_case(stats[kind], rng, (unary_kind)kind, test_rng_int(rng, 1, 3000),
                     (int)test_rng_int(rng, 1, 2));
    }
    /* Large enough to run in parallel. */
    run_unary_case(stats[kind], rng, (unary_kind)kind, 100003, 2);
  }
}

/* ---------------------------------------------------------------------------------------------
 * add, sub, mul, div with broadcasting
 * ------------------------------------------------------------------------------------------- */

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

static void run_binary_case(op_stats *st, test_rng *rng, hawq_op op, int rank,
                            const int64_t *out_dims, const int64_t *a_dims, const int64_t *b_dims,
                            hawq_act act, int threads) {
  int64_t na = numel_of(rank, a_dims), nb = numel_of(rank, b_dims), n = numel_of(rank, out_dims);
  float *a = new_floats(na), *b = new_floats(nb), *y = new_floats(n);
  double *ref = new_doubles(n);
  fill_uniform(rng, a, na, -2.0f, 2.0f);
  fill_uniform(rng, b, nb, -2.0f, 2.0f);
  if (op == HAWQ_OP_DIV) { /* divisors away from zero */
    for (int64_t i = 0; i < nb; i++) b[i] = (b[i] < 0 ? -0.25f : 0.25f) + b[i] * 0.875f;
  }
  fill_nan(y, n);
  hawq_binary_forward(op, rank, out_dims, a, a_dims, b, b_dims, act, y, threads);
  int64_t a_stride[HAWQ_MAX_RANK], b_stride[HAWQ_MAX_RANK], coord[HAWQ_MAX_RANK];
  int64_t a_size = 1, b_size = 1;
  for (int k = rank - 1; k >= 0; k--) {
    a_stride[k] = a_size;
    b_stride[k] = b_size;
    a_size *= a_dims[k];
    b_size *= b_dims[k];
  }
  for (int64_t i = 0; i < n; i++) {
    unravel(i, rank, out_dims, coord);
    int64_t ai = 0, bi = 0;
    for (int k = 0; k < rank; k++) {
      ai += (a_dims[k] == 1 ? 0 : coord[k]) * a_stride[k];
      bi += (b_dims[k] == 1 ? 0 : coord[k]) * b_stride[k];
    }
    double x = a[ai], z = b[bi], v;
    switch (op) {
      case HAWQ_OP_ADD:
        v = x + z;
        break;
      case HAWQ_OP_SUB:
        v = x - z;
        break;
      case HAWQ_OP_MUL:
        v = x * z;
        break;
      default:
        v = x / z;
        break;
    }
    ref[i] = ref_act(act, v);
  }
  char act_desc[64], ad[128], bd[128], desc[DESC_SIZE];
  format_act(act, act_desc, sizeof act_desc);
  format_dims(rank, a_dims, ad, sizeof ad);
  format_dims(rank, b_dims, bd, sizeof bd);
  snprintf(desc, sizeof desc, "%s a%s b%s act %s threads %d", binary_name(op), ad, bd, act_desc,
           threads);
  compare_output(st, desc, y, ref, rank, out_dims, CMP_ROUNDED);
  free(a);
  free(b);
  free(y);
  free(ref);
}

static void test_binary(op_stats *st, test_rng *rng) {
  const hawq_op ops[4] = {HAWQ_OP_ADD, HAWQ_OP_SUB, HAWQ_OP_MUL, HAWQ_OP_DIV};
  for (int i = 0; i < 5000; i++) {
    int rank = (int)test_rng_int(rng, 1, HAWQ_MAX_RANK);
    int64_t out[HAWQ_MAX_RANK], a[HAWQ_MAX_RANK], b[HAWQ_MAX_RANK];
    for (int k = 0; k < rank; k++) out[k] = test_rng_int(rng, 1, rank >= 6 ? 3 : rank >= 4 ? 5 : 7);
    int pattern = (int)test_rng_int(rng, 0, 4);
    for (int k = 0; k < rank; k++) {
      a[k] = out[k];
      switch (pattern) {
        case 0:
          b[k] = out[k];
          break; /* equal shapes */
        case 1:  /* size-1 dims on either side, independently */
          b[k] = test_rng_int(rng, 0, 2) ? out[k] : 1;
          a[k] = test_rng_int(rng, 0, 3) ? out[k] : 1;
          if (a[k] == 1 && b[k] == 1) b[k] = out[k];
          break;
        case 2:
          b[k] = 1;
          break; /* scalar */
        case 3:
          b[k] = k == rank - 1 ? out[k] : 1;
          break; /* per-last-dim vector */
        default:
          b[k] = (k > 0 && k < rank - 1) ? 1 : out[k];
          break; /* middle dims broadcast */
      }
    }
    int64_t *first = a, *second = b;
    if (test_rng_int(rng, 0, 1)) { /* the broadcast operand on the left */
      first = b;
      second = a;
    }
    run_binary_case(st, rng, ops[test_rng_int(rng, 0, 3)], rank, out, first, second,
                    random_act(rng), (int)test_rng_int(rng, 1, 2));
  }
  /* Large NHWC tensors (parallel above 65536 elements): residual add, per-channel, scalar,
   * a middle-dim broadcast. */
  const int64_t big[4] = {2, 40, 40, 32}, chan[4] = {1, 1, 1, 32}, one[4] = {1, 1, 1, 1};
  const int64_t mid[4] = {2, 1, 40, 32};
  for (int k = 0; k < 4; k++) {
    hawq_act act = k % 2 ? (hawq_act){true, 0.0f, INFINITY} : (hawq_act){false, 0.0f, 0.0f};
    run_binary_case(st, rng, ops[k], 4, big, big, big, act, 2);
    run_binary_case(st, rng, ops[k], 4, big, big, chan, act, 2);
    run_binary_case(st, rng, ops[k], 4, big, one, big, act, 2);
    run_binary_case(st, rng, ops[k], 4, big, mid, big, act, 2);
  }
}

/* ---------------------------------------------------------------------------------------------
 * max and average pooling
 * ------------------------------------------------------------------------------------------- */

typedef struct pool_case {
  int64_t n, c, h, w;
  int kernel[2], stride[2], dilation[2], pad[4];
  bool ceil_mode, count_include_pad;
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

/* True when some output window of the max pool has no tap inside the input (possible with
 * dilation: taps may straddle a small input). The result there is ill-defined (PyTorch gives
 * -inf), so the random cases avoid it. */
static bool maxpool_has_empty_window(const pool_case *pc, int64_t p_out, int64_t q_out) {
  for (int64_t op = 0; op < p_out; op++) {
    bool any_h = false;
    for (int r = 0; r < pc->kernel[0]; r++) {
      int64_t ih = op * pc->stride[0] - pc->pad[0] + (int64_t)r * pc->dilation[0];
      any_h |= ih >= 0 && ih < pc->h;
    }
    if (!any_h) return true;
  }
  for (int64_t oq = 0; oq < q_out; oq++) {
    bool any_w = false;
    for (int t = 0; t < pc->kernel[1]; t++) {
      int64_t iw = oq * pc->stride[1] - pc->pad[1] + (int64_t)t * pc->dilation[1];
      any_w |= iw >= 0 && iw < pc->w;
    }
    if (!any_w) return true;
  }
  return false;
}

/* MaxPool / AveragePool on logical (N,C,H,W) data with PyTorch's window rules. */
static void ref_pool(const pool_case *pc, bool is_max, int64_t p_out, int64_t q_out, const float *x,
                     double *y) {
  for (int64_t in = 0; in < pc->n; in++)
    for (int64_t ic = 0; ic < pc->c; ic++)
      for (int64_t op = 0; op < p_out; op++)
        for (int64_t oq = 0; oq < q_out; oq++) {
          const float *plane = x + (in * pc->c + ic) * pc->h * pc->w;
          int64_t hstart = op * pc->stride[0] - pc->pad[0];
          int64_t wstart = oq * pc->stride[1] - pc->pad[1];
          double v;
          if (is_max) {
            v = -INFINITY;
            for (int r = 0; r < pc->kernel[0]; r++) {
              int64_t ih = hstart + (int64_t)r * pc->dilation[0];
              if (ih < 0 || ih >= pc->h) continue;
              for (int t = 0; t < pc->kernel[1]; t++) {
                int64_t iw = wstart + (int64_t)t * pc->dilation[1];
                if (iw < 0 || iw >= pc->w) continue;
                v = fmax(v, plane[ih * pc->w + iw]);
              }
            }
          } else {
            /* The window clipped to the padded input gives the count_include_pad divisor; the
             * sum runs over the window clipped to the real input. */
            int64_t hend = hstart + pc->kernel[0], wend = wstart + pc->kernel[1];
            if (hend > pc->h + pc->pad[2]) hend = pc->h + pc->pad[2];
            if (wend > pc->w + pc->pad[3]) wend = pc->w + pc->pad[3];
            int64_t padded_count = (hend - hstart) * (wend - wstart);
            int64_t h_lo = hstart < 0 ? 0 : hstart, w_lo = wstart < 0 ? 0 : wstart;
            int64_t h_hi = hend > pc->h ? pc->h : hend, w_hi = wend > pc->w ? pc->w : wend;
            int64_t real_count = (h_hi - h_lo) * (w_hi - w_lo);
            double sum = 0.0;
            for (int64_t ih = h_lo; ih < h_hi; ih++)
              for (int64_t iw = w_lo; iw < w_hi; iw++) sum += plane[ih * pc->w + iw];
            int64_t divisor = pc->count_include_pad ? padded_count : real_count;
            if (divisor <= 0)
              REQUIRE(false, "pool reference: an empty average window (a bug here)");
            v = sum / (double)divisor;
          }
          y[((in * pc->c + ic) * p_out + op) * q_out + oq] = v;
        }
}

static void run_pool_case(op_stats *st, test_rng *rng, const pool_case *pc, bool is_max) {
  int64_t p_out = pool_out_extent(pc->h, pc->kernel[0], pc->dilation[0], pc->stride[0], pc->pad[0],
                                  pc->pad[2], pc->ceil_mode);
  int64_t q_out = pool_out_extent(pc->w, pc->kernel[1], pc->dilation[1], pc->stride[1], pc->pad[1],
                                  pc->pad[3], pc->ceil_mode);
  int64_t x_dims[4] = {pc->n, pc->c, pc->h, pc->w}, y_dims[4] = {pc->n, pc->c, p_out, q_out};
  int64_t x_count = numel_of(4, x_dims), y_count = numel_of(4, y_dims);
  float *x = new_floats(x_count), *x_phys = new_floats(x_count);
  float *y_phys = new_floats(y_count), *y = new_floats(y_count);
  double *ref = new_doubles(y_count);
  fill_uniform(rng, x, x_count, -3.0f, 3.0f);
  logical_to_physical(x, x_phys, 4, x_dims);
  hawq_pool_shape shape = {.n = pc->n, .h = pc->h, .w = pc->w, .c = pc->c, .p = p_out, .q = q_out};
  for (int i = 0; i < 2; i++) {
    shape.attr.kernel[i] = pc->kernel[i];
    shape.attr.stride[i] = pc->stride[i];
    shape.attr.dilation[i] = pc->dilation[i];
  }
  for (int i = 0; i < 4; i++) shape.attr.pad[i] = pc->pad[i];
  shape.attr.count_include_pad = pc->count_include_pad;
  fill_nan(y_phys, y_count);
  if (is_max)
    hawq_maxpool_forward(&shape, x_phys, y_phys, pc->threads);
  else
    hawq_avgpool_forward(&shape, x_phys, y_phys, pc->threads);
  physical_to_logical(y_phys, y, 4, y_dims);
  ref_pool(pc, is_max, p_out, q_out, x, ref);
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc,
           "x(%lld,%lld,%lld,%lld) kernel %dx%d stride %d,%d dilation %d,%d pads t%d l%d b%d "
           "r%d ceil_mode %d count_include_pad %d threads %d",
           (long long)pc->n, (long long)pc->c, (long long)pc->h, (long long)pc->w, pc->kernel[0],
           pc->kernel[1], pc->stride[0], pc->stride[1], pc->dilation[0], pc->dilation[1],
           pc->pad[0], pc->pad[1], pc->pad[2], pc->pad[3], pc->ceil_mode, pc->count_include_pad,
           pc->threads);
  compare_output(st, desc, y, ref, 4, y_dims, is_max ? CMP_EXACT : CMP_ACCUM);
  free(x);
  free(x_phys);
  free(y_phys);
  free(y);
  free(ref);
}

static pool_case random_pool_case(test_rng *rng, bool is_max) {
  for (;;) {
    pool_case pc;
    memset(&pc, 0, sizeof pc);
    pc.n = test_rng_int(rng, 1, 2);
    pc.c = test_rng_int(rng, 1, 8);
    for (int i = 0; i < 2; i++) {
      pc.kernel[i] = (int)test_rng_int(rng, 1, 4);
      pc.stride[i] = (int)test_rng_int(rng, 1, 3);
      pc.dilation[i] = is_max ? (int)test_rng_int(rng, 1, 2) : 1;
    }
    for (int i = 0; i < 4; i++) pc.pad[i] = (int)test_rng_int(rng, 0, pc.kernel[i % 2] - 1);
    int64_t min_h = min_extent(pc.kernel[0], pc.dilation[0], pc.pad[0] + pc.pad[2]);
    int64_t min_w = min_extent(pc.kernel[1], pc.dilation[1], pc.pad[1] + pc.pad[3]);
    pc.h = test_rng_int(rng, min_h, min_h + 10);
    pc.w = test_rng_int(rng, min_w, min_w + 10);
    pc.ceil_mode = test_rng_int(rng, 0, 1);
    pc.count_include_pad = !is_max && test_rng_int(rng, 0, 1);
    pc.threads = (int)test_rng_int(rng, 1, 2);
    int64_t p_out = pool_out_extent(pc.h, pc.kernel[0], pc.dilation[0], pc.stride[0], pc.pad[0],
                                    pc.pad[2], pc.ceil_mode);
    int64_t q_out = pool_out_extent(pc.w, pc.kernel[1], pc.dilation[1], pc.stride[1], pc.pad[1],
                                    pc.pad[3], pc.ceil_mode);
    if (!is_max || !maxpool_has_empty_window(&pc, p_out, q_out)) return pc;
  }
}

static void test_pooling(op_stats *max_st, op_stats *avg_st, test_rng *rng) {
  for (int i = 0; i < 5000; i++) {
    pool_case pc = random_pool_case(rng, true);
    run_pool_case(max_st, rng, &pc, true);
    pc = random_pool_case(rng, false);
    run_pool_case(avg_st, rng, &pc, false);
  }
  /* Hand-picked ceil_mode cases whose last window runs past the padded input: 3x3 stride 2 on
   * 6x6 (PyTorch: 3x3 out, last window clipped), with and without pads and count_include_pad. */
  for (int v = 0; v < 8; v++) {
    pool_case pc;
    memset(&pc, 0, sizeof pc);
    pc.n = 1;
    pc.c = 3;
    pc.h = 6;
    pc.w = 7;
    pc.kernel[0] = pc.kernel[1] = 3;
    pc.stride[0] = pc.stride[1] = 2;
    pc.dilation[0] = pc.dilation[1] = 1;
    for (int i = 0; i < 4; i++) pc.pad[i] = (v & 1) ? 1 : 0;
    pc.ceil_mode = true;
    pc.count_include_pad = (v & 2) != 0;
    pc.threads = (v & 4) ? 2 : 1;
    run_pool_case(max_st, rng, &pc, true);
    run_pool_case(avg_st, rng, &pc, false);
  }
  /* A large pool in parallel. */
  pool_case big;
  memset(&big, 0, sizeof big);
  big.n = 2;
  big.c = 16;
  big.h = big.w = 33;
  big.kernel[0] = big.kernel[1] = 3;
  big.stride[0] = big.stride[1] = 2;
  big.dilation[0] = big.dilation[1] = 1;
  big.pad[0] = big.pad[1] = 1;
  big.ceil_mode = true;
  big.count_include_pad = true;
  big.threads = 2;
  run_pool_case(max_st, rng, &big, true);
  run_pool_case(avg_st, rng, &big, false);
}

static void run_global_pool_case(op_stats *avg_st, op_stats *max_st, test_rng *rng, int64_t n,
                                 int64_t hw, int64_t c, int threads) {
  int64_t x_count = n * hw * c, dims[2] = {n, c};
  float *x = new_floats(x_count), *y_avg = new_floats(n * c), *y_max = new_floats(n * c);
  double *ref_avg = new_doubles(n * c), *ref_max = new_doubles(n * c);
  fill_uniform(rng, x, x_count, -3.0f, 3.0f);
  fill_nan(y_avg, n * c);
  fill_nan(y_max, n * c);
  hawq_global_avgpool_forward(x, y_avg, n, hw, c, threads);
  hawq_global_maxpool_forward(x, y_max, n, hw, c, threads);
  for (int64_t b = 0; b < n; b++)
    for (int64_t ch = 0; ch < c; ch++) {
      double sum = 0.0, mx = -INFINITY;
      for (int64_t i = 0; i < hw; i++) {
        double v = x[(b * hw + i) * c + ch];
        sum += v;
        mx = fmax(mx, v);
      }
      ref_avg[b * c + ch] = sum / (double)hw;
      ref_max[b * c + ch] = mx;
    }
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "x(n %lld, hw %lld, c %lld) threads %d", (long long)n, (long long)hw,
           (long long)c, threads);
  compare_output(avg_st, desc, y_avg, ref_avg, 2, dims, CMP_ACCUM);
  compare_output(max_st, desc, y_max, ref_max, 2, dims, CMP_EXACT);
  free(x);
  free(y_avg);
  free(y_max);
  free(ref_avg);
  free(ref_max);
}

static void test_global_pooling(op_stats *avg_st, op_stats *max_st, test_rng *rng) {
  for (int i = 0; i < 400; i++) {
    run_global_pool_case(avg_st, max_st, rng, test_rng_int(rng, 1, 3), test_rng_int(rng, 1, 300),
                         test_rng_int(rng, 1, 40), (int)test_rng_int(rng, 1, 2));
  }
}

/* ---------------------------------------------------------------------------------------------
 * gemm and sgemm_nt
 * ------------------------------------------------------------------------------------------- */

static void run_gemm_case(op_stats *st, test_rng *rng, int64_t rows, int64_t n, int64_t k,
                          bool has_bias, hawq_act act, int threads) {
  float *x = new_floats(rows * k), *w = new_floats(n * k), *b = has_bias ? new_floats(n) : NULL;
  float *y = new_floats(rows * n);
  double *ref = new_doubles(rows * n);
  fill_uniform(rng, x, rows * k, -1.0f, 1.0f);
  fill_uniform(rng, w, n * k, -1.0f, 1.0f);
  if (b) fill_uniform(rng, b, n, -1.0f, 1.0f);
  fill_nan(y, rows * n);
  hawq_gemm_forward(x, w, b, y, rows, n, k, act, threads);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < n; j++) {
      double acc = b ? b[j] : 0.0;
      for (int64_t t = 0; t < k; t++) acc += (double)x[i * k + t] * (double)w[j * k + t];
      ref[i * n + j] = ref_act(act, acc);
    }
  char a[64], desc[DESC_SIZE];
  format_act(act, a, sizeof a);
  snprintf(desc, sizeof desc, "x(%lld,%lld) w(%lld,%lld) bias %s act %s threads %d",
           (long long)rows, (long long)k, (long long)n, (long long)k, b ? "yes" : "no", a, threads);
  int64_t dims[2] = {rows, n};
  compare_output(st, desc, y, ref, 2, dims, CMP_ACCUM);
  free(x);
  free(w);
  free(b);
  free(y);
  free(ref);
}

/* C (m,n) = A (m,k) B^T + beta C with lda >= k, ldb >= k, ldc >= n: the padding columns of C
 * must be left alone. */
static void run_sgemm_case(op_stats *st, test_rng *rng, int64_t m, int64_t n, int64_t k,
                           int64_t lda, int64_t ldb, int64_t ldc, float beta) {
  float *a = new_floats(m * lda), *b = new_floats(n * ldb), *c = new_floats(m * ldc);
  float *got = new_floats(m * (ldc - n > 0 ? ldc - n : 0) + m * n);
  double *ref = new_doubles(m * n);
  const float sentinel = 12345.0f;
  fill_uniform(rng, a, m * lda, -1.0f, 1.0f);
  fill_uniform(rng, b, n * ldb, -1.0f, 1.0f);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < ldc; j++)
      c[i * ldc + j] = j >= n ? sentinel : beta == 0.0f ? NAN : test_rng_float(rng, -1.0f, 1.0f);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double acc = beta == 0.0f ? 0.0 : c[i * ldc + j];
      for (int64_t t = 0; t < k; t++) acc += (double)a[i * lda + t] * (double)b[j * ldb + t];
      ref[i * n + j] = acc;
    }
  hawq_sgemm_nt(m, n, k, a, lda, b, ldb, beta, c, ldc);
  int64_t sentinel_bad = 0;
  for (int64_t i = 0; i < m; i++) {
    for (int64_t j = 0; j < n; j++) got[i * n + j] = c[i * ldc + j];
    for (int64_t j = n; j < ldc; j++) sentinel_bad += c[i * ldc + j] != sentinel;
  }
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "m %lld n %lld k %lld lda %lld ldb %lld ldc %lld beta %g",
           (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc,
           beta);
  int64_t dims[2] = {m, n};
  compare_output(st, desc, got, ref, 2, dims, CMP_ACCUM);
  CHECK_OP(st, sentinel_bad == 0, "sgemm_nt: %s: %lld padding elements of C were overwritten", desc,
           (long long)sentinel_bad);
  free(a);
  free(b);
  free(c);
  free(got);
  free(ref);
}

static void test_gemm(op_stats *gemm_st, op_stats *sgemm_st, test_rng *rng) {
  for (int i = 0; i < 1200; i++) {
    run_gemm_case(gemm_st, rng, test_rng_int(rng, 1, 70), test_rng_int(rng, 1, 40),
                  test_rng_int(rng, 1, 300), test_rng_int(rng, 0, 1), random_act(rng),
                  (int)test_rng_int(rng, 1, 2));
  }
  /* Wide outputs with few rows: columns split across threads in blocks of 16. */
  run_gemm_case(gemm_st, rng, 1, 1000, 64, true, (hawq_act){false, 0.0f, 0.0f}, 2);
  run_gemm_case(gemm_st, rng, 3, 37, 100, true, (hawq_act){true, 0.0f, INFINITY}, 2);
  run_gemm_case(gemm_st, rng, 200, 10, 256, false, (hawq_act){true, 0.0f, 6.0f}, 2);
  for (int i = 0; i < 600; i++) {
    int64_t m = test_rng_int(rng, 1, 40), n = test_rng_int(rng, 1, 40),
            k = test_rng_int(rng, 1, 200);
    run_sgemm_case(sgemm_st, rng, m, n, k, k + test_rng_int(rng, 0, 5), k + test_rng_int(rng, 0, 5),
                   n + test_rng_int(rng, 0, 5), test_rng_int(rng, 0, 1) ? 1.0f : 0.0f);
  }
}

/* ---------------------------------------------------------------------------------------------
 * reshape, transpose, concat, pad
 * ------------------------------------------------------------------------------------------- */

/* Random dims of the given rank, each in [1, max_dim]. */
static void random_dims(test_rng *rng, int rank, int64_t max_dim, int64_t *dims) {
  for (int k = 0; k < rank; k++) dims[k] = test_rng_int(rng, 1, max_dim);
}

static void run_reshape_case(op_stats *st, test_rng *rng, int in_rank, int out_rank) {
  int64_t in_dims[HAWQ_MAX_RANK], out_dims[HAWQ_MAX_RANK];
  random_dims(rng, in_rank, in_rank >= 4 ? 5 : 8, in_dims);
  int64_t count = numel_of(in_rank, in_dims), rest = count;
  /* A random factorization of count into out_rank dims. */
  for (int k = 0; k < out_rank - 1; k++) {
    int64_t divisors[64], nd = 0;
    for (int64_t d = 1; d <= rest && nd < 64; d++)
      if (rest % d == 0) divisors[nd++] = d;
    out_dims[k] = divisors[test_rng_int(rng, 0, nd - 1)];
    rest /= out_dims[k];
  }
  out_dims[out_rank - 1] = rest;
  float *x = new_floats(count), *x_phys = new_floats(count), *y_phys = new_floats(count);
  float *y = new_floats(count), *scratch = NULL;
  double *ref = new_doubles(count);
  fill_uniform(rng, x, count, -1.0f, 1.0f);
  logical_to_physical(x, x_phys, in_rank, in_dims);
  if (in_rank == 4 && out_rank == 4) {
    scratch = new_floats(count);
    fill_nan(scratch, count);
  }
  fill_nan(y_phys, count);
  hawq_reshape_forward(x_phys, in_rank, in_dims, y_phys, out_rank, out_dims, scratch);
  physical_to_logical(y_phys, y, out_rank, out_dims);
  for (int64_t i = 0; i < count; i++) ref[i] = x[i]; /* the logical order is unchanged */
  char id[128], od[128], desc[DESC_SIZE];
  format_dims(in_rank, in_dims, id, sizeof id);
  format_dims(out_rank, out_dims, od, sizeof od);
  snprintf(desc, sizeof desc, "%s -> %s", id, od);
  compare_output(st, desc, y, ref, out_rank, out_dims, CMP_EXACT);
  free(x);
  free(x_phys);
  free(y_phys);
  free(y);
  free(scratch);
  free(ref);
}

static void run_transpose_case(op_stats *st, test_rng *rng, int rank) {
  int64_t in_dims[HAWQ_MAX_RANK], out_dims[HAWQ_MAX_RANK], coord[HAWQ_MAX_RANK];
  int perm[HAWQ_MAX_RANK];
  random_dims(rng, rank, rank >= 6 ? 3 : rank == 5 ? 4 : 6, in_dims);
  for (int k = 0; k < rank; k++) perm[k] = k;
  for (int k = rank - 1; k > 0; k--) { /* Fisher-Yates */
    int j = (int)test_rng_int(rng, 0, k), t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
  }
  for (int k = 0; k < rank; k++) out_dims[k] = in_dims[perm[k]];
  int64_t count = numel_of(rank, in_dims);
  float *x = new_floats(count), *x_phys = new_floats(count), *y_phys = new_floats(count);
  float *y = new_floats(count);
  double *ref = new_doubles(count);
  fill_uniform(rng, x, count, -1.0f, 1.0f);
  logical_to_physical(x, x_phys, rank, in_dims);
  fill_nan(y_phys, count);
  hawq_transpose_forward(x_phys, rank, in_dims, perm, y_phys);
  physical_to_logical(y_phys, y, rank, out_dims);
  /* ONNX Transpose: output coordinate i is input coordinate perm[i]. */
  for (int64_t i = 0; i < count; i++) {
    unravel(i, rank, out_dims, coord);
    int64_t src = 0;
    for (int k = 0; k < rank; k++) {
      int64_t in_coord = 0;
      for (int j = 0; j < rank; j++)
        if (perm[j] == k) in_coord = coord[j];
      src = src * in_dims[k] + in_coord;
    }
    ref[i] = x[src];
  }
  char id[128], desc[DESC_SIZE];
  format_dims(rank, in_dims, id, sizeof id);
  int used = snprintf(desc, sizeof desc, "x%s perm [", id);
  for (int k = 0; k < rank; k++)
    used += snprintf(desc + used, sizeof desc - (size_t)used, "%s%d", k ? "," : "", perm[k]);
  snprintf(desc + used, sizeof desc - (size_t)used, "]");
  compare_output(st, desc, y, ref, rank, out_dims, CMP_EXACT);
  free(x);
  free(x_phys);
  free(y_phys);
  free(y);
  free(ref);
}

#define MAX_CONCAT_TEST_INPUTS 5

static void run_concat_case(op_stats *st, test_rng *rng, int rank, int axis, int n_in) {
  int64_t base[HAWQ_MAX_RANK], dims[MAX_CONCAT_TEST_INPUTS][HAWQ_MAX_RANK];
  int64_t out_dims[HAWQ_MAX_RANK], coord[HAWQ_MAX_RANK];
  random_dims(rng, rank, 4, base);
  float *logical_in[MAX_CONCAT_TEST_INPUTS], *physical_in[MAX_CONCAT_TEST_INPUTS];
  const float *kernel_in[MAX_CONCAT_TEST_INPUTS];
  int64_t axis_total = 0;
  for (int i = 0; i < n_in; i++) {
    memcpy(dims[i], base, sizeof base);
    dims[i][axis] = test_rng_int(rng, 1, 4);
    axis_total += dims[i][axis];
    int64_t count = numel_of(rank, dims[i]);
    logical_in[i] = new_floats(count);
    physical_in[i] = new_floats(count);
    fill_uniform(rng, logical_in[i], count, -1.0f, 1.0f);
    logical_to_physical(logical_in[i], physical_in[i], rank, dims[i]);
    kernel_in[i] = physical_in[i];
  }
  memcpy(out_dims, base, sizeof base);
  out_dims[axis] = axis_total;
  int64_t count = numel_of(rank, out_dims);
  float *y_phys = new_floats(count), *y = new_floats(count);
  double *ref = new_doubles(count);
  fill_nan(y_phys, count);
  hawq_concat_forward(n_in, kernel_in, (const int64_t(*)[HAWQ_MAX_RANK])dims, rank, axis, y_phys);
  physical_to_logical(y_phys, y, rank, out_dims);
  for (int64_t i = 0; i < count; i++) {
    unravel(i, rank, out_dims, coord);
    int src = 0;
    while (coord[axis] >= dims[src][axis]) coord[axis] -= dims[src++][axis];
    int64_t off = 0;
    for (int k = 0; k < rank; k++) off = off * dims[src][k] + coord[k];
    ref[i] = logical_in[src][off];
  }
  char desc[DESC_SIZE];
  int used = snprintf(desc, sizeof desc, "axis %d inputs", axis);
  for (int i = 0; i < n_in; i++) {
    char d[128];
    format_dims(rank, dims[i], d, sizeof d);
    used += snprintf(desc + used, sizeof desc - (size_t)used, " %s", d);
  }
  compare_output(st, desc, y, ref, rank, out_dims, CMP_EXACT);
  for (int i = 0; i < n_in; i++) {
    free(logical_in[i]);
    free(physical_in[i]);
  }
  free(y_phys);
  free(y);
  free(ref);
}

static void run_pad_case(op_stats *st, test_rng *rng, int rank, const int64_t *in_dims,
                         const int64_t *pads, int threads) {
  int64_t out_dims[HAWQ_MAX_RANK], coord[HAWQ_MAX_RANK];
  for (int k = 0; k < rank; k++) out_dims[k] = in_dims[k] + pads[k] + pads[HAWQ_MAX_RANK + k];
  int64_t in_count = numel_of(rank, in_dims), out_count = numel_of(rank, out_dims);
  float *x = new_floats(in_count), *x_phys = new_floats(in_count);
  float *y_phys = new_floats(out_count), *y = new_floats(out_count);
  double *ref = new_doubles(out_count);
  fill_uniform(rng, x, in_count, -1.0f, 1.0f);
  float value = test_rng_int(rng, 0, 1) ? 0.0f : test_rng_float(rng, -5.0f, 5.0f);
  logical_to_physical(x, x_phys, rank, in_dims);
  fill_nan(y_phys, out_count);
  hawq_pad_forward(x_phys, rank, in_dims, pads, value, y_phys, threads);
  physical_to_logical(y_phys, y, rank, out_dims);
  for (int64_t i = 0; i < out_count; i++) {
    unravel(i, rank, out_dims, coord);
    bool inside = true;
    int64_t src = 0;
    for (int k = 0; k < rank; k++) {
      int64_t c = coord[k] - pads[k];
      inside = inside && c >= 0 && c < in_dims[k];
      src = src * in_dims[k] + c;
    }
    ref[i] = inside ? x[src] : value;
  }
  char id[128], desc[DESC_SIZE];
  format_dims(rank, in_dims, id, sizeof id);
  int used =
      snprintf(desc, sizeof desc, "x%s value %.9g threads %d pads (begin,end)", id, value, threads);
  for (int k = 0; k < rank; k++) {
    used += snprintf(desc + used, sizeof desc - (size_t)used, " %lld,%lld", (long long)pads[k],
                     (long long)pads[HAWQ_MAX_RANK + k]);
  }
  compare_output(st, desc, y, ref, rank, out_dims, CMP_EXACT);
  free(x);
  free(x_phys);
  free(y_phys);
  free(y);
  free(ref);
}

static void test_layout(op_stats *reshape_st, op_stats *transpose_st, op_stats *concat_st,
                        op_stats *pad_st, test_rng *rng) {
  /* Reshape: rank 4 <-> 2 and 3, 4 -> 4 through scratch, and plain copies between others. */
  const int reshape_ranks[][2] = {{4, 2}, {4, 3}, {2, 4}, {3, 4}, {4, 4}, {4, 1},
                                  {1, 4}, {2, 3}, {3, 5}, {5, 4}, {4, 5}};
  for (int i = 0; i < 2200; i++) {
    const int *rk = reshape_ranks[i % (int)(sizeof reshape_ranks / sizeof reshape_ranks[0])];
    run_reshape_case(reshape_st, rng, rk[0], rk[1]);
  }
  for (int i = 0; i < 2400; i++) run_transpose_case(transpose_st, rng, 2 + i % 5);
  for (int i = 0; i < 2000; i++) {
    int rank = 1 + i % 5;
    run_concat_case(concat_st, rng, rank, (int)test_rng_int(rng, 0, rank - 1),
                    (int)test_rng_int(rng, 2, MAX_CONCAT_TEST_INPUTS));
  }
  for (int i = 0; i < 2400; i++) {
    int rank = 1 + i % 5;
    int64_t dims[HAWQ_MAX_RANK], pads[2 * HAWQ_MAX_RANK] = {0};
    random_dims(rng, rank, rank == 5 ? 4 : 6, dims);
    for (int k = 0; k < rank; k++) {
      do {
        pads[k] = test_rng_int(rng, -3, 3);
        pads[HAWQ_MAX_RANK + k] = test_rng_int(rng, -3, 3);
      } while (dims[k] + pads[k] + pads[HAWQ_MAX_RANK + k] < 1);
    }
    run_pad_case(pad_st, rng, rank, dims, pads, (int)test_rng_int(rng, 1, 2));
  }
  /* Large enough to pad in parallel (more than 64 rows). */
  const int64_t img[4] = {2, 8, 20, 20}, mat[2] = {100, 50};
  int64_t img_pads[2 * HAWQ_MAX_RANK] = {0, 1, 2, -3}, mat_pads[2 * HAWQ_MAX_RANK] = {-2, 3};
  img_pads[HAWQ_MAX_RANK + 0] = 1;
  img_pads[HAWQ_MAX_RANK + 1] = -2;
  img_pads[HAWQ_MAX_RANK + 2] = 1;
  img_pads[HAWQ_MAX_RANK + 3] = 4;
  mat_pads[HAWQ_MAX_RANK + 0] = 5;
  mat_pads[HAWQ_MAX_RANK + 1] = -7;
  run_pad_case(pad_st, rng, 4, img, img_pads, 2);
  run_pad_case(pad_st, rng, 2, mat, mat_pads, 2);
}

/* ---------------------------------------------------------------------------------------------
 * softmax
 * ------------------------------------------------------------------------------------------- */

static void run_softmax_case(op_stats *st, test_rng *rng, int64_t outer, int64_t len, int64_t inner,
                             float lo, float hi, int threads) {
  int64_t count = outer * len * inner, dims[3] = {outer, len, inner};
  float *x = new_floats(count), *y = new_floats(count);
  double *ref = new_doubles(count);
  fill_uniform(rng, x, count, lo, hi);
  fill_nan(y, count);
  hawq_softmax_forward(x, y, outer, len, inner, threads);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      const float *xs = x + o * len * inner + i;
      double mx = -INFINITY, sum = 0.0;
      for (int64_t t = 0; t < len; t++) mx = fmax(mx, xs[t * inner]);
      for (int64_t t = 0; t < len; t++) sum += exp(xs[t * inner] - mx);
      for (int64_t t = 0; t < len; t++)
        ref[o * len * inner + i + t * inner] = exp(xs[t * inner] - mx) / sum;
    }
  char desc[DESC_SIZE];
  snprintf(desc, sizeof desc, "(outer %lld, len %lld, inner %lld) values in [%g, %g) threads %d",
           (long long)outer, (long long)len, (long long)inner, lo, hi, threads);
  compare_output(st, desc, y, ref, 3, dims, CMP_ACCUM);
  free(x);
  free(y);
  free(ref);
}

static void test_softmax(op_stats *st, test_rng *rng) {
  const float ranges[4][2] = {
      {-5.0f, 5.0f}, {995.0f, 1005.0f}, {-1000.0f, 1000.0f}, {-1005.0f, -995.0f}};
  for (int i = 0; i < 1200; i++) {
    const float *r = ranges[i % 4];
    run_softmax_case(st, rng, test_rng_int(rng, 1, 5), test_rng_int(rng, 1, 60),
                     test_rng_int(rng, 0, 1) ? 1 : test_rng_int(rng, 2, 8), r[0], r[1],
                     (int)test_rng_int(rng, 1, 2));
  }
}

/* ------------------------------------------------------------------------------------------- */

int main(void) {
  test_rng rng = test_rng_seeded("test_float_ops");
  hawq_dnnl_context ctx;
  hawq_error err;
  REQUIRE(hawq_dnnl_context_create(&ctx, &err) == HAWQ_OK, "%s", err.msg);
  dnnl_ctx = &ctx;
  op_stats conv = {.name = "conv2d"}, bn = {.name = "batchnorm"}, relu = {.name = "relu"};
  op_stats clip = {.name = "clip"}, leaky = {.name = "leaky_relu"}, binary = {.name = "binary"};
  op_stats maxpool = {.name = "maxpool"}, avgpool = {.name = "avgpool"};
  op_stats gavg = {.name = "global_avgpool"}, gmax = {.name = "global_maxpool"};
  op_stats gemm = {.name = "gemm"}, sgemm = {.name = "sgemm_nt"};
  op_stats reshape = {.name = "reshape"}, transpose = {.name = "transpose"};
  op_stats concat = {.name = "concat"}, pad = {.name = "pad"}, softmax = {.name = "softmax"};

  test_conv2d(&conv, &rng);
  test_batchnorm(&bn, &rng);
  test_activations(&relu, &clip, &leaky, &rng);
  test_binary(&binary, &rng);
  test_pooling(&maxpool, &avgpool, &rng);
  test_global_pooling(&gavg, &gmax, &rng);
  test_gemm(&gemm, &sgemm, &rng);
  test_layout(&reshape, &transpose, &concat, &pad, &rng);
  test_softmax(&softmax, &rng);

  const op_stats *all[] = {&conv,    &bn,        &relu,   &clip, &leaky,  &binary,
                           &maxpool, &avgpool,   &gavg,   &gmax, &gemm,   &sgemm,
                           &reshape, &transpose, &concat, &pad,  &softmax};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    const op_stats *s = all[i];
    printf("  %-15s %5d checks, %d failed", s->name, s->cases, s->failed);
    if (s->failed > s->reported) printf(" (%d not printed)", s->failed - s->reported);
    printf("\n");
  }
  hawq_dnnl_context_destroy(&ctx);
  return test_report("test_float_ops");
}
