/* hawq_rescale against exact 128-bit arithmetic, and hawq_dyadic_from_ratio against exact
 * rational rounding of the double's own mantissa (ARCHITECTURE.md section 3). */
#include <math.h>

#include "quant/dyadic.h"
#include "quant/qmodel.h"
#include "test_util.h"

/* floor((x * m + 2^(c-1)) / 2^c) with a true floor division on 128-bit integers. */
static int64_t exact_rescale(int64_t x, int32_t m, int32_t c) {
  __int128 num = (__int128)x * m + ((__int128)1 << (c - 1));
  __int128 den = (__int128)1 << c;
  __int128 q = num / den; /* truncates toward zero */
  if (num % den != 0 && num < 0) q -= 1;
  return (int64_t)q;
}

static void check_rescale(int64_t x, int32_t m, int32_t c) {
  hawq_dyadic d = {m, c};
  int64_t got = hawq_rescale(x, d), want = exact_rescale(x, m, c);
  CHECK(got == want, "rescale(%lld, %d / 2^%d) = %lld, expected %lld", (long long)x, m, c,
        (long long)got, (long long)want);
}

static void test_rescale_sweeps(test_rng *rng) {
  const int64_t xs[] = {0,
                        1,
                        -1,
                        2,
                        -2,
                        INT32_MAX,
                        INT32_MIN,
                        INT32_MAX - 1,
                        (int64_t)INT32_MIN + 1,
                        ((int64_t)1 << 30),
                        -((int64_t)1 << 30),
                        255,
                        -255,
                        32767,
                        -32768};
  int32_t ms[8] = {1 << 30, (1 << 30) + 1, INT32_MAX, INT32_MAX - 1, (int32_t)(3u << 29)};
  for (int i = 5; i < 8; i++) ms[i] = (int32_t)test_rng_int(rng, 1 << 30, INT32_MAX);
  for (int mi = 0; mi < 8; mi++) {
    for (int32_t c = 1; c <= 62; c++) {
      for (size_t xi = 0; xi < sizeof xs / sizeof xs[0]; xi++) check_rescale(xs[xi], ms[mi], c);
      for (int k = 0; k < 40; k++) {
        check_rescale(test_rng_int(rng, INT32_MIN, INT32_MAX), ms[mi], c);
        check_rescale(test_rng_int(rng, -1000, 1000), ms[mi], c);
        /* x near the power-of-two boundaries where the rounding bit decides */
        int64_t x = ((int64_t)1 << (c < 31 ? c : 30)) + test_rng_int(rng, -3, 3);
        check_rescale(x, ms[mi], c);
        check_rescale(-x, ms[mi], c);
      }
    }
  }
  /* ties: x * m = (2k + 1) * 2^(c-1) exactly rounds half up (toward +inf) */
  for (int32_t c = 1; c <= 30; c++) {
    hawq_dyadic d = {1 << 30, c + 30}; /* value x / 2^c */
    if (d.c > 62) break;
    int64_t half = (int64_t)1 << (c - 1);
    CHECK(hawq_rescale(half, d) == 1, "tie +0.5 at c=%d", c);
    CHECK(hawq_rescale(-half, d) == 0, "tie -0.5 at c=%d", c);
    CHECK(hawq_rescale(3 * half, d) == 2, "tie +1.5 at c=%d", c);
    CHECK(hawq_rescale(-3 * half, d) == -1, "tie -1.5 at c=%d", c);
  }
  /* the zero dyadic maps every int32 to 0 */
  hawq_dyadic zero = {0, 1};
  for (int k = 0; k < 1000; k++) {
    int64_t x = test_rng_int(rng, INT32_MIN, INT32_MAX);
    CHECK(hawq_rescale(x, zero) == 0, "rescale(%lld, 0 / 2) = %lld", (long long)x,
          (long long)hawq_rescale(x, zero));
  }
  CHECK(hawq_rescale(INT32_MIN, zero) == 0 && hawq_rescale(INT32_MAX, zero) == 0, "zero dyadic");
}

/* The contract, computed exactly: r = F * 2^E with F a 53-bit integer; m = round(F / 2^22) half
 * away from zero (F > 0: half up), renormalised at 2^31; c = 31 - e where r = f * 2^e, f in
 * [0.5, 1). ok = 0 when the contract says error. */
typedef struct expect {
  int ok;
  int32_t m, c;
} expect;

static expect exact_dyadic(double r) {
  expect x = {1, 0, 1};
  if (r == 0) return x;
  int e;
  double f = frexp(r, &e);
  int64_t F = (int64_t)ldexp(f, 53); /* exact: f has at most 53 significant bits */
  REQUIRE(ldexp((double)F, e - 53) == r, "decomposition of %a", r);
  int64_t m = (F + ((int64_t)1 << 21)) >> 22; /* round half up of F / 2^22 = f * 2^31 */
  if (m == ((int64_t)1 << 31)) {
    m = (int64_t)1 << 30;
    e += 1;
  }
  int64_t c = 31 - (int64_t)e;
  if (c > 62) return x;
  if (c < 1) {
    x.ok = 0;
    return x;
  }
  x.m = (int32_t)m;
  x.c = (int32_t)c;
  return x;
}

