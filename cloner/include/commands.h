/* commands.h - the subcommands and the exit codes main() returns (README "Exit codes"). */
#ifndef COLDCLONE_COMMANDS_H
#define COLDCLONE_COMMANDS_H

#include <signal.h>
#include <stdint.h>

enum exit_code {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1,       /* a bug: please report with the log */
	EXIT_USAGE = 2,          /* bad command line */
	EXIT_SOURCE = 3,         /* source disk cannot be opened/read/understood, or is in use */
	EXIT_DEST = 4,           /* destination cannot be written (space, permissions, I/O) */
	EXIT_VERIFY = 5,         /* verification found a mismatch */
	EXIT_UNREADABLE = 6,     /* clone complete, but some sectors were unreadable (listed) */
	EXIT_TOO_UNREADABLE = 7, /* stopped: more unreadable sectors than --max-unreadable */
	EXIT_REFUSED = 8,        /* source state refused (e.g. hibernated Windows) without --force */
	EXIT_INTERRUPTED = 130,  /* Ctrl-C or SIGTERM: nothing left under the final name */
};

/* Set by the SIGINT/SIGTERM handler in main.c. */
extern volatile sig_atomic_t interrupted;

int cmd_list(int argc, char **argv);
int cmd_clone(int argc, char **argv);
int cmd_digest(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_wizard(int argc, char **argv);

/* One disk as `list` shows it: the text lines on stdout, or (arr not NULL) its JSON object
 * appended to arr (the wizard's summary). lsec 0 = detect. Returns an EXIT_* code. */
struct json_object;
int list_disk(const char *path, uint32_t lsec, struct json_object *arr);

/* One line saying what an exit code means (result screens, reports). */
const char *exit_code_meaning(int rc);

/* Help text for a command, or the overview for NULL; 0 if known. */
int print_help(const char *command);

#endif
