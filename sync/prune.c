/*
 * prune.c - forget rules and prune (see prune.h).
 *
 * Invariant: a pack is deleted only after an index that does not list it
 * has been written and the index objects that did list it have been
 * superseded, so at every instant every live snapshot's blobs are reachable
 * through the live index; what a kill leaves behind is only unreferenced
 * packs and superseded index objects, which the next prune removes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fetch.h"
#include "idset.h"
#include "index.h"
#include "log.h"
#include "pack.h"
#include "prune.h"
#include "tree.h"

#define REPACK_LIVE_SHARE 2	/* repack below 1/2 live bytes */

/* ---- forget ------------------------------------------------------------- */

static void bucket_keep(const struct record_snapshot *snaps, size_t n, long count,
			const char *fmt, int *keep)
{
	char last[32] = "";

	/* newest first: the newest snapshot of each period is kept */
	for (size_t i = n; count > 0 && i-- > 0;) {
		time_t t = (time_t)(snaps[i].time_ns / 1000000000ull);
		struct tm tm;
		char key[32];

		strftime(key, sizeof(key), fmt, localtime_r(&t, &tm));
		if (!strcmp(key, last))
			continue;
		snprintf(last, sizeof(last), "%s", key);
		keep[i] = 1;
		count--;
	}
}

void prune_select(const struct record_snapshot *snaps, char (*ids)[RECORD_ID_SIZE], size_t n,
		  const struct keep_rules *rules, const char *head_id, int *keep)
{
	for (size_t i = 0; i < n; i++)
		keep[i] = 0;
	for (size_t i = n, k = 0; rules->last > 0 && i-- > 0 && (long)k < rules->last; k++)
		keep[i] = 1;
	bucket_keep(snaps, n, rules->hourly, "%Y-%m-%d %H", keep);
	bucket_keep(snaps, n, rules->daily, "%Y-%m-%d", keep);
	bucket_keep(snaps, n, rules->weekly, "%G-%V", keep);
	if (n)
		keep[n - 1] = 1;
	for (size_t i = 0; head_id && i < n; i++)
		if (!strcmp(ids[i], head_id))
			keep[i] = 1;
}

/* ---- mark --------------------------------------------------------------- */

struct mark {
	struct repo *r;
	struct index *idx;
	struct idset trees, data;
	const struct prune_opts *o;
};

static void prune_progress(const struct prune_opts *o, const char *phase, uint64_t count)
{
	if (o && o->progress)
		o->progress(phase, count, o->progress_arg);
}

static int mark_tree(struct mark *m, const uint8_t id[KEYS_BLOB_ID_LEN])
{
	struct tree t;
	int rc;

	if (idset_add(&m->trees, id))
		return 0;	/* seen through another snapshot */
	if (m->trees.n % 64 == 0)
		prune_progress(m->o, "marking", m->trees.n);
	rc = fetch_tree(m->r, m->idx, id, &t);
	for (size_t i = 0; !rc && i < t.count; i++) {
		const struct tree_entry *e = &t.entries[i];

		if (e->type == TREE_DIR)
			rc = mark_tree(m, e->subtree);
		for (size_t b = 0; b < e->nblobs; b++)
			idset_add(&m->data, e->blobs[b]);
	}
	tree_free(&t);
	return rc;
}

static int collect_snapshot_id(const char *key, uint64_t size, void *arg)
{
	struct buf *ids = arg;
	const char *id = key + strlen("snapshots/");

	(void)size;
	if (record_id_valid(id))
		buf_add(ids, id, RECORD_ID_SIZE);
	return 0;
}

/* Marks every blob reachable from any snapshot in the store. */
static int mark_all(struct mark *m, uint64_t *nsnaps)
{
	struct buf ids = BUF_INIT;
	int rc = store_list(m->r->store, "snapshots/", collect_snapshot_id, &ids);

	*nsnaps = ids.len / RECORD_ID_SIZE;
	for (size_t off = 0; !rc && off < ids.len; off += RECORD_ID_SIZE) {
		struct record_snapshot rec;

		rc = fetch_snapshot(m->r, (const char *)ids.data + off, &rec);
		for (size_t i = 0; !rc && i < rec.nroots; i++)
			rc = mark_tree(m, rec.roots[i].tree);
		record_snapshot_free(&rec);
	}
	buf_free(&ids);
	return rc;
}

/* ---- plan --------------------------------------------------------------- */

struct pack_use {
	char name[PACK_NAME_SIZE];
	uint64_t size;		/* bytes in the store (0: not listed) */
	int indexed;
	uint64_t live_bytes, dead_bytes;
	size_t live, dead;
};

struct plan {
	struct mark *m;
	struct pack_use *packs;
	size_t n, cap;
	size_t last;		/* the pack found last: the index walks pack by pack */
};

static struct pack_use *plan_find(struct plan *p, const char *name)
{
	if (p->last < p->n && !strcmp(p->packs[p->last].name, name))
		return &p->packs[p->last];
	for (size_t i = p->n; i-- > 0;) {
		if (!strcmp(p->packs[i].name, name)) {
			p->last = i;
			return &p->packs[i];
		}
	}
	return NULL;
}

