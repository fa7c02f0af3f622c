/*
 * cmd-ls.c - `cairn ls`: the snapshots of a workspace, or with a snapshot
 * id the files of that snapshot (under PATH), one per line.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "blob.h"
#include "cmd-common.h"
#include "err.h"
#include "fetch.h"
#include "tree.h"

static void format_time(uint64_t ns, char *out, size_t size)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;

	strftime(out, size, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
}

static int list_snapshots(struct cmd_common *c, struct repo *r)
{
	struct record_snapshot *recs;
	char (*ids)[RECORD_ID_SIZE];
	size_t n, damaged;
	int rc = cmd_list_snapshots(r, &recs, &ids, &n, &damaged);

	if (rc)
		return rc;
	if (!c->json && n)
		printf("%-8s  %-19s  %5s  %-20s  %9s  %10s  %s\n", "id", "time", "gen", "host",
		       "files", "size", "tags");
	for (size_t i = 0; i < n; i++) {
		struct record_snapshot *s = &recs[i];
		char when[32], size[32];

		format_time(s->time_ns, when, sizeof(when));
		if (c->json) {
			json_t *tags = json_array();

			for (size_t t = 0; t < s->ntags; t++)
				json_array_append_new(tags, json_string(s->tags[t]));
			cmd_json_line(json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:o}", "id", ids[i],
						"time", when, "generation", (json_int_t)s->generation,
						"host", s->host, "parent", s->parent,
						"files", (json_int_t)s->stats.files,
						"bytes", (json_int_t)s->stats.bytes, "tags", tags));
			continue;
		}
		printf("%.8s  %-19s  %5" PRIu64 "  %-20.20s  %9" PRIu64 "  %10s  ", ids[i], when,
		       s->generation, s->host, s->stats.files, cmd_bytes(s->stats.bytes, size));
		for (size_t t = 0; t < s->ntags; t++)
			printf("%s%s", t ? "," : "", s->tags[t]);
		printf("\n");
	}
	cmd_free_snapshots(recs, ids, n);
	if (damaged)
		return err_set(-EBADMSG, "%zu snapshot record%s could not be read: run 'cairn check'",
			       damaged, damaged == 1 ? "" : "s");
	return 0;
}

static int print_tree(struct cmd_common *c, struct repo *r, struct index *idx,
		      const struct tree *t, const char *prefix)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < t->count; i++) {
		const struct tree_entry *e = &t->entries[i];
		char *path = xasprintf("%s/%s", prefix, e->name);

		if (c->json)
			cmd_json_line(json_pack("{s:s, s:s, s:i, s:I, s:I}", "path", path,
						"type", tree_type_name(e->type), "mode", e->mode,
						"size", (json_int_t)e->size,
						"mtime", (json_int_t)e->mtime.sec));
		else
			printf("%s%s\n", path, e->type == TREE_DIR ? "/" : "");
		if (e->type == TREE_DIR) {
			struct tree sub;

			rc = fetch_tree(r, idx, e->subtree, &sub);
			if (!rc)
				rc = print_tree(c, r, idx, &sub, path);
			tree_free(&sub);
		}
		free(path);
	}
	return rc;
}

static int list_files(struct cmd_common *c, struct repo *r, const char *snap, const char *path)
{
	struct record_snapshot rec;
	struct index *idx = NULL;
	struct tree t = TREE_INIT;
	char id[RECORD_ID_SIZE], *copy = xstrdup(path ? path : ""), *save = NULL, *prefix;
	int rc;

	record_snapshot_init(&rec);
	rc = cmd_resolve_snapshot(r, snap, id);
	if (!rc)
		rc = fetch_snapshot(r, id, &rec);
	if (!rc)
		rc = fetch_index(r, &idx);
	if (!rc)
		rc = fetch_tree(r, idx, record_snapshot_root(&rec, RECORD_ROOT_WORKSPACE), &t);
	prefix = xstrdup("");
	for (char *part = strtok_r(copy, "/", &save); !rc && part; part = strtok_r(NULL, "/", &save)) {
		const struct tree_entry *e = tree_find(&t, part);
		struct tree sub;
		char *next;

		if (!e || e->type != TREE_DIR) {
			rc = err_set(-ENOENT, "%s: no such directory in snapshot %.8s", path, id);
			break;
		}
		rc = fetch_tree(r, idx, e->subtree, &sub);
		tree_free(&t);
		t = sub;
		next = xasprintf("%s/%s", prefix, part);
		free(prefix);
		prefix = next;
	}
	if (!rc)
		rc = print_tree(c, r, idx, &t, prefix);
	free(prefix);
	free(copy);
	tree_free(&t);
	index_free(idx);
	record_snapshot_free(&rec);
	return rc;
}

static int cmd_ls_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	struct repo *r = NULL;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, longopts, NULL)) != -1)
		if (!cmd_common_opt(&c, opt, optarg))
			return cmd_usage(&cmd_ls_entry);
	if (argc - optind > 2)
		return cmd_usage(&cmd_ls_entry);
	rc = cmd_open_repo(&cmd_ls_entry, &c, &r);
	if (!rc) {
		if (optind == argc)
			rc = list_snapshots(&c, r);
		else
			rc = list_files(&c, r, argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL);
		if (rc)
			rc = cmd_fail(&cmd_ls_entry, NULL);
	}
	repo_close(r);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_ls_entry = {
	.name = "ls",
	.usage = "[SNAPSHOT [PATH]] " CMD_COMMON_USAGE,
	.summary = "list the snapshots, or the files of one snapshot",
	.exec = cmd_ls_exec,
};