static void check_ratio(double r) {
  expect want = exact_dyadic(r);
  hawq_dyadic d = {-1, -1};
  hawq_error err;
  hawq_status st = hawq_dyadic_from_ratio(r, &d, &err);
  if (!want.ok) {
    CHECK(st != HAWQ_OK, "ratio %a (%g): expected an error, got %d / 2^%d", r, r, d.m, d.c);
    return;
  }
  CHECK(st == HAWQ_OK, "ratio %a (%g): %s", r, r, err.msg);
  if (st != HAWQ_OK) return;
  CHECK(d.m == want.m && d.c == want.c, "ratio %a (%g): got %d / 2^%d, expected %d / 2^%d", r, r,
        d.m, d.c, want.m, want.c);
  if (d.m != 0) {
    CHECK(d.m >= (1 << 30) && d.c >= 1 && d.c <= 62, "ratio %a: %d / 2^%d out of range", r, d.m,
          d.c);
    /* both within a factor 2 of each other, so the subtraction is exact (Sterbenz) */
    double v = hawq_dyadic_value(d);
    CHECK(fabs(v - r) <= ldexp(r, -31), "ratio %a: |%a - r| > r * 2^-31", r, v);
  } else {
    CHECK(d.c == 1, "zero dyadic with c = %d", d.c);
    CHECK(r < ldexp(1.0, -32), "ratio %a >= 2^-32 became zero", r);
  }
}

static void test_from_ratio(test_rng *rng) {
  /* ties: the 53-bit mantissa has a 1 exactly at the rounding bit (bit 21) and 0 below */
  for (int k = 0; k < 200; k++) {
    int64_t F = ((int64_t)1 << 52) | ((int64_t)test_rng_int(rng, 0, (1 << 30) - 1) << 22);
    int exps[] = {-60, -40, -20, -1, 0, 1, 10, 29};
    for (int j = 0; j < 8; j++) {
      int E = exps[j] - 53;
      double tie = ldexp((double)(F | ((int64_t)1 << 21)), E);
      double below = ldexp((double)(F | (((int64_t)1 << 21) - 1)), E);
      double above = ldexp((double)(F | ((int64_t)1 << 21) | 1), E);
      check_ratio(tie);
      check_ratio(below);
      check_ratio(above);
      check_ratio(ldexp((double)F, E)); /* exactly representable: m = F >> 22 */
      /* the tie rounds up: m is one more than the truncation */
      hawq_dyadic d;
      hawq_error err;
      if (hawq_dyadic_from_ratio(tie, &d, &err) == HAWQ_OK && d.m != 0) {
        int64_t trunc = (F >> 22);
        CHECK(d.m == trunc + 1 || (trunc + 1 == ((int64_t)1 << 31) && d.m == (1 << 30)),
              "tie %a: m = %d, expected %lld (half away from zero)", tie, d.m,
              (long long)(trunc + 1));
      }
    }
  }
  /* renormalisation: all-ones mantissa rounds to 2^31 -> 2^30 with c one less */
  for (int ex = -31; ex <= 29; ex++) {
    double r = ldexp((double)(((int64_t)1 << 53) - 1), ex - 53);
    hawq_dyadic d;
    hawq_error err;
    REQUIRE(hawq_dyadic_from_ratio(r, &d, &err) == HAWQ_OK, "%a: %s", r, err.msg);
    CHECK(d.m == (1 << 30) && d.c == 31 - ex - 1,
          "renormalised %a: got %d / 2^%d, expected "
          "2^30 / 2^%d",
          r, d.m, d.c, 31 - ex - 1);
    check_ratio(r);
  }
  /* the boundaries */
  check_ratio(ldexp(1.0, -32));               /* c = 62: the smallest kept */
  check_ratio(ldexp(1.0, -33));               /* c = 63 -> zero */
  check_ratio(nextafter(ldexp(1.0, -32), 0)); /* rounds up to 2^-32: renormalised to c = 62 */
  check_ratio(ldexp(1.0, -200));
  check_ratio(4.9406564584124654e-324); /* smallest subnormal */
  check_ratio(0.0);
  check_ratio(ldexp(1.0, 30) - 0.5);         /* m = 2^31 - 1, c = 1: the largest kept */
  check_ratio(nextafter(ldexp(1.0, 30), 0)); /* rounds up to 2^30: error */
  check_ratio(ldexp(1.0, 30));
  check_ratio(1e300);
  check_ratio(1.0);
  check_ratio(0.5);
  check_ratio(1.0 / 3.0);
  hawq_dyadic d = {7, 7};
  hawq_error err;
  CHECK(hawq_dyadic_from_ratio(0.0, &d, &err) == HAWQ_OK && d.m == 0 && d.c == 1, "r = 0");
  CHECK(hawq_dyadic_from_ratio(NAN, &d, &err) != HAWQ_OK, "NaN accepted");
  CHECK(hawq_dyadic_from_ratio(INFINITY, &d, &err) != HAWQ_OK, "inf accepted");
  CHECK(hawq_dyadic_from_ratio(-1.0, &d, &err) != HAWQ_OK, "negative accepted");
  CHECK(hawq_dyadic_from_ratio(ldexp(1.0, 30), &d, &err) != HAWQ_OK, "2^30 accepted");
  CHECK(hawq_dyadic_from_ratio(0.75, &d, &err) == HAWQ_OK && d.m == (3 << 29) && d.c == 31,
        "0.75 -> %d / 2^%d, expected 3 * 2^29 / 2^31", d.m, d.c);
  /* random ratios over the whole useful range and beyond */
  for (int k = 0; k < 200000; k++) {
    int64_t F = ((int64_t)1 << 52) | (int64_t)(test_rng_next(rng) & (((uint64_t)1 << 52) - 1));
    int ex = (int)test_rng_int(rng, -40, 34);
    check_ratio(ldexp((double)F, ex - 53));
  }
}

int main(void) {
  test_rng rng = test_rng_seeded("test_rescale");
  test_rescale_sweeps(&rng);
  test_from_ratio(&rng);
  return test_report("test_rescale");
}
