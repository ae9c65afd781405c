/* Parsing and checking of input preprocessing parameters (metadata_props and CLI flags). */
#include "core/preprocess.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

hawq_status hawq_preprocess_set_mean_std(hawq_preprocess *pp, const float *mean, int n_mean,
                                         const float *std, int n_std, const char *what,
                                         hawq_error *err) {
  if (!n_mean && !n_std) return HAWQ_OK;
  float m[HAWQ_MAX_CHANNELS], s[HAWQ_MAX_CHANNELS];
  if (n_mean) {
    memcpy(m, mean, (size_t)n_mean * sizeof *m);
  } else {
    n_mean = pp->channels;
    memcpy(m, pp->mean, sizeof m);
  }
  if (n_std) {
    memcpy(s, std, (size_t)n_std * sizeof *s);
  } else {
    n_std = pp->channels;
    memcpy(s, pp->std, sizeof s);
  }
  if (n_mean != n_std && n_mean != 1 && n_std != 1) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: %d mean values and %d std values", what,
                     n_mean, n_std);
  }
  pp->channels = n_mean > n_std ? n_mean : n_std;
  for (int c = 0; c < pp->channels; c++) {
    pp->mean[c] = m[n_mean == 1 ? 0 : c];
    pp->std[c] = s[n_std == 1 ? 0 : c];
  }
  return HAWQ_OK;
}

hawq_status hawq_preprocess_override(hawq_preprocess *pp, const char *mean, const char *std,
                                     const char *pixel_scale, hawq_error *err) {
  float m[HAWQ_MAX_CHANNELS], s[HAWQ_MAX_CHANNELS];
  int nm = 0, ns = 0, one;
  hawq_status st;
  if (mean && (st = hawq_parse_float_list(mean, "--mean", false, m, HAWQ_MAX_CHANNELS, &nm, err))) {
    return st;
  }
  if (std && (st = hawq_parse_float_list(std, "--std", true, s, HAWQ_MAX_CHANNELS, &ns, err))) {
    return st;
  }
  if (pixel_scale && (st = hawq_parse_float_list(pixel_scale, "--pixel-scale", true,
                                                 &pp->pixel_scale, 1, &one, err))) {
    return st;
  }
  return hawq_preprocess_set_mean_std(pp, m, nm, s, ns, "--mean/--std", err);
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

void hawq_format_float_list(const float *v, int n, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int k = 0; k < n && used < size; k++) {
    char one[32];
    for (int digits = 1; digits <= 9; digits++) {
      snprintf(one, sizeof one, "%.*g", digits, (double)v[k]);
      if (strtof(one, NULL) == v[k]) break;
    }
    used += (size_t)snprintf(buf + used, size - used, "%s%s", k ? "," : "", one);
  }
}
