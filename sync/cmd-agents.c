/*
 * cmd-agents.c - `cairn agents [--restart NAME]`: the agents cairnd
 * supervises (state, pid, restarts, CPU), or one restarted, through
 * cairnd's control socket.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-common.h"
#include "ctlclient.h"
#include "err.h"

#define CAIRND_SOCKET "/run/cairn/cairnd.sock"

enum { OPT_SOCKET = OPT_COMMON_LAST, OPT_RESTART };

static int agents_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "restart", required_argument, NULL, OPT_RESTART },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = getenv("CAIRND_SOCKET"), *restart = NULL;
	json_t *req, *r = NULL, *list, *a;
	int opt, json = 0, rc;
	size_t i;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == OPT_SOCKET)
			sock = optarg;
		else if (opt == OPT_RESTART)
			restart = optarg;
		else if (opt == OPT_JSON)
			json = 1;
		else
			return cmd_usage(&cmd_agents_entry);
	}
	if (optind != argc)
		return cmd_usage(&cmd_agents_entry);
	if (!sock || !*sock)
		sock = CAIRND_SOCKET;
	req = restart ? json_pack("{s:s, s:s}", "op", "restart", "agent", restart) :
			json_pack("{s:s}", "op", "agents");
	rc = ctl_call_path(sock, "cairnd", req, &r, 30);
	json_decref(req);
	if (rc)
		return cmd_fail(&cmd_agents_entry, NULL);
	if (!json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "cairn agents: %s\n", json_string_value(json_object_get(r, "error")));
		json_decref(r);
		return CMD_EXIT_ERROR;
	}
	if (json) {
		json_object_del(r, "ok");
		cmd_json_line(r);
		return CMD_EXIT_OK;
	}
	if (restart) {
		printf("agent %s: restarting\n", restart);
		json_decref(r);
		return CMD_EXIT_OK;
	}
	list = json_object_get(r, "agents");
	printf("%-16s %-12s %-9s %8s %8s %6s  %s\n", "agent", "workspace", "state", "pid", "restarts",
	       "cpu%", "note");
	json_array_foreach(list, i, a) {
		const char *last = json_string_value(json_object_get(a, "last_exit"));

		printf("%-16s %-12s %-9s %8lld %8lld %6.1f  %s%s%s\n",
		       json_string_value(json_object_get(a, "name")),
		       json_string_value(json_object_get(a, "workspace")),
		       json_string_value(json_object_get(a, "state")),
		       (long long)json_integer_value(json_object_get(a, "pid")),
		       (long long)json_integer_value(json_object_get(a, "restarts")),
		       json_real_value(json_object_get(a, "cpu_percent")),
		       json_is_true(json_object_get(a, "crash_loop")) ? "CRASH LOOP; " : "",
		       last ? "last: " : "", last ? last : "");
	}
	json_decref(r);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_agents_entry = {
	.name = "agents",
	.usage = "[--restart NAME] [--socket PATH] [--json]",
	.summary = "list the agents cairnd supervises, or restart one",
	.exec = agents_exec,
};
