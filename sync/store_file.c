/*
 * store_file.c - the file:// store: one file per object under a directory.
 *
 * Invariants that make it crash-safe and atomic:
 *  - an object is written to DIR/.cairn-tmp/, fsync'd, then renamed (or
 *    linked) into place and its directory fsync'd, so a reader or a crash
 *    sees the old object or the whole new one, never a part;
 *  - conditional puts hold an flock on DIR/.cairn-lock (a fresh open per
 *    operation, so threads of one process exclude each other too) around
 *    compare and rename, which makes compare-and-swap atomic on this machine;
 *  - an object's ETag is the hex BLAKE2b-128 of its content, kept in the
 *    user.cairn.etag xattr when the filesystem has xattrs and recomputed
 *    from the content when it does not;
 *  - opening writes nothing: DIR is made only when the caller makes a
 *    store (init), DIR/.cairn-tmp by the first put.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "fsutil.h"
#include "store.h"

#define TMP_DIR ".cairn-tmp"
#define LOCK_FILE ".cairn-lock"
#define ETAG_XATTR "user.cairn.etag"
#define ETAG_BYTES 16
/* temp files older than this are left over from a crash and removed */
#define TMP_STALE_SECONDS 3600

struct file_store {
	char *dir;
};

static const char *file_dir(struct store *s)
{
	return ((struct file_store *)s->priv)->dir;
}

static char *file_path(struct store *s, const char *key)
{
	return xasprintf("%s/%s", file_dir(s), key);
}

static void etag_of(const void *data, size_t len, char *out)
{
	unsigned char h[ETAG_BYTES];
	char hex[2 * ETAG_BYTES + 1];

	crypto_generichash(h, sizeof(h), data, len, NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(out, STORE_ETAG_MAX, "\"%s\"", hex);
}

/* The ETag of the object open on fd (size st_size). */
static int etag_of_fd(int fd, const struct stat *st, char *out)
{
	char hex[2 * ETAG_BYTES + 1];
	ssize_t n = fgetxattr(fd, ETAG_XATTR, hex, sizeof(hex) - 1);
	crypto_generichash_state h;
	unsigned char digest[ETAG_BYTES];
	char chunk[65536];
	off_t off = 0;

	if (n == 2 * ETAG_BYTES) {
		hex[n] = '\0';
		snprintf(out, STORE_ETAG_MAX, "\"%s\"", hex);
		return 0;
	}
	crypto_generichash_init(&h, NULL, 0, sizeof(digest));
	while (off < st->st_size) {
		size_t want = sizeof(chunk);
		int rc;

		if ((off_t)want > st->st_size - off)
			want = (size_t)(st->st_size - off);
		rc = fsu_pread_all(fd, chunk, want, off);
		if (rc)
			return rc;
		crypto_generichash_update(&h, (unsigned char *)chunk, want);
		off += (off_t)want;
	}
	crypto_generichash_final(&h, digest, sizeof(digest));
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	snprintf(out, STORE_ETAG_MAX, "\"%s\"", hex);
	return 0;
}

/* Opens key for reading and fills info.  -ENOENT when absent. */
static int file_open_object(struct store *s, const char *key, struct store_info *info,
			  struct stat *st)
{
	char *path = file_path(s, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc;

	if (fd < 0) {
		rc = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
		if (rc == -ENOENT)
			err_set(rc, "no such object");
		else
			err_set(rc, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return rc;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		rc = err_set(-EIO, "%s is not a regular file", path);
		close(fd);
		free(path);
		return rc;
	}
	free(path);
	if (info) {
		info->size = (uint64_t)st->st_size;
		rc = etag_of_fd(fd, st, info->etag);
		if (rc) {
			close(fd);
			return err_set(rc, "cannot read object: %s", strerror(-rc));
		}
	}
	return fd;
}

/* Held around compare-and-rename of a conditional put. */
static int file_lock(struct store *s)
{
	char *path = xasprintf("%s/" LOCK_FILE, file_dir(s));
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		int rc = err_set(-errno, "cannot open lock file %s: %s", path, strerror(errno));

		free(path);
		return rc;
	}
	free(path);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int rc = err_set(-errno, "cannot lock store: %s", strerror(errno));

			close(fd);
			return rc;
		}
	}
	return fd;
}

