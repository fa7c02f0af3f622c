/*
 * test_tree.c - sync/tree: round trips of every entry type and field,
 * canonical encoding, the byte layout of docs/format.md ("Trees") checked
 * with an independent writer, and every malformed input refused with the
 * right code.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "buf.h"
#include "err.h"
#include "tap.h"
#include "tree.h"

/* ---- helpers ------------------------------------------------------------- */

static void mkid(uint8_t id[TREE_ID_LEN], uint64_t seed)
{
	tap_fill_random(id, TREE_ID_LEN, seed);
	id[0] |= 1;	/* never all zero */
}

static int time_eq(struct tree_time a, struct tree_time b)
{
	return a.sec == b.sec && a.nsec == b.nsec;
}

static int str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* 1 when a and b hold the same entry; xattrs compared in order. */
static int entry_eq(const struct tree_entry *a, const struct tree_entry *b)
{
	if (!str_eq(a->name, b->name) || a->type != b->type || a->mode != b->mode ||
	    a->uid != b->uid || a->gid != b->gid || a->size != b->size ||
	    !time_eq(a->mtime, b->mtime) || !time_eq(a->ctime, b->ctime) ||
	    a->ino != b->ino || a->dev != b->dev || a->nlink != b->nlink ||
	    a->link_group != b->link_group || a->rdev_major != b->rdev_major ||
	    a->rdev_minor != b->rdev_minor || !str_eq(a->target, b->target) ||
	    a->nblobs != b->nblobs || a->nxattrs != b->nxattrs ||
	    memcmp(a->subtree, b->subtree, TREE_ID_LEN) != 0)
		return 0;
	if (a->nblobs && memcmp(a->blobs, b->blobs, a->nblobs * TREE_ID_LEN) != 0)
		return 0;
	for (size_t i = 0; i < a->nxattrs; i++) {
		const struct tree_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];

		if (strcmp(x->name, y->name) != 0 || x->value_len != y->value_len ||
		    (x->value_len && memcmp(x->value, y->value, x->value_len) != 0))
			return 0;
	}
	return 1;
}

/* A plain entry of type type named name, with every common field set. */
static void base_entry(struct tree_entry *e, const char *name, uint8_t type, uint64_t seed)
{
	memset(e, 0, sizeof(*e));
	e->name = (char *)name;
	e->type = type;
	e->mode = 0644;
	e->uid = 1000 + (uint32_t)seed;
	e->gid = 100;
	e->mtime.sec = 1700000000 + (int64_t)seed;
	e->mtime.nsec = 123456789;
	e->ctime.sec = 1700000001 + (int64_t)seed;
	e->ctime.nsec = 987654321;
	e->ino = 4242 + seed;
	e->dev = 0x803;
	e->nlink = 1;
	if (type == TREE_DIR)
		mkid(e->subtree, seed + 7);
	if (type == TREE_SYMLINK)
		e->target = (char *)"target";
}

/* Encodes t; on failure bails (the caller expected success). */
static void encode_ok(const struct tree *t, struct buf *out)
{
	buf_reset(out);
	if (tree_encode(t, out) < 0)
		tap_bail("tree_encode: %s", err_msg());
}

/* Decode, compare to t entry by entry (t canonicalized), re-encode equal. */
static void check_round_trip(struct tree *t, const char *what)
{
	struct buf enc = BUF_INIT, again = BUF_INIT;
	struct tree d;
	int rc, same = 1;

	encode_ok(t, &enc);
	rc = tree_decode(enc.data, enc.len, &d);
	is_int(rc, 0, "%s: decodes (%s)", what, rc < 0 ? err_msg() : "ok");
	is_int(tree_canonicalize(t), 0, "%s: canonicalize", what);
	is_int(d.count, t->count, "%s: %zu entries", what, t->count);
	for (size_t i = 0; i < d.count && i < t->count && same; i++)
		if (!entry_eq(&d.entries[i], &t->entries[i])) {
			diag("entry %zu (%s) differs", i, t->entries[i].name);
			same = 0;
		}
	ok(same, "%s: every field survives", what);
	encode_ok(&d, &again);
	is_mem(again.data, again.len, enc.data, enc.len, "%s: re-encoding gives the same bytes", what);
	tree_free(&d);
	buf_free(&enc);
	buf_free(&again);
}

/* ---- an independent writer of the documented layout ---------------------- */

static void le(struct buf *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)	/* n may exceed 8: zero bytes then */
		buf_addc(b, i < 8 ? (char)(uint8_t)(v >> (8 * i)) : 0);
}

static void raw_head(struct buf *b, uint32_t count)
{
	buf_add(b, "cairntre", 8);
	le(b, 1, 1);
	le(b, count, 4);
}

struct raw {
	const char *name;
	size_t name_len;	/* 0: strlen(name) */
	uint8_t type;
	uint16_t mode;
	uint64_t size;
	uint32_t mnsec;
	uint64_t link_group;
};

/* Name and common fields (docs/format.md, "Trees", entry layout), with
 * fixed values for the fields a case does not care about. */
