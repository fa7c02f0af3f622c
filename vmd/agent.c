/*
 * agent.c - the agents cairnd supervises: each a `/bin/sh -c COMMAND` in
 * a session of its own, as its user, with an environment built from
 * nothing (so none of cairn's secrets or store credentials reach it), its
 * output in a log file cairnd rotates by size, restarted by its policy
 * with exponential backoff, a crash loop reported.
 *
 * Invariant: state is AG_RUNNING or AG_STOPPING exactly when pid > 0.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairnd.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "proc.h"

/* an agent that ran this long was not a quick exit: its backoff restarts */
#define QUICK_EXIT_SECONDS 10.0

struct vmd_agent *agent_new(struct vmd *d, struct vconf_agent *c, struct vmd_ws *w)
{
	struct vmd_agent *a = xcalloc(1, sizeof(*a));

	a->c = c;
	a->ws = w;
	a->log_pipe = a->log_fd = -1;
	a->last_status = -1;
	a->log_path = xasprintf("%s/%s.log", d->conf.log_dir, c->name);
	a->recent = xcalloc((size_t)c->crash_loop_restarts, sizeof(*a->recent));
	return a;
}

int agent_live(const struct vmd_agent *a)
{
	return a->pid > 0;
}

static int open_log(struct vmd_agent *a)
{
	struct stat st;

	if (a->log_fd >= 0)
		return 0;
	if (fsu_mkdir_parents(a->log_path))
		log_warn("agent %s: cannot make the directory of %s: %s", a->c->name, a->log_path,
			 strerror(errno));
	a->log_fd = open(a->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (a->log_fd < 0) {
		log_error("agent %s: cannot open its log %s: %s", a->c->name, a->log_path, strerror(errno));
		return -1;
	}
	a->log_size = fstat(a->log_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

/* NAME.log -> NAME.log.1 -> ... -> NAME.log.KEEP, the oldest dropped. */
static void rotate_log(struct vmd_agent *a)
{
	long keep = a->c->log_keep;

	close(a->log_fd);
	a->log_fd = -1;
	if (keep == 0) {
		if (truncate(a->log_path, 0))
			log_warn("agent %s: cannot empty %s: %s", a->c->name, a->log_path, strerror(errno));
	} else {
		for (long k = keep; k >= 1; k--) {
			char *from = k == 1 ? xstrdup(a->log_path) : xasprintf("%s.%ld", a->log_path, k - 1);
			char *to = xasprintf("%s.%ld", a->log_path, k);

			if (rename(from, to) && errno != ENOENT)
				log_warn("agent %s: cannot rotate %s: %s", a->c->name, from, strerror(errno));
			free(from);
			free(to);
		}
	}
	open_log(a);
}

void agent_log_input(struct vmd_agent *a)
{
	char data[65536];
	ssize_t n = read(a->log_pipe, data, sizeof(data));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {		/* every writer has gone */
		close(a->log_pipe);
		a->log_pipe = -1;
		return;
	}
	if (open_log(a))
		return;		/* said once at open; the output is dropped */
	if (fsu_write_all(a->log_fd, data, (size_t)n))
		log_warn("agent %s: cannot write its log %s: %s", a->c->name, a->log_path, strerror(errno));
	a->log_size += (uint64_t)n;
	if (a->log_size >= a->c->log_max_size)
		rotate_log(a);
}

static void env_add(char ***env, size_t *n, const char *name, const char *value)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < *n; i++) {
		if (!strncmp((*env)[i], name, len) && (*env)[i][len] == '=') {
			free((*env)[i]);
			(*env)[i] = xasprintf("%s=%s", name, value);
			return;
		}
	}
	*env = xrealloc(*env, (*n + 2) * sizeof(**env));
	(*env)[(*n)++] = xasprintf("%s=%s", name, value);
	(*env)[*n] = NULL;
}

/* The agent's environment, from nothing: who it is, a PATH, the locale,
 * and what its section sets.  Nothing of cairnd's own is passed on. */
static char **agent_env(const struct vmd_agent *a, const struct passwd *pw)
{
	const char *lang = getenv("LANG");
	char **env = NULL;
	size_t n = 0;

	env_add(&env, &n, "HOME", pw->pw_dir);
	env_add(&env, &n, "USER", pw->pw_name);
	env_add(&env, &n, "LOGNAME", pw->pw_name);
	env_add(&env, &n, "SHELL", pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh");
	env_add(&env, &n, "PATH", pw->pw_uid == 0 ?
		"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" :
		"/usr/local/bin:/usr/bin:/bin");
	env_add(&env, &n, "LANG", lang && *lang ? lang : "C.UTF-8");
	env_add(&env, &n, "CAIRN_AGENT", a->c->name);
	env_add(&env, &n, "CAIRN_WORKSPACE_MOUNT", a->ws->c->mountpoint);
	for (size_t i = 0; i < a->c->nenv; i++) {
		char *name = xstrndup(a->c->env[i], (size_t)(strchr(a->c->env[i], '=') - a->c->env[i]));

		env_add(&env, &n, name, strchr(a->c->env[i], '=') + 1);
		free(name);
	}
	return env;
}

/* The sessions of the running agents, in a file beside the control
 * socket, so that a cairnd that starts after one was killed stops the
 * agents it left behind (they would write into a mount that is gone). */
static char *pids_path(const struct vmd *d)
{
	return xasprintf("%s.agents", d->conf.control_socket);
}

void agent_save_pids(struct vmd *d)
{
	char *path = pids_path(d), *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");

	if (f) {
		for (size_t i = 0; i < d->nagents; i++)
			if (agent_live(d->agents[i]))
				fprintf(f, "%d\n", (int)d->agents[i]->pid);
		if (fclose(f) == 0)
			rename(tmp, path);
	}
	free(tmp);
	free(path);
}

void agent_kill_leftovers(struct vmd *d)
{
	char *path = pids_path(d);
	FILE *f = fopen(path, "r");
	struct proc_info *p;
	size_t n;
	int pid, found = 0;

	if (!f || proc_scan(&p, &n)) {
		if (f)
			fclose(f);
		free(path);
		return;
	}
	for (int round = 0; round < 2; round++) {
		rewind(f);
		while (fscanf(f, "%d", &pid) == 1) {
			if (pid <= 1)
				continue;	/* not an agent's session: never a group kill of 0 or 1 */
			for (size_t i = 0; i < n; i++) {
				if (p[i].sid != pid)
					continue;	/* not that agent's session (any more) */
				if (!round)
					log_warn("agent session %d was left by an earlier cairnd: stopping it", pid);
				kill(-pid, round ? SIGKILL : SIGTERM);
				found = 1;
				break;
			}
		}
		if (!found)
			break;
		sleep(2);
	}
	fclose(f);
	free(p);
	unlink(path);
	free(path);
}

void agent_start(struct vmd_agent *a)
{
	const char *argv[] = { "/bin/sh", "-c", a->c->command, NULL };
	struct vmd_spawn s = { .argv = argv, .new_session = 1 };
	struct passwd *pw = getpwnam(a->c->user);
	char **env;
	int p[2];
	pid_t pid;

	if (agent_live(a))
		return;
	if (!pw) {
		log_error("agent %s: user %s does not exist; not started", a->c->name, a->c->user);
		a->state = AG_EXITED;
		return;
	}
	if (pipe2(p, O_CLOEXEC)) {
		log_error("agent %s: cannot make a pipe: %s", a->c->name, strerror(errno));
		a->state = AG_BACKOFF;
		a->next_start = vmd_now() + (double)a->c->restart_max_delay;
		return;
	}
	open_log(a);
	env = agent_env(a, pw);
	s.envp = env;
	s.user = a->c->user;
	s.cwd = a->c->cwd ? a->c->cwd : a->ws->c->mountpoint;
	s.out_fd = p[1];
	pid = vmd_spawn(&s);
	close(p[1]);
	vconf_strv_free(env);
	if (pid < 0) {
		log_error("agent %s: %s", a->c->name, err_msg());
		close(p[0]);
		a->state = AG_BACKOFF;
		a->next_start = vmd_now() + (double)a->c->restart_max_delay;
		return;
	}
	if (a->log_pipe >= 0)
		close(a->log_pipe);	/* what an earlier run's descendants still write is lost */
	a->log_pipe = p[0];
	fcntl(a->log_pipe, F_SETFL, O_NONBLOCK);
	a->pid = pid;
	a->state = AG_RUNNING;
	if (a->started > 0)
		a->restarts++;	/* not its first start */
	a->started = vmd_now();
	a->ticks = 0;
	a->cpu = 0;
	a->restart_after_stop = 0;

	agent_save_pids(a->ws->d);
	log_info("agent %s: started (pid %d, as %s, in %s)", a->c->name, (int)pid, a->c->user, s.cwd);
}

void agent_stop(struct vmd_agent *a)
{
	if (!agent_live(a)) {
		a->state = AG_EXITED;
		return;
	}
	if (a->state == AG_STOPPING)
		return;
	kill(-a->pid, SIGTERM);		/* the group: its session leader is the agent */
	kill(a->pid, SIGTERM);
	a->state = AG_STOPPING;
	a->kill_at = vmd_now() + (double)a->c->stop_grace;
	log_info("agent %s: stopping (pid %d, SIGKILL in %ld s)", a->c->name, (int)a->pid,
		 a->c->stop_grace);
}

static void describe_exit(int status, char *out, size_t len)
{
	if (WIFEXITED(status))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(out, len, "ended (status 0x%x)", status);
}

/* It exited on its own: by its policy, again after a backoff. */
static void plan_restart(struct vmd *d, struct vmd_agent *a, int status, double ran)
{
	const struct vconf_agent *c = a->c;
	double now = vmd_now(), delay;
	int failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	if (d->stopping || c->restart == RESTART_NEVER || (c->restart == RESTART_ON_FAILURE && !failed)) {
		a->state = AG_EXITED;
		return;
	}
	a->quick_exits = ran < QUICK_EXIT_SECONDS ? a->quick_exits + 1 : 0;
	delay = (double)c->restart_delay;
	for (unsigned k = 1; k < a->quick_exits && delay < (double)c->restart_max_delay; k++)
		delay *= 2;
	if (delay > (double)c->restart_max_delay)
		delay = (double)c->restart_max_delay;
	a->state = AG_BACKOFF;
	a->next_start = now + delay;
	/* a crash loop: crash_loop_restarts restarts within crash_loop_window */
	if (a->nrecent == (size_t)c->crash_loop_restarts) {
		memmove(a->recent, a->recent + 1, (a->nrecent - 1) * sizeof(*a->recent));
		a->nrecent--;
	}
	a->recent[a->nrecent++] = now;
	if (a->nrecent == (size_t)c->crash_loop_restarts &&
	    now - a->recent[0] <= (double)c->crash_loop_window && !a->crash_loop) {
		a->crash_loop = 1;
		log_error("agent %s: crash loop: %ld restarts within %ld s; restarting every %.0f s at most",
			  c->name, c->crash_loop_restarts, c->crash_loop_window, (double)c->restart_max_delay);
		vmd_status(d, "agent %s is in a crash loop", c->name);
	}
	log_info("agent %s: restart in %.1f s", c->name, delay);
}

int agent_exited(struct vmd *d, pid_t pid, int status)
{
	for (size_t i = 0; i < d->nagents; i++) {
		struct vmd_agent *a = d->agents[i];
		double ran;
		char how[64];

		if (a->pid != pid)
			continue;
		ran = vmd_now() - a->started;
		describe_exit(status, how, sizeof(how));
		a->pid = 0;
		a->last_status = status;
		if (a->state == AG_STOPPING) {
			log_info("agent %s: stopped (%s)", a->c->name, how);
			a->state = AG_EXITED;
			if (a->restart_after_stop && !d->stopping) {
				a->state = a->ws->state == WS_UP ? AG_BACKOFF : AG_WAITING;
				a->next_start = vmd_now();
			}
		} else {
			log_warn("agent %s: %s after %.1f s", a->c->name, how, ran);
			plan_restart(d, a, status, ran);
		}
		agent_save_pids(d);
		return 1;
	}
	return 0;
}

void agent_tick(struct vmd_agent *a, double now)
{
	if (a->state == AG_STOPPING && now >= a->kill_at) {
		log_warn("agent %s: still running %ld s after SIGTERM: SIGKILL", a->c->name, a->c->stop_grace);
		kill(-a->pid, SIGKILL);
		kill(a->pid, SIGKILL);
		a->kill_at = now + 3600;
	}
	if (a->state == AG_BACKOFF && now >= a->next_start && a->ws->state == WS_UP &&
	    !a->ws->d->stopping)
		agent_start(a);
	if (a->state == AG_RUNNING && a->crash_loop && now - a->started > (double)a->c->crash_loop_window) {
		a->crash_loop = 0;
		log_info("agent %s: has run %ld s: out of its crash loop", a->c->name, a->c->crash_loop_window);
	}
}

void agent_sample_cpu(struct vmd *d, double dt)
{
	struct proc_info *p;
	size_t n;
	long hz = sysconf(_SC_CLK_TCK);

	if (proc_scan(&p, &n))
		return;
	for (size_t i = 0; i < d->nagents; i++) {
		struct vmd_agent *a = d->agents[i];
		uint64_t t;

		if (!agent_live(a)) {
			a->cpu = 0;
			continue;
		}
		t = proc_tree_ticks(p, n, a->pid);
		a->cpu = t > a->ticks && dt > 0 ? (double)(t - a->ticks) * 100.0 / ((double)hz * dt) : 0;
		a->ticks = t;
	}
	free(p);
}

json_t *agent_json(const struct vmd_agent *a)
{
	static const char *const names[] = { "waiting", "running", "stopping", "backoff", "exited" };
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:f, s:s, s:s}",
			      "name", a->c->name, "workspace", a->c->workspace,
			      "state", names[a->state], "pid", (json_int_t)a->pid,
			      "restarts", (json_int_t)a->restarts, "crash_loop", a->crash_loop,
			      "cpu_percent", a->cpu, "user", a->c->user, "log", a->log_path);

	if (j && a->last_status >= 0) {
		char how[64];

		describe_exit(a->last_status, how, sizeof(how));
		json_object_set_new(j, "last_exit", json_string(how));
	}
	if (j && agent_live(a))
		json_object_set_new(j, "uptime_seconds", json_real(vmd_now() - a->started));
	if (j && a->state == AG_BACKOFF)
		json_object_set_new(j, "next_start_seconds", json_real(fmax(0, a->next_start - vmd_now())));
	return j;
}

void agent_free(struct vmd_agent *a)
{
	if (a->log_pipe >= 0)
		close(a->log_pipe);
	if (a->log_fd >= 0)
		close(a->log_fd);
	free(a->log_path);
	free(a->recent);
	free(a);
}
