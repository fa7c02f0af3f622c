/*
 * test_blob.c - sync/blob: encode/decode round trips of data and tree blobs,
 * the compression rule, ids across a data-key rotation, every way a sealed
 * blob or its reference can be wrong (always an error, never wrong data),
 * zstd bombs refused without allocating their content, hex ids, threads.
 *
 * Real crypto and real zstd, no mocks.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <zstd.h>

#include "blob.h"
#include "buf.h"
#include "err.h"
#include "keys.h"
#include "tap.h"

#define MiB (1u << 20)
#define WS "ws-blob-test"

static struct keys_ring *ring;

/* Text-like bytes (words from a small vocabulary): zstd shrinks them a lot. */
static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *words[] = { "cairn ", "blob ", "chunk ", "pack ", "index ",
				       "tree ", "snapshot ", "head ", "lease ", "key\n" };
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
	size_t i = 0;

	while (i < n) {
		const char *w;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		w = words[(x * 0x2545F4914F6CDD1Dull >> 60) % 10];
		for (; *w && i < n; w++)
			p[i++] = (uint8_t)*w;
	}
}

static const char *comp_name(int c)
{
	return c == BLOB_RAW ? "raw" : c == BLOB_ZSTD ? "zstd" : "?";
}

/* ---- round trips -------------------------------------------------------- */

static void round_trip(enum keys_blob_type type, const uint8_t *plain, size_t len,
		       int want_comp, const char *what)
{
	struct buf sealed = BUF_INIT, out = BUF_INIT;
	const struct keys_key *dk;
	uint8_t id[KEYS_BLOB_ID_LEN];
	struct blob_ref ref;
	const char *tn = keys_blob_type_name(type);
	int rc;

	buf_add(&sealed, "prefix", 6);	/* encode appends */
	rc = blob_encode(ring, type, plain, len, &sealed, &ref);
	is_int(rc, 0, "%s %s: encode", tn, what);
	if (rc) {
		diag("%s", err_msg());
		goto out;
	}
	keys_blob_id_typed(ring, type, plain, len, id);
	keys_ring_current(ring, &dk);
	ok(memcmp(ref.id, id, sizeof(id)) == 0 && ref.type == type &&
	   ref.raw_length == len && ref.length == sealed.len - 6 &&
	   strcmp(ref.key_id, keys_key_id(dk)) == 0,
	   "%s %s: ref has the id, type, lengths and current key id", tn, what);
	is_str(comp_name(ref.compression), comp_name(want_comp), "%s %s: stored %s", tn,
	       what, comp_name(want_comp));
	if (ref.compression == BLOB_ZSTD)
		ok(ref.length - KEYS_BLOB_OVERHEAD <= len - len / BLOB_ZSTD_MIN_SAVING,
		   "%s %s: compressed to %u of %zu bytes", tn, what,
		   (unsigned)(ref.length - KEYS_BLOB_OVERHEAD), len);
	buf_add(&out, "x", 1);	/* decode appends */
	rc = blob_decode(ring, &ref, sealed.data + 6, sealed.len - 6, &out);
	is_int(rc, 0, "%s %s: decode", tn, what);
	if (rc)
		diag("%s", err_msg());
	ok(out.len == len + 1 && out.data[0] == 'x' &&
	   (len == 0 || memcmp(out.data + 1, plain, len) == 0),
	   "%s %s: decoded bytes equal the input", tn, what);
out:
	buf_free(&sealed);
	buf_free(&out);
}

static void test_round_trips(const uint8_t *text, const uint8_t *rnd)
{
	static const uint8_t one = 'a';

	for (int t = KEYS_BLOB_DATA; t <= KEYS_BLOB_TREE; t++) {
		round_trip(t, NULL, 0, BLOB_RAW, "0 B");
		round_trip(t, &one, 1, BLOB_RAW, "1 B");
		round_trip(t, text, MiB, BLOB_ZSTD, "1 MiB compressible");
		round_trip(t, rnd, MiB, BLOB_RAW, "1 MiB random");
	}
	round_trip(KEYS_BLOB_DATA, text, 100, BLOB_ZSTD, "100 B text");
}

/* 1 MiB with `zeros` leading zero bytes, the rest random: zstd saves about
 * that many bytes, so the 1/16 rule decides. */