static void raw_common(struct buf *b, const struct raw *r)
{
	size_t nl = r->name_len ? r->name_len : strlen(r->name);

	le(b, nl, 1);
	buf_add(b, r->name, nl);
	le(b, r->type, 1);
	le(b, r->mode, 2);
	le(b, 1000, 4);		/* uid */
	le(b, 100, 4);		/* gid */
	le(b, r->size, 8);
	le(b, (uint64_t)-5, 8);	/* mtime seconds: before the epoch */
	le(b, r->mnsec, 4);
	le(b, 1700000000, 8);	/* ctime */
	le(b, 5, 4);
	le(b, 77, 8);		/* ino */
	le(b, 0x803, 8);	/* dev */
	le(b, 1, 4);		/* nlink */
	le(b, r->link_group, 8);
}

/* A whole fifo entry named name with no xattrs (the smallest entry). */
static void raw_fifo(struct buf *b, const char *name)
{
	struct raw r = { .name = name, .type = TREE_FIFO, .mode = 0600 };

	raw_common(b, &r);
	le(b, 0, 2);
}

static void decode_fails(const struct buf *b, int code, const char *what)
{
	struct tree t;
	int rc = tree_decode(b->data, b->len, &t);

	is_int(rc, code, "decode refuses %s (%s)", what, err_msg());
	ok(t.count == 0 && t.entries == NULL, "  and leaves the tree empty");
}

/* ---- tests --------------------------------------------------------------- */

static void test_empty(void)
{
	struct tree t = TREE_INIT, d;
	struct buf b = BUF_INIT;
	static const uint8_t want[] = { 'c', 'a', 'i', 'r', 'n', 't', 'r', 'e', 1, 0, 0, 0, 0 };

	encode_ok(&t, &b);
	is_mem(b.data, b.len, want, sizeof(want), "empty tree is magic, version 1, count 0");
	is_int(tree_decode(b.data, b.len, &d), 0, "empty tree decodes");
	is_int(d.count, 0, "  with no entries");
	ok(tree_find(&d, "x") == NULL, "  and finds nothing");
	tree_free(&d);
	buf_free(&b);
}

static void test_every_type(void)
{
	struct tree t = TREE_INIT;
	struct tree_entry e;
	uint8_t blobs[3][TREE_ID_LEN];
	uint8_t binval[300];
	char target[TREE_TARGET_MAX + 1];
	struct tree_xattr xs[4];

	for (int i = 0; i < 3; i++)
		mkid(blobs[i], 100 + (uint64_t)i);
	tap_fill_random(binval, sizeof(binval), 9);
	binval[3] = 0;	/* NUL inside a value is fine */
	memset(target, 'L', TREE_TARGET_MAX);
	target[TREE_TARGET_MAX] = '\0';
	target[0] = '/';
	/* given out of order: the encoding sorts them */
	xs[0] = (struct tree_xattr){ (char *)"user.z", binval, sizeof(binval) };
	xs[1] = (struct tree_xattr){ (char *)"security.selinux", (uint8_t *)"ctx", 3 };
	xs[2] = (struct tree_xattr){ (char *)"user.empty", NULL, 0 };
	xs[3] = (struct tree_xattr){ (char *)"trusted.x\xff", binval, 1 };

	base_entry(&e, "file", TREE_REG, 1);
	e.mode = 07755;
	e.size = 3 * 1024 * 1024 + 5;
	e.blobs = blobs;
	e.nblobs = 3;
	e.nlink = 2;
	e.link_group = 77;
	e.xattrs = xs;
	e.nxattrs = 4;
	e.uid = UINT32_MAX;
	e.gid = UINT32_MAX - 1;
	e.ino = UINT64_MAX;
	e.dev = UINT64_MAX - 1;
	e.mtime.sec = -1234567890;	/* before the epoch */
	e.mtime.nsec = 999999999;
	e.ctime.sec = INT64_MAX;
	is_int(tree_add(&t, &e), 0, "add a regular file with every field");

	base_entry(&e, "empty-file", TREE_REG, 2);
	is_int(tree_add(&t, &e), 0, "add an empty file (no blobs)");

	base_entry(&e, "link-to-file", TREE_REG, 3);
	e.size = 3 * 1024 * 1024 + 5;
	e.blobs = blobs;
	e.nblobs = 3;
	e.nlink = 2;
	e.link_group = 77;
	e.ino = UINT64_MAX;
	is_int(tree_add(&t, &e), 0, "add a second link of the same file");

	base_entry(&e, "dir", TREE_DIR, 4);
	e.mode = 01777;
	e.nlink = 5;
	e.xattrs = xs + 1;
	e.nxattrs = 1;
	is_int(tree_add(&t, &e), 0, "add a directory");

	base_entry(&e, "sym", TREE_SYMLINK, 5);
	e.mode = 0777;
	e.target = target;
	e.size = TREE_TARGET_MAX;
	is_int(tree_add(&t, &e), 0, "add a symlink with a 4095-byte target");

	base_entry(&e, "tty", TREE_CHR, 6);
	e.rdev_major = 4;
	e.rdev_minor = 0xfffff;
	is_int(tree_add(&t, &e), 0, "add a character device");

	base_entry(&e, "sda", TREE_BLK, 7);
	e.rdev_major = UINT32_MAX;
	e.rdev_minor = 1;
	e.link_group = 9;
	e.nlink = 2;
	is_int(tree_add(&t, &e), 0, "add a block device (hard-linked)");

	base_entry(&e, "fifo", TREE_FIFO, 8);
	is_int(tree_add(&t, &e), 0, "add a fifo");

	base_entry(&e, "sock", TREE_SOCK, 9);
	e.mode = 0;
	is_int(tree_add(&t, &e), 0, "add a socket");

	ok(!t.sorted, "added out of order: not marked sorted");
	ok(tree_find(&t, "sock") && tree_find(&t, "sock")->type == TREE_SOCK,
	   "tree_find on an unsorted tree scans");
	check_round_trip(&t, "every type");
	ok(t.sorted && strcmp(t.entries[0].name, "dir") == 0, "canonicalized: sorted by name");
	ok(strcmp(t.entries[3].xattrs[0].name, "security.selinux") == 0 &&
	   strcmp(t.entries[3].xattrs[3].name, "user.z") == 0, "  xattrs sorted by name");
	tree_free(&t);
}

