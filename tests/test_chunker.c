/*
 * test_chunker.c - sync/chunker: bounds, determinism, average size, shift
 * resistance, keying, streaming, degenerate input, and a reference
 * implementation written from docs/format.md "Chunking" that must find the
 * same boundaries (plus the test vector printed there).
 *
 * All data is deterministic (tap_fill_random), so every run checks the same
 * boundaries.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "chunker.h"
#include "err.h"
#include "keys.h"
#include "tap.h"

#define MiB (1u << 20)

/* Chunk lengths of a whole buffer. */
struct cuts {
	size_t *len;
	size_t n, cap;
};

static void cuts_add(struct cuts *s, size_t len)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->len = xrealloc(s->len, s->cap * sizeof(*s->len));
	}
	s->len[s->n++] = len;
}

static void cuts_free(struct cuts *s)
{
	free(s->len);
	memset(s, 0, sizeof(*s));
}

static int cuts_equal(const struct cuts *a, const struct cuts *b)
{
	return a->n == b->n && memcmp(a->len, b->len, a->n * sizeof(*a->len)) == 0;
}

/* Cuts data all at once; returns 0, or -1 when chunker_next broke its contract. */
static int chunk_all(const struct chunker *c, const uint8_t *data, size_t len,
		     struct cuts *out)
{
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	while (off < len) {
		size_t n = chunker_next(c, data + off, len - off, 1);

		if (n == 0 || n > len - off)
			return -1;
		cuts_add(out, n);
		off += n;
	}
	return 0;
}

/* Cuts data as a stream arriving in pieces of 1..maxpiece bytes, keeping
 * what is not cut yet and calling again with more whenever it answers 0. */
static int chunk_stream(const struct chunker *c, const uint8_t *data, size_t len,
			size_t maxpiece, struct cuts *out)
{
	struct buf pend = BUF_INIT;
	size_t off = 0, start = 0;
	uint64_t x = 12345;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	buf_grow(&pend, 0);	/* data is never NULL below */
	for (;;) {
		int eof = off == len;
		size_t n;

		while ((n = chunker_next(c, pend.data + start, pend.len - start, eof)) != 0) {
			if (n > pend.len - start) {
				rc = -1;
				goto out;
			}
			cuts_add(out, n);
			start += n;
		}
		if (eof)
			break;
		/* drop what was cut, then append the next piece */
		if (start) {
			memmove(pend.data, pend.data + start, pend.len - start);
			buf_setlen(&pend, pend.len - start);
		}
		start = 0;
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		n = 1 + (size_t)(x >> 33) % maxpiece;
		if (n > len - off)
			n = len - off;
		buf_add(&pend, data + off, n);
		off += n;
	}
	if (pend.len != start)
		rc = -1;
out:
	buf_free(&pend);
	return rc;
}

/* ---- parameters and edge cases ----------------------------------------- */

static void test_params(const uint8_t *key)
{
	struct chunker_params p, got;
	struct chunker *c;

	chunker_params_default(&p);
	ok(p.min == 256 * 1024 && p.avg == MiB && p.max == 4 * MiB,
	   "defaults are 256 KiB / 1 MiB / 4 MiB");
	is_int(chunker_new(key, NULL, &c), 0, "chunker with default parameters");
	chunker_params_get(c, &got);
	ok(got.min == p.min && got.avg == p.avg && got.max == p.max,
	   "chunker_params_get gives them back");
	chunker_free(c);
	chunker_free(NULL);

	p = (struct chunker_params){ 1024, 3000, 8192 };
	is_int(chunker_new(key, &p, &c), -EINVAL, "avg not a power of two refused");
	ok(c == NULL && strstr(err_msg(), "power of two"), "message says why: %s", err_msg());
	p = (struct chunker_params){ 8192, 4096, 16384 };
	is_int(chunker_new(key, &p, &c), -EINVAL, "min > avg refused");
	p = (struct chunker_params){ 1024, 4096, 2048 };
	is_int(chunker_new(key, &p, &c), -EINVAL, "max < avg refused");
	p = (struct chunker_params){ 0, 4096, 16384 };
	is_int(chunker_new(key, &p, &c), -EINVAL, "min 0 refused");
	p = (struct chunker_params){ 1024, 4096, (size_t)CHUNKER_MAX_HIGH + 1 };
	is_int(chunker_new(key, &p, &c), -EINVAL, "max over CHUNKER_MAX_HIGH refused");
	p = (struct chunker_params){ 16, 32, 64 };
	is_int(chunker_new(key, &p, &c), -EINVAL, "avg under CHUNKER_AVG_LOW refused");
}

