/* Subcommand entry points. Each gets argv with argv[0] = the subcommand name,
 * prints its own --help, and returns the process exit code:
 * 0 success, 1 failure, 2 bad usage. Only main() exits. */
#ifndef RW_COMMANDS_H
#define RW_COMMANDS_H

int rw_cmd_migrate(int argc, char **argv);
int rw_cmd_run(int argc, char **argv);
int rw_cmd_add(int argc, char **argv);
int rw_cmd_jobs(int argc, char **argv);
int rw_cmd_doctor(int argc, char **argv);
int rw_cmd_cron(int argc, char **argv);
int rw_cmd_tasks(int argc, char **argv);
int rw_cmd_token(int argc, char **argv);

#define RW_EXIT_OK 0
#define RW_EXIT_FAIL 1
#define RW_EXIT_USAGE 2

#endif
