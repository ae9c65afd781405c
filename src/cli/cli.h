/* Helpers shared by the `hawq` subcommands: option parsing, messages, progress, JSON. */
#ifndef HAWQ_CLI_CLI_H
#define HAWQ_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hawq/hawq.h"

/* Exit codes: 0 success, 1 bad input or usage, 2 internal error. */
enum { CLI_OK = 0, CLI_BAD_INPUT = 1, CLI_INTERNAL = 2 };

/* Prints "hawq <cmd>: <message>" on stderr and returns 1. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints err->msg on stderr; returns the exit code for its status. */
int cli_report(const hawq_error *err);

/* Option parsing over argv[1..]: options may come before or after positionals, as
 * "--name value" or "--name=value". */
typedef enum cli_opt_kind { CLI_FLAG, CLI_STRING, CLI_INT, CLI_DOUBLE } cli_opt_kind;
typedef struct cli_opt {
  const char *name; /* "--batch" */
  cli_opt_kind kind;
  void *target;    /* bool*, const char**, long long* or double* */
  double min, max; /* CLI_INT and CLI_DOUBLE range (integers up to 2^53 are exact) */
} cli_opt;
/* Fills targets and collects positionals (at most max_pos). Returns 0 or an exit code after
 * printing a message. `--help` returns -1 (caller prints help and exits 0). */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, int n_opts,
              const char **pos, int max_pos, int *n_pos);

/* cli_parse for a command taking exactly one MODEL argument: prints `help` for --help (and
 * returns -1), reports usage errors (returning their exit code), else returns 0 with *model. */
int cli_parse_model(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts,
                    int n_opts, const char **model);

/* Progress: a bar redrawn in place on a terminal, plain lines every 10% otherwise. */
typedef struct cli_progress {
  const char *label;
  int64_t total;
  bool tty;
  double start, last_draw;
  int last_decile;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, int64_t total);
void cli_progress_update(cli_progress *p, int64_t done, const char *extra);
void cli_progress_finish(cli_progress *p);

/* An evaluation's outcome, printed by hawq eval for float and integer models alike. */
typedef struct cli_eval_result {
  const char *model, *data;
  const char *engine; /* NULL for the float engine; else named in the output */
  int64_t images, top1, top5;
  int classes;
  double seconds;
  long long batch, threads;
} cli_eval_result;
/* One summary line ("top-1 ... img/s"), or with json the same as a JSON object, on stdout. */
void cli_print_eval(const cli_eval_result *r, bool json);

double cli_now(void); /* monotonic seconds */
int cli_default_threads(void);
/* The kernel level named by --isa (NULL: the best this CPU has); a usage error (returned) for an
 * unknown name or a level the CPU lacks. */
int cli_parse_isa(const char *cmd, const char *name, hawq_isa *out);

/* Human-readable count: 1234567 -> "1.23M". */
const char *cli_si(double v, char *buf, size_t size);

/* 0 when graph g (from file `model`) has one NCHW image input matching the dataset's images; else
 * prints one line and returns CLI_BAD_INPUT. */
struct hawq_dataset;
int cli_check_image_input(const char *model, const hawq_graph *g, const struct hawq_dataset *ds);

/* The CRC-32 (zlib's) and size of a file's bytes, for a model's provenance. */
hawq_status cli_file_crc(const char *path, uint32_t *crc, uint64_t *size, hawq_error *err);

#endif
