/*
 * snapshot.c - one snapshot of a directory (see snapshot.h).
 *
 * Order of writes, which is what makes a snapshot all-or-nothing: packs
 * (data and trees) → index delta → snapshot record → head (If-Match).  A
 * crash before the head leaves packs nobody references, which prune
 * removes; the previous head and everything it needs are never touched.
 *
 * A file is read only when its (size, mtime, ctime, inode, device) differ
 * from its entry in the parent snapshot.  The entry records the stat taken
 * when the file was opened, before reading: a file that changes while it is
 * read is read again (a few times), and if it keeps changing its new ctime
 * makes the next snapshot read it again.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "chunker.h"
#include "err.h"
#include "fetch.h"
#include "fsutil.h"
#include "log.h"
#include "snapshot.h"
#include "tree.h"
#include "upload.h"

#define READ_RETRIES 3
#define CONSOLIDATE_AFTER 32	/* live index objects before a consolidation */

/* A hard-linked inode seen earlier in this snapshot. */
struct link_seen {
	uint64_t dev, ino;
	uint64_t group;
	uint8_t (*blobs)[TREE_ID_LEN];
	size_t nblobs;
};

struct walk {
	struct repo *r;
	struct index *idx;
	struct uploader *up;
	struct chunker *ch;
	size_t chunk_max;
	struct buf data;		/* file read buffer */
	size_t *cut_off, *cut_len;	/* the chunks of one read pass (cut_pass) */
	size_t cut_cap;
	struct buf path;		/* the path being walked, for messages */
	struct link_seen *links;	/* hard-linked inodes seen, by group */
	size_t nlinks, links_cap;
	size_t *link_slots;		/* hash of (dev, ino): index into links + 1 */
	size_t nslots;
	uint64_t next_group;
	struct record_stats st;
	struct snapshot_progress prog;
	const struct snapshot_opts *o;
	size_t rel;			/* 0, or excludes apply: path + rel - 1 is "NAME/..." */
	struct timespec last_progress;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reports progress at most every 100 ms, or now when force. */
static void progress(struct walk *w, const char *path, int force)
{
	static const uint64_t every = 100000000ull;	/* 100 ms */
	uint64_t now = mono_ns();
	uint64_t last = (uint64_t)w->last_progress.tv_sec * 1000000000ull +
			(uint64_t)w->last_progress.tv_nsec;
	struct upload_stats us;

	if (!w->o->progress || (!force && now - last < every))
		return;
	w->last_progress.tv_sec = (time_t)(now / 1000000000ull);
	w->last_progress.tv_nsec = (long)(now % 1000000000ull);
	uploader_stats(w->up, &us);
	w->prog.new_bytes = us.new_bytes;
	w->prog.stored_bytes = us.stored_bytes;
	w->prog.path = path;
	w->o->progress(&w->prog, w->o->progress_arg);
}

static size_t link_slot(uint64_t dev, uint64_t ino, size_t cap)
{
	uint64_t h = (ino ^ (dev * 0x9E3779B97F4A7C15ull)) * 0xff51afd7ed558ccdull;

	return (size_t)(h >> 17) & (cap - 1);
}

static struct link_seen *link_find(struct walk *w, uint64_t dev, uint64_t ino)
{
	if (!w->link_slots)
		return NULL;
	for (size_t i = link_slot(dev, ino, w->nslots); w->link_slots[i];
	     i = (i + 1) & (w->nslots - 1)) {
		struct link_seen *l = &w->links[w->link_slots[i] - 1];

		if (l->ino == ino && l->dev == dev)
			return l;
	}
	return NULL;
}

/* Indexes links[n] in the hash of (dev, ino), growing it at half full. */
static void link_index(struct walk *w, size_t n)
{
	if ((w->nlinks + 1) * 2 > w->nslots) {
		free(w->link_slots);
		w->nslots = w->nslots ? w->nslots * 2 : 128;
		w->link_slots = xcalloc(w->nslots, sizeof(*w->link_slots));
		for (size_t k = 0; k + 1 < w->nlinks; k++)
			link_index(w, k);
	}
	for (size_t i = link_slot(w->links[n].dev, w->links[n].ino, w->nslots);;
	     i = (i + 1) & (w->nslots - 1)) {
		if (!w->link_slots[i]) {
			w->link_slots[i] = n + 1;
			return;
		}
	}
}

static struct link_seen *link_add(struct walk *w, const struct tree_entry *e)
{
	struct link_seen *l;

