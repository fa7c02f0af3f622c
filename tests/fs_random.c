/*
 * fs_random.c - a randomized differential test of a filesystem: one
 * pseudo-random sequence of operations runs in DIR_A (the filesystem under
 * test) and in DIR_B (a plain local directory, the reference); every return
 * value, errno and byte read must agree, and the two whole trees must agree
 * every --tree-every operations and at the end.
 *
 * Operations, over ~35 names a few directories deep (collisions are the
 * point): open/create with O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW;
 * write/pwrite and read/pread by path and through six fds kept open across
 * operations (and across the unlink or rename of their file); lseek;
 * truncate, ftruncate; fallocate (0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE);
 * unlink, mkdir, rmdir, rename, renameat2 NOREPLACE and EXCHANGE, link,
 * symlink, readlink; chmod, utimensat, user.* xattrs; stat, fstat,
 * readdir; fsync; reads and writes through MAP_SHARED mappings.
 *
 * Compared for every entry: names, type, mode, nlink, owner, size (not of
 * directories), contents, symlink targets, user.* xattrs, and the mtime
 * when it was set with utimensat (before 2011) -- unless POSIX leaves it
 * open since (a truncate to the same size, a write through a mapping).
 * Not compared: atime, ctime, st_blocks, inode numbers, "." and "..", holes.
 *
 * Invariants: the sequence is a function of the seed (the generator looks
 * only at the reference tree, and the run stops at the first difference, so
 * until then both sides hold the same state); no path leaves the two roots
 * (symlink targets are relative and have no "..").  Prints TAP: one line
 * per operation class and per tree comparison; the first difference is
 * told with the seed, the operation number, the operation and both results.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "tap.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef FALLOC_FL_ZERO_RANGE
#define FALLOC_FL_ZERO_RANGE 0x10
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static const char usage[] =
	"usage: fs_random [--seed N] [--ops N] [--files N] [--fsync] [--tree-every N]\n"
	"                 [--skip CLASS,...] [--drop-caches N] [--verbose] DIR_A DIR_B\n"
	"       fs_random --compare-only DIR_A DIR_B\n"
	"Runs the same random operations in DIR_A (under test) and DIR_B (the\n"
	"reference) and compares every result and, now and then, the whole trees.\n"
	"  --seed N        the sequence (default 1)\n"
	"  --ops N         how many operations (default 3000)\n"
	"  --files N       names in the namespace, 16..60 (default 35)\n"
	"  --fsync         fsync what each operation changed (file or parent dir)\n"
	"  --tree-every N  compare the trees every N operations (default 200)\n"
	"  --skip LIST     draw but do not run these classes; zero_range: the\n"
	"                  fallocate ZERO_RANGE modes (tmpfs has none)\n"
	"  --drop-caches N every N operations, syncfs DIR_A and drop the kernel's\n"
	"                  page, dentry and inode caches (root): later operations\n"
	"                  then reach the filesystem, not the kernel's copy\n"
	"  --verbose       print every operation to stderr\n"
	"  --compare-only  compare the two trees and nothing else (after a remount)\n";

#define NSLOTS 6			/* fds kept open across operations */
#define MAX_IO (256 * 1024)		/* largest write or read */
#define MAX_OFF (4 * 1024 * 1024)	/* offsets reach this far (sparse files) */
#define MAX_XATTR_VALUE 256		/* ext4 keeps all of a file's xattrs in one block */
/* Times set by utimensat are before this (2011); times the clock sets are
 * after it, so an mtime before it was set explicitly and must agree. */
#define EXPLICIT_BEFORE 1300000000

/* ---- the PRNG: xoshiro256** seeded with splitmix64 ---------------------- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* A number in [0, n); 0 when n is 0.  The modulo bias is far below noise. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

static int rng_percent(struct rng *r, unsigned pct)
{
	return rng_below(r, 100) < pct;
}

/* ---- the namespace -------------------------------------------------------- */

/* Names are parent x leaf; the first leaves are the directory names, so the
 * first 16 names are d, d/e, d/e/f and g and every parent exists at start. */
static const char *const parents[] = { "", "d/", "d/e/", "d/e/f/", "g/" };
static const char *const leaves[] = { "d", "e", "f", "g", "a", "b", "c", "h",
				      "i", "j", "k", "l" };
#define NPARENTS (sizeof(parents) / sizeof(parents[0]))
#define NLEAVES (sizeof(leaves) / sizeof(leaves[0]))
#define MAX_NAMES (NPARENTS * NLEAVES)

static char *names[MAX_NAMES];
static size_t nnames;

static const char *xattr_names[6];

static void namespace_init(size_t n)
{
	struct buf b = BUF_INIT;

	nnames = n;
	for (size_t i = 0; i < n; i++)
		names[i] = xasprintf("%s%s", parents[i % NPARENTS], leaves[i / NPARENTS]);
	xattr_names[0] = "user.x";
	xattr_names[1] = "user.y";
	xattr_names[2] = "user.z";
	xattr_names[3] = "user.a-longer.name_with.dots";
	/* 255 bytes is the longest name; 256 must fail with ERANGE */
	buf_adds(&b, "user.");
	while (b.len < 255)
		buf_addc(&b, 'n');
	xattr_names[4] = xstrdup(buf_str(&b));
	buf_addc(&b, 'n');
	xattr_names[5] = buf_detach(&b, NULL);
}

/* ---- operations ------------------------------------------------------------ */

enum kind {
	K_CREATE, K_OPEN, K_CLOSE, K_WRITE, K_FDWRITE, K_READ, K_FDREAD, K_LSEEK,
	K_TRUNCATE, K_FTRUNCATE, K_FALLOCATE, K_UNLINK, K_MKDIR, K_RMDIR,
	K_RENAME, K_RENAME2, K_LINK, K_SYMLINK, K_READLINK, K_CHMOD, K_UTIMENS,
	K_SETXATTR, K_GETXATTR, K_REMOVEXATTR, K_LISTXATTR, K_STAT, K_FSTAT,
	K_READDIR, K_FSYNC, K_MMAP, NKINDS
};

static const struct kind_info {
	const char *name;
	unsigned weight;
} kinds[NKINDS] = {
	[K_CREATE] = { "create", 8 },
	[K_OPEN] = { "open", 6 },
	[K_CLOSE] = { "close", 3 },
	[K_WRITE] = { "write", 10 },
	[K_FDWRITE] = { "fdwrite", 8 },
	[K_READ] = { "read", 6 },
	[K_FDREAD] = { "fdread", 5 },
	[K_LSEEK] = { "lseek", 2 },
	[K_TRUNCATE] = { "truncate", 4 },
	[K_FTRUNCATE] = { "ftruncate", 3 },
	[K_FALLOCATE] = { "fallocate", 4 },
	[K_UNLINK] = { "unlink", 5 },
	[K_MKDIR] = { "mkdir", 4 },
	[K_RMDIR] = { "rmdir", 3 },
	[K_RENAME] = { "rename", 5 },
	[K_RENAME2] = { "renameat2", 4 },
	[K_LINK] = { "link", 3 },
	[K_SYMLINK] = { "symlink", 3 },
	[K_READLINK] = { "readlink", 2 },
	[K_CHMOD] = { "chmod", 3 },
	[K_UTIMENS] = { "utimensat", 3 },
	[K_SETXATTR] = { "setxattr", 4 },
	[K_GETXATTR] = { "getxattr", 3 },
	[K_REMOVEXATTR] = { "removexattr", 2 },
	[K_LISTXATTR] = { "listxattr", 2 },
	[K_STAT] = { "stat", 5 },
	[K_FSTAT] = { "fstat", 3 },
	[K_READDIR] = { "readdir", 3 },
	[K_FSYNC] = { "fsync", 2 },
	[K_MMAP] = { "mmap", 2 },
};

enum data_style { DATA_RANDOM, DATA_ZEROS, DATA_PATTERN };

struct op {
	enum kind kind;
	size_t n1, n2;		/* names[] of the first and second path */
	int slot;		/* fd slot of the fd operations */
	int variant;		/* which call of the family; see exec_op */
	int flags;		/* open, rename, link, fallocate, xattr or utimensat flags */
	int whence;		/* lseek */
	mode_t mode;
	off_t off;
	size_t len;
	enum data_style style;
	uint64_t data_seed;
	struct timespec times[2];
	size_t xname;		/* xattr_names[] */
	const char *target;	/* symlink target */
};

static const mode_t file_modes[] = { 0644, 0600, 0755, 0444, 0000, 0666, 04755,
				     02755, 02711, 01644, 06777 };
static const mode_t dir_modes[] = { 0755, 0700, 0777, 01777, 02755, 0555 };
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static off_t gen_off(struct rng *r)
{
	switch (rng_below(r, 7)) {
	case 0:
		return 0;
	case 1:
		return (off_t)rng_below(r, 4096);
	case 2: {	/* at a page boundary, or a byte either side */
		off_t o = (off_t)rng_below(r, 64) * 4096 + (off_t)rng_below(r, 3) - 1;
		return o < 0 ? 0 : o;
	}
	case 3:
		return (off_t)rng_below(r, 70000);
	case 4:
		return (off_t)rng_below(r, 1 << 20);
	case 5:	/* at a MiB boundary, or a byte either side */
		return (off_t)(1 + rng_below(r, 4)) * (1 << 20) + (off_t)rng_below(r, 3) - 1;
	default:
		return (off_t)rng_below(r, MAX_OFF);
	}
}

