/*
 * import.c - filling a cache from a snapshot, lazily: the snapshot's trees
 * (a few GETs of tree packs) become inodes, entries and xattrs in meta.db,
 * and each file gets its chunk list (blob ids and sizes) with no data.  A
 * read fetches what it needs (lazy.c).
 *
 * The cache is marked ready only once the whole tree is in: an interrupted
 * fill is thrown away and redone at the next mount.  Inode times and ctime
 * come from the snapshot, so a directory nobody touched encodes to the same
 * tree blob at the next snapshot and costs nothing to store.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "blob.h"
#include "buf.h"
#include "err.h"
#include "fetch.h"
#include "fs.h"
#include "log.h"
#include "record.h"
#include "repo.h"

/* link group of the snapshot -> the inode made for its first name */
struct link_map {
	uint64_t *keys, *vals;
	size_t cap, n;
};

static uint64_t *link_slot(struct link_map *m, uint64_t key)
{
	size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull) & (m->cap - 1);

	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	return &m->keys[i];
}

static void link_put(struct link_map *m, uint64_t key, uint64_t val)
{
	uint64_t *k;

	if ((m->n + 1) * 2 > m->cap) {
		struct link_map old = *m;

		m->cap = m->cap ? m->cap * 2 : 256;
		m->keys = xcalloc(m->cap, sizeof(*m->keys));
		m->vals = xcalloc(m->cap, sizeof(*m->vals));
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.keys[i])
				link_put(m, old.keys[i], old.vals[i]);
		free(old.keys);
		free(old.vals);
	}
	k = link_slot(m, key);
	if (!*k)
		m->n++;
	*k = key;
	m->vals[k - m->keys] = val;
}

static uint64_t link_get(struct link_map *m, uint64_t key)
{
	uint64_t *k;

	if (!m->cap)
		return 0;
	k = link_slot(m, key);
	return *k ? m->vals[k - m->keys] : 0;
}

struct importer {
	struct fs *fs;
	struct repo *r;
	struct index *idx;
	struct link_map links;
	struct buf path;	/* for messages */
	uint64_t files, bytes, since_commit;
};

static mode_t type_mode(uint8_t type)
{
	switch (type) {
	case TREE_REG: return S_IFREG;
	case TREE_DIR: return S_IFDIR;
	case TREE_SYMLINK: return S_IFLNK;
	case TREE_CHR: return S_IFCHR;
	case TREE_BLK: return S_IFBLK;
	case TREE_FIFO: return S_IFIFO;
	default: return S_IFSOCK;
	}
}

/* The chunk list of a file: sizes from the index, checked against its size. */
static int import_content(struct importer *im, struct fs_inode *in, const struct tree_entry *e)
{
	uint32_t *sizes = xmalloc((e->nblobs ? e->nblobs : 1) * sizeof(*sizes));
	uint64_t total = 0;
	int rc = 0;

	for (size_t i = 0; i < e->nblobs; i++) {
		struct index_entry ent;

		if (index_lookup(im->idx, e->blobs[i], &ent)) {
			char hex[BLOB_ID_HEX_SIZE];

			blob_id_hex(e->blobs[i], hex);
			rc = err_set(-EBADMSG, "%s: data blob %.16s is missing from the index:"
				     " run 'cairn check'", buf_str(&im->path), hex);
			goto out;
		}
		sizes[i] = ent.e.ref.raw_length;
		total += sizes[i];
	}
	if (total != e->size) {
		rc = err_set(-EBADMSG, "%s: its blobs hold %llu bytes, its entry says %llu:"
			     " run 'cairn check'", buf_str(&im->path), (unsigned long long)total,
			     (unsigned long long)e->size);
		goto out;
	}
	/* an empty bitmap: no chunk is local yet */
	rc = fs_content_put(im->fs, in->ino, (const uint8_t (*)[32])e->blobs, sizes, e->nblobs,
			    e->nblobs ? (const uint8_t *)"" : NULL, 0);
	in->state = FS_ST_CLEAN | (e->nblobs ? FS_ST_PARTIAL : 0);
	in->size = e->size;
	in->maybe_sparse = 1;
	in->blocks_stale = 1;
	im->files++;
	im->bytes += e->size;
out:
	free(sizes);
	return rc;
}

static int import_tree(struct importer *im, struct fs_inode *dir, const uint8_t id[TREE_ID_LEN]);

static int import_entry(struct importer *im, struct fs_inode *dir, const struct tree_entry *e)
{
	struct fs *fs = im->fs;
	struct fs_inode *in;
	size_t base = im->path.len;
	int rc = 0;

	buf_addc(&im->path, '/');
	buf_adds(&im->path, e->name);
	if (e->type != TREE_DIR && e->link_group) {
		uint64_t ino = link_get(&im->links, e->link_group);

		if (ino) {
			in = fs_inode_get(fs, ino, &rc);
			if (in) {
				in->nlink++;
				fs_inode_dirty(fs, in);
				rc = fs_dirent_add(fs, dir, e->name, ino, in->mode);
			}
			goto out;
		}
	}
	in = fs_inode_new(fs, type_mode(e->type) | e->mode, e->uid, e->gid,
			  makedev(e->rdev_major, e->rdev_minor));
	in->mtime.tv_sec = e->mtime.sec;
	in->mtime.tv_nsec = e->mtime.nsec;
	in->ctime.tv_sec = e->ctime.sec;
	in->ctime.tv_nsec = e->ctime.nsec;
	in->atime = in->mtime;
	in->nlink = e->type == TREE_DIR ? 2 : 1;
	rc = fs_dirent_add(fs, dir, e->name, in->ino, in->mode);
	for (size_t i = 0; !rc && i < e->nxattrs; i++)
		rc = fs_xattr_set(fs, in->ino, e->xattrs[i].name, e->xattrs[i].value,
				  e->xattrs[i].value_len, 0);
	if (!rc && e->type != TREE_DIR && e->link_group)
		link_put(&im->links, e->link_group, in->ino);
	if (!rc && e->type == TREE_REG) {
		rc = import_content(im, in, e);
	} else if (!rc && e->type == TREE_SYMLINK) {
		in->target = xstrdup(e->target);
		in->size = strlen(e->target);
	} else if (!rc && e->type == TREE_DIR) {
		dir->nlink++;
		in->nlookup++;	/* kept in the table while its entries go in */
		rc = import_tree(im, in, e->subtree);
		in->nlookup--;
	}
	fs_inode_dirty(fs, in);
	if (!rc && ++im->since_commit >= 4096) {
		rc = fs_meta_commit(fs, 0);
		im->since_commit = 0;
	}
out:
	buf_setlen(&im->path, base);
	return rc;
}