	if (w->nlinks == w->links_cap) {
		w->links_cap = w->links_cap ? w->links_cap * 2 : 64;
		w->links = xrealloc(w->links, w->links_cap * sizeof(*w->links));
	}
	l = &w->links[w->nlinks++];
	l->dev = e->dev;
	l->ino = e->ino;
	l->group = ++w->next_group;
	l->nblobs = e->nblobs;
	l->blobs = xmalloc((e->nblobs ? e->nblobs : 1) * TREE_ID_LEN);
	if (e->nblobs)
		memcpy(l->blobs, e->blobs, e->nblobs * TREE_ID_LEN);
	link_index(w, w->nlinks - 1);
	return l;
}

/* A symlink, fifo, socket or device with other names: one link group for
 * all of them (docs/format.md gives one to any non-directory). */
static void link_other(struct walk *w, struct tree_entry *e, const struct stat *st)
{
	struct link_seen *l;

	if (st->st_nlink < 2)
		return;
	l = link_find(w, e->dev, e->ino);
	e->link_group = (l ? l : link_add(w, e))->group;
}

/* Reads the xattrs of an open fd (fd >= 0) or of path (no follow). */
static int read_xattrs(struct walk *w, int fd, const char *path, struct tree_entry *e)
{
	struct buf names = BUF_INIT;
	ssize_t n;
	int rc = 0;

	for (;;) {
		n = fd >= 0 ? flistxattr(fd, NULL, 0) : llistxattr(path, NULL, 0);
		if (n <= 0)
			break;
		buf_reset(&names);
		buf_grow(&names, (size_t)n);
		n = fd >= 0 ? flistxattr(fd, (char *)names.data, (size_t)n) :
			      llistxattr(path, (char *)names.data, (size_t)n);
		if (n >= 0 || errno != ERANGE)
			break;
	}
	if (n < 0 && errno != ENOTSUP && errno != ENOENT)
		rc = err_set(-errno, "%s: cannot list xattrs: %s", buf_str(&w->path), strerror(errno));
	for (ssize_t off = 0; !rc && n > 0 && off < n; off += (ssize_t)strlen((char *)names.data + off) + 1) {
		const char *name = (const char *)names.data + off;
		struct tree_xattr *x;
		ssize_t vlen = fd >= 0 ? fgetxattr(fd, name, NULL, 0) : lgetxattr(path, name, NULL, 0);

		if (vlen < 0)
			continue;	/* gone meanwhile */
		e->xattrs = xrealloc(e->xattrs, (e->nxattrs + 1) * sizeof(*e->xattrs));
		x = &e->xattrs[e->nxattrs];
		x->name = xstrdup(name);
		x->value = xmalloc(vlen ? (size_t)vlen : 1);
		vlen = fd >= 0 ? fgetxattr(fd, name, x->value, (size_t)vlen) :
				 lgetxattr(path, name, x->value, (size_t)vlen);
		if (vlen < 0) {
			free(x->name);
			free(x->value);
			continue;
		}
		x->value_len = (size_t)vlen;
		e->nxattrs++;
	}
	buf_free(&names);
	return rc;
}

static int same_file(const struct tree_entry *a, const struct stat *st)
{
	return (uint64_t)st->st_size == a->size && (uint64_t)st->st_ino == a->ino &&
	       (uint64_t)st->st_dev == a->dev &&
	       st->st_mtim.tv_sec == a->mtime.sec && (uint32_t)st->st_mtim.tv_nsec == a->mtime.nsec &&
	       st->st_ctim.tv_sec == a->ctime.sec && (uint32_t)st->st_ctim.tv_nsec == a->ctime.nsec;
}

/* Ids for the chunks of one read pass: the keyed BLAKE2b of a changed
 * large file is most of an incremental snapshot's time, so from
 * PARALLEL_IDS_MIN bytes a second thread hashes the later half (by bytes)
 * while this one hashes the first. */
#define PARALLEL_IDS_MIN (1u << 20)

struct id_part {
	const struct keys_ring *ring;
	const uint8_t *data;
	const size_t *off, *len;
	size_t from, to;
	uint8_t (*ids)[KEYS_BLOB_ID_LEN];
	int rc;
};

static void *id_part_run(void *arg)
{
	struct id_part *p = arg;

	for (size_t i = p->from; !p->rc && i < p->to; i++)
		p->rc = keys_blob_id_typed(p->ring, KEYS_BLOB_DATA, p->data + p->off[i], p->len[i],
					   p->ids[i]);
	return NULL;
}

/* Queues the chunks [off[i], off[i] + len[i]) of data, i < n, in order;
 * ids[i] gets the id of chunk i. */
static int add_chunks(struct walk *w, const uint8_t *data, const size_t *off, const size_t *len,
		      size_t n, uint8_t (*ids)[KEYS_BLOB_ID_LEN])
{
	struct id_part a = { w->r->ring, data, off, len, 0, n, ids, 0 }, b;
	size_t total = 0, half = 0, k = 0;
	pthread_t t;
	int helper = 0;

	for (size_t i = 0; i < n; i++)
		total += len[i];
	if (n >= 2 && total >= PARALLEL_IDS_MIN) {
		while (k < n - 1 && half < total / 2)
			half += len[k++];
		b = a;
		b.from = k;
		a.to = k;
		helper = pthread_create(&t, NULL, id_part_run, &b) == 0;
		if (!helper)
			a.to = n;
	}
	id_part_run(&a);
	if (helper) {
		pthread_join(t, NULL);
		if (!a.rc)
			a.rc = b.rc;
	}
	for (size_t i = 0; !a.rc && i < n; i++)
		a.rc = uploader_add_id(w->up, KEYS_BLOB_DATA, data + off[i], len[i], ids[i]);
	return a.rc;
}

/* Cuts what the buffer holds from pos into chunks (all of it at eof):
 * their offsets and lengths go to w->cut_off, w->cut_len.  Returns how many. */
static size_t cut_pass(struct walk *w, size_t pos, size_t have, int eof)
{
	size_t n = 0;

	while (have - pos > 0) {
		size_t cut = chunker_next(w->ch, w->data.data + pos, have - pos, eof);

		if (cut == 0)
			break;
		if (n == w->cut_cap) {
			w->cut_cap = w->cut_cap ? w->cut_cap * 2 : 16;
			w->cut_off = xrealloc(w->cut_off, w->cut_cap * sizeof(*w->cut_off));
			w->cut_len = xrealloc(w->cut_len, w->cut_cap * sizeof(*w->cut_len));
		}
		w->cut_off[n] = pos;
		w->cut_len[n++] = cut;
		pos += cut;
	}
	return n;
}

/* The chunks of one file so far: ids and lengths. */
struct chunk_list {
	uint8_t (*ids)[KEYS_BLOB_ID_LEN];
	uint32_t *lens;
	size_t n, cap;
};

/* Cuts the have bytes of the read buffer (all of them at eof), queues the
 * chunks and appends them to cl; *used gets the bytes they took. */
static int queue_pass(struct walk *w, size_t have, int eof, struct chunk_list *cl, size_t *used)
{
	size_t ncut = cut_pass(w, 0, have, eof);
	int rc;

	if (cl->n + ncut > cl->cap) {
		cl->cap = cl->n + ncut + 8;
		cl->ids = xrealloc(cl->ids, cl->cap * KEYS_BLOB_ID_LEN);
		cl->lens = xrealloc(cl->lens, cl->cap * sizeof(*cl->lens));
	}
	rc = add_chunks(w, w->data.data, w->cut_off, w->cut_len, ncut, cl->ids + cl->n);
	for (size_t i = 0; i < ncut; i++)
		cl->lens[cl->n + i] = (uint32_t)w->cut_len[i];
	cl->n += ncut;
	*used = ncut ? w->cut_off[ncut - 1] + w->cut_len[ncut - 1] : 0;
	return rc;
}

/* Chunks and queues the content of an open file; fills e->blobs. */
static int read_content(struct walk *w, int fd, struct tree_entry *e)
{
	struct chunk_list cl = { 0 };
	size_t have = 0;
	int eof = 0, rc = 0;

	buf_grow(&w->data, 2 * w->chunk_max);
	while (!rc) {
		size_t pos = 0;

		while (!eof && have < 2 * w->chunk_max) {
			ssize_t n = read(fd, w->data.data + have, 2 * w->chunk_max - have);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				rc = err_set(-errno, "%s: read: %s", buf_str(&w->path), strerror(errno));
				break;
			}
			if (n == 0)
				eof = 1;
			have += (size_t)n;
			w->prog.bytes += (uint64_t)n;
			w->prog.read_bytes += (uint64_t)n;
		}
		if (!rc)
			rc = queue_pass(w, have, eof, &cl, &pos);
		memmove(w->data.data, w->data.data + pos, have - pos);
		have -= pos;
		if (eof && have == 0)
			break;
		progress(w, buf_str(&w->path), 0);
	}
	free(cl.lens);
	if (rc) {
		free(cl.ids);
		return rc;
	}
	free(e->blobs);
	e->blobs = cl.ids;
	e->nblobs = cl.n;
	return 0;
}

