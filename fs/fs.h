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
 * the request holds a reference on (fs_fd_acquire).  fs->notify_lock
 * guards only the session the kernel is notified through (atime.c).
 */
#ifndef CAIRN_FS_H
#define CAIRN_FS_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "buf.h"

struct fuse_session;

#define FS_ROOT_INO 1
#define FS_META_VERSION 2

/* When a read moves atime (-o relatime, strictatime, noatime) */
enum fs_atime { FS_RELATIME = 0, FS_STRICTATIME, FS_NOATIME };

/* inode.state bits of a regular file (FS_ST_CHANGED: of any inode) */
#define FS_ST_CLEAN 1	/* its content row (the blobs of the last snapshot
			 * that holds it) is its data: nothing to upload */
#define FS_ST_PARTIAL 2	/* some of its data is not in the cache file yet:
			 * reads fetch it (lazy restore, eviction) */
#define FS_ST_CHANGED 4	/* (any inode) changed since a read last moved its
			 * atime: relatime moves it at the next (atime.c) */

/* The content row of a file, in memory while it has data to fetch. */
struct fs_content {
	size_t n;			/* chunks */
	uint8_t (*ids)[32];		/* blob ids */
	uint64_t *off;			/* n + 1 offsets: chunk i is [off[i], off[i+1]) */
	uint8_t *present;		/* n: 0 absent, 1 being fetched, 2 local */
	size_t missing;			/* chunks not local */
};

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
	unsigned snap_armed : 1;	/* a live snapshot is reading it (wmin) */
	uint32_t state;		/* FS_ST_* */
	uint64_t dgen;		/* data generation: bumped by every change of data */
	int64_t used;		/* last read (seconds), for eviction */
	uint64_t wmin;		/* while snap_armed: lowest offset changed */
	uint64_t snap_size;	/* while snap_armed: the size being read */
	unsigned writes;	/* writes between their start and their end */
	struct fs_content *content;	/* loaded while FS_ST_PARTIAL */
	uint64_t nlookup;	/* the kernel's references (lookup/forget) */
	int fd;			/* the cache file while in the fd cache, else -1 */
	unsigned fd_refs;	/* open handles and requests using fd */
	struct fs_inode *lru_prev, *lru_next;	/* fd cache, while fd_refs is 0 */
	uint64_t next_cookie;	/* directories: next readdir cookie, 0 unknown */
	int64_t inval_at;	/* queued in fs->inval: when (monotonic ms) the
				 * kernel's pages of the file go; 0 not queued */
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
	/* the open transaction and a full cache disk (meta.c), under lock */
	struct buf redo;	/* its statements, as SQL, each NUL-terminated */
	size_t redo_n;
	uint64_t txn_bytes;	/* what its commit will write, estimated */
	uint64_t txn_max;	/* an operation that adds metadata commits first past this */
	int reserve_fd;		/* cache_dir/meta.reserve */
	uint64_t reserve_size;
	int reserve_held;	/* its blocks are allocated */
	int disk_full;		/* what needs space gets ENOSPC (see meta.c) */
	int64_t full_since;	/* when disk_full was set (seconds) */
	int commit_failing;	/* the last commit did not land (logged once) */
	int64_t commit_retry;	/* while it fails: the next try (seconds) */
	uint64_t enospc;	/* operations refused for a full disk */
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
	int writeback;		/* the kernel's writeback cache: it keeps the
				 * times of written files and sends them */
	/* access times (atime.c) */
	int atime;		/* enum fs_atime; set before the mount */
	int nodiratime;		/* directories keep theirs */
	uint64_t *inval;	/* files whose kernel pages are to go (lock) */
	size_t n_inval, cap_inval;
	pthread_mutex_t notify_lock;	/* guards se; held while notifying */
	struct fuse_session *se;	/* while mounted, for notifications */

	/* lazy data (lazy.c): the store and the index reads fetch from */
	struct repo *repo;
	struct index *idx;		/* swapped by a snapshot under idx_lock */
	pthread_rwlock_t idx_lock;
	pthread_cond_t fetch_cond;	/* a chunk fetch ended (with lock) */
	unsigned fg_fetches;		/* reads waiting on the store (atomic) */
	uint64_t fetch_errors;		/* (atomic) */
	uint64_t fetched_bytes;		/* (atomic) */
	pid_t snap_tid;			/* the thread of a live snapshot's flushes:
					 * its fsyncs only write back (atomic) */
	int changed;			/* local changes since the base snapshot */
	uint64_t change_seq;		/* bumped by every change (with lock) */
	/* the prefetcher (lazy.c) and the evictor */
	pthread_t prefetcher;
	int prefetch;			/* 0 off, 1 background, 2 full speed */
	int prefetcher_running;
	uint64_t cache_limit;		/* bytes; 0: the disk */
	uint64_t cache_used;		/* bytes of local data, estimated (lock) */
	/* the live snapshot (snap.c) */
	pthread_mutex_t snap_mutex;	/* one snapshot at a time */
	int snapshotting;		/* (lock) */
	char *mountpoint;
	double last_pause_ms;		/* the last snapshot's metadata pause */
	uint64_t snapshots, snapshot_failures;	/* since the mount (lock) */
	/* the agent config cairnd registered (ctl "agent-config"), for the
	 * snapshots cairnfs takes by itself (the final one); under lock */
	char **acfg, **acfg_exclude;	/* NULL-terminated, or NULL */
	int unmounted;			/* the stop is under way (lock) */
	/* the control socket (ctl.c) */
	char *ws_id;
	char *ctl_path;
	int ctl_fd, ctl_wake[2];
	pthread_t ctl_thread;
	int ctl_running;
	unsigned ctl_active;		/* connections being served (lock) */
};