static struct pack_use *plan_pack(struct plan *p, const char *name)
{
	struct pack_use *u = plan_find(p, name);

	if (u)
		return u;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 256;
		p->packs = xrealloc(p->packs, p->cap * sizeof(*p->packs));
	}
	memset(&p->packs[p->n], 0, sizeof(p->packs[p->n]));
	snprintf(p->packs[p->n].name, PACK_NAME_SIZE, "%s", name);
	p->last = p->n;
	return &p->packs[p->n++];
}

static int plan_listed(const char *key, uint64_t size, void *arg)
{
	struct plan *p = arg;

	if (pack_name_parse(key, NULL) == 0)
		plan_pack(p, key)->size = size;
	else
		err_clear();
	return 0;
}

static int plan_entry(const struct index_entry *ent, void *arg)
{
	struct plan *p = arg;
	struct pack_use *u = plan_pack(p, ent->pack);
	const struct idset *set = ent->e.ref.type == KEYS_BLOB_TREE ? &p->m->trees : &p->m->data;

	u->indexed = 1;
	if (idset_has(set, ent->e.ref.id)) {
		u->live++;
		u->live_bytes += ent->e.ref.length;
	} else {
		u->dead++;
		u->dead_bytes += ent->e.ref.length;
	}
	return 0;
}

/* Ids that have a copy in a pack the store holds. */
struct present {
	struct plan *p;
	struct idset ids;
};

static int collect_present(const struct index_entry *ent, void *arg)
{
	struct present *pr = arg;
	struct pack_use *u = plan_find(pr->p, ent->pack);

	if (u && u->size > 0)
		idset_add(&pr->ids, ent->e.ref.id);
	return 0;
}

/* A pack the index lists but the store lacks is stale (a killed writer's
 * index that landed after a prune deleted the pack) when every live blob
 * in it has a copy elsewhere: 1 then, else 0 (real damage). */
static int pack_stale(struct plan *p, struct present *pr, const struct pack_use *u)
{
	struct pack_entry *e = NULL;
	size_t n = 0;
	int stale = 1;

	if (!pr->ids.cap)
		index_foreach(p->m->idx, collect_present, pr);
	if (index_pack_entries(p->m->idx, u->name, &e, &n))
		return 0;
	for (size_t i = 0; stale && i < n; i++) {
		const struct idset *live = e[i].ref.type == KEYS_BLOB_TREE ? &p->m->trees : &p->m->data;

		if (idset_has(live, e[i].ref.id) && !idset_has(&pr->ids, e[i].ref.id))
			stale = 0;
	}
	free(e);
	return stale;
}

/* ---- repack ------------------------------------------------------------- */

/* Copies the live blobs of the packs to repack into new packs (still
 * sealed: nothing is decrypted) and adds those to the index. */
static int repack(struct mark *m, struct plan *p, const int *rewrite, struct prune_stats *st)
{
	struct pack_writer *w[2] = { NULL, NULL };
	struct idset copied = IDSET_INIT;
	const struct keys_key *dk;
	int rc = keys_ring_current(m->r->ring, &dk);

	if (!rc)
		rc = pack_writer_new(KEYS_BLOB_DATA, &w[0]);
	if (!rc)
		rc = pack_writer_new(KEYS_BLOB_TREE, &w[1]);
	for (size_t i = 0; !rc && i < p->n; i++) {
		struct pack_header h = { 0 };
		struct buf bytes = BUF_INIT;

		if (!rewrite[i])
			continue;
		rc = store_get_max(m->r->store, p->packs[i].name, PACK_MAX_SIZE, "pack", &bytes, NULL);
		if (!rc)
			rc = pack_read_header(m->r->ring, m->r->ws_id, p->packs[i].name, bytes.data,
					      bytes.len, bytes.len, &h, NULL);
		for (size_t b = 0; !rc && b < h.count; b++) {
			const struct pack_entry *e = &h.entries[b];
			int t = e->ref.type == KEYS_BLOB_TREE;
			const struct idset *set = t ? &m->trees : &m->data;

			if (!idset_has(set, e->ref.id) || idset_add(&copied, e->ref.id))
				continue;
			rc = pack_writer_add(w[t], &e->ref, bytes.data + e->offset, e->ref.length);
			st->bytes_repacked += e->ref.length;
			if (!rc && pack_writer_full(w[t])) {
				struct buf out = BUF_INIT;
				struct pack_header nh = { 0 };
				char name[PACK_NAME_SIZE];

				rc = pack_writer_finish(w[t], dk, m->r->ws_id, &out, name, &nh);
				if (!rc)
					rc = store_put(m->r->store, name, out.data, out.len,
						       STORE_IF_NONE_MATCH, NULL, NULL);
				if (!rc)
					rc = index_add_header(m->idx, &nh);
				pack_header_free(&nh);
				buf_free(&out);
			}
		}
		pack_header_free(&h);
		buf_free(&bytes);
		prune_progress(m->o, "repacking", i + 1);
	}
	for (int t = 0; !rc && t < 2; t++) {
		struct buf out = BUF_INIT;
		struct pack_header nh = { 0 };
		char name[PACK_NAME_SIZE];

		if (!pack_writer_count(w[t]))
			continue;
		rc = pack_writer_finish(w[t], dk, m->r->ws_id, &out, name, &nh);
		if (!rc)
			rc = store_put(m->r->store, name, out.data, out.len, STORE_IF_NONE_MATCH, NULL, NULL);
		if (!rc)
			rc = index_add_header(m->idx, &nh);
		pack_header_free(&nh);
		buf_free(&out);
	}
	pack_writer_free(w[0]);
	pack_writer_free(w[1]);
	idset_free(&copied);
	return rc;
}

