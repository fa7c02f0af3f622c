/*
 * fs_posix.c - what a local disk gives programs, checked in a directory:
 * each call with its error cases (errno asserted), as root and then as an
 * unprivileged user.  Every check passes on ext4 and tmpfs; the point is
 * that a cairnfs mount answers the same.  tests/test_fs_posix.sh runs it on
 * a mount with --cairnfs, which adds the answers cairnfs gives on purpose
 * where a local disk differs (O_TMPFILE, POSIX ACLs, RENAME_WHITEOUT and
 * COLLAPSE_RANGE: not supported, and said so).
 *
 *   fs_posix [--cairnfs] [--big N] [--user UID:GID] DIR
 *
 * Everything happens in a fresh DIR/fs_posix-XXXXXX, removed at the end.
 * Forked children (the lock holder's rival, the unprivileged user) send
 * their results up a pipe and the parent prints them, so the TAP numbering
 * stays one sequence.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "tap.h"

#define MiB (1L << 20)

static struct {
	int cairnfs;	/* add the checks of what cairnfs refuses on purpose */
	long big;	/* entries of the large directory */
	uid_t uid;	/* the unprivileged user of the ownership checks */
	gid_t gid;
	int as_root;	/* euid 0: chown, trusted.*, devices, the user part */
} opt = { 0, 20000, 65534, 65534, 0 };

/* ---- reporting ------------------------------------------------------------
 * Checks go through report(): in the parent it is one TAP line, in a forked
 * child one line on child_fd ("ok LINE NAME", "not-ok LINE NAME", "# TEXT")
 * that the parent turns into the same TAP line.  Details follow the line. */

static int child_fd = -1;	/* in a forked child: the pipe its results go to */

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "unknown errno";
}

static int vreport(int cond, int line, const char *fmt, va_list ap)
{
	char *name;

	if (vasprintf(&name, fmt, ap) < 0)
		abort();
	if (child_fd >= 0)
		dprintf(child_fd, "%s %d %s\n", cond ? "ok" : "not-ok", line, name);
	else
		tap_ok(cond, __FILE__, line, "%s", name);
	free(name);
	return cond;
}

static int report(int cond, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int report(int cond, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cond, line, fmt, ap);
	va_end(ap);
	return cond;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (child_fd >= 0)
		dprintf(child_fd, "# %s\n", text);
	else
		diag("%s", text);
	free(text);
}

