/*
 * meta.c - cairnfs's metadata: the in-memory inode table and its durable
 * copy in sqlite (meta.db, WAL mode).
 *
 * One transaction is always open.  Directory entry and xattr changes go into
 * it as they happen; inode attribute changes only mark the inode dirty, and
 * fs_meta_commit writes the dirty inodes and commits, every 50 ms from the
 * committer thread (group commit) or at once for fsync.  A commit is taken
 * under fs->lock between operations, so every committed state is a state
 * the tree really had: after a kill -9 the cache comes back as of the last
 * commit, and as of the last fsync at the least.  synchronous=NORMAL: a
 * commit reaches the WAL file with write(2), which survives the process;
 * a durable commit (fsync) also fsyncs the WAL, to survive the VM.
 *
 * A full cache disk.  Must stay true:
 *   - the open transaction is the last commit, plus the redo log
 *     (fs->redo: every statement since, as SQL with its values), plus the
 *     dirty inodes, which stay dirty until a commit lands.  sqlite writes
 *     to the disk only at COMMIT (cache_spill off, temp_store in memory),
 *     so a full disk shows there and nowhere else; when sqlite then rolls
 *     the transaction back, redo() begins it again from the log and the
 *     commit is retried.  Nothing the daemon answered is forgotten while it
 *     runs, and what was committed or fsync'd before stays;
 *   - meta.reserve holds reserve_size bytes of the disk for the metadata
 *     alone: the first commit that finds the disk full releases them and is
 *     done again in that room.  From then on (disk_full) every operation
 *     that needs space gets ENOSPC (fs_meta_room, fs_disk_refuse), and
 *     those that free space (unlink, rmdir, removexattr, truncate) commit
 *     in what is left, which gives the cache files of deleted inodes back;
 *   - no transaction grows past txn_max, a quarter of the reserve:
 *     fs_meta_room commits before an operation that would pass it, so the
 *     commit the reserve has to hold is always small enough;
 *   - the committer leaves disk_full only after a commit has landed and
 *     the reserve is allocated again with as much again free beside it.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fs.h"
#include "fsutil.h"
#include "log.h"

enum {
	ST_INODE_GET, ST_INODE_PUT, ST_INODE_DEL,
	ST_DIRENT_LOOKUP, ST_DIRENT_ADD, ST_DIRENT_DEL, ST_DIRENT_SET,
	ST_DIR_EMPTY, ST_DIR_LIST, ST_DIR_MAXCOOKIE,
	ST_XATTR_GET, ST_XATTR_INS, ST_XATTR_REPL, ST_XATTR_DEL, ST_XATTR_LIST, ST_XATTR_DELALL,
	ST_META_GET, ST_META_SET, ST_BEGIN, ST_COMMIT,
	ST_CONTENT_GET, ST_CONTENT_PUT, ST_CONTENT_PRESENT, ST_CONTENT_DEL,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_INODE_GET] = "SELECT mode, uid, gid, nlink, size, rdev, atime, atime_ns, mtime, mtime_ns,"
			 " ctime, ctime_ns, target, state, dgen, used FROM inode WHERE ino = ?1",
	[ST_INODE_PUT] = "INSERT OR REPLACE INTO inode (ino, mode, uid, gid, nlink, size, rdev,"
			 " atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns, target, state, dgen, used)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
	[ST_INODE_DEL] = "DELETE FROM inode WHERE ino = ?1",
	[ST_DIRENT_LOOKUP] = "SELECT ino FROM dirent WHERE parent = ?1 AND name = ?2",
	[ST_DIRENT_ADD] = "INSERT INTO dirent (parent, name, ino, type, cookie) VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_DIRENT_DEL] = "DELETE FROM dirent WHERE parent = ?1 AND name = ?2",
	[ST_DIRENT_SET] = "UPDATE dirent SET ino = ?3, type = ?4 WHERE parent = ?1 AND name = ?2",
	[ST_DIR_EMPTY] = "SELECT 1 FROM dirent WHERE parent = ?1 LIMIT 1",
	[ST_DIR_LIST] = "SELECT name, ino, type, cookie FROM dirent WHERE parent = ?1 AND cookie > ?2"
			" ORDER BY cookie",
	[ST_DIR_MAXCOOKIE] = "SELECT max(cookie) FROM dirent WHERE parent = ?1",
	[ST_XATTR_GET] = "SELECT value FROM xattr WHERE ino = ?1 AND name = ?2",
	[ST_XATTR_INS] = "INSERT INTO xattr (ino, name, value) VALUES (?1, ?2, ?3)",
	[ST_XATTR_REPL] = "INSERT OR REPLACE INTO xattr (ino, name, value) VALUES (?1, ?2, ?3)",
	[ST_XATTR_DEL] = "DELETE FROM xattr WHERE ino = ?1 AND name = ?2",
	[ST_XATTR_LIST] = "SELECT name FROM xattr WHERE ino = ?1 ORDER BY name",
	[ST_XATTR_DELALL] = "DELETE FROM xattr WHERE ino = ?1",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_META_SET] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
	[ST_BEGIN] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_CONTENT_GET] = "SELECT blobs, sizes, present FROM content WHERE ino = ?1",
	[ST_CONTENT_PUT] = "INSERT OR REPLACE INTO content (ino, blobs, sizes, present) VALUES (?1, ?2, ?3, ?4)",
	[ST_CONTENT_PRESENT] = "UPDATE content SET present = ?2 WHERE ino = ?1",
	[ST_CONTENT_DEL] = "DELETE FROM content WHERE ino = ?1",
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS inode (ino INTEGER PRIMARY KEY, mode INTEGER NOT NULL,"
	" uid INTEGER NOT NULL, gid INTEGER NOT NULL, nlink INTEGER NOT NULL,"
	" size INTEGER NOT NULL, rdev INTEGER NOT NULL, atime INTEGER NOT NULL,"
	" atime_ns INTEGER NOT NULL, mtime INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
	" ctime INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, target BLOB,"
	" state INTEGER NOT NULL DEFAULT 0, dgen INTEGER NOT NULL DEFAULT 0,"
	" used INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS dirent (parent INTEGER NOT NULL, name BLOB NOT NULL,"
	" ino INTEGER NOT NULL, type INTEGER NOT NULL, cookie INTEGER NOT NULL,"
	" PRIMARY KEY (parent, name)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS dirent_cookie ON dirent (parent, cookie);"
	"CREATE TABLE IF NOT EXISTS xattr (ino INTEGER NOT NULL, name BLOB NOT NULL,"
	" value BLOB NOT NULL, PRIMARY KEY (ino, name)) WITHOUT ROWID;"
	/* content: the blobs of a file as its last snapshot (or the restore)
	 * had it; sizes: LE32 raw length of each; present: NULL when every
	 * chunk is local, else a bitmap (missing trailing bytes: absent) */
	"CREATE TABLE IF NOT EXISTS content (ino INTEGER PRIMARY KEY, blobs BLOB NOT NULL,"
	" sizes BLOB NOT NULL, present BLOB);";

/* version 1 caches: every file local and dirty, which is what they were */
static const char migrate_v1[] =
	"ALTER TABLE inode ADD COLUMN state INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE inode ADD COLUMN dgen INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE inode ADD COLUMN used INTEGER NOT NULL DEFAULT 0;"
	"UPDATE meta SET value = '2' WHERE key = 'version';";

