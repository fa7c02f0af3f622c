/*
 * vconf.c - reading cairnd's sections of cairn.conf (see vconf.h).
 *
 * The file is read twice: sync/conf.c takes the [workspace NAME] sections
 * (and skips the rest), this file takes the rest (and skips those), so
 * `cairn` and cairnd agree on what a workspace is.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "buf.h"
#include "err.h"
#include "fsutil.h"
#include "keys.h"
#include "vconf.h"

/* the excludes of every agent-config unless the section says otherwise:
 * caches the agent rebuilds, which churn on every run */
static const char *const default_excludes[] = { "debug", "statsig", "shell-snapshots", NULL };

struct parse {
	struct vconf *c;
	char why[512];
};

static int bad(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	return 0;		/* inih: stop, at this line */
}

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value);
}

static void strv_add(char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(s);
	(*v)[*n] = NULL;
}

static struct vconf_agent *agent_section(struct vconf *c, const char *name)
{
	struct vconf_agent *a;

	for (size_t i = 0; i < c->nagents; i++)
		if (!strcmp(c->agents[i].name, name))
			return &c->agents[i];
	c->agents = xrealloc(c->agents, (c->nagents + 1) * sizeof(*c->agents));
	a = &c->agents[c->nagents++];
	memset(a, 0, sizeof(*a));
	a->name = xstrdup(name);
	a->restart = RESTART_ALWAYS;
	a->restart_delay = 1;
	a->restart_max_delay = 60;
	a->crash_loop_restarts = 5;
	a->crash_loop_window = 60;
	a->stop_grace = 10;
	a->log_max_size = 10u << 20;
	a->log_keep = 3;
	return a;
}

static int duration(struct parse *p, const char *name, const char *value, long *out, long min)
{
	if (conf_parse_duration(value, out) || *out < min)
		return bad(p, "'%s = %s' is not a duration of %lds or more: use seconds or a number"
			   " with s, m, h or d (e.g. 30s)", name, value, min);
	return 1;
}

static int agent_key(struct parse *p, struct vconf_agent *a, const char *name, const char *value)
{
	if (!strcmp(name, "workspace"))
		set_str(&a->workspace, value);
	else if (!strcmp(name, "command"))
		set_str(&a->command, value);
	else if (!strcmp(name, "user"))
		set_str(&a->user, value);
	else if (!strcmp(name, "cwd")) {
		if (value[0] != '/')
			return bad(p, "'cwd = %s' is not an absolute path", value);
		set_str(&a->cwd, value);
	} else if (!strcmp(name, "env")) {
		const char *eq = strchr(value, '=');

		if (!eq || eq == value)
			return bad(p, "'env = %s' is not NAME=VALUE", value);
		strv_add(&a->env, &a->nenv, value);
	} else if (!strcmp(name, "restart")) {
		if (!strcmp(value, "always"))
			a->restart = RESTART_ALWAYS;
		else if (!strcmp(value, "on-failure"))
			a->restart = RESTART_ON_FAILURE;
		else if (!strcmp(value, "no"))
			a->restart = RESTART_NEVER;
		else
			return bad(p, "'restart = %s' is not always, on-failure or no", value);
	} else if (!strcmp(name, "restart_delay")) {
		return duration(p, name, value, &a->restart_delay, 0);
	} else if (!strcmp(name, "restart_max_delay")) {
		return duration(p, name, value, &a->restart_max_delay, 0);
	} else if (!strcmp(name, "crash_loop_window")) {
		return duration(p, name, value, &a->crash_loop_window, 1);
	} else if (!strcmp(name, "stop_grace")) {
		return duration(p, name, value, &a->stop_grace, 0);
	} else if (!strcmp(name, "crash_loop_restarts")) {
		char *end;

		errno = 0;
		a->crash_loop_restarts = strtol(value, &end, 10);
		if (end == value || *end || errno || a->crash_loop_restarts < 1 ||
		    a->crash_loop_restarts > 1000)
			return bad(p, "'crash_loop_restarts = %s' is not a count from 1 to 1000", value);
	} else if (!strcmp(name, "log_max_size")) {
		if (fsu_parse_size(value, &a->log_max_size) || a->log_max_size < 4096)
			return bad(p, "'log_max_size = %s' is not a size of 4K or more (e.g. 10M)", value);
	} else if (!strcmp(name, "log_keep")) {
		char *end;

		errno = 0;
		a->log_keep = strtol(value, &end, 10);
		if (end == value || *end || errno || a->log_keep < 0 || a->log_keep > 100)
			return bad(p, "'log_keep = %s' is not a count from 0 to 100", value);
	} else {
		return bad(p, "unknown key '%s' in [agent %s]; see cairn.conf(5)", name, a->name);
	}
	return 1;
}

