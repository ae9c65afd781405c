/* The `hawq` subcommands; each takes its own argv (argv[0] is the command name). */
#ifndef HAWQ_CLI_COMMANDS_H
#define HAWQ_CLI_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_meta(int argc, char **argv);
int cmd_train(int argc, char **argv);

#endif
