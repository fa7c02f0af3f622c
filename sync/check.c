/*
 * check.c - the repository check (see check.h): config, keys, head, lease,
 * index objects, pack headers against the index, snapshots and every tree
 * they reach, and with read_data every blob of every pack.
 *
 * What must stay true: the check never writes to the store (its store
 * layer refuses puts and deletes); every problem goes to the callback with
 * the object's name and the walk goes on; a return code other than 0 means
 * the check could not run, never that it found damage.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "blob.h"
#include "check.h"
#include "err.h"
#include "fetch.h"
#include "idset.h"
#include "record.h"
#include "tree.h"

/* Deeper trees than this are reported, not walked (a path of 4096 bytes
 * has at most 2048 components). */
#define CHECK_MAX_DEPTH 2048

int check_kind_is_damage(enum check_kind kind)
{
	return kind == CHECK_DAMAGED || kind == CHECK_MISSING;
}

const char *check_kind_name(enum check_kind kind)
{
	switch (kind) {
	case CHECK_DAMAGED: return "damaged";
	case CHECK_MISSING: return "missing";
	case CHECK_STALE: return "stale";
	case CHECK_UNREFERENCED: return "unreferenced";
	case CHECK_STRAY: return "stray";
	}
	return "unknown";
}

/* ---- a read-only, counting store layer ------------------------------------ */
/*
 * Wraps the workspace's store while the check runs: counts the bytes read,
 * refuses every write, and can narrow listings of index/ to one object
 * (to load it alone) or leave some out (objects that do not open, so the
 * rest of the index still loads).
 */

struct layer {
	struct store *base;
	uint64_t bytes;			/* read through get */
	const char *only;		/* index/ listings: this object alone */
	char **hide;			/* index/ listings: not these (sorted) */
	size_t nhide;
};

static struct layer *layer_of(struct store *s)
{
	return s->priv;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ly_put(struct store *s, const char *key, const void *data, size_t len,
		  enum store_cond cond, const char *etag, struct store_info *info)
{
	(void)data; (void)len; (void)cond; (void)etag; (void)info;
	return err_set(-EROFS, "%s%s: the check does not write", s->url, key);
}

static int ly_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		  struct buf *out, struct store_info *info)
{
	struct layer *l = layer_of(s);
	size_t before = out->len;
	int rc = l->base->ops->get(l->base, key, off, len, out, info);

	if (out->len > before)
		l->bytes += out->len - before;
	return rc;
}

static int ly_get_max(struct store *s, const char *key, uint64_t max, struct buf *out,
		      struct store_info *info)
{
	struct layer *l = layer_of(s);
	size_t before = out->len;
	int rc = store_get_max_op(l->base, key, max, out, info);

	if (out->len > before)
		l->bytes += out->len - before;
	return rc;
}

static int ly_head(struct store *s, const char *key, struct store_info *info)
{
	struct layer *l = layer_of(s);

	return l->base->ops->head(l->base, key, info);
}

struct ly_list {
	const struct layer *l;
	store_list_fn fn;
	void *arg;
};

static int ly_list_one(const char *key, uint64_t size, void *arg)
{
	struct ly_list *ll = arg;
	const struct layer *l = ll->l;

	if (!strncmp(key, INDEX_PREFIX, strlen(INDEX_PREFIX))) {
		if (l->only && strcmp(key, l->only))
			return 0;
		if (l->nhide && bsearch(&key, l->hide, l->nhide, sizeof(*l->hide), cmp_str))
			return 0;
	}
	return ll->fn(key, size, ll->arg);
}

static int ly_list(struct store *s, const char *prefix, store_list_fn fn, void *arg)
{
	struct layer *l = layer_of(s);
	struct ly_list ll = { l, fn, arg };

	return l->base->ops->list(l->base, prefix, ly_list_one, &ll);
}

static int ly_del(struct store *s, const char *key)
{
	return err_set(-EROFS, "%s%s: the check does not delete", s->url, key);
}