static size_t gen_len(struct rng *r)
{
	switch (rng_below(r, 8)) {
	case 0:
		return 0;
	case 1:
		return 1 + rng_below(r, 16);
	case 2:
	case 3:
		return rng_below(r, 4097);
	case 4:
	case 5:
		return rng_below(r, 65537);
	default:
		return rng_below(r, MAX_IO + 1);
	}
}

static struct timespec gen_time(struct rng *r)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(600000000 + rng_below(r, 600000000));
	ts.tv_nsec = (long)rng_below(r, 1000000000);
	return ts;
}

static int gen_open_flags(struct rng *r, int create)
{
	static const int acc[] = { O_RDONLY, O_WRONLY, O_RDWR, O_RDWR };
	int f = acc[rng_below(r, NELEM(acc))];

	if (create) {
		f |= O_CREAT;
		if (rng_percent(r, 30))
			f |= O_EXCL;
	}
	/* O_RDONLY|O_TRUNC is left undefined by POSIX */
	if ((f & O_ACCMODE) != O_RDONLY && rng_percent(r, create ? 25 : 10))
		f |= O_TRUNC;
	if (rng_percent(r, 20))
		f |= O_APPEND;
	if (rng_percent(r, 5))
		f |= O_NOFOLLOW;
	if (!create && rng_percent(r, 5))
		f |= O_DIRECTORY;
	return f;
}

static enum kind gen_kind(struct rng *r)
{
	static unsigned total;
	uint64_t x;

	if (!total)
		for (int k = 0; k < NKINDS; k++)
			total += kinds[k].weight;
	x = rng_below(r, total);
	for (int k = 0; k < NKINDS; k++) {
		if (x < kinds[k].weight)
			return (enum kind)k;
		x -= kinds[k].weight;
	}
	return K_STAT;
}

/* What the reference tree looks like before an operation: the generator
 * aims most operations at names and offsets where they can succeed (the
 * rest are drawn blind, for the error paths).  Both sides hold the same
 * tree until the first difference, where the run stops, so the sequence is
 * still a function of the seed alone. */
struct view {
	char type[MAX_NAMES];	/* 'a' absent, 'f' file, 'd' dir, 'l' symlink, 'o' other */
	off_t size[MAX_NAMES];	/* of a file */
	off_t slot_size[NSLOTS];	/* of the file an fd slot holds; -1: none */
	unsigned xmask[MAX_NAMES];	/* which of xattr_names[0..2] it has */
};

/* A name whose type is in want ("a" absent, "f", "d", "l"; "x" has one of
 * the user.x/y/z xattrs), pct percent of the time when there is one; any
 * name otherwise. */
static size_t pick_name(struct rng *r, const struct view *v, const char *want, unsigned pct)
{
	size_t cand[MAX_NAMES], n = 0;
	uint64_t x = rng_next(r);

	if (rng_percent(r, pct))
		for (size_t i = 0; i < nnames; i++)
			if (strchr(want, v->type[i]) || (strchr(want, 'x') && v->xmask[i]))
				cand[n++] = i;
	return n ? cand[x % n] : x % nnames;
}

/* An fd slot that holds a file, 80 percent of the time when there is one. */
static int pick_slot(struct rng *r, const struct view *v)
{
	int cand[NSLOTS], n = 0;
	uint64_t x = rng_next(r);

	if (rng_percent(r, 80))
		for (int i = 0; i < NSLOTS; i++)
			if (v->slot_size[i] >= 0)
				cand[n++] = i;
	return n ? cand[x % n] : (int)(x % NSLOTS);
}

/* An offset in or at the end of a file of this size half of the time. */
static off_t aim_off(struct rng *r, off_t size, off_t blind)
{
	uint64_t t = rng_below(r, 100);

	if (size < 0 || t >= 50)
		return blind;
	return t < 10 ? size : (off_t)rng_below(r, (uint64_t)size + 1);
}

/* Draws one operation.  The draws come in the same order for every kind. */
static void gen_op(struct rng *r, const struct view *v, struct op *op)
{
	static const int falloc_modes[] = {
		0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE,	/* without KEEP_SIZE: EOPNOTSUPP */
	};
	static const int xattr_flags[] = { 0, 0, XATTR_CREATE, XATTR_REPLACE };
	off_t size;
	uint64_t t;

	memset(op, 0, sizeof(*op));
	op->kind = gen_kind(r);
	op->n1 = rng_below(r, nnames);
	op->n2 = rng_below(r, nnames);
	op->slot = pick_slot(r, v);
	op->variant = (int)rng_below(r, 4);
	op->off = gen_off(r);
	op->len = gen_len(r);
	t = rng_below(r, 8);
	op->style = t == 0 ? DATA_ZEROS : t == 1 ? DATA_PATTERN : DATA_RANDOM;
	op->data_seed = rng_next(r);
	op->times[0] = gen_time(r);
	op->times[1] = gen_time(r);
	t = rng_below(r, 100);
	op->xname = t < 50 ? 0 : t < 75 ? 1 : t < 90 ? 2 : 3 + t % 3;
	op->whence = (int)rng_below(r, 3);	/* SEEK_SET, SEEK_CUR, SEEK_END */
	t = rng_below(r, 8);
	op->target = t < 4 ? names[rng_below(r, nnames)] :
		     t < 6 ? leaves[rng_below(r, NLEAVES)] : t == 6 ? "nowhere" : ".";
	/* kind-dependent parts, still drawn in a fixed order */
	switch (op->kind) {
	case K_CREATE:
		op->n1 = pick_name(r, v, "a", 50);
		op->flags = gen_open_flags(r, 1);
		op->mode = file_modes[rng_below(r, NELEM(file_modes))];
		break;
	case K_OPEN:
		op->n1 = pick_name(r, v, "f", 80);
		op->flags = gen_open_flags(r, 0);
		break;
	case K_WRITE:
	case K_READ:
	case K_TRUNCATE:
	case K_FALLOCATE:
	case K_MMAP:
		op->n1 = pick_name(r, v, "f", 80);
		size = op->variant & 1 && op->kind != K_WRITE && op->kind != K_READ &&
		       op->kind != K_TRUNCATE ? v->slot_size[op->slot] :
		       v->type[op->n1] == 'f' ? v->size[op->n1] : -1;
		op->off = aim_off(r, size, op->off);
		if (op->kind == K_WRITE)
			op->flags = (rng_percent(r, 50) ? O_WRONLY : O_RDWR) |
				    (rng_percent(r, 20) ? O_APPEND : 0);
		if (op->kind == K_FALLOCATE)
			op->flags = falloc_modes[rng_below(r, NELEM(falloc_modes))];
		break;
	case K_FDWRITE:
	case K_FDREAD:
	case K_FTRUNCATE:
		op->off = aim_off(r, v->slot_size[op->slot], op->off);
		break;
	case K_UNLINK:
		op->n1 = pick_name(r, v, "fl", 70);
		break;
	case K_MKDIR:
		op->n1 = pick_name(r, v, "a", 60);
		op->mode = dir_modes[rng_below(r, NELEM(dir_modes))];
		break;
	case K_RMDIR:
	case K_READDIR:
		op->n1 = pick_name(r, v, "d", 70);
		break;
	case K_CHMOD:
		op->n1 = pick_name(r, v, "fd", 80);
		op->mode = rng_percent(r, 20) ? dir_modes[rng_below(r, NELEM(dir_modes))] :
			   file_modes[rng_below(r, NELEM(file_modes))];
		break;
	case K_RENAME:
		op->n1 = pick_name(r, v, "fdl", 80);
		op->n2 = pick_name(r, v, "a", 50);
		/* now and then onto one of the first directories */
		if (rng_percent(r, 10))
			op->n2 = (size_t[]){ 0, 6, 12, 15 }[rng_below(r, 4)];	/* d d/e d/e/f g */
		break;
	case K_RENAME2:
		op->flags = rng_percent(r, 50) ? RENAME_NOREPLACE : RENAME_EXCHANGE;
		op->n1 = pick_name(r, v, "fdl", 80);
		op->n2 = pick_name(r, v, op->flags == RENAME_NOREPLACE ? "a" : "fdl", 60);
		break;
	case K_LINK:
		op->flags = rng_percent(r, 25) ? AT_SYMLINK_FOLLOW : 0;
		op->n1 = pick_name(r, v, "fl", 80);
		op->n2 = pick_name(r, v, "a", 80);
		break;
	case K_SYMLINK:
		op->n1 = pick_name(r, v, "a", 70);
		break;
	case K_READLINK:
		op->n1 = pick_name(r, v, "l", 80);
		break;
	case K_UTIMENS:
		op->n1 = pick_name(r, v, "fdl", 80);
		op->flags = rng_percent(r, 30) ? AT_SYMLINK_NOFOLLOW : 0;
		t = rng_below(r, 10);
		if (t == 0)
			op->times[0].tv_nsec = UTIME_OMIT;
		else if (t == 1)
			op->times[0].tv_nsec = UTIME_NOW;
		t = rng_below(r, 10);
		if (t == 0)
			op->times[1].tv_nsec = UTIME_OMIT;
		else if (t == 1)
			op->times[1].tv_nsec = UTIME_NOW;
		break;
	case K_SETXATTR:
		op->n1 = pick_name(r, v, "fd", 80);
		op->flags = xattr_flags[rng_below(r, NELEM(xattr_flags))];
		op->len = rng_percent(r, 10) ? 0 : rng_below(r, MAX_XATTR_VALUE + 1);
		break;
	case K_GETXATTR:
	case K_REMOVEXATTR:
	case K_LISTXATTR:
		op->n1 = pick_name(r, v, op->kind == K_LISTXATTR ? "fd" : "x", 80);
		t = rng_below(r, 100);
		op->whence = t < 20 ? 0 : t < 30 ? 1 : 2;	/* getxattr's buffer size */
		t = rng_next(r);
		if (v->xmask[op->n1] && t % 100 < 80) {	/* a name it has */
			size_t have[3], nhave = 0;

			for (size_t k = 0; k < 3; k++)
				if (v->xmask[op->n1] & 1u << k)
					have[nhave++] = k;
			op->xname = have[(t >> 8) % nhave];
		}
		break;
	case K_STAT:
	case K_FSYNC:
		op->n1 = pick_name(r, v, "fdl", 80);
		break;
	default:
		break;
	}
}

