/*
 * upload.c - the snapshot's blob pipeline (see upload.h).
 *
 * Threads and what they share (each under the lock named beside it):
 *   caller    uploader_add: id, dedup against idx and `seen`, queue a job
 *             (uploader_add_id: the same with an id the caller computed;
 *             the snapshot's walk hashes a read pass on two threads)
 *   encoders  blob_encode, then pack_writer_add to the open pack of the
 *             blob's type; a full pack is finished and queued for sending
 *   senders   store_put of a finished pack, then index_add_pack
 * u->lock guards the queues, `seen`, the open packs, the stats and the
 * first error; u->idx_lock guards idx (lookups and adds).  A pack is added
 * to the index only after its upload succeeded, so the index never points
 * at a pack the store does not have.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "err.h"
#include "idset.h"
#include "pack.h"
#include "upload.h"

#define DEFAULT_ENCODERS 2
#define DEFAULT_SENDERS 2
#define MAX_THREADS 16
#define SEND_QUEUE 2

struct job {
	enum keys_blob_type type;
	uint8_t id[KEYS_BLOB_ID_LEN];
	uint8_t *data;
	size_t len;
};

struct outgoing {
	char name[PACK_NAME_SIZE];
	struct buf bytes;
	struct pack_header hdr;
};

struct uploader {
	struct repo *r;
	struct index *idx;
	pthread_mutex_t idx_lock;

	pthread_mutex_t lock;
	pthread_cond_t changed;		/* any queue or counter moved */
	struct job *jobs;		/* ring of encode jobs */
	size_t jobs_cap, jobs_head, jobs_n;
	struct outgoing **send;		/* ring of finished packs */
	size_t send_head, send_n;
	int encoding, sending;		/* jobs/packs being worked on */
	struct pack_writer *open[2];	/* data, tree */
	struct idset seen;		/* ids queued during this snapshot */
	struct upload_stats stats;
	int error;			/* first error, sticky */
	char *error_msg;
	int stop;

	pthread_t threads[MAX_THREADS];
	int nthreads;
	int encoders;
};

/* Records the first error (with its message) and wakes everyone.  Under lock. */
static void fail_locked(struct uploader *u, int rc)
{
	if (!u->error) {
		u->error = rc;
		u->error_msg = xstrdup(err_msg());
	}
	pthread_cond_broadcast(&u->changed);
}

static int error_locked(struct uploader *u)
{
	if (u->error)
		err_set(u->error, "%s", u->error_msg);
	return u->error;
}

static void outgoing_free(struct outgoing *o)
{
	if (!o)
		return;
	buf_free(&o->bytes);
	pack_header_free(&o->hdr);
	free(o);
}

/* Finishes the open pack of type t and queues it; waits for room.  Under lock. */
static int finish_pack_locked(struct uploader *u, int t)
{
	const struct keys_key *dk;
	struct outgoing *o;
	int rc;

	if (!pack_writer_count(u->open[t]))
		return 0;
	o = xcalloc(1, sizeof(*o));
	rc = keys_ring_current(u->r->ring, &dk);
	if (!rc)
		rc = pack_writer_finish(u->open[t], dk, u->r->ws_id, &o->bytes, o->name, &o->hdr);
	if (rc) {
		outgoing_free(o);
		return rc;
	}
	while (u->send_n == SEND_QUEUE && !u->error)
		pthread_cond_wait(&u->changed, &u->lock);
	if (u->error) {
		outgoing_free(o);
		return u->error;
	}
	u->send[(u->send_head + u->send_n) % SEND_QUEUE] = o;
	u->send_n++;
	pthread_cond_broadcast(&u->changed);
	return 0;
}