static int import_tree(struct importer *im, struct fs_inode *dir, const uint8_t id[TREE_ID_LEN])
{
	struct tree t = TREE_INIT;
	int rc = fetch_tree(im->r, im->idx, id, &t);

	if (rc)
		return err_prefix(rc, "%s", im->path.len ? buf_str(&im->path) : "/");
	for (size_t i = 0; !rc && i < t.count; i++)
		rc = import_entry(im, dir, &t.entries[i]);
	tree_free(&t);
	return rc;
}

/* Records snapshot rec (id) as the base of the cache. */
static int set_base(struct fs *fs, const char *id, const struct record_snapshot *rec)
{
	char num[32];
	int rc = fs_meta_set(fs, "base", id);

	snprintf(num, sizeof(num), "%llu", (unsigned long long)rec->generation);
	if (!rc)
		rc = fs_meta_set(fs, "base_generation", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)(rec->time_ns / 1000000000ull));
	if (!rc)
		rc = fs_meta_set(fs, "snapshot_time", num);
	if (!rc)
		rc = fs_meta_set(fs, "changed", "0");
	fs->changed = 0;
	return rc;
}

static int fill_snapshot(struct fs *fs, struct repo *r, struct index *idx, const char *snap_id)
{
	struct record_snapshot rec;
	struct importer im = { .fs = fs, .r = r, .idx = idx };
	struct fs_inode *root = NULL;
	struct tree top = TREE_INIT;
	const struct tree_entry *self = NULL;
	const uint8_t *root_id;
	int rc;

	record_snapshot_init(&rec);
	rc = fetch_snapshot(r, snap_id, &rec);
	if (rc)
		goto out;
	root_id = record_snapshot_root(&rec, RECORD_ROOT_WORKSPACE);
	if (!root_id) {
		rc = err_set(-EBADMSG, "snapshot %s has no workspace root: run 'cairn check'", snap_id);
		goto out;
	}
	log_info("mounting snapshot %.8s (generation %llu) lazily", snap_id,
		 (unsigned long long)rec.generation);
	rc = fetch_root_entry(r, idx, &rec, RECORD_ROOT_WORKSPACE, &top, &self);
	if (!rc)
		rc = fs_init_root(fs, geteuid(), getegid(), 0755, 0);
	root = rc ? NULL : fs_inode_get(fs, FS_ROOT_INO, &rc);
	if (!root)
		goto out;
	if (self) {
		/* the root as it was */
		root->mode = S_IFDIR | self->mode;
		root->uid = self->uid;
		root->gid = self->gid;
		root->mtime.tv_sec = self->mtime.sec;
		root->mtime.tv_nsec = self->mtime.nsec;
		root->ctime.tv_sec = self->ctime.sec;
		root->ctime.tv_nsec = self->ctime.nsec;
		for (size_t i = 0; !rc && i < self->nxattrs; i++)
			rc = fs_xattr_set(fs, FS_ROOT_INO, self->xattrs[i].name, self->xattrs[i].value,
					  self->xattrs[i].value_len, 0);
	} else {
		/* a snapshot from before the top tree: as a new workspace */
		root->mtime.tv_sec = (time_t)(rec.time_ns / 1000000000ull);
		root->mtime.tv_nsec = (long)(rec.time_ns % 1000000000ull);
		root->ctime = root->mtime;
	}
	root->atime = root->mtime;
	if (!rc)
		rc = import_tree(&im, root, root_id);
	if (rc)
		goto out;
	fs_inode_dirty(fs, root);
	rc = set_base(fs, snap_id, &rec);
	if (!rc)
		rc = fs_meta_commit(fs, 0);
	if (!rc)
		rc = fs_meta_set(fs, "ready", "1");
	if (!rc)
		rc = fs_meta_commit(fs, 1);
	if (!rc)
		log_info("%llu files, %llu bytes, to fetch on first read from snapshot %.8s",
			 (unsigned long long)im.files, (unsigned long long)im.bytes, snap_id);
out:
	tree_free(&top);
	buf_free(&im.path);
	free(im.links.keys);
	free(im.links.vals);
	record_snapshot_free(&rec);
	return rc;
}

int fs_fill_from_store(struct fs *fs, struct repo *r, struct index *idx, const char *snap_id)
{
	struct repo_head head;
	int rc;

	if (!snap_id) {
		rc = repo_head_read(r, &head);
		if (rc)
			return rc;
		snap_id = head.generation ? head.snapshot_id : NULL;
	}
	rc = fs_reset(fs);
	if (!rc)
		rc = fs_meta_set(fs, "workspace", r->ws_id);
	if (rc)
		return rc;
	if (!snap_id) {
		fs->changed = 0;
		return fs_init_root(fs, geteuid(), getegid(), 0755, 1);
	}
	return fill_snapshot(fs, r, idx, snap_id);
}
