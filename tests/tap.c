/*
 * tap.c - TAP output and small helpers for the C tests (see tap.h).
 * Tests are single-threaded at the TAP level: only the main thread reports.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "tap.h"

static int tap_count;
static int tap_failed;

static int tap_report(int cond, const char *file, int line, const char *fmt, va_list ap)
{
	tap_count++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
	vprintf(fmt, ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_report(cond, file, line, fmt, ap);
	va_end(ap);
	return cond;
}

int tap_is_int(long long got, long long want, const char *file, int line,
	       const char *fmt, ...)
{
	va_list ap;
	int cond = got == want;

	va_start(ap, fmt);
	tap_report(cond, file, line, fmt, ap);
	va_end(ap);
	if (!cond)
		printf("#   got: %lld\n#   want: %lld\n", got, want);
	return cond;
}

int tap_is_str(const char *got, const char *want, const char *file, int line,
	       const char *fmt, ...)
{
	va_list ap;
	int cond = (got && want) ? strcmp(got, want) == 0 : got == want;

	va_start(ap, fmt);
	tap_report(cond, file, line, fmt, ap);
	va_end(ap);
	if (!cond)
		printf("#   got: '%s'\n#   want: '%s'\n", got ? got : "(null)",
		       want ? want : "(null)");
	return cond;
}

int tap_is_mem(const void *got, size_t got_len, const void *want, size_t want_len,
	       const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int cond = got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0);

	va_start(ap, fmt);
	tap_report(cond, file, line, fmt, ap);
	va_end(ap);
	if (!cond) {
		size_t i = 0;

		while (i < got_len && i < want_len &&
		       ((const uint8_t *)got)[i] == ((const uint8_t *)want)[i])
			i++;
		printf("#   got %zu bytes, want %zu; first difference at byte %zu\n",
		       got_len, want_len, i);
	}
	return cond;
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void tap_skip(int n, const char *reason)
{
	for (int i = 0; i < n; i++)
		printf("ok %d # SKIP %s\n", ++tap_count, reason);
	fflush(stdout);
}

void tap_bail(const char *fmt, ...)
{
	va_list ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

int tap_done(void)
{
	printf("1..%d\n", tap_count);
	if (tap_failed)
		printf("# %d of %d checks failed\n", tap_failed, tap_count);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

char *tap_mkdtemp(const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	char *path = xasprintf("%s/cairn-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);

	if (!mkdtemp(path))
		tap_bail("mkdtemp %s: %m", path);
	return path;
}

void tap_rmtree(const char *dir)
{
	fsu_rmtree(dir);
}

void tap_fill_random(void *dst, size_t n, uint64_t seed)
{
	uint8_t *p = dst;
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < n; i++) {
		/* xorshift64*: fast, deterministic, incompressible enough */
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
	}
}
