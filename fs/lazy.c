/*
 * lazy.c - file data that is not local yet: fetched on first read, chunk by
 * chunk (a range GET of the pack that holds each), by the prefetcher in the
 * background, and given back (eviction) when the cache is over its limit.
 *
 * Must stay true:
 *   - a chunk is marked local only after its bytes were written into the
 *     cache file, and a file leaves FS_ST_PARTIAL only when every chunk is;
 *   - one fetch per chunk at a time: a second reader waits on fetch_cond;
 *   - only clean data (FS_ST_CLEAN: its blobs are in the store) is evicted,
 *     and never while a request or a snapshot holds the file;
 *   - nothing here writes to the store.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "blob.h"
#include "buf.h"
#include "index.h"
#include "pack.h"
#include "store.h"
#include "err.h"
#include "fetch.h"
#include "fs.h"
#include "fsutil.h"
#include "log.h"

#define DISK_RESERVE (64ull << 20)	/* free space the evictor keeps on the disk */

static int64_t now_sec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec;
}

/* The chunks [*lo, *hi) that cover bytes [off, end). */
static void chunk_range(const struct fs_content *c, uint64_t off, uint64_t end, size_t *lo, size_t *hi)
{
	size_t a = 0, b = c->n;

	while (a < b) {			/* first chunk that ends after off */
		size_t m = a + (b - a) / 2;

		if (c->off[m + 1] <= off)
			a = m + 1;
		else
			b = m;
	}
	*lo = a;
	for (b = a; b < c->n && c->off[b] < end; b++)
		;
	*hi = b;
}

/* The rows current for a query (caller holds lock): a commit, or on a
 * full disk where it cannot land, the open transaction as it is (without
 * the dirty inodes' rows: figures a little behind).  0 or a negative code. */
static int commit_for_query(struct fs *fs)
{
	int rc = fs_meta_commit(fs, 0);

	if (rc == -ENOSPC) {
		err_clear();
		rc = 0;
	}
	return rc;
}

/* Fetches chunk i of c into fd.  Returns 0 or a negative code (error set). */
static int fetch_chunk(struct fs *fs, const struct fs_content *c, size_t i, int fd, struct buf *plain)
{
	uint64_t want = c->off[i + 1] - c->off[i];
	int rc;

	buf_reset(plain);
	pthread_rwlock_rdlock(&fs->idx_lock);
	rc = fetch_blob(fs->repo, fs->idx, KEYS_BLOB_DATA, c->ids[i], plain);
	pthread_rwlock_unlock(&fs->idx_lock);
	if (!rc && plain->len != want) {
		char hex[BLOB_ID_HEX_SIZE];

		blob_id_hex(c->ids[i], hex);
		rc = err_set(-EBADMSG, "data blob %.16s holds %zu bytes, the file's chunk list says %llu",
			     hex, plain->len, (unsigned long long)want);
	}
	/* zeros stay a hole: the cache file is as sparse as the file was */
	if (!rc)
		rc = fsu_pwrite_sparse(fd, plain->data, plain->len, (off_t)c->off[i]);
	return rc;
}

/* Fetches the chunks mine[0..n) of in, which the caller claimed (present
 * = 1), and marks them.  Called and returns with fs->lock held; drops it
 * while fetching.  Returns 0 or -EIO (logged, with the object). */