static struct vconf_agentcfg *acfg_section(struct vconf *c, const char *ws)
{
	for (size_t i = 0; i < c->ws.n; i++)
		if (!strcmp(c->ws.ws[i].name, ws))
			return &c->acfg[i];
	return NULL;
}

static int acfg_key(struct parse *p, struct vconf_agentcfg *g, const char *name, const char *value)
{
	if (!strcmp(name, "enabled")) {
		if (conf_parse_bool(value, &g->enabled))
			return bad(p, "'enabled = %s' is not yes or no", value);
	} else if (!strcmp(name, "credentials")) {
		if (conf_parse_bool(value, &g->credentials))
			return bad(p, "'credentials = %s' is not yes or no", value);
	} else if (!strcmp(name, "user")) {
		set_str(&g->user, value);
	} else if (!strcmp(name, "dir") || !strcmp(name, "home")) {
		if (value[0] != '/' || strlen(value) < 2)
			return bad(p, "'%s = %s' is not an absolute path", name, value);
		set_str(!strcmp(name, "dir") ? &g->dir : &g->home, value);
	} else if (!strcmp(name, "exclude")) {
		if (value[0] == '/' || strstr(value, ".."))
			return bad(p, "'exclude = %s' must be a pattern under the dir (no leading /, no ..)", value);
		if (g->exclude == (char **)default_excludes) {
			g->exclude = NULL;	/* the first exclude line replaces the defaults */
			g->nexclude = 0;
		}
		strv_add(&g->exclude, &g->nexclude, value);
	} else {
		return bad(p, "unknown key '%s' in [agent-config %s]; see cairn.conf(5)", name, g->workspace);
	}
	return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	struct vconf *c = p->c;

	if (!strncmp(section, "workspace ", 10))
		return 1;		/* sync/conf.c's */
	if (!strncmp(section, "agent ", 6) && section[6]) {
		struct vconf_agent *a = agent_section(c, section + 6);

		return name ? agent_key(p, a, name, value) : 1;
	}
	if (!strncmp(section, "agent-config ", 13) && section[13]) {
		struct vconf_agentcfg *g = acfg_section(c, section + 13);

		if (!g)
			return bad(p, "[%s]: no [workspace %s] section is above it", section, section + 13);
		return name ? acfg_key(p, g, name, value) : 1;
	}
	if (!strcmp(section, "cairnd")) {
		if (!name)
			return 1;
		if (!strcmp(name, "control_socket") || !strcmp(name, "log_dir") ||
		    !strcmp(name, "cairnfs") || !strcmp(name, "cairn")) {
			if (value[0] != '/')
				return bad(p, "'%s = %s' is not an absolute path", name, value);
			set_str(!strcmp(name, "control_socket") ? &c->control_socket :
				!strcmp(name, "log_dir") ? &c->log_dir :
				!strcmp(name, "cairnfs") ? &c->cairnfs : &c->cairn, value);
		} else if (!strcmp(name, "idle_hook")) {
			set_str(&c->idle_hook, value);
		} else if (!strcmp(name, "idle_cpu")) {
			char *end;

			errno = 0;
			c->idle_cpu = strtod(value, &end);
			if (end == value || (*end && strcmp(end, "%")) || errno || c->idle_cpu < 0 ||
			    c->idle_cpu > 10000)
				return bad(p, "'idle_cpu = %s' is not a percentage of one CPU (e.g. 5%%)", value);
		} else {
			return bad(p, "unknown key '%s' in [cairnd]; see cairn.conf(5)", name);
		}
		return 1;
	}
	if (!strcmp(section, "control-plane")) {
		if (!name)
			return 1;
		if (!strcmp(name, "url")) {
			if (strncmp(value, "https://", 8) && strncmp(value, "http://127.0.0.1", 16) &&
			    strncmp(value, "http://[::1]", 12))
				return bad(p, "'url = %s' is not an https:// URL", value);
			set_str(&c->cp_url, value);
		} else if (!strcmp(name, "token_file") || !strcmp(name, "ca_file")) {
			if (value[0] != '/')
				return bad(p, "'%s = %s' is not an absolute path", name, value);
			set_str(!strcmp(name, "token_file") ? &c->cp_token_file : &c->cp_ca_file, value);
		} else {
			return bad(p, "unknown key '%s' in [control-plane]; see cairn.conf(5)", name);
		}
		return 1;
	}
	return bad(p, "unknown section [%s]: want [cairnd], [workspace NAME], [agent NAME],"
		   " [agent-config WORKSPACE] or [control-plane]", section);
}

