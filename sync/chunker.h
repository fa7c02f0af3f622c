/*
 * chunker.h - content-defined chunking of file content into data blobs:
 * FastCDC-style gear hash with normalized chunking, keyed per workspace.
 *
 * The 256-entry gear table comes from the workspace's chunker key
 * (keys_chunker_key), so chunk sizes say nothing about content to someone
 * without the key, and two workspaces cut the same file differently.  The
 * exact function is specified in docs/format.md "Chunking": a second
 * implementation must find the same boundaries to dedup against cairn's.
 *
 * chunker_next() is stateless: the chunk that starts at data[0] depends only
 * on the bytes data[0 .. max), so a caller may feed any amount of data, keep
 * what is not yet cut, and call again with more.
 *
 * Threads: a struct chunker is read-only after chunker_new() and may be used
 * by any number of threads at once; chunker_free() needs it to be unused.
 */
#ifndef CAIRN_CHUNKER_H
#define CAIRN_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"

/* Defaults: the repository's chunk sizes (docs/format.md "Chunking"). */
#define CHUNKER_MIN_DEFAULT (256u << 10)
#define CHUNKER_AVG_DEFAULT (1u << 20)
#define CHUNKER_MAX_DEFAULT (4u << 20)

/* Limits on parameters: avg a power of two in [CHUNKER_AVG_LOW,
 * CHUNKER_AVG_HIGH]; 1 <= min <= avg <= max <= CHUNKER_MAX_HIGH (a chunk
 * must fit a blob, see BLOB_MAX_RAW). */
#define CHUNKER_AVG_LOW 64u
#define CHUNKER_AVG_HIGH (1u << 30)
#define CHUNKER_MAX_HIGH (64u << 20)

struct chunker_params {
	size_t min;	/* no cut before this many bytes */
	size_t avg;	/* normal size, a power of two: where the masks switch */
	size_t max;	/* cut here at the latest */
};

/* The default parameters (256 KiB / 1 MiB / 4 MiB). */
void chunker_params_default(struct chunker_params *p);

struct chunker;	/* gear table (key material) + masks + sizes; opaque */

/* Makes a chunker from the 32-byte chunker key and params (NULL = the
 * defaults) into *out.  The gear table lives in sodium_malloc'd memory,
 * read-only, wiped by chunker_free.  Returns 0, -EINVAL (bad parameters,
 * the message says which), -EIO (libsodium cannot start) or -ENOMEM. */
int chunker_new(const uint8_t key[KEYS_KEY_LEN], const struct chunker_params *params,
		struct chunker **out);

/* The same with the chunker key of a workspace's keyring.  Returns 0,
 * -ENOENT (no identity key in the ring) or an error of chunker_new. */
int chunker_new_ring(const struct keys_ring *ring, const struct chunker_params *params,
		     struct chunker **out);

/* Wipes and frees a chunker; NULL is fine. */
void chunker_free(struct chunker *c);

/* The parameters c was made with. */
void chunker_params_get(const struct chunker *c, struct chunker_params *p);

/* Length of the chunk that starts at data[0], of the len bytes available:
 *   - a boundary found in data[min .. min(len, max)): its length;
 *   - else len >= max: max;
 *   - else eof (data holds the rest of the file): len (the last chunk, which
 *     may be shorter than min; 0 when len is 0);
 *   - else 0: more data is needed (call again with more, from data[0]).
 * Never more than len or max. */
size_t chunker_next(const struct chunker *c, const uint8_t *data, size_t len, int eof);

#endif
