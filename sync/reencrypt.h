/*
 * reencrypt.h - rewriting a workspace under its current data key, so that
 * older data keys can be retired (cairn-keyadm reencrypt).
 */
#ifndef CAIRN_REENCRYPT_H
#define CAIRN_REENCRYPT_H

#include <stdint.h>

#include "repo.h"

struct reencrypt_opts {
	int retire;	/* then delete the wrapped keys of the older data keys */
	/* called now and then: phase ("packs", "snapshots", "retiring"),
	 * done and total within it */
	void (*progress)(const char *phase, uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
};

struct reencrypt_stats {
	uint64_t packs, packs_rewritten, blobs_rewritten, bytes_rewritten;
	uint64_t snapshots, snapshots_rewritten;
	int head_rewritten;
	uint64_t keys_retired;	/* wrapped key objects deleted */
};

/* Rewrites every pack that holds a blob, or whose header is sealed, under
 * a data key other than the current one (blobs opened and sealed again:
 * ids, and so dedup, are unchanged), then writes one consolidated index
 * under the current key, deletes the old packs and superseded index
 * objects, seals every older snapshot record again in place, and seals
 * the head again (same generation, same snapshot) when it was sealed under
 * an older key.  With o->retire, then deletes keys/<id>.* of every data key but the
 * current one.  Order, which makes a kill at any point harmless (a rerun
 * finishes): new packs -> index -> old packs -> records -> head -> keys.
 * The caller holds the lease.  Returns 0 or a negative code. */
int reencrypt_repo(struct repo *r, const struct reencrypt_opts *o, struct reencrypt_stats *st);

#endif
