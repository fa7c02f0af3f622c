/*
 * md5.c - MD5 as RFC 1321 specifies it, for S3 transfer checks (see md5.h).
 *
 * Invariant: ctx->block holds exactly ctx->bytes % 64 pending bytes; the
 * state is only advanced by whole 64-byte blocks.  Portable: bytes are
 * assembled little-endian by hand, no alignment or endianness assumptions.
 */
#include "config.h"

#include <string.h>

#include "hex.h"
#include "md5.h"

/* T[i] = floor(2^32 * |sin(i + 1)|), RFC 1321 section 3.4. */
static const uint32_t md5_t[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
	0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
	0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
	0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
	0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
	0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
	0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
	0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
	0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* Per-round rotation amounts. */
static const uint8_t md5_s[4][4] = {
	{ 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 },
};

static uint32_t rotl(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static void md5_block(uint32_t state[4], const uint8_t p[64])
{
	uint32_t x[16], a = state[0], b = state[1], c = state[2], d = state[3];
	int i;

	for (i = 0; i < 16; i++)
		x[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
		       (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
	for (i = 0; i < 64; i++) {
		uint32_t f, tmp;
		int g, round = i / 16;

		switch (round) {
		case 0: f = (b & c) | (~b & d); g = i; break;
		case 1: f = (b & d) | (c & ~d); g = (5 * i + 1) % 16; break;
		case 2: f = b ^ c ^ d; g = (3 * i + 5) % 16; break;
		default: f = c ^ (b | ~d); g = (7 * i) % 16; break;
		}
		tmp = d;
		d = c;
		c = b;
		b = b + rotl(a + f + md5_t[i] + x[g], md5_s[round][i % 4]);
		a = tmp;
	}
	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
}

void md5_init(struct md5_ctx *ctx)
{
	ctx->state[0] = 0x67452301;
	ctx->state[1] = 0xefcdab89;
	ctx->state[2] = 0x98badcfe;
	ctx->state[3] = 0x10325476;
	ctx->bytes = 0;
}

void md5_update(struct md5_ctx *ctx, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t used = (size_t)(ctx->bytes % 64);

	ctx->bytes += len;
	if (used) {
		size_t take = 64 - used < len ? 64 - used : len;

		memcpy(ctx->block + used, p, take);
		p += take;
		len -= take;
		if (used + take < 64)
			return;
		md5_block(ctx->state, ctx->block);
	}
	for (; len >= 64; p += 64, len -= 64)
		md5_block(ctx->state, p);
	if (len)
		memcpy(ctx->block, p, len);
}

void md5_final(struct md5_ctx *ctx, uint8_t out[MD5_DIGEST_LEN])
{
	uint64_t bits = ctx->bytes * 8;
	size_t used = (size_t)(ctx->bytes % 64);
	int i;

	ctx->block[used++] = 0x80;
	if (used > 56) {
		memset(ctx->block + used, 0, 64 - used);
		md5_block(ctx->state, ctx->block);
		used = 0;
	}
	memset(ctx->block + used, 0, 56 - used);
	for (i = 0; i < 8; i++)
		ctx->block[56 + i] = (uint8_t)(bits >> (8 * i));
	md5_block(ctx->state, ctx->block);
	for (i = 0; i < 16; i++)
		out[i] = (uint8_t)(ctx->state[i / 4] >> (8 * (i % 4)));
	memset(ctx, 0, sizeof(*ctx));
}

void md5(const void *data, size_t len, uint8_t out[MD5_DIGEST_LEN])
{
	struct md5_ctx ctx;

	md5_init(&ctx);
	md5_update(&ctx, data, len);
	md5_final(&ctx, out);
}

void md5_hex(const uint8_t digest[MD5_DIGEST_LEN], char hex[MD5_HEX_LEN + 1])
{
	hex_encode(digest, MD5_DIGEST_LEN, hex);
}

void md5_base64(const uint8_t digest[MD5_DIGEST_LEN], char b64[25])
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 3 <= MD5_DIGEST_LEN; i += 3) {
		uint32_t v = (uint32_t)digest[i] << 16 | (uint32_t)digest[i + 1] << 8 |
			     digest[i + 2];

		b64[o++] = alphabet[v >> 18];
		b64[o++] = alphabet[(v >> 12) & 63];
		b64[o++] = alphabet[(v >> 6) & 63];
		b64[o++] = alphabet[v & 63];
	}
	/* 16 = 5 * 3 + 1: one byte left, two characters and "==". */
	b64[o++] = alphabet[digest[15] >> 2];
	b64[o++] = alphabet[(digest[15] & 3) << 4];
	b64[o++] = '=';
	b64[o++] = '=';
	b64[o] = '\0';
}
