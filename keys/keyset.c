/*
 * keyset.c - the key set: the record of which data keys of a workspace are
 * live and which one is current, authenticated with a subkey of the
 * identity key (layout in docs/format.md, "Key set").
 *
 * Invariants: the encoding is canonical (ids sorted, no duplicate, the
 * current key among the live ones, the identity key not), so a record
 * parses to exactly one set and encodes back to the same bytes; the MAC
 * covers every byte before it; the MAC key is derived from the identity
 * key, which never rotates, so every reader can check it and no holder of
 * a data key alone can make one.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "keys.h"
#include "keys_int.h"

#define SET_MAGIC "cairnset"
#define SET_MAGIC_LEN 8
#define SET_ALG_BLAKE2B 1	/* keyed BLAKE2b-256 */

/* Offsets (version 1). */
#define S_VERSION 8
#define S_ALG 9
#define S_WSLEN 10
#define S_RESERVED 11
#define S_SERIAL 12
#define S_CREATED 20
#define S_IDENTITY 28
#define S_CURRENT 36
#define S_COUNT 44
#define S_WS_ID 46		/* then ws_id (n), live ids (8 each), MAC */
#define S_FIXED 46
#define S_MAC_LEN 32

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, KEYS_ID_SIZE);
}

int keys_set_has(const struct keys_set *set, const char *key_id)
{
	return set && keys_id_valid(key_id) &&
	       bsearch(key_id, set->live, set->n, KEYS_ID_SIZE, id_cmp) != NULL;
}

void keys_set_free(struct keys_set *set)
{
	if (!set)
		return;
	free(set->live);
	memset(set, 0, sizeof(*set));
}

/* The MAC of len bytes at p under the identity key's key-set subkey. */
static void set_mac(const struct keys_key *id, const uint8_t *p, size_t len,
		    uint8_t mac[S_MAC_LEN])
{
	crypto_generichash(mac, S_MAC_LEN, p, len, id->sub_c, KEYS_KEY_LEN);
}

int keys_set_encode(const struct keys_ring *ring, const struct keys_set *set, struct buf *out)
{
	const struct keys_key *id;
	const char *ws_id = keys_ring_ws_id(ring);
	char (*live)[KEYS_ID_SIZE];
	size_t n = strlen(ws_id), m = set->n, len;
	uint8_t *p;
	int rc = keys_ring_identity(ring, &id);

	if (rc)
		return rc;
	if (set->serial == 0 || set->serial > (uint64_t)INT64_MAX)
		return err_set(-EINVAL, "key set serial %llu is out of range (1 to 2^63-1)",
			       (unsigned long long)set->serial);
	if (m == 0 || m > KEYS_SET_MAX_KEYS)
		return err_set(-EINVAL, "a key set holds 1 to %d data keys, not %zu: retire old data keys first (cairn-keyadm reencrypt --retire)",
			       KEYS_SET_MAX_KEYS, m);
	live = xmalloc(m * sizeof(*live));
	memcpy(live, set->live, m * sizeof(*live));
	qsort(live, m, sizeof(*live), id_cmp);
	for (size_t i = 0; !rc && i < m; i++) {
		if (!keys_id_valid(live[i]))
			rc = err_set(-EINVAL, "a key set id is not 16 lowercase hex digits");
		else if (i && !memcmp(live[i - 1], live[i], KEYS_ID_SIZE))
			rc = err_set(-EINVAL, "data key %s is twice in the key set", live[i]);
		else if (!strcmp(live[i], id->id))
			rc = err_set(-EINVAL, "the identity key %s is no data key of the key set", id->id);
	}
	if (!rc && !bsearch(set->current, live, m, sizeof(*live), id_cmp))
		rc = err_set(-EINVAL, "the current data key %s is not among the key set's live keys",
			     keys_id_valid(set->current) ? set->current : "(invalid id)");
	if (rc) {
		free(live);
		return rc;
	}
	len = S_FIXED + n + KEYS_ID_BYTES * m + S_MAC_LEN;
	buf_grow(out, len);
	p = out->data + out->len;
	memcpy(p, SET_MAGIC, SET_MAGIC_LEN);
	p[S_VERSION] = KEYS_SET_VERSION;
	p[S_ALG] = SET_ALG_BLAKE2B;
	p[S_WSLEN] = (uint8_t)n;
	p[S_RESERVED] = 0;
	keys_put_le64(p + S_SERIAL, set->serial);
	keys_put_le64(p + S_CREATED, set->created);
	memcpy(p + S_IDENTITY, id->id_bin, KEYS_ID_BYTES);
	keys_id_from_hex(set->current, p + S_CURRENT);
	keys_put_le16(p + S_COUNT, (uint16_t)m);
	memcpy(p + S_WS_ID, ws_id, n);
	for (size_t i = 0; i < m; i++)
		keys_id_from_hex(live[i], p + S_FIXED + n + KEYS_ID_BYTES * i);
	set_mac(id, p, len - S_MAC_LEN, p + len - S_MAC_LEN);
	buf_setlen(out, out->len + len);
	free(live);
	return 0;
}

