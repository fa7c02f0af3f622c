/*
 * cmd-selftest.c - `cairn selftest`: one round trip through a store and the
 * crypto core, the way a workspace uses them, printed step by step.
 *
 * Everything it writes lives under one random prefix of the store and is
 * removed at the end; a demo tenant key is made in a private temp dir (0700)
 * and never printed.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cmd.h"
#include "err.h"
#include "fsutil.h"
#include "keys.h"
#include "pack.h"
#include "repo.h"
#include "store.h"

struct selftest {
	struct store *store;
	char prefix[64];	/* "selftest/<id>/" or "" for a private store */
	int steps;
};

static char *st_key(const struct selftest *t, const char *key)
{
	return xasprintf("%s%s", t->prefix, key);
}

/* Prints a passed step; returns 0 so steps chain with ||. */
static int st_pass(struct selftest *t, const char *what)
{
	t->steps++;
	printf("ok  %2d  %s\n", t->steps, what);
	fflush(stdout);
	return 0;
}

/* A step that came out wrong.  rc is the code of the call that failed, or
 * 0 when the step's check failed after calls that all succeeded (a put
 * that should have been refused was not): then the message is what alone,
 * never the text an earlier, expected failure left behind. */
static int st_fail(int rc, const char *what)
{
	return rc < 0 ? err_prefix(rc, "%s", what) : err_set(-EBADMSG, "%s", what);
}

/* How the store honours conditional puts, learned afresh: the lease and
 * the head rest on them, so a store that honours none fails here, saying
 * what it ignores. */
static int st_cond(struct selftest *t)
{
	struct store_cond_rules rules;
	struct buf what = BUF_INIT;
	int rc = store_cond_probe(t->store, &rules);

	if (!rc)
		rc = store_cond_refuse(t->store->url, &rules);
	if (rc)
		return st_fail(rc, "conditional writes");
	buf_adds(&what, "conditional writes honoured: ");
	store_cond_describe(&rules, &what);
	st_pass(t, buf_str(&what));
	buf_free(&what);
	return 0;
}

static int st_put(struct selftest *t, const char *key, const struct buf *b,
		  enum store_cond cond, const char *etag, struct store_info *info)
{
	char *k = st_key(t, key);
	int rc = store_put(t->store, k, b->data, b->len, cond, etag, info);

	free(k);
	return rc;
}

/* A GET of key under t's prefix into out (emptied first): with what, the
 * whole object if it is at most len bytes (store_get_max; what names its
 * kind for the message, off is ignored); without, len bytes from off. */
static int st_get(struct selftest *t, const char *key, uint64_t off, uint64_t len,
		  const char *what, struct buf *out)
{
	char *k = st_key(t, key);
	int rc;

	buf_reset(out);
	rc = what ? store_get_max(t->store, k, len, what, out, NULL) :
		    store_get(t->store, k, off, len, out, NULL);
	free(k);
	return rc;
}

/* Stores every key of ring wrapped under kek, create-only. */
static int st_store_keys(struct selftest *t, const struct keys_ring *ring,
			 const struct keys_kek *kek)
{
	struct buf obj = BUF_INIT;
	int rc = 0;

	for (size_t i = 0; !rc && i < keys_ring_count(ring); i++) {
		const struct keys_key *k = keys_ring_key(ring, i);
		char name[KEYS_WRAPPED_NAME_SIZE];

		buf_reset(&obj);
		rc = keys_ring_wrap(ring, kek, keys_key_id(k), &obj);
		if (!rc)
			rc = keys_wrapped_name(keys_key_id(k), keys_kek_id(kek), name, sizeof(name));
		if (!rc)
			rc = st_put(t, name, &obj, STORE_IF_NONE_MATCH, NULL, NULL);
	}
	buf_free(&obj);
	return rc;
}

struct load_ctx {
	struct selftest *t;
	struct keys_ring *ring;
	const struct keys_kek *kek;
	int loaded;
};

