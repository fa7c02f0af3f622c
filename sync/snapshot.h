/*
 * snapshot.h - taking a snapshot of a directory: walk, chunk, dedup,
 * upload, then trees, index delta, snapshot record, and the head last.
 */
#ifndef CAIRN_SNAPSHOT_H
#define CAIRN_SNAPSHOT_H

#include <stdint.h>

#include "record.h"
#include "repo.h"

struct snapshot_progress {
	uint64_t files, dirs, bytes;		/* scanned so far */
	uint64_t read_files, read_bytes;	/* read because they changed */
	uint64_t new_bytes, stored_bytes;	/* new plaintext, uploaded packs */
	const char *path;			/* the file being read, or NULL */
};

struct snapshot_opts {
	/* the agent-config root: local paths, each an entry named by its last
	 * component (snapshot_job_paths); none: an empty root */
	const char *const *agent_config;
	size_t nagent_config;
	const char *const *tags;
	size_t ntags;
	/* left out of the agent-config root: fnmatch(3) patterns (FNM_PATHNAME)
	 * on "NAME/sub/path" under each path snapshot_job_paths walks */
	const char *const *exclude;
	size_t nexclude;
	/* called from the walking thread, at most every few ms */
	void (*progress)(const struct snapshot_progress *p, void *arg);
	void *progress_arg;
	int encoders, senders;		/* 0: defaults */
	/* called once the record is stored and right before the head write
	 * that commits it: cairnfs notes the id durably, so that a kill
	 * between the head write and its own bookkeeping is recognised
	 * later.  Non-zero aborts the commit. */
	int (*before_head)(const char *snapshot_id, void *arg);
	void *before_head_arg;
};

struct snapshot_result {
	char id[RECORD_ID_SIZE];
	uint64_t generation;
	struct record_stats stats;
};

/* Snapshots dir as the workspace root of a new snapshot whose parent is
 * the current head.  Takes the lease for the duration unless the caller
 * holds it.  Files unchanged since the parent (size, mtime, ctime, inode,
 * device) are taken from the parent without being opened.  Returns 0 and
 * fills *res, or a negative code; on any error nothing is committed and
 * the previous snapshot stays the head. */
int snapshot_dir(struct repo *r, const char *dir, const struct snapshot_opts *o,
		 struct snapshot_result *res);

/* ---- the same, step by step, for a snapshot of something else than a
 * directory (cairnfs's live mount) ---- */
struct snapshot_job;
struct tree_entry;	/* tree.h */
/* Reads the head, the index and the parent record, and starts the upload
 * pipeline; takes the lease unless r holds it.  Returns 0 or a negative
 * code; on error nothing was written. */
int snapshot_job_begin(struct repo *r, const struct snapshot_opts *o, struct snapshot_job **out);
/* The parent's id (the head's snapshot), or NULL for the first snapshot. */
const char *snapshot_job_parent_id(const struct snapshot_job *j);
/* The parent's root called name, or NULL. */
const uint8_t *snapshot_job_parent_root(const struct snapshot_job *j, const char *name);
/* The top tree (RECORD_ROOT_TOP) from ws, the workspace root's own entry
 * (its subtree set to the workspace tree; the name is ignored): queued,
 * its id in *id_out (may be NULL), and the record will name it. */
int snapshot_job_top(struct snapshot_job *j, const struct tree_entry *ws,
		     uint8_t id_out[KEYS_BLOB_ID_LEN]);
/* The record will name top tree id (the parent's, for a workspace that did
 * not change). */
void snapshot_job_keep_top(struct snapshot_job *j, const uint8_t id[KEYS_BLOB_ID_LEN]);
/* The index the job adds to (blobs it has are not stored again). */
struct index *snapshot_job_index(struct snapshot_job *j);
/* The statistics of the record, for the caller to fill. */
struct record_stats *snapshot_job_stats(struct snapshot_job *j);
/* Queues one blob; its id is in id_out at once. */
int snapshot_job_add(struct snapshot_job *j, enum keys_blob_type type, const void *data, size_t len,
		     uint8_t id_out[KEYS_BLOB_ID_LEN]);
/* Chunks and queues bytes [0, size) of fd (fd < 0: zeros); *ids and *sizes
 * (malloc'd) get the n chunks.  what names the file in messages. */
int snapshot_job_content(struct snapshot_job *j, int fd, uint64_t size, const char *what,
			 uint8_t (**ids)[KEYS_BLOB_ID_LEN], uint32_t **sizes, size_t *n);
/* A root tree of local paths, each an entry named by its last component
 * (a directory is walked whole but for the opts' exclude patterns; files
 * unchanged since parent_root are not read; a missing path is left out). */
int snapshot_job_paths(struct snapshot_job *j, const char *const *paths, size_t n,
		       const uint8_t *parent_root, uint8_t id_out[KEYS_BLOB_ID_LEN]);
/* Stores what is queued, the index delta and the record (parent: NULL for
 * the head's snapshot), then the head with If-Match -- unless no_head,
 * which leaves the head alone (a snapshot beside it).  Fills *res. */
int snapshot_job_commit(struct snapshot_job *j, const uint8_t ws_root[KEYS_BLOB_ID_LEN],
			const uint8_t agent_root[KEYS_BLOB_ID_LEN], const char *parent, int no_head,
			struct snapshot_result *res);
/* Hands the index (with the new blobs) to the caller, who frees it. */
struct index *snapshot_job_take_index(struct snapshot_job *j);
void snapshot_job_free(struct snapshot_job *j);

#endif
