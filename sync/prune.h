/*
 * prune.h - removing what no snapshot needs: forgetting snapshots by keep
 * rules, and deleting or repacking packs whose blobs are unreferenced.
 */
#ifndef CAIRN_PRUNE_H
#define CAIRN_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "repo.h"

struct keep_rules {
	long last, hourly, daily, weekly;	/* -1 or 0: rule not used */
};

/* Which of n snapshots (sorted oldest first) to keep: keep[i] = 1.  The
 * newest snapshot is always kept, and so is head_id, whatever the rules. */
void prune_select(const struct record_snapshot *snaps, char (*ids)[RECORD_ID_SIZE], size_t n,
		  const struct keep_rules *rules, const char *head_id, int *keep);

struct prune_stats {
	uint64_t packs, packs_deleted, packs_repacked, packs_unreferenced;
	uint64_t packs_stale;	/* listed by the index, gone from the store, copies elsewhere */
	uint64_t blobs_live, blobs_dead;
	uint64_t bytes_before, bytes_freed, bytes_repacked;
};

/* Removes every blob no snapshot references: packs with no live blob are
 * deleted, packs whose live share is below half are rewritten (their live
 * blobs copied, still sealed, into new packs), packs no index lists
 * (left by an interrupted snapshot) are deleted.  Order, which makes a kill
 * at any point harmless (a rerun finishes the job): new packs → one
 * consolidated index → delete superseded index objects → delete old packs.
 * The caller holds the lease.  o->dry_run: compute, change nothing. */
struct prune_opts {
	int dry_run;
	/* called now and then: phase ("marking", "repacking", "writing the
	 * index", "deleting") and a count within it (trees, packs, objects) */
	void (*progress)(const char *phase, uint64_t count, void *arg);
	void *progress_arg;
};

int prune_repo(struct repo *r, const struct prune_opts *o, struct prune_stats *st);

#endif