/* A call that returns -1 on failure must have succeeded. */
static int check_sys(long r, int e, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int check_sys(long r, int e, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(r != -1, line, fmt, ap);
	va_end(ap);
	if (r == -1)
		note("failed with errno %s (%d): %s", errname(e), e, strerror(e));
	return r != -1;
}

/* A call must have failed with errno want (or want2). */
static int check_err(long r, int e, int want, int want2, int line, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static int check_err(long r, int e, int want, int want2, int line, const char *fmt, ...)
{
	int cond = r == -1 && (e == want || e == want2);
	va_list ap;

	va_start(ap, fmt);
	vreport(cond, line, fmt, ap);
	va_end(ap);
	if (r != -1)
		note("succeeded (returned %ld), wanted errno %s", r, errname(want));
	else if (!cond)
		note("errno %s (%d), wanted %s (%d)", errname(e), e, errname(want), want);
	return cond;
}

static int check_int(long long got, long long want, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int check_int(long long got, long long want, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(got == want, line, fmt, ap);
	va_end(ap);
	if (got != want)
		note("got %lld, wanted %lld", got, want);
	return got == want;
}

static int check_mode(long long got, long long want, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int check_mode(long long got, long long want, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(got == want, line, fmt, ap);
	va_end(ap);
	if (got != want)
		note("got %#llo, wanted %#llo", got, want);
	return got == want;
}

static int check_gt(long long got, long long than, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int check_gt(long long got, long long than, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(got > than, line, fmt, ap);
	va_end(ap);
	if (got <= than)
		note("got %lld, wanted more than %lld", got, than);
	return got > than;
}

static int check_mem(const void *got, long got_len, const void *want, size_t want_len,
		     int line, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int check_mem(const void *got, long got_len, const void *want, size_t want_len,
		     int line, const char *fmt, ...)
{
	int cond = got_len >= 0 && (size_t)got_len == want_len &&
		   (want_len == 0 || memcmp(got, want, want_len) == 0);
	va_list ap;

	va_start(ap, fmt);
	vreport(cond, line, fmt, ap);
	va_end(ap);
	if (!cond && got_len < 0) {
		note("the read failed (errno %s)", errname(errno));
	} else if (!cond) {
		size_t i = 0;

		while (i < (size_t)got_len && i < want_len &&
		       ((const uint8_t *)got)[i] == ((const uint8_t *)want)[i])
			i++;
		note("got %ld bytes, wanted %zu; first difference at byte %zu", got_len,
		     want_len, i);
	}
	return cond;
}

static void setup_failed(const char *what, int e, int line)
{
	report(0, line, "setup: %s", what);
	note("failed with errno %s (%d)", errname(e), e);
}

#define CHECK(cond, ...) report(!!(cond), __LINE__, __VA_ARGS__)
#define CHECK_SYS(call, ...) \
	({ long r_ = (long)(call); int e_ = errno; check_sys(r_, e_, __LINE__, __VA_ARGS__); })
#define CHECK_ERR(call, want, ...) CHECK_ERR2(call, want, want, __VA_ARGS__)
#define CHECK_ERR2(call, want, want2, ...)                                          \
	({                                                                          \
		long r_ = (long)(call);                                             \
		int e_ = errno;                                                     \
		check_err(r_, e_, want, want2, __LINE__, __VA_ARGS__);              \
	})
#define CHECK_INT(got, want, ...) \
	check_int((long long)(got), (long long)(want), __LINE__, __VA_ARGS__)
/* Mode bits, or a file type (st_mode & S_IFMT), shown in octal. */
#define CHECK_MODE(got, want, ...) \
	check_mode((long long)(got), (long long)(want), __LINE__, __VA_ARGS__)
#define CHECK_GT(got, than, ...) \
	check_gt((long long)(got), (long long)(than), __LINE__, __VA_ARGS__)
#define CHECK_MEM(got, got_len, want, want_len, ...) \
	check_mem(got, got_len, want, want_len, __LINE__, __VA_ARGS__)
/* A step the following checks need: a failure is one failing check. */
#define SETUP(call)                                                           \
	({                                                                    \
		long r_ = (long)(call);                                       \
		if (r_ == -1)                                                 \
			setup_failed(#call, errno, __LINE__);                 \
		r_;                                                           \
	})

/* ---- small helpers ------------------------------------------------------- */

/* dir/name in one of four rotating buffers: enough for one call's paths. */
static const char *in(const char *dir, const char *name)
{
	static struct buf ring[4];
	static unsigned next;
	struct buf *b = &ring[next++ % 4];

	buf_reset(b);
	buf_printf(b, "%s/%s", dir, name);
	return buf_str(b);
}

/* Creates (or empties) name in d and writes data; 0, or -1 with errno. */
static int put(int d, const char *name, const void *data, size_t len, mode_t mode)
{
	int fd = openat(d, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	const char *p = data;
	int e;

	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return close(fd);
}

/* The whole content of name in d, into out; its length, or -1 with errno. */
static long get(int d, const char *name, struct buf *out)
{
	int fd = openat(d, name, O_RDONLY | O_CLOEXEC);
	int e;

	buf_reset(out);
	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n;

		buf_grow(out, 65536);
		n = read(fd, out->data + out->len, out->cap - out->len - 1);
		if (n < 0) {
			e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		buf_setlen(out, out->len + (size_t)n);
	}
	close(fd);
	return (long)out->len;
}

#define CHECK_FILE(d, name, want, want_len, ...)                                     \
	({                                                                           \
		struct buf fb_ = BUF_INIT;                                           \
		long n_ = get(d, name, &fb_);                                        \
		int ok_ = check_mem(fb_.data, n_, want, want_len, __LINE__, __VA_ARGS__); \
		buf_free(&fb_);                                                      \
		ok_;                                                                 \
	})

static int lst(int d, const char *name, struct stat *st)
{
	int r = fstatat(d, name, st, AT_SYMLINK_NOFOLLOW);

	if (r < 0)
		memset(st, 0, sizeof(*st));
	return r;
}

static long long ns_of(struct timespec t)
{
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Long enough that any clock a filesystem stamps with has moved on. */
static void tick(void)
{
	struct timespec t = { 0, 30 * 1000 * 1000 };

	nanosleep(&t, NULL);
}

/* Sets both times of name in d to a second long past (for mtime checks). */
static int age(int d, const char *name)
{
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };

	return utimensat(d, name, old, AT_SYMLINK_NOFOLLOW);
}

static int is_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Runs fn(d, arg) in a forked child whose checks come back through a pipe
 * and are reported here in order; ends with a check that it ran to the end.
 * The child has two minutes. */
static void in_child(void (*fn)(int d, const void *arg), int d, const void *arg,
		     const char *what)
{
	char *line = NULL;
	size_t cap = 0;
	int p[2], status = 0, finished = 0;
	FILE *f;
	pid_t pid;

	fflush(stdout);
	if (pipe2(p, O_CLOEXEC) < 0)
		tap_bail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		child_fd = p[1];
		alarm(120);
		fn(d, arg);
		dprintf(child_fd, "end\n");
		_exit(0);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (!f)
		tap_bail("fdopen: %s", strerror(errno));
	while (getline(&line, &cap, f) > 0) {
		char *name;
		long at;

		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "# ", 2) == 0) {
			diag("%s", line + 2);
		} else if (strcmp(line, "end") == 0) {
			finished = 1;
		} else if (strncmp(line, "ok ", 3) == 0 || strncmp(line, "not-ok ", 7) == 0) {
			at = strtol(strchr(line, ' ') + 1, &name, 10);
			tap_ok(line[0] == 'o', __FILE__, (int)at, "%s", name + (*name == ' '));
		} else {
			diag("child said: %s", line);
		}
	}
	free(line);
	fclose(f);
	waitpid(pid, &status, 0);
	CHECK(finished && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "%s: the child's checks ran to the end", what);
	if (WIFSIGNALED(status))
		note("the child died of signal %d%s", WTERMSIG(status),
		     WTERMSIG(status) == SIGALRM ? " (its two minutes ran out)" : "");
}

/* ---- open, read, write ----------------------------------------------------- */

static void test_open(int d, const char *dir)
{
	struct stat st;
	char c[32];
	int fd;

	fd = openat(d, "a", O_RDWR | O_CREAT | O_EXCL, 0640);
	CHECK_SYS(fd, "open O_CREAT|O_EXCL of a new name");
	CHECK_INT(write(fd, "hello world", 11), 11, "write returns the whole count");
	CHECK_INT(lseek(fd, 0, SEEK_CUR), 11, "and moves the offset by it");
	lseek(fd, 0, SEEK_SET);
	CHECK_MEM(c, read(fd, c, sizeof(c)), "hello world", 11, "read gives back what was written");
	CHECK_INT(read(fd, c, sizeof(c)), 0, "read at EOF returns 0");
	close(fd);
	SETUP(lst(d, "a", &st));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFREG, "the new name is a regular file");
	CHECK_MODE(st.st_mode & 07777, 0640, "with the mode asked for (umask 0)");
	CHECK_INT(st.st_uid, geteuid(), "owned by the caller");
	CHECK_INT(st.st_size, 11, "st_size counts the bytes written");
	CHECK_INT(st.st_nlink, 1, "st_nlink of a new file is 1");

	CHECK_ERR(openat(d, "a", O_RDWR | O_CREAT | O_EXCL, 0600), EEXIST,
		  "O_CREAT|O_EXCL of an existing file: EEXIST");
	SETUP(symlinkat("nowhere", d, "dangling-excl"));
	CHECK_ERR(openat(d, "dangling-excl", O_WRONLY | O_CREAT | O_EXCL, 0600), EEXIST,
		  "O_CREAT|O_EXCL of a dangling symlink: EEXIST");
	fd = creat(in(dir, "a"), 0600);
	CHECK_SYS(fd, "creat of an existing file");
	close(fd);
	SETUP(lst(d, "a", &st));
	CHECK_INT(st.st_size, 0, "creat empties an existing file");
	CHECK_MODE(st.st_mode & 07777, 0640, "and keeps its mode");
	CHECK_ERR(openat(d, "nope", O_RDONLY), ENOENT, "open of a missing name: ENOENT");
	CHECK_ERR(openat(d, "nope/x", O_RDWR | O_CREAT, 0644), ENOENT,
		  "create under a missing directory: ENOENT");
	CHECK_ERR(openat(d, "a/x", O_RDONLY), ENOTDIR, "open of a file as a directory: ENOTDIR");
	CHECK_ERR(openat(d, "a", O_RDONLY | O_DIRECTORY), ENOTDIR,
		  "O_DIRECTORY on a file: ENOTDIR");
	CHECK_ERR(openat(d, ".", O_WRONLY), EISDIR, "open of a directory for writing: EISDIR");
	CHECK_ERR(openat(d, ".", O_RDWR), EISDIR, "open of a directory O_RDWR: EISDIR");

	fd = openat(d, "a", O_WRONLY);
	CHECK_ERR(read(fd, c, 1), EBADF, "read from an O_WRONLY descriptor: EBADF");
	close(fd);
	fd = openat(d, "a", O_RDONLY);
	CHECK_ERR(write(fd, "x", 1), EBADF, "write to an O_RDONLY descriptor: EBADF");
	CHECK_ERR(lseek(fd, -1, SEEK_SET), EINVAL, "lseek to a negative offset: EINVAL");
	close(fd);

	SETUP(put(d, "t", "some content", 12, 0644));
	fd = openat(d, "t", O_WRONLY | O_TRUNC);
	CHECK_SYS(fd, "open O_TRUNC");
	close(fd);
	SETUP(lst(d, "t", &st));
	CHECK_INT(st.st_size, 0, "O_TRUNC empties the file");

	SETUP(put(d, "ap", "12345", 5, 0644));
	fd = openat(d, "ap", O_WRONLY | O_APPEND);
	lseek(fd, 0, SEEK_SET);
	CHECK_INT(write(fd, "678", 3), 3, "write with O_APPEND after lseek to 0");
	CHECK_INT(lseek(fd, 0, SEEK_CUR), 8, "leaves the offset at the new end");
	lseek(fd, 2, SEEK_SET);
	CHECK_INT(write(fd, "9", 1), 1, "a second O_APPEND write after lseek to 2");
	close(fd);
	CHECK_FILE(d, "ap", "123456789", 9, "O_APPEND writes went to the end, in order");

	fd = openat(d, "pw", O_RDWR | O_CREAT, 0644);
	CHECK_INT(pwrite(fd, "abcdef", 6, 0), 6, "pwrite at 0");
	CHECK_INT(pwrite(fd, "XY", 2, 2), 2, "pwrite inside the file");
	CHECK_MEM(c, pread(fd, c, 10, 1), "bXYef", 5, "pread at an offset sees both writes");
	CHECK_INT(pread(fd, c, 10, 6), 0, "pread at EOF returns 0");
	CHECK_INT(pread(fd, c, 10, 1000), 0, "pread past EOF returns 0");
	CHECK_INT(lseek(fd, 0, SEEK_CUR), 0, "pread and pwrite leave the offset alone");
	CHECK_ERR(pread(fd, c, 1, -1), EINVAL, "pread at a negative offset: EINVAL");
	close(fd);

	/* A few MiB in odd-sized writes: crosses every page and request size. */
	{
		size_t len = 3 * MiB + 12345, done = 0;
		char *data = xmalloc(len);

		tap_fill_random(data, len, 1);
		fd = openat(d, "big", O_RDWR | O_CREAT | O_TRUNC, 0644);
		while (done < len) {
			size_t n = len - done < 7777 ? len - done : 7777;
			ssize_t w = write(fd, data + done, n);

			if (w <= 0)
				break;
			done += (size_t)w;
		}
		CHECK_INT(done, len, "%zu bytes written in 7777-byte writes", len);
		close(fd);
		CHECK_FILE(d, "big", data, len, "read back whole, byte for byte");
		free(data);
	}
}

/* ---- sparse files and truncate ------------------------------------------------ */

static void test_sparse(int d, const char *dir)
{
	char z[4096], c[8];
	struct stat st;
	off_t o;
	int fd;

	fd = openat(d, "sparse", O_RDWR | O_CREAT, 0644);
	CHECK_INT(pwrite(fd, "end", 3, 64 * MiB), 3, "pwrite 64 MiB past EOF");
	fsync(fd);
	SETUP(fstat(fd, &st));
	CHECK_INT(st.st_size, 64 * MiB + 3, "st_size is the end of that write");
	memset(z, 1, sizeof(z));
	CHECK_INT(pread(fd, z, sizeof(z), MiB), sizeof(z), "the hole reads in full");
	CHECK(is_zero(z, sizeof(z)), "and as zeros");
	CHECK_MEM(c, pread(fd, c, 8, 64 * MiB), "end", 3, "the data after the hole reads back");
	CHECK((long long)st.st_blocks * 512 < 8 * MiB, "a sparse file does not take its size on disk");
	if ((long long)st.st_blocks * 512 >= 8 * MiB)
		note("st_blocks %lld for a size of %lld", (long long)st.st_blocks, (long long)st.st_size);
	o = lseek(fd, 0, SEEK_DATA);
	CHECK(o >= 0 && o <= 64 * MiB, "SEEK_DATA never skips the data");
	if (o < 0 || o > 64 * MiB)
		note("SEEK_DATA gave %lld (errno %s)", (long long)o, errname(errno));
	o = lseek(fd, 64 * MiB, SEEK_HOLE);
	CHECK(o >= 64 * MiB + 3, "SEEK_HOLE finds no hole inside the data");
	if (o < 64 * MiB + 3)
		note("SEEK_HOLE gave %lld (errno %s)", (long long)o, errname(errno));
	CHECK_ERR(lseek(fd, 64 * MiB + 3, SEEK_DATA), ENXIO, "SEEK_DATA at EOF: ENXIO");
	close(fd);

	/* st_blocks of a dense file: at least its size, not wildly more */
	{
		char *data = xmalloc(MiB);

		tap_fill_random(data, MiB, 2);
		SETUP(put(d, "dense", data, MiB, 0644));
		fd = openat(d, "dense", O_RDONLY);
		fsync(fd);
		SETUP(fstat(fd, &st));
		close(fd);
		if (!CHECK((long long)st.st_blocks * 512 >= MiB && (long long)st.st_blocks * 512 <= 2 * MiB,
			   "st_blocks of a 1 MiB file written in full is about 1 MiB"))
			note("st_blocks %lld, st_blksize %ld", (long long)st.st_blocks, (long)st.st_blksize);
		free(data);
	}

	SETUP(put(d, "tr", "abcdef", 6, 0644));
	CHECK_SYS(truncate(in(dir, "tr"), 2), "truncate down");
	CHECK_SYS(truncate(in(dir, "tr"), 5), "truncate up");
	CHECK_FILE(d, "tr", "ab\0\0\0", 5, "the regrown tail reads as zeros");
	fd = openat(d, "tr", O_RDWR);
	CHECK_SYS(ftruncate(fd, 1), "ftruncate down");
	CHECK_SYS(fstat(fd, &st), "fstat after it");
	CHECK_INT(st.st_size, 1, "st_size follows ftruncate");
	CHECK_SYS(ftruncate(fd, 10 * MiB), "ftruncate up to 10 MiB");
	CHECK_SYS(fstat(fd, &st), "fstat after it");
	CHECK_INT(st.st_size, 10 * MiB, "st_size follows");
	memset(z, 1, sizeof(z));
	CHECK_INT(pread(fd, z, sizeof(z), 5 * MiB), sizeof(z), "the extension reads in full");
	CHECK(is_zero(z, sizeof(z)), "and as zeros");
	close(fd);

	/* truncate inside a page, then regrow: the cut bytes must not come back */
	{
		char ff[8192], r[8192];

		memset(ff, 0xff, sizeof(ff));
		fd = openat(d, "cut", O_RDWR | O_CREAT | O_TRUNC, 0644);
		SETUP(pwrite(fd, ff, sizeof(ff), 0));
		SETUP(ftruncate(fd, 5000));
		SETUP(ftruncate(fd, 8192));
		CHECK_INT(pread(fd, r, sizeof(r), 0), sizeof(r), "a file cut to 5000 and regrown to 8192");
		CHECK(memcmp(r, ff, 5000) == 0 && is_zero(r + 5000, 8192 - 5000),
		      "keeps the first 5000 bytes and reads zeros after");
		close(fd);
	}

	CHECK_ERR(truncate(dir, 0), EISDIR, "truncate of a directory: EISDIR");
	CHECK_ERR(truncate(in(dir, "nope"), 0), ENOENT, "truncate of a missing name: ENOENT");
	CHECK_ERR(truncate(in(dir, "tr"), -1), EINVAL, "truncate to a negative size: EINVAL");
	fd = openat(d, "tr", O_RDONLY);
	CHECK_ERR(ftruncate(fd, 0), EINVAL, "ftruncate of an O_RDONLY descriptor: EINVAL");
	close(fd);
}

/* ---- fallocate ---------------------------------------------------------------- */

static void test_fallocate(int d)
{
	char ff[65536], r[16384];
	struct stat st;
	long rc;
	int fd, e;

	memset(ff, 0xff, sizeof(ff));
	fd = openat(d, "fa", O_RDWR | O_CREAT, 0644);
	CHECK_SYS(fallocate(fd, 0, 0, MiB), "fallocate mode 0");
	fstat(fd, &st);
	CHECK_INT(st.st_size, MiB, "extends the size");
	CHECK_INT(pread(fd, r, sizeof(r), 4096), sizeof(r), "the allocated range reads");
	CHECK(is_zero(r, sizeof(r)), "as zeros");
	CHECK_SYS(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 * MiB), "fallocate KEEP_SIZE past EOF");
	fstat(fd, &st);
	CHECK_INT(st.st_size, MiB, "keeps the size");

	SETUP(pwrite(fd, ff, sizeof(ff), 0));
	CHECK_SYS(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192),
		  "PUNCH_HOLE|KEEP_SIZE of a page-aligned range");
	pread(fd, r, sizeof(r), 0);
	CHECK(memcmp(r, ff, 4096) == 0 && is_zero(r + 4096, 8192) &&
	      memcmp(r + 12288, ff, 4096) == 0, "zeroes that range and only it");
	CHECK_SYS(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 30000, 100),
		  "PUNCH_HOLE|KEEP_SIZE of 100 bytes inside a page");
	pread(fd, r, 102, 29999);
	CHECK(r[0] == (char)0xff && is_zero(r + 1, 100) && r[101] == (char)0xff,
	      "zeroes exactly those 100 bytes");
	fstat(fd, &st);
	CHECK_INT(st.st_size, MiB, "punching holes keeps the size");

	rc = fallocate(fd, FALLOC_FL_ZERO_RANGE, 20000, 100);
	e = errno;
	if (rc < 0 && e == EOPNOTSUPP && !opt.cairnfs) {
		tap_skip(2, "this filesystem has no FALLOC_FL_ZERO_RANGE (tmpfs)");
	} else {
		check_sys(rc, e, __LINE__, "ZERO_RANGE of 100 bytes");
		pread(fd, r, 102, 19999);
		CHECK(r[0] == (char)0xff && is_zero(r + 1, 100) && r[101] == (char)0xff,
		      "zeroes exactly those 100 bytes");
	}
	CHECK_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP,
		  "PUNCH_HOLE without KEEP_SIZE: EOPNOTSUPP");
	CHECK_ERR(fallocate(fd, 0, 0, 0), EINVAL, "fallocate of length 0: EINVAL");
	if (opt.cairnfs)
		CHECK_ERR(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), EOPNOTSUPP,
			  "COLLAPSE_RANGE: EOPNOTSUPP (cairnfs does not shift data)");
	close(fd);
	fd = openat(d, "fa", O_RDONLY);
	CHECK_ERR(fallocate(fd, 0, 0, 4096), EBADF, "fallocate on an O_RDONLY descriptor: EBADF");
	close(fd);
}

