/*
 * fetch.c - reading blobs and the index back from the store (see fetch.h).
 *
 * Every blob is verified on the way in: its pack entry says which key and
 * how it was compressed, blob_decode opens it and re-hashes the plaintext
 * against its id, so a swapped, truncated or altered blob is an error,
 * never data.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "err.h"
#include "fetch.h"
#include "idxcache.h"
#include "log.h"

int fetch_blob(struct repo *r, const struct index *idx, enum keys_blob_type type,
	       const uint8_t id[KEYS_BLOB_ID_LEN], struct buf *out)
{
	struct index_entry ent;
	struct buf sealed = BUF_INIT;
	char hex[BLOB_ID_HEX_SIZE];
	int rc;

	blob_id_hex(id, hex);
	if (index_lookup(idx, id, &ent))
		return err_set(-ENOENT, "%s blob %.16s is missing from the index: run 'cairn check'",
			       keys_blob_type_name(type), hex);
	if (ent.e.ref.type != type)
		return err_set(-EBADMSG, "blob %.16s in %s is a %s blob, expected %s", hex, ent.pack,
			       keys_blob_type_name(ent.e.ref.type), keys_blob_type_name(type));
	rc = store_get(r->store, ent.pack, ent.e.offset, ent.e.ref.length, &sealed, NULL);
	if (!rc && sealed.len != ent.e.ref.length)
		rc = err_set(-EBADMSG, "%s: pack is shorter than its header says (blob %.16s)",
			     ent.pack, hex);
	if (!rc)
		rc = blob_decode(r->ring, &ent.e.ref, sealed.data, sealed.len, out);
	if (rc && rc != -ENOENT)
		err_prefix(rc, "%s", ent.pack);
	buf_free(&sealed);
	return rc;
}

int fetch_tree(struct repo *r, const struct index *idx,
	       const uint8_t id[KEYS_BLOB_ID_LEN], struct tree *out)
{
	struct buf plain = BUF_INIT;
	int rc = fetch_blob(r, idx, KEYS_BLOB_TREE, id, &plain);

	tree_init(out);
	if (!rc) {
		rc = tree_decode(plain.data, plain.len, out);
		if (rc) {
			char hex[BLOB_ID_HEX_SIZE];

			blob_id_hex(id, hex);
			err_prefix(rc, "tree %.16s", hex);
		}
	}
	buf_free(&plain);
	return rc;
}

int fetch_snapshot(struct repo *r, const char *id, struct record_snapshot *out)
{
	char name[16 + RECORD_ID_SIZE];
	struct buf plain = BUF_INIT;
	int rc;

	record_snapshot_init(out);
	rc = record_snapshot_name(id, name, sizeof(name));
	if (!rc)
		rc = repo_get_sealed(r, KEYS_OBJ_SNAPSHOT, name, &plain, NULL);
	if (rc == -ENOENT)
		rc = err_set(-ENOENT, "snapshot %s does not exist in workspace %s", id, r->ws_id);
	if (!rc) {
		rc = record_snapshot_decode(plain.data, plain.len, out);
		if (rc)
			err_prefix(rc, "%s%s", r->store->url, name);
	}
	buf_free(&plain);
	return rc;
}

int fetch_index(struct repo *r, struct index **out)
{
	struct idxcache *c;
	int rc = idxcache_open(r->state_dir, r->ws_id, &c);

	*out = NULL;
	if (rc) {
		/* the cache is only a cache: work from the store alone */
		log_warn("index cache unusable, loading the index from the store: %s", err_msg());
		rc = index_new(out);
		if (!rc)
			rc = index_load_from_store(*out, r->store, r->ring, r->ws_id);
		if (rc) {
			index_free(*out);
			*out = NULL;
		}
		return rc;
	}
	rc = idxcache_load(c, r->store, r->ring, out);
	idxcache_close(c);
	return rc;
}

void fetch_index_save(struct repo *r, struct index *idx)
{
	struct idxcache *c;
	int rc = idxcache_open(r->state_dir, r->ws_id, &c);

	if (!rc) {
		rc = idxcache_save(c, idx);
		idxcache_close(c);
	}
	if (rc)
		log_warn("cannot save the index cache in %s (it will be rebuilt): %s",
			 r->state_dir, err_msg());
}
