/*
 * ws.c - one workspace under cairnd: its cairnfs (started, watched,
 * restarted on the same cache when it dies), the agent config put in
 * place before any agent starts, snapshots (`cairn snapshot --mount` in a
 * child, so the loop never waits), and the idle rules.
 *
 * The agent config is restored only onto a new cache (a new VM): a cache
 * dir that has cairnd's marker file is a VM that kept its disk, and its
 * local agent config is newer than any snapshot of it.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairnd.h"
#include "ctlclient.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "proc.h"

#define MARKER "cairnd-agent-config"	/* in the cache dir; see the top */
#define MOUNT_WAIT 900.0		/* seconds: cairnfs may wait out a lease */

void ws_init(struct vmd *d, struct vmd_ws *w, size_t index)
{
	memset(w, 0, sizeof(*w));
	w->d = d;
	w->index = index;
	w->c = &d->conf.ws.ws[index];
	w->state = WS_OFF;
	w->snap_pipe = -1;
	buf_init(&w->snap_out);
	w->generation = -1;
	if (vconf_agentcfg_paths(&d->conf, index, &w->acfg_paths, &w->acfg_exclude) == -ENOENT)
		err_clear();
}

static int count_live_agents(struct vmd_ws *w)
{
	int n = 0;

	for (size_t i = 0; i < w->d->nagents; i++)
		n += w->d->agents[i]->ws == w && agent_live(w->d->agents[i]);
	return n;
}

/* Runs a short command and waits for it (fusermount3). */
static int run_wait(const char *const *argv)
{
	struct vmd_spawn s = { .argv = argv };
	pid_t pid = vmd_spawn(&s);
	int st;

	if (pid < 0)
		return pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* Something is mounted on path: its device differs from its parent's, or
 * it is a FUSE mount whose daemon is gone (ENOTCONN). */
static int is_mounted(const char *path)
{
	struct stat st, up;
	char *parent;
	int r;

	if (stat(path, &st))
		return errno == ENOTCONN;
	parent = xasprintf("%s/..", path);
	r = stat(parent, &up) == 0 && (up.st_dev != st.st_dev || up.st_ino == st.st_ino);
	free(parent);
	return r;
}

static void lazy_unmount(struct vmd_ws *w)
{
	const char *argv[] = { "/bin/fusermount3", "-uz", w->c->mountpoint, NULL };

	if (!is_mounted(w->c->mountpoint))
		return;
	if (access(argv[0], X_OK))
		argv[0] = "/usr/bin/fusermount3";
	run_wait(argv);
}

/* A mount left on the mountpoint by an earlier cairnd that was killed: a
 * live cairnfs is unmounted (it writes everything down and exits), a dead
 * one detached, so this cairnd's cairnfs starts on a clean mountpoint and
 * the same cache. */
static void clear_mountpoint(struct vmd_ws *w)
{
	json_t *req, *r = NULL;
	char *id = NULL;
	pid_t pid = 0;

	if (ctl_mount_workspace(w->c->mountpoint, &id)) {
		err_clear();
		return;
	}
	req = json_pack("{s:s}", "op", "status");
	if (ctl_call(id, req, &r, 5) == 0 && json_is_true(json_object_get(r, "ok")))
		pid = (pid_t)json_integer_value(json_object_get(r, "pid"));
	err_clear();
	json_decref(req);
	json_decref(r);
	free(id);
	if (pid > 0) {
		const char *argv[] = { "/bin/fusermount3", "-u", w->c->mountpoint, NULL };

		log_warn("workspace %s: a cairnfs of an earlier cairnd (pid %d) serves %s: unmounting it",
			 w->c->name, (int)pid, w->c->mountpoint);
		if (access(argv[0], X_OK))
			argv[0] = "/usr/bin/fusermount3";
		if (run_wait(argv))
			lazy_unmount(w);
		for (int i = 0; i < 600 && kill(pid, 0) == 0; i++)
			usleep(50 * 1000);	/* until it has let go of the cache */
		if (kill(pid, 0) == 0) {
			log_warn("workspace %s: cairnfs %d is still there after 30 s: SIGKILL", w->c->name,
				 (int)pid);
			kill(pid, SIGKILL);
			usleep(200 * 1000);
		}
	} else {
		log_warn("workspace %s: a dead mount is left on %s: detaching it", w->c->name,
			 w->c->mountpoint);
		lazy_unmount(w);
	}
}

void ws_start(struct vmd_ws *w)
{
	struct vmd *d = w->d;
	/* a lease held elsewhere is waited for as long as it takes (the
	 * status says so), unless the config says how long */
	char *opts = xasprintf("conf=%s%s%s%s", d->conf_path,
			       w->c->cache_size ? ",cache_size=" : "",
			       w->c->cache_size ? w->c->cache_size : "",
			       w->c->lease_wait ? "" : ",lease_wait=forever");
	const char *argv[] = { vmd_program(d, "cairnfs"), w->c->name, w->c->mountpoint, "-f", "-o", opts,
			       NULL };
	char **env = vmd_child_env(d, w->c->name);
	struct vmd_spawn s = { .argv = argv, .envp = env, .new_session = 1 };
	pid_t pid;

	clear_mountpoint(w);
	if (mkdir(w->c->mountpoint, 0755) && errno != EEXIST)
		log_warn("workspace %s: cannot make %s: %s", w->c->name, w->c->mountpoint, strerror(errno));
	pid = vmd_spawn(&s);
	vconf_strv_free(env);
	free(opts);
	if (pid < 0) {
		log_error("workspace %s: cannot start cairnfs: %s", w->c->name, err_msg());
		w->state = WS_DOWN;
		w->fs_next_start = vmd_now() + 5;
		return;
	}
	w->fs_pid = pid;
	w->fs_started = vmd_now();
	w->mount_deadline = w->fs_started + MOUNT_WAIT;
	free(w->lease_wait);
	w->lease_wait = NULL;
	w->state = WS_MOUNTING;
	log_info("workspace %s: cairnfs started (pid %d) for %s", w->c->name, (int)pid, w->c->mountpoint);
	vmd_status(d, "mounting workspace %s on %s", w->c->name, w->c->mountpoint);
}

static char *marker_path(const struct vmd_ws *w)
{
	return xasprintf("%s/%s", w->c->cache_dir, MARKER);
}

static void write_marker(struct vmd_ws *w)
{
	char *path = marker_path(w);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd >= 0) {
		dprintf(fd, "%s\n", w->last_snapshot ? w->last_snapshot : "");
		close(fd);
	}
	free(path);
}