static void test_rule(const uint8_t *rnd)
{
	uint8_t *p = xmalloc(MiB);

	memset(p, 0, MiB / 25);	/* 4%: does not pay */
	memcpy(p + MiB / 25, rnd, MiB - MiB / 25);
	round_trip(KEYS_BLOB_DATA, p, MiB, BLOB_RAW, "saving 4%");
	memset(p, 0, MiB / 10);	/* 10%: pays */
	memcpy(p + MiB / 10, rnd, MiB - MiB / 10);
	round_trip(KEYS_BLOB_DATA, p, MiB, BLOB_ZSTD, "saving 10%");
	free(p);
}

static void test_ids_and_rotation(const uint8_t *text)
{
	struct buf s1 = BUF_INIT, s2 = BUF_INIT, s3 = BUF_INIT, out = BUF_INIT;
	struct blob_ref r1, r2, r3;
	const struct keys_key *nk;

	blob_encode(ring, KEYS_BLOB_DATA, text, 4096, &s1, &r1);
	blob_encode(ring, KEYS_BLOB_DATA, text, 4096, &s2, &r2);
	ok(memcmp(r1.id, r2.id, KEYS_BLOB_ID_LEN) == 0, "equal content, equal ids");
	ok(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) != 0,
	   "... but the sealed bytes differ (random nonce)");
	is_int(keys_ring_rotate(ring, &nk), 0, "rotate the data key");
	blob_encode(ring, KEYS_BLOB_DATA, text, 4096, &s3, &r3);
	ok(memcmp(r1.id, r3.id, KEYS_BLOB_ID_LEN) == 0, "the id is stable across a rotation");
	ok(strcmp(r3.key_id, keys_key_id(nk)) == 0 && strcmp(r3.key_id, r1.key_id) != 0,
	   "the new blob is sealed with the new data key");
	ok(memcmp(s1.data, s3.data, s1.len < s3.len ? s1.len : s3.len) != 0,
	   "sealed bytes differ across the rotation");
	is_int(blob_decode(ring, &r1, s1.data, s1.len, &out), 0,
	       "a blob sealed with the old key still decodes");
	is_int(blob_decode(ring, &r3, s3.data, s3.len, &out), 0, "so does the new one");
	ok(out.len == 8192 && memcmp(out.data, text, 4096) == 0 &&
	   memcmp(out.data + 4096, text, 4096) == 0, "both give the content back");
	buf_free(&s1);
	buf_free(&s2);
	buf_free(&s3);
	buf_free(&out);
}

/* ---- refusals ------------------------------------------------------------ */

/* Decodes with a ref and sealed bytes; checks the code and that out stays. */
static void refuse(const struct blob_ref *ref, const uint8_t *sealed, size_t len,
		   int want, const char *what)
{
	struct buf out = BUF_INIT;
	int rc;

	buf_add(&out, "keep", 4);
	rc = blob_decode(ring, ref, sealed, len, &out);
	is_int(rc, want, "%s: %s", what, rc ? err_msg() : "(decoded!)");
	ok(out.len == 4 && memcmp(out.data, "keep", 5) == 0, "%s: output untouched", what);
	buf_free(&out);
}

