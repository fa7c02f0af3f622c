/*
 * cmd-check.c - `cairn check [--read-data]`: verifies the repository (the
 * engine is check.c) and prints each problem on a line of its own, named
 * by object.  Exit 0 when nothing is damaged (warnings allowed), 1 when
 * something is or the check could not run.  Takes no lease.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cmd-common.h"
#include "err.h"

struct check_ui {
	const struct cmd_common *c;
	struct timespec last;
};

static void show_problem(const struct check_problem *p, void *arg)
{
	struct check_ui *ui = arg;
	size_t n = strlen(p->object);
	const char *msg = p->message;

	/* most engine messages start with the object's name already */
	if (!strncmp(msg, p->object, n) && msg[n] == ':' && msg[n + 1] == ' ')
		msg += n + 2;
	cmd_progress_done(ui->c);
	if (ui->c->json)
		cmd_json_line(json_pack("{s:s, s:s, s:s, s:b}", "problem", check_kind_name(p->kind),
					"object", p->object, "message", p->message,
					"damage", check_kind_is_damage(p->kind)));
	else
		printf("%s %s: %s\n", check_kind_name(p->kind), p->object, msg);
	fflush(stdout);
}

static void show_progress(const struct check_stats *st, void *arg)
{
	struct check_ui *ui = arg;
	struct timespec now;
	char b[32];

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - ui->last.tv_sec + (now.tv_nsec - ui->last.tv_nsec) / 1e9 < 0.1)
		return;
	ui->last = now;
	cmd_progress_line(ui->c, "%s: %llu/%llu packs, %llu snapshots, %llu trees, %s read",
			  st->phase, (unsigned long long)st->packs,
			  (unsigned long long)st->packs_total, (unsigned long long)st->snapshots,
			  (unsigned long long)st->trees, cmd_bytes(st->bytes_read, b));
}

static void show_summary(const struct cmd_common *c, const struct check_stats *st, int read_data)
{
	char b[32];

	if (c->json) {
		cmd_json_line(json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
					"ok", st->damage == 0,
					"damage", (json_int_t)st->damage,
					"warnings", (json_int_t)st->warnings,
					"keys", (json_int_t)st->keys,
					"snapshots", (json_int_t)st->snapshots,
					"trees", (json_int_t)st->trees,
					"blobs", (json_int_t)st->blobs,
					"packs", (json_int_t)st->packs,
					"index_objects", (json_int_t)st->index_objects,
					"blobs_read", (json_int_t)st->blobs_read,
					"bytes_read", (json_int_t)st->bytes_read,
					"read_data", read_data));
		return;
	}
	if (c->quiet && !st->damage)
		return;
	printf("%s: %llu snapshots, %llu trees, %llu blobs, %llu packs, %llu index objects checked",
	       st->damage ? "damaged" : "no damage", (unsigned long long)st->snapshots,
	       (unsigned long long)st->trees, (unsigned long long)st->blobs,
	       (unsigned long long)st->packs, (unsigned long long)st->index_objects);
	if (read_data)
		printf(", %llu blobs read", (unsigned long long)st->blobs_read);
	printf("; %s read", cmd_bytes(st->bytes_read, b));
	if (st->damage)
		printf("; %llu problem%s", (unsigned long long)st->damage, st->damage > 1 ? "s" : "");
	if (st->warnings)
		printf("; %llu warning%s", (unsigned long long)st->warnings,
		       st->warnings > 1 ? "s" : "");
	printf("\n");
}

static int cmd_check_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ "read-data", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	struct check_opts o = { 0 };
	struct check_stats st;
	struct check_ui ui = { &c, { 0, 0 } };
	struct repo *r = NULL;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if (cmd_common_opt(&c, opt, optarg))
			continue;
		if (opt != 'D')
			return cmd_usage(&cmd_check_entry);
		o.read_data = 1;
	}
	if (optind != argc)
		return cmd_usage(&cmd_check_entry);
	rc = cmd_open_repo(&cmd_check_entry, &c, &r);
	if (rc) {
		cmd_common_free(&c);
		return rc;
	}
	o.problem = show_problem;
	o.problem_arg = &ui;
	o.progress = show_progress;
	o.progress_arg = &ui;
	rc = check_repo(r, &o, &st);
	cmd_progress_done(&c);
	if (rc) {
		rc = cmd_fail(&cmd_check_entry, NULL);
	} else {
		show_summary(&c, &st, o.read_data);
		rc = st.damage ? CMD_EXIT_ERROR : CMD_EXIT_OK;
	}
	repo_close(r);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_check_entry = {
	.name = "check",
	.usage = "[--read-data] " CMD_COMMON_USAGE,
	.summary = "verify the repository; --read-data also decrypts every blob",
	.exec = cmd_check_exec,
};