static int ly_del_many(struct store *s, const char *const *keys, size_t n)
{
	(void)keys; (void)n;
	return err_set(-EROFS, "%s: the check does not delete", s->url);
}

static void ly_close(struct store *s)
{
	free(s->url);
	free(s);
}

static const struct store_ops layer_ops = {
	.put = ly_put,
	.get = ly_get,
	.get_max = ly_get_max,
	.head = ly_head,
	.list = ly_list,
	.del = ly_del,
	.del_many = ly_del_many,
	.close = ly_close,
};

/* A layer over base; the struct layer is the caller's and outlives it. */
static struct store *layer_open(struct store *base, struct layer *l)
{
	struct store *s = xcalloc(1, sizeof(*s));

	l->base = base;
	s->ops = &layer_ops;
	s->url = xstrdup(base->url);
	s->priv = l;
	return s;
}

/* ---- loading index objects ------------------------------------------------ */

/* Loads what store s lists under index/ into a new index. */
static int load_index(struct repo *r, struct store *s, struct index **out)
{
	int rc = index_new(out);

	if (!rc)
		rc = index_load_from_store(*out, s, r->ring, r->ws_id);
	if (rc) {
		index_free(*out);
		*out = NULL;
	}
	return rc;
}

int check_load_index_object(struct repo *r, const char *name, struct index **out)
{
	struct layer l = { .only = name };
	struct store *s;
	int rc;

	*out = NULL;
	if (!index_name_valid(name))
		return err_set(-EINVAL, "'%s' is not an index object name (index/<32 hex digits>)", name);
	rc = store_head(r->store, name, NULL);
	if (rc == -ENOENT)
		return err_set(-ENOENT, "no index object %s in workspace %s", name, r->ws_id);
	if (rc)
		return rc;
	s = layer_open(r->store, &l);
	rc = load_index(r, s, out);
	store_close(s);
	return rc;
}

/* ---- the check ------------------------------------------------------------ */

struct object {
	char *name;
	uint64_t size;
};

struct ck {
	struct repo *r;
	const struct check_opts *o;
	struct check_stats *st;
	struct layer *layer;
	struct index *idx;
	struct idset trees, blobs;
	struct idset present;	/* ids with a copy in a stored pack (lazily) */
	/* the workspace's listing, by kind, each sorted */
	struct object *keys, *packs, *index_objs, *snaps;
	size_t nkeys, npacks, nindex, nsnaps;
	int have_config;
};

static void progress(struct ck *c, const char *phase)
{
	c->st->phase = phase;
	c->st->bytes_read = c->layer->bytes;
	if (c->o->progress)
		c->o->progress(c->st, c->o->progress_arg);
}

