/*
 * index.c - the in-memory blob index and its objects in the store (layout
 * in docs/format.md, "Index").
 *
 * What must stay true:
 *  - the entries of a pack are one contiguous run of idx->ent, and the hash
 *    holds exactly one entry index per distinct blob id (the first copy in
 *    idx->ent order); every other copy is reachable by iteration only;
 *  - a pack is present (entries held) while it was added locally and not
 *    yet written in a delta (pending), or some live index object lists it
 *    (refs > 0), unless prune removed it;
 *  - index_load_from_store changes nothing until every new object has been
 *    fetched and verified.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hex.h"
#include "le.h"
#include "index.h"
#include "log.h"

#define NM_NONE UINT32_MAX
#define MAX_KEYS 65535u
#define MAX_ENTRIES (UINT32_MAX - 1u)
#define MIN_SLOTS 1024u
#define INDEX_RAW_ID 16		/* bytes behind the 32 hex digits of an index id */

/* One blob location; 56 bytes, so a million entries fit in 56 MB. */
struct ientry {
	uint8_t id[KEYS_BLOB_ID_LEN];
	uint64_t offset;
	uint32_t length, raw_length;
	uint32_t pack;		/* into idx->packs */
	uint16_t key;		/* into idx->keys */
	uint8_t type, compression;
};

/* A hash slot: entry index + 1 (0 = empty) and the id's high hash bits. */
struct eslot {
	uint32_t e;
	uint32_t tag;
};

struct ipack {
	char *name;
	size_t first, count;	/* run in idx->ent (when present) */
	uint32_t refs;		/* live index objects that list it */
	uint8_t present, pending, type;
};

enum { OBJ_GONE = 0 };	/* plus enum index_obj_state */

struct iobj {
	char *name;
	uint32_t *packs;	/* live objects: the packs they list */
	size_t npacks;
	int state;
};

/* Open-addressing map of interned names to an index; names are owned by
 * the records they point into (stable heap strings). */
struct nslot {
	const char *name;
	uint32_t val;
};

struct namemap {
	struct nslot *s;
	size_t cap, n;
};

struct index {
	struct ientry *ent;
	size_t n_ent, cap_ent;
	struct eslot *slot;
	size_t cap_slot, n_ids;
	struct ipack *packs;
	size_t n_packs, cap_packs, n_present, n_pending;
	struct namemap pack_map;
	struct iobj *objs;
	size_t n_objs, cap_objs;
	struct namemap obj_map;
	char (*keys)[KEYS_ID_SIZE];
	size_t n_keys, cap_keys;
	size_t name_bytes;
};

/* ---- byte helpers ------------------------------------------------------- */

int index_name_valid(const char *name)
{
	return name && strncmp(name, INDEX_PREFIX, 6) == 0 &&
	       hex_is_lower(name + 6, INDEX_NAME_LEN - 6);
}

static void index_name_from_raw(const uint8_t raw[INDEX_RAW_ID], char out[INDEX_NAME_SIZE])
{
	memcpy(out, INDEX_PREFIX, 6);
	hex_encode(raw, INDEX_RAW_ID, out + 6);
}

static void index_name_to_raw(const char *name, uint8_t raw[INDEX_RAW_ID])
{
	hex_decode(name + 6, raw, INDEX_RAW_ID);
}

static int random_index_name(char out[INDEX_NAME_SIZE])
{
	char half[KEYS_ID_SIZE];
	int rc;

	memcpy(out, INDEX_PREFIX, 6);
	for (int i = 0; i < 2; i++) {
		rc = keys_random_id(half);
		if (rc)
			return rc;
		memcpy(out + 6 + i * KEYS_ID_LEN, half, KEYS_ID_LEN);
	}
	out[INDEX_NAME_LEN] = '\0';
	return 0;
}

/* ---- name maps ---------------------------------------------------------- */

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static uint32_t nm_get(const struct namemap *m, const char *name)
{
	size_t mask, i;

	if (!m->cap)
		return NM_NONE;
	mask = m->cap - 1;
	for (i = str_hash(name) & mask; m->s[i].name; i = (i + 1) & mask)
		if (strcmp(m->s[i].name, name) == 0)
			return m->s[i].val;
	return NM_NONE;
}

static void nm_place(struct nslot *s, size_t cap, const char *name, uint32_t val)
{
	size_t i;

	for (i = str_hash(name) & (cap - 1); s[i].name; i = (i + 1) & (cap - 1))
		;
	s[i].name = name;
	s[i].val = val;
}

/* Adds name (which must not be in m yet). */
static void nm_put(struct namemap *m, const char *name, uint32_t val)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 64;
		struct nslot *s = xcalloc(cap, sizeof(*s));

		for (size_t i = 0; i < m->cap; i++)
			if (m->s[i].name)
				nm_place(s, cap, m->s[i].name, m->s[i].val);
		free(m->s);
		m->s = s;
		m->cap = cap;
	}
	nm_place(m->s, m->cap, name, val);
	m->n++;
}

