/*
 * keys.h - cairn's crypto core and key hierarchy: tenant keys (KEKs) and
 * their text/file form, workspace keys and their wrapped objects, sealing of
 * blobs and of every other repository object, keyed blob ids.
 *
 * keys/ is pure: bytes in, bytes out.  It never talks to a store; reading and
 * writing key objects is sync/'s job.  The byte formats are specified in
 * docs/format.md.
 *
 *   tenant key (KEK) ── wraps ──► workspace keys:
 *     identity key (made at init, never rotates) → blob-id key, chunker key,
 *                                                   key-set MAC key
 *     data keys (rotatable, by key id)           → sealing key
 * and the key set, which says which data keys are live (keys_set_*).
 *
 * Every function returns 0 or a negative errno code and, on error, leaves one
 * line in err_msg() naming the object; no message ever holds secret bytes.
 * Codes: -EINVAL bad input, -EBADMSG integrity (tampered, truncated, wrong
 * id/kind/name/workspace), -EACCES wrong tenant key, -ENOTSUP unknown format
 * version or algorithm, -EEXIST file or key already present, -ENOENT key not
 * found, -ENOMEM out of locked memory, other -errno from the system.
 *
 * Secrets (KEKs and workspace keys) live only in sodium_malloc'd memory,
 * read-only once made, wiped when freed.  Functions that produce bytes append
 * them to a struct buf (so a pack writer can seal blobs back to back); on
 * error the buf is left as it was.
 *
 * Threads: keys_init() is thread-safe.  A struct keys_kek and a struct
 * keys_ring may be used by any number of threads at once for reading
 * (seal, open, wrap, unwrap, blob id, find); keys_ring_add, keys_ring_rotate,
 * keys_ring_set_current and the frees need the caller to exclude all others.
 */
#ifndef CAIRN_KEYS_H
#define CAIRN_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define KEYS_KEY_LEN 32		/* every symmetric key: KEK, identity, data */
#define KEYS_ID_LEN 16		/* key and kek ids: 16 lowercase hex digits */
#define KEYS_ID_SIZE (KEYS_ID_LEN + 1)
#define KEYS_WS_ID_MAX 64	/* workspace ids: 1..64 of [A-Za-z0-9._-] */
#define KEYS_OBJECT_NAME_MAX 1024
#define KEYS_BLOB_ID_LEN 32	/* keyed BLAKE2b-256 */

/* "cairn-kek-v1:" + 16 hex + ":" + 44 base64 = 74 characters; the size
 * includes the terminating NUL (keys_kek_format writes no newline). */
#define KEYS_KEK_TEXT_LEN 74
#define KEYS_KEK_TEXT_SIZE (KEYS_KEK_TEXT_LEN + 1)

/* A wrapped key object is exactly 124 + n bytes (n: workspace id length);
 * a reader fetches none larger than this. */
#define KEYS_WRAPPED_MAX 4096

/* "keys/" + key id + "." + kek id */
#define KEYS_WRAPPED_NAME_LEN (5 + KEYS_ID_LEN + 1 + KEYS_ID_LEN)
#define KEYS_WRAPPED_NAME_SIZE (KEYS_WRAPPED_NAME_LEN + 1)

/* Bytes a sealed blob adds to its plaintext: 24-byte nonce + 16-byte tag. */
#define KEYS_BLOB_OVERHEAD 40
/* Bytes a sealed object adds: 20-byte header + 24-byte nonce + 16-byte tag. */
#define KEYS_OBJECT_OVERHEAD 60

/* Kinds of workspace key; the values are the byte stored in a wrapped key. */
enum keys_key_kind {
	KEYS_KEY_IDENTITY = 1,
	KEYS_KEY_DATA = 2,
};

/* Types of blob; the value is bound into each sealed blob. */
enum keys_blob_type {
	KEYS_BLOB_DATA = 1,	/* file content chunk */
	KEYS_BLOB_TREE = 2,	/* one directory */
};

/* Kinds of sealed object; the value is the kind byte of its header. */
enum keys_obj_kind {
	KEYS_OBJ_PACK_HEADER = 1,
	KEYS_OBJ_INDEX = 2,
	KEYS_OBJ_SNAPSHOT = 3,
	KEYS_OBJ_HEAD = 4,
	KEYS_OBJ_LEASE = 5,
};

struct keys_kek;	/* one tenant key: id + 32 secret bytes */
struct keys_key;	/* one workspace key (identity or data) + its subkeys */
struct keys_ring;	/* the keys of one workspace */