static void go_up(struct vmd_ws *w)
{
	struct vmd *d = w->d;

	w->state = WS_UP;
	w->last_active = vmd_now();
	w->last_active_wall = vmd_wall();
	if (!w->last_snapshot_at)
		w->last_snapshot_at = w->last_active;
	if (w->acfg_paths)
		write_marker(w);
	for (size_t i = 0; i < d->nagents; i++) {
		struct vmd_agent *a = d->agents[i];

		if (a->ws == w && !d->stopping && (a->state == AG_WAITING ||
						   (a->state == AG_BACKOFF && a->restart_after_stop)))
			agent_start(a);
	}
	log_info("workspace %s: up on %s", w->c->name, w->c->mountpoint);
}

/* Tells cairnfs the agent config, so that the last snapshot it takes by
 * itself when it is stopped (an unmount, SIGTERM) has it too. */
static void register_agent_config(struct vmd_ws *w)
{
	json_t *req, *r = NULL, *paths = json_array(), *excl = json_array();

	for (size_t i = 0; w->acfg_paths && w->acfg_paths[i]; i++)
		json_array_append_new(paths, json_string(w->acfg_paths[i]));
	for (size_t i = 0; w->acfg_paths && w->acfg_exclude && w->acfg_exclude[i]; i++)
		json_array_append_new(excl, json_string(w->acfg_exclude[i]));
	req = json_pack("{s:s, s:o, s:o}", "op", "agent-config", "agent_config", paths,
			"agent_config_exclude", excl);
	if (!w->acfg_paths) {
		json_decref(req);
		return;
	}
	if (ctl_call(w->ws_id, req, &r, 30) || !json_is_true(json_object_get(r, "ok")))
		log_warn("workspace %s: cannot hand cairnfs the agent config (its stop snapshot will keep the previous one): %s",
			 w->c->name, r ? json_string_value(json_object_get(r, "error")) : err_msg());
	err_clear();
	json_decref(req);
	json_decref(r);
}

