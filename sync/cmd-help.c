/*
 * cmd-help.c - `cairn help [COMMAND]`: the command list, or one command's
 * usage, straight from the command table.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd.h"

static int cmd_help_exec(int argc, char **argv)
{
	if (argc > 2)
		return cmd_usage(&cmd_help_entry);
	if (argc == 2) {
		for (const struct cmd_entry *const *e = cmd_table; *e; e++) {
			if (!strcmp((*e)->name, argv[1])) {
				printf("usage: cairn %s %s\n\n%s\n", (*e)->name, (*e)->usage,
				       (*e)->summary);
				return CMD_EXIT_OK;
			}
		}
		fprintf(stderr, "cairn help: unknown command '%s'\n", argv[1]);
		return CMD_EXIT_USAGE;
	}
	printf("usage: cairn COMMAND [ARGS]\n\ncommands:\n");
	for (const struct cmd_entry *const *e = cmd_table; *e; e++)
		printf("  %-10s %s\n", (*e)->name, (*e)->summary);
	printf("\nRun 'cairn help COMMAND' for one command, 'man cairn' for everything.\n");
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_help_entry = {
	.name = "help",
	.usage = "[COMMAND]",
	.summary = "list the commands, or show how to use one",
	.exec = cmd_help_exec,
};
