/*
 * cmd-prune.c - `cairn prune`: deletes or repacks the packs whose blobs no
 * snapshot references, holding the workspace's lease.
 */
#include "config.h"

#include <stdio.h>

#include "cmd-common.h"
#include "err.h"
#include "prune.h"

void cmd_prune_progress(const char *phase, uint64_t count, void *arg)
{
	cmd_progress_line(arg, "prune: %s (%llu)", phase, (unsigned long long)count);
}

int cmd_prune_report(struct cmd_common *c, const struct prune_stats *st, int dry_run)
{
	char b1[32], b2[32];

	if (c->json) {
		cmd_json_line(json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "dry_run", dry_run,
					"packs", (json_int_t)st->packs,
					"packs_deleted", (json_int_t)st->packs_deleted,
					"packs_repacked", (json_int_t)st->packs_repacked,
					"packs_unreferenced", (json_int_t)st->packs_unreferenced,
					"packs_stale", (json_int_t)st->packs_stale,
					"blobs_dead", (json_int_t)st->blobs_dead,
					"bytes_before", (json_int_t)st->bytes_before,
					"bytes_freed", (json_int_t)st->bytes_freed));
	} else if (!c->quiet) {
		printf("%s: %llu of %llu packs deleted, %llu repacked, %llu unreferenced; %llu unused blobs; %s of %s freed\n",
		       dry_run ? "prune (dry run)" : "prune",
		       (unsigned long long)st->packs_deleted, (unsigned long long)st->packs,
		       (unsigned long long)st->packs_repacked, (unsigned long long)st->packs_unreferenced,
		       (unsigned long long)st->blobs_dead, cmd_bytes(st->bytes_freed, b1),
		       cmd_bytes(st->bytes_before, b2));
	}
	return 0;
}

static int cmd_prune_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	struct prune_stats st;
	struct repo *r = NULL;
	int dry = 0, opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS "n", longopts, NULL)) != -1) {
		if (cmd_common_opt(&c, opt, optarg))
			continue;
		if (opt != 'n')
			return cmd_usage(&cmd_prune_entry);
		dry = 1;
	}
	if (optind != argc)
		return cmd_usage(&cmd_prune_entry);
	rc = cmd_open_repo(&cmd_prune_entry, &c, &r);
	if (rc) {
		cmd_common_free(&c);
		return rc;
	}
	rc = dry ? 0 : repo_lease_acquire_as(r, "cairn prune");
	if (!rc) {
		struct prune_opts po = { dry, cmd_prune_progress, &c };

		rc = prune_repo(r, &po, &st);
		cmd_progress_done(&c);
	}
	if (rc)
		rc = cmd_fail(&cmd_prune_entry, NULL);
	else
		cmd_prune_report(&c, &st, dry);
	repo_close(r);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_prune_entry = {
	.name = "prune",
	.usage = "[--dry-run] " CMD_COMMON_USAGE,
	.summary = "delete or repack the data no snapshot needs any more",
	.exec = cmd_prune_exec,
};