/* The mount is there: restore the agent config if this is a new cache,
 * then the agents. */
static void mounted(struct vmd_ws *w)
{
	struct vmd *d = w->d;
	json_t *req = json_pack("{s:s}", "op", "status"), *r = NULL;
	const char *snap;
	char *marker = marker_path(w), *parent, *tmpl;
	int fresh = access(marker, F_OK) != 0;

	free(marker);
	register_agent_config(w);
	if (ctl_call(w->ws_id, req, &r, 30) == 0 && json_is_true(json_object_get(r, "ok"))) {
		snap = json_string_value(json_object_get(r, "snapshot"));
		free(w->last_snapshot);
		w->last_snapshot = snap ? xstrdup(snap) : NULL;
		w->generation = json_integer_value(json_object_get(r, "generation"));
		if (json_integer_value(json_object_get(r, "snapshot_time")))
			w->last_snapshot_wall = (double)json_integer_value(json_object_get(r, "snapshot_time"));
	} else {
		log_warn("workspace %s: cannot read its status: %s", w->c->name, err_msg());
	}
	json_decref(req);
	json_decref(r);
	if (!w->acfg_paths || !fresh || !w->last_snapshot || w->fs_restarts) {
		go_up(w);
		return;
	}
	/* a new VM: the agent config of the mounted snapshot, beside its place */
	parent = xstrdup(w->acfg_paths[0]);
	*strrchr(parent, '/') = '\0';
	if (!*parent) {
		free(parent);
		parent = xstrdup("/");
	}
	if (fsu_mkdir_parents(w->acfg_paths[0]))
		log_warn("workspace %s: cannot make the parents of %s", w->c->name, w->acfg_paths[0]);
	tmpl = xasprintf("%s/.cairn-agent-config.XXXXXX", strcmp(parent, "/") ? parent : "");
	free(parent);
	if (!mkdtemp(tmpl)) {
		log_error("workspace %s: cannot restore the agent config: %s: %s", w->c->name, tmpl,
			  strerror(errno));
		free(tmpl);
		go_up(w);
		return;
	}
	{
		const char *argv[] = { vmd_program(d, "cairn"), "restore", "-q", "--root", "agent-config",
				       w->last_snapshot, tmpl, NULL };
		char **env = vmd_child_env(d, w->c->name);
		struct vmd_spawn s = { .argv = argv, .envp = env };

		w->restore_pid = vmd_spawn(&s);
		vconf_strv_free(env);
	}
	if (w->restore_pid < 0) {
		log_error("workspace %s: cannot restore the agent config: %s", w->c->name, err_msg());
		w->restore_pid = 0;
		fsu_rmtree(tmpl);
		free(tmpl);
		go_up(w);
		return;
	}
	w->restore_tmp = tmpl;
	w->state = WS_RESTORING;
	vmd_status(d, "restoring the agent config of workspace %s", w->c->name);
}

/* The restored entries into their places: each path of the file set is
 * the entry named by its last component. */
static void restored(struct vmd_ws *w, int ok)
{
	const char *tmp = w->restore_tmp;

	for (size_t i = 0; ok && w->acfg_paths[i]; i++) {
		const char *dst = w->acfg_paths[i];
		char *src = xasprintf("%s/%s", tmp, strrchr(dst, '/') + 1);
		char *old = xasprintf("%s.cairn-old", dst);
		struct stat st;

		if (lstat(src, &st) == 0) {
			fsu_rmtree(old);
			if (rename(dst, old) && errno != ENOENT)
				log_error("workspace %s: cannot move %s aside: %s", w->c->name, dst, strerror(errno));
			else if (rename(src, dst))
				log_error("workspace %s: cannot put %s in place: %s", w->c->name, dst, strerror(errno));
			else
				log_info("workspace %s: agent config %s restored", w->c->name, dst);
			fsu_rmtree(old);
		}
		free(src);
		free(old);
	}
	fsu_rmtree(tmp);
	free(w->restore_tmp);
	w->restore_tmp = NULL;
	go_up(w);
}

/* The newest change time under the agent config (excludes skipped):
 * changed since the last snapshot, it is worth a snapshot of its own. */