static void nm_free(struct namemap *m)
{
	free(m->s);
	memset(m, 0, sizeof(*m));
}

/* ---- the entry hash ----------------------------------------------------- */

static uint64_t id_hash(const uint8_t *id)
{
	uint64_t h = 0;

	for (int i = 7; i >= 0; i--)
		h = h << 8 | id[i];
	return h;
}

/* The slot that holds id, or the empty slot where it would go. */
static size_t slot_find(const struct index *idx, const uint8_t *id)
{
	uint64_t h = id_hash(id);
	uint32_t tag = (uint32_t)(h >> 32);
	size_t mask = idx->cap_slot - 1, i;

	for (i = h & mask; idx->slot[i].e; i = (i + 1) & mask)
		if (idx->slot[i].tag == tag &&
		    memcmp(idx->ent[idx->slot[i].e - 1].id, id, KEYS_BLOB_ID_LEN) == 0)
			break;
	return i;
}

static void slots_resize(struct index *idx, size_t cap)
{
	struct eslot *old = idx->slot;
	size_t old_cap = idx->cap_slot;

	idx->slot = xcalloc(cap, sizeof(*idx->slot));
	idx->cap_slot = cap;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].e) {
			size_t j = id_hash(idx->ent[old[i].e - 1].id) & (cap - 1);

			while (idx->slot[j].e)
				j = (j + 1) & (cap - 1);
			idx->slot[j] = old[i];
		}
	}
	free(old);
}

/* Makes entry ei findable unless its id is already (an earlier copy). */
static void slot_insert(struct index *idx, uint32_t ei)
{
	size_t i;

	if ((idx->n_ids + 1) * 2 > idx->cap_slot)
		slots_resize(idx, idx->cap_slot ? 2 * idx->cap_slot : MIN_SLOTS);
	i = slot_find(idx, idx->ent[ei].id);
	if (idx->slot[i].e)
		return;		/* a duplicate: the first copy stays the one found */
	idx->slot[i].e = ei + 1;
	idx->slot[i].tag = (uint32_t)(id_hash(idx->ent[ei].id) >> 32);
	idx->n_ids++;
}

static void slots_rebuild(struct index *idx)
{
	if (idx->slot)
		memset(idx->slot, 0, idx->cap_slot * sizeof(*idx->slot));
	idx->n_ids = 0;
	for (size_t i = 0; i < idx->n_ent; i++)
		slot_insert(idx, (uint32_t)i);
}

/* ---- records ------------------------------------------------------------ */

static int key_intern(struct index *idx, const char *key_id, uint16_t *out)
{
	for (size_t i = idx->n_keys; i-- > 0;) {
		if (memcmp(idx->keys[i], key_id, KEYS_ID_SIZE) == 0) {
			*out = (uint16_t)i;
			return 0;
		}
	}
	if (idx->n_keys >= MAX_KEYS)
		return err_set(-ENOSPC, "index: more than %u data keys", MAX_KEYS);
	if (idx->n_keys == idx->cap_keys) {
		idx->cap_keys = idx->cap_keys ? 2 * idx->cap_keys : 4;
		idx->keys = xrealloc(idx->keys, idx->cap_keys * sizeof(*idx->keys));
	}
	memcpy(idx->keys[idx->n_keys], key_id, KEYS_ID_SIZE);
	*out = (uint16_t)idx->n_keys++;
	return 0;
}

/* The record of pack name (type from the name), made absent if new. */
static uint32_t pack_record(struct index *idx, const char *name, enum keys_blob_type type)
{
	uint32_t pi = nm_get(&idx->pack_map, name);
	struct ipack *p;

	if (pi != NM_NONE)
		return pi;
	if (idx->n_packs == idx->cap_packs) {
		idx->cap_packs = idx->cap_packs ? 2 * idx->cap_packs : 64;
		idx->packs = xrealloc(idx->packs, idx->cap_packs * sizeof(*idx->packs));
	}
	pi = (uint32_t)idx->n_packs++;
	p = &idx->packs[pi];
	memset(p, 0, sizeof(*p));
	p->name = xstrdup(name);
	p->type = (uint8_t)type;
	idx->name_bytes += strlen(name) + 1;
	nm_put(&idx->pack_map, p->name, pi);
	return pi;
}

static uint32_t obj_record(struct index *idx, const char *name)
{
	uint32_t oi = nm_get(&idx->obj_map, name);
	struct iobj *o;

	if (oi != NM_NONE)
		return oi;
	if (idx->n_objs == idx->cap_objs) {
		idx->cap_objs = idx->cap_objs ? 2 * idx->cap_objs : 16;
		idx->objs = xrealloc(idx->objs, idx->cap_objs * sizeof(*idx->objs));
	}
	oi = (uint32_t)idx->n_objs++;
	o = &idx->objs[oi];
	memset(o, 0, sizeof(*o));
	o->name = xstrdup(name);
	o->state = OBJ_GONE;
	idx->name_bytes += strlen(name) + 1;
	nm_put(&idx->obj_map, o->name, oi);
	return oi;
}