/* A regular file whose content must be read: open, read, check it held still. */
static int snapshot_file(struct walk *w, int dirfd, const char *name, struct tree_entry *e)
{
	for (int attempt = 0;; attempt++) {
		struct stat before, after;
		int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
		int rc;

		if (fd < 0 && errno == EPERM)
			fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT ? -ENOENT :
				err_set(-errno, "%s: cannot open: %s", buf_str(&w->path), strerror(errno));
		if (fstat(fd, &before) < 0 || !S_ISREG(before.st_mode)) {
			close(fd);
			return -ENOENT;	/* replaced by something else meanwhile */
		}
		tree_entry_from_stat(e, &before);
		for (size_t i = 0; i < e->nxattrs; i++) {
			free(e->xattrs[i].name);
			free(e->xattrs[i].value);
		}
		e->nxattrs = 0;
		rc = read_xattrs(w, fd, NULL, e);
		if (!rc)
			rc = read_content(w, fd, e);
		if (!rc && fstat(fd, &after) < 0)
			rc = -errno;
		close(fd);
		if (rc)
			return rc;
		if (after.st_size == before.st_size &&
		    after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
		    after.st_mtim.tv_nsec == before.st_mtim.tv_nsec &&
		    after.st_ctim.tv_sec == before.st_ctim.tv_sec &&
		    after.st_ctim.tv_nsec == before.st_ctim.tv_nsec)
			break;
		if (attempt + 1 == READ_RETRIES) {
			log_warn("%s changed while it was read; keeping what was read, the next snapshot reads it again",
				 buf_str(&w->path));
			break;
		}
	}
	w->st.new_files++;
	w->prog.read_files++;
	return 0;
}

