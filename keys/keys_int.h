/*
 * keys_int.h - what the files of keys/ share and nobody else sees: the
 * layout of the secret structs, the KDF contexts, byte helpers.
 *
 * Invariant: struct keys_kek and struct keys_key are only ever allocated
 * with sodium_malloc, filled once, then made read-only (sodium_mprotect_
 * readonly) until sodium_free wipes them.
 */
#ifndef CAIRN_KEYS_INT_H
#define CAIRN_KEYS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define KEYS_ID_BYTES 8		/* ids are 8 random bytes, shown as 16 hex */
#define KEYS_NONCE_LEN 24	/* XChaCha20-Poly1305 */
#define KEYS_TAG_LEN 16
#define KEYS_KCV_LEN 16		/* tenant key check value */
#define KEYS_ALG_XCHACHA20POLY1305 1

/* crypto_kdf contexts (8 bytes each) and the subkey id used with each; see
 * docs/format.md "Key derivation". */
#define KEYS_CTX_KEK_WRAP "cairnwrp"	/* KEK -> wrapping key (32 bytes) */
#define KEYS_CTX_KEK_CHECK "cairnkcv"	/* KEK -> check value (16 bytes) */
#define KEYS_CTX_BLOB_ID "cairnbid"	/* identity key -> blob-id key */
#define KEYS_CTX_CHUNKER "cairnchk"	/* identity key -> chunker key */
#define KEYS_CTX_KEYSET "cairnset"	/* identity key -> key-set MAC key */
#define KEYS_CTX_SEAL "cairnsea"	/* data key -> sealing key */
#define KEYS_SUBKEY_ID 1

struct keys_kek {
	char id[KEYS_ID_SIZE];
	uint8_t id_bin[KEYS_ID_BYTES];
	uint8_t key[KEYS_KEY_LEN];
	uint8_t wrap_key[KEYS_KEY_LEN];	/* KDF(key, "cairnwrp") */
	uint8_t check[KEYS_KCV_LEN];	/* KDF(key, "cairnkcv") */
};

struct keys_key {
	enum keys_key_kind kind;
	char id[KEYS_ID_SIZE];
	uint8_t id_bin[KEYS_ID_BYTES];
	uint8_t key[KEYS_KEY_LEN];
	uint8_t sub_a[KEYS_KEY_LEN];	/* identity: blob-id key; data: sealing key */
	uint8_t sub_b[KEYS_KEY_LEN];	/* identity: chunker key; data: zero */
	uint8_t sub_c[KEYS_KEY_LEN];	/* identity: key-set MAC key; data: zero */
};

/* Parses 16 lowercase hex digits into 8 bytes.  Returns 0 or -EINVAL. */
int keys_id_from_hex(const char *hex, uint8_t out[KEYS_ID_BYTES]);
/* Writes 8 bytes as 16 lowercase hex digits + NUL. */
void keys_id_to_hex(const uint8_t in[KEYS_ID_BYTES], char out[KEYS_ID_SIZE]);

void keys_put_le16(uint8_t *p, uint16_t v);
void keys_put_le64(uint8_t *p, uint64_t v);
uint64_t keys_get_le64(const uint8_t *p);

/* Makes a read-only struct keys_key of kind with id key_id and bytes key,
 * its subkeys derived.  Returns 0, -EINVAL (bad id or kind) or -ENOMEM. */
int keys_key_make(enum keys_key_kind kind, const char *key_id,
		  const uint8_t key[KEYS_KEY_LEN], struct keys_key **out);
void keys_key_free(struct keys_key *k);

#endif