static int st_load_key(const char *key, uint64_t size, void *arg)
{
	struct load_ctx *c = arg;
	struct buf obj = BUF_INIT;
	char key_id[KEYS_ID_SIZE], kek_id[KEYS_ID_SIZE];
	const char *name = key + strlen(c->t->prefix);
	int rc;

	(void)size;
	rc = keys_wrapped_name_parse(name, key_id, kek_id);
	if (!rc)
		rc = st_get(c->t, name, 0, KEYS_WRAPPED_MAX, "wrapped key", &obj);
	if (!rc)
		rc = keys_ring_add_wrapped(c->ring, c->kek, obj.data, obj.len, key_id, kek_id);
	buf_free(&obj);
	c->loaded += rc == 0;
	return rc;
}

static int st_keys(struct selftest *t, const char *dir, const char *ws_id,
		   struct keys_ring **ring_out, struct keys_ring **loaded_out)
{
	struct keys_kek *kek = NULL, *loaded_kek = NULL, *wrong = NULL;
	struct keys_ring *ring = NULL, *loaded = NULL;
	char *path = xasprintf("%s/tenant.key", dir);
	char *keys_prefix = st_key(t, "keys/");
	struct load_ctx ctx = { 0 };
	struct buf obj = BUF_INIT;
	uint8_t plain[KEYS_KEY_LEN];
	const struct keys_key *id_key;
	int rc;

	rc = keys_kek_generate(&kek);
	if (!rc)
		rc = keys_kek_write_file(kek, path);
	if (!rc)
		rc = keys_kek_load_file(path, &loaded_kek);
	if (rc || strcmp(keys_kek_id(kek), keys_kek_id(loaded_kek)) != 0) {
		rc = st_fail(rc, "demo tenant key file");
		goto out;
	}
	st_pass(t, "demo tenant key written (mode 0600) and read back");

	rc = keys_ring_new(ws_id, &ring);
	if (!rc)
		rc = st_store_keys(t, ring, loaded_kek);
	if (rc) {
		rc = st_fail(rc, "wrap and store the workspace keys");
		goto out;
	}
	st_pass(t, "workspace identity and data keys wrapped and stored under keys/");

	rc = keys_ring_empty(ws_id, &loaded);
	ctx = (struct load_ctx){ t, loaded, loaded_kek, 0 };
	if (!rc)
		rc = store_list(t->store, keys_prefix, st_load_key, &ctx);
	if (rc || ctx.loaded != (int)keys_ring_count(ring)) {
		rc = st_fail(rc, "list, read and unwrap the workspace keys");
		goto out;
	}
	st_pass(t, "workspace keys listed, read back and unwrapped");

	/* a wrapped key must refuse another tenant key */
	keys_ring_identity(ring, &id_key);
	keys_ring_wrap(ring, kek, keys_key_id(id_key), &obj);
	keys_kek_generate(&wrong);
	rc = keys_unwrap(wrong, obj.data, obj.len, ws_id, keys_key_id(id_key),
			 keys_kek_id(kek), plain, NULL);
	sodium_memzero(plain, sizeof(plain));
	if (rc != -EACCES) {
		rc = st_fail(rc, "a wrong tenant key was not refused");
		goto out;
	}
	rc = 0;
	st_pass(t, "a wrong tenant key is refused");
	*ring_out = ring;
	*loaded_out = loaded;
	ring = loaded = NULL;
out:
	keys_ring_free(ring);
	keys_ring_free(loaded);
	keys_kek_free(kek);
	keys_kek_free(loaded_kek);
	keys_kek_free(wrong);
	buf_free(&obj);
	free(keys_prefix);
	free(path);
	return rc;
}