static void test_canonical(void)
{
	struct tree a = TREE_INIT, b = TREE_INIT, c = TREE_INIT;
	struct buf ea = BUF_INIT, eb = BUF_INIT, ec = BUF_INIT;
	struct tree_xattr xs[3] = {
		{ (char *)"user.a", (uint8_t *)"1", 1 },
		{ (char *)"user.b", (uint8_t *)"2", 1 },
		{ (char *)"user.c", (uint8_t *)"3", 1 },
	};
	struct tree_xattr xr[3] = { xs[2], xs[0], xs[1] };
	char name[32];
	struct tree_entry e;
	const int n = 50;

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "n%03d", i);
		base_entry(&e, name, TREE_FIFO, (uint64_t)i);
		e.xattrs = xs;
		e.nxattrs = 3;
		tree_add(&a, &e);
		snprintf(name, sizeof(name), "n%03d", n - 1 - i);
		base_entry(&e, name, TREE_FIFO, (uint64_t)(n - 1 - i));
		e.xattrs = xr;
		e.nxattrs = 3;
		tree_add(&b, &e);
		snprintf(name, sizeof(name), "n%03d", (i * 17) % n);
		base_entry(&e, name, TREE_FIFO, (uint64_t)((i * 17) % n));
		e.xattrs = (i & 1) ? xs : xr;
		e.nxattrs = 3;
		tree_add(&c, &e);
	}
	encode_ok(&a, &ea);
	encode_ok(&b, &eb);
	encode_ok(&c, &ec);
	is_mem(eb.data, eb.len, ea.data, ea.len, "reverse insertion order: same bytes");
	is_mem(ec.data, ec.len, ea.data, ea.len, "shuffled insertion and xattr order: same bytes");
	is_int(tree_canonicalize(&c), 0, "canonicalize");
	buf_reset(&ec);
	encode_ok(&c, &ec);
	is_mem(ec.data, ec.len, ea.data, ea.len, "  changes no byte");
	ok(tree_find(&c, "n017") && tree_find(&c, "n017")->uid == 1017, "binary search finds n017");
	ok(tree_find(&c, "n000") && tree_find(&c, "n049"), "  and the first and the last");
	ok(!tree_find(&c, "n050") && !tree_find(&c, "a") && !tree_find(&c, "n0"), "  and misses");
	tree_free(&a);
	tree_free(&b);
	tree_free(&c);
	buf_free(&ea);
	buf_free(&eb);
	buf_free(&ec);
}

