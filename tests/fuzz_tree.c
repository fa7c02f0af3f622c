/*
 * fuzz_tree.c - fuzz target for tree_decode, and its replay driver.
 *
 * The property: tree_decode never reads out of bounds, never crashes, only
 * ever answers 0, -EBADMSG or -ENOTSUP, and whatever it accepts re-encodes
 * to the very same bytes (the encoding is canonical).
 *
 * Built two ways:
 *  - with clang -fsanitize=fuzzer,address (tests/fuzz/run.sh): libFuzzer
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
#include "fuzzlib.h"
#include "tap.h"

#define MUTATIONS 20000

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

static void replay_corpus(void)
{
	size_t decoded = 0, failed = 0;
	long count = fuzz_replay_corpus("tree", check_one, &decoded, &failed);

	ok(count > 0, "corpus tests/fuzz/tree has %ld inputs", count);
	ok(!failed, "every corpus input is refused cleanly or canonical (%zu decoded)", decoded);
}

static void replay_mutations(void)
{
	struct buf seed = BUF_INIT, m = BUF_INIT;
	size_t decoded = 0, failed = 0;

	seed_tree(&seed);
	is_int(check_one(seed.data, seed.len), 1, "the seed tree decodes and is canonical");
	for (int i = 0; i < MUTATIONS; i++) {
		int rc;

		fuzz_mutate(&seed, &m);
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