static void newest_under(int dfd, const char *name, const char *rel, char **exclude,
			 double *newest, int depth)
{
	struct stat st;
	double t;

	for (size_t i = 0; exclude && exclude[i]; i++)
		if (fnmatch(exclude[i], rel, FNM_PATHNAME) == 0)
			return;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return;
	t = (double)st.st_ctim.tv_sec + st.st_ctim.tv_nsec / 1e9;
	if (t > *newest)
		*newest = t;
	if (S_ISDIR(st.st_mode) && depth < 64) {
		int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		if (!d) {
			if (fd >= 0)
				close(fd);
			return;
		}
		while ((de = readdir(d)) != NULL) {
			char *sub;

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			sub = xasprintf("%s/%s", rel, de->d_name);
			newest_under(dirfd(d), de->d_name, sub, exclude, newest, depth + 1);
			free(sub);
		}
		closedir(d);
	}
}

static double acfg_newest(const struct vmd_ws *w)
{
	double newest = 0;

	for (size_t i = 0; w->acfg_paths && w->acfg_paths[i]; i++) {
		const char *name = strrchr(w->acfg_paths[i], '/') + 1;
		char *dir = xstrndup(w->acfg_paths[i], (size_t)(name - w->acfg_paths[i]));
		int fd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			newest_under(fd, name, name, w->acfg_exclude, &newest, 0);
			close(fd);
		}
		free(dir);
	}
	return newest;
}

int ws_snapshot(struct vmd_ws *w, const char *reason)
{
	struct vmd *d = w->d;
	const char **argv;
	size_t n = 0, cap;
	char **env;
	struct vmd_spawn s = { 0 };
	int p[2];

	if (w->snap_pid > 0) {
		w->snap_again = 1;
		return -EBUSY;
	}
	if (w->state != WS_UP)
		return -EAGAIN;
	cap = 8;
	for (size_t i = 0; w->acfg_paths && w->acfg_paths[i]; i++)
		cap += 2;
	for (size_t i = 0; w->acfg_exclude && w->acfg_exclude[i]; i++)
		cap += 2;
	argv = xcalloc(cap, sizeof(*argv));
	argv[n++] = vmd_program(d, "cairn");
	argv[n++] = "snapshot";
	argv[n++] = "--json";
	argv[n++] = "--mount";
	argv[n++] = w->c->mountpoint;
	for (size_t i = 0; w->acfg_paths && w->acfg_paths[i]; i++) {
		argv[n++] = "--agent-config";
		argv[n++] = w->acfg_paths[i];
	}
	for (size_t i = 0; w->acfg_paths && w->acfg_exclude && w->acfg_exclude[i]; i++) {
		argv[n++] = "--agent-config-exclude";
		argv[n++] = w->acfg_exclude[i];
	}
	if (pipe2(p, O_CLOEXEC)) {
		free(argv);
		return err_set(-errno, "cannot make a pipe: %s", strerror(errno));
	}
	w->acfg_newest = acfg_newest(w);	/* what this snapshot will have seen */
	env = vmd_child_env(d, w->c->name);
	s.argv = argv;
	s.envp = env;
	s.out_fd = p[1];
	w->snap_pid = vmd_spawn(&s);
	close(p[1]);
	vconf_strv_free(env);
	free(argv);
	if (w->snap_pid < 0) {
		int rc = w->snap_pid;

		w->snap_pid = 0;
		close(p[0]);
		log_error("workspace %s: cannot start a snapshot: %s", w->c->name, err_msg());
		return rc;
	}
	w->snap_pipe = p[0];
	fcntl(w->snap_pipe, F_SETFL, O_NONBLOCK);
	buf_reset(&w->snap_out);
	w->snap_reason = reason;
	w->snap_started = vmd_now();
	w->snap_again = 0;
	log_info("workspace %s: snapshot (%s)", w->c->name, reason);
	vmd_status(d, "snapshot of workspace %s (%s)", w->c->name, reason);
	return 0;
}

void ws_snap_output(struct vmd_ws *w)
{
	char data[4096];
	ssize_t n = read(w->snap_pipe, data, sizeof(data));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(w->snap_pipe);
		w->snap_pipe = -1;
		return;
	}
	if (w->snap_out.len < 65536)
		buf_add(&w->snap_out, data, (size_t)n);
}

