/*
 * test_index.c - the blob index: the in-memory map (duplicates, removal,
 * a million entries), index deltas and consolidation through a real
 * file:// store, and the sqlite cache (which must fetch no index object
 * when nothing changed), counted by a thin store layer over the file store.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "idxcache.h"
#include "index.h"
#include "pack.h"
#include "store.h"
#include "tap.h"

#define WS "ws-index-test"

static struct keys_ring *ring;
static const struct keys_key *dk;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- a counting store layer: every op calls through to the file store -- */

struct counting {
	struct store *inner;
	int gets, lists, puts, dels;
};

static struct counting *cnt(struct store *s)
{
	return s->priv;
}

static int c_put(struct store *s, const char *key, const void *data, size_t len,
		 enum store_cond cond, const char *etag, struct store_info *info)
{
	cnt(s)->puts++;
	return cnt(s)->inner->ops->put(cnt(s)->inner, key, data, len, cond, etag, info);
}

static int c_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		 struct buf *out, struct store_info *info)
{
	cnt(s)->gets++;
	return cnt(s)->inner->ops->get(cnt(s)->inner, key, off, len, out, info);
}

static int c_head(struct store *s, const char *key, struct store_info *info)
{
	return cnt(s)->inner->ops->head(cnt(s)->inner, key, info);
}

static int c_list(struct store *s, const char *prefix, store_list_fn fn, void *arg)
{
	cnt(s)->lists++;
	return cnt(s)->inner->ops->list(cnt(s)->inner, prefix, fn, arg);
}

static int c_del(struct store *s, const char *key)
{
	cnt(s)->dels++;
	return cnt(s)->inner->ops->del(cnt(s)->inner, key);
}

static int c_del_many(struct store *s, const char *const *keys, size_t n)
{
	cnt(s)->dels += (int)n;
	return cnt(s)->inner->ops->del_many(cnt(s)->inner, keys, n);
}

static void c_close(struct store *s)
{
	free(s->url);
	free(s->priv);
	free(s);
}

static const struct store_ops counting_ops = {
	.put = c_put, .get = c_get, .head = c_head, .list = c_list, .del = c_del,
	.del_many = c_del_many, .close = c_close,
};

static struct store *counting_open(struct store *inner)
{
	struct store *s = xcalloc(1, sizeof(*s));
	struct counting *c = xcalloc(1, sizeof(*c));

	c->inner = inner;
	s->ops = &counting_ops;
	s->url = xasprintf("counting+%s", inner->url);
	s->priv = c;
	return s;
}

/* ---- helpers ------------------------------------------------------------ */

/* A pack header of n entries (not uploaded: the index only needs headers),
 * ids from seed; made by the real writer. */
static void make_header(enum keys_blob_type type, size_t n, uint64_t seed, struct pack_header *h)
{
	struct pack_writer *w;
	struct buf bytes = BUF_INIT;
	char name[PACK_NAME_SIZE];
	uint8_t sealed[64] = { 0 };

	if (pack_writer_new(type, &w))
		tap_bail("pack_writer_new: %s", err_msg());
	for (size_t i = 0; i < n; i++) {
		struct blob_ref ref;
		uint64_t x = seed * 100000 + i;

		memset(&ref, 0, sizeof(ref));
		keys_blob_id(ring, &x, sizeof(x), ref.id);
		ref.type = (uint8_t)type;
		ref.compression = BLOB_RAW;
		ref.length = 64;
		ref.raw_length = 64 - KEYS_BLOB_OVERHEAD;
		memcpy(ref.key_id, keys_key_id(dk), KEYS_ID_SIZE);
		if (pack_writer_add(w, &ref, sealed, sizeof(sealed)))
			tap_bail("pack_writer_add: %s", err_msg());
	}
	if (pack_writer_finish(w, dk, WS, &bytes, name, h))
		tap_bail("pack_writer_finish: %s", err_msg());
	pack_writer_free(w);
	buf_free(&bytes);
}

