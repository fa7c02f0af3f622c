/*
 * fuzz_tree.c - fuzz target for tree_decode, and its replay driver.
 *
 * The property: tree_decode never reads out of bounds, never crashes, only
 * ever answers 0, -EBADMSG or -ENOTSUP, and whatever it accepts re-encodes
 * to the very same bytes (the encoding is canonical).
 *
 * Built two ways:
 *  - with clang -fsanitize=fuzzer,address (tests/fuzz/run-tree.sh): libFuzzer
 *    calls LLVMFuzzerTestOneInput;
 *  - with -DFUZZ_REPLAY (make check: tests/fuzz_tree): main() runs the same
 *    check over the committed corpus tests/fuzz/tree/ and over 20,000
 *    deterministic mutations of a valid tree, as TAP.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 0 refused cleanly, 1 decoded and canonical, -1 the property failed. */
static int check_one(const uint8_t *data, size_t size)
{
	struct tree t;
	struct buf again = BUF_INIT;
	int rc = tree_decode(data, size, &t), res = 1;

	if (rc < 0) {
		if ((rc != -EBADMSG && rc != -ENOTSUP) || t.count || t.entries) {
			fprintf(stderr, "tree_decode: unexpected %d or non-empty tree: %s\n",
				rc, err_msg());
			return -1;
		}
		return 0;
	}
	if (tree_encode(&t, &again) < 0) {
		fprintf(stderr, "tree_encode of a decoded tree failed: %s\n", err_msg());
		res = -1;
	} else if (again.len != size || memcmp(again.data, data, size) != 0) {
		fprintf(stderr, "decoded tree re-encodes to other bytes (%zu vs %zu)\n",
			again.len, size);
		res = -1;
	} else {
		/* every entry is found by name */
		for (size_t i = 0; i < t.count; i++)
			if (tree_find(&t, t.entries[i].name) != &t.entries[i]) {
				fprintf(stderr, "tree_find misses entry %zu\n", i);
				res = -1;
			}
	}
	buf_free(&again);
	tree_free(&t);
	return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (check_one(data, size) < 0)
		abort();
	return 0;
}

#ifdef FUZZ_REPLAY
#include <dirent.h>

#include "tap.h"

#define MUTATIONS 20000

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t next_rand(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1Dull;
}

/* A valid tree with one entry of each type, xattrs and several blobs. */
static void seed_tree(struct buf *out)
{
	struct tree t = TREE_INIT;
	struct tree_entry e;
	uint8_t ids[3][TREE_ID_LEN];
	struct tree_xattr xs[2] = {
		{ (char *)"user.a", (uint8_t *)"\x00\x01\x02", 3 },
		{ (char *)"user.b", NULL, 0 },
	};
	static const uint8_t types[] = { TREE_REG, TREE_DIR, TREE_SYMLINK, TREE_CHR,
					 TREE_BLK, TREE_FIFO, TREE_SOCK };
	static const char *names[] = { "reg", "dir", "lnk", "chr", "blk", "fifo", "sock" };

	tap_fill_random(ids, sizeof(ids), 42);
	for (size_t i = 0; i < sizeof(types); i++) {
		memset(&e, 0, sizeof(e));
		e.name = (char *)names[i];
		e.type = types[i];
		e.mode = 0755;
		e.uid = 1000;
		e.gid = 1000;
		e.mtime.sec = 1700000000;
		e.mtime.nsec = 5;
		e.ino = 10 + i;
		e.dev = 2049;
		e.nlink = 1;
		if (types[i] == TREE_REG) {
			e.size = 1000;
			e.blobs = ids;
			e.nblobs = 3;
			e.xattrs = xs;
			e.nxattrs = 2;
			e.link_group = 4;
		} else if (types[i] == TREE_DIR) {
			memcpy(e.subtree, ids[1], TREE_ID_LEN);
			e.xattrs = xs + 1;
			e.nxattrs = 1;
		} else if (types[i] == TREE_SYMLINK) {
			e.target = (char *)"../target";
		} else if (types[i] == TREE_CHR || types[i] == TREE_BLK) {
			e.rdev_major = 8;
			e.rdev_minor = 1;
		}
		if (tree_add(&t, &e) < 0)
			tap_bail("seed tree: %s", err_msg());
	}
	if (tree_encode(&t, out) < 0)
		tap_bail("seed tree: %s", err_msg());
	tree_free(&t);
}

/* One random mutation of src into dst: flips, interesting bytes, cuts,
 * inserts, duplicated or deleted ranges. */
static void mutate(const struct buf *src, struct buf *dst)
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

static void replay_corpus(void)
{
	const char *srcdir = getenv("CAIRN_SRCDIR");
	char *dir = xasprintf("%s/tests/fuzz/tree", srcdir && *srcdir ? srcdir : ".");
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t count = 0, decoded = 0;
	struct buf b = BUF_INIT;
	int good = 1;

	if (!d)
		tap_bail("cannot open the corpus %s", dir);
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
		rc = check_one(b.data, b.len);
		if (rc < 0) {
			diag("corpus file %s fails", names[i]);
			good = 0;
		}
		decoded += rc == 1;
		free(path);
		free(names[i]);
	}
	ok(count > 0, "corpus %s has %zu inputs", dir, count);
	ok(good, "every corpus input is refused cleanly or canonical (%zu decoded)", decoded);
	free(names);
	free(dir);
	buf_free(&b);
}

static void replay_mutations(void)
{
	struct buf seed = BUF_INIT, m = BUF_INIT;
	size_t decoded = 0, failed = 0;

	seed_tree(&seed);
	is_int(check_one(seed.data, seed.len), 1, "the seed tree decodes and is canonical");
	for (int i = 0; i < MUTATIONS; i++) {
		int rc;

		mutate(&seed, &m);
		rc = check_one(m.data, m.len);
		if (rc < 0 && failed++ < 5)
			diag("mutation %d fails", i);
		decoded += rc == 1;
	}
	is_int(failed, 0, "%d mutations: refused cleanly or canonical (%zu decoded)",
	       MUTATIONS, decoded);
	buf_free(&seed);
	buf_free(&m);
}

int main(void)
{
	replay_corpus();
	replay_mutations();
	return tap_done();
}
#endif
