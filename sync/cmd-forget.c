/*
 * cmd-forget.c - `cairn forget`: removes the snapshot records the keep
 * rules do not keep (the head's snapshot is always kept); with --prune,
 * then removes the data no snapshot needs any more.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-common.h"
#include "conf.h"
#include "err.h"
#include "prune.h"

static int parse_keep(const char *arg, long *out)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (end == arg || *end || v < 0)
		return -1;
	*out = v;
	return 0;
}

/* Keep rules not given as flags come from the workspace's cairn.conf section. */
static void keep_from_conf(struct cmd_common *c, struct keep_rules *k)
{
	const struct conf *conf = c->ro.conf;
	const struct conf_workspace *w = NULL;

	if (!conf)
		return;
	if (c->name)
		w = conf_find(conf, c->name);
	else if (conf->n == 1)
		w = &conf->ws[0];
	if (!w)
		return;
	if (k->last < 0)
		k->last = w->keep_last;
	if (k->hourly < 0)
		k->hourly = w->keep_hourly;
	if (k->daily < 0)
		k->daily = w->keep_daily;
	if (k->weekly < 0)
		k->weekly = w->keep_weekly;
}

static int cmd_forget_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ "keep-last", required_argument, NULL, 'l' },
		{ "keep-hourly", required_argument, NULL, 'H' },
		{ "keep-daily", required_argument, NULL, 'd' },
		{ "keep-weekly", required_argument, NULL, 'W' },
		{ "prune", no_argument, NULL, 'p' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct keep_rules k = { -1, -1, -1, -1 };
	struct cmd_common c = { 0 };
	struct record_snapshot *snaps = NULL;
	char (*ids)[RECORD_ID_SIZE] = NULL;
	struct repo_head head;
	struct repo *r = NULL;
	const char **gone = NULL;
	size_t n = 0, ngone = 0, damaged = 0;
	int *keep = NULL, prune = 0, dry = 0, opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS "n", longopts, NULL)) != -1) {
		long *slot = opt == 'l' ? &k.last : opt == 'H' ? &k.hourly :
			     opt == 'd' ? &k.daily : opt == 'W' ? &k.weekly : NULL;

		if (cmd_common_opt(&c, opt, optarg))
			continue;
		if (slot && parse_keep(optarg, slot) == 0)
			continue;
		if (slot) {
			fprintf(stderr, "cairn forget: '%s' is not a count: give 0 or more\n", optarg);
			return CMD_EXIT_USAGE;
		}
		if (opt == 'p')
			prune = 1;
		else if (opt == 'n')
			dry = 1;
		else
			return cmd_usage(&cmd_forget_entry);
	}
	if (optind != argc)
		return cmd_usage(&cmd_forget_entry);
	rc = cmd_open_repo(&cmd_forget_entry, &c, &r);
	if (rc) {
		cmd_common_free(&c);
		return rc;
	}
	keep_from_conf(&c, &k);
	if (k.last <= 0 && k.hourly <= 0 && k.daily <= 0 && k.weekly <= 0) {
		fprintf(stderr, "cairn forget: no keep rule given: use --keep-last N (or --keep-hourly/--keep-daily/--keep-weekly, or keep_* in cairn.conf)\n");
		repo_close(r);
		cmd_common_free(&c);
		return CMD_EXIT_USAGE;
	}
	rc = dry ? 0 : repo_lease_acquire_as(r, "cairn forget");
	if (!rc)
		rc = repo_head_read(r, &head);
	if (!rc)
		rc = cmd_list_snapshots(r, &snaps, &ids, &n, &damaged);
	if (!rc && damaged)
		rc = err_set(-EBADMSG, "%zu snapshot record%s could not be read; forget decides nothing until 'cairn check' is clean",
			     damaged, damaged == 1 ? "" : "s");
	if (!rc) {
		keep = xcalloc(n ? n : 1, sizeof(*keep));
		gone = xcalloc(n ? n : 1, sizeof(*gone));
		prune_select(snaps, ids, n, &k, head.snapshot_id, keep);
		for (size_t i = 0; i < n; i++) {
			if (keep[i])
				continue;
			gone[ngone] = xasprintf("snapshots/%s", ids[i]);
			ngone++;
			if (c.json)
				cmd_json_line(json_pack("{s:s, s:s}", "forget", ids[i], "dry_run", dry ? "yes" : "no"));
			else if (!c.quiet)
				printf("%s snapshot %.8s (generation %llu)\n", dry ? "would forget" : "forget",
				       ids[i], (unsigned long long)snaps[i].generation);
		}
		if (!dry && ngone)
			rc = repo_lease_confirm(r);
		if (!dry && ngone && !rc)
			rc = store_del_many(r->store, gone, ngone);
	}
	if (!rc && !c.json && !c.quiet)
		printf("%zu snapshots kept, %zu %sforgotten\n", n - ngone, ngone, dry ? "to be " : "");
	if (!rc && prune) {
		struct prune_stats st;

		struct prune_opts po = { dry, cmd_prune_progress, &c };

		rc = prune_repo(r, &po, &st);
		cmd_progress_done(&c);
		if (!rc)
			cmd_prune_report(&c, &st, dry);
	}
	if (rc)
		rc = cmd_fail(&cmd_forget_entry, NULL);
	for (size_t i = 0; i < ngone; i++)
		free((char *)gone[i]);
	free(gone);
	free(keep);
	cmd_free_snapshots(snaps, ids, n);
	repo_close(r);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_forget_entry = {
	.name = "forget",
	.usage = "--keep-last N|--keep-hourly N|--keep-daily N|--keep-weekly N [--prune] [--dry-run] " CMD_COMMON_USAGE,
	.summary = "remove the snapshots the keep rules do not keep",
	.exec = cmd_forget_exec,
};
