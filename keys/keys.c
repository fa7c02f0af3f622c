/*
 * keys.c - libsodium start-up, ids, workspace keys and the keyring, blob ids.
 *
 * Invariants: a workspace key's subkeys are derived once, when it enters a
 * ring, and the key is read-only from then on; a ring holds at most one
 * identity key and at most one key per key id; `current` is NULL or one of
 * the ring's data keys.  The ring struct itself holds no secret bytes.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "err.h"
#include "hex.h"
#include "keys.h"
#include "keys_int.h"

/* ---- setup -------------------------------------------------------------- */

static pthread_once_t keys_once = PTHREAD_ONCE_INIT;
static int keys_init_rc;	/* written once, under keys_once */

static void keys_init_once(void)
{
	keys_init_rc = sodium_init() < 0 ? -EIO : 0;
}

int keys_init(void)
{
	pthread_once(&keys_once, keys_init_once);
	if (keys_init_rc)
		return err_set(keys_init_rc, "cannot initialise libsodium "
			       "(no source of randomness?)");
	return 0;
}

/* ---- ids and names ------------------------------------------------------ */

int keys_id_valid(const char *s)
{
	return hex_is_lower(s, KEYS_ID_LEN);
}

int keys_id_from_hex(const char *hex, uint8_t out[KEYS_ID_BYTES])
{
	if (!keys_id_valid(hex))
		return -EINVAL;
	hex_decode(hex, out, KEYS_ID_BYTES);
	return 0;
}

void keys_id_to_hex(const uint8_t in[KEYS_ID_BYTES], char out[KEYS_ID_SIZE])
{
	hex_encode(in, KEYS_ID_BYTES, out);
}

int keys_random_id(char out[KEYS_ID_SIZE])
{
	uint8_t raw[KEYS_ID_BYTES];
	int rc = keys_init();

	if (rc)
		return rc;
	randombytes_buf(raw, sizeof(raw));
	keys_id_to_hex(raw, out);
	return 0;
}

int keys_ws_id_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return 0;
	for (; s[n]; n++) {
		char c = s[n];

		if (n >= KEYS_WS_ID_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return n > 0;
}

const char *keys_key_kind_name(int kind)
{
	switch (kind) {
	case KEYS_KEY_IDENTITY: return "identity";
	case KEYS_KEY_DATA: return "data";
	default: return "unknown";
	}
}

const char *keys_blob_type_name(int type)
{
	switch (type) {
	case KEYS_BLOB_DATA: return "data";
	case KEYS_BLOB_TREE: return "tree";
	default: return "unknown";
	}
}

const char *keys_obj_kind_name(int kind)
{
	switch (kind) {
	case KEYS_OBJ_PACK_HEADER: return "pack header";
	case KEYS_OBJ_INDEX: return "index";
	case KEYS_OBJ_SNAPSHOT: return "snapshot";
	case KEYS_OBJ_HEAD: return "head";
	case KEYS_OBJ_LEASE: return "lease";
	default: return "unknown";
	}
}

/* ---- little-endian helpers ---------------------------------------------- */

void keys_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void keys_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t keys_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ---- workspace keys ----------------------------------------------------- */

int keys_key_make(enum keys_key_kind kind, const char *key_id,
		  const uint8_t key[KEYS_KEY_LEN], struct keys_key **out)
{
	struct keys_key *k;
	int rc = keys_init();

	*out = NULL;
	if (rc)
		return rc;
	if (kind != KEYS_KEY_IDENTITY && kind != KEYS_KEY_DATA)
		return err_set(-EINVAL, "unknown workspace key kind %d", (int)kind);
	if (!keys_id_valid(key_id))
		return err_set(-EINVAL, "invalid key id: want 16 lowercase hex digits");
	k = sodium_malloc(sizeof(*k));
	if (!k)
		return err_set(-ENOMEM, "out of locked memory for workspace key %s", key_id);
	memset(k, 0, sizeof(*k));
	k->kind = kind;
	memcpy(k->id, key_id, KEYS_ID_SIZE);
	keys_id_from_hex(key_id, k->id_bin);
	memcpy(k->key, key, KEYS_KEY_LEN);
	if (kind == KEYS_KEY_IDENTITY) {
		crypto_kdf_derive_from_key(k->sub_a, KEYS_KEY_LEN, KEYS_SUBKEY_ID,
					   KEYS_CTX_BLOB_ID, k->key);
		crypto_kdf_derive_from_key(k->sub_b, KEYS_KEY_LEN, KEYS_SUBKEY_ID,
					   KEYS_CTX_CHUNKER, k->key);
		crypto_kdf_derive_from_key(k->sub_c, KEYS_KEY_LEN, KEYS_SUBKEY_ID,
					   KEYS_CTX_KEYSET, k->key);
	} else {
		crypto_kdf_derive_from_key(k->sub_a, KEYS_KEY_LEN, KEYS_SUBKEY_ID,
					   KEYS_CTX_SEAL, k->key);
	}
	sodium_mprotect_readonly(k);
	*out = k;
	return 0;
}

void keys_key_free(struct keys_key *k)
{
	if (k)
		sodium_free(k);	/* makes it writable again and wipes it */
}

const char *keys_key_id(const struct keys_key *k)
{
	return k->id;
}

enum keys_key_kind keys_key_kind(const struct keys_key *k)
{
	return k->kind;
}

/* ---- the keyring -------------------------------------------------------- */

struct keys_ring {
	char ws_id[KEYS_WS_ID_MAX + 1];
	struct keys_key **keys;		/* every key, in the order added */
	size_t n, cap;
	struct keys_key *identity;	/* NULL or one of keys */
	struct keys_key *current;	/* NULL or one of keys (a data key) */
};

int keys_ring_empty(const char *ws_id, struct keys_ring **out)
{
	struct keys_ring *r;
	int rc = keys_init();

	*out = NULL;
	if (rc)
		return rc;
	if (!keys_ws_id_valid(ws_id))
		return err_set(-EINVAL, "invalid workspace id: want 1 to %d characters "
			       "of A-Z a-z 0-9 . _ -", KEYS_WS_ID_MAX);
	r = xcalloc(1, sizeof(*r));
	memcpy(r->ws_id, ws_id, strlen(ws_id) + 1);
	*out = r;
	return 0;
}

static struct keys_key *keys_ring_lookup(const struct keys_ring *r, const char *key_id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->keys[i]->id, key_id) == 0)
			return r->keys[i];
	return NULL;
}