static void ientry_to_pack_entry(const struct index *idx, const struct ientry *ie,
				 struct pack_entry *e)
{
	memcpy(e->ref.id, ie->id, KEYS_BLOB_ID_LEN);
	e->ref.type = ie->type;
	e->ref.compression = ie->compression;
	e->ref.raw_length = ie->raw_length;
	e->ref.length = ie->length;
	memcpy(e->ref.key_id, idx->keys[ie->key], KEYS_ID_SIZE);
	e->offset = ie->offset;
}

/* Checks entry i of a pack of type type: see pack_entry_check, plus blobs
 * back to back from 0 (*end: where the previous one ended). */
static int check_entry(const struct pack_entry *e, enum keys_blob_type type,
		       const char *where, size_t i, uint64_t *end)
{
	int rc = pack_entry_check(e, type, where, i);

	if (rc)
		return rc;
	if (e->offset != *end)
		return err_set(-EBADMSG, "%s: blob %zu starts at %llu, not at %llu where the previous one ends",
			       where, i, (unsigned long long)e->offset, (unsigned long long)*end);
	*end += e->ref.length;
	return 0;
}

static int append_entry(struct index *idx, uint32_t pi, const struct pack_entry *e)
{
	struct ientry *ie;
	uint16_t key = 0;
	int rc = key_intern(idx, e->ref.key_id, &key);

	if (rc)
		return rc;
	if (idx->n_ent >= MAX_ENTRIES)
		return err_set(-ENOSPC, "index: more than %u entries", MAX_ENTRIES);
	if (idx->n_ent == idx->cap_ent) {
		idx->cap_ent = idx->cap_ent ? 2 * idx->cap_ent : 1024;
		idx->ent = xrealloc(idx->ent, idx->cap_ent * sizeof(*idx->ent));
	}
	ie = &idx->ent[idx->n_ent];
	memcpy(ie->id, e->ref.id, KEYS_BLOB_ID_LEN);
	ie->offset = e->offset;
	ie->length = e->ref.length;
	ie->raw_length = e->ref.raw_length;
	ie->pack = pi;
	ie->key = key;
	ie->type = e->ref.type;
	ie->compression = e->ref.compression;
	slot_insert(idx, (uint32_t)idx->n_ent++);
	return 0;
}

/* Fills absent pack pi from n entries, given either as structs (e) or as
 * PACK_ENTRY_SIZE-byte records (raw); already checked. */
static int fill_pack(struct index *idx, uint32_t pi, const struct pack_entry *e,
		     const uint8_t *raw, size_t n)
{
	struct pack_entry tmp;
	size_t first = idx->n_ent;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		if (raw)
			pack_entry_decode(raw + i * PACK_ENTRY_SIZE, &tmp);
		rc = append_entry(idx, pi, raw ? &tmp : &e[i]);
	}
	if (rc) {	/* undo: drop what was appended (error paths only) */
		idx->n_ent = first;
		slots_rebuild(idx);
		return rc;
	}
	idx->packs[pi].first = first;
	idx->packs[pi].count = n;
	idx->packs[pi].present = 1;
	idx->n_present++;
	return 0;
}

static void set_pending(struct index *idx, uint32_t pi, int on)
{
	struct ipack *p = &idx->packs[pi];

	if (p->pending && !on)
		idx->n_pending--;
	else if (!p->pending && on)
		idx->n_pending++;
	p->pending = (uint8_t)on;
}

/* Drops the entries of every pack marked absent, in one pass. */
static void compact(struct index *idx)
{
	size_t w = 0;

	for (size_t r = 0; r < idx->n_ent; r++) {
		struct ipack *p = &idx->packs[idx->ent[r].pack];

		if (!p->present)
			continue;
		if (r == p->first)
			p->first = w;
		idx->ent[w++] = idx->ent[r];
	}
	idx->n_ent = w;
	slots_rebuild(idx);
}

/* ---- the map ------------------------------------------------------------ */

int index_new(struct index **out)
{
	*out = xcalloc(1, sizeof(**out));
	return 0;
}

void index_free(struct index *idx)
{
	if (!idx)
		return;
	free(idx->ent);
	free(idx->slot);
	for (size_t i = 0; i < idx->n_packs; i++)
		free(idx->packs[i].name);
	free(idx->packs);
	for (size_t i = 0; i < idx->n_objs; i++) {
		free(idx->objs[i].name);
		free(idx->objs[i].packs);
	}
	free(idx->objs);
	free(idx->keys);
	nm_free(&idx->pack_map);
	nm_free(&idx->obj_map);
	free(idx);
}

