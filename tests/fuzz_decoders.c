/*
 * fuzz_decoders.c - fuzz targets for every decoder that reads bytes from the
 * store, a file or a socket, and their replay driver.  (The tree decoder
 * has its own, tests/fuzz_tree.c.)
 *
 *   snapshot   record_snapshot_decode     head      record_head_decode
 *   lease      record_lease_decode        pack      pack_header_parse
 *   index      index_object_check         wrapped   keys_wrap_peek, keys_unwrap
 *   sealed     keys_object_key_id, keys_ring_open_object
 *   keyset     keys_set_parse, keys_set_verify (the key set)
 *   conf       conf_load (cairn.conf)     ctl       fs_ctl_parse (control socket)
 *   s3xml      s3_xml_parse, s3_xml_error (S3 answers)
 *
 * The property of each: no crash, no out-of-bounds access, no leak (under
 * ASan), an answer among the documented codes, and, where an encoder
 * exists, what is accepted encodes again to bytes that decode the same.
 *
 * Built two ways:
 *  - with clang -fsanitize=fuzzer (tests/fuzz/run.sh): libFuzzer calls
 *    LLVMFuzzerTestOneInput for the target named by CAIRN_FUZZ_TARGET;
 *  - with -DFUZZ_REPLAY (make check: tests/fuzz_decoders): main() runs each
 *    target over seeds made here, the committed corpus tests/fuzz/NAME/, and
 *    deterministic mutations of the seeds, as TAP.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "err.h"
#include "fs.h"
#include "index.h"
#include "keys.h"
#include "le.h"
#include "pack.h"
#include "record.h"
#include "s3_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define KEK_TEXT "cairn-kek-v1:0123456789abcdef:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define WS "fuzzws01"
#define DATA_KEY_ID "00112233445566aa"
#define ID_KEY_ID "0102030405060708"
#define PACK_NAME "data/ab/ab0123456789abcdef0123456789abcd"
#define INDEX_NAME "index/0123456789abcdef0123456789abcdef"

static int bad(const char *target, const char *what, int rc)
{
	fprintf(stderr, "%s: %s (rc %d: %s)\n", target, what, rc, err_msg());
	return -1;
}

/* 1 when rc is one of the n codes after it. */
static int one_of(int rc, int n, ...)
{
	va_list ap;
	int hit = 0;

	va_start(ap, n);
	while (n--)
		hit |= va_arg(ap, int) == rc;
	va_end(ap);
	return hit;
}

/* ---- records (JSON): decode, encode, decode the same ------------------ */

static int check_snapshot(const uint8_t *d, size_t n)
{
	struct record_snapshot s, t;
	struct buf b1 = BUF_INIT, b2 = BUF_INIT;
	int rc = record_snapshot_decode(d, n, &s), res = 1;

	if (rc)
		return one_of(rc, 2, -EBADMSG, -ENOTSUP) ? 0 : bad("snapshot", "unexpected code", rc);
	if ((rc = record_snapshot_encode(&s, &b1)) != 0)
		res = bad("snapshot", "a decoded record does not encode", rc);
	else if ((rc = record_snapshot_decode(b1.data, b1.len, &t)) != 0)
		res = bad("snapshot", "its encoding does not decode", rc);
	else {
		if (record_snapshot_encode(&t, &b2) || b1.len != b2.len || memcmp(b1.data, b2.data, b1.len))
			res = bad("snapshot", "encode(decode(encode)) differs", 0);
		record_snapshot_free(&t);
	}
	record_snapshot_free(&s);
	buf_free(&b1);
	buf_free(&b2);
	return res;
}

static int check_head(const uint8_t *d, size_t n)
{
	struct record_head h, g;
	struct buf b = BUF_INIT;
	int rc = record_head_decode(d, n, &h), res = 1;

	if (rc)
		return one_of(rc, 2, -EBADMSG, -ENOTSUP) ? 0 : bad("head", "unexpected code", rc);
	if ((rc = record_head_encode(&h, &b)) != 0 || (rc = record_head_decode(b.data, b.len, &g)) != 0)
		res = bad("head", "a decoded head does not encode and decode again", rc);
	else if (g.generation != h.generation || strcmp(g.snapshot, h.snapshot))
		res = bad("head", "it decodes to another head", 0);
	buf_free(&b);
	return res;
}