/* ---- meta.c: the sqlite copy ---- */

/* Opens (creating if missing) meta.db in cache_dir and fs->data_fd, locks
 * the cache dir against a second cairnfs, starts the open transaction.
 * *ready: the cache holds a complete tree (0: new or interrupted first fill).
 * Returns 0 or a negative code with the error set. */
int fs_open(struct fs *fs, const char *cache_dir, int *ready);
/* Last commit (durable), stops the committer, closes everything. */
void fs_close(struct fs *fs);
/* Marks a local change (caller holds lock): the cache differs from its
 * base snapshot. */
void fs_changed(struct fs *fs);
/* Stores the content row of a regular file (caller holds lock).  ids and
 * sizes: n chunks; present: NULL when all local, else a bitmap (bit i set:
 * chunk i is local), nbytes long.  Returns 0 or a negative code. */
int fs_content_put(struct fs *fs, uint64_t ino, const uint8_t (*ids)[32], const uint32_t *sizes,
		   size_t n, const uint8_t *present, size_t nbytes);
/* Loads the content row into in->content (caller holds lock). */
int fs_content_load(struct fs *fs, struct fs_inode *in);
void fs_content_free(struct fs_content *c);
/* Saves which chunks of in are local (caller holds lock). */
int fs_content_save_present(struct fs *fs, struct fs_inode *in);
/* The blobs of the content row of ino, for a snapshot (caller holds lock):
 * *ids (n x 32 bytes, malloc'd) and *size.  -ENOENT when there is none. */
int fs_content_blobs(struct fs *fs, uint64_t ino, uint8_t (**ids)[32], size_t *n, uint64_t *size);

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
/* Before an operation that adds about bytes of metadata (caller holds
 * lock, nothing changed yet): -ENOSPC while the cache disk is full;
 * commits first when the open transaction would pass fs->txn_max, so that
 * every commit fits in the reserve.  0 or a negative code. */
int fs_meta_room(struct fs *fs, size_t bytes);
/* The same without the refusal, for the daemon's own batches of rows (a
 * snapshot marking files clean): commits first past fs->txn_max. */
int fs_meta_bound(struct fs *fs, size_t bytes);
/* The cache disk is full (caller holds lock): what found it says so in
 * what (a log line).  What needs space gets ENOSPC until the committer
 * finds room again. */
void fs_disk_full(struct fs *fs, const char *what);
/* -ENOSPC for an operation that needs space on a full disk, counted. */
int fs_disk_refuse(struct fs *fs);
/* Starts the thread that commits every 50 ms while changes are pending. */
int fs_committer_start(struct fs *fs);
void fs_committer_stop(struct fs *fs);

/* Inode table (caller holds lock). */
struct fs_inode *fs_inode_get(struct fs *fs, uint64_t ino, int *err);
/* The inode if it is in memory (deleted ones too), without loading it. */
struct fs_inode *fs_inode_find(struct fs *fs, uint64_t ino);
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
/* Closes in's cache file if no one holds it (before it is removed). */
void fs_fd_forget(struct fs *fs, struct fs_inode *in);

/* The cache file of ino: "xx/<ino>" relative to fs->data_fd, in out. */
void fs_data_name(uint64_t ino, char out[40]);
/* Opens the cache file of in (creating it with O_CREAT); a new fd. */
int fs_data_open(struct fs *fs, struct fs_inode *in, int create);

/* ---- atime.c: access times as a local disk keeps them ---- */

/* A read (or a directory listing) cairnfs serves: moves in's atime as
 * fs->atime says; on a full cache disk the move is dropped.  Caller holds
 * lock. */
void fs_atime_read(struct fs *fs, struct fs_inode *in);
/* in changed (data, times, mode, links): when the next read of it must
 * move its atime, the kernel is made to drop its cached pages of the file
 * once the file has been quiet a moment, so that read comes to cairnfs.
 * Caller holds lock. */
void fs_atime_changed(struct fs *fs, struct fs_inode *in);
/* The committer's part: tells the kernel which files' pages go.  Called
 * with lock held; drops it while notifying. */
void fs_atime_notify(struct fs *fs);
/* Notifications go to se from now on (NULL: no more; waits for one under
 * way).  Caller holds no lock of fs. */