static int walk_dir(struct walk *w, int dirfd, const struct tree *parent,
		    uint8_t id_out[KEYS_BLOB_ID_LEN]);

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the names of a directory, sorted. */
static int list_dir(struct walk *w, int dirfd, char ***names_out, size_t *n_out)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return err_set(-errno, "%s: cannot read directory: %s", buf_str(&w->path), strerror(errno));
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	*names_out = names;
	*n_out = n;
	return 0;
}

/* Fills e for the child name of dirfd; returns -ENOENT when it vanished. */
static int walk_entry(struct walk *w, int dirfd, const char *name, const struct tree *parent,
		      struct tree_entry *e)
{
	const struct tree_entry *prev = parent ? tree_find(parent, name) : NULL;
	struct stat st;
	int rc = repo_stop_check(w->r);

	if (rc)
		return rc;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? -ENOENT :
			err_set(-errno, "%s: cannot stat: %s", buf_str(&w->path), strerror(errno));
	e->name = (char *)name;
	rc = tree_entry_from_stat(e, &st);
	if (rc)
		return rc;
	if (S_ISDIR(st.st_mode)) {
		struct tree sub = TREE_INIT;
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			return errno == ENOENT ? -ENOENT :
				err_set(-errno, "%s: cannot open directory: %s", buf_str(&w->path), strerror(errno));
		rc = read_xattrs(w, fd, NULL, e);
		if (!rc && prev && prev->type == TREE_DIR)
			rc = fetch_tree(w->r, w->idx, prev->subtree, &sub);
		if (!rc)
			rc = walk_dir(w, fd, prev && prev->type == TREE_DIR ? &sub : NULL, e->subtree);
		tree_free(&sub);
		close(fd);
		w->st.dirs++;
		w->prog.dirs++;
		return rc;
	}
	if (S_ISREG(st.st_mode)) {
		struct link_seen *l = st.st_nlink > 1 ? link_find(w, e->dev, e->ino) : NULL;

		w->st.files++;
		w->st.bytes += (uint64_t)st.st_size;
		w->prog.files++;
		if (l) {
			/* another name of an inode this snapshot has read already */
			e->link_group = l->group;
			e->nblobs = l->nblobs;
			e->blobs = xmalloc((l->nblobs ? l->nblobs : 1) * TREE_ID_LEN);
			if (l->nblobs)
				memcpy(e->blobs, l->blobs, l->nblobs * TREE_ID_LEN);
			w->prog.bytes += (uint64_t)st.st_size;
			return read_xattrs(w, -1, buf_str(&w->path), e);
		}
		if (prev && prev->type == TREE_REG && same_file(prev, &st)) {
			/* unchanged since the parent: never opened */
			e->nblobs = prev->nblobs;
			e->blobs = xmalloc((prev->nblobs ? prev->nblobs : 1) * TREE_ID_LEN);
			if (prev->nblobs)
				memcpy(e->blobs, prev->blobs, prev->nblobs * TREE_ID_LEN);
			tree_xattrs_dup(e, prev);
			w->prog.bytes += (uint64_t)st.st_size;
		} else {
			rc = snapshot_file(w, dirfd, name, e);
			if (rc)
				return rc;
		}
		if (st.st_nlink > 1)
			e->link_group = link_add(w, e)->group;
		return 0;
	}
	if (S_ISLNK(st.st_mode)) {
		char *target = xmalloc((size_t)st.st_size + 2);
		ssize_t n = readlinkat(dirfd, name, target, (size_t)st.st_size + 1);

		if (n < 0 || (size_t)n > (size_t)st.st_size) {
			free(target);
			return n < 0 && errno == ENOENT ? -ENOENT :
				err_set(-EIO, "%s: cannot read the symlink", buf_str(&w->path));
		}
		target[n] = '\0';
		e->target = target;
		w->st.symlinks++;
		link_other(w, e, &st);
		return read_xattrs(w, -1, buf_str(&w->path), e);
	}
	w->st.others++;
	link_other(w, e, &st);
	return read_xattrs(w, -1, buf_str(&w->path), e);
}

