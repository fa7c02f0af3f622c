/*
 * repo_opts.c - where a command's store, key and workspace come from:
 * flags first, then CAIRN_* variables, then the cairn.conf section.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "err.h"
#include "repo.h"

static void fill(const char **field, const char *env, const char *from_conf)
{
	const char *v;

	if (*field && **field)
		return;
	v = getenv(env);
	if (v && *v)
		*field = v;
	else if (from_conf)
		*field = from_conf;
}

/* key = exec: makes the config code that runs with this process's rights
 * (root, under cairnd): only its owner (root or this user) may write it. */
static int conf_exec_trusted(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return err_set(-errno, "%s: %s", path, strerror(errno));
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022))
		return err_set(-EPERM, "%s names an exec: key provider, a command run as uid %u, but %s:"
			       " make it owned by root (or this user) and writable by its owner only (chmod 644)",
			       path, (unsigned)geteuid(),
			       st.st_mode & 022 ? "others may write it" : "another user owns it");
	return 0;
}

int repo_opts_resolve(struct repo_opts *opts, const char *config_path, const char *name)
{
	const struct conf_workspace *w = NULL;
	struct conf *c = xcalloc(1, sizeof(*c));
	const char *path = config_path;
	int rc;

	if (!path || !*path)
		path = getenv("CAIRN_CONFIG");
	if (!path || !*path)
		path = CONF_DEFAULT_PATH;
	rc = conf_load(path, c);
	if (rc == -ENOENT && !name && (!config_path || !*config_path))
		rc = 0;		/* no config file is fine when nothing asks for one */
	if (rc) {
		free(c);
		return rc;
	}
	opts->conf = c;
	if (!name || !*name)
		name = getenv("CAIRN_WORKSPACE_NAME");
	if (name && *name) {
		w = conf_find(c, name);
		if (!w)
			return err_set(-ENOENT, "%s has no [workspace %s] section", path, name);
	} else if (c->n == 1) {
		w = &c->ws[0];
	}
	fill(&opts->store_url, "CAIRN_STORE", w ? w->store : NULL);
	fill(&opts->key, "CAIRN_KEY", w ? w->key : NULL);
	if (w && opts->key == w->key && !strncmp(w->key, "exec:", 5)) {
		rc = conf_exec_trusted(path);
		if (rc)
			return rc;
	}
	fill(&opts->tenant, "CAIRN_TENANT", w ? w->tenant : NULL);
	fill(&opts->workspace, "CAIRN_WORKSPACE", w ? w->workspace : NULL);
	fill(&opts->state_dir, "CAIRN_STATE_DIR", NULL);
	fill(&opts->host_id, "CAIRN_HOST_ID", w ? w->host_id : NULL);
	fill(&opts->takeover_from, "CAIRN_TAKEOVER_FROM", w ? w->takeover_from : NULL);
	fill(&opts->lease_ttl, "CAIRN_LEASE_TTL", w ? w->lease_ttl : NULL);
	fill(&opts->lease_wait, "CAIRN_LEASE_WAIT", w ? w->lease_wait : NULL);
	fill(&opts->cp_url, "CAIRN_CONTROL_PLANE", c->cp_url);
	fill(&opts->cp_token_file, "CAIRN_CONTROL_PLANE_TOKEN_FILE", c->cp_token_file);
	fill(&opts->cp_ca_file, "CAIRN_CONTROL_PLANE_CA_FILE", c->cp_ca_file);
	if (w && w->atime)
		opts->atime = w->atime;
	if (w && w->init)
		opts->init = 1;
	if (w && w->final_snapshot == 0)
		opts->no_final_snapshot = 1;
	if (w && w->unsafe_no_cond)
		opts->unsafe_no_cond = 1;
	if (w && w->cache_dir && (!opts->cache_dir || !*opts->cache_dir))
		opts->cache_dir = w->cache_dir;
	return 0;
}

void repo_opts_free(struct repo_opts *opts)
{
	if (opts->conf) {
		conf_free(opts->conf);
		free(opts->conf);
		opts->conf = NULL;
	}
}
