/*
 * repo.h - one workspace's repository in a store: where its objects live,
 * its keys, its head and its lease, and its local state dir.
 *
 * Layout under the store URL (docs/format.md has the bytes):
 *   tenants/<tenant>/workspaces/<ws-id>/
 *     config                      plaintext: format version, ids
 *     keys/<key-id>.<kek-id>      wrapped workspace keys
 *     keyset                      the live data keys and the current one
 *     data/<xx>/<pack-id>         packs of data blobs
 *     tree/<xx>/<pack-id>         packs of tree blobs
 *     index/<id>                  index deltas
 *     snapshots/<id>              snapshot records
 *     head                        {generation, snapshot id}: the commit point
 *     lease                       the one writer's lease
 * The repo's store (r->store) is a prefix layer: every name above is used
 * relative to the workspace, and sealed objects bind exactly that name.
 */
#ifndef CAIRN_REPO_H
#define CAIRN_REPO_H

#include <stdint.h>
#include <sys/types.h>

#include "cplane.h"
#include "keys.h"
#include "record.h"
#include "store.h"

/* Repository formats this cairn reads; it writes the newest.  Format 2:
 * the workspace has a key set (REPO_KEYSET_NAME), which a reader must
 * check and a writer keep up to date; format 1 has none (a workspace made
 * before key sets), and moves to 2 with its first key set. */
#define REPO_FORMAT_MIN 1
#define REPO_FORMAT_VERSION 2
/* The object that holds the key set (keys.h, "the key set"). */
#define REPO_KEYSET_NAME "keyset"
#define REPO_TENANT_MAX 64
/* The most a reader takes of each kind of whole object it GETs
 * (store_get_max): bounds well above what cairn writes, so that a store
 * cannot make a reader allocate what it likes.  Packs (PACK_MAX_SIZE) and
 * index objects (INDEX_OBJECT_MAX) have theirs beside their formats;
 * wrapped keys are KEYS_WRAPPED_MAX. */
#define REPO_CONFIG_MAX (64u << 10)	/* one line of JSON, about 100 bytes */
#define REPO_HEAD_MAX (64u << 10)	/* sealed JSON, about 150 bytes */
#define REPO_LEASE_MAX (64u << 10)	/* sealed JSON, under 1 KiB */
/* a snapshot record's plaintext is at most RECORD_MAX_LEN (its decoder's
 * bound, and its writer's) */
#define REPO_SNAPSHOT_MAX (RECORD_MAX_LEN + KEYS_OBJECT_OVERHEAD)
/* Under the state dirs' base: what store probes learned, one file per
 * server (store_cond.c). */
#define REPO_PROBE_DIR "store-probes"

struct conf;	/* conf.h */

/* Where the store, the key and the workspace come from; see repo_opts_resolve. */
struct repo_opts {
	const char *store_url;	/* --store, CAIRN_STORE, config `store` */
	const char *key;	/* --key, CAIRN_KEY, config `key`: file:PATH or env:VAR */
	const char *tenant;	/* --tenant, CAIRN_TENANT, config; default "default" */
	const char *workspace;	/* --workspace, CAIRN_WORKSPACE, config `workspace` */
	const char *state_dir;	/* --state-dir, CAIRN_STATE_DIR: the base under which
				 * each workspace has a dir named by its id;
				 * default /var/lib/cairn (root) or
				 * $XDG_STATE_HOME/cairn */
	const char *cache_dir;	/* config `cache_dir`: this workspace's own dir,
				 * used instead of <state_dir>/<id> */
	/* the control plane ([control-plane] of cairn.conf, or
	 * CAIRN_CONTROL_PLANE, CAIRN_CONTROL_PLANE_TOKEN_FILE,
	 * CAIRN_CONTROL_PLANE_CA_FILE): it unwraps keys for an https:// key
	 * and keeps the highest head generation (anti-rollback) */
	const char *cp_url, *cp_token_file, *cp_ca_file;
	int allow_rollback;	/* accept a head older than the highest seen */
	int force;		/* take over another holder's lease */
	/* the lease ([workspace] keys, CAIRN_* variables, cairnfs -o):
	 * host_id (CAIRN_HOST_ID; default /etc/machine-id) names this machine
	 * in the lease; takeover_from (CAIRN_TAKEOVER_FROM) names a machine
	 * known to be gone, whose lease is taken at once; lease_ttl
	 * (CAIRN_LEASE_TTL) is a duration; lease_wait (CAIRN_LEASE_WAIT) how
	 * long a mount waits for a live holder elsewhere ("forever", or a
	 * duration) */
	const char *host_id, *takeover_from, *lease_ttl, *lease_wait;
	const char *atime;	/* config `atime` (cairnfs): relatime, strictatime, noatime */
	int init;		/* config `init = yes`: make the workspace if missing */
	int no_final_snapshot;	/* config `final_snapshot = no` (cairnfs) */
	/* config `unsafe_no_conditional_writes = yes` (or the environment's
	 * CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1): use a store that honours no
	 * conditional put, with a warning, instead of refusing it */
	int unsafe_no_cond;
	struct conf *conf;	/* the loaded cairn.conf, owned (repo_opts_free) */
};