static int add_pack(struct index *idx, const char *pack_name,
		    const struct pack_entry *entries, size_t n, int pending)
{
	enum keys_blob_type type;
	char where[PACK_NAME_SIZE + 16];
	uint64_t end = 0;
	uint32_t pi;
	int rc = pack_name_parse(pack_name, &type);

	if (rc)
		return rc;
	if (n == 0 || n > PACK_MAX_BLOBS)
		return err_set(-EINVAL, "pack %s: %zu entries (1 to %u allowed)",
			       pack_name, n, PACK_MAX_BLOBS);
	snprintf(where, sizeof(where), "pack %s", pack_name);
	for (size_t i = 0; i < n; i++)
		if (check_entry(&entries[i], type, where, i, &end))
			return -EINVAL;	/* the check recorded what is wrong */
	pi = pack_record(idx, pack_name, type);
	if (idx->packs[pi].present)
		return 0;
	rc = fill_pack(idx, pi, entries, NULL, n);
	if (!rc && pending)
		set_pending(idx, pi, 1);
	return rc;
}

int index_add_pack(struct index *idx, const char *pack_name,
		   const struct pack_entry *entries, size_t n)
{
	return add_pack(idx, pack_name, entries, n, 1);
}

int index_add_header(struct index *idx, const struct pack_header *h)
{
	return add_pack(idx, h->name, h->entries, h->count, 1);
}

int index_restore_pack(struct index *idx, const char *pack_name,
		       const struct pack_entry *entries, size_t n)
{
	return add_pack(idx, pack_name, entries, n, 0);
}

int index_has(const struct index *idx, const uint8_t id[KEYS_BLOB_ID_LEN])
{
	return idx->cap_slot && idx->slot[slot_find(idx, id)].e != 0;
}

int index_lookup(const struct index *idx, const uint8_t id[KEYS_BLOB_ID_LEN],
		 struct index_entry *out)
{
	const struct ientry *ie;
	size_t s;

	if (!idx->cap_slot || !idx->slot[s = slot_find(idx, id)].e) {
		char hex[2 * KEYS_BLOB_ID_LEN + 1];

		hex_encode(id, KEYS_BLOB_ID_LEN, hex);
		return err_set(-ENOENT, "blob %s is not in the index", hex);
	}
	ie = &idx->ent[idx->slot[s].e - 1];
	out->pack = idx->packs[ie->pack].name;
	ientry_to_pack_entry(idx, ie, &out->e);
	return 0;
}

size_t index_count(const struct index *idx)
{
	return idx->n_ids;
}

size_t index_entry_count(const struct index *idx)
{
	return idx->n_ent;
}

size_t index_pack_count(const struct index *idx)
{
	return idx->n_present;
}

size_t index_pending_count(const struct index *idx)
{
	return idx->n_pending;
}

size_t index_memory(const struct index *idx)
{
	size_t m = sizeof(*idx) + idx->name_bytes;

	m += idx->cap_ent * sizeof(*idx->ent) + idx->cap_slot * sizeof(*idx->slot);
	m += idx->cap_packs * sizeof(*idx->packs) + idx->cap_objs * sizeof(*idx->objs);
	m += (idx->pack_map.cap + idx->obj_map.cap) * sizeof(struct nslot);
	m += idx->cap_keys * sizeof(*idx->keys);
	for (size_t i = 0; i < idx->n_objs; i++)
		m += idx->objs[i].npacks * sizeof(uint32_t);
	return m;
}

int index_foreach(const struct index *idx, index_fn fn, void *arg)
{
	struct index_entry ent;
	int rc;

	for (size_t i = 0; i < idx->n_ent; i++) {
		ent.pack = idx->packs[idx->ent[i].pack].name;
		ientry_to_pack_entry(idx, &idx->ent[i], &ent.e);
		rc = fn(&ent, arg);
		if (rc)
			return rc;
	}
	return 0;
}

int index_has_pack(const struct index *idx, const char *pack_name)
{
	uint32_t pi = nm_get(&idx->pack_map, pack_name);

	return pi != NM_NONE && idx->packs[pi].present;
}

int index_remove_packs(struct index *idx, const char *const *pack_names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!index_has_pack(idx, pack_names[i]))
			return err_set(-ENOENT, "pack %.80s is not in the index", pack_names[i]);
	for (size_t i = 0; i < n; i++) {
		uint32_t pi = nm_get(&idx->pack_map, pack_names[i]);

		if (idx->packs[pi].present) {
			idx->packs[pi].present = 0;
			idx->n_present--;
		}
		set_pending(idx, pi, 0);
	}
	if (n)
		compact(idx);
	return 0;
}

int index_remove_pack(struct index *idx, const char *pack_name)
{
	return index_remove_packs(idx, &pack_name, 1);
}

/* ---- encoding of index objects ------------------------------------------ */

/* Plaintext: version ‖ LE32 n ‖ n superseded ids (16 bytes) ‖ LE32 m ‖
 * m × (u8 name length ‖ name ‖ LE32 count ‖ count entries). */
