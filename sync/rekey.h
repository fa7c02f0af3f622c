/*
 * rekey.h - what cairn-keyadm does to the wrapped keys of a workspace:
 * rewrap them under a new tenant key, verify that a tenant key opens them,
 * list which tenant keys wrap them (see cairn-keyadm(8)).
 *
 * Invariant of rewrap: a wrap under the old tenant key is deleted only
 * after the new wrap has been read back from the store and unwrapped to
 * the same key, so a kill at any point leaves every key openable by one of
 * the two tenant keys, and running it again finishes the job.
 */
#ifndef CAIRN_REKEY_H
#define CAIRN_REKEY_H

#include <stdint.h>

#include "keys.h"
#include "repo.h"

struct rekey_stats {
	uint64_t keys;		/* keys looked at */
	uint64_t done;		/* rewrapped (or, for verify, opened) */
	uint64_t skipped;	/* already under the new tenant key, or under neither */
	uint64_t failed;	/* could not be rewrapped / opened: each logged */
};

/* Rewraps every key of workspace ws_id that `from` wraps under `to` and
 * removes the old wraps, adding to *st.  Keys it cannot rewrap are logged
 * (one warning each, naming the key and why) and counted in failed; their
 * old wrap stays.  Returns 0 when the workspace could be listed (even with
 * failures), else a negative code. */
int rekey_rewrap(const struct repo_opts *opts, const char *ws_id, const struct keys_kek *from,
		 const struct keys_kek *to, struct rekey_stats *st);

/* Checks that kek opens every key of workspace ws_id (each key id has a
 * wrap under kek that unwraps); what does not is logged and counted in
 * failed.  Returns 0 when the workspace could be listed, else a negative
 * code. */
int rekey_verify(const struct repo_opts *opts, const char *ws_id, const struct keys_kek *kek,
		 struct rekey_stats *st);

/* Calls fn for each wrapped key object of workspace ws_id with its key id
 * and tenant key id.  Returns 0 or a negative code. */
typedef int (*rekey_wrap_fn)(const char *key_id, const char *kek_id, void *arg);
int rekey_list_wraps(const struct repo_opts *opts, const char *ws_id, rekey_wrap_fn fn, void *arg);

#endif
