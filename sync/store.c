/*
 * store.c - store_open() and the checked wrappers every caller goes through.
 *
 * The wrappers validate keys once, here, so no implementation has to, and put
 * the store URL and key in front of every error message: an implementation
 * says what went wrong, the wrapper says where.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "store.h"

int store_key_valid(const char *key)
{
	const char *seg = key;

	if (!key || !*key || strlen(key) > 1024)
		return 0;
	for (const char *p = key;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t n = (size_t)(p - seg);

			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return 0;
			if (*p == '\0')
				return 1;
			seg = p + 1;
		} else if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') {
			return 0;
		}
	}
}

/* A prefix may be empty or end with '/'; otherwise it follows the key rules. */
static int store_prefix_valid(const char *prefix)
{
	size_t n = strlen(prefix);
	char *copy;
	int valid;

	if (n == 0)
		return 1;
	copy = xstrndup(prefix, n);
	if (copy[n - 1] == '/')
		copy[n - 1] = '\0';
	valid = store_key_valid(copy);
	free(copy);
	return valid;
}

int store_open(const char *url, const struct store_opts *opts, struct store **out)
{
	static const struct store_opts no_opts;

	*out = NULL;
	if (!opts)
		opts = &no_opts;
	if (strncmp(url, "file://", 7) == 0) {
		const char *dir = url + 7;

		if (dir[0] != '/')
			return err_set(-EINVAL, "store URL '%s': a file store needs an absolute path, as in file:///var/lib/cairn/store",
				       url);
		return store_file_open(url, dir, opts->create, out);
	}
	if (strncmp(url, "s3://", 5) == 0) {
		const char *bucket = url + 5;
		const char *slash = strchr(bucket, '/');
		char *name, *prefix;
		int rc;

		name = slash ? xstrndup(bucket, (size_t)(slash - bucket)) : xstrdup(bucket);
		prefix = xstrdup(slash ? slash + 1 : "");
		/* the prefix is a directory of keys: no leading or doubled '/' */
		while (*prefix && prefix[strlen(prefix) - 1] == '/')
			prefix[strlen(prefix) - 1] = '\0';
		if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-") != strlen(name))
			rc = err_set(-EINVAL, "store URL '%s': bad bucket name '%s' (lowercase letters, digits, '.' and '-')",
				     url, name);
		else if (*prefix && !store_key_valid(prefix))
			rc = err_set(-EINVAL, "store URL '%s': bad prefix '%s'", url, prefix);
		else
			rc = store_s3_open(url, name, prefix, opts, out);
		free(name);
		free(prefix);
		return rc;
	}
	return err_set(-EINVAL, "store URL '%s': unknown scheme; use file:///DIR or s3://BUCKET[/PREFIX]",
		       url);
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

static int store_bad_key(struct store *s, const char *key)
{
	return err_set(-EINVAL, "%s: invalid object key '%s'", s->url, key ? key : "(null)");
}

static struct store_counters counters;

void store_counters_get(struct store_counters *out)
{
	out->requests = __atomic_load_n(&counters.requests, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&counters.errors, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&counters.retries, __ATOMIC_RELAXED);
	out->bytes_in = __atomic_load_n(&counters.bytes_in, __ATOMIC_RELAXED);
	out->bytes_out = __atomic_load_n(&counters.bytes_out, __ATOMIC_RELAXED);
}

void store_count_retry(void)
{
	__atomic_add_fetch(&counters.retries, 1, __ATOMIC_RELAXED);
}

bool store_read_again(int rc, int attempt)
{
	if (rc != -EBADMSG || attempt >= STORE_BADMSG_TRIES)
		return false;
	log_warn("%s; reading it again", err_msg());
	store_count_retry();
	return true;
}

static int count(int rc, uint64_t *bytes, uint64_t n)
{
	__atomic_add_fetch(&counters.requests, 1, __ATOMIC_RELAXED);
	if (rc && rc != -ENOENT && rc != -ECANCELED && rc != -EEXIST)
		__atomic_add_fetch(&counters.errors, 1, __ATOMIC_RELAXED);
	else if (!rc && n)
		__atomic_add_fetch(bytes, n, __ATOMIC_RELAXED);
	return rc;
}

/*
 * Crash points for tests: with CAIRN_CRASH_AFTER_WRITES=N in its
 * environment, a process kills itself (SIGKILL, no cleanup) right after its
 * N-th write to a store (a put or a delete, whatever its outcome) returns.
 * tests/test_crash.sh runs an operation with N = 1, 2, ... to stop it at
 * every write it makes.  Unset (the normal case), this is one load.
 */
static long crash_after = -2;	/* -2: not read yet; -1: off */
static long writes_done;

static void crash_point_read(void)
{
	if (__atomic_load_n(&crash_after, __ATOMIC_RELAXED) == -2) {
		const char *v = getenv("CAIRN_CRASH_AFTER_WRITES");
		char *end = NULL;
		long n = v && *v ? strtol(v, &end, 10) : -1;

		__atomic_store_n(&crash_after, n >= 1 && end && !*end ? n : -1, __ATOMIC_RELAXED);
	}
}

static void crash_point(void)
{
	crash_point_read();
	if (crash_after > 0 && __atomic_add_fetch(&writes_done, 1, __ATOMIC_SEQ_CST) == crash_after)
		raise(SIGKILL);
}

int store_put(struct store *s, const char *key, const void *data, size_t len,
	      enum store_cond cond, const char *etag, struct store_info *info)
{
	int rc;

	if (!store_key_valid(key))
		return store_bad_key(s, key);
	if (cond == STORE_IF_MATCH && (!etag || !*etag))
		return err_set(-EINVAL, "%s: put %s: If-Match needs an ETag", s->url, key);
	rc = count(s->ops->put(s, key, data, len, cond, etag, info), &counters.bytes_out, len);
	crash_point();
	return rc ? err_prefix(rc, "%s: put %s", s->url, key) : 0;
}

int store_get(struct store *s, const char *key, uint64_t off, uint64_t len,
	      struct buf *out, struct store_info *info)
{
	int rc;

	if (!store_key_valid(key))
		return store_bad_key(s, key);
	{
		size_t before = out->len;

		rc = s->ops->get(s, key, off, len, out, info);
		count(rc, &counters.bytes_in, rc ? 0 : out->len - before);
	}
	return rc ? err_prefix(rc, "%s: get %s", s->url, key) : 0;
}

int store_get_max_op(struct store *s, const char *key, uint64_t max, struct buf *out,
		     struct store_info *info)
{
	struct store_info local;
	size_t before = out->len;
	int rc;

	if (s->ops->get_max)
		return s->ops->get_max(s, key, max, out, info);
	if (!info)
		info = &local;
	/* max + 1 bytes tell a larger object from one of exactly max */
	rc = s->ops->get(s, key, 0, max == UINT64_MAX ? STORE_TO_END : max + 1, out, info);
	if (!rc && (info->size > max || out->len - before > max)) {
		if (info->size < out->len - before)
			info->size = out->len - before;
		buf_setlen(out, before);
		rc = err_set(-EFBIG, "larger than %llu bytes", (unsigned long long)max);
	}
	return rc;
}

int store_get_max(struct store *s, const char *key, uint64_t max, const char *what,
		  struct buf *out, struct store_info *info)
{
	struct store_info local = { 0 };
	size_t before = out->len;
	int rc;

	if (!store_key_valid(key))
		return store_bad_key(s, key);
	rc = store_get_max_op(s, key, max, out, info ? info : &local);
	count(rc, &counters.bytes_in, rc ? 0 : out->len - before);
	if (rc == -EFBIG)
		return store_refuse_size(s, key, (info ? info : &local)->size, max, what);
	return rc ? err_prefix(rc, "%s: get %s", s->url, key) : 0;
}

int store_refuse_size(struct store *s, const char *key, uint64_t size, uint64_t max,
		      const char *what)
{
	return err_set(-EFBIG, "%s: get %s: %llu bytes, more than any %s cairn writes (at most %llu): not read; the object in the store was replaced or damaged: restore it from a copy of the store",
		       s->url, key, (unsigned long long)size, what, (unsigned long long)max);
}

int store_head(struct store *s, const char *key, struct store_info *info)
{
	int rc;

	if (!store_key_valid(key))
		return store_bad_key(s, key);
	rc = s->ops->head(s, key, info);
	return rc ? err_prefix(rc, "%s: head %s", s->url, key) : 0;
}

int store_list(struct store *s, const char *prefix, store_list_fn fn, void *arg)
{
	int rc;

	if (!prefix)
		prefix = "";
	if (!store_prefix_valid(prefix))
		return err_set(-EINVAL, "%s: invalid list prefix '%s'", s->url, prefix);
	rc = s->ops->list(s, prefix, fn, arg);
	return rc < 0 ? err_prefix(rc, "%s: list '%s'", s->url, prefix) : rc;
}

static int names_add(const char *key, uint64_t size, void *arg)
{
	struct store_names *l = arg;

	(void)size;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = xstrdup(key);
	return 0;
}

int store_list_names(struct store *s, const char *prefix, struct store_names *names)
{
	return store_list(s, prefix, names_add, names);
}

void store_names_free(struct store_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
	names->v = NULL;
	names->n = 0;
}

int store_del(struct store *s, const char *key)
{
	int rc;

	if (!store_key_valid(key))
		return store_bad_key(s, key);
	rc = s->ops->del(s, key);
	crash_point();
	return rc ? err_prefix(rc, "%s: delete %s", s->url, key) : 0;
}

int store_del_many(struct store *s, const char *const *keys, size_t n)
{
	int rc;

	for (size_t i = 0; i < n; i++)
		if (!store_key_valid(keys[i]))
			return store_bad_key(s, keys[i]);
	if (n == 0)
		return 0;
	crash_point_read();
	if (crash_after > 0) {
		/* crash points between the deletes, as a store may stop half way */
		for (size_t i = 0; i < n; i++) {
			rc = store_del(s, keys[i]);
			if (rc && rc != -ENOENT)
				return rc;
		}
		return 0;
	}
	rc = s->ops->del_many(s, keys, n);
	crash_point();
	return rc ? err_prefix(rc, "%s: delete %zu objects", s->url, n) : 0;
}