/* ---- fsync and mmap --------------------------------------------------------------- */

static void test_sync_mmap(int d)
{
	const long pg = sysconf(_SC_PAGESIZE);
	char r[16];
	char *m;
	int fd;

	fd = openat(d, "fs", O_RDWR | O_CREAT, 0644);
	SETUP(write(fd, "durable", 7));
	CHECK_SYS(fsync(fd), "fsync of a written file");
	CHECK_SYS(fdatasync(fd), "fdatasync");
	close(fd);
	fd = openat(d, "fs", O_RDONLY);
	CHECK_SYS(fsync(fd), "fsync of an O_RDONLY descriptor");
	close(fd);
	fd = openat(d, ".", O_RDONLY | O_DIRECTORY);
	CHECK_SYS(fsync(fd), "fsync of a directory");
	close(fd);

	fd = openat(d, "mm", O_RDWR | O_CREAT, 0644);
	SETUP(ftruncate(fd, 3 * pg));
	m = mmap(NULL, (size_t)(3 * pg), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK_SYS(m == MAP_FAILED ? -1 : 0, "mmap MAP_SHARED read-write");
	if (m != MAP_FAILED) {
		memcpy(m + pg, "shared", 6);
		CHECK_SYS(msync(m, (size_t)(3 * pg), MS_SYNC), "msync MS_SYNC");
		CHECK_MEM(r, pread(fd, r, 6, pg), "shared", 6, "read() sees the write made through the mapping");
		SETUP(pwrite(fd, "PWRITE", 6, 2 * pg + 10));
		CHECK(memcmp(m + 2 * pg + 10, "PWRITE", 6) == 0, "the mapping sees a pwrite()");
		memcpy(m + 100, "unsynced", 8);
		CHECK_SYS(munmap(m, (size_t)(3 * pg)), "munmap");
	}
	close(fd);
	fd = openat(d, "mm", O_RDONLY);
	CHECK_MEM(r, pread(fd, r, 6, pg), "shared", 6, "after close and reopen, the msynced write is there");
	CHECK_MEM(r, pread(fd, r, 8, 100), "unsynced", 8, "and so is the one only munmap wrote");
	m = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK_ERR(m == MAP_FAILED ? -1 : 0, EACCES,
		  "a writable shared mapping of an O_RDONLY descriptor: EACCES");
	if (m != MAP_FAILED)
		munmap(m, (size_t)pg);
	m = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (m != MAP_FAILED) {
		memcpy(m, "private", 7);
		munmap(m, (size_t)pg);
	}
	CHECK(m != MAP_FAILED && pread(fd, r, 7, 0) == 7 && is_zero(r, 7),
	      "a private mapping's writes stay out of the file");
	close(fd);
}

/* ---- directories: mkdir, rmdir, unlink, times ------------------------------------------- */

static void test_dirs(int d)
{
	struct stat st, st2;
	char r[8];
	int fd;

	CHECK_ERR(unlinkat(d, "nope", 0), ENOENT, "unlink of a missing name: ENOENT");
	CHECK_SYS(mkdirat(d, "dir", 0755), "mkdir");
	SETUP(lst(d, "dir", &st));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFDIR, "makes a directory");
	CHECK_MODE(st.st_mode & 07777, 0755, "with the mode asked for");
	CHECK_INT(st.st_nlink, 2, "a new directory has 2 links");
	CHECK_ERR(unlinkat(d, "dir", 0), EISDIR, "unlink of a directory: EISDIR");
	CHECK_ERR(mkdirat(d, "dir", 0755), EEXIST, "mkdir of an existing directory: EEXIST");
	SETUP(put(d, "file", "x", 1, 0644));
	CHECK_ERR(mkdirat(d, "file", 0755), EEXIST, "mkdir over a file: EEXIST");
	CHECK_ERR(mkdirat(d, "nope/sub", 0755), ENOENT, "mkdir under a missing parent: ENOENT");
	CHECK_ERR(mkdirat(d, "file/sub", 0755), ENOTDIR, "mkdir under a file: ENOTDIR");
	SETUP(put(d, "dir/f", "x", 1, 0644));
	CHECK_ERR(unlinkat(d, "dir", AT_REMOVEDIR), ENOTEMPTY, "rmdir of a non-empty directory: ENOTEMPTY");
	CHECK_ERR(unlinkat(d, "dir/f", AT_REMOVEDIR), ENOTDIR, "rmdir of a file: ENOTDIR");
	CHECK_ERR(unlinkat(d, "nope", AT_REMOVEDIR), ENOENT, "rmdir of a missing name: ENOENT");
	CHECK_ERR(unlinkat(d, "dir/.", AT_REMOVEDIR), EINVAL, "rmdir of \".\": EINVAL");

	fd = openat(d, "dir/f", O_RDWR);
	CHECK_SYS(unlinkat(d, "dir/f", 0), "unlink of an open file");
	CHECK_ERR(lst(d, "dir/f", &st), ENOENT, "its name is gone: ENOENT");
	CHECK_INT(pwrite(fd, "still", 5, 1), 5, "the open file still takes writes");
	CHECK_MEM(r, pread(fd, r, 8, 0), "xstill", 6, "and reads");
	SETUP(fstat(fd, &st));
	CHECK_INT(st.st_nlink, 0, "and has no link left");
	close(fd);
	CHECK_SYS(unlinkat(d, "dir", AT_REMOVEDIR), "rmdir of the emptied directory");
	CHECK_ERR(lst(d, "dir", &st), ENOENT, "it is gone: ENOENT");

	SETUP(mkdirat(d, "p", 0755));
	SETUP(lst(d, "p", &st));
	SETUP(mkdirat(d, "p/sub", 0755));
	SETUP(lst(d, "p", &st2));
	CHECK_INT(st2.st_nlink, st.st_nlink + 1, "a subdirectory adds a link to its parent");
	SETUP(unlinkat(d, "p/sub", AT_REMOVEDIR));
	SETUP(lst(d, "p", &st2));
	CHECK_INT(st2.st_nlink, st.st_nlink, "and rmdir takes it away");

	SETUP(age(d, "p"));
	SETUP(put(d, "p/n", "", 0, 0644));
	SETUP(lst(d, "p", &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000, "a create moves the directory's mtime");
	SETUP(age(d, "p"));
	SETUP(mkdirat(d, "p/m", 0755));
	SETUP(lst(d, "p", &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000, "a mkdir moves the directory's mtime");
	SETUP(age(d, "p"));
	SETUP(unlinkat(d, "p/n", 0));
	SETUP(lst(d, "p", &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000, "an unlink moves the directory's mtime");
	SETUP(age(d, "p"));
	SETUP(unlinkat(d, "p/m", AT_REMOVEDIR));
	SETUP(lst(d, "p", &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000, "an rmdir moves the directory's mtime");

	SETUP(put(d, "w", "1", 1, 0644));
	SETUP(age(d, "w"));
	fd = openat(d, "w", O_WRONLY);
	SETUP(write(fd, "2", 1));
	close(fd);
	SETUP(lst(d, "w", &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000, "a write moves the file's mtime");
	SETUP(age(d, "w"));
	fd = openat(d, "w", O_WRONLY);
	SETUP(ftruncate(fd, 0));
	close(fd);
	SETUP(lst(d, "w", &st));
	CHECK_GT(st.st_mtim.tv_sec, 1000, "a truncate moves the file's mtime");
}

/* ---- rename ------------------------------------------------------------------------------ */

static void test_rename(int d)
{
	struct stat st, st2;

	SETUP(put(d, "r0", "zero", 4, 0644));
	SETUP(lst(d, "r0", &st));
	CHECK_SYS(renameat(d, "r0", d, "r1"), "rename to a free name");
	SETUP(lst(d, "r1", &st2));
	CHECK_ERR(lst(d, "r0", &st), ENOENT, "the old name is gone");
	CHECK_FILE(d, "r1", "zero", 4, "the new name has the content");
	SETUP(put(d, "r1", "one", 3, 0644));
	SETUP(put(d, "r2", "two", 3, 0644));
	CHECK_SYS(renameat(d, "r1", d, "r2"), "rename over an existing file");
	CHECK_FILE(d, "r2", "one", 3, "replaces it");
	CHECK_ERR(lst(d, "r1", &st), ENOENT, "and the source name is gone");
	CHECK_ERR(renameat(d, "nope", d, "r3"), ENOENT, "rename of a missing name: ENOENT");
	CHECK_ERR(renameat(d, "r2", d, "nope/r2"), ENOENT, "rename into a missing directory: ENOENT");

	SETUP(mkdirat(d, "ra", 0755));
	SETUP(put(d, "ra/inside", "in", 2, 0644));
	SETUP(mkdirat(d, "rb", 0755));
	CHECK_SYS(renameat(d, "ra", d, "rb"), "rename of a directory over an empty one");
	CHECK_ERR(lst(d, "ra", &st), ENOENT, "the old directory name is gone");
	SETUP(lst(d, "rb", &st));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFDIR, "the new name is the directory");
	CHECK_FILE(d, "rb/inside", "in", 2, "and its content goes with it");
	SETUP(mkdirat(d, "rc", 0755));
	CHECK_ERR(renameat(d, "rc", d, "rb"), ENOTEMPTY, "rename over a non-empty directory: ENOTEMPTY");
	CHECK_ERR(renameat(d, "rc", d, "r2"), ENOTDIR, "rename of a directory over a file: ENOTDIR");
	CHECK_ERR(renameat(d, "r2", d, "rc"), EISDIR, "rename of a file over a directory: EISDIR");
	CHECK_ERR(renameat(d, "rb", d, "rb/in"), EINVAL, "rename of a directory into itself: EINVAL");
	SETUP(mkdirat(d, "rb/deeper", 0755));
	CHECK_ERR(renameat(d, "rb", d, "rb/deeper/in"), EINVAL,
		  "rename of a directory into its own subdirectory: EINVAL");

	SETUP(linkat(d, "r2", d, "r2l", 0));
	CHECK_SYS(renameat(d, "r2", d, "r2l"), "rename between two links of one file");
	CHECK_SYS(lst(d, "r2", &st), "does nothing: the source name stays");
	CHECK_INT(st.st_nlink, 2, "and the file keeps 2 links");

	SETUP(mkdirat(d, "m1", 0755));
	SETUP(mkdirat(d, "m1/deep", 0755));
	SETUP(renameat(d, "m1/deep", d, "rc/deep"));
	SETUP(lst(d, "m1", &st));
	SETUP(lst(d, "rc", &st2));
	CHECK(st.st_nlink == 2 && st2.st_nlink == 3,
	      "a directory moved to another parent moves a link from one to the other");
	if (st.st_nlink != 2 || st2.st_nlink != 3)
		note("old parent %ld links, new parent %ld", (long)st.st_nlink, (long)st2.st_nlink);
	SETUP(age(d, "m1"));
	SETUP(age(d, "rc"));
	SETUP(put(d, "m1/mv", "", 0, 0644));
	SETUP(age(d, "m1"));
	SETUP(renameat(d, "m1/mv", d, "rc/mv"));
	SETUP(lst(d, "m1", &st));
	SETUP(lst(d, "rc", &st2));
	CHECK_GT(st.st_mtim.tv_sec, 1000, "a rename moves the mtime of the directory it leaves");
	CHECK_GT(st2.st_mtim.tv_sec, 1000, "and of the one it enters");

	SETUP(put(d, "n1", "1", 1, 0644));
	SETUP(put(d, "n2", "2", 1, 0644));
	CHECK_ERR(renameat2(d, "n1", d, "n2", RENAME_NOREPLACE), EEXIST,
		  "RENAME_NOREPLACE onto an existing name: EEXIST");
	CHECK_FILE(d, "n2", "2", 1, "and the target is untouched");
	CHECK_SYS(renameat2(d, "n1", d, "n3", RENAME_NOREPLACE), "RENAME_NOREPLACE onto a free name");
	CHECK_FILE(d, "n3", "1", 1, "moves the file");
	SETUP(put(d, "rc/marker", "", 0, 0644));
	CHECK_SYS(renameat2(d, "n3", d, "rc", RENAME_EXCHANGE), "RENAME_EXCHANGE of a file and a directory");
	CHECK_FILE(d, "rc", "1", 1, "the file is under the directory's name");
	SETUP(lst(d, "n3", &st));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFDIR, "and the directory under the file's");
	CHECK_SYS(lst(d, "n3/marker", &st2), "with its content");
	CHECK_ERR(renameat2(d, "n2", d, "nope", RENAME_EXCHANGE), ENOENT,
		  "RENAME_EXCHANGE with a missing target: ENOENT");
	CHECK_ERR(renameat2(d, "n2", d, "rc", RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL,
		  "RENAME_EXCHANGE|RENAME_NOREPLACE: EINVAL");
	if (opt.cairnfs)
		CHECK_ERR(renameat2(d, "n2", d, "n4", RENAME_WHITEOUT), EINVAL,
			  "RENAME_WHITEOUT: EINVAL (cairnfs has no whiteouts)");
}

/* ---- several descriptors and names of one file --------------------------------------------- */

static void test_coherence(int d, const char *dir)
{
	struct stat st, st2;
	char r[16];
	int a, b, v;

	SETUP(put(d, "co", "", 0, 0644));
	a = openat(d, "co", O_RDWR);
	b = openat(d, "co", O_RDONLY);
	SETUP(pwrite(a, "0123456789", 10, 0));
	CHECK_MEM(r, pread(b, r, sizeof(r), 0), "0123456789", 10,
		  "a write through one descriptor is read through another");
	SETUP(fstat(b, &st));
	CHECK_INT(st.st_size, 10, "fstat of the other descriptor has the new size");
	SETUP(lst(d, "co", &st));
	CHECK_INT(st.st_size, 10, "and so has stat by name");
	SETUP(truncate(in(dir, "co"), 4));
	CHECK_MEM(r, pread(a, r, sizeof(r), 0), "0123", 4, "a truncate by name shows through an open descriptor");
	close(a);
	close(b);

	a = openat(d, "co", O_WRONLY | O_APPEND);
	b = openat(d, "co", O_WRONLY | O_APPEND);
	SETUP(write(a, "a", 1));
	SETUP(write(b, "b", 1));
	SETUP(write(a, "c", 1));
	close(a);
	close(b);
	CHECK_FILE(d, "co", "0123abc", 7, "O_APPEND writes through two descriptors interleave at the end");

	SETUP(put(d, "victim", "old content", 11, 0644));
	v = openat(d, "victim", O_RDONLY);
	SETUP(put(d, "newer", "new", 3, 0644));
	SETUP(lst(d, "newer", &st));
	CHECK_SYS(renameat(d, "newer", d, "victim"), "rename over a file that is open");
	CHECK_MEM(r, pread(v, r, sizeof(r), 0), "old content", 11, "the open descriptor still reads the old file");
	SETUP(fstat(v, &st2));
	CHECK_INT(st2.st_nlink, 0, "which has no link left");
	CHECK_FILE(d, "victim", "new", 3, "while the name opens the new one");
	SETUP(lst(d, "victim", &st2));
	CHECK(st2.st_ino == st.st_ino, "rename keeps the inode number");
	close(v);

	SETUP(setxattr(in(dir, "victim"), "user.keep", "k", 1, 0));
	SETUP(renameat(d, "victim", d, "moved"));
	CHECK_MEM(r, getxattr(in(dir, "moved"), "user.keep", r, sizeof(r)), "k", 1, "xattrs move with a rename");

	SETUP(mkdirat(d, "dots", 0755));
	SETUP(mkdirat(d, "dots/sub", 0755));
	SETUP(lst(d, "dots", &st));
	SETUP(lst(d, "dots/sub/..", &st2));
	CHECK(st2.st_ino == st.st_ino, "\"..\" of a subdirectory is its parent");
	SETUP(lst(d, "dots/.", &st2));
	CHECK(st2.st_ino == st.st_ino, "\".\" of a directory is itself");
	v = openat(d, "dots/sub", O_RDONLY | O_DIRECTORY);
	SETUP(unlinkat(d, "dots/sub", AT_REMOVEDIR));
	CHECK_ERR(openat(v, "x", O_WRONLY | O_CREAT, 0644), ENOENT,
		  "create in a removed directory still open: ENOENT");
	SETUP(fstat(v, &st2));
	CHECK_INT(st2.st_nlink, 0, "which has no link left");
	close(v);
	CHECK_SYS(mkdirat(d, "dots/sticky", 01777), "mkdir with the sticky bit");
	SETUP(lst(d, "dots/sticky", &st));
	CHECK_MODE(st.st_mode & 07777, 01777, "keeps it");

	v = openat(d, "huge", O_RDWR | O_CREAT, 0644);
	CHECK_INT(pwrite(v, "far", 3, 5LL << 30), 3, "pwrite at 5 GiB");
	SETUP(fstat(v, &st));
	CHECK_INT(st.st_size, (5LL << 30) + 3, "st_size past 4 GiB");
	CHECK_MEM(r, pread(v, r, 3, 5LL << 30), "far", 3, "the data there reads back");
	CHECK_INT(write(v, "", 0), 0, "a write of 0 bytes returns 0");
	close(v);
}

/* ---- hard links and symlinks --------------------------------------------------------------- */

static void test_links(int d)
{
	struct stat st, st2;
	long long ct;

	SETUP(put(d, "h1", "linked", 6, 0644));
	SETUP(lst(d, "h1", &st));
	ct = ns_of(st.st_ctim);
	tick();
	CHECK_SYS(linkat(d, "h1", d, "h2", 0), "link");
	SETUP(lst(d, "h1", &st));
	SETUP(lst(d, "h2", &st2));
	CHECK(st.st_ino == st2.st_ino && st.st_dev == st2.st_dev, "both names are one inode");
	CHECK_INT(st.st_nlink, 2, "st_nlink counts both, seen through the first name");
	CHECK_INT(st2.st_nlink, 2, "and through the second");
	CHECK_GT(ns_of(st.st_ctim), ct, "link moves the ctime of the file");
	SETUP(put(d, "h2", "LINKED", 6, 0644));
	CHECK_FILE(d, "h1", "LINKED", 6, "a write through one name shows through the other");
	SETUP(linkat(d, "h1", d, "h3", 0));
	SETUP(lst(d, "h3", &st));
	CHECK_INT(st.st_nlink, 3, "a third link: 3");
	CHECK_SYS(unlinkat(d, "h1", 0), "unlink of one name");
	CHECK_FILE(d, "h2", "LINKED", 6, "keeps the data under the others");
	SETUP(lst(d, "h2", &st));
	CHECK_INT(st.st_nlink, 2, "and st_nlink drops to 2");
	SETUP(mkdirat(d, "ld", 0755));
	CHECK_ERR(linkat(d, "ld", d, "ld2", 0), EPERM, "link to a directory: EPERM");
	CHECK_ERR(linkat(d, "h2", d, "h3", 0), EEXIST, "link onto an existing name: EEXIST");
	CHECK_ERR(linkat(d, "nope", d, "h4", 0), ENOENT, "link of a missing name: ENOENT");
	CHECK_SYS(linkat(d, "h2", d, "ld/h4", 0), "link into another directory");
	SETUP(lst(d, "ld/h4", &st2));
	CHECK(st2.st_ino == st.st_ino, "is the same inode");
	CHECK_INT(st2.st_nlink, 3, "with 3 links");
}

static void test_symlinks(int d)
{
	struct buf target = BUF_INIT;
	struct stat st;
	char r[PATH_MAX + 1];
	long n;

	SETUP(put(d, "tgt", "target data", 11, 0644));
	CHECK_SYS(symlinkat("tgt", d, "s1"), "symlink");
	CHECK_MEM(r, readlinkat(d, "s1", r, sizeof(r)), "tgt", 3, "readlink gives the target, no NUL");
	CHECK_INT(readlinkat(d, "s1", r, 2), 2, "readlink into a short buffer truncates");
	SETUP(lst(d, "s1", &st));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFLNK, "lstat sees a symlink");
	CHECK_INT(st.st_size, 3, "whose st_size is the target's length");
	CHECK_MODE(st.st_mode & 0777, 0777, "with mode 0777");
	SETUP(fstatat(d, "s1", &st, 0));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFREG, "stat follows it to the file");
	CHECK_INT(st.st_size, 11, "and gives the file's size");
	CHECK_FILE(d, "s1", "target data", 11, "open follows it");
	CHECK_ERR(openat(d, "s1", O_RDONLY | O_NOFOLLOW), ELOOP, "O_NOFOLLOW on a symlink: ELOOP");
	CHECK_ERR(readlinkat(d, "tgt", r, sizeof(r)), EINVAL, "readlink of a file: EINVAL");

	CHECK_SYS(symlinkat("nowhere", d, "dangling"), "a dangling symlink");
	CHECK_SYS(lst(d, "dangling", &st), "lstat of it works");
	CHECK_ERR(fstatat(d, "dangling", &st, 0), ENOENT, "stat through it: ENOENT");
	SETUP(symlinkat("loop2", d, "loop1"));
	SETUP(symlinkat("loop1", d, "loop2"));
	CHECK_ERR(fstatat(d, "loop1", &st, 0), ELOOP, "a symlink loop: ELOOP");
	CHECK_ERR(symlinkat("x", d, "tgt"), EEXIST, "symlink onto an existing name: EEXIST");
	CHECK_SYS(symlinkat("../../x/./y//z", d, "odd"), "a target with dots and double slashes");
	CHECK_MEM(r, readlinkat(d, "odd", r, sizeof(r)), "../../x/./y//z", 14, "comes back as written");

	for (int i = 0; i < 4095; i++)
		buf_addc(&target, (char)('a' + i % 26));
	CHECK_SYS(symlinkat(buf_str(&target), d, "long"), "a symlink target of 4095 bytes");
	n = readlinkat(d, "long", r, sizeof(r));
	CHECK_MEM(r, n, target.data, 4095, "comes back whole");
	buf_addc(&target, 'x');
	CHECK_ERR(symlinkat(buf_str(&target), d, "toolong"), ENAMETOOLONG,
		  "a symlink target of 4096 bytes: ENAMETOOLONG");
	buf_free(&target);
}

/* ---- attributes: chmod, chown, times ----------------------------------------------------- */

static void test_attrs(int d)
{
	struct timespec ts[2];
	struct stat st, st2;
	long long ct;
	struct timespec before;
	int fd;

	SETUP(put(d, "at", "attrs", 5, 0644));
	CHECK_SYS(fchmodat(d, "at", 04751, 0), "chmod to 04751");
	SETUP(lst(d, "at", &st));
	CHECK_MODE(st.st_mode & 07777, 04751, "the mode, setuid bit included");
	fd = openat(d, "at", O_RDONLY);
	CHECK_SYS(fchmod(fd, 0640), "fchmod");
	SETUP(fstat(fd, &st));
	CHECK_MODE(st.st_mode & 07777, 0640, "the mode follows fchmod");
	close(fd);
	SETUP(lst(d, "at", &st));
	ct = ns_of(st.st_ctim);
	tick();
	SETUP(fchmodat(d, "at", 0600, 0));
	SETUP(lst(d, "at", &st));
	CHECK_GT(ns_of(st.st_ctim), ct, "chmod moves the ctime");
	CHECK_ERR(fchmodat(d, "nope", 0600, 0), ENOENT, "chmod of a missing name: ENOENT");

	if (opt.as_root) {
		CHECK_SYS(fchownat(d, "at", 1234, 5678, 0), "chown by root");
		SETUP(lst(d, "at", &st));
		CHECK_INT(st.st_uid, 1234, "sets the owner");
		CHECK_INT(st.st_gid, 5678, "and the group");
		CHECK_SYS(fchownat(d, "at", (uid_t)-1, (gid_t)-1, 0), "chown -1 -1");
		SETUP(lst(d, "at", &st));
		CHECK(st.st_uid == 1234 && st.st_gid == 5678, "changes nothing");
		if (st.st_uid != 1234 || st.st_gid != 5678)
			note("owner %ld:%ld", (long)st.st_uid, (long)st.st_gid);
		SETUP(fchownat(d, "at", 0, 0, 0));
		SETUP(fchmodat(d, "at", 06755, 0));
		SETUP(fchownat(d, "at", 1234, 5678, 0));
		SETUP(lst(d, "at", &st));
		CHECK_MODE(st.st_mode & 07777, 0755,
			   "chown of an executable clears its setuid and setgid bits");
		SETUP(symlinkat("at", d, "atl"));
		CHECK_SYS(fchownat(d, "atl", 4321, 8765, AT_SYMLINK_NOFOLLOW), "lchown");
		SETUP(lst(d, "atl", &st));
		SETUP(lst(d, "at", &st2));
		CHECK(st.st_uid == 4321 && st.st_gid == 8765, "changes the symlink's owner and group");
		CHECK_INT(st2.st_uid, 1234, "not its target's");
	} else {
		tap_skip(9, "chown needs root");
	}

	ts[0] = (struct timespec){ 1000000000, 1 };
	ts[1] = (struct timespec){ 2000000000, 2 };
	CHECK_SYS(utimensat(d, "at", ts, 0), "utimensat with nanoseconds");
	SETUP(lst(d, "at", &st));
	CHECK_INT(ns_of(st.st_atim), 1000000000000000001LL, "keeps atime to the nanosecond");
	CHECK_INT(ns_of(st.st_mtim), 2000000000000000002LL, "and mtime");
	ts[0] = (struct timespec){ 0, UTIME_OMIT };
	ts[1] = (struct timespec){ 5, 0 };
	CHECK_SYS(utimensat(d, "at", ts, 0), "utimensat with UTIME_OMIT for atime");
	SETUP(lst(d, "at", &st));
	CHECK_INT(ns_of(st.st_atim), 1000000000000000001LL, "leaves atime");
	CHECK_INT(ns_of(st.st_mtim), 5000000000LL, "and sets mtime");
	clock_gettime(CLOCK_REALTIME, &before);
	ts[0] = (struct timespec){ 0, UTIME_NOW };
	ts[1] = (struct timespec){ 0, UTIME_OMIT };
	CHECK_SYS(utimensat(d, "at", ts, 0), "utimensat with UTIME_NOW for atime");
	SETUP(lst(d, "at", &st));
	CHECK_GT(st.st_atim.tv_sec, before.tv_sec - 2, "sets atime to now");
	CHECK_INT(ns_of(st.st_mtim), 5000000000LL, "and leaves mtime");
	CHECK_SYS(utimensat(d, "at", NULL, 0), "utimensat with NULL times");
	SETUP(lst(d, "at", &st));
	CHECK_GT(st.st_mtim.tv_sec, before.tv_sec - 2, "sets mtime to now");
	fd = openat(d, "at", O_RDONLY);
	ts[0] = (struct timespec){ 7, 7 };
	ts[1] = (struct timespec){ 8, 8 };
	CHECK_SYS(futimens(fd, ts), "futimens");
	SETUP(fstat(fd, &st));
	CHECK_INT(ns_of(st.st_atim), 7000000007LL, "sets atime");
	CHECK_INT(ns_of(st.st_mtim), 8000000008LL, "and mtime");
	close(fd);
	SETUP(symlinkat("at", d, "atl2"));
	ts[0] = (struct timespec){ 9, 0 };
	ts[1] = (struct timespec){ 9, 0 };
	CHECK_SYS(utimensat(d, "atl2", ts, AT_SYMLINK_NOFOLLOW), "utimensat AT_SYMLINK_NOFOLLOW");
	SETUP(lst(d, "atl2", &st));
	SETUP(lst(d, "at", &st2));
	CHECK_INT(st.st_mtim.tv_sec, 9, "sets the symlink's times");
	CHECK_INT(st2.st_mtim.tv_sec, 8, "not its target's");
	ts[0] = (struct timespec){ 0, 1000000000 };
	CHECK_ERR(utimensat(d, "at", ts, 0), EINVAL, "utimensat with tv_nsec of 10^9: EINVAL");
}

/* ---- extended attributes ------------------------------------------------------------------ */

/* 1 when name occurs exactly once in the NUL-separated list. */
static int list_has(const char *list, long len, const char *name)
{
	int n = 0;

	for (long i = 0; i < len; i += (long)strlen(list + i) + 1)
		n += strcmp(list + i, name) == 0;
	return n == 1;
}

static void test_xattrs(int d, const char *dir)
{
	const size_t vlen = opt.cairnfs ? 65536 : 4000;
	char r[256], list[4096];
	char *val, *got;
	long n;
	int fd;

	SETUP(put(d, "x", "xattrs", 6, 0644));
	fd = openat(d, "x", O_RDONLY);
	CHECK_SYS(fsetxattr(fd, "user.a", "1", 1, 0), "setxattr user.a");
	CHECK_SYS(fsetxattr(fd, "user.b", "", 0, 0), "setxattr user.b with an empty value");
	CHECK_MEM(r, fgetxattr(fd, "user.a", r, sizeof(r)), "1", 1, "getxattr gives the value back");
	CHECK_INT(fgetxattr(fd, "user.b", r, sizeof(r)), 0, "and the empty one as empty");
	CHECK_MEM(r, getxattr(in(dir, "x"), "user.a", r, sizeof(r)), "1", 1, "getxattr by path too");
	n = flistxattr(fd, list, sizeof(list));
	CHECK(n > 0 && list_has(list, n, "user.a") && list_has(list, n, "user.b"),
	      "listxattr names each once");
	CHECK(flistxattr(fd, NULL, 0) >= n, "listxattr with size 0 gives the size needed");
	CHECK_ERR(flistxattr(fd, list, 3), ERANGE, "listxattr into a small buffer: ERANGE");
	CHECK_ERR(fsetxattr(fd, "user.a", "2", 1, XATTR_CREATE), EEXIST,
		  "XATTR_CREATE of an existing name: EEXIST");
	CHECK_ERR(fsetxattr(fd, "user.zz", "2", 1, XATTR_REPLACE), ENODATA,
		  "XATTR_REPLACE of a missing name: ENODATA");
	CHECK_SYS(fsetxattr(fd, "user.a", "22", 2, XATTR_REPLACE), "XATTR_REPLACE of an existing name");
	CHECK_MEM(r, fgetxattr(fd, "user.a", r, sizeof(r)), "22", 2, "replaces the value");
	CHECK_ERR(fgetxattr(fd, "user.zz", r, sizeof(r)), ENODATA, "getxattr of a missing name: ENODATA");
	CHECK_ERR(fgetxattr(fd, "user.a", r, 1), ERANGE, "getxattr into a small buffer: ERANGE");
	CHECK_INT(fgetxattr(fd, "user.a", NULL, 0), 2, "getxattr with size 0 gives the size");
	CHECK_SYS(fremovexattr(fd, "user.a"), "removexattr");
	CHECK_ERR(fgetxattr(fd, "user.a", r, sizeof(r)), ENODATA, "then getxattr: ENODATA");
	n = flistxattr(fd, list, sizeof(list));
	CHECK(n >= 0 && !list_has(list, n, "user.a") && list_has(list, n, "user.b"),
	      "and listxattr no longer names it");
	CHECK_ERR(fremovexattr(fd, "user.a"), ENODATA, "removexattr of a missing name: ENODATA");
	CHECK_ERR(fsetxattr(fd, "nonamespace", "1", 1, 0), EOPNOTSUPP,
		  "setxattr of a name without a namespace: EOPNOTSUPP");
	close(fd);

	val = xmalloc(vlen + 1);
	got = xmalloc(vlen + 1);
	tap_fill_random(val, vlen + 1, 3);
	SETUP(put(d, "xbig", "", 0, 0644));
	CHECK_SYS(setxattr(in(dir, "xbig"), "user.big", val, vlen, 0), "setxattr of a %zu-byte value", vlen);
	CHECK_MEM(got, getxattr(in(dir, "xbig"), "user.big", got, vlen), val, vlen, "comes back whole");
	CHECK_INT(getxattr(in(dir, "xbig"), "user.big", NULL, 0), vlen, "getxattr with size 0 says %zu", vlen);
	free(got);
	if (opt.cairnfs) {
		char *over = xmalloc(65537);

		tap_fill_random(over, 65537, 4);
		CHECK_ERR(setxattr(in(dir, "xbig"), "user.over", over, 65537, 0), E2BIG,
			  "a value over 64 KiB: E2BIG");
		free(over);
	}
	free(val);

	SETUP(mkdirat(d, "xd", 0755));
	CHECK_SYS(setxattr(in(dir, "xd"), "user.d", "dir", 3, 0), "setxattr on a directory");
	CHECK_MEM(r, getxattr(in(dir, "xd"), "user.d", r, sizeof(r)), "dir", 3, "getxattr on it");
	SETUP(symlinkat("x", d, "xl"));
	CHECK_ERR(lsetxattr(in(dir, "xl"), "user.l", "1", 1, 0), EPERM, "user.* on a symlink itself: EPERM");
	if (opt.as_root) {
		CHECK_SYS(setxattr(in(dir, "x"), "trusted.t", "root only", 9, 0), "setxattr trusted.* as root");
		CHECK_MEM(r, getxattr(in(dir, "x"), "trusted.t", r, sizeof(r)), "root only", 9,
			  "getxattr trusted.*");
		n = listxattr(in(dir, "x"), list, sizeof(list));
		CHECK(n > 0 && list_has(list, n, "trusted.t"), "listxattr names it for root");
		CHECK_SYS(lsetxattr(in(dir, "xl"), "trusted.l", "l", 1, 0), "trusted.* on a symlink itself");
		CHECK_MEM(r, lgetxattr(in(dir, "xl"), "trusted.l", r, sizeof(r)), "l", 1, "reads back");
		CHECK_ERR(getxattr(in(dir, "xl"), "trusted.l", r, sizeof(r)), ENODATA,
			  "and is not on the target");
	} else {
		tap_skip(6, "trusted.* needs root");
	}
	if (opt.cairnfs)
		CHECK_ERR(setxattr(in(dir, "x"), "system.posix_acl_access", "\x02\0\0\0", 4, 0),
			  EOPNOTSUPP, "a POSIX ACL: EOPNOTSUPP (not enforced, so not stored)");
}

/* ---- names and readdir ------------------------------------------------------------------------ */

/* Every name in directory name of d except . and .., in out (count in *n). */
static int read_names(int d, const char *name, char ***out, size_t *n)
{
	int fd = openat(d, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	size_t cap = 0;
	DIR *dp;

	*out = NULL;
	*n = 0;
	if (fd < 0 || !(dp = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((e = readdir(dp))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		(*out)[(*n)++] = xstrdup(e->d_name);
	}
	closedir(dp);
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void test_names(int d)
{
	static const char *const uni[] = {
		"caf\xc3\xa9",				/* café, precomposed (NFC) */
		"cafe\xcc\x81",				/* café, e + combining acute (NFD) */
		"\xf0\x9f\x98\x80 smile",		/* an emoji */
		"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",	/* 日本語 */
		"a\xcc\x8a\xcc\xa3\xcc\x81 stacked",	/* three combining marks */
		"\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7", /* ZWJ family */
		"tab\tand\nnewline",
		"Case", "case",
	};
	const size_t nuni = sizeof(uni) / sizeof(uni[0]);
	struct buf name = BUF_INIT;
	struct stat st;
	char **names;
	size_t n;
	int fd, seen_all = 1;

	for (int i = 0; i < 255; i++)
		buf_addc(&name, 'n');
	fd = openat(d, buf_str(&name), O_WRONLY | O_CREAT, 0644);
	CHECK_SYS(fd, "create of a 255-byte name");
	close(fd);
	CHECK_SYS(lst(d, buf_str(&name), &st), "stat of it");
	buf_addc(&name, 'n');
	CHECK_ERR(openat(d, buf_str(&name), O_WRONLY | O_CREAT, 0644), ENAMETOOLONG,
		  "create of a 256-byte name: ENAMETOOLONG");
	CHECK_ERR(mkdirat(d, buf_str(&name), 0755), ENAMETOOLONG, "mkdir of a 256-byte name: ENAMETOOLONG");
	CHECK_ERR(lst(d, buf_str(&name), &st), ENAMETOOLONG, "stat of a 256-byte name: ENAMETOOLONG");
	CHECK_ERR(renameat(d, buf_str(&name) + 1, d, buf_str(&name)), ENAMETOOLONG,
		  "rename to a 256-byte name: ENAMETOOLONG");
	buf_reset(&name);
	for (int i = 0; i < 85; i++)
		buf_adds(&name, "\xe6\x97\xa5");
	CHECK_SYS(put(d, buf_str(&name), "jp", 2, 0644), "a name of 85 three-byte characters (255 bytes)");

	SETUP(mkdirat(d, "uni", 0755));
	for (size_t i = 0; i < nuni; i++)
		SETUP(put(d, in("uni", uni[i]), uni[i], strlen(uni[i]), 0644));
	SETUP(read_names(d, "uni", &names, &n));
	for (size_t i = 0; i < nuni; i++) {
		size_t k = 0;

		for (size_t j = 0; j < n; j++)
			k += strcmp(names[j], uni[i]) == 0;
		if (k != 1) {
			note("name #%zu seen %zu times", i, k);
			seen_all = 0;
		}
	}
	CHECK(seen_all && n == nuni, "readdir gives back each UTF-8 name byte for byte, once");
	if (n != nuni)
		note("%zu names listed, wanted %zu", n, nuni);
	free_names(names, n);
	seen_all = 1;
	for (size_t i = 0; i < nuni; i++) {
		struct buf b = BUF_INIT;
		long got = get(d, in("uni", uni[i]), &b);

		if (got != (long)strlen(uni[i]) || memcmp(b.data, uni[i], (size_t)got) != 0) {
			note("name #%zu does not open to its content", i);
			seen_all = 0;
		}
		buf_free(&b);
	}
	CHECK(seen_all, "and each opens under its name (NFC and NFD are different names)");
	CHECK_SYS(put(d, "uni/\xff\xfe not utf-8", "raw", 3, 0644), "a name that is not UTF-8");
	SETUP(read_names(d, "uni", &names, &n));
	seen_all = 0;
	for (size_t j = 0; j < n; j++)
		seen_all += strcmp(names[j], "\xff\xfe not utf-8") == 0;
	CHECK_INT(seen_all, 1, "readdir gives its bytes back");
	free_names(names, n);
	buf_free(&name);
}

static void test_types(int d)
{
	static const struct {
		const char *name;
		unsigned char type;
		const char *what;
	} want[] = {
		{ "f", DT_REG, "regular file" }, { "d", DT_DIR, "directory" },
		{ "l", DT_LNK, "symlink" }, { "p", DT_FIFO, "fifo" },
		{ "s", DT_SOCK, "socket" }, { "c", DT_CHR, "character device" },
		{ "b", DT_BLK, "block device" }, { ".", DT_DIR, "\".\"" },
		{ "..", DT_DIR, "\"..\"" },
	};
	unsigned char got[sizeof(want) / sizeof(want[0])];
	struct stat st;
	struct dirent *e;
	char r[4];
	DIR *dp;
	int fd;

	SETUP(mkdirat(d, "types", 0755));
	SETUP(put(d, "types/f", "", 0, 0644));
	SETUP(mkdirat(d, "types/d", 0755));
	SETUP(symlinkat("f", d, "types/l"));
	CHECK_SYS(mkfifoat(d, "types/p", 0644), "mkfifo");
	CHECK_SYS(mknodat(d, "types/s", S_IFSOCK | 0644, 0), "mknod of a socket");
	if (opt.as_root) {
		CHECK_SYS(mknodat(d, "types/c", S_IFCHR | 0600, makedev(1, 3)), "mknod of a character device");
		CHECK_SYS(mknodat(d, "types/b", S_IFBLK | 0600, makedev(7, 200)), "mknod of a block device");
	} else {
		tap_skip(2, "device nodes need root");
	}
	memset(got, 0xff, sizeof(got));
	fd = openat(d, "types", O_RDONLY | O_DIRECTORY);
	dp = fd >= 0 ? fdopendir(fd) : NULL;
	while (dp && (e = readdir(dp)))
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			if (strcmp(e->d_name, want[i].name) == 0)
				got[i] = e->d_type;
	if (dp)
		closedir(dp);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if ((want[i].type == DT_CHR || want[i].type == DT_BLK) && !opt.as_root)
			continue;
		CHECK_INT(got[i], want[i].type, "readdir gives the d_type of a %s", want[i].what);
	}

	SETUP(lst(d, "types/p", &st));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFIFO, "a fifo stats as a fifo");
	CHECK_MODE(st.st_mode & 07777, 0644, "with its mode");
	fd = openat(d, "types/p", O_RDWR | O_NONBLOCK);
	CHECK_SYS(fd, "opens");
	CHECK_INT(write(fd, "pip", 3), 3, "takes a write");
	CHECK_MEM(r, read(fd, r, sizeof(r)), "pip", 3, "and gives it back: a real pipe");
	close(fd);
	SETUP(lst(d, "types/s", &st));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFSOCK, "a socket node stats as a socket");
	if (opt.as_root) {
		SETUP(lst(d, "types/c", &st));
		CHECK_MODE(st.st_mode & S_IFMT, S_IFCHR, "a character device stats as one");
		CHECK_INT(st.st_rdev, makedev(1, 3), "and keeps its numbers");
		SETUP(lst(d, "types/b", &st));
		CHECK_MODE(st.st_mode & S_IFMT, S_IFBLK, "a block device stats as one");
		CHECK_INT(st.st_rdev, makedev(7, 200), "and keeps its numbers");
	}
}

/* The index of "e0000123"-style names, or -1. */
static long big_index(const char *name, long big)
{
	char *end;
	long i;

	if (name[0] != 'e' || strlen(name) != 8)
		return -1;
	i = strtol(name + 1, &end, 10);
	return *end == '\0' && i >= 0 && i < big ? i : -1;
}

static void test_bigdir(int d, long big)
{
	unsigned char *seen = xcalloc((size_t)big, 1);
	long created = 0, once = 0, dups = 0, strays = 0, removed = 0, left = 0;
	char name[32];
	struct dirent *e;
	struct stat st;
	long pos_at = -1;
	DIR *dp;
	int fd;

	SETUP(mkdirat(d, "bigdir", 0755));
	for (long i = 0; i < big; i++) {
		snprintf(name, sizeof(name), "e%07ld", i);
		fd = openat(d, in("bigdir", name), O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0) {
			note("create %s: %s", name, errname(errno));
			break;
		}
		if (i % 1000 == 7 && write(fd, name, 8) != 8)
			note("write %s: %s", name, errname(errno));
		close(fd);
		created++;
	}
	CHECK_INT(created, big, "a directory of %ld files created", big);

	fd = openat(d, "bigdir", O_RDONLY | O_DIRECTORY);
	dp = fd >= 0 ? fdopendir(fd) : NULL;
	while (dp && (e = readdir(dp))) {
		long i = big_index(e->d_name, big);

		if (i >= 0) {
			dups += seen[i] == 1;
			seen[i]++;
		} else if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			strays++;
		}
	}
	for (long i = 0; i < big; i++)
		once += seen[i] == 1;
	CHECK(once == big && dups == 0 && strays == 0, "readdir returns each of the %ld names exactly once", big);
	if (once != big || dups || strays)
		note("%ld seen once, %ld duplicated, %ld unknown names", once, dups, strays);

	/* telldir/seekdir: a remembered position gives the same entry again */
	if (dp) {
		char again[256] = "";

		rewinddir(dp);
		for (int k = 0; k < big / 2 && (e = readdir(dp)); k++)
			;
		pos_at = telldir(dp);
		e = readdir(dp);
		if (e)
			snprintf(name, sizeof(name), "%.31s", e->d_name);
		for (int k = 0; k < 10 && readdir(dp); k++)
			;
		seekdir(dp, pos_at);
		e = readdir(dp);
		if (e)
			snprintf(again, sizeof(again), "%s", e->d_name);
		CHECK(pos_at >= 0 && strcmp(name, again) == 0,
		      "seekdir to a telldir position reads the same entry again");
	}

	snprintf(name, sizeof(name), "e%07ld", big / 2);
	SETUP(lst(d, in("bigdir", name), &st));
	CHECK_MODE(st.st_mode & S_IFMT, S_IFREG, "stat of an entry in the middle");
	snprintf(name, sizeof(name), "e%07ld", 7L);
	CHECK_FILE(d, in("bigdir", name), name, 8, "the content of an early entry");
	snprintf(name, sizeof(name), "e%07ld", big - 1);
	CHECK_SYS(lst(d, in("bigdir", name), &st), "stat of the last entry");

	/* unlink each name as readdir returns it, as rm -r does */
	if (dp) {
		rewinddir(dp);
		while ((e = readdir(dp)))
			if (big_index(e->d_name, big) >= 0 && unlinkat(dirfd(dp), e->d_name, 0) == 0)
				removed++;
		rewinddir(dp);
		while ((e = readdir(dp)))
			left += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
		closedir(dp);
	}
	CHECK_INT(removed, big, "unlinking each entry as readdir returns it reaches all %ld", big);
	CHECK_INT(left, 0, "and leaves the directory empty");
	CHECK_SYS(unlinkat(d, "bigdir", AT_REMOVEDIR), "which rmdir then removes");
	free(seen);
}

/* ---- locks ---------------------------------------------------------------------------------------- */

/* In a child: the parent holds a POSIX write lock on bytes [0, 10) of "lk". */
static void rival_locked(int d, const void *arg)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	int fd = openat(d, "lk", O_RDWR);

	(void)arg;
	CHECK_ERR2(fcntl(fd, F_SETLK, &fl), EAGAIN, EACCES,
		   "F_SETLK on a range another process holds: EAGAIN or EACCES");
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	CHECK_SYS(fcntl(fd, F_GETLK, &fl), "F_GETLK");
	CHECK(fl.l_type == F_WRLCK && fl.l_pid == getppid(), "names the holder and its write lock");
	if (fl.l_type != F_WRLCK || fl.l_pid != getppid())
		note("l_type %d, l_pid %ld (holder %ld)", fl.l_type, (long)fl.l_pid, (long)getppid());
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10 };
	CHECK_SYS(fcntl(fd, F_SETLK, &fl), "F_SETLK on the range next to it");
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1 };
	CHECK_ERR2(fcntl(fd, F_SETLK, &fl), EAGAIN, EACCES, "a read lock inside a write lock: EAGAIN or EACCES");
	close(fd);
}