static int fetch_claimed(struct fs *fs, struct fs_inode *in, struct fs_content *c,
			 const size_t *mine, size_t n, int background)
{
	struct buf plain = BUF_INIT;
	uint64_t got = 0;
	size_t done = 0;
	int fd, rc = 0;

	fd = fs_fd_acquire(fs, in, 1);	/* which also keeps it from eviction */
	if (fd < 0)
		rc = err_set(fd, "cannot open the cache file of inode %llu in %s/data: %s",
			     (unsigned long long)in->ino, fs->cache_dir, strerror(-fd));
	else	/* room, evicting others; a read goes on past the limit when
		 * nothing is left to evict (the limit binds changes, not reads) */
		fs_cache_reserve(fs, c->off[mine[n - 1] + 1] - c->off[mine[0]]);
	pthread_mutex_unlock(&fs->lock);

	if (!rc) {
		struct stat st;

		/* sized like the file, so that reads of it see its end */
		if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < in->size &&
		    ftruncate(fd, (off_t)in->size))
			rc = err_set(-errno, "cannot size the cache file of inode %llu: %s",
				     (unsigned long long)in->ino, strerror(errno));
	}
	if (!background)
		__atomic_add_fetch(&fs->fg_fetches, 1, __ATOMIC_RELAXED);
	while (!rc && done < n) {
		while (background && __atomic_load_n(&fs->fg_fetches, __ATOMIC_RELAXED) &&
		       !__atomic_load_n(&fs->stopping, __ATOMIC_RELAXED))
			usleep(2000);	/* reads first */
		rc = fetch_chunk(fs, c, mine[done], fd, &plain);
		if (!rc) {
			got += plain.len;
			done++;		/* chunks mine[0..done) are local */
		}
	}
	if (!background)
		__atomic_sub_fetch(&fs->fg_fetches, 1, __ATOMIC_RELAXED);
	if (rc == -ENOSPC) {
		pthread_mutex_lock(&fs->lock);
		fs_disk_full(fs, "a fetch into a cache file");
		pthread_mutex_unlock(&fs->lock);
	}
	if (rc) {
		__atomic_add_fetch(&fs->fetch_errors, 1, __ATOMIC_RELAXED);
		log_error("cannot fetch data of inode %llu (bytes %llu..%llu): %s",
			  (unsigned long long)in->ino, (unsigned long long)c->off[mine[0]],
			  (unsigned long long)c->off[mine[n - 1] + 1], err_msg());
		rc = -EIO;
	}
	__atomic_add_fetch(&fs->fetched_bytes, got, __ATOMIC_RELAXED);
	buf_free(&plain);

	pthread_mutex_lock(&fs->lock);
	for (size_t k = 0; k < n; k++) {
		c->present[mine[k]] = k < done ? 2 : 0;
		c->missing -= k < done;
	}
	fs->cache_used += got;
	if (done) {
		in->used = now_sec();
		if (!c->missing) {
			in->state &= ~(uint32_t)FS_ST_PARTIAL;
			in->blocks_stale = 1;
		}
		if (fs_content_save_present(fs, in))
			log_error("%s", err_msg());
		if (!c->missing) {
			fs_content_free(c);
			in->content = NULL;
		}
		fs_inode_dirty(fs, in);
	}
	if (fd >= 0)
		fs_fd_release(fs, in);
	pthread_cond_broadcast(&fs->fetch_cond);
	return rc;
}

int fs_lazy_ensure(struct fs *fs, struct fs_inode *in, uint64_t off, uint64_t len, int background)
{
	size_t *mine = NULL;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	/* until every chunk of the range is local: fetch what nobody is
	 * fetching, wait for the rest (another request's fetch may also fail,
	 * which leaves its chunks absent for this one to try) */
	while (!rc && (in->state & FS_ST_PARTIAL)) {
		struct fs_content *c;
		size_t lo, hi, nmine = 0;
		uint64_t end;
		int waiting = 0;

		rc = fs_content_load(fs, in);
		if (rc)
			break;
		c = in->content;
		end = in->size;
		if (len != UINT64_MAX && len <= UINT64_MAX - off && off + len < end)
			end = off + len;
		if (off >= end)
			break;
		chunk_range(c, off, end, &lo, &hi);
		mine = xrealloc(mine, (hi - lo + 1) * sizeof(*mine));
		for (size_t i = lo; i < hi; i++) {
			if (c->present[i] == 1) {
				waiting = 1;
			} else if (c->present[i] == 0) {
				c->present[i] = 1;
				mine[nmine++] = i;
			}
		}
		if (nmine)
			rc = fetch_claimed(fs, in, c, mine, nmine, background);
		else if (waiting)
			pthread_cond_wait(&fs->fetch_cond, &fs->lock);
		else
			break;	/* all local */
	}
	pthread_mutex_unlock(&fs->lock);
	free(mine);
	return rc;
}

