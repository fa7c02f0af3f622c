/*
 * vconf.h - cairnd's view of cairn.conf (cairn.conf(5)): the [workspace
 * NAME] sections cairn reads too (sync/conf.h), and cairnd's own:
 * [cairnd], [agent NAME], [agent-config WORKSPACE], [control-plane].
 *
 * Everything is checked at load: an unknown section or key, or a bad
 * value, is an error naming PATH:LINE; what can only be checked once the
 * whole file is read (an agent's workspace, a user that does not exist)
 * names PATH and the section.
 */
#ifndef CAIRN_VCONF_H
#define CAIRN_VCONF_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

enum vconf_restart { RESTART_ALWAYS, RESTART_ON_FAILURE, RESTART_NEVER };

struct vconf_agent {
	char *name, *workspace, *command, *user, *cwd;
	char **env;			/* "KEY=VALUE", nenv of them */
	size_t nenv;
	enum vconf_restart restart;
	long restart_delay, restart_max_delay;	/* seconds: the backoff */
	long crash_loop_restarts, crash_loop_window;	/* N restarts in W s */
	long stop_grace;		/* seconds from SIGTERM to SIGKILL */
	uint64_t log_max_size;		/* bytes; a bigger log is rotated */
	long log_keep;			/* rotated logs kept */
};

/* The agent's config dir, kept on local disk and saved as the
 * agent-config root of each snapshot of its workspace. */
struct vconf_agentcfg {
	char *workspace;
	int enabled;
	char *user;			/* NULL: the user of the workspace's first agent */
	char *dir;			/* NULL: HOME/.claude (and HOME/.claude.json) or
					 * the agent's CLAUDE_CONFIG_DIR */
	char *home;			/* NULL: the user's home */
	char **exclude;			/* patterns under dir, as in the config */
	size_t nexclude;
	int credentials;		/* keep .credentials.json (default yes) */
};

struct vconf {
	struct conf ws;			/* the [workspace NAME] sections */
	char *path;
	char *control_socket;		/* default /run/cairn/cairnd.sock */
	char *log_dir;			/* agent logs; default /var/log/cairn */
	char *cairnfs, *cairn;		/* the programs; default beside cairnd */
	char *idle_hook;		/* a command, the report on its stdin */
	double idle_cpu;		/* percent of one CPU: busy above it */
	char *cp_url, *cp_token_file, *cp_ca_file;	/* [control-plane] */
	struct vconf_agent *agents;
	size_t nagents;
	struct vconf_agentcfg *acfg;	/* one per workspace, in ws order */
};

/* Loads and checks path.  Returns 0, or a negative code with the error
 * set ("PATH:LINE: what is wrong and what is expected"). */
int vconf_load(const char *path, struct vconf *out);
void vconf_free(struct vconf *c);

/* The agent-config file set of workspace index i: absolute paths (a dir,
 * and the sibling .claude.json when the dir is the default ~/.claude), and
 * the exclude patterns in the form `cairn snapshot --agent-config-exclude`
 * takes ("NAME/PATTERN").  Both NULL-terminated, malloc'd (free with
 * vconf_strv_free).  Returns 0, or -ENOENT when agent config is off. */
int vconf_agentcfg_paths(const struct vconf *c, size_t i, char ***paths, char ***exclude);
void vconf_strv_free(char **v);

#endif