/* 1 when every entry of every header is found in idx where it says. */
static int holds_all(const struct index *idx, struct pack_header *h, size_t nh)
{
	struct index_entry ent;

	for (size_t i = 0; i < nh; i++)
		for (size_t j = 0; j < h[i].count; j++) {
			const struct pack_entry *e = &h[i].entries[j];

			if (index_lookup(idx, e->ref.id, &ent) || strcmp(ent.pack, h[i].name) ||
			    ent.e.offset != e->offset || ent.e.ref.length != e->ref.length ||
			    ent.e.ref.raw_length != e->ref.raw_length ||
			    ent.e.ref.type != e->ref.type ||
			    ent.e.ref.compression != e->ref.compression ||
			    strcmp(ent.e.ref.key_id, e->ref.key_id))
				return 0;
		}
	return 1;
}

/* 1 when no entry of header h is in idx. */
static int holds_none(const struct index *idx, const struct pack_header *h)
{
	for (size_t j = 0; j < h->count; j++)
		if (index_has(idx, h->entries[j].ref.id))
			return 0;
	return 1;
}

struct obj_counts {
	int live, superseded;
};

static int count_obj(const char *obj, enum index_obj_state state,
		     const char *const *packs, size_t n, void *arg)
{
	struct obj_counts *c = arg;

	(void)obj;
	(void)packs;
	(void)n;
	if (state == INDEX_OBJ_LIVE)
		c->live++;
	else
		c->superseded++;
	return 0;
}

static struct obj_counts objects_of(const struct index *idx)
{
	struct obj_counts c = { 0, 0 };

	index_foreach_object(idx, count_obj, &c);
	return c;
}

static int count_key(const char *key, uint64_t size, void *arg)
{
	(void)key;
	(void)size;
	(*(int *)arg)++;
	return 0;
}

static int store_count(struct store *s, const char *prefix)
{
	int n = 0;

	store_list(s, prefix, count_key, &n);
	return n;
}

static struct index *load_fresh(struct store *s, int *rc)
{
	struct index *idx;

	index_new(&idx);
	*rc = index_load_from_store(idx, s, ring, WS);
	return idx;
}

/* ---- the map ------------------------------------------------------------ */

static int count_entry(const struct index_entry *ent, void *arg)
{
	(void)ent;
	(*(size_t *)arg)++;
	return 0;
}

static void check_map(void)
{
	struct pack_header a = { 0 }, b = { 0 }, dup = { 0 };
	struct index *idx;
	struct index_entry ent;
	size_t n = 0;

	make_header(KEYS_BLOB_DATA, 100, 1, &a);
	make_header(KEYS_BLOB_TREE, 50, 2, &b);
	make_header(KEYS_BLOB_DATA, 30, 1, &dup);	/* the first 30 ids of a again */
	index_new(&idx);
	is_int(index_add_header(idx, &a), 0, "a pack of 100 data blobs is added");
	is_int(index_add_header(idx, &b), 0, "a pack of 50 tree blobs is added");
	is_int(index_count(idx), 150, "150 blob ids");
	ok(holds_all(idx, &a, 1) && holds_all(idx, &b, 1), "every one is found where its header says");
	is_int(index_add_header(idx, &a), 0, "adding a pack again is fine");
	is_int(index_entry_count(idx), 150, "and changes nothing");
	is_int(index_pending_count(idx), 2, "two packs wait for the next delta");
	is_int(index_add_header(idx, &dup), 0, "a pack holding 30 blobs that are already in another");
	is_int(index_count(idx), 150, "still 150 distinct ids");
	is_int(index_entry_count(idx), 180, "but 180 entries");
	index_foreach(idx, count_entry, &n);
	is_int(n, 180, "iteration visits the duplicates too");
	ok(index_lookup(idx, dup.entries[0].ref.id, &ent) == 0 && strcmp(ent.pack, a.name) == 0,
	   "lookup of a duplicate gives the first pack added");
	is_int(index_remove_pack(idx, a.name), 0, "the first pack is removed (prune)");
	ok(index_lookup(idx, dup.entries[0].ref.id, &ent) == 0 && strcmp(ent.pack, dup.name) == 0 &&
	   ent.e.offset == dup.entries[0].offset, "now lookup finds the other copy");
	ok(!index_has(idx, a.entries[50].ref.id), "and the blobs only the removed pack held are gone");
	is_int(index_count(idx), 80, "80 ids left");
	ok(holds_all(idx, &b, 1) && holds_all(idx, &dup, 1), "the other packs are intact");
	is_int(index_remove_pack(idx, a.name), -ENOENT, "removing it again: not found");
	is_int(index_lookup(idx, a.entries[50].ref.id, &ent), -ENOENT, "a missing id: not found");
	ok(strstr(err_msg(), "not in the index") != NULL, "with a message: %s", err_msg());
	is_int(index_pending_count(idx), 2, "the removed pack no longer waits for a delta");

	/* what index_add_pack refuses */
	{
		struct pack_entry e[2];

		memcpy(e, a.entries + 10, sizeof(e));
		is_int(index_add_pack(idx, "data/zz/nothing", e, 2), -EINVAL, "a bad pack name is refused");
		is_int(index_add_pack(idx, b.name, e, 1), -EINVAL, "data entries for a tree pack are refused");
		is_int(index_add_pack(idx, a.name, e, 2), -EINVAL,
		       "entries that do not start at offset 0 are refused");
		is_int(index_add_pack(idx, a.name, e, 0), -EINVAL, "a pack without entries is refused");
	}
	index_free(idx);
	pack_header_free(&a);
	pack_header_free(&b);
	pack_header_free(&dup);
}

