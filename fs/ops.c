/*
 * ops.c - cairnfs's low-level FUSE operations, in the idiom of libfuse's
 * passthrough_ll.c: every operation replies exactly once on every path,
 * errors become negative errno only here, at the FUSE edge.
 *
 * Metadata operations run under fs->lock (fs.h).  read and write move data
 * between the kernel and the inode's cache file without the lock, through
 * an fd of the fd cache that the request (or the open handle, fi->fh, for
 * files made by create) holds a reference on.  Where the kernel can do
 * without them, cairnfs answers OPEN, OPENDIR and FLUSH with ENOSYS once:
 * the kernel then stops sending them, and reading a file costs a lookup and
 * its reads, not five round trips.
 */
#define FUSE_USE_VERSION 34
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "buf.h"
#include "err.h"
#include "fs.h"
#include "fsutil.h"
#include "log.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define FS_NAME_MAX 255
#define FS_XATTR_VALUE_MAX 65536

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fs_inode *handle_inode(const struct fuse_file_info *fi)
{
	return (struct fs_inode *)(uintptr_t)fi->fh;
}

static void now(struct timespec *t)
{
	clock_gettime(CLOCK_REALTIME, t);
}

/* An inode changed by an operation: written at the next commit, and the
 * cache now differs from its base snapshot. */
static void mark(struct fs *fs, struct fs_inode *in)
{
	fs_inode_dirty(fs, in);
	fs_changed(fs);
	fs_atime_changed(fs, in);
}

/* The data of in changed from offset from on (caller holds lock): it is
 * dirty, and a snapshot reading it learns so. */
static void data_changed(struct fs *fs, struct fs_inode *in, uint64_t from)
{
	in->dgen++;
	in->state &= ~(uint32_t)FS_ST_CLEAN;
	if (in->snap_armed && from < in->wmin)
		in->wmin = from;
	mark(fs, in);
}

/* Before the data of ino changes: all of it local (a lazy file is fetched
 * whole first).  Called without the lock. */
