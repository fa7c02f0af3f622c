/*
 * md5.h - MD5 (RFC 1321), for S3's Content-MD5 header and ETag checks only.
 *
 * MD5 is broken as a cryptographic hash; cairn uses it where the S3 protocol
 * asks for it (transfer integrity), never to identify or protect data.
 */
#ifndef CAIRN_MD5_H
#define CAIRN_MD5_H

#include <stddef.h>
#include <stdint.h>

#define MD5_DIGEST_LEN 16
/* Length of the lowercase hex form, without the terminator. */
#define MD5_HEX_LEN 32

struct md5_ctx {
	uint32_t state[4];
	uint64_t bytes;		/* message length so far */
	uint8_t block[64];	/* pending input, bytes % 64 of it used */
};

void md5_init(struct md5_ctx *ctx);
void md5_update(struct md5_ctx *ctx, const void *data, size_t len);
/* Writes the digest and wipes the context. */
void md5_final(struct md5_ctx *ctx, uint8_t out[MD5_DIGEST_LEN]);

/* One-shot digest of data. */
void md5(const void *data, size_t len, uint8_t out[MD5_DIGEST_LEN]);

/* Lowercase hex of a digest into hex[MD5_HEX_LEN + 1], NUL-terminated. */
void md5_hex(const uint8_t digest[MD5_DIGEST_LEN], char hex[MD5_HEX_LEN + 1]);

/* Standard base64 of a digest (the Content-MD5 form) into b64[25]. */
void md5_base64(const uint8_t digest[MD5_DIGEST_LEN], char b64[25]);

#endif