/* ---- deltas and consolidation -------------------------------------------- */

#define NPACKS 6

static void check_deltas(struct store *s)
{
	struct pack_header h[NPACKS];
	struct index *w, *r, *r2;
	char name[INDEX_NAME_SIZE], z[INDEX_NAME_SIZE];
	struct obj_counts oc;
	size_t nsup = 0, ndel = 0;
	int rc;

	for (int i = 0; i < NPACKS; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		make_header(i % 3 == 2 ? KEYS_BLOB_TREE : KEYS_BLOB_DATA, 200 + 50 * i, 10 + i, &h[i]);
	}
	index_new(&w);
	/* three deltas: {0}, {1, 2}, {3} */
	index_add_header(w, &h[0]);
	is_int(index_write_delta(w, s, dk, WS, name), 0, "delta 1 written");
	ok(index_name_valid(name), "as %s", name);
	index_add_header(w, &h[1]);
	index_add_header(w, &h[2]);
	is_int(index_write_delta(w, s, dk, WS, name), 0, "delta 2 written (2 packs)");
	index_add_header(w, &h[3]);
	is_int(index_write_delta(w, s, dk, WS, name), 0, "delta 3 written");
	is_int(index_pending_count(w), 0, "nothing pending after a delta");
	is_int(index_write_delta(w, s, dk, WS, name), 0, "a delta with nothing pending");
	is_str(name, "", "writes nothing");
	is_int(store_count(s, "index/"), 3, "the store holds 3 index objects");

	r = load_fresh(s, &rc);
	is_int(rc, 0, "a fresh index loads from the store%s%s", rc ? ": " : "", rc ? err_msg() : "");
	ok(holds_all(r, h, 4), "it finds every blob of the 4 packs, as written");
	is_int(index_count(r), index_count(w), "and holds as many as the writer");
	is_int(index_pending_count(r), 0, "nothing is pending in a loaded index");
	oc = objects_of(r);
	ok(oc.live == 3 && oc.superseded == 0, "3 live index objects");
	is_int(index_load_from_store(r, s, ring, WS), 0, "loading again is a no-op");
	is_int(index_entry_count(r), index_entry_count(w), "that adds nothing");

	/* consolidation: Z supersedes the 3 deltas; crash before deleting them */
	is_int(index_write_consolidated(r, s, dk, WS, z, &nsup), 0, "consolidated index written");
	is_int(nsup, 3, "superseding the 3 deltas");
	is_int(store_count(s, "index/"), 4, "crash before the deltas are deleted: 4 index objects");
	r2 = load_fresh(s, &rc);
	is_int(rc, 0, "a fresh index still loads");
	ok(holds_all(r2, h, 4), "with every blob");
	oc = objects_of(r2);
	ok(oc.live == 1 && oc.superseded == 3, "from 1 live object; 3 known as superseded");
	is_int(index_entry_count(r2), index_entry_count(w), "no entry twice");
	index_free(r2);

	/* another delta arrives meanwhile (the writer goes on) */
	index_add_header(w, &h[4]);
	is_int(index_write_delta(w, s, dk, WS, name), 0, "delta 4 written after the consolidation");
	is_int(index_load_from_store(r, s, ring, WS), 0, "the consolidating index reloads");
	ok(holds_all(r, h, 5), "and picks up delta 4");
	is_int(index_delete_superseded(r, s, &ndel), 0, "superseded deltas deleted");
	is_int(ndel, 3, "3 of them");
	is_int(store_count(s, "index/"), 2, "the store holds the consolidated index and delta 4");
	r2 = load_fresh(s, &rc);
	ok(rc == 0 && holds_all(r2, h, 5), "a fresh load finds all 5 packs");
	index_free(r2);

	/* prune: remove pack 1, consolidate again; the writer's index is told */
	is_int(index_remove_pack(r, h[1].name), 0, "prune removes pack 1 from the index");
	is_int(index_write_consolidated(r, s, dk, WS, z, &nsup), 0, "and writes a new consolidated index");
	is_int(nsup, 2, "superseding the old one and delta 4");
	is_int(index_load_from_store(w, s, ring, WS), 0, "the writer's index reloads");
	ok(holds_none(w, &h[1]), "and drops pack 1 (the new index supersedes what listed it)");
	ok(holds_all(w, h, 1) && holds_all(w, h + 2, 3), "keeping the others");
	is_int(index_delete_superseded(r, s, &ndel), 0, "superseded objects deleted");
	r2 = load_fresh(s, &rc);
	ok(rc == 0 && holds_none(r2, &h[1]) && holds_all(r2, h + 2, 3) && holds_all(r2, h, 1),
	   "a fresh load: pack 1 gone, the rest there");
	is_int(index_count(r2), index_count(w), "same count as the writer's");
	index_free(r2);

	/* damaged, moved and foreign objects */
	{
		struct buf obj = BUF_INIT;
		char moved[INDEX_NAME_SIZE];
		size_t before = index_entry_count(w);

		store_get(s, z, 0, STORE_TO_END, &obj, NULL);
		obj.data[obj.len / 2] ^= 0x10;
		store_put(s, z, obj.data, obj.len, STORE_ALWAYS, NULL, NULL);
		r2 = load_fresh(s, &rc);
		ok(rc == -EBADMSG && strstr(err_msg(), z), "a damaged index object: integrity error naming it: %s",
		   err_msg());
		is_int(index_entry_count(r2), 0, "and the index is left unchanged (empty)");
		index_free(r2);
		obj.data[obj.len / 2] ^= 0x10;
		store_put(s, z, obj.data, obj.len, STORE_ALWAYS, NULL, NULL);

		memcpy(moved, z, sizeof(moved));
		moved[10] = moved[10] == 'a' ? 'b' : 'a';
		store_put(s, moved, obj.data, obj.len, STORE_ALWAYS, NULL, NULL);
		rc = index_load_from_store(w, s, ring, WS);
		ok(rc == -EBADMSG && strstr(err_msg(), moved),
		   "an index object copied to another name: integrity error: %s", err_msg());
		is_int(index_entry_count(w), before, "the loaded index is untouched");
		store_del(s, moved);

		store_put(s, "index/not-an-index", "x", 1, STORE_ALWAYS, NULL, NULL);
		r2 = load_fresh(s, &rc);
		ok(rc == 0 && holds_all(r2, h + 2, 3), "a stray name under index/ is skipped");
		index_free(r2);
		store_del(s, "index/not-an-index");
		buf_free(&obj);
	}
	/* pack 5 stays pending in w: local, not in the store */
	index_add_header(w, &h[5]);
	is_int(index_load_from_store(w, s, ring, WS), 0, "a reload with a pending pack");
	ok(holds_all(w, h + 5, 1) && index_pending_count(w) == 1, "keeps the pending pack");

	index_free(w);
	index_free(r);
	for (int i = 0; i < NPACKS; i++)
		pack_header_free(&h[i]);
}

