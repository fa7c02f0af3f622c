/*
 * idset.h - a set of 32-byte blob ids (open addressing; the ids are keyed
 * hashes, so their first 8 bytes are a good hash as they are).
 * Not thread-safe: the owner locks.
 */
#ifndef CAIRN_IDSET_H
#define CAIRN_IDSET_H

#include <stddef.h>
#include <stdint.h>

#define IDSET_ID_LEN 32

struct idset {
	uint8_t (*ids)[IDSET_ID_LEN];
	uint8_t *used;
	size_t cap, n;
};

#define IDSET_INIT { NULL, NULL, 0, 0 }

/* Adds id; returns 1 when it was there already, 0 when added. */
int idset_add(struct idset *s, const uint8_t id[IDSET_ID_LEN]);
/* 1 when id is in the set. */
int idset_has(const struct idset *s, const uint8_t id[IDSET_ID_LEN]);
void idset_free(struct idset *s);

#endif
