/*
 * wrap.c - wrapped workspace keys: one workspace key sealed under one tenant
 * key, stored as keys/<key-id>.<kek-id> (layout in docs/format.md).
 *
 * Invariants: the whole plaintext header (which names the workspace, both
 * ids, the kind and the time) is the associated data, so no field can change
 * unnoticed; an unwrap checks structure, then ids, then the tenant key's
 * check value, then the AEAD tag, so that a wrong tenant key (-EACCES) and a
 * damaged object (-EBADMSG) give different errors.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include <sodium.h>

#include "err.h"
#include "keys.h"
#include "keys_int.h"

#define WRAP_MAGIC "cairnkey"
#define WRAP_MAGIC_LEN 8
#define WRAP_VERSION 1

/* Header offsets (version 1). */
#define W_VERSION 8
#define W_KIND 9
#define W_ALG 10
#define W_WSLEN 11
#define W_KEY_ID 12
#define W_KEK_ID 20
#define W_CREATED 28
#define W_KCV 36
#define W_WS_ID 52		/* then ws_id (n bytes), nonce, ciphertext+tag */
#define W_FIXED 52
#define W_SEALED (KEYS_NONCE_LEN + KEYS_KEY_LEN + KEYS_TAG_LEN)
#define W_HEADER_MAX (W_FIXED + KEYS_WS_ID_MAX)

int keys_wrapped_name(const char *key_id, const char *kek_id, char *out, size_t size)
{
	if (!keys_id_valid(key_id) || !keys_id_valid(kek_id))
		return err_set(-EINVAL, "invalid key or tenant key id: want 16 lowercase "
			       "hex digits");
	if (size < KEYS_WRAPPED_NAME_SIZE)
		return err_set(-ERANGE, "buffer of %zu bytes too small for a wrapped key name",
			       size);
	memcpy(out, "keys/", 5);
	memcpy(out + 5, key_id, KEYS_ID_LEN);
	out[5 + KEYS_ID_LEN] = '.';
	memcpy(out + 6 + KEYS_ID_LEN, kek_id, KEYS_ID_SIZE);
	return 0;
}

int keys_wrapped_name_parse(const char *name, char *key_id, char *kek_id)
{
	if (strlen(name) != KEYS_WRAPPED_NAME_LEN || memcmp(name, "keys/", 5) ||
	    name[5 + KEYS_ID_LEN] != '.')
		goto bad;
	memcpy(key_id, name + 5, KEYS_ID_LEN);
	key_id[KEYS_ID_LEN] = '\0';
	memcpy(kek_id, name + 6 + KEYS_ID_LEN, KEYS_ID_SIZE);
	if (keys_id_valid(key_id) && keys_id_valid(kek_id))
		return 0;
bad:
	return err_set(-EINVAL, "'%s' is not a wrapped key name "
		       "(keys/<16 hex key id>.<16 hex tenant key id>)", name);
}

int keys_wrap(const struct keys_kek *kek, const char *ws_id, enum keys_key_kind kind,
	      const char *key_id, const uint8_t key[KEYS_KEY_LEN], struct buf *out)
{
	return keys_wrap_at(kek, ws_id, kind, key_id, key, (uint64_t)time(NULL), out);
}

int keys_wrap_at(const struct keys_kek *kek, const char *ws_id, enum keys_key_kind kind,
		 const char *key_id, const uint8_t key[KEYS_KEY_LEN], uint64_t created,
		 struct buf *out)
{
	size_t n, hlen, total;
	uint8_t *p;