static void fill_data(uint8_t *dst, size_t n, enum data_style style, uint64_t seed)
{
	uint64_t x = seed;

	if (style == DATA_ZEROS) {
		memset(dst, 0, n);
		return;
	}
	if (style == DATA_PATTERN) {	/* a short pattern repeated: compresses, dedups */
		uint8_t pat[16];
		size_t plen = 1 + seed % 16;

		for (size_t i = 0; i < plen; i++)
			pat[i] = (uint8_t)splitmix64(&x);
		for (size_t i = 0; i < n; i++)
			dst[i] = pat[i % plen];
		return;
	}
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = splitmix64(&x);
		size_t k = n - i < 8 ? n - i : 8;

		memcpy(dst + i, &v, k);
	}
}

/* ---- describing flags, modes and results ------------------------------------ */

static void open_flags_str(int f, struct buf *b)
{
	static const struct {
		int bit;
		const char *name;
	} bits[] = {
		{ O_CREAT, "O_CREAT" }, { O_EXCL, "O_EXCL" }, { O_TRUNC, "O_TRUNC" },
		{ O_APPEND, "O_APPEND" }, { O_NOFOLLOW, "O_NOFOLLOW" },
		{ O_DIRECTORY, "O_DIRECTORY" },
	};
	int acc = f & O_ACCMODE;

	buf_adds(b, acc == O_RDONLY ? "O_RDONLY" : acc == O_WRONLY ? "O_WRONLY" : "O_RDWR");
	for (size_t i = 0; i < NELEM(bits); i++)
		if (f & bits[i].bit)
			buf_printf(b, "|%s", bits[i].name);
}

static const char *falloc_str(int mode)
{
	switch (mode) {
	case 0:
		return "0";
	case FALLOC_FL_KEEP_SIZE:
		return "KEEP_SIZE";
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
		return "PUNCH_HOLE|KEEP_SIZE";
	case FALLOC_FL_ZERO_RANGE:
		return "ZERO_RANGE";
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		return "ZERO_RANGE|KEEP_SIZE";
	case FALLOC_FL_PUNCH_HOLE:
		return "PUNCH_HOLE";
	default:
		return "?";
	}
}

static void time_str(const struct timespec *ts, struct buf *b)
{
	if (ts->tv_nsec == UTIME_OMIT)
		buf_adds(b, "OMIT");
	else if (ts->tv_nsec == UTIME_NOW)
		buf_adds(b, "NOW");
	else
		buf_printf(b, "%lld.%09ld", (long long)ts->tv_sec, ts->tv_nsec);
}

static const char *style_str(enum data_style s)
{
	return s == DATA_ZEROS ? "zeros" : s == DATA_PATTERN ? "pattern" : "random";
}

static void op_describe(const struct op *op, struct buf *b)
{
	const char *p1 = names[op->n1], *p2 = names[op->n2];

	buf_printf(b, "%s ", kinds[op->kind].name);
	switch (op->kind) {
	case K_CREATE:
	case K_OPEN:
		buf_printf(b, "%s ", p1);
		open_flags_str(op->flags, b);
		if (op->kind == K_CREATE)
			buf_printf(b, " mode %04o", (unsigned)op->mode);
		if (op->kind == K_OPEN || op->variant & 1)
			buf_printf(b, ", kept in fd slot %d", op->slot);
		break;
	case K_CLOSE:
	case K_FSTAT:
		buf_printf(b, "fd slot %d", op->slot);
		break;
	case K_WRITE:
		buf_printf(b, "%s (open ", p1);
		open_flags_str(op->flags, b);
		buf_printf(b, ", %s) off %lld len %zu data %s",
			   op->flags & O_APPEND && op->variant & 1 ? "write" : "pwrite",
			   (long long)op->off, op->len, style_str(op->style));
		break;
	case K_FDWRITE:
		buf_printf(b, "fd slot %d %s off %lld len %zu data %s", op->slot,
			   op->variant & 1 ? "write at the fd's offset" : "pwrite",
			   (long long)op->off, op->len, style_str(op->style));
		break;
	case K_READ:
		buf_printf(b, "%s off %lld len %zu", p1, (long long)op->off, op->len);
		break;
	case K_FDREAD:
		buf_printf(b, "fd slot %d %s off %lld len %zu", op->slot,
			   op->variant & 1 ? "read at the fd's offset" : "pread",
			   (long long)op->off, op->len);
		break;
	case K_LSEEK:
		buf_printf(b, "fd slot %d %s %lld", op->slot,
			   op->whence == 0 ? "SEEK_SET" : op->whence == 1 ? "SEEK_CUR" : "SEEK_END",
			   op->whence == 0 ? (long long)op->off :
					     (long long)(op->off % 16384) - 8192);
		break;
	case K_TRUNCATE:
		buf_printf(b, "%s to %lld", p1, (long long)op->off);
		break;
	case K_FTRUNCATE:
		buf_printf(b, "fd slot %d to %lld", op->slot, (long long)op->off);
		break;
	case K_FALLOCATE:
		if (op->variant & 1)
			buf_printf(b, "fd slot %d", op->slot);
		else
			buf_printf(b, "%s (open O_RDWR)", p1);
		buf_printf(b, " mode %s off %lld len %zu", falloc_str(op->flags),
			   (long long)op->off, op->len);
		break;
	case K_UNLINK:
	case K_RMDIR:
	case K_READDIR:
		buf_adds(b, p1);
		break;
	case K_MKDIR:
		buf_printf(b, "%s mode %04o", p1, (unsigned)op->mode);
		break;
	case K_RENAME:
		buf_printf(b, "%s -> %s", p1, p2);
		break;
	case K_RENAME2:
		buf_printf(b, "%s -> %s %s", p1, p2,
			   op->flags == RENAME_NOREPLACE ? "RENAME_NOREPLACE" : "RENAME_EXCHANGE");
		break;
	case K_LINK:
		buf_printf(b, "%s -> new name %s%s", p1, p2,
			   op->flags ? " AT_SYMLINK_FOLLOW" : "");
		break;
	case K_SYMLINK:
		buf_printf(b, "%s -> target \"%s\"", p1, op->target);
		break;
	case K_READLINK:
		buf_printf(b, "%s bufsize %d", p1, op->variant == 0 ? 3 : PATH_MAX);
		break;
	case K_CHMOD:
		if (op->variant & 1)
			buf_printf(b, "(fchmod) fd slot %d", op->slot);
		else
			buf_adds(b, p1);
		buf_printf(b, " mode %04o", (unsigned)op->mode);
		break;
	case K_UTIMENS:
		if (op->variant & 1)
			buf_printf(b, "futimens fd slot %d atime ", op->slot);
		else
			buf_printf(b, "%s%s atime ", p1,
				   op->flags ? " AT_SYMLINK_NOFOLLOW" : "");
		time_str(&op->times[0], b);
		buf_adds(b, " mtime ");
		time_str(&op->times[1], b);
		break;
	case K_SETXATTR:
	case K_GETXATTR:
	case K_REMOVEXATTR:
	case K_LISTXATTR:
		if (op->variant == 3)
			buf_printf(b, "fd slot %d", op->slot);
		else
			buf_printf(b, "%s%s", op->variant == 2 ? "(l) " : "", p1);
		if (op->kind != K_LISTXATTR)
			buf_printf(b, " name %.40s%s", xattr_names[op->xname],
				   strlen(xattr_names[op->xname]) > 40 ? "..." : "");
		if (op->kind == K_SETXATTR)
			buf_printf(b, " len %zu flags %s", op->len,
				   op->flags == XATTR_CREATE ? "XATTR_CREATE" :
				   op->flags == XATTR_REPLACE ? "XATTR_REPLACE" : "0");
		if (op->kind == K_GETXATTR)
			buf_printf(b, " bufsize %d", op->whence == 0 ? 0 : op->whence == 1 ? 1 : 65536);
		break;
	case K_STAT:
		buf_printf(b, "%s%s", op->variant & 1 ? "(lstat) " : "", p1);
		break;
	case K_FSYNC:
		if (op->variant < 2)
			buf_printf(b, "%s fd slot %d", op->variant ? "fdatasync" : "fsync", op->slot);
		else
			buf_printf(b, "%s (open O_RDONLY)", p1);
		break;
	case K_MMAP:
		if (op->variant & 1)
			buf_printf(b, "fd slot %d", op->slot);
		else
			buf_printf(b, "%s", p1);
		buf_printf(b, " MAP_SHARED %s off %lld %% size len %zu", op->variant & 2 ? "read" : "write",
			   (long long)op->off, op->len);
		break;
	case NKINDS:
		break;
	}
}

