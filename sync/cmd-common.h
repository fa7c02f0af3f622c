/*
 * cmd-common.h - what the repository commands share: the options that
 * name the store, key and workspace, opening the repository, snapshot ids,
 * progress lines and --json output.
 */
#ifndef CAIRN_CMD_COMMON_H
#define CAIRN_CMD_COMMON_H

#include <getopt.h>
#include <stdint.h>

#include <jansson.h>

#include "cmd.h"
#include "index.h"
#include "record.h"
#include "repo.h"

struct cmd_common {
	struct repo_opts ro;
	const char *config;	/* -c */
	const char *name;	/* -w: the [workspace NAME] of cairn.conf */
	int json;
	int quiet;
	int progress;		/* stderr is a terminal and not --quiet/--json */
};

enum {
	OPT_STORE = 1000, OPT_KEY, OPT_TENANT, OPT_WORKSPACE, OPT_STATE_DIR,
	OPT_JSON, OPT_FORCE, OPT_ALLOW_ROLLBACK, OPT_COMMON_LAST,
};

/* Spliced into each command's struct option array. */
#define CMD_COMMON_LONGOPTS \
	{ "store", required_argument, NULL, OPT_STORE }, \
	{ "key", required_argument, NULL, OPT_KEY }, \
	{ "tenant", required_argument, NULL, OPT_TENANT }, \
	{ "workspace", required_argument, NULL, OPT_WORKSPACE }, \
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR }, \
	{ "config", required_argument, NULL, 'c' }, \
	{ "name", required_argument, NULL, 'w' }, \
	{ "json", no_argument, NULL, OPT_JSON }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "force", no_argument, NULL, OPT_FORCE }, \
	{ "allow-rollback", no_argument, NULL, OPT_ALLOW_ROLLBACK }
#define CMD_COMMON_SHORTOPTS "c:w:q"
#define CMD_COMMON_USAGE "[--store URL] [--key PROVIDER] [--tenant T] [--workspace ID] [-w NAME] [-c CONFIG] [--state-dir DIR] [--json] [-q]"

/* Takes one getopt result; 1 when it was a common option, else 0. */
int cmd_common_opt(struct cmd_common *c, int opt, const char *arg);

/* Resolves the options (flags, CAIRN_*, cairn.conf) and opens the
 * repository; on failure prints the error and returns CMD_EXIT_ERROR. */
int cmd_open_repo(const struct cmd_entry *e, struct cmd_common *c, struct repo **out);
void cmd_common_free(struct cmd_common *c);

/* Turns "latest", a full id or a unique prefix (8+ hex digits) into a
 * snapshot id.  Returns 0 or -ENOENT / -EINVAL with a message. */
int cmd_resolve_snapshot(struct repo *r, const char *arg, char id[RECORD_ID_SIZE]);

/* Every snapshot record of the workspace, sorted by generation.  Records
 * that do not open or decode are left out with a warning and counted in
 * *damaged, so one bad record does not hide the others. */
int cmd_list_snapshots(struct repo *r, struct record_snapshot **out, char (**ids)[RECORD_ID_SIZE],
		       size_t *n, size_t *damaged);
void cmd_free_snapshots(struct record_snapshot *s, char (*ids)[RECORD_ID_SIZE], size_t n);

struct prune_stats;
/* Prints prune's summary (text or JSON); shared by prune and forget --prune. */
int cmd_prune_report(struct cmd_common *c, const struct prune_stats *st, int dry_run);
/* A prune progress callback for a struct cmd_common (arg). */
void cmd_prune_progress(const char *phase, uint64_t count, void *arg);

/* Prints one JSON object as a line on stdout and frees it. */
void cmd_json_line(json_t *obj);

/* "1.5 MiB" and the like into out. */
const char *cmd_bytes(uint64_t n, char out[32]);

/* Overwrites the progress line on stderr (only when c->progress). */
void cmd_progress_line(const struct cmd_common *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Ends the progress line. */
void cmd_progress_done(const struct cmd_common *c);

#endif
