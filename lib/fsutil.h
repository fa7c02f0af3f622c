/*
 * fsutil.h - small file-system helpers that several modules need: full
 * reads and writes, directory fsync, mkdir -p, rm -rf.  Each returns 0 or a
 * negative errno; none records a message (callers know what the file is).
 */
#ifndef CAIRN_FSUTIL_H
#define CAIRN_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes all len bytes, retrying on EINTR and short writes. */
int fsu_write_all(int fd, const void *data, size_t len);
/* Writes all len bytes at off; 0 or -errno. */
int fsu_pwrite_all(int fd, const void *src, size_t len, off_t off);
/* send(2) of all len bytes on a socket, retrying on EINTR; a peer that
 * left is -EPIPE, not a SIGPIPE.  0 or -errno. */
int fsu_send_all(int fd, const void *src, size_t len);
/* Reads exactly len bytes at off; -EIO when the file ends sooner. */
int fsu_pread_all(int fd, void *dst, size_t len, off_t off);
/* fsync(2) of a directory, so a rename or create in it is durable. */
int fsu_fsync_dir(const char *dir);
/* fsync(2) of the directory that holds path. */
int fsu_fsync_parent(const char *path);
/* mkdir -p of every directory before the last '/' of path (mode 0700). */
int fsu_mkdir_parents(const char *path);
/* rm -rf dir, not following symlinks; the first error is returned. */
int fsu_rmtree(const char *dir);

/* The kernel's boot id (or $CAIRN_BOOT_ID, for tests) in *out (malloc'd).
 * Returns 0 or -errno. */
int fsu_read_boot_id(char **out);

/* Parses a size: digits with an optional K, M, G or T (powers of 1024,
 * an optional "iB" or "B" after it).  Returns 0 or -EINVAL (bad text,
 * overflow). */
int fsu_parse_size(const char *text, uint64_t *out);

/* pwrite of len bytes at off into a region of fd that holds nothing yet
 * (a hole): the 4 KiB blocks that are all zero are not written, so the
 * file stays as sparse as the data.  0 or -errno. */
int fsu_pwrite_sparse(int fd, const void *src, size_t len, off_t off);

/* No core dump of this process, ever: a program that holds unwrapped keys
 * (in its own memory, or in curl's and OpenSSL's buffers) and S3 secrets
 * (in its environment) calls it first.  Also makes it non-dumpable, so
 * other users cannot ptrace it or read its /proc files.  0 or -errno. */
int fsu_no_core_dumps(void);

#endif