static void rival_unlocked(int d, const void *arg)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	int fd = openat(d, "lk", O_RDWR);

	(void)arg;
	CHECK_SYS(fcntl(fd, F_SETLK, &fl), "F_SETLK once the holder closed a descriptor of the file");
	close(fd);
}

static void test_locks(int d)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	int a, b;

	SETUP(put(d, "lk", "lock file", 9, 0644));
	a = openat(d, "lk", O_RDWR);
	b = openat(d, "lk", O_RDWR);
	CHECK_SYS(flock(a, LOCK_EX | LOCK_NB), "flock LOCK_EX");
	CHECK_ERR(flock(b, LOCK_EX | LOCK_NB), EWOULDBLOCK,
		  "flock LOCK_EX from another open file description: EWOULDBLOCK");
	CHECK_ERR(flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK, "flock LOCK_SH against it: EWOULDBLOCK");
	CHECK_SYS(flock(a, LOCK_UN), "flock LOCK_UN");
	CHECK_SYS(flock(b, LOCK_EX | LOCK_NB), "then the other gets LOCK_EX");
	SETUP(flock(b, LOCK_UN));
	CHECK_SYS(flock(a, LOCK_SH | LOCK_NB), "flock LOCK_SH");
	CHECK_SYS(flock(b, LOCK_SH | LOCK_NB), "a second LOCK_SH shares the file");
	flock(a, LOCK_UN);
	flock(b, LOCK_UN);

	CHECK_SYS(fcntl(a, F_SETLK, &fl), "F_SETLK write lock on [0, 10)");
	in_child(rival_locked, d, NULL, "POSIX locks");
	close(b);	/* closing any descriptor of the file drops the process's locks */
	in_child(rival_unlocked, d, NULL, "POSIX locks after close");
	close(a);

	a = openat(d, "lk", O_RDWR);
	b = openat(d, "lk", O_RDWR);
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	CHECK_SYS(fcntl(a, F_OFD_SETLK, &fl), "F_OFD_SETLK write lock");
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	CHECK_ERR(fcntl(b, F_OFD_SETLK, &fl), EAGAIN,
		  "F_OFD_SETLK from another open file description of the same process: EAGAIN");
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	CHECK_SYS(fcntl(b, F_OFD_GETLK, &fl), "F_OFD_GETLK");
	CHECK(fl.l_type == F_WRLCK && fl.l_pid == -1, "names the conflicting write lock (l_pid -1)");
	if (fl.l_type != F_WRLCK || fl.l_pid != -1)
		note("l_type %d, l_pid %ld", fl.l_type, (long)fl.l_pid);
	close(a);
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	CHECK_SYS(fcntl(b, F_OFD_SETLK, &fl), "once its holder is closed, the other gets it");
	close(b);
}