/* -ENOSPC when sqlite found the disk full, else -EIO; the error says where. */
static int db_fail(struct fs *fs, const char *what)
{
	if ((sqlite3_errcode(fs->db) & 0xff) == SQLITE_FULL)
		return err_set(-ENOSPC, "%s: meta.db in %s: the cache disk is full", what, fs->cache_dir);
	return err_set(-EIO, "%s: meta.db in %s: %s", what, fs->cache_dir, sqlite3_errmsg(fs->db));
}

/* What a statement adds to its commit beyond its values: a page or two
 * of the b-tree it changes, shared with its neighbours more often than not. */
#define TXN_ROW_COST 1024

/* Records a statement the open transaction has done (none is open: it
 * committed itself, nothing to redo). */
static void redo_add(struct fs *fs, const char *sql)
{
	size_t n = strlen(sql);

	if (sqlite3_get_autocommit(fs->db))
		return;
	buf_add(&fs->redo, sql, n + 1);
	fs->redo_n++;
	/* blobs are in hex: the bytes are half the text */
	fs->txn_bytes += TXN_ROW_COST + n / 2;
}

/* Steps a statement that returns no rows and resets it.  The statements
 * of the open transaction go into the redo log, but for the inode rows
 * (the dirty inodes are their log) and the transaction's own. */
static int st_exec(struct fs *fs, int i)
{
	sqlite3_stmt *s = fs->st[i];
	char *sql = NULL;
	int rc;

	if (i != ST_INODE_PUT && i != ST_BEGIN && i != ST_COMMIT && !(sql = sqlite3_expanded_sql(s))) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return err_set(-ENOMEM, "meta.db in %s: no memory for the redo log", fs->cache_dir);
	}
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_DONE && sql)
		redo_add(fs, sql);
	sqlite3_free(sql);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT)
		return -EEXIST;
	return db_fail(fs, "write");
}

static void bind_name(sqlite3_stmt *s, int col, const char *name)
{
	sqlite3_bind_blob(s, col, name, (int)strlen(name), SQLITE_STATIC);
}

/* ---- the inode table ---- */

static size_t slot(const struct fs *fs, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (fs->table_size - 1);
}

static void table_insert(struct fs *fs, struct fs_inode *in)
{
	size_t i;

	if (fs->count + 1 > fs->table_size) {
		struct fs_inode **old = fs->table;
		size_t n = fs->table_size;

		fs->table_size = n * 2;
		fs->table = xcalloc(fs->table_size, sizeof(*fs->table));
		for (size_t k = 0; k < n; k++) {
			while (old[k]) {
				struct fs_inode *e = old[k];

				old[k] = e->hnext;
				i = slot(fs, e->ino);
				e->hnext = fs->table[i];
				fs->table[i] = e;
			}
		}
		free(old);
	}
	i = slot(fs, in->ino);
	in->hnext = fs->table[i];
	fs->table[i] = in;
	fs->count++;
}

static void table_remove(struct fs *fs, struct fs_inode *in)
{
	struct fs_inode **p = &fs->table[slot(fs, in->ino)];

	while (*p && *p != in)
		p = &(*p)->hnext;
	if (*p) {
		*p = in->hnext;
		fs->count--;
	}
}

static void lru_remove(struct fs *fs, struct fs_inode *in)
{
	if (in->lru_prev)
		in->lru_prev->lru_next = in->lru_next;
	else
		fs->lru_head = in->lru_next;
	if (in->lru_next)
		in->lru_next->lru_prev = in->lru_prev;
	else
		fs->lru_tail = in->lru_prev;
	in->lru_prev = in->lru_next = NULL;
}

static void fd_close(struct fs *fs, struct fs_inode *in)
{
	if (in->fd < 0)
		return;
	if (!in->fd_refs)
		lru_remove(fs, in);
	close(in->fd);
	in->fd = -1;
	fs->nfds--;
}

int fs_fd_acquire(struct fs *fs, struct fs_inode *in, int create)
{
	if (in->fd < 0) {
		int fd;

		while (fs->nfds >= fs->max_fds && fs->lru_tail) {
			struct fs_inode *old = fs->lru_tail;

			fd_close(fs, old);
			fs_inode_maybe_drop(fs, old);
		}
		fd = fs_data_open(fs, in, create);
		if (fd < 0)
			return fd;
		in->fd = fd;
		fs->nfds++;
	} else if (!in->fd_refs) {
		lru_remove(fs, in);
	}
	in->fd_refs++;
	return in->fd;
}

void fs_fd_forget(struct fs *fs, struct fs_inode *in)
{
	if (!in->fd_refs)
		fd_close(fs, in);
}

void fs_fd_release(struct fs *fs, struct fs_inode *in)
{
	if (--in->fd_refs)
		return;
	in->lru_next = fs->lru_head;
	in->lru_prev = NULL;
	if (fs->lru_head)
		fs->lru_head->lru_prev = in;
	else
		fs->lru_tail = in;
	fs->lru_head = in;
	fs_inode_maybe_drop(fs, in);
}

static void inode_free(struct fs_inode *in)
{
	if (in->fd >= 0)
		close(in->fd);
	fs_content_free(in->content);
	free(in->target);
	free(in);
}

static struct fs_inode *inode_alloc(uint64_t ino)
{
	struct fs_inode *in = xcalloc(1, sizeof(*in));

	in->ino = ino;
	in->fd = -1;
	in->blocks_stale = 1;
	in->maybe_sparse = 1;	/* until known otherwise */
	return in;
}

struct fs_inode *fs_inode_find(struct fs *fs, uint64_t ino)
{
	struct fs_inode *in;

	for (in = fs->table[slot(fs, ino)]; in; in = in->hnext)
		if (in->ino == ino)
			return in;
	return NULL;
}

struct fs_inode *fs_inode_get(struct fs *fs, uint64_t ino, int *err)
{
	struct fs_inode *in = fs_inode_find(fs, ino);
	sqlite3_stmt *s = fs->st[ST_INODE_GET];
	int rc;

	if (in)
		return in->deleted ? (*err = -ENOENT, NULL) : in;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		*err = rc == SQLITE_DONE ? -ENOENT : db_fail(fs, "read inode");
		sqlite3_reset(s);
		return NULL;
	}
	in = inode_alloc(ino);
	in->mode = (uint32_t)sqlite3_column_int64(s, 0);
	in->uid = (uint32_t)sqlite3_column_int64(s, 1);
	in->gid = (uint32_t)sqlite3_column_int64(s, 2);
	in->nlink = (uint32_t)sqlite3_column_int64(s, 3);
	in->size = (uint64_t)sqlite3_column_int64(s, 4);
	in->rdev = (uint64_t)sqlite3_column_int64(s, 5);
	in->atime.tv_sec = sqlite3_column_int64(s, 6);
	in->atime.tv_nsec = sqlite3_column_int64(s, 7);
	in->mtime.tv_sec = sqlite3_column_int64(s, 8);
	in->mtime.tv_nsec = sqlite3_column_int64(s, 9);
	in->ctime.tv_sec = sqlite3_column_int64(s, 10);
	in->ctime.tv_nsec = sqlite3_column_int64(s, 11);
	if (sqlite3_column_type(s, 12) == SQLITE_BLOB) {
		int n = sqlite3_column_bytes(s, 12);

		in->target = xmalloc((size_t)n + 1);
		memcpy(in->target, sqlite3_column_blob(s, 12), (size_t)n);
		in->target[n] = '\0';
	}
	in->state = (uint32_t)sqlite3_column_int64(s, 13);
	in->dgen = (uint64_t)sqlite3_column_int64(s, 14);
	in->used = sqlite3_column_int64(s, 15);
	sqlite3_reset(s);
	in->in_db = 1;
	table_insert(fs, in);
	return in;
}

