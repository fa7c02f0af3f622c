/*
 * import.c - filling an empty cache from the store: the head snapshot is
 * restored (sync/restore.c, a full download) into a staging dir inside the
 * cache dir, then its files are renamed into data/ and its tree, modes,
 * owners, times, xattrs and hard links become rows of meta.db.
 *
 * The cache is marked ready only after the whole tree is in and synced:
 * an interrupted fill is thrown away and redone at the next mount.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fetch.h"
#include "fs.h"
#include "fsutil.h"
#include "log.h"
#include "record.h"
#include "repo.h"
#include "restore.h"

/* st_ino of a multiply linked staging file -> its inode in the cache */
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
	struct link_map links;
	uint64_t files, since_commit;
};

static int import_xattrs(struct importer *im, const char *path, uint64_t ino)
{
	char *names, *p;
	ssize_t n = llistxattr(path, NULL, 0);
	int rc = 0;

	if (n <= 0)
		return 0;
	names = xmalloc((size_t)n);
	n = llistxattr(path, names, (size_t)n);
	for (p = names; n > 0 && p < names + n && !rc; p += strlen(p) + 1) {
		ssize_t vlen = lgetxattr(path, p, NULL, 0);
		void *v;

		if (vlen < 0)
			continue;
		v = xmalloc((size_t)vlen + 1);
		vlen = lgetxattr(path, p, v, (size_t)vlen);
		if (vlen >= 0)
			rc = fs_xattr_set(im->fs, ino, p, v, (size_t)vlen, 0);
		free(v);
	}
	free(names);
	return rc;
}

static void set_times(struct fs_inode *in, const struct stat *st)
{
	in->atime = st->st_atim;
	in->mtime = st->st_mtim;
}

static int import_dir(struct importer *im, struct buf *path, struct fs_inode *dir);

static int import_entry(struct importer *im, struct buf *path, struct fs_inode *dir,
			const char *name)
{
	struct fs *fs = im->fs;
	struct fs_inode *in;
	struct stat st;
	size_t base = path->len;
	int rc = 0;

	buf_addc(path, '/');
	buf_adds(path, name);
	if (lstat(buf_str(path), &st)) {
		rc = err_set(-errno, "restored file %s: %s", buf_str(path), strerror(errno));
		goto out;
	}
	if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
		uint64_t ino = link_get(&im->links, (uint64_t)st.st_ino);

		if (ino) {
			in = fs_inode_get(fs, ino, &rc);
			if (in) {
				in->nlink++;
				fs_inode_dirty(fs, in);
				rc = fs_dirent_add(fs, dir, name, ino, in->mode);
			}
			goto out;
		}
	}
	in = fs_inode_new(fs, st.st_mode, st.st_uid, st.st_gid, st.st_rdev);
	set_times(in, &st);
	in->nlink = S_ISDIR(st.st_mode) ? 2 : 1;
	rc = fs_dirent_add(fs, dir, name, in->ino, in->mode);
	if (!rc)
		rc = import_xattrs(im, buf_str(path), in->ino);
	if (rc)
		goto out;
	if (S_ISREG(st.st_mode)) {
		char dname[40];

		fs_data_name(in->ino, dname);
		in->size = (uint64_t)st.st_size;
		in->blocks = (uint64_t)st.st_blocks;
		in->maybe_sparse = 1;	/* blocks as the restore left them */
		if (renameat(AT_FDCWD, buf_str(path), fs->data_fd, dname))
			rc = err_set(-errno, "cannot move %s into %s/data: %s", buf_str(path),
				     fs->cache_dir, strerror(errno));
		if (st.st_nlink > 1)
			link_put(&im->links, (uint64_t)st.st_ino, in->ino);
		im->files++;
	} else if (S_ISLNK(st.st_mode)) {
		char *t = xmalloc((size_t)st.st_size + 1);
		ssize_t n = readlink(buf_str(path), t, (size_t)st.st_size + 1);

		if (n < 0 || n > st.st_size) {
			free(t);
			rc = err_set(-EIO, "restored symlink %s: cannot read it", buf_str(path));
			goto out;
		}
		t[n] = '\0';
		in->target = t;
		in->size = (uint64_t)n;
	} else if (S_ISDIR(st.st_mode)) {
		dir->nlink++;
		rc = import_dir(im, path, in);
		set_times(in, &st);
	}
	fs_inode_dirty(fs, in);
	if (!rc && ++im->since_commit >= 4096) {
		rc = fs_meta_commit(fs, 0);
		im->since_commit = 0;
	}