/* ---- statfs, O_TMPFILE, copy_file_range ------------------------------------------------------------- */

static void test_misc(int d)
{
	struct statvfs sv;
	struct statfs sf;
	struct stat st;
	char *data, proc[64];
	int fd, in_fd, out_fd;
	long n;

	CHECK_SYS(fstatfs(d, &sf), "fstatfs");
	CHECK(sf.f_bsize > 0 && sf.f_blocks > 0 && sf.f_bfree <= sf.f_blocks && sf.f_bavail <= sf.f_blocks,
	      "reports a disk: f_bsize, f_blocks > 0, free <= total");
	if (!(sf.f_bsize > 0 && sf.f_blocks > 0))
		note("f_bsize %ld f_blocks %llu", (long)sf.f_bsize, (unsigned long long)sf.f_blocks);
	CHECK(sf.f_namelen >= 255, "f_namelen >= 255");
	CHECK_SYS(fstatvfs(d, &sv), "fstatvfs");
	CHECK(sv.f_namemax >= 255 && sv.f_frsize > 0, "f_namemax >= 255, f_frsize > 0");

	fd = openat(d, ".", O_TMPFILE | O_RDWR, 0600);
	if (opt.cairnfs) {
		CHECK_ERR(fd, EOPNOTSUPP, "O_TMPFILE: EOPNOTSUPP (libfuse has no tmpfile operation)");
	} else {
		CHECK_SYS(fd, "O_TMPFILE");
		CHECK_INT(write(fd, "tmp", 3), 3, "an O_TMPFILE file takes writes");
		SETUP(fstat(fd, &st));
		CHECK_INT(st.st_nlink, 0, "and has no name");
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		CHECK_SYS(linkat(AT_FDCWD, proc, d, "tmpnamed", AT_SYMLINK_FOLLOW), "linkat gives it one");
		CHECK_FILE(d, "tmpnamed", "tmp", 3, "with its content");
	}
	if (fd >= 0)
		close(fd);

	data = xmalloc(100000);
	tap_fill_random(data, 100000, 5);
	SETUP(put(d, "cf1", data, 100000, 0644));
	in_fd = openat(d, "cf1", O_RDONLY);
	out_fd = openat(d, "cf2", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	{
		long done = 0;

		do {
			n = copy_file_range(in_fd, NULL, out_fd, NULL, (size_t)(100000 - done), 0);
			done += n > 0 ? n : 0;
		} while (n > 0 && done < 100000);
		CHECK_INT(done, 100000, "copy_file_range copies the whole file");
		if (n < 0)
			note("copy_file_range: errno %s", errname(errno));
	}
	close(in_fd);
	close(out_fd);
	CHECK_FILE(d, "cf2", data, 100000, "byte for byte");
	free(data);
}

/* ---- as an unprivileged user ---------------------------------------------------------------------- */

struct user_setup {
	const char *dir;	/* the "user" directory, by path */
	gid_t other_gid;	/* a group the user is not in: the setgid dir's */
};

static void as_user(int root_d, const void *arg)
{
	const struct user_setup *u = arg;
	struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };
	struct stat st;
	int own, fd, d;

	(void)root_d;	/* the user opens the directory by its path itself */
	if (setgroups(0, NULL) < 0 || setresgid(opt.gid, opt.gid, opt.gid) < 0 ||
	    setresuid(opt.uid, opt.uid, opt.uid) < 0) {
		CHECK(0, "become %ld:%ld", (long)opt.uid, (long)opt.gid);
		note("errno %s", errname(errno));
		return;
	}
	d = open(u->dir, O_RDONLY | O_DIRECTORY);
	if (!CHECK_SYS(d, "the user reaches the test directory by its path"))
		return;

	SETUP(put(d, "open/f", "mine", 4, 0644));
	SETUP(mkdirat(d, "open/dd", 0755));
	SETUP(symlinkat("f", d, "open/sl"));
	SETUP(mkfifoat(d, "open/ff", 0644));
	{
		static const char *const made[] = { "open/f", "open/dd", "open/sl", "open/ff" };
		static const char *const what[] = { "file", "directory", "symlink", "fifo" };

		for (int i = 0; i < 4; i++) {
			own = lst(d, made[i], &st) == 0 && st.st_uid == opt.uid && st.st_gid == opt.gid;
			CHECK(own, "a new %s belongs to the user and its group", what[i]);
			if (!own)
				note("owner %ld:%ld", (long)st.st_uid, (long)st.st_gid);
		}
	}
	CHECK_ERR(fchmodat(d, "pub/roots", 0666, 0), EPERM, "chmod of root's file: EPERM");
	CHECK_ERR(fchownat(d, "open/f", 0, 0, 0), EPERM, "chown of one's own file to root: EPERM");
	CHECK_ERR(fchownat(d, "open/f", (uid_t)-1, u->other_gid, 0), EPERM,
		  "chgrp of one's own file to a group one is not in: EPERM");
	CHECK_ERR(openat(d, "secret", O_RDONLY), EACCES, "open of root's 0600 file: EACCES");
	CHECK_ERR(openat(d, "pub/roots", O_WRONLY), EACCES, "open for writing of root's 0644 file: EACCES");
	fd = openat(d, "pub/roots", O_RDONLY);
	CHECK_SYS(fd, "open for reading of root's 0644 file");
	if (fd >= 0)
		close(fd);
	CHECK_ERR(openat(d, "closed/x", O_WRONLY | O_CREAT, 0644), EACCES,
		  "create in root's 0755 directory: EACCES");
	CHECK_ERR(mkdirat(d, "closed/x", 0755), EACCES, "mkdir in root's 0755 directory: EACCES");
	CHECK_ERR(unlinkat(d, "closed/inside", 0), EACCES, "unlink in root's 0755 directory: EACCES");
	CHECK_ERR(openat(d, "locked/inside", O_RDONLY), EACCES,
		  "open under root's 0700 directory: EACCES");
	CHECK_ERR(unlinkat(d, "pub/roots", 0), EPERM, "unlink of root's file in a sticky directory: EPERM");
	CHECK_ERR(renameat(d, "pub/roots", d, "pub/mine"), EPERM,
		  "rename of root's file in a sticky directory: EPERM");
	CHECK_ERR(utimensat(d, "pub/roots", ts, 0), EPERM, "utimensat with times on root's file: EPERM");
	CHECK_ERR(utimensat(d, "pub/roots", NULL, 0), EACCES,
		  "utimensat to now on root's file one cannot write: EACCES");
	CHECK_ERR(setxattr(in(u->dir, "pub/roots"), "user.x", "1", 1, 0), EACCES,
		  "setxattr user.* on root's file: EACCES");
	CHECK_ERR(setxattr(in(u->dir, "open/f"), "trusted.x", "1", 1, 0), EPERM,
		  "setxattr trusted.* as a user: EPERM");
	CHECK_SYS(setxattr(in(u->dir, "open/f"), "user.x", "1", 1, 0), "setxattr user.* on one's own file");

	SETUP(put(d, "sg/f", "", 0, 0644));
	SETUP(mkdirat(d, "sg/sub", 0755));
	SETUP(lst(d, "sg/f", &st));
	CHECK_INT(st.st_gid, u->other_gid, "in a setgid directory a new file takes the directory's group");
	SETUP(lst(d, "sg/sub", &st));
	CHECK_INT(st.st_gid, u->other_gid, "and a new subdirectory too");
	CHECK_MODE(st.st_mode & S_ISGID, S_ISGID, "which keeps the setgid bit");
	SETUP(fchmodat(d, "sg/f", 02755, 0));
	SETUP(lst(d, "sg/f", &st));
	CHECK_MODE(st.st_mode & 07777, 0755,
		   "chmod g+s by a user outside the file's group drops the setgid bit");

	SETUP(put(d, "mine/own", "mine", 4, 0644));
	CHECK_SYS(fchmodat(d, "mine/own", 04700, 0), "the owner may chmod its file, setuid included");
	SETUP(lst(d, "mine/own", &st));
	CHECK_MODE(st.st_mode & 07777, 04700, "to 04700");
	fd = openat(d, "mine/own", O_WRONLY);
	SETUP(write(fd, "MINE", 4));
	close(fd);
	SETUP(lst(d, "mine/own", &st));
	CHECK_MODE(st.st_mode & 07777, 0700, "a write by a user clears the setuid bit");
	CHECK_SYS(utimensat(d, "mine/own", ts, 0), "the owner may set its file's times");
	SETUP(lst(d, "mine/own", &st));
	CHECK_INT(st.st_mtim.tv_sec, 1, "to any value");
	SETUP(fchmodat(d, "mine/own", 0400, 0));
	CHECK_ERR(openat(d, "mine/own", O_WRONLY), EACCES, "the owner's own 0400 file refuses writes: EACCES");
	CHECK_SYS(renameat(d, "mine/own", d, "pub/moved"), "the owner may move its file into a sticky dir");
	CHECK_SYS(unlinkat(d, "pub/moved", 0), "and remove it there");
	close(d);
}

