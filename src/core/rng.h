/* A small deterministic random generator (SplitMix64), state held by the caller: hawq's
 * initialisation, shuffling and augmentation are reproducible from a seed, independent of the
 * C library and of thread count. */
#ifndef HAWQ_CORE_RNG_H
#define HAWQ_CORE_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct hawq_rng {
  uint64_t state;
} hawq_rng;

static inline hawq_rng hawq_rng_seed(uint64_t seed) {
  return (hawq_rng){seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull};
}

/* A generator for a sub-stream (a sample, an epoch): mixes the seed with the stream ids so the
 * streams do not overlap in practice. */
static inline hawq_rng hawq_rng_stream(uint64_t seed, uint64_t a, uint64_t b) {
  return hawq_rng_seed(seed ^ (a * 0xD1B54A32D192ED03ull) ^ (b * 0xABC98388FB8FAC03ull));
}

static inline uint64_t hawq_rng_next(hawq_rng *r) {
  uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0), without modulo bias worth measuring for n << 2^64. */
static inline uint64_t hawq_rng_below(hawq_rng *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)hawq_rng_next(r) * n) >> 64);
}

/* Uniform in [0, 1). */
static inline double hawq_rng_uniform(hawq_rng *r) {
  return (double)(hawq_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller). */
static inline double hawq_rng_normal(hawq_rng *r) {
  double u1 = hawq_rng_uniform(r), u2 = hawq_rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