out:
	buf_setlen(path, base);
	return rc;
}

static int import_dir(struct importer *im, struct buf *path, struct fs_inode *dir)
{
	DIR *d = opendir(buf_str(path));
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d)
		return err_set(-errno, "restored dir %s: %s", buf_str(path), strerror(errno));
	/* names first: entries are moved out of the dir while we go */
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		/* keep dir in the table while its children are added */
		dir->nlookup++;
		if (!rc)
			rc = import_entry(im, path, dir, names[i]);
		dir->nlookup--;
		free(names[i]);
	}
	free(names);
	return rc;
}

static int fill_snapshot(struct fs *fs, struct repo *r, const char *snap_id)
{
	struct record_snapshot rec;
	struct restore_opts ro = { 0 };
	struct index *idx = NULL;
	struct importer im = { .fs = fs };
	struct buf path = BUF_INIT;
	struct fs_inode *root;
	struct stat st;
	char *staging = xasprintf("%s/restore.tmp", fs->cache_dir);
	int rc;

	record_snapshot_init(&rec);
	fsu_rmtree(staging);
	ro.owners = geteuid() == 0;
	rc = fetch_snapshot(r, snap_id, &rec);
	if (!rc)
		rc = fetch_index(r, &idx);
	if (!rc) {
		log_info("restoring snapshot %.8s (generation %llu) into %s", snap_id,
			 (unsigned long long)rec.generation, fs->cache_dir);
		rc = restore_snapshot(r, idx, &rec, staging, &ro);
	}
	if (rc)
		goto out;
	if (lstat(staging, &st)) {
		rc = err_set(-errno, "%s: %s", staging, strerror(errno));
		goto out;
	}
	/* snapshots do not record the root dir itself: as a new workspace */
	rc = fs_init_root(fs, geteuid(), getegid(), 0755, 0);
	root = rc ? NULL : fs_inode_get(fs, FS_ROOT_INO, &rc);
	if (!root)
		goto out;
	buf_adds(&path, staging);
	rc = import_dir(&im, &path, root);
	if (rc)
		goto out;
	root->mtime = st.st_mtim;
	fs_inode_dirty(fs, root);
	rc = fs_meta_set(fs, "base", snap_id);
	if (!rc)
		rc = fs_meta_commit(fs, 0);
	/* every moved cache file and its dir entry on disk before "ready" */
	if (!rc && syncfs(fs->data_fd))
		rc = err_set(-EIO, "sync of %s: %s", fs->cache_dir, strerror(errno));
	if (!rc)
		rc = fs_meta_set(fs, "ready", "1");
	if (!rc)
		rc = fs_meta_commit(fs, 1);
	if (!rc)
		log_info("restored %llu files from snapshot %.8s", (unsigned long long)im.files,
			 snap_id);
out:
	fsu_rmtree(staging);
	free(staging);
	buf_free(&path);
	free(im.links.keys);
	free(im.links.vals);
	index_free(idx);
	record_snapshot_free(&rec);
	return rc;
}

int fs_fill_from_store(struct fs *fs, struct repo *r)
{
	struct repo_head head;
	int rc;

	rc = repo_head_read(r, &head);
	if (rc)
		return rc;
	rc = fs_reset(fs);
	if (!rc)
		rc = fs_meta_set(fs, "workspace", r->ws_id);
	if (rc)
		return rc;
	if (head.generation == 0)
		return fs_init_root(fs, geteuid(), getegid(), 0755, 1);
	return fill_snapshot(fs, r, head.snapshot_id);
}
