/* hawq report: one self-contained HTML page about a quantization run (docs/report.md), from
 *   SUMMARY.json  ("format": "hawq-quantize-summary", written by hawq quantize): accuracy, size,
 *                 BOPS and latency per configuration, and the pipeline's stage timings;
 *   SENS.json     ("format": "hawq-sensitivity", written by hawq sensitivity): per-layer traces;
 *   BITS.json     (written by hawq allocate -o): the chosen widths per layer, the ILP's summary
 *                 ("ilp") and, with --sweep, the Pareto frontier ("frontier").
 * The page has inline CSS and SVG only: no scripts, nothing fetched. */
#ifndef HAWQ_CLI_REPORT_H
#define HAWQ_CLI_REPORT_H

#include <stddef.h>

/* Reads the three files, checks every field the report uses (types, ranges; extra keys are
 * ignored) and writes the HTML to a temporary file beside html_path, then renames it over
 * html_path. Returns 0; 1 for bad input (a file missing or unreadable, not JSON, a field missing
 * or of the wrong type, html_path not writable), with one line in err naming the file, the field
 * and what was expected; or 2 when out of memory. On failure html_path is left as it was and no
 * temporary file remains. */
int hawq_report_write(const char *html_path, const char *summary_path, const char *sens_path,
                      const char *bits_path, char *err, size_t err_len);

#endif