struct fs_inode *fs_inode_new(struct fs *fs, mode_t mode, uid_t uid, gid_t gid, dev_t rdev)
{
	struct fs_inode *in = inode_alloc(fs->next_ino++);

	in->mode = mode;
	in->uid = uid;
	in->gid = gid;
	in->rdev = rdev;
	clock_gettime(CLOCK_REALTIME, &in->mtime);
	in->atime = in->ctime = in->mtime;
	in->blocks_stale = 0;
	in->maybe_sparse = 0;
	table_insert(fs, in);
	fs_inode_dirty(fs, in);
	return in;
}

void fs_inode_dirty(struct fs *fs, struct fs_inode *in)
{
	fs->pending++;
	if (in->dirty)
		return;
	fs->txn_bytes += TXN_ROW_COST / 4;	/* a row of about 100 bytes */
	in->dirty = 1;
	in->dnext = fs->dirty;
	fs->dirty = in;
}

static void unlink_after_commit(struct fs *fs, uint64_t ino)
{
	if (fs->n_unlink_after == fs->cap_unlink_after) {
		fs->cap_unlink_after = fs->cap_unlink_after ? fs->cap_unlink_after * 2 : 64;
		fs->unlink_after = xrealloc(fs->unlink_after,
					    fs->cap_unlink_after * sizeof(*fs->unlink_after));
	}
	fs->unlink_after[fs->n_unlink_after++] = ino;
}

void fs_inode_maybe_drop(struct fs *fs, struct fs_inode *in)
{
	if (in->nlookup || in->fd_refs || in->ino == FS_ROOT_INO)
		return;
	fd_close(fs, in);
	if (in->nlink == 0) {
		sqlite3_bind_int64(fs->st[ST_INODE_DEL], 1, (sqlite3_int64)in->ino);
		st_exec(fs, ST_INODE_DEL);
		sqlite3_bind_int64(fs->st[ST_XATTR_DELALL], 1, (sqlite3_int64)in->ino);
		st_exec(fs, ST_XATTR_DELALL);
		if (S_ISREG(in->mode)) {
			sqlite3_bind_int64(fs->st[ST_CONTENT_DEL], 1, (sqlite3_int64)in->ino);
			st_exec(fs, ST_CONTENT_DEL);
			unlink_after_commit(fs, in->ino);
		}
		fs->pending++;
		in->deleted = 1;
	} else if (in->dirty) {
		return;		/* written, then dropped, by the next commit */
	}
	table_remove(fs, in);
	if (!in->dirty)
		inode_free(in);
}

void fs_inode_stat(struct fs *fs, struct fs_inode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink;
	st->st_uid = in->uid;
	st->st_gid = in->gid;
	st->st_rdev = in->rdev;
	st->st_size = (off_t)in->size;
	st->st_atim = in->atime;
	st->st_mtim = in->mtime;
	st->st_ctim = in->ctime;
	st->st_blksize = 4096;
	if (S_ISREG(in->mode) && (!in->maybe_sparse || (in->state & FS_ST_PARTIAL))) {
		/* written front to back, or not all local yet (its blocks are
		 * in the store): no stat of the cache file needed */
		st->st_blocks = (blkcnt_t)((in->size + 4095) / 4096 * 8);
	} else if (S_ISREG(in->mode)) {
		if (in->blocks_stale) {
			struct stat ds;
			char name[40];

			fs_data_name(in->ino, name);
			if (in->fd >= 0 ? fstat(in->fd, &ds) == 0
					: fstatat(fs->data_fd, name, &ds, 0) == 0)
				in->blocks = (uint64_t)ds.st_blocks;
			else
				in->blocks = 0;
			in->blocks_stale = 0;
		}
		st->st_blocks = (blkcnt_t)in->blocks;
	} else if (S_ISDIR(in->mode) || S_ISLNK(in->mode)) {
		st->st_blocks = S_ISDIR(in->mode) ? 8 : 0;
	}
}

static int inode_put(struct fs *fs, struct fs_inode *in)
{
	sqlite3_stmt *s = fs->st[ST_INODE_PUT];

	sqlite3_bind_int64(s, 1, (sqlite3_int64)in->ino);
	sqlite3_bind_int64(s, 2, in->mode);
	sqlite3_bind_int64(s, 3, in->uid);
	sqlite3_bind_int64(s, 4, in->gid);
	sqlite3_bind_int64(s, 5, in->nlink);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)in->size);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)in->rdev);
	sqlite3_bind_int64(s, 8, in->atime.tv_sec);
	sqlite3_bind_int64(s, 9, in->atime.tv_nsec);
	sqlite3_bind_int64(s, 10, in->mtime.tv_sec);
	sqlite3_bind_int64(s, 11, in->mtime.tv_nsec);
	sqlite3_bind_int64(s, 12, in->ctime.tv_sec);
	sqlite3_bind_int64(s, 13, in->ctime.tv_nsec);
	if (in->target)
		sqlite3_bind_blob(s, 14, in->target, (int)strlen(in->target), SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 14);
	sqlite3_bind_int64(s, 15, in->state);
	sqlite3_bind_int64(s, 16, (sqlite3_int64)in->dgen);
	sqlite3_bind_int64(s, 17, in->used);
	return st_exec(fs, ST_INODE_PUT);
}

/* ---- commits, the redo log, a full disk ---- */

#define RESERVE_MIN (1ull << 20)
#define RESERVE_MAX (8ull << 20)
#define COMMIT_RETRY 1		/* seconds between tries of a failing commit */

static int64_t now_sec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec;
}

/* Allocates the reserve's blocks.  0, or a negative errno (-ENOSPC: the
 * disk has not that much free) with nothing allocated. */
static int reserve_take(struct fs *fs)
{
	int rc = 0;

	if (fs->reserve_held || fs->reserve_fd < 0)
		return 0;
	if (fallocate(fs->reserve_fd, 0, 0, (off_t)fs->reserve_size)) {
		rc = -errno;
		if (rc == -EOPNOTSUPP) {	/* a filesystem without fallocate */
			static const char zeros[65536];

			rc = 0;
			for (uint64_t off = 0; !rc && off < fs->reserve_size; off += sizeof(zeros))
				rc = fsu_pwrite_all(fs->reserve_fd, zeros, sizeof(zeros), (off_t)off);
		}
		if (rc && ftruncate(fs->reserve_fd, 0))
			log_warn("cannot empty %s/meta.reserve: %s", fs->cache_dir, strerror(errno));
		if (rc)
			return rc;
	}
	fs->reserve_held = 1;
	return 0;
}

/* Frees the reserve's blocks for the metadata; 1 when it held some. */
static int reserve_release(struct fs *fs)
{
	if (!fs->reserve_held)
		return 0;
	if (ftruncate(fs->reserve_fd, 0)) {
		log_error("cannot release the metadata reserve %s/meta.reserve: %s", fs->cache_dir,
			  strerror(errno));
		return 0;
	}
	fs->reserve_held = 0;
	return 1;
}

/* Whether the cache disk has room: the reserve allocated (taken now when
 * it can be) and as much again free beside it. */
static int disk_has_room(struct fs *fs)
{
	struct statvfs v;
	uint64_t avail;

	if (fstatvfs(fs->reserve_fd, &v))
		return 0;
	avail = (uint64_t)v.f_bavail * v.f_frsize;
	if (!fs->reserve_held) {
		if (avail < 2 * fs->reserve_size || reserve_take(fs))
			return 0;
		avail -= fs->reserve_size;
	}
	return avail >= fs->reserve_size;
}

