/*
 * fetch.c - reading blobs and the index back from the store (see fetch.h).
 *
 * Every blob is verified on the way in: its pack entry says which key and
 * how it was compressed, blob_decode opens it and re-hashes the plaintext
 * against its id, so a swapped, truncated or altered blob is an error,
 * never data.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "err.h"
#include "fetch.h"
#include "idxcache.h"
#include "log.h"

/* Tree packs are small (a 30,000-file tree is a few MiB) and every walk
 * reads most of their blobs, so they are fetched whole and kept, least
 * recently used out first, within PACK_CACHE_LIMIT bytes. */
#define PACK_CACHE_LIMIT (256u << 20)

/* Data blobs are read with range GETs.  A small one brings the
 * DATA_WINDOW bytes of its pack that start with it, kept in one of
 * DATA_WINDOWS windows (least recently used out first): a snapshot packs
 * the files of a directory side by side, so the files a program reads next
 * (the rest of a package, of a source tree) are often already there, and a
 * first read of a thousand small files costs tens of requests, not a
 * thousand.  On R2, where a request costs far more time than 256 KiB of
 * transfer, that is the difference that matters. */
#define DATA_WINDOW (256u << 10)
#define DATA_WINDOWS 16

struct cached_pack {
	char name[PACK_NAME_SIZE];
	struct buf bytes;
	uint64_t used;		/* tick of the last use */
};

struct data_window {
	char name[PACK_NAME_SIZE];	/* "" when the slot is free */
	uint64_t off;			/* pack offset of bytes.data[0] */
	struct buf bytes;
	uint64_t used;
};

struct pack_cache {
	pthread_mutex_t lock;	/* guards everything below */
	struct cached_pack *packs;
	size_t n, cap;
	uint64_t bytes, tick;
	struct data_window win[DATA_WINDOWS];
};

static struct pack_cache *cache_of(struct repo *r)
{
	static pthread_mutex_t make = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&make);
	if (!r->tree_packs) {
		r->tree_packs = xcalloc(1, sizeof(*r->tree_packs));
		pthread_mutex_init(&r->tree_packs->lock, NULL);
	}
	pthread_mutex_unlock(&make);
	return r->tree_packs;
}

