/*
 * cairnfs.c - the FUSE daemon of one workspace:
 *   cairnfs SOURCE MOUNTPOINT [-f] [-d] [-o OPT[,OPT...]]
 *
 * Named like sshfs so that mount.fuse3 runs it for `mount -t fuse.cairnfs`
 * and fstab lines.  Without -f it forks at once; the child opens the
 * workspace, takes its lease, fills or resumes the cache and mounts, and
 * only then tells the waiting parent, which exits 0 -- or, with the child's
 * one-line error already on stderr, 1.  Threads (the lease renewer, the
 * committer, the FUSE workers) are all started in the child.
 *
 * Stopping: whatever order an unmount and SIGTERM, SIGINT or SIGHUP come
 * in (and however many), the end is the same: the kernel's cached writes
 * are written back, the mount goes, the metadata is committed durably, a
 * last snapshot saves what changed since the previous one (final_snapshot,
 * on by default), the lease is released and the process exits 0.  The
 * signals never reach a handler or their default action: the stop thread
 * (lib/stop.c) takes them and ends the FUSE loop; only SIGKILL cuts a
 * stop short, and the next mount of the same cache recovers from that.
 */
#define FUSE_USE_VERSION 34
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "buf.h"
#include "err.h"
#include "fetch.h"
#include "fs.h"
#include "conf.h"
#include "ctlclient.h"
#include "fsutil.h"
#include "log.h"
#include "repo.h"
#include "stop.h"

struct cfs_opts {
	char *key, *workspace, *tenant, *cache, *state_dir, *conf, *name;
	char *snapshot, *cache_size;
	char *host_id, *takeover_from, *lease_ttl, *lease_wait, *final_snapshot;
	int force, discard_local, keep_local, noprefetch, allow_rollback, init, nonempty;
	int atime_given;	/* bits 1 << enum fs_atime: the modes named */
	int nodiratime;
	int foreground, debug, help, version;
	char *source, *mountpoint;
};

enum { KEY_FOREGROUND, KEY_DEBUG, KEY_HELP, KEY_VERSION, KEY_DISCARD,
       KEY_RELATIME, KEY_STRICTATIME, KEY_NOATIME, KEY_NODIRATIME };

#define CFS_OPT(t, p) { t, offsetof(struct cfs_opts, p), 1 }
static const struct fuse_opt cfs_opt_spec[] = {
	CFS_OPT("key=%s", key),
	CFS_OPT("workspace=%s", workspace),
	CFS_OPT("tenant=%s", tenant),
	CFS_OPT("cache=%s", cache),
	CFS_OPT("state_dir=%s", state_dir),
	CFS_OPT("conf=%s", conf),
	CFS_OPT("name=%s", name),
	CFS_OPT("force", force),
	CFS_OPT("allow_rollback", allow_rollback),
	CFS_OPT("snapshot=%s", snapshot),
	CFS_OPT("cache_size=%s", cache_size),
	CFS_OPT("discard_local", discard_local),
	CFS_OPT("keep_local_as_snapshot", keep_local),
	CFS_OPT("noprefetch", noprefetch),
	CFS_OPT("init", init),
	CFS_OPT("nonempty", nonempty),
	CFS_OPT("host_id=%s", host_id),
	CFS_OPT("takeover_from=%s", takeover_from),
	CFS_OPT("lease_ttl=%s", lease_ttl),
	CFS_OPT("lease_wait=%s", lease_wait),
	CFS_OPT("final_snapshot=%s", final_snapshot),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	/* atime: cairnfs's own (the kernel moves no FUSE file's atime) */
	FUSE_OPT_KEY("relatime", KEY_RELATIME),
	FUSE_OPT_KEY("strictatime", KEY_STRICTATIME),
	FUSE_OPT_KEY("noatime", KEY_NOATIME),
	FUSE_OPT_KEY("nodiratime", KEY_NODIRATIME),
	/* fstab words that mean nothing to FUSE */
	FUSE_OPT_KEY("_netdev", KEY_DISCARD),
	FUSE_OPT_KEY("nofail", KEY_DISCARD),
	FUSE_OPT_KEY("noauto", KEY_DISCARD),
	FUSE_OPT_KEY("auto", KEY_DISCARD),
	FUSE_OPT_KEY("defaults", KEY_DISCARD),
	FUSE_OPT_KEY("x-", KEY_DISCARD),
	FUSE_OPT_KEY("x-%s", KEY_DISCARD),
	FUSE_OPT_END
};