static void test_tampering(const uint8_t *text, const uint8_t *rnd)
{
	for (int z = 0; z < 2; z++) {
		const uint8_t *src = z ? text : rnd;
		const char *k = z ? "zstd" : "raw";
		struct buf s = BUF_INIT;
		struct blob_ref ref, bad;
		char what[128];

		blob_encode(ring, KEYS_BLOB_DATA, src, 65536, &s, &ref);
		is_int(ref.compression, z ? BLOB_ZSTD : BLOB_RAW, "%s blob for tampering", k);
		for (int pos = 0; pos < 3; pos++) {
			size_t at = pos == 0 ? 0 : pos == 1 ? s.len / 2 : s.len - 1;

			s.data[at] ^= 0x20;
			snprintf(what, sizeof(what), "%s: byte %zu of %zu flipped", k, at, s.len);
			refuse(&ref, s.data, s.len, -EBADMSG, what);
			s.data[at] ^= 0x20;
		}
		refuse(&ref, s.data, s.len - 1, -EBADMSG, z ? "zstd: one byte short" :
		       "raw: one byte short");
		bad = ref;
		bad.length--;
		refuse(&bad, s.data, s.len - 1, -EBADMSG, z ? "zstd: truncated, ref agrees" :
		       "raw: truncated, ref agrees");
		bad = ref;
		bad.raw_length++;
		refuse(&bad, s.data, s.len, -EBADMSG, z ? "zstd: raw_length + 1" :
		       "raw: raw_length + 1");
		bad = ref;
		bad.raw_length--;
		refuse(&bad, s.data, s.len, -EBADMSG, z ? "zstd: raw_length - 1" :
		       "raw: raw_length - 1");
		bad = ref;
		bad.raw_length = BLOB_MAX_RAW + 1;
		refuse(&bad, s.data, s.len, -EBADMSG, z ? "zstd: raw_length over the limit" :
		       "raw: raw_length over the limit");
		bad = ref;
		bad.compression = z ? BLOB_RAW : BLOB_ZSTD;
		refuse(&bad, s.data, s.len, -EBADMSG, z ? "zstd: flagged raw" :
		       "raw: flagged zstd");
		bad = ref;
		bad.compression = 7;
		refuse(&bad, s.data, s.len, -ENOTSUP, z ? "zstd: compression 7" :
		       "raw: compression 7");
		bad = ref;
		bad.id[5] ^= 1;
		refuse(&bad, s.data, s.len, -EBADMSG, z ? "zstd: wrong id" : "raw: wrong id");
		bad = ref;
		bad.type = KEYS_BLOB_TREE;
		refuse(&bad, s.data, s.len, -EBADMSG, z ? "zstd: wrong type" : "raw: wrong type");
		bad = ref;
		bad.type = 0;
		refuse(&bad, s.data, s.len, -EINVAL, z ? "zstd: type 0" : "raw: type 0");
		bad = ref;
		memcpy(bad.key_id, "0123456789abcdef", KEYS_ID_SIZE);
		refuse(&bad, s.data, s.len, -EKEYREJECTED, z ? "zstd: unknown key id" :
		       "raw: unknown key id");
		bad = ref;
		memset(bad.key_id, 'a', sizeof(bad.key_id));
		refuse(&bad, s.data, s.len, -EINVAL, z ? "zstd: key id not terminated" :
		       "raw: key id not terminated");
		buf_free(&s);
	}
}

/* A blob sealed under the id of other content: opens, but is not its id. */
static void test_id_mismatch(const uint8_t *text)
{
	const struct keys_key *dk;
	struct blob_ref ref;
	struct buf s = BUF_INIT, z = BUF_INIT;
	char hex[BLOB_ID_HEX_SIZE];
	size_t zl;

	keys_ring_current(ring, &dk);
	memset(&ref, 0, sizeof(ref));
	keys_blob_id(ring, "other", 5, ref.id);
	ref.type = KEYS_BLOB_DATA;
	memcpy(ref.key_id, keys_key_id(dk), KEYS_ID_SIZE);

	ref.compression = BLOB_RAW;
	ref.raw_length = 4096;
	keys_seal_blob(dk, KEYS_BLOB_DATA, ref.id, text, 4096, &s);
	ref.length = (uint32_t)s.len;
	refuse(&ref, s.data, s.len, -EBADMSG, "raw content under another blob's id");
	blob_id_hex(ref.id, hex);
	ok(strstr(err_msg(), "content does not match its id") && strstr(err_msg(), hex),
	   "the message names the blob: %s", err_msg());

	buf_grow(&z, ZSTD_compressBound(4096));
	zl = ZSTD_compress(z.data, ZSTD_compressBound(4096), text, 4096, 3);
	buf_reset(&s);
	keys_seal_blob(dk, KEYS_BLOB_DATA, ref.id, z.data, zl, &s);
	ref.compression = BLOB_ZSTD;
	ref.length = (uint32_t)s.len;
	refuse(&ref, s.data, s.len, -EBADMSG, "zstd content under another blob's id");
	ok(strstr(err_msg(), "content does not match its id") != NULL, "... says so");
	buf_free(&s);
	buf_free(&z);
}

/* ---- zstd bombs ----------------------------------------------------------- */

/* A zstd frame of RLE blocks of 128 KiB zeros: `blocks` of them.  fcs_bytes
 * 4 declares content size fcs (single segment); 0 declares none. */
static void bomb_frame(struct buf *f, uint32_t fcs, int fcs_bytes, size_t blocks)
{
	buf_add(f, "\x28\xb5\x2f\xfd", 4);
	if (fcs_bytes == 4) {
		uint8_t h[5] = { 0xa0, (uint8_t)fcs, (uint8_t)(fcs >> 8), (uint8_t)(fcs >> 16),
				 (uint8_t)(fcs >> 24) };

		buf_add(f, h, sizeof(h));
	} else {
		buf_add(f, "\x00\x38", 2);	/* no FCS; window 128 KiB */
	}
	for (size_t i = 0; i < blocks; i++) {
		uint32_t bh = (131072u << 3) | (1u << 1) | (i + 1 == blocks);
		uint8_t b[4] = { (uint8_t)bh, (uint8_t)(bh >> 8), (uint8_t)(bh >> 16), 0 };

		buf_add(f, b, sizeof(b));
	}
}

