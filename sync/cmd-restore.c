/*
 * cmd-restore.c - `cairn restore SNAPSHOT|latest DIR`: a snapshot's
 * workspace (or one path of it) written back to a directory.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd-common.h"
#include "err.h"
#include "fetch.h"
#include "restore.h"

struct progress_ctx {
	const struct cmd_common *c;
	struct restore_progress last;	/* for the summary: what was written */
};

static void show_progress(const struct restore_progress *p, void *arg)
{
	struct progress_ctx *pc = arg;
	const struct cmd_common *c = pc->c;
	char b1[32], b2[32];

	pc->last = *p;
	cmd_progress_line(c, "%llu/%llu files, %s of %s", (unsigned long long)p->files,
			  (unsigned long long)p->total_files, cmd_bytes(p->bytes, b1),
			  cmd_bytes(p->total_bytes, b2));
}

static int cmd_restore_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ "include", required_argument, NULL, 'i' },
		{ "root", required_argument, NULL, 'R' },
		{ "privileged", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	struct restore_opts ro = { 0 };
	struct progress_ctx pc = { .c = &c };
	struct record_snapshot rec;
	struct index *idx = NULL;
	struct repo *r = NULL;
	char id[RECORD_ID_SIZE], b1[32];
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS "i:", longopts, NULL)) != -1) {
		if (cmd_common_opt(&c, opt, optarg))
			continue;
		if (opt == 'i')
			ro.include = optarg;
		else if (opt == 'R')
			ro.root = optarg;
		else if (opt == 'P')
			ro.privileged = 1;
		else
			return cmd_usage(&cmd_restore_entry);
	}
	if (optind + 2 != argc)
		return cmd_usage(&cmd_restore_entry);
	rc = cmd_open_repo(&cmd_restore_entry, &c, &r);
	if (rc) {
		cmd_common_free(&c);
		return rc;
	}
	record_snapshot_init(&rec);
	ro.progress = show_progress;
	ro.progress_arg = &pc;
	rc = cmd_resolve_snapshot(r, argv[optind], id);
	if (!rc)
		rc = fetch_snapshot(r, id, &rec);
	if (!rc)
		rc = fetch_index(r, &idx);
	if (!rc)
		rc = restore_snapshot(r, idx, &rec, argv[optind + 1], &ro);
	cmd_progress_done(&c);
	if (rc)
		rc = cmd_fail(&cmd_restore_entry, NULL);
	else if (c.json)
		cmd_json_line(json_pack("{s:s, s:s, s:I, s:I, s:I}", "snapshot", id, "target", argv[optind + 1],
					"files", (json_int_t)pc.last.files,
					"bytes", (json_int_t)pc.last.bytes,
					"privileges_left_out", (json_int_t)pc.last.stripped));
	else if (!c.quiet)
		printf("restored snapshot %.8s (generation %llu) to %s: %llu files, %s\n", id,
		       (unsigned long long)rec.generation, argv[optind + 1],
		       (unsigned long long)pc.last.files, cmd_bytes(pc.last.bytes, b1));
	index_free(idx);
	record_snapshot_free(&rec);
	repo_close(r);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_restore_entry = {
	.name = "restore",
	.usage = "SNAPSHOT|latest DIR [--include PATH] [--root NAME] [--privileged] " CMD_COMMON_USAGE,
	.summary = "write a snapshot (or one path of it) back to a directory",
	.exec = cmd_restore_exec,
};
