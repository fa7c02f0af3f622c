/*
 * blob.h - one blob on its way to or from a pack: keyed id, zstd when it
 * pays, sealed under the workspace's current data key.
 *
 * A blob is either a chunk of file content (KEYS_BLOB_DATA) or one encoded
 * directory (KEYS_BLOB_TREE).  Its id is the keyed BLAKE2b-256 of its
 * plaintext (keys_blob_id), so equal content gets equal ids within a
 * workspace (dedup) and ids say nothing to the store.
 */
#ifndef CAIRN_BLOB_H
#define CAIRN_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "keys.h"

enum blob_compression {
	BLOB_RAW = 0,		/* stored as is: compression did not pay */
	BLOB_ZSTD = 1,		/* one zstd frame */
};

/* Everything the pack header and the index record about one blob. */
struct blob_ref {
	uint8_t id[KEYS_BLOB_ID_LEN];
	uint8_t type;		/* enum keys_blob_type */
	uint8_t compression;	/* enum blob_compression */
	uint32_t raw_length;	/* plaintext bytes */
	uint32_t length;	/* sealed bytes in the pack */
	char key_id[KEYS_ID_SIZE]; /* the data key it is sealed with */
};

/* Default zstd level; cairn.conf may change it later. */
#define BLOB_ZSTD_LEVEL 3

/* Largest plaintext a blob may have (the chunker's maximum is 4 MiB; trees
 * of huge directories are the reason for the margin). */
#define BLOB_MAX_RAW (64u << 20)

/* A blob id as text: 64 lowercase hex digits + NUL. */
#define BLOB_ID_HEX_SIZE (2 * KEYS_BLOB_ID_LEN + 1)

/* Compression pays when the zstd frame is shorter than the plaintext by at
 * least plaintext/BLOB_ZSTD_MIN_SAVING (1/16) and by at least one byte;
 * otherwise the blob is stored raw (docs/format.md "Blob encoding"). */
#define BLOB_ZSTD_MIN_SAVING 16

/* Encodes one blob of len plaintext bytes: id = keys_blob_id (of the
 * plaintext), zstd at BLOB_ZSTD_LEVEL when it pays, sealed under the ring's
 * current data key; appends the sealed bytes to sealed_out and fills *ref
 * (id, type, compression, raw_length = len, length = sealed bytes, key_id).
 * Returns 0; -EINVAL (bad type, len > BLOB_MAX_RAW), -ENOENT (no identity
 * key or no current data key), -ENOMEM (zstd cannot get memory).  On error
 * sealed_out is left as it was.  Thread-safe: each thread reuses its own
 * zstd context. */
int blob_encode(const struct keys_ring *ring, enum keys_blob_type type,
		const void *plain, size_t len, struct buf *sealed_out,
		struct blob_ref *ref);

/* Decodes the sealed bytes (len of them) of the blob ref describes: opens
 * with the data key ref->key_id, decompresses (bounded by ref->raw_length,
 * never more than BLOB_MAX_RAW), recomputes the blob id and compares it with
 * ref->id; appends the plaintext to plain_out.  Returns 0;
 *   -EBADMSG  sealed bytes altered or truncated, len != ref->length,
 *             raw_length > BLOB_MAX_RAW, a type, id or compression that does
 *             not match how it was sealed, a zstd frame that is malformed or
 *             whose content size is not ref->raw_length, or
 *             "blob <id>: content does not match its id";
 *   -EKEYREJECTED  data key ref->key_id not in the ring (not live);
 *   -ENOTSUP  unknown compression value;
 *   -EINVAL   malformed ref (unknown type, key id not 16 lowercase hex).
 * Never appends anything on error.  Thread-safe like blob_encode. */
int blob_decode(const struct keys_ring *ring, const struct blob_ref *ref,
		const uint8_t *sealed, size_t len, struct buf *plain_out);

/* Frees the calling thread's zstd contexts and scratch memory (they are
 * freed at thread exit anyway; the main thread may call this before exit
 * so leak checkers stay quiet).  The next blob_ call makes new ones. */
void blob_thread_cleanup(void);

/* Writes id as 64 lowercase hex digits + NUL into out. */
void blob_id_hex(const uint8_t id[KEYS_BLOB_ID_LEN], char out[BLOB_ID_HEX_SIZE]);

/* Parses exactly 64 lowercase hex digits (NUL-terminated) into id.  Returns
 * 0 or -EINVAL (wrong length, upper case or a non-hex character). */
int blob_id_parse(const char *hex, uint8_t id[KEYS_BLOB_ID_LEN]);

#endif
