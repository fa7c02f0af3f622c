/*
 * cmd-snapshot.c - `cairn snapshot DIR`: one encrypted, deduplicated
 * snapshot of a directory, committed by moving the workspace's head.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd-common.h"
#include "ctlclient.h"
#include "err.h"
#include "snapshot.h"

struct progress_ctx {
	const struct cmd_common *c;
	struct timespec start;
};

static void show_progress(const struct snapshot_progress *p, void *arg)
{
	struct progress_ctx *pc = arg;
	struct timespec now;
	char b1[32], b2[32], b3[32];
	double secs;

	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - pc->start.tv_sec) + (now.tv_nsec - pc->start.tv_nsec) / 1e9;
	cmd_progress_line(pc->c, "%llu files, %s scanned, %s new, %s stored, %.0f s",
			  (unsigned long long)p->files, cmd_bytes(p->bytes, b1),
			  cmd_bytes(p->new_bytes, b2), cmd_bytes(p->stored_bytes, b3), secs);
}

/* `cairn snapshot --mount MOUNTPOINT`: asked of the mount's cairnfs. */
static int snapshot_mount(struct cmd_common *c, const char *mount, const char **tags, size_t ntags,
			  const char **agent, size_t nagent, const char **excl, size_t nexcl)
{
	json_t *req = json_pack("{s:s, s:[], s:[], s:[]}", "op", "snapshot", "tags", "agent_config",
				"agent_config_exclude"), *r = NULL;
	char *ws = NULL, b1[32], b2[32];
	int rc;

	for (size_t i = 0; i < ntags; i++)
		json_array_append_new(json_object_get(req, "tags"), json_string(tags[i]));
	for (size_t i = 0; i < nexcl; i++)
		json_array_append_new(json_object_get(req, "agent_config_exclude"), json_string(excl[i]));
	for (size_t i = 0; i < nagent; i++) {
		char *abs = realpath(agent[i], NULL);

		/* cairnfs runs in /: relative paths are the caller's */
		json_array_append_new(json_object_get(req, "agent_config"),
				      json_string(abs ? abs : agent[i]));
		free(abs);
	}
	rc = ctl_mount_workspace(mount, &ws);
	if (!rc)
		rc = ctl_call(ws, req, &r, 0);
	json_decref(req);
	free(ws);
	if (rc)
		return cmd_fail(&cmd_snapshot_entry, NULL);
	if (!json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "cairn snapshot: %s: %s\n", mount,
			json_string_value(json_object_get(r, "error")));
		json_decref(r);
		return CMD_EXIT_ERROR;
	}
	if (c->json) {
		json_object_del(r, "ok");
		cmd_json_line(r);
		return CMD_EXIT_OK;
	}
	if (!c->quiet)
		printf("snapshot %.8s (generation %lld): %lld changed files read (%s), %s stored in"
		       " %.2f s; writers paused %.1f ms\n",
		       json_string_value(json_object_get(r, "snapshot")),
		       (long long)json_integer_value(json_object_get(r, "generation")),
		       (long long)json_integer_value(json_object_get(r, "files_read")),
		       cmd_bytes((uint64_t)json_integer_value(json_object_get(r, "bytes_read")), b1),
		       cmd_bytes((uint64_t)json_integer_value(json_object_get(r, "stored_bytes")), b2),
		       json_real_value(json_object_get(r, "seconds")),
		       json_real_value(json_object_get(r, "pause_ms")));
	json_decref(r);
	return CMD_EXIT_OK;
}

enum { OPT_MOUNT = OPT_COMMON_LAST, OPT_EXCLUDE };