static int check_lease(const uint8_t *d, size_t n)
{
	struct record_lease l, m;
	struct buf b = BUF_INIT;
	int rc = record_lease_decode(d, n, &l), res = 1;

	if (rc)
		return one_of(rc, 2, -EBADMSG, -ENOTSUP) ? 0 : bad("lease", "unexpected code", rc);
	if ((rc = record_lease_encode(&l, &b)) != 0 || (rc = record_lease_decode(b.data, b.len, &m)) != 0)
		res = bad("lease", "a decoded lease does not encode and decode again", rc);
	else if (!record_lease_same_holder(&l, &m) || l.expires_ns != m.expires_ns)
		res = bad("lease", "it decodes to another lease", 0);
	buf_free(&b);
	return res;
}

/* ---- binary headers ----------------------------------------------------- */

/* Input: LE64 blobs_end, then the plaintext header. */
static int check_pack(const uint8_t *d, size_t n)
{
	struct pack_header h;
	uint64_t end = 0;
	int rc;

	if (n < 8)
		return 0;
	rc = pack_header_parse(PACK_NAME, KEYS_BLOB_DATA, d + 8, n - 8, le_get64(d), &h);
	if (rc)
		return one_of(rc, 2, -EBADMSG, -ENOTSUP) ? 0 : bad("pack", "unexpected code", rc);
	for (size_t i = 0; i < h.count; i++) {
		if (h.entries[i].offset != end || h.entries[i].ref.type != KEYS_BLOB_DATA ||
		    !keys_id_valid(h.entries[i].ref.key_id))
			rc = -1;
		end += h.entries[i].ref.length;
	}
	if (rc || end != le_get64(d) || !h.count)
		rc = bad("pack", "an accepted header breaks its invariants", 0);
	pack_header_free(&h);
	return rc ? -1 : 1;
}

static int check_index(const uint8_t *d, size_t n)
{
	int rc = index_object_check(INDEX_NAME, d, n);

	if (rc)
		return one_of(rc, 2, -EBADMSG, -ENOTSUP) ? 0 : bad("index", "unexpected code", rc);
	return 1;
}

/* ---- keys --------------------------------------------------------------- */

static struct keys_kek *fixed_kek(void)
{
	static struct keys_kek *kek;

	if (!kek && keys_kek_parse(KEK_TEXT, strlen(KEK_TEXT), &kek))
		abort();
	return kek;
}

/* A ring with an identity key (to verify and make key sets with) and a
 * data key, current (to open sealed objects with). */
static struct keys_ring *fixed_ring(void)
{
	static struct keys_ring *ring;
	uint8_t key[KEYS_KEY_LEN];

	if (ring)
		return ring;
	memset(key, 5, sizeof(key));
	if (keys_ring_empty(WS, &ring) || keys_ring_add(ring, KEYS_KEY_IDENTITY, ID_KEY_ID, key))
		abort();
	memset(key, 7, sizeof(key));
	if (keys_ring_add(ring, KEYS_KEY_DATA, DATA_KEY_ID, key) || keys_ring_set_current(ring, DATA_KEY_ID))
		abort();
	return ring;
}

/* What parses keeps its invariants; what also verifies encodes to the
 * same bytes (the encoding is canonical and the MAC deterministic). */
static int check_keyset(const uint8_t *d, size_t n)
{
	struct keys_set s;
	struct buf b = BUF_INIT;
	int rc = keys_set_parse(d, n, WS, &s), res = 1;

	if (rc)
		return one_of(rc, 2, -EBADMSG, -ENOTSUP) ? 0 : bad("keyset", "unexpected parse code", rc);
	if (!keys_id_valid(s.identity) || !keys_set_has(&s, s.current) || keys_set_has(&s, s.identity) ||
	    !s.serial || s.serial > (uint64_t)INT64_MAX)
		res = bad("keyset", "a parsed key set breaks its invariants", 0);
	rc = keys_set_verify(fixed_ring(), d, n);
	if (res > 0 && rc)
		res = rc == -EBADMSG ? 0 : bad("keyset", "unexpected verify code", rc);
	else if (res > 0 && (keys_set_encode(fixed_ring(), &s, &b) || b.len != n || memcmp(b.data, d, n)))
		res = bad("keyset", "a verified key set does not encode to the same bytes", 0);
	keys_set_free(&s);
	buf_free(&b);
	return res;
}