/* ---- setup and ids ------------------------------------------------------ */

/* Initialises libsodium once; safe to call from any thread, any number of
 * times (every keys_ function that needs it calls it too).  Returns 0, or
 * -EIO when libsodium cannot start (no randomness source). */
int keys_init(void);

/* Writes a fresh random id (16 lowercase hex digits + NUL) into out.
 * Returns 0 or -EIO (from keys_init). */
int keys_random_id(char out[KEYS_ID_SIZE]);

/* Returns 1 when s is exactly 16 lowercase hex digits, else 0. */
int keys_id_valid(const char *s);

/* Returns 1 when s is a valid workspace id (1..64 of [A-Za-z0-9._-]), else 0. */
int keys_ws_id_valid(const char *s);

/* "identity"/"data", "data"/"tree", "pack header"/"index"/... for messages;
 * "unknown" for any other value. */
const char *keys_key_kind_name(int kind);
const char *keys_blob_type_name(int type);
const char *keys_obj_kind_name(int kind);

/* ---- tenant keys (KEKs) ------------------------------------------------- */
/*
 * One text form for key files, environment variables and exec output:
 *     cairn-kek-v1:<kek-id: 16 lowercase hex>:<key: base64 of 32 bytes>
 * followed by at most one "\n" (see docs/format.md).
 */

/* Makes a new tenant key with a random id and random key into *out.
 * Returns 0, -EIO or -ENOMEM. */
int keys_kek_generate(struct keys_kek **out);

/* Parses the text form (len bytes at text, not necessarily NUL-terminated;
 * one trailing "\n" allowed) into *out.  Returns 0; -EINVAL for anything
 * malformed, -ENOTSUP for "cairn-kek-vN:" with another N; the message says
 * what is wrong and never contains the text.  The caller wipes text. */
int keys_kek_parse(const char *text, size_t len, struct keys_kek **out);

/* Writes the text form, without newline, NUL-terminated, into out (size at
 * least KEYS_KEK_TEXT_SIZE).  Returns 0 or -ERANGE when out is too small.
 * out then holds the secret: the caller wipes it (sodium_memzero). */
int keys_kek_format(const struct keys_kek *kek, char *out, size_t size);

/* Loads a tenant key file.  Refuses anything that is not a regular file
 * (-EINVAL) and a file readable or writable by group or others (-EPERM,
 * "permissions 0644 for 'PATH' are too open: chmod 600 PATH").  Returns 0,
 * -errno when the file cannot be opened or read, or a keys_kek_parse error
 * prefixed with the path. */
int keys_kek_load_file(const char *path, struct keys_kek **out);

/* Writes kek to a new file at path: created with mode 0600 and O_EXCL (never
 * overwrites: -EEXIST if path exists), the text form plus "\n", fsync'd,
 * and its directory fsync'd.  Returns 0 or -errno; on error no partial file
 * is left behind. */
int keys_kek_write_file(const struct keys_kek *kek, const char *path);

/* The tenant key's id (16 lowercase hex), valid while kek lives. */
const char *keys_kek_id(const struct keys_kek *kek);

/* Wipes and frees a tenant key; NULL is fine. */
void keys_kek_free(struct keys_kek *kek);

/* ---- key providers ------------------------------------------------------- */

/* Loads the tenant key named by a provider spec: "file:PATH" (a key file,
 * 0600 enforced), "env:VAR" (the text form in a variable) or "exec:COMMAND"
 * (the text form printed by `/bin/sh -c COMMAND`, which gets
 * KEYS_EXEC_TIMEOUT_MS; a non-zero exit, a signal or output that is not a
 * tenant key is an error).  An "https://" spec yields no tenant key
 * (keys_provider_remote): -EINVAL.  Returns 0 or a negative code; the
 * message names the provider, never the key. */
#define KEYS_EXEC_TIMEOUT_MS 60000
int keys_provider_load(const char *spec, struct keys_kek **out);

/* 1 when spec names a control plane that unwraps workspace keys itself
 * ("https://..."), else 0. */
int keys_provider_remote(const char *spec);

/* The PATH of a "file:PATH" spec, or NULL for any other provider. */
const char *keys_provider_file(const char *spec);

/* ---- wrapped workspace keys --------------------------------------------- */

/* What the plaintext header of a wrapped key says (nothing here is
 * authenticated until keys_unwrap succeeds). */
struct keys_wrap_info {
	unsigned version;		/* format version (1) */
	enum keys_key_kind kind;
	char ws_id[KEYS_WS_ID_MAX + 1];
	char key_id[KEYS_ID_SIZE];
	char kek_id[KEYS_ID_SIZE];
	uint64_t created;		/* unix seconds, when it was wrapped */
};