struct repo_head {
	uint64_t generation;	/* 0: no snapshot yet */
	char snapshot_id[33];	/* "" when generation is 0 */
	char etag[STORE_ETAG_MAX]; /* "" when there is no head object */
};

struct repo {
	struct store *base;	/* the store named by the URL */
	struct store *store;	/* prefix layer: the workspace's objects */
	char tenant[REPO_TENANT_MAX + 1];
	char ws_id[KEYS_WS_ID_MAX + 1];
	struct keys_ring *ring;
	char *state_dir;	/* local state of this workspace (0700) */
	int allow_rollback;
	int force;
	char *host_id, *takeover_from, *lease_ttl;	/* see repo_opts; NULL: unset */
	struct cplane cp;	/* cp.url NULL: no control plane */
	int cp_checked;		/* the head was checked against it once */
	/* the highest generation this repo knows was ever committed (state
	 * dir, control plane): with --allow-rollback a head below it is
	 * accepted, and the next head is numbered above it */
	uint64_t gen_floor;
	uint64_t current_created; /* the current data key's creation time */
	/* the key set as loaded or last written (NULL: the workspace has none
	 * yet, made before key sets; only keys it lists are in ring), and its
	 * ETag, for the If-Match of the next one */
	struct keys_set *keyset;
	char keyset_etag[STORE_ETAG_MAX];
	/* the highest key set serial this repo knows was ever written (state
	 * dir, control plane): with --allow-rollback a key set below it is
	 * accepted, and the next one is numbered above it */
	uint64_t keyset_floor;
	/* the config as read: its format (1 or 2; 0 before one is read), its
	 * creation time (0: none) and ETag, for the move to format 2 */
	int config_format;
	uint64_t config_created;
	char config_etag[STORE_ETAG_MAX];
	/* the lease, while held (repo_lease_acquire) */
	struct repo_lease *lease;
	/* whole tree packs read so far (fetch.c), so that walking a snapshot
	 * costs one GET per tree pack, not one per directory */
	struct pack_cache *tree_packs;
};

/* Creates a new workspace: a random id, a fresh keyring wrapped under the
 * tenant key, and the config object (written last, create-only, so a
 * workspace either exists whole or not at all).  create_key: write a new
 * tenant key to the file: path of opts->key when that file does not exist.
 * Returns 0 and an open repo, or a negative code. */
int repo_init(const struct repo_opts *opts, int create_key, struct repo **out);
/* Makes the workspace opts->workspace (which must be given) unless it
 * exists: for `init = yes`, so that the first start on a new workspace
 * creates it and every later one opens it.  *created tells which.  0 or a
 * negative code (error set). */
int repo_init_if_missing(const struct repo_opts *opts, int *created);

/* Opens an existing workspace: reads config, unwraps every key of the
 * workspace that the tenant key can open.  Returns 0 or a negative code:
 * -ENOENT no such workspace (the message lists what the tenant has),
 * -EACCES wrong tenant key, -ENOTSUP unknown format version. */
int repo_open(const struct repo_opts *opts, struct repo **out);

/* The ids of the tenant's workspaces (opts->tenant, default "default"),
 * from its catalog: *ids (n of them) to free one by one, then the array. */
