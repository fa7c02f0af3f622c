/*
 * check.h - verifying a repository: every object a snapshot needs is there,
 * opens and decodes, every pack's header agrees with the index, and (on
 * request) every blob decrypts and re-hashes to its id.
 *
 * The engine reads and never writes the store (no lease is taken); the
 * only local write is repo_head_read's note of the generation it saw.  It
 * reports each problem it finds through a callback, by object name, and
 * goes on with the rest: one damaged pack does not hide another.  `cairn
 * check` prints the problems; cairnfs can run the same walk.
 */
#ifndef CAIRN_CHECK_H
#define CAIRN_CHECK_H

#include <stdint.h>

#include "index.h"
#include "repo.h"

enum check_kind {
	CHECK_DAMAGED = 1,	/* an object that does not open, decode or agree */
	CHECK_MISSING,		/* an object something refers to is not there */
	CHECK_UNREFERENCED,	/* a pack no index lists (warning: prune removes it) */
	CHECK_STRAY,		/* a name that is no cairn object (warning) */
	CHECK_STALE,		/* an indexed pack that is gone, every blob of it
				 * kept elsewhere (warning: prune drops it) */
};

/* 1 for the kinds that make a repository damaged, 0 for warnings. */
int check_kind_is_damage(enum check_kind kind);
/* "damaged", "missing", "unreferenced", "stray", "stale". */
const char *check_kind_name(enum check_kind kind);

struct check_problem {
	enum check_kind kind;
	/* the object at fault, as named in the store relative to the
	 * workspace ("data/ab/ab12…", "index/…", "snapshots/…", "head"), or
	 * "tree <id prefix>" / "blob <id prefix>" for a blob */
	const char *object;
	const char *message;	/* one line: what is wrong, and where */
};

typedef void (*check_problem_fn)(const struct check_problem *p, void *arg);

/* What the engine has done so far; also the final figures. */
struct check_stats {
	uint64_t keys;		/* wrapped key objects read */
	uint64_t snapshots;	/* snapshot records opened */
	uint64_t trees;		/* distinct tree blobs decoded */
	uint64_t blobs;		/* distinct data blobs the trees reference */
	uint64_t index_objects;	/* index objects opened */
	uint64_t packs;		/* packs whose header was read */
	uint64_t packs_total;	/* packs in the store */
	uint64_t blobs_read;	/* --read-data: blobs decoded */
	uint64_t bytes_read;	/* bytes fetched from the store */
	uint64_t damage;	/* problems of a damage kind */
	uint64_t warnings;	/* problems of a warning kind */
	const char *phase;	/* "keys", "index", "packs", "snapshots", "data" */
};

struct check_opts {
	int read_data;		/* fetch every pack and decode every blob */
	check_problem_fn problem;	/* called for each problem; may be NULL */
	void *problem_arg;
	/* called now and then with the figures so far; may be NULL */
	void (*progress)(const struct check_stats *st, void *arg);
	void *progress_arg;
};

/* Checks repository r (opened with repo_open: config and keys already
 * load) and fills *st.  Returns 0 when the check ran to its end, whatever
 * it found (st->damage says), or a negative code with a message when it
 * could not go on (a listing failed, the store is down).  r->store is
 * wrapped by a counting layer while it runs and put back before return. */
int check_repo(struct repo *r, const struct check_opts *o, struct check_stats *st);

/* Loads index object name ("index/<32 hex>") alone: fetched, opened with
 * r's keys and decoded into a new index holding exactly the packs it lists
 * (for `cairn cat index`).  Returns 0, -ENOENT when there is no such
 * object, or the error of the object (-EBADMSG naming it, -ENOTSUP). */
int check_load_index_object(struct repo *r, const char *name, struct index **out);

#endif