/* ---- per-side state and results --------------------------------------------- */

enum { MT_RECENT, MT_EXPLICIT, MT_UNSPEC };

/* What two filesystems must agree on about one inode.  Directory sizes and
 * st_blocks are the filesystem's business; times only when set explicitly. */
struct meta {
	mode_t mode;
	nlink_t nlink;
	uid_t uid;
	gid_t gid;
	long long size;		/* -1 for a directory */
	int mt;			/* MT_*: which mtimes must agree */
	struct timespec mtime;
};

/* Inodes (of one side) whose mtime POSIX leaves open since their last
 * utimensat: a truncate to the same size, a write through mmap. */
struct inoset {
	struct {
		dev_t dev;
		ino_t ino;
	} *v;
	size_t n, cap;
};

struct result {
	const char *stage;	/* the call the result is from */
	long long ret;
	int err;		/* errno when ret is -1 */
	int has_meta;
	struct meta meta;
	int binary;		/* out holds bytes read, not text */
	struct buf out;
};

struct side {
	const char *root;
	int fd[NSLOTS];
	int fdflags[NSLOTS];
	struct buf path[2];
	struct inoset unspec;
	struct result res;
};

static uint8_t *g_data;		/* the bytes of the current write */
static int g_fsync;
static sigjmp_buf g_bus_jmp;
static volatile sig_atomic_t g_bus_armed;

static void on_sigbus(int sig)
{
	if (!g_bus_armed) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	siglongjmp(g_bus_jmp, 1);
}

static long inoset_find(const struct inoset *s, const struct stat *st)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].dev == st->st_dev && s->v[i].ino == st->st_ino)
			return (long)i;
	return -1;
}

static void inoset_add(struct inoset *s, const struct stat *st)
{
	if (inoset_find(s, st) >= 0)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n].dev = st->st_dev;
	s->v[s->n].ino = st->st_ino;
	s->n++;
}

static void inoset_del(struct inoset *s, const struct stat *st)
{
	long i = inoset_find(s, st);

	if (i >= 0)
		s->v[i] = s->v[--s->n];
}

static void meta_get(const struct side *s, const struct stat *st, struct meta *m)
{
	memset(m, 0, sizeof(*m));
	m->mode = st->st_mode;
	m->nlink = st->st_nlink;
	m->uid = st->st_uid;
	m->gid = st->st_gid;
	m->size = S_ISDIR(st->st_mode) ? -1 : (long long)st->st_size;
	if (inoset_find(&s->unspec, st) >= 0) {
		m->mt = MT_UNSPEC;
	} else if (st->st_mtim.tv_sec < EXPLICIT_BEFORE) {
		m->mt = MT_EXPLICIT;
		m->mtime = st->st_mtim;
	} else {
		m->mt = MT_RECENT;
	}
}

static int meta_equal(const struct meta *a, const struct meta *b)
{
	if (a->mode != b->mode || a->nlink != b->nlink || a->uid != b->uid ||
	    a->gid != b->gid || a->size != b->size)
		return 0;
	if (a->mt == MT_UNSPEC || b->mt == MT_UNSPEC)
		return 1;
	if (a->mt != b->mt)
		return 0;
	return a->mt != MT_EXPLICIT || (a->mtime.tv_sec == b->mtime.tv_sec &&
					a->mtime.tv_nsec == b->mtime.tv_nsec);
}

