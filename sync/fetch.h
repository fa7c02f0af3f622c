/*
 * fetch.h - reading blobs back: find a blob in the index, range-GET its
 * sealed bytes from its pack, open, decompress and verify it.
 */
#ifndef CAIRN_FETCH_H
#define CAIRN_FETCH_H

#include <stdint.h>

#include "buf.h"
#include "index.h"
#include "record.h"
#include "repo.h"
#include "tree.h"

/* Appends the plaintext of blob id (which must be of type type) to out.
 * Returns 0, -ENOENT when the index has no such blob ("blob <id> is
 * missing from the index: run 'cairn check'"), -EBADMSG when it does not
 * verify in three reads (one bad read is taken for damage on the way, and
 * read again), or a store error.  Thread-safe when idx is not being changed. */
int fetch_blob(struct repo *r, const struct index *idx, enum keys_blob_type type,
	       const uint8_t id[KEYS_BLOB_ID_LEN], struct buf *out);

/* Frees the tree pack cache of a repo (repo_close calls it). */
void fetch_cache_free(struct pack_cache *c);

/* Reads blob ent from another pack than ent->pack (the index may still list
 * a pack that is gone: a killed writer's index landing after a prune).
 * Appends the plaintext to out.  Returns 0 or -ENOENT. */
int fetch_blob_elsewhere(struct repo *r, const struct index *idx, const struct index_entry *ent,
			 struct buf *out);

/* Fetches and decodes tree blob id into *out (free with tree_free). */
int fetch_tree(struct repo *r, const struct index *idx,
	       const uint8_t id[KEYS_BLOB_ID_LEN], struct tree *out);

/* The directory entry of root name itself (its mode, owner, times and
 * xattrs) in rec's top tree: *out points into *holder (free with
 * tree_free), or is NULL when the snapshot does not record it (made
 * before the top tree, or a root without metadata of its own).  An entry
 * that is not a directory or whose subtree is not the root is refused
 * (-EBADMSG). */
int fetch_root_entry(struct repo *r, const struct index *idx, const struct record_snapshot *rec,
		     const char *name, struct tree *holder, const struct tree_entry **out);

/* Loads and decodes snapshot record id ("snapshots/<id>") into *out
 * (free with record_snapshot_free).  -ENOENT when there is no such snapshot. */
int fetch_snapshot(struct repo *r, const char *id, struct record_snapshot *out);

/* The ids of every snapshot record of the workspace, from the store's
 * listing (ids: malloc'd, n of them). */
struct snapshot_ids {
	char (*ids)[RECORD_ID_SIZE];
	size_t n;
};
int fetch_snapshot_ids(struct repo *r, struct snapshot_ids *out);

/* Turns "latest", a full id or a unique prefix (8+ hex digits) into a
 * snapshot id.  Returns 0 or -ENOENT / -EINVAL with a message. */
int fetch_resolve_snapshot(struct repo *r, const char *arg, char id[RECORD_ID_SIZE]);

/* Loads the index of r: the local cache in the state dir, brought up to
 * date with the store's index objects.  Returns 0 and a new index. */
int fetch_index(struct repo *r, struct index **out);
/* Saves idx to the local cache (best effort: a failure is logged). */
void fetch_index_save(struct repo *r, struct index *idx);

#endif