static void test_unicode(void)
{
	static const char *names[] = {
		"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",	/* 日本語 */
		"caf\xc3\xa9",				/* café */
		"\xf0\x9f\x93\x81 folder",		/* 📁 */
		"Zebra",
		"a",
		"not-utf8-\xff\xfe",
		"with space and \t tab",
		".hidden",
		"...",
		"\x01",
	};
	static const char *sorted[] = {
		"\x01", "...", ".hidden", "Zebra", "a", "caf\xc3\xa9", "not-utf8-\xff\xfe",
		"with space and \t tab", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		"\xf0\x9f\x93\x81 folder",
	};
	const size_t n = sizeof(names) / sizeof(names[0]);
	char longname[TREE_NAME_MAX + 1];
	struct tree t = TREE_INIT;
	struct tree_entry e;
	int order = 1;

	for (size_t i = 0; i < n; i++) {
		base_entry(&e, names[i], TREE_REG, i);
		is_int(tree_add(&t, &e), 0, "add name %zu", i);
	}
	memset(longname, '\xe2', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	base_entry(&e, longname, TREE_REG, 99);
	is_int(tree_add(&t, &e), 0, "add a 255-byte name");
	check_round_trip(&t, "unicode and odd names");
	for (size_t i = 0, j = 0; i < t.count; i++) {
		if (strcmp(t.entries[i].name, longname) == 0)
			continue;	/* 0xe2...: between "with..." and 日本語 */
		if (j >= n || strcmp(t.entries[i].name, sorted[j++]) != 0)
			order = 0;
	}
	ok(tree_find(&t, longname) == &t.entries[8], "the 255-byte name sorts in its place");
	ok(order, "names sorted in byte order (unsigned)");
	ok(tree_find(&t, "caf\xc3\xa9") != NULL, "find café");
	ok(tree_find(&t, "cafe\xcc\x81") == NULL, "  no Unicode normalisation: decomposed café is another name");
	tree_free(&t);
}

static void test_big(void)
{
	const size_t n = 100000;
	struct tree t = TREE_INIT, d;
	struct buf enc = BUF_INIT, again = BUF_INIT;
	uint8_t blob[TREE_ID_LEN];
	struct tree_entry e;
	char name[64];
	size_t *perm = xmalloc(n * sizeof(*perm));
	int found = 1, same = 1;
	clock_t t0 = clock();

	mkid(blob, 5);
	for (size_t i = 0; i < n; i++)
		perm[i] = i;
	for (size_t i = n - 1; i > 0; i--) {	/* deterministic shuffle */
		size_t j = (i * 2654435761u + 12345) % (i + 1), x = perm[i];

		perm[i] = perm[j];
		perm[j] = x;
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = perm[k];

		snprintf(name, sizeof(name), "node_modules-entry-%07zu.js", i);
		base_entry(&e, name, TREE_REG, i);
		e.size = 10 + i;
		e.blobs = &blob;
		e.nblobs = 1;
		if (tree_add(&t, &e) < 0)
			tap_bail("tree_add %s: %s", name, err_msg());
	}
	encode_ok(&t, &enc);
	diag("100,000 entries: %zu bytes", enc.len);
	is_int(tree_decode(enc.data, enc.len, &d), 0, "100,000 entries decode");
	is_int(d.count, n, "  all of them");
	is_int(tree_canonicalize(&t), 0, "canonicalize 100,000");
	for (size_t i = 0; i < n && same; i++)
		same = entry_eq(&d.entries[i], &t.entries[i]);
	ok(same, "  every field of every entry survives");
	for (size_t i = 0; i < n; i += 997) {
		snprintf(name, sizeof(name), "node_modules-entry-%07zu.js", i);
		const struct tree_entry *f = tree_find(&d, name);

		if (!f || f->size != 10 + i)
			found = 0;
	}
	ok(found, "  binary search finds sampled entries");
	encode_ok(&d, &again);
	is_mem(again.data, again.len, enc.data, enc.len, "  re-encoding gives the same bytes");
	diag("100,000 entries: add+encode+decode+encode in %.2f s",
	     (double)(clock() - t0) / CLOCKS_PER_SEC);
	free(perm);
	tree_free(&t);
	tree_free(&d);
	buf_free(&enc);
	buf_free(&again);
}

/* The exact bytes of docs/format.md, written by the independent writer. */
static void test_layout(void)
{
	struct tree t = TREE_INIT;
	struct buf want = BUF_INIT, got = BUF_INIT;
	uint8_t blob[TREE_ID_LEN], sub[TREE_ID_LEN];
	struct tree_xattr x = { (char *)"user.k", (uint8_t *)"\x00v", 2 };
	struct tree_entry e;

	mkid(blob, 1);
	mkid(sub, 2);
	memset(&e, 0, sizeof(e));
	e.name = (char *)"f";
	e.type = TREE_REG;
	e.mode = 0640;
	e.uid = 1000;
	e.gid = 100;
	e.size = 11;
	e.mtime.sec = -5;
	e.mtime.nsec = 7;
	e.ctime.sec = 1700000000;
	e.ctime.nsec = 5;
	e.ino = 77;
	e.dev = 0x803;
	e.nlink = 1;
	e.blobs = &blob;
	e.nblobs = 1;
	e.xattrs = &x;
	e.nxattrs = 1;
	tree_add(&t, &e);
	e.name = (char *)"d";
	e.type = TREE_DIR;
	e.size = 4096;
	e.blobs = NULL;
	e.nblobs = 0;
	e.xattrs = NULL;
	e.nxattrs = 0;
	memcpy(e.subtree, sub, TREE_ID_LEN);
	tree_add(&t, &e);
	memset(e.subtree, 0, TREE_ID_LEN);
	e.name = (char *)"s";
	e.type = TREE_SYMLINK;
	e.size = 3;
	e.target = (char *)"../";
	tree_add(&t, &e);
	e.name = (char *)"c";
	e.type = TREE_CHR;
	e.size = 0;
	e.target = NULL;
	e.rdev_major = 1;
	e.rdev_minor = 3;
	tree_add(&t, &e);

	raw_head(&want, 4);
	struct raw rc = { .name = "c", .type = TREE_CHR, .mode = 0640, .mnsec = 7 };
	raw_common(&want, &rc);
	le(&want, 1, 4);
	le(&want, 3, 4);
	le(&want, 0, 2);
	struct raw rd = { .name = "d", .type = TREE_DIR, .mode = 0640, .size = 4096, .mnsec = 7 };
	raw_common(&want, &rd);
	buf_add(&want, sub, TREE_ID_LEN);
	le(&want, 0, 2);
	struct raw rf = { .name = "f", .type = TREE_REG, .mode = 0640, .size = 11, .mnsec = 7 };
	raw_common(&want, &rf);
	le(&want, 1, 4);
	buf_add(&want, blob, TREE_ID_LEN);
	le(&want, 1, 2);
	le(&want, 6, 1);
	buf_add(&want, "user.k", 6);
	le(&want, 2, 4);
	buf_add(&want, "\x00v", 2);
	struct raw rs = { .name = "s", .type = TREE_SYMLINK, .mode = 0640, .size = 3, .mnsec = 7 };
	raw_common(&want, &rs);
	le(&want, 3, 2);
	buf_add(&want, "../", 3);
	le(&want, 0, 2);

	encode_ok(&t, &got);
	is_mem(got.data, got.len, want.data, want.len, "encoding matches docs/format.md byte by byte");
	buf_reset(&want);
	raw_head(&want, 1);
	raw_fifo(&want, "x");
	is_int(want.len, TREE_HEADER_LEN + TREE_ENTRY_MIN_LEN, "smallest entry is %d bytes",
	       TREE_ENTRY_MIN_LEN);
	tree_free(&t);
	buf_free(&want);
	buf_free(&got);
}

static void test_from_stat(void)
{
	char *dir = tap_mkdtemp("tree");
	char *f = xasprintf("%s/f", dir), *l = xasprintf("%s/l", dir);
	char *p = xasprintf("%s/p", dir), *s = xasprintf("%s/s", dir);
	struct tree_entry e;
	struct stat st;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	fd = open(f, O_CREAT | O_WRONLY, 0640);
	if (fd < 0 || write(fd, "hello", 5) != 5 || close(fd) < 0)
		tap_bail("write %s", f);
	chmod(f, 02750);
	if (symlink("f", l) < 0 || mkfifo(p, 0600) < 0)
		tap_bail("symlink/mkfifo in %s", dir);
	memset(&e, 0, sizeof(e));
	lstat(f, &st);
	is_int(tree_entry_from_stat(&e, &st), 0, "from_stat: regular file");
	ok(e.type == TREE_REG && e.mode == 02750 && e.size == 5 && e.ino == st.st_ino &&
	   e.dev == st.st_dev && e.mtime.sec == st.st_mtim.tv_sec &&
	   e.mtime.nsec == (uint32_t)st.st_mtim.tv_nsec && e.ctime.nsec == (uint32_t)st.st_ctim.tv_nsec &&
	   e.nlink == 1 && e.uid == st.st_uid, "  type, mode with setgid, size, times, inode");
	lstat(dir, &st);
	tree_entry_from_stat(&e, &st);
	is_int(e.type, TREE_DIR, "from_stat: directory");
	lstat(l, &st);
	tree_entry_from_stat(&e, &st);
	ok(e.type == TREE_SYMLINK && e.size == 1, "from_stat: symlink");
	lstat(p, &st);
	tree_entry_from_stat(&e, &st);
	ok(e.type == TREE_FIFO && e.mode == 0600, "from_stat: fifo");
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && lstat(s, &st) == 0) {
		tree_entry_from_stat(&e, &st);
		is_int(e.type, TREE_SOCK, "from_stat: socket");
	} else {
		tap_skip(1, "cannot bind a unix socket in TMPDIR");
	}
	if (fd >= 0)
		close(fd);
	if (lstat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)) {
		tree_entry_from_stat(&e, &st);
		ok(e.type == TREE_CHR && e.rdev_major == 1 && e.rdev_minor == 3, "from_stat: /dev/null is 1,3");
	} else {
		tap_skip(1, "no /dev/null character device");
	}
	st.st_mode = 0170000;
	is_int(tree_entry_from_stat(&e, &st), -EINVAL, "from_stat: unknown file type refused");
	tap_rmtree(dir);
	free(dir);
	free(f);
	free(l);
	free(p);
	free(s);
}

