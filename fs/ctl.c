/*
 * ctl.c - cairnfs's control socket: $CAIRN_RUN_DIR/<workspace-id>.sock
 * (default /run/cairn), a unix stream socket of mode 0600 in a 0700 dir.
 * Each connection sends one JSON request line and gets one JSON reply
 * line:
 *   {"op":"status"}
 *   {"op":"snapshot", "agent_config":[PATH...], "tags":[TAG...]}
 *   {"op":"hydrate"}
 *   {"op":"activity"}   (cheap: what cairnd polls every second)
 *   {"op":"agent-config", "agent_config":[PATH...], "agent_config_exclude":[PAT...]}
 *                       (cairnd: the file set of the final snapshot)
 * A reply is {"ok":true, ...} or {"ok":false, "error":"one line"}.
 * Each connection has a thread of its own, so status answers while a
 * snapshot runs; fs_ctl_stop waits for them all.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "fs.h"
#include "fsutil.h"
#include "log.h"
#include "repo.h"
#include "store.h"

#define REQUEST_MAX (64u << 10)
#define MAX_CONNECTIONS 16

struct conn {
	struct fs *fs;
	int fd;
};

static json_t *fail(const char *msg)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static json_int_t meta_int(struct fs *fs, const char *key)
{
	char *v = NULL;
	json_int_t n = 0;

	if (fs_meta_get(fs, key, &v) == 0)
		n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

/* The lease as status shows it: a lost lease means work that will not
 * be saved until it is taken back. */
static json_t *lease_json(struct fs *fs)
{
	struct repo_lease_status ls;

	if (!fs->repo || repo_lease_status(fs->repo, &ls))
		return json_pack("{s:s}", "state", "none");
	return json_pack("{s:s, s:s, s:I, s:o, s:o, s:I}", "state", ls.lost ? "lost" : "held",
			 "host", ls.host, "expires", (json_int_t)(ls.expires_ns / 1000000000ull),
			 "lost_at", ls.lost_ns ? json_integer((json_int_t)(ls.lost_ns / 1000000000ull)) : json_null(),
			 "why", ls.why[0] ? json_string(ls.why) : json_null(),
			 "retakes", (json_int_t)ls.retakes);
}

static json_t *do_status(struct fs *fs)
{
	struct fs_usage u;
	struct store_counters sc;
	json_t *r;
	char *base = NULL;
	json_int_t snap_time, gen;
	int changed, snapshotting, prefetch, disk_full;
	uint64_t cache_used, snaps, snap_fail, enospc, disk_free = 0;
	int64_t full_since;
	double pause;
	struct statvfs sv;

	if (fs_usage_get(fs, &u))
		return fail(err_msg());
	store_counters_get(&sc);
	pthread_mutex_lock(&fs->lock);
	if (fs_meta_get(fs, "base", &base))
		base = NULL;
	snap_time = meta_int(fs, "snapshot_time");
	gen = meta_int(fs, "base_generation");
	changed = fs->changed;
	snapshotting = fs->snapshotting;
	prefetch = fs->prefetch;
	cache_used = fs->cache_used;
	snaps = fs->snapshots;
	snap_fail = fs->snapshot_failures;
	pause = fs->last_pause_ms;
	disk_full = fs->disk_full;
	full_since = fs->full_since;
	enospc = fs->enospc;
	if (fstatvfs(fs->cache_fd, &sv) == 0)
		disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (disk_full)	/* the released reserve is the metadata's */
		disk_free = disk_free > fs->reserve_size ? disk_free - fs->reserve_size : 0;
	pthread_mutex_unlock(&fs->lock);
	r = json_pack("{s:b, s:s, s:s, s:s, s:I, s:o, s:I, s:o, s:b, s:b,"
		      " s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I},"
		      " s:{s:I, s:I, s:I, s:b, s:o, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I},"
		      " s:{s:I, s:I}, s:I, s:f, s:s}",
		      "ok", 1, "workspace", fs->ws_id, "mountpoint", fs->mountpoint ? fs->mountpoint : "",
		      "cache_dir", fs->cache_dir, "pid", (json_int_t)getpid(),
		      "snapshot", base ? json_string(base) : json_null(),
		      "generation", gen,
		      "snapshot_time", snap_time ? json_integer(snap_time) : json_null(),
		      "changed", changed, "snapshot_running", snapshotting,
		      "files", "total", (json_int_t)u.files, "bytes", (json_int_t)u.bytes,
		      "local", (json_int_t)u.local_files, "local_bytes", (json_int_t)u.local_bytes,
		      "dirty", "files", (json_int_t)u.dirty_files, "bytes", (json_int_t)u.dirty_bytes,
		      "cache", "used_bytes", (json_int_t)cache_used,
		      "limit_bytes", (json_int_t)fs->cache_limit,
		      "fetched_bytes", (json_int_t)__atomic_load_n(&fs->fetched_bytes, __ATOMIC_RELAXED),
		      "disk_full", disk_full,
		      "full_since", disk_full ? json_integer((json_int_t)full_since) : json_null(),
		      "disk_free_bytes", (json_int_t)disk_free, "enospc", (json_int_t)enospc,
		      "store", "requests", (json_int_t)sc.requests, "errors", (json_int_t)sc.errors,
		      "retries", (json_int_t)sc.retries, "bytes_in", (json_int_t)sc.bytes_in,
		      "bytes_out", (json_int_t)sc.bytes_out,
		      "snapshots", "taken", (json_int_t)snaps, "failed", (json_int_t)snap_fail,
		      "fetch_errors", (json_int_t)__atomic_load_n(&fs->fetch_errors, __ATOMIC_RELAXED),
		      "last_pause_ms", pause,
		      "prefetch", prefetch == 0 ? "off" : prefetch == 2 ? "hydrating" : "background");
	free(base);
	if (r) {
		pthread_mutex_lock(&fs->lock);
		json_object_set_new(r, "stopping", json_boolean(fs->unmounted));
		json_object_set_new(r, "atime", json_string(fs_atime_name(fs)));
		pthread_mutex_unlock(&fs->lock);
		json_t *lease = lease_json(fs);

		json_object_set_new(r, "lease_lost", json_integer(
			!strcmp(json_string_value(json_object_get(lease, "state")), "lost")));
		json_object_set_new(r, "lease", lease);
	}
	return r ? r : fail("cannot build the status reply");
}