	if (kind != KEYS_KEY_IDENTITY && kind != KEYS_KEY_DATA)
		return err_set(-EINVAL, "cannot wrap a key of unknown kind %d", (int)kind);
	if (!keys_ws_id_valid(ws_id))
		return err_set(-EINVAL, "cannot wrap a key for an invalid workspace id");
	if (!keys_id_valid(key_id))
		return err_set(-EINVAL, "cannot wrap a key with an invalid key id");
	n = strlen(ws_id);
	hlen = W_FIXED + n;
	total = hlen + W_SEALED;
	buf_grow(out, total);
	p = out->data + out->len;
	memcpy(p, WRAP_MAGIC, WRAP_MAGIC_LEN);
	p[W_VERSION] = WRAP_VERSION;
	p[W_KIND] = (uint8_t)kind;
	p[W_ALG] = KEYS_ALG_XCHACHA20POLY1305;
	p[W_WSLEN] = (uint8_t)n;
	keys_id_from_hex(key_id, p + W_KEY_ID);
	memcpy(p + W_KEK_ID, kek->id_bin, KEYS_ID_BYTES);
	keys_put_le64(p + W_CREATED, created);
	memcpy(p + W_KCV, kek->check, KEYS_KCV_LEN);
	memcpy(p + W_WS_ID, ws_id, n);
	randombytes_buf(p + hlen, KEYS_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(p + hlen + KEYS_NONCE_LEN, NULL,
						   key, KEYS_KEY_LEN, p, hlen, NULL,
						   p + hlen, kek->wrap_key);
	buf_setlen(out, out->len + total);
	return 0;
}

int keys_wrap_check_ids(const struct keys_wrap_info *hdr, const char *ws_id, const char *key_id,
			const char *kek_id)
{
	if (strcmp(hdr->ws_id, ws_id))
		return err_set(-EBADMSG, "cannot unwrap key %s: the object belongs to "
			       "workspace %s, not %s", key_id, hdr->ws_id, ws_id);
	if (strcmp(hdr->key_id, key_id))
		return err_set(-EBADMSG, "cannot unwrap key %s: the object holds key %s",
			       key_id, hdr->key_id);
	if (strcmp(hdr->kek_id, kek_id))
		return err_set(-EBADMSG, "cannot unwrap key %s: the object is wrapped by "
			       "tenant key %s, not %s", key_id, hdr->kek_id, kek_id);
	return 0;
}

int keys_wrap_peek(const uint8_t *obj, size_t len, struct keys_wrap_info *info)
{
	size_t n;

	memset(info, 0, sizeof(*info));
	if (len < WRAP_MAGIC_LEN + 1)
		return err_set(-EBADMSG, "wrapped key object truncated (%zu bytes)", len);
	if (memcmp(obj, WRAP_MAGIC, WRAP_MAGIC_LEN))
		return err_set(-EBADMSG, "not a cairn wrapped key object (bad magic)");
	if (obj[W_VERSION] != WRAP_VERSION)
		return err_set(-ENOTSUP, "wrapped key format version %u is not supported "
			       "(this cairn reads version %d)", obj[W_VERSION], WRAP_VERSION);
	if (len < W_FIXED)
		return err_set(-EBADMSG, "wrapped key object truncated (%zu bytes)", len);
	if (obj[W_ALG] != KEYS_ALG_XCHACHA20POLY1305)
		return err_set(-ENOTSUP, "wrapped key algorithm %u is not supported (this "
			       "cairn knows %d, XChaCha20-Poly1305)", obj[W_ALG],
			       KEYS_ALG_XCHACHA20POLY1305);
	if (obj[W_KIND] != KEYS_KEY_IDENTITY && obj[W_KIND] != KEYS_KEY_DATA)
		return err_set(-EBADMSG, "wrapped key object names unknown key kind %u",
			       obj[W_KIND]);
	n = obj[W_WSLEN];
	if (n == 0 || n > KEYS_WS_ID_MAX)
		return err_set(-EBADMSG, "wrapped key object has a bad workspace id length "
			       "(%zu)", n);
	if (len != W_FIXED + n + W_SEALED)
		return err_set(-EBADMSG, "wrapped key object is %zu bytes, expected %zu: "
			       "truncated or with trailing bytes", len, W_FIXED + n + W_SEALED);
	memcpy(info->ws_id, obj + W_WS_ID, n);
	info->ws_id[n] = '\0';
	if (!keys_ws_id_valid(info->ws_id))
		return err_set(-EBADMSG, "wrapped key object has a malformed workspace id");
	info->version = obj[W_VERSION];
	info->kind = (enum keys_key_kind)obj[W_KIND];
	keys_id_to_hex(obj + W_KEY_ID, info->key_id);
	keys_id_to_hex(obj + W_KEK_ID, info->kek_id);
	info->created = keys_get_le64(obj + W_CREATED);
	return 0;
}

/* Decrypts the sealed key of obj with the header ad (hlen bytes) into key.
 * Returns 0 or -1. */
static int wrap_decrypt(const struct keys_kek *kek, const uint8_t *obj, const uint8_t *ad,
			size_t hlen, uint8_t key[KEYS_KEY_LEN])
{
	unsigned long long klen;

	if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, &klen, NULL,
						       obj + hlen + KEYS_NONCE_LEN,
						       KEYS_KEY_LEN + KEYS_TAG_LEN, ad, hlen,
						       obj + hlen, kek->wrap_key) != 0 ||
	    klen != KEYS_KEY_LEN) {
		sodium_memzero(key, KEYS_KEY_LEN);
		return -1;
	}
	return 0;
}