/* Writes the store object name "keys/<key-id>.<kek-id>" into out (size at
 * least KEYS_WRAPPED_NAME_SIZE).  Returns 0, -EINVAL for an invalid id,
 * -ERANGE when out is too small. */
int keys_wrapped_name(const char *key_id, const char *kek_id, char *out, size_t size);

/* Splits such a name into its two ids (each KEYS_ID_SIZE bytes).  Returns 0
 * or -EINVAL when name is not exactly "keys/<16 hex>.<16 hex>". */
int keys_wrapped_name_parse(const char *name, char *key_id, char *kek_id);

/* Wraps one 32-byte workspace key under kek and appends the wrapped object
 * to out.  The creation time is now.  Returns 0 or -EINVAL (bad kind, ws_id
 * or key_id). */
int keys_wrap(const struct keys_kek *kek, const char *ws_id, enum keys_key_kind kind,
	      const char *key_id, const uint8_t key[KEYS_KEY_LEN], struct buf *out);

/* keys_wrap with the creation time given (unix seconds): a rewrap keeps
 * the original's, since the newest data key by that time is the current
 * one. */
int keys_wrap_at(const struct keys_kek *kek, const char *ws_id, enum keys_key_kind kind,
		 const char *key_id, const uint8_t key[KEYS_KEY_LEN], uint64_t created,
		 struct buf *out);

/* Reads the plaintext header of a wrapped key without any key, e.g. to list
 * keys or to hand it to a control plane.  Returns 0, -EBADMSG (not a wrapped
 * key, truncated, malformed) or -ENOTSUP (unknown version or algorithm). */
int keys_wrap_peek(const uint8_t *obj, size_t len, struct keys_wrap_info *info);
/* Whether the header hdr (keys_wrap_peek) holds the ids its name and the
 * caller expect: 0, or -EBADMSG naming both.  keys_unwrap checks it; so
 * must whoever hands the object to a control plane to unwrap, which may
 * only decrypt. */
int keys_wrap_check_ids(const struct keys_wrap_info *hdr, const char *ws_id, const char *key_id,
			const char *kek_id);

/* Unwraps obj, which must hold key key_id of workspace ws_id wrapped by
 * tenant key kek_id (the ids its name and the caller expect), into key_out
 * (which the caller keeps in sodium_malloc'd memory or wipes); fills *info
 * when info is not NULL.  Returns 0;
 *   -ENOTSUP  unknown format version or algorithm (names found and supported)
 *   -EBADMSG  truncated, altered, or holding other ids than expected (names both)
 *   -EACCES   kek is not the tenant key that wrapped it:
 *             "cannot unwrap key <key-id>: wrong tenant key? ..."
 * key_out is zero on any error. */
int keys_unwrap(const struct keys_kek *kek, const uint8_t *obj, size_t len,
		const char *ws_id, const char *key_id, const char *kek_id,
		uint8_t key_out[KEYS_KEY_LEN], struct keys_wrap_info *info);

/* ---- the workspace keyring ---------------------------------------------- */

/* Makes a fresh keyring for a new workspace: a new identity key and a first
 * data key (current), each with a random key id.  Returns 0, -EINVAL (bad
 * ws_id), -EIO or -ENOMEM. */
int keys_ring_new(const char *ws_id, struct keys_ring **out);

/* Makes an empty keyring for workspace ws_id, to be filled with
 * keys_ring_add / keys_ring_add_wrapped.  Returns 0 or -EINVAL. */
int keys_ring_empty(const char *ws_id, struct keys_ring **out);

/* Adds an unwrapped key.  Adding a key that is already there with the same
 * bytes is a no-op.  Returns 0; -EINVAL for a bad kind or id; -EEXIST when
 * the ring has another identity key, or this key id with other bytes;
 * -ENOMEM.  The caller wipes key. */
int keys_ring_add(struct keys_ring *r, enum keys_key_kind kind, const char *key_id,
		  const uint8_t key[KEYS_KEY_LEN]);

/* Unwraps obj (see keys_unwrap: it must be key key_id wrapped by kek_id for
 * this ring's workspace) and adds it with the kind its header names.
 * Returns 0 or an error of keys_unwrap or keys_ring_add. */
int keys_ring_add_wrapped(struct keys_ring *r, const struct keys_kek *kek,
			  const uint8_t *obj, size_t len,
			  const char *key_id, const char *kek_id);

