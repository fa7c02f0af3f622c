/*
 * restore.c - a snapshot's tree back on disk (see restore.h).
 *
 * Three passes, so that every pack is fetched once however many files share
 * it (a node_modules of 30,000 files is a handful of packs, not 30,000 GETs):
 *   1. walk the trees: make directories, symlinks and special files, and a
 *      sized temp file beside each regular file; list which blob goes where;
 *   2. sort the blobs by pack and offset, fetch each pack's needed ranges
 *      (coalesced) on worker threads, verify every blob and write it into
 *      every place that needs it;
 *   3. per file: xattrs, owner, mode, times, then rename into place and add
 *      its other hard links; directories last, deepest first, so their times
 *      survive the writes inside them.
 * Names come from tree_decode, which refuses "/", NUL, "." and "..";
 * restore checks again before touching the disk.
 *
 * Must stay true: nothing is done by path from the target down.  The
 * target is opened once; every directory under it is reached from there
 * one component at a time with O_NOFOLLOW (dir_at), and every entry is
 * made, changed and renamed by *at calls on its own name with no symlink
 * followed, so a process that races the restore (renames a directory it
 * owns, plants a symlink) cannot lead root's writes, chmods or chowns
 * outside the target.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "blob.h"
#include "err.h"
#include "fetch.h"
#include "fsutil.h"
#include "log.h"
#include "restore.h"
#include "tree.h"

#define COALESCE_GAP (1u << 20)	/* fetch across gaps up to this size */
#define DEFAULT_WORKERS 4

struct rfile {
	char *path;		/* final path, for messages */
	char *dir, *name;	/* its directory (relative to the target, "" for
				 * the target) and its name there */
	char *tmp;		/* the temp file's name in dir while written */
	struct tree_entry meta;	/* borrowed fields copied: see file_add */
	uint64_t link_group;
	int secondary;		/* another name of files[primary]: linked, not written */
	size_t primary;
};

struct rdir {
	char *path;		/* for messages */
	char *dir, *name;	/* as in struct rfile */
	struct tree_entry meta;
	int depth;
};

/* One blob needed at one place. */
struct need {
	const char *pack;	/* interned by the index */
	struct pack_entry e;
	size_t file;		/* index into files */
	uint64_t file_off;
};

/* The last directory a thread opened under the target, and its fd (an
 * O_PATH fd, for *at calls): consecutive entries mostly share one. */
struct dircache {
	char *rel;
	int fd;
};
#define DIRCACHE_INIT { NULL, -1 }

struct restore {
	struct repo *r;
	struct index *idx;
	const struct restore_opts *o;
	const char *target;	/* for messages */
	int root_fd;		/* the target, opened once */
	int target_new;		/* it was missing or empty: it takes the root's metadata */
	struct dircache dc;	/* the main thread's */
	int owners;
	struct rfile *files;
	size_t nfiles, files_cap;
	struct rdir *dirs;
	size_t ndirs, dirs_cap;
	struct need *needs;
	size_t nneeds, needs_cap;
	/* hard links seen: group -> first file */
	uint64_t *groups;
	size_t *group_file;
	size_t ngroups, groups_cap;
	/* the same for symlinks, fifos, sockets and devices, made at once:
	 * group -> where the first name is */
	struct other_link {
		uint64_t group;
		char *dir, *name;
	} *others;
	size_t nothers, others_cap;

	pthread_mutex_t lock;	/* guards next_need, error, progress */
	size_t next_need;
	int error;
	char *error_msg;
	struct restore_progress prog;
};

static void dircache_free(struct dircache *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->rel);
	c->fd = -1;
	c->rel = NULL;
}

/* The directory rel under the target ("" for the target itself), reached
 * one component at a time with O_NOFOLLOW: a symlink on the way is an
 * error, never followed.  The fd belongs to c (until its next call). */
