/*
 * reencrypt.c - rewriting a workspace under its current data key (see
 * reencrypt.h).
 *
 * Invariant: an object sealed under an old key is removed only once its
 * replacement under the current key is in the store (a pack only after a
 * consolidated index that lists its copy instead), and the old data keys
 * are retired last, after a pass that found nothing left under them: a
 * key set that lists the current key alone first, then their wraps.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fetch.h"
#include "index.h"
#include "le.h"
#include "pack.h"
#include "record.h"
#include "reencrypt.h"

static void progress(const struct reencrypt_opts *o, const char *phase, uint64_t done, uint64_t total)
{
	if (o && o->progress)
		o->progress(phase, done, total, o->progress_arg);
}

/* 1 when the pack (whole, in bytes) has its header or any blob under a key
 * other than cur; fills *h. */
static int pack_is_old(struct repo *r, const char *name, const struct buf *bytes, const char *cur,
		       struct pack_header *h)
{
	char kid[KEYS_ID_SIZE];
	uint32_t hl;
	int rc;

	if (bytes->len < 4)
		return err_set(-EBADMSG, "pack %s is truncated", name);
	hl = le_get32(bytes->data + bytes->len - 4);
	if (hl > bytes->len - 4)
		return err_set(-EBADMSG, "pack %s: its header length is past its start", name);
	rc = keys_object_key_id(bytes->data + bytes->len - 4 - hl, hl, kid, NULL);
	if (!rc)
		rc = pack_read_header(r->ring, r->ws_id, name, bytes->data, bytes->len, bytes->len, h, NULL);
	if (rc)
		return err_prefix(rc, "pack %s", name);
	if (strcmp(kid, cur))
		return 1;
	for (size_t i = 0; i < h->count; i++)
		if (strcmp(h->entries[i].ref.key_id, cur))
			return 1;
	return 0;
}

/* Seals every blob of the pack again under dk into a new pack, puts it and
 * adds it to idx. */
static int pack_rewrite(struct repo *r, struct index *idx, const struct keys_key *dk,
			const struct pack_header *h, const struct buf *bytes,
			struct reencrypt_stats *st)
{
	struct pack_writer *w = NULL;
	struct buf plain = BUF_INIT, sealed = BUF_INIT, out = BUF_INIT;
	struct pack_header nh = { 0 };
	char name[PACK_NAME_SIZE];
	int rc = pack_writer_new(h->type, &w);

	for (size_t i = 0; !rc && i < h->count; i++) {
		const struct pack_entry *e = &h->entries[i];
		struct blob_ref ref = e->ref;
		const struct keys_key *k;

		buf_reset(&plain);
		buf_reset(&sealed);
		rc = keys_ring_find(r->ring, e->ref.key_id, &k);
		if (!rc)
			rc = keys_open_blob(k, e->ref.type, e->ref.id, bytes->data + e->offset,
					    e->ref.length, &plain);
		if (!rc)
			rc = keys_seal_blob(dk, e->ref.type, e->ref.id, plain.data, plain.len, &sealed);
		if (rc)
			break;
		snprintf(ref.key_id, sizeof(ref.key_id), "%s", keys_key_id(dk));
		ref.length = (uint32_t)sealed.len;
		rc = pack_writer_add(w, &ref, sealed.data, sealed.len);
		st->blobs_rewritten++;
		st->bytes_rewritten += sealed.len;
	}
	if (!rc)
		rc = pack_writer_finish(w, dk, r->ws_id, &out, name, &nh);
	if (!rc)
		rc = store_put(r->store, name, out.data, out.len, STORE_IF_NONE_MATCH, NULL, NULL);
	if (!rc)
		rc = index_add_header(idx, &nh);
	if (rc)
		err_prefix(rc, "rewriting pack %s", h->name);
	pack_header_free(&nh);
	pack_writer_free(w);
	buf_free(&plain);
	buf_free(&sealed);
	buf_free(&out);
	return rc;
}