static void report(struct ck *c, enum check_kind kind, const char *object, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void report(struct ck *c, enum check_kind kind, const char *object, const char *fmt, ...)
{
	struct check_problem p = { kind, object, NULL };
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	msg = xmalloc(n > 0 ? (size_t)n + 1 : 1);
	va_start(ap, fmt);
	vsnprintf(msg, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
	va_end(ap);
	p.message = msg;
	if (check_kind_is_damage(kind))
		c->st->damage++;
	else
		c->st->warnings++;
	if (c->o->problem)
		c->o->problem(&p, c->o->problem_arg);
	free(msg);
}

static void add_object(struct object **v, size_t *n, const char *name, uint64_t size)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[*n].name = xstrdup(name);
	(*v)[*n].size = size;
	(*n)++;
}

static void free_objects(struct object *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

static int cmp_object(const void *a, const void *b)
{
	return strcmp(((const struct object *)a)->name, ((const struct object *)b)->name);
}

/* qsort wants a non-NULL array even for 0 elements */
static void sort_objects(struct object *v, size_t n)
{
	if (n)
		qsort(v, n, sizeof(*v), cmp_object);
}

static const struct object *find_object(const struct object *v, size_t n, const char *name)
{
	struct object key = { (char *)name, 0 };

	return n ? bsearch(&key, v, n, sizeof(*v), cmp_object) : NULL;
}

/* Sorts every name of the workspace into its kind; the rest is stray. */
static int classify(const char *key, uint64_t size, void *arg)
{
	struct ck *c = arg;

	if (!strcmp(key, "config"))
		c->have_config = 1;
	else if (!strcmp(key, "head") || !strcmp(key, "lease") || !strcmp(key, REPO_KEYSET_NAME))
		;	/* read by name (the key set when the workspace was opened) */
	else if (!strncmp(key, "keys/", 5))
		add_object(&c->keys, &c->nkeys, key, size);
	else if (!strncmp(key, "data/", 5) || !strncmp(key, "tree/", 5)) {
		if (pack_name_parse(key, NULL))
			report(c, CHECK_STRAY, key, "%s is not a pack name (data|tree/<xx>/<32 hex>)", key);
		else
			add_object(&c->packs, &c->npacks, key, size);
	} else if (!strncmp(key, INDEX_PREFIX, strlen(INDEX_PREFIX))) {
		if (!index_name_valid(key))
			report(c, CHECK_STRAY, key, "%s is not an index object name (index/<32 hex>)", key);
		else
			add_object(&c->index_objs, &c->nindex, key, size);
	} else if (!strncmp(key, "snapshots/", 10)) {
		if (!record_id_valid(key + 10))
			report(c, CHECK_STRAY, key, "%s is not a snapshot name (snapshots/<32 hex>)", key);
		else
			add_object(&c->snaps, &c->nsnaps, key, size);
	} else {
		report(c, CHECK_STRAY, key, "%s is no object of a cairn workspace", key);
	}
	return 0;
}

static void check_config(struct ck *c)
{
	struct buf b = BUF_INIT;
	json_t *o = NULL;
	json_int_t format = 0;
	const char *ws = "", *tenant = "";
	int rc;

	if (!c->have_config) {
		report(c, CHECK_MISSING, "config", "config is not in the store");
		return;
	}
	rc = store_get_max(c->r->store, "config", REPO_CONFIG_MAX, "config", &b, NULL);
	if (rc)
		report(c, CHECK_DAMAGED, "config", "%s", err_msg());
	else if (!(o = json_loadb((const char *)b.data, b.len, 0, NULL)) ||
		 json_unpack(o, "{s:I, s:s, s:s}", "format", &format, "workspace", &ws,
			     "tenant", &tenant) < 0)
		report(c, CHECK_DAMAGED, "config", "config is not a cairn config object");
	else if (format < REPO_FORMAT_MIN || format > REPO_FORMAT_VERSION ||
		 strcmp(ws, c->r->ws_id) || strcmp(tenant, c->r->tenant))
		report(c, CHECK_DAMAGED, "config",
		       "config says format %lld, workspace %s, tenant %s; expected %d to %d, %s, %s",
		       (long long)format, ws, tenant, REPO_FORMAT_MIN, REPO_FORMAT_VERSION,
		       c->r->ws_id, c->r->tenant);
	json_decref(o);
	buf_free(&b);
}

static void check_keys(struct ck *c)
{
	struct buf obj = BUF_INIT;

	for (size_t i = 0; i < c->nkeys; i++) {
		const char *name = c->keys[i].name;
		char key_id[KEYS_ID_SIZE], kek_id[KEYS_ID_SIZE];
		struct keys_wrap_info info;
		int rc;

		if (keys_wrapped_name_parse(name, key_id, kek_id)) {
			report(c, CHECK_STRAY, name, "%s is not a wrapped key name (keys/<key id>.<kek id>)",
			       name);
			continue;
		}
		buf_reset(&obj);
		rc = store_get_max(c->r->store, name, KEYS_WRAPPED_MAX, "wrapped key", &obj, NULL);
		if (!rc)
			rc = keys_wrap_peek(obj.data, obj.len, &info);
		if (rc) {
			report(c, CHECK_DAMAGED, name, "%s: %s", name, err_msg());
			continue;
		}
		c->st->keys++;
		if (strcmp(info.ws_id, c->r->ws_id) || strcmp(info.key_id, key_id) ||
		    strcmp(info.kek_id, kek_id))
			report(c, CHECK_DAMAGED, name,
			       "%s holds key %s of workspace %s wrapped by %s, not what its name says",
			       name, info.key_id, info.ws_id, info.kek_id);
		else if (c->r->keyset && strcmp(key_id, c->r->keyset->identity) &&
			 !keys_set_has(c->r->keyset, key_id))
			report(c, CHECK_STRAY, name,
			       "%s wraps %s key %s, which the key set does not list: a retired key, or the wrap of an interrupted dek rotate; nothing is opened with it (cairn-keyadm reencrypt --retire removes it)",
			       name, keys_key_kind_name(info.kind), key_id);
	}
	buf_free(&obj);
	progress(c, "keys");
}

static void check_head_and_lease(struct ck *c)
{
	struct repo_head head;
	struct buf plain = BUF_INIT;
	struct record_lease lease;
	int rc = repo_head_read(c->r, &head);

	if (rc) {
		report(c, CHECK_DAMAGED, "head", "%s", err_msg());
	} else if (head.generation) {
		char name[16 + RECORD_ID_SIZE];

		snprintf(name, sizeof(name), "snapshots/%s", head.snapshot_id);
		if (!find_object(c->snaps, c->nsnaps, name))
			report(c, CHECK_MISSING, name,
			       "head (generation %llu) names snapshot %s, which is not in the store",
			       (unsigned long long)head.generation, head.snapshot_id);
	} else if (c->nsnaps) {
		report(c, CHECK_MISSING, "head",
		       "there is no head, but %zu snapshot records: the head was lost", c->nsnaps);
	}
	rc = repo_get_sealed(c->r, KEYS_OBJ_LEASE, "lease", &plain, NULL);
	if (!rc)
		rc = record_lease_decode(plain.data, plain.len, &lease);
	if (rc && rc != -ENOENT)
		report(c, CHECK_DAMAGED, "lease", "lease: %s", err_msg());
	buf_free(&plain);
}

/* Loads the merged index.  When it does not load, each object is loaded on
 * its own to find the ones that fail; those are reported and left out, and
 * the rest is merged.  Returns 0 or the error that stops the check. */
static int check_index(struct ck *c)
{
	int rc = load_index(c->r, c->r->store, &c->idx);

	if (rc) {
		char **hide = NULL;
		size_t nhide = 0;

		for (size_t i = 0; i < c->nindex; i++) {
			struct index *one = NULL;
			const char *name = c->index_objs[i].name;

			c->layer->only = name;
			if (load_index(c->r, c->r->store, &one)) {
				report(c, CHECK_DAMAGED, name, "%s", err_msg());
				hide = xrealloc(hide, (nhide + 1) * sizeof(*hide));
				hide[nhide++] = xstrdup(name);
			}
			index_free(one);
		}
		c->layer->only = NULL;
		if (nhide)
			qsort(hide, nhide, sizeof(*hide), cmp_str);
		c->layer->hide = hide;
		c->layer->nhide = nhide;
		rc = nhide ? load_index(c->r, c->r->store, &c->idx) : rc;
		c->layer->hide = NULL;
		c->layer->nhide = 0;
		for (size_t i = 0; i < nhide; i++)
			free(hide[i]);
		free(hide);
		c->st->index_objects = c->nindex - nhide;
	} else {
		c->st->index_objects = c->nindex;
	}
	progress(c, "index");
	return rc ? err_prefix(rc, "cannot load the index") : 0;
}

/* The live index objects that list pack, for messages ("" when none). */
struct listers {
	const char *pack;
	struct buf names;
};

static int find_listers(const char *obj, enum index_obj_state state,
			const char *const *packs, size_t n_packs, void *arg)
{
	struct listers *l = arg;

	if (state != INDEX_OBJ_LIVE)
		return 0;
	for (size_t i = 0; i < n_packs; i++)
		if (!strcmp(packs[i], l->pack))
			buf_printf(&l->names, "%s%s", l->names.len ? ", " : "", obj);
	return 0;
}

static int collect_present(const struct index_entry *ent, void *arg)
{
	struct ck *c = arg;

	if (find_object(c->packs, c->npacks, ent->pack))
		idset_add(&c->present, ent->e.ref.id);
	return 0;
}

/* 1 when every blob of the (missing) pack has a copy in a stored pack. */
static int copies_elsewhere(struct ck *c, const char *pack)
{
	struct pack_entry *e = NULL;
	size_t n = 0;
	int all = 1;

	if (!c->present.cap)
		index_foreach(c->idx, collect_present, c);
	if (index_pack_entries(c->idx, pack, &e, &n))
		return 0;
	for (size_t i = 0; all && i < n; i++)
		all = idset_has(&c->present, e[i].ref.id);
	free(e);
	return all;
}

static int missing_pack(const char *pack, size_t n_entries, int listed, void *arg)
{
	struct ck *c = arg;
	struct listers l = { pack, BUF_INIT };

	(void)listed;
	if (find_object(c->packs, c->npacks, pack))
		return 0;
	index_foreach_object(c->idx, find_listers, &l);
	if (copies_elsewhere(c, pack))
		report(c, CHECK_STALE, pack, "%s is listed by %s but not in the store; every blob of it is in another pack (prune drops the entry)",
		       pack, l.names.len ? buf_str(&l.names) : "the index");
	else
		report(c, CHECK_MISSING, pack, "%s (%zu blobs) is listed by %s but not in the store",
		       pack, n_entries, l.names.len ? buf_str(&l.names) : "the index");
	buf_free(&l.names);
	return 0;
}

static int same_entry(const struct pack_entry *a, const struct pack_entry *b)
{
	return !memcmp(a->ref.id, b->ref.id, KEYS_BLOB_ID_LEN) && a->ref.type == b->ref.type &&
	       a->ref.compression == b->ref.compression &&
	       a->ref.raw_length == b->ref.raw_length && a->ref.length == b->ref.length &&
	       !strcmp(a->ref.key_id, b->ref.key_id) && a->offset == b->offset;
}

/* Compares a pack's header with what the index holds for it. */
static void compare_header(struct ck *c, const struct pack_header *h)
{
	struct pack_entry *ents = NULL;
	size_t n = 0;

	if (index_pack_entries(c->idx, h->name, &ents, &n)) {
		report(c, CHECK_DAMAGED, h->name, "%s", err_msg());
		return;
	}
	if (n != h->count) {
		report(c, CHECK_DAMAGED, h->name, "%s: its header lists %zu blobs, the index %zu",
		       h->name, h->count, n);
	} else {
		for (size_t i = 0; i < n; i++) {
			if (!same_entry(&ents[i], &h->entries[i])) {
				char hex[BLOB_ID_HEX_SIZE];

				blob_id_hex(h->entries[i].ref.id, hex);
				report(c, CHECK_DAMAGED, h->name,
				       "%s: blob %zu (%.16s) in its header differs from the index",
				       h->name, i, hex);
				break;
			}
		}
	}
	free(ents);
}

/* Fetches a whole pack, reads its header from it and decodes every blob. */
static void read_pack(struct ck *c, const struct object *p)
{
	struct buf bytes = BUF_INIT, plain = BUF_INIT;
	struct pack_header h = { 0 };
	int rc = store_get_max(c->r->store, p->name, PACK_MAX_SIZE, "pack", &bytes, NULL);

	if (!rc && bytes.len != p->size)
		rc = err_set(-EBADMSG, "%s is %zu bytes, the listing said %llu (changed while read?)",
			     p->name, bytes.len, (unsigned long long)p->size);
	if (!rc)
		rc = pack_read_header(c->r->ring, c->r->ws_id, p->name, bytes.data, bytes.len,
				      bytes.len, &h, NULL);
	if (rc) {
		report(c, CHECK_DAMAGED, p->name, "%s", err_msg());
		goto out;
	}
	c->st->packs++;
	compare_header(c, &h);
	for (size_t i = 0; i < h.count; i++) {
		const struct pack_entry *e = &h.entries[i];

		buf_reset(&plain);
		rc = blob_decode(c->r->ring, &e->ref, bytes.data + e->offset, e->ref.length, &plain);
		if (rc) {
			char hex[BLOB_ID_HEX_SIZE];

			blob_id_hex(e->ref.id, hex);
			report(c, CHECK_DAMAGED, p->name, "%s: blob %.16s at offset %llu: %s", p->name,
			       hex, (unsigned long long)e->offset, err_msg());
		}
		c->st->blobs_read++;
	}
out:
	pack_header_free(&h);
	buf_free(&bytes);
	buf_free(&plain);
}

static void check_packs(struct ck *c)
{
	index_foreach_pack(c->idx, missing_pack, c);
	for (size_t i = 0; i < c->npacks; i++) {
		const struct object *p = &c->packs[i];
		struct pack_header h = { 0 };

		if (!index_has_pack(c->idx, p->name)) {
			int rc = pack_load_header(c->r->store, c->r->ring, c->r->ws_id, p->name,
						  p->size, &h);

			if (rc)
				report(c, CHECK_UNREFERENCED, p->name,
				       "%s is in no index (prune removes it); its header does not open: %s",
				       p->name, err_msg());
			else
				report(c, CHECK_UNREFERENCED, p->name,
				       "%s (%zu blobs) is in no index: left by an interrupted snapshot? prune removes it",
				       p->name, h.count);
			pack_header_free(&h);
		} else if (c->o->read_data) {
			read_pack(c, p);
		} else if (pack_load_header(c->r->store, c->r->ring, c->r->ws_id, p->name, p->size,
					    &h)) {
			report(c, CHECK_DAMAGED, p->name, "%s", err_msg());
		} else {
			c->st->packs++;
			compare_header(c, &h);
			pack_header_free(&h);
		}
		progress(c, c->o->read_data ? "data" : "packs");
	}
}

/* Walks tree id (reached as path in snapshot snap) and everything under
 * it that was not seen yet. */
static void walk_tree(struct ck *c, const uint8_t id[KEYS_BLOB_ID_LEN], const char *path,
		      const char *snap, unsigned depth)
{
	char hex[BLOB_ID_HEX_SIZE], obj[32];
	struct tree t;

	if (idset_add(&c->trees, id))
		return;
	blob_id_hex(id, hex);
	snprintf(obj, sizeof(obj), "tree %.16s", hex);
	if (!index_has(c->idx, id)) {
		report(c, CHECK_MISSING, obj, "tree %.16s (%s in snapshot %.8s) is not in the index",
		       hex, *path ? path : "/", snap);
		return;
	}
	if (fetch_tree(c->r, c->idx, id, &t)) {
		report(c, CHECK_DAMAGED, obj, "%s (%s in snapshot %.8s)", err_msg(),
		       *path ? path : "/", snap);
		return;
	}
	c->st->trees++;
	for (size_t i = 0; i < t.count; i++) {
		const struct tree_entry *e = &t.entries[i];
		char *child = xasprintf("%s/%s", path, e->name);

		for (size_t b = 0; e->type == TREE_REG && b < e->nblobs; b++) {
			struct index_entry ent;
			char bhex[BLOB_ID_HEX_SIZE], bobj[32];

			if (idset_add(&c->blobs, e->blobs[b]))
				continue;
			c->st->blobs++;
			if (!index_has(c->idx, e->blobs[b])) {
				blob_id_hex(e->blobs[b], bhex);
				snprintf(bobj, sizeof(bobj), "blob %.16s", bhex);
				report(c, CHECK_MISSING, bobj,
				       "data blob %.16s (part %zu of %s in snapshot %.8s) is not in the index",
				       bhex, b, child, snap);
			} else if (!index_lookup(c->idx, e->blobs[b], &ent) &&
				   ent.e.ref.type != KEYS_BLOB_DATA) {
				blob_id_hex(e->blobs[b], bhex);
				snprintf(bobj, sizeof(bobj), "blob %.16s", bhex);
				report(c, CHECK_DAMAGED, bobj,
				       "blob %.16s (part %zu of %s in snapshot %.8s) is a %s blob in %s",
				       bhex, b, child, snap, keys_blob_type_name(ent.e.ref.type),
				       ent.pack);
			}
		}
		if (e->type == TREE_DIR) {
			if (depth >= CHECK_MAX_DEPTH)
				report(c, CHECK_DAMAGED, obj, "tree %.16s: %s is nested deeper than %u",
				       hex, child, CHECK_MAX_DEPTH);
			else
				walk_tree(c, e->subtree, child, snap, depth + 1);
		}
		free(child);
	}
	tree_free(&t);
	if (c->st->trees % 256 == 0)
		progress(c, "snapshots");
}

/* The top tree's entry of each root agrees with the record. */
static void check_top(struct ck *c, const struct record_snapshot *rec, const char *name)
{
	struct tree holder;
	const struct tree_entry *e;

	for (size_t k = 0; k < rec->nroots; k++) {
		if (!strcmp(rec->roots[k].name, RECORD_ROOT_TOP))
			continue;
		if (fetch_root_entry(c->r, c->idx, rec, rec->roots[k].name, &holder, &e)) {
			report(c, CHECK_DAMAGED, name, "%s", err_msg());
			return;
		}
		tree_free(&holder);
	}
}

static void check_snapshots(struct ck *c)
{
	for (size_t i = 0; i < c->nsnaps; i++) {
		const char *name = c->snaps[i].name, *id = name + 10;
		struct record_snapshot rec;

		if (fetch_snapshot(c->r, id, &rec)) {
			report(c, CHECK_DAMAGED, name, "%s", err_msg());
			record_snapshot_free(&rec);
			continue;
		}
		c->st->snapshots++;
		/* the top tree last: the roots it holds are walked already */
		for (int top = 0; top < 2; top++) {
			for (size_t k = 0; k < rec.nroots; k++) {
				const char *rn = rec.roots[k].name;
				char *root = xasprintf("%s:", rn);

				if ((strcmp(rn, RECORD_ROOT_TOP) == 0) == top)
					walk_tree(c, rec.roots[k].tree,
						  strcmp(rn, RECORD_ROOT_WORKSPACE) ? root : "", id, 0);
				free(root);
			}
		}
		check_top(c, &rec, name);
		record_snapshot_free(&rec);
		progress(c, "snapshots");
	}
}

int check_repo(struct repo *r, const struct check_opts *o, struct check_stats *st)
{
	struct layer l = { 0 };
	struct store *orig = r->store;
	struct ck c = { .r = r, .o = o, .st = st, .layer = &l };
	int rc;

	memset(st, 0, sizeof(*st));
	r->store = layer_open(orig, &l);
	rc = store_list(r->store, "", classify, &c);
	if (rc) {
		err_prefix(rc, "cannot list workspace %s", r->ws_id);
		goto out;
	}
	sort_objects(c.keys, c.nkeys);
	sort_objects(c.packs, c.npacks);
	sort_objects(c.index_objs, c.nindex);
	sort_objects(c.snaps, c.nsnaps);
	st->packs_total = c.npacks;

	check_config(&c);
	check_keys(&c);
	check_head_and_lease(&c);
	rc = check_index(&c);
	if (rc)
		goto out;
	check_packs(&c);
	check_snapshots(&c);
	progress(&c, "done");
out:
	st->bytes_read = l.bytes;
	store_close(r->store);
	r->store = orig;
	index_free(c.idx);
	idset_free(&c.trees);
	idset_free(&c.blobs);
	idset_free(&c.present);
	free_objects(c.keys, c.nkeys);
	free_objects(c.packs, c.npacks);
	free_objects(c.index_objs, c.nindex);
	free_objects(c.snaps, c.nsnaps);
	return rc;
}