/* Whether the entry at w->path is one the caller left out. */
static int excluded(const struct walk *w)
{
	if (!w->rel)
		return 0;
	for (size_t i = 0; i < w->o->nexclude; i++)
		if (fnmatch(w->o->exclude[i], buf_str(&w->path) + w->rel - 1, FNM_PATHNAME) == 0)
			return 1;
	return 0;
}

static int walk_dir(struct walk *w, int dirfd, const struct tree *parent,
		    uint8_t id_out[KEYS_BLOB_ID_LEN])
{
	struct tree t = TREE_INIT;
	struct buf enc = BUF_INIT;
	size_t base = w->path.len, n = 0;
	char **names = NULL;
	int rc = list_dir(w, dirfd, &names, &n);

	for (size_t i = 0; !rc && i < n; i++) {
		struct tree_entry e;

		memset(&e, 0, sizeof(e));
		buf_setlen(&w->path, base);
		buf_printf(&w->path, "/%s", names[i]);
		rc = excluded(w) ? -ENOENT : walk_entry(w, dirfd, names[i], parent, &e);
		if (rc == -ENOENT) {
			rc = 0;		/* vanished while we looked: it is not part of this snapshot */
			err_clear();
		} else if (!rc) {
			rc = tree_add(&t, &e);
			if (rc)
				err_prefix(rc, "%s", buf_str(&w->path));
		}
		e.name = NULL;
		tree_entry_release(&e);
		progress(w, NULL, 0);
	}
	buf_setlen(&w->path, base);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (!rc)
		rc = tree_encode(&t, &enc);
	if (!rc)
		rc = uploader_add(w->up, KEYS_BLOB_TREE, enc.data, enc.len, id_out);
	tree_free(&t);
	buf_free(&enc);
	return rc;
}

/* Walks dir with parent_root (a tree id, or NULL) as its previous state;
 * *self gets dir's own entry (its metadata and xattrs, the walk's tree as
 * its subtree; free with tree_entry_release). */
static int snapshot_root(struct walk *w, const char *dir, const uint8_t *parent_root,
			 uint8_t id_out[KEYS_BLOB_ID_LEN], struct tree_entry *self)
{
	struct tree parent = TREE_INIT;
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	memset(self, 0, sizeof(*self));
	if (fd < 0)
		return err_set(-errno, "%s: cannot open: %s", dir, strerror(errno));
	if (fstat(fd, &st) < 0)
		rc = err_set(-errno, "%s: cannot stat: %s", dir, strerror(errno));
	if (!rc)
		rc = tree_entry_from_stat(self, &st);
	if (!rc)
		rc = read_xattrs(w, fd, NULL, self);
	if (!rc && parent_root)
		rc = fetch_tree(w->r, w->idx, parent_root, &parent);
	buf_reset(&w->path);
	buf_adds(&w->path, dir);
	while (w->path.len > 1 && w->path.data[w->path.len - 1] == '/')
		buf_setlen(&w->path, w->path.len - 1);
	if (!rc)
		rc = walk_dir(w, fd, parent_root ? &parent : NULL, id_out);
	if (!rc)
		memcpy(self->subtree, id_out, KEYS_BLOB_ID_LEN);
	tree_free(&parent);
	close(fd);
	return rc;
}

static int count_live(const char *obj, enum index_obj_state state,
		      const char *const *packs, size_t n_packs, void *arg)
{
	(void)obj;
	(void)packs;
	(void)n_packs;
	*(size_t *)arg += state == INDEX_OBJ_LIVE;
	return 0;
}

