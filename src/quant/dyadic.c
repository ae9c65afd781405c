/* Ratio -> dyadic m / 2^c, exactly as ARCHITECTURE.md section 3 specifies (see dyadic.h). */
#include "quant/dyadic.h"

#include <math.h>

#include "core/status.h"

hawq_status hawq_dyadic_from_ratio(double r, hawq_dyadic *out, hawq_error *err) {
  if (!isfinite(r) || r < 0) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "rescale ratio %g: expected finite and >= 0", r);
  }
  hawq_dyadic zero = {0, 1};
  if (r == 0) {
    *out = zero;
    return HAWQ_OK;
  }
  int e;
  double f = frexp(r, &e); /* r = f * 2^e, f in [0.5, 1) */
  /* f * 2^31 is exact (a power-of-two scaling of a 53-bit mantissa); round() is half away from
   * zero, the contract's offline rounding. */
  int64_t m = (int64_t)round(ldexp(f, 31));
  if (m == (int64_t)1 << 31) {
    m = (int64_t)1 << 30;
    e += 1;
  }
  int64_t c = 31 - (int64_t)e;
  if (c > 62) { /* below 2^-32: every int32 input maps to 0 or -1; the contract makes it 0 */
    *out = zero;
    return HAWQ_OK;
  }
  if (c < 1) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "rescale ratio %g is too large for a dyadic m / 2^c, expected < 2^30", r);
  }
  out->m = (int32_t)m;
  out->c = (int32_t)c;
  return HAWQ_OK;
}

double hawq_dyadic_value(hawq_dyadic d) {
  return ldexp((double)d.m, -d.c);
}
