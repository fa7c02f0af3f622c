/*
 * buf.c - growable buffers and allocation helpers (see buf.h).
 *
 * Invariant: when data is not NULL, data[len] == '\0' and len < cap.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void oom(size_t n)
{
	fprintf(stderr, "cairn: out of memory (asked for %zu bytes)\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* vasprintf that aborts on failure; *len gets the length. */
static char *xvasprintf(size_t *len, const char *fmt, va_list ap)
{
	char *p;
	int n = vasprintf(&p, fmt, ap);

	if (n < 0)
		oom(0);
	*len = (size_t)n;
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	size_t n;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(&n, fmt, ap);
	va_end(ap);
	return p;
}

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void buf_grow(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	size_t cap;

	if (need < b->len)
		oom(SIZE_MAX);
	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	b->data[b->len] = '\0';
}

void buf_add(struct buf *b, const void *data, size_t len)
{
	buf_grow(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t n;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(&n, fmt, ap);
	va_end(ap);
	buf_add(b, p, n);
	free(p);
}

void buf_setlen(struct buf *b, size_t len)
{
	if (len >= b->cap)
		buf_grow(b, len - b->len);
	b->len = len;
	b->data[len] = '\0';
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *p;

	if (!b->data)
		buf_grow(b, 0);
	p = (char *)b->data;
	if (len)
		*len = b->len;
	buf_init(b);
	return p;
}

const char *buf_str(const struct buf *b)
{
	return b->data ? (const char *)b->data : "";
}