/* Entries that cannot be stored: tree_add says -EINVAL. */
static void test_add_refusals(void)
{
	struct tree t = TREE_INIT;
	struct tree_entry e;
	uint8_t blob[2][TREE_ID_LEN];
	char n256[257], t4096[4097];
	struct tree_xattr x;
	struct tree_xattr many[TREE_XATTRS_MAX + 1];

	mkid(blob[0], 1);
	mkid(blob[1], 2);
	memset(n256, 'n', 256);
	n256[256] = '\0';
	memset(t4096, 't', 4096);
	t4096[4096] = '\0';

#define REFUSE(setup, what) do { \
		base_entry(&e, "x", TREE_REG, 1); \
		setup; \
		is_int(tree_add(&t, &e), -EINVAL, "add refuses %s (%s)", what, err_msg()); \
	} while (0)
	REFUSE(e.name = NULL, "no name");
	REFUSE(e.name = (char *)"", "an empty name");
	REFUSE(e.name = (char *)".", "\".\"");
	REFUSE(e.name = (char *)"..", "\"..\"");
	REFUSE(e.name = (char *)"a/b", "a name with '/'");
	REFUSE(e.name = n256, "a 256-byte name");
	REFUSE(e.type = 0, "type 0");
	REFUSE(e.type = 8, "type 8");
	REFUSE(e.mode = 010644, "mode with file-type bits");
	REFUSE(e.mtime.nsec = 1000000000, "mtime nsec of 10^9");
	REFUSE(e.ctime.nsec = UINT32_MAX, "ctime nsec out of range");
	REFUSE(base_entry(&e, "d", TREE_DIR, 1); memset(e.subtree, 0, TREE_ID_LEN), "a directory without a subtree id");
	REFUSE(base_entry(&e, "d", TREE_DIR, 1); e.link_group = 3, "a directory with a hard-link group");
	REFUSE(e.size = 0; e.blobs = blob; e.nblobs = 1, "an empty file with a blob");
	REFUSE(e.size = 10, "a non-empty file without blobs");
	REFUSE(e.size = 1; e.blobs = blob; e.nblobs = 2, "more blobs than bytes");
	REFUSE(e.size = (uint64_t)BLOB_MAX_RAW + 1; e.blobs = blob; e.nblobs = 1, "a blob larger than BLOB_MAX_RAW");
	REFUSE(e.size = 10; e.nblobs = 1, "a blob count without blobs");
	REFUSE(e.size = 10; memset(blob[1], 0, TREE_ID_LEN); e.blobs = blob; e.nblobs = 2, "an all-zero blob id");
	mkid(blob[1], 2);
	REFUSE(e.subtree[5] = 1, "a subtree id on a file");
	REFUSE(e.target = (char *)"t", "a symlink target on a file");
	REFUSE(e.rdev_minor = 1, "device numbers on a file");
	REFUSE(base_entry(&e, "d", TREE_DIR, 1); e.blobs = blob; e.nblobs = 1, "blobs on a directory");
	REFUSE(base_entry(&e, "l", TREE_SYMLINK, 1); e.target = NULL, "a symlink without a target");
	REFUSE(base_entry(&e, "l", TREE_SYMLINK, 1); e.target = (char *)"", "an empty symlink target");
	REFUSE(base_entry(&e, "l", TREE_SYMLINK, 1); e.target = t4096, "a 4096-byte symlink target");
	x = (struct tree_xattr){ (char *)"", NULL, 0 };
	REFUSE(e.xattrs = &x; e.nxattrs = 1, "an empty xattr name");
	x = (struct tree_xattr){ n256, NULL, 0 };
	REFUSE(e.xattrs = &x; e.nxattrs = 1, "a 256-byte xattr name");
	x = (struct tree_xattr){ (char *)"user.x", blob[0], TREE_XATTR_VALUE_MAX + 1 };
	REFUSE(e.xattrs = &x; e.nxattrs = 1, "a 65537-byte xattr value");
	x = (struct tree_xattr){ (char *)"user.x", NULL, 3 };
	REFUSE(e.xattrs = &x; e.nxattrs = 1, "an xattr value length without a value");
	for (int i = 0; i <= TREE_XATTRS_MAX; i++)
		many[i] = (struct tree_xattr){ (char *)"user.x", NULL, 0 };
	REFUSE(e.xattrs = many; e.nxattrs = TREE_XATTRS_MAX + 1, "4097 xattrs");
