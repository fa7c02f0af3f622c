/*
 * test_pack.c - packs: writer and header reader round trips (1, 1,000 and
 * 10,000 blobs) through a real file:// store, the tail protocol (64 KiB
 * guess, short tails), and a pack that is damaged, truncated, renamed or
 * inconsistent is an error, never blobs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "pack.h"
#include "store.h"
#include "tap.h"

#define WS "ws-pack-test"

static struct keys_ring *ring;
static const struct keys_key *dk;
static struct store *st;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The plaintext of blob i of a test pack: 20..275 bytes from seed. */
static size_t blob_plain(uint64_t seed, size_t i, uint8_t *out)
{
	size_t len = 20 + (seed * 31 + i * 7) % 256;

	tap_fill_random(out, len, seed * 1000003 + i);
	return len;
}

/* Makes a pack of n blobs of type type; bytes, name and header out. */
static int make_pack(enum keys_blob_type type, size_t n, uint64_t seed, struct buf *bytes,
		     char name[PACK_NAME_SIZE], struct pack_header *hdr)
{
	struct pack_writer *w;
	struct buf sealed = BUF_INIT;
	uint8_t plain[300];
	uint64_t predicted;
	int rc = pack_writer_new(type, &w);

	for (size_t i = 0; i < n && !rc; i++) {
		struct blob_ref ref;
		size_t len = blob_plain(seed, i, plain);

		memset(&ref, 0, sizeof(ref));
		keys_blob_id(ring, plain, len, ref.id);
		ref.type = (uint8_t)type;
		ref.compression = BLOB_RAW;
		ref.raw_length = (uint32_t)len;
		ref.length = (uint32_t)(len + KEYS_BLOB_OVERHEAD);
		memcpy(ref.key_id, keys_key_id(dk), KEYS_ID_SIZE);
		buf_reset(&sealed);
		rc = keys_seal_blob(dk, type, ref.id, plain, len, &sealed);
		if (!rc)
			rc = pack_writer_add(w, &ref, sealed.data, sealed.len);
	}
	predicted = pack_writer_size(w);
	if (!rc)
		rc = pack_writer_finish(w, dk, WS, bytes, name, hdr);
	if (!rc && bytes->len != predicted)
		rc = err_set(-EIO, "pack_writer_size said %llu, the pack is %zu",
			     (unsigned long long)predicted, bytes->len);
	pack_writer_free(w);
	buf_free(&sealed);
	return rc;
}

/* Every blob of h opens from bytes and is the plaintext it was made from. */
static int check_blobs(const struct pack_header *h, const struct buf *bytes, uint64_t seed)
{
	struct buf out = BUF_INIT;
	uint8_t plain[300];
	int bad = 0;

	for (size_t i = 0; i < h->count; i++) {
		const struct pack_entry *e = &h->entries[i];
		size_t len = blob_plain(seed, i, plain);

		buf_reset(&out);
		if (e->offset + e->ref.length > bytes->len ||
		    keys_open_blob(dk, h->type, e->ref.id, bytes->data + e->offset, e->ref.length, &out) ||
		    out.len != len || memcmp(out.data, plain, len) != 0 ||
		    e->ref.raw_length != len)
			bad++;
	}
	buf_free(&out);
	return bad;
}

static int same_header(const struct pack_header *a, const struct pack_header *b)
{
	if (strcmp(a->name, b->name) || a->type != b->type || a->count != b->count ||
	    a->blobs_end != b->blobs_end)
		return 0;
	for (size_t i = 0; i < a->count; i++)
		if (a->entries[i].offset != b->entries[i].offset ||
		    memcmp(&a->entries[i].ref.id, &b->entries[i].ref.id, KEYS_BLOB_ID_LEN) ||
		    a->entries[i].ref.length != b->entries[i].ref.length ||
		    a->entries[i].ref.raw_length != b->entries[i].ref.raw_length ||
		    a->entries[i].ref.type != b->entries[i].ref.type ||
		    a->entries[i].ref.compression != b->entries[i].ref.compression ||
		    strcmp(a->entries[i].ref.key_id, b->entries[i].ref.key_id))
			return 0;
	return 1;
}

