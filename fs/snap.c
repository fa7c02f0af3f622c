/*
 * snap.c - a snapshot of the live mount.
 *
 * 1. The kernel's dirty pages are written back (syncfs on the mountpoint),
 *    so that the snapshot holds every write made before it was asked for.
 * 2. Under fs->lock: one commit, then a read transaction on a connection of
 *    the snapshot's own opens the view.  That commit is the only time
 *    writers wait for the snapshot (the "metadata pause", measured).
 * 3. The view is walked: every directory becomes a tree blob (one nobody
 *    touched encodes to the blob the store has, which is not stored
 *    again); clean files take the blobs of their content row; dirty files
 *    are read from their cache files while writers go on.
 * 4. Packs, index, record, head (If-Match), as sync/snapshot.c does; then
 *    the files read become clean, unless they changed meanwhile.
 *
 * A dirty file is read with snap_armed set and its size S at that moment:
 * every write or truncate of it from then on lowers in->wmin to the first
 * byte below S it really changes (a write under way when reading began
 * counts as byte 0).  The kernel is then made to write back what it still
 * caches of the file, under the file's inode lock, so those writes are
 * seen too and a write(2) the kernel had written back only in part is
 * finished and seen, and bytes [0, S) are read.  When no change reached below S, what was read is the file as it
 * was when armed (an append since then is left for the next snapshot);
 * otherwise it is read again, and after three tries it keeps the content
 * of its previous snapshot (or, new, is left out) and stays dirty for the
 * next one.  Never half old, half new.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "err.h"
#include "fs.h"
#include "index.h"
#include "log.h"
#include "snapshot.h"
#include "tree.h"

#define READ_TRIES 3

/* A dirty file read by this snapshot. */
struct taken {
	uint64_t ino, dgen;
	uint8_t (*ids)[32];
	uint32_t *sizes;
	size_t n;
};

struct snapwalk {
	struct fs *fs;
	struct snapshot_job *job;
	sqlite3 *db;		/* the view */
	sqlite3_stmt *list, *inode, *xattrs, *content;
	struct buf path;
	struct taken *taken;
	size_t ntaken, cap;
	struct fs_snap_result *res;
	struct record_stats *st;
};

static int view_fail(struct snapwalk *w, const char *what)
{
	return err_set(-EIO, "snapshot: %s: meta.db in %s: %s", what, w->fs->cache_dir,
		       sqlite3_errmsg(w->db));
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static struct taken *taken_find(struct snapwalk *w, uint64_t ino)
{
	for (size_t i = 0; i < w->ntaken; i++)
		if (w->taken[i].ino == ino)
			return &w->taken[i];
	return NULL;
}

static void copy_blobs(struct tree_entry *e, const uint8_t (*ids)[32], size_t n)
{
	e->nblobs = n;
	e->blobs = xmalloc(n ? n * 32 : 1);
	if (n)
		memcpy(e->blobs, ids, n * 32);
}

/* The content row as the view has it: blobs and the size they make. */
static int view_content(struct snapwalk *w, uint64_t ino, struct tree_entry *e)
{
	sqlite3_stmt *s = w->content;
	const uint8_t *sz;
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? -ENOENT : view_fail(w, "chunk list");
	}
	copy_blobs(e, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0) / 32);
	sz = sqlite3_column_blob(s, 1);
	e->size = 0;
	for (size_t i = 0; sz && i < e->nblobs && (size_t)sqlite3_column_bytes(s, 1) >= 4 * (i + 1); i++)
		e->size += (uint32_t)sz[4 * i] | (uint32_t)sz[4 * i + 1] << 8 |
			   (uint32_t)sz[4 * i + 2] << 16 | (uint32_t)sz[4 * i + 3] << 24;
	sqlite3_reset(s);
	return 0;
}

/* Has the kernel write back its cached writes of the file being walked
 * (through the mount, from this thread, which serves no FUSE request). */