static int check_wrapped(const uint8_t *d, size_t n)
{
	struct keys_wrap_info info;
	uint8_t key[KEYS_KEY_LEN];
	int rc = keys_wrap_peek(d, n, &info);

	if (rc)
		return one_of(rc, 2, -EBADMSG, -ENOTSUP) ? 0 : bad("wrapped", "unexpected peek code", rc);
	if (!keys_ws_id_valid(info.ws_id) || !keys_id_valid(info.key_id) || !keys_id_valid(info.kek_id))
		return bad("wrapped", "peek accepted invalid ids", 0);
	rc = keys_unwrap(fixed_kek(), d, n, info.ws_id, info.key_id, info.kek_id, key, NULL);
	if (rc)
		return one_of(rc, 3, -EBADMSG, -ENOTSUP, -EACCES) ? 0 : bad("wrapped", "unexpected unwrap code", rc);
	if (strcmp(info.kek_id, keys_kek_id(fixed_kek())))
		return bad("wrapped", "unwrapped under another tenant key id", 0);
	return 1;
}

static int check_sealed(const uint8_t *d, size_t n)
{
	struct buf out = BUF_INIT;
	char kid[KEYS_ID_SIZE];
	int rc = keys_object_key_id(d, n, kid, NULL);

	if (rc)
		return one_of(rc, 2, -EBADMSG, -ENOTSUP) ? 0 : bad("sealed", "unexpected peek code", rc);
	rc = keys_ring_open_object(fixed_ring(), KEYS_OBJ_HEAD, "head", WS, d, n, &out);
	buf_free(&out);
	if (rc)
		return one_of(rc, 3, -EBADMSG, -ENOTSUP, -EKEYREJECTED) ? 0 : bad("sealed", "unexpected open code", rc);
	return 1;
}

/* ---- text from files and sockets --------------------------------------- */

static int check_conf(const uint8_t *d, size_t n)
{
	struct conf c;
	char path[64];
	int fd = memfd_create("cairn-fuzz-conf", MFD_CLOEXEC), rc;

	if (fd < 0 || write(fd, d, n) != (ssize_t)n)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = conf_load(path, &c);
	close(fd);
	if (rc)
		return rc == -EINVAL ? 0 : bad("conf", "unexpected code", rc);
	for (size_t i = 0; i < c.n; i++)
		if (!c.ws[i].name || !*c.ws[i].name)
			rc = bad("conf", "a workspace section without a name", 0);
	conf_free(&c);
	return rc ? -1 : 1;
}

static int check_ctl(const uint8_t *d, size_t n)
{
	struct fs_ctl_req r;
	int rc = fs_ctl_parse((const char *)d, n, &r), res = 1;

	if (rc) {
		res = rc == -EINVAL ? 0 : bad("ctl", "unexpected code", rc);
	} else if (r.op < FS_CTL_STATUS || r.op > FS_CTL_ACTIVITY) {
		res = bad("ctl", "an accepted request has no known op", 0);
	} else {
		for (size_t i = 0; i < r.ntags; i++)
			if (!r.tags[i])
				res = bad("ctl", "a NULL tag", 0);
		for (size_t i = 0; i < r.n_agent_config; i++)
			if (!r.agent_config[i])
				res = bad("ctl", "a NULL agent_config path", 0);
		for (size_t i = 0; i < r.n_agent_exclude; i++)
			if (!r.agent_exclude[i])
				res = bad("ctl", "a NULL exclude pattern", 0);
	}
	fs_ctl_req_free(&r);
	return res;
}

struct xml_seen {
	size_t calls, bytes;
};

static void xml_cb(void *arg, const char *path, const char *text)
{
	struct xml_seen *s = arg;

	s->calls++;
	s->bytes += strlen(path) + strlen(text);	/* both must be NUL-terminated */
}

static int check_s3xml(const uint8_t *d, size_t n)
{
	struct xml_seen s = { 0, 0 };
	char code[64], msg[256];
	int rc = s3_xml_parse(d, n, xml_cb, &s), e;

	if (rc && rc != -EBADMSG)
		return bad("s3xml", "unexpected code", rc);
	e = s3_xml_error(d, n, code, sizeof(code), msg, sizeof(msg));
	if (e != 0 && e != 1)
		return bad("s3xml", "s3_xml_error answered neither 0 nor 1", e);
	if (strnlen(code, sizeof(code)) == sizeof(code) || strnlen(msg, sizeof(msg)) == sizeof(msg))
		return bad("s3xml", "an unterminated code or message", 0);
	return rc ? 0 : 1;
}