static void check_round_trip(size_t n)
{
	struct buf bytes = BUF_INIT;
	char name[PACK_NAME_SIZE];
	struct pack_header w = { 0 }, r = { 0 };
	uint64_t seed = n;
	double t0 = now(), t1;
	enum keys_blob_type type;
	size_t hlen, need = 0;
	int rc;

	rc = make_pack(KEYS_BLOB_DATA, n, seed, &bytes, name, &w);
	t1 = now();
	is_int(rc, 0, "%zu blobs: pack written (%s)", n, rc ? err_msg() : name);
	ok(pack_name_parse(name, &type) == 0 && type == KEYS_BLOB_DATA &&
	   strncmp(name, "data/", 5) == 0 && name[5] == name[8] && name[6] == name[9],
	   "%zu blobs: its name is data/<xx>/<32 hex>", n);
	is_int(w.count, n, "%zu blobs: the writer's header lists them all", n);
	hlen = bytes.len - 4 - w.blobs_end;
	is_int(hlen, KEYS_OBJECT_OVERHEAD + PACK_HEADER_FIXED + n * PACK_ENTRY_SIZE,
	       "%zu blobs: sealed header is 65 + 58 per blob bytes", n);
	is_int(store_put(st, name, bytes.data, bytes.len, STORE_IF_NONE_MATCH, NULL, NULL), 0,
	       "%zu blobs: uploaded to the file store", n);

	rc = pack_load_header(st, ring, WS, name, 0, &r);
	is_int(rc, 0, "%zu blobs: header loaded from the store%s%s", n, rc ? ": " : "",
	       rc ? err_msg() : "");
	ok(same_header(&w, &r), "%zu blobs: loaded header equals the written one", n);
	is_int(check_blobs(&r, &bytes, seed), 0, "%zu blobs: every blob opens at its offset", n);
	pack_header_free(&r);
	diag("%zu blobs: pack of %zu bytes (header %zu) made in %.1f ms",
	     n, bytes.len, hlen, (t1 - t0) * 1e3);

	/* the tail protocol: a 64 KiB tail, then more when the header is longer */
	{
		size_t tl = bytes.len < PACK_TAIL_GUESS ? bytes.len : PACK_TAIL_GUESS;

		rc = pack_read_header(ring, WS, name, bytes.data + bytes.len - tl, tl,
				      bytes.len, &r, &need);
		if (hlen + 4 <= tl) {
			is_int(rc, 0, "%zu blobs: header read from the last %zu bytes", n, tl);
			pack_header_free(&r);
		} else {
			is_int(rc, PACK_NEED_MORE, "%zu blobs: a %zu-byte tail is too short for the header", n, tl);
			is_int(need, hlen + 4, "%zu blobs: and it asks for exactly header + trailer", n);
			rc = pack_read_header(ring, WS, name, bytes.data + bytes.len - need, need,
					      bytes.len, &r, &need);
			is_int(rc, 0, "%zu blobs: header read from the tail it asked for", n);
			ok(same_header(&w, &r), "%zu blobs: and it is the written one", n);
			pack_header_free(&r);
		}
	}
	rc = pack_read_header(ring, WS, name, bytes.data + bytes.len - 100, 100, bytes.len, &r, &need);
	ok(rc == PACK_NEED_MORE && need == hlen + 4,
	   "%zu blobs: a 100-byte tail asks for %zu bytes (got rc %d, need %zu)", n, hlen + 4, rc, need);
	rc = pack_read_header(ring, WS, name, bytes.data + bytes.len - 2, 2, bytes.len, &r, &need);
	ok(rc == PACK_NEED_MORE && need == (bytes.len < PACK_TAIL_GUESS ? bytes.len : PACK_TAIL_GUESS),
	   "%zu blobs: a 2-byte tail asks for the usual guess", n);
	rc = pack_read_header(ring, WS, name, bytes.data + bytes.len - 100, 100, bytes.len, &r, NULL);
	ok(rc < 0 && rc != PACK_NEED_MORE, "%zu blobs: without a need pointer a short tail is an error", n);
	is_int(pack_load_header(st, ring, WS, name, bytes.len + 1, &r), -EBADMSG,
	       "%zu blobs: a size other than the pack's is refused", n);

	pack_header_free(&w);
	buf_free(&bytes);
}

