/*
 * cairn.c - the `cairn` command: finds the subcommand in the table and runs
 * it.  Thin on purpose: every subcommand lives in its own cmd-*.c file.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"

const struct cmd_entry *const cmd_table[] = {
	&cmd_init_entry,
	&cmd_snapshot_entry,
	&cmd_restore_entry,
	&cmd_mount_entry,
	&cmd_status_entry,
	&cmd_hydrate_entry,
	&cmd_agents_entry,
	&cmd_ls_entry,
	&cmd_diff_entry,
	&cmd_check_entry,
	&cmd_stats_entry,
	&cmd_cat_entry,
	&cmd_forget_entry,
	&cmd_prune_entry,
	&cmd_selftest_entry,
	&cmd_help_entry,
	NULL,
};

int main(int argc, char **argv)
{
	const char *name;

	log_setup("cairn", LOG_LVL_WARN);
	if (fsu_no_core_dumps())
		log_warn("cannot turn core dumps off: %s", strerror(errno));
	if (cmd_stop_init())
		return CMD_EXIT_ERROR;
	if (argc < 2) {
		cmd_help_entry.exec(1, argv);
		return CMD_EXIT_USAGE;
	}
	name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h"))
		name = "help";
	if (!strcmp(name, "--version") || !strcmp(name, "version")) {
		printf("cairn %s\n", PACKAGE_VERSION);
		return CMD_EXIT_OK;
	}
	for (const struct cmd_entry *const *e = cmd_table; *e; e++)
		if (!strcmp((*e)->name, name))
			return (*e)->exec(argc - 1, argv + 1);
	fprintf(stderr, "cairn: unknown command '%s'; run 'cairn help' for the list\n", name);
	return CMD_EXIT_USAGE;
}