static const char usage[] =
	"usage: cairnfs SOURCE MOUNTPOINT [-f] [-d] [-o OPTIONS]\n"
	"  SOURCE     a store URL (s3://BUCKET[/BASE], file:///DIR) or the NAME of a\n"
	"             [workspace NAME] section of cairn.conf\n"
	"  -f         stay in the foreground      -d  FUSE debug output (implies -f)\n"
	"  -o key=PROVIDER,workspace=ID,tenant=T,cache=DIR,state_dir=DIR,conf=FILE,\n"
	"     name=NAME,force,allow_rollback,snapshot=ID,cache_size=SIZE,noprefetch,\n"
	"     discard_local,keep_local_as_snapshot,init,nonempty,host_id=ID,\n"
	"     takeover_from=HOST,lease_ttl=DURATION,lease_wait=DURATION|forever,\n"
	"     final_snapshot=yes|no,relatime|strictatime|noatime,nodiratime\n"
	"See cairnfs(8).\n";

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cfs_opts *o = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!o->source)
			o->source = xstrdup(arg);
		else if (!o->mountpoint)
			o->mountpoint = xstrdup(arg);
		else {
			fprintf(stderr, "cairnfs: unexpected argument %s\n%s", arg, usage);
			return -1;
		}
		return 0;
	case KEY_FOREGROUND:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = o->foreground = 1;
		return 1;	/* libfuse prints its request trace with -d */
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	case KEY_DISCARD:
		return 0;
	case KEY_RELATIME:
		o->atime_given |= 1 << FS_RELATIME;
		return 0;
	case KEY_STRICTATIME:
		o->atime_given |= 1 << FS_STRICTATIME;
		return 0;
	case KEY_NOATIME:
		o->atime_given |= 1 << FS_NOATIME;
		return 1;	/* the mount's flag too, so that /proc/mounts says it */
	case KEY_NODIRATIME:
		o->nodiratime = 1;
		return 0;
	}
	return 1;
}

static void free_opts(struct cfs_opts *o)
{
	free(o->key);
	free(o->workspace);
	free(o->tenant);
	free(o->cache);
	free(o->state_dir);
	free(o->conf);
	free(o->name);
	free(o->snapshot);
	free(o->cache_size);
	free(o->host_id);
	free(o->takeover_from);
	free(o->lease_ttl);
	free(o->lease_wait);
	free(o->final_snapshot);
	free(o->source);
	free(o->mountpoint);
}

/* Forks; the parent waits for the child's word and exits with it. */
static int detach(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(p[0]);
		*ready_fd = p[1];
		setsid();
		return 0;
	}
	close(p[1]);
	if (read(p[0], &c, 1) == 1 && c == 'R')
		_exit(0);
	{
		int st;

		if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st))
			_exit(WEXITSTATUS(st));
	}
	_exit(1);
}

/* Once mounted: stdio to the log file, the parent released. */
static void announce_ready(int ready_fd, const char *cache)
{
	char *log_path = xasprintf("%s/cairnfs.log", cache);
	int lfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int nfd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (nfd >= 0)
		dup2(nfd, STDIN_FILENO);
	if (lfd >= 0) {
		dup2(lfd, STDOUT_FILENO);
		dup2(lfd, STDERR_FILENO);
	}
	if (nfd > STDERR_FILENO)
		close(nfd);
	if (lfd > STDERR_FILENO)
		close(lfd);
	free(log_path);
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) != 1)
			log_warn("cannot tell the mounting process that the mount is ready");
		close(ready_fd);
	}
	if (chdir("/"))
		log_warn("chdir /: %s", strerror(errno));
}

static int write_pid(const char *cache)
{
	char *path = xasprintf("%s/cairnfs.pid", cache);
	FILE *f = fopen(path, "w");
	int rc = 0;

	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f))
		rc = err_set(-EIO, "%s: %s", path, strerror(errno));
	free(path);
	return rc;
}