/* Opens meta.reserve (a 32nd of the disk, 1 to 8 MiB) and allocates it.  A
 * disk without room for it and as much again is full from the start. */
static int reserve_open(struct fs *fs)
{
	struct statvfs v;
	struct stat st;
	uint64_t disk;

	fs->reserve_fd = openat(fs->cache_fd, "meta.reserve", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fs->reserve_fd < 0 || fstat(fs->reserve_fd, &st) || fstatvfs(fs->reserve_fd, &v))
		return err_set(-errno, "%s/meta.reserve: %s", fs->cache_dir, strerror(errno));
	disk = (uint64_t)v.f_blocks * v.f_frsize / 32;
	fs->reserve_size = disk < RESERVE_MIN ? RESERVE_MIN : disk > RESERVE_MAX ? RESERVE_MAX : disk;
	fs->txn_max = fs->reserve_size / 4;
	if ((uint64_t)st.st_size > fs->reserve_size && ftruncate(fs->reserve_fd, (off_t)fs->reserve_size))
		return err_set(-errno, "%s/meta.reserve: %s", fs->cache_dir, strerror(errno));
	/* the last mount's reserve, still allocated, is taken as it is */
	if ((uint64_t)st.st_blocks * 512 >= fs->reserve_size)
		reserve_take(fs);
	if (disk_has_room(fs))
		return 0;
	fs->disk_full = 1;
	fs->full_since = now_sec();
	log_warn("the cache disk of %s is full (%s the metadata reserve of %llu KiB): what needs"
		 " space gets ENOSPC until some is freed", fs->cache_dir,
		 fs->reserve_held ? "little room beside" : "no room for", (unsigned long long)(fs->reserve_size >> 10));
	return 0;
}

void fs_disk_full(struct fs *fs, const char *what)
{
	if (!fs->disk_full) {
		fs->disk_full = 1;
		fs->full_since = now_sec();
		log_warn("the cache disk of %s is full (%s): what needs space gets ENOSPC until some is"
			 " freed; deletes go on in the metadata reserve", fs->cache_dir, what);
	}
	reserve_release(fs);
}

int fs_disk_refuse(struct fs *fs)
{
	fs->enospc++;
	return -ENOSPC;
}

/* The committer's look at a full disk, after a commit landed: once it
 * has room again, it is not full. */
static void disk_full_recheck(struct fs *fs)
{
	if (!fs->disk_full || fs->commit_failing || !disk_has_room(fs))
		return;
	fs->disk_full = 0;
	log_info("the cache disk of %s has room again: the metadata reserve is back", fs->cache_dir);
}

/* sqlite rolled the open transaction back: begins it again as it was, from
 * the redo log (the dirty inodes are still dirty).  0, or a negative code:
 * the transaction then lacks the log, which stays for the next try. */
static int redo(struct fs *fs)
{
	const char *p = (const char *)fs->redo.data, *end = p + fs->redo.len;
	char *msg = NULL;
	int rc = 0;

	if (sqlite3_exec(fs->db, "BEGIN", NULL, NULL, &msg) != SQLITE_OK)
		rc = err_set(-EIO, "meta.db in %s: cannot begin a transaction: %s", fs->cache_dir,
			     msg ? msg : "error");
	for (; !rc && p < end; p += strlen(p) + 1) {
		if (sqlite3_exec(fs->db, p, NULL, NULL, &msg) != SQLITE_OK) {
			rc = err_set(-EIO, "meta.db in %s: cannot redo the changes of a rolled-back commit:"
				     " %s", fs->cache_dir, msg ? msg : "error");
			sqlite3_exec(fs->db, "ROLLBACK; BEGIN", NULL, NULL, NULL);
		}
	}
	sqlite3_free(msg);
	return rc;
}

/* On a full disk meta.db cannot grow at the checkpoints of WAL
 * past 4 MiB, and the WAL would grow by every commit into the room left:
 * after each commit (no transaction open) all of it is copied into meta.db
 * while there is room for that, so that the next commit writes the WAL
 * from its start again, over blocks it already has. */
static void full_checkpoint(struct fs *fs)
{
	int rc = sqlite3_wal_checkpoint_v2(fs->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);

	if (rc != SQLITE_OK && rc != SQLITE_BUSY && (rc & 0xff) != SQLITE_FULL)
		log_warn("checkpoint of %s/meta.db: %s", fs->cache_dir, sqlite3_errmsg(fs->db));
}

/* One try: the dirty inodes' rows, COMMIT, BEGIN.  On failure the
 * transaction is open again with everything in it (redo). */
static int commit_once(struct fs *fs)
{
	int rc = 0;

	for (struct fs_inode *in = fs->dirty; in && !rc; in = in->dnext)
		if (!in->deleted)
			rc = inode_put(fs, in);
	if (!rc)
		rc = st_exec(fs, ST_COMMIT);
	if (rc && sqlite3_get_autocommit(fs->db)) {
		char *why = xstrdup(err_msg());

		if (redo(fs))
			log_error("%s", err_msg());
		err_set(rc, "%s", why);
		free(why);
	} else if (!rc) {
		if (fs->disk_full)
			full_checkpoint(fs);
		rc = st_exec(fs, ST_BEGIN);
	}
	return rc;
}

int fs_meta_commit(struct fs *fs, int durable)
{
	int rc = 0;

	if (fs->pending || fs->redo_n || fs->dirty) {
		rc = commit_once(fs);
		if (rc == -ENOSPC) {
			int released = fs->reserve_held;

			fs_disk_full(fs, "a metadata commit");
			if (released)
				rc = commit_once(fs);	/* in the reserve's room */
		}
		if (rc) {
			if (!fs->commit_failing)
				log_error("commit: %s; the changes stay in memory and the commit is tried"
					  " again%s", err_msg(), rc == -ENOSPC ? " once there is room" : "");
			fs->commit_failing = 1;
			fs->commit_retry = now_sec() + COMMIT_RETRY;
			return rc;
		}
		if (fs->commit_failing)
			log_info("the metadata of %s commits again", fs->cache_dir);
		fs->commit_failing = 0;
		fs->pending = 0;
		fs->txn_bytes = 0;
		fs->redo_n = 0;
		if (fs->redo.cap > (1u << 20))
			buf_free(&fs->redo);
		else
			buf_reset(&fs->redo);
		while (fs->dirty) {
			struct fs_inode *in = fs->dirty;

			fs->dirty = in->dnext;
			in->dirty = 0;
			if (in->deleted) {
				inode_free(in);
				continue;
			}
			in->in_db = 1;
			if (!in->nlookup && !in->fd_refs && in->ino != FS_ROOT_INO) {
				fd_close(fs, in);
				table_remove(fs, in);
				inode_free(in);
			}
		}
	}
	for (size_t i = 0; i < fs->n_unlink_after; i++) {
		char name[40];

		fs_data_name(fs->unlink_after[i], name);
		if (unlinkat(fs->data_fd, name, 0) && errno != ENOENT)
			log_warn("cannot remove cache file %s/data/%s: %s", fs->cache_dir, name,
				 strerror(errno));
	}
	fs->n_unlink_after = 0;
	if (durable && fs->wal_fd >= 0 && fsync(fs->wal_fd))
		return err_set(-EIO, "fsync %s/meta.db-wal: %s", fs->cache_dir, strerror(errno));
	return 0;
}