static int st_blobs(struct selftest *t, const struct keys_ring *ring,
		    const struct keys_ring *loaded)
{
	size_t size = 1u << 20;
	uint8_t *data = xmalloc(size);
	uint8_t id[KEYS_BLOB_ID_LEN], id2[KEYS_BLOB_ID_LEN];
	char hex[2 * KEYS_BLOB_ID_LEN + 1], *name;
	const struct keys_key *dk, *dk2;
	struct buf sealed = BUF_INIT, got = BUF_INIT, plain = BUF_INIT;
	int rc;

	randombytes_buf(data, size);
	rc = keys_blob_id(ring, data, size, id);
	if (!rc)
		rc = keys_blob_id(loaded, data, size, id2);
	if (rc || memcmp(id, id2, sizeof(id)) != 0) {
		rc = st_fail(rc, "blob ids differ between the made and the loaded keys");
		goto out;
	}
	st_pass(t, "keyed blob id is the same from the made and the unwrapped keys");
	sodium_bin2hex(hex, sizeof(hex), id, sizeof(id));
	name = xasprintf("data/%.2s/%s", hex, hex);
	keys_ring_current(ring, &dk);
	rc = keys_seal_blob(dk, KEYS_BLOB_DATA, id, data, size, &sealed);
	if (!rc)
		rc = st_put(t, name, &sealed, STORE_ALWAYS, NULL, NULL);
	if (!rc)
		rc = st_get(t, name, 0, PACK_MAX_SIZE, "pack", &got);
	keys_ring_find(loaded, keys_key_id(dk), &dk2);
	if (!rc)
		rc = keys_open_blob(dk2, KEYS_BLOB_DATA, id, got.data, got.len, &plain);
	if (rc || plain.len != size || memcmp(plain.data, data, size) != 0) {
		rc = st_fail(rc, "seal, store, fetch and open a 1 MiB blob");
		free(name);
		goto out;
	}
	st_pass(t, "1 MiB blob sealed, stored, fetched and opened byte for byte");
	rc = st_get(t, name, 1000, 4096, NULL, &got);
	if (rc || got.len != 4096 || memcmp(got.data, sealed.data + 1000, 4096) != 0) {
		rc = st_fail(rc, "range read of a stored blob");
		free(name);
		goto out;
	}
	st_pass(t, "range read of a stored blob");
	free(name);
	buf_reset(&plain);
	sealed.data[sealed.len / 2] ^= 1;
	rc = keys_open_blob(dk2, KEYS_BLOB_DATA, id, sealed.data, sealed.len, &plain);
	if (rc != -EBADMSG) {
		rc = st_fail(rc, "a blob with a flipped bit was not refused");
		goto out;
	}
	rc = 0;
	st_pass(t, "a blob with one flipped bit is refused");
out:
	buf_free(&sealed);
	buf_free(&got);
	buf_free(&plain);
	free(data);
	return rc;
}

static int st_head(struct selftest *t, const struct keys_ring *ring, const char *ws_id)
{
	const struct keys_key *dk;
	struct buf obj = BUF_INIT, got = BUF_INIT, plain = BUF_INIT;
	struct store_info first, second;
	char *name = st_key(t, "head");
	int rc;

	keys_ring_current(ring, &dk);
	rc = keys_seal_object(dk, KEYS_OBJ_HEAD, name, ws_id, "generation 1", 12, &obj);
	if (!rc)
		rc = st_put(t, "head", &obj, STORE_IF_NONE_MATCH, NULL, &first);
	if (!rc)
		rc = st_get(t, "head", 0, REPO_HEAD_MAX, "head", &got);
	if (!rc)
		rc = keys_open_object(dk, KEYS_OBJ_HEAD, name, ws_id, got.data, got.len, &plain);
	if (rc || plain.len != 12 || memcmp(plain.data, "generation 1", 12) != 0) {
		rc = st_fail(rc, "seal, store and open the head object");
		goto out;
	}
	st_pass(t, "sealed head object created (create-only) and opened");
	rc = keys_open_object(dk, KEYS_OBJ_HEAD, "elsewhere/head", ws_id, got.data, got.len, &plain);
	if (rc != -EBADMSG) {
		rc = st_fail(rc, "an object moved to another name was not refused");
		goto out;
	}
	st_pass(t, "an object moved to another name is refused");
	rc = st_put(t, "head", &obj, STORE_IF_NONE_MATCH, NULL, NULL);
	if (rc != -EEXIST) {
		rc = st_fail(rc, "a second create-only put was not refused");
		goto out;
	}
	buf_reset(&obj);
	keys_seal_object(dk, KEYS_OBJ_HEAD, name, ws_id, "generation 2", 12, &obj);
	rc = st_put(t, "head", &obj, STORE_IF_MATCH, first.etag, &second);
	if (rc) {
		rc = st_fail(rc, "compare-and-swap of the head");
		goto out;
	}
	rc = st_put(t, "head", &obj, STORE_IF_MATCH, first.etag, NULL);
	if (rc != -ECANCELED) {
		rc = st_fail(rc, "a compare-and-swap with a stale ETag was not refused");
		goto out;
	}
	rc = 0;
	st_pass(t, "conditional puts: create-only and compare-and-swap hold");
out:
	buf_free(&obj);
	buf_free(&got);
	buf_free(&plain);
	free(name);
	return rc;
}

