/*
 * record.h - the plaintext of the small sealed records: snapshot records
 * (snapshots/<id>), the head and the lease (docs/format.md, "Snapshot
 * records", "Head", "Lease").
 *
 * Each is one JSON object with a "version" member.  This file only encodes
 * and decodes the plaintext; sealing it (keys_seal_object with
 * KEYS_OBJ_SNAPSHOT, KEYS_OBJ_HEAD, KEYS_OBJ_LEASE) is the caller's job.
 * Decoding is strict: every member has one JSON type and a range, ids have
 * one spelling (lowercase hex of a fixed length), required members must be
 * there, unknown members are refused (except inside "stats"), and an
 * encoder refuses what a decoder would refuse, so nothing written is ever
 * unreadable.  Every function returns 0 or a negative errno code and
 * leaves one line in err_msg():
 *   -EINVAL    encode: a field out of range (names the field)
 *   -EBADMSG   decode: not JSON, wrong type, missing or unknown member,
 *              value out of range, bad id
 *   -ENOTSUP   decode: a version this cairn does not read
 *   -EOVERFLOW the generation cannot grow any more
 */
#ifndef CAIRN_RECORD_H
#define CAIRN_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "keys.h"

#define RECORD_SNAPSHOT_VERSION 1
#define RECORD_HEAD_VERSION 1
#define RECORD_LEASE_VERSION 1

/* Records larger than this are refused unread. */
#define RECORD_MAX_LEN (1u << 20)

/* Snapshot ids and lease nonces: 16 random bytes as 32 lowercase hex. */
#define RECORD_ID_LEN 32
#define RECORD_ID_SIZE (RECORD_ID_LEN + 1)

/* Generations and times are JSON integers: at most 2^63 - 1. */
#define RECORD_INT_MAX INT64_MAX

#define RECORD_ROOT_WORKSPACE "workspace"
#define RECORD_ROOT_AGENT_CONFIG "agent-config"
/* The tree of the roots themselves: a directory entry per root that has
 * its own metadata (the workspace's mode, owner, times and xattrs), its
 * subtree the root's tree.  Optional (snapshots before it have none), and
 * a reader that does not know it ignores it as any other extra root. */
#define RECORD_ROOT_TOP "top"
#define RECORD_ROOTS_MAX 16
#define RECORD_ROOT_NAME_MAX 64		/* [a-z0-9-], starting with a letter */
#define RECORD_HOST_MAX 255		/* host names and ids: printable ASCII */
#define RECORD_TAGS_MAX 64
#define RECORD_TAG_MAX 128		/* UTF-8, no control characters, no ',' */
#define RECORD_PROGRAM_MAX 64

struct record_root {
	char name[RECORD_ROOT_NAME_MAX + 1];
	uint8_t tree[KEYS_BLOB_ID_LEN];	/* blob id of the root tree */
};

/* Statistics of one snapshot; informational only. */
struct record_stats {
	uint64_t files;		/* regular files in all roots */
	uint64_t dirs;
	uint64_t symlinks;
	uint64_t others;	/* devices, fifos, sockets */
	uint64_t bytes;		/* sum of regular file sizes */
	uint64_t new_files;	/* files read because they changed */
	uint64_t new_bytes;	/* plaintext bytes of new data blobs */
	uint64_t new_blobs;	/* new data blobs */
	uint64_t new_trees;	/* new tree blobs */
	uint64_t stored_bytes;	/* bytes uploaded: packs, index, record */
	uint64_t duration_ns;	/* how long the snapshot took */
};

struct record_snapshot {
	struct record_root roots[RECORD_ROOTS_MAX];	/* sorted by name */
	size_t nroots;
	char parent[RECORD_ID_SIZE];	/* "" when there is none */
	uint64_t time_ns;		/* unix time in nanoseconds */
	char host[RECORD_HOST_MAX + 1];
	uint64_t generation;		/* head generation it was committed as */
	char **tags;			/* owned; unique */
	size_t ntags;
	struct record_stats stats;
};