/* Every single-byte change in the header region or trailer is an error. */
static void check_flips(void)
{
	struct buf bytes = BUF_INIT;
	char name[PACK_NAME_SIZE];
	struct pack_header w = { 0 }, r = { 0 };
	int counts[5] = { 0 };	/* EBADMSG, ENOTSUP, ENOENT, other error, accepted */
	size_t tried = 0;
	uint8_t *copy;

	is_int(make_pack(KEYS_BLOB_TREE, 10, 77, &bytes, name, &w), 0, "a tree pack of 10 blobs");
	copy = xmalloc(bytes.len);
	for (size_t pos = w.blobs_end; pos < bytes.len; pos++) {
		static const uint8_t masks[] = { 0x01, 0x80, 0xff };

		for (size_t m = 0; m < sizeof(masks); m++) {
			int rc;

			memcpy(copy, bytes.data, bytes.len);
			copy[pos] ^= masks[m];
			rc = pack_read_header(ring, WS, name, copy, bytes.len, bytes.len, &r, NULL);
			tried++;
			if (rc == 0) {
				counts[4]++;
				pack_header_free(&r);
				diag("flip 0x%02x at %zu (of %zu) was accepted", masks[m], pos, bytes.len);
			} else {
				counts[rc == -EBADMSG ? 0 : rc == -ENOTSUP ? 1 : rc == -EKEYREJECTED ? 2 : 3]++;
			}
		}
	}
	is_int(counts[4], 0, "all %zu single-byte flips of the %zu header and trailer bytes are refused",
	       tried, bytes.len - (size_t)w.blobs_end);
	diag("flips: %d integrity, %d unknown version, %d unknown key id, %d other",
	     counts[0], counts[1], counts[2], counts[3]);
	ok(counts[0] > (int)tried * 9 / 10, "nearly all of them as integrity errors");
	is_int(pack_read_header(ring, WS, name, bytes.data, bytes.len, bytes.len, &r, NULL), 0,
	       "the undamaged tree pack reads");
	is_int(r.type, KEYS_BLOB_TREE, "as a tree pack");
	pack_header_free(&r);
	free(copy);

	/* truncation: the store holds fewer bytes than were written */
	{
		size_t hlen = bytes.len - 4 - (size_t)w.blobs_end;
		size_t cuts[] = { 1, 3, 4, 5, 60, hlen, hlen + 4, hlen + 5, bytes.len - 70, bytes.len - 1 };
		int refused = 0;

		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			size_t len = bytes.len - cuts[i];
			int rc;

			store_put(st, name, bytes.data, len, STORE_ALWAYS, NULL, NULL);
			rc = pack_load_header(st, ring, WS, name, 0, &r);
			if (rc == 0)
				pack_header_free(&r);
			else
				refused++;
			if (i == 0)
				ok(rc == -EBADMSG && strstr(err_msg(), name),
				   "a pack short of one byte: integrity error naming it: %s", err_msg());
		}
		is_int(refused, (int)(sizeof(cuts) / sizeof(cuts[0])),
		       "every truncated copy (%zu cut lengths) is refused", sizeof(cuts) / sizeof(cuts[0]));
	}

	/* renamed: the header binds the pack's own name */
	{
		char other[PACK_NAME_SIZE];
		int rc;

		memcpy(other, name, sizeof(other));
		other[20] = other[20] == '0' ? '1' : '0';
		store_put(st, other, bytes.data, bytes.len, STORE_ALWAYS, NULL, NULL);
		rc = pack_load_header(st, ring, WS, other, 0, &r);
		ok(rc == -EBADMSG && strstr(err_msg(), other),
		   "a pack copied to another name is an integrity error naming it: %s", err_msg());
		memcpy(other, "data", 4);
		memcpy(other + 5, name + 5, PACK_NAME_LEN - 5);
		store_put(st, other, bytes.data, bytes.len, STORE_ALWAYS, NULL, NULL);
		is_int(pack_load_header(st, ring, WS, other, 0, &r), -EBADMSG,
		       "a tree pack renamed to data/ is an integrity error");
		is_int(pack_read_header(ring, "another-ws", name, bytes.data, bytes.len, bytes.len, &r, NULL),
		       -EBADMSG, "a pack read as another workspace's is an integrity error");
		is_int(pack_read_header(ring, WS, "tree/zz/nothex", bytes.data, bytes.len, bytes.len, &r, NULL),
		       -EINVAL, "a malformed pack name is refused");
	}
	pack_header_free(&w);
	buf_free(&bytes);
}