static int st_cleanup(struct selftest *t)
{
	struct store_names d = { 0 };
	int rc = store_list_names(t->store, t->prefix, &d);

	if (!rc)
		rc = store_del_many(t->store, (const char *const *)d.v, d.n);
	store_names_free(&d);
	return rc;
}

static int cmd_selftest_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct selftest t = { 0 };
	struct keys_ring *ring = NULL, *loaded = NULL;
	const char *url = NULL, *tmp = getenv("TMPDIR");
	char *dir, *own_url = NULL, ws_id[KEYS_ID_SIZE + 3], rid[KEYS_ID_SIZE];
	int keep = 0, opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': url = optarg; break;
		case 'k': keep = 1; break;
		default: return cmd_usage(&cmd_selftest_entry);
		}
	}
	if (optind != argc)
		return cmd_usage(&cmd_selftest_entry);
	if (keys_init() < 0)
		return cmd_fail(&cmd_selftest_entry, NULL);
	dir = xasprintf("%s/cairn-selftest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "cairn selftest: cannot make a temp dir %s: %s; set TMPDIR to a writable directory\n",
			dir, strerror(errno));
		free(dir);
		return CMD_EXIT_ERROR;
	}
	keys_random_id(rid);
	snprintf(ws_id, sizeof(ws_id), "ws-%s", rid);
	if (!url) {
		own_url = xasprintf("file://%s/store", dir);
		url = own_url;
	} else {
		snprintf(t.prefix, sizeof(t.prefix), "selftest/%s/", rid);
	}
	printf("cairn selftest: store %s%s\n", url, t.prefix[0] ? "" : " (a demo store)");
	rc = store_open(url, &(struct store_opts){ .create = 1 }, &t.store);	/* it writes */
	if (rc)
		rc = err_prefix(rc, "open the store");
	else
		st_pass(&t, "store opened");
	if (!rc)
		rc = st_cond(&t);
	if (!rc)
		rc = st_keys(&t, dir, ws_id, &ring, &loaded);
	if (!rc)
		rc = st_blobs(&t, ring, loaded);
	if (!rc)
		rc = st_head(&t, ring, ws_id);
	if (t.store && (t.prefix[0] || !keep)) {
		int crc = st_cleanup(&t);

		if (!rc && crc)
			rc = err_prefix(crc, "remove what the self-test wrote");
		else if (!rc)
			st_pass(&t, "everything the self-test wrote is removed");
	}
	keys_ring_free(ring);
	keys_ring_free(loaded);
	store_close(t.store);
	if (keep)
		printf("cairn selftest: kept the demo key and store in %s\n", dir);
	else
		fsu_rmtree(dir);
	free(dir);
	free(own_url);
	if (rc)
		return cmd_fail(&cmd_selftest_entry, "failed");
	printf("cairn selftest: all %d steps passed\n", t.steps);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_selftest_entry = {
	.name = "selftest",
	.usage = "[--store URL] [--keep]",
	.summary = "round trip through a store and the crypto core, step by step",
	.exec = cmd_selftest_exec,
};
