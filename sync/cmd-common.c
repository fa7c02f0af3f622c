/*
 * cmd-common.c - options, repository opening, snapshot ids and output that
 * the repository commands share (see cmd-common.h).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd-common.h"
#include "err.h"
#include "fetch.h"
#include "log.h"
#include "repo.h"
#include "stop.h"

const char *cmd_program = "cairn";

int cmd_usage(const struct cmd_entry *e)
{
	fprintf(stderr, "usage: %s %s %s\n", cmd_program, e->name, e->usage);
	return CMD_EXIT_USAGE;
}

int cmd_fail(const struct cmd_entry *e, const char *what)
{
	const char *msg = err_msg();

	if (what && *msg)
		fprintf(stderr, "%s %s: %s: %s\n", cmd_program, e->name, what, msg);
	else
		fprintf(stderr, "%s %s: %s\n", cmd_program, e->name, what ? what : msg);
	return CMD_EXIT_ERROR;
}

int cmd_common_opt(struct cmd_common *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_STORE: c->ro.store_url = arg; return 1;
	case OPT_KEY: c->ro.key = arg; return 1;
	case OPT_TENANT: c->ro.tenant = arg; return 1;
	case OPT_WORKSPACE: c->ro.workspace = arg; return 1;
	case OPT_STATE_DIR: c->ro.state_dir = arg; return 1;
	case 'c': c->config = arg; return 1;
	case 'w': c->name = arg; return 1;
	case OPT_JSON: c->json = 1; return 1;
	case 'q': c->quiet = 1; return 1;
	case OPT_FORCE: c->ro.force = 1; return 1;
	case OPT_ALLOW_ROLLBACK: c->ro.allow_rollback = 1; return 1;
	default: return 0;
	}
}

int cmd_open_repo(const struct cmd_entry *e, struct cmd_common *c, struct repo **out)
{
	int rc = repo_opts_resolve(&c->ro, c->config, c->name);

	c->progress = !c->quiet && !c->json && isatty(STDERR_FILENO);
	if (!rc)
		rc = repo_open(&c->ro, out);
	if (rc)
		return cmd_fail(e, NULL);
	return CMD_EXIT_OK;
}

void cmd_common_free(struct cmd_common *c)
{
	repo_opts_free(&c->ro);
}

int cmd_resolve_snapshot(struct repo *r, const char *arg, char id[RECORD_ID_SIZE])
{
	return fetch_resolve_snapshot(r, arg, id);
}

int cmd_list_snapshots(struct repo *r, struct record_snapshot **out, char (**ids)[RECORD_ID_SIZE],
		       size_t *n, size_t *damaged)
{
	struct snapshot_ids s = { 0 };
	struct record_snapshot *recs;
	size_t kept = 0;
	int rc = fetch_snapshot_ids(r, &s);

	*out = NULL;
	*ids = NULL;
	*n = 0;
	*damaged = 0;
	if (rc) {
		free(s.ids);
		return rc;
	}
	recs = xcalloc(s.n ? s.n : 1, sizeof(*recs));
	for (size_t i = 0; !rc && i < s.n; i++) {
		rc = fetch_snapshot(r, s.ids[i], &recs[kept]);
		if (rc == -EBADMSG || rc == -ENOTSUP || rc == -ENOENT) {
			/* one bad record must not hide the others: check names it */
			log_warn("skipping snapshot %.8s: %s", s.ids[i], err_msg());
			++*damaged;
			rc = 0;
			continue;
		}
		if (!rc)
			memmove(s.ids[kept++], s.ids[i], RECORD_ID_SIZE);
	}
	if (!rc)
		s.n = kept;
	if (rc) {
		cmd_free_snapshots(recs, s.ids, s.n);
		return rc;
	}
	/* sort records and ids together by generation */
	for (size_t i = 1; i < s.n; i++) {
		for (size_t j = i; j > 0 && record_snapshot_cmp(&recs[j - 1], &recs[j]) > 0; j--) {
			struct record_snapshot t = recs[j];
			char tid[RECORD_ID_SIZE];

			recs[j] = recs[j - 1];
			recs[j - 1] = t;
			memcpy(tid, s.ids[j], RECORD_ID_SIZE);
			memcpy(s.ids[j], s.ids[j - 1], RECORD_ID_SIZE);
			memcpy(s.ids[j - 1], tid, RECORD_ID_SIZE);
		}
	}
	*out = recs;
	*ids = s.ids;
	*n = s.n;
	return 0;
}

void cmd_free_snapshots(struct record_snapshot *s, char (*ids)[RECORD_ID_SIZE], size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		record_snapshot_free(&s[i]);
	free(s);
	free(ids);
}

void cmd_json_line(json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);

	if (text) {
		puts(text);
		fflush(stdout);
	}
	free(text);
	json_decref(obj);
}

const char *cmd_bytes(uint64_t n, char out[32])
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%llu B", (unsigned long long)n);
	else
		snprintf(out, 32, "%.1f %s", v, units[u]);
	return out;
}

void cmd_progress_line(const struct cmd_common *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!c->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
}

void cmd_progress_done(const struct cmd_common *c)
{
	if (c->progress) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
	}
}

/* A stop signal: a command that holds no lease ends at once, as the
 * default action would; one that does stops at its next safe point
 * (repo_stop_check), commits nothing more and releases the lease first. */
static void on_stop(int sig, void *unused)
{
	static int told;
	char line[160];
	int n;

	(void)unused;
	if (!repo_leases_held())
		_exit(128 + sig);
	if (told++)
		return;
	n = snprintf(line, sizeof(line), "%s: %s: stopping at the next safe point; the lease is released first\n",
		     cmd_program, stop_signal_name(sig));
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

int cmd_stop_init(void)
{
	stop_set_cancels(1);
	if (stop_init(on_stop, NULL)) {
		fprintf(stderr, "%s: %s\n", cmd_program, err_msg());
		return -1;
	}
	return 0;
}
