/*
 * seal.c - sealing of blobs and of every other repository object under a
 * data key's sealing key (XChaCha20-Poly1305, random nonces; layouts in
 * docs/format.md).
 *
 * Invariants: a sealed blob binds its type, blob id and key id; a sealed
 * object binds its plaintext header (version, kind, key id), its object name
 * and its workspace id.  Opening never appends anything to the output buffer
 * unless authentication succeeded.
 */
#include "config.h"

#include <string.h>

#include <sodium.h>

#include "err.h"
#include "keys.h"
#include "keys_int.h"

#define BLOB_AD_MAGIC "cairnblb"
#define BLOB_AD_VERSION 1
#define BLOB_AD_LEN (8 + 1 + 1 + KEYS_ID_BYTES + KEYS_BLOB_ID_LEN)	/* 50 */

#define OBJ_MAGIC "cairnobj"
#define OBJ_MAGIC_LEN 8
#define OBJ_VERSION 1
#define O_VERSION 8
#define O_KIND 9
#define O_ALG 10
#define O_RESERVED 11
#define O_KEY_ID 12
#define O_HEADER 20		/* then nonce, ciphertext+tag */
#define OBJ_AD_MAX (O_HEADER + 2 + KEYS_OBJECT_NAME_MAX + 1 + KEYS_WS_ID_MAX)

static int seal_check_key(const struct keys_key *dk, const char *what)
{
	if (!dk || dk->kind != KEYS_KEY_DATA)
		return err_set(-EINVAL, "cannot %s: %s is not a data key", what,
			       dk ? dk->id : "(none)");
	return 0;
}

static void blob_ad(uint8_t ad[BLOB_AD_LEN], const struct keys_key *dk,
		    enum keys_blob_type type, const uint8_t id[KEYS_BLOB_ID_LEN])
{
	memcpy(ad, BLOB_AD_MAGIC, 8);
	ad[8] = BLOB_AD_VERSION;
	ad[9] = (uint8_t)type;
	memcpy(ad + 10, dk->id_bin, KEYS_ID_BYTES);
	memcpy(ad + 10 + KEYS_ID_BYTES, id, KEYS_BLOB_ID_LEN);
}

int keys_seal_blob(const struct keys_key *dk, enum keys_blob_type type,
		   const uint8_t id[KEYS_BLOB_ID_LEN],
		   const void *plain, size_t len, struct buf *out)
{
	uint8_t ad[BLOB_AD_LEN];
	uint8_t *p;
	int rc = seal_check_key(dk, "seal blob");

	if (rc)
		return rc;
	if (type != KEYS_BLOB_DATA && type != KEYS_BLOB_TREE)
		return err_set(-EINVAL, "cannot seal a blob of unknown type %d", (int)type);
	if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
	    len > SIZE_MAX - KEYS_BLOB_OVERHEAD - 1)
		return err_set(-EINVAL, "cannot seal a blob of %zu bytes: too large", len);
	blob_ad(ad, dk, type, id);
	buf_grow(out, len + KEYS_BLOB_OVERHEAD);
	p = out->data + out->len;
	randombytes_buf(p, KEYS_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(p + KEYS_NONCE_LEN, NULL, plain, len,
						   ad, sizeof(ad), NULL, p, dk->sub_a);
	buf_setlen(out, out->len + len + KEYS_BLOB_OVERHEAD);
	return 0;
}

int keys_open_blob(const struct keys_key *dk, enum keys_blob_type type,
		   const uint8_t id[KEYS_BLOB_ID_LEN],
		   const uint8_t *sealed, size_t len, struct buf *out)
{
	uint8_t ad[BLOB_AD_LEN];
	char hex[2 * KEYS_BLOB_ID_LEN + 1];
	unsigned long long plen;
	int rc = seal_check_key(dk, "open blob");

	if (rc)
		return rc;
	sodium_bin2hex(hex, sizeof(hex), id, KEYS_BLOB_ID_LEN);
	if (len < KEYS_BLOB_OVERHEAD)
		return err_set(-EBADMSG, "sealed %s blob %s is truncated (%zu bytes)",
			       keys_blob_type_name(type), hex, len);
	blob_ad(ad, dk, type, id);
	buf_grow(out, len - KEYS_BLOB_OVERHEAD);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out->data + out->len, &plen, NULL,
						       sealed + KEYS_NONCE_LEN,
						       len - KEYS_NONCE_LEN, ad, sizeof(ad),
						       sealed, dk->sub_a) != 0)
		return err_set(-EBADMSG, "sealed %s blob %s does not open with data key %s: "
			       "altered, truncated, stored under another id or type, or "
			       "sealed with another key", keys_blob_type_name(type), hex,
			       dk->id);
	buf_setlen(out, out->len + (size_t)plen);
	return 0;
}