int keys_set_parse(const uint8_t *obj, size_t len, const char *ws_id, struct keys_set *out)
{
	size_t n, m;
	char found[KEYS_WS_ID_MAX + 1];

	memset(out, 0, sizeof(*out));
	if (len < SET_MAGIC_LEN + 1 || memcmp(obj, SET_MAGIC, SET_MAGIC_LEN))
		return err_set(-EBADMSG, "not a cairn key set (bad magic or %zu bytes)", len);
	if (obj[S_VERSION] != KEYS_SET_VERSION)
		return err_set(-ENOTSUP, "key set format version %u is not supported (this cairn reads version %d): upgrade cairn",
			       obj[S_VERSION], KEYS_SET_VERSION);
	if (len < S_FIXED + 1 + KEYS_ID_BYTES + S_MAC_LEN)
		return err_set(-EBADMSG, "key set truncated (%zu bytes)", len);
	if (obj[S_ALG] != SET_ALG_BLAKE2B)
		return err_set(-ENOTSUP, "key set MAC algorithm %u is not supported (this cairn knows %d, keyed BLAKE2b-256)",
			       obj[S_ALG], SET_ALG_BLAKE2B);
	n = obj[S_WSLEN];
	m = (size_t)obj[S_COUNT] | (size_t)obj[S_COUNT + 1] << 8;
	if (obj[S_RESERVED] != 0)
		return err_set(-EBADMSG, "key set has a non-zero reserved byte");
	if (n < 1 || n > KEYS_WS_ID_MAX || m < 1 || m > KEYS_SET_MAX_KEYS)
		return err_set(-EBADMSG, "key set: workspace id length %zu or key count %zu out of range",
			       n, m);
	if (len != S_FIXED + n + KEYS_ID_BYTES * m + S_MAC_LEN)
		return err_set(-EBADMSG, "key set of %zu data keys is %zu bytes, not %zu", m, len,
			       S_FIXED + n + KEYS_ID_BYTES * m + S_MAC_LEN);
	memcpy(found, obj + S_WS_ID, n);
	found[n] = '\0';
	if (!keys_ws_id_valid(found))
		return err_set(-EBADMSG, "key set: the workspace id is not valid");
	if (ws_id && strcmp(found, ws_id))
		return err_set(-EBADMSG, "the key set belongs to workspace %s, not %s", found, ws_id);
	out->serial = keys_get_le64(obj + S_SERIAL);
	if (out->serial == 0 || out->serial > (uint64_t)INT64_MAX)
		return err_set(-EBADMSG, "key set serial %llu is out of range",
			       (unsigned long long)out->serial);
	out->created = keys_get_le64(obj + S_CREATED);
	keys_id_to_hex(obj + S_IDENTITY, out->identity);
	keys_id_to_hex(obj + S_CURRENT, out->current);
	out->live = xmalloc(m * sizeof(*out->live));
	out->n = m;
	for (size_t i = 0; i < m; i++) {
		keys_id_to_hex(obj + S_FIXED + n + KEYS_ID_BYTES * i, out->live[i]);
		if (i && memcmp(out->live[i - 1], out->live[i], KEYS_ID_SIZE) >= 0) {
			keys_set_free(out);
			return err_set(-EBADMSG, "key set: its data key ids are not in strictly increasing order");
		}
	}
	if (keys_set_has(out, out->identity) || !keys_set_has(out, out->current)) {
		keys_set_free(out);
		return err_set(-EBADMSG, "key set: the current key is not among its live keys, or the identity key is");
	}
	return 0;
}

int keys_set_verify(const struct keys_ring *ring, const uint8_t *obj, size_t len)
{
	const struct keys_key *id;
	uint8_t mac[S_MAC_LEN];
	char named[KEYS_ID_SIZE];
	int rc = keys_ring_identity(ring, &id);

	if (rc)
		return rc;
	if (len < S_FIXED + S_MAC_LEN)
		return err_set(-EBADMSG, "key set truncated (%zu bytes)", len);
	keys_id_to_hex(obj + S_IDENTITY, named);
	if (memcmp(obj + S_IDENTITY, id->id_bin, KEYS_ID_BYTES))
		return err_set(-EBADMSG, "the key set names identity key %s, not the workspace's %s",
			       named, id->id);
	set_mac(id, obj, len - S_MAC_LEN, mac);
	if (sodium_memcmp(mac, obj + len - S_MAC_LEN, S_MAC_LEN) != 0)
		return err_set(-EBADMSG, "the key set does not verify with the workspace's identity key: it was altered, or made by someone without that key");
	return 0;
}
