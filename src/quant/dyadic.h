/* Dyadic numbers m / 2^c: how lowering turns a real ratio of scales into the integer runtime's
 * one rescaling primitive (hawq_rescale in qmodel.h). ARCHITECTURE.md section 3 is the contract:
 * (f, e) = frexp(r), m = round(f * 2^31) half away from zero (m == 2^31 renormalises to 2^30
 * with e + 1), c = 31 - e; c > 62 is the constant-zero dyadic {0, 1}; c < 1 (r >= 2^30, or just
 * below it rounding up) is an error. Float is used here, offline, never in the runtime. */
#ifndef HAWQ_QUANT_DYADIC_H
#define HAWQ_QUANT_DYADIC_H

#include "quant/qmodel.h"

/* r must be finite and >= 0 (r == 0 gives {0, 1}); fails (HAWQ_ERR_INVALID_ARG) otherwise or
 * when r >= 2^30 does not fit. */
hawq_status hawq_dyadic_from_ratio(double r, hawq_dyadic *out, hawq_error *err);

/* m / 2^c, for display and tests. */
double hawq_dyadic_value(hawq_dyadic d);

#endif