/* Rewrites the old packs, then one consolidated index, then deletes what
 * it replaced. */
static int packs_pass(struct repo *r, const struct keys_key *dk, const struct reencrypt_opts *o,
		      struct reencrypt_stats *st)
{
	struct store_names packs = { 0 };
	struct index *idx = NULL;
	const char **doomed = NULL, **unindex = NULL;
	size_t ndoomed = 0, nunindex = 0;
	int rc = fetch_index(r, &idx);

	if (!rc)
		rc = store_list_names(r->store, "data/", &packs);
	if (!rc)
		rc = store_list_names(r->store, "tree/", &packs);
	doomed = xcalloc(packs.n + 1, sizeof(*doomed));
	unindex = xcalloc(packs.n + 1, sizeof(*unindex));
	for (size_t i = 0; !rc && i < packs.n; i++) {
		struct pack_header h = { 0 };
		struct buf bytes = BUF_INIT;
		int old;

		if (pack_name_parse(packs.v[i], NULL)) {
			err_clear();
			continue;
		}
		st->packs++;
		rc = store_get_max(r->store, packs.v[i], PACK_MAX_SIZE, "pack", &bytes, NULL);
		old = rc ? rc : pack_is_old(r, packs.v[i], &bytes, keys_key_id(dk), &h);
		if (old < 0)
			rc = old;
		else if (old)
			rc = pack_rewrite(r, idx, dk, &h, &bytes, st);
		if (!rc && old > 0) {
			st->packs_rewritten++;
			doomed[ndoomed++] = packs.v[i];
			if (index_has_pack(idx, packs.v[i]))
				unindex[nunindex++] = packs.v[i];
		}
		pack_header_free(&h);
		buf_free(&bytes);
		progress(o, "packs", i + 1, packs.n);
	}
	if (!rc && nunindex)
		rc = index_remove_packs(idx, unindex, nunindex);
	if (!rc)
		rc = repo_lease_check(r);
	/* always: index objects sealed under an old key are replaced too */
	if (!rc)
		rc = index_write_consolidated(idx, r->store, dk, r->ws_id, NULL, NULL);
	if (!rc)
		rc = repo_lease_confirm(r);
	if (!rc)
		rc = index_delete_superseded(idx, r->store, NULL);
	if (!rc)
		rc = repo_lease_confirm(r);
	if (!rc && ndoomed)
		rc = store_del_many(r->store, doomed, ndoomed);
	if (!rc)
		fetch_index_save(r, idx);
	free(doomed);
	free(unindex);
	store_names_free(&packs);
	index_free(idx);
	return rc;
}

/* The data key id a stored object of kind is sealed with, into kid. */
static int object_key(struct repo *r, enum keys_obj_kind kind, const char *name, struct buf *raw,
		      char kid[KEYS_ID_SIZE])
{
	const char *what;
	uint64_t max = repo_object_max(kind, &what);
	int rc = store_get_max(r->store, name, max, what, raw, NULL);

	if (!rc)
		rc = keys_object_key_id(raw->data, raw->len, kid, NULL);
	return rc ? err_prefix(rc, "%s", name) : 0;
}

/* Seals every snapshot record under an old key again, in place. */
static int records_pass(struct repo *r, const struct keys_key *dk, const struct reencrypt_opts *o,
			struct reencrypt_stats *st)
{
	struct store_names recs = { 0 };
	int rc = store_list_names(r->store, "snapshots/", &recs);