int keys_unwrap(const struct keys_kek *kek, const uint8_t *obj, size_t len,
		const char *ws_id, const char *key_id, const char *kek_id,
		uint8_t key_out[KEYS_KEY_LEN], struct keys_wrap_info *info)
{
	struct keys_wrap_info hdr;
	uint8_t ad[W_HEADER_MAX];
	size_t hlen;
	int rc;

	sodium_memzero(key_out, KEYS_KEY_LEN);
	if (info)
		memset(info, 0, sizeof(*info));
	if (!keys_ws_id_valid(ws_id) || !keys_id_valid(key_id) || !keys_id_valid(kek_id))
		return err_set(-EINVAL, "cannot unwrap: invalid workspace, key or tenant "
			       "key id");
	rc = keys_wrap_peek(obj, len, &hdr);
	if (rc)
		return err_prefix(rc, "cannot unwrap key %s (keys/%s.%s)", key_id, key_id,
				  kek_id);
	rc = keys_wrap_check_ids(&hdr, ws_id, key_id, kek_id);
	if (rc)
		return rc;
	if (strcmp(kek->id, hdr.kek_id))
		return err_set(-EACCES, "cannot unwrap key %s: wrong tenant key? (it is "
			       "wrapped by tenant key %s, the key given is %s)", key_id,
			       hdr.kek_id, kek->id);
	hlen = W_FIXED + strlen(hdr.ws_id);
	if (sodium_memcmp(obj + W_KCV, kek->check, KEYS_KCV_LEN) != 0) {
		/* Either another key with the same id, or this check value was
		 * altered: with our check value in its place, an intact object
		 * that only had its check value changed still opens. */
		memcpy(ad, obj, hlen);
		memcpy(ad + W_KCV, kek->check, KEYS_KCV_LEN);
		if (wrap_decrypt(kek, obj, ad, hlen, key_out) == 0) {
			sodium_memzero(key_out, KEYS_KEY_LEN);
			return err_set(-EBADMSG, "cannot unwrap key %s: the object was altered "
				       "(its tenant key check value)", key_id);
		}
		return err_set(-EACCES, "cannot unwrap key %s: wrong tenant key? (tenant "
			       "key %s is not the key with that id that wrapped it)", key_id,
			       kek->id);
	}
	if (wrap_decrypt(kek, obj, obj, hlen, key_out) != 0)
		return err_set(-EBADMSG, "cannot unwrap key %s: the wrapped key object "
			       "(tenant key %s) was altered or is damaged", key_id, kek_id);
	if (info)
		*info = hdr;
	return 0;
}