/* Checks an object name (1..KEYS_OBJECT_NAME_MAX bytes) and a workspace id.
 * Returns 0 or -EINVAL. */
static int obj_args_check(const char *object_name, const char *ws_id)
{
	size_t nlen = object_name ? strnlen(object_name, KEYS_OBJECT_NAME_MAX + 1) : 0;

	if (nlen == 0 || nlen > KEYS_OBJECT_NAME_MAX)
		return err_set(-EINVAL, "invalid object name: want 1 to %d bytes",
			       KEYS_OBJECT_NAME_MAX);
	if (!keys_ws_id_valid(ws_id))
		return err_set(-EINVAL, "invalid workspace id for object %s", object_name);
	return 0;
}

/* Builds the associated data of a sealed object (arguments already checked
 * by obj_args_check): its 20-byte header, the object name (LE16 length
 * first), the workspace id (u8 length first).  Returns its length. */
static size_t obj_ad(uint8_t ad[OBJ_AD_MAX], const uint8_t header[O_HEADER],
		     const char *object_name, const char *ws_id)
{
	size_t nlen = strlen(object_name), wlen = strlen(ws_id);
	uint8_t *p = ad;

	memcpy(p, header, O_HEADER);
	p += O_HEADER;
	keys_put_le16(p, (uint16_t)nlen);
	p += 2;
	memcpy(p, object_name, nlen);
	p += nlen;
	*p++ = (uint8_t)wlen;
	memcpy(p, ws_id, wlen);
	p += wlen;
	return (size_t)(p - ad);
}

int keys_seal_object(const struct keys_key *dk, enum keys_obj_kind kind,
		     const char *object_name, const char *ws_id,
		     const void *plain, size_t len, struct buf *out)
{
	uint8_t ad[OBJ_AD_MAX];
	uint8_t hdr[O_HEADER];
	size_t adlen;
	uint8_t *p;
	int rc = seal_check_key(dk, "seal object");

	if (rc)
		return rc;
	if (kind < KEYS_OBJ_PACK_HEADER || kind > KEYS_OBJ_LEASE)
		return err_set(-EINVAL, "cannot seal an object of unknown kind %d", (int)kind);
	if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
	    len > SIZE_MAX - KEYS_OBJECT_OVERHEAD - 1)
		return err_set(-EINVAL, "cannot seal an object of %zu bytes: too large", len);
	memcpy(hdr, OBJ_MAGIC, OBJ_MAGIC_LEN);
	hdr[O_VERSION] = OBJ_VERSION;
	hdr[O_KIND] = (uint8_t)kind;
	hdr[O_ALG] = KEYS_ALG_XCHACHA20POLY1305;
	hdr[O_RESERVED] = 0;
	memcpy(hdr + O_KEY_ID, dk->id_bin, KEYS_ID_BYTES);
	rc = obj_args_check(object_name, ws_id);
	if (rc)
		return rc;
	adlen = obj_ad(ad, hdr, object_name, ws_id);
	buf_grow(out, len + KEYS_OBJECT_OVERHEAD);
	p = out->data + out->len;
	memcpy(p, hdr, O_HEADER);
	randombytes_buf(p + O_HEADER, KEYS_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(p + O_HEADER + KEYS_NONCE_LEN, NULL,
						   plain, len, ad, adlen, NULL,
						   p + O_HEADER, dk->sub_a);
	buf_setlen(out, out->len + len + KEYS_OBJECT_OVERHEAD);
	return 0;
}

/* Checks the structure of a sealed object's header.  Returns 0, -EBADMSG or
 * -ENOTSUP (message without the object's name: callers prefix it). */