static void file_unlock(int fd)
{
	if (fd >= 0)
		close(fd);	/* releases the flock */
}

/* Writes data to a fresh temp file, fsync'd, tagged with its ETag. */
static int file_write_temp(struct store *s, const void *data, size_t len, const char *etag,
			 char **tmp_out)
{
	char *tmp = xasprintf("%s/" TMP_DIR "/put-XXXXXX", file_dir(s));
	int fd = mkostemp(tmp, O_CLOEXEC);
	int rc;

	if (fd < 0 && errno == ENOENT) {	/* the store's first put */
		char *dir = xasprintf("%s/" TMP_DIR, file_dir(s));

		if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
			free(tmp);
			tmp = xasprintf("%s/put-XXXXXX", dir);
			fd = mkostemp(tmp, O_CLOEXEC);
		}
		free(dir);
	}
	if (fd < 0) {
		rc = err_set(-errno, "cannot create temp file in %s/" TMP_DIR ": %s",
			     file_dir(s), strerror(errno));
		free(tmp);
		return rc;
	}
	rc = fsu_write_all(fd, data, len);
	if (!rc && fsetxattr(fd, ETAG_XATTR, etag + 1, 2 * ETAG_BYTES, 0) < 0 &&
	    errno != ENOTSUP && errno != EOPNOTSUPP)
		rc = -errno;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		free(tmp);
		return err_set(rc, "cannot write object: %s", strerror(-rc));
	}
	*tmp_out = tmp;
	return 0;
}

static int file_put(struct store *s, const char *key, const void *data, size_t len,
		  enum store_cond cond, const char *etag, struct store_info *info)
{
	char *path = file_path(s, key), *tmp = NULL, *slash;
	char new_etag[STORE_ETAG_MAX];
	int lock = -1, rc;

	if (strncmp(key, TMP_DIR "/", sizeof(TMP_DIR)) == 0 || strcmp(key, LOCK_FILE) == 0) {
		free(path);
		return err_set(-EINVAL, "the key is reserved by the file store");
	}
	etag_of(data, len, new_etag);
	rc = fsu_mkdir_parents(path);
	if (rc)
		rc = err_set(rc, "cannot create the directories of %s: %s", path, strerror(-rc));
	if (!rc)
		rc = file_write_temp(s, data, len, new_etag, &tmp);
	if (!rc && cond != STORE_ALWAYS) {
		lock = file_lock(s);
		rc = lock < 0 ? lock : 0;
	}
	if (!rc && cond != STORE_ALWAYS) {
		struct store_info cur;
		struct stat st;
		int fd = file_open_object(s, key, &cur, &st);

		if (fd >= 0)
			close(fd);
		if (fd < 0 && fd != -ENOENT)
			rc = fd;
		else if (cond == STORE_IF_NONE_MATCH && fd >= 0)
			rc = err_set(-EEXIST, "object exists (create-only put refused)");
		else if (cond == STORE_IF_MATCH && fd == -ENOENT)
			rc = err_set(-ECANCELED, "object is gone (expected ETag %s)", etag);
		else if (cond == STORE_IF_MATCH && strcmp(cur.etag, etag) != 0)
			rc = err_set(-ECANCELED, "object changed: ETag is %s, expected %s",
				     cur.etag, etag);
	}
	if (!rc && rename(tmp, path) < 0)
		rc = err_set(-errno, "cannot rename into %s: %s", path, strerror(errno));
	file_unlock(lock);
	if (rc) {
		if (tmp)
			unlink(tmp);
	} else {
		slash = strrchr(path, '/');
		*slash = '\0';
		rc = fsu_fsync_dir(path);
		if (rc)
			err_set(rc, "cannot fsync %s: %s", path, strerror(-rc));
		if (!rc && info) {
			info->size = len;
			memcpy(info->etag, new_etag, sizeof(new_etag));
		}
	}
	free(tmp);
	free(path);
	return rc;
}