/* A header that authenticates but describes an impossible pack. */
static int forged(enum keys_blob_type kind, const struct pack_entry *e, size_t n,
		  uint32_t count, uint8_t version, size_t body_len)
{
	char id[PACK_ID_SIZE], name[PACK_NAME_SIZE];
	struct buf plain = BUF_INIT, pack = BUF_INIT;
	struct pack_header r = { 0 };
	uint8_t ent[PACK_ENTRY_SIZE], trailer[4];
	int rc;

	memset(id, 'c', PACK_ID_LEN);
	id[PACK_ID_LEN] = '\0';
	pack_name_make(kind, id, name);
	buf_addc(&plain, (char)version);
	for (int i = 0; i < 4; i++)
		buf_addc(&plain, (char)(count >> (8 * i)));
	for (size_t i = 0; i < n; i++) {
		pack_entry_encode(&e[i], ent);
		buf_add(&plain, ent, sizeof(ent));
	}
	buf_grow(&pack, body_len);
	memset(pack.data, 0, body_len);
	buf_setlen(&pack, body_len);
	keys_seal_object(dk, KEYS_OBJ_PACK_HEADER, name, WS, plain.data, plain.len, &pack);
	for (int i = 0; i < 4; i++)
		trailer[i] = (uint8_t)((pack.len - body_len) >> (8 * i));
	buf_add(&pack, trailer, 4);
	rc = pack_read_header(ring, WS, name, pack.data, pack.len, pack.len, &r, NULL);
	pack_header_free(&r);
	buf_free(&plain);
	buf_free(&pack);
	return rc;
}

static void check_forged(void)
{
	struct pack_entry e[3];

	memset(e, 0, sizeof(e));
	for (int i = 0; i < 3; i++) {
		tap_fill_random(e[i].ref.id, KEYS_BLOB_ID_LEN, 500 + i);
		e[i].ref.type = KEYS_BLOB_DATA;
		e[i].ref.compression = BLOB_ZSTD;
		e[i].ref.length = 100;
		e[i].ref.raw_length = 400;
		memcpy(e[i].ref.key_id, keys_key_id(dk), KEYS_ID_SIZE);
		e[i].offset = 100u * i;
	}
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 300), 0, "a well-formed sealed header is accepted");
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 2, 300), -ENOTSUP, "header version 2 is not supported");
	is_int(forged(KEYS_BLOB_TREE, e, 3, 3, 1, 300), -EBADMSG, "data blobs in a tree pack are refused");
	is_int(forged(KEYS_BLOB_DATA, e, 3, 4, 1, 300), -EBADMSG, "a count larger than the entries is refused");
	is_int(forged(KEYS_BLOB_DATA, e, 3, 2, 1, 300), -EBADMSG, "a count smaller than the entries is refused");
	is_int(forged(KEYS_BLOB_DATA, e, 0, 0, 1, 0), -EBADMSG, "a pack of zero blobs is refused");
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 250), -EBADMSG, "a blob running into the header is refused");
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 400), -EBADMSG, "a gap before the header is refused");
	e[1].offset = 50;
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 300), -EBADMSG, "overlapping blobs are refused");
	e[1].offset = 100;
	e[2].ref.compression = 7;
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 300), -EBADMSG, "an unknown compression is refused");
	e[2].ref.compression = BLOB_RAW;
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 300), -EBADMSG,
	       "a raw blob whose lengths disagree is refused");
	e[2].ref.raw_length = 60;
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 300), 0, "and accepted when they agree");
	e[2].ref.length = 10;
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 210), -EBADMSG, "a blob shorter than a seal is refused");
	e[2].ref.length = 100;
	e[2].ref.raw_length = BLOB_MAX_RAW + 1;
	e[2].ref.compression = BLOB_ZSTD;
	is_int(forged(KEYS_BLOB_DATA, e, 3, 3, 1, 300), -EBADMSG, "a raw length over BLOB_MAX_RAW is refused");
	is_int(forged(KEYS_BLOB_DATA, e, 3, PACK_MAX_BLOBS + 1, 1, 300), -EBADMSG,
	       "a count over PACK_MAX_BLOBS is refused");
}