int fs_meta_bound(struct fs *fs, size_t bytes)
{
	if (fs->txn_bytes + TXN_ROW_COST + bytes <= fs->txn_max || !(fs->pending || fs->redo_n))
		return 0;
	return fs_meta_commit(fs, 0);
}

int fs_meta_room(struct fs *fs, size_t bytes)
{
	int rc = fs->disk_full ? -ENOSPC : fs_meta_bound(fs, bytes);

	if (!rc && fs->disk_full)
		rc = -ENOSPC;	/* the commit found the disk full */
	return rc == -ENOSPC ? fs_disk_refuse(fs) : rc;
}

/* Copies the WAL into meta.db once it has grown past 4 MiB, through a
 * connection of its own and without fs->lock: operations go on while the
 * checkpoint reads, writes and fsyncs.  The main connection has automatic
 * checkpoints off, so none of that happens inside an operation.  Called
 * and returns with fs->lock held. */
static void checkpoint(struct fs *fs)
{
	struct stat st;
	int rc;

	if (!fs->ckpt_db || fstat(fs->wal_fd, &st) || st.st_size < (4 << 20))
		return;
	if (st.st_size >= (16 << 20) && !fs->pending && !fs->redo_n && !fs->dirty && !fs->snapshotting &&
	    !fs->disk_full) {
		/* busy for so long that passive checkpoints never caught up (each
		 * stops at the last commit, and the WAL restarts only when fully
		 * copied): one blocking checkpoint, between two transactions */
		if (st_exec(fs, ST_COMMIT) == 0) {
			if (sqlite3_wal_checkpoint_v2(fs->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
						      NULL) != SQLITE_OK)
				log_warn("checkpoint of %s/meta.db: %s", fs->cache_dir,
					 sqlite3_errmsg(fs->db));
			if (st_exec(fs, ST_BEGIN))
				log_error("%s", err_msg());
		}
		return;
	}
	pthread_mutex_unlock(&fs->lock);
	rc = sqlite3_wal_checkpoint_v2(fs->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	/* on a full disk meta.db may not grow: the WAL keeps the commits */
	if (rc != SQLITE_OK && rc != SQLITE_BUSY && (rc & 0xff) != SQLITE_FULL)
		log_warn("checkpoint of %s/meta.db: %s", fs->cache_dir, sqlite3_errmsg(fs->ckpt_db));
	pthread_mutex_lock(&fs->lock);
}

static void *committer_main(void *arg)
{
	struct fs *fs = arg;

	pthread_mutex_lock(&fs->lock);
	while (!fs->stopping) {
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 50 * 1000 * 1000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&fs->commit_cond, &fs->lock, &t);
		/* a failing commit (logged by fs_meta_commit) is tried every
		 * COMMIT_RETRY seconds, not at every tick */
		if ((fs->pending || fs->redo_n || fs->dirty) &&
		    (!fs->commit_failing || now_sec() >= fs->commit_retry))
			fs_meta_commit(fs, 0);
		disk_full_recheck(fs);
		checkpoint(fs);
		fs_atime_notify(fs);
	}
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}

int fs_committer_start(struct fs *fs)
{
	int rc = pthread_create(&fs->committer, NULL, committer_main, fs);

	if (rc)
		return err_set(-rc, "cannot start the commit thread: %s", strerror(rc));
	fs->committer_running = 1;
	return 0;
}

void fs_committer_stop(struct fs *fs)
{
	if (!fs->committer_running)
		return;
	pthread_mutex_lock(&fs->lock);
	fs->stopping = 1;
	pthread_cond_signal(&fs->commit_cond);
	pthread_mutex_unlock(&fs->lock);
	pthread_join(fs->committer, NULL);
	fs->committer_running = 0;
}

/* ---- directory entries ---- */

int fs_dirent_lookup(struct fs *fs, uint64_t parent, const char *name, uint64_t *ino)
{
	sqlite3_stmt *s = fs->st[ST_DIRENT_LOOKUP];
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)parent);
	bind_name(s, 2, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*ino = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : db_fail(fs, "lookup");
}

static uint64_t dir_next_cookie(struct fs *fs, struct fs_inode *dir)
{
	if (!dir->next_cookie) {
		sqlite3_stmt *s = fs->st[ST_DIR_MAXCOOKIE];
		uint64_t max = 0;

		sqlite3_bind_int64(s, 1, (sqlite3_int64)dir->ino);
		if (sqlite3_step(s) == SQLITE_ROW)
			max = (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		/* readdir offsets 1 and 2 are "." and "..": cookies start at 3 */
		dir->next_cookie = max < 3 ? 3 : max + 1;
	}
	return dir->next_cookie++;
}

int fs_dirent_add(struct fs *fs, struct fs_inode *dir, const char *name, uint64_t ino, mode_t mode)
{
	sqlite3_stmt *s = fs->st[ST_DIRENT_ADD];

	sqlite3_bind_int64(s, 1, (sqlite3_int64)dir->ino);
	bind_name(s, 2, name);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)ino);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)(mode & S_IFMT));
	sqlite3_bind_int64(s, 5, (sqlite3_int64)dir_next_cookie(fs, dir));
	fs->pending++;
	return st_exec(fs, ST_DIRENT_ADD);
}

int fs_dirent_remove(struct fs *fs, uint64_t parent, const char *name)
{
	sqlite3_stmt *s = fs->st[ST_DIRENT_DEL];

	sqlite3_bind_int64(s, 1, (sqlite3_int64)parent);
	bind_name(s, 2, name);
	fs->pending++;
	return st_exec(fs, ST_DIRENT_DEL);
}

int fs_dirent_set_ino(struct fs *fs, uint64_t parent, const char *name, uint64_t ino, mode_t mode)
{
	sqlite3_stmt *s = fs->st[ST_DIRENT_SET];

	sqlite3_bind_int64(s, 1, (sqlite3_int64)parent);
	bind_name(s, 2, name);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)ino);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)(mode & S_IFMT));
	fs->pending++;
	return st_exec(fs, ST_DIRENT_SET);
}

int fs_dir_is_empty(struct fs *fs, uint64_t dir)
{
	sqlite3_stmt *s = fs->st[ST_DIR_EMPTY];
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? 1 : db_fail(fs, "readdir");
}

int fs_dirent_foreach(struct fs *fs, uint64_t dir, uint64_t after, fs_dirent_fn fn, void *arg)
{
	sqlite3_stmt *s;
	int rc, stop = 0;

	/* fn may look inodes up (ST_INODE_GET), never list another dir */
	s = fs->st[ST_DIR_LIST];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		char name[256];
		int n = sqlite3_column_bytes(s, 0);

		if (n <= 0 || n > 255)
			continue;
		memcpy(name, sqlite3_column_blob(s, 0), (size_t)n);
		name[n] = '\0';
		stop = fn(arg, name, (uint64_t)sqlite3_column_int64(s, 1),
			  (mode_t)sqlite3_column_int64(s, 2), (uint64_t)sqlite3_column_int64(s, 3));
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (stop || rc == SQLITE_DONE)
		return 0;
	return db_fail(fs, "readdir");
}

/* ---- xattrs ---- */