static int file_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		  struct buf *out, struct store_info *info)
{
	struct stat st;
	struct store_info local;
	uint64_t size, n;
	int fd = file_open_object(s, key, info ? info : &local, &st);
	int rc;

	if (fd < 0)
		return fd;
	size = (uint64_t)st.st_size;
	if (off > size || (off == size && size > 0)) {
		close(fd);
		return err_set(-ERANGE, "range starts at %llu, object has %llu bytes",
			       (unsigned long long)off, (unsigned long long)size);
	}
	n = size - off;
	if (len < n)
		n = len;
	if (n > SIZE_MAX / 2) {
		close(fd);
		return err_set(-ENOMEM, "range of %llu bytes is too large", (unsigned long long)n);
	}
	buf_grow(out, (size_t)n);
	rc = fsu_pread_all(fd, out->data + out->len, (size_t)n, (off_t)off);
	close(fd);
	if (rc)
		return err_set(rc, "cannot read: %s", strerror(-rc));
	buf_setlen(out, out->len + (size_t)n);
	return 0;
}

/* The size first (fstat): a larger object is refused without reading any
 * of it, not even for its ETag. */
static int file_get_max(struct store *s, const char *key, uint64_t max, struct buf *out,
		      struct store_info *info)
{
	struct stat st;
	uint64_t size;
	int fd = file_open_object(s, key, NULL, &st);
	int rc = 0;

	if (fd < 0)
		return fd;
	size = (uint64_t)st.st_size;
	if (info)
		info->size = size;
	if (size > max)
		rc = err_set(-EFBIG, "larger than %llu bytes", (unsigned long long)max);
	else if (size > SIZE_MAX / 2)
		rc = err_set(-ENOMEM, "an object of %llu bytes is too large", (unsigned long long)size);
	if (!rc && info && (rc = etag_of_fd(fd, &st, info->etag)) != 0)
		err_set(rc, "cannot read object: %s", strerror(-rc));
	if (!rc) {
		buf_grow(out, (size_t)size);
		rc = fsu_pread_all(fd, out->data + out->len, (size_t)size, 0);
		if (rc)
			err_set(rc, "cannot read: %s", strerror(-rc));
		else
			buf_setlen(out, out->len + (size_t)size);
	}
	close(fd);
	return rc;
}

static int file_head(struct store *s, const char *key, struct store_info *info)
{
	struct stat st;
	struct store_info local;
	int fd = file_open_object(s, key, info ? info : &local, &st);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

struct key_list {
	char **keys;
	uint64_t *sizes;
	size_t n, cap;
};

static void key_list_add(struct key_list *l, char *key, uint64_t size)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->keys = xrealloc(l->keys, l->cap * sizeof(*l->keys));
		l->sizes = xrealloc(l->sizes, l->cap * sizeof(*l->sizes));
	}
	l->keys[l->n] = key;
	l->sizes[l->n] = size;
	l->n++;
}

