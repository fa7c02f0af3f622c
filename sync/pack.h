/*
 * pack.h - packs, the unit of upload: sealed blobs of one type back to back,
 * then the pack header sealed as an object bound to the pack's own name,
 * then the header's length (docs/format.md, "Packs").
 *
 *   data/<xx>/<pack-id>   data blobs        xx = first two hex digits of the id
 *   tree/<xx>/<pack-id>   tree blobs        pack id = 32 lowercase hex (16 random bytes)
 *
 *   pack = blob_0 ‖ blob_1 ‖ … ‖ sealed header ‖ LE32(length of sealed header)
 *
 * A writer collects already-sealed blobs (blob.c encodes them) and seals the
 * header at the end; a reader needs only the last bytes of a pack (a range
 * GET of the tail) to learn every blob's place.  Every function returns 0 or
 * a negative errno and leaves one line in err_msg() naming the pack:
 * -EINVAL bad argument, -EBADMSG a pack that does not verify (tampered,
 * truncated, renamed, inconsistent), -ENOTSUP an unknown header version,
 * -ENOSPC a writer that is full, or a store / keyring error.
 *
 * Threads: a struct pack_writer belongs to one thread at a time; the reading
 * functions share nothing and may run in parallel.
 */
#ifndef CAIRN_PACK_H
#define CAIRN_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "buf.h"
#include "keys.h"
#include "store.h"

#define PACK_VERSION 1
/* A writer is "full" (pack_writer_full) once it reaches this size: small
 * files share one pack, a snapshot costs one PUT per ~16 MiB. */
#define PACK_TARGET_SIZE (16u << 20)
/* Most blobs in one pack; bounds the header a reader accepts. */
#define PACK_MAX_BLOBS (1u << 19)
/* Bytes of one header entry (see docs/format.md). */
#define PACK_ENTRY_SIZE 58
/* Plaintext header: version byte and LE32 count before the entries. */
#define PACK_HEADER_FIXED 5
/* Largest sealed header a reader accepts. */
#define PACK_HEADER_SEALED_MAX \
	(KEYS_OBJECT_OVERHEAD + PACK_HEADER_FIXED + (size_t)PACK_MAX_BLOBS * PACK_ENTRY_SIZE)
/* The largest pack a reader fetches whole (tree packs, prune, check,
 * reencrypt): a writer closes a pack at PACK_TARGET_SIZE, so a pack is at
 * most that plus one blob (64 MiB + 40 sealed) and its header entry, about
 * 80 MiB; anything larger is no pack cairn wrote (store_get_max). */
#define PACK_MAX_SIZE (128u << 20)
/* pack_load_header's first range GET: the last 64 KiB of the pack. */
#define PACK_TAIL_GUESS (64u << 10)

#define PACK_ID_LEN 32		/* lowercase hex digits */
#define PACK_ID_SIZE (PACK_ID_LEN + 1)
/* "data/" or "tree/" + 2 hex + "/" + id */
#define PACK_NAME_LEN (5 + 2 + 1 + PACK_ID_LEN)
#define PACK_NAME_SIZE (PACK_NAME_LEN + 1)

/* pack_read_header's answer when the tail it was given is too short. */
#define PACK_NEED_MORE 1

/* One blob of a pack: what blob.c produced, and where it sits. */
struct pack_entry {
	struct blob_ref ref;
	uint64_t offset;	/* of its first sealed byte, from the pack's start */
};

/* A pack's header, as written or read. */
struct pack_header {
	char name[PACK_NAME_SIZE];	/* "data/ab/ab12…" */
	enum keys_blob_type type;	/* every entry has this type */
	size_t count;
	struct pack_entry *entries;	/* count entries, in offset order */
	uint64_t blobs_end;		/* where the sealed header starts */
};

/* Frees h->entries and empties *h; NULL and an empty header are fine. */
void pack_header_free(struct pack_header *h);

/* ---- names -------------------------------------------------------------- */

/* Writes "data/<xx>/<id>" or "tree/<xx>/<id>" into out.  id must be 32
 * lowercase hex digits.  Returns 0 or -EINVAL. */
int pack_name_make(enum keys_blob_type type, const char *id, char out[PACK_NAME_SIZE]);

/* Checks that name is a pack name ("data|tree/<xx>/<32 hex>", xx the id's
 * first two digits) and stores its type in *type (may be NULL).  Returns 0
 * or -EINVAL naming the string. */
int pack_name_parse(const char *name, enum keys_blob_type *type);

/* ---- entries (shared with the index, which stores them the same way) --- */

/* Writes e as PACK_ENTRY_SIZE bytes.  e->ref.key_id must be valid. */
void pack_entry_encode(const struct pack_entry *e, uint8_t out[PACK_ENTRY_SIZE]);

