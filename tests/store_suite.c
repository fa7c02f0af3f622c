/*
 * store_suite.c - conformance checks shared by every store's test.
 * Each check asserts what store.h promises, so a store that breaks a
 * contract fails here whatever its transport.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_suite.h"
#include "tap.h"

static void check_round_trip(struct store *s, const char *label, const char *key, size_t size)
{
	uint8_t *data = xmalloc(size ? size : 1);
	struct store_info put_info = { 0 }, get_info = { 0 }, head_info = { 0 };
	struct buf got = BUF_INIT;
	int rc;

	tap_fill_random(data, size, size + 7);
	rc = store_put(s, key, data, size, STORE_ALWAYS, NULL, &put_info);
	is_int(rc, 0, "%s: put %zu bytes as '%s' %s", label, size, key, rc ? err_msg() : "");
	rc = store_get(s, key, 0, STORE_TO_END, &got, &get_info);
	is_int(rc, 0, "%s: get '%s' %s", label, key, rc ? err_msg() : "");
	is_mem(got.data, got.len, data, size, "%s: '%s' reads back byte for byte", label, key);
	is_int(get_info.size, size, "%s: get reports the size of '%s'", label, key);
	rc = store_head(s, key, &head_info);
	ok(rc == 0 && head_info.size == size, "%s: head '%s' gives its size", label, key);
	ok(put_info.etag[0] && !strcmp(put_info.etag, head_info.etag) &&
	   !strcmp(put_info.etag, get_info.etag),
	   "%s: put, get and head agree on the ETag of '%s' (%s)", label, key, head_info.etag);
	buf_free(&got);
	free(data);
}

static void check_ranges(struct store *s, const char *label)
{
	static const char text[] = "0123456789abcdefghij";
	struct buf got = BUF_INIT;
	struct store_info info;
	int rc;

	store_put(s, "suite/range", text, 20, STORE_ALWAYS, NULL, NULL);
	rc = store_get(s, "suite/range", 5, 4, &got, &info);
	ok(rc == 0 && got.len == 4 && !memcmp(got.data, "5678", 4),
	   "%s: range [5,9) reads '5678'", label);
	is_int(info.size, 20, "%s: a range get reports the whole size", label);
	buf_reset(&got);
	rc = store_get(s, "suite/range", 15, 100, &got, NULL);
	ok(rc == 0 && got.len == 5 && !memcmp(got.data, "fghij", 5),
	   "%s: a range past the end is cut at the end", label);
	buf_reset(&got);
	rc = store_get(s, "suite/range", 19, STORE_TO_END, &got, NULL);
	ok(rc == 0 && got.len == 1 && got.data[0] == 'j', "%s: last byte alone", label);
	buf_reset(&got);
	rc = store_get(s, "suite/range", 20, 1, &got, NULL);
	is_int(rc, -ERANGE, "%s: a range that starts at the end is -ERANGE", label);
	buf_reset(&got);
	buf_adds(&got, "keep");
	rc = store_get(s, "suite/range", 0, 2, &got, NULL);
	ok(rc == 0 && got.len == 6 && !memcmp(got.data, "keep01", 6),
	   "%s: get appends to what the buffer holds", label);
	buf_free(&got);
}

/* store_get_max, on the store and through a prefix layer over it */
static void check_get_max(struct store *s, const char *label)
{
	uint8_t data[1000];
	struct buf got = BUF_INIT;
	struct store_info info = { 0 }, head_info = { 0 };
	struct store *px = NULL;
	int rc;

	tap_fill_random(data, sizeof(data), 99);
	store_put(s, "suite/capped", data, sizeof(data), STORE_ALWAYS, NULL, NULL);
	store_put(s, "suite/capped-empty", "", 0, STORE_ALWAYS, NULL, NULL);
	store_head(s, "suite/capped", &head_info);
	rc = store_get_max(s, "suite/capped", 1000, "test object", &got, &info);
	ok(rc == 0 && got.len == 1000 && !memcmp(got.data, data, 1000),
	   "%s: get_max of an object of exactly max bytes reads it %s", label, rc ? err_msg() : "");
	ok(info.size == 1000 && !strcmp(info.etag, head_info.etag),
	   "%s: get_max reports its size and ETag", label);
	buf_reset(&got);
	buf_adds(&got, "keep");
	memset(&info, 0, sizeof(info));
	rc = store_get_max(s, "suite/capped", 999, "test object", &got, &info);
	is_int(rc, -EFBIG, "%s: get_max of an object one byte larger than max is -EFBIG", label);
	ok(got.len == 4 && !memcmp(got.data, "keep", 4), "%s: and appends nothing", label);
	is_int(info.size, 1000, "%s: and reports the object's size", label);
	ok(strstr(err_msg(), "suite/capped: 1000 bytes, more than any test object cairn writes (at most 999)") &&
	   !strchr(err_msg(), '\n'),
	   "%s: one line naming the object, its size and the bound: %s", label, err_msg());
	buf_reset(&got);
	rc = store_get_max(s, "suite/capped-empty", 10, "test object", &got, NULL);
	ok(rc == 0 && got.len == 0, "%s: get_max of an empty object reads nothing %s", label,
	   rc ? err_msg() : "");
	rc = store_get_max(s, "suite/no-such-object", 10, "test object", &got, NULL);
	is_int(rc, -ENOENT, "%s: get_max of a missing object is -ENOENT", label);
	if (store_prefix_open(s, "suite/", &px) == 0) {
		buf_reset(&got);
		rc = store_get_max(px, "capped", 1000, "test object", &got, NULL);
		ok(rc == 0 && got.len == 1000, "%s: get_max through a prefix layer %s", label,
		   rc ? err_msg() : "");
		rc = store_get_max(px, "capped", 10, "test object", &got, &info);
		ok(rc == -EFBIG && info.size == 1000,
		   "%s: and its refusal through the layer", label);
		store_close(px);
	}
	buf_free(&got);
}

