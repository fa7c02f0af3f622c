/*
 * fs.h - cairnfs: one workspace served from its local cache.
 *
 * The cache dir holds meta.db (sqlite, WAL: inodes, directory entries,
 * xattrs) and data/<xx>/<ino> (the plaintext content of each regular file,
 * sparse where the file is).  The hot state of every inode the kernel
 * knows lives in memory (struct fs_inode); sqlite is its durable copy,
 * written in group commits (fs_meta_commit) rather than one transaction per
 * operation.  Directory entries live in sqlite only: the connection's page
 * cache serves lookups, and the kernel's entry cache (long timeouts) spares
 * most of them.
 *
 * Locking: one mutex (fs->lock) guards the inode table, every field of
 * every struct fs_inode, the fd cache, the sqlite connection and the open
 * transaction.  File data moves outside the lock, through a cache file fd
 * the request holds a reference on (fs_fd_acquire).
 */
#ifndef CAIRN_FS_H
#define CAIRN_FS_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <sqlite3.h>

#define FS_ROOT_INO 1
#define FS_META_VERSION 1

struct fs_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t size, rdev;
	struct timespec atime, mtime, ctime;
	char *target;		/* symlink target */
	uint64_t blocks;	/* 512-byte blocks of the cache file */
	unsigned blocks_stale : 1;	/* re-read blocks from the cache file */
	unsigned maybe_sparse : 1;	/* blocks may not follow from the size */
	unsigned dirty : 1;	/* the row differs from this struct */
	unsigned in_db : 1;	/* a row exists (INSERT vs UPDATE) */
	unsigned deleted : 1;	/* nlink 0 and unreferenced: row gone */
	unsigned data_new : 1;	/* cache file made since its dir was synced */
	uint64_t nlookup;	/* the kernel's references (lookup/forget) */
	int fd;			/* the cache file while in the fd cache, else -1 */
	unsigned fd_refs;	/* open handles and requests using fd */
	struct fs_inode *lru_prev, *lru_next;	/* fd cache, while fd_refs is 0 */
	uint64_t next_cookie;	/* directories: next readdir cookie, 0 unknown */
	struct fs_inode *hnext;	/* hash chain */
	struct fs_inode *dnext;	/* dirty list */
};

struct fs {
	char *cache_dir;
	int cache_fd;		/* the cache dir */
	int data_fd;		/* cache_dir/data */
	pthread_mutex_t lock;
	sqlite3 *db;
	sqlite3 *ckpt_db;	/* the committer's own, for WAL checkpoints */
	int wal_fd;		/* meta.db-wal, fsync'd for a durable commit */
	sqlite3_stmt *st[32];	/* prepared statements, see meta.c */
	struct fs_inode **table;
	size_t table_size, count;
	struct fs_inode *dirty;	/* inodes to write at the next commit */
	/* the fd cache: at most max_fds cache files open; the unused ones in
	 * LRU order (lru_head most recent), closed from the tail */
	struct fs_inode *lru_head, *lru_tail;
	unsigned nfds, max_fds;
	uint64_t next_ino;
	uint64_t pending;	/* changes since the last commit */
	uint64_t *unlink_after;	/* cache files to remove once committed */
	size_t n_unlink_after, cap_unlink_after;
	/* group commit thread */
	pthread_t committer;
	pthread_cond_t commit_cond;
	int stopping;
	int committer_running;
	double entry_timeout;
	int no_opendir;		/* the kernel opens directories without us */
	int no_open;		/* and files */
};

/* ---- meta.c: the sqlite copy ---- */

/* Opens (creating if missing) meta.db in cache_dir and fs->data_fd, locks
 * the cache dir against a second cairnfs, starts the open transaction.
 * *ready: the cache holds a complete tree (0: new or interrupted first fill).
 * Returns 0 or a negative code with the error set. */