/* What can be checked only once the whole file is read. */
static int check(struct vconf *c)
{
	if (!c->ws.n)
		return err_set(-EINVAL, "%s: no [workspace NAME] section: cairnd has nothing to serve",
			       c->path);
	for (size_t i = 0; i < c->ws.n; i++) {
		const struct conf_workspace *w = &c->ws.ws[i];
		const char *miss = !w->store ? "store" : !w->key ? "key" :
				   !w->mountpoint ? "mountpoint" : !w->cache_dir ? "cache_dir" : NULL;

		if (miss)
			return err_set(-EINVAL, "%s: [workspace %s] has no '%s', which cairnd needs",
				       c->path, w->name, miss);
		if (w->mountpoint[0] != '/' || w->cache_dir[0] != '/')
			return err_set(-EINVAL, "%s: [workspace %s]: mountpoint and cache_dir must be absolute paths",
				       c->path, w->name);
		if (w->init && !w->workspace)
			return err_set(-EINVAL, "%s: [workspace %s]: init = yes needs 'workspace = ID', the id to create (without one, every start would make a new workspace)",
				       c->path, w->name);
		if (w->init && keys_provider_remote(w->key))
			return err_set(-EINVAL, "%s: [workspace %s]: init = yes needs a tenant key this machine loads (file:, env: or exec:); the control plane (%s) only unwraps keys",
				       c->path, w->name, w->key);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->ws.ws[j].mountpoint, w->mountpoint) ||
			    !strcmp(c->ws.ws[j].cache_dir, w->cache_dir))
				return err_set(-EINVAL, "%s: [workspace %s] and [workspace %s] share a mountpoint"
					       " or a cache_dir", c->path, c->ws.ws[j].name, w->name);
	}
	for (size_t i = 0; i < c->nagents; i++) {
		struct vconf_agent *a = &c->agents[i];

		if (!a->command)
			return err_set(-EINVAL, "%s: [agent %s] has no 'command'", c->path, a->name);
		if (!a->workspace && c->ws.n == 1)
			a->workspace = xstrdup(c->ws.ws[0].name);
		if (!a->workspace || !conf_find(&c->ws, a->workspace))
			return err_set(-EINVAL, "%s: [agent %s]: 'workspace = %s' names no [workspace] section",
				       c->path, a->name, a->workspace ? a->workspace : "(none)");
		if (!a->user)
			a->user = xstrdup("root");
		if (!getpwnam(a->user))
			return err_set(-EINVAL, "%s: [agent %s]: user '%s' does not exist on this machine",
				       c->path, a->name, a->user);
		if (a->restart_max_delay < a->restart_delay)
			a->restart_max_delay = a->restart_delay;
	}
	for (size_t i = 0; i < c->ws.n; i++) {
		struct vconf_agentcfg *g = &c->acfg[i];

		if (g->user && !getpwnam(g->user))
			return err_set(-EINVAL, "%s: [agent-config %s]: user '%s' does not exist on this machine",
				       c->path, g->workspace, g->user);
	}
	if (c->cp_url && !c->cp_token_file)
		return err_set(-EINVAL, "%s: [control-plane] has a url but no token_file", c->path);
	return 0;
}

int vconf_load(const char *path, struct vconf *out)
{
	struct parse p = { .c = out };
	FILE *f;
	int line, rc;

	memset(out, 0, sizeof(*out));
	rc = conf_load(path, &out->ws);
	if (rc)
		return rc;
	out->path = xstrdup(path);
	out->idle_cpu = 5.0;
	out->acfg = xcalloc(out->ws.n ? out->ws.n : 1, sizeof(*out->acfg));
	for (size_t i = 0; i < out->ws.n; i++) {
		out->acfg[i].workspace = xstrdup(out->ws.ws[i].name);
		out->acfg[i].enabled = 1;
		out->acfg[i].credentials = 1;
		out->acfg[i].exclude = (char **)default_excludes;
		out->acfg[i].nexclude = sizeof(default_excludes) / sizeof(*default_excludes) - 1;
	}
	f = fopen(path, "r");
	if (!f) {
		rc = err_set(-errno, "%s: %s", path, strerror(errno));
		vconf_free(out);
		return rc;
	}
	line = ini_parse_file(f, handler, &p);
	fclose(f);
	if (line != 0) {
		rc = err_set(-EINVAL, "%s:%d: %s", path, line,
			     p.why[0] ? p.why : "not an INI line (want KEY = VALUE or [SECTION])");
		vconf_free(out);
		return rc;
	}
	if (!out->control_socket)
		out->control_socket = xstrdup("/run/cairn/cairnd.sock");
	if (!out->log_dir)
		out->log_dir = xstrdup("/var/log/cairn");
	rc = check(out);
	if (rc)
		vconf_free(out);
	return rc;
}

