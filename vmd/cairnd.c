/*
 * cairnd.c - the VM daemon (cairnd(8)): mounts each workspace of
 * cairn.conf with its cairnfs, puts the agent config in place, starts and
 * supervises the agents, snapshots when they go idle and every interval
 * while busy, reports idleness, and on SIGTERM stops the agents, takes
 * the last snapshot within the deadline and unmounts.
 *
 * One thread, one poll loop: signals come through a signalfd, the end of
 * every child (agents, cairnfs, snapshots) as SIGCHLD.  cairnd is a child
 * subreaper, so an agent's daemonized descendants are still its own.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "cairnd.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "proc.h"

#define TICK 1.0		/* seconds between activity samples */

extern char **environ;

double vmd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double vmd_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void vmd_status(struct vmd *d, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	(void)d;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", msg);
}

const char *vmd_program(struct vmd *d, const char *name)
{
	static char path[2][PATH_MAX];
	int k = strcmp(name, "cairn") != 0;

	if (k && d->conf.cairnfs)
		return d->conf.cairnfs;
	if (!k && d->conf.cairn)
		return d->conf.cairn;
	snprintf(path[k], sizeof(path[k]), "%s/%s", d->self_dir, name);
	if (access(path[k], X_OK))
		snprintf(path[k], sizeof(path[k]), "%s/%s", BINDIR, name);
	return path[k];
}

char **vmd_child_env(struct vmd *d, const char *name)
{
	static const char *const drop[] = { "CAIRN_STORE=", "CAIRN_KEY=", "CAIRN_TENANT=",
					    "CAIRN_WORKSPACE=", "CAIRN_CONFIG=",
					    "CAIRN_WORKSPACE_NAME=", "NOTIFY_SOCKET=", "WATCHDOG_",
					    "LISTEN_", NULL };
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = xcalloc(n + 3, sizeof(*env));
	for (size_t i = 0; i < n; i++) {
		int keep = 1;

		for (size_t j = 0; drop[j]; j++)
			keep &= strncmp(environ[i], drop[j], strlen(drop[j])) != 0;
		if (keep)
			env[k++] = xstrdup(environ[i]);
	}
	env[k++] = xasprintf("CAIRN_CONFIG=%s", d->conf_path);
	env[k++] = xasprintf("CAIRN_WORKSPACE_NAME=%s", name);
	return env;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cairnd [-c FILE] [--check] [-v]\n"
		"  -c, --config FILE  cairn.conf (default $CAIRN_CONFIG or %s)\n"
		"  --check            check the config and exit\n"
		"  -v, --verbose      log more\n"
		"  --version          print the version\n",
		CONF_DEFAULT_PATH);
}

static void reap(struct vmd *d)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (agent_exited(d, pid, st) || ws_child_exited(d, pid, st))
			continue;
		/* a descendant adopted after its parent died: reaped, nothing more */
	}
}

/* Descendants adopted by cairnd that no agent accounts for any more: at
 * shutdown they get the agents' treatment. */
