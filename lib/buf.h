/*
 * buf.h - a growable byte buffer, used instead of fixed arrays and strcat.
 *
 * data is always NUL-terminated one byte past len (so text can be used as a
 * C string) and owned by the buf.  Allocation failure aborts: cairn cannot
 * do anything useful without memory, and every caller would do the same.
 */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);
/* Makes room for extra more bytes (plus the terminator). */
void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Sets len, which must not exceed what was grown; keeps the terminator. */
void buf_setlen(struct buf *b, size_t len);
/* Gives the memory to the caller (never NULL) and leaves b empty. */
char *buf_detach(struct buf *b, size_t *len);
/* The contents as a C string ("" for an empty buffer). */
const char *buf_str(const struct buf *b);

/* Allocation helpers that abort on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