static void check_missing(struct store *s, const char *label)
{
	struct buf got = BUF_INIT;
	struct store_info info;
	int rc;

	rc = store_get(s, "suite/no-such-object", 0, STORE_TO_END, &got, NULL);
	is_int(rc, -ENOENT, "%s: get of a missing object is -ENOENT", label);
	ok(strstr(err_msg(), "suite/no-such-object") != NULL,
	   "%s: the message names the object: %s", label, err_msg());
	rc = store_head(s, "suite/no-such-object", &info);
	is_int(rc, -ENOENT, "%s: head of a missing object is -ENOENT", label);
	is_int(store_del(s, "suite/no-such-object"), 0,
	       "%s: deleting a missing object succeeds", label);
	is_int(store_get(s, "../escape", 0, 1, &got, NULL), -EINVAL,
	       "%s: a key with '..' is refused", label);
	is_int(store_put(s, "/abs", "x", 1, STORE_ALWAYS, NULL, NULL), -EINVAL,
	       "%s: a key starting with '/' is refused", label);
	is_int(store_put(s, "a//b", "x", 1, STORE_ALWAYS, NULL, NULL), -EINVAL,
	       "%s: a key with an empty segment is refused", label);
	buf_free(&got);
}

struct listing {
	char **keys;
	size_t n;
	int sorted;
	uint64_t bytes;
};

static int collect_key(const char *key, uint64_t size, void *arg)
{
	struct listing *l = arg;

	if (l->n && strcmp(l->keys[l->n - 1], key) >= 0)
		l->sorted = 0;
	l->keys = xrealloc(l->keys, (l->n + 1) * sizeof(*l->keys));
	l->keys[l->n++] = xstrdup(key);
	l->bytes += size;
	return 0;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
	memset(l, 0, sizeof(*l));
}

static int stop_at_three(const char *key, uint64_t size, void *arg)
{
	int *seen = arg;

	(void)key;
	(void)size;
	return ++*seen == 3 ? 42 : 0;
}