static void test_edges(const struct chunker *c, const uint8_t *data)
{
	struct chunker_params p;
	size_t n;

	chunker_params_get(c, &p);
	is_int(chunker_next(c, data, 0, 1), 0, "empty input at eof: no chunk");
	is_int(chunker_next(c, data, 0, 0), 0, "empty input: need more");
	is_int(chunker_next(c, data, p.min - 1, 0), 0, "under min, not eof: need more");
	is_int(chunker_next(c, data, p.min, 0), 0, "exactly min, not eof: need more");
	is_int(chunker_next(c, data, p.min - 1, 1), p.min - 1, "under min at eof: all of it");
	is_int(chunker_next(c, data, 10 * p.max, 0), chunker_next(c, data, 10 * p.max, 1),
	       "with max bytes or more, eof does not matter");
	n = chunker_next(c, data, 10 * p.max, 0);
	ok(n > p.min && n <= p.max, "a chunk is in (min, max]: %zu", n);
	is_int(chunker_next(c, data, n, 0), n, "a boundary is found with exactly its bytes");
	is_int(chunker_next(c, data, n - 1, 0), 0, "one byte short: need more");
}

/* ---- properties over random data --------------------------------------- */

static void test_bounds_and_average(const struct chunker *c, const uint8_t *data,
				    size_t len, const char *what)
{
	struct chunker_params p;
	struct cuts s;
	size_t total = 0, bad = 0;
	uint8_t *back = xmalloc(len);
	double mean;

	chunker_params_get(c, &p);
	is_int(chunk_all(c, data, len, &s), 0, "%s: chunker_next keeps its contract", what);
	for (size_t i = 0; i < s.n; i++) {
		memcpy(back + total, data + total, s.len[i]);
		total += s.len[i];
		if (s.len[i] > p.max || (i + 1 < s.n && s.len[i] < p.min))
			bad++;
	}
	is_int(bad, 0, "%s: every chunk but the last within [min, max] (%zu chunks)",
	       what, s.n);
	ok(s.n > 0 && s.len[s.n - 1] > 0 && s.len[s.n - 1] <= p.max,
	   "%s: the last chunk is not empty and at most max", what);
	ok(total == len && memcmp(back, data, len) == 0,
	   "%s: the chunks concatenate back to the input", what);
	mean = s.n > 1 ? (double)(len - s.len[s.n - 1]) / (double)(s.n - 1) : 0;
	ok(mean >= 0.7 * (double)p.avg && mean <= 1.3 * (double)p.avg,
	   "%s: mean chunk %.0f bytes within 30%% of avg %zu", what, mean, p.avg);
	cuts_free(&s);
	free(back);
}

static void test_deterministic(const uint8_t *key, const struct chunker_params *p,
			       const uint8_t *data, size_t len)
{
	struct chunker *a, *b;
	struct cuts s1, s2, s3;

	chunker_new(key, p, &a);
	chunker_new(key, p, &b);
	chunk_all(a, data, len, &s1);
	chunk_all(a, data, len, &s2);
	chunk_all(b, data, len, &s3);
	ok(cuts_equal(&s1, &s2), "same chunker, same data: same chunks");
	ok(cuts_equal(&s1, &s3), "another chunker with the same key: same chunks");
	cuts_free(&s1);
	cuts_free(&s2);
	cuts_free(&s3);
	chunker_free(a);
	chunker_free(b);
}

/* Chunks of b that are not chunks of a at the same distance from the end
 * (b is a with bytes inserted near the start). */
static size_t changed_chunks(const struct cuts *a, size_t alen, const struct cuts *b,
			     size_t blen)
{
	size_t ia = a->n, ib = b->n, ea = alen, eb = blen, changed = 0;

	/* walk both lists from the end: equal chunks at equal distance from the
	 * end are equal content, since the tails of the inputs are equal */
	while (ib > 0) {
		while (ia > 0 && alen - ea < blen - eb) {
			ea -= a->len[--ia];
		}
		if (ia > 0 && alen - ea == blen - eb && a->len[ia - 1] == b->len[ib - 1]) {
			ea -= a->len[--ia];
		} else {
			changed++;
		}
		eb -= b->len[--ib];
	}
	return changed;
}

static void test_shift(const uint8_t *key, const struct chunker_params *p,
		       const uint8_t *data, size_t len, const char *what)
{
	uint8_t *ins = xmalloc(len + 100);
	struct cuts a, b;
	struct chunker *c;
	size_t changed;

	chunker_new(key, p, &c);
	memcpy(ins, data, 1000);
	tap_fill_random(ins + 1000, 100, 99);
	memcpy(ins + 1100, data + 1000, len - 1000);
	chunk_all(c, data, len, &a);
	chunk_all(c, ins, len + 100, &b);
	changed = changed_chunks(&a, len, &b, len + 100);
	ok(changed >= 1 && changed <= 2 && b.n > 4,
	   "%s: 100 bytes inserted near the start change %zu of %zu chunks", what,
	   changed, b.n);
	cuts_free(&a);
	cuts_free(&b);
	chunker_free(c);
	free(ins);
}