void fetch_cache_free(struct pack_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		buf_free(&c->packs[i].bytes);
	for (size_t i = 0; i < DATA_WINDOWS; i++)
		buf_free(&c->win[i].bytes);
	free(c->packs);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Copies the len bytes at off of cached pack name into out; 1 when the
 * pack was cached, 0 when not. */
static int cache_read(struct pack_cache *c, const char *name, uint64_t off, uint64_t len,
		      struct buf *out)
{
	int hit = 0;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++) {
		struct cached_pack *p = &c->packs[i];

		if (strcmp(p->name, name))
			continue;
		p->used = ++c->tick;
		if (off <= p->bytes.len && len <= p->bytes.len - off)
			buf_add(out, p->bytes.data + off, (size_t)len);
		hit = 1;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

/* Keeps bytes (taken over) as pack name, evicting the least recently used. */
static void cache_keep(struct pack_cache *c, const char *name, struct buf *bytes)
{
	pthread_mutex_lock(&c->lock);
	while (c->n && c->bytes + bytes->len > PACK_CACHE_LIMIT) {
		size_t old = 0;

		for (size_t i = 1; i < c->n; i++)
			if (c->packs[i].used < c->packs[old].used)
				old = i;
		c->bytes -= c->packs[old].bytes.len;
		buf_free(&c->packs[old].bytes);
		c->packs[old] = c->packs[--c->n];
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->packs = xrealloc(c->packs, c->cap * sizeof(*c->packs));
	}
	snprintf(c->packs[c->n].name, PACK_NAME_SIZE, "%s", name);
	c->packs[c->n].bytes = *bytes;
	c->packs[c->n].used = ++c->tick;
	c->bytes += bytes->len;
	c->n++;
	buf_init(bytes);
	pthread_mutex_unlock(&c->lock);
}

/* Copies [off, off + len) of pack name from a window into out: 1, or 0
 * when no window holds all of it. */
static int window_read(struct pack_cache *c, const char *name, uint64_t off, uint64_t len,
		       struct buf *out)
{
	int hit = 0;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < DATA_WINDOWS && !hit; i++) {
		struct data_window *w = &c->win[i];

		if (!w->name[0] || strcmp(w->name, name) || off < w->off ||
		    off - w->off > w->bytes.len || len > w->bytes.len - (off - w->off))
			continue;
		buf_add(out, w->bytes.data + (off - w->off), (size_t)len);
		w->used = ++c->tick;
		hit = 1;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

/* Keeps bytes (taken over) as the window of pack name at off. */
static void window_keep(struct pack_cache *c, const char *name, uint64_t off, struct buf *bytes)
{
	struct data_window *w;

	pthread_mutex_lock(&c->lock);
	w = &c->win[0];
	for (size_t i = 1; i < DATA_WINDOWS && w->name[0]; i++)
		if (!c->win[i].name[0] || c->win[i].used < w->used)
			w = &c->win[i];
	buf_free(&w->bytes);
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->off = off;
	w->bytes = *bytes;
	w->used = ++c->tick;
	buf_init(bytes);
	pthread_mutex_unlock(&c->lock);
}

/* Forgets every window that holds byte off of pack name: what it holds did
 * not verify, and the next read must go to the store. */
static void window_drop(struct repo *r, const char *name, uint64_t off)
{
	struct pack_cache *c = cache_of(r);

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < DATA_WINDOWS; i++) {
		struct data_window *w = &c->win[i];

		if (w->name[0] && !strcmp(w->name, name) && off >= w->off &&
		    off - w->off < w->bytes.len) {
			buf_free(&w->bytes);
			w->name[0] = '\0';
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* The sealed bytes of a data blob: from a window, or a range GET of its
 * window (of the blob alone when it is larger). */
static int read_sealed_data(struct repo *r, const struct index_entry *ent, struct buf *sealed)
{
	struct pack_cache *c = cache_of(r);
	struct buf win = BUF_INIT;
	uint64_t len = ent->e.ref.length;
	int rc;

	if (len >= DATA_WINDOW)
		return store_get(r->store, ent->pack, ent->e.offset, len, sealed, NULL);
	if (window_read(c, ent->pack, ent->e.offset, len, sealed))
		return 0;
	rc = store_get(r->store, ent->pack, ent->e.offset, DATA_WINDOW, &win, NULL);
	if (!rc) {
		/* shorter than the blob: the pack is; the caller says so */
		buf_add(sealed, win.data, (size_t)(win.len < len ? win.len : len));
		if (win.len > len)
			window_keep(c, ent->pack, ent->e.offset, &win);
	}
	buf_free(&win);
	return rc;
}

/* The sealed bytes of one blob: from the cache for tree packs (fetching the
 * whole pack on a miss), by range (read_sealed_data) for data packs. */
static int read_sealed(struct repo *r, const struct index_entry *ent, struct buf *sealed)
{
	struct pack_cache *c;
	struct buf whole = BUF_INIT;
	int rc;

	if (ent->e.ref.type != KEYS_BLOB_TREE)
		return read_sealed_data(r, ent, sealed);
	c = cache_of(r);
	if (cache_read(c, ent->pack, ent->e.offset, ent->e.ref.length, sealed))
		return 0;
	rc = store_get_max(r->store, ent->pack, PACK_MAX_SIZE, "pack", &whole, NULL);
	if (!rc) {
		if (ent->e.offset <= whole.len && ent->e.ref.length <= whole.len - ent->e.offset)
			buf_add(sealed, whole.data + ent->e.offset, ent->e.ref.length);
		cache_keep(c, ent->pack, &whole);
	}
	buf_free(&whole);
	return rc;
}

struct copies {
	const struct index_entry *of;
	struct index_entry *found;
	size_t n;
};

static int collect_copy(const struct index_entry *ent, void *arg)
{
	struct copies *c = arg;

	if (memcmp(ent->e.ref.id, c->of->e.ref.id, KEYS_BLOB_ID_LEN) ||
	    ent->e.ref.type != c->of->e.ref.type || !strcmp(ent->pack, c->of->pack))
		return 0;
	c->found = xrealloc(c->found, (c->n + 1) * sizeof(*c->found));
	c->found[c->n++] = *ent;
	return 0;
}

int fetch_blob_elsewhere(struct repo *r, const struct index *idx, const struct index_entry *ent,
			 struct buf *out)
{
	struct copies c = { .of = ent };
	char hex[BLOB_ID_HEX_SIZE];
	int rc = -ENOENT;

	index_foreach(idx, collect_copy, &c);
	for (size_t i = 0; rc && i < c.n; i++) {
		struct buf sealed = BUF_INIT;
		size_t old = out->len;

		rc = read_sealed(r, &c.found[i], &sealed);
		if (!rc)
			rc = blob_decode(r->ring, &c.found[i].e.ref, sealed.data, sealed.len, out);
		if (rc)
			buf_setlen(out, old);
		buf_free(&sealed);
	}
	free(c.found);
	blob_id_hex(ent->e.ref.id, hex);
	if (rc)
		return err_set(-ENOENT, "pack %s is missing from the store and no other copy of blob %.16s could be read: run 'cairn check'",
			       ent->pack, hex);
	return 0;
}

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
	for (int attempt = 1;; attempt++) {
		size_t old = out->len;

		buf_reset(&sealed);
		rc = read_sealed(r, &ent, &sealed);
		if (rc == -ENOENT) {
			/* an index written late by a killed writer may name a pack
			 * that a prune has deleted since; the blob has another copy */
			buf_free(&sealed);
			return fetch_blob_elsewhere(r, idx, &ent, out);
		}
		if (!rc && sealed.len != ent.e.ref.length)
			rc = err_set(-EBADMSG, "%s: pack is shorter than its header says (blob %.16s)",
				     ent.pack, hex);
		if (!rc)
			rc = blob_decode(r->ring, &ent.e.ref, sealed.data, sealed.len, out);
		if (rc)
			err_prefix(rc, "%s", ent.pack);
		if (rc == -EBADMSG)
			window_drop(r, ent.pack, ent.e.offset);
		if (!store_read_again(rc, attempt))
			break;
		buf_setlen(out, old);
	}
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

int fetch_root_entry(struct repo *r, const struct index *idx, const struct record_snapshot *rec,
		     const char *name, struct tree *holder, const struct tree_entry **out)
{
	const uint8_t *top = record_snapshot_root(rec, RECORD_ROOT_TOP);
	const uint8_t *root = record_snapshot_root(rec, name);
	const struct tree_entry *e;
	int rc;

	*out = NULL;
	tree_init(holder);
	if (!top || !root)
		return 0;
	rc = fetch_tree(r, idx, top, holder);
	if (rc)
		return err_prefix(rc, "the top tree of the snapshot");
	e = tree_find(holder, name);
	if (e && (e->type != TREE_DIR || memcmp(e->subtree, root, KEYS_BLOB_ID_LEN))) {
		tree_free(holder);
		return err_set(-EBADMSG, "the top tree of the snapshot gives root %s another tree than the snapshot does: run 'cairn check'",
			       name);
	}
	*out = e;
	return 0;
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

static int collect_snapshot(const char *key, uint64_t size, void *arg)
{
	struct snapshot_ids *s = arg;
	const char *id = key + strlen("snapshots/");

	(void)size;
	if (!record_id_valid(id))
		return 0;
	s->ids = xrealloc(s->ids, (s->n + 1) * sizeof(*s->ids));
	memcpy(s->ids[s->n++], id, RECORD_ID_SIZE);
	return 0;
}

int fetch_snapshot_ids(struct repo *r, struct snapshot_ids *out)
{
	memset(out, 0, sizeof(*out));
	return store_list(r->store, "snapshots/", collect_snapshot, out);
}

int fetch_resolve_snapshot(struct repo *r, const char *arg, char id[RECORD_ID_SIZE])
{
	struct snapshot_ids s;
	size_t len = strlen(arg), found = 0;
	int rc;

	if (!strcmp(arg, "latest")) {
		struct repo_head head;

		rc = repo_head_read(r, &head);
		if (!rc && !head.generation)
			rc = err_set(-ENOENT, "workspace %s has no snapshot yet", r->ws_id);
		if (!rc)
			memcpy(id, head.snapshot_id, RECORD_ID_SIZE);
		return rc;
	}
	if (len < 8 || len > RECORD_ID_LEN || strspn(arg, "0123456789abcdef") != len)
		return err_set(-EINVAL, "'%s' is not a snapshot id: use 'latest', or 8 to 32 hex digits from 'cairn ls'",
			       arg);
	rc = fetch_snapshot_ids(r, &s);
	for (size_t i = 0; !rc && i < s.n; i++) {
		if (!strncmp(s.ids[i], arg, len)) {
			if (found++)
				break;
			memcpy(id, s.ids[i], RECORD_ID_SIZE);
		}
	}
	free(s.ids);
	if (!rc && found == 0)
		rc = err_set(-ENOENT, "no snapshot %s in workspace %s", arg, r->ws_id);
	if (!rc && found > 1)
		rc = err_set(-EINVAL, "snapshot id %s is ambiguous: give more digits", arg);
	return rc;
}
