/*
 * cmd-hydrate.c - `cairn hydrate --mount MOUNTPOINT [--wait]`: has the
 * cairnfs of a mount fetch every file that is not local yet, at full
 * speed (reads that programs wait for still go first); with --wait, until
 * it is done, with progress on a terminal.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd-common.h"
#include "ctlclient.h"
#include "err.h"

enum { OPT_MOUNT = OPT_COMMON_LAST, OPT_WAIT };

static json_int_t geti(json_t *o, const char *a, const char *b)
{
	return json_integer_value(json_object_get(json_object_get(o, a), b));
}

static int call(const char *ws, const char *op, json_t **r)
{
	json_t *req = json_pack("{s:s}", "op", op);
	int rc = ctl_call(ws, req, r, 30);

	json_decref(req);
	if (rc)
		return cmd_fail(&cmd_hydrate_entry, NULL);
	if (!json_is_true(json_object_get(*r, "ok"))) {
		fprintf(stderr, "cairn hydrate: %s\n", json_string_value(json_object_get(*r, "error")));
		json_decref(*r);
		return CMD_EXIT_ERROR;
	}
	return 0;
}

static int hydrate_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mount", required_argument, NULL, OPT_MOUNT },
		{ "wait", no_argument, NULL, OPT_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	const char *mount = NULL;
	char *ws = NULL;
	json_t *r = NULL;
	json_int_t errors0 = 0;
	int opt, wait = 0, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "q", longopts, NULL)) != -1) {
		if (opt == OPT_MOUNT)
			mount = optarg;
		else if (opt == OPT_WAIT)
			wait = 1;
		else if (opt == OPT_JSON)
			c.json = 1;
		else if (opt == 'q')
			c.quiet = 1;
		else
			return cmd_usage(&cmd_hydrate_entry);
	}
	if (optind != argc || !mount)
		return cmd_usage(&cmd_hydrate_entry);
	c.progress = !c.quiet && !c.json && isatty(STDERR_FILENO);
	if (ctl_mount_workspace(mount, &ws))
		return cmd_fail(&cmd_hydrate_entry, NULL);
	rc = call(ws, "status", &r);
	if (!rc) {
		errors0 = json_integer_value(json_object_get(r, "fetch_errors"));
		json_decref(r);
		rc = call(ws, "hydrate", &r);
	}
	if (!rc)
		json_decref(r);
	while (!rc && wait) {
		json_int_t files, local, errors;
		char b1[32], b2[32];

		rc = call(ws, "status", &r);
		if (rc)
			break;
		files = geti(r, "files", "total");
		local = geti(r, "files", "local");
		errors = json_integer_value(json_object_get(r, "fetch_errors"));
		cmd_progress_line(&c, "%lld of %lld files local, %s of %s", (long long)local,
				  (long long)files, cmd_bytes((uint64_t)geti(r, "files", "local_bytes"), b1),
				  cmd_bytes((uint64_t)geti(r, "files", "bytes"), b2));
		if (local >= files) {
			cmd_progress_done(&c);
			if (c.json) {
				json_object_del(r, "ok");
				cmd_json_line(r);
				r = NULL;
			} else if (!c.quiet) {
				printf("%s: all %lld files are local (%s)\n", mount, (long long)files, b2);
			}
			json_decref(r);
			break;
		}
		json_decref(r);
		if (errors > errors0) {
			cmd_progress_done(&c);
			fprintf(stderr, "cairn hydrate: %s: the store failed %lld reads (see %s in the"
				" cache dir); the files left are fetched when it answers again\n", mount,
				(long long)(errors - errors0), "cairnfs.log");
			rc = CMD_EXIT_ERROR;
			break;
		}
		usleep(200 * 1000);
	}
	free(ws);
	return rc;
}

const struct cmd_entry cmd_hydrate_entry = {
	.name = "hydrate",
	.usage = "--mount MOUNTPOINT [--wait] [--json] [-q]",
	.summary = "fetch every file of a mounted workspace now",
	.exec = hydrate_exec,
};