/* FUSE gives each mount a strict 1% share of the dirty page cache, which
 * guards against a daemon that never writes back; cairnfs is root's own
 * and writes back at disk speed, so its writers may use the system's
 * ordinary dirty limits.  Best effort: a kernel without the knobs keeps
 * its defaults. */
static void tune_writeback(const char *mountpoint)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096], dev[32] = "";

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char d[32], mnt[PATH_MAX];

		/* "36 35 0:40 / /mnt rw,... - fuse.cairnfs ..." */
		if (sscanf(line, "%*s %*s %31s %*s %4095s", d, mnt) == 2 &&
		    strcmp(mnt, mountpoint) == 0 && strstr(line, " - fuse.cairnfs "))
			snprintf(dev, sizeof(dev), "%s", d);
	}
	fclose(f);
	if (!dev[0])
		return;
	{
		static const char *const knobs[][2] = {
			{ "strict_limit", "0" }, { "max_ratio", "100" },
		};

		for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
			char *path = xasprintf("/sys/class/bdi/%s/%s", dev, knobs[i][0]);
			int fd = open(path, O_WRONLY | O_CLOEXEC);

			if (fd < 0 || write(fd, knobs[i][1], strlen(knobs[i][1])) < 0)
				log_info("cannot set %s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			free(path);
		}
	}
}

/* ---- stopping ------------------------------------------------------------
 * The stop thread (lib/stop.c) calls on_stop for every stop signal.  Before
 * the FUSE loop runs, a stop is only recorded: run() looks at
 * stop_requested() after each step and does not mount.  Once it runs, the
 * first signal writes the kernel's cached writes back (syncfs, while the
 * workers still answer, for at most FLUSH_WAIT seconds), ends the session,
 * and wakes the main thread out of the loop's wait with SIGUSR1 until the
 * loop has returned; run() then does the rest of the stop. */

#define FLUSH_WAIT 30	/* seconds */

static struct {
	pthread_mutex_t lock;		/* guards everything below */
	pthread_cond_t cond;		/* loop_done, flushed */
	struct fuse_session *se;	/* while the loop may run */
	struct fs *fs;			/* its filesystem, with se */
	const char *mountpoint;
	pthread_t main;
	int serving;			/* the loop was entered */
	int loop_done;			/* ... and has returned */
	int flushed;
	int stops;			/* signals taken */
} stopper = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void wake_handler(int sig)
{
	(void)sig;	/* only there to interrupt the loop's wait */
}

static void *flush_main(void *arg)
{
	int fd = open(arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || syncfs(fd))
		log_warn("stopping: cannot write back the kernel's cache of %s: %s", (char *)arg,
			 strerror(errno));
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&stopper.lock);
	stopper.flushed = 1;
	pthread_cond_broadcast(&stopper.cond);
	pthread_mutex_unlock(&stopper.lock);
	free(arg);
	return NULL;
}

static void timed_wait(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&stopper.cond, &stopper.lock, &ts);
}

static void on_stop(int sig, void *unused)
{
	pthread_t t;

	(void)unused;
	pthread_mutex_lock(&stopper.lock);
	if (stopper.stops++) {
		pthread_mutex_unlock(&stopper.lock);
		log_info("%s: already stopping", stop_signal_name(sig));
		return;
	}
	log_info("%s: stopping (write back, unmount, last snapshot, release the lease)",
		 stop_signal_name(sig));
	if (!stopper.se || stopper.loop_done) {
		pthread_mutex_unlock(&stopper.lock);
		return;		/* not mounted yet, or unmounted already */
	}
	if (stopper.serving && stopper.mountpoint &&
	    pthread_create(&t, NULL, flush_main, xstrdup(stopper.mountpoint)) == 0) {
		pthread_detach(t);
		for (int i = 0; i < FLUSH_WAIT * 10 && !stopper.flushed && !stopper.loop_done; i++)
			timed_wait(100);
		if (!stopper.flushed && !stopper.loop_done)
			log_warn("stopping: the write-back of %s takes more than %d s: going on",
				 stopper.mountpoint, FLUSH_WAIT);
	}
	if (stopper.se && !stopper.loop_done) {
		/* while the workers still answer what a notification under
		 * way may wait for */
		fs_atime_attach(stopper.fs, NULL);
		fuse_session_exit(stopper.se);
		while (!stopper.loop_done) {
			pthread_kill(stopper.main, SIGUSR1);
			timed_wait(100);
		}
	}
	pthread_mutex_unlock(&stopper.lock);
}