/* ---- figures ---- */

int fs_usage_get(struct fs *fs, struct fs_usage *u)
{
	sqlite3_stmt *s;
	int rc;

	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&fs->lock);
	/* the rows first: dirty inodes are only in memory until the commit */
	rc = commit_for_query(fs);
	if (!rc && sqlite3_prepare_v2(fs->db,
			"SELECT count(*), total(size), total((state & 2) = 0), total(CASE WHEN state & 2"
			" THEN 0 ELSE size END), total((state & 1) = 0), total(CASE WHEN state & 1"
			" THEN 0 ELSE size END) FROM inode WHERE (mode & 61440) = 32768 AND nlink > 0",
			-1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW) {
			u->files = (uint64_t)sqlite3_column_int64(s, 0);
			u->bytes = (uint64_t)sqlite3_column_double(s, 1);
			u->local_files = (uint64_t)sqlite3_column_double(s, 2);
			u->local_bytes = (uint64_t)sqlite3_column_double(s, 3);
			u->dirty_files = (uint64_t)sqlite3_column_double(s, 4);
			u->dirty_bytes = (uint64_t)sqlite3_column_double(s, 5);
		}
		sqlite3_finalize(s);
	} else if (!rc) {
		rc = err_set(-EIO, "meta.db in %s: %s", fs->cache_dir, sqlite3_errmsg(fs->db));
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

/* Bytes of local data: whole files, and the local chunks of partial ones
 * counted as nothing (an estimate that errs low).  Caller holds lock. */
static uint64_t local_bytes(struct fs *fs)
{
	sqlite3_stmt *s;
	uint64_t n = 0;

	if (commit_for_query(fs))
		return fs->cache_used;
	if (sqlite3_prepare_v2(fs->db, "SELECT total(size) FROM inode WHERE (mode & 61440) = 32768"
			       " AND (state & 2) = 0", -1, &s, NULL) != SQLITE_OK)
		return fs->cache_used;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = (uint64_t)sqlite3_column_double(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* Gives the data of one clean file back to the store.  Caller holds lock. */
static int evict(struct fs *fs, struct fs_inode *in)
{
	char name[40];

	if (in->fd_refs || in->snap_armed || in->writes || !(in->state & FS_ST_CLEAN))
		return 0;
	fs_fd_forget(fs, in);
	fs_data_name(in->ino, name);
	if (unlinkat(fs->data_fd, name, 0) && errno != ENOENT)
		return 0;
	in->state |= FS_ST_PARTIAL;
	fs_content_free(in->content);
	in->content = NULL;
	in->blocks_stale = 1;
	if (fs_content_save_present(fs, in))
		log_error("%s", err_msg());
	fs_inode_dirty(fs, in);
	return 1;
}

/* Evicts clean files, least recently read first, until need bytes are
 * free.  Returns the bytes freed.  Caller holds lock. */
static uint64_t evict_lru(struct fs *fs, uint64_t need)
{
	uint64_t freed = 0;
	int64_t after = -1;
	uint64_t after_ino = 0;

	while (freed < need) {
		sqlite3_stmt *s;
		uint64_t inos[64], sizes[64];
		int64_t used[64];
		size_t n = 0;

		if (commit_for_query(fs) ||
		    sqlite3_prepare_v2(fs->db, "SELECT ino, size, used FROM inode WHERE (mode & 61440) = 32768"
				       " AND (state & 3) = 1 AND size > 0 AND (used > ?1 OR (used = ?1 AND ino > ?2))"
				       " ORDER BY used, ino LIMIT 64", -1, &s, NULL) != SQLITE_OK)
			break;
		sqlite3_bind_int64(s, 1, after);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)after_ino);
		while (n < 64 && sqlite3_step(s) == SQLITE_ROW) {
			inos[n] = (uint64_t)sqlite3_column_int64(s, 0);
			sizes[n] = (uint64_t)sqlite3_column_int64(s, 1);
			used[n] = sqlite3_column_int64(s, 2);
			n++;
		}
		sqlite3_finalize(s);
		if (!n)
			break;
		for (size_t i = 0; i < n && freed < need; i++) {
			int rc;
			struct fs_inode *in = fs_inode_get(fs, inos[i], &rc);

			after = used[i];
			after_ino = inos[i];
			if (in && evict(fs, in)) {
				freed += sizes[i];
				fs_inode_maybe_drop(fs, in);
			}
		}
	}
	if (freed) {
		fs->cache_used = local_bytes(fs);
		log_info("evicted %llu bytes of clean data from the cache", (unsigned long long)freed);
	}
	return freed;
}

static uint64_t disk_free(struct fs *fs)
{
	struct statvfs v;

	if (fstatvfs(fs->data_fd, &v))
		return UINT64_MAX;
	return (uint64_t)v.f_bavail * v.f_frsize;
}

int fs_cache_reserve(struct fs *fs, uint64_t want)
{
	if (fs->cache_limit && fs->cache_used + want > fs->cache_limit) {
		fs->cache_used = local_bytes(fs);
		if (fs->cache_used + want > fs->cache_limit) {
			uint64_t over = fs->cache_used + want - fs->cache_limit;

			/* down to 90% of the limit, so that eviction runs in batches */
			evict_lru(fs, over + fs->cache_limit / 10);
			if (fs->cache_used + want > fs->cache_limit && want) {
				log_info("the cache is full of changes not in a snapshot yet (%llu bytes, limit"
					 " %llu): a write fails with ENOSPC", (unsigned long long)fs->cache_used,
					 (unsigned long long)fs->cache_limit);
				return -ENOSPC;
			}
		}
	}
	return 0;
}

/* When the disk is nearly full: clean data goes first. */
static void check_disk(struct fs *fs)
{
	uint64_t avail = disk_free(fs);

	if (avail < DISK_RESERVE)
		evict_lru(fs, DISK_RESERVE - avail + DISK_RESERVE);
}

/* ---- the prefetcher ----
 *
 * It works pack by pack, not file by file: a plan lists the missing chunks
 * of up to PLAN_FILES partial files (smallest files first) with the pack
 * and offset of each; the packs are then fetched in the order of the
 * smallest file each serves, each in coalesced range GETs, and every chunk
 * goes to every file that needs it.  A node_modules of thousands of small
 * files costs about one GET per pack.  Chunks are claimed (present = 1)
 * only while their pack is being fetched, so a read never waits behind
 * the plan, and the prefetcher pauses while any read waits on the store.
 */

#define PLAN_FILES 4096
#define PLAN_BYTES (256ull << 20)
#define COALESCE_GAP (1u << 20)		/* one GET across gaps up to this */

struct pf_need {
	struct fs_inode *in;
	struct fs_content *c;		/* in->content when planned */
	size_t chunk;
	uint64_t prio;			/* the size of the file: small first */
	char pack[PACK_NAME_SIZE];
	struct pack_entry e;
	int state;			/* 0 planned, 1 claimed, 2 fetched */
};

static int cmp_pack(const void *a, const void *b)
{
	const struct pf_need *x = a, *y = b;
	int c = strcmp(x->pack, y->pack);

	if (c)
		return c;
	return x->e.offset < y->e.offset ? -1 : x->e.offset > y->e.offset;
}

struct pf_pack {
	size_t first, end;		/* needs[first..end) */
	uint64_t prio;
};

static int cmp_prio(const void *a, const void *b)
{
	const struct pf_pack *x = a, *y = b;

	return x->prio < y->prio ? -1 : x->prio > y->prio;
}

/* Writes one fetched chunk into the file's cache file. */
static int write_chunk(struct fs *fs, const struct pf_need *nd, const struct buf *plain)
{
	char name[40];
	struct stat st;
	int fd, rc = 0;

	fs_data_name(nd->in->ino, name);
	fd = openat(fs->data_fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < nd->in->size &&
	    ftruncate(fd, (off_t)nd->in->size))
		rc = -errno;
	if (!rc)	/* zeros stay a hole */
		rc = fsu_pwrite_sparse(fd, plain->data, plain->len, (off_t)nd->c->off[nd->chunk]);
	close(fd);
	return rc;
}

/* Fetches the claimed needs of one pack, needs[i..j) by offset. */
static void fetch_pack(struct fs *fs, struct pf_need *needs, size_t i, size_t j, struct buf *range,
		       struct buf *plain)
{
	while (i < j) {
		uint64_t start, end;
		size_t k;
		int rc;

		if (needs[i].state != 1) {
			i++;
			continue;
		}
		start = needs[i].e.offset;
		end = start + needs[i].e.ref.length;
		for (k = i + 1; k < j && needs[k].e.offset <= end + COALESCE_GAP; k++) {
			uint64_t e = needs[k].e.offset + needs[k].e.ref.length;

			if (needs[k].state == 1 && e > end)
				end = e;
		}
		while (__atomic_load_n(&fs->fg_fetches, __ATOMIC_RELAXED) &&
		       !__atomic_load_n(&fs->stopping, __ATOMIC_RELAXED))
			usleep(2000);	/* reads first */
		buf_reset(range);
		rc = store_get(fs->repo->store, needs[i].pack, start, end - start, range, NULL);
		if (!rc && range->len != end - start)
			rc = err_set(-EBADMSG, "%s: shorter than the index says", needs[i].pack);
		if (rc)
			log_info("prefetch: %s (those files are fetched one by one instead)", err_msg());
		for (size_t n = i; !rc && n < k; n++) {
			struct pf_need *nd = &needs[n];

			if (nd->state != 1 || nd->e.offset + nd->e.ref.length > end)
				continue;
			/* the same blob at several places is decoded once */
			if (n == i || memcmp(nd->e.ref.id, needs[n - 1].e.ref.id, KEYS_BLOB_ID_LEN) ||
			    needs[n - 1].state != 2) {
				buf_reset(plain);
				if (blob_decode(fs->repo->ring, &nd->e.ref, range->data + (nd->e.offset - start),
						nd->e.ref.length, plain))
					continue;
			}
			if (plain->len == nd->c->off[nd->chunk + 1] - nd->c->off[nd->chunk] &&
			    write_chunk(fs, nd, plain) == 0)
				nd->state = 2;
		}
		i = k;
	}
}

/* Claims the chunks of needs[i..j) that are still missing (caller holds
 * lock).  Returns how many. */
static size_t claim(struct pf_need *needs, size_t i, size_t j)
{
	size_t n = 0;

	for (; i < j; i++) {
		struct pf_need *nd = &needs[i];

		nd->state = 0;
		if (!(nd->in->state & FS_ST_PARTIAL) || nd->in->content != nd->c ||
		    nd->c->present[nd->chunk] != 0)
			continue;
		nd->c->present[nd->chunk] = 1;
		nd->state = 1;
		n++;
	}
	return n;
}

/* Marks what one pack brought (caller holds lock); returns its bytes. */
static uint64_t settle(struct fs *fs, struct pf_need *needs, size_t i, size_t j)
{
	uint64_t got = 0;

	for (size_t n = i; n < j; n++) {
		struct pf_need *nd = &needs[n];

		if (!nd->state)
			continue;
		nd->c->present[nd->chunk] = nd->state == 2 ? 2 : 0;
		if (nd->state == 2) {
			nd->c->missing--;
			got += nd->c->off[nd->chunk + 1] - nd->c->off[nd->chunk];
		}
	}
	for (size_t n = i; n < j; n++) {
		struct fs_inode *in = needs[n].in;

		if (!needs[n].state || in->content != needs[n].c)
			continue;	/* not claimed, or settled already */
		if (!in->content->missing) {
			in->state &= ~(uint32_t)FS_ST_PARTIAL;
			in->blocks_stale = 1;
		}
		in->used = now_sec();
		if (fs_content_save_present(fs, in))
			log_error("%s", err_msg());
		if (!in->content->missing) {
			fs_content_free(in->content);
			in->content = NULL;
		}
		fs_inode_dirty(fs, in);
	}
	return got;
}

/* One plan (see above).  Caller holds lock; it is dropped while fetching.
 * Returns the chunks fetched. */
static size_t prefetch_plan(struct fs *fs, const uint64_t *inos, size_t n)
{
	struct pf_need *needs = NULL;
	struct pf_pack *packs = NULL;
	struct fs_inode **held = xcalloc(n ? n : 1, sizeof(*held));
	struct buf range = BUF_INIT, plain = BUF_INIT;
	size_t nneeds = 0, cap = 0, nheld = 0, npacks = 0, fetched = 0;
	uint64_t bytes = 0;

	pthread_rwlock_rdlock(&fs->idx_lock);
	for (size_t f = 0; f < n && bytes < PLAN_BYTES; f++) {
		int rc;
		struct fs_inode *in = fs_inode_get(fs, inos[f], &rc);

		if (!in || !(in->state & FS_ST_PARTIAL) || fs_content_load(fs, in))
			continue;
		in->nlookup++;		/* held in the table until the plan ends */
		held[nheld++] = in;
		for (size_t i = 0; i < in->content->n; i++) {
			struct index_entry ent;

			if (in->content->present[i] != 0 || index_lookup(fs->idx, in->content->ids[i], &ent))
				continue;
			if (nneeds == cap) {
				cap = cap ? cap * 2 : 1024;
				needs = xrealloc(needs, cap * sizeof(*needs));
			}
			needs[nneeds] = (struct pf_need){ .in = in, .c = in->content, .chunk = i,
							  .prio = in->size, .e = ent.e };
			snprintf(needs[nneeds].pack, PACK_NAME_SIZE, "%s", ent.pack);
			nneeds++;
			bytes += in->content->off[i + 1] - in->content->off[i];
		}
	}
	pthread_rwlock_unlock(&fs->idx_lock);
	if (nneeds > 1)
		qsort(needs, nneeds, sizeof(*needs), cmp_pack);
	for (size_t i = 0; i < nneeds;) {
		size_t j = i;
		uint64_t prio = UINT64_MAX;

		for (; j < nneeds && !strcmp(needs[j].pack, needs[i].pack); j++)
			prio = needs[j].prio < prio ? needs[j].prio : prio;
		packs = xrealloc(packs, (npacks + 1) * sizeof(*packs));
		packs[npacks++] = (struct pf_pack){ i, j, prio };
		i = j;
	}
	if (npacks > 1)
		qsort(packs, npacks, sizeof(*packs), cmp_prio);

	for (size_t p = 0; p < npacks && !fs->stopping; p++) {
		uint64_t got;

		if (!claim(needs, packs[p].first, packs[p].end))
			continue;
		pthread_mutex_unlock(&fs->lock);
		fetch_pack(fs, needs, packs[p].first, packs[p].end, &range, &plain);
		pthread_mutex_lock(&fs->lock);
		got = settle(fs, needs, packs[p].first, packs[p].end);
		for (size_t k = packs[p].first; k < packs[p].end; k++)
			fetched += needs[k].state == 2;
		fs->cache_used += got;
		__atomic_add_fetch(&fs->fetched_bytes, got, __ATOMIC_RELAXED);
		pthread_cond_broadcast(&fs->fetch_cond);
	}
	for (size_t f = 0; f < nheld; f++) {
		held[f]->nlookup--;
		fs_inode_maybe_drop(fs, held[f]);
	}
	free(needs);
	free(packs);
	free(held);
	buf_free(&range);
	buf_free(&plain);
	return fetched;
}

/* Up to max partial files, smallest first (.git objects, manifests). */
static size_t next_partial(struct fs *fs, uint64_t *inos, size_t max)
{
	sqlite3_stmt *s;
	size_t n = 0;

	if (fs_meta_commit(fs, 0) ||
	    sqlite3_prepare_v2(fs->db, "SELECT ino FROM inode WHERE state & 2 ORDER BY size, ino LIMIT ?1",
			       -1, &s, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
	while (n < max && sqlite3_step(s) == SQLITE_ROW)
		inos[n++] = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

static void *lazy_main(void *arg)
{
	struct fs *fs = arg;
	uint64_t *inos = xmalloc(PLAN_FILES * sizeof(*inos));
	unsigned ticks = 0;

	pthread_mutex_lock(&fs->lock);
	while (!fs->stopping) {
		size_t n = 0, fetched = 0, failed = 0;
		struct timespec t;

		if (++ticks % 10 == 0)
			check_disk(fs);
		/* on a full disk the room left is the metadata's */
		if (fs->prefetch && !fs->disk_full &&
		    (!fs->cache_limit || fs->cache_used < fs->cache_limit / 10 * 8))
			n = next_partial(fs, inos, PLAN_FILES);
		if (n && !fs->cache_limit && prefetch_plan(fs, inos, n))
			continue;	/* and the next batch; what it missed goes one by one */
		for (size_t i = 0; i < n && !fs->stopping; i++) {
			int rc;
			struct fs_inode *in = fs_inode_get(fs, inos[i], &rc);

			if (!in || !(in->state & FS_ST_PARTIAL))
				continue;
			if (fs->cache_limit && fs->cache_used + in->size > fs->cache_limit / 10 * 8)
				break;
			in->nlookup++;	/* held in the table while the lock is dropped */
			pthread_mutex_unlock(&fs->lock);
			rc = fs_lazy_ensure(fs, in, 0, UINT64_MAX, 1);
			pthread_mutex_lock(&fs->lock);
			in->nlookup--;
			fs_inode_maybe_drop(fs, in);
			if (rc) {
				failed++;
				break;	/* the store fails: not thousands of times */
			}
			fetched++;
		}
		if (n && !failed)
			continue;	/* more to do, at once */
		if (!n && fs->prefetch == 2)
			fs->prefetch = 1;	/* a hydrate request is done */
		/* nothing to do, or the store fails: look again in a while */
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += failed ? 0 : 100 * 1000 * 1000;
		t.tv_sec += failed ? 2 : 0;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&fs->fetch_cond, &fs->lock, &t);
		(void)fetched;
	}
	pthread_mutex_unlock(&fs->lock);
	free(inos);
	return NULL;
}

int fs_lazy_start(struct fs *fs)
{
	int rc;

	pthread_mutex_lock(&fs->lock);
	fs->cache_used = local_bytes(fs);
	pthread_mutex_unlock(&fs->lock);
	rc = pthread_create(&fs->prefetcher, NULL, lazy_main, fs);
	if (rc)
		return err_set(-rc, "cannot start the prefetch thread: %s", strerror(rc));
	fs->prefetcher_running = 1;
	return 0;
}

void fs_lazy_stop(struct fs *fs)
{
	if (!fs->prefetcher_running)
		return;
	pthread_mutex_lock(&fs->lock);
	__atomic_store_n(&fs->stopping, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&fs->fetch_cond);
	pthread_mutex_unlock(&fs->lock);
	pthread_join(fs->prefetcher, NULL);
	fs->prefetcher_running = 0;
}