/* Collects every file under DIR/rel whose key starts with prefix. */
static int file_walk(struct store *s, const char *rel, const char *prefix, struct key_list *l)
{
	char *path = *rel ? xasprintf("%s/%s", file_dir(s), rel) : xstrdup(file_dir(s));
	DIR *d = opendir(path);
	struct dirent *e;
	int rc = 0;

	if (!d) {
		rc = errno == ENOENT || errno == ENOTDIR ? 0 :
			err_set(-errno, "cannot list %s: %s", path, strerror(errno));
		free(path);
		return rc;
	}
	while (!rc && (errno = 0, e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		char *key;
		struct stat st;
		size_t cmp;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (!*rel && (!strcmp(name, TMP_DIR) || !strcmp(name, LOCK_FILE)))
			continue;
		key = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
		/* prune subtrees that cannot hold a match */
		cmp = strlen(key) < strlen(prefix) ? strlen(key) : strlen(prefix);
		if (strncmp(key, prefix, cmp) != 0 ||
		    fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			free(key);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = file_walk(s, key, prefix, l);
			free(key);
		} else if (S_ISREG(st.st_mode) && strlen(key) >= strlen(prefix)) {
			key_list_add(l, key, (uint64_t)st.st_size);
		} else {
			free(key);
		}
	}
	if (!rc && errno)
		rc = err_set(-errno, "cannot list %s: %s", path, strerror(errno));
	closedir(d);
	free(path);
	return rc;
}

static int cmp_index(const void *a, const void *b, void *arg)
{
	char **keys = arg;

	return strcmp(keys[*(const size_t *)a], keys[*(const size_t *)b]);
}

static int file_list(struct store *s, const char *prefix, store_list_fn fn, void *arg)
{
	struct key_list l = { 0 };
	char *start = xstrdup(prefix);
	char *slash = strrchr(start, '/');
	size_t *order;
	int rc;

	/* walk from the deepest directory the prefix names */
	if (slash)
		*slash = '\0';
	else
		start[0] = '\0';
	rc = file_walk(s, start, prefix, &l);
	free(start);
	order = xmalloc((l.n ? l.n : 1) * sizeof(*order));
	for (size_t i = 0; i < l.n; i++)
		order[i] = i;
	qsort_r(order, l.n, sizeof(*order), cmp_index, l.keys);
	for (size_t i = 0; !rc && i < l.n; i++)
		rc = fn(l.keys[order[i]], l.sizes[order[i]], arg);
	for (size_t i = 0; i < l.n; i++)
		free(l.keys[i]);
	free(l.keys);
	free(l.sizes);
	free(order);
	return rc;
}

static int file_del(struct store *s, const char *key)
{
	char *path = file_path(s, key);
	int rc = 0;

	if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR)
		rc = err_set(-errno, "cannot remove %s: %s", path, strerror(errno));
	free(path);
	return rc;
}

static int file_del_many(struct store *s, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = file_del(s, keys[i]);

		if (rc)
			return err_prefix(rc, "%s", keys[i]);
	}
	return 0;
}

static void file_close(struct store *s)
{
	struct file_store *f = s->priv;

	free(f->dir);
	free(f);
	free(s->url);
	free(s);
}

static const struct store_ops file_store_ops = {
	.put = file_put,
	.get = file_get,
	.get_max = file_get_max,
	.head = file_head,
	.list = file_list,
	.del = file_del,
	.del_many = file_del_many,
	.close = file_close,
};

/* Removes temp files a crashed writer left behind. */
static void file_clean_temp(const char *tmpdir)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	time_t now = time(NULL);

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && now - st.st_mtime > TMP_STALE_SECONDS)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

int store_file_open(const char *url, const char *dir, int create, struct store **out)
{
	struct store *s;
	struct file_store *f;
	struct stat st;
	char *tmpdir;
	size_t n = strlen(dir);

	if (sodium_init() < 0)
		return err_set(-EIO, "libsodium failed to initialise");
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_set(-errno, "store %s: cannot create %s: %s", url, dir, strerror(errno));
	if (stat(dir, &st) < 0 && errno == ENOENT)
		return err_set(-ENOENT, "store %s: %s does not exist: check the URL (`cairn init` makes a store)",
			       url, dir);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(-ENOTDIR, "store %s: %s is not a directory", url, dir);
	/* the temp dir is made by the first put (file_write_temp), not here */
	tmpdir = xasprintf("%.*s/" TMP_DIR, (int)n, dir);
	file_clean_temp(tmpdir);
	free(tmpdir);
	f = xcalloc(1, sizeof(*f));
	f->dir = xstrndup(dir, n);
	s = xcalloc(1, sizeof(*s));
	s->ops = &file_store_ops;
	s->url = xstrdup(url);
	s->priv = f;
	*out = s;
	return 0;
}