	for (size_t i = 0; !rc && i < recs.n; i++) {
		struct buf raw = BUF_INIT, plain = BUF_INIT;
		char kid[KEYS_ID_SIZE];

		st->snapshots++;
		rc = object_key(r, KEYS_OBJ_SNAPSHOT, recs.v[i], &raw, kid);
		if (!rc && strcmp(kid, keys_key_id(dk))) {
			rc = keys_ring_open_object(r->ring, KEYS_OBJ_SNAPSHOT, recs.v[i], r->ws_id,
						   raw.data, raw.len, &plain);
			if (!rc)
				rc = repo_lease_check(r);
			if (!rc)
				rc = repo_put_sealed(r, KEYS_OBJ_SNAPSHOT, recs.v[i], plain.data, plain.len,
						     STORE_ALWAYS, NULL, NULL);
			st->snapshots_rewritten += rc == 0;
		}
		buf_free(&raw);
		buf_free(&plain);
		progress(o, "snapshots", i + 1, recs.n);
	}
	store_names_free(&recs);
	return rc;
}

/* Seals the head again when an old key sealed it: the same generation and
 * snapshot (a commit adds one to the generation; this commits nothing, and
 * the snapshot record says which generation committed it). */
static int head_pass(struct repo *r, const struct keys_key *dk, struct reencrypt_stats *st)
{
	struct repo_head head;
	struct buf raw = BUF_INIT;
	char kid[KEYS_ID_SIZE];
	int rc = repo_head_read(r, &head);

	if (!rc && head.etag[0])
		rc = object_key(r, KEYS_OBJ_HEAD, "head", &raw, kid);
	if (!rc && head.etag[0] && strcmp(kid, keys_key_id(dk))) {
		rc = repo_head_reseal(r, &head);
		st->head_rewritten = rc == 0;
	}
	buf_free(&raw);
	return rc;
}

/* Makes the current data key the only live one: a key set that lists it
 * alone (unless the key set says so already, and is not one older than a
 * serial seen, accepted with --allow-rollback), then the wraps of every
 * other key but the identity key deleted: the data keys it retires, and
 * any wrap no key set lists (an interrupted dek rotate, or one put back). */
static int retire(struct repo *r, const struct keys_key *dk, const struct reencrypt_opts *o,
		  struct reencrypt_stats *st)
{
	struct store_names keys = { 0 };
	const struct keys_key *id;
	const char **gone;
	char cur[1][KEYS_ID_SIZE];
	size_t n = 0;
	int rc = keys_ring_identity(r->ring, &id);

	snprintf(cur[0], sizeof(cur[0]), "%s", keys_key_id(dk));
	if (!rc && (!r->keyset || r->keyset->n != 1 || strcmp(r->keyset->current, cur[0]) ||
		    r->keyset->serial < r->keyset_floor))
		rc = repo_keyset_write(r, cur[0], (const char (*)[KEYS_ID_SIZE])cur, 1);
	if (!rc)
		rc = store_list_names(r->store, "keys/", &keys);
	gone = xcalloc(keys.n + 1, sizeof(*gone));
	for (size_t i = 0; !rc && i < keys.n; i++) {
		char key_id[KEYS_ID_SIZE], kek_id[KEYS_ID_SIZE];

		if (keys_wrapped_name_parse(keys.v[i], key_id, kek_id)) {
			err_clear();
			continue;
		}
		/* the identity key is never retired (ids come from it) */
		if (strcmp(key_id, keys_key_id(id)) && strcmp(key_id, cur[0]))
			gone[n++] = keys.v[i];
	}
	progress(o, "retiring", 0, n);
	if (!rc)
		rc = repo_lease_confirm(r);
	if (!rc && n)
		rc = store_del_many(r->store, gone, n);
	if (!rc)
		st->keys_retired = n;
	free(gone);
	store_names_free(&keys);
	return rc;
}

int reencrypt_repo(struct repo *r, const struct reencrypt_opts *o, struct reencrypt_stats *st)
{
	const struct keys_key *dk;
	int rc = keys_ring_current(r->ring, &dk);

	memset(st, 0, sizeof(*st));
	if (!rc)
		rc = packs_pass(r, dk, o, st);
	if (!rc)
		rc = records_pass(r, dk, o, st);
	if (!rc)
		rc = head_pass(r, dk, st);
	if (!rc && o && o->retire)
		rc = retire(r, dk, o, st);
	return rc ? err_prefix(rc, "reencrypt") : 0;
}
