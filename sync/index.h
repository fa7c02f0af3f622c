/*
 * index.h - the blob index: blob id → (pack, offset, length, raw length,
 * type, compression, key id), in memory, and its objects in the store
 * (docs/format.md, "Index").
 *
 * In the store the index is a set of sealed objects index/<id>: deltas
 * (the packs a snapshot added) and consolidated indexes (every pack, plus
 * the list of index objects they replace).  The merged index is the union
 * of the packs of every index object in the store that no other index
 * object in the store lists as superseded.
 *
 * In memory an index holds:
 *  - entries, grouped by pack, in a hash map keyed by the blob id (the ids
 *    are uniformly random, so their first 8 bytes are the hash); pack names
 *    and key ids are interned;
 *  - which packs were added since the last delta ("pending");
 *  - which index objects it has merged ("live") and which it knows to be
 *    superseded, with the packs each live object lists, so that a reload
 *    fetches only objects it does not know and drops what a new
 *    consolidated index supersedes (this is what the sqlite cache saves).
 *
 * Duplicates: the same blob id may sit in several packs (two writers, a
 * crash after an upload but before the index delta).  All copies are kept
 * and index_foreach visits each; index_lookup returns one of them (the
 * first one added that still exists).  Any copy is as good as another:
 * equal ids mean equal plaintext.  A pack is immutable, so adding a pack
 * the index already holds changes nothing.
 *
 * Every function returns 0 or a negative errno and leaves one line in
 * err_msg(): -EINVAL bad argument, -ENOENT not found, -EBADMSG an index
 * object that does not verify (naming it), -ENOTSUP an unknown index
 * version, or a store / keyring error.
 *
 * Threads: none inside.  Any number of threads may call the const
 * functions at once; everything else needs the caller's exclusion.
 */
#ifndef CAIRN_INDEX_H
#define CAIRN_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "pack.h"
#include "store.h"

#define INDEX_VERSION 1
#define INDEX_PREFIX "index/"
#define INDEX_ID_LEN 32			/* lowercase hex of 16 random bytes */
#define INDEX_NAME_LEN (6 + INDEX_ID_LEN)	/* "index/" + id */
#define INDEX_NAME_SIZE (INDEX_NAME_LEN + 1)
/* The largest index object a reader fetches, and a writer writes (sealed):
 * 1 GiB is about 18 million blob entries of 58 bytes, a workspace far
 * beyond what a VM's disk holds; a consolidated index lists every blob. */
#define INDEX_OBJECT_MAX (1u << 30)

struct index;

/* What a lookup or an iteration gives for one blob. */
struct index_entry {
	const char *pack;	/* interned pack name: valid until the pack is
				 * removed from the index or the index freed */
	struct pack_entry e;	/* the blob's ref and its offset in the pack */
};

int index_new(struct index **out);
void index_free(struct index *idx);

/* ---- the map ------------------------------------------------------------ */

/* Adds the n entries of pack pack_name (as pack_writer_finish or
 * pack_read_header gave them: of the pack's type, back to back from offset
 * 0) and marks the pack for the next delta.  A pack the index holds
 * already is left as it is.  Returns 0 or -EINVAL (bad name, no entries,
 * entries that do not describe a pack). */
int index_add_pack(struct index *idx, const char *pack_name,
		   const struct pack_entry *entries, size_t n);

/* The same for a whole header. */
int index_add_header(struct index *idx, const struct pack_header *h);

/* Where blob id is: fills *out.  Returns 0, or -ENOENT (with a message:
 * use index_has for a cheap test). */
int index_lookup(const struct index *idx, const uint8_t id[KEYS_BLOB_ID_LEN],
		 struct index_entry *out);

/* 1 when the index holds blob id, else 0.  Records no message. */
int index_has(const struct index *idx, const uint8_t id[KEYS_BLOB_ID_LEN]);

/* Distinct blob ids; entries (duplicates included); packs held. */
size_t index_count(const struct index *idx);
size_t index_entry_count(const struct index *idx);
size_t index_pack_count(const struct index *idx);
/* Heap bytes the index holds, for figures. */
size_t index_memory(const struct index *idx);

/* Calls fn for every entry (duplicates included), pack by pack in the
 * order the packs were added, blobs in pack order.  A non-zero return of fn
 * stops the walk and is returned.  fn must not change the index. */
typedef int (*index_fn)(const struct index_entry *ent, void *arg);
int index_foreach(const struct index *idx, index_fn fn, void *arg);

/* 1 when the index holds pack pack_name, else 0. */
int index_has_pack(const struct index *idx, const char *pack_name);