static const char *mountpoint_of(struct fs *fs)
{
	const char *m;

	pthread_mutex_lock(&fs->lock);
	m = fs->mountpoint;	/* NULL once unmounting: no more flushes */
	pthread_mutex_unlock(&fs->lock);
	return m;
}

/* Makes the kernel write back what it caches of the file being read.  An
 * fsync, not sync_file_range: it holds the inode lock, so it waits for a
 * write(2) under way to be wholly in the page cache and then writes it
 * back, and no write is ever seen half; op_fsync knows this thread and
 * spends no disk flush on it. */
static void flush_file(struct snapwalk *w)
{
	const char *m = mountpoint_of(w->fs);
	char *path;
	int fd;

	if (!m)
		return;
	path = xasprintf("%s%s", m, buf_str(&w->path));
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		__atomic_store_n(&w->fs->snap_tid, gettid(), __ATOMIC_RELAXED);
		if (fsync(fd))
			log_info("snapshot: cannot flush %s: %s", path, strerror(errno));
		close(fd);
	}
	free(path);
}

/* Reads a dirty file from its cache file; see the top of the file. */
static int read_dirty(struct snapwalk *w, uint64_t ino, struct tree_entry *e)
{
	struct fs *fs = w->fs;
	struct taken *t = e->nlink > 1 ? taken_find(w, ino) : NULL;

	if (t) {	/* another name of a file read already */
		copy_blobs(e, (const uint8_t (*)[32])t->ids, t->n);
		e->size = 0;
		for (size_t i = 0; i < t->n; i++)
			e->size += t->sizes[i];
		return 0;
	}
	for (int attempt = 0; attempt < READ_TRIES; attempt++) {
		struct fs_inode *in;
		uint8_t (*ids)[32] = NULL;
		uint32_t *sizes = NULL;
		size_t n = 0;
		uint64_t size, dgen;
		int fd, rc = 0, held = 0, same;

		pthread_mutex_lock(&fs->lock);
		in = fs_inode_get(fs, ino, &rc);
		if (!in) {
			pthread_mutex_unlock(&fs->lock);
			break;		/* removed meanwhile: as it was in the view, if it can */
		}
		fd = fs_fd_acquire(fs, in, 0);
		if (fd >= 0)
			held = 1;
		else if (fd == -ENOENT)
			fd = -1;	/* never written: zeros */
		else
			rc = fd;
		size = in->size;
		dgen = in->dgen;
		in->nlookup++;
		in->snap_armed = 1;
		in->snap_size = size;
		in->wmin = in->writes ? 0 : UINT64_MAX;
		e->size = size;
		e->mtime.sec = in->mtime.tv_sec;
		e->mtime.nsec = (uint32_t)in->mtime.tv_nsec;
		e->ctime.sec = in->ctime.tv_sec;
		e->ctime.nsec = (uint32_t)in->ctime.tv_nsec;
		pthread_mutex_unlock(&fs->lock);

		/* what the kernel still holds of it comes now, while armed */
		flush_file(w);
		if (!rc)
			rc = snapshot_job_content(w->job, fd, size, buf_str(&w->path), &ids, &sizes, &n);

		pthread_mutex_lock(&fs->lock);
		same = in->wmin >= size;
		in->snap_armed = 0;
		if (held)
			fs_fd_release(fs, in);
		in->nlookup--;
		fs_inode_maybe_drop(fs, in);
		pthread_mutex_unlock(&fs->lock);
		if (rc) {
			free(ids);
			free(sizes);
			return rc;
		}
		w->res->files_read++;
		w->res->bytes_read += size;
		if (same) {
			if (w->ntaken == w->cap) {
				w->cap = w->cap ? w->cap * 2 : 64;
				w->taken = xrealloc(w->taken, w->cap * sizeof(*w->taken));
			}
			w->taken[w->ntaken++] = (struct taken){ ino, dgen, ids, sizes, n };
			copy_blobs(e, (const uint8_t (*)[32])ids, n);
			w->st->new_files++;
			return 0;
		}
		free(ids);
		free(sizes);
		w->res->retaken++;
	}
	/* it kept changing: its previous snapshot's content, and still dirty */
	w->res->left_dirty++;
	log_info("%s changed while the snapshot read it; the next snapshot takes it",
		 buf_str(&w->path));
	return view_content(w, ino, e);
}