static int cmd_snapshot_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ "tag", required_argument, NULL, 't' },
		{ "agent-config", required_argument, NULL, 'a' },
		{ "agent-config-exclude", required_argument, NULL, OPT_EXCLUDE },
		{ "mount", required_argument, NULL, OPT_MOUNT },
		{ NULL, 0, NULL, 0 },
	};
	const char *mount = NULL, **agent = NULL, **excl = NULL;
	size_t nagent = 0, nexcl = 0;
	struct cmd_common c = { 0 };
	struct snapshot_opts so = { 0 };
	struct snapshot_result res;
	struct progress_ctx pc;
	const char **tags = NULL;
	struct repo *r = NULL;
	char b1[32], b2[32], b3[32];
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS "t:", longopts, NULL)) != -1) {
		if (cmd_common_opt(&c, opt, optarg))
			continue;
		if (opt == 't') {
			tags = xrealloc(tags, (so.ntags + 1) * sizeof(*tags));
			tags[so.ntags++] = optarg;
		} else if (opt == 'a') {
			agent = xrealloc(agent, (nagent + 1) * sizeof(*agent));
			agent[nagent++] = optarg;
		} else if (opt == OPT_EXCLUDE) {
			excl = xrealloc(excl, (nexcl + 1) * sizeof(*excl));
			excl[nexcl++] = optarg;
		} else if (opt == OPT_MOUNT) {
			mount = optarg;
		} else {
			rc = cmd_usage(&cmd_snapshot_entry);
			goto out;
		}
	}
	so.tags = tags;
	so.exclude = excl;
	so.nexclude = nexcl;
	if (mount && optind == argc) {
		rc = snapshot_mount(&c, mount, tags, so.ntags, agent, nagent, excl, nexcl);
		goto out;
	}
	if (optind + 1 != argc || mount) {
		rc = cmd_usage(&cmd_snapshot_entry);
		goto out;
	}
	for (size_t i = 0; i < nagent; i++) {
		struct stat st;

		if (lstat(agent[i], &st) == 0)
			continue;
		fprintf(stderr, "cairn snapshot: --agent-config %s: %s\n", agent[i], strerror(errno));
		rc = CMD_EXIT_ERROR;
		goto out;
	}
	so.agent_config = agent;
	so.nagent_config = nagent;
	rc = cmd_open_repo(&cmd_snapshot_entry, &c, &r);
	if (rc)
		goto out;
	pc.c = &c;
	clock_gettime(CLOCK_MONOTONIC, &pc.start);
	so.progress = show_progress;
	so.progress_arg = &pc;
	rc = snapshot_dir(r, argv[optind], &so, &res);
	cmd_progress_done(&c);
	if (rc) {
		rc = cmd_fail(&cmd_snapshot_entry, NULL);
	} else if (c.json) {
		cmd_json_line(json_pack("{s:s, s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}}",
					"snapshot", res.id, "workspace", r->ws_id,
					"generation", (json_int_t)res.generation, "stats",
					"files", (json_int_t)res.stats.files,
					"dirs", (json_int_t)res.stats.dirs,
					"bytes", (json_int_t)res.stats.bytes,
					"new_files", (json_int_t)res.stats.new_files,
					"new_bytes", (json_int_t)res.stats.new_bytes,
					"new_blobs", (json_int_t)res.stats.new_blobs,
					"stored_bytes", (json_int_t)res.stats.stored_bytes,
					"seconds", res.stats.duration_ns / 1e9));
	} else if (!c.quiet) {
		printf("snapshot %.8s (generation %llu): %llu files, %s; %llu changed, %s new, %s stored in %.1f s\n",
		       res.id, (unsigned long long)res.generation,
		       (unsigned long long)res.stats.files, cmd_bytes(res.stats.bytes, b1),
		       (unsigned long long)res.stats.new_files, cmd_bytes(res.stats.new_bytes, b2),
		       cmd_bytes(res.stats.stored_bytes, b3),
		       res.stats.duration_ns / 1e9);
	}
	repo_close(r);
out:
	free(tags);
	free(agent);
	free(excl);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_snapshot_entry = {
	.name = "snapshot",
	.usage = "DIR [--tag TAG]... [--agent-config PATH]... [--agent-config-exclude PATTERN]... "
		 CMD_COMMON_USAGE
		 " | --mount MOUNTPOINT [--tag TAG]... [--agent-config PATH]..."
		 " [--agent-config-exclude PATTERN]... [--json] [-q]",
	.summary = "take an encrypted, deduplicated snapshot of a directory or of a live mount",
	.exec = cmd_snapshot_exec,
};