struct record_head {
	uint64_t generation;		/* 1..2^63-1, grows by one per commit */
	char snapshot[RECORD_ID_SIZE];
};

struct record_lease {
	char host[RECORD_HOST_MAX + 1];	/* host id (machine-id or CAIRN_HOST_ID) */
	char boot[RECORD_HOST_MAX + 1];	/* boot id of that host */
	uint32_t pid;			/* 1..2^31-1 */
	char nonce[RECORD_ID_SIZE];	/* random per acquisition */
	char program[RECORD_PROGRAM_MAX + 1]; /* who holds it: "cairnfs", "cairn prune"; may be "" */
	uint64_t acquired_ns;		/* unix ns when it was taken */
	uint64_t expires_ns;		/* unix ns; >= acquired_ns */
};

/* ---- ids ---------------------------------------------------------------- */

/* A fresh random id (32 lowercase hex + NUL) for a snapshot or a lease
 * nonce.  Returns 0 or -EIO (no randomness). */
int record_id_new(char out[RECORD_ID_SIZE]);

/* 1 when s is exactly 32 lowercase hex digits, else 0. */
int record_id_valid(const char *s);

/* "snapshots/<id>" into out (size at least 10 + RECORD_ID_SIZE).  Returns
 * 0, -EINVAL (bad id) or -ERANGE. */
int record_snapshot_name(const char *id, char *out, size_t size);

/* ---- snapshot records --------------------------------------------------- */

/* An empty record (no roots, no parent, no tags). */
void record_snapshot_init(struct record_snapshot *s);

/* Frees the tags and empties the record.  NULL is fine. */
void record_snapshot_free(struct record_snapshot *s);

/* Sets (adds or replaces) root name.  Returns 0, -EINVAL (bad name) or
 * -ENOSPC (RECORD_ROOTS_MAX roots already). */
int record_snapshot_set_root(struct record_snapshot *s, const char *name,
			     const uint8_t tree[KEYS_BLOB_ID_LEN]);

/* The tree id of root name, or NULL. */
const uint8_t *record_snapshot_root(const struct record_snapshot *s, const char *name);

/* Adds a tag; adding one that is there already is a no-op.  Returns 0,
 * -EINVAL (bad tag) or -ENOSPC. */
int record_snapshot_add_tag(struct record_snapshot *s, const char *tag);

/* Appends the JSON of s to out.  Both required roots must be set.  Returns
 * 0 or -EINVAL; on error out is left as it was. */
int record_snapshot_encode(const struct record_snapshot *s, struct buf *out);

/* Decodes into *out (need not be initialised; free with
 * record_snapshot_free; empty on error).  Returns 0, -EBADMSG or -ENOTSUP. */
int record_snapshot_decode(const uint8_t *data, size_t len, struct record_snapshot *out);

/* Orders snapshots for listing: by generation, then time, then host.
 * Returns <0, 0, >0. */
int record_snapshot_cmp(const struct record_snapshot *a, const struct record_snapshot *b);

/* ---- head ----------------------------------------------------------------- */

int record_head_encode(const struct record_head *h, struct buf *out);
int record_head_decode(const uint8_t *data, size_t len, struct record_head *out);

/* The head that commits snapshot id after cur (cur NULL: the first head,
 * generation 1).  Returns 0, -EINVAL (bad id) or -EOVERFLOW. */
int record_head_next(const struct record_head *cur, const char *id, struct record_head *next);

/* ---- lease ---------------------------------------------------------------- */

int record_lease_encode(const struct record_lease *l, struct buf *out);
int record_lease_decode(const uint8_t *data, size_t len, struct record_lease *out);

/* 1 when a and b are the same holder (host, boot, pid and nonce), else 0. */
int record_lease_same_holder(const struct record_lease *a, const struct record_lease *b);

#endif