static int walk_dir(struct snapwalk *w, uint64_t dir, uint8_t id_out[TREE_ID_LEN]);

struct row {
	char *name;
	uint64_t ino;
};

static int cmp_row(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->name, ((const struct row *)b)->name);
}

static int read_xattrs(struct snapwalk *w, uint64_t ino, struct tree_entry *e)
{
	sqlite3_stmt *s = w->xattrs;
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct tree_xattr *x;
		int nl = sqlite3_column_bytes(s, 0), vl = sqlite3_column_bytes(s, 1);

		e->xattrs = xrealloc(e->xattrs, (e->nxattrs + 1) * sizeof(*e->xattrs));
		x = &e->xattrs[e->nxattrs++];
		x->name = xmalloc((size_t)nl + 1);
		memcpy(x->name, sqlite3_column_blob(s, 0), (size_t)nl);
		x->name[nl] = '\0';
		x->value = xmalloc(vl ? (size_t)vl : 1);
		if (vl)
			memcpy(x->value, sqlite3_column_blob(s, 1), (size_t)vl);
		x->value_len = (size_t)vl;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : view_fail(w, "xattrs");
}

static uint8_t tree_type_of(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return TREE_REG;
	case S_IFDIR: return TREE_DIR;
	case S_IFLNK: return TREE_SYMLINK;
	case S_IFCHR: return TREE_CHR;
	case S_IFBLK: return TREE_BLK;
	case S_IFIFO: return TREE_FIFO;
	default: return TREE_SOCK;
	}
}

/* Fills e for inode ino as the view has it.  -ENOENT: leave it out. */
static int walk_entry(struct snapwalk *w, uint64_t ino, struct tree_entry *e)
{
	sqlite3_stmt *s = w->inode;
	uint32_t state;
	mode_t mode;
	dev_t rdev;
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? -ENOENT : view_fail(w, "inode");
	}
	mode = (mode_t)sqlite3_column_int64(s, 0);
	e->type = tree_type_of(mode);
	e->mode = (uint16_t)(mode & 07777);
	e->uid = (uint32_t)sqlite3_column_int64(s, 1);
	e->gid = (uint32_t)sqlite3_column_int64(s, 2);
	e->nlink = (uint32_t)sqlite3_column_int64(s, 3);
	e->size = (uint64_t)sqlite3_column_int64(s, 4);
	rdev = (dev_t)sqlite3_column_int64(s, 5);
	e->mtime.sec = sqlite3_column_int64(s, 6);
	e->mtime.nsec = (uint32_t)sqlite3_column_int64(s, 7);
	e->ctime.sec = sqlite3_column_int64(s, 8);
	e->ctime.nsec = (uint32_t)sqlite3_column_int64(s, 9);
	if (sqlite3_column_type(s, 10) == SQLITE_BLOB) {
		int n = sqlite3_column_bytes(s, 10);

		e->target = xmalloc((size_t)n + 1);
		memcpy(e->target, sqlite3_column_blob(s, 10), (size_t)n);
		e->target[n] = '\0';
	}
	state = (uint32_t)sqlite3_column_int64(s, 11);
	sqlite3_reset(s);
	if (e->type == TREE_CHR || e->type == TREE_BLK) {
		e->rdev_major = major(rdev);
		e->rdev_minor = minor(rdev);
	}
	if (e->type != TREE_REG && e->type != TREE_SYMLINK)
		e->size = 0;
	if (e->type != TREE_DIR && e->nlink > 1)
		e->link_group = ino;	/* any non-directory may have other names */
	rc = read_xattrs(w, ino, e);
	if (rc)
		return rc;
	switch (e->type) {
	case TREE_DIR:
		w->st->dirs++;
		return walk_dir(w, ino, e->subtree);
	case TREE_REG:
		rc = (state & FS_ST_CLEAN) ? view_content(w, ino, e) : read_dirty(w, ino, e);
		if (!rc) {
			w->st->files++;
			w->st->bytes += e->size;
		}
		return rc;
	case TREE_SYMLINK:
		w->st->symlinks++;
		return 0;
	default:
		w->st->others++;
		return 0;
	}
}