static const char *type_str(mode_t m)
{
	return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

static void meta_describe(const struct meta *m, struct buf *b)
{
	buf_printf(b, "%s mode %06o nlink %lu uid %u gid %u", type_str(m->mode),
		   (unsigned)m->mode, (unsigned long)m->nlink, (unsigned)m->uid, (unsigned)m->gid);
	if (m->size >= 0)
		buf_printf(b, " size %lld", m->size);
	if (m->mt == MT_EXPLICIT) {
		buf_adds(b, " mtime ");
		time_str(&m->mtime, b);
	} else {
		buf_adds(b, m->mt == MT_UNSPEC ? " mtime unspecified" : " mtime recent");
	}
}

static const char *errname(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "E?";
}

static uint64_t fnv64(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static void result_reset(struct result *r)
{
	r->stage = "";
	r->ret = 0;
	r->err = 0;
	r->has_meta = 0;
	r->binary = 0;
	buf_reset(&r->out);
}

/* Records the outcome of one call: rc is its return value, errno if -1. */
static void record(struct result *r, const char *stage, long long rc)
{
	r->stage = stage;
	r->ret = rc;
	r->err = rc < 0 ? errno : 0;
}

static int result_ok(const struct result *r)
{
	return r->ret >= 0;
}

/* Text for a diagnostic line: "quoted", lines joined with " | ", other
 * control bytes escaped, at most max bytes of it. */
static void add_printable(struct buf *b, const struct buf *text, size_t max)
{
	buf_adds(b, "; \"");
	for (size_t i = 0; i < text->len && i < max; i++) {
		uint8_t c = text->data[i];

		if (c == '\n')
			buf_adds(b, i + 1 < text->len ? " | " : "");
		else if (c < 0x20 || c >= 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_addc(b, (char)c);
	}
	buf_adds(b, text->len > max ? "\"..." : "\"");
}

static void result_describe(const struct result *r, struct buf *b)
{
	buf_printf(b, "%s -> ", r->stage);
	if (r->ret < 0)
		buf_printf(b, "-1 %s (%s)", errname(r->err), strerror(r->err));
	else
		buf_printf(b, "%lld", r->ret);
	if (r->has_meta) {
		buf_adds(b, "; ");
		meta_describe(&r->meta, b);
	}
	if (r->binary)
		buf_printf(b, "; %zu bytes, fnv64 %016" PRIx64, r->out.len,
			   fnv64(r->out.data, r->out.len));
	else if (r->out.len)
		add_printable(b, &r->out, 400);
}

static int result_equal(const struct result *a, const struct result *b)
{
	if (strcmp(a->stage, b->stage) || a->ret != b->ret || a->err != b->err ||
	    a->has_meta != b->has_meta || a->binary != b->binary || a->out.len != b->out.len)
		return 0;
	if (a->has_meta && !meta_equal(&a->meta, &b->meta))
		return 0;
	return a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0;
}

static const char *side_path(struct side *s, int which, const char *rel)
{
	struct buf *b = &s->path[which];

	buf_reset(b);
	buf_printf(b, "%s/%s", s->root, rel);
	return buf_str(b);
}

/* ---- running one operation on one side --------------------------------------- */

static void close_into(struct result *r, int fd)
{
	if (close(fd) != 0 && result_ok(r))
		record(r, "close", -1);
}

/* --fsync: the file's data and metadata after a change through fd. */
static void sync_fd(struct result *r, int fd)
{
	if (g_fsync && result_ok(r) && fsync(fd) != 0)
		record(r, "fsync", -1);
}

/* --fsync: the directory entries a namespace change made or removed. */
static void sync_parent(struct result *r, const char *path)
{
	int rc;

	if (!g_fsync || !result_ok(r))
		return;
	rc = fsu_fsync_parent(path);
	if (rc < 0) {
		r->stage = "fsync of the parent";
		r->ret = -1;
		r->err = -rc;
	}
}

static void fstat_into(const struct side *s, struct result *r, int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0) {
		record(r, "fstat", -1);
		return;
	}
	meta_get(s, &st, &r->meta);
	r->has_meta = 1;
}

/* The fd of a slot, or -1 (and a result that says so) when it is empty. */
static int slot_fd(struct side *s, struct result *r, int slot)
{
	if (s->fd[slot] < 0) {
		r->stage = "empty fd slot";
		r->ret = 0;
	}
	return s->fd[slot];
}

static void slot_close(struct side *s, struct result *r, int slot)
{
	if (s->fd[slot] >= 0 && close(s->fd[slot]) != 0)
		record(r, "close of the slot's old fd", -1);
	s->fd[slot] = -1;
}

static void slot_put(struct side *s, int slot, int fd, int flags)
{
	s->fd[slot] = fd;
	s->fdflags[slot] = flags;
}

static void read_into(struct result *r, const char *stage, int fd, size_t len, off_t off,
		      int positional)
{
	ssize_t n;

	buf_reset(&r->out);
	buf_grow(&r->out, len);
	n = positional ? pread(fd, r->out.data, len, off) : read(fd, r->out.data, len);
	record(r, stage, n);
	if (n > 0)
		buf_setlen(&r->out, (size_t)n);
	r->binary = 1;
}

static void do_open(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	int keep = op->kind == K_OPEN || op->variant & 1;
	int fd;

	if (keep)
		slot_close(s, r, op->slot);
	fd = op->kind == K_CREATE ? open(p1, op->flags, op->mode) : open(p1, op->flags);
	if (fd < 0) {
		record(r, "open", -1);
		return;
	}
	record(r, "open", 0);
	fstat_into(s, r, fd);
	if (keep)
		slot_put(s, op->slot, fd, op->flags);
	else
		close_into(r, fd);
	sync_parent(r, p1);
}

static void do_write(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	int fd;
	ssize_t n;

	if (op->kind == K_FDWRITE) {
		fd = slot_fd(s, r, op->slot);
		if (fd < 0)
			return;
		n = op->variant & 1 ? write(fd, g_data, op->len) : pwrite(fd, g_data, op->len, op->off);
		record(r, op->variant & 1 ? "write" : "pwrite", n);
		sync_fd(r, fd);
		return;
	}
	fd = open(p1, op->flags);
	if (fd < 0) {
		record(r, "open", -1);
		return;
	}
	if (op->flags & O_APPEND && op->variant & 1)
		record(r, "write", write(fd, g_data, op->len));
	else
		record(r, "pwrite", pwrite(fd, g_data, op->len, op->off));
	sync_fd(r, fd);
	close_into(r, fd);
	(void)s;
}

static void do_read(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	int fd;

	if (op->kind == K_FDREAD) {
		fd = slot_fd(s, r, op->slot);
		if (fd >= 0)
			read_into(r, op->variant & 1 ? "read" : "pread", fd, op->len, op->off,
				  !(op->variant & 1));
		return;
	}
	fd = open(p1, O_RDONLY);
	if (fd < 0) {
		record(r, "open", -1);
		return;
	}
	read_into(r, "pread", fd, op->len, op->off, 1);
	close_into(r, fd);
}

/* truncate or ftruncate; a same-size truncate leaves the mtime open. */
static void do_truncate(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	struct stat st;
	int same, rc, fd = -1;

	if (op->kind == K_FTRUNCATE) {
		fd = slot_fd(s, r, op->slot);
		if (fd < 0)
			return;
		same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == op->off;
		rc = ftruncate(fd, op->off);
		record(r, "ftruncate", rc);
		sync_fd(r, fd);
	} else {
		same = stat(p1, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == op->off;
		rc = truncate(p1, op->off);
		record(r, "truncate", rc);
		if (g_fsync && rc == 0 && (fd = open(p1, O_RDONLY)) >= 0) {
			sync_fd(r, fd);
			close(fd);
		}
	}
	if (rc == 0 && same)
		inoset_add(&s->unspec, &st);
}

static void do_fallocate(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	int fd;

	if (op->variant & 1) {
		fd = slot_fd(s, r, op->slot);
		if (fd < 0)
			return;
		record(r, "fallocate", fallocate(fd, op->flags, op->off, (off_t)op->len));
		sync_fd(r, fd);
		return;
	}
	fd = open(p1, O_RDWR);
	if (fd < 0) {
		record(r, "open", -1);
		return;
	}
	record(r, "fallocate", fallocate(fd, op->flags, op->off, (off_t)op->len));
	sync_fd(r, fd);
	close_into(r, fd);
}

static void do_utimens(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	struct stat st;
	int fd, rc;

	if (op->variant & 1) {
		fd = slot_fd(s, r, op->slot);
		if (fd < 0)
			return;
		rc = futimens(fd, op->times);
		record(r, "futimens", rc);
		if (rc == 0 && fstat(fd, &st) == 0)
			inoset_del(&s->unspec, &st);
		sync_fd(r, fd);
		return;
	}
	rc = utimensat(AT_FDCWD, p1, op->times, op->flags);
	record(r, "utimensat", rc);
	if (rc == 0 && fstatat(AT_FDCWD, p1, &st, op->flags) == 0 &&
	    op->times[1].tv_nsec != UTIME_OMIT)
		inoset_del(&s->unspec, &st);
	sync_parent(r, p1);
}

static void do_chmod(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	int fd;

	if (op->variant & 1) {
		fd = slot_fd(s, r, op->slot);
		if (fd >= 0) {
			record(r, "fchmod", fchmod(fd, op->mode));
			sync_fd(r, fd);
		}
		return;
	}
	record(r, "chmod", chmod(p1, op->mode));
	sync_parent(r, p1);
}


static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The user.* names of a listxattr list, sorted, one a line: other
 * namespaces (security.*) are the host's business. */
static void xattr_names_text(const char *list, size_t len, struct buf *out)
{
	const char **v = xcalloc(len / 2 + 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < len; i += strlen(list + i) + 1)
		if (strncmp(list + i, "user.", 5) == 0)
			v[n++] = list + i;
	if (n)
		qsort(v, n, sizeof(*v), cmp_strp);
	for (size_t i = 0; i < n; i++)
		buf_printf(out, "%s\n", v[i]);
	free(v);
}

/* xattr calls: variant 0 and 1 by path, 2 the l* call, 3 the f* call on a slot. */
static void do_xattr(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	const char *name = xattr_names[op->xname];
	int fd = -1;
	ssize_t n;

	if (op->variant == 3 && (fd = slot_fd(s, r, op->slot)) < 0)
		return;
	switch (op->kind) {
	case K_SETXATTR:
		record(r, "setxattr",
		       fd >= 0 ? fsetxattr(fd, name, g_data, op->len, op->flags) :
		       op->variant == 2 ? lsetxattr(p1, name, g_data, op->len, op->flags) :
					  setxattr(p1, name, g_data, op->len, op->flags));
		break;
	case K_REMOVEXATTR:
		record(r, "removexattr",
		       fd >= 0 ? fremovexattr(fd, name) :
		       op->variant == 2 ? lremovexattr(p1, name) : removexattr(p1, name));
		break;
	case K_GETXATTR: {
		size_t size = op->whence == 0 ? 0 : op->whence == 1 ? 1 : 65536;
		void *dst;

		buf_reset(&r->out);
		buf_grow(&r->out, size);
		dst = size ? r->out.data : NULL;
		n = fd >= 0 ? fgetxattr(fd, name, dst, size) :
		    op->variant == 2 ? lgetxattr(p1, name, dst, size) : getxattr(p1, name, dst, size);
		record(r, "getxattr", n);
		if (n > 0 && size)
			buf_setlen(&r->out, (size_t)n);
		r->binary = 1;
		break;
	}
	case K_LISTXATTR: {
		char *list = xmalloc(65536);

		n = fd >= 0 ? flistxattr(fd, list, 65536) :
		    op->variant == 2 ? llistxattr(p1, list, 65536) : listxattr(p1, list, 65536);
		/* the length counts other namespaces too: not compared */
		record(r, "listxattr", n < 0 ? -1 : 0);
		if (n > 0)
			xattr_names_text(list, (size_t)n, &r->out);
		free(list);
		break;
	}
	default:
		break;
	}
	if (op->kind == K_SETXATTR || op->kind == K_REMOVEXATTR) {
		if (fd >= 0)
			sync_fd(r, fd);
		else
			sync_parent(r, p1);
	}
}

static void do_readdir(struct side *s, struct result *r, const char *p1)
{
	struct dirent *e;
	struct stat st;
	char **v = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	(void)s;
	d = opendir(p1);
	if (!d) {
		record(r, "opendir", -1);
		return;
	}
	errno = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;	/* POSIX lets a filesystem leave them out */
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		/* d_type must be DT_UNKNOWN or the entry's real type */
		if (e->d_type != DT_UNKNOWN &&
		    (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		     IFTODT(st.st_mode) != e->d_type))
			v[n++] = xasprintf("%s (d_type %u does not match lstat)", e->d_name,
					   (unsigned)e->d_type);
		else
			v[n++] = xstrdup(e->d_name);
	}
	record(r, "readdir", errno ? -1 : (long long)n);
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_strp);
	for (size_t i = 0; i < n; i++) {
		buf_printf(&r->out, "%s\n", v[i]);
		free(v[i]);
	}
	free(v);
}

/* Copies n bytes into a mapping (to) or out of it (from, into out);
 * -1 when the mapping raises SIGBUS (a page past what the file holds). */
static int copy_guarded(uint8_t *to, const uint8_t *from, size_t n, struct buf *out)
{
	if (sigsetjmp(g_bus_jmp, 1)) {
		g_bus_armed = 0;
		return -1;
	}
	g_bus_armed = 1;
	if (to)
		memcpy(to, g_data, n);
	else
		buf_add(out, from, n);
	g_bus_armed = 0;
	return 0;
}

static void do_mmap(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	int writing = !(op->variant & 2);
	int own = !(op->variant & 1);
	struct stat st;
	size_t size, n;
	uint8_t *m;
	off_t o;
	int fd;

	if (own) {
		fd = open(p1, writing ? O_RDWR : O_RDONLY);
		if (fd < 0) {
			record(r, "open", -1);
			return;
		}
	} else if ((fd = slot_fd(s, r, op->slot)) < 0) {
		return;
	}
	if (fstat(fd, &st) != 0) {
		record(r, "fstat", -1);
		goto out;
	}
	size = S_ISREG(st.st_mode) ? (size_t)st.st_size : 4096;
	if (size == 0) {
		r->stage = "empty file, nothing mapped";
		r->ret = 0;
		goto out;
	}
	m = mmap(NULL, size, writing ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		record(r, "mmap", -1);
		goto out;
	}
	o = op->off % (off_t)size;
	n = op->len < size - (size_t)o ? op->len : size - (size_t)o;
	if (copy_guarded(writing ? m + o : NULL, writing ? NULL : m + o, n, &r->out) != 0) {
		r->stage = "SIGBUS in the mapping";
		r->ret = -1;
		r->err = EFAULT;
		munmap(m, size);
		goto out;
	}
	r->binary = !writing;
	if (writing && msync(m, size, MS_SYNC) != 0)
		record(r, "msync", -1);
	else
		record(r, writing ? "mmap write" : "mmap read", (long long)n);
	munmap(m, size);
	/* Linux filesystems differ on when (tmpfs: whether) a write through a
	 * mapping moves the mtime: it is left open until the next utimensat */
	if (writing && result_ok(r) && n > 0)
		inoset_add(&s->unspec, &st);
	if (writing)
		sync_fd(r, fd);
out:
	if (own)
		close_into(r, fd);
}

static void do_fsync(struct side *s, const struct op *op, struct result *r, const char *p1)
{
	int fd;

	if (op->variant < 2) {
		fd = slot_fd(s, r, op->slot);
		if (fd >= 0)
			record(r, op->variant ? "fdatasync" : "fsync",
			       op->variant ? fdatasync(fd) : fsync(fd));
		return;
	}
	fd = open(p1, O_RDONLY);
	if (fd < 0) {
		record(r, "open", -1);
		return;
	}
	record(r, "fsync", fsync(fd));
	close_into(r, fd);
}

/* A new inode's mtime is the clock's: forget a reused inode number. */
static void forget_new(struct side *s, const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		inoset_del(&s->unspec, &st);
}

static void exec_op(struct side *s, const struct op *op, struct result *r)
{
	const char *p1 = side_path(s, 0, names[op->n1]);
	const char *p2 = side_path(s, 1, names[op->n2]);
	struct stat st;
	int fd, existed;

	result_reset(r);
	switch (op->kind) {
	case K_CREATE:
	case K_OPEN:
		existed = stat(p1, &st) == 0;
		do_open(s, op, r, p1);
		if (result_ok(r) && (!existed || op->flags & O_TRUNC) && stat(p1, &st) == 0)
			inoset_del(&s->unspec, &st);
		break;
	case K_CLOSE:
		if (slot_fd(s, r, op->slot) >= 0) {
			record(r, "close", close(s->fd[op->slot]));
			s->fd[op->slot] = -1;
		}
		break;
	case K_WRITE:
	case K_FDWRITE:
		do_write(s, op, r, p1);
		break;
	case K_READ:
	case K_FDREAD:
		do_read(s, op, r, p1);
		break;
	case K_LSEEK:
		fd = slot_fd(s, r, op->slot);
		if (fd < 0)
			break;
		/* on a directory the offsets are the filesystem's own */
		if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
			r->stage = "not a file, not run";
			break;
		}
		record(r, "lseek",
		       lseek(fd, op->whence == 0 ? op->off : op->off % 16384 - 8192,
			     op->whence == 0 ? SEEK_SET : op->whence == 1 ? SEEK_CUR : SEEK_END));
		break;
	case K_TRUNCATE:
	case K_FTRUNCATE:
		do_truncate(s, op, r, p1);
		break;
	case K_FALLOCATE:
		do_fallocate(s, op, r, p1);
		break;
	case K_UNLINK:
		record(r, "unlink", unlink(p1));
		sync_parent(r, p1);
		break;
	case K_MKDIR:
		record(r, "mkdir", mkdir(p1, op->mode));
		if (result_ok(r))
			forget_new(s, p1);
		sync_parent(r, p1);
		break;
	case K_RMDIR:
		record(r, "rmdir", rmdir(p1));
		sync_parent(r, p1);
		break;
	case K_RENAME:
	case K_RENAME2:
		if (op->kind == K_RENAME)
			record(r, "rename", rename(p1, p2));
		else
			record(r, "renameat2", renameat2(AT_FDCWD, p1, AT_FDCWD, p2, (unsigned)op->flags));
		sync_parent(r, p1);
		sync_parent(r, p2);
		break;
	case K_LINK:
		record(r, "linkat", linkat(AT_FDCWD, p1, AT_FDCWD, p2, op->flags));
		sync_parent(r, p2);
		break;
	case K_SYMLINK:
		record(r, "symlink", symlink(op->target, p1));
		if (result_ok(r))
			forget_new(s, p1);
		sync_parent(r, p1);
		break;
	case K_READLINK: {
		size_t size = op->variant == 0 ? 3 : PATH_MAX;
		ssize_t n;

		buf_grow(&r->out, size);
		n = readlink(p1, (char *)r->out.data, size);
		record(r, "readlink", n);
		if (n > 0)
			buf_setlen(&r->out, (size_t)n);
		break;
	}
	case K_CHMOD:
		do_chmod(s, op, r, p1);
		break;
	case K_UTIMENS:
		do_utimens(s, op, r, p1);
		break;
	case K_SETXATTR:
	case K_GETXATTR:
	case K_REMOVEXATTR:
	case K_LISTXATTR:
		do_xattr(s, op, r, p1);
		break;
	case K_STAT:
		if ((op->variant & 1 ? lstat(p1, &st) : stat(p1, &st)) != 0) {
			record(r, op->variant & 1 ? "lstat" : "stat", -1);
		} else {
			record(r, op->variant & 1 ? "lstat" : "stat", 0);
			meta_get(s, &st, &r->meta);
			r->has_meta = 1;
		}
		break;
	case K_FSTAT:
		fd = slot_fd(s, r, op->slot);
		if (fd >= 0) {
			record(r, "fstat", 0);
			fstat_into(s, r, fd);
		}
		break;
	case K_READDIR:
		do_readdir(s, r, p1);
		break;
	case K_FSYNC:
		do_fsync(s, op, r, p1);
		break;
	case K_MMAP:
		do_mmap(s, op, r, p1);
		break;
	case NKINDS:
		break;
	}
}