static void encode_object(const struct index *idx, const uint32_t *packs, size_t np,
			  const uint32_t *sup, size_t nsup, struct buf *out)
{
	uint8_t tmp[PACK_ENTRY_SIZE > INDEX_RAW_ID ? PACK_ENTRY_SIZE : INDEX_RAW_ID];
	struct pack_entry e;

	buf_addc(out, INDEX_VERSION);
	le_put32(tmp, (uint32_t)nsup);
	buf_add(out, tmp, 4);
	for (size_t i = 0; i < nsup; i++) {
		index_name_to_raw(idx->objs[sup[i]].name, tmp);
		buf_add(out, tmp, INDEX_RAW_ID);
	}
	le_put32(tmp, (uint32_t)np);
	buf_add(out, tmp, 4);
	for (size_t i = 0; i < np; i++) {
		const struct ipack *p = &idx->packs[packs[i]];

		buf_addc(out, (char)strlen(p->name));
		buf_adds(out, p->name);
		le_put32(tmp, (uint32_t)p->count);
		buf_add(out, tmp, 4);
		buf_grow(out, p->count * PACK_ENTRY_SIZE);
		for (size_t j = 0; j < p->count; j++) {
			ientry_to_pack_entry(idx, &idx->ent[p->first + j], &e);
			pack_entry_encode(&e, out->data + out->len);
			buf_setlen(out, out->len + PACK_ENTRY_SIZE);
		}
	}
}

struct dpack {
	char name[PACK_NAME_SIZE];
	enum keys_blob_type type;
	size_t count;
	const uint8_t *raw;	/* count entries, in the object's plaintext */
};

/* One fetched index object, decoded and verified. */
struct dobj {
	char name[INDEX_NAME_SIZE];
	struct buf plain;
	char (*sup)[INDEX_NAME_SIZE];
	size_t nsup;
	struct dpack *packs;
	size_t npacks;
};

static void dobj_free(struct dobj *d)
{
	buf_free(&d->plain);
	free(d->sup);
	free(d->packs);
	memset(d, 0, sizeof(*d));
}

static int decode_object(struct dobj *d)
{
	const uint8_t *p = d->plain.data, *end = p + d->plain.len;
	const char *name = d->name;
	struct namemap seen = { NULL, 0, 0 };
	uint32_t n;
	int rc = 0;

	if (end - p < 5)
		return err_set(-EBADMSG, "index object %s: %zu bytes is too short", name, d->plain.len);
	if (p[0] != INDEX_VERSION)
		return err_set(-ENOTSUP, "index object %s: version %u is not supported (this cairn reads version %d)",
			       name, p[0], INDEX_VERSION);
	n = le_get32(p + 1);
	p += 5;
	if (n > (size_t)(end - p) / INDEX_RAW_ID)
		return err_set(-EBADMSG, "index object %s: %u superseded ids do not fit in it", name, n);
	d->sup = xcalloc(n ? n : 1, sizeof(*d->sup));
	d->nsup = n;
	for (uint32_t i = 0; i < n; i++, p += INDEX_RAW_ID) {
		index_name_from_raw(p, d->sup[i]);
		if (strcmp(d->sup[i], name) == 0)
			return err_set(-EBADMSG, "index object %s lists itself as superseded", name);
	}
	if (end - p < 4)
		return err_set(-EBADMSG, "index object %s: truncated before its pack count", name);
	n = le_get32(p);
	p += 4;
	if (n > (size_t)(end - p) / (1 + PACK_NAME_LEN + 4 + PACK_ENTRY_SIZE))
		return err_set(-EBADMSG, "index object %s: %u packs do not fit in it", name, n);
	d->packs = xcalloc(n ? n : 1, sizeof(*d->packs));
	d->npacks = n;
	for (uint32_t i = 0; i < n && !rc; i++) {
		struct dpack *dp = &d->packs[i];
		struct pack_entry e;
		char where[INDEX_NAME_SIZE + PACK_NAME_SIZE + 32];
		uint64_t off = 0;
		size_t len;

		if (end - p < 1 || (len = p[0]) != PACK_NAME_LEN || (size_t)(end - p) < 1 + len + 4) {
			rc = err_set(-EBADMSG, "index object %s: pack %u: truncated or bad name length", name, i);
			break;
		}
		memcpy(dp->name, p + 1, len);
		dp->name[len] = '\0';
		p += 1 + len;
		if (memchr(dp->name, '\0', len) || pack_name_parse(dp->name, &dp->type)) {
			rc = err_set(-EBADMSG, "index object %s: pack %u has a bad name", name, i);
			break;
		}
		dp->count = le_get32(p);
		p += 4;
		if (dp->count == 0 || dp->count > PACK_MAX_BLOBS ||
		    dp->count > (size_t)(end - p) / PACK_ENTRY_SIZE) {
			rc = err_set(-EBADMSG, "index object %s: pack %s: %zu entries (truncated or out of bounds)",
				     name, dp->name, dp->count);
			break;
		}
		dp->raw = p;
		snprintf(where, sizeof(where), "index object %s: pack %s", name, dp->name);
		for (size_t j = 0; j < dp->count && !rc; j++) {
			pack_entry_decode(p + j * PACK_ENTRY_SIZE, &e);
			rc = check_entry(&e, dp->type, where, j, &off);
		}
		p += dp->count * PACK_ENTRY_SIZE;
		if (!rc && nm_get(&seen, dp->name) != NM_NONE)
			rc = err_set(-EBADMSG, "index object %s lists pack %s twice", name, dp->name);
		if (!rc)
			nm_put(&seen, dp->name, i);
	}
	nm_free(&seen);
	if (!rc && p != end)
		rc = err_set(-EBADMSG, "index object %s: %zu bytes after its last pack",
			     name, (size_t)(end - p));
	return rc;
}