/* Writes the index delta, consolidating when deltas pile up. */
static int write_index(struct walk *w)
{
	const struct keys_key *dk;
	size_t live = 0;
	int rc = keys_ring_current(w->r->ring, &dk);

	if (!rc)
		rc = index_write_delta(w->idx, w->r->store, dk, w->r->ws_id, NULL);
	if (rc)
		return rc;
	index_foreach_object(w->idx, count_live, &live);
	if (live > CONSOLIDATE_AFTER) {
		rc = index_write_consolidated(w->idx, w->r->store, dk, w->r->ws_id, NULL, NULL);
		if (!rc)
			rc = repo_lease_confirm(w->r);
		if (!rc)
			rc = index_delete_superseded(w->idx, w->r->store, NULL);
		if (rc)
			log_warn("index consolidation failed (the deltas stay, which is fine): %s", err_msg());
		rc = 0;
	}
	return rc;
}

static int commit(struct walk *w, const struct repo_head *head, const uint8_t ws_root[KEYS_BLOB_ID_LEN],
		  const uint8_t agent_root[KEYS_BLOB_ID_LEN], const uint8_t *top, uint64_t start,
		  const char *parent, int no_head, struct snapshot_result *res)
{
	struct record_snapshot rec;
	/* above every generation ever seen, even past an accepted rollback */
	struct record_head cur = { .generation = head->generation > w->r->gen_floor ?
				   head->generation : w->r->gen_floor }, next;
	struct buf plain = BUF_INIT;
	char name[16 + RECORD_ID_SIZE];
	struct timespec now;
	int rc;

	record_snapshot_init(&rec);
	clock_gettime(CLOCK_REALTIME, &now);
	rc = record_id_new(res->id);
	if (!rc)
		rc = record_head_next(cur.generation ? &cur : NULL, res->id, &next);
	if (!rc)
		rc = record_snapshot_set_root(&rec, RECORD_ROOT_WORKSPACE, ws_root);
	if (!rc)
		rc = record_snapshot_set_root(&rec, RECORD_ROOT_AGENT_CONFIG, agent_root);
	if (!rc && top)
		rc = record_snapshot_set_root(&rec, RECORD_ROOT_TOP, top);
	for (size_t i = 0; !rc && i < w->o->ntags; i++)
		rc = record_snapshot_add_tag(&rec, w->o->tags[i]);
	if (rc)
		goto out;
	snprintf(rec.parent, sizeof(rec.parent), "%s", parent ? parent : head->snapshot_id);
	rec.time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	gethostname(rec.host, sizeof(rec.host) - 1);
	/* a snapshot beside the head (keep-local) takes the head's number */
	rec.generation = no_head ? head->generation : next.generation;
	w->st.duration_ns = mono_ns() - start;
	rec.stats = w->st;
	rc = record_snapshot_encode(&rec, &plain);
	if (!rc)
		rc = record_snapshot_name(res->id, name, sizeof(name));
	if (!rc)
		rc = repo_put_sealed(w->r, KEYS_OBJ_SNAPSHOT, name, plain.data, plain.len,
				     STORE_IF_NONE_MATCH, NULL, NULL);
	if (!rc && !no_head && w->o->before_head)
		rc = w->o->before_head(res->id, w->o->before_head_arg);
	if (!rc && !no_head)
		rc = repo_head_write(w->r, head, next.generation, res->id);
	if (!rc) {
		res->generation = rec.generation;
		res->stats = rec.stats;
	}
out:
	record_snapshot_free(&rec);
	buf_free(&plain);
	return rc;
}

struct snapshot_job {
	struct walk w;
	struct record_snapshot parent;
	struct repo_head head;
	const uint8_t *parent_ws, *parent_agent;
	uint8_t top[KEYS_BLOB_ID_LEN];	/* the top tree, when has_top */
	int has_top;
	uint64_t start;
	int own_lease;
	int index_taken;
};

int snapshot_job_begin(struct repo *r, const struct snapshot_opts *o, struct snapshot_job **out)
{
	static const struct snapshot_opts no_opts;
	struct snapshot_job *j = xcalloc(1, sizeof(*j));
	struct chunker_params cp;
	int rc;

	j->w.r = r;
	j->w.o = o ? o : &no_opts;
	j->start = mono_ns();
	j->own_lease = !r->lease;
	record_snapshot_init(&j->parent);
	rc = j->own_lease ? repo_lease_acquire(r) : 0;
	if (rc)
		j->own_lease = 0;
	if (!rc)
		rc = repo_head_read(r, &j->head);
	if (!rc)
		rc = fetch_index(r, &j->w.idx);
	if (!rc && j->head.generation) {
		rc = fetch_snapshot(r, j->head.snapshot_id, &j->parent);
		j->parent_ws = record_snapshot_root(&j->parent, RECORD_ROOT_WORKSPACE);
		j->parent_agent = record_snapshot_root(&j->parent, RECORD_ROOT_AGENT_CONFIG);
	}
	if (!rc)
		rc = chunker_new_ring(r->ring, NULL, &j->w.ch);
	if (!rc) {
		chunker_params_get(j->w.ch, &cp);
		j->w.chunk_max = cp.max;
		rc = uploader_new(r, j->w.idx, j->w.o->encoders, j->w.o->senders, &j->w.up);
	}
	if (rc) {
		snapshot_job_free(j);
		return rc;
	}
	*out = j;
	return 0;
}