static void seal_bomb(const struct buf *frame, uint32_t raw, struct blob_ref *ref,
		      struct buf *s)
{
	const struct keys_key *dk;

	keys_ring_current(ring, &dk);
	memset(ref, 0, sizeof(*ref));
	tap_fill_random(ref->id, sizeof(ref->id), raw);
	ref->type = KEYS_BLOB_DATA;
	ref->compression = BLOB_ZSTD;
	ref->raw_length = raw;
	memcpy(ref->key_id, keys_key_id(dk), KEYS_ID_SIZE);
	buf_reset(s);
	keys_seal_blob(dk, KEYS_BLOB_DATA, ref->id, frame->data, frame->len, s);
	ref->length = (uint32_t)s->len;
}

static long maxrss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_bombs(void)
{
	struct buf f = BUF_INIT, s = BUF_INIT;
	struct blob_ref ref;
	long rss0 = maxrss_kib();
#ifndef __SANITIZE_ADDRESS__
	struct rlimit old, lim;
	long vm_kib = 0;
	FILE *st = fopen("/proc/self/statm", "r");

	/* Cap the address space at what we use + 256 MiB: allocating the 1 GiB
	 * a bomb declares would abort the test. */
	if (st && fscanf(st, "%ld", &vm_kib) == 1)
		vm_kib *= sysconf(_SC_PAGESIZE) / 1024;
	if (st)
		fclose(st);
	getrlimit(RLIMIT_AS, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)vm_kib * 1024 + 256 * MiB;
	ok(vm_kib > 0 && setrlimit(RLIMIT_AS, &lim) == 0, "address space capped at +256 MiB");
#else
	tap_skip(1, "no address space cap under AddressSanitizer (its shadow memory)");
#endif
	bomb_frame(&f, 1u << 30, 4, 8192);
	diag("bomb: %zu byte zstd frame of 1 GiB", f.len);
	seal_bomb(&f, 1u << 30, &ref, &s);
	refuse(&ref, s.data, s.len, -EBADMSG, "frame of 1 GiB, ref says 1 GiB");
	seal_bomb(&f, MiB, &ref, &s);
	refuse(&ref, s.data, s.len, -EBADMSG, "frame of 1 GiB, ref says 1 MiB");
	ok(strstr(err_msg(), "declares") != NULL, "... the declared size is refused: %s",
	   err_msg());
	buf_reset(&f);
	bomb_frame(&f, MiB, 4, 8192);
	seal_bomb(&f, MiB, &ref, &s);
	refuse(&ref, s.data, s.len, -EBADMSG, "frame declaring 1 MiB that inflates to 1 GiB");
	buf_reset(&f);
	bomb_frame(&f, 0, 0, 8192);
	seal_bomb(&f, MiB, &ref, &s);
	refuse(&ref, s.data, s.len, -EBADMSG, "frame with no content size");
	buf_reset(&f);
	bomb_frame(&f, MiB, 4, 8);	/* an honest frame: 8 x 128 KiB = 1 MiB */
	buf_add(&f, "\0\0\0\0", 4);
	seal_bomb(&f, MiB, &ref, &s);
	refuse(&ref, s.data, s.len, -EBADMSG, "honest frame followed by trailing bytes");
	ok(maxrss_kib() - rss0 < 64 * 1024, "peak memory grew by %ld KiB, under 64 MiB",
	   maxrss_kib() - rss0);
#ifndef __SANITIZE_ADDRESS__
	setrlimit(RLIMIT_AS, &old);
#endif
	buf_free(&f);
	buf_free(&s);
}

/* ---- hex ids and bad arguments ------------------------------------------- */