static void check_listing(struct store *s, const char *label)
{
	enum { N = 1100 };
	struct listing l = { .sorted = 1 };
	char key[64];
	int rc, bad = 0, seen = 0;

	for (int i = 0; i < N && !bad; i++) {
		snprintf(key, sizeof(key), "suite/many/%04x/k%d", i % 37, i);
		bad = store_put(s, key, key, strlen(key), STORE_ALWAYS, NULL, NULL);
	}
	is_int(bad, 0, "%s: %d small puts %s", label, N, bad ? err_msg() : "");
	store_put(s, "suite/many-sibling", "x", 1, STORE_ALWAYS, NULL, NULL);
	rc = store_list(s, "suite/many/", collect_key, &l);
	is_int(rc, 0, "%s: list of %d keys %s", label, N, rc ? err_msg() : "");
	is_int(l.n, N, "%s: the listing has every key (more than 1000: pages)", label);
	ok(l.sorted, "%s: the listing is in byte order", label);
	listing_free(&l);
	l.sorted = 1;
	rc = store_list(s, "suite/many/001", collect_key, &l);
	ok(rc == 0 && l.n > 0, "%s: a prefix that ends inside a segment lists %zu keys", label, l.n);
	for (size_t i = 0; i < l.n; i++)
		bad |= strncmp(l.keys[i], "suite/many/001", 14) != 0;
	ok(!bad, "%s: every listed key starts with the prefix", label);
	listing_free(&l);
	rc = store_list(s, "suite/many/", stop_at_three, &seen);
	ok(rc == 42 && seen == 3, "%s: a callback's non-zero return stops the listing", label);
	l.sorted = 1;
	rc = store_list(s, "suite/nothing-here/", collect_key, &l);
	ok(rc == 0 && l.n == 0, "%s: an empty prefix lists nothing", label);
	listing_free(&l);
}

static void check_odd_keys(struct store *s, const char *label)
{
	static const char *const keys[] = {
		"suite/odd/with space", "suite/odd/plus+sign", "suite/odd/ünïcödé-名前",
		"suite/odd/a=b&c?d", "suite/odd/tilde~percent%20",
	};
	struct listing l = { .sorted = 1 };
	int found = 0;

	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		check_round_trip(s, label, keys[i], 10 + i);
	store_list(s, "suite/odd/", collect_key, &l);
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		for (size_t j = 0; j < l.n; j++)
			found += !strcmp(keys[i], l.keys[j]);
	is_int(found, sizeof(keys) / sizeof(*keys), "%s: odd keys come back from list unchanged", label);
	listing_free(&l);
}

static void check_conditional(struct store *s, const char *label)
{
	struct store_info a, b, cur;
	struct buf got = BUF_INIT;
	int rc;

	store_del(s, "suite/cond");
	rc = store_put(s, "suite/cond", "one", 3, STORE_IF_NONE_MATCH, NULL, &a);
	is_int(rc, 0, "%s: create-only put of a new key succeeds %s", label, rc ? err_msg() : "");
	rc = store_put(s, "suite/cond", "two", 3, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, -EEXIST, "%s: create-only put of an existing key is -EEXIST", label);
	store_get(s, "suite/cond", 0, STORE_TO_END, &got, NULL);
	is_mem(got.data, got.len, "one", 3, "%s: the refused put changed nothing", label);
	rc = store_put(s, "suite/cond", "three", 5, STORE_IF_MATCH, a.etag, &b);
	is_int(rc, 0, "%s: compare-and-swap with the current ETag succeeds %s", label,
	       rc ? err_msg() : "");
	ok(strcmp(a.etag, b.etag) != 0, "%s: the ETag changed with the content", label);
	rc = store_put(s, "suite/cond", "four", 4, STORE_IF_MATCH, a.etag, NULL);
	is_int(rc, -ECANCELED, "%s: compare-and-swap with a stale ETag is -ECANCELED", label);
	buf_reset(&got);
	store_get(s, "suite/cond", 0, STORE_TO_END, &got, &cur);
	ok(got.len == 5 && !memcmp(got.data, "three", 5) && !strcmp(cur.etag, b.etag),
	   "%s: the refused swap changed nothing", label);
	store_del(s, "suite/cond");
	rc = store_put(s, "suite/cond", "five", 4, STORE_IF_MATCH, b.etag, NULL);
	is_int(rc, -ECANCELED, "%s: compare-and-swap on a deleted key is -ECANCELED", label);
	buf_free(&got);
}

