/* hawq: the command-line tool. `hawq <command> [options]`; see `hawq --help`. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"

#define HAWQ_VERSION_STRING "0.1.0"

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} commands[] = {
    {"info", cmd_info, "describe a model: inputs, outputs, layers, parameters, MACs"},
    {"eval", cmd_eval, "evaluate a model on a labelled dataset: top-1, top-5, throughput"},
    {"meta", cmd_meta, "show a model's metadata, or write its input preprocessing"},
    {"train", cmd_train, "train a network (built or imported) on a labelled dataset, write ONNX"},
    {"calibrate", cmd_calibrate, "post-training quantization to an integer-only model (.hqm)"},
    {"bench", cmd_bench, "latency of the integer runtime, end to end and per layer"},
    {"run", cmd_run, "classify one image with an integer model"},
    {"sensitivity", cmd_sensitivity, "per-layer Hessian traces and quantization sensitivities"},
    {"allocate", cmd_allocate, "mixed-precision bit widths by integer linear programming"},
    {"report", cmd_report, "a self-contained HTML report of a quantization run"},
    {"finetune", cmd_finetune, "quantization-aware fine-tuning to an integer-only model (.hqm)"},
    {"quantize", cmd_quantize,
     "the whole pipeline: calibrate, sensitivity, ILP, fine-tune, integer model and report"},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: hawq <command> [options]\n\n"
          "hawq turns trained fp32 CNNs (ONNX) into integer-only networks and runs them.\n\n"
          "commands:\n");
  for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
    fprintf(f, "  %-12s %s\n", commands[k].name, commands[k].summary);
  }
  fprintf(f,
          "\n'hawq <command> --help' describes a command's options.\n"
          "Exit status: 0 success, 1 bad input or usage, 2 internal error.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "hawq: missing command; usage: hawq <command> [options] (see 'hawq --help')\n");
    return CLI_BAD_INPUT;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return CLI_OK;
  }
  if (!strcmp(cmd, "--version")) {
    printf("hawq %s\n", HAWQ_VERSION_STRING);
    return CLI_OK;
  }
  for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
    if (!strcmp(cmd, commands[k].name)) return commands[k].fn(argc - 1, argv + 1);
  }
  fprintf(stderr, "hawq: unknown command '%s' (see 'hawq --help')\n", cmd);
  return CLI_BAD_INPUT;
}
