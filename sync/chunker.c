/*
 * chunker.c - keyed FastCDC-style content-defined chunking (see chunker.h;
 * the function is specified in docs/format.md "Chunking").
 *
 * Invariants: the gear table is derived from the chunker key only (ChaCha20
 * keystream), never from anything else, and is read-only after chunker_new;
 * a chunk's boundary depends only on its own bytes from data[0] up to the
 * cut, so feeding data in pieces gives the same chunks as all at once.
 */
#include "config.h"

#include <string.h>

#include <sodium.h>

#include "chunker.h"
#include "err.h"
#include "keys.h"

#define GEAR_BYTES (256 * 8)

struct chunker {
	uint64_t gear[256];
	uint64_t mask_s;	/* before avg: stricter (log2(avg) + 2 top bits) */
	uint64_t mask_l;	/* from avg on: looser (log2(avg) - 2 top bits) */
	size_t min, avg, max;
};

/* sodium_malloc returns memory aligned only as far as the size allows. */
#define CHUNKER_ALLOC ((sizeof(struct chunker) + 15) & ~(size_t)15)

void chunker_params_default(struct chunker_params *p)
{
	p->min = CHUNKER_MIN_DEFAULT;
	p->avg = CHUNKER_AVG_DEFAULT;
	p->max = CHUNKER_MAX_DEFAULT;
}

static int params_check(const struct chunker_params *p)
{
	if (p->avg < CHUNKER_AVG_LOW || p->avg > CHUNKER_AVG_HIGH || (p->avg & (p->avg - 1)))
		return err_set(-EINVAL, "chunker: average size %zu is not a power of two "
			       "between %u and %u", p->avg, CHUNKER_AVG_LOW, CHUNKER_AVG_HIGH);
	if (p->min < 1 || p->min > p->avg || p->avg > p->max || p->max > CHUNKER_MAX_HIGH)
		return err_set(-EINVAL, "chunker: sizes min %zu, avg %zu, max %zu: want "
			       "1 <= min <= avg <= max <= %u", p->min, p->avg, p->max,
			       CHUNKER_MAX_HIGH);
	return 0;
}

/* The top `bits` bits of a 64-bit word set. */
static uint64_t top_bits(unsigned bits)
{
	return ~(uint64_t)0 << (64 - bits);
}

int chunker_new(const uint8_t key[KEYS_KEY_LEN], const struct chunker_params *params,
		struct chunker **out)
{
	static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
	struct chunker_params def;
	struct chunker *c;
	uint8_t *ks;
	unsigned b = 0;
	int rc;

	*out = NULL;
	if (!params) {
		chunker_params_default(&def);
		params = &def;
	}
	rc = params_check(params);
	if (rc)
		return rc;
	rc = keys_init();
	if (rc)
		return rc;
	c = sodium_malloc(CHUNKER_ALLOC);
	ks = sodium_malloc(GEAR_BYTES);
	if (!c || !ks) {
		sodium_free(c);
		sodium_free(ks);
		return err_set(-ENOMEM, "chunker: out of locked memory for the gear table");
	}
	/* gear[i] = LE64(keystream[8i .. 8i+8)), keystream = ChaCha20 (RFC 8439)
	 * under the chunker key, nonce all zero, block counter from 0. */
	memset(ks, 0, GEAR_BYTES);
	crypto_stream_chacha20_ietf(ks, GEAR_BYTES, nonce, key);
	for (size_t i = 0; i < 256; i++) {
		uint64_t v = 0;

		for (int j = 7; j >= 0; j--)
			v = v << 8 | ks[8 * i + (size_t)j];
		c->gear[i] = v;
	}
	sodium_free(ks);	/* wipes */
	while (((size_t)1 << b) < params->avg)
		b++;
	c->mask_s = top_bits(b + 2);
	c->mask_l = top_bits(b - 2);
	c->min = params->min;
	c->avg = params->avg;
	c->max = params->max;
	sodium_mprotect_readonly(c);
	*out = c;
	return 0;
}

int chunker_new_ring(const struct keys_ring *ring, const struct chunker_params *params,
		     struct chunker **out)
{
	const uint8_t *key;
	int rc = keys_chunker_key(ring, &key);

	*out = NULL;
	if (rc)
		return rc;
	return chunker_new(key, params, out);
}

void chunker_free(struct chunker *c)
{
	sodium_free(c);
}

void chunker_params_get(const struct chunker *c, struct chunker_params *p)
{
	p->min = c->min;
	p->avg = c->avg;
	p->max = c->max;
}

/* Feeds data[i .. end) into the hash *h; returns the index of the first
 * byte after which the masked bits are all zero, or end.  One byte per
 * cycle: the loop is bound by the latency of h = 2h + gear (one lea).  Kept
 * out of line and 64-byte aligned so that the loop never straddles a cache
 * line, which halves its speed on some CPUs (seen on AMD EPYC). */
__attribute__((noinline, aligned(64)))
static size_t scan(const uint64_t *gear, const uint8_t *data, size_t i, size_t end,
		   uint64_t mask, uint64_t *hp)
{
	uint64_t h = *hp;

	for (; i < end; i++) {
		h = (h << 1) + gear[data[i]];
		if (!(h & mask))
			break;
	}
	*hp = h;
	return i;
}

size_t chunker_next(const struct chunker *c, const uint8_t *data, size_t len, int eof)
{
	size_t n = len < c->max ? len : c->max;
	size_t barrier = c->avg < n ? c->avg : n, i;
	uint64_t h = 0;

	if (len <= c->min)
		return eof || len >= c->max ? n : 0;
	/* Byte i enters the hash; a hit makes data[0 .. i] the chunk.  The
	 * hash starts from 0 at min, so nothing before min matters. */
	i = scan(c->gear, data, c->min, barrier, c->mask_s, &h);
	if (i < barrier)
		return i + 1;
	i = scan(c->gear, data, i, n, c->mask_l, &h);
	if (i < n)
		return i + 1;
	if (len >= c->max || eof)
		return n;
	return 0;
}