/* Reads PACK_ENTRY_SIZE bytes into *e (no checks: see pack_entry_check). */
void pack_entry_decode(const uint8_t in[PACK_ENTRY_SIZE], struct pack_entry *e);

/* Checks one entry for a pack of type type: its type, a known compression,
 * a sealed length of at least KEYS_BLOB_OVERHEAD, a raw length of at most
 * BLOB_MAX_RAW (and exactly length - KEYS_BLOB_OVERHEAD when stored raw), a
 * valid key id, an end that fits in 64 bits.  Returns 0 or -EBADMSG naming
 * `where` and the entry. */
int pack_entry_check(const struct pack_entry *e, enum keys_blob_type type,
		     const char *where, size_t i);

/* ---- writing ------------------------------------------------------------ */

struct pack_writer;

/* A writer for a pack of blobs of type type.  Returns 0 or -EINVAL. */
int pack_writer_new(enum keys_blob_type type, struct pack_writer **out);
void pack_writer_free(struct pack_writer *w);

/* Appends one already-sealed blob (len bytes at sealed, len ==
 * ref->length) described by ref; its offset is the writer's current end.
 * Returns 0; -EINVAL (type other than the writer's, bad ref or length);
 * -ENOSPC when the writer holds PACK_MAX_BLOBS blobs already.  The blob is
 * not checked for duplicates: the caller deduplicates against the index. */
int pack_writer_add(struct pack_writer *w, const struct blob_ref *ref,
		    const uint8_t *sealed, size_t len);

/* The size the pack would have if finished now (blobs, sealed header and
 * trailer), and the number of blobs in it. */
uint64_t pack_writer_size(const struct pack_writer *w);
size_t pack_writer_count(const struct pack_writer *w);

/* 1 when the writer has reached PACK_TARGET_SIZE or PACK_MAX_BLOBS: the
 * caller finishes and uploads it and starts the next one. */
int pack_writer_full(const struct pack_writer *w);

/* Finishes the pack: picks a random pack id, seals the header under data
 * key dk (the ring's current one) bound to the pack's name and workspace
 * ws_id, and appends the whole pack to bytes_out (when bytes_out is empty,
 * its memory is taken over without a copy).  Writes the name into name_out
 * and, when hdr_out is not NULL, the entries with their offsets into
 * *hdr_out (free with pack_header_free).  The writer is then empty and can
 * take the next pack.  Returns 0; -EINVAL for an empty writer or a bad
 * key/ws_id.  On error the writer and bytes_out are unchanged. */
int pack_writer_finish(struct pack_writer *w, const struct keys_key *dk,
		       const char *ws_id, struct buf *bytes_out,
		       char name_out[PACK_NAME_SIZE], struct pack_header *hdr_out);

/* ---- reading ------------------------------------------------------------ */

/* Reads the header of pack pack_name (pack_size bytes in all) from its last
 * tail_len bytes at tail (tail_len <= pack_size; the whole pack is fine).
 * Returns:
 *   0               *out holds the header, every entry checked: types
 *                   equal to the pack's kind (from its name), blobs back to
 *                   back from offset 0 up to the header, count bounded;
 *   PACK_NEED_MORE  the header is longer than the tail: *need is the number
 *                   of tail bytes (> tail_len, <= pack_size) to call again
 *                   with; *out is untouched;
 *   -EBADMSG        trailer, header or entries do not verify, the header was
 *                   sealed for another name or workspace, the pack is
 *                   truncated; -ENOTSUP unknown header version; or the
 *                   keyring's error when the header's data key is missing.
 * need may be NULL when the caller passes the whole pack. */
int pack_read_header(const struct keys_ring *ring, const char *ws_id,
		     const char *pack_name, const uint8_t *tail, size_t tail_len,
		     uint64_t pack_size, struct pack_header *out, size_t *need);

/* Parses the plaintext of a pack header (what pack_read_header has opened)
 * of pack `name` of type type, whose blobs end at blobs_end, into *out.
 * Returns 0, -EBADMSG or -ENOTSUP, naming the pack.  Exposed for the fuzz
 * target. */
int pack_header_parse(const char *name, enum keys_blob_type type,
		      const uint8_t *plain, size_t len, uint64_t blobs_end,
		      struct pack_header *out);

/* Fetches and reads a pack's header from store s (keys relative to the
 * workspace): one range GET of the last PACK_TAIL_GUESS bytes, a second one
 * for the rest when the header is longer.  pack_size is the pack's size
 * when the caller knows it (from a listing), else 0 (then a HEAD first).
 * Returns 0 or an error of the store or of pack_read_header; a pack whose
 * size is not pack_size is -EBADMSG. */
int pack_load_header(struct store *s, const struct keys_ring *ring, const char *ws_id,
		     const char *pack_name, uint64_t pack_size, struct pack_header *out);

#endif