static void check_delete(struct store *s, const char *label)
{
	const char *keys[5];
	char names[5][32];
	struct listing l = { .sorted = 1 };
	int rc;

	for (int i = 0; i < 5; i++) {
		snprintf(names[i], sizeof(names[i]), "suite/del/k%d", i);
		keys[i] = names[i];
		store_put(s, keys[i], "x", 1, STORE_ALWAYS, NULL, NULL);
	}
	is_int(store_del(s, keys[0]), 0, "%s: delete one", label);
	is_int(store_head(s, keys[0], NULL), -ENOENT, "%s: a deleted object is gone", label);
	rc = store_del_many(s, keys, 5);
	is_int(rc, 0, "%s: delete many, one already gone %s", label, rc ? err_msg() : "");
	store_list(s, "suite/del/", collect_key, &l);
	is_int(l.n, 0, "%s: delete many removed them all", label);
	listing_free(&l);
}

struct race {
	struct store *s;
	const char *key;
	int id;
	int n_incr;
	int errors;
};

static void *race_worker(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < r->n_incr; i++) {
		for (int tries = 0; tries < 1000; tries++) {
			struct buf got = BUF_INIT;
			struct store_info info;
			char next[64];
			int rc = store_get(r->s, r->key, 0, STORE_TO_END, &got, &info);

			if (rc) {
				r->errors++;
				buf_free(&got);
				break;
			}
			/* The writer's name in the content, as every conditional
			 * object cairn writes carries a nonce: a put retried after a
			 * 500 (Ceph RGW answers that to concurrent writes) that then
			 * meets 412 takes an object holding exactly its bytes for
			 * its own write. */
			snprintf(next, sizeof(next), "%ld w%d.%d", strtol(buf_str(&got), NULL, 10) + 1,
				 r->id, i);
			buf_free(&got);
			rc = store_put(r->s, r->key, next, strlen(next), STORE_IF_MATCH, info.etag, NULL);
			if (rc == 0)
				break;
			if (rc != -ECANCELED) {
				r->errors++;
				break;
			}
		}
	}
	return NULL;
}

long store_suite_cas_race(struct store *s, const char *key, int n_threads, int n_incr)
{
	pthread_t tid[16];
	struct race r[16];
	struct buf got = BUF_INIT;
	long v = -1;

	store_put(s, key, "0", 1, STORE_ALWAYS, NULL, NULL);
	for (int i = 0; i < n_threads && i < 16; i++) {
		r[i] = (struct race){ s, key, i, n_incr, 0 };
		pthread_create(&tid[i], NULL, race_worker, &r[i]);
	}
	for (int i = 0; i < n_threads && i < 16; i++) {
		pthread_join(tid[i], NULL);
		if (r[i].errors)
			diag("race worker %d: %d errors", i, r[i].errors);
	}
	if (store_get(s, key, 0, STORE_TO_END, &got, NULL) == 0)
		v = strtol(buf_str(&got), NULL, 10);
	buf_free(&got);
	return v;
}

static int delete_key(const char *key, uint64_t size, void *arg)
{
	(void)size;
	store_del(arg, key);
	return 0;
}

void store_suite_run(struct store *s, const char *label)
{
	check_round_trip(s, label, "suite/empty", 0);
	check_round_trip(s, label, "suite/one", 1);
	check_round_trip(s, label, "suite/five-mib", 5u << 20);
	check_round_trip(s, label, "suite/deep/er/and/deeper/object", 1000);
	check_ranges(s, label);
	check_get_max(s, label);
	check_missing(s, label);
	check_odd_keys(s, label);
	check_conditional(s, label);
	check_delete(s, label);
	check_listing(s, label);
	is_int(store_suite_cas_race(s, "suite/counter", 4, 25), 100,
	       "%s: 4 threads x 25 compare-and-swap increments lose none", label);
	store_list(s, "suite/", delete_key, s);
}
