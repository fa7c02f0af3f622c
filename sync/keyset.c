/*
 * keyset.c - the workspace's key set in the store (the object "keyset";
 * keys/keys.h "the key set", docs/format.md "Key set"): which data keys
 * are live and which one new writes use.  repo.c reads it when a
 * workspace is opened and gives the keyring only the keys it lists; this
 * file writes it (init, dek rotate, reencrypt --retire) and keeps the
 * highest serial seen, as head.c keeps the highest generation.
 *
 * Must stay true: a key set is written with If-Match on the one it
 * replaces (If-None-Match for the first), so two administrators cannot
 * lose each other's change; it is written before anything it no longer
 * lists is deleted; a key set older than one this machine or the control
 * plane has seen is refused unless a rollback is allowed.  A workspace
 * made before key sets has none: the first write makes one (serial 1)
 * and moves its config to format 2, which older cairn refuses.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "log.h"
#include "repo.h"

#define KEYSET_FILE "keyset"	/* in the state dir: the highest serial seen */

int repo_keyset_fetch(struct repo *r, struct buf *obj, struct keys_set *set,
		      struct store_info *info)
{
	int rc = store_get_max(r->store, REPO_KEYSET_NAME, KEYS_SET_MAX, "key set", obj, info);

	memset(set, 0, sizeof(*set));
	if (!rc && (rc = keys_set_parse(obj->data, obj->len, r->ws_id, set)) != 0)
		err_prefix(rc, "%s" REPO_KEYSET_NAME, r->store->url);
	return rc;
}

/* After a key set was written: the config moves to the format that says
 * the workspace has one (older cairn refuses it, and so cannot write
 * under keys the set does not list); the serial is noted here and told
 * to the control plane.  Failures only warn: the key set is written. */
static void keyset_written(struct repo *r)
{
	uint64_t s = r->keyset->serial, highest;

	if (r->config_format && r->config_format < REPO_FORMAT_VERSION) {
		struct buf b = BUF_INIT;

		repo_config_encode(r, &b);
		if (store_put(r->store, "config", b.data, b.len, STORE_IF_MATCH, r->config_etag, NULL))
			log_warn("key set %" PRIu64 " written, but config still says format %d: %s",
				 s, r->config_format, err_msg());
		else
			r->config_format = REPO_FORMAT_VERSION;
		buf_free(&b);
	}
	if (r->state_dir && repo_state_note_counter(r, KEYSET_FILE, s))
		log_warn("%s", err_msg());
	if (r->cp.url && cplane_keyset(&r->cp, r->tenant, r->ws_id, s, &highest))
		log_warn("key set %" PRIu64 " written but not reported: %s; the next open of the workspace reports it",
			 s, err_msg());
}

int repo_keyset_write(struct repo *r, const char *current, const char (*live)[KEYS_ID_SIZE],
		      size_t n)
{
	struct keys_set next = { .n = n, .live = (char (*)[KEYS_ID_SIZE])live };
	struct keys_set *adopted = xcalloc(1, sizeof(*adopted));
	struct store_info info;
	struct buf b = BUF_INIT;
	int rc;

	next.serial = (r->keyset ? r->keyset->serial : 0);
	if (r->keyset_floor > next.serial)
		next.serial = r->keyset_floor;	/* after an accepted rollback */
	next.serial++;
	next.created = (uint64_t)time(NULL);
	snprintf(next.current, sizeof(next.current), "%s", current);
	rc = keys_set_encode(r->ring, &next, &b);
	if (!rc)
		rc = store_put(r->store, REPO_KEYSET_NAME, b.data, b.len,
			       r->keyset ? STORE_IF_MATCH : STORE_IF_NONE_MATCH,
			       r->keyset ? r->keyset_etag : NULL, &info);
	if (rc == -ECANCELED || rc == -EEXIST)
		rc = err_set(-ECANCELED, "%s" REPO_KEYSET_NAME ": the key set changed meanwhile (another cairn-keyadm, or an init of the same workspace): this one was not written; run the command again",
			     r->store->url);
	if (!rc)
		rc = keys_set_parse(b.data, b.len, r->ws_id, adopted);
	buf_free(&b);
	if (rc) {
		free(adopted);
		return rc;
	}
	if (r->keyset)
		keys_set_free(r->keyset);
	free(r->keyset);
	r->keyset = adopted;
	snprintf(r->keyset_etag, sizeof(r->keyset_etag), "%s", info.etag);
	keyset_written(r);
	return 0;
}

/* The key set (serial s) is older than one `who` has seen (serial seen). */
static int keyset_stale(struct repo *r, uint64_t s, uint64_t seen, const char *who)
{
	if (r->allow_rollback) {
		log_warn("workspace %s: key set %" PRIu64 " accepted (--allow-rollback) although %s has seen key set %" PRIu64,
			 r->ws_id, s, who, seen);
		return 0;
	}
	if (!s)
		return err_set(-ESTALE, "workspace %s has no key set in %s" REPO_KEYSET_NAME " but %s has seen key set %" PRIu64
			       ": it was removed, or the store replaced with an older copy, which could let retired data keys back in; restore it from a copy of the store, or use --allow-rollback to accept the store as it is",
			       r->ws_id, r->store->url, who, seen);
	return err_set(-ESTALE, "the store's key set is serial %" PRIu64 " but %s has seen serial %" PRIu64
		       ": an older copy of %s" REPO_KEYSET_NAME " was put back, which could let retired data keys back in; use --allow-rollback to accept it",
		       s, who, seen, r->store->url);
}

int repo_keyset_note(struct repo *r)
{
	return repo_state_note_counter(r, KEYSET_FILE, r->keyset ? r->keyset->serial : 0);
}

int repo_keyset_check(struct repo *r)
{
	uint64_t s = r->keyset ? r->keyset->serial : 0, seen = 0, highest = 0;
	int rc = repo_state_counter(r, KEYSET_FILE, &seen);

	if (!rc && s < seen)
		rc = keyset_stale(r, s, seen, "this machine");
	if (!rc && seen > r->keyset_floor)
		r->keyset_floor = seen;
	if (!rc && r->cp.url) {
		rc = cplane_keyset(&r->cp, r->tenant, r->ws_id, s, &highest);
		if (rc && r->allow_rollback) {
			log_warn("key set check skipped (--allow-rollback): %s", err_msg());
			rc = 0;
		} else if (rc) {
			rc = err_prefix(rc, "cannot check the key set against the control plane (anti-rollback; --allow-rollback goes on without it)");
		} else if (s < highest) {
			rc = keyset_stale(r, s, highest, "the control plane");
		}
		if (!rc && highest > r->keyset_floor)
			r->keyset_floor = highest;
	}
	if (!rc)
		rc = repo_state_note_counter(r, KEYSET_FILE, s);
	return rc;
}
