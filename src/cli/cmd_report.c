/* hawq report: one self-contained HTML page about a quantization run (src/cli/report.h,
 * docs/report.md). */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/report.h"

static const char help[] =
    "usage: hawq report --summary SUMMARY.json --sensitivity SENS.json --bits BITS.json\n"
    "                   -o REPORT.html\n\n"
    "Writes one self-contained HTML page (inline CSS and SVG: no scripts, nothing fetched) about\n"
    "a quantization run: the model, data, budgets and bit choices; top-1, size, BOPS and latency\n"
    "of every configuration; the pipeline's stage timings; each layer's Hessian trace; the chosen\n"
    "bits per layer; and the Pareto frontier with the chosen allocation.\n\n"
    "  --summary FILE      the run's summary (hawq quantize; \"format\": "
    "\"hawq-quantize-summary\")\n"
    "  --sensitivity FILE  per-layer Hessian traces (hawq sensitivity -o)\n"
    "  --bits FILE         the bit allocation (hawq allocate -o; with --sweep, the frontier)\n"
    "  -o FILE             the HTML page, written atomically\n";

int cmd_report(int argc, char **argv) {
  const char *summary = NULL, *sens = NULL, *bits = NULL, *out = NULL;
  const cli_opt opts[] = {
      {"--summary", CLI_STRING, &summary, 0, 0},
      {"--sensitivity", CLI_STRING, &sens, 0, 0},
      {"--bits", CLI_STRING, &bits, 0, 0},
      {"-o", CLI_STRING, &out, 0, 0},
  };
  const char *pos[1];
  int n_pos;
  int rc = cli_parse("report", argc, argv, opts, sizeof opts / sizeof opts[0], pos, 0, &n_pos);
  if (rc < 0) {
    fputs(help, stdout);
    return CLI_OK;
  }
  if (rc) return rc;
  if (!summary) return cli_usage_error("report", "--summary SUMMARY.json is required");
  if (!sens) return cli_usage_error("report", "--sensitivity SENS.json is required");
  if (!bits) return cli_usage_error("report", "--bits BITS.json is required");
  if (!out) return cli_usage_error("report", "-o REPORT.html is required");
  char err[1024];
  rc = hawq_report_write(out, summary, sens, bits, err, sizeof err);
  if (rc) {
    fprintf(stderr, "hawq: %s\n", err);
    return rc == 2 ? CLI_INTERNAL : CLI_BAD_INPUT;
  }
  printf("wrote %s\n", out);
  return CLI_OK;
}