static void test_keys_differ(const uint8_t *key, const struct chunker_params *p,
			     const uint8_t *data, size_t len)
{
	uint8_t key2[KEYS_KEY_LEN];
	struct chunker *a, *b;
	struct cuts s1, s2;
	size_t same = 0;

	memcpy(key2, key, sizeof(key2));
	key2[31] ^= 1;
	chunker_new(key, p, &a);
	chunker_new(key2, p, &b);
	chunk_all(a, data, len, &s1);
	chunk_all(b, data, len, &s2);
	ok(!cuts_equal(&s1, &s2), "two keys give different boundaries");
	for (size_t i = 0; i < s1.n && i < s2.n; i++)
		same += s1.len[i] == s2.len[i];
	ok(same < 3, "... in nearly every chunk (%zu of %zu equal lengths at equal index)",
	   same, s1.n);
	cuts_free(&s1);
	cuts_free(&s2);
	chunker_free(a);
	chunker_free(b);
}

static void test_stream(const struct chunker *c, const uint8_t *data, size_t len,
			size_t maxpiece, const char *what)
{
	struct cuts whole, pieces;

	chunk_all(c, data, len, &whole);
	is_int(chunk_stream(c, data, len, maxpiece, &pieces), 0,
	       "%s: fed in pieces of 1..%zu bytes, the 0 = need more contract holds",
	       what, maxpiece);
	ok(cuts_equal(&whole, &pieces), "%s: same chunks as all at once (%zu)", what,
	   whole.n);
	cuts_free(&whole);
	cuts_free(&pieces);
}

static void test_zeros(const struct chunker *c, size_t len, const char *what)
{
	uint8_t *z = xcalloc(1, len);
	struct chunker_params p;
	struct cuts s;
	size_t bad = 0;

	chunker_params_get(c, &p);
	chunk_all(c, z, len, &s);
	for (size_t i = 0; i + 1 < s.n; i++)
		bad += s.len[i] != p.max;
	ok(bad == 0 && s.n == (len + p.max - 1) / p.max,
	   "%s: all-zero input gives max-size chunks (%zu chunks)", what, s.n);
	cuts_free(&s);
	free(z);
}

/* ---- the specification -------------------------------------------------- */

/* docs/format.md "Chunking", as plainly as it is written there. */
struct ref_chunker {
	uint64_t gear[256];
	size_t min, avg, max;
	unsigned bits;
};

static void ref_init(struct ref_chunker *r, const uint8_t key[32], size_t min,
		     size_t avg, size_t max)
{
	uint8_t ks[2048] = { 0 }, nonce[12] = { 0 };

	crypto_stream_chacha20_ietf_xor_ic(ks, ks, sizeof(ks), nonce, 0, key);
	for (int i = 0; i < 256; i++) {
		uint64_t v = 0;

		for (int j = 0; j < 8; j++)
			v |= (uint64_t)ks[8 * i + j] << (8 * j);
		r->gear[i] = v;
	}
	r->min = min;
	r->avg = avg;
	r->max = max;
	for (r->bits = 0; ((size_t)1 << r->bits) < avg; r->bits++)
		;
}

/* The length of the chunk at the start of data[0 .. len), len being all
 * that is left of the file. */
static size_t ref_cut(const struct ref_chunker *r, const uint8_t *data, size_t len)
{
	uint64_t h = 0;

	if (len <= r->min)
		return len;
	for (size_t i = r->min; i < len && i < r->max; i++) {
		unsigned need = i < r->avg ? r->bits + 2 : r->bits - 2;

		h = 2 * h + r->gear[data[i]];	/* mod 2^64 */
		if (h >> (64 - need) == 0)
			return i + 1;
	}
	return len < r->max ? len : r->max;
}