/* A JSON array of strings as a NULL-free C array; -1 when not one. */
static ssize_t strings(json_t *a, const char ***out)
{
	size_t i;
	json_t *v;

	*out = NULL;
	if (!a)
		return 0;
	if (!json_is_array(a))
		return -1;
	*out = xcalloc(json_array_size(a) + 1, sizeof(**out));
	json_array_foreach(a, i, v) {
		if (!json_is_string(v)) {
			free(*out);
			*out = NULL;
			return -1;
		}
		(*out)[i] = json_string_value(v);
	}
	return (ssize_t)json_array_size(a);
}

int fs_ctl_parse(const char *line, size_t len, struct fs_ctl_req *out)
{
	json_error_t je;
	const char *op;
	ssize_t np, nt, nx;

	memset(out, 0, sizeof(*out));
	out->json = json_loadb(line, len, 0, &je);
	op = json_string_value(json_object_get(out->json, "op"));
	if (!out->json || !json_is_object(out->json) || !op)
		return err_set(-EINVAL, "bad request: one JSON object with \"op\" per line");
	out->op = !strcmp(op, "status") ? FS_CTL_STATUS : !strcmp(op, "snapshot") ? FS_CTL_SNAPSHOT :
		  !strcmp(op, "hydrate") ? FS_CTL_HYDRATE : !strcmp(op, "activity") ? FS_CTL_ACTIVITY :
		  !strcmp(op, "agent-config") ? FS_CTL_AGENT_CONFIG : 0;
	if (!out->op)
		return err_set(-EINVAL, "unknown op: status, snapshot, hydrate, activity and agent-config are known");
	if (out->op != FS_CTL_SNAPSHOT && out->op != FS_CTL_AGENT_CONFIG)
		return 0;
	np = strings(json_object_get(out->json, "agent_config"), &out->agent_config);
	nt = strings(json_object_get(out->json, "tags"), &out->tags);
	nx = strings(json_object_get(out->json, "agent_config_exclude"), &out->agent_exclude);
	if (np < 0 || nt < 0 || nx < 0)
		return err_set(-EINVAL, "%s: agent_config, agent_config_exclude and tags must be arrays of strings", op);
	out->n_agent_config = (size_t)np;
	out->ntags = (size_t)nt;
	out->n_agent_exclude = (size_t)nx;
	return 0;
}

