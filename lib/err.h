/*
 * err.h - one precise error line per thread, and the codes that go with it.
 *
 * Library functions return 0 or a negative errno-style code and leave one
 * line in the calling thread's error context that says what failed, on which
 * object, and what the user can do.  `return err_set(-ENOENT, "...")` reads
 * the way git's `return error(...)` does.  Codes used across cairn:
 *   -ENOENT    not found            -EEXIST / -ECANCELED  precondition failed
 *   -EAGAIN    transient (retry)    -EACCES               auth refused
 *   -EBADMSG   integrity failure    -EINVAL               bad input
 *   -EIO       store or disk error  -ENOTSUP              format/version unknown
 *   -EKEYREJECTED  sealed under a data key that is not live (retired, or
 *                  its wrap missing): refused, which is not "not found"
 */
#ifndef CAIRN_ERR_H
#define CAIRN_ERR_H

#include <errno.h>

/* Records the message for this thread and returns code (a negative errno). */
int err_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Puts "prefix: " in front of the current message; returns code unchanged. */
int err_prefix(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The current message of this thread ("" when none), valid until the next
 * err_* call on the same thread. */
const char *err_msg(void);

/* Forgets the current message. */
void err_clear(void);

/* A short name for a code, for messages: "not found", "integrity", ... */
const char *err_kind(int code);

#endif
