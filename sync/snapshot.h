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
	const char *agent_config_dir;	/* the agent-config root; NULL: empty */
	const char *const *tags;
	size_t ntags;
	/* called from the walking thread, at most every few ms */
	void (*progress)(const struct snapshot_progress *p, void *arg);
	void *progress_arg;
	int encoders, senders;		/* 0: defaults */
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

#endif