void fs_atime_attach(struct fs *fs, struct fuse_session *se);
/* The mode's name, as the -o option says it ("relatime", "noatime"...). */
const char *fs_atime_name(const struct fs *fs);

/* ---- import.c: filling an empty cache ---- */

struct repo;
struct index;
/* Makes the cache the tree of snapshot snap_id (NULL: the head; a
 * workspace without a snapshot starts empty), lazily: every inode, entry
 * and xattr, and each file's chunk list, but no file data.  Marks the
 * cache ready with the snapshot as its base.  Returns 0 or a negative
 * code with the error set. */
int fs_fill_from_store(struct fs *fs, struct repo *r, struct index *idx, const char *snap_id);

/* ---- lazy.c: data on first read, the prefetcher, eviction ---- */

/* Makes bytes [off, off+len) of in local, fetching the chunks that cover
 * them (all of the file when len is UINT64_MAX).  background: the
 * prefetcher, which yields to reads.  Called without the lock; in must be
 * held (a request's or an fd reference).  Returns 0, or -EIO with the
 * object named in the log. */
int fs_lazy_ensure(struct fs *fs, struct fs_inode *in, uint64_t off, uint64_t len, int background);
/* Starts and stops the prefetch/evict thread. */
int fs_lazy_start(struct fs *fs);
void fs_lazy_stop(struct fs *fs);
/* Figures for status (takes the lock). */
struct fs_usage {
	uint64_t files, bytes;		/* regular files */
	uint64_t local_files, local_bytes;	/* whole in the cache */
	uint64_t dirty_files, dirty_bytes;
};
int fs_usage_get(struct fs *fs, struct fs_usage *u);
/* Frees room for want bytes when a cache limit is set: evicts clean data,
 * least recently used first.  Caller holds lock.  -ENOSPC when that is not
 * enough. */
int fs_cache_reserve(struct fs *fs, uint64_t want);

/* ---- snap.c: a snapshot of the live mount ---- */

struct fs_snap_opts {
	const char *const *agent_config;	/* paths: the agent-config root; NULL: the parent's */
	size_t n_agent_config;
	const char *const *agent_exclude;	/* patterns (snapshot.h) */
	size_t n_agent_exclude;
	const char *const *tags;
	size_t ntags;
	int no_head;		/* keep-local-as-snapshot: parent = base, head untouched */
	int if_changed;		/* commit nothing when both roots are the parent's */
};
struct fs_snap_result {
	char id[33];
	uint64_t generation;
	uint64_t files_read, bytes_read;	/* dirty files read */
	uint64_t new_bytes, stored_bytes;
	uint64_t retaken, left_dirty;		/* changed while read */
	double pause_ms, duration_ms;
	int unchanged;				/* if_changed, and nothing was */
};
/* Takes a snapshot of the cache: dirty files are read and chunked, every
 * directory becomes a tree (unchanged ones dedup to blobs the store has),
 * head last.  Writers wait only for the metadata commit that opens the
 * view.  Returns 0 or a negative code with the error set. */
int fs_snapshot(struct fs *fs, const struct fs_snap_opts *o, struct fs_snap_result *res);
/* The stop's part, once the mount is gone: a durable commit of the
 * metadata, then a snapshot of what changed since the last one, with the
 * agent config cairnd registered (nothing when nothing changed).  Every
 * outcome is logged; the cache keeps whatever could not be saved.  0 when
 * everything is in a snapshot, else a negative code. */
int fs_final_snapshot(struct fs *fs);
/* Sets the agent config (NULL-terminated lists, copied; NULL for none). */
void fs_set_agent_config(struct fs *fs, const char *const *paths, const char *const *exclude);

/* ---- ctl.c: the control socket ---- */

/* The socket of workspace ws_id: $CAIRN_RUN_DIR/<ws_id>.sock, by default
 * /run/cairn for root and $XDG_RUNTIME_DIR/cairn (or /tmp/cairn-UID) for
 * another user; malloc'd. */
/* One control-socket request, parsed (the op, and a snapshot's options,
 * which point into json). */
enum fs_ctl_op { FS_CTL_STATUS = 1, FS_CTL_SNAPSHOT, FS_CTL_HYDRATE, FS_CTL_ACTIVITY,
		 FS_CTL_AGENT_CONFIG };
struct fs_ctl_req {
	enum fs_ctl_op op;
	const char **agent_config, **agent_exclude, **tags;
	size_t n_agent_config, n_agent_exclude, ntags;
	struct json_t *json;	/* jansson's json_t */
};
/* Parses one request line (a JSON object with "op").  0, or -EINVAL with
 * the reason the client gets; free with fs_ctl_req_free either way. */
int fs_ctl_parse(const char *line, size_t len, struct fs_ctl_req *out);
void fs_ctl_req_free(struct fs_ctl_req *r);

char *fs_ctl_path(const char *ws_id);
int fs_ctl_start(struct fs *fs, const char *ws_id);
void fs_ctl_stop(struct fs *fs);

/* ---- ops.c ---- */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops fs_ops;

#endif
