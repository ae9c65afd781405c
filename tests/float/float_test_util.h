/* Helpers shared by the float kernel tests: allocation that cannot fail silently, random fills,
 * and the logical (NCHW) <-> physical (NHWC) mapping the kernels' layouts need. */
#ifndef HAWQ_TESTS_FLOAT_TEST_UTIL_H
#define HAWQ_TESTS_FLOAT_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* A CHECK that prints only the first MAX_REPORTS failures of an op; later ones are counted.
 * stats is any struct with int fields cases, failed and reported. */
#define MAX_REPORTS 5
#define CHECK_OP(stats, cond, ...)                       \
  do {                                                   \
    bool check_ok_ = (cond);                             \
    (stats)->cases++;                                    \
    if (!check_ok_) (stats)->failed++;                   \
    if (check_ok_ || (stats)->reported >= MAX_REPORTS) { \
      test_checks++;                                     \
      if (!check_ok_) test_failures++;                   \
    } else {                                             \
      (stats)->reported++;                               \
      CHECK(check_ok_, __VA_ARGS__);                     \
    }                                                    \
  } while (0)

static inline void *alloc_bytes(size_t bytes) {
  void *p = calloc(1, bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
    exit(2);
  }
  return p;
}

static inline float *new_floats(int64_t n) {
  return alloc_bytes((size_t)n * sizeof(float));
}

static inline double *new_doubles(int64_t n) {
  return alloc_bytes((size_t)n * sizeof(double));
}

static inline void fill_uniform(test_rng *rng, float *x, int64_t n, float lo, float hi) {
  for (int64_t i = 0; i < n; i++) x[i] = test_rng_float(rng, lo, hi);
}

static inline int64_t numel_of(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int k = 0; k < rank; k++) n *= dims[k];
  return n;
}

static inline void logical_to_physical(const float *logical, float *physical, int rank,
                                       const int64_t *dims) {
  if (rank != 4) {
    memcpy(physical, logical, (size_t)numel_of(rank, dims) * sizeof(float));
    return;
  }
  int64_t n = dims[0], c = dims[1], h = dims[2], w = dims[3];
  for (int64_t in = 0; in < n; in++)
    for (int64_t ic = 0; ic < c; ic++)
      for (int64_t ih = 0; ih < h; ih++)
        for (int64_t iw = 0; iw < w; iw++)
          physical[((in * h + ih) * w + iw) * c + ic] = logical[((in * c + ic) * h + ih) * w + iw];
}

static inline void unravel(int64_t flat, int rank, const int64_t *dims, int64_t *coord) {
  for (int k = rank - 1; k >= 0; k--) {
    coord[k] = flat % dims[k];
    flat /= dims[k];
  }
}

static inline void format_dims(int rank, const int64_t *dims, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "(");
  for (int k = 0; k < rank && used < size; k++) {
    used += (size_t)snprintf(buf + used, size - used, "%s%lld", k ? "," : "", (long long)dims[k]);
  }
  if (used < size) snprintf(buf + used, size - used, ")");
}

#endif