/* Ends the stopper's part: the loop has returned (or never ran). */
static void stopper_loop_done(void)
{
	pthread_mutex_lock(&stopper.lock);
	stopper.loop_done = 1;
	pthread_cond_broadcast(&stopper.cond);
	pthread_mutex_unlock(&stopper.lock);
}

/* 0, or -EINTR with the error set when a stop came before the mount. */
static int stop_check(const char *what)
{
	int sig = stop_requested();

	return sig ? err_set(-EINTR, "stopped by %s %s", stop_signal_name(sig), what) : 0;
}

/* While waiting for another machine's lease: a line in cairnfs.waiting
 * of the cache dir, which cairnd reports; removed when the wait is over. */
static void lease_waiting(const char *line, void *arg)
{
	struct repo *r = arg;
	char *path = xasprintf("%s/cairnfs.waiting", r->state_dir);

	if (line) {
		char *tmp = xasprintf("%s.tmp", path);
		FILE *f = fopen(tmp, "w");

		if (f && fprintf(f, "%s\n", line) > 0 && fclose(f) == 0)
			rename(tmp, path);
		else if (f)
			fclose(f);
		free(tmp);
	} else {
		unlink(path);
	}
	free(path);
}

/* A lost lease may be taken back when the head is still the snapshot this
 * cache was last in step with: no other writer committed meanwhile. */
static int lease_may_retake(struct repo *r, void *arg)
{
	struct fs *fs = arg;
	struct repo_head head;
	char *base = NULL;
	int ok;

	if (repo_head_read(r, &head)) {
		err_clear();
		return 0;
	}
	pthread_mutex_lock(&fs->lock);
	if (fs_meta_get(fs, "base", &base))
		base = NULL;
	pthread_mutex_unlock(&fs->lock);
	ok = head.generation ? base && !strcmp(base, head.snapshot_id) : !base || !*base;
	free(base);
	return ok;
}

/* An unmount returns before its daemon has finished its stop (the last
 * commit, the final snapshot, the lease): a new mount of the same cache
 * waits for that daemon to exit instead of failing, for CACHE_WAIT
 * seconds at most.  A cache that another cairnfs serves, not stopping, is
 * refused at once (fs_open says so). */
#define CACHE_WAIT 300

static int wait_cache_free(const char *cache_dir, const char *ws_id)
{
	int fd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), told = 0, serving_for = 0;

	if (fd < 0)
		return 0;	/* a new cache: fs_open makes it */
	for (int ticks = 0; flock(fd, LOCK_EX | LOCK_NB); ticks++) {
		json_t *req = json_pack("{s:s}", "op", "status"), *r = NULL;
		int serving = ctl_call(ws_id, req, &r, 2) == 0 && json_is_true(json_object_get(r, "ok")) &&
			      !json_is_true(json_object_get(r, "stopping"));

		json_decref(req);
		json_decref(r);
		err_clear();
		/* serving for 3 s in a row: a daemon just unmounted may not have
		 * seen it yet, and answers as serving for a moment */
		serving_for = serving ? serving_for + 1 : 0;
		if (serving_for > 30 || ticks >= CACHE_WAIT * 10) {
			close(fd);
			return 0;	/* fs_open refuses, naming the cache */
		}
		if (!serving && !told++)
			log_warn("cache dir %s: the cairnfs that served it is finishing its stop: waiting for it to exit",
				 cache_dir);
		if (stop_requested()) {
			close(fd);
			return stop_check("while waiting for the cache dir");
		}
		usleep(100 * 1000);
	}
	flock(fd, LOCK_UN);
	close(fd);
	return 0;
}

