/* A tiny test harness: CHECK macros that count failures and print file:line, a seeded RNG whose
 * seed is printed so any failure can be replayed (HAWQ_TEST_SEED=<n>), and temp-file helpers.
 * A test executable returns 0 on success, 1 on failure, 77 when everything was skipped. */
#ifndef HAWQ_TESTS_TEST_UTIL_H
#define HAWQ_TESTS_TEST_UTIL_H

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    test_checks++;                                                             \
    if (!(cond)) {                                                             \
      test_failures++;                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
    }                                                                          \
  } while (0)

/* Fails the test and stops it (for failures after which nothing else makes sense). cond is
 * evaluated once. */
#define REQUIRE(cond, ...)                                 \
  do {                                                     \
    int require_ok_ = !!(cond);                            \
    CHECK(require_ok_, __VA_ARGS__);                       \
    if (!require_ok_) exit(test_report(__FILE__) ? 1 : 1); \
  } while (0)

static inline int test_report(const char *name) {
  if (test_failures) {
    fprintf(stderr, "%s: %d of %d checks failed\n", name, test_failures, test_checks);
    return 1;
  }
  printf("%s: all %d checks passed\n", name, test_checks);
  return 0;
}

/* splitmix64: small, fast, and the same everywhere. */
typedef struct test_rng {
  uint64_t s;
} test_rng;

static inline uint64_t test_rng_next(test_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/* Uniform integer in [lo, hi]. */
static inline int64_t test_rng_int(test_rng *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)(test_rng_next(r) % (uint64_t)(hi - lo + 1));
}
/* Uniform float in [lo, hi). */
static inline float test_rng_float(test_rng *r, float lo, float hi) {
  return lo + (hi - lo) * (float)((test_rng_next(r) >> 40) * (1.0 / 16777216.0));
}

/* Seed from HAWQ_TEST_SEED, else from the clock; printed either way. */
static inline test_rng test_rng_seeded(const char *test_name) {
  const char *env = getenv("HAWQ_TEST_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  printf("%s: seed %" PRIu64 " (replay with HAWQ_TEST_SEED=%" PRIu64 ")\n", test_name, seed, seed);
  test_rng r = {seed};
  return r;
}

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp); the path is static storage. */
static inline const char *test_tmpdir(void) {
  static char path[256];
  if (!path[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/hawq-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(path)) {
      perror("mkdtemp");
      exit(2);
    }
  }
  return path;
}

static inline int test_write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t n = fwrite(data, 1, size, f);
  return (fclose(f) == 0 && n == size) ? 0 : -1;
}

/* Whole file into malloc'd memory; NULL on failure. */
static inline void *test_read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *buf = malloc(n > 0 ? (size_t)n : 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) *size = (size_t)n;
  return buf;
}

#endif