int fs_xattr_get(struct fs *fs, uint64_t ino, const char *name, void **value, size_t *len)
{
	sqlite3_stmt *s = fs->st[ST_XATTR_GET];
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	bind_name(s, 2, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*len = (size_t)sqlite3_column_bytes(s, 0);
		*value = xmalloc(*len + 1);
		if (*len)
			memcpy(*value, sqlite3_column_blob(s, 0), *len);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENODATA : db_fail(fs, "getxattr");
}

int fs_xattr_set(struct fs *fs, uint64_t ino, const char *name, const void *value, size_t len,
		 int flags)
{
	void *old = NULL;
	size_t oldlen;
	int have = fs_xattr_get(fs, ino, name, &old, &oldlen);
	int i;

	free(old);
	if (have < 0 && have != -ENODATA)
		return have;
	if ((flags & XATTR_CREATE) && have == 0)
		return -EEXIST;
	if ((flags & XATTR_REPLACE) && have == -ENODATA)
		return -ENODATA;
	i = have == 0 ? ST_XATTR_REPL : ST_XATTR_INS;
	sqlite3_bind_int64(fs->st[i], 1, (sqlite3_int64)ino);
	bind_name(fs->st[i], 2, name);
	sqlite3_bind_blob(fs->st[i], 3, len ? value : "", (int)len, SQLITE_STATIC);
	fs->pending++;
	return st_exec(fs, i);
}

int fs_xattr_remove(struct fs *fs, uint64_t ino, const char *name)
{
	sqlite3_stmt *s = fs->st[ST_XATTR_DEL];
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	bind_name(s, 2, name);
	rc = st_exec(fs, ST_XATTR_DEL);
	if (rc)
		return rc;
	if (!sqlite3_changes(fs->db))
		return -ENODATA;
	fs->pending++;
	return 0;
}

int fs_xattr_list(struct fs *fs, uint64_t ino, char **names, size_t *len)
{
	sqlite3_stmt *s = fs->st[ST_XATTR_LIST];
	struct buf b = BUF_INIT;
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		buf_add(&b, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
		buf_addc(&b, '\0');
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		buf_free(&b);
		return db_fail(fs, "listxattr");
	}
	*len = b.len;
	*names = buf_detach(&b, NULL);
	return 0;
}

/* ---- content rows ---- */

void fs_changed(struct fs *fs)
{
	fs->change_seq++;
	if (fs->changed)
		return;
	fs->changed = 1;
	if (fs_meta_set(fs, "changed", "1"))
		log_error("%s", err_msg());
}

int fs_content_put(struct fs *fs, uint64_t ino, const uint8_t (*ids)[32], const uint32_t *sizes,
		   size_t n, const uint8_t *present, size_t nbytes)
{
	sqlite3_stmt *s = fs->st[ST_CONTENT_PUT];
	uint8_t *le = xmalloc(n * 4 + 1);

	for (size_t i = 0; i < n; i++) {
		le[4 * i] = (uint8_t)sizes[i];
		le[4 * i + 1] = (uint8_t)(sizes[i] >> 8);
		le[4 * i + 2] = (uint8_t)(sizes[i] >> 16);
		le[4 * i + 3] = (uint8_t)(sizes[i] >> 24);
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	sqlite3_bind_blob(s, 2, n ? (const void *)ids : "", (int)(n * 32), SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, le, (int)(n * 4), SQLITE_STATIC);
	if (present)
		sqlite3_bind_blob(s, 4, nbytes ? (const void *)present : "", (int)nbytes, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 4);
	fs->pending++;
	{
		int rc = st_exec(fs, ST_CONTENT_PUT);

		free(le);
		return rc;
	}
}

void fs_content_free(struct fs_content *c)
{
	if (!c)
		return;
	free(c->ids);
	free(c->off);
	free(c->present);
	free(c);
}

int fs_content_load(struct fs *fs, struct fs_inode *in)
{
	sqlite3_stmt *s = fs->st[ST_CONTENT_GET];
	struct fs_content *c;
	const uint8_t *sz, *pr;
	int rc, nb, np;

	if (in->content)
		return 0;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)in->ino);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? err_set(-EIO, "inode %llu of %s has no chunk list",
						   (unsigned long long)in->ino, fs->cache_dir)
					 : db_fail(fs, "read chunk list");
	}
	nb = sqlite3_column_bytes(s, 0);
	c = xcalloc(1, sizeof(*c));
	c->n = (size_t)nb / 32;
	if ((size_t)sqlite3_column_bytes(s, 1) != c->n * 4) {
		sqlite3_reset(s);
		free(c);
		return err_set(-EIO, "inode %llu of %s: damaged chunk list", (unsigned long long)in->ino,
			       fs->cache_dir);
	}
	c->ids = xmalloc(c->n ? c->n * 32 : 1);
	if (c->n)
		memcpy(c->ids, sqlite3_column_blob(s, 0), c->n * 32);
	c->off = xmalloc((c->n + 1) * sizeof(*c->off));
	c->present = xcalloc(c->n ? c->n : 1, 1);
	sz = sqlite3_column_blob(s, 1);
	c->off[0] = 0;
	for (size_t i = 0; i < c->n; i++)
		c->off[i + 1] = c->off[i] + ((uint32_t)sz[4 * i] | (uint32_t)sz[4 * i + 1] << 8 |
					     (uint32_t)sz[4 * i + 2] << 16 | (uint32_t)sz[4 * i + 3] << 24);
	pr = sqlite3_column_type(s, 2) == SQLITE_NULL ? NULL : sqlite3_column_blob(s, 2);
	np = sqlite3_column_bytes(s, 2);
	for (size_t i = 0; i < c->n; i++) {
		int local = !pr && sqlite3_column_type(s, 2) == SQLITE_NULL;

		if (pr && (size_t)np > i / 8)
			local = (pr[i / 8] >> (i % 8)) & 1;
		c->present[i] = local ? 2 : 0;
		c->missing += !local;
	}
	sqlite3_reset(s);
	in->content = c;
	return 0;
}

int fs_content_save_present(struct fs *fs, struct fs_inode *in)
{
	sqlite3_stmt *s = fs->st[ST_CONTENT_PRESENT];
	struct fs_content *c = in->content;
	uint8_t *bits = NULL;
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)in->ino);
	if (!c && (in->state & FS_ST_PARTIAL)) {
		sqlite3_bind_blob(s, 2, "", 0, SQLITE_STATIC);	/* nothing local */
	} else if (c && c->missing) {
		bits = xcalloc(c->n / 8 + 1, 1);
		for (size_t i = 0; i < c->n; i++)
			if (c->present[i] == 2)
				bits[i / 8] |= (uint8_t)(1u << (i % 8));
		sqlite3_bind_blob(s, 2, bits, (int)(c->n / 8 + 1), SQLITE_STATIC);
	} else {
		sqlite3_bind_null(s, 2);
	}
	fs->pending++;
	rc = st_exec(fs, ST_CONTENT_PRESENT);
	free(bits);
	return rc;
}

int fs_content_blobs(struct fs *fs, uint64_t ino, uint8_t (**ids)[32], size_t *n, uint64_t *size)
{
	sqlite3_stmt *s = fs->st[ST_CONTENT_GET];
	const uint8_t *sz;
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? -ENOENT : db_fail(fs, "read chunk list");
	}
	*n = (size_t)sqlite3_column_bytes(s, 0) / 32;
	*ids = xmalloc(*n ? *n * 32 : 1);
	if (*n)
		memcpy(*ids, sqlite3_column_blob(s, 0), *n * 32);
	sz = sqlite3_column_blob(s, 1);
	*size = 0;
	for (size_t i = 0; sz && i < *n && (size_t)sqlite3_column_bytes(s, 1) >= 4 * (i + 1); i++)
		*size += (uint32_t)sz[4 * i] | (uint32_t)sz[4 * i + 1] << 8 |
			 (uint32_t)sz[4 * i + 2] << 16 | (uint32_t)sz[4 * i + 3] << 24;
	sqlite3_reset(s);
	return 0;
}