/* Nothing of the mountpoint's own would be hidden by the mount. */
static int mountpoint_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int empty = 1;

	if (!d)
		return 1;	/* cannot tell: the mount says why */
	while (empty && (de = readdir(d)) != NULL)
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

/* A snapshot this cache committed as the process was killed, before it
 * could note it as its base (fs/snap.c note_pending): when it is the head,
 * it is the base now (the files it read stay dirty, to be read again and
 * deduplicated); otherwise its commit never happened.  *base is updated.
 * 0, or -EIO with the error set. */
static int adopt_pending(struct fs *fs, const char *head_id, uint64_t generation, char **base)
{
	char *pending = NULL, num[32];
	int rc = 0;

	if (fs_meta_get(fs, "pending_base", &pending) || !*pending) {
		free(pending);
		return 0;
	}
	if (head_id && !strcmp(pending, head_id)) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)generation);
		rc = fs_meta_set(fs, "base", pending);
		if (!rc)
			rc = fs_meta_set(fs, "base_generation", num);
		if (!rc) {
			log_info("snapshot %.8s, committed as the last run was killed, is the cache's base", pending);
			free(*base);
			*base = xstrdup(pending);
		}
	}
	if (!rc)
		rc = fs_meta_set(fs, "pending_base", "");
	if (!rc)
		rc = fs_meta_commit(fs, 1);
	free(pending);
	return rc ? err_prefix(-EIO, "cache dir %s", fs->cache_dir) : 0;
}

/* A warm cache whose base is not the snapshot to serve (the head moved
 * on, or -o snapshot= names another): refreshed when it holds no local
 * change, else refused unless told what to do with the local changes. */
static int resume_or_refresh(struct fs *fs, struct repo *r, struct cfs_opts *o)
{
	struct repo_head head;
	struct fs_usage u;
	char *base = NULL;
	const char *target = o->snapshot;
	int rc = 0, changed;

	if (!target) {
		rc = repo_head_read(r, &head);
		if (rc)
			return rc;
		target = head.generation ? head.snapshot_id : NULL;
	}
	if (fs_meta_get(fs, "base", &base))
		base = NULL;
	if (!o->snapshot && (rc = adopt_pending(fs, target, head.generation, &base)) != 0) {
		free(base);
		return rc;
	}
	if (!target || (base && !strcmp(base, target))) {
		log_info("resuming the cache in %s", fs->cache_dir);
		free(base);
		return 0;
	}
	rc = fs_usage_get(fs, &u);
	changed = fs->changed || u.dirty_files;
	if (!rc && changed && o->keep_local) {
		struct fs_snap_opts so = { .no_head = 1 };
		struct fs_snap_result res;

		rc = fs_snapshot(fs, &so, &res);
		if (rc)
			err_prefix(rc, "keeping the local changes as a snapshot");
		else
			log_warn("the local changes of %s are snapshot %s (its parent is %.8s); the head"
				 " stays %.8s", fs->cache_dir, res.id, base ? base : "(none)", target);
	} else if (!rc && changed && !o->discard_local) {
		rc = err_set(-EEXIST, "cache dir %s holds changes made on top of snapshot %.8s, but the"
			     " workspace is now at snapshot %.8s (another machine moved on): mount with"
			     " -o keep_local_as_snapshot to keep them as a snapshot beside it, or"
			     " -o discard_local to drop them", fs->cache_dir, base ? base : "(none)",
			     target);
	} else if (!rc && changed) {
		log_warn("discarding the local changes of %s (made on top of %.8s)", fs->cache_dir,
			 base ? base : "(none)");
	}
	if (!rc) {
		log_info("refreshing %s from snapshot %.8s", fs->cache_dir, target);
		rc = fs_fill_from_store(fs, r, fs->idx, target);
	}
	free(base);
	return rc;
}

/* The options of the lease wait and of the final snapshot, checked. */
static int stop_opts(struct cfs_opts *o, const struct repo_opts *ro, double *lease_wait,
		     int *final_snapshot)
{
	const char *wait = o->lease_wait ? o->lease_wait : ro->lease_wait;
	int rc = 0;

	*lease_wait = 300;	/* a stopping machine's last snapshot has time */
	*final_snapshot = !ro->no_final_snapshot;
	if (wait)
		rc = repo_lease_wait_parse(wait, lease_wait);
	if (!rc && o->final_snapshot && conf_parse_bool(o->final_snapshot, final_snapshot))
		rc = err_set(-EINVAL, "final_snapshot=%s: say yes or no", o->final_snapshot);
	return rc;
}