static int kill_strays(struct vmd *d, int sig)
{
	struct proc_info *p;
	size_t n;
	int found = 0;
	pid_t self = getpid();

	if (proc_scan(&p, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		int known = 0;

		if (p[i].ppid != self)
			continue;
		for (size_t k = 0; k < d->nagents; k++)
			known |= d->agents[k]->pid == p[i].pid;
		for (size_t k = 0; k < d->nws; k++)
			known |= d->ws[k].fs_pid == p[i].pid || d->ws[k].snap_pid == p[i].pid ||
				 d->ws[k].restore_pid == p[i].pid || d->ws[k].hook_pid == p[i].pid;
		if (!known) {
			kill(p[i].pid, sig);
			found = 1;
		}
	}
	free(p);
	return found;
}

static void begin_shutdown(struct vmd *d, const char *why)
{
	long deadline = 0;

	if (d->stopping == 2)
		return;
	d->stopping = 2;
	for (size_t i = 0; i < d->nws; i++)
		if (d->ws[i].c->shutdown_deadline > deadline)
			deadline = d->ws[i].c->shutdown_deadline;
	if (deadline <= 0)
		deadline = 60;
	d->stop_deadline = vmd_now() + (double)deadline;
	log_info("%s: stopping the agents; the last snapshot within %ld s", why, deadline);
	sd_notify(0, "STOPPING=1");
	vmd_status(d, "stopping: agents, then the last snapshot (deadline %ld s)", deadline);
	for (size_t i = 0; i < d->nagents; i++)
		agent_stop(d->agents[i]);
}

/* The shutdown, a step each tick: agents gone, then each workspace's
 * last snapshot and unmount.  Returns 1 when everything is off. */
static int shutdown_step(struct vmd *d, double now)
{
	int all_off = 1;

	if (now >= d->stop_deadline && !(d->deadline_missed & 1)) {
		d->deadline_missed |= 1;
		log_error("the shutdown deadline has passed: the snapshots under way are abandoned;"
			  " the last committed snapshot of each workspace stands");
		for (size_t i = 0; i < d->nagents; i++)
			if (agent_live(d->agents[i]))
				d->agents[i]->kill_at = now;
		for (size_t i = 0; i < d->nws; i++)
			ws_kill(&d->ws[i]);
		d->stop_deadline = now + 5;	/* then SIGKILL for what is left */
	} else if (now >= d->stop_deadline) {
		for (size_t i = 0; i < d->nws; i++)
			if (d->ws[i].fs_pid > 0)
				kill(d->ws[i].fs_pid, SIGKILL);
		d->stop_deadline = now + 5;
	}
	for (size_t i = 0; i < d->nws; i++) {
		struct vmd_ws *w = &d->ws[i];
		int live = 0;

		for (size_t k = 0; k < d->nagents; k++)
			live |= d->agents[k]->ws == w && agent_live(d->agents[k]);
		if (!live && !w->final_asked) {
			if (kill_strays(d, SIGKILL)) {
				all_off = 0;
				continue;	/* their ends come first */
			}
			w->final_asked = 1;
			ws_shutdown(w);
		}
		all_off &= w->state == WS_OFF;
	}
	return all_off;
}

static void tick(struct vmd *d, double now)
{
	double dt = now - d->last_tick;
	double tty;

	if (dt >= TICK) {
		agent_sample_cpu(d, dt);
		tty = proc_tty_last_input();
		d->tty_input = tty;
		d->last_tick = now;
	}
	for (size_t i = 0; i < d->nagents; i++)
		agent_tick(d->agents[i], now);
	for (size_t i = 0; i < d->nws; i++) {
		struct vmd_ws *w = &d->ws[i];

		if (w->state != WS_UP || dt >= TICK)
			ws_tick(w, now);
	}
	if (!d->ready_sent && !d->stopping) {
		int up = 1;

		for (size_t i = 0; i < d->nws; i++)
			up &= d->ws[i].state == WS_UP;
		if (up) {
			d->ready_sent = 1;
			sd_notify(0, "READY=1");
			vmd_status(d, "%zu workspace(s) mounted, %zu agent(s) started", d->nws, d->nagents);
			log_info("ready: %zu workspace(s) mounted, %zu agent(s)", d->nws, d->nagents);
		}
	}
	if (d->watchdog_usec && now - d->last_watchdog >= (double)d->watchdog_usec / 2e6) {
		sd_notify(0, "WATCHDOG=1");
		d->last_watchdog = now;
	}
}

/* SIGHUP: the agents as the file now says; workspaces need a restart. */
static void reload(struct vmd *d)
{
	struct vconf *nc = xcalloc(1, sizeof(*nc));
	int rc = vconf_load(d->conf_path, nc);

	if (rc) {
		log_error("reload: %s; the running config is kept", err_msg());
		free(nc);
		return;
	}
	sd_notify(0, "RELOADING=1");
	for (size_t i = 0; i < nc->ws.n; i++) {
		const struct conf_workspace *w = &nc->ws.ws[i];

		if (i >= d->nws || strcmp(w->name, d->ws[i].c->name) ||
		    strcmp(w->mountpoint, d->ws[i].c->mountpoint) || strcmp(w->cache_dir, d->ws[i].c->cache_dir))
			log_warn("reload: workspace %s changed; restart cairnd to apply workspace changes", w->name);
	}
	/* agents: each old one is stopped and forgotten, kept, or restarted
	 * with its new section */
	for (size_t i = 0; i < d->nagents; i++) {
		struct vmd_agent *a = d->agents[i];
		struct vconf_agent *na = NULL;

		for (size_t k = 0; k < nc->nagents; k++)
			if (!strcmp(nc->agents[k].name, a->c->name))
				na = &nc->agents[k];
		if (!na) {
			log_info("reload: agent %s is gone from the config", a->c->name);
			a->remove_after_stop = 1;
			agent_stop(a);
		}
	}
	for (size_t k = 0; k < nc->nagents; k++) {
		struct vconf_agent *na = &nc->agents[k];
		struct vmd_agent *a = NULL;
		struct vmd_ws *w = NULL;

		for (size_t i = 0; i < d->nagents; i++)
			if (!d->agents[i]->remove_after_stop && !strcmp(d->agents[i]->c->name, na->name))
				a = d->agents[i];
		for (size_t i = 0; i < d->nws; i++)
			if (!strcmp(d->ws[i].c->name, na->workspace))
				w = &d->ws[i];
		if (!w) {
			log_warn("reload: agent %s: workspace %s is not served; restart cairnd", na->name,
				 na->workspace);
			continue;
		}
		if (!a) {
			a = agent_new(d, na, w);
			d->agents = xrealloc(d->agents, (d->nagents + 1) * sizeof(*d->agents));
			d->agents[d->nagents++] = a;
			log_info("reload: agent %s added", na->name);
			if (w->state == WS_UP)
				agent_start(a);
			continue;
		}
		{
			const struct vconf_agent *o = a->c;
			int same = !strcmp(o->command, na->command) && !strcmp(o->user, na->user) &&
				   !strcmp(o->cwd ? o->cwd : "", na->cwd ? na->cwd : "") &&
				   o->nenv == na->nenv && o->restart == na->restart;

			for (size_t e = 0; same && e < o->nenv; e++)
				same = !strcmp(o->env[e], na->env[e]);
			a->c = na;
			a->ws = w;
			if (!same) {
				log_info("reload: agent %s changed: restarting it", na->name);
				if (agent_live(a)) {
					a->restart_after_stop = 1;
					agent_stop(a);
				} else if (w->state == WS_UP) {
					agent_start(a);
				}
			}
		}
	}
	/* the old config stays until cairnd exits: stopping agents and the
	 * workspaces still point into it */
	d->old_confs = xrealloc(d->old_confs, (d->nold + 1) * sizeof(*d->old_confs));
	d->old_confs[d->nold++] = nc;
	log_info("reload: done");
	sd_notify(0, "READY=1");
}

static void drop_removed_agents(struct vmd *d)
{
	for (size_t i = 0; i < d->nagents;) {
		struct vmd_agent *a = d->agents[i];

		if (a->remove_after_stop && !agent_live(a)) {
			agent_free(a);
			d->agents[i] = d->agents[--d->nagents];
			continue;
		}
		i++;
	}
}

static int run(struct vmd *d)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->sfd < 0) {
		log_error("cannot make a signalfd: %s", strerror(errno));
		return 1;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		log_warn("cannot become a child subreaper: %s", strerror(errno));
	if (sd_watchdog_enabled(0, &d->watchdog_usec) <= 0)
		d->watchdog_usec = 0;
	if (vctl_listen(d)) {
		log_error("%s", err_msg());
		return 1;
	}
	d->ws = xcalloc(d->conf.ws.n, sizeof(*d->ws));
	d->nws = d->conf.ws.n;
	for (size_t i = 0; i < d->nws; i++)
		ws_init(d, &d->ws[i], i);
	for (size_t i = 0; i < d->conf.nagents; i++) {
		struct vconf_agent *c = &d->conf.agents[i];
		struct vmd_ws *w = NULL;

		for (size_t k = 0; k < d->nws; k++)
			if (!strcmp(d->ws[k].c->name, c->workspace))
				w = &d->ws[k];
		d->agents = xrealloc(d->agents, (d->nagents + 1) * sizeof(*d->agents));
		d->agents[d->nagents++] = agent_new(d, c, w);
	}
	agent_kill_leftovers(d);
	d->last_tick = vmd_now();
	log_info("starting: %zu workspace(s), %zu agent(s), control socket %s", d->nws, d->nagents,
		 d->conf.control_socket);
	for (size_t i = 0; i < d->nws; i++)
		ws_start(&d->ws[i]);

	for (;;) {
		struct pollfd *pfd;
		size_t n = 0, cap = 2 + d->nclients + d->nagents + d->nws;
		double now;
		int timeout = 100;

		pfd = xcalloc(cap, sizeof(*pfd));
		pfd[n++] = (struct pollfd){ .fd = d->sfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = d->ctl_fd, .events = POLLIN };
		for (size_t i = 0; i < d->nclients; i++)
			pfd[n++] = (struct pollfd){ .fd = d->clients[i], .events = POLLIN };
		for (size_t i = 0; i < d->nagents; i++)
			pfd[n++] = (struct pollfd){ .fd = d->agents[i]->log_pipe, .events = POLLIN };
		for (size_t i = 0; i < d->nws; i++)
			pfd[n++] = (struct pollfd){ .fd = d->ws[i].snap_pipe, .events = POLLIN };
		if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			free(pfd);
			return 1;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			while (read(d->sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					reap(d);
				else if (si.ssi_signo == SIGHUP)
					reload(d);
				else
					begin_shutdown(d, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			}
		}
		/* fds of the arrays may have moved: look them up by value */
		for (size_t i = 2; i < n; i++) {
			if (!pfd[i].revents || pfd[i].fd < 0)
				continue;
			for (size_t k = 0; k < d->nclients; k++)
				if (d->clients[k] == pfd[i].fd) {
					vctl_input(d, k);
					break;
				}
			for (size_t k = 0; k < d->nagents; k++)
				if (d->agents[k]->log_pipe == pfd[i].fd)
					agent_log_input(d->agents[k]);
			for (size_t k = 0; k < d->nws; k++)
				if (d->ws[k].snap_pipe == pfd[i].fd)
					ws_snap_output(&d->ws[k]);
		}
		if (pfd[1].revents)
			vctl_accept(d);
		free(pfd);
		reap(d);	/* a SIGCHLD may have been merged with another */
		now = vmd_now();
		if (d->stopping == 1)
			begin_shutdown(d, "a workspace could not be mounted");
		tick(d, now);
		drop_removed_agents(d);
		if (d->stopping && shutdown_step(d, now))
			break;
	}
	/* what an agent wrote last */
	for (size_t i = 0; i < d->nagents; i++)
		while (d->agents[i]->log_pipe >= 0)
			agent_log_input(d->agents[i]);
	vctl_close_all(d);
	/* the VM may be gone in a moment: the control plane must know the last
	 * generation, or a rollback to an older snapshot would go unnoticed */
	for (size_t i = 0; i < d->nws && !(d->deadline_missed & 4); i++) {
		if (hook_report_generation(&d->ws[i])) {
			log_error("workspace %s: the last generation (%lld) is not known to the control plane: %s",
				  d->ws[i].c->name, d->ws[i].generation, err_msg());
			d->deadline_missed |= 2;
		}
	}
	if (d->deadline_missed & 4)
		return 1;
	if (d->deadline_missed) {
		log_error("stopped%s%s: the last committed snapshot of each workspace is intact",
			  d->deadline_missed & 1 ? " after the shutdown deadline" : "",
			  d->deadline_missed & 2 ? " without a last snapshot of every workspace" : "");
		return 2;
	}
	log_info("stopped: last snapshots taken, workspaces unmounted");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmd d = { .sfd = -1, .ctl_fd = -1 };
	const char *conf = getenv("CAIRN_CONFIG");
	int opt, check_only = 0, verbose = 0, rc;
	char self[PATH_MAX];
	ssize_t len;

	while ((opt = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': conf = optarg; break;
		case 'C': check_only = 1; break;
		case 'v': verbose = 1; break;
		case 'V': printf("cairnd %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!conf || !*conf)
		conf = CONF_DEFAULT_PATH;
	log_setup("cairnd", verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	if (fsu_no_core_dumps())
		log_warn("cannot turn core dumps off: %s", strerror(errno));
	if (vconf_load(conf, &d.conf)) {
		fprintf(stderr, "cairnd: %s\n", err_msg());
		return 1;
	}
	if (check_only) {
		printf("%s: %zu workspace(s), %zu agent(s): good\n", conf, d.conf.ws.n, d.conf.nagents);
		vconf_free(&d.conf);
		return 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "cairnd: must run as root (it mounts, and starts agents as their users)\n");
		vconf_free(&d.conf);
		return 1;
	}
	d.conf_path = realpath(conf, NULL);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[len > 0 ? len : 0] = '\0';
	if (strrchr(self, '/'))
		*strrchr(self, '/') = '\0';
	d.self_dir = xstrdup(self);
	rc = run(&d);
	for (size_t i = 0; i < d.nagents; i++)
		agent_free(d.agents[i]);
	free(d.agents);
	for (size_t i = 0; i < d.nws; i++)
		ws_free(&d.ws[i]);
	free(d.ws);
	for (size_t i = 0; i < d.nold; i++) {
		vconf_free(d.old_confs[i]);
		free(d.old_confs[i]);
	}
	free(d.old_confs);
	free(d.clients);
	free(d.client_in);
	if (d.sfd >= 0)
		close(d.sfd);
	vconf_free(&d.conf);
	free(d.conf_path);
	free(d.self_dir);
	return rc;
}