static void test_spec(const uint8_t *key, const uint8_t *data, size_t len)
{
	static const uint8_t rfc8439_a1[8] = { 0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90 };
	uint8_t zero_key[32] = { 0 };
	struct chunker_params p = { 4096, 16384, 65536 };
	struct ref_chunker *r = xmalloc(sizeof(*r));
	struct chunker *c;
	struct cuts s;
	size_t off = 0, bad = 0;

	uint64_t want0 = 0;

	for (int j = 7; j >= 0; j--)
		want0 = want0 << 8 | rfc8439_a1[j];
	ref_init(r, zero_key, 1, 64, 64);
	ok(r->gear[0] == want0 && want0 == 0x903df1a0ade0b876ull,
	   "gear[0] under the zero key is LE64 of RFC 8439 A.1 test vector #1's first bytes");

	ref_init(r, key, p.min, p.avg, p.max);
	chunker_new(key, &p, &c);
	chunk_all(c, data, len, &s);
	for (size_t i = 0; i < s.n; i++) {
		bad += ref_cut(r, data + off, len - off) != s.len[i];
		off += s.len[i];
	}
	ok(bad == 0 && s.n > 100,
	   "the reference implementation of docs/format.md finds the same %zu chunks", s.n);
	cuts_free(&s);
	chunker_free(c);
	free(r);
}

/* The test vector printed in docs/format.md "Chunking". */
static void test_vector(void)
{
	static const size_t want[] = { 2244, 1574, 1026, 1198, 1052, 1088, 1158, 1482,
				       1068, 1384, 1141, 1050, 919 };
	static const uint64_t gear[4] = { 0x6a19c5d97d2bfd39ull, 0x494adcb87703bd8dull,
					  0xcc6adebc6fd8358aull, 0x9224ead84c7dccb2ull };
	struct ref_chunker *r = xmalloc(sizeof(*r));
	uint8_t key[32], in_key[32], nonce[12] = { 0 };
	struct chunker_params p = { 256, 1024, 4096 };
	uint8_t *in = xcalloc(1, 16384);
	struct chunker *c;
	struct cuts s;
	struct buf got = BUF_INIT;

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	memset(in_key, 0x42, sizeof(in_key));
	crypto_stream_chacha20_ietf(in, 16384, nonce, in_key);
	ref_init(r, key, p.min, p.avg, p.max);
	ok(memcmp(r->gear, gear, sizeof(gear)) == 0, "test vector: gear[0..3]");
	ok(in[0] == 0xa4 && in[1] == 0xdd && in[15] == 0x1e, "test vector: input bytes");
	free(r);
	chunker_new(key, &p, &c);
	chunk_all(c, in, 16384, &s);
	for (size_t i = 0; i < s.n; i++)
		buf_printf(&got, "%s%zu", i ? " " : "", s.len[i]);
	ok(s.n == sizeof(want) / sizeof(want[0]) &&
	   memcmp(s.len, want, sizeof(want)) == 0,
	   "test vector of docs/format.md: chunks %s", buf_str(&got));
	buf_free(&got);
	cuts_free(&s);
	chunker_free(c);
	free(in);
}

int main(void)
{
	struct chunker_params small = { 4096, 16384, 65536 }, def;
	size_t len = 20 * MiB, big = 64 * MiB;
	uint8_t key[KEYS_KEY_LEN];
	struct chunker *cs, *cd;
	struct keys_ring *ring;
	uint8_t *data;

	if (keys_init())
		tap_bail("keys_init: %s", err_msg());
	chunker_params_default(&def);
	tap_fill_random(key, sizeof(key), 1);
	data = xmalloc(big);
	tap_fill_random(data, big, 2);

	test_params(key);
	is_int(keys_ring_new("ws-chunker", &ring), 0, "a keyring");
	is_int(chunker_new_ring(ring, &small, &cs), 0, "chunker from the ring's chunker key");
	chunker_free(cs);
	keys_ring_free(ring);
	is_int(keys_ring_empty("ws-chunker", &ring), 0, "an empty keyring");
	is_int(chunker_new_ring(ring, NULL, &cs), -ENOENT, "no identity key: -ENOENT");
	keys_ring_free(ring);

	if (chunker_new(key, &small, &cs) || chunker_new(key, &def, &cd))
		tap_bail("chunker_new: %s", err_msg());
	test_edges(cs, data);
	test_edges(cd, data);
	test_bounds_and_average(cs, data, len, "16 KiB avg, 20 MiB");
	test_bounds_and_average(cd, data, big, "default, 64 MiB");
	test_deterministic(key, &small, data, len);
	test_deterministic(key, &def, data, big);
	test_shift(key, &small, data, len, "16 KiB avg, 20 MiB");
	test_shift(key, &def, data, len, "default, 20 MiB");
	test_keys_differ(key, &small, data, len);
	test_stream(cs, data, 4 * MiB, 7000, "16 KiB avg");
	test_stream(cs, data, 2 * MiB, 300, "16 KiB avg, tiny pieces");
	test_stream(cd, data, big, 3 * MiB, "default");
	test_zeros(cs, MiB + 123, "16 KiB avg");
	test_zeros(cd, 17 * MiB, "default");
	test_spec(key, data, len);
	test_vector();

	chunker_free(cs);
	chunker_free(cd);
	free(data);
	return tap_done();
}