/* Removes every entry of the named packs (prune, after it deleted or
 * rewrote them); a duplicate in another pack becomes the one lookup finds.
 * The index objects that list those packs still do: the caller writes a
 * consolidated index next.  Costs one pass over the whole index, so remove
 * packs in one call.  Returns 0 or -ENOENT when a pack is not held (then
 * nothing is removed). */
int index_remove_packs(struct index *idx, const char *const *pack_names, size_t n);
int index_remove_pack(struct index *idx, const char *pack_name);

/* ---- index objects in the store ----------------------------------------- */
/* s is the workspace's store: its keys are object names relative to the
 * workspace prefix ("index/<id>", "data/<xx>/<id>"). */

/* Number of packs added since the last delta or consolidated index. */
size_t index_pending_count(const struct index *idx);

/* Writes the packs added since the last delta as a new delta index/<id>,
 * sealed under data key dk for workspace ws_id (put if-none-match), and
 * records it as merged.  name_out (may be NULL) gets its name, or "" when
 * nothing was pending (then nothing is written).  Returns 0 or the
 * store's error; on error the packs stay pending. */
int index_write_delta(struct index *idx, struct store *s, const struct keys_key *dk,
		      const char *ws_id, char *name_out);

/* Brings idx up to date with the store: lists index/, fetches and opens
 * (with the ring's keys) every index object idx does not know yet, and
 * applies superseded lists: objects superseded by any object in the store
 * are ignored (and their packs dropped from idx unless another live object
 * lists them), as are objects that are gone from the store.  Packs added
 * since the last delta stay.  On an empty index this is the full load.
 * Names under index/ that are not index object names are skipped with a
 * warning.  Returns 0 or an error; then idx is unchanged (short of the
 * -ENOSPC of more than 2^32 entries or 65,535 data keys). */
int index_load_from_store(struct index *idx, struct store *s,
			  const struct keys_ring *ring, const char *ws_id);

/* Writes one consolidated index object with every pack idx holds (pending
 * ones included), listing as superseded every index object idx has merged
 * or knows to be superseded; then those count as superseded in idx.
 * name_out (may be NULL) gets its name, *n_superseded (may be NULL) how
 * many it supersedes.  The caller then deletes them
 * (index_delete_superseded), holding the workspace lease: a crash in
 * between leaves objects that every reader ignores. */
int index_write_consolidated(struct index *idx, struct store *s, const struct keys_key *dk,
			     const char *ws_id, char *name_out, size_t *n_superseded);

/* Deletes from the store every index object idx knows to be superseded
 * (one store_del_many) and forgets them; *n_deleted (may be NULL) gets how
 * many.  Only the lease holder calls this. */
int index_delete_superseded(struct index *idx, struct store *s, size_t *n_deleted);

/* ---- for the local cache (idxcache.c) ----------------------------------- */

enum index_obj_state {
	INDEX_OBJ_LIVE = 1,		/* merged: its packs are in the index */
	INDEX_OBJ_SUPERSEDED = 2,	/* in the store, replaced by another */
};

/* Calls fn for each pack the index holds: its name, its number of entries
 * and whether a live index object lists it (0 for packs only pending). */
typedef int (*index_pack_fn)(const char *pack, size_t n_entries, int listed, void *arg);
int index_foreach_pack(const struct index *idx, index_pack_fn fn, void *arg);

/* The entries of one pack, as an array the caller frees.  Returns 0 or
 * -ENOENT. */
int index_pack_entries(const struct index *idx, const char *pack_name,
		       struct pack_entry **out, size_t *n);

/* Calls fn for each index object the index knows: its name, its state and
 * (live objects) the names of the packs it lists. */
typedef int (*index_obj_fn)(const char *obj, enum index_obj_state state,
			    const char *const *packs, size_t n_packs, void *arg);
int index_foreach_object(const struct index *idx, index_obj_fn fn, void *arg);

/* Puts back what a cache saved: a pack with its entries (not pending), and
 * an index object in its state with the packs it lists (packs it lists
 * that the index does not hold are recorded as absent).  Returns 0,
 * -EINVAL (bad name or entries) or -EEXIST (object already known). */
int index_restore_pack(struct index *idx, const char *pack_name,
		       const struct pack_entry *entries, size_t n);
int index_restore_object(struct index *idx, const char *obj_name, enum index_obj_state state,
			 const char *const *packs, size_t n_packs);

/* 1 when name is "index/" + 32 lowercase hex digits, else 0. */
int index_name_valid(const char *name);

/* Decodes and checks the plaintext of index object `name` (what the
 * loader does after opening it) and throws the result away.  Returns 0,
 * -EBADMSG or -ENOTSUP.  Exposed for the fuzz target. */
int index_object_check(const char *name, const uint8_t *plain, size_t len);

#endif