static int hydrate_for_change(struct fs *fs, fuse_ino_t ino)
{
	struct fs_inode *in;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	in = fs_inode_get(fs, ino, &rc);
	if (in && (in->state & FS_ST_PARTIAL)) {
		in->nlookup++;
		pthread_mutex_unlock(&fs->lock);
		rc = fs_lazy_ensure(fs, in, 0, UINT64_MAX, 0);
		err_clear();	/* logged by fs_lazy_ensure */
		pthread_mutex_lock(&fs->lock);
		in->nlookup--;
		fs_inode_maybe_drop(fs, in);
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

static void touch_dir(struct fs *fs, struct fs_inode *dir)
{
	now(&dir->mtime);
	dir->ctime = dir->mtime;
	mark(fs, dir);
}

static void fill_entry(struct fs *fs, struct fs_inode *in, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = in->ino;
	e->generation = 1;
	fs_inode_stat(fs, in, &e->attr);
	e->attr_timeout = fs->entry_timeout;
	e->entry_timeout = fs->entry_timeout;
}

/* A write to the cache disk found it full: the metadata gets the reserve. */
static void disk_full_found(struct fs *fs, const char *what)
{
	pthread_mutex_lock(&fs->lock);
	fs_disk_full(fs, what);
	pthread_mutex_unlock(&fs->lock);
}

static void reply_sqlite_err(fuse_req_t req, int rc)
{
	if (rc == -EIO && err_msg()[0])
		log_error("%s", err_msg());
	fuse_reply_err(req, -rc);
}

/* ---- lookups and attributes ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	/* no OPENDIR/RELEASEDIR round trips: the kernel then opens every
	 * directory as if told keep_cache and cache_readdir, which is right for
	 * a filesystem whose every change passes through the kernel */
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
		fs->no_opendir = 1;
	}
	/* the same for files: the fd cache serves reads and writes, and the
	 * kernel opens as if told keep_cache */
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		fs->no_open = 1;
	}
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		fs->writeback = 1;
	}
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want |= FUSE_CAP_SPLICE_READ;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* cairnfs is the only writer: an attribute refresh never means the
	 * data changed behind the kernel's back */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* O_TRUNC as a SETATTR of the size: with atomic_o_trunc the kernel
	 * would leave it to an OPEN that, without OPEN, never comes */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* locks stay in the kernel, local to this VM */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct fs_inode *in;
	uint64_t ino;
	int rc;

	if (strlen(name) > FS_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = fs_dirent_lookup(fs, parent, name, &ino);
	if (rc == -ENOENT) {
		pthread_mutex_unlock(&fs->lock);
		/* a negative entry the kernel may keep as long as a positive one */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->entry_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	in = rc ? NULL : fs_inode_get(fs, ino, &rc);
	if (in) {
		in->nlookup++;
		fill_entry(fs, in, &e);
	}
	pthread_mutex_unlock(&fs->lock);
	if (in)
		fuse_reply_entry(req, &e);
	else
		reply_sqlite_err(req, rc);
}

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t n)
{
	int rc;
	struct fs_inode *in = fs_inode_get(fs, ino, &rc);

	if (!in)
		return;
	in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
	fs_inode_maybe_drop(fs, in);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = req_fs(req);

	pthread_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = req_fs(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *in;
	struct stat st;
	int rc;

	(void)fi;
	pthread_mutex_lock(&fs->lock);
	in = fs_inode_get(fs, ino, &rc);
	if (in)
		fs_inode_stat(fs, in, &st);
	pthread_mutex_unlock(&fs->lock);
	if (in)
		fuse_reply_attr(req, &st, fs->entry_timeout);
	else
		reply_sqlite_err(req, rc);
}

/* Sets the size of in's cache file (and in->size); caller holds the lock. */
static int set_size(struct fs *fs, struct fs_inode *in, uint64_t size)
{
	int fd, rc = 0;

	if (in->state & FS_ST_PARTIAL) {
		if (size != 0)
			return -EIO;	/* hydrate_for_change comes first */
		/* fetches under way write into the file and its chunk list */
		for (;;) {
			int busy = 0;

			for (size_t i = 0; in->content && i < in->content->n; i++)
				busy |= in->content->present[i] == 1;
			if (!busy)
				break;
			pthread_cond_wait(&fs->fetch_cond, &fs->lock);
		}
		if (!(in->state & FS_ST_PARTIAL))
			goto whole;
		/* nothing of the old data is wanted: no need to fetch it */
		in->state &= ~(uint32_t)FS_ST_PARTIAL;
		fs_content_free(in->content);
		in->content = NULL;
		if (fs_content_save_present(fs, in))
			log_error("%s", err_msg());
	}
whole:
	fd = fs_fd_acquire(fs, in, size > 0);

	if (fd == -ENOENT && size == 0)
		goto done;	/* no cache file yet: nothing to cut */
	if (fd < 0)
		return fd;
	if (ftruncate(fd, (off_t)size))
		rc = -errno;
	fs_fd_release(fs, in);
	if (rc)
		return rc;
done:
	if (size > in->size)
		in->maybe_sparse = 1;
	in->size = size;
	in->blocks_stale = 1;
	return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *in;
	struct timespec t;
	struct stat st;
	int rc = 0;

	(void)fi;
	now(&t);
	if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != 0 &&
	    (rc = hydrate_for_change(fs, ino)) != 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = fs_inode_get(fs, ino, &rc);
	if (!in)
		goto out;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		uint64_t from = (uint64_t)attr->st_size < in->size ? (uint64_t)attr->st_size : in->size;

		if (!S_ISREG(in->mode)) {
			rc = S_ISDIR(in->mode) ? -EISDIR : -EINVAL;
			goto out;
		}
		if ((uint64_t)attr->st_size > in->size)
			rc = fs_cache_reserve(fs, (uint64_t)attr->st_size - in->size);
		if (!rc)
			rc = set_size(fs, in, (uint64_t)attr->st_size);
		if (rc)
			goto out;
		data_changed(fs, in, from);
		in->mtime = t;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		in->mode = (in->mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		in->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		in->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		in->atime = t;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		in->atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		in->mtime = t;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		in->mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_CTIME)
		in->ctime = attr->st_ctim;
	else
		in->ctime = t;
	mark(fs, in);
	fs_inode_stat(fs, in, &st);
out:
	pthread_mutex_unlock(&fs->lock);
	if (in && !rc)
		fuse_reply_attr(req, &st, fs->entry_timeout);
	else
		reply_sqlite_err(req, rc);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *in;
	char *target = NULL;
	int rc;

	pthread_mutex_lock(&fs->lock);
	in = fs_inode_get(fs, ino, &rc);
	if (in && in->target)
		target = xstrdup(in->target);
	else if (in)
		rc = -EINVAL;
	pthread_mutex_unlock(&fs->lock);
	if (target)
		fuse_reply_readlink(req, target);
	else
		reply_sqlite_err(req, rc);
	free(target);
}

/* ---- making and removing names ---- */

/* Makes a node named name in parent for the caller of req; on success
 * returns it with one lookup reference taken.  Caller holds the lock. */
static struct fs_inode *make_node(fuse_req_t req, struct fs *fs, fuse_ino_t parent,
				  const char *name, mode_t mode, dev_t rdev, const char *target,
				  int *err)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_inode *dir, *in;
	uint64_t ino;
	gid_t gid = ctx->gid;
	int rc;

	if (strlen(name) > FS_NAME_MAX)
		return *err = -ENAMETOOLONG, NULL;
	dir = fs_inode_get(fs, parent, err);
	if (!dir)
		return NULL;
	if (!S_ISDIR(dir->mode))
		return *err = -ENOTDIR, NULL;
	rc = fs_dirent_lookup(fs, parent, name, &ino);
	if (rc != -ENOENT)
		return *err = rc ? rc : -EEXIST, NULL;
	rc = fs_meta_room(fs, strlen(name) + (target ? strlen(target) : 0));
	if (rc)
		return *err = rc, NULL;
	if (dir->mode & S_ISGID) {
		/* BSD group semantics of setgid directories, as on a local disk */
		gid = dir->gid;
		if (S_ISDIR(mode))
			mode |= S_ISGID;
	}
	in = fs_inode_new(fs, mode, ctx->uid, gid, rdev);
	in->nlink = S_ISDIR(mode) ? 2 : 1;
	if (target)
		in->target = xstrdup(target), in->size = strlen(target);
	rc = fs_dirent_add(fs, dir, name, in->ino, mode);
	if (rc) {
		in->nlink = 0;
		fs_inode_maybe_drop(fs, in);
		return *err = rc, NULL;
	}
	if (S_ISDIR(mode))
		dir->nlink++;
	touch_dir(fs, dir);
	in->nlookup++;
	return in;
}