static void *encoder_main(void *arg)
{
	struct uploader *u = arg;
	struct buf sealed = BUF_INIT;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		struct blob_ref ref;
		struct job job;
		int t, rc;

		while (!u->jobs_n && !u->stop && !u->error)
			pthread_cond_wait(&u->changed, &u->lock);
		if (u->error || (u->stop && !u->jobs_n))
			break;
		job = u->jobs[u->jobs_head];
		u->jobs_head = (u->jobs_head + 1) % u->jobs_cap;
		u->jobs_n--;
		u->encoding++;
		pthread_cond_broadcast(&u->changed);
		pthread_mutex_unlock(&u->lock);

		buf_reset(&sealed);
		rc = blob_encode(u->r->ring, job.type, job.data, job.len, &sealed, &ref);
		if (!rc && memcmp(ref.id, job.id, KEYS_BLOB_ID_LEN) != 0)
			rc = err_set(-EIO, "blob id changed while encoding: memory corruption?");
		free(job.data);

		pthread_mutex_lock(&u->lock);
		t = job.type == KEYS_BLOB_TREE;
		if (!rc && !u->error) {
			rc = pack_writer_add(u->open[t], &ref, sealed.data, sealed.len);
			if (!rc && pack_writer_full(u->open[t]))
				rc = finish_pack_locked(u, t);
		}
		if (rc)
			fail_locked(u, rc);
		u->encoding--;
		pthread_cond_broadcast(&u->changed);
	}
	pthread_mutex_unlock(&u->lock);
	buf_free(&sealed);
	return NULL;
}

static void *sender_main(void *arg)
{
	struct uploader *u = arg;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		struct outgoing *o;
		int rc;

		while (!u->send_n && !u->stop && !u->error)
			pthread_cond_wait(&u->changed, &u->lock);
		if (u->error || (u->stop && !u->send_n))
			break;
		o = u->send[u->send_head];
		u->send_head = (u->send_head + 1) % SEND_QUEUE;
		u->send_n--;
		u->sending++;
		pthread_cond_broadcast(&u->changed);
		pthread_mutex_unlock(&u->lock);

		rc = repo_stop_check(u->r);
		if (!rc)
			rc = store_put(u->r->store, o->name, o->bytes.data, o->bytes.len,
				       STORE_IF_NONE_MATCH, NULL, NULL);
		if (!rc) {
			pthread_mutex_lock(&u->idx_lock);
			rc = index_add_header(u->idx, &o->hdr);
			pthread_mutex_unlock(&u->idx_lock);
		}

		pthread_mutex_lock(&u->lock);
		if (rc) {
			fail_locked(u, rc);
		} else {
			u->stats.packs++;
			u->stats.stored_bytes += o->bytes.len;
		}
		u->sending--;
		pthread_cond_broadcast(&u->changed);
		pthread_mutex_unlock(&u->lock);
		outgoing_free(o);
		pthread_mutex_lock(&u->lock);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

int uploader_new(struct repo *r, struct index *idx, int encoders, int senders,
		 struct uploader **out)
{
	struct uploader *u = xcalloc(1, sizeof(*u));
	int rc = 0;

	u->r = r;
	u->idx = idx;
	u->encoders = encoders > 0 ? encoders : DEFAULT_ENCODERS;
	if (senders <= 0)
		senders = DEFAULT_SENDERS;
	if (u->encoders + senders > MAX_THREADS) {
		u->encoders = MAX_THREADS / 2;
		senders = MAX_THREADS / 2;
	}
	u->jobs_cap = (size_t)u->encoders * 2;
	u->jobs = xcalloc(u->jobs_cap, sizeof(*u->jobs));
	u->send = xcalloc(SEND_QUEUE, sizeof(*u->send));
	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->idx_lock, NULL);
	pthread_cond_init(&u->changed, NULL);
	rc = pack_writer_new(KEYS_BLOB_DATA, &u->open[0]);
	if (!rc)
		rc = pack_writer_new(KEYS_BLOB_TREE, &u->open[1]);
	if (rc) {
		uploader_free(u);
		return rc;
	}
	for (int i = 0; i < u->encoders; i++)
		pthread_create(&u->threads[u->nthreads++], NULL, encoder_main, u);
	for (int i = 0; i < senders; i++)
		pthread_create(&u->threads[u->nthreads++], NULL, sender_main, u);
	*out = u;
	return 0;
}

