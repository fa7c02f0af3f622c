/*
 * fuzzlib.c - deterministic mutations and corpus replay for the fuzz
 * targets' make-check drivers (see fuzzlib.h).
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "tap.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t next_rand(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1Dull;
}

/* One random mutation of src into dst: flips, interesting bytes, cuts,
 * inserts, duplicated or deleted ranges. */
void fuzz_mutate(const struct buf *src, struct buf *dst)
{
	static const uint8_t interesting[] = { 0, 1, 0x7f, 0x80, 0xff, '/', '.', 0xfe, 32 };
	int n = 1 + (int)(next_rand() % 4);

	buf_reset(dst);
	buf_add(dst, src->data, src->len);
	for (int k = 0; k < n && dst->len; k++) {
		size_t at = next_rand() % dst->len;

		switch (next_rand() % 7) {
		case 0:
			dst->data[at] ^= (uint8_t)(1u << (next_rand() % 8));
			break;
		case 1:
			dst->data[at] = interesting[next_rand() % sizeof(interesting)];
			break;
		case 2:
			dst->data[at] = (uint8_t)next_rand();
			break;
		case 3:		/* cut */
			buf_setlen(dst, at);
			break;
		case 4: {	/* delete a range */
			size_t len = 1 + next_rand() % 16;

			if (at + len > dst->len)
				len = dst->len - at;
			memmove(dst->data + at, dst->data + at + len, dst->len - at - len);
			buf_setlen(dst, dst->len - len);
			break;
		}
		case 5: {	/* insert random bytes */
			size_t len = 1 + next_rand() % 8, old = dst->len;

			buf_grow(dst, len);
			memmove(dst->data + at + len, dst->data + at, old - at);
			for (size_t i = 0; i < len; i++)
				dst->data[at + i] = (uint8_t)next_rand();
			buf_setlen(dst, old + len);
			break;
		}
		default: {	/* duplicate a range at the end */
			size_t len = 1 + next_rand() % 64;

			if (at + len > dst->len)
				len = dst->len - at;
			buf_grow(dst, len);
			memcpy(dst->data + dst->len, dst->data + at, len);
			buf_setlen(dst, dst->len + len);
			break;
		}
		}
	}
}

static int read_file(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	uint8_t chunk[65536];
	size_t n;

	if (!f)
		return -1;
	buf_reset(out);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(out, chunk, n);
	fclose(f);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

long fuzz_replay_corpus(const char *name, fuzz_check_fn check, size_t *accepted, size_t *failed)
{
	const char *srcdir = getenv("CAIRN_SRCDIR");
	char *dir = xasprintf("%s/tests/fuzz/%s", srcdir && *srcdir ? srcdir : ".", name);
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t count = 0;
	struct buf b = BUF_INIT;

	if (!d) {
		free(dir);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xrealloc(names, (count + 1) * sizeof(*names));
		names[count++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, count, sizeof(*names), name_cmp);
	for (size_t i = 0; i < count; i++) {
		char *path = xasprintf("%s/%s", dir, names[i]);
		int rc;

		if (read_file(path, &b) < 0)
			tap_bail("cannot read %s", path);
		rc = check(b.data, b.len);
		if (rc < 0) {
			diag("corpus file %s/%s fails", name, names[i]);
			(*failed)++;
		}
		*accepted += rc == 1;
		free(path);
		free(names[i]);
	}
	free(names);
	free(dir);
	buf_free(&b);
	return (long)count;
}
