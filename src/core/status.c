/* hawq_error helpers: formatting one-line messages. */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *hawq_status_string(hawq_status s) {
  switch (s) {
    case HAWQ_OK:
      return "ok";
    case HAWQ_ERR_INVALID_ARG:
      return "invalid argument";
    case HAWQ_ERR_UNSUPPORTED:
      return "unsupported";
    case HAWQ_ERR_PARSE:
      return "malformed input";
    case HAWQ_ERR_IO:
      return "i/o error";
    case HAWQ_ERR_NO_MEMORY:
      return "out of memory";
    case HAWQ_ERR_INTERNAL:
      return "internal error";
  }
  return "unknown status";
}

static void one_line(char *s) {
  for (; *s; s++) {
    if (*s == '\n' || *s == '\r') *s = ' ';
  }
}

hawq_status hawq_fail(hawq_error *err, hawq_status status, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
    err->status = status;
  }
  return status;
}

void hawq_error_prefix(hawq_error *err, const char *prefix) {
  if (!err || !prefix) return;
  char tmp[sizeof err->msg];
  if (snprintf(tmp, sizeof tmp, "%s: %s", prefix, err->msg) >= (int)sizeof tmp) {
    tmp[sizeof tmp - 1] = '\0'; /* truncated: still one line */
  }
  memcpy(err->msg, tmp, sizeof tmp);
  one_line(err->msg);
}

void hawq_error_clear(hawq_error *err) {
  if (!err) return;
  err->status = HAWQ_OK;
  err->msg[0] = '\0';
}

int hawq_status_exit_code(hawq_status s) {
  switch (s) {
    case HAWQ_OK:
      return 0;
    case HAWQ_ERR_NO_MEMORY:
    case HAWQ_ERR_INTERNAL:
      return 2;
    default:
      return 1;
  }
}
