/*
 * rekey.c - rewrap, verify and list the wrapped keys of a workspace (see
 * rekey.h for the invariant a kill must not break).
 *
 * The workspace is opened bare (no keys unwrapped by the repo): these
 * operations work on keys/<key-id>.<kek-id> objects one by one, with the
 * tenant keys the administrator holds.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "log.h"
#include "rekey.h"

struct wraps {
	char (*key)[KEYS_ID_SIZE];
	char (*kek)[KEYS_ID_SIZE];
	size_t n;
};

static int wraps_add(const char *name, uint64_t size, void *arg)
{
	struct wraps *w = arg;
	char key_id[KEYS_ID_SIZE], kek_id[KEYS_ID_SIZE];

	(void)size;
	if (keys_wrapped_name_parse(name, key_id, kek_id)) {
		err_clear();
		return 0;
	}
	w->key = xrealloc(w->key, (w->n + 1) * sizeof(*w->key));
	w->kek = xrealloc(w->kek, (w->n + 1) * sizeof(*w->kek));
	memcpy(w->key[w->n], key_id, KEYS_ID_SIZE);
	memcpy(w->kek[w->n], kek_id, KEYS_ID_SIZE);
	w->n++;
	return 0;
}

static void wraps_free(struct wraps *w)
{
	free(w->key);
	free(w->kek);
}

/* Whether key_id has a wrap under kek_id. */
static int wraps_has(const struct wraps *w, const char *key_id, const char *kek_id)
{
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->key[i], key_id) && !strcmp(w->kek[i], kek_id))
			return 1;
	return 0;
}

/* Whether key_id was seen before index i (each key is handled once). */
static int wraps_seen(const struct wraps *w, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (!strcmp(w->key[j], w->key[i]))
			return 1;
	return 0;
}

static int open_wraps(const struct repo_opts *opts, const char *ws_id, struct repo **r,
		      struct wraps *w)
{
	int rc = repo_open_bare(opts, ws_id, r);

	memset(w, 0, sizeof(*w));
	if (!rc)
		rc = store_list((*r)->store, "keys/", wraps_add, w);
	return rc;
}

/* Gets keys/<key_id>.<kek's id> and unwraps it with kek into key (locked
 * memory of the caller), filling *info.  0 or a negative code. */
static int unwrap_one(struct repo *r, const struct keys_kek *kek, const char *key_id,
		      uint8_t key[KEYS_KEY_LEN], struct keys_wrap_info *info)
{
	char name[KEYS_WRAPPED_NAME_SIZE];
	struct buf obj = BUF_INIT;
	int rc = keys_wrapped_name(key_id, keys_kek_id(kek), name, sizeof(name));

	if (!rc)
		rc = store_get_max(r->store, name, KEYS_WRAPPED_MAX, "wrapped key", &obj, NULL);
	if (!rc)
		rc = keys_unwrap(kek, obj.data, obj.len, r->ws_id, key_id, keys_kek_id(kek), key, info);
	buf_free(&obj);
	return rc;
}

/* Writes the wrap of key under `to` (replacing a damaged one when
 * replace), reads it back and checks that it opens to the same key.
 * 0 or a negative code. */
static int put_verified(struct repo *r, const struct keys_kek *to, const char *key_id,
			const uint8_t key[KEYS_KEY_LEN], const struct keys_wrap_info *info,
			int replace, uint8_t check[KEYS_KEY_LEN])
{
	char name[KEYS_WRAPPED_NAME_SIZE];
	struct keys_wrap_info got;
	struct buf b = BUF_INIT;
	int rc = keys_wrapped_name(key_id, keys_kek_id(to), name, sizeof(name));

	if (!rc)
		rc = keys_wrap_at(to, r->ws_id, info->kind, key_id, key, info->created, &b);
	if (!rc)
		rc = store_put(r->store, name, b.data, b.len,
			       replace ? STORE_ALWAYS : STORE_IF_NONE_MATCH, NULL, NULL);
	if (rc == -EEXIST)	/* a rerun racing another: check what is there */
		rc = 0;
	buf_free(&b);
	if (!rc)
		rc = unwrap_one(r, to, key_id, check, &got);
	if (!rc && (sodium_memcmp(check, key, KEYS_KEY_LEN) != 0 || got.kind != info->kind))
		rc = err_set(-EBADMSG, "the new wrap %s does not hold the same key", name);
	return rc;
}