int repo_tenant_workspaces(const struct repo_opts *opts, char ***ids, size_t *n);

/* Opens workspace ws_id without unwrapping its keys (r->ring is NULL, no
 * state dir): for cairn-keyadm, which handles the wrapped keys itself. */
int repo_open_bare(const struct repo_opts *opts, const char *ws_id, struct repo **out);

/* Makes a new data key, wraps it under kek as keys/<id>.<kek-id> (created
 * after the current one) and makes it current in r's keyring, without
 * touching the key set (init writes that next).  Returns 0 or a negative
 * code; key_id gets the new id. */
int repo_add_data_key(struct repo *r, const struct keys_kek *kek, char key_id[KEYS_ID_SIZE]);
/* `cairn-keyadm dek rotate`: repo_add_data_key, then a key set that lists
 * it too and makes it current (a workspace without one gets its first).
 * Old data keys stay live: what they sealed stays readable.  When the key
 * set cannot be written (-ECANCELED: it changed meanwhile) the new wrap is
 * removed again.  0 or a negative code. */
int repo_rotate_data_key(struct repo *r, const struct keys_kek *kek, char key_id[KEYS_ID_SIZE]);

/* The config object of r's workspace, at REPO_FORMAT_VERSION. */
void repo_config_encode(const struct repo *r, struct buf *out);

/* ---- the key set (keyset.c) ---- */
/* Gets and parses the key set (not its MAC: keys_set_verify, once the
 * identity key is unwrapped).  0, -ENOENT (none), or an error naming it. */
int repo_keyset_fetch(struct repo *r, struct buf *obj, struct keys_set *set,
		      struct store_info *info);
/* Writes the next key set: serial one above r's and above any serial seen
 * (1 for the first), the n live data keys, current among them; If-Match
 * on the one r read (If-None-Match for the first).  Then r adopts it, the
 * config moves to format 2 if it was 1, the serial is noted in the state
 * dir and reported to the control plane (those last three only warn on
 * failure).  0, -ECANCELED (the key set changed meanwhile), or another
 * code. */
int repo_keyset_write(struct repo *r, const char *current, const char (*live)[KEYS_ID_SIZE],
		      size_t n);
/* Anti-rollback of the key set, once r's state dir exists: refuses
 * (-ESTALE, unless allow_rollback) a key set older than the highest serial
 * this state dir or the control plane has seen, or none at all when one
 * was seen; then notes r's serial.  0 or a negative code. */
int repo_keyset_check(struct repo *r);
/* Notes r's key set serial in the state dir (init). */
int repo_keyset_note(struct repo *r);

/* Releases the lease if held, and everything else. */
void repo_close(struct repo *r);

/* Reads the head (generation 0 and an empty etag when there is none yet).
 * Refuses, with both numbers, a generation lower than the highest this
 * state dir has seen, unless allow_rollback.  Returns 0 or a negative code. */
int repo_head_read(struct repo *r, struct repo_head *head);

/* Writes the head {generation, snapshot_id} with If-Match on prev->etag (or
 * If-None-Match when prev has none), then records the generation in the
 * state dir.  -ECANCELED: the head moved (another writer, a lost lease). */
int repo_head_write(struct repo *r, const struct repo_head *prev,
		    uint64_t generation, const char *snapshot_id);

/* Writes head (as read, with its etag) again, sealed under the current
 * data key: the same generation and snapshot, since it commits nothing
 * new.  If-Match on head->etag; no head (empty etag) is left alone.
 * -ECANCELED: the head moved. */
int repo_head_reseal(struct repo *r, const struct repo_head *head);

/* Records generation g as seen in the state dir when it is higher than what
 * the dir holds (repo_head_read/write do it; restore calls it too). */
int repo_state_note_generation(struct repo *r, uint64_t g);
/* The counter kept in the state dir's file `file` (0 when there is none),
 * and the note that raises it to g when g is higher: the highest head
 * generation ("generation") and key set serial ("keyset") seen. */
int repo_state_counter(const struct repo *r, const char *file, uint64_t *out);
int repo_state_note_counter(struct repo *r, const char *file, uint64_t g);

/* Takes the lease (see DESIGN: TTL, renewal every TTL/3 by a thread of its
 * own, takeover of a dead local holder, --force).  -EBUSY with the holder
 * named when another live holder has it. */