static void reply_new_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			   dev_t rdev, const char *target)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct fs_inode *in;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	in = make_node(req, fs, parent, name, mode, rdev, target, &rc);
	if (in)
		fill_entry(fs, in, &e);
	pthread_mutex_unlock(&fs->lock);
	if (in)
		fuse_reply_entry(req, &e);
	else
		reply_sqlite_err(req, rc);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) &&
	    !S_ISBLK(mode)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	reply_new_node(req, parent, name, mode, S_ISCHR(mode) || S_ISBLK(mode) ? rdev : 0, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	reply_new_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (strlen(link) > 4095) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	reply_new_node(req, parent, name, S_IFLNK | 0777, 0, link);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct fs_inode *in, *dir = NULL;
	uint64_t other;
	int rc = 0;

	if (strlen(newname) > FS_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = fs_inode_get(fs, ino, &rc);
	if (in)
		dir = fs_inode_get(fs, newparent, &rc);
	if (!in || !dir)
		goto out;
	if (S_ISDIR(in->mode)) {
		rc = -EPERM;
		goto out;
	}
	rc = fs_dirent_lookup(fs, newparent, newname, &other);
	if (rc != -ENOENT) {
		rc = rc ? rc : -EEXIST;
		goto out;
	}
	rc = fs_meta_room(fs, strlen(newname));
	if (!rc)
		rc = fs_dirent_add(fs, dir, newname, in->ino, in->mode);
	if (rc)
		goto out;
	in->nlink++;
	now(&in->ctime);
	mark(fs, in);
	touch_dir(fs, dir);
	in->nlookup++;
	fill_entry(fs, in, &e);
out:
	pthread_mutex_unlock(&fs->lock);
	if (!rc)
		fuse_reply_entry(req, &e);
	else
		reply_sqlite_err(req, rc);
}

/* Takes name out of dir: the entry, a link of its inode, and (for a
 * directory) dir's ".." link.  Caller holds the lock. */
static int drop_name(struct fs *fs, struct fs_inode *dir, const char *name, struct fs_inode *in)
{
	int rc = fs_dirent_remove(fs, dir->ino, name);

	if (rc)
		return rc;
	if (S_ISDIR(in->mode)) {
		in->nlink = 0;
		dir->nlink--;
	} else if (in->nlink > 0) {
		in->nlink--;
	}
	now(&in->ctime);
	mark(fs, in);
	touch_dir(fs, dir);
	return 0;
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, int is_rmdir)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *dir, *in = NULL;
	uint64_t ino;
	int rc;

	pthread_mutex_lock(&fs->lock);
	dir = fs_inode_get(fs, parent, &rc);
	if (dir)
		rc = fs_dirent_lookup(fs, parent, name, &ino);
	if (dir && !rc)
		in = fs_inode_get(fs, ino, &rc);
	if (!in)
		goto out;
	if (is_rmdir && !S_ISDIR(in->mode))
		rc = -ENOTDIR;
	else if (!is_rmdir && S_ISDIR(in->mode))
		rc = -EISDIR;
	else if (is_rmdir && (rc = fs_dir_is_empty(fs, in->ino)) <= 0)
		rc = rc ? rc : -ENOTEMPTY;
	else
		rc = drop_name(fs, dir, name, in);
	if (!rc)
		fs_inode_maybe_drop(fs, in);
out:
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		reply_sqlite_err(req, rc);
	else
		fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, 1);
}