/* ---- the table ---------------------------------------------------------- */

struct target {
	const char *name;
	int (*check)(const uint8_t *d, size_t n);	/* 0 refused, 1 accepted, -1 broken */
	void (*seed)(struct buf *seeds);		/* appends LE32 length + bytes, repeatedly */
};

static void seed_add(struct buf *seeds, const void *p, size_t n)
{
	uint8_t l[4];

	le_put32(l, (uint32_t)n);
	buf_add(seeds, l, 4);
	buf_add(seeds, p, n);
}

static void seed_snapshot(struct buf *seeds)
{
	struct record_snapshot s;
	struct buf b = BUF_INIT;
	uint8_t t1[KEYS_BLOB_ID_LEN], t2[KEYS_BLOB_ID_LEN];

	memset(t1, 0x11, sizeof(t1));
	memset(t2, 0x22, sizeof(t2));
	record_snapshot_init(&s);
	record_snapshot_set_root(&s, RECORD_ROOT_WORKSPACE, t1);
	record_snapshot_set_root(&s, RECORD_ROOT_AGENT_CONFIG, t2);
	record_snapshot_add_tag(&s, "nightly");
	record_snapshot_add_tag(&s, "idle");
	snprintf(s.parent, sizeof(s.parent), "%s", "0123456789abcdef0123456789abcdef");
	snprintf(s.host, sizeof(s.host), "%s", "vm-1");
	s.time_ns = 1700000000123456789ull;
	s.generation = 42;
	s.stats.files = 3;
	s.stats.bytes = 12345;
	if (record_snapshot_encode(&s, &b))
		abort();
	seed_add(seeds, b.data, b.len);
	record_snapshot_free(&s);
	buf_free(&b);
}

static void seed_head(struct buf *seeds)
{
	struct record_head h = { .generation = 7 };
	struct buf b = BUF_INIT;

	snprintf(h.snapshot, sizeof(h.snapshot), "%s", "0123456789abcdef0123456789abcdef");
	if (record_head_encode(&h, &b))
		abort();
	seed_add(seeds, b.data, b.len);
	buf_free(&b);
}

static void seed_lease(struct buf *seeds)
{
	struct record_lease l = { .pid = 4242, .acquired_ns = 1700000000000000000ull,
				  .expires_ns = 1700000060000000000ull };
	struct buf b = BUF_INIT;

	snprintf(l.host, sizeof(l.host), "%s", "host-a");
	snprintf(l.boot, sizeof(l.boot), "%s", "boot-b");
	snprintf(l.nonce, sizeof(l.nonce), "%s", "00112233445566778899aabbccddeeff");
	snprintf(l.program, sizeof(l.program), "%s", "cairnfs");
	if (record_lease_encode(&l, &b))
		abort();
	seed_add(seeds, b.data, b.len);
	buf_free(&b);
}

/* count entries of data blobs, back to back from offset 0 */
static uint64_t entries(struct buf *b, uint32_t count)
{
	uint64_t off = 0;

	for (uint32_t i = 0; i < count; i++) {
		struct pack_entry e = { .offset = off };

		memset(e.ref.id, (int)(0x30 + i), sizeof(e.ref.id));
		e.ref.type = KEYS_BLOB_DATA;
		e.ref.compression = i % 2 ? BLOB_ZSTD : BLOB_RAW;
		e.ref.length = 100 + 7 * i + KEYS_BLOB_OVERHEAD;
		e.ref.raw_length = i % 2 ? 500 : 100 + 7 * i;
		snprintf(e.ref.key_id, sizeof(e.ref.key_id), "%s", DATA_KEY_ID);
		buf_grow(b, PACK_ENTRY_SIZE);
		pack_entry_encode(&e, b->data + b->len);
		buf_setlen(b, b->len + PACK_ENTRY_SIZE);
		off += e.ref.length;
	}
	return off;
}

static void seed_pack(struct buf *seeds)
{
	struct buf b = BUF_INIT, h = BUF_INIT;
	uint8_t v[8];
	uint64_t end;

	buf_addc(&h, PACK_VERSION);
	le_put32(v, 3);
	buf_add(&h, v, 4);
	end = entries(&h, 3);
	le_put64(v, end);
	buf_add(&b, v, 8);
	buf_add(&b, h.data, h.len);
	seed_add(seeds, b.data, b.len);
	buf_free(&b);
	buf_free(&h);
}

