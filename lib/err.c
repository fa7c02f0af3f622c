/*
 * err.c - the per-thread error line behind err.h.
 *
 * Each thread owns one fixed buffer; messages longer than it are cut with an
 * ellipsis rather than lost, so err_msg() never fails and never allocates.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

#define ERR_MAX 1024

static __thread char err_line[ERR_MAX];

static void err_vformat(char *dst, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(dst, size, fmt, ap);

	if (n >= 0 && (size_t)n >= size && size > 4)
		memcpy(dst + size - 4, "...", 4);
}

int err_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vformat(err_line, sizeof(err_line), fmt, ap);
	va_end(ap);
	return code;
}

int err_prefix(int code, const char *fmt, ...)
{
	char old[ERR_MAX];
	size_t n;
	va_list ap;

	memcpy(old, err_line, sizeof(old));
	va_start(ap, fmt);
	err_vformat(err_line, sizeof(err_line), fmt, ap);
	va_end(ap);
	n = strlen(err_line);
	/* append ": old" (or the code's name), cut with an ellipsis if long */
	if (n + 6 < sizeof(err_line)) {
		const char *tail = old[0] ? old : err_kind(code);
		size_t room = sizeof(err_line) - n - 2;
		size_t t = strlen(tail);

		memcpy(err_line + n, ": ", 2);
		if (t >= room) {
			memcpy(err_line + n + 2, tail, room - 4);
			memcpy(err_line + n + 2 + room - 4, "...", 4);
		} else {
			memcpy(err_line + n + 2, tail, t + 1);
		}
	}
	return code;
}

const char *err_msg(void)
{
	return err_line;
}

void err_clear(void)
{
	err_line[0] = '\0';
}

const char *err_kind(int code)
{
	switch (code) {
	case 0: return "ok";
	case -ENOENT: return "not found";
	case -EEXIST: return "already exists";
	case -ECANCELED: return "precondition failed";
	case -EAGAIN: return "temporary failure";
	case -EACCES: return "access denied";
	case -EPERM: return "not permitted";
	case -EBADMSG: return "integrity check failed";
	case -EKEYREJECTED: return "key not live";
	case -EINVAL: return "invalid input";
	case -EIO: return "I/O error";
	case -ENOTSUP: return "not supported";
	case -ETIMEDOUT: return "timed out";
	case -ERANGE: return "out of range";
	case -ENOMEM: return "out of memory";
	case -ENOSPC: return "no space left";
	default: return "error";
	}
}