#undef REFUSE
	is_int(t.count, 0, "nothing was added");
	tree_free(&t);
}

static void test_duplicates(void)
{
	struct tree t = TREE_INIT;
	struct buf b = BUF_INIT;
	struct tree_entry e;
	struct tree_xattr xs[2] = {
		{ (char *)"user.a", (uint8_t *)"1", 1 },
		{ (char *)"user.a", (uint8_t *)"2", 1 },
	};

	base_entry(&e, "same", TREE_FIFO, 1);
	tree_add(&t, &e);
	base_entry(&e, "other", TREE_FIFO, 2);
	tree_add(&t, &e);
	base_entry(&e, "same", TREE_SOCK, 3);
	is_int(tree_add(&t, &e), 0, "add accepts a duplicate name (found later)");
	buf_adds(&b, "keep");
	is_int(tree_encode(&t, &b), -EINVAL, "encode refuses a duplicate name (%s)", err_msg());
	is_str(buf_str(&b), "keep", "  and leaves the buffer as it was");
	is_int(tree_canonicalize(&t), -EINVAL, "canonicalize refuses a duplicate name");
	tree_free(&t);

	base_entry(&e, "x", TREE_FIFO, 1);
	e.xattrs = xs;
	e.nxattrs = 2;
	tree_add(&t, &e);
	is_int(tree_encode(&t, &b), -EINVAL, "encode refuses a duplicate xattr (%s)", err_msg());
	is_int(b.len, 4, "  and leaves the buffer as it was");
	is_int(tree_canonicalize(&t), -EINVAL, "canonicalize refuses a duplicate xattr");
	tree_free(&t);
	buf_free(&b);
}