static void test_user(int d, const char *dir)
{
	struct user_setup u = { dir, opt.gid == 4242 ? 4243 : 4242 };

	SETUP(mkdirat(d, "open", 0777));
	SETUP(mkdirat(d, "pub", 01777));
	SETUP(put(d, "pub/roots", "root's", 6, 0644));
	SETUP(put(d, "secret", "no", 2, 0600));
	SETUP(mkdirat(d, "closed", 0755));
	SETUP(put(d, "closed/inside", "", 0, 0644));
	SETUP(mkdirat(d, "locked", 0700));
	SETUP(put(d, "locked/inside", "", 0, 0644));
	SETUP(mkdirat(d, "sg", 0777));
	SETUP(fchownat(d, "sg", 0, u.other_gid, 0));
	SETUP(fchmodat(d, "sg", 02777, 0));
	SETUP(mkdirat(d, "mine", 0755));
	SETUP(fchownat(d, "mine", opt.uid, opt.gid, 0));
	in_child(as_user, d, &u, "as the unprivileged user");
}

/* ---- main -------------------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: fs_posix [--cairnfs] [--big N] [--user UID:GID] DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *base = NULL;
	char *top, *rootdir, *userdir, *end;
	int i, d, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cairnfs") == 0) {
			opt.cairnfs = 1;
		} else if (strcmp(argv[i], "--big") == 0 && i + 1 < argc) {
			opt.big = strtol(argv[++i], &end, 10);
			if (*end || opt.big < 1 || opt.big > 10000000)
				usage();
		} else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc) {
			unsigned long uid, gid;

			uid = strtoul(argv[++i], &end, 10);
			if (*end != ':')
				usage();
			gid = strtoul(end + 1, &end, 10);
			if (*end || uid == 0 || uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1)
				usage();
			opt.uid = (uid_t)uid;
			opt.gid = (gid_t)gid;
		} else if (argv[i][0] == '-' || base) {
			usage();
		} else {
			base = argv[i];
		}
	}
	if (!base)
		usage();
	opt.as_root = geteuid() == 0;
	umask(0);
	setvbuf(stdout, NULL, _IOLBF, 0);

	top = xasprintf("%s/fs_posix-XXXXXX", base);
	if (!mkdtemp(top))
		tap_bail("mkdtemp %s: %s", top, strerror(errno));
	if (chmod(top, 0755) < 0)
		tap_bail("chmod %s: %s", top, strerror(errno));
	rootdir = xasprintf("%s/root", top);
	userdir = xasprintf("%s/user", top);
	if (mkdir(rootdir, 0755) < 0 || mkdir(userdir, 0755) < 0)
		tap_bail("mkdir in %s: %s", top, strerror(errno));
	d = open(rootdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		tap_bail("open %s: %s", rootdir, strerror(errno));
	diag("in %s%s, %ld-entry directory", top, opt.cairnfs ? " (cairnfs)" : "", opt.big);

	test_open(d, rootdir);
	test_sparse(d, rootdir);
	test_fallocate(d);
	test_sync_mmap(d);
	test_dirs(d);
	test_rename(d);
	test_coherence(d, rootdir);
	test_links(d);
	test_symlinks(d);
	test_attrs(d);
	test_xattrs(d, rootdir);
	test_names(d);
	test_types(d);
	test_bigdir(d, opt.big);
	test_locks(d);
	test_misc(d);
	close(d);

	if (opt.as_root) {
		d = open(userdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d < 0)
			tap_bail("open %s: %s", userdir, strerror(errno));
		test_user(d, userdir);
		close(d);
	} else {
		tap_skip(1, "the unprivileged-user checks need root to switch users");
	}

	rc = tap_done();
	tap_rmtree(top);
	if (access(top, F_OK) == 0)
		diag("could not remove %s", top);
	free(top);
	free(rootdir);
	free(userdir);
	return rc;
}