static int obj_check_header(const uint8_t *sealed, size_t len)
{
	if (len < OBJ_MAGIC_LEN + 1)
		return err_set(-EBADMSG, "sealed object truncated (%zu bytes)", len);
	if (memcmp(sealed, OBJ_MAGIC, OBJ_MAGIC_LEN))
		return err_set(-EBADMSG, "not a sealed cairn object (bad magic)");
	if (sealed[O_VERSION] != OBJ_VERSION)
		return err_set(-ENOTSUP, "sealed object format version %u is not supported "
			       "(this cairn reads version %d)", sealed[O_VERSION], OBJ_VERSION);
	if (len < KEYS_OBJECT_OVERHEAD)
		return err_set(-EBADMSG, "sealed object truncated (%zu bytes)", len);
	if (sealed[O_ALG] != KEYS_ALG_XCHACHA20POLY1305)
		return err_set(-ENOTSUP, "sealed object algorithm %u is not supported (this "
			       "cairn knows %d, XChaCha20-Poly1305)", sealed[O_ALG],
			       KEYS_ALG_XCHACHA20POLY1305);
	if (sealed[O_RESERVED] != 0)
		return err_set(-EBADMSG, "sealed object has a non-zero reserved byte");
	return 0;
}

int keys_object_key_id(const uint8_t *sealed, size_t len, char *key_id,
		       enum keys_obj_kind *kind)
{
	int rc = obj_check_header(sealed, len);

	key_id[0] = '\0';
	if (rc)
		return rc;
	keys_id_to_hex(sealed + O_KEY_ID, key_id);
	if (kind)
		*kind = (enum keys_obj_kind)sealed[O_KIND];
	return 0;
}

int keys_open_object(const struct keys_key *dk, enum keys_obj_kind kind,
		     const char *object_name, const char *ws_id,
		     const uint8_t *sealed, size_t len, struct buf *out)
{
	uint8_t ad[OBJ_AD_MAX];
	char key_id[KEYS_ID_SIZE];
	unsigned long long plen;
	size_t adlen;
	int rc = seal_check_key(dk, "open object");

	if (rc)
		return rc;
	rc = obj_args_check(object_name, ws_id);
	if (rc)
		return rc;
	rc = obj_check_header(sealed, len);
	if (rc)
		return err_prefix(rc, "object %s", object_name);
	if (sealed[O_KIND] != (uint8_t)kind)
		return err_set(-EBADMSG, "object %s is a sealed %s (kind %u), expected a %s",
			       object_name, keys_obj_kind_name(sealed[O_KIND]),
			       sealed[O_KIND], keys_obj_kind_name((int)kind));
	keys_id_to_hex(sealed + O_KEY_ID, key_id);
	if (memcmp(sealed + O_KEY_ID, dk->id_bin, KEYS_ID_BYTES))
		return err_set(-EBADMSG, "object %s is sealed with data key %s, not %s",
			       object_name, key_id, dk->id);
	adlen = obj_ad(ad, sealed, object_name, ws_id);
	buf_grow(out, len - KEYS_OBJECT_OVERHEAD);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out->data + out->len, &plen, NULL,
						       sealed + O_HEADER + KEYS_NONCE_LEN,
						       len - O_HEADER - KEYS_NONCE_LEN,
						       ad, adlen, sealed + O_HEADER,
						       dk->sub_a) != 0)
		return err_set(-EBADMSG, "object %s of workspace %s failed authentication: "
			       "altered, truncated, moved from another name or workspace, or "
			       "sealed with another key", object_name, ws_id);
	buf_setlen(out, out->len + (size_t)plen);
	return 0;
}

int keys_ring_open_object(const struct keys_ring *ring, enum keys_obj_kind kind,
			  const char *object_name, const char *ws_id,
			  const uint8_t *sealed, size_t len, struct buf *out)
{
	char key_id[KEYS_ID_SIZE];
	const struct keys_key *dk;
	int rc = keys_object_key_id(sealed, len, key_id, NULL);

	if (!rc)
		rc = keys_ring_find(ring, key_id, &dk);
	if (!rc)
		rc = keys_open_object(dk, kind, object_name, ws_id, sealed, len, out);
	return rc;
}