static int dir_at(struct restore *rs, struct dircache *c, const char *rel)
{
	size_t have = c->rel ? strlen(c->rel) : 0;
	const char *rest = rel;
	int fd;

	if (c->fd >= 0 && !strcmp(c->rel, rel))
		return c->fd;
	/* below the cached one: walk on from it */
	if (c->fd >= 0 && have && !strncmp(rel, c->rel, have) && rel[have] == '/') {
		fd = openat(c->fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		rest = rel + have + 1;
	} else {
		fd = openat(rs->root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	while (fd >= 0 && *rest) {
		size_t n = strcspn(rest, "/");
		char *comp = xstrndup(rest, n);
		int next = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		free(comp);
		close(fd);
		fd = next;
		rest += n + (rest[n] == '/');
	}
	if (fd < 0)
		return err_set(-errno, "%s/%s: cannot open the directory: %s (a symlink or a file took its place?)",
			       rs->target, rel, strerror(errno));
	dircache_free(c);
	c->rel = xstrdup(rel);
	c->fd = fd;
	return fd;
}

/* Makes directory name in dir, replacing whatever non-directory is there:
 * a symlink left in the target must never lead the restore outside it. */
static int make_dir(struct restore *rs, const char *dir, const char *name, const char *path)
{
	int pfd = dir_at(rs, &rs->dc, dir);
	struct stat st;

	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		if (unlinkat(pfd, name, 0) < 0)
			return err_set(-errno, "%s: cannot replace with a directory: %s", path,
				       strerror(errno));
	}
	if (mkdirat(pfd, name, 0700) < 0)
		return err_set(-errno, "%s: cannot create directory: %s", path, strerror(errno));
	return 0;
}

/* "dir/name", or name when dir is the target. */
static char *rel_join(const char *dir, const char *name)
{
	return *dir ? xasprintf("%s/%s", dir, name) : xstrdup(name);
}

static int name_safe(const char *name)
{
	return name && *name && strcmp(name, ".") && strcmp(name, "..") && !strchr(name, '/');
}

static void meta_copy(struct tree_entry *dst, const struct tree_entry *src)
{
	*dst = *src;
	dst->name = NULL;
	dst->target = NULL;
	dst->blobs = NULL;
	dst->nblobs = 0;
	tree_xattrs_dup(dst, src);
}

/* An xattr that gives privilege (file capabilities, security labels,
 * trusted.*): restored only with o->privileged. */
static int xattr_privileged(const char *name)
{
	return !strncmp(name, "security.", 9) || !strncmp(name, "trusted.", 8);
}

static void stripped(struct restore *rs)
{
	pthread_mutex_lock(&rs->lock);
	rs->prog.stripped++;
	pthread_mutex_unlock(&rs->lock);
}

/* xattrs, owner, mode and times of entry name in dir (never following a
 * symlink); path names it in messages. */
static int apply_meta(struct restore *rs, struct dircache *c, const char *dir, const char *name,
		      const char *path, const struct tree_entry *e)
{
	struct timespec times[2];
	mode_t mode = e->mode;
	int pfd = dir_at(rs, c, dir);

	if (pfd < 0)
		return pfd;
	if (e->nxattrs) {
		/* anchored at the directory already opened: no path walk */
		char *at = xasprintf("/proc/self/fd/%d/%s", pfd, name);

		for (size_t i = 0; i < e->nxattrs; i++) {
			if (!rs->o->privileged && xattr_privileged(e->xattrs[i].name)) {
				stripped(rs);
				continue;
			}
			if (lsetxattr(at, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].value_len, 0) < 0 &&
			    errno != ENOTSUP && errno != EPERM) {
				int rc = err_set(-errno, "%s: cannot set xattr %s: %s", path,
						 e->xattrs[i].name, strerror(errno));

				free(at);
				return rc;
			}
		}
		free(at);
	}
	if (!rs->o->privileged && e->type == TREE_REG && (mode & (S_ISUID | S_ISGID))) {
		mode &= ~(mode_t)(S_ISUID | S_ISGID);
		stripped(rs);
	}
	if (rs->owners && fchownat(pfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return err_set(-errno, "%s: cannot set owner %u:%u: %s", path, e->uid, e->gid, strerror(errno));
	if (e->type != TREE_SYMLINK && fchmodat(pfd, name, mode, AT_SYMLINK_NOFOLLOW) < 0)
		return err_set(-errno, "%s: cannot set mode %o: %s", path, mode, strerror(errno));
	times[0].tv_sec = e->mtime.sec;	/* atime is not kept: use mtime */
	times[0].tv_nsec = e->mtime.nsec;
	times[1] = times[0];
	if (utimensat(pfd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return err_set(-errno, "%s: cannot set times: %s", path, strerror(errno));
	return 0;
}

static size_t file_add(struct restore *rs, const char *dir, const char *path, const struct tree_entry *e)
{
	struct rfile *f;

	if (rs->nfiles == rs->files_cap) {
		rs->files_cap = rs->files_cap ? rs->files_cap * 2 : 256;
		rs->files = xrealloc(rs->files, rs->files_cap * sizeof(*rs->files));
	}
	f = &rs->files[rs->nfiles];
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(path);
	f->dir = xstrdup(dir);
	f->name = xstrdup(e->name);
	meta_copy(&f->meta, e);
	f->link_group = e->link_group;
	return rs->nfiles++;
}

static void need_add(struct restore *rs, const struct index_entry *ent, size_t file, uint64_t off)
{
	if (rs->nneeds == rs->needs_cap) {
		rs->needs_cap = rs->needs_cap ? rs->needs_cap * 2 : 1024;
		rs->needs = xrealloc(rs->needs, rs->needs_cap * sizeof(*rs->needs));
	}
	rs->needs[rs->nneeds++] = (struct need){ ent->pack, ent->e, file, off };
}

/* Makes an empty temp file in directory pfd: its name in *name.  The fd,
 * or a negative errno. */
static int temp_at(int pfd, char **name)
{
	for (int tries = 0; tries < 100; tries++) {
		int fd;

		*name = xasprintf(".cairn-restore-%08x%08x", randombytes_random(), randombytes_random());
		fd = openat(pfd, *name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
		free(*name);
		*name = NULL;
	}
	return -EEXIST;
}

/* A regular file: its temp file, sized, and the blobs it needs. */
static int plan_file(struct restore *rs, const char *dir, const char *path,
		     const struct tree_entry *e)
{
	uint64_t off = 0;
	size_t fi;
	int fd, pfd;

	for (size_t g = 0; e->link_group && g < rs->ngroups; g++) {
		if (rs->groups[g] == e->link_group) {
			/* a second name of a hard-linked file: linked in pass 3 */
			fi = file_add(rs, dir, path, e);
			rs->files[fi].secondary = 1;
			rs->files[fi].primary = rs->group_file[g];
			return 0;
		}
	}
	fi = file_add(rs, dir, path, e);
	pfd = dir_at(rs, &rs->dc, dir);
	if (pfd < 0)
		return pfd;
	fd = temp_at(pfd, &rs->files[fi].tmp);
	if (fd < 0)
		return err_set(fd, "%s: cannot create a temp file beside it: %s", path, strerror(-fd));
	if (ftruncate(fd, (off_t)e->size) < 0) {
		int rc = err_set(-errno, "%s: cannot size to %llu bytes: %s", path,
				 (unsigned long long)e->size, strerror(errno));

		close(fd);
		return rc;
	}
	close(fd);
	if (e->link_group) {
		if (rs->ngroups == rs->groups_cap) {
			rs->groups_cap = rs->groups_cap ? rs->groups_cap * 2 : 64;
			rs->groups = xrealloc(rs->groups, rs->groups_cap * sizeof(*rs->groups));
			rs->group_file = xrealloc(rs->group_file, rs->groups_cap * sizeof(*rs->group_file));
		}
		rs->groups[rs->ngroups] = e->link_group;
		rs->group_file[rs->ngroups++] = fi;
	}
	for (size_t i = 0; i < e->nblobs; i++) {
		struct index_entry ent;
		char hex[BLOB_ID_HEX_SIZE];

		if (index_lookup(rs->idx, e->blobs[i], &ent) || ent.e.ref.type != KEYS_BLOB_DATA) {
			blob_id_hex(e->blobs[i], hex);
			return err_set(-ENOENT, "%s: data blob %.16s is missing from the index: run 'cairn check'",
				       path, hex);
		}
		need_add(rs, &ent, fi, off);
		off += ent.e.ref.raw_length;
	}
	if (off != e->size)
		return err_set(-EBADMSG, "%s: its blobs hold %llu bytes, the tree says %llu",
			       path, (unsigned long long)off, (unsigned long long)e->size);
	rs->prog.total_files++;
	rs->prog.total_bytes += e->size;
	return 0;
}

static int plan_dir(struct restore *rs, const char *dir, const struct tree *t, int depth);

/* Another name of a symlink, fifo, socket or device made already: linked
 * to it (1).  0 when e is the first of its group, or in none; or a
 * negative code. */
static int link_other(struct restore *rs, const char *dir, const struct tree_entry *e, const char *path)
{
	struct dircache first = DIRCACHE_INIT;
	int pfd, ffd, rc = 0;

	if (!e->link_group)
		return 0;
	for (size_t i = 0; i < rs->nothers; i++) {
		const struct other_link *o = &rs->others[i];

		if (o->group != e->link_group)
			continue;
		ffd = dir_at(rs, &first, o->dir);
		pfd = ffd < 0 ? ffd : dir_at(rs, &rs->dc, dir);
		if (ffd < 0 || pfd < 0) {
			rc = ffd < 0 ? ffd : pfd;
		} else {
			unlinkat(pfd, e->name, 0);
			if (linkat(ffd, o->name, pfd, e->name, 0) < 0)
				rc = err_set(-errno, "%s: cannot link to %s/%s: %s", path, rs->target,
					     o->dir, strerror(errno));
		}
		dircache_free(&first);
		return rc ? rc : 1;
	}
	return 0;
}

/* Records where the first name of e's link group was made. */
static void link_other_first(struct restore *rs, const char *dir, const struct tree_entry *e)
{
	if (!e->link_group)
		return;
	if (rs->nothers == rs->others_cap) {
		rs->others_cap = rs->others_cap ? rs->others_cap * 2 : 16;
		rs->others = xrealloc(rs->others, rs->others_cap * sizeof(*rs->others));
	}
	rs->others[rs->nothers].group = e->link_group;
	rs->others[rs->nothers].dir = xstrdup(dir);
	rs->others[rs->nothers++].name = xstrdup(e->name);
}

/* Entry e of directory dir (relative to the target). */
static int plan_entry(struct restore *rs, const char *dir, const struct tree_entry *e, int depth)
{
	char *path, *rel;
	int rc = 0, pfd;

	if (!name_safe(e->name))
		return err_set(-EBADMSG, "refusing tree entry '%s' in %s/%s: it would escape the target",
			       e->name ? e->name : "", rs->target, dir);
	rel = rel_join(dir, e->name);
	path = xasprintf("%s/%s", rs->target, rel);
	switch (e->type) {
	case TREE_DIR: {
		struct tree sub;

		rc = make_dir(rs, dir, e->name, path);
		if (rc)
			break;
		rc = fetch_tree(rs->r, rs->idx, e->subtree, &sub);
		if (!rc)
			rc = plan_dir(rs, rel, &sub, depth + 1);
		tree_free(&sub);
		if (!rc) {
			struct rdir *d;

			if (rs->ndirs == rs->dirs_cap) {
				rs->dirs_cap = rs->dirs_cap ? rs->dirs_cap * 2 : 64;
				rs->dirs = xrealloc(rs->dirs, rs->dirs_cap * sizeof(*rs->dirs));
			}
			d = &rs->dirs[rs->ndirs++];
			d->path = xstrdup(path);
			d->dir = xstrdup(dir);
			d->name = xstrdup(e->name);
			meta_copy(&d->meta, e);
			d->depth = depth + 1;
		}
		break;
	}
	case TREE_REG:
		rc = plan_file(rs, dir, path, e);
		break;
	case TREE_SYMLINK:
		rc = link_other(rs, dir, e, path);
		if (rc) {
			rc = rc > 0 ? 0 : rc;	/* 1: linked to its first name */
			break;
		}
		pfd = dir_at(rs, &rs->dc, dir);
		if (pfd < 0) {
			rc = pfd;
			break;
		}
		unlinkat(pfd, e->name, 0);
		if (symlinkat(e->target, pfd, e->name) < 0)
			rc = err_set(-errno, "%s: cannot create symlink: %s", path, strerror(errno));
		else
			rc = apply_meta(rs, &rs->dc, dir, e->name, path, e);
		if (!rc)
			link_other_first(rs, dir, e);
		break;
	case TREE_FIFO:
	case TREE_CHR:
	case TREE_BLK:
	case TREE_SOCK: {
		mode_t kind = e->type == TREE_FIFO ? S_IFIFO : e->type == TREE_CHR ? S_IFCHR :
			      e->type == TREE_BLK ? S_IFBLK : S_IFSOCK;

		if ((kind == S_IFCHR || kind == S_IFBLK) && !rs->o->privileged) {
			stripped(rs);	/* a device node is a way into the kernel */
			break;
		}
		if ((kind == S_IFCHR || kind == S_IFBLK) && geteuid() != 0) {
			log_warn("%s: device files are restored only as root; skipped", path);
			break;
		}
		rc = link_other(rs, dir, e, path);
		if (rc) {
			rc = rc > 0 ? 0 : rc;	/* 1: linked to its first name */
			break;
		}
		pfd = dir_at(rs, &rs->dc, dir);
		if (pfd < 0) {
			rc = pfd;
			break;
		}
		unlinkat(pfd, e->name, 0);
		if (mknodat(pfd, e->name, kind | (e->mode & 07777), makedev(e->rdev_major, e->rdev_minor)) < 0)
			rc = err_set(-errno, "%s: cannot create %s: %s", path, tree_type_name(e->type),
				     strerror(errno));
		else
			rc = apply_meta(rs, &rs->dc, dir, e->name, path, e);
		if (!rc)
			link_other_first(rs, dir, e);
		break;
	}
	default:
		rc = err_set(-EBADMSG, "%s: unknown entry type %d", path, e->type);
	}
	free(path);
	free(rel);
	return rc;
}

static int plan_dir(struct restore *rs, const char *dir, const struct tree *t, int depth)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < t->count; i++)
		rc = plan_entry(rs, dir, &t->entries[i], depth);
	return rc;
}

static int cmp_need(const void *a, const void *b)
{
	const struct need *x = a, *y = b;
	int c = strcmp(x->pack, y->pack);

	if (c)
		return c;
	return x->e.offset < y->e.offset ? -1 : x->e.offset > y->e.offset;
}

/* Writes data at off of f's temp file, reached through c; blocks of zeros
 * are left holes of the file (sized, so sparse, when it was made). */
static int write_at(struct restore *rs, struct dircache *c, const struct rfile *f, const void *data,
		    size_t len, uint64_t off)
{
	int pfd = dir_at(rs, c, f->dir), fd, rc;

	if (pfd < 0)
		return pfd;
	fd = openat(pfd, f->tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fsu_pwrite_sparse(fd, data, len, (off_t)off);
	close(fd);
	return rc;
}

/* needs[i..k) from other copies: their pack is gone from the store. */
static int fetch_elsewhere(struct restore *rs, struct dircache *c, size_t i, size_t k)
{
	struct buf plain = BUF_INIT;
	int rc = 0;

	for (size_t n = i; !rc && n < k; n++) {
		const struct need *nd = &rs->needs[n];
		struct index_entry ent = { nd->pack, nd->e };

		buf_reset(&plain);
		rc = fetch_blob_elsewhere(rs->r, rs->idx, &ent, &plain);
		if (!rc)
			rc = write_at(rs, c, &rs->files[nd->file], plain.data, plain.len, nd->file_off);
		if (rc > 0 || (rc < 0 && rc != -ENOENT && rc != -EBADMSG))
			err_set(rc, "%s: cannot write: %s", rs->files[nd->file].path, strerror(-rc));
	}
	buf_free(&plain);
	return rc;
}

/* Decodes the blobs of needs[i..k) from range (which starts at pack offset
 * start) and writes them to their files; *bytes gets what was written. */
static int range_to_files(struct restore *rs, struct dircache *c, size_t i, size_t k, uint64_t start,
			  const struct buf *range, struct buf *plain, uint64_t *bytes)
{
	int rc = 0;

	*bytes = 0;
	for (size_t n = i; !rc && n < k; n++) {
		const struct need *nd = &rs->needs[n];
		struct rfile *f = &rs->files[nd->file];

		/* the same blob at several places is decoded once */
		if (n == i || memcmp(nd->e.ref.id, rs->needs[n - 1].e.ref.id, KEYS_BLOB_ID_LEN)) {
			buf_reset(plain);
			rc = blob_decode(rs->r->ring, &nd->e.ref, range->data + (nd->e.offset - start),
					 nd->e.ref.length, plain);
			if (rc) {
				err_prefix(rc, "%s (for %s)", nd->pack, f->path);
				break;
			}
		}
		rc = write_at(rs, c, f, plain->data, plain->len, nd->file_off);
		if (rc)
			err_set(rc, "%s: cannot write: %s", f->path, strerror(-rc));
		*bytes += plain->len;
	}
	return rc;
}

/* Fetches needs[i..j) (one pack, sorted by offset) in coalesced ranges.  A
 * range whose blobs do not verify is read again (store_read_again) before
 * the object is called damaged; rewriting what was written
 * from the first read is harmless. */
static int fetch_run(struct restore *rs, struct dircache *c, size_t i, size_t j)
{
	struct buf range = BUF_INIT, plain = BUF_INIT;
	int rc = 0;

	while (!rc && i < j) {
		uint64_t start = rs->needs[i].e.offset;
		uint64_t end = start + rs->needs[i].e.ref.length, bytes = 0;
		size_t k = i + 1;

		while (k < j && rs->needs[k].e.offset <= end + COALESCE_GAP) {
			uint64_t e = rs->needs[k].e.offset + rs->needs[k].e.ref.length;

			if (e > end)
				end = e;
			k++;
		}
		for (int attempt = 1;; attempt++) {
			buf_reset(&range);
			rc = store_get(rs->r->store, rs->needs[i].pack, start, end - start, &range, NULL);
			if (!rc && range.len != end - start)
				rc = err_set(-EBADMSG, "%s: pack is shorter than its index entries say",
					     rs->needs[i].pack);
			if (!rc)
				rc = range_to_files(rs, c, i, k, start, &range, &plain, &bytes);
			if (!store_read_again(rc, attempt))
				break;
		}
		if (rc == -ENOENT) {
			rc = fetch_elsewhere(rs, c, i, k);
			i = k;
			continue;
		}
		if (!rc) {
			pthread_mutex_lock(&rs->lock);
			rs->prog.bytes += bytes;
			pthread_mutex_unlock(&rs->lock);
		}
		i = k;
	}
	buf_free(&range);
	buf_free(&plain);
	return rc;
}

static void *fetch_worker(void *arg)
{
	struct restore *rs = arg;
	struct dircache c = DIRCACHE_INIT;

	for (;;) {
		size_t i, j;
		int rc;

		pthread_mutex_lock(&rs->lock);
		if (rs->error || rs->next_need >= rs->nneeds) {
			pthread_mutex_unlock(&rs->lock);
			break;
		}
		i = rs->next_need;
		for (j = i + 1; j < rs->nneeds && !strcmp(rs->needs[j].pack, rs->needs[i].pack); j++)
			;
		rs->next_need = j;
		pthread_mutex_unlock(&rs->lock);
		rc = fetch_run(rs, &c, i, j);
		if (rc) {
			pthread_mutex_lock(&rs->lock);
			if (!rs->error) {
				rs->error = rc;
				rs->error_msg = xstrdup(err_msg());
			}
			pthread_mutex_unlock(&rs->lock);
			break;
		}
	}
	dircache_free(&c);
	return NULL;
}

static int fetch_all(struct restore *rs)
{
	int workers = rs->o->workers > 0 ? rs->o->workers : DEFAULT_WORKERS;
	pthread_t tid[32];

	/* equal blobs sit side by side within a pack after this sort */
	if (rs->nneeds > 1)
		qsort(rs->needs, rs->nneeds, sizeof(*rs->needs), cmp_need);
	if (workers > 32)
		workers = 32;
	for (int i = 0; i < workers; i++)
		pthread_create(&tid[i], NULL, fetch_worker, rs);
	for (int i = 0; i < workers; i++)
		pthread_join(tid[i], NULL);
	if (rs->error)
		return err_set(rs->error, "%s", rs->error_msg);
	return 0;
}

static int cmp_dir_depth(const void *a, const void *b)
{
	const struct rdir *x = a, *y = b;

	return y->depth - x->depth;
}

static int finish(struct restore *rs)
{
	struct dircache other = DIRCACHE_INIT;
	int rc = 0;

	for (size_t i = 0; !rc && i < rs->nfiles; i++) {
		struct rfile *f = &rs->files[i];
		int pfd;

		if (f->secondary)
			continue;	/* linked below, once the primary is in place */
		rc = apply_meta(rs, &rs->dc, f->dir, f->tmp, f->path, &f->meta);
		pfd = rc ? rc : dir_at(rs, &rs->dc, f->dir);
		if (!rc && pfd < 0)
			rc = pfd;
		if (!rc && renameat(pfd, f->tmp, pfd, f->name) < 0)
			rc = err_set(-errno, "%s: cannot rename into place: %s", f->path, strerror(errno));
		if (!rc) {
			free(f->tmp);
			f->tmp = NULL;
			rs->prog.files++;
		}
	}
	for (size_t i = 0; !rc && i < rs->nfiles; i++) {
		struct rfile *f = &rs->files[i], *p;
		int ppfd, pfd;

		if (!f->secondary)
			continue;
		p = &rs->files[f->primary];
		ppfd = dir_at(rs, &other, p->dir);
		pfd = ppfd < 0 ? ppfd : dir_at(rs, &rs->dc, f->dir);
		if (ppfd < 0 || pfd < 0) {
			rc = ppfd < 0 ? ppfd : pfd;
			break;
		}
		unlinkat(pfd, f->name, 0);
		if (linkat(ppfd, p->name, pfd, f->name, 0) < 0)
			rc = err_set(-errno, "%s: cannot link to %s: %s", f->path, p->path, strerror(errno));
		else
			rs->prog.files++;
	}
	dircache_free(&other);
	if (rs->ndirs > 1)
		qsort(rs->dirs, rs->ndirs, sizeof(*rs->dirs), cmp_dir_depth);
	for (size_t i = 0; !rc && i < rs->ndirs; i++) {
		struct rdir *d = &rs->dirs[i];

		rc = apply_meta(rs, &rs->dc, d->dir, d->name, d->path, &d->meta);
		rs->prog.dirs++;
	}
	return rc;
}

/* Makes, below the target, every directory of include but its last
 * component (each through make_dir: nothing there may lead outside);
 * *dir_out gets the last one's path relative to the target. */
static int make_include_dirs(struct restore *rs, const char *include, char **dir_out)
{
	char *copy = xstrdup(include), *save = NULL, *part;
	char *dir = xstrdup("");
	int rc = 0;

	part = strtok_r(copy, "/", &save);
	while (!rc && part) {
		char *next = strtok_r(NULL, "/", &save), *sub, *path;

		if (!next)
			break;
		sub = rel_join(dir, part);
		path = xasprintf("%s/%s", rs->target, sub);
		rc = make_dir(rs, dir, part, path);
		free(path);
		free(dir);
		dir = sub;
		part = next;
	}
	free(copy);
	if (rc) {
		free(dir);
		return rc;
	}
	*dir_out = dir;
	return 0;
}

/* Finds include in the root tree: its entry (*out, held by *holder or by
 * root).  Writes nothing. */
static int find_include(struct restore *rs, struct tree *root, const char *include,
			struct tree *holder, const struct tree_entry **out)
{
	char *copy = xstrdup(include), *save = NULL, *part, *next;
	struct tree cur = *root;
	int owned = 0, rc = 0;

	*out = NULL;
	tree_init(holder);
	for (part = strtok_r(copy, "/", &save); part && !rc; part = next) {
		const struct tree_entry *e = tree_find(&cur, part);

		next = strtok_r(NULL, "/", &save);
		if (!e) {
			rc = err_set(-ENOENT, "%s is not in the snapshot", include);
			break;
		}
		if (!next) {
			*out = e;
			break;
		}
		if (e->type != TREE_DIR) {
			rc = err_set(-ENOENT, "%s is not in the snapshot (%s is not a directory)", include, part);
			break;
		}
		{
			struct tree t;

			rc = fetch_tree(rs->r, rs->idx, e->subtree, &t);
			if (!rc) {
				if (owned)
					tree_free(&cur);
				cur = t;
				owned = 1;
			}
		}
	}
	if (!rc && !*out)
		rc = err_set(-ENOENT, "%s is not in the snapshot", include);
	free(copy);
	if (rc) {
		if (owned)
			tree_free(&cur);
		return rc;
	}
	if (owned)
		*holder = cur;
	return 0;
}

/* Whether dir is missing or holds nothing. */
static int dir_new_or_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int empty = 1;

	if (!d)
		return errno == ENOENT;
	while (empty && (de = readdir(d)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

/* Makes the target (and its parents) and opens it: everything below is
 * reached from this fd. */
static int open_target(struct restore *rs, const char *target)
{
	char *mk = xasprintf("%s/", target);
	int rc;

	rs->target_new = dir_new_or_empty(target);
	rc = fsu_mkdir_parents(mk);

	free(mk);
	if (rc)
		return err_set(rc, "%s: cannot create: %s", target, strerror(-rc));
	rs->root_fd = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rs->root_fd < 0)
		return err_set(-errno, "%s: cannot open: %s", target, strerror(errno));
	return 0;
}

int restore_snapshot(struct repo *r, struct index *idx, const struct record_snapshot *rec,
		     const char *target, const struct restore_opts *o)
{
	static const struct restore_opts no_opts;
	struct restore rs = { .r = r, .idx = idx, .o = o ? o : &no_opts, .target = target,
			      .root_fd = -1, .dc = DIRCACHE_INIT };
	const char *root_name = rs.o->root ? rs.o->root : RECORD_ROOT_WORKSPACE;
	const uint8_t *root_id = record_snapshot_root(rec, root_name);
	struct tree root = TREE_INIT, holder = TREE_INIT, top = TREE_INIT;
	const struct tree_entry *self = NULL;
	char *msg;
	int rc;

	rs.owners = rs.o->owners || geteuid() == 0;
	pthread_mutex_init(&rs.lock, NULL);
	rc = root_id ? fetch_tree(r, idx, root_id, &root) :
		       err_set(-ENOENT, "the snapshot has no root named %s", root_name);
	/* the target is made once the snapshot is known to hold what is asked
	 * for: a restore refused at once leaves no directory behind */
	if (!rc && rs.o->include && *rs.o->include) {
		const struct tree_entry *e;
		char *dir = NULL;

		rc = find_include(&rs, &root, rs.o->include, &holder, &e);
		if (!rc)
			rc = open_target(&rs, target);
		if (!rc)
			rc = make_include_dirs(&rs, rs.o->include, &dir);
		if (!rc)
			rc = plan_entry(&rs, dir, e, 0);
		free(dir);
	} else if (!rc) {
		rc = fetch_root_entry(r, idx, rec, root_name, &top, &self);
		if (!rc)
			rc = open_target(&rs, target);
		if (!rc)
			rc = plan_dir(&rs, "", &root, 0);
	}
	if (!rc && rs.o->progress)
		rs.o->progress(&rs.prog, rs.o->progress_arg);
	if (!rc)
		rc = fetch_all(&rs);
	if (!rc)
		rc = finish(&rs);
	/* the root's own mode, owner, times and xattrs, last (its times
	 * change with every entry made in it), unless the target had entries
	 * of its own */
	if (!rc && self && rs.target_new)
		rc = apply_meta(&rs, &rs.dc, "", ".", target, self);
	if (!rc && rs.prog.stripped)
		log_warn("%s: left out %llu setuid/setgid bits, device nodes and security.*/trusted.* xattrs"
			 " of the snapshot (restore --privileged keeps them)", target,
			 (unsigned long long)rs.prog.stripped);
	if (rs.o->progress)
		rs.o->progress(&rs.prog, rs.o->progress_arg);
	msg = rc ? xstrdup(err_msg()) : NULL;	/* the cleanup must not replace it */
	for (size_t i = 0; i < rs.nfiles; i++) {
		struct rfile *f = &rs.files[i];

		if (f->tmp) {
			int pfd = dir_at(&rs, &rs.dc, f->dir);

			if (pfd >= 0)
				unlinkat(pfd, f->tmp, 0);
		}
		free(f->tmp);
		free(f->path);
		free(f->dir);
		free(f->name);
		tree_entry_release(&f->meta);
	}
	for (size_t i = 0; i < rs.ndirs; i++) {
		free(rs.dirs[i].path);
		free(rs.dirs[i].dir);
		free(rs.dirs[i].name);
		tree_entry_release(&rs.dirs[i].meta);
	}
	dircache_free(&rs.dc);
	if (rs.root_fd >= 0)
		close(rs.root_fd);
	free(rs.files);
	free(rs.dirs);
	free(rs.needs);
	free(rs.groups);
	free(rs.group_file);
	for (size_t i = 0; i < rs.nothers; i++) {
		free(rs.others[i].dir);
		free(rs.others[i].name);
	}
	free(rs.others);
	free(rs.error_msg);
	tree_free(&root);
	tree_free(&holder);
	tree_free(&top);
	pthread_mutex_destroy(&rs.lock);
	if (msg) {
		err_set(rc, "%s", msg);
		free(msg);
	}
	return rc;
}
