/*
 * idset.c - a set of blob ids (see idset.h).  The table is kept at most
 * half full, so probes stay short.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "idset.h"

static size_t slot_of(const uint8_t *id, size_t cap)
{
	uint64_t h;

	memcpy(&h, id, sizeof(h));
	return (size_t)h & (cap - 1);
}

static void idset_grow(struct idset *s)
{
	struct idset bigger = IDSET_INIT;

	bigger.cap = s->cap ? s->cap * 2 : 1024;
	bigger.ids = xcalloc(bigger.cap, IDSET_ID_LEN);
	bigger.used = xcalloc(bigger.cap, 1);
	for (size_t i = 0; i < s->cap; i++)
		if (s->used[i])
			idset_add(&bigger, s->ids[i]);
	idset_free(s);
	*s = bigger;
}

int idset_add(struct idset *s, const uint8_t id[IDSET_ID_LEN])
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap)
		idset_grow(s);
	for (i = slot_of(id, s->cap); s->used[i]; i = (i + 1) & (s->cap - 1))
		if (!memcmp(s->ids[i], id, IDSET_ID_LEN))
			return 1;
	memcpy(s->ids[i], id, IDSET_ID_LEN);
	s->used[i] = 1;
	s->n++;
	return 0;
}

int idset_has(const struct idset *s, const uint8_t id[IDSET_ID_LEN])
{
	if (!s->cap)
		return 0;
	for (size_t i = slot_of(id, s->cap); s->used[i]; i = (i + 1) & (s->cap - 1))
		if (!memcmp(s->ids[i], id, IDSET_ID_LEN))
			return 1;
	return 0;
}

void idset_free(struct idset *s)
{
	free(s->ids);
	free(s->used);
	memset(s, 0, sizeof(*s));
}
