/*
 * cmd-status.c - `cairn status [--mount MOUNTPOINT] [--json]`: what a
 * mounted workspace is doing, from its cairnfs's control socket: the last
 * snapshot and its age, local changes not in a snapshot yet, how much is
 * local (hydration), the cache, and the store's errors and retries.
 * Without --mount: every cairnfs mount of this machine.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd-common.h"
#include "ctlclient.h"
#include "err.h"

enum { OPT_MOUNT = OPT_COMMON_LAST };

static json_int_t geti(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_integer_value(v);
}

static void age(json_int_t t, char out[32])
{
	long long s = (long long)time(NULL) - (long long)t;

	if (!t)
		snprintf(out, 32, "never");
	else if (s < 120)
		snprintf(out, 32, "%lld s ago", s);
	else if (s < 7200)
		snprintf(out, 32, "%lld min ago", s / 60);
	else
		snprintf(out, 32, "%lld h ago", s / 3600);
}

static void print_text(json_t *r)
{
	char b1[32], b2[32], b3[32], a[32];
	json_int_t total = geti(r, "files", "bytes"), local = geti(r, "files", "local_bytes");
	json_t *snap = json_object_get(r, "snapshot");

	age(geti(r, "snapshot_time", NULL), a);
	printf("%s: workspace %s (cairnfs pid %lld, cache %s)\n",
	       json_string_value(json_object_get(r, "mountpoint")),
	       json_string_value(json_object_get(r, "workspace")), (long long)geti(r, "pid", NULL),
	       json_string_value(json_object_get(r, "cache_dir")));
	if (json_is_string(snap))
		printf("  snapshot:  %.8s, generation %lld, %s%s\n", json_string_value(snap),
		       (long long)geti(r, "generation", NULL), a,
		       json_is_true(json_object_get(r, "snapshot_running")) ? " (one is running)" : "");
	else
		printf("  snapshot:  none yet%s\n",
		       json_is_true(json_object_get(r, "snapshot_running")) ? " (one is running)" : "");
	printf("  changes:   %lld dirty files, %s%s\n", (long long)geti(r, "dirty", "files"),
	       cmd_bytes((uint64_t)geti(r, "dirty", "bytes"), b1),
	       json_is_true(json_object_get(r, "changed")) ? "" : " (none since the snapshot)");
	printf("  local:     %lld of %lld files, %s of %s (%.0f%%), prefetch %s\n",
	       (long long)geti(r, "files", "local"), (long long)geti(r, "files", "total"),
	       cmd_bytes((uint64_t)local, b1), cmd_bytes((uint64_t)total, b2),
	       total ? 100.0 * (double)local / (double)total : 100.0,
	       json_string_value(json_object_get(r, "prefetch")));
	printf("  cache:     %s used, limit %s, %s fetched\n",
	       cmd_bytes((uint64_t)geti(r, "cache", "used_bytes"), b1),
	       geti(r, "cache", "limit_bytes") ? cmd_bytes((uint64_t)geti(r, "cache", "limit_bytes"), b2)
					       : "the disk",
	       cmd_bytes((uint64_t)geti(r, "cache", "fetched_bytes"), b3));
	printf("  store:     %lld requests, %lld errors, %lld retries, %lld failed reads;"
	       " %s in, %s out\n", (long long)geti(r, "store", "requests"),
	       (long long)geti(r, "store", "errors"), (long long)geti(r, "store", "retries"),
	       (long long)geti(r, "fetch_errors", NULL),
	       cmd_bytes((uint64_t)geti(r, "store", "bytes_in"), b1),
	       cmd_bytes((uint64_t)geti(r, "store", "bytes_out"), b2));
	printf("  snapshots: %lld taken, %lld failed since the mount\n",
	       (long long)geti(r, "snapshots", "taken"), (long long)geti(r, "snapshots", "failed"));
}

struct all {
	int json, failed, count;
};

static int show(const char *mnt, const char *ws, int json)
{
	json_t *req = json_pack("{s:s}", "op", "status"), *r = NULL;
	int rc = ctl_call(ws, req, &r, 30);

	json_decref(req);
	if (rc) {
		fprintf(stderr, "cairn status: %s: %s\n", mnt, err_msg());
		return rc;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "cairn status: %s: %s\n", mnt,
			json_string_value(json_object_get(r, "error")));
		json_decref(r);
		return -1;
	}
	json_object_del(r, "ok");
	if (json)
		cmd_json_line(r);
	else {
		print_text(r);
		json_decref(r);
	}
	return 0;
}

static void show_each(const char *mnt, const char *ws, void *arg)
{
	struct all *a = arg;

	a->count++;
	if (show(mnt, ws, a->json))
		a->failed = 1;
}

static int status_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mount", required_argument, NULL, OPT_MOUNT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	const char *mount = NULL;
	struct all a = { 0 };
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == OPT_MOUNT)
			mount = optarg;
		else if (opt == OPT_JSON)
			a.json = 1;
		else
			return cmd_usage(&cmd_status_entry);
	}
	if (optind != argc)
		return cmd_usage(&cmd_status_entry);
	if (mount) {
		char *ws = NULL;
		int rc = ctl_mount_workspace(mount, &ws);

		if (rc)
			return cmd_fail(&cmd_status_entry, NULL);
		rc = show(mount, ws, a.json);
		free(ws);
		return rc ? CMD_EXIT_ERROR : CMD_EXIT_OK;
	}
	ctl_foreach_mount(show_each, &a);
	if (!a.count && !a.json)
		printf("no cairnfs is mounted on this machine\n");
	return a.failed ? CMD_EXIT_ERROR : CMD_EXIT_OK;
}

const struct cmd_entry cmd_status_entry = {
	.name = "status",
	.usage = "[--mount MOUNTPOINT] [--json]",
	.summary = "show a mounted workspace: last snapshot, changes, hydration, cache, store errors",
	.exec = status_exec,
};