static void unmount(struct vmd_ws *w)
{
	const char *argv[] = { "/bin/fusermount3", "-u", w->c->mountpoint, NULL };

	if (access(argv[0], X_OK))
		argv[0] = "/usr/bin/fusermount3";
	w->state = WS_UNMOUNTING;
	vmd_status(w->d, "unmounting workspace %s", w->c->name);
	if (is_mounted(w->c->mountpoint) && run_wait(argv)) {
		log_warn("workspace %s: %s is busy: detached lazily", w->c->name, w->c->mountpoint);
		lazy_unmount(w);
	}
	if (w->fs_pid > 0)
		kill(w->fs_pid, SIGTERM);	/* it exits once unmounted anyway */
	else
		w->state = WS_OFF;
}

static void snapshot_ended(struct vmd_ws *w, int status)
{
	struct vmd *d = w->d;
	json_t *r = NULL, *reply;
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	while (w->snap_pipe >= 0)	/* what is left of its output */
		ws_snap_output(w);
	if (ok) {
		json_error_t je;

		r = json_loadb(w->snap_out.len ? (const char *)w->snap_out.data : "", w->snap_out.len, 0, &je);
		ok = r && json_string_value(json_object_get(r, "snapshot"));
	}
	if (ok) {
		free(w->last_snapshot);
		w->last_snapshot = xstrdup(json_string_value(json_object_get(r, "snapshot")));
		w->generation = json_integer_value(json_object_get(r, "generation"));
		w->last_snapshot_wall = vmd_wall();
		w->last_snapshot_at = vmd_now();
		w->snapshots++;
		free(w->last_error);
		w->last_error = NULL;
		if (w->acfg_paths)
			write_marker(w);
		log_info("workspace %s: snapshot %.8s (generation %lld, %s) in %.2f s", w->c->name,
			 w->last_snapshot, w->generation, w->snap_reason, vmd_now() - w->snap_started);
		reply = json_pack("{s:b, s:s, s:s, s:I}", "ok", 1, "workspace", w->c->name,
				  "snapshot", w->last_snapshot, "generation", (json_int_t)w->generation);
	} else {
		w->snapshot_failures++;
		free(w->last_error);
		w->last_error = xasprintf("snapshot (%s) failed: `cairn snapshot --mount %s` %s %d",
					  w->snap_reason, w->c->mountpoint,
					  WIFEXITED(status) ? "exited with status" : "was killed by signal",
					  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		if (d->stopping)	/* cairnfs, told to stop too, takes its own */
			log_warn("workspace %s: %s; cairnfs takes the last snapshot as it stops",
				 w->c->name, w->last_error);
		else
			log_error("workspace %s: %s", w->c->name, w->last_error);
		reply = json_pack("{s:b, s:s}", "ok", 0, "error", w->last_error);
	}
	json_decref(r);
	w->snap_pid = 0;
	for (size_t i = 0; i < w->nwaiters; i++)
		vctl_reply(d, w->waiters[i], json_incref(reply));
	json_decref(reply);
	w->nwaiters = 0;
	if (d->stopping) {
		if (w->state != WS_UP)
			return;		/* past the deadline: already being unmounted */
		if (w->snap_again) {
			ws_snapshot(w, "shutdown");
		} else if (!strcmp(w->snap_reason, "shutdown")) {
			/* failed: cairnfs's own stop snapshot may still save it
			 * (cairnfs_ended tells from its exit status) */
			w->shutdown_snap_failed = !ok;
			unmount(w);
		}
		return;
	}
	if (w->snap_again)
		ws_snapshot(w, "asked again");
}

static void cairnfs_ended(struct vmd_ws *w, int status)
{
	struct vmd *d = w->d;
	enum ws_state was = w->state;
	double delay;

	w->fs_pid = 0;
	if (was == WS_UNMOUNTING || d->stopping) {
		/* 0: everything is in a snapshot (ours, or its final one); 3: its
		 * final snapshot failed, the changes are in the cache dir only */
		int saved = WIFEXITED(status) && WEXITSTATUS(status) == 0;

		w->state = WS_OFF;
		if (d->stopping && (WIFEXITED(status) && WEXITSTATUS(status) == 3))
			d->deadline_missed |= 2;
		else if (d->stopping && w->shutdown_snap_failed && !saved)
			d->deadline_missed |= 2;
		if (saved)
			log_info("workspace %s: cairnfs has exited; unmounted", w->c->name);
		else
			log_error("workspace %s: cairnfs has exited (%s %d): the last changes may be in its cache dir only",
				  w->c->name, WIFEXITED(status) ? "status" : "signal",
				  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return;
	}
	if (WIFEXITED(status))
		log_error("workspace %s: cairnfs exited with status %d", w->c->name, WEXITSTATUS(status));
	else
		log_error("workspace %s: cairnfs was killed by signal %d", w->c->name, WTERMSIG(status));
	lazy_unmount(w);
	if (!d->ready_sent && (was == WS_MOUNTING) && !w->fs_restarts) {
		/* it never mounted: a lease held elsewhere, a bad key, no
		 * workspace; cairnfs said why, on the line above this one */
		log_error("workspace %s: cairnfs could not mount it; cairnd stops", w->c->name);
		d->stopping = 1;
		d->deadline_missed |= 4;
		w->state = WS_OFF;
		return;
	}
	/* its agents were writing into a dead mount: stop them, remount on
	 * the same cache, then start them again */
	for (size_t i = 0; i < d->nagents; i++) {
		struct vmd_agent *a = d->agents[i];

		if (a->ws != w)
			continue;
		if (agent_live(a)) {
			a->restart_after_stop = 1;
			agent_stop(a);
		} else if (a->state == AG_BACKOFF || a->state == AG_RUNNING) {
			a->state = AG_WAITING;
		}
	}
	w->fs_restarts++;
	delay = 1;
	for (unsigned k = 1; k < w->fs_restarts && delay < 60; k++)
		delay *= 2;
	w->state = WS_DOWN;
	w->fs_next_start = vmd_now() + delay;
	vmd_status(d, "workspace %s: cairnfs died; remounting in %.0f s", w->c->name, delay);
}

int ws_child_exited(struct vmd *d, pid_t pid, int status)
{
	for (size_t i = 0; i < d->nws; i++) {
		struct vmd_ws *w = &d->ws[i];

		if (pid == w->fs_pid) {
			cairnfs_ended(w, status);
			return 1;
		}
		if (pid == w->snap_pid) {
			snapshot_ended(w, status);
			return 1;
		}
		if (pid == w->restore_pid) {
			int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

			w->restore_pid = 0;
			if (!ok)
				log_error("workspace %s: the agent config could not be restored (see above);"
					  " the agents start without it", w->c->name);
			restored(w, ok);
			return 1;
		}
		if (pid == w->hook_pid) {
			w->hook_pid = 0;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				log_info("workspace %s: idle report delivered", w->c->name);
			else
				log_error("workspace %s: the idle report failed (see above)", w->c->name);
			return 1;
		}
	}
	return 0;
}

/* A mount that lost its lease works on, but nothing it does is saved
 * until cairnfs takes the lease back: said loudly, once each way. */
static void lease_lost_seen(struct vmd_ws *w, int lost, const char *why)
{
	if (lost == w->lease_lost)
		return;
	w->lease_lost = lost;
	if (lost) {
		free(w->last_error);
		w->last_error = xasprintf("the mount lost the lease of the workspace (%s): its changes are not saved until it is taken back",
					  why ? why : "not renewed");
		log_error("workspace %s: %s", w->c->name, w->last_error);
		vmd_status(w->d, "workspace %s: LEASE LOST: changes are not saved", w->c->name);
	} else {
		log_warn("workspace %s: the mount has the lease back: its changes are saved again", w->c->name);
		vmd_status(w->d, "workspace %s: lease taken back", w->c->name);
	}
	hook_lease_report(w, lost ? "lost" : "held", lost ? w->last_error : NULL);
}

/* One second of the idle rules. */
static void activity(struct vmd_ws *w, double now)
{
	struct vmd *d = w->d;
	json_t *req = json_pack("{s:s}", "op", "activity"), *r = NULL;
	const struct conf_workspace *c = w->c;
	int busy = 0, dirty;
	double idle;

	if (ctl_call(w->ws_id, req, &r, 5) == 0 && json_is_true(json_object_get(r, "ok"))) {
		uint64_t seq = (uint64_t)json_integer_value(json_object_get(r, "change_seq"));

		busy |= seq != w->change_seq;
		w->change_seq = seq;
		w->changed = json_is_true(json_object_get(r, "changed"));
		lease_lost_seen(w, json_is_true(json_object_get(r, "lease_lost")),
				json_string_value(json_object_get(r, "lease_why")));
	} else {
		err_clear();
	}
	json_decref(req);
	json_decref(r);
	for (size_t i = 0; i < d->nagents; i++)
		busy |= d->agents[i]->ws == w && d->agents[i]->cpu > d->conf.idle_cpu;
	if (d->tty_input > w->last_active_wall)
		busy = 1;
	if (busy) {
		w->last_active = now;
		w->last_active_wall = vmd_wall();
		w->idle_snapped = w->reported = 0;
	}
	idle = now - w->last_active;
	if (w->snap_pid > 0)
		return;
	dirty = -1;	/* not looked at yet: the agent config costs a walk */
#define DIRTY() (dirty >= 0 ? dirty : (dirty = w->changed || acfg_newest(w) > w->acfg_newest))
	if (c->idle_after >= 0 && idle >= (double)c->idle_after && !w->idle_snapped) {
		w->idle_snapped = 1;
		if (DIRTY()) {
			ws_snapshot(w, "idle");
			return;
		}
	}
	if (c->interval > 0 && now - w->last_snapshot_at >= (double)c->interval) {
		if (DIRTY()) {
			ws_snapshot(w, "interval");
			return;
		}
		w->last_snapshot_at = now;	/* nothing to keep: look again in one interval */
	}
	if (c->shutdown_after >= 0 && idle >= (double)c->shutdown_after && !w->reported &&
	    !w->hook_pid && (d->conf.idle_hook || d->conf.cp_url)) {
		if (DIRTY()) {
			ws_snapshot(w, "idle");	/* the report names a snapshot that has it all */
			return;
		}
		w->reported = 1;
		w->hook_pid = hook_report(w, w->last_active_wall);
		if (w->hook_pid < 0) {
			log_error("workspace %s: cannot report idle: %s", c->name, err_msg());
			w->hook_pid = 0;
		}
	}
#undef DIRTY
}

/* The wait for another machine's lease, as cairnfs reports it in
 * cairnfs.waiting of the cache dir: logged, in the status (and STATUS=),
 * and told to the control plane. */
static void lease_wait_changed(struct vmd_ws *w, const char *line)
{
	struct vmd *d = w->d;

	free(w->lease_wait);
	w->lease_wait = line ? xstrdup(line) : NULL;
	if (line) {
		log_warn("workspace %s: %s", w->c->name, line);
		vmd_status(d, "workspace %s: waiting for the lease (%s)", w->c->name, line);
	} else {
		log_info("workspace %s: the lease is taken; mounting", w->c->name);
	}
	hook_lease_report(w, line ? "waiting" : "taken", line);
}

static void lease_wait_poll(struct vmd_ws *w, double now)
{
	char *path = xasprintf("%s/cairnfs.waiting", w->c->cache_dir);
	char line[1024] = "";
	FILE *f = fopen(path, "r");

	free(path);
	if (f) {
		if (fgets(line, sizeof(line), f))
			line[strcspn(line, "\n")] = '\0';
		fclose(f);
	}
	if (line[0]) {
		w->mount_deadline = now + MOUNT_WAIT;	/* waiting is not hanging */
		if (!w->lease_wait || strcmp(w->lease_wait, line))
			lease_wait_changed(w, line);
	} else if (w->lease_wait) {
		lease_wait_changed(w, NULL);
	}
}

void ws_tick(struct vmd_ws *w, double now)
{
	switch (w->state) {
	case WS_MOUNTING: {
		char *id = NULL;

		if (ctl_mount_workspace(w->c->mountpoint, &id) == 0) {
			free(w->ws_id);
			w->ws_id = id;
			if (w->lease_wait)
				lease_wait_changed(w, NULL);
			mounted(w);
		} else {
			err_clear();
			lease_wait_poll(w, now);
			if (now > w->mount_deadline) {
				log_error("workspace %s: not mounted %.0f s after cairnfs started; restarting it",
					  w->c->name, MOUNT_WAIT);
				kill(w->fs_pid, SIGKILL);
				w->mount_deadline = now + MOUNT_WAIT;
			}
		}
		break;
	}
	case WS_DOWN:
		if (now >= w->fs_next_start && !count_live_agents(w) && !w->d->stopping)
			ws_start(w);
		break;
	case WS_UP:
		if (!w->d->stopping)
			activity(w, now);
		break;
	default:
		break;
	}
}

void ws_shutdown(struct vmd_ws *w)
{
	switch (w->state) {
	case WS_UP:
		if (w->snap_pid > 0)
			w->snap_again = 1;	/* it may have missed the agents' last writes */
		else if (ws_snapshot(w, "shutdown"))
			unmount(w);	/* it could not even start: the last one stands */
		break;
	case WS_MOUNTING:
	case WS_RESTORING:
	case WS_DOWN:
		if (w->restore_pid > 0)
			kill(w->restore_pid, SIGKILL);
		if (w->fs_pid > 0) {
			lazy_unmount(w);
			kill(w->fs_pid, SIGTERM);
			w->state = WS_UNMOUNTING;
		} else {
			w->state = WS_OFF;
		}
		break;
	default:
		break;
	}
}

void ws_kill(struct vmd_ws *w)
{
	if (w->snap_pid > 0)
		kill(w->snap_pid, SIGKILL);
	if (w->hook_pid > 0)
		kill(w->hook_pid, SIGKILL);
	if (w->restore_pid > 0)
		kill(w->restore_pid, SIGKILL);
	if (w->fs_pid > 0) {
		lazy_unmount(w);
		kill(w->fs_pid, w->state == WS_UNMOUNTING ? SIGKILL : SIGTERM);
		w->state = WS_UNMOUNTING;
	} else {
		w->state = WS_OFF;
	}
}

json_t *ws_json(struct vmd_ws *w)
{
	static const char *const names[] = { "mounting", "restoring", "up", "down", "unmounting", "off" };
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:f}",
			      "name", w->c->name, "mountpoint", w->c->mountpoint, "state", names[w->state],
			      "cairnfs_pid", (json_int_t)w->fs_pid, "cairnfs_restarts",
			      (json_int_t)w->fs_restarts, "snapshots", (json_int_t)w->snapshots,
			      "changed", w->changed,
			      "idle_seconds", w->state == WS_UP ? vmd_now() - w->last_active : 0.0);

	if (!j)
		return NULL;
	json_object_set_new(j, "workspace_id", w->ws_id ? json_string(w->ws_id) : json_null());
	json_object_set_new(j, "snapshot", w->last_snapshot ? json_string(w->last_snapshot) : json_null());
	json_object_set_new(j, "generation", w->generation >= 0 ? json_integer(w->generation) : json_null());
	json_object_set_new(j, "snapshot_age_seconds", w->last_snapshot_wall > 0 ?
			    json_real(vmd_wall() - w->last_snapshot_wall) : json_null());
	json_object_set_new(j, "snapshot_failures", json_integer(w->snapshot_failures));
	json_object_set_new(j, "snapshot_running", json_boolean(w->snap_pid > 0));
	json_object_set_new(j, "last_error", w->last_error ? json_string(w->last_error) : json_null());
	json_object_set_new(j, "lease_wait", w->lease_wait ? json_string(w->lease_wait) : json_null());
	json_object_set_new(j, "lease", json_string(w->lease_lost ? "lost" : w->state == WS_UP ? "held" :
						    w->lease_wait ? "waiting" : "none"));
	return j;
}

void ws_free(struct vmd_ws *w)
{
	if (w->snap_pipe >= 0)
		close(w->snap_pipe);
	buf_free(&w->snap_out);
	vconf_strv_free(w->acfg_paths);
	vconf_strv_free(w->acfg_exclude);
	free(w->ws_id);
	free(w->last_snapshot);
	free(w->last_error);
	free(w->restore_tmp);
	free(w->waiters);
	free(w->lease_wait);
}