int uploader_add(struct uploader *u, enum keys_blob_type type, const void *data,
		 size_t len, uint8_t id_out[KEYS_BLOB_ID_LEN])
{
	int rc = keys_blob_id_typed(u->r->ring, type, data, len, id_out);

	return rc ? rc : uploader_add_id(u, type, data, len, id_out);
}

int uploader_add_id(struct uploader *u, enum keys_blob_type type, const void *data,
		    size_t len, const uint8_t id_out[KEYS_BLOB_ID_LEN])
{
	struct job *job;
	int rc = 0, known;

	pthread_mutex_lock(&u->idx_lock);
	known = index_has(u->idx, id_out);
	pthread_mutex_unlock(&u->idx_lock);
	pthread_mutex_lock(&u->lock);
	if (u->error) {
		rc = error_locked(u);
		pthread_mutex_unlock(&u->lock);
		return rc;
	}
	if (known || idset_add(&u->seen, id_out)) {
		u->stats.dup_blobs++;
		pthread_mutex_unlock(&u->lock);
		return 0;
	}
	if (type == KEYS_BLOB_TREE) {
		u->stats.new_trees++;
	} else {
		u->stats.new_blobs++;
		u->stats.new_bytes += len;
	}
	while (u->jobs_n == u->jobs_cap && !u->error)
		pthread_cond_wait(&u->changed, &u->lock);
	if (u->error) {
		rc = error_locked(u);
		pthread_mutex_unlock(&u->lock);
		return rc;
	}
	job = &u->jobs[(u->jobs_head + u->jobs_n) % u->jobs_cap];
	job->type = type;
	memcpy(job->id, id_out, KEYS_BLOB_ID_LEN);
	job->data = xmalloc(len ? len : 1);
	if (len)
		memcpy(job->data, data, len);
	job->len = len;
	u->jobs_n++;
	pthread_cond_broadcast(&u->changed);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

int uploader_flush(struct uploader *u)
{
	int rc;

	pthread_mutex_lock(&u->lock);
	while ((u->jobs_n || u->encoding) && !u->error)
		pthread_cond_wait(&u->changed, &u->lock);
	for (int t = 0; t < 2 && !u->error; t++) {
		rc = finish_pack_locked(u, t);
		if (rc)
			fail_locked(u, rc);
	}
	while ((u->send_n || u->sending) && !u->error)
		pthread_cond_wait(&u->changed, &u->lock);
	rc = error_locked(u);
	pthread_mutex_unlock(&u->lock);
	return rc;
}

void uploader_stats(struct uploader *u, struct upload_stats *out)
{
	pthread_mutex_lock(&u->lock);
	*out = u->stats;
	pthread_mutex_unlock(&u->lock);
}

void uploader_free(struct uploader *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	u->stop = 1;
	if (!u->error && (u->jobs_n || u->send_n))
		fail_locked(u, -ECANCELED);	/* not flushed: drop the rest */
	pthread_cond_broadcast(&u->changed);
	pthread_mutex_unlock(&u->lock);
	for (int i = 0; i < u->nthreads; i++)
		pthread_join(u->threads[i], NULL);
	while (u->jobs_n) {
		free(u->jobs[u->jobs_head].data);
		u->jobs_head = (u->jobs_head + 1) % u->jobs_cap;
		u->jobs_n--;
	}
	while (u->send_n) {
		outgoing_free(u->send[u->send_head]);
		u->send_head = (u->send_head + 1) % SEND_QUEUE;
		u->send_n--;
	}
	pack_writer_free(u->open[0]);
	pack_writer_free(u->open[1]);
	free(u->jobs);
	free(u->send);
	idset_free(&u->seen);
	free(u->error_msg);
	pthread_mutex_destroy(&u->lock);
	pthread_mutex_destroy(&u->idx_lock);
	pthread_cond_destroy(&u->changed);
	free(u);
}
