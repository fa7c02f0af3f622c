/*
 * upload.h - the snapshot's blob pipeline: ids and dedup in the caller's
 * thread, compression and sealing on encoder threads, packs uploaded by
 * sender threads, so that both cores and the network stay busy.
 *
 * Memory is bounded whatever the workspace size: at most
 *   2 x encoders jobs of at most one chunk (4 MiB) waiting to be encoded,
 *   one open pack per blob type (16 MiB each),
 *   2 finished packs queued plus one per sender in flight (16 MiB each),
 * about 130 MiB with the defaults (2 encoders, 2 senders), plus the set of
 * ids queued during this snapshot (48 bytes per new blob).
 */
#ifndef CAIRN_UPLOAD_H
#define CAIRN_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "keys.h"
#include "repo.h"

struct upload_stats {
	uint64_t new_blobs;	/* data blobs stored by this pipeline */
	uint64_t new_trees;	/* tree blobs stored */
	uint64_t new_bytes;	/* plaintext bytes of new data blobs */
	uint64_t dup_blobs;	/* blobs the index or this snapshot had already */
	uint64_t packs;		/* packs uploaded */
	uint64_t stored_bytes;	/* bytes of those packs */
};

struct uploader;

/* A pipeline that stores new blobs of r into packs and adds them to idx.
 * encoders/senders: thread counts (0: defaults).  Returns 0 or -errno. */
int uploader_new(struct repo *r, struct index *idx, int encoders, int senders,
		 struct uploader **out);

/* Queues one blob.  Its id is in id_out when this returns; the blob itself
 * is stored later unless the index or this snapshot has it already (data is
 * copied when it must be stored).  Returns 0, or the first error any stage
 * of the pipeline hit (the pipeline stops at its first error). */
int uploader_add(struct uploader *u, enum keys_blob_type type, const void *data,
		 size_t len, uint8_t id_out[KEYS_BLOB_ID_LEN]);
/* The same for a blob whose id the caller computed (keys_blob_id_typed). */
int uploader_add_id(struct uploader *u, enum keys_blob_type type, const void *data,
		    size_t len, const uint8_t id[KEYS_BLOB_ID_LEN]);

/* Finishes the open packs and waits until everything queued is stored and
 * in the index.  Returns 0 or the first error. */
int uploader_flush(struct uploader *u);

/* The statistics so far (call after uploader_flush for final figures). */
void uploader_stats(struct uploader *u, struct upload_stats *out);

/* Stops the threads (discarding what is queued if not flushed) and frees. */
void uploader_free(struct uploader *u);

#endif
