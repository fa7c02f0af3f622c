/*
 * conf.c - reading cairn.conf with inih (see conf.h).
 *
 * inih reports the line of the first handler that returns 0, so the
 * handler only records what was wrong and conf_load adds PATH:LINE.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "buf.h"
#include "conf.h"
#include "err.h"
#include "fsutil.h"

struct conf_parse {
	struct conf *c;
	char why[512];
};

int conf_parse_duration(const char *s, long *out)
{
	char *end;
	long v, mult = 1;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || errno || v < 0)
		return -EINVAL;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mult = 1;
	else if (!strcmp(end, "m"))
		mult = 60;
	else if (!strcmp(end, "h"))
		mult = 3600;
	else if (!strcmp(end, "d"))
		mult = 86400;
	else
		return -EINVAL;
	if (v > LONG_MAX / mult)
		return -EINVAL;
	*out = v * mult;
	return 0;
}

int conf_parse_bool(const char *s, int *out)
{
	if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1"))
		*out = 1;
	else if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "0"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

static int parse_count(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < 0 || v > 1000000)
		return -EINVAL;
	*out = v;
	return 0;
}

static struct conf_workspace *ws_section(struct conf *c, const char *name)
{
	struct conf_workspace *w;

	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->ws[i].name, name))
			return &c->ws[i];
	c->ws = xrealloc(c->ws, (c->n + 1) * sizeof(*c->ws));
	w = &c->ws[c->n++];
	memset(w, 0, sizeof(*w));
	w->name = xstrdup(name);
	w->interval = w->idle_after = w->shutdown_after = w->shutdown_deadline = -1;
	w->final_snapshot = -1;
	w->keep_last = w->keep_hourly = w->keep_daily = w->keep_weekly = -1;
	return w;
}

/* Keeps what cairn and cairnfs use of [control-plane]. */
static void control_plane(struct conf *c, const char *name, const char *value)
{
	char **f = !strcmp(name, "url") ? &c->cp_url : !strcmp(name, "token_file") ? &c->cp_token_file :
		   !strcmp(name, "ca_file") ? &c->cp_ca_file : NULL;

	if (f) {
		free(*f);
		*f = xstrdup(value);
	}
}