/* ---- comparing whole trees ------------------------------------------------- */

static struct side sides[2];	/* [0] under test, [1] the reference */

/* Looks at the reference tree for the generator (see struct view). */
static void view_scan(struct view *v)
{
	struct side *ref = &sides[1];
	struct stat st;

	for (size_t i = 0; i < nnames; i++) {
		const char *p = side_path(ref, 0, names[i]);

		v->size[i] = -1;
		v->xmask[i] = 0;
		for (size_t k = 0; k < 3; k++)
			if (lgetxattr(p, xattr_names[k], NULL, 0) >= 0)
				v->xmask[i] |= 1u << k;
		if (lstat(p, &st) != 0)
			v->type[i] = 'a';
		else if (S_ISREG(st.st_mode))
			v->type[i] = 'f', v->size[i] = st.st_size;
		else
			v->type[i] = S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : 'o';
	}
	for (int j = 0; j < NSLOTS; j++)
		v->slot_size[j] = ref->fd[j] >= 0 && fstat(ref->fd[j], &st) == 0 &&
				  S_ISREG(st.st_mode) ? st.st_size : -1;
}

struct name_list {
	char **v;
	size_t n;
};

static void name_list_free(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* The sorted names in a directory but . and ..; 0 or -errno. */
static int list_dir(const char *path, struct name_list *l)
{
	struct dirent *e;
	size_t cap = 0;
	DIR *d;
	int rc = 0;

	l->v = NULL;
	l->n = 0;
	d = opendir(path);
	if (!d)
		return -errno;
	errno = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (l->n == cap) {
			cap = cap ? 2 * cap : 16;
			l->v = xrealloc(l->v, cap * sizeof(*l->v));
		}
		l->v[l->n++] = xstrdup(e->d_name);
	}
	if (errno)
		rc = -errno;
	closedir(d);
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_strp);
	return rc;
}

static char *rel_join(const char *rel, const char *name)
{
	return *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
}