/* ---- meta keys ---- */

int fs_meta_get(struct fs *fs, const char *key, char **value)
{
	sqlite3_stmt *s = fs->st[ST_META_GET];
	int rc;

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*value = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : db_fail(fs, "read");
}

int fs_meta_set(struct fs *fs, const char *key, const char *value)
{
	sqlite3_stmt *s = fs->st[ST_META_SET];

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
	fs->pending++;
	return st_exec(fs, ST_META_SET);
}

/* ---- cache files ---- */

void fs_data_name(uint64_t ino, char out[40])
{
	snprintf(out, 40, "%02x/%" PRIu64, (unsigned)(ino & 0xff), ino);
}

int fs_data_open(struct fs *fs, struct fs_inode *in, int create)
{
	char name[40];
	int fd;

	fs_data_name(in->ino, name);
	/* a new inode has no cache file yet: skip the failing open */
	fd = create && !in->in_db && !in->data_new ? -1 : openat(fs->data_fd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || !in->in_db) && create) {
		fd = openat(fs->data_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			in->data_new = 1;
	}
	return fd < 0 ? -errno : fd;
}

/* ---- open and close ---- */

static int exec_sql(struct fs *fs, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(fs->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = (sqlite3_errcode(fs->db) & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO;

		err_set(rc, "meta.db in %s: %s", fs->cache_dir, msg ? msg : "error");
		sqlite3_free(msg);
		return rc;
	}
	redo_add(fs, sql);
	return 0;
}

/* Bytes written past the committed size were never fsync'd (fsync commits
 * the size): cut them, so that a later truncate up reads zeros there. */
static void trim_to_size(int dfd, const char *name, off_t size)
{
	struct stat st;
	int fd;

	if (fstatat(dfd, name, &st, 0) || st.st_size <= size)
		return;
	fd = openat(dfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (ftruncate(fd, size))
		log_warn("recovery: cannot trim cache file %s: %s", name, strerror(errno));
	close(fd);
}

/* After a crash: inodes that were unlinked while open, cache files whose
 * inode never reached a commit, and bytes beyond the committed sizes. */
static int recover(struct fs *fs)
{
	sqlite3_stmt *s;
	int rc;

	rc = exec_sql(fs, "DELETE FROM xattr WHERE ino IN (SELECT ino FROM inode WHERE nlink = 0);"
			  "DELETE FROM inode WHERE nlink = 0;");
	if (rc)
		return rc;
	if (sqlite3_prepare_v2(fs->db, "SELECT size FROM inode WHERE ino = ?1", -1, &s, NULL))
		return db_fail(fs, "recover");
	for (unsigned x = 0; x < 256; x++) {
		char sub[8];
		DIR *d;
		struct dirent *de;
		int dfd;

		snprintf(sub, sizeof(sub), "%02x", x);
		dfd = openat(fs->data_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || !(d = fdopendir(dfd))) {
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		while ((de = readdir(d))) {
			char *end;
			unsigned long long ino = strtoull(de->d_name, &end, 10);

			if (de->d_name[0] == '.' || *end)
				continue;
			sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
			rc = sqlite3_step(s);
			if (rc == SQLITE_DONE) {
				log_info("recovery: removing cache file data/%s/%s of no inode", sub,
					 de->d_name);
				unlinkat(dirfd(d), de->d_name, 0);
			} else if (rc == SQLITE_ROW) {
				trim_to_size(dirfd(d), de->d_name, (off_t)sqlite3_column_int64(s, 0));
			}
			sqlite3_reset(s);
		}
		closedir(d);
	}
	sqlite3_finalize(s);
	return 0;
}

int fs_open(struct fs *fs, const char *cache_dir, int *ready)
{
	char *v = NULL;
	int rc, clean;

	memset(fs, 0, sizeof(*fs));
	fs->cache_fd = fs->data_fd = fs->wal_fd = fs->reserve_fd = -1;
	fs->cache_dir = xstrdup(cache_dir);
	fs->table_size = 1024;
	fs->table = xcalloc(fs->table_size, sizeof(*fs->table));
	fs->entry_timeout = 86400.0;
	{
		/* a quarter of the open-files limit, for the cache files */
		struct rlimit rl;
		rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / 4 : 64;

		fs->max_fds = (unsigned)(n < 16 ? 16 : n > 1024 ? 1024 : n);
	}
	pthread_mutex_init(&fs->lock, NULL);
	pthread_cond_init(&fs->commit_cond, NULL);
	pthread_cond_init(&fs->fetch_cond, NULL);
	pthread_rwlock_init(&fs->idx_lock, NULL);
	pthread_mutex_init(&fs->snap_mutex, NULL);
	pthread_mutex_init(&fs->notify_lock, NULL);
	fs->ctl_fd = fs->ctl_wake[0] = fs->ctl_wake[1] = -1;

	{
		char *p = xasprintf("%s/data", cache_dir);

		rc = fsu_mkdir_parents(p);
		free(p);
		if (rc)
			return err_prefix(rc, "cache dir");
	}
	fs->cache_fd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->cache_fd < 0)
		return err_set(-errno, "cache dir %s: %s", cache_dir, strerror(errno));
	if (flock(fs->cache_fd, LOCK_EX | LOCK_NB))
		return err_set(-EBUSY, "cache dir %s is in use by another cairnfs (unmount it first)",
			       cache_dir);
	if (mkdirat(fs->cache_fd, "data", 0700) && errno != EEXIST)
		return err_set(-EIO, "%s/data: %s", cache_dir, strerror(errno));
	fs->data_fd = openat(fs->cache_fd, "data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->data_fd < 0)
		return err_set(-EIO, "%s/data: %s", cache_dir, strerror(errno));
	for (unsigned x = 0; x < 256; x++) {
		char sub[8];

		snprintf(sub, sizeof(sub), "%02x", x);
		if (mkdirat(fs->data_fd, sub, 0700) && errno != EEXIST)
			return err_set(-EIO, "%s/data/%s: %s", cache_dir, sub, strerror(errno));
	}
	rc = reserve_open(fs);
	if (rc)
		return rc;
	{
		char *path = xasprintf("%s/meta.db", cache_dir);

		rc = sqlite3_open_v2(path, &fs->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX, NULL);
		free(path);
		if (rc != SQLITE_OK)
			return db_fail(fs, "open");
	}
	/* cache_spill off: the transaction stays in memory until its COMMIT,
	 * the one place a full disk can show (see the top) */
	rc = exec_sql(fs, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
			  "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;"
			  "PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;"
			  "PRAGMA cache_spill = OFF;");
	if (!rc)
		rc = exec_sql(fs, schema);
	if (rc)
		return rc;
	for (int i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(fs->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &fs->st[i], NULL) != SQLITE_OK)
			return db_fail(fs, "prepare");
	rc = st_exec(fs, ST_BEGIN);
	if (rc)
		return rc;
	if (fs_meta_get(fs, "version", &v) == 0) {
		if (strcmp(v, "1") == 0) {
			log_info("%s: metadata version 1, upgrading to 2", cache_dir);
			rc = exec_sql(fs, migrate_v1);
			if (rc)
				return rc;
			free(v);
			v = xstrdup("2");
		}
		if (strcmp(v, "2") != 0) {
			err_set(-ENOTSUP, "cache dir %s has metadata version %s; this cairnfs reads version %d:"
				" use a new cache dir", cache_dir, v, FS_META_VERSION);
			free(v);
			return -ENOTSUP;
		}
		free(v);
	} else {
		rc = fs_meta_set(fs, "version", "2");
		if (rc)
			return rc;
	}
	clean = fs_meta_get(fs, "clean", &v) == 0 && strcmp(v, "1") == 0;
	free(v);
	v = NULL;
	*ready = fs_meta_get(fs, "ready", &v) == 0 && strcmp(v, "1") == 0;
	free(v);
	if (*ready && !clean) {
		char *boot = NULL, *was = NULL;

		log_info("%s was not unmounted cleanly: recovering", cache_dir);
		rc = recover(fs);
		if (!rc && fsu_read_boot_id(&boot) == 0 &&
		    (fs_meta_get(fs, "boot", &was) || strcmp(was, boot))) {
			/* the machine went down: fetched data was never fsync'd,
			 * so fetch it again rather than trust it */
			log_info("%s: the machine restarted since the crash: clean data will be"
				 " fetched again", cache_dir);
			rc = exec_sql(fs, "UPDATE inode SET state = state | 2 WHERE state & 1;"
					  "UPDATE content SET present = X'' WHERE ino IN"
					  " (SELECT ino FROM inode WHERE state & 1);");
		}
		free(boot);
		free(was);
		if (rc)
			return rc;
	}
	{
		char *boot = NULL;

		if (fsu_read_boot_id(&boot) == 0)
			rc = fs_meta_set(fs, "boot", boot);
		free(boot);
		if (rc)
			return rc;
	}
	v = NULL;
	fs->changed = fs_meta_get(fs, "changed", &v) == 0 && strcmp(v, "1") == 0;
	free(v);
	v = NULL;
	{
		sqlite3_stmt *s;

		if (sqlite3_prepare_v2(fs->db, "SELECT max(ino) FROM inode", -1, &s, NULL))
			return db_fail(fs, "open");
		fs->next_ino = FS_ROOT_INO + 1;
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) >= FS_ROOT_INO)
			fs->next_ino = (uint64_t)sqlite3_column_int64(s, 0) + 1;
		sqlite3_finalize(s);
	}
	rc = fs_meta_set(fs, "clean", "0");
	if (!rc)
		rc = fs_meta_commit(fs, 0);
	if (rc)
		return rc;
	{
		char *path = xasprintf("%s/meta.db-wal", cache_dir);

		fs->wal_fd = open(path, O_RDONLY | O_CLOEXEC);
		free(path);
		if (fs->wal_fd < 0)
			return err_set(-EIO, "%s/meta.db-wal: %s", cache_dir, strerror(errno));
	}
	{
		char *path = xasprintf("%s/meta.db", cache_dir);

		rc = sqlite3_open_v2(path, &fs->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				     NULL);
		free(path);
		if (rc != SQLITE_OK)
			return db_fail(fs, "open (checkpointer)");
		sqlite3_busy_timeout(fs->ckpt_db, 1000);
	}
	if (fsync(fs->cache_fd) || fsync(fs->wal_fd))
		return err_set(-EIO, "fsync %s: %s", cache_dir, strerror(errno));
	return 0;
}

int fs_reset(struct fs *fs)
{
	int rc = exec_sql(fs, "DELETE FROM inode; DELETE FROM dirent; DELETE FROM xattr; DELETE FROM content;"
			      " DELETE FROM meta WHERE key NOT IN ('version', 'clean');");

	if (rc)
		return rc;
	for (unsigned x = 0; x < 256; x++) {
		char sub[8];

		snprintf(sub, sizeof(sub), "%02x", x);
		{
			char *p = xasprintf("%s/data/%s", fs->cache_dir, sub);

			rc = fsu_rmtree(p);
			if (!rc && mkdir(p, 0700))
				rc = -errno;
			free(p);
		}
		if (rc)
			return err_set(rc, "cannot empty %s/data: %s", fs->cache_dir, strerror(-rc));
	}
	for (size_t i = 0; i < fs->table_size; i++) {
		while (fs->table[i]) {
			struct fs_inode *in = fs->table[i];

			fs->table[i] = in->hnext;
			if (in->fd >= 0)
				fs->nfds--;
			inode_free(in);
		}
	}
	fs->count = 0;
	fs->dirty = NULL;
	fs->lru_head = fs->lru_tail = NULL;
	fs->n_unlink_after = 0;
	fs->next_ino = FS_ROOT_INO + 1;
	fs->pending++;
	return 0;
}

int fs_init_root(struct fs *fs, uid_t uid, gid_t gid, mode_t mode, int ready)
{
	struct fs_inode *root = inode_alloc(FS_ROOT_INO);
	int rc;

	root->mode = S_IFDIR | (mode & 07777);
	root->uid = uid;
	root->gid = gid;
	root->nlink = 2;
	root->blocks_stale = 0;
	clock_gettime(CLOCK_REALTIME, &root->mtime);
	root->atime = root->ctime = root->mtime;
	table_insert(fs, root);
	fs_inode_dirty(fs, root);
	rc = fs_meta_set(fs, "ready", ready ? "1" : "0");
	if (!rc)
		rc = fs_meta_commit(fs, ready);
	return rc;
}

void fs_close(struct fs *fs)
{
	fs_set_agent_config(fs, NULL, NULL);
	fs_committer_stop(fs);
	if (fs->db) {
		pthread_mutex_lock(&fs->lock);
		if (fs_meta_commit(fs, 0) == 0 && fs_meta_set(fs, "clean", "1") == 0 &&
		    fs_meta_commit(fs, 1) == 0)
			log_info("metadata committed");
		else
			log_error("last commit: %s", err_msg());
		sqlite3_exec(fs->db, "COMMIT", NULL, NULL, NULL);
		for (int i = 0; i < ST_COUNT; i++)
			sqlite3_finalize(fs->st[i]);
		if (fs->ckpt_db)
			sqlite3_close(fs->ckpt_db);
		fs->ckpt_db = NULL;
		/* the last connection to close checkpoints the WAL and removes it */
		sqlite3_close(fs->db);
		fs->db = NULL;
		/* which (once the WAL's blocks are free: no fd left on it) may
		 * give the reserve its room back, for the next mount */
		if (fs->wal_fd >= 0)
			close(fs->wal_fd);
		fs->wal_fd = -1;
		if (!fs->reserve_held && reserve_take(fs) == 0)
			log_info("the metadata reserve of %s is allocated again", fs->cache_dir);
		pthread_mutex_unlock(&fs->lock);
	}
	for (size_t i = 0; i < fs->table_size; i++) {
		while (fs->table && fs->table[i]) {
			struct fs_inode *in = fs->table[i];

			fs->table[i] = in->hnext;
			inode_free(in);
		}
	}
	free(fs->table);
	free(fs->unlink_after);
	free(fs->inval);
	buf_free(&fs->redo);
	if (fs->reserve_fd >= 0)
		close(fs->reserve_fd);
	if (fs->wal_fd >= 0)
		close(fs->wal_fd);
	if (fs->data_fd >= 0)
		close(fs->data_fd);
	if (fs->cache_fd >= 0)
		close(fs->cache_fd);
	free(fs->cache_dir);
	pthread_mutex_destroy(&fs->lock);
	pthread_cond_destroy(&fs->commit_cond);
	pthread_cond_destroy(&fs->fetch_cond);
	pthread_rwlock_destroy(&fs->idx_lock);
	pthread_mutex_destroy(&fs->snap_mutex);
	pthread_mutex_destroy(&fs->notify_lock);
}