static int run(struct cfs_opts *o, struct fuse_args *args, int ready_fd)
{
	struct repo_opts ro = { 0 };
	struct repo *r = NULL;
	struct fs fs;
	struct fuse_session *se = NULL;
	struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 10 };
	struct repo_lease_wait lw = { .waiting = lease_waiting, .may_retake = lease_may_retake };
	char *v = NULL, *opts;
	int rc, ready = 0, fs_opened = 0, mounted = 0, final_snapshot = 1, unsaved = 0;

	if (strstr(o->source, "://"))
		ro.store_url = o->source;
	else if (!o->name)
		o->name = xstrdup(o->source);
	ro.key = o->key;
	ro.workspace = o->workspace;
	ro.tenant = o->tenant;
	ro.state_dir = o->state_dir;
	ro.cache_dir = o->cache;
	ro.force = o->force;
	ro.allow_rollback = o->allow_rollback;
	ro.host_id = o->host_id;
	ro.takeover_from = o->takeover_from;
	ro.lease_ttl = o->lease_ttl;
	/* FUSE's own options are checked now, not after a long fill */
	{
		struct fuse_args probe = FUSE_ARGS_INIT(0, NULL);
		struct fuse_session *t;

		for (int i = 0; i < args->argc; i++)
			fuse_opt_add_arg(&probe, args->argv[i]);
		t = fuse_session_new(&probe, &fs_ops, sizeof(fs_ops), NULL);
		fuse_opt_free_args(&probe);
		if (!t) {
			err_set(-EINVAL, "bad FUSE options (see the message above); see cairnfs(8)");
			fprintf(stderr, "cairnfs: %s\n", err_msg());
			return 1;
		}
		fuse_session_destroy(t);
	}
	rc = repo_opts_resolve(&ro, o->conf, o->name);
	if (!rc)
		rc = stop_opts(o, &ro, &lw.seconds, &final_snapshot);
	if (!rc && (ro.init || o->init)) {
		int created;

		rc = repo_init_if_missing(&ro, &created);
		if (!rc && created)
			log_info("created workspace %s (init = yes): it starts empty", ro.workspace);
	}
	if (!rc)
		rc = repo_open(&ro, &r);
	if (rc)
		goto out;
	/* the cache dir's lock before the lease: a second cairnfs on a busy
	 * cache must not take (with force) the lease of the one serving it */
	rc = wait_cache_free(r->state_dir, r->ws_id);
	if (rc)
		goto out;
	rc = fs_open(&fs, r->state_dir, &ready);
	fs_opened = 1;
	/* an -o option, or else cairn.conf's atime (checked when read) */
	if (!o->atime_given && ro.atime)
		o->atime_given = 1 << (!strcmp(ro.atime, "noatime") ? FS_NOATIME :
				       !strcmp(ro.atime, "strictatime") ? FS_STRICTATIME : FS_RELATIME);
	fs.atime = o->atime_given & (1 << FS_NOATIME) ? FS_NOATIME
		 : o->atime_given & (1 << FS_STRICTATIME) ? FS_STRICTATIME : FS_RELATIME;
	fs.nodiratime = o->nodiratime;
	lw.waiting_arg = r;
	lw.retake_arg = &fs;
	if (!rc)
		rc = repo_lease_acquire_wait(r, "cairnfs", &lw);
	if (!rc)
		rc = stop_check("before the mount");
	if (!rc)
		rc = fetch_index(r, &fs.idx);
	if (rc)
		goto out;
	fs.repo = r;
	fs.prefetch = !o->noprefetch;
	if (o->snapshot) {
		char id[RECORD_ID_SIZE];

		rc = fetch_resolve_snapshot(r, o->snapshot, id);
		if (rc)
			goto out;
		free(o->snapshot);
		o->snapshot = xstrdup(id);
	}
	if (o->cache_size && fsu_parse_size(o->cache_size, &fs.cache_limit)) {
		rc = err_set(-EINVAL, "cache_size=%s: not a size (say 20G, 512M)", o->cache_size);
		goto out;
	}
	if (ready && fs_meta_get(&fs, "workspace", &v) == 0 && strcmp(v, r->ws_id) != 0) {
		rc = err_set(-EINVAL, "cache dir %s belongs to workspace %s, not %s: use another"
			     " cache dir", r->state_dir, v, r->ws_id);
		goto out;
	}
	if (!ready)
		rc = fs_fill_from_store(&fs, r, fs.idx, o->snapshot);
	else
		rc = resume_or_refresh(&fs, r, o);
	if (!rc)
		rc = stop_check("before the mount");
	if (!rc)
		rc = write_pid(r->state_dir);
	if (rc)
		goto out;

	opts = xasprintf("-oallow_other,default_permissions,subtype=cairnfs,fsname=cairnfs:%s",
			 r->ws_id);
	fuse_opt_add_arg(args, opts);
	free(opts);
	se = fuse_session_new(args, &fs_ops, sizeof(fs_ops), &fs);
	if (!se) {
		rc = err_set(-EINVAL, "cannot start the FUSE session (see the message above)");
		goto out;
	}
	{
		struct sigaction sa = { .sa_handler = wake_handler };	/* no SA_RESTART */
		sigset_t usr1;

		sigemptyset(&sa.sa_mask);
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		if (sigaction(SIGUSR1, &sa, NULL) || pthread_sigmask(SIG_UNBLOCK, &usr1, NULL)) {
			rc = err_set(-EIO, "cannot install the stop signal's handler");
			goto out;
		}
	}
	pthread_mutex_lock(&stopper.lock);
	stopper.se = se;
	stopper.fs = &fs;
	stopper.main = pthread_self();
	stopper.mountpoint = o->mountpoint;
	pthread_mutex_unlock(&stopper.lock);
	rc = stop_check("before the mount");
	/* the control socket answers from the moment the mount shows */
	if (!rc)
		rc = fs_ctl_start(&fs, r->ws_id);
	if (!rc && fuse_session_mount(se, o->mountpoint))
		rc = err_set(-EIO, "cannot mount on %s (see the message above)", o->mountpoint);
	if (rc)
		goto out;
	mounted = 1;
	fs_atime_attach(&fs, se);
	tune_writeback(o->mountpoint);
	pthread_mutex_lock(&fs.lock);
	fs.mountpoint = o->mountpoint;
	pthread_mutex_unlock(&fs.lock);
	rc = fs_committer_start(&fs);
	if (!rc)
		rc = fs_lazy_start(&fs);
	if (rc)
		goto out;
	if (!o->foreground) {
		announce_ready(ready_fd, r->state_dir);
		log_setup("cairnfs", LOG_LVL_INFO);
	}
	log_info("workspace %s mounted on %s", r->ws_id, o->mountpoint);
	ready_fd = -1;
	pthread_mutex_lock(&stopper.lock);
	stopper.serving = 1;
	pthread_mutex_unlock(&stopper.lock);
	rc = stop_requested() ? 0 : fuse_session_loop_mt(se, &lc);
	if (rc && !stop_requested())
		log_error("the FUSE loop ended with %s", strerror(rc < 0 ? -rc : rc));
	rc = 0;