int index_object_check(const char *name, const uint8_t *plain, size_t len)
{
	struct dobj d;
	int rc;

	memset(&d, 0, sizeof(d));
	if (!index_name_valid(name))
		return err_set(-EINVAL, "'%s' is not an index object name", name);
	snprintf(d.name, sizeof(d.name), "%s", name);
	buf_add(&d.plain, plain, len);
	rc = decode_object(&d);
	dobj_free(&d);
	return rc;
}

/* Seals the plaintext, puts it under a fresh name, records the object as
 * live with packs[] (clearing their pending marks) and, when sup is given,
 * the objects sup[] as superseded. */
static int write_object(struct index *idx, struct store *s, const struct keys_key *dk,
			const char *ws_id, uint32_t *packs, size_t np,
			const uint32_t *sup, size_t nsup, char *name_out)
{
	char name[INDEX_NAME_SIZE];
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	struct iobj *o;
	uint32_t oi;
	int rc = random_index_name(name);

	if (rc)
		return rc;
	encode_object(idx, packs, np, sup, nsup, &plain);
	/* nothing is written that a reader would refuse */
	if (plain.len > INDEX_OBJECT_MAX - KEYS_OBJECT_OVERHEAD)
		rc = err_set(-EFBIG, "index object %s would be %zu bytes, more than cairn reads (%u): the workspace has too many blobs for this version",
			     name, plain.len + KEYS_OBJECT_OVERHEAD, INDEX_OBJECT_MAX);
	if (!rc)
		rc = keys_seal_object(dk, KEYS_OBJ_INDEX, name, ws_id, plain.data, plain.len, &sealed);
	buf_free(&plain);
	if (!rc)
		rc = store_put(s, name, sealed.data, sealed.len, STORE_IF_NONE_MATCH, NULL, NULL);
	buf_free(&sealed);
	if (rc)
		return err_prefix(rc, "cannot write index object %s", name);

	for (size_t i = 0; i < nsup; i++) {
		struct iobj *old = &idx->objs[sup[i]];

		for (size_t j = 0; j < old->npacks; j++)
			idx->packs[old->packs[j]].refs--;
		free(old->packs);
		old->packs = NULL;
		old->npacks = 0;
		old->state = INDEX_OBJ_SUPERSEDED;
	}
	oi = obj_record(idx, name);
	o = &idx->objs[oi];
	o->state = INDEX_OBJ_LIVE;
	o->packs = packs;	/* taken over */
	o->npacks = np;
	for (size_t i = 0; i < np; i++) {
		idx->packs[packs[i]].refs++;
		set_pending(idx, packs[i], 0);
	}
	if (name_out)
		memcpy(name_out, name, INDEX_NAME_SIZE);
	return 0;
}

int index_write_delta(struct index *idx, struct store *s, const struct keys_key *dk,
		      const char *ws_id, char *name_out)
{
	uint32_t *packs;
	size_t np = 0;
	int rc;

	if (name_out)
		name_out[0] = '\0';
	if (!idx->n_pending)
		return 0;
	packs = xmalloc(idx->n_pending * sizeof(*packs));
	for (size_t i = 0; i < idx->n_packs; i++)
		if (idx->packs[i].present && idx->packs[i].pending)
			packs[np++] = (uint32_t)i;
	rc = write_object(idx, s, dk, ws_id, packs, np, NULL, 0, name_out);
	if (rc)
		free(packs);
	return rc;
}

int index_write_consolidated(struct index *idx, struct store *s, const struct keys_key *dk,
			     const char *ws_id, char *name_out, size_t *n_superseded)
{
	uint32_t *packs = xmalloc((idx->n_present ? idx->n_present : 1) * sizeof(*packs));
	uint32_t *sup = xmalloc((idx->n_objs ? idx->n_objs : 1) * sizeof(*sup));
	size_t np = 0, nsup = 0;
	int rc;

	for (size_t i = 0; i < idx->n_packs; i++)
		if (idx->packs[i].present)
			packs[np++] = (uint32_t)i;
	for (size_t i = 0; i < idx->n_objs; i++)
		if (idx->objs[i].state != OBJ_GONE)
			sup[nsup++] = (uint32_t)i;
	rc = write_object(idx, s, dk, ws_id, packs, np, sup, nsup, name_out);
	if (rc)
		free(packs);
	else if (n_superseded)
		*n_superseded = nsup;
	free(sup);
	return rc;
}