int keys_ring_add(struct keys_ring *r, enum keys_key_kind kind, const char *key_id,
		  const uint8_t key[KEYS_KEY_LEN])
{
	struct keys_key *k, *old;
	int rc;

	if (!keys_id_valid(key_id))
		return err_set(-EINVAL, "invalid key id: want 16 lowercase hex digits");
	old = keys_ring_lookup(r, key_id);
	if (old) {
		if (old->kind == kind && sodium_memcmp(old->key, key, KEYS_KEY_LEN) == 0)
			return 0;
		return err_set(-EEXIST, "workspace %s already has a key %s with other "
			       "contents", r->ws_id, key_id);
	}
	if (kind == KEYS_KEY_IDENTITY && r->identity)
		return err_set(-EEXIST, "workspace %s already has identity key %s; "
			       "cannot add identity key %s", r->ws_id, r->identity->id, key_id);
	rc = keys_key_make(kind, key_id, key, &k);
	if (rc)
		return rc;
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 4;
		r->keys = xrealloc(r->keys, r->cap * sizeof(*r->keys));
	}
	r->keys[r->n++] = k;
	if (kind == KEYS_KEY_IDENTITY)
		r->identity = k;
	return 0;
}

int keys_ring_add_wrapped(struct keys_ring *r, const struct keys_kek *kek,
			  const uint8_t *obj, size_t len,
			  const char *key_id, const char *kek_id)
{
	struct keys_wrap_info info;
	uint8_t *key = sodium_malloc(KEYS_KEY_LEN);
	int rc;

	if (!key)
		return err_set(-ENOMEM, "out of locked memory for workspace key");
	rc = keys_unwrap(kek, obj, len, r->ws_id, key_id, kek_id, key, &info);
	if (rc == 0)
		rc = keys_ring_add(r, info.kind, key_id, key);
	sodium_free(key);
	return rc;
}

int keys_ring_wrap(const struct keys_ring *r, const struct keys_kek *kek,
		   const char *key_id, struct buf *out)
{
	return keys_ring_wrap_at(r, kek, key_id, (uint64_t)time(NULL), out);
}

int keys_ring_wrap_at(const struct keys_ring *r, const struct keys_kek *kek,
		      const char *key_id, uint64_t created, struct buf *out)
{
	const struct keys_key *k = keys_id_valid(key_id) ? keys_ring_lookup(r, key_id) : NULL;

	if (!k)
		return err_set(-ENOENT, "key %s is not in the keyring of workspace %s",
			       key_id, r->ws_id);
	return keys_wrap_at(kek, r->ws_id, k->kind, k->id, k->key, created, out);
}

/* The identity key's id: derived from the workspace id, not random, so
 * that two machines making the same new workspace at once name their
 * identity keys alike and only one create-only write of it succeeds (see
 * repo_init); a workspace with two identity keys could not be opened. */
static void identity_key_id(const char *ws_id, char out[KEYS_ID_SIZE])
{
	static const char ctx[] = "cairn identity key id";
	uint8_t h[KEYS_ID_LEN / 2];

	crypto_generichash(h, sizeof(h), (const uint8_t *)ws_id, strlen(ws_id),
			   (const uint8_t *)ctx, sizeof(ctx) - 1);
	sodium_bin2hex(out, KEYS_ID_SIZE, h, sizeof(h));
}

/* Adds a fresh random key of kind (an identity key gets the id derived
 * from the workspace id); *out gets it. */
static int keys_ring_add_random(struct keys_ring *r, enum keys_key_kind kind,
				struct keys_key **out)
{
	char id[KEYS_ID_SIZE];
	uint8_t *key;
	int rc;