static void seed_index(struct buf *seeds)
{
	struct buf b = BUF_INIT;
	uint8_t v[4], raw[16];

	buf_addc(&b, INDEX_VERSION);
	le_put32(v, 1);			/* one superseded object */
	buf_add(&b, v, 4);
	memset(raw, 0x5a, sizeof(raw));
	buf_add(&b, raw, sizeof(raw));
	le_put32(v, 1);			/* one pack */
	buf_add(&b, v, 4);
	buf_addc(&b, (char)PACK_NAME_LEN);
	buf_adds(&b, PACK_NAME);
	le_put32(v, 2);
	buf_add(&b, v, 4);
	entries(&b, 2);
	seed_add(seeds, b.data, b.len);
	buf_free(&b);
}

static void seed_wrapped(struct buf *seeds)
{
	struct buf b = BUF_INIT;
	uint8_t key[KEYS_KEY_LEN];

	memset(key, 9, sizeof(key));
	if (keys_wrap_at(fixed_kek(), WS, KEYS_KEY_DATA, DATA_KEY_ID, key, 1700000000, &b))
		abort();
	seed_add(seeds, b.data, b.len);
	buf_free(&b);
}

static void seed_sealed(struct buf *seeds)
{
	const struct keys_key *dk;
	struct buf b = BUF_INIT;

	if (keys_ring_current(fixed_ring(), &dk) ||
	    keys_seal_object(dk, KEYS_OBJ_HEAD, "head", WS, "{\"generation\":1}", 16, &b))
		abort();
	seed_add(seeds, b.data, b.len);
	buf_free(&b);
}

static void seed_keyset(struct buf *seeds)
{
	char live[2][KEYS_ID_SIZE] = { DATA_KEY_ID, "ffeeddccbbaa9988" };
	struct keys_set s = { .serial = 3, .created = 1700000000, .current = DATA_KEY_ID, .n = 1,
			      .live = live };
	struct buf b = BUF_INIT;

	if (keys_set_encode(fixed_ring(), &s, &b))
		abort();
	seed_add(seeds, b.data, b.len);
	buf_reset(&b);
	s.n = 2;
	s.serial = 4;
	if (keys_set_encode(fixed_ring(), &s, &b))
		abort();
	seed_add(seeds, b.data, b.len);
	buf_free(&b);
}

static void seed_conf(struct buf *seeds)
{
	static const char text[] =
		"# cairn.conf\n[workspace main]\nstore = s3://bucket/cairn\nkey = file:/etc/cairn/t.key\n"
		"tenant = acme\nworkspace = c0ffee00c0ffee00\nmountpoint = /work\ncache_dir = /var/cache/w\n"
		"cache_size = 20G\nidle_after = 5m\ninterval = 30m\nkeep_last = 10\n"
		"[control-plane]\nurl = https://cp.example\ntoken_file = /etc/cairn/token\n"
		"[cairnd]\nlog_dir = /var/log/cairn\n";

	seed_add(seeds, text, sizeof(text) - 1);
}

static void seed_ctl(struct buf *seeds)
{
	static const char *const reqs[] = {
		"{\"op\":\"snapshot\",\"tags\":[\"idle\"],\"agent_config\":[\"/root/.claude\",\"/root/.claude.json\"],"
		"\"agent_config_exclude\":[\".claude/debug/*\"]}",
		"{\"op\":\"status\"}",
		"{\"op\":\"activity\"}",
	};

	for (size_t i = 0; i < sizeof(reqs) / sizeof(*reqs); i++)
		seed_add(seeds, reqs[i], strlen(reqs[i]));
}