/* Wraps the key key_id of the ring (identity or data) under kek and appends
 * the object to out.  Returns 0, -ENOENT when the ring has no such key. */
int keys_ring_wrap(const struct keys_ring *r, const struct keys_kek *kek,
		   const char *key_id, struct buf *out);

/* keys_ring_wrap with the creation time given (see keys_wrap_at). */
int keys_ring_wrap_at(const struct keys_ring *r, const struct keys_kek *kek,
		      const char *key_id, uint64_t created, struct buf *out);

/* Makes a new random data key, adds it and makes it current; *out (if not
 * NULL) gets it.  Returns 0, -EIO or -ENOMEM. */
int keys_ring_rotate(struct keys_ring *r, const struct keys_key **out);

/* Makes the data key key_id the one new writes use.  Returns 0 or -ENOENT. */
int keys_ring_set_current(struct keys_ring *r, const char *key_id);

/* The current data key into *out.  Returns 0, or -ENOENT when none is set
 * (an empty ring gets one from keys_ring_set_current). */
int keys_ring_current(const struct keys_ring *r, const struct keys_key **out);

/* The data key key_id into *out.  Returns 0 or -EKEYREJECTED ("data key X
 * is not a live key of workspace W ...": retired, or never unwrapped): what
 * names such a key is refused, which callers must not take for an object
 * that is not there (-ENOENT). */
int keys_ring_find(const struct keys_ring *r, const char *key_id,
		   const struct keys_key **out);

/* The identity key into *out.  Returns 0 or -ENOENT. */
int keys_ring_identity(const struct keys_ring *r, const struct keys_key **out);

/* Number of keys in the ring (identity and data), and the i-th of them in
 * the order they were added (NULL when i is out of range). */
size_t keys_ring_count(const struct keys_ring *r);
const struct keys_key *keys_ring_key(const struct keys_ring *r, size_t i);

/* The workspace id the ring was made for. */
const char *keys_ring_ws_id(const struct keys_ring *r);

/* Wipes and frees every key of the ring and the ring; NULL is fine. */
void keys_ring_free(struct keys_ring *r);

/* A key's id (16 lowercase hex) and kind, valid while its ring lives. */
const char *keys_key_id(const struct keys_key *k);
enum keys_key_kind keys_key_kind(const struct keys_key *k);

/* ---- the key set --------------------------------------------------------- */
/*
 * Which data keys of a workspace are live, and which one new writes use:
 * a record MACed with a subkey of the identity key (never rotated, held by
 * every reader), with a serial that grows with every change so that an
 * older record put back can be told from the current one (the caller
 * remembers the highest serial seen).  Layout in docs/format.md, "Key set".
 */
#define KEYS_SET_VERSION 1
#define KEYS_SET_MAX_KEYS 1024	/* live data keys in one set */
/* a record is 78 + n + 8 * keys bytes: at most 8334 */
#define KEYS_SET_MAX 65536	/* the most a reader fetches */

struct keys_set {
	uint64_t serial;		/* 1, 2, ...: grows with each change */
	uint64_t created;		/* unix seconds when it was written */
	char identity[KEYS_ID_SIZE];	/* the identity key it was made with */
	char current[KEYS_ID_SIZE];	/* the data key new writes use */
	size_t n;			/* live data keys, current among them */
	char (*live)[KEYS_ID_SIZE];	/* sorted (parse); any order (encode) */
};

/* Encodes set (serial, created, current and the n live ids; its identity
 * is ring's identity key) for ring's workspace and appends the record,
 * MACed, to out.  Returns 0, -ENOENT (no identity key in ring) or -EINVAL
 * (serial 0, no or too many keys, an id twice, the identity key among the
 * data keys, the current key not among them). */
int keys_set_encode(const struct keys_ring *ring, const struct keys_set *set, struct buf *out);

/* Parses a record of workspace ws_id into *out (its live ids sorted)
 * without checking its MAC (keys_set_verify does, once the identity key it
 * names is unwrapped).  Returns 0, -EBADMSG (malformed, non-canonical, of
 * another workspace) or -ENOTSUP (unknown version or MAC algorithm).  The
 * caller frees *out with keys_set_free. */
int keys_set_parse(const uint8_t *obj, size_t len, const char *ws_id, struct keys_set *out);

/* Checks a record's MAC with ring's identity key: 0, -ENOENT (no identity
 * key) or -EBADMSG (another identity key, or altered). */
int keys_set_verify(const struct keys_ring *ring, const uint8_t *obj, size_t len);