int fs_open(struct fs *fs, const char *cache_dir, int *ready);
/* Last commit (durable), stops the committer, closes everything. */
void fs_close(struct fs *fs);
/* Throws away an incomplete cache: every row and every data file. */
int fs_reset(struct fs *fs);
/* Makes the empty root directory; ready: mark the cache ready (durably). */
int fs_init_root(struct fs *fs, uid_t uid, gid_t gid, mode_t mode, int ready);

/* A meta key of the cache ("workspace", "base", "ready").  Caller holds lock. */
int fs_meta_get(struct fs *fs, const char *key, char **value);
int fs_meta_set(struct fs *fs, const char *key, const char *value);

/* Writes every dirty inode and commits.  durable: the commit is on disk
 * (the WAL fsync'd) before it returns.  Caller holds fs->lock. */
int fs_meta_commit(struct fs *fs, int durable);
/* Starts the thread that commits every 50 ms while changes are pending. */
int fs_committer_start(struct fs *fs);
void fs_committer_stop(struct fs *fs);

/* Inode table (caller holds lock). */
struct fs_inode *fs_inode_get(struct fs *fs, uint64_t ino, int *err);
struct fs_inode *fs_inode_new(struct fs *fs, mode_t mode, uid_t uid, gid_t gid, dev_t rdev);
void fs_inode_dirty(struct fs *fs, struct fs_inode *in);
/* Drops the inode when nothing refers to it any more; removes its row and
 * (after the commit) its cache file once nlink is 0. */
void fs_inode_maybe_drop(struct fs *fs, struct fs_inode *in);
void fs_inode_stat(struct fs *fs, struct fs_inode *in, struct stat *st);

/* Directory entries (caller holds lock); names are bytes, no NUL inside. */
int fs_dirent_lookup(struct fs *fs, uint64_t parent, const char *name, uint64_t *ino);
int fs_dirent_add(struct fs *fs, struct fs_inode *dir, const char *name, uint64_t ino, mode_t mode);
int fs_dirent_remove(struct fs *fs, uint64_t parent, const char *name);
int fs_dirent_set_ino(struct fs *fs, uint64_t parent, const char *name, uint64_t ino, mode_t mode);
int fs_dir_is_empty(struct fs *fs, uint64_t dir);
/* Calls fn for each entry of dir with cookie > after, in cookie order, until
 * fn returns non-zero.  Returns 0 or a negative code. */
typedef int (*fs_dirent_fn)(void *arg, const char *name, uint64_t ino, mode_t type, uint64_t cookie);
int fs_dirent_foreach(struct fs *fs, uint64_t dir, uint64_t after, fs_dirent_fn fn, void *arg);

/* xattrs (caller holds lock). */
int fs_xattr_get(struct fs *fs, uint64_t ino, const char *name, void **value, size_t *len);
int fs_xattr_set(struct fs *fs, uint64_t ino, const char *name, const void *value, size_t len, int flags);
int fs_xattr_remove(struct fs *fs, uint64_t ino, const char *name);
int fs_xattr_list(struct fs *fs, uint64_t ino, char **names, size_t *len);

/* Takes a reference on in's cache file, opening it (creating it when
 * create) through the fd cache; returns the fd or a negative code.
 * fs_fd_release drops the reference.  Caller holds lock. */
int fs_fd_acquire(struct fs *fs, struct fs_inode *in, int create);
void fs_fd_release(struct fs *fs, struct fs_inode *in);

/* The cache file of ino: "xx/<ino>" relative to fs->data_fd, in out. */
void fs_data_name(uint64_t ino, char out[40]);
/* Opens the cache file of in (creating it with O_CREAT); a new fd. */
int fs_data_open(struct fs *fs, struct fs_inode *in, int create);

/* ---- import.c: filling an empty cache ---- */

struct repo;
/* Restores the workspace's head snapshot into the cache (a full download)
 * and marks the cache ready with it as base; a workspace without a snapshot
 * starts empty.  Returns 0 or a negative code with the error set. */
int fs_fill_from_store(struct fs *fs, struct repo *r);

/* ---- ops.c ---- */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops fs_ops;

#endif