void fs_ctl_req_free(struct fs_ctl_req *r)
{
	free(r->agent_config);
	free(r->tags);
	free(r->agent_exclude);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static json_t *do_snapshot(struct fs *fs, const struct fs_ctl_req *req)
{
	struct fs_snap_opts o = { 0 };
	struct fs_snap_result res;
	json_t *r;
	int rc;

	o.agent_config = req->agent_config;
	o.n_agent_config = req->n_agent_config;
	o.agent_exclude = req->agent_exclude;
	o.n_agent_exclude = req->n_agent_exclude;
	o.tags = req->tags;
	o.ntags = req->ntags;
	rc = fs_snapshot(fs, &o, &res);
	pthread_mutex_lock(&fs->lock);
	if (rc)
		fs->snapshot_failures++;
	else
		fs->snapshots++;
	pthread_mutex_unlock(&fs->lock);
	if (rc) {
		log_error("snapshot: %s", err_msg());
		r = fail(err_msg());
	} else {
		r = json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}",
			      "ok", 1, "snapshot", res.id, "workspace", fs->ws_id,
			      "generation", (json_int_t)res.generation,
			      "files_read", (json_int_t)res.files_read,
			      "bytes_read", (json_int_t)res.bytes_read,
			      "new_bytes", (json_int_t)res.new_bytes,
			      "stored_bytes", (json_int_t)res.stored_bytes,
			      "retaken", (json_int_t)res.retaken,
			      "left_dirty", (json_int_t)res.left_dirty,
			      "pause_ms", res.pause_ms, "seconds", res.duration_ms / 1000.0);
	}
	return r;
}

static json_t *do_hydrate(struct fs *fs)
{
	pthread_mutex_lock(&fs->lock);
	fs->prefetch = 2;
	pthread_cond_broadcast(&fs->fetch_cond);
	pthread_mutex_unlock(&fs->lock);
	return json_pack("{s:b}", "ok", 1);
}

/* The file set cairnd hands every snapshot, kept for the final one. */
static json_t *do_agent_config(struct fs *fs, const struct fs_ctl_req *req)
{
	for (size_t i = 0; i < req->n_agent_config; i++)
		if (req->agent_config[i][0] != '/')
			return fail("agent-config: each path must be absolute");
	fs_set_agent_config(fs, req->n_agent_config ? req->agent_config : NULL,
			    req->n_agent_exclude ? req->agent_exclude : NULL);
	return json_pack("{s:b}", "ok", 1);
}

/* Whether anything changed: the change counter, no scan of the tree. */
static json_t *do_activity(struct fs *fs)
{
	json_t *r;

	struct repo_lease_status ls;
	int lost = fs->repo && repo_lease_status(fs->repo, &ls) == 0 && ls.lost;

	pthread_mutex_lock(&fs->lock);
	r = json_pack("{s:b, s:I, s:b, s:b, s:b}", "ok", 1, "change_seq", (json_int_t)fs->change_seq,
		      "changed", fs->changed, "snapshot_running", fs->snapshotting, "lease_lost", lost);
	pthread_mutex_unlock(&fs->lock);
	if (r && lost)
		json_object_set_new(r, "lease_why", json_string(ls.why));
	return r ? r : fail("cannot build the activity reply");
}

static json_t *handle(struct fs *fs, const char *line, size_t len)
{
	struct fs_ctl_req req;
	json_t *r;

	if (fs_ctl_parse(line, len, &req))
		r = fail(err_msg());
	else if (req.op == FS_CTL_STATUS)
		r = do_status(fs);
	else if (req.op == FS_CTL_SNAPSHOT)
		r = do_snapshot(fs, &req);
	else if (req.op == FS_CTL_HYDRATE)
		r = do_hydrate(fs);
	else if (req.op == FS_CTL_AGENT_CONFIG)
		r = do_agent_config(fs, &req);
	else
		r = do_activity(fs);
	fs_ctl_req_free(&req);
	return r;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct fs *fs = c->fs;
	struct buf in = BUF_INIT;
	struct timeval tv = { .tv_sec = 10 };
	char *nl = NULL;

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (in.len < REQUEST_MAX) {
		ssize_t n;

		buf_grow(&in, 4096);
		n = recv(c->fd, in.data + in.len, 4096, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_setlen(&in, in.len + (size_t)n);
		nl = memchr(in.data, '\n', in.len);
		if (nl)
			break;
	}
	if (nl) {
		json_t *r = handle(fs, (const char *)in.data, (size_t)(nl - (char *)in.data));
		char *text = json_dumps(r, JSON_COMPACT);

		if (text && (fsu_send_all(c->fd, text, strlen(text)) || fsu_send_all(c->fd, "\n", 1)))
			log_info("control: the client left before the reply");
		free(text);
		json_decref(r);
	}
	buf_free(&in);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&fs->lock);
	fs->ctl_active--;
	pthread_cond_broadcast(&fs->fetch_cond);
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}