out:
	stopper_loop_done();
	if (rc)
		fprintf(stderr, "cairnfs: %s\n", err_msg());
	/* The mount goes first: closing /dev/fuse aborts the connection, so a
	 * snapshot under way that waits on the kernel (a flush through the
	 * mountpoint) gets ENOTCONN instead of waiting for workers that are
	 * gone; it then finishes from the cache files. */
	if (fs_opened) {
		pthread_mutex_lock(&fs.lock);
		fs.mountpoint = NULL;
		pthread_mutex_unlock(&fs.lock);
	}
	if (se) {
		if (fs_opened)
			fs_atime_attach(&fs, NULL);
		if (mounted)
			fuse_session_unmount(se);
		pthread_mutex_lock(&stopper.lock);
		stopper.se = NULL;
		stopper.fs = NULL;
		pthread_mutex_unlock(&stopper.lock);
		fuse_session_destroy(se);
	}
	if (fs_opened) {
		fs_lazy_stop(&fs);
		if (mounted && final_snapshot && fs_final_snapshot(&fs) && !rc)
			unsaved = 1;
		fs_ctl_stop(&fs);	/* a snapshot under way ends first */
		/* the lease before the cache lock: the next mount of this cache,
		 * waiting for the lock, must find the lease free */
		if (r)
			repo_lease_release(r);
		fs_close(&fs);
		index_free(fs.idx);
	}
	if (r) {
		char *pid = xasprintf("%s/cairnfs.pid", r->state_dir);

		if (!rc)
			unlink(pid);
		free(pid);
		lease_waiting(NULL, r);
		repo_close(r);	/* releases the lease */
	}
	if (!rc)
		log_info(unsaved ? "unmounted; the last changes are in the cache dir only" : "unmounted");
	free(v);
	repo_opts_free(&ro);
	return rc ? 1 : unsaved ? 3 : 0;
}