static void test_decode_refusals(void)
{
	struct buf good = BUF_INIT, b = BUF_INIT;
	struct tree t = TREE_INIT, d;
	struct tree_entry e;
	uint8_t blob[TREE_ID_LEN];
	struct tree_xattr x = { (char *)"user.v", (uint8_t *)"val", 3 };
	int all = 1, rc;

	/* a valid tree of several types, for truncation and trailing bytes */
	mkid(blob, 3);
	base_entry(&e, "a-file", TREE_REG, 1);
	e.size = 100;
	e.blobs = &blob;
	e.nblobs = 1;
	e.xattrs = &x;
	e.nxattrs = 1;
	tree_add(&t, &e);
	base_entry(&e, "b-dir", TREE_DIR, 2);
	tree_add(&t, &e);
	base_entry(&e, "c-link", TREE_SYMLINK, 3);
	tree_add(&t, &e);
	base_entry(&e, "d-dev", TREE_BLK, 4);
	e.rdev_major = 8;
	tree_add(&t, &e);
	encode_ok(&t, &good);
	tree_free(&t);

	for (size_t n = 0; n < good.len; n++) {
		rc = tree_decode(good.data, n, &d);
		if (rc != -EBADMSG || d.count) {
			diag("prefix of %zu bytes: %d", n, rc);
			all = 0;
		}
	}
	ok(all, "every truncation (all %zu prefixes) is -EBADMSG", good.len);
	buf_reset(&b);
	buf_add(&b, good.data, good.len);
	buf_addc(&b, 0);
	decode_fails(&b, -EBADMSG, "a trailing byte");

	buf_reset(&b);
	buf_add(&b, good.data, good.len);
	b.data[0] = 'C';
	decode_fails(&b, -EBADMSG, "a wrong magic");
	b.data[0] = 'c';
	b.data[8] = 2;
	decode_fails(&b, -ENOTSUP, "version 2");
	ok(strstr(err_msg(), "version 2") && strstr(err_msg(), "version 1"),
	   "  the message names the version found and the one supported");
	b.data[8] = 0;
	decode_fails(&b, -ENOTSUP, "version 0");
	b.data[8] = 1;
	b.data[9] = b.data[10] = b.data[11] = b.data[12] = 0xff;
	decode_fails(&b, -EBADMSG, "an absurd entry count (2^32-1)");
	b.data[9] = 5;
	b.data[10] = b.data[11] = b.data[12] = 0;
	decode_fails(&b, -EBADMSG, "an entry count one too large");
	b.data[9] = 3;
	decode_fails(&b, -EBADMSG, "an entry count one too small (trailing bytes)");
	{
		struct buf big = BUF_INIT;

		raw_head(&big, 0);
		buf_grow(&big, BLOB_MAX_RAW);
		memset(big.data + big.len, 0, BLOB_MAX_RAW);
		buf_setlen(&big, big.len + BLOB_MAX_RAW);
		decode_fails(&big, -EBADMSG, "more than BLOB_MAX_RAW bytes");
		buf_free(&big);
	}

#define CASE(build, code, what) do { \
		buf_reset(&b); \
		build; \
		decode_fails(&b, code, what); \
	} while (0)
	CASE(raw_head(&b, 2); raw_fifo(&b, "b"); raw_fifo(&b, "a"), -EBADMSG, "unsorted names");
	CASE(raw_head(&b, 2); raw_fifo(&b, "a"); raw_fifo(&b, "a"), -EBADMSG, "a duplicate name");
	CASE(raw_head(&b, 2); raw_fifo(&b, "\xc3\xa9"); raw_fifo(&b, "z"), -EBADMSG,
	     "names sorted as signed chars");
	CASE(raw_head(&b, 1); raw_fifo(&b, "a/b"), -EBADMSG, "a name with '/'");
	CASE(raw_head(&b, 1); raw_fifo(&b, "."), -EBADMSG, "the name \".\"");
	CASE(raw_head(&b, 1); raw_fifo(&b, ".."), -EBADMSG, "the name \"..\"");
	{
		struct raw r = { .name = "a\0b", .name_len = 3, .type = TREE_FIFO };

		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 2), -EBADMSG, "a name with NUL");
	}
	{
		struct raw r = { .name = "", .type = TREE_FIFO };

		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 3), -EBADMSG, "an empty name");
	}
	CASE(raw_head(&b, 1); le(&b, 200, 1); buf_add(&b, "abcdefghij", 10); le(&b, 0, 100), -EBADMSG,
	     "a name length beyond the buffer");
	{
		struct raw r = { .name = "x", .type = TREE_FIFO };

		r.type = 0;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 2), -EBADMSG, "type 0");
		r.type = 8;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 2), -EBADMSG, "type 8");
		r.type = TREE_FIFO;
		r.mode = 0100644;	/* S_IFREG | 0644 */
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 2), -EBADMSG, "mode beyond 07777");
		r.mode = 0644;
		r.mnsec = 1000000000;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 2), -EBADMSG, "nanoseconds of 10^9");
		r.mnsec = 0;
		r.type = TREE_DIR;
		r.link_group = 1;
		CASE(raw_head(&b, 1); raw_common(&b, &r); buf_add(&b, blob, 32); le(&b, 0, 2), -EBADMSG,
		     "a directory with a hard-link group");
		r.link_group = 0;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 32); le(&b, 0, 2), -EBADMSG,
		     "a directory with an all-zero subtree id");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 2), -EBADMSG,
		     "a directory without a subtree id");
		CASE(raw_head(&b, 1); raw_common(&b, &r); buf_add(&b, blob, 20), -EBADMSG,
		     "a directory with a cut subtree id");
		r.type = TREE_REG;
		r.size = 100;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0xffffffff, 4); buf_add(&b, blob, 32);
		     le(&b, 0, 2), -EBADMSG, "a blob list longer than the buffer (2^32-1)");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 2, 4); buf_add(&b, blob, 32);
		     le(&b, 0, 2), -EBADMSG, "a blob list that does not fit (2 announced, 1 there)");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 4); le(&b, 0, 2), -EBADMSG,
		     "a 100-byte file without blobs");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 1, 4); le(&b, 0, 32); le(&b, 0, 2),
		     -EBADMSG, "an all-zero blob id");
		r.size = 0;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 1, 4); buf_add(&b, blob, 32);
		     le(&b, 0, 2), -EBADMSG, "an empty file with a blob");
		r.size = 1;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 2, 4); buf_add(&b, blob, 32);
		     buf_add(&b, blob, 32); le(&b, 0, 2), -EBADMSG, "a 1-byte file with 2 blobs");
		r.size = 2 * (uint64_t)BLOB_MAX_RAW + 1;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 2, 4); buf_add(&b, blob, 32);
		     buf_add(&b, blob, 32); le(&b, 0, 2), -EBADMSG, "blobs larger than BLOB_MAX_RAW");
		r.type = TREE_SYMLINK;
		r.size = 0;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0, 2); le(&b, 0, 2), -EBADMSG,
		     "an empty symlink target");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 4096, 2); le(&b, 0, 4096); le(&b, 0, 2),
		     -EBADMSG, "a 4096-byte symlink target");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 3, 2); buf_add(&b, "a\0b", 3); le(&b, 0, 2),
		     -EBADMSG, "a symlink target with NUL");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 30, 2); buf_add(&b, "abc", 3), -EBADMSG,
		     "a symlink target beyond the buffer");
		r.type = TREE_CHR;
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 1, 4); le(&b, 0, 2), -EBADMSG,
		     "a device without its minor");
		r.type = TREE_FIFO;
		/* xattrs */
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 2, 2);
		     le(&b, 6, 1); buf_add(&b, "user.b", 6); le(&b, 0, 4);
		     le(&b, 6, 1); buf_add(&b, "user.a", 6); le(&b, 0, 4), -EBADMSG, "unsorted xattrs");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 2, 2);
		     le(&b, 6, 1); buf_add(&b, "user.a", 6); le(&b, 0, 4);
		     le(&b, 6, 1); buf_add(&b, "user.a", 6); le(&b, 0, 4), -EBADMSG, "a duplicate xattr");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 1, 2);
		     le(&b, 0, 1); le(&b, 0, 4); le(&b, 0, 4), -EBADMSG, "an empty xattr name");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 1, 2);
		     le(&b, 3, 1); buf_add(&b, "a\0b", 3); le(&b, 0, 4), -EBADMSG, "an xattr name with NUL");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 1, 2);
		     le(&b, 1, 1); buf_add(&b, "a", 1); le(&b, 65537, 4); le(&b, 0, 65537), -EBADMSG,
		     "a 65537-byte xattr value");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 1, 2);
		     le(&b, 1, 1); buf_add(&b, "a", 1); le(&b, 100, 4); le(&b, 0, 10), -EBADMSG,
		     "an xattr value beyond the buffer");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 0xffff, 2); le(&b, 0, 600), -EBADMSG,
		     "an absurd xattr count");
		CASE(raw_head(&b, 1); raw_common(&b, &r); le(&b, 3, 2); le(&b, 0, 17), -EBADMSG,
		     "an xattr count larger than the bytes left");
	}
#undef CASE
	/* and the independent writer's valid trees do decode */
	buf_reset(&b);
	raw_head(&b, 3);
	raw_fifo(&b, "a");
	raw_fifo(&b, "b");
	raw_fifo(&b, "\xc3\xa9");
	is_int(tree_decode(b.data, b.len, &d), 0, "a hand-written tree decodes");
	ok(d.count == 3 && d.entries[0].mtime.sec == -5, "  negative seconds read back");
	tree_free(&d);
	buf_free(&good);
	buf_free(&b);
}

int main(void)
{
	test_empty();
	test_layout();
	test_every_type();
	test_canonical();
	test_unicode();
	test_big();
	test_from_stat();
	test_add_refusals();
	test_duplicates();
	test_decode_refusals();
	return tap_done();
}