static ssize_t pread_full(int fd, uint8_t *dst, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, dst + got, len - got, off + (off_t)got);

		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int contents_compare(const char *rel, const char *pa, const char *pb, struct buf *why)
{
	enum { CHUNK = 1 << 20 };
	static uint8_t *ba, *bb;
	off_t off = 0;
	int fa, fb, rc = 0;

	if (!ba) {
		ba = xmalloc(CHUNK);
		bb = xmalloc(CHUNK);
	}
	fa = open(pa, O_RDONLY | O_NOFOLLOW);
	fb = open(pb, O_RDONLY | O_NOFOLLOW);
	if (fa < 0 || fb < 0) {
		buf_printf(why, "%s: open for reading: under test %s, reference %s", rel,
			   fa < 0 ? errname(errno) : "ok", fb < 0 ? errname(errno) : "ok");
		rc = 1;
		goto out;
	}
	for (;;) {
		ssize_t na = pread_full(fa, ba, CHUNK, off);
		ssize_t nb = pread_full(fb, bb, CHUNK, off);
		size_t i = 0;

		if (na < 0 || nb < 0) {
			buf_printf(why, "%s: read at %lld fails (%s)", rel, (long long)off,
				   na < 0 ? "under test" : "reference");
			rc = 1;
			break;
		}
		if (na == nb && memcmp(ba, bb, (size_t)na) == 0) {
			if (na == 0)
				break;
			off += na;
			continue;
		}
		while (i < (size_t)na && i < (size_t)nb && ba[i] == bb[i])
			i++;
		buf_printf(why, "%s: contents differ at byte %lld (under test reads %zd bytes "
			   "from %lld, reference %zd)", rel, (long long)off + (long long)i, na,
			   (long long)off, nb);
		if (i < (size_t)na && i < (size_t)nb)
			buf_printf(why, "; bytes there: under test 0x%02x, reference 0x%02x",
				   ba[i], bb[i]);
		rc = 1;
		break;
	}
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return rc;
}

/* user.* xattrs of an entry (not following a symlink), sorted, as text. */
static void xattrs_text(const char *path, struct buf *out)
{
	char *list = xmalloc(65536);
	uint8_t *val = xmalloc(65536);
	ssize_t n = llistxattr(path, list, 65536);
	struct buf names_text = BUF_INIT;
	char *line, *save = NULL;

	if (n < 0) {
		buf_printf(out, "llistxattr fails: %s", errname(errno));
		goto out;
	}
	xattr_names_text(list, (size_t)n, &names_text);
	if (!names_text.len)
		goto out;
	for (line = strtok_r((char *)names_text.data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		ssize_t v = lgetxattr(path, line, val, 65536);

		buf_printf(out, "%.40s%s", line, strlen(line) > 40 ? "..." : "");
		if (v < 0)
			buf_printf(out, " (lgetxattr fails: %s); ", errname(errno));
		else if (v <= 32) {
			buf_printf(out, " = [%zd] ", v);
			for (ssize_t i = 0; i < v; i++)
				buf_printf(out, "%02x", val[i]);
			buf_adds(out, "; ");
		} else {
			buf_printf(out, " = [%zd] fnv64 %016" PRIx64 "; ", v, fnv64(val, (size_t)v));
		}
	}
out:
	buf_free(&names_text);
	free(list);
	free(val);
}

static int dir_compare(const char *rel, struct buf *why);

static unsigned long g_entries, g_explicit;	/* of the last tree comparison */

static int entry_compare(const char *rel, struct buf *why)
{
	const char *pa = side_path(&sides[0], 0, rel);
	const char *pb = side_path(&sides[1], 0, rel);
	struct buf xa = BUF_INIT, xb = BUF_INIT;
	struct stat sa, sb;
	struct meta ma, mb;
	int rc = 0;

	if (lstat(pa, &sa) != 0 || lstat(pb, &sb) != 0) {
		buf_printf(why, "%s: lstat fails (%s)", rel, errname(errno));
		return 1;
	}
	meta_get(&sides[0], &sa, &ma);
	meta_get(&sides[1], &sb, &mb);
	g_entries++;
	g_explicit += ma.mt == MT_EXPLICIT && mb.mt == MT_EXPLICIT;
	if (!meta_equal(&ma, &mb)) {
		buf_printf(why, "%s: under test ", rel);
		meta_describe(&ma, why);
		buf_adds(why, "; reference ");
		meta_describe(&mb, why);
		return 1;
	}
	if (S_ISLNK(sa.st_mode)) {
		char ta[PATH_MAX + 1], tb[PATH_MAX + 1];
		ssize_t la = readlink(pa, ta, PATH_MAX), lb = readlink(pb, tb, PATH_MAX);

		if (la < 0 || lb < 0 || la != lb || memcmp(ta, tb, (size_t)la)) {
			buf_printf(why, "%s: symlink targets: under test \"%.*s\", reference \"%.*s\"",
				   rel, (int)(la < 0 ? 0 : la), ta, (int)(lb < 0 ? 0 : lb), tb);
			return 1;
		}
	}
	xattrs_text(pa, &xa);
	xattrs_text(pb, &xb);
	if (strcmp(buf_str(&xa), buf_str(&xb))) {
		buf_printf(why, "%s: xattrs: under test {%s}, reference {%s}", rel,
			   buf_str(&xa), buf_str(&xb));
		rc = 1;
	}
	buf_free(&xa);
	buf_free(&xb);
	if (rc)
		return rc;
	if (S_ISREG(sa.st_mode)) {
		char *a = xstrdup(pa), *b = xstrdup(pb);

		rc = contents_compare(rel, a, b, why);
		free(a);
		free(b);
		return rc;
	}
	if (S_ISDIR(sa.st_mode))
		return dir_compare(rel, why);
	return 0;
}

/* Compares the directory rel ("" for the roots) and everything below it;
 * 0 when both sides agree, else 1 with the first difference in why. */
static int dir_compare(const char *rel, struct buf *why)
{
	struct name_list la, lb;
	int ra, rb, rc = 0;
	size_t i = 0, j = 0;

	ra = list_dir(side_path(&sides[0], 0, rel), &la);
	rb = list_dir(side_path(&sides[1], 0, rel), &lb);
	if (ra || rb) {
		buf_printf(why, "%s/: listing fails: under test %s, reference %s", rel,
			   ra ? errname(-ra) : "ok", rb ? errname(-rb) : "ok");
		rc = 1;
		goto out;
	}
	while (!rc && (i < la.n || j < lb.n)) {
		int c = i == la.n ? 1 : j == lb.n ? -1 : strcmp(la.v[i], lb.v[j]);
		char *crel;

		if (c) {
			crel = rel_join(rel, c < 0 ? la.v[i] : lb.v[j]);
			buf_printf(why, "%s: only %s has it", crel,
				   c < 0 ? "the filesystem under test" : "the reference");
			free(crel);
			rc = 1;
			break;
		}
		crel = rel_join(rel, la.v[i]);
		rc = entry_compare(crel, why);
		free(crel);
		i++;
		j++;
	}
out:
	name_list_free(&la);
	name_list_free(&lb);
	return rc;
}

/* Compares the two whole trees: 0 when they agree, else 1 and why. */
static int tree_compare(struct buf *why)
{
	g_entries = g_explicit = 0;
	return dir_compare("", why);
}

/* After the last comparison: gives every inode whose mtime was left open an
 * explicit one on both sides, so a later --compare-only (after a remount,
 * with no memory of this run) can hold every mtime to account. */
static void settle_dir(const char *rel)
{
	static const struct timespec t[2] = { { 1000000000, 123456789 },
					      { 1000000000, 987654321 } };
	struct name_list l;

	if (list_dir(side_path(&sides[1], 0, rel), &l))
		return;
	for (size_t i = 0; i < l.n; i++) {
		char *crel = rel_join(rel, l.v[i]);
		struct stat st[2];
		int open_mtime = 0;

		for (int k = 0; k < 2; k++)
			if (lstat(side_path(&sides[k], 0, crel), &st[k]) == 0 &&
			    inoset_find(&sides[k].unspec, &st[k]) >= 0)
				open_mtime = 1;
		if (open_mtime)
			for (int k = 0; k < 2; k++) {
				utimensat(AT_FDCWD, side_path(&sides[k], 0, crel), t,
					  AT_SYMLINK_NOFOLLOW);
				inoset_del(&sides[k].unspec, &st[k]);
			}
		if (S_ISDIR(st[1].st_mode))
			settle_dir(crel);
		free(crel);
	}
	name_list_free(&l);
}

/* ---- main ---------------------------------------------------------------- */

static void prepare_root(const char *root)
{
	static const char *const dirs[] = { "d", "d/e", "d/e/f", "g" };
	char *dot = xasprintf("%s/.", root);
	struct name_list l;
	int rc;

	rc = fsu_mkdir_parents(dot);
	free(dot);
	if (rc < 0)
		tap_bail("mkdir -p %s: %s", root, strerror(-rc));
	rc = list_dir(root, &l);
	if (rc < 0)
		tap_bail("listing %s: %s", root, strerror(-rc));
	if (l.n)
		tap_bail("%s is not empty: the run needs two fresh directories", root);
	name_list_free(&l);
	for (size_t i = 0; i < NELEM(dirs); i++) {
		char *p = xasprintf("%s/%s", root, dirs[i]);

		if (mkdir(p, 0755) != 0)
			tap_bail("mkdir %s: %m", p);
		free(p);
	}
}

static int parse_uint(const char *s, unsigned long long *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && *s && !*end && *s != '-';
}

static int skip_zero_range;

static int parse_skip(const char *list, int skip[NKINDS])
{
	char *copy = xstrdup(list), *save = NULL;
	int ok_all = 1;

	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		int found = 0;

		if (!strcmp(w, "zero_range"))
			skip_zero_range = found = 1;
		for (int k = 0; k < NKINDS; k++)
			if (!strcmp(w, kinds[k].name))
				skip[k] = found = 1;
		if (!found) {
			fprintf(stderr, "fs_random: no operation class \"%s\"\n", w);
			ok_all = 0;
		}
	}
	free(copy);
	return ok_all;
}