static void make_absolute(char **path)
{
	char cwd[PATH_MAX];
	char *abs;

	if (!*path || **path == '/' || !getcwd(cwd, sizeof(cwd)))
		return;
	abs = xasprintf("%s/%s", cwd, *path);
	free(*path);
	*path = abs;
}

/* Checks the command line; 0 to go on, else the exit status. */
static int check_args(struct cfs_opts *o)
{
	struct stat st;
	char *abs;

	if (o->help) {
		fputs(usage, stdout);
		return -1;
	}
	if (o->version) {
		printf("cairnfs %s (libfuse %s)\n", PACKAGE_VERSION, fuse_pkgversion());
		return -1;
	}
	if (!o->source || !o->mountpoint) {
		fprintf(stderr, "cairnfs: SOURCE and MOUNTPOINT are required\n%s", usage);
		return 2;
	}
	if (o->atime_given & (o->atime_given - 1)) {
		fprintf(stderr, "cairnfs: -o relatime, strictatime and noatime exclude each other:"
			" give one of them\n");
		return 1;
	}
	if (stat(o->mountpoint, &st)) {
		fprintf(stderr, "cairnfs: mountpoint %s: %s\n", o->mountpoint, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "cairnfs: mountpoint %s is not a directory\n", o->mountpoint);
		return 1;
	}
	if (!o->nonempty && !mountpoint_empty(o->mountpoint)) {
		fprintf(stderr, "cairnfs: mountpoint %s is not empty: the mount would hide its files;"
			" empty it, or mount with -o nonempty\n", o->mountpoint);
		return 1;
	}
	abs = realpath(o->mountpoint, NULL);
	if (abs) {
		free(o->mountpoint);
		o->mountpoint = abs;
	}
	/* the daemon works from /: its dirs are made absolute now */
	make_absolute(&o->cache);
	make_absolute(&o->state_dir);
	return 0;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cfs_opts o = { 0 };
	int ready_fd = -1, rc;

	/* the terminal hears only warnings and errors; the log file, once the
	 * mount is up, hears everything */
	log_setup("cairnfs", LOG_LVL_WARN);
	if (fsu_no_core_dumps())
		log_warn("cannot turn core dumps off: %s", strerror(errno));
	if (fuse_opt_parse(&args, &o, cfs_opt_spec, opt_proc) == -1)
		rc = 1;
	else
		rc = check_args(&o);
	if (rc == 0 && !o.foreground) {
		rc = detach(&ready_fd);
		if (rc) {
			fprintf(stderr, "cairnfs: cannot fork: %s\n", strerror(-rc));
			rc = 1;
		}
	}
	if (rc == 0 && stop_init(on_stop, NULL)) {
		fprintf(stderr, "cairnfs: %s\n", err_msg());
		rc = 1;
	}
	if (rc == 0)
		rc = run(&o, &args, ready_fd);
	fuse_opt_free_args(&args);
	free_opts(&o);
	return rc < 0 ? 0 : rc;
}