/* 1 when key_id is one of set's live data keys, else 0 (also for NULL). */
int keys_set_has(const struct keys_set *set, const char *key_id);
void keys_set_free(struct keys_set *set);

/* ---- ids and chunking (from the identity key) --------------------------- */

/* out = keyed BLAKE2b-256 of data under the workspace's blob-id key.  Does
 * not depend on data keys: rotating one keeps every blob id.  Returns 0 or
 * -ENOENT when the ring has no identity key. */
int keys_blob_id(const struct keys_ring *r, const void *data, size_t len,
		 uint8_t out[KEYS_BLOB_ID_LEN]);

/* The id of a blob of the given type: keys_blob_id for data blobs; for tree
 * blobs the same key through BLAKE2b with the personalization
 * "cairn tree id v1", so that no data blob can share an id with a tree
 * (docs/format.md).  Returns 0, -EINVAL (bad type) or -ENOENT. */
int keys_blob_id_typed(const struct keys_ring *r, enum keys_blob_type type,
		       const void *data, size_t len, uint8_t out[KEYS_BLOB_ID_LEN]);

/* The 32-byte chunker key (derived from the identity key) into *out, for
 * the chunker to derive its keyed boundary function from; the memory is the
 * ring's (read-only, valid while the ring lives; never copy it to a log).
 * Returns 0 or -ENOENT when the ring has no identity key. */
int keys_chunker_key(const struct keys_ring *r, const uint8_t **out);

/* ---- sealing ------------------------------------------------------------ */

/* Seals one blob under data key dk: appends nonce || ciphertext || tag
 * (len + KEYS_BLOB_OVERHEAD bytes) to out, binding type, blob id and key id.
 * The blob's key id is not in the output: the pack header records it.
 * Returns 0 or -EINVAL (not a data key, bad type). */
int keys_seal_blob(const struct keys_key *dk, enum keys_blob_type type,
		   const uint8_t id[KEYS_BLOB_ID_LEN],
		   const void *plain, size_t len, struct buf *out);

/* Opens a sealed blob and appends its plaintext to out.  Returns 0, -EINVAL
 * (not a data key), or -EBADMSG when it was altered, truncated, sealed as
 * another type or id, or under another key.  It does not recompute the blob
 * id (the sealed bytes are usually compressed): the caller checks that. */
int keys_open_blob(const struct keys_key *dk, enum keys_blob_type type,
		   const uint8_t id[KEYS_BLOB_ID_LEN],
		   const uint8_t *sealed, size_t len, struct buf *out);

/* Seals a repository object (pack header, index, snapshot, head, lease)
 * stored as object_name in workspace ws_id: appends header || nonce ||
 * ciphertext || tag (len + KEYS_OBJECT_OVERHEAD bytes) to out, binding the
 * header (with kind and key id), the object name and the workspace id.
 * Returns 0 or -EINVAL (not a data key, bad kind, name or ws_id). */
int keys_seal_object(const struct keys_key *dk, enum keys_obj_kind kind,
		     const char *object_name, const char *ws_id,
		     const void *plain, size_t len, struct buf *out);

/* Reads which data key a sealed object needs into key_id (KEYS_ID_SIZE
 * bytes) and, if kind is not NULL, its kind.  Nothing is authenticated yet.
 * Returns 0, -EBADMSG (not a sealed object, truncated) or -ENOTSUP
 * (unknown version or algorithm). */
int keys_object_key_id(const uint8_t *sealed, size_t len, char *key_id,
		       enum keys_obj_kind *kind);

/* Opens a sealed object that must be of kind `kind`, stored as object_name
 * in workspace ws_id, sealed with dk; appends its plaintext to out.  Returns
 * 0, -ENOTSUP (unknown version or algorithm), or -EBADMSG when it is of
 * another kind, needs another data key (names both), or fails
 * authentication (altered, truncated, moved from another name or workspace,
 * or a key with the same id but other bytes). */
int keys_open_object(const struct keys_key *dk, enum keys_obj_kind kind,
		     const char *object_name, const char *ws_id,
		     const uint8_t *sealed, size_t len, struct buf *out);

/* keys_open_object with whichever data key of ring the object's header
 * names (keys_object_key_id, then keys_ring_find).  Returns 0,
 * -EKEYREJECTED when the ring has no such key, or an error of
 * keys_open_object. */
int keys_ring_open_object(const struct keys_ring *ring, enum keys_obj_kind kind,
			  const char *object_name, const char *ws_id,
			  const uint8_t *sealed, size_t len, struct buf *out);

#endif