void vconf_strv_free(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

void vconf_free(struct vconf *c)
{
	for (size_t i = 0; i < c->nagents; i++) {
		struct vconf_agent *a = &c->agents[i];

		free(a->name);
		free(a->workspace);
		free(a->command);
		free(a->user);
		free(a->cwd);
		vconf_strv_free(a->env);
	}
	for (size_t i = 0; c->acfg && i < c->ws.n; i++) {
		struct vconf_agentcfg *g = &c->acfg[i];

		free(g->workspace);
		free(g->user);
		free(g->dir);
		free(g->home);
		if (g->exclude != (char **)default_excludes)
			vconf_strv_free(g->exclude);
	}
	free(c->acfg);
	free(c->agents);
	conf_free(&c->ws);
	free(c->path);
	free(c->control_socket);
	free(c->log_dir);
	free(c->cairnfs);
	free(c->cairn);
	free(c->idle_hook);
	free(c->cp_url);
	free(c->cp_token_file);
	free(c->cp_ca_file);
	memset(c, 0, sizeof(*c));
}

/* The agent's own CLAUDE_CONFIG_DIR, if its env sets one. */
static const char *agent_config_env(const struct vconf *c, const char *ws)
{
	for (size_t i = 0; i < c->nagents; i++) {
		if (strcmp(c->agents[i].workspace, ws))
			continue;
		for (size_t k = 0; k < c->agents[i].nenv; k++)
			if (!strncmp(c->agents[i].env[k], "CLAUDE_CONFIG_DIR=", 18) &&
			    c->agents[i].env[k][18] == '/')
				return c->agents[i].env[k] + 18;
	}
	return NULL;
}

int vconf_agentcfg_paths(const struct vconf *c, size_t i, char ***paths, char ***exclude)
{
	const struct vconf_agentcfg *g = &c->acfg[i];
	const char *user = g->user, *dir = g->dir, *base;
	struct passwd *pw;
	size_t np = 0, nx = 0;
	char *d;

	*paths = *exclude = NULL;
	if (!g->enabled)
		return -ENOENT;
	for (size_t k = 0; !user && k < c->nagents; k++)
		if (!strcmp(c->agents[k].workspace, g->workspace))
			user = c->agents[k].user;
	if (!dir)
		dir = agent_config_env(c, g->workspace);
	if (dir) {
		d = xstrdup(dir);
		while (strlen(d) > 1 && d[strlen(d) - 1] == '/')
			d[strlen(d) - 1] = '\0';
		strv_add(paths, &np, d);
		free(d);
	} else {
		const char *home = g->home;

		if (!home) {
			if (!user)
				return -ENOENT;		/* no agent, no user: nothing to keep */
			pw = getpwnam(user);
			if (!pw)
				return err_set(-ENOENT, "user %s does not exist", user);
			home = pw->pw_dir;
		}
		d = xasprintf("%s/.claude", strcmp(home, "/") ? home : "");
		strv_add(paths, &np, d);
		free(d);
		/* onboarding and project trust live beside the dir */
		d = xasprintf("%s/.claude.json", strcmp(home, "/") ? home : "");
		strv_add(paths, &np, d);
		free(d);
	}
	base = strrchr((*paths)[0], '/') + 1;
	for (size_t k = 0; k < g->nexclude; k++) {
		d = xasprintf("%s/%s", base, g->exclude[k]);
		while (strlen(d) > 1 && d[strlen(d) - 1] == '/')
			d[strlen(d) - 1] = '\0';
		strv_add(exclude, &nx, d);
		free(d);
	}
	if (!g->credentials) {
		d = xasprintf("%s/.credentials.json", base);
		strv_add(exclude, &nx, d);
		free(d);
	}
	if (!nx)
		*exclude = xcalloc(1, sizeof(**exclude));	/* an empty list */
	return 0;
}
