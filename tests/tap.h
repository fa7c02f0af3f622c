/*
 * tap.h - Test Anything Protocol output for cairn's C tests.
 *
 * Each test program prints "ok N - name" / "not ok N - name" lines and a plan;
 * automake's tap-driver.sh counts them, so every check is one test in the
 * "N passed, N failed" line.  A failing check prints where and why as TAP
 * diagnostics ("# ...") and the program goes on, so one run shows every
 * failure.
 */
#ifndef CAIRN_TAP_H
#define CAIRN_TAP_H

#include <stddef.h>
#include <stdint.h>

/* Returns cond; prints ok/not ok with the formatted name. */
int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int tap_is_int(long long got, long long want, const char *file, int line,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int tap_is_str(const char *got, const char *want, const char *file, int line,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int tap_is_mem(const void *got, size_t got_len, const void *want, size_t want_len,
	       const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Skips n checks with a reason (only for a case that cannot apply on this
 * machine, never for a missing dependency). */
void tap_skip(int n, const char *reason);
/* Stops the whole program: prints "Bail out!" and exits 1. */
void tap_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints the plan (1..N) and returns the exit status: 0 when all passed. */
int tap_done(void);

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
	tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str(got, want, __FILE__, __LINE__, __VA_ARGS__)
#define is_mem(got, gl, want, wl, ...) \
	tap_is_mem(got, gl, want, wl, __FILE__, __LINE__, __VA_ARGS__)
#define diag tap_diag

/* Small helpers the tests share. */
/* A fresh directory under $TMPDIR (or /tmp); aborts the test on failure. */
char *tap_mkdtemp(const char *tag);
/* rm -rf of a directory made by tap_mkdtemp. */
void tap_rmtree(const char *dir);
/* n deterministic pseudo-random bytes from seed. */
void tap_fill_random(void *dst, size_t n, uint64_t seed);

#endif
