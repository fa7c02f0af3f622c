/*
 * cmd.h - the table of `cairn` subcommands.  Each lives in its own file
 * (sync/cmd-NAME.c) as one `const struct cmd_entry` and its exec function;
 * `cairn help` and cairn(1) are written from the same table.
 */
#ifndef CAIRN_CMD_H
#define CAIRN_CMD_H

/* Exit codes, documented in cairn(1). */
#define CMD_EXIT_OK 0
#define CMD_EXIT_ERROR 1	/* the command failed; stderr says why */
#define CMD_EXIT_USAGE 2	/* bad command line */

struct cmd_entry {
	const char *name;
	const char *usage;	/* arguments after the name */
	const char *summary;	/* one line for `cairn help` */
	/* argv[0] is the command name; returns a CMD_EXIT_* code. */
	int (*exec)(int argc, char **argv);
};

extern const struct cmd_entry cmd_help_entry;
extern const struct cmd_entry cmd_init_entry;
extern const struct cmd_entry cmd_snapshot_entry;
extern const struct cmd_entry cmd_restore_entry;
extern const struct cmd_entry cmd_mount_entry;
extern const struct cmd_entry cmd_status_entry;
extern const struct cmd_entry cmd_hydrate_entry;
extern const struct cmd_entry cmd_agents_entry;
extern const struct cmd_entry cmd_ls_entry;
extern const struct cmd_entry cmd_diff_entry;
extern const struct cmd_entry cmd_check_entry;
extern const struct cmd_entry cmd_stats_entry;
extern const struct cmd_entry cmd_cat_entry;
extern const struct cmd_entry cmd_forget_entry;
extern const struct cmd_entry cmd_prune_entry;
extern const struct cmd_entry cmd_selftest_entry;

/* NULL-terminated, in the order `cairn help` lists them. */
extern const struct cmd_entry *const cmd_table[];

/* The program the commands belong to, for messages: "cairn" unless its
 * main sets another ("cairn-keyadm"). */
extern const char *cmd_program;
/* Takes SIGTERM, SIGINT and SIGHUP in a thread (stop.h): a command that
 * holds a lease stops at its next safe point and releases it, any other
 * ends at once.  Call first in main.  0, or -1 with a line on stderr. */
int cmd_stop_init(void);

/* Prints "usage: PROGRAM NAME USAGE" to stderr and returns CMD_EXIT_USAGE. */
int cmd_usage(const struct cmd_entry *e);
/* Prints "PROGRAM NAME: message" for the current error and returns CMD_EXIT_ERROR. */
int cmd_fail(const struct cmd_entry *e, const char *what);

#endif
