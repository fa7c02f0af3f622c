/*
 * hook.c - the idle report (docs/control-plane.md): a JSON object handed
 * to the idle hook command on its stdin and POSTed to the control plane's
 * /v1/idle with the bearer token of [control-plane] token_file, over TLS
 * verified against ca_file (or the system's CAs).
 *
 * Both run in a child of cairnd, which may wait on the network for as
 * long as it likes; cairnd learns the outcome from its exit status.
 *
 * The lease report (/v1/lease: waiting for another machine's lease, taken,
 * lost, taken back) goes to the control plane only, from a child whose
 * outcome is only logged: the platform learns that a VM is stuck behind
 * another, or works without being saved.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairnd.h"
#include "cplane.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "proc.h"

static char *iso_time(double t)
{
	time_t s = (time_t)t;
	struct tm tm;
	char out[32];

	gmtime_r(&s, &tm);
	strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(out);
}

int hook_report_generation(struct vmd_ws *w)
{
	const struct vconf *c = &w->d->conf;
	struct cplane cp = { c->cp_url, c->cp_token_file, c->cp_ca_file, "cairnd" };
	uint64_t highest;

	if (!c->cp_url || w->generation < 0 || !w->ws_id)
		return 0;
	return cplane_generation(&cp, w->c->tenant ? w->c->tenant : "default", w->ws_id,
				 (uint64_t)w->generation, w->last_snapshot, &highest);
}

/* POSTs the report to URL/v1/idle, once the workspace's generation is
 * known to the control plane: a VM may be destroyed on receipt, and a
 * commit it never heard of could be rolled back unnoticed.  0, or 1 with
 * the reason on stderr. */
static int post(struct vmd_ws *w, json_t *report)
{
	const struct vconf *c = &w->d->conf;
	struct cplane cp = { c->cp_url, c->cp_token_file, c->cp_ca_file, NULL };

	if (hook_report_generation(w)) {
		fprintf(stderr, "cairnd: idle report not sent: %s\n", err_msg());
		return 1;
	}
	if (cplane_post(&cp, "/v1/idle", report, NULL)) {
		fprintf(stderr, "cairnd: idle report: %s\n", err_msg());
		return 1;
	}
	return 0;
}

/* Runs the hook command with body on its stdin.  0 or 1. */
static int run_hook(const char *cmd, const char *body, const char *ws_name)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct vmd_spawn s = { .argv = argv };
	int p[2], st;
	pid_t pid;

	setenv("CAIRN_WORKSPACE_NAME", ws_name, 1);
	if (pipe(p))
		return 1;
	s.in_fd = p[0];
	pid = vmd_spawn(&s);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	if (pid > 0)
		fsu_write_all(p[1], body, strlen(body));
	close(p[1]);
	if (pid < 0)
		return 1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "cairnd: idle hook `%s` failed (status %d)\n", cmd,
			WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		return 1;
	}
	return 0;
}

pid_t hook_report(struct vmd_ws *w, double idle_since_wall)
{
	struct vmd *d = w->d;
	char *since = iso_time(idle_since_wall), *body;
	json_t *j = json_pack("{s:s, s:s, s:s, s:f}", "event", "idle", "workspace", w->c->name,
			      "idle_since", since, "idle_seconds", vmd_wall() - idle_since_wall);
	pid_t pid;

	free(since);
	json_object_set_new(j, "workspace_id", w->ws_id ? json_string(w->ws_id) : json_null());
	json_object_set_new(j, "snapshot", w->last_snapshot ? json_string(w->last_snapshot) : json_null());
	json_object_set_new(j, "generation", w->generation >= 0 ? json_integer(w->generation) : json_null());
	body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	log_info("workspace %s: idle since %.0f s: reporting", w->c->name, vmd_wall() - idle_since_wall);
	pid = fork();
	if (pid < 0) {
		free(body);
		json_decref(j);
		return err_set(-errno, "cannot fork: %s", strerror(errno));
	}
	if (pid == 0) {
		sigset_t none;
		int rc = 0;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		if (d->conf.idle_hook)
			rc |= run_hook(d->conf.idle_hook, body, w->c->name);
		if (d->conf.cp_url)
			rc |= post(w, j);
		_exit(rc);
	}
	free(body);
	json_decref(j);
	return pid;
}

void hook_lease_report(struct vmd_ws *w, const char *event, const char *detail)
{
	struct vmd *d = w->d;
	json_t *j;
	pid_t pid;

	if (!d->conf.cp_url)
		return;
	j = json_pack("{s:s, s:s}", "event", event, "workspace", w->c->name);
	json_object_set_new(j, "workspace_id", w->ws_id ? json_string(w->ws_id) : json_null());
	json_object_set_new(j, "detail", detail ? json_string(detail) : json_null());
	pid = fork();
	if (pid == 0) {
		struct cplane cp = { d->conf.cp_url, d->conf.cp_token_file, d->conf.cp_ca_file, NULL };
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		if (cplane_post(&cp, "/v1/lease", j, NULL)) {
			fprintf(stderr, "cairnd: lease report (%s): %s\n", event, err_msg());
			_exit(1);
		}
		_exit(0);
	}
	if (pid < 0)
		log_warn("workspace %s: cannot report the lease (%s): %s", w->c->name, event,
			 strerror(errno));
	json_decref(j);
}
