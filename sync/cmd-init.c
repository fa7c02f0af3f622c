/*
 * cmd-init.c - `cairn init`: creates a workspace in a store (a random id,
 * its keys wrapped under the tenant key, its config) and prints its id.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd-common.h"
#include "err.h"

static int cmd_init_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ "create-key", no_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	struct repo *r = NULL;
	const char *key_file;
	int create_key = 0, had_key = 1, opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if (cmd_common_opt(&c, opt, optarg))
			continue;
		if (opt != 'K')
			return cmd_usage(&cmd_init_entry);
		create_key = 1;
	}
	if (optind != argc)
		return cmd_usage(&cmd_init_entry);
	rc = repo_opts_resolve(&c.ro, c.config, c.name);
	key_file = keys_provider_file(c.ro.key);
	if (key_file)
		had_key = access(key_file, F_OK) == 0;
	if (!rc)
		rc = repo_init(&c.ro, create_key, &r);
	if (rc) {
		cmd_common_free(&c);
		return cmd_fail(&cmd_init_entry, NULL);
	}
	if (c.json) {
		cmd_json_line(json_pack("{s:s, s:s, s:s, s:b}", "workspace", r->ws_id,
					"tenant", r->tenant, "store", r->base->url,
					"created_key", create_key && !had_key));
	} else {
		printf("created workspace %s (tenant %s) in %s\n", r->ws_id, r->tenant, r->base->url);
		if (create_key && !had_key)
			printf("wrote a new tenant key to %s: keep a copy in a safe place; without it no workspace of this tenant can be read\n",
			       key_file);
	}
	repo_close(r);
	cmd_common_free(&c);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_init_entry = {
	.name = "init",
	.usage = "[--create-key] " CMD_COMMON_USAGE,
	.summary = "create a workspace in a store and print its id",
	.exec = cmd_init_exec,
};