const char *snapshot_job_parent_id(const struct snapshot_job *j)
{
	return j->head.generation ? j->head.snapshot_id : NULL;
}

const uint8_t *snapshot_job_parent_root(const struct snapshot_job *j, const char *name)
{
	if (!strcmp(name, RECORD_ROOT_WORKSPACE))
		return j->parent_ws;
	if (!strcmp(name, RECORD_ROOT_AGENT_CONFIG))
		return j->parent_agent;
	return j->head.generation ? record_snapshot_root(&j->parent, name) : NULL;
}

int snapshot_job_top(struct snapshot_job *j, const struct tree_entry *ws, uint8_t id_out[KEYS_BLOB_ID_LEN])
{
	struct tree t = TREE_INIT;
	struct tree_entry e = *ws;
	struct buf enc = BUF_INIT;
	int rc;

	e.name = (char *)RECORD_ROOT_WORKSPACE;
	e.type = TREE_DIR;
	e.link_group = 0;
	e.target = NULL;
	e.blobs = NULL;
	e.nblobs = 0;
	rc = tree_add(&t, &e);	/* a deep copy */
	if (!rc)
		rc = tree_encode(&t, &enc);
	if (!rc)
		rc = uploader_add(j->w.up, KEYS_BLOB_TREE, enc.data, enc.len, j->top);
	if (!rc) {
		j->has_top = 1;
		if (id_out)
			memcpy(id_out, j->top, KEYS_BLOB_ID_LEN);
	}
	tree_free(&t);
	buf_free(&enc);
	return rc;
}

void snapshot_job_keep_top(struct snapshot_job *j, const uint8_t id[KEYS_BLOB_ID_LEN])
{
	memcpy(j->top, id, KEYS_BLOB_ID_LEN);
	j->has_top = 1;
}

struct index *snapshot_job_index(struct snapshot_job *j)
{
	return j->w.idx;
}

struct record_stats *snapshot_job_stats(struct snapshot_job *j)
{
	return &j->w.st;
}

int snapshot_job_add(struct snapshot_job *j, enum keys_blob_type type, const void *data, size_t len,
		     uint8_t id_out[KEYS_BLOB_ID_LEN])
{
	return uploader_add(j->w.up, type, data, len, id_out);
}

int snapshot_job_content(struct snapshot_job *j, int fd, uint64_t size, const char *what,
			 uint8_t (**ids)[KEYS_BLOB_ID_LEN], uint32_t **sizes, size_t *n)
{
	struct walk *w = &j->w;
	struct chunk_list cl = { 0 };
	size_t have = 0;
	uint64_t pos_file = 0;
	int rc = 0;

	buf_grow(&w->data, 2 * w->chunk_max);
	while (!rc) {
		size_t pos = 0, room = 2 * w->chunk_max - have;
		int eof;

		if (room > size - pos_file)
			room = (size_t)(size - pos_file);
		if (room) {
			if (fd < 0)
				memset(w->data.data + have, 0, room);
			else if ((rc = fsu_pread_all(fd, w->data.data + have, room, (off_t)pos_file)) != 0) {
				rc = err_set(rc, "%s: read: %s", what, strerror(-rc));
				break;
			}
			have += room;
			pos_file += room;
		}
		eof = pos_file == size;
		if (!rc)
			rc = queue_pass(w, have, eof, &cl, &pos);
		memmove(w->data.data, w->data.data + pos, have - pos);
		have -= pos;
		if (eof && have == 0)
			break;
	}
	if (rc) {
		free(cl.ids);
		free(cl.lens);
		return rc;
	}
	*ids = cl.ids;
	*sizes = cl.lens;
	*n = cl.n;
	return 0;
}

