/* Error reporting inside the library: every failure fills the caller's hawq_error with one line
 * and returns its status, so a check reads `return hawq_fail(err, HAWQ_ERR_PARSE, "...", ...);`.
 */
#ifndef HAWQ_CORE_STATUS_H
#define HAWQ_CORE_STATUS_H

#include "hawq/hawq.h"

#if defined(__GNUC__)
#define HAWQ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define HAWQ_PRINTF(f, a)
#endif

/* Sets err (may be NULL) to status and the formatted one-line message; returns status.
 * Newlines in the message are replaced by spaces. */
hawq_status hawq_fail(hawq_error *err, hawq_status status, const char *fmt, ...) HAWQ_PRINTF(3, 4);

/* Prefixes err->msg with "prefix: " (used to add the file name to a lower layer's message). */
void hawq_error_prefix(hawq_error *err, const char *prefix);

/* Clears err to HAWQ_OK and an empty message. */
void hawq_error_clear(hawq_error *err);

/* Exit code for the CLI: 0 ok, 1 bad input or usage, 2 internal error or out of memory. */
int hawq_status_exit_code(hawq_status s);

#endif
