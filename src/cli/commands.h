/* The `hawq` subcommands; each takes its own argv (argv[0] is the command name). */
#ifndef HAWQ_CLI_COMMANDS_H
#define HAWQ_CLI_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_meta(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_allocate(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

/* Integer models (.hqm): cmd_eval and cmd_info hand them to these. */
#include <stdbool.h>
bool cli_is_qmodel(const char *path);
int q_eval(const char *path, const char *data, const char *split, long long limit, long long batch,
           long long threads, const char *isa, const char *logits_path, bool json);
int q_info(const char *path, bool json, bool verbose);

#endif