static int walk_dir(struct snapwalk *w, uint64_t dir, uint8_t id_out[TREE_ID_LEN])
{
	sqlite3_stmt *s = w->list;
	struct row *rows = NULL;
	size_t n = 0, cap = 0, base = w->path.len;
	struct tree t = TREE_INIT;
	struct buf enc = BUF_INIT;
	int rc;

	/* the rows first: the statement is not reentrant, the walk is */
	sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int len = sqlite3_column_bytes(s, 0);

		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		rows[n].name = xmalloc((size_t)len + 1);
		memcpy(rows[n].name, sqlite3_column_blob(s, 0), (size_t)len);
		rows[n].name[len] = '\0';
		rows[n].ino = (uint64_t)sqlite3_column_int64(s, 1);
		n++;
	}
	sqlite3_reset(s);
	rc = rc == SQLITE_DONE ? 0 : view_fail(w, "directory");
	if (n > 1)
		qsort(rows, n, sizeof(*rows), cmp_row);
	for (size_t i = 0; !rc && i < n; i++) {
		struct tree_entry e;

		memset(&e, 0, sizeof(e));
		buf_setlen(&w->path, base);
		buf_printf(&w->path, "/%s", rows[i].name);
		rc = walk_entry(w, rows[i].ino, &e);
		if (rc == -ENOENT) {
			rc = 0;
			err_clear();
		} else if (!rc) {
			e.name = rows[i].name;
			rc = tree_add(&t, &e);
			e.name = NULL;
			if (rc)
				err_prefix(rc, "%s", buf_str(&w->path));
		}
		tree_entry_release(&e);
	}
	buf_setlen(&w->path, base);
	for (size_t i = 0; i < n; i++)
		free(rows[i].name);
	free(rows);
	if (!rc)
		rc = tree_encode(&t, &enc);
	if (!rc)
		rc = snapshot_job_add(w->job, KEYS_BLOB_TREE, enc.data, enc.len, id_out);
	tree_free(&t);
	buf_free(&enc);
	return rc;
}

/* The workspace tree (*ws_root) and the top tree that holds the root's own
 * entry (*top). */
static int walk_root(struct snapwalk *w, uint8_t ws_root[TREE_ID_LEN], uint8_t top[TREE_ID_LEN])
{
	struct tree_entry e;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = walk_entry(w, FS_ROOT_INO, &e);
	if (rc == -ENOENT)
		rc = err_set(-EIO, "snapshot: meta.db in %s has no root inode", w->fs->cache_dir);
	if (!rc) {
		w->st->dirs--;	/* the statistics count what is below the root */
		memcpy(ws_root, e.subtree, TREE_ID_LEN);
		rc = snapshot_job_top(w->job, &e, top);
	}
	tree_entry_release(&e);
	return rc;
}

static int open_view(struct snapwalk *w)
{
	static const char *const sql[4] = {
		"SELECT name, ino FROM dirent WHERE parent = ?1",
		"SELECT mode, uid, gid, nlink, size, rdev, mtime, mtime_ns, ctime, ctime_ns, target,"
		" state FROM inode WHERE ino = ?1",
		"SELECT name, value FROM xattr WHERE ino = ?1 ORDER BY name",
		"SELECT blobs, sizes FROM content WHERE ino = ?1",
	};
	sqlite3_stmt **st[4] = { &w->list, &w->inode, &w->xattrs, &w->content };
	char *path = xasprintf("%s/meta.db", w->fs->cache_dir);
	int rc = sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

	free(path);
	if (rc != SQLITE_OK)
		return view_fail(w, "open");
	for (int i = 0; i < 4; i++)
		if (sqlite3_prepare_v2(w->db, sql[i], -1, st[i], NULL) != SQLITE_OK)
			return view_fail(w, "prepare");
	return 0;
}