/* ---- the sqlite cache ----------------------------------------------------- */

static void unlink_cache(const char *state)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };

	for (int i = 0; i < 3; i++) {
		char *p = xasprintf("%s/index.db%s", state, suffix[i]);

		unlink(p);
		free(p);
	}
}

static struct index *cache_load(const char *state, struct store *cs, int *rc)
{
	struct idxcache *c;
	struct index *idx = NULL;

	*rc = idxcache_open(state, WS, &c);
	if (*rc)
		return NULL;
	*rc = idxcache_load(c, cs, ring, &idx);
	idxcache_close(c);
	return idx;
}

static void check_cache(struct store *base, const char *tmp)
{
	struct store *cs = counting_open(base);
	struct counting *cn = cs->priv;
	struct pack_header h[5];
	struct index *w, *idx;
	char *state = xasprintf("%s/state", tmp), *db = xasprintf("%s/state/index.db", tmp);
	struct stat sb;
	size_t ndel;
	int rc, n_obj;

	mkdir(state, 0700);
	for (int i = 0; i < 5; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		make_header(KEYS_BLOB_DATA, 300 + i, 40 + i, &h[i]);
	}
	index_new(&w);
	for (int i = 0; i < 3; i++) {
		index_add_header(w, &h[i]);
		index_write_delta(w, base, dk, WS, NULL);
	}
	n_obj = store_count(base, "index/");

	cn->gets = 0;
	idx = cache_load(state, cs, &rc);
	is_int(rc, 0, "cache: first load%s%s", rc ? ": " : "", rc ? err_msg() : "");
	ok(idx && holds_all(idx, h, 3), "cache: the first load holds all 3 packs");
	is_int(cn->gets, n_obj, "cache: and fetched each of the %d index objects once", n_obj);
	ok(stat(db, &sb) == 0 && (sb.st_mode & 0777) == 0600, "cache: %s is mode 0600", db);
	index_free(idx);

	cn->gets = cn->lists = 0;
	idx = cache_load(state, cs, &rc);
	is_int(rc, 0, "cache: second load");
	ok(idx && holds_all(idx, h, 3), "cache: holds the same");
	is_int(cn->gets, 0, "cache: the second load fetches no index object");
	is_int(cn->lists, 1, "cache: one listing");
	index_free(idx);

	/* a new delta */
	index_add_header(w, &h[3]);
	index_write_delta(w, base, dk, WS, NULL);
	cn->gets = 0;
	idx = cache_load(state, cs, &rc);
	ok(rc == 0 && holds_all(idx, h, 4), "cache: a new delta in the store is picked up");
	is_int(cn->gets, 1, "cache: fetching that one object only");
	index_free(idx);

	/* consolidation with prune of pack 0; crash before the deltas go */
	{
		struct index *p = load_fresh(base, &rc);

		index_remove_pack(p, h[0].name);
		is_int(index_write_consolidated(p, base, dk, WS, NULL, NULL), 0,
		       "cache: another process consolidates (pruning pack 0)");
		cn->gets = 0;
		idx = cache_load(state, cs, &rc);
		ok(rc == 0 && holds_none(idx, &h[0]) && holds_all(idx, h + 1, 3),
		   "cache: the consolidated index drops pack 0 from the cache");
		is_int(cn->gets, 1, "cache: fetching only the consolidated index");
		is_int(index_count(idx), index_count(p), "cache: same count as the consolidating index");
		index_free(idx);
		cn->gets = 0;
		idx = cache_load(state, cs, &rc);
		ok(rc == 0 && cn->gets == 0 && holds_none(idx, &h[0]) && holds_all(idx, h + 1, 3),
		   "cache: with the superseded deltas still in the store, the next load fetches nothing");
		index_free(idx);
		index_delete_superseded(p, base, &ndel);
		cn->gets = 0;
		idx = cache_load(state, cs, &rc);
		ok(rc == 0 && cn->gets == 0 && holds_all(idx, h + 1, 3),
		   "cache: once they are deleted, still nothing to fetch");
		index_free(idx);
		index_free(p);
	}

	/* pending packs are not cached */
	{
		struct idxcache *c;

		idx = cache_load(state, cs, &rc);
		index_add_header(idx, &h[4]);
		idxcache_open(state, WS, &c);
		is_int(idxcache_save(c, idx), 0, "cache: saved with a pending pack");
		idxcache_close(c);
		index_free(idx);
		idx = cache_load(state, cs, &rc);
		ok(rc == 0 && holds_none(idx, &h[4]), "cache: the pending pack was not saved");
		index_free(idx);
	}

	/* the file is deleted, damaged, or of another workspace: rebuilt */
	unlink_cache(state);
	n_obj = store_count(base, "index/");
	cn->gets = 0;
	idx = cache_load(state, cs, &rc);
	ok(rc == 0 && holds_all(idx, h + 1, 3) && holds_none(idx, &h[0]),
	   "cache: a deleted cache file is rebuilt from the store");
	is_int(cn->gets, n_obj, "cache: fetching the %d index objects", n_obj);
	index_free(idx);
	cn->gets = 0;
	idx = cache_load(state, cs, &rc);
	ok(rc == 0 && cn->gets == 0 && holds_all(idx, h + 1, 3), "cache: and then used again");
	index_free(idx);

	{
		int fd;

		unlink_cache(state);
		fd = open(db, O_CREAT | O_WRONLY | O_TRUNC, 0600);
		if (fd >= 0) {
			char junk[4096];

			tap_fill_random(junk, sizeof(junk), 99);
			if (write(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk))
				diag("short write");
			close(fd);
		}
		cn->gets = 0;
		idx = cache_load(state, cs, &rc);
		ok(rc == 0 && holds_all(idx, h + 1, 3) && cn->gets == n_obj,
		   "cache: a file of garbage is replaced and rebuilt (rc %d: %s)", rc, rc ? err_msg() : "");
		index_free(idx);
	}
	{
		struct idxcache *c;

		ok(idxcache_open(state, "other-ws", &c) == 0, "cache: opened for another workspace");
		idxcache_close(c);
		cn->gets = 0;
		idx = cache_load(state, cs, &rc);
		ok(rc == 0 && holds_all(idx, h + 1, 3) && cn->gets == n_obj,
		   "cache: which emptied it; this workspace rebuilds");
		index_free(idx);
	}
	index_free(w);
	for (int i = 0; i < 5; i++)
		pack_header_free(&h[i]);
	store_close(cs);
	free(state);
	free(db);
}

