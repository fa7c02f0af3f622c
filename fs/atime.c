/*
 * atime.c - access times as a local disk keeps them: relatime by default,
 * strictatime and noatime on request (-o).
 *
 * The kernel never moves the atime of a FUSE file itself (its inodes are
 * S_NOATIME): cairnfs moves it on the reads and directory listings that
 * reach it, and the kernel, which drops its cached atime after each read it
 * sends, shows the new one at the next stat.  The move only marks the inode
 * dirty: it is written by the next group commit, never one commit per read,
 * and on a full cache disk it is dropped, so a read never fails for it.
 *
 * A read served from the kernel's page cache never reaches cairnfs (keep_cache,
 * the writeback cache), and a file just written is in it.  So when a file
 * changes and its next read must move its atime (relatime: atime <= mtime
 * or ctime; strictatime: always), it is queued here, and the committer
 * makes the kernel drop its pages (fuse_lowlevel_notify_inval_inode) once
 * the file has had no write for INVAL_QUIET_MS: the next read comes to
 * cairnfs and moves the atime, and the reads after it are cached again.
 * Under strictatime a read that moved the atime queues the file too.
 *
 * Must stay true:
 *   - no notification is sent under fs->lock, nor from a request handler:
 *     the kernel may have to write dirty pages back (FUSE WRITEs that the
 *     workers answer under fs->lock) before it can drop them;
 *   - fs->se is used only under fs->notify_lock, and is cleared (waiting
 *     for a notification under way) before the session goes.
 */
#define FUSE_USE_VERSION 34
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "buf.h"
#include "err.h"
#include "fs.h"

/* A file's pages go once no write reached it for this long: a writer is
 * not made to write back page by page while it writes, and a file closed
 * after its writes loses only clean pages. */
#define INVAL_QUIET_MS 100

#define RELATIME_AGE (24 * 60 * 60)	/* seconds, as Linux */

static int64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000 + 1;	/* never 0 */
}

static int ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

/* Whether a read at now moves in's atime: Linux's rules, by mode.  Linux
 * tells a change since the last read by atime <= mtime or ctime; here the
 * kernel stamps a file's writes (writeback cache) with its coarse clock,
 * which can lag the daemon's create time by a tick, so a change also says
 * so itself (FS_ST_CHANGED). */
static int atime_due(const struct fs *fs, const struct fs_inode *in, const struct timespec *now)
{
	if (fs->atime == FS_NOATIME || (fs->nodiratime && S_ISDIR(in->mode)))
		return 0;
	if (in->atime.tv_sec == now->tv_sec && in->atime.tv_nsec == now->tv_nsec)
		return 0;
	if (fs->atime == FS_STRICTATIME)
		return 1;
	return (in->state & FS_ST_CHANGED) || ts_le(&in->atime, &in->mtime) ||
	       ts_le(&in->atime, &in->ctime) ||
	       (int64_t)now->tv_sec - (int64_t)in->atime.tv_sec >= RELATIME_AGE;
}

/* Queues in's pages to go in delay_ms (later if it is queued for later). */
static void inval_queue(struct fs *fs, struct fs_inode *in, int64_t delay_ms)
{
	int64_t at = mono_ms() + delay_ms;

	if (!in->inval_at) {
		if (fs->n_inval == fs->cap_inval) {
			fs->cap_inval = fs->cap_inval ? fs->cap_inval * 2 : 64;
			fs->inval = xrealloc(fs->inval, fs->cap_inval * sizeof(*fs->inval));
		}
		fs->inval[fs->n_inval++] = in->ino;
	}
	if (at > in->inval_at)
		in->inval_at = at;
}

void fs_atime_read(struct fs *fs, struct fs_inode *in)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	if (!atime_due(fs, in, &t))
		return;
	/* a read never needs room: on a full disk the atime stays */
	if (fs->disk_full || fs_meta_bound(fs, 0) || fs->disk_full) {
		err_clear();	/* a failing commit is logged by fs_meta_commit */
		return;
	}
	in->atime = t;
	in->state &= ~(uint32_t)FS_ST_CHANGED;
	fs_inode_dirty(fs, in);
	if (fs->atime == FS_STRICTATIME && S_ISREG(in->mode) && in->nlookup)
		inval_queue(fs, in, 0);
}

void fs_atime_changed(struct fs *fs, struct fs_inode *in)
{
	struct timespec t;

	in->state |= FS_ST_CHANGED;
	if (fs->atime == FS_NOATIME || !S_ISREG(in->mode) || !in->nlookup)
		return;
	clock_gettime(CLOCK_REALTIME, &t);
	if (atime_due(fs, in, &t))
		inval_queue(fs, in, INVAL_QUIET_MS);
}

void fs_atime_notify(struct fs *fs)
{
	int64_t now = mono_ms();
	size_t keep = 0, n = 0;
	uint64_t *send;

	if (!fs->n_inval)
		return;
	send = xmalloc(fs->n_inval * sizeof(*send));
	for (size_t i = 0; i < fs->n_inval; i++) {
		struct fs_inode *in = fs_inode_find(fs, fs->inval[i]);

		/* gone (the kernel forgot it, and its pages), or queued twice */
		if (!in || in->deleted || !in->inval_at)
			continue;
		if (in->inval_at > now || in->writes) {
			fs->inval[keep++] = in->ino;
			continue;
		}
		in->inval_at = 0;
		if (in->nlookup)
			send[n++] = in->ino;
	}
	fs->n_inval = keep;
	if (n) {
		pthread_mutex_unlock(&fs->lock);
		pthread_mutex_lock(&fs->notify_lock);
		/* an inode the kernel has forgotten meanwhile answers -ENOENT,
		 * a connection that is going -ENOTCONN: nothing to drop */
		for (size_t i = 0; i < n && fs->se; i++)
			fuse_lowlevel_notify_inval_inode(fs->se, (fuse_ino_t)send[i], 0, 0);
		pthread_mutex_unlock(&fs->notify_lock);
		pthread_mutex_lock(&fs->lock);
	}
	free(send);
}

void fs_atime_attach(struct fs *fs, struct fuse_session *se)
{
	pthread_mutex_lock(&fs->notify_lock);
	fs->se = se;
	pthread_mutex_unlock(&fs->notify_lock);
}

const char *fs_atime_name(const struct fs *fs)
{
	static const char *const names[2][3] = {
		{ "relatime", "strictatime", "noatime" },
		{ "relatime,nodiratime", "strictatime,nodiratime", "noatime" },
	};

	return names[fs->nodiratime ? 1 : 0][fs->atime >= 0 && fs->atime <= FS_NOATIME ? fs->atime : 0];
}
