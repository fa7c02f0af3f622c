/*
 * conf.h - cairn.conf, the one INI file of a VM (see cairn.conf(5)).
 *
 * `cairn` reads the [workspace NAME] sections; cairnd's own sections come
 * later in the same file and are skipped here.  An unknown key or a bad
 * value in a workspace section is an error that names file:line.
 */
#ifndef CAIRN_CONF_H
#define CAIRN_CONF_H

#include <stddef.h>

#define CONF_DEFAULT_PATH "/etc/cairn/cairn.conf"

struct conf_workspace {
	char *name;		/* the section's NAME */
	char *store, *tenant, *workspace, *key;
	char *mountpoint, *cache_dir;
	char *cache_size;	/* cairnfs -o cache_size=, checked as a size */
	/* the lease (repo_opts): checked as a duration / "forever" */
	char *host_id, *takeover_from, *lease_ttl, *lease_wait;
	char *atime;		/* relatime, strictatime or noatime (cairnfs) */
	int init;		/* init = yes: cairnfs makes the workspace if missing */
	int final_snapshot;	/* final_snapshot = yes|no (cairnfs); -1 when not set */
	int unsafe_no_cond;	/* unsafe_no_conditional_writes = yes (store.h) */
	/* snapshot policy, seconds; -1 when not set */
	long interval, idle_after, shutdown_after, shutdown_deadline;
	/* keep rules; -1 when not set */
	long keep_last, keep_hourly, keep_daily, keep_weekly;
};

struct conf {
	char *path;
	/* [control-plane]: url, token_file, ca_file (cairnd checks them
	 * strictly; for cairn they are checked when used); NULL when not set */
	char *cp_url, *cp_token_file, *cp_ca_file;
	struct conf_workspace *ws;
	size_t n;
};

/* inih's line buffer (INI_MAX_LINE, 200 with the newline) */
#define CONF_MAX_LINE 198
#include <stdio.h>
/* PATH:LINE for the first line longer than CONF_MAX_LINE, which inih
 * would cut; f is rewound.  0 or -EINVAL with the error set. */
int conf_check_lines(FILE *f, const char *path);

/* Loads path.  Returns 0, -ENOENT when the file does not exist, or -EINVAL
 * with "PATH:LINE: what is wrong" for the first bad line. */
int conf_load(const char *path, struct conf *out);
/* The section named name, or NULL. */
const struct conf_workspace *conf_find(const struct conf *c, const char *name);
void conf_free(struct conf *c);

/* Parses yes/true/1 and no/false/0.  0 or -EINVAL. */
int conf_parse_bool(const char *s, int *out);
/* Parses "90", "90s", "5m", "2h", "1d" into seconds.  0 or -EINVAL. */
int conf_parse_duration(const char *s, long *out);

#endif
