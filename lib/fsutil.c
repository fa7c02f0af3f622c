/*
 * fsutil.c - file-system helpers shared by the modules (see fsutil.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"

int fsu_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fsu_pread_all(int fd, void *dst, size_t len, off_t off)
{
	char *p = dst;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int fsu_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int fsu_fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int rc;

	if (!slash)
		return fsu_fsync_dir(".");
	dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
	rc = fsu_fsync_dir(dir);
	free(dir);
	return rc;
}

int fsu_mkdir_parents(const char *path)
{
	char *copy = xstrdup(path);
	int rc = 0;

	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*p = '/';
	}
	free(copy);
	return rc;
}

static int rmtree_first_error;

static int rmtree_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (remove(path) < 0 && errno != ENOENT && !rmtree_first_error)
		rmtree_first_error = -errno;
	(void)flag;
	return 0;
}

int fsu_rmtree(const char *dir)
{
	int rc;

	rmtree_first_error = 0;
	rc = nftw(dir, rmtree_one, 32, FTW_DEPTH | FTW_PHYS);
	if (rc < 0 && errno != ENOENT)
		return -errno;
	return rmtree_first_error;
}

int fsu_read_boot_id(char **out)
{
	const char *e = getenv("CAIRN_BOOT_ID");
	char line[64];
	FILE *f;

	if (e && *e) {
		*out = xstrdup(e);
		return 0;
	}
	f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	*out = xstrdup(line);
	return 0;
}

int fsu_send_all(int fd, const void *src, size_t len)
{
	const char *p = src;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fsu_pwrite_all(int fd, const void *src, size_t len, off_t off)
{
	const char *p = src;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int fsu_parse_size(const char *text, uint64_t *out)
{
	static const char units[] = "KMGT";
	uint64_t n = 0, mul = 1;
	const char *p = text;

	if (!*p || *p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		const char *u = strchr(units, *p & ~0x20);

		if (!u)
			return -EINVAL;
		for (int i = 0; i <= u - units; i++)
			mul *= 1024;
		p++;
		if ((*p & ~0x20) == 'I')
			p++;
		if ((*p & ~0x20) == 'B')
			p++;
		if (*p)
			return -EINVAL;
	}
	if (n > UINT64_MAX / mul)
		return -EINVAL;
	*out = n * mul;
	return 0;
}

int fsu_no_core_dumps(void)
{
	struct rlimit none = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &none) || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return -errno;
	return 0;
}

static int all_zero(const unsigned char *b, size_t n)
{
	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

int fsu_pwrite_sparse(int fd, const void *src, size_t len, off_t off)
{
	const unsigned char *p = src;
	size_t at = 0, run = 0;	/* [at, at + run): bytes to write */

	while (at + run < len) {
		/* the block of the file that holds byte at + run, cut to the data */
		size_t pos = at + run;
		size_t n = 4096 - (size_t)((off + (off_t)pos) % 4096);

		if (n > len - pos)
			n = len - pos;
		if (!all_zero(p + pos, n)) {
			run += n;
			continue;
		}
		if (run) {
			int rc = fsu_pwrite_all(fd, p + at, run, off + (off_t)at);

			if (rc)
				return rc;
		}
		at = pos + n;
		run = 0;
	}
	return run ? fsu_pwrite_all(fd, p + at, run, off + (off_t)at) : 0;
}