static void close_view(struct snapwalk *w)
{
	sqlite3_finalize(w->list);
	sqlite3_finalize(w->inode);
	sqlite3_finalize(w->xattrs);
	sqlite3_finalize(w->content);
	if (w->db) {
		sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(w->db);
	}
}

/* Writes the kernel's cached writes back to cairnfs (from a thread that
 * is not serving FUSE requests, so the workers answer them). */
static void flush_kernel(struct fs *fs)
{
	const char *m = mountpoint_of(fs);
	int fd;

	if (!m)
		return;
	fd = open(m, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd))
		log_warn("snapshot: cannot flush the kernel's cache of %s: %s", m, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* After the head: files read become clean unless they changed since. */
static int mark_clean(struct snapwalk *w, const struct snapshot_result *sr, uint64_t seq)
{
	struct fs *fs = w->fs;
	char num[32];
	int rc = 0;

	for (size_t i = 0; !rc && i < w->ntaken; i++) {
		struct taken *t = &w->taken[i];
		struct fs_inode *in;

		/* in commits of a bounded size (meta.c) */
		rc = fs_meta_bound(fs, t->n * 36);
		if (rc)
			break;
		in = fs_inode_get(fs, t->ino, &rc);
		if (!in) {
			rc = 0;
			err_clear();
			continue;
		}
		/* the row holds the latest snapshotted content either way */
		rc = fs_content_put(fs, t->ino, (const uint8_t (*)[32])t->ids, t->sizes, t->n, NULL, 0);
		if (!rc && in->dgen == t->dgen && !(in->state & FS_ST_CLEAN)) {
			in->state |= FS_ST_CLEAN;
			fs_inode_dirty(fs, in);
		}
		fs_inode_maybe_drop(fs, in);
	}
	if (!rc)
		rc = fs_meta_set(fs, "base", sr->id);
	if (!rc)
		rc = fs_meta_set(fs, "pending_base", "");
	snprintf(num, sizeof(num), "%llu", (unsigned long long)sr->generation);
	if (!rc)
		rc = fs_meta_set(fs, "base_generation", num);
	snprintf(num, sizeof(num), "%lld", (long long)time(NULL));
	if (!rc)
		rc = fs_meta_set(fs, "snapshot_time", num);
	if (!rc && fs->change_seq == seq) {
		fs->changed = 0;
		rc = fs_meta_set(fs, "changed", "0");
	}
	if (!rc)
		rc = fs_meta_commit(fs, 1);
	return rc;
}

/* Right before the head write: the snapshot about to become the head is
 * noted durably, so that if this process is killed before mark_clean, the
 * next mount finds the head is that snapshot and takes it as its base
 * (cairnfs.c, resume_or_refresh) instead of calling the cache diverged. */
static int note_pending(const char *snapshot_id, void *arg)
{
	struct fs *fs = arg;
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = fs_meta_set(fs, "pending_base", snapshot_id);
	if (!rc)
		rc = fs_meta_commit(fs, 1);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

int fs_snapshot(struct fs *fs, const struct fs_snap_opts *o, struct fs_snap_result *res)
{
	struct snapwalk w = { .fs = fs, .res = res };
	struct snapshot_opts so = {
		.tags = o->tags, .ntags = o->ntags,
		.exclude = o->agent_exclude, .nexclude = o->n_agent_exclude,
		.before_head = note_pending, .before_head_arg = fs,
	};
	struct snapshot_result sr;
	uint8_t ws_root[TREE_ID_LEN], agent_root[TREE_ID_LEN], top[TREE_ID_LEN];
	const uint8_t *parent_agent, *parent_ws, *parent_top;
	const char *parent_id;
	uint64_t t0 = mono_ns(), p0, seq;
	char *base = NULL;
	int rc, changed;

	memset(res, 0, sizeof(*res));
	memset(&sr, 0, sizeof(sr));
	pthread_mutex_lock(&fs->snap_mutex);
	rc = snapshot_job_begin(fs->repo, &so, &w.job);
	if (rc)
		goto out;
	w.st = snapshot_job_stats(w.job);
	flush_kernel(fs);
	rc = open_view(&w);
	if (rc)
		goto out;

	/* the view: the only wait writers see */
	p0 = mono_ns();
	pthread_mutex_lock(&fs->lock);
	rc = fs_meta_commit(fs, 0);
	if (!rc && (sqlite3_exec(w.db, "BEGIN; SELECT count(*) FROM meta;", NULL, NULL, NULL) != SQLITE_OK))
		rc = view_fail(&w, "begin");
	seq = fs->change_seq;
	changed = fs->changed;
	if (!rc && (o->no_head || o->if_changed) && fs_meta_get(fs, "base", &base))
		base = NULL;
	fs->snapshotting = 1;
	pthread_mutex_unlock(&fs->lock);
	res->pause_ms = (double)(mono_ns() - p0) / 1e6;
	fs->last_pause_ms = res->pause_ms;
	if (rc)
		goto out;

	parent_ws = snapshot_job_parent_root(w.job, RECORD_ROOT_WORKSPACE);
	parent_id = snapshot_job_parent_id(w.job);
	parent_top = snapshot_job_parent_root(w.job, RECORD_ROOT_TOP);
	if (o->if_changed && !changed && parent_ws && parent_top && base && parent_id &&
	    !strcmp(base, parent_id)) {
		memcpy(ws_root, parent_ws, TREE_ID_LEN);	/* the cache is its base */
		memcpy(top, parent_top, TREE_ID_LEN);
		snapshot_job_keep_top(w.job, top);
	} else {
		rc = walk_root(&w, ws_root, top);
	}
	parent_agent = snapshot_job_parent_root(w.job, RECORD_ROOT_AGENT_CONFIG);
	if (!rc && o->n_agent_config) {
		struct record_stats keep = *w.st;

		rc = snapshot_job_paths(w.job, o->agent_config, o->n_agent_config, parent_agent,
					agent_root);
		*w.st = keep;	/* the statistics describe the workspace root */
	} else if (!rc && parent_agent) {
		memcpy(agent_root, parent_agent, TREE_ID_LEN);	/* as the parent had it */
	} else if (!rc) {
		rc = snapshot_job_paths(w.job, NULL, 0, NULL, agent_root);
	}
	if (!rc && o->if_changed && parent_ws && parent_agent && parent_top &&
	    !memcmp(ws_root, parent_ws, TREE_ID_LEN) && !memcmp(agent_root, parent_agent, TREE_ID_LEN) &&
	    !memcmp(top, parent_top, TREE_ID_LEN)) {
		res->unchanged = 1;	/* the head has it all */
		snprintf(res->id, sizeof(res->id), "%s", parent_id);
		goto out;
	}
	if (!rc)
		rc = snapshot_job_commit(w.job, ws_root, agent_root, o->no_head ? base : NULL,
					 o->no_head, &sr);
	if (rc)
		goto out;
	memcpy(res->id, sr.id, sizeof(res->id));
	res->generation = sr.generation;
	res->new_bytes = sr.stats.new_bytes;
	res->stored_bytes = sr.stats.stored_bytes;
	if (!o->no_head) {
		struct index *idx = snapshot_job_take_index(w.job), *old;

		pthread_mutex_lock(&fs->lock);
		rc = mark_clean(&w, &sr, seq);
		pthread_mutex_unlock(&fs->lock);
		/* reads may now need blobs this snapshot stored (after eviction) */
		pthread_rwlock_wrlock(&fs->idx_lock);
		old = fs->idx;
		fs->idx = idx;
		pthread_rwlock_unlock(&fs->idx_lock);
		index_free(old);
	}
out:
	pthread_mutex_lock(&fs->lock);
	fs->snapshotting = 0;
	pthread_mutex_unlock(&fs->lock);
	close_view(&w);
	snapshot_job_free(w.job);
	for (size_t i = 0; i < w.ntaken; i++) {
		free(w.taken[i].ids);
		free(w.taken[i].sizes);
	}
	free(w.taken);
	buf_free(&w.path);
	free(base);
	res->duration_ms = (double)(mono_ns() - t0) / 1e6;
	pthread_mutex_unlock(&fs->snap_mutex);
	if (!rc && !res->unchanged)
		log_info("snapshot %.8s (generation %llu): %llu dirty files read (%llu bytes), %llu"
			 " bytes new, %llu stored, %.0f ms (writers paused %.1f ms)", res->id,
			 (unsigned long long)res->generation, (unsigned long long)res->files_read,
			 (unsigned long long)res->bytes_read, (unsigned long long)res->new_bytes,
			 (unsigned long long)res->stored_bytes, res->duration_ms, res->pause_ms);
	return rc;
}

static char **strv_dup(const char *const *v)
{
	size_t n = 0;
	char **out;

	if (!v)
		return NULL;
	while (v[n])
		n++;
	out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

void fs_set_agent_config(struct fs *fs, const char *const *paths, const char *const *exclude)
{
	char **p = strv_dup(paths), **x = strv_dup(exclude), **old_p, **old_x;

	pthread_mutex_lock(&fs->lock);
	old_p = fs->acfg;
	old_x = fs->acfg_exclude;
	fs->acfg = p;
	fs->acfg_exclude = x;
	pthread_mutex_unlock(&fs->lock);
	strv_free(old_p);
	strv_free(old_x);
}

int fs_final_snapshot(struct fs *fs)
{
	struct fs_snap_opts o = { .if_changed = 1 };
	struct fs_snap_result res;
	char **acfg, **exclude;
	int rc, changed;

	pthread_mutex_lock(&fs->lock);
	fs->unmounted = 1;
	/* what the cache holds is durable before the store is asked anything */
	rc = fs_meta_commit(fs, 1);
	if (rc)
		log_error("stopping: cannot commit the metadata: %s", err_msg());
	acfg = strv_dup((const char *const *)fs->acfg);
	exclude = strv_dup((const char *const *)fs->acfg_exclude);
	changed = fs->changed;
	pthread_mutex_unlock(&fs->lock);
	if (!changed && !acfg) {
		log_info("stopping: nothing changed since the last snapshot");
		goto out;
	}
	if ((rc = repo_lease_check(fs->repo)) != 0) {
		log_error("stopping: no final snapshot: %s; the changes stay in the cache dir %s: mount it again to save them",
			  err_msg(), fs->cache_dir);
		goto out;
	}
	o.agent_config = (const char *const *)acfg;
	o.n_agent_config = strv_len(acfg);
	o.agent_exclude = (const char *const *)exclude;
	o.n_agent_exclude = strv_len(exclude);
	rc = fs_snapshot(fs, &o, &res);
	pthread_mutex_lock(&fs->lock);
	if (rc)
		fs->snapshot_failures++;
	else if (!res.unchanged)
		fs->snapshots++;
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		log_error("stopping: the final snapshot failed: %s; the changes stay in the cache dir %s: mount it again to save them",
			  err_msg(), fs->cache_dir);
	else if (res.unchanged)
		log_info("stopping: nothing changed since snapshot %.8s", res.id);
	else
		log_info("stopping: final snapshot %.8s (generation %llu)", res.id,
			 (unsigned long long)res.generation);
out:
	strv_free(acfg);
	strv_free(exclude);
	return rc;
}