/* ---- a million entries --------------------------------------------------- */

static long maxrss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void check_million(struct store *s, const char *tmp)
{
	enum { PACKS = 1000, PER = 1000 };
	struct pack_entry *e = xcalloc(PER, sizeof(*e));
	uint8_t *ids = xmalloc((size_t)PACKS * PER * KEYS_BLOB_ID_LEN);
	uint8_t *miss = xmalloc((size_t)PACKS * PER * KEYS_BLOB_ID_LEN);
	struct index *idx, *back;
	long rss0;
	double t0, t_add, t_hit, t_miss, t_cons, t_load, t_rm, t_save, t_cache;
	size_t found = 0, missed = 0;
	char id[PACK_ID_SIZE], name[PACK_NAME_SIZE], *state;
	int rc;

	/* the ids first (random, as keyed BLAKE2b ids are), so that the figures
	 * are the index's own */
	for (size_t i = 0; i < (size_t)PACKS * PER; i++)
		tap_fill_random(ids + i * KEYS_BLOB_ID_LEN, KEYS_BLOB_ID_LEN, i + 1);
	for (size_t i = 0; i < (size_t)PACKS * PER; i++)
		tap_fill_random(miss + i * KEYS_BLOB_ID_LEN, KEYS_BLOB_ID_LEN, 0x5eed0000000ull + i);
	rss0 = maxrss_kib();
	index_new(&idx);
	t0 = now();
	for (int p = 0; p < PACKS; p++) {
		snprintf(id, sizeof(id), "%08x%024x", (unsigned)p * 2654435761u, p);
		pack_name_make(KEYS_BLOB_DATA, id, name);
		for (int i = 0; i < PER; i++) {
			memcpy(e[i].ref.id, ids + ((size_t)p * PER + i) * KEYS_BLOB_ID_LEN, KEYS_BLOB_ID_LEN);
			e[i].ref.type = KEYS_BLOB_DATA;
			e[i].ref.compression = BLOB_ZSTD;
			e[i].ref.length = 1000 + i % 7;
			e[i].ref.raw_length = 4000;
			memcpy(e[i].ref.key_id, keys_key_id(dk), KEYS_ID_SIZE);
			e[i].offset = i ? e[i - 1].offset + e[i - 1].ref.length : 0;
		}
		if (index_add_pack(idx, name, e, PER))
			tap_bail("index_add_pack: %s", err_msg());
	}
	t_add = now() - t0;
	is_int(index_count(idx), PACKS * PER, "1,000,000 entries in the index");

	t0 = now();
	for (int p = 0; p < PACKS; p++)
		for (int i = 0; i < PER; i++) {
			struct index_entry ent;
			const uint8_t *bid = ids + ((size_t)p * PER + i) * KEYS_BLOB_ID_LEN;

			found += index_lookup(idx, bid, &ent) == 0 && ent.e.ref.raw_length == 4000 &&
				 ent.e.ref.length == 1000u + i % 7;
		}
	t_hit = now() - t0;
	t0 = now();
	for (size_t i = 0; i < (size_t)PACKS * PER; i++)
		missed += !index_has(idx, miss + i * KEYS_BLOB_ID_LEN);
	t_miss = now() - t0;
	is_int(found, PACKS * PER, "every one of them is found");
	is_int(missed, PACKS * PER, "a million ids not in it are not");
	diag("1M entries: insert %.0f ns/entry, lookup %.0f ns (hit), %.0f ns (miss, index_has)",
	     t_add * 1e9 / (PACKS * PER), t_hit * 1e9 / (PACKS * PER), t_miss * 1e9 / (PACKS * PER));
	diag("1M entries: index_memory %.1f MiB (%.0f bytes/entry); maxrss grew %.1f MiB",
	     index_memory(idx) / 1048576.0, (double)index_memory(idx) / (PACKS * PER),
	     (maxrss_kib() - rss0) / 1024.0);
	ok(index_memory(idx) < (size_t)128 << 20, "it takes less than 128 MiB");
	ok(t_add + t_hit < 20, "insert + lookup of 1M take %.2f s (< 20 s, sanitizers included)",
	   t_add + t_hit);

	t0 = now();
	rc = index_write_consolidated(idx, s, dk, WS, NULL, NULL);
	t_cons = now() - t0;
	is_int(rc, 0, "a consolidated index of 1M entries is written");
	t0 = now();
	back = load_fresh(s, &rc);
	t_load = now() - t0;
	ok(rc == 0 && index_count(back) == PACKS * PER, "and loads back whole");
	index_free(back);

	state = xasprintf("%s/state-million", tmp);
	mkdir(state, 0700);
	{
		struct idxcache *c;

		idxcache_open(state, WS, &c);
		t0 = now();
		rc = idxcache_save(c, idx);
		t_save = now() - t0;
		is_int(rc, 0, "the cache saves 1M entries");
		t0 = now();
		rc = idxcache_load(c, s, ring, &back);
		t_cache = now() - t0;
		ok(rc == 0 && index_count(back) == PACKS * PER, "and loads them back");
		index_free(back);
		idxcache_close(c);
	}
	free(state);

	t0 = now();
	snprintf(id, sizeof(id), "%08x%024x", 7u * 2654435761u, 7);
	pack_name_make(KEYS_BLOB_DATA, id, name);
	rc = index_remove_pack(idx, name);
	t_rm = now() - t0;
	ok(rc == 0 && index_count(idx) == PACKS * PER - PER, "removing one pack of 1,000 leaves 999,000");
	diag("1M entries: consolidated write %.2f s, load %.2f s; cache save %.2f s, cache load %.2f s; "
	     "remove one pack %.0f ms", t_cons, t_load, t_save, t_cache, t_rm * 1e3);
	index_free(idx);
	free(e);
	free(ids);
	free(miss);
}

int main(void)
{
	char *dir = tap_mkdtemp("index");
	char *url = xasprintf("file://%s/store", dir);
	char *url2 = xasprintf("file://%s/store2", dir);
	char *url3 = xasprintf("file://%s/store3", dir);
	struct store *s, *s2, *s3;
	struct store_opts mk = { .create = 1 };	/* three new stores */

	if (keys_ring_new(WS, &ring) || keys_ring_current(ring, &dk))
		tap_bail("keyring: %s", err_msg());
	if (store_open(url, &mk, &s) || store_open(url2, &mk, &s2) || store_open(url3, &mk, &s3))
		tap_bail("store: %s", err_msg());
	check_map();
	check_deltas(s);
	check_cache(s2, dir);
	check_million(s3, dir);
	store_close(s);
	store_close(s2);
	store_close(s3);
	keys_ring_free(ring);
	tap_rmtree(dir);
	free(dir);
	free(url);
	free(url2);
	free(url3);
	return tap_done();
}