static void check_writer(void)
{
	struct pack_writer *w;
	struct blob_ref ref;
	struct buf bytes = BUF_INIT;
	char name[PACK_NAME_SIZE], id[PACK_ID_SIZE];
	uint8_t sealed[100] = { 0 };
	enum keys_blob_type t;

	is_int(pack_writer_new(3, &w), -EINVAL, "a writer of an unknown blob type is refused");
	is_int(pack_writer_new(KEYS_BLOB_DATA, &w), 0, "a data pack writer");
	is_int(pack_writer_finish(w, dk, WS, &bytes, name, NULL), -EINVAL, "an empty pack cannot be finished");
	memset(&ref, 0, sizeof(ref));
	ref.type = KEYS_BLOB_TREE;
	ref.compression = BLOB_ZSTD;
	ref.length = 100;
	ref.raw_length = 1000;
	memcpy(ref.key_id, keys_key_id(dk), KEYS_ID_SIZE);
	is_int(pack_writer_add(w, &ref, sealed, 100), -EINVAL, "a tree blob in a data pack is refused");
	ref.type = KEYS_BLOB_DATA;
	is_int(pack_writer_add(w, &ref, sealed, 99), -EINVAL, "a length other than ref->length is refused");
	memcpy(ref.key_id, "XYZ", 4);
	is_int(pack_writer_add(w, &ref, sealed, 100), -EINVAL, "a malformed key id is refused");
	memcpy(ref.key_id, keys_key_id(dk), KEYS_ID_SIZE);
	is_int(pack_writer_add(w, &ref, sealed, 100), 0, "a good blob is taken");
	is_int(pack_writer_count(w), 1, "count is 1");
	ok(!pack_writer_full(w), "a one-blob pack is not full");
	is_int(pack_writer_size(w), 100 + KEYS_OBJECT_OVERHEAD + PACK_HEADER_FIXED + PACK_ENTRY_SIZE + 4,
	       "size counts blob, sealed header and trailer");
	buf_adds(&bytes, "prefix");
	is_int(pack_writer_finish(w, dk, WS, &bytes, name, NULL), 0, "finish appends to a non-empty buf");
	ok(bytes.len == 6 + 100 + KEYS_OBJECT_OVERHEAD + PACK_HEADER_FIXED + PACK_ENTRY_SIZE + 4 &&
	   memcmp(bytes.data, "prefix", 6) == 0, "after what it held");
	is_int(pack_writer_count(w), 0, "the writer is empty again");
	{
		uint8_t *big = xcalloc(1, 1u << 20);

		ref.length = 1u << 20;
		ref.raw_length = 4u << 20;
		while (!pack_writer_full(w) && pack_writer_add(w, &ref, big, ref.length) == 0)
			;
		is_int(pack_writer_count(w), 16, "a data writer is full after 16 blobs of 1 MiB");
		ok(pack_writer_size(w) >= PACK_TARGET_SIZE, "at the 16 MiB target");
		free(big);
	}
	pack_writer_free(w);
	buf_free(&bytes);

	memset(id, 'a', PACK_ID_LEN);
	id[PACK_ID_LEN] = '\0';
	is_int(pack_name_make(KEYS_BLOB_TREE, id, name), 0, "pack_name_make");
	is_str(name, "tree/aa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "gives tree/<xx>/<id>");
	ok(pack_name_parse(name, &t) == 0 && t == KEYS_BLOB_TREE, "and parses back as a tree pack");
	id[3] = 'A';
	is_int(pack_name_make(KEYS_BLOB_DATA, id, name), -EINVAL, "upper-case hex ids are refused");
	{
		static const char *const bad[] = {
			"data/ab/cd00000000000000000000000000000", "data/ab/ab0000000000000000000000000000000",
			"data/ab/ab00000000000000000000000000000g", "dat/ab/ab000000000000000000000000000000",
			"data/abab000000000000000000000000000000", "index/ab/ab00000000000000000000000000000",
			"data/ab/ab000000000000000000000000000000/", "",
		};
		int refused = 0;

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			refused += pack_name_parse(bad[i], NULL) == -EINVAL;
		is_int(refused, (int)(sizeof(bad) / sizeof(bad[0])), "malformed pack names are refused");
		is_int(pack_name_parse("data/ab/ab000000000000000000000000000000", NULL), 0,
		       "a good one is accepted");
	}
}

int main(void)
{
	char *dir = tap_mkdtemp("pack");
	char *url = xasprintf("file://%s", dir);

	if (keys_ring_new(WS, &ring) || keys_ring_current(ring, &dk))
		tap_bail("keyring: %s", err_msg());
	if (store_open(url, NULL, &st))
		tap_bail("store: %s", err_msg());
	check_writer();
	check_round_trip(1);
	check_round_trip(1000);
	check_round_trip(10000);
	check_flips();
	check_forged();

	store_close(st);
	keys_ring_free(ring);
	tap_rmtree(dir);
	free(dir);
	free(url);
	return tap_done();
}