static void *ctl_main(void *arg)
{
	struct fs *fs = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = fs->ctl_fd, .events = POLLIN },
				       { .fd = fs->ctl_wake[0], .events = POLLIN } };
		struct ucred cr;
		socklen_t crlen = sizeof(cr);
		struct conn *c;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(fs->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) ||
		    (cr.uid != 0 && cr.uid != geteuid())) {
			close(fd);	/* the mode says so too; belt and braces */
			continue;
		}
		pthread_mutex_lock(&fs->lock);
		if (fs->ctl_active >= MAX_CONNECTIONS) {
			pthread_mutex_unlock(&fs->lock);
			close(fd);
			continue;
		}
		fs->ctl_active++;
		pthread_mutex_unlock(&fs->lock);
		c = xcalloc(1, sizeof(*c));
		c->fs = fs;
		c->fd = fd;
		if (pthread_create(&t, NULL, conn_main, c)) {
			close(fd);
			free(c);
			pthread_mutex_lock(&fs->lock);
			fs->ctl_active--;
			pthread_mutex_unlock(&fs->lock);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

int fs_ctl_start(struct fs *fs, const char *ws_id)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *dir;
	int rc;

	fs->ctl_fd = fs->ctl_wake[0] = fs->ctl_wake[1] = -1;
	fs->ws_id = xstrdup(ws_id);
	fs->ctl_path = fs_ctl_path(ws_id);
	if (strlen(fs->ctl_path) >= sizeof(sa.sun_path))
		return err_set(-ENAMETOOLONG, "control socket path %s is too long: set CAIRN_RUN_DIR",
			       fs->ctl_path);
	memcpy(sa.sun_path, fs->ctl_path, strlen(fs->ctl_path) + 1);
	dir = xstrdup(fs->ctl_path);
	*strrchr(dir, '/') = '\0';
	rc = fsu_mkdir_parents(fs->ctl_path);
	if (!rc && chmod(dir, 0700))
		rc = -errno;
	if (rc) {
		err_set(rc, "control socket dir %s: %s", dir, strerror(-rc));
		free(dir);
		return rc;
	}
	free(dir);
	/* a socket left by a cairnfs that died: this one holds the lease now */
	unlink(fs->ctl_path);
	fs->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fs->ctl_fd < 0 || bind(fs->ctl_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(fs->ctl_path, 0600) || listen(fs->ctl_fd, 16) || pipe2(fs->ctl_wake, O_CLOEXEC))
		return err_set(-errno, "control socket %s: %s", fs->ctl_path, strerror(errno));
	rc = pthread_create(&fs->ctl_thread, NULL, ctl_main, fs);
	if (rc)
		return err_set(-rc, "cannot start the control thread: %s", strerror(rc));
	fs->ctl_running = 1;
	return 0;
}

void fs_ctl_stop(struct fs *fs)
{
	if (fs->ctl_running) {
		if (write(fs->ctl_wake[1], "x", 1) != 1)
			log_warn("cannot stop the control thread");
		pthread_join(fs->ctl_thread, NULL);
		fs->ctl_running = 0;
		/* requests under way (a snapshot) finish first */
		pthread_mutex_lock(&fs->lock);
		while (fs->ctl_active)
			pthread_cond_wait(&fs->fetch_cond, &fs->lock);
		pthread_mutex_unlock(&fs->lock);
	}
	if (fs->ctl_fd >= 0) {
		close(fs->ctl_fd);
		unlink(fs->ctl_path);
	}
	for (int i = 0; i < 2; i++)
		if (fs->ctl_wake[i] >= 0)
			close(fs->ctl_wake[i]);
	fs->ctl_fd = fs->ctl_wake[0] = fs->ctl_wake[1] = -1;
	free(fs->ctl_path);
	free(fs->ws_id);
	fs->ctl_path = fs->ws_id = NULL;
}