int index_delete_superseded(struct index *idx, struct store *s, size_t *n_deleted)
{
	const char **names = xmalloc((idx->n_objs ? idx->n_objs : 1) * sizeof(*names));
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < idx->n_objs; i++)
		if (idx->objs[i].state == INDEX_OBJ_SUPERSEDED)
			names[n++] = idx->objs[i].name;
	if (n)
		rc = store_del_many(s, names, n);
	if (!rc)
		for (size_t i = 0; i < idx->n_objs; i++)
			if (idx->objs[i].state == INDEX_OBJ_SUPERSEDED)
				idx->objs[i].state = OBJ_GONE;
	free(names);
	if (rc)
		return err_prefix(rc, "cannot delete %zu superseded index objects", n);
	if (n_deleted)
		*n_deleted = n;
	return 0;
}

/* ---- loading ------------------------------------------------------------ */

struct listing {
	char **names;
	size_t n, cap;
	struct store *s;	/* for messages */
	int refused;		/* an object too large: its error, set */
};

static int list_cb(const char *key, uint64_t size, void *arg)
{
	struct listing *l = arg;

	if (!index_name_valid(key)) {
		log_warn("skipping '%s': not an index object name (index/<32 hex>)", key);
		return 0;
	}
	/* refused before any GET when the listing says so (store_get_max
	 * refuses it anyway) */
	if (size > INDEX_OBJECT_MAX) {
		l->refused = store_refuse_size(l->s, key, size, INDEX_OBJECT_MAX, "index object");
		return 1;	/* > 0: store_list adds nothing to the message */
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->names = xrealloc(l->names, l->cap * sizeof(*l->names));
	}
	l->names[l->n++] = xstrdup(key);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int listed(const struct listing *l, const char *name)
{
	return bsearch(&name, l->names, l->n, sizeof(*l->names), cmp_str) != NULL;
}

static int known(const struct index *idx, const char *name)
{
	uint32_t oi = nm_get(&idx->obj_map, name);

	return oi != NM_NONE && idx->objs[oi].state != OBJ_GONE;
}

static int fetch_object(struct store *s, const struct keys_ring *ring, const char *ws_id,
			const char *name, struct dobj *d)
{
	struct buf sealed = BUF_INIT;
	int rc = store_get_max(s, name, INDEX_OBJECT_MAX, "index object", &sealed, NULL);

	memcpy(d->name, name, INDEX_NAME_SIZE);
	buf_init(&d->plain);
	if (!rc) {
		rc = keys_ring_open_object(ring, KEYS_OBJ_INDEX, name, ws_id, sealed.data, sealed.len, &d->plain);
		if (rc)
			err_prefix(rc, "index object %s", name);
	}
	buf_free(&sealed);
	if (!rc)
		rc = decode_object(d);
	return rc;
}

int index_load_from_store(struct index *idx, struct store *s,
			  const struct keys_ring *ring, const char *ws_id)
{
	struct listing l = { NULL, 0, 0, s, 0 };
	struct dobj *fresh = NULL;
	struct namemap sup = { NULL, 0, 0 };
	size_t nfresh = 0, ndrop = 0;
	int rc;

	rc = store_list(s, INDEX_PREFIX, list_cb, &l);
	if (rc > 0)
		rc = l.refused;
	if (rc)
		goto out;
	if (l.n > 1)
		qsort(l.names, l.n, sizeof(*l.names), cmp_str);

	/* fetch and verify every object idx does not know; nothing changes yet */
	fresh = xcalloc(l.n ? l.n : 1, sizeof(*fresh));
	for (size_t i = 0; i < l.n; i++) {
		if (known(idx, l.names[i]))
			continue;
		rc = fetch_object(s, ring, ws_id, l.names[i], &fresh[nfresh++]);
		if (rc)
			goto out;
	}
	for (size_t i = 0; i < nfresh; i++)
		for (size_t j = 0; j < fresh[i].nsup; j++)
			if (nm_get(&sup, fresh[i].sup[j]) == NM_NONE)
				nm_put(&sup, fresh[i].sup[j], 0);

	/* objects merged before: drop those superseded now or gone */
	for (size_t i = 0; i < idx->n_objs; i++) {
		struct iobj *o = &idx->objs[i];
		int in_store = listed(&l, o->name);

		if (o->state == INDEX_OBJ_LIVE &&
		    (!in_store || nm_get(&sup, o->name) != NM_NONE)) {
			for (size_t j = 0; j < o->npacks; j++)
				idx->packs[o->packs[j]].refs--;
			free(o->packs);
			o->packs = NULL;
			o->npacks = 0;
			o->state = in_store ? INDEX_OBJ_SUPERSEDED : OBJ_GONE;
		} else if (o->state == INDEX_OBJ_SUPERSEDED && !in_store) {
			o->state = OBJ_GONE;
		}
	}

	/* merge the new objects that nothing supersedes */
	for (size_t i = 0; i < nfresh; i++) {
		struct dobj *d = &fresh[i];
		uint32_t oi = obj_record(idx, d->name);
		struct iobj *o = &idx->objs[oi];

		if (nm_get(&sup, d->name) != NM_NONE) {
			o->state = INDEX_OBJ_SUPERSEDED;
			continue;
		}
		o->state = INDEX_OBJ_LIVE;
		o->packs = xmalloc((d->npacks ? d->npacks : 1) * sizeof(*o->packs));
		o->npacks = d->npacks;
		for (size_t j = 0; j < d->npacks; j++) {
			uint32_t pi = pack_record(idx, d->packs[j].name, d->packs[j].type);

			/* objects[] may have moved: pack_record touches packs only */
			if (!idx->packs[pi].present) {
				rc = fill_pack(idx, pi, NULL, d->packs[j].raw, d->packs[j].count);
				if (rc)
					goto out;	/* only on > 2^32 entries or 65535 keys */
			}
			idx->packs[pi].refs++;
			set_pending(idx, pi, 0);
			o->packs[j] = pi;
		}
	}

	/* packs no live object lists and not pending: gone from the index */
	for (size_t i = 0; i < idx->n_packs; i++) {
		struct ipack *p = &idx->packs[i];

		if (p->present && !p->refs && !p->pending) {
			p->present = 0;
			idx->n_present--;
			ndrop++;
		}
	}
	if (ndrop)
		compact(idx);
out:
	for (size_t i = 0; i < nfresh; i++)
		dobj_free(&fresh[i]);
	free(fresh);
	for (size_t i = 0; i < l.n; i++)
		free(l.names[i]);
	free(l.names);
	nm_free(&sup);
	return rc;
}

/* ---- for the cache ------------------------------------------------------ */

int index_foreach_pack(const struct index *idx, index_pack_fn fn, void *arg)
{
	for (size_t i = 0; i < idx->n_packs; i++) {
		const struct ipack *p = &idx->packs[i];
		int rc;

		if (!p->present)
			continue;
		rc = fn(p->name, p->count, p->refs > 0, arg);
		if (rc)
			return rc;
	}
	return 0;
}

int index_pack_entries(const struct index *idx, const char *pack_name,
		       struct pack_entry **out, size_t *n)
{
	uint32_t pi = nm_get(&idx->pack_map, pack_name);
	const struct ipack *p;

	if (pi == NM_NONE || !idx->packs[pi].present)
		return err_set(-ENOENT, "pack %.80s is not in the index", pack_name);
	p = &idx->packs[pi];
	*out = xmalloc(p->count * sizeof(**out));
	for (size_t i = 0; i < p->count; i++)
		ientry_to_pack_entry(idx, &idx->ent[p->first + i], &(*out)[i]);
	*n = p->count;
	return 0;
}

int index_foreach_object(const struct index *idx, index_obj_fn fn, void *arg)
{
	const char **names = NULL;
	size_t cap = 0;
	int rc = 0;

	for (size_t i = 0; i < idx->n_objs && !rc; i++) {
		const struct iobj *o = &idx->objs[i];

		if (o->state == OBJ_GONE)
			continue;
		if (o->npacks > cap) {
			cap = o->npacks;
			names = xrealloc(names, cap * sizeof(*names));
		}
		for (size_t j = 0; j < o->npacks; j++)
			names[j] = idx->packs[o->packs[j]].name;
		rc = fn(o->name, (enum index_obj_state)o->state, names, o->npacks, arg);
	}
	free(names);
	return rc;
}

int index_restore_object(struct index *idx, const char *obj_name, enum index_obj_state state,
			 const char *const *packs, size_t n_packs)
{
	enum keys_blob_type type;
	struct iobj *o;
	uint32_t oi, *pis;

	if (!index_name_valid(obj_name))
		return err_set(-EINVAL, "'%.80s' is not an index object name", obj_name);
	if (state != INDEX_OBJ_LIVE && state != INDEX_OBJ_SUPERSEDED)
		return err_set(-EINVAL, "index object %s: bad state %d", obj_name, (int)state);
	if (known(idx, obj_name))
		return err_set(-EEXIST, "index object %s is already known", obj_name);
	if (state == INDEX_OBJ_SUPERSEDED)
		n_packs = 0;
	for (size_t i = 0; i < n_packs; i++)
		if (pack_name_parse(packs[i], NULL))
			return err_prefix(-EINVAL, "index object %s", obj_name);
	pis = xmalloc((n_packs ? n_packs : 1) * sizeof(*pis));
	for (size_t i = 0; i < n_packs; i++) {
		pack_name_parse(packs[i], &type);
		pis[i] = pack_record(idx, packs[i], type);
		idx->packs[pis[i]].refs++;
		set_pending(idx, pis[i], 0);
	}
	oi = obj_record(idx, obj_name);
	o = &idx->objs[oi];
	o->state = state;
	free(o->packs);
	o->packs = pis;
	o->npacks = n_packs;
	return 0;
}