static void seed_s3xml(struct buf *seeds)
{
	static const char list[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Name>b</Name><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>tok&amp;en</NextContinuationToken>"
		"<Contents><Key>data/ab/x</Key><Size>123</Size><ETag>&quot;abc&quot;</ETag></Contents>"
		"<Contents><Key>a&lt;b</Key><Size>0</Size></Contents></ListBucketResult>";
	static const char error[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
		"<Message>Please reduce your request rate.</Message><Resource>/b/k</Resource></Error>";

	seed_add(seeds, list, sizeof(list) - 1);
	seed_add(seeds, error, sizeof(error) - 1);
}

static const struct target targets[] = {
	{ "snapshot", check_snapshot, seed_snapshot },
	{ "head", check_head, seed_head },
	{ "lease", check_lease, seed_lease },
	{ "pack", check_pack, seed_pack },
	{ "index", check_index, seed_index },
	{ "wrapped", check_wrapped, seed_wrapped },
	{ "sealed", check_sealed, seed_sealed },
	{ "keyset", check_keyset, seed_keyset },
	{ "conf", check_conf, seed_conf },
	{ "ctl", check_ctl, seed_ctl },
	{ "s3xml", check_s3xml, seed_s3xml },
};
#define NTARGETS (sizeof(targets) / sizeof(*targets))

static const struct target *current;

static const struct target *find_target(const char *name)
{
	for (size_t i = 0; name && i < NTARGETS; i++)
		if (!strcmp(targets[i].name, name))
			return &targets[i];
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	current = find_target(getenv("CAIRN_FUZZ_TARGET"));
	if (!current) {
		fprintf(stderr, "CAIRN_FUZZ_TARGET must name a target:");
		for (size_t i = 0; i < NTARGETS; i++)
			fprintf(stderr, " %s", targets[i].name);
		fprintf(stderr, "\n");
		exit(2);
	}
	if (keys_init())
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (current->check(data, size) < 0)
		abort();
	err_clear();
	return 0;
}

#ifdef FUZZ_REPLAY
#include "fuzzlib.h"
#include "tap.h"

#define MUTATIONS 4000	/* per seed */

static void replay(const struct target *t)
{
	struct buf seeds = BUF_INIT, one = BUF_INIT, m = BUF_INIT;
	size_t accepted = 0, failed = 0, seeds_ok = 1, n = 0;
	long corpus;

	current = t;
	t->seed(&seeds);
	for (size_t off = 0; off + 4 <= seeds.len; n++) {
		uint32_t len = le_get32(seeds.data + off);

		buf_reset(&one);
		buf_add(&one, seeds.data + off + 4, len);
		off += 4 + len;
		if (t->check(one.data, one.len) != 1) {
			diag("%s: seed %zu is not accepted: %s", t->name, n, err_msg());
			seeds_ok = 0;
		}
		for (int i = 0; i < MUTATIONS; i++) {
			int rc;

			fuzz_mutate(&one, &m);
			rc = t->check(m.data, m.len);
			if (rc < 0 && failed++ < 5)
				diag("%s: mutation %d of seed %zu fails", t->name, i, n);
			accepted += rc == 1;
			err_clear();
		}
	}
	ok(seeds_ok && n > 0, "%s: the %zu seed(s) decode with the property", t->name, n);
	is_int(failed, 0, "%s: %zu mutations refused cleanly or accepted with the property (%zu accepted)",
	       t->name, n * MUTATIONS, accepted);
	accepted = failed = 0;
	corpus = fuzz_replay_corpus(t->name, t->check, &accepted, &failed);
	if (corpus >= 0)
		is_int(failed, 0, "%s: the %ld committed corpus inputs (%zu accepted)", t->name, corpus,
		       accepted);
	buf_free(&seeds);
	buf_free(&one);
	buf_free(&m);
}

int main(int argc, char **argv)
{
	if (keys_init())
		tap_bail("keys_init: %s", err_msg());
	/* --seeds DIR: write each target's seeds as DIR/NAME/seed-N (to start
	 * a libFuzzer corpus) */
	if (argc == 3 && !strcmp(argv[1], "--seeds")) {
		for (size_t i = 0; i < NTARGETS; i++) {
			struct buf seeds = BUF_INIT;
			char *dir = xasprintf("%s/%s", argv[2], targets[i].name);
			size_t n = 0;

			targets[i].seed(&seeds);
			mkdir(dir, 0755);
			for (size_t off = 0; off + 4 <= seeds.len; n++) {
				uint32_t len = le_get32(seeds.data + off);
				char *path = xasprintf("%s/seed-%zu", dir, n);
				FILE *f = fopen(path, "wb");

				if (!f || fwrite(seeds.data + off + 4, 1, len, f) != len || fclose(f))
					tap_bail("cannot write %s", path);
				off += 4 + len;
				free(path);
			}
			free(dir);
			buf_free(&seeds);
		}
		return 0;
	}
	for (size_t i = 0; i < NTARGETS; i++)
		replay(&targets[i]);
	return tap_done();
}
#endif