static int rename_exchange(struct fs *fs, struct fs_inode *d1, const char *n1, struct fs_inode *a,
			   struct fs_inode *d2, const char *n2, struct fs_inode *b)
{
	int rc = fs_dirent_set_ino(fs, d1->ino, n1, b->ino, b->mode);

	if (!rc)
		rc = fs_dirent_set_ino(fs, d2->ino, n2, a->ino, a->mode);
	if (rc)
		return rc;
	if (d1 != d2 && S_ISDIR(a->mode) != S_ISDIR(b->mode)) {
		struct fs_inode *gains = S_ISDIR(a->mode) ? d2 : d1;
		struct fs_inode *loses = S_ISDIR(a->mode) ? d1 : d2;

		gains->nlink++;
		loses->nlink--;
	}
	now(&a->ctime);
	b->ctime = a->ctime;
	mark(fs, a);
	mark(fs, b);
	touch_dir(fs, d1);
	touch_dir(fs, d2);
	return 0;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *d1, *d2 = NULL, *src = NULL, *dst = NULL;
	uint64_t sino, dino;
	int rc, have_dst;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE) ||
	    (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (strlen(newname) > FS_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	d1 = fs_inode_get(fs, parent, &rc);
	if (d1)
		d2 = fs_inode_get(fs, newparent, &rc);
	if (d2)
		rc = fs_dirent_lookup(fs, parent, name, &sino);
	if (d2 && !rc)
		src = fs_inode_get(fs, sino, &rc);
	if (!src)
		goto out;
	rc = fs_dirent_lookup(fs, newparent, newname, &dino);
	if (rc && rc != -ENOENT)
		goto out;
	have_dst = rc == 0;
	rc = 0;
	if (have_dst && !(dst = fs_inode_get(fs, dino, &rc)))
		goto out;
	if (flags & RENAME_EXCHANGE) {
		rc = dst ? rename_exchange(fs, d1, name, src, d2, newname, dst) : -ENOENT;
		goto out;
	}
	if (dst && flags & RENAME_NOREPLACE) {
		rc = -EEXIST;
		goto out;
	}
	if (dst == src)
		goto out;	/* two names of one inode: POSIX says do nothing */
	if (dst) {
		if (S_ISDIR(src->mode) && !S_ISDIR(dst->mode))
			rc = -ENOTDIR;
		else if (!S_ISDIR(src->mode) && S_ISDIR(dst->mode))
			rc = -EISDIR;
		else if (S_ISDIR(dst->mode) && (rc = fs_dir_is_empty(fs, dst->ino)) <= 0)
			rc = rc ? rc : -ENOTEMPTY;
		else
			rc = drop_name(fs, d2, newname, dst);
		if (rc)
			goto out;
	}
	rc = fs_dirent_remove(fs, d1->ino, name);
	if (!rc)
		rc = fs_dirent_add(fs, d2, newname, src->ino, src->mode);
	if (rc)
		goto out;
	if (S_ISDIR(src->mode) && d1 != d2) {
		d1->nlink--;
		d2->nlink++;
	}
	now(&src->ctime);
	mark(fs, src);
	touch_dir(fs, d1);
	if (d2 != d1)
		touch_dir(fs, d2);
	if (dst)
		fs_inode_maybe_drop(fs, dst);
out:
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		reply_sqlite_err(req, rc);
	else
		fuse_reply_err(req, 0);
}

/* ---- files ---- */

/* Opens in's cache file for a handle; caller holds the lock. */
static int open_inode(struct fs *fs, struct fs_inode *in, struct fuse_file_info *fi)
{
	int fd;

	if (!S_ISREG(in->mode))
		return S_ISDIR(in->mode) ? -EISDIR : -EINVAL;
	fd = fs_fd_acquire(fs, in, 1);
	if (fd < 0) {
		log_error("cannot open the cache file of inode %llu in %s/data: %s",
			  (unsigned long long)in->ino, fs->cache_dir, strerror(-fd));
		return fd;
	}
	fi->fh = (uint64_t)(uintptr_t)in;
	fi->keep_cache = 1;
	return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct fs_inode *in;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	in = make_node(req, fs, parent, name, S_IFREG | (mode & 07777), 0, NULL, &rc);
	if (in && fs->no_open) {
		/* no handle state: the first write makes the cache file */
		fi->fh = 0;
		fi->keep_cache = 1;
		fill_entry(fs, in, &e);
	} else if (in) {
		rc = open_inode(fs, in, fi);
		if (rc) {
			in->nlookup--;
			in = NULL;
		} else {
			fill_entry(fs, in, &e);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	if (in)
		fuse_reply_create(req, &e, fi);
	else
		reply_sqlite_err(req, rc);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *in;
	int rc;

	if (fs->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = fs_inode_get(fs, ino, &rc);
	if (in)
		rc = open_inode(fs, in, fi);
	if (!rc && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
		rc = set_size(fs, in, 0);
		if (!rc) {
			data_changed(fs, in, 0);
			now(&in->mtime);
			in->ctime = in->mtime;
			mark(fs, in);
		} else {
			fs_fd_release(fs, in);	/* no handle: no release will come */
		}
	}
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		reply_sqlite_err(req, rc);
	else
		fuse_reply_open(req, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *in = handle_inode(fi);

	(void)ino;
	if (in) {
		pthread_mutex_lock(&fs->lock);
		fs_fd_release(fs, in);
		pthread_mutex_unlock(&fs->lock);
	}
	fuse_reply_err(req, 0);
}

/* The inode and cache file fd a data request works on: the handle's, or
 * (without OPEN) one taken from the fd cache for this request. */
struct io {
	struct fs_inode *in;
	int fd;
	int own;	/* a reference of this request, dropped by io_end */
	int writing;	/* counted in in->writes until io_end */
};

enum io_kind { IO_READ, IO_WRITE, IO_SYNC };

static void io_end(struct fs *fs, struct io *io)
{
	if (!io->own && !io->writing)
		return;
	pthread_mutex_lock(&fs->lock);
	if (io->writing)
		io->in->writes--;
	if (io->own)
		fs_fd_release(fs, io->in);
	pthread_mutex_unlock(&fs->lock);
}

/* Finds the inode and its cache file for a request on bytes [off, off+len)
 * and, for a lazy file, makes them local first (all of it for a write:
 * the data of a file changes only when all of it is here). */
static int io_begin(struct fs *fs, fuse_ino_t ino, struct fuse_file_info *fi, enum io_kind kind,
		    uint64_t off, uint64_t len, struct io *io)
{
	int rc = 0, partial = 0, handle;

	io->own = io->writing = 0;
	io->fd = -1;
	pthread_mutex_lock(&fs->lock);
	io->in = fi ? handle_inode(fi) : NULL;
	handle = io->in != NULL;
	if (handle) {
		io->fd = io->in->fd;
	} else {
		io->in = fs_inode_get(fs, ino, &rc);
		if (io->in && !S_ISREG(io->in->mode))
			rc = S_ISDIR(io->in->mode) ? -EISDIR : -EINVAL;
	}
	if (!rc)
		partial = kind != IO_SYNC && (io->in->state & FS_ST_PARTIAL);
	if (!rc && !handle) {
		int create = kind == IO_WRITE || partial;

		io->fd = fs_fd_acquire(fs, io->in, create);
		if (io->fd == -ENOENT && !create) {
			io->fd = -1;	/* no cache file: never written, all zeros */
		} else if (io->fd < 0) {
			rc = io->fd;
			log_error("cannot open the cache file of inode %llu in %s/data: %s",
				  (unsigned long long)ino, fs->cache_dir, strerror(-rc));
		} else {
			io->own = 1;
		}
	}
	if (!rc && kind == IO_WRITE) {
		io->in->writes++;
		io->writing = 1;
	}
	if (!rc && kind == IO_READ) {
		struct timespec t;

		now(&t);
		if (t.tv_sec - io->in->used >= 60) {
			/* for eviction, least recently used first; coarse, so
			 * that reads rarely cost a row write */
			io->in->used = t.tv_sec;
			fs_inode_dirty(fs, io->in);
		}
		/* through a write-only file it is the kernel's own read, to
		 * fill a page that a write covers only in part */
		if (!fi || (fi->flags & O_ACCMODE) != O_WRONLY)
			fs_atime_read(fs, io->in);
	}
	pthread_mutex_unlock(&fs->lock);
	if (!rc && partial) {
		rc = fs_lazy_ensure(fs, io->in, kind == IO_WRITE ? 0 : off,
				    kind == IO_WRITE ? UINT64_MAX : len, 0);
		if (rc) {
			err_clear();	/* logged, with the object, by fs_lazy_ensure */
			io_end(fs, io);
		}
	}
	return rc;
}

/* A read of a file that has no cache file: zeros up to its size. */
static void reply_zeros(fuse_req_t req, struct fs *fs, struct fs_inode *in, size_t size, off_t off)
{
	uint64_t end;
	char *z;

	pthread_mutex_lock(&fs->lock);
	end = in->size;
	pthread_mutex_unlock(&fs->lock);
	if ((uint64_t)off >= end) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > end - (uint64_t)off)
		size = (size_t)(end - (uint64_t)off);
	z = xcalloc(1, size ? size : 1);
	fuse_reply_buf(req, z, size);
	free(z);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	struct io io;
	int rc = io_begin(fs, ino, fi, IO_READ, (uint64_t)off, size, &io);

	if (rc) {
		reply_sqlite_err(req, rc);
		return;
	}
	if (io.fd < 0) {
		reply_zeros(req, fs, io.in, size, off);
		io_end(fs, &io);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = io.fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	io_end(fs, &io);
}

/* A write to a file a snapshot is reading (snap.c): the snapshot learns
 * the first byte below the size it reads that the write really changes --
 * the kernel writes whole pages back, so an append rewrites the old bytes
 * of its first page unchanged, which must not count -- before the bytes
 * change.  Returns the bytes written or a negative code. */
static ssize_t write_armed(struct fs *fs, struct fs_inode *in, int fd, struct fuse_bufvec *in_buf,
			   off_t off)
{
	size_t len = fuse_buf_size(in_buf);
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(len);
	uint64_t size, changed = UINT64_MAX;
	char *old;
	ssize_t n;
	int rc;

	mem.buf[0].mem = xmalloc(len ? len : 1);
	n = fuse_buf_copy(&mem, in_buf, 0);
	if (n < 0)
		goto out;
	pthread_mutex_lock(&fs->lock);
	size = in->snap_size;
	pthread_mutex_unlock(&fs->lock);
	if ((uint64_t)off < size) {
		size_t overlap = (size_t)((uint64_t)off + (uint64_t)n < size ? (uint64_t)n : size - (uint64_t)off);
		ssize_t got;

		old = xcalloc(1, overlap ? overlap : 1);
		got = pread(fd, old, overlap, off);
		for (size_t i = 0; i < overlap; i++) {
			if ((got >= 0 && i >= (size_t)got) || old[i] != ((char *)mem.buf[0].mem)[i]) {
				changed = (uint64_t)off + i;
				break;
			}
		}
		free(old);
	}
	if (changed == UINT64_MAX && (uint64_t)off + (uint64_t)n > size)
		changed = (uint64_t)off > size ? (uint64_t)off : size;
	pthread_mutex_lock(&fs->lock);
	if (in->snap_armed && changed < in->wmin)
		in->wmin = changed;
	pthread_mutex_unlock(&fs->lock);
	rc = fsu_pwrite_all(fd, mem.buf[0].mem, (size_t)n, off);
	if (rc)
		n = rc;
out:
	free(mem.buf[0].mem);
	return n;
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf, off_t off,
			 struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));
	struct fs_inode *in;
	struct io io;
	ssize_t n;
	int armed;
	size_t want = fuse_buf_size(in_buf);
	int rc = io_begin(fs, ino, fi, IO_WRITE, (uint64_t)off, want, &io);

	if (rc) {
		reply_sqlite_err(req, rc);
		return;
	}
	in = io.in;
	pthread_mutex_lock(&fs->lock);
	/* on a full disk the room left is the metadata's: a write that
	 * grows the file needs blocks, one inside it may have them */
	if ((uint64_t)off + want > in->size)
		rc = fs->disk_full ? fs_disk_refuse(fs) : fs_cache_reserve(fs, (uint64_t)off + want - in->size);
	pthread_mutex_unlock(&fs->lock);
	if (rc) {
		io_end(fs, &io);
		fuse_reply_err(req, -rc);
		return;
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = io.fd;
	out.buf[0].pos = off;
	pthread_mutex_lock(&fs->lock);
	armed = in->snap_armed;
	pthread_mutex_unlock(&fs->lock);
	n = armed ? write_armed(fs, in, io.fd, in_buf, off) : fuse_buf_copy(&out, in_buf, 0);
	if (n < 0) {
		if (n == -ENOSPC)
			disk_full_found(fs, "a write to a cache file");
		else if (n != -EDQUOT)
			log_error("write to the cache file of inode %llu: %s",
				  (unsigned long long)in->ino, strerror((int)-n));
		io_end(fs, &io);
		fuse_reply_err(req, (int)-n);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	if ((uint64_t)off > in->size)
		in->maybe_sparse = 1;	/* a hole before the data */
	if ((uint64_t)off + (uint64_t)n > in->size) {
		fs->cache_used += (uint64_t)off + (uint64_t)n - in->size;
		in->size = (uint64_t)off + (uint64_t)n;
	}
	/* With the writeback cache the kernel stamped the write when it was
	 * made and sends that time in a SETATTR of its own (which may come
	 * before this WRITE): the time the WRITE arrives would be later than
	 * the one stat showed, and a remount would show another mtime. */
	if (!fs->writeback) {
		now(&in->mtime);
		in->ctime = in->mtime;
	}
	in->blocks_stale = 1;
	data_changed(fs, in, UINT64_MAX);	/* write_armed told a snapshot */
	pthread_mutex_unlock(&fs->lock);
	io_end(fs, &io);
	fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	/* nothing to do at close that fsync does not do: the kernel stops
	 * sending FLUSH (it still writes its cached pages back at close) */
	fuse_reply_err(req, ENOSYS);
}

/* Makes the metadata durable: the data dir entry of a new cache file, then
 * a commit with the WAL fsync'd. */
static int sync_meta(struct fs *fs, struct fs_inode *in)
{
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	if (in && in->data_new) {
		char name[40];
		int dfd;

		fs_data_name(in->ino, name);
		name[2] = '\0';
		dfd = openat(fs->data_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd))
			rc = -errno;
		if (dfd >= 0)
			close(dfd);
		if (!rc)
			in->data_new = 0;
	}
	if (!rc)
		rc = fs_meta_commit(fs, 1);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct io io;
	int rc;

	if (fuse_req_ctx(req)->pid == __atomic_load_n(&fs->snap_tid, __ATOMIC_RELAXED)) {
		fuse_reply_err(req, 0);	/* a live snapshot's flush (snap.c) */
		return;
	}
	rc = io_begin(fs, ino, fi, IO_SYNC, 0, 0, &io);
	if (rc) {
		reply_sqlite_err(req, rc);
		return;
	}
	if (io.fd >= 0 && (datasync ? fdatasync(io.fd) : fsync(io.fd)) != 0)
		rc = -errno;
	if (!rc)
		rc = sync_meta(fs, io.in);
	if (rc)
		log_error("fsync of inode %llu: %s", (unsigned long long)ino, strerror(-rc));
	io_end(fs, &io);
	fuse_reply_err(req, -rc);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
	struct fs_inode *in;
	struct io io;
	int rc;

	if (mode & ~known) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	rc = io_begin(fs, ino, fi, IO_WRITE, (uint64_t)off, (uint64_t)len, &io);
	if (rc) {
		reply_sqlite_err(req, rc);
		return;
	}
	in = io.in;
	pthread_mutex_lock(&fs->lock);
	if (fs->disk_full && !(mode & FALLOC_FL_PUNCH_HOLE))
		rc = fs_disk_refuse(fs);
	pthread_mutex_unlock(&fs->lock);
	if (!rc && fallocate(io.fd, mode, off, len))
		rc = -errno;
	if (rc == -ENOSPC)
		disk_full_found(fs, "fallocate of a cache file");
	pthread_mutex_lock(&fs->lock);
	if (!rc) {
		if (!(mode & FALLOC_FL_KEEP_SIZE) && (uint64_t)(off + len) > in->size)
			in->size = (uint64_t)(off + len);
		/* as ext4 does for every mode, keep-size included */
		now(&in->mtime);
		in->ctime = in->mtime;
		in->blocks_stale = 1;
		in->maybe_sparse = 1;
		data_changed(fs, in, (uint64_t)off);
	}
	pthread_mutex_unlock(&fs->lock);
	io_end(fs, &io);
	fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (req_fs(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->fh = 0;
	/* every change to a directory passes through the kernel, which drops
	 * its cached listing itself */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

struct readdir_ctx {
	fuse_req_t req;
	struct fs *fs;
	char *buf;
	size_t size, len;
	int plus;
	int err;
};

static int add_entry(void *arg, const char *name, uint64_t ino, mode_t type, uint64_t cookie)
{
	struct readdir_ctx *c = arg;
	size_t n;

	if (c->plus) {
		struct fuse_entry_param e;
		struct fs_inode *in;
		int rc;

		if (ino == 0) {
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = FS_ROOT_INO;
			e.attr.st_mode = S_IFDIR;
		} else {
			in = fs_inode_get(c->fs, ino, &rc);
			if (!in) {
				log_warn("directory entry %s names inode %llu, which is missing", name,
					 (unsigned long long)ino);
				return 0;
			}
			fill_entry(c->fs, in, &e);
		}
		n = fuse_add_direntry_plus(c->req, c->buf + c->len, c->size - c->len, name, &e,
					   (off_t)cookie);
		if (n > c->size - c->len)
			return 1;
		if (ino)
			in->nlookup++;
	} else {
		struct stat st = { .st_ino = ino ? ino : FS_ROOT_INO, .st_mode = type };

		n = fuse_add_direntry(c->req, c->buf + c->len, c->size - c->len, name, &st,
				      (off_t)cookie);
		if (n > c->size - c->len)
			return 1;
	}
	c->len += n;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct fs *fs = req_fs(req);
	struct readdir_ctx c = { .req = req, .fs = fs, .size = size, .plus = plus };
	struct fs_inode *dir;
	int rc = 0;

	c.buf = xmalloc(size);
	pthread_mutex_lock(&fs->lock);
	dir = fs_inode_get(fs, ino, &rc);
	if (!dir)
		goto out;
	/* a listing reads the directory, as getdents(2) does on a local disk */
	fs_atime_read(fs, dir);
	/* "." and ".." (inode 0: no lookup reference for them) */
	if (off < 1 && add_entry(&c, ".", 0, S_IFDIR, 1))
		goto out;
	if (off < 2 && add_entry(&c, "..", 0, S_IFDIR, 2))
		goto out;
	rc = fs_dirent_foreach(fs, ino, off < 2 ? 2 : (uint64_t)off, add_entry, &c);
out:
	pthread_mutex_unlock(&fs->lock);
	if (rc && c.len == 0)
		reply_sqlite_err(req, rc);
	else
		fuse_reply_buf(req, c.buf, c.len);
	free(c.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int rc;

	(void)ino;
	(void)datasync;
	(void)fi;
	rc = sync_meta(req_fs(req), NULL);
	fuse_reply_err(req, -rc);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(fs->cache_fd, &sv)) {
		fuse_reply_err(req, errno);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	if (fs->disk_full) {
		/* the released reserve is the metadata's, not room for files */
		fsblkcnt_t r = (fsblkcnt_t)(fs->reserve_size / (sv.f_frsize ? sv.f_frsize : 4096));

		sv.f_bavail = sv.f_bavail > r ? sv.f_bavail - r : 0;
		sv.f_bfree = sv.f_bfree > r ? sv.f_bfree - r : 0;
	}
	pthread_mutex_unlock(&fs->lock);
	sv.f_namemax = FS_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

static int xattr_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > FS_NAME_MAX)
		return -ERANGE;
	/* the namespaces a local disk stores; system.* (POSIX ACLs among them)
	 * would need the kernel to enforce it, so storing it would be a wrong
	 * result; a name in no namespace is refused as ext4 refuses it */
	if (strncmp(name, "user.", 5) == 0 || strncmp(name, "trusted.", 8) == 0 ||
	    strncmp(name, "security.", 9) == 0)
		return 0;
	return -EOPNOTSUPP;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *in;
	int rc = xattr_name_ok(name);

	if (!rc && size > FS_XATTR_VALUE_MAX)
		rc = -E2BIG;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = fs_inode_get(fs, ino, &rc);
	if (in)
		rc = fs_meta_room(fs, strlen(name) + size);
	if (in && !rc)
		rc = fs_xattr_set(fs, ino, name, value, size, flags);
	if (in && !rc) {
		now(&in->ctime);
		mark(fs, in);
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

/* The answer to getxattr or listxattr: the size when asked for it (size
 * 0), ERANGE when the caller's buffer is too small, else the bytes. */
static void reply_xattr(fuse_req_t req, int rc, const void *data, size_t len, size_t size)
{
	if (rc)
		reply_sqlite_err(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = req_fs(req);
	void *value = NULL;
	size_t len = 0;
	int rc = xattr_name_ok(name);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	rc = fs_xattr_get(fs, ino, name, &value, &len);
	pthread_mutex_unlock(&fs->lock);
	reply_xattr(req, rc, value, len, size);
	free(value);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = req_fs(req);
	char *names = NULL;
	size_t len = 0;
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = fs_xattr_list(fs, ino, &names, &len);
	pthread_mutex_unlock(&fs->lock);
	reply_xattr(req, rc, names, len, size);
	free(names);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *in;
	int rc = xattr_name_ok(name);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = fs_inode_get(fs, ino, &rc);
	if (in)
		rc = fs_xattr_remove(fs, ino, name);
	if (in && !rc) {
		now(&in->ctime);
		mark(fs, in);
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.release = op_release,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};
