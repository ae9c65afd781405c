/* Parsing and checking of input preprocessing parameters (metadata_props and CLI flags). */
#include "core/preprocess.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "core/status.h"

hawq_preprocess hawq_preprocess_default(void) {
  hawq_preprocess pp = {.pixel_scale = 1.0f / 255.0f, .channels = 1, .has_metadata = false};
  pp.mean[0] = 0.0f;
  pp.std[0] = 1.0f;
  return pp;
}

hawq_status hawq_parse_float_list(const char *s, const char *what, bool require_positive,
                                  float *out, int max, int *count, hawq_error *err) {
  int n = 0;
  const char *p = s;
  for (;;) {
    char *end = NULL;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno == ERANGE || !isfinite(v)) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                       "%s: '%s' is not a comma-separated list of numbers", what, s);
    }
    if (require_positive && !(v > 0)) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: value %g must be > 0", what, v);
    }
    if (n == max) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: more than %d values", what, max);
    }
    out[n++] = (float)v;
    if (*end == '\0') break;
    if (*end != ',') {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                       "%s: '%s' is not a comma-separated list of numbers", what, s);
    }
    p = end + 1;
  }
  *count = n;
  return HAWQ_OK;
}

hawq_status hawq_preprocess_check(const hawq_preprocess *pp, int channels, const char *what,
                                  hawq_error *err) {
  if (pp->channels != 1 && pp->channels != channels) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "%s: %d mean/std values for an input with %d channels, expected 1 or %d", what,
                     pp->channels, channels, channels);
  }
  return HAWQ_OK;
}