	if (kind == KEYS_KEY_IDENTITY)
		identity_key_id(r->ws_id, id);
	else
		do {
			rc = keys_random_id(id);
			if (rc)
				return rc;
		} while (keys_ring_lookup(r, id));
	key = sodium_malloc(KEYS_KEY_LEN);
	if (!key)
		return err_set(-ENOMEM, "out of locked memory for workspace key");
	crypto_kdf_keygen(key);
	rc = keys_ring_add(r, kind, id, key);
	sodium_free(key);
	if (rc)
		return rc;
	*out = r->keys[r->n - 1];
	return 0;
}

int keys_ring_new(const char *ws_id, struct keys_ring **out)
{
	struct keys_ring *r;
	struct keys_key *k;
	int rc = keys_ring_empty(ws_id, &r);

	if (rc)
		return rc;
	rc = keys_ring_add_random(r, KEYS_KEY_IDENTITY, &k);
	if (rc == 0)
		rc = keys_ring_add_random(r, KEYS_KEY_DATA, &k);
	if (rc) {
		keys_ring_free(r);
		return rc;
	}
	r->current = k;
	*out = r;
	return 0;
}

int keys_ring_rotate(struct keys_ring *r, const struct keys_key **out)
{
	struct keys_key *k;
	int rc = keys_ring_add_random(r, KEYS_KEY_DATA, &k);

	if (rc)
		return rc;
	r->current = k;
	if (out)
		*out = k;
	return 0;
}

int keys_ring_find(const struct keys_ring *r, const char *key_id,
		   const struct keys_key **out)
{
	const struct keys_key *k = keys_id_valid(key_id) ? keys_ring_lookup(r, key_id) : NULL;

	*out = NULL;
	if (!k || k->kind != KEYS_KEY_DATA)
		return err_set(-EKEYREJECTED, "data key %s is not a live key of workspace %s (retired, or its wrap is missing): what it sealed is refused",
			       keys_id_valid(key_id) ? key_id : "(invalid id)", r->ws_id);
	*out = k;
	return 0;
}

int keys_ring_set_current(struct keys_ring *r, const char *key_id)
{
	struct keys_key *k = keys_id_valid(key_id) ? keys_ring_lookup(r, key_id) : NULL;

	if (!k || k->kind != KEYS_KEY_DATA)
		return err_set(-ENOENT, "data key %s is not in the keyring of workspace %s",
			       keys_id_valid(key_id) ? key_id : "(invalid id)", r->ws_id);
	r->current = k;
	return 0;
}

int keys_ring_current(const struct keys_ring *r, const struct keys_key **out)
{
	*out = r->current;
	if (!r->current)
		return err_set(-ENOENT, "workspace %s has no current data key", r->ws_id);
	return 0;
}

int keys_ring_identity(const struct keys_ring *r, const struct keys_key **out)
{
	*out = r->identity;
	if (!r->identity)
		return err_set(-ENOENT, "the keyring of workspace %s has no identity key",
			       r->ws_id);
	return 0;
}

size_t keys_ring_count(const struct keys_ring *r)
{
	return r->n;
}

const struct keys_key *keys_ring_key(const struct keys_ring *r, size_t i)
{
	return i < r->n ? r->keys[i] : NULL;
}

const char *keys_ring_ws_id(const struct keys_ring *r)
{
	return r->ws_id;
}

void keys_ring_free(struct keys_ring *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		keys_key_free(r->keys[i]);
	free(r->keys);
	free(r);
}

/* ---- blob ids and the chunker key --------------------------------------- */

int keys_blob_id(const struct keys_ring *r, const void *data, size_t len,
		 uint8_t out[KEYS_BLOB_ID_LEN])
{
	const struct keys_key *id;
	int rc = keys_ring_identity(r, &id);

	if (rc)
		return rc;
	crypto_generichash(out, KEYS_BLOB_ID_LEN, data, len, id->sub_a, KEYS_KEY_LEN);
	return 0;
}

int keys_blob_id_typed(const struct keys_ring *r, enum keys_blob_type type,
		       const void *data, size_t len, uint8_t out[KEYS_BLOB_ID_LEN])
{
	/* a BLAKE2b personalization makes tree ids a function independent of
	 * data ids: no file content can ever share an id with a tree */
	static const unsigned char tree_personal[crypto_generichash_blake2b_PERSONALBYTES] =
		"cairn tree id v1";
	const struct keys_key *id;
	int rc;

	if (type == KEYS_BLOB_DATA)
		return keys_blob_id(r, data, len, out);
	if (type != KEYS_BLOB_TREE)
		return err_set(-EINVAL, "unknown blob type %d", (int)type);
	rc = keys_ring_identity(r, &id);
	if (rc)
		return rc;
	crypto_generichash_blake2b_salt_personal(out, KEYS_BLOB_ID_LEN, data, len, id->sub_a,
						 KEYS_KEY_LEN, NULL, tree_personal);
	return 0;
}

int keys_chunker_key(const struct keys_ring *r, const uint8_t **out)
{
	const struct keys_key *id;
	int rc = keys_ring_identity(r, &id);

	*out = NULL;
	if (rc)
		return rc;
	*out = id->sub_b;
	return 0;
}