static int conf_handler(void *user, const char *section, const char *name, const char *value)
{
	static const struct {
		const char *key;
		size_t off;
	} strings[] = {
		{ "store", offsetof(struct conf_workspace, store) },
		{ "tenant", offsetof(struct conf_workspace, tenant) },
		{ "workspace", offsetof(struct conf_workspace, workspace) },
		{ "key", offsetof(struct conf_workspace, key) },
		{ "mountpoint", offsetof(struct conf_workspace, mountpoint) },
		{ "cache_dir", offsetof(struct conf_workspace, cache_dir) },
		{ "cache_size", offsetof(struct conf_workspace, cache_size) },
		{ "host_id", offsetof(struct conf_workspace, host_id) },
		{ "takeover_from", offsetof(struct conf_workspace, takeover_from) },
		{ "lease_ttl", offsetof(struct conf_workspace, lease_ttl) },
		{ "lease_wait", offsetof(struct conf_workspace, lease_wait) },
		{ "atime", offsetof(struct conf_workspace, atime) },
	}, durations[] = {
		{ "interval", offsetof(struct conf_workspace, interval) },
		{ "idle_after", offsetof(struct conf_workspace, idle_after) },
		{ "shutdown_after", offsetof(struct conf_workspace, shutdown_after) },
		{ "shutdown_deadline", offsetof(struct conf_workspace, shutdown_deadline) },
	}, counts[] = {
		{ "keep_last", offsetof(struct conf_workspace, keep_last) },
		{ "keep_hourly", offsetof(struct conf_workspace, keep_hourly) },
		{ "keep_daily", offsetof(struct conf_workspace, keep_daily) },
		{ "keep_weekly", offsetof(struct conf_workspace, keep_weekly) },
	};
	struct conf_parse *p = user;
	struct conf_workspace *w;
	char *base;

	if (strncmp(section, "workspace ", 10) != 0 || !section[10]) {
		if (!strcmp(section, "workspace") || !*section) {
			snprintf(p->why, sizeof(p->why), "'%s' outside a [workspace NAME] section", name);
			return 0;
		}
		if (!strcmp(section, "control-plane") && name)
			control_plane(p->c, name, value);
		return 1;	/* another program's section (cairnd) */
	}
	if (!name) {
		ws_section(p->c, section + 10);
		return 1;
	}
	w = ws_section(p->c, section + 10);
	base = (char *)w;
	for (size_t i = 0; i < sizeof(strings) / sizeof(*strings); i++) {
		if (strcmp(name, strings[i].key))
			continue;
		if (!*value) {
			snprintf(p->why, sizeof(p->why), "'%s' needs a value", name);
			return 0;
		}
		if (!strcmp(name, "cache_size")) {
			uint64_t size;

			if (fsu_parse_size(value, &size)) {
				snprintf(p->why, sizeof(p->why),
					 "'cache_size = %s' is not a size: use bytes or a number with K, M, G or T (e.g. 20G)",
					 value);
				return 0;
			}
		}
		if (!strcmp(name, "lease_ttl")) {
			long secs;

			if (conf_parse_duration(value, &secs) || secs < 2 || secs > 86400) {
				snprintf(p->why, sizeof(p->why),
					 "'lease_ttl = %s' is not a duration from 2s to 1d (e.g. 30s)", value);
				return 0;
			}
		}
		if (!strcmp(name, "lease_wait") && strcmp(value, "forever")) {
			long secs;

			if (conf_parse_duration(value, &secs)) {
				snprintf(p->why, sizeof(p->why),
					 "'lease_wait = %s' is not a duration or 'forever' (e.g. 5m)", value);
				return 0;
			}
		}
		if (!strcmp(name, "atime") && strcmp(value, "relatime") && strcmp(value, "strictatime") &&
		    strcmp(value, "noatime")) {
			snprintf(p->why, sizeof(p->why),
				 "'atime = %s' is not relatime, strictatime or noatime", value);
			return 0;
		}
		free(*(char **)(base + strings[i].off));
		*(char **)(base + strings[i].off) = xstrdup(value);
		return 1;
	}

	for (size_t i = 0; i < sizeof(durations) / sizeof(*durations); i++) {
		if (strcmp(name, durations[i].key))
			continue;
		if (conf_parse_duration(value, (long *)(base + durations[i].off)) == 0)
			return 1;
		snprintf(p->why, sizeof(p->why), "'%s = %s' is not a duration: use seconds or a number with s, m, h or d (e.g. 5m)",
			 name, value);
		return 0;
	}
	if (!strcmp(name, "final_snapshot")) {
		if (conf_parse_bool(value, &w->final_snapshot) == 0)
			return 1;
		snprintf(p->why, sizeof(p->why), "'final_snapshot = %s' is not yes or no", value);
		return 0;
	}
	if (!strcmp(name, "init") || !strcmp(name, "unsafe_no_conditional_writes")) {
		int *flag = !strcmp(name, "init") ? &w->init : &w->unsafe_no_cond;

		if (conf_parse_bool(value, flag) == 0)
			return 1;
		snprintf(p->why, sizeof(p->why), "'%s = %s' is not yes or no", name, value);
		return 0;
	}
	for (size_t i = 0; i < sizeof(counts) / sizeof(*counts); i++) {
		if (strcmp(name, counts[i].key))
			continue;
		if (parse_count(value, (long *)(base + counts[i].off)) == 0)
			return 1;
		snprintf(p->why, sizeof(p->why), "'%s = %s' is not a count (0 or more)", name, value);
		return 0;
	}
	snprintf(p->why, sizeof(p->why), "unknown key '%s' in [%s]; see cairn.conf(5)", name, section);
	return 0;
}

int conf_check_lines(FILE *f, const char *path)
{
	char line[CONF_MAX_LINE + 2];
	int n = 0;

	while (fgets(line, sizeof(line), f)) {
		n++;
		if (!strchr(line, '\n') && strlen(line) > CONF_MAX_LINE) {
			rewind(f);
			return err_set(-EINVAL, "%s:%d: a line of more than %d bytes: put a long command in"
				       " a script and name the script", path, n, CONF_MAX_LINE);
		}
	}
	rewind(f);
	return 0;
}

int conf_load(const char *path, struct conf *out)
{
	struct conf_parse p = { .c = out };
	FILE *f;
	int line;

	memset(out, 0, sizeof(*out));
	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return err_set(-ENOENT, "%s: no such file", path);
		return err_set(-errno, "%s: %s", path, strerror(errno));
	}
	if (conf_check_lines(f, path)) {
		fclose(f);
		return -EINVAL;
	}
	out->path = xstrdup(path);
	line = ini_parse_file(f, conf_handler, &p);
	fclose(f);
	if (line != 0) {
		int rc = err_set(-EINVAL, "%s:%d: %s", path, line,
				 p.why[0] ? p.why : "not an INI line (want KEY = VALUE or [SECTION])");

		conf_free(out);
		return rc;
	}
	return 0;
}

const struct conf_workspace *conf_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->ws[i].name, name))
			return &c->ws[i];
	return NULL;
}

void conf_free(struct conf *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct conf_workspace *w = &c->ws[i];

		free(w->name);
		free(w->store);
		free(w->tenant);
		free(w->workspace);
		free(w->key);
		free(w->mountpoint);
		free(w->cache_dir);
		free(w->cache_size);
		free(w->host_id);
		free(w->takeover_from);
		free(w->lease_ttl);
		free(w->lease_wait);
		free(w->atime);
	}
	free(c->ws);
	free(c->path);
	free(c->cp_url);
	free(c->cp_token_file);
	free(c->cp_ca_file);
	memset(c, 0, sizeof(*c));
}
