/* Helpers shared by the integer-runtime tests that build random single-op models
 * (test_qrt_layers.c, test_convf.c): the format's type ranges restated, random types and
 * ranges, conv geometry. Static inline: each test uses a subset. */
#ifndef HAWQ_TESTS_QRT_QTEST_UTIL_H
#define HAWQ_TESTS_QRT_QTEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>

#include "quant/qmodel.h"
#include "test_util.h"

static inline int is4(hawq_qtype t) {
  return t == HAWQ_QT_U4 || t == HAWQ_QT_I4;
}

static inline int64_t max_abs(int64_t lo, int64_t hi) {
  return -lo > hi ? -lo : hi;
}

/* Output size of a convolution or pool along one axis. */
static inline int64_t out_size(int64_t in, int k, int s, int d, int p0, int p1) {
  return (in + p0 + p1 - ((int64_t)(k - 1) * d + 1)) / s + 1;
}

/* The type's full range. */
static inline void type_range(hawq_qtype t, int64_t *lo, int64_t *hi) {
  static const int64_t r[HAWQ_QT_COUNT][2] = {{0, 15},     {-8, 7},         {0, 255},
                                              {-128, 127}, {-32768, 32767}, {INT32_MIN, INT32_MAX}};
  *lo = r[t][0];
  *hi = r[t][1];
}

/* A random type among mask's, with a full or narrowed (ReLU, symmetric) range. */
static inline hawq_qtype rand_type(test_rng *rng, unsigned mask, int64_t *lo, int64_t *hi) {
  hawq_qtype t;
  do t = (hawq_qtype)test_rng_int(rng, 0, HAWQ_QT_COUNT - 1);
  while (!(mask & (1u << t)));
  type_range(t, lo, hi);
  int64_t mode = test_rng_int(rng, 0, 3);
  if (mode == 1 && *lo < 0) *lo = 0;
  if (mode == 2 && *lo < 0) *lo = -*hi;
  if (t == HAWQ_QT_I32 && mode == 3) *lo = -(*hi = (int64_t)1 << 20);
  return t;
}

static inline void set_geometry(hawq_qnode *n, int kh, int kw, int sh, int sw, int dh, int dw,
                                const int *pad) {
  n->kernel[0] = kh, n->kernel[1] = kw;
  n->stride[0] = sh, n->stride[1] = sw;
  n->dilation[0] = dh, n->dilation[1] = dw;
  for (int k = 0; k < 4; k++) n->pad[k] = pad[k];
}

static inline void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  REQUIRE(p, "out of memory");
  return p;
}

#endif