int snapshot_job_paths(struct snapshot_job *j, const char *const *paths, size_t n,
		       const uint8_t *parent_root, uint8_t id_out[KEYS_BLOB_ID_LEN])
{
	struct walk *w = &j->w;
	struct tree parent = TREE_INIT, t = TREE_INIT;
	struct buf enc = BUF_INIT;
	int rc = parent_root ? fetch_tree(w->r, w->idx, parent_root, &parent) : 0;

	for (size_t i = 0; !rc && i < n; i++) {
		char *copy = xstrdup(paths[i]), *slash, *dir, *name;
		struct tree_entry e;
		int dfd;

		while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
			copy[strlen(copy) - 1] = '\0';
		slash = strrchr(copy, '/');
		dir = slash ? (slash == copy ? "/" : copy) : ".";
		name = slash ? slash + 1 : copy;
		if (slash && slash != copy)
			*slash = '\0';
		memset(&e, 0, sizeof(e));
		buf_reset(&w->path);
		buf_adds(&w->path, paths[i]);
		w->rel = (size_t)(name - copy) + 1;	/* "NAME/..." */
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			rc = err_set(-errno, "%s: cannot open: %s", dir, strerror(errno));
		} else {
			rc = walk_entry(w, dfd, name, parent_root ? &parent : NULL, &e);
			close(dfd);
		}
		if (rc == -ENOENT) {
			rc = 0;	/* not there (yet): not part of this snapshot */
			err_clear();
		} else if (!rc) {
			rc = tree_add(&t, &e);
			if (rc)
				err_prefix(rc, "%s", paths[i]);
		}
		e.name = NULL;
		tree_entry_release(&e);
		free(copy);
	}
	if (!rc)
		rc = tree_encode(&t, &enc);
	if (!rc)
		rc = uploader_add(w->up, KEYS_BLOB_TREE, enc.data, enc.len, id_out);
	w->rel = 0;
	tree_free(&parent);
	tree_free(&t);
	buf_free(&enc);
	return rc;
}

/* The packs, the index and the record, then the head (unless no_head). */
static int job_commit(struct snapshot_job *j, const uint8_t ws_root[KEYS_BLOB_ID_LEN],
		      const uint8_t agent_root[KEYS_BLOB_ID_LEN], const char *parent, int no_head,
		      struct snapshot_result *res)
{
	struct walk *w = &j->w;
	struct upload_stats us;
	int rc = uploader_flush(w->up);

	if (!rc) {
		uploader_stats(w->up, &us);
		w->st.new_bytes = us.new_bytes;
		w->st.new_blobs = us.new_blobs;
		w->st.new_trees = us.new_trees;
		w->st.stored_bytes = us.stored_bytes;
		progress(w, NULL, 1);
		rc = write_index(w);
	}
	if (!rc)
		rc = commit(w, &j->head, ws_root, agent_root, j->has_top ? j->top : NULL, j->start,
			    parent, no_head, res);
	if (!rc)
		fetch_index_save(w->r, w->idx);
	return rc;
}

int snapshot_job_commit(struct snapshot_job *j, const uint8_t ws_root[KEYS_BLOB_ID_LEN],
			const uint8_t agent_root[KEYS_BLOB_ID_LEN], const char *parent, int no_head,
			struct snapshot_result *res)
{
	return job_commit(j, ws_root, agent_root, parent, no_head, res);
}

struct index *snapshot_job_take_index(struct snapshot_job *j)
{
	j->index_taken = 1;
	return j->w.idx;
}

void snapshot_job_free(struct snapshot_job *j)
{
	struct walk *w;

	if (!j)
		return;
	w = &j->w;
	uploader_free(w->up);
	chunker_free(w->ch);
	if (!j->index_taken)
		index_free(w->idx);
	record_snapshot_free(&j->parent);
	for (size_t i = 0; i < w->nlinks; i++)
		free(w->links[i].blobs);
	free(w->links);
	free(w->link_slots);
	buf_free(&w->data);
	free(w->cut_off);
	free(w->cut_len);
	buf_free(&w->path);
	if (j->own_lease)
		repo_lease_release(w->r);
	free(j);
}

int snapshot_dir(struct repo *r, const char *dir, const struct snapshot_opts *o,
		 struct snapshot_result *res)
{
	struct snapshot_job *j;
	struct tree_entry self;
	uint8_t ws_root[KEYS_BLOB_ID_LEN], agent_root[KEYS_BLOB_ID_LEN];
	int rc;

	memset(res, 0, sizeof(*res));
	rc = snapshot_job_begin(r, o, &j);
	if (rc)
		return rc;
	rc = snapshot_root(&j->w, dir, j->parent_ws, ws_root, &self);
	if (!rc)
		rc = snapshot_job_top(j, &self, NULL);
	tree_entry_release(&self);
	if (!rc && o->nagent_config) {
		struct record_stats ws_stats = j->w.st;

		rc = snapshot_job_paths(j, o->agent_config, o->nagent_config, j->parent_agent,
					agent_root);
		j->w.st = ws_stats;	/* the statistics describe the workspace root */
	} else if (!rc) {
		rc = snapshot_job_paths(j, NULL, 0, NULL, agent_root);	/* an empty tree */
	}
	if (!rc)
		rc = job_commit(j, ws_root, agent_root, NULL, 0, res);
	snapshot_job_free(j);
	return rc;
}
