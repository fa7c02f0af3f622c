/*
 * head.c - the head object, the commit point of a workspace, and the local
 * anti-rollback record.
 *
 * Invariants: the head is written with If-Match on the ETag it was read
 * with (If-None-Match when there was none), so a writer that lost its lease
 * or raced another fails instead of overwriting a newer head; the state
 * dir's "generation" file only ever grows, and a head older than it is
 * refused unless the user allows a rollback.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "fsutil.h"
#include "record.h"
#include "repo.h"

#define GENERATION_FILE "generation"

int repo_state_counter(const struct repo *r, const char *file, uint64_t *out)
{
	char *path = xasprintf("%s/%s", r->state_dir, file);
	char text[32] = "";
	FILE *f = fopen(path, "r");
	int rc = 0;

	*out = 0;
	if (f) {
		if (!fgets(text, sizeof(text), f) || sscanf(text, "%" SCNu64, out) != 1)
			rc = err_set(-EBADMSG, "%s: not a number; remove the file to trust what the store holds",
				     path);
		fclose(f);
	} else if (errno != ENOENT) {
		rc = err_set(-errno, "cannot read %s: %s", path, strerror(errno));
	}
	free(path);
	return rc;
}

/* The highest generation this state dir has seen (0 when none). */
static int state_generation(const struct repo *r, uint64_t *out)
{
	return repo_state_counter(r, GENERATION_FILE, out);
}

int repo_state_note_counter(struct repo *r, const char *file, uint64_t g)
{
	char *path, *tmp;
	char text[32];
	uint64_t cur;
	int fd, rc = repo_state_counter(r, file, &cur);

	if (rc || g <= cur)
		return rc;
	path = xasprintf("%s/%s", r->state_dir, file);
	tmp = xasprintf("%s.tmp", path);
	snprintf(text, sizeof(text), "%" PRIu64 "\n", g);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		rc = -errno;
	if (!rc)
		rc = fsu_write_all(fd, text, strlen(text));
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (!rc)
		rc = fsu_fsync_dir(r->state_dir);
	if (rc) {
		unlink(tmp);
		err_set(rc, "cannot record %s in %s: %s", file, path, strerror(-rc));
	}
	free(tmp);
	free(path);
	return rc;
}

/* Records generation g in the state dir if it is higher than what is there. */
int repo_state_note_generation(struct repo *r, uint64_t g)
{
	return repo_state_note_counter(r, GENERATION_FILE, g);
}

static int head_check_cp(struct repo *r, const struct repo_head *head);

int repo_head_read(struct repo *r, struct repo_head *head)
{
	struct buf plain = BUF_INIT;
	struct store_info info;
	struct record_head h;
	uint64_t seen;
	int rc;

	memset(head, 0, sizeof(*head));
	rc = repo_get_sealed(r, KEYS_OBJ_HEAD, "head", &plain, &info);
	if (rc == -ENOENT) {
		buf_free(&plain);
		err_clear();
		rc = 0;
		memset(&h, 0, sizeof(h));
	} else if (!rc) {
		rc = record_head_decode(plain.data, plain.len, &h);
		buf_free(&plain);
		if (rc)
			return err_prefix(rc, "%shead", r->store->url);
		snprintf(head->etag, sizeof(head->etag), "%s", info.etag);
	} else {
		buf_free(&plain);
		return rc;
	}
	head->generation = h.generation;
	snprintf(head->snapshot_id, sizeof(head->snapshot_id), "%s", h.snapshot);
	rc = state_generation(r, &seen);
	if (rc)
		return rc;
	if (head->generation < seen && !r->allow_rollback)
		return err_set(-ESTALE, "the store's head is generation %" PRIu64 " but this machine has seen generation %" PRIu64
			       ": the store was rolled back or replaced; use --allow-rollback to accept it",
			       head->generation, seen);
	if (seen > r->gen_floor)
		r->gen_floor = seen;
	if (r->cp.url && !r->cp_checked) {
		rc = head_check_cp(r, head);
		if (rc)
			return rc;
	}
	return repo_state_note_generation(r, head->generation);
}

/* Once per repo: reports the head to the control plane and compares with
 * the highest generation it knows, which protects a VM with no state dir. */
static int head_check_cp(struct repo *r, const struct repo_head *head)
{
	uint64_t highest = 0;
	int rc = cplane_generation(&r->cp, r->tenant, r->ws_id, head->generation,
				   head->snapshot_id, &highest);

	if (rc && !r->allow_rollback)
		return err_prefix(rc, "cannot check the head against the control plane (anti-rollback; --allow-rollback goes on without it)");
	if (rc) {
		log_warn("anti-rollback check skipped (--allow-rollback): %s", err_msg());
		return 0;
	}
	if (head->generation < highest && !r->allow_rollback)
		return err_set(-ESTALE, "the store's head is generation %" PRIu64 " but the control plane has seen generation %" PRIu64
			       ": the store was rolled back or replaced; use --allow-rollback to accept it",
			       head->generation, highest);
	if (highest > r->gen_floor)
		r->gen_floor = highest;
	r->cp_checked = 1;
	return 0;
}

/* Seals {generation, snapshot_id} as the head, with If-Match on
 * prev->etag (If-None-Match when prev has none). */
static int head_put(struct repo *r, const struct repo_head *prev, uint64_t generation,
		    const char *snapshot_id)
{
	struct record_head h = { .generation = generation };
	struct buf plain = BUF_INIT;
	int rc;

	snprintf(h.snapshot, sizeof(h.snapshot), "%s", snapshot_id);
	rc = record_head_encode(&h, &plain);
	if (!rc && r->lease)
		rc = repo_lease_check(r);
	if (!rc)
		rc = repo_put_sealed(r, KEYS_OBJ_HEAD, "head", plain.data, plain.len,
				     prev->etag[0] ? STORE_IF_MATCH : STORE_IF_NONE_MATCH,
				     prev->etag[0] ? prev->etag : NULL, NULL);
	buf_free(&plain);
	return rc;
}

int repo_head_reseal(struct repo *r, const struct repo_head *head)
{
	int rc = head->etag[0] ? head_put(r, head, head->generation, head->snapshot_id) : 0;

	if (rc == -ECANCELED || rc == -EEXIST)
		return err_set(-ECANCELED, "the head moved while it was sealed again (another writer, or a lost lease); it stays as it was");
	return rc;
}

int repo_head_write(struct repo *r, const struct repo_head *prev,
		    uint64_t generation, const char *snapshot_id)
{
	int rc;

	if (generation <= prev->generation)
		return err_set(-EINVAL, "head generation %" PRIu64 " does not grow past %" PRIu64,
			       generation, prev->generation);
	rc = head_put(r, prev, generation, snapshot_id);
	if (rc == -ECANCELED || rc == -EEXIST)
		return err_set(-ECANCELED, "the head moved while this snapshot was written (another writer, or a lost lease); nothing was committed, the previous snapshot is intact");
	if (rc)
		return rc;
	if (r->cp.url) {
		uint64_t highest;

		/* the head is committed: a report that fails is only logged;
		 * the next head read reports it again */
		if (cplane_generation(&r->cp, r->tenant, r->ws_id, generation, snapshot_id, &highest))
			log_warn("generation %" PRIu64 " committed but not reported: %s", generation, err_msg());
	}
	return repo_state_note_generation(r, generation);
}