/* syncfs of DIR_A, then drop_caches: 0, or -1 with a diagnostic. */
static int drop_caches(void)
{
	int fd = open(sides[0].root, O_RDONLY | O_DIRECTORY);
	int rc = -1;

	if (fd >= 0) {
		if (syncfs(fd) != 0)
			diag("syncfs %s: %s", sides[0].root, strerror(errno));
		close(fd);
	}
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0 || write(fd, "3", 1) != 1)
		diag("/proc/sys/vm/drop_caches: %s: caches not dropped", strerror(errno));
	else
		rc = 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

static void report_difference(unsigned long long seed, unsigned long long i,
			      unsigned long long nops, const struct op *op)
{
	struct buf b = BUF_INIT;
	const struct result *ra = &sides[0].res, *rb = &sides[1].res;

	op_describe(op, &b);
	diag("seed %llu: operation %llu of %llu differs: %s", seed, i, nops, buf_str(&b));
	buf_reset(&b);
	result_describe(ra, &b);
	diag("  under test (%s): %s", sides[0].root, buf_str(&b));
	buf_reset(&b);
	result_describe(rb, &b);
	diag("  reference  (%s): %s", sides[1].root, buf_str(&b));
	if (ra->out.len && rb->out.len && !(ra->out.len == rb->out.len &&
					     !memcmp(ra->out.data, rb->out.data, ra->out.len))) {
		size_t k = 0;

		while (k < ra->out.len && k < rb->out.len && ra->out.data[k] == rb->out.data[k])
			k++;
		diag("  the outputs first differ at byte %zu", k);
	}
	diag("  replay: fs_random --seed %llu --ops %llu --verbose on two fresh directories",
	     seed, i + 1);
	buf_free(&b);
}

int main(int argc, char **argv)
{
	unsigned long long seed = 1, nops = 3000, nfiles = 35, every = 200, drop_every = 0;
	unsigned count[NKINDS] = { 0 }, succeeded[NKINDS] = { 0 };
	int skip[NKINDS] = { 0 };
	int compare_only = 0, verbose = 0, failed_kind = -1, stopped = 0, rc;
	unsigned long long i;
	struct buf why = BUF_INIT, desc = BUF_INIT;
	struct sigaction sa;
	struct view view;
	struct rng rng;
	struct op op;
	int ai;

	for (ai = 1; ai < argc && argv[ai][0] == '-' && argv[ai][1] == '-'; ai++) {
		const char *a = argv[ai];
		int has_val = ai + 1 < argc;

		if (!strcmp(a, "--")) {
			ai++;
			break;
		} else if (!strcmp(a, "--seed") && has_val && parse_uint(argv[ai + 1], &seed)) {
			ai++;
		} else if (!strcmp(a, "--ops") && has_val && parse_uint(argv[ai + 1], &nops)) {
			ai++;
		} else if (!strcmp(a, "--files") && has_val && parse_uint(argv[ai + 1], &nfiles) &&
			   nfiles >= 16 && nfiles <= MAX_NAMES) {
			ai++;
		} else if (!strcmp(a, "--tree-every") && has_val &&
			   parse_uint(argv[ai + 1], &every) && every > 0) {
			ai++;
		} else if (!strcmp(a, "--drop-caches") && has_val &&
			   parse_uint(argv[ai + 1], &drop_every)) {
			ai++;
		} else if (!strcmp(a, "--skip") && has_val && parse_skip(argv[ai + 1], skip)) {
			ai++;
		} else if (!strcmp(a, "--fsync")) {
			g_fsync = 1;
		} else if (!strcmp(a, "--compare-only")) {
			compare_only = 1;
		} else if (!strcmp(a, "--verbose")) {
			verbose = 1;
		} else {
			fprintf(stderr, "fs_random: bad option or value: %s\n%s", a, usage);
			return 2;
		}
	}
	if (argc - ai != 2) {
		fputs(usage, stderr);
		return 2;
	}
	umask(0);
	namespace_init((size_t)nfiles);
	for (int k = 0; k < 2; k++) {
		sides[k].root = argv[ai + k];
		for (int j = 0; j < NSLOTS; j++)
			sides[k].fd[j] = -1;
	}

	if (compare_only) {
		rc = tree_compare(&why);
		if (!ok(rc == 0, "the trees agree (%s, %s: %lu entries, %lu explicit mtimes)",
			sides[0].root, sides[1].root, g_entries, g_explicit))
			diag("%s", buf_str(&why));
		buf_free(&why);
		return tap_done();
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigaction(SIGBUS, &sa, NULL);
	g_data = xmalloc(MAX_IO);
	prepare_root(sides[0].root);
	prepare_root(sides[1].root);
	rng_seed(&rng, seed);

	for (i = 0; i < nops && !stopped; i++) {
		view_scan(&view);
		gen_op(&rng, &view, &op);
		if (skip[op.kind] || (skip_zero_range && op.kind == K_FALLOCATE &&
				      op.flags & FALLOC_FL_ZERO_RANGE))
			continue;
		if (op.kind == K_WRITE || op.kind == K_FDWRITE || op.kind == K_MMAP ||
		    op.kind == K_SETXATTR)
			fill_data(g_data, op.len, op.style, op.data_seed);
		count[op.kind]++;
		for (int k = 0; k < 2; k++)
			exec_op(&sides[k], &op, &sides[k].res);
		if (verbose) {
			buf_reset(&desc);
			op_describe(&op, &desc);
			buf_adds(&desc, "\n    ");
			result_describe(&sides[1].res, &desc);
			fprintf(stderr, "op %llu: %s\n", i, buf_str(&desc));
		}
		if (result_ok(&sides[1].res) && strcmp(sides[1].res.stage, "empty fd slot"))
			succeeded[op.kind]++;
		if (!result_equal(&sides[0].res, &sides[1].res)) {
			report_difference(seed, i, nops, &op);
			failed_kind = op.kind;
			stopped = 1;
			break;
		}
		if (drop_every && (i + 1) % drop_every == 0 && drop_caches() != 0)
			drop_every = 0;
		if ((i + 1) % every == 0 && i + 1 < nops) {
			buf_reset(&why);
			rc = tree_compare(&why);
			if (!ok(rc == 0, "seed %llu: the trees agree after operation %llu "
				"(%lu entries, %lu explicit mtimes)", seed, i, g_entries, g_explicit))
				diag("seed %llu: after operation %llu: %s", seed, i, buf_str(&why));
			stopped = rc != 0;
		}
	}

	if (!stopped) {
		/* close every kept fd (a close can fail on a network or FUSE fs) */
		for (int j = 0; j < NSLOTS; j++) {
			struct result *r[2] = { &sides[0].res, &sides[1].res };

			for (int k = 0; k < 2; k++) {
				result_reset(r[k]);
				if (sides[k].fd[j] >= 0)
					record(r[k], "close at the end", close(sides[k].fd[j]));
				sides[k].fd[j] = -1;
			}
			if (!result_equal(r[0], r[1])) {
				op.kind = K_CLOSE;
				op.slot = j;
				report_difference(seed, nops, nops, &op);
				failed_kind = K_CLOSE;
				stopped = 1;
			}
		}
	}
	if (!stopped) {
		buf_reset(&why);
		rc = tree_compare(&why);
		if (!ok(rc == 0, "seed %llu: the trees agree at the end of %llu operations "
			"(%lu entries, %lu explicit mtimes)", seed, nops, g_entries, g_explicit))
			diag("seed %llu: at the end: %s", seed, buf_str(&why));
		else
			settle_dir("");
	}
	for (int k = 0; k < NKINDS; k++) {
		if (skip[k])
			tap_skip(1, kinds[k].name);
		else if (!ok(failed_kind != k, "seed %llu: %u %s operations agree (%u succeeded)%s",
			     seed, count[k], kinds[k].name, succeeded[k],
			     stopped ? " (the run stopped early)" : ""))
			diag("seed %llu: the first difference is the %s above", seed, kinds[k].name);
	}
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < NSLOTS; j++)
			if (sides[k].fd[j] >= 0)
				close(sides[k].fd[j]);
	buf_free(&why);
	buf_free(&desc);
	return tap_done();
}