/* Rewraps one key: 1 done, 0 skipped, or a negative code (the old wrap
 * is then still there). */
static int rewrap_key(struct repo *r, const struct wraps *w, const char *key_id,
		      const struct keys_kek *from, const struct keys_kek *to)
{
	uint8_t *key = sodium_malloc(2 * KEYS_KEY_LEN);
	char old[KEYS_WRAPPED_NAME_SIZE];
	struct keys_wrap_info info;
	int has_new = wraps_has(w, key_id, keys_kek_id(to)), rc;

	if (!key)
		return err_set(-ENOMEM, "out of locked memory for a key");
	rc = unwrap_one(r, from, key_id, key, &info);
	if (!rc && has_new) {
		/* an earlier run got this far: keep its wrap if it is good */
		struct keys_wrap_info got;

		if (unwrap_one(r, to, key_id, key + KEYS_KEY_LEN, &got) == 0 &&
		    sodium_memcmp(key, key + KEYS_KEY_LEN, KEYS_KEY_LEN) == 0 && got.kind == info.kind)
			has_new = 2;
		err_clear();
	}
	if (!rc && has_new != 2)
		rc = put_verified(r, to, key_id, key, &info, has_new, key + KEYS_KEY_LEN);
	if (!rc)
		rc = keys_wrapped_name(key_id, keys_kek_id(from), old, sizeof(old));
	if (!rc)
		rc = store_del(r->store, old);
	sodium_free(key);
	return rc ? rc : 1;
}

int rekey_rewrap(const struct repo_opts *opts, const char *ws_id, const struct keys_kek *from,
		 const struct keys_kek *to, struct rekey_stats *st)
{
	struct repo *r = NULL;
	struct wraps w;
	int rc = open_wraps(opts, ws_id, &r, &w);

	for (size_t i = 0; !rc && i < w.n; i++) {
		const char *key_id = w.key[i];
		int got;

		if (wraps_seen(&w, i))
			continue;
		st->keys++;
		if (!wraps_has(&w, key_id, keys_kek_id(from))) {
			if (!wraps_has(&w, key_id, keys_kek_id(to)))
				log_warn("workspace %s: key %s is wrapped by neither tenant key %s nor %s: left as it is",
					 ws_id, key_id, keys_kek_id(from), keys_kek_id(to));
			st->skipped++;
			continue;
		}
		got = rewrap_key(r, &w, key_id, from, to);
		if (got < 0) {
			log_warn("workspace %s: key %s not rewrapped: %s", ws_id, key_id, err_msg());
			st->failed++;
		} else {
			st->done++;
		}
	}
	wraps_free(&w);
	repo_close(r);
	return rc;
}

int rekey_verify(const struct repo_opts *opts, const char *ws_id, const struct keys_kek *kek,
		 struct rekey_stats *st)
{
	struct keys_wrap_info info;
	struct repo *r = NULL;
	uint8_t *key = sodium_malloc(KEYS_KEY_LEN);
	struct wraps w;
	int rc = key ? open_wraps(opts, ws_id, &r, &w) : err_set(-ENOMEM, "out of locked memory");

	for (size_t i = 0; !rc && i < w.n; i++) {
		if (wraps_seen(&w, i))
			continue;
		st->keys++;
		if (!wraps_has(&w, w.key[i], keys_kek_id(kek))) {
			log_warn("workspace %s: key %s is not wrapped by tenant key %s", ws_id, w.key[i],
				 keys_kek_id(kek));
			st->failed++;
		} else if (unwrap_one(r, kek, w.key[i], key, &info)) {
			log_warn("workspace %s: %s", ws_id, err_msg());
			st->failed++;
		} else {
			st->done++;
		}
	}
	if (key)
		wraps_free(&w);
	sodium_free(key);
	repo_close(r);
	return rc;
}

int rekey_list_wraps(const struct repo_opts *opts, const char *ws_id, rekey_wrap_fn fn, void *arg)
{
	struct repo *r = NULL;
	struct wraps w;
	int rc = open_wraps(opts, ws_id, &r, &w);

	for (size_t i = 0; !rc && i < w.n; i++)
		rc = fn(w.key[i], w.kek[i], arg);
	wraps_free(&w);
	repo_close(r);
	return rc;
}