int repo_lease_acquire(struct repo *r);
/* The same, naming the program that holds it ("cairn prune", "cairnfs"). */
int repo_lease_acquire_as(struct repo *r, const char *program);
/* How a mount takes the lease when another machine holds it. */
struct repo_lease_wait {
	/* how long to wait for a holder elsewhere that stays: < 0 for ever,
	 * 0 not at all (refuse at once, as repo_lease_acquire does) */
	double seconds;
	/* called with a one-line description when a wait begins and when the
	 * holder changes, and with NULL when the wait is over; may be NULL */
	void (*waiting)(const char *line, void *arg);
	void *waiting_arg;
	/* once the lease was lost, it is taken back (when it may be taken
	 * again) only if this says 1: the workspace did not move meanwhile.
	 * Called from the renewer thread.  NULL: never taken back. */
	int (*may_retake)(struct repo *r, void *arg);
	void *retake_arg;
};
/* repo_lease_acquire_as that waits as w says (NULL: does not wait): a
 * lost machine's lease is waited out, a stopping one's release taken at
 * once.  -EINTR when a stop signal came meanwhile (stop.h). */
int repo_lease_acquire_wait(struct repo *r, const char *program, const struct repo_lease_wait *w);
/* Parses a lease_wait value ("forever", "0", "90s", "5m") into seconds
 * (< 0: for ever).  0 or -EINVAL with the error set. */
int repo_lease_wait_parse(const char *s, double *seconds);
/* 0 while the lease is held and renewed; -ECANCELED once it was lost;
 * -EINTR once a stop signal cancels the work (repo_stop_check). */
int repo_lease_check(struct repo *r);
/* repo_lease_check, then a renewal written now with If-Match: the store,
 * not this machine's clock, confirms the lease is still ours.  Called
 * right before deletes (prune, index consolidation, reencrypt), so a
 * writer whose lease was taken over deletes nothing the new holder may
 * deduplicate against.  0, -ECANCELED (taken over) or another code. */
int repo_lease_confirm(struct repo *r);
/* -EINTR with the error set once a stop signal came that cancels work
 * (stop.h: cairn's commands), else 0: the long loops of lease holders
 * (a snapshot's walk and uploads, prune, reencrypt) call it. */
int repo_stop_check(struct repo *r);
/* Leases this process holds or is taking. */
int repo_leases_held(void);
/* What a status shows of the lease. */
struct repo_lease_status {
	int lost;		/* lost (or not renewed past its expiry) */
	uint64_t expires_ns;	/* unix ns */
	uint64_t lost_ns;	/* when it was lost; 0 */
	unsigned retakes;	/* times it was taken back */
	char why[256];		/* why it was lost; "" */
	char host[RECORD_HOST_MAX + 1]; /* this holder's host id */
};
/* 0 and *st while this process has the lease (held or lost); -ENOENT when
 * it never took it. */
int repo_lease_status(struct repo *r, struct repo_lease_status *st);
void repo_lease_release(struct repo *r);

/* Seals plain as an object of kind under the current data key and puts it
 * at name (relative to the workspace) with cond/etag. */
int repo_put_sealed(struct repo *r, enum keys_obj_kind kind, const char *name,
		    const void *plain, size_t len, enum store_cond cond,
		    const char *etag, struct store_info *info);
/* The bound above for a sealed object of kind (index, snapshot, head,
 * lease), and its name for messages in *what when what is not NULL. */
uint64_t repo_object_max(enum keys_obj_kind kind, const char **what);
/* Gets name (no larger than repo_object_max(kind)) and opens it as an
 * object of kind; appends the plaintext. */
int repo_get_sealed(struct repo *r, enum keys_obj_kind kind, const char *name,
		    struct buf *plain, struct store_info *info);

/* Resolves options from flags (already in opts), then CAIRN_* environment,
 * then the config file section -w NAME (or the only workspace section);
 * fills defaults.  Strings it sets are owned by an internal arena freed by
 * repo_opts_free. */
int repo_opts_resolve(struct repo_opts *opts, const char *config_path, const char *name);
void repo_opts_free(struct repo_opts *opts);

#endif