int prune_repo(struct repo *r, const struct prune_opts *o, struct prune_stats *st)
{
	struct mark m = { .r = r, .trees = IDSET_INIT, .data = IDSET_INIT, .o = o };
	int dry_run = o && o->dry_run;
	struct plan p = { .m = &m };
	struct present present = { &p, IDSET_INIT };
	const char **doomed = NULL, **unindex = NULL;
	size_t ndoomed = 0, nunindex = 0;
	int *rewrite = NULL;
	uint64_t nsnaps = 0;
	const struct keys_key *dk;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = fetch_index(r, &m.idx);
	if (!rc)
		rc = mark_all(&m, &nsnaps);
	if (!rc)
		rc = store_list(r->store, "data/", plan_listed, &p);
	if (!rc)
		rc = store_list(r->store, "tree/", plan_listed, &p);
	if (!rc)
		rc = index_foreach(m.idx, plan_entry, &p);
	if (rc)
		goto out;
	rewrite = xcalloc(p.n ? p.n : 1, sizeof(*rewrite));
	doomed = xcalloc(p.n ? p.n : 1, sizeof(*doomed));
	unindex = xcalloc(p.n ? p.n : 1, sizeof(*unindex));
	for (size_t i = 0; i < p.n; i++) {
		struct pack_use *u = &p.packs[i];

		st->packs += u->size > 0;
		st->bytes_before += u->size;
		st->blobs_live += u->live;
		st->blobs_dead += u->dead;
		if (u->indexed && u->size == 0) {
			if (!pack_stale(&p, &present, u)) {
				rc = err_set(-EBADMSG, "pack %s is in the index but not in the store, and blobs a snapshot needs have no other copy: run 'cairn check'",
					     u->name);
				goto out;
			}
			st->packs_stale++;
			unindex[nunindex++] = u->name;	/* drop it from the index only */
			continue;
		}
		if (!u->indexed) {
			st->packs_unreferenced++;
			st->bytes_freed += u->size;
			doomed[ndoomed++] = u->name;
		} else if (u->live == 0) {
			st->packs_deleted++;
			st->bytes_freed += u->size;
			doomed[ndoomed++] = u->name;
			unindex[nunindex++] = u->name;
		} else if (u->dead && u->live_bytes * REPACK_LIVE_SHARE < u->live_bytes + u->dead_bytes) {
			rewrite[i] = 1;
			st->bytes_freed += u->dead_bytes;
			doomed[ndoomed++] = u->name;
			unindex[nunindex++] = u->name;
		}
	}
	if (dry_run || (!ndoomed && !nunindex && !st->blobs_dead))
		goto out;
	/* 1. the live blobs of sparse packs into new packs */
	rc = repack(&m, &p, rewrite, st);
	for (size_t i = 0; i < p.n; i++)
		st->packs_repacked += (uint64_t)rewrite[i];
	/* 2. one index without the doomed packs, superseding every other */
	if (!rc && nunindex)
		rc = index_remove_packs(m.idx, unindex, nunindex);
	if (!rc)
		rc = keys_ring_current(r->ring, &dk);
	if (!rc)
		rc = repo_lease_check(r);
	prune_progress(o, "writing the index", 0);
	if (!rc)
		rc = index_write_consolidated(m.idx, r->store, dk, r->ws_id, NULL, NULL);
	/* 3. the superseded index objects, 4. the packs nobody lists now */
	if (!rc)
		rc = repo_lease_confirm(r);
	if (!rc)
		rc = index_delete_superseded(m.idx, r->store, NULL);
	if (!rc)
		rc = repo_lease_confirm(r);
	prune_progress(o, "deleting", ndoomed);
	if (!rc && ndoomed)
		rc = store_del_many(r->store, doomed, ndoomed);
	if (!rc)
		fetch_index_save(r, m.idx);
out:
	if (rc)
		err_prefix(rc, "prune");
	free(rewrite);
	free(doomed);
	free(unindex);
	free(p.packs);
	idset_free(&present.ids);
	idset_free(&m.trees);
	idset_free(&m.data);
	index_free(m.idx);
	return rc;
}