static void test_hex_and_args(void)
{
	uint8_t id[KEYS_BLOB_ID_LEN], back[KEYS_BLOB_ID_LEN];
	char hex[BLOB_ID_HEX_SIZE], bad[80];
	struct buf s = BUF_INIT;
	struct blob_ref ref;
	struct keys_ring *empty;

	for (int i = 0; i < KEYS_BLOB_ID_LEN; i++)
		id[i] = (uint8_t)(i * 37 + 5);
	blob_id_hex(id, hex);
	for (int i = 0; i < KEYS_BLOB_ID_LEN; i++)
		snprintf(bad + 2 * i, 3, "%02x", id[i]);
	is_str(hex, bad, "blob_id_hex: 64 lowercase hex digits, first byte first");
	is_int(blob_id_parse(hex, back), 0, "blob_id_parse");
	ok(memcmp(id, back, sizeof(id)) == 0, "parse(hex(id)) == id");
	memcpy(bad, hex, sizeof(hex));
	bad[10] = 'A';
	is_int(blob_id_parse(bad, back), -EINVAL, "upper case refused");
	bad[10] = 'g';
	is_int(blob_id_parse(bad, back), -EINVAL, "non-hex refused");
	bad[10] = hex[10];
	bad[63] = '\0';
	is_int(blob_id_parse(bad, back), -EINVAL, "63 digits refused");
	memcpy(bad, hex, 64);
	memcpy(bad + 64, "00", 3);
	is_int(blob_id_parse(bad, back), -EINVAL, "66 digits refused");
	is_int(blob_id_parse("", back), -EINVAL, "empty refused");
	ok(memcmp(id, back, sizeof(id)) == 0, "a refused parse leaves the id alone");

	buf_add(&s, "abc", 3);
	is_int(blob_encode(ring, 3, "x", 1, &s, &ref), -EINVAL, "encode: unknown type");
	is_int(blob_encode(ring, KEYS_BLOB_DATA, "x", (size_t)BLOB_MAX_RAW + 1, &s, &ref),
	       -EINVAL, "encode: over BLOB_MAX_RAW");
	keys_ring_empty(WS, &empty);
	is_int(blob_encode(empty, KEYS_BLOB_DATA, "x", 1, &s, &ref), -ENOENT,
	       "encode: no identity key");
	is_int(s.len, 3, "a refused encode leaves the output alone");
	keys_ring_free(empty);
	buf_free(&s);
}

/* ---- threads --------------------------------------------------------------- */

#define NBLOBS 24
#define NTHREADS 4

struct job {
	const uint8_t *src[NBLOBS];
	size_t len[NBLOBS];
	uint8_t ids[NBLOBS][KEYS_BLOB_ID_LEN];
	int errors;
};

static void *encode_all(void *arg)
{
	struct job *j = arg;
	struct buf s = BUF_INIT, out = BUF_INIT;

	for (int i = 0; i < NBLOBS; i++) {
		struct blob_ref ref;

		buf_reset(&s);
		buf_reset(&out);
		if (blob_encode(ring, KEYS_BLOB_DATA, j->src[i], j->len[i], &s, &ref) ||
		    blob_decode(ring, &ref, s.data, s.len, &out) ||
		    out.len != j->len[i] || memcmp(out.data, j->src[i], out.len) != 0)
			j->errors++;
		memcpy(j->ids[i], ref.id, KEYS_BLOB_ID_LEN);
	}
	buf_free(&s);
	buf_free(&out);
	return NULL;
}

static void test_threads(const uint8_t *text, const uint8_t *rnd)
{
	static struct job one, many[NTHREADS];
	pthread_t th[NTHREADS];
	int same = 1, errors = 0;

	for (int i = 0; i < NBLOBS; i++) {
		one.src[i] = (i & 1 ? text : rnd) + (size_t)i * 4096;
		one.len[i] = 256 * 1024 + (size_t)i * 30000;
	}
	for (int t = 0; t < NTHREADS; t++)
		many[t] = one;
	encode_all(&one);
	for (int t = 0; t < NTHREADS; t++)
		pthread_create(&th[t], NULL, encode_all, &many[t]);
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		errors += many[t].errors;
		same &= memcmp(many[t].ids, one.ids, sizeof(one.ids)) == 0;
	}
	is_int(one.errors + errors, 0, "%d threads encode and decode %d blobs each",
	       NTHREADS, NBLOBS);
	ok(same, "... and get the ids one thread gets");
}

int main(void)
{
	uint8_t *text = xmalloc(2 * MiB), *rnd = xmalloc(2 * MiB);

	if (keys_init() || keys_ring_new(WS, &ring))
		tap_bail("keyring: %s", err_msg());
	fill_text(text, 2 * MiB, 1);
	tap_fill_random(rnd, 2 * MiB, 2);

	test_round_trips(text, rnd);
	test_rule(rnd);
	test_ids_and_rotation(text);
	test_tampering(text, rnd);
	test_id_mismatch(text);
	test_bombs();
	test_hex_and_args();
	test_threads(text, rnd);

	blob_thread_cleanup();
	keys_ring_free(ring);
	free(text);
	free(rnd);
	return tap_done();
}
