/*
 * test_record.c - sync/record: snapshot records, head and lease: round
 * trips, the JSON of docs/format.md read and written exactly, and every
 * refusal (missing member, wrong type, bad id, unknown member, unknown
 * version, values out of range, generation overflow).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "record.h"
#include "tap.h"

#define SNAP_ID "0123456789abcdef0123456789abcdef"
#define SNAP_ID2 "fedcba9876543210fedcba9876543210"
#define TREE_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define TREE_HEX2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

/* ---- helpers ------------------------------------------------------------- */

static void hexid(const char *hex, uint8_t out[KEYS_BLOB_ID_LEN])
{
	for (size_t i = 0; i < KEYS_BLOB_ID_LEN; i++) {
		unsigned v;

		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

/* A snapshot record with every field set. */
static void full_snapshot(struct record_snapshot *s)
{
	uint8_t id[KEYS_BLOB_ID_LEN];

	record_snapshot_init(s);
	hexid(TREE_HEX, id);
	record_snapshot_set_root(s, RECORD_ROOT_WORKSPACE, id);
	hexid(TREE_HEX2, id);
	record_snapshot_set_root(s, RECORD_ROOT_AGENT_CONFIG, id);
	record_snapshot_set_root(s, "extra-root2", id);
	snprintf(s->parent, sizeof(s->parent), "%s", SNAP_ID2);
	s->time_ns = 1700000000123456789ull;
	snprintf(s->host, sizeof(s->host), "vm-a.example");
	s->generation = 42;
	record_snapshot_add_tag(s, "nightly");
	record_snapshot_add_tag(s, "caf\xc3\xa9 \xe2\x9c\x93");
	s->stats.files = 1;
	s->stats.dirs = 2;
	s->stats.symlinks = 3;
	s->stats.others = 4;
	s->stats.bytes = 5;
	s->stats.new_files = 6;
	s->stats.new_bytes = 7;
	s->stats.new_blobs = 8;
	s->stats.new_trees = 9;
	s->stats.stored_bytes = 10;
	s->stats.duration_ns = INT64_MAX;
}

static int snapshot_eq(const struct record_snapshot *a, const struct record_snapshot *b)
{
	if (a->nroots != b->nroots || strcmp(a->parent, b->parent) || a->time_ns != b->time_ns ||
	    strcmp(a->host, b->host) || a->generation != b->generation || a->ntags != b->ntags ||
	    memcmp(&a->stats, &b->stats, sizeof(a->stats)))
		return 0;
	for (size_t i = 0; i < a->nroots; i++)
		if (strcmp(a->roots[i].name, b->roots[i].name) ||
		    memcmp(a->roots[i].tree, b->roots[i].tree, KEYS_BLOB_ID_LEN))
			return 0;
	for (size_t i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i], b->tags[i]))
			return 0;
	return 1;
}

/* The JSON text of the valid snapshot record used for refusals. */
static const char *snap_json =
	"{\"version\":1,\"time\":1700000000000000000,\"host\":\"vm-a\",\"generation\":7,"
	"\"parent\":null,\"roots\":{\"agent-config\":\"" TREE_HEX2 "\",\"workspace\":\"" TREE_HEX "\"},"
	"\"tags\":[\"a\"],\"stats\":{\"files\":1,\"dirs\":2,\"symlinks\":0,\"others\":0,"
	"\"bytes\":3,\"new_files\":1,\"new_bytes\":3,\"new_blobs\":1,\"new_trees\":2,"
	"\"stored_bytes\":400,\"duration_ns\":5}}";

static const char *head_json = "{\"version\":1,\"generation\":7,\"snapshot\":\"" SNAP_ID "\"}";

static const char *lease_json =
	"{\"version\":1,\"host\":\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\","
	"\"boot\":\"6f1c1a2e-8d1b-4c55-9a57-2b0e4d5c6a7b\",\"pid\":4242,"
	"\"nonce\":\"" SNAP_ID "\",\"program\":\"cairn snapshot\","
	"\"acquired\":1700000000000000000,\"expires\":1700000060000000000}";

typedef int (*decode_fn)(const uint8_t *, size_t, void *);

static int dec_snapshot(const uint8_t *d, size_t n, void *out)
{
	int rc = record_snapshot_decode(d, n, out);

	record_snapshot_free(out);
	return rc;
}

static int dec_head(const uint8_t *d, size_t n, void *out)
{
	return record_head_decode(d, n, out);
}

static int dec_lease(const uint8_t *d, size_t n, void *out)
{
	return record_lease_decode(d, n, out);
}

/* Decodes base JSON after `path` (member, or "stats.member", or
 * "roots.member") is set to value (a JSON text) or, when value is NULL,
 * removed; checks the code. */
static void mutated(decode_fn fn, const char *base, const char *path, const char *value,
		    int code, const char *what)
{
	json_error_t je;
	json_t *o = json_loads(base, 0, &je), *target = o;
	const char *dot = strchr(path, '.');
	char *key = xstrdup(path);
	char *text;
	union {
		struct record_snapshot s;
		struct record_head h;
		struct record_lease l;
	} out;
	int rc;

	if (!o)
		tap_bail("base JSON: %s", je.text);
	if (dot) {
		key[dot - path] = '\0';
		target = json_object_get(o, key);
		free(key);
		key = xstrdup(dot + 1);
	}
	if (value) {
		json_t *v = json_loads(value, JSON_DECODE_ANY, &je);

		if (!v)
			tap_bail("value %s: %s", value, je.text);
		json_object_set_new(target, key, v);
	} else {
		json_object_del(target, key);
	}
	text = json_dumps(o, JSON_COMPACT);
	rc = fn((const uint8_t *)text, strlen(text), &out);
	is_int(rc, code, "%s: %s %s %s (%s)", what, path, value ? "=" : "removed",
	       value ? value : "", rc < 0 ? err_msg() : "ok");
	free(text);
	free(key);
	json_decref(o);
}

static void raw_refused(decode_fn fn, const char *text, int code, const char *what)
{
	union {
		struct record_snapshot s;
		struct record_head h;
		struct record_lease l;
	} out;
	int rc = fn((const uint8_t *)text, strlen(text), &out);

	is_int(rc, code, "%s (%s)", what, rc < 0 ? err_msg() : "ok");
}

/* ---- ids ------------------------------------------------------------------- */

static void test_ids(void)
{
	char a[RECORD_ID_SIZE], b[RECORD_ID_SIZE], name[64];

	is_int(record_id_new(a), 0, "new id");
	record_id_new(b);
	ok(record_id_valid(a) && strlen(a) == 32, "  is 32 lowercase hex");
	ok(strcmp(a, b) != 0, "  two ids differ");
	ok(record_id_valid(SNAP_ID), "valid id");
	ok(!record_id_valid("0123456789ABCDEF0123456789abcdef"), "upper case refused");
	ok(!record_id_valid("0123456789abcdef0123456789abcde"), "31 digits refused");
	ok(!record_id_valid("0123456789abcdef0123456789abcdef0"), "33 digits refused");
	ok(!record_id_valid("0123456789abcdef0123456789abcdeg"), "non-hex refused");
	ok(!record_id_valid(NULL) && !record_id_valid(""), "NULL and empty refused");
	is_int(record_snapshot_name(SNAP_ID, name, sizeof(name)), 0, "snapshot name");
	is_str(name, "snapshots/" SNAP_ID, "  is snapshots/<id>");
	is_int(record_snapshot_name("nope", name, sizeof(name)), -EINVAL, "  bad id refused");
	is_int(record_snapshot_name(SNAP_ID, name, 20), -ERANGE, "  small buffer refused");
}

/* ---- snapshots ------------------------------------------------------------- */

static void test_snapshot_round_trip(void)
{
	struct record_snapshot s, d;
	struct buf b = BUF_INIT;
	uint8_t id[KEYS_BLOB_ID_LEN];

	full_snapshot(&s);
	is_int(record_snapshot_encode(&s, &b), 0, "encode a full snapshot record");
	is_int(record_snapshot_decode(b.data, b.len, &d), 0, "  decodes (%s)", err_msg());
	ok(snapshot_eq(&s, &d), "  every field survives");
	ok(record_snapshot_root(&d, "extra-root2") != NULL, "  extra roots kept");
	hexid(TREE_HEX, id);
	ok(record_snapshot_root(&d, "workspace") &&
	   memcmp(record_snapshot_root(&d, "workspace"), id, sizeof(id)) == 0, "  workspace root id");
	ok(!record_snapshot_root(&d, "nope"), "  unknown root is NULL");
	is_int(record_snapshot_cmp(&s, &d), 0, "  compares equal");
	record_snapshot_free(&d);

	s.parent[0] = '\0';
	buf_reset(&b);
	record_snapshot_encode(&s, &b);
	ok(strstr(buf_str(&b), "\"parent\":null") != NULL, "no parent is written as null");
	is_int(record_snapshot_decode(b.data, b.len, &d), 0, "  and read back");
	is_str(d.parent, "", "  as an empty parent");
	record_snapshot_free(&d);

	/* set_root replaces; add_tag ignores repeats */
	record_snapshot_set_root(&s, "workspace", id);
	is_int(s.nroots, 3, "set_root replaces an existing root");
	is_int(record_snapshot_add_tag(&s, "nightly"), 0, "add_tag of a present tag");
	is_int(s.ntags, 2, "  is a no-op");
	is_int(record_snapshot_add_tag(&s, "a,b"), -EINVAL, "a tag with ',' refused");
	is_int(record_snapshot_add_tag(&s, "a\nb"), -EINVAL, "a tag with a control character refused");
	is_int(record_snapshot_add_tag(&s, "\xff\xfe"), -EINVAL, "a tag that is not UTF-8 refused");
	is_int(record_snapshot_add_tag(&s, ""), -EINVAL, "an empty tag refused");
	is_int(record_snapshot_set_root(&s, "Work", id), -EINVAL, "root name with upper case refused");
	is_int(record_snapshot_set_root(&s, "9lives", id), -EINVAL, "root name starting with a digit refused");
	for (int i = 0; i < RECORD_ROOTS_MAX; i++) {
		char nm[16];

		snprintf(nm, sizeof(nm), "r%d", i);
		if (record_snapshot_set_root(&s, nm, id) < 0) {
			is_int(s.nroots, RECORD_ROOTS_MAX, "roots fill up to %d", RECORD_ROOTS_MAX);
			break;
		}
	}
	is_int(record_snapshot_set_root(&s, "one-too-many", id), -ENOSPC, "  then -ENOSPC");
	record_snapshot_free(&s);
	record_snapshot_init(&s);
	for (int i = 0; i < RECORD_TAGS_MAX; i++) {
		char t[16];

		snprintf(t, sizeof(t), "t%d", i);
		record_snapshot_add_tag(&s, t);
	}
	is_int(record_snapshot_add_tag(&s, "more"), -ENOSPC, "the 65th tag is -ENOSPC");
	record_snapshot_free(&s);
	buf_free(&b);
}

static void test_snapshot_exact(void)
{
	struct record_snapshot s, d;
	struct buf b = BUF_INIT;
	uint8_t id[KEYS_BLOB_ID_LEN];

	is_int(record_snapshot_decode((const uint8_t *)snap_json, strlen(snap_json), &d), 0,
	       "the documented example decodes (%s)", err_msg());
	ok(d.generation == 7 && d.time_ns == 1700000000000000000ull && strcmp(d.host, "vm-a") == 0 &&
	   d.ntags == 1 && d.stats.stored_bytes == 400 && d.nroots == 2, "  with its values");
	is_int(record_snapshot_encode(&d, &b), 0, "  re-encodes");
	is_str(buf_str(&b), snap_json, "  to the very same text (member order of docs/format.md)");
	record_snapshot_free(&d);

	record_snapshot_init(&s);
	hexid(TREE_HEX, id);
	record_snapshot_set_root(&s, "workspace", id);
	s.generation = 1;
	snprintf(s.host, sizeof(s.host), "h");
	buf_reset(&b);
	is_int(record_snapshot_encode(&s, &b), -EINVAL, "encode refuses a record without agent-config");
	record_snapshot_set_root(&s, "agent-config", id);
	buf_adds(&b, "keep");
#define ENC_REFUSES(setup, undo, what) do { \
		setup; \
		is_int(record_snapshot_encode(&s, &b), -EINVAL, "encode refuses %s (%s)", what, err_msg()); \
		undo; \
	} while (0)
	ENC_REFUSES(s.generation = 0, s.generation = 1, "generation 0");
	ENC_REFUSES(s.generation = (uint64_t)INT64_MAX + 1, s.generation = 1, "generation 2^63");
	ENC_REFUSES(s.generation = UINT64_MAX, s.generation = 1, "generation 2^64-1");
	ENC_REFUSES(s.time_ns = UINT64_MAX, s.time_ns = 0, "a time past 2^63-1");
	ENC_REFUSES(s.host[0] = '\0', s.host[0] = 'h', "an empty host");
	ENC_REFUSES(snprintf(s.host, sizeof(s.host), "a b"), snprintf(s.host, sizeof(s.host), "h"),
		    "a host with a space");
	ENC_REFUSES(snprintf(s.parent, sizeof(s.parent), "XYZ"), s.parent[0] = '\0', "a bad parent id");
	ENC_REFUSES(s.stats.bytes = UINT64_MAX, s.stats.bytes = 0, "a statistic past 2^63-1");
	ENC_REFUSES(snprintf(s.roots[0].name, sizeof(s.roots[0].name), "BAD"),
		    snprintf(s.roots[0].name, sizeof(s.roots[0].name), "agent-config"), "a bad root name");
#undef ENC_REFUSES
	is_str(buf_str(&b), "keep", "a refused encode leaves the buffer as it was");
	buf_reset(&b);
	is_int(record_snapshot_encode(&s, &b), 0, "the minimal record encodes");
	is_int(record_snapshot_decode(b.data, b.len, &d), 0, "  and decodes");
	record_snapshot_free(&d);
	record_snapshot_free(&s);
	buf_free(&b);
}

static void test_snapshot_refusals(void)
{
	static const char *required[] = { "version", "time", "host", "generation", "parent",
					  "roots", "tags", "stats" };
	static const char *stats[] = { "files", "dirs", "symlinks", "others", "bytes", "new_files",
				       "new_bytes", "new_blobs", "new_trees", "stored_bytes",
				       "duration_ns" };
	decode_fn f = dec_snapshot;
	const char *w = "snapshot";

	for (size_t i = 0; i < sizeof(required) / sizeof(*required); i++)
		mutated(f, snap_json, required[i], NULL, -EBADMSG, w);
	for (size_t i = 0; i < sizeof(stats) / sizeof(*stats); i++) {
		char p[64];

		snprintf(p, sizeof(p), "stats.%s", stats[i]);
		mutated(f, snap_json, p, NULL, -EBADMSG, w);
		mutated(f, snap_json, p, "-1", -EBADMSG, w);
		mutated(f, snap_json, p, "\"1\"", -EBADMSG, w);
	}
	mutated(f, snap_json, "stats.future_counter", "12", 0, "snapshot: an unknown statistic is ignored");
	mutated(f, snap_json, "version", "2", -ENOTSUP, w);
	mutated(f, snap_json, "version", "0", -ENOTSUP, w);
	mutated(f, snap_json, "version", "\"1\"", -EBADMSG, w);
	mutated(f, snap_json, "version", "1.0", -EBADMSG, w);
	mutated(f, snap_json, "extra", "1", -EBADMSG, "snapshot: unknown member");
	mutated(f, snap_json, "time", "-1", -EBADMSG, w);
	mutated(f, snap_json, "time", "1.5", -EBADMSG, w);
	mutated(f, snap_json, "time", "\"now\"", -EBADMSG, w);
	mutated(f, snap_json, "generation", "0", -EBADMSG, w);
	mutated(f, snap_json, "generation", "-7", -EBADMSG, w);
	mutated(f, snap_json, "generation", "true", -EBADMSG, w);
	mutated(f, snap_json, "generation", "9223372036854775807", 0, "snapshot: generation 2^63-1 is fine");
	mutated(f, snap_json, "host", "\"\"", -EBADMSG, w);
	mutated(f, snap_json, "host", "\"two words\"", -EBADMSG, w);
	mutated(f, snap_json, "host", "\"caf\\u00e9\"", -EBADMSG, w);
	mutated(f, snap_json, "host", "7", -EBADMSG, w);
	mutated(f, snap_json, "parent", "\"" SNAP_ID "\"", 0, "snapshot: a parent id is fine");
	mutated(f, snap_json, "parent", "\"0123456789ABCDEF0123456789abcdef\"", -EBADMSG, w);
	mutated(f, snap_json, "parent", "\"0123\"", -EBADMSG, w);
	mutated(f, snap_json, "parent", "5", -EBADMSG, w);
	mutated(f, snap_json, "roots", "[]", -EBADMSG, w);
	mutated(f, snap_json, "roots.workspace", NULL, -EBADMSG, w);
	mutated(f, snap_json, "roots.agent-config", NULL, -EBADMSG, w);
	mutated(f, snap_json, "roots.workspace", "\"" TREE_HEX "0\"", -EBADMSG, w);
	mutated(f, snap_json, "roots.workspace", "\"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\"",
		-EBADMSG, w);
	mutated(f, snap_json, "roots.workspace", "null", -EBADMSG, w);
	mutated(f, snap_json, "roots.Extra", "\"" TREE_HEX "\"", -EBADMSG, w);
	mutated(f, snap_json, "roots.extra", "\"" TREE_HEX "\"", 0, "snapshot: a third root is fine");
	mutated(f, snap_json, "tags", "\"a\"", -EBADMSG, w);
	mutated(f, snap_json, "tags", "[1]", -EBADMSG, w);
	mutated(f, snap_json, "tags", "[\"a,b\"]", -EBADMSG, w);
	mutated(f, snap_json, "tags", "[\"a\",\"a\"]", -EBADMSG, w);
	mutated(f, snap_json, "tags", "[\"\"]", -EBADMSG, w);
	mutated(f, snap_json, "tags", "[]", 0, "snapshot: no tags is fine");
	mutated(f, snap_json, "stats", "[]", -EBADMSG, w);
	{
		/* 17 roots, 65 tags */
		struct buf v = BUF_INIT;

		buf_adds(&v, "{\"workspace\":\"" TREE_HEX "\",\"agent-config\":\"" TREE_HEX "\"");
		for (int i = 0; i < 15; i++)
			buf_printf(&v, ",\"r%d\":\"" TREE_HEX "\"", i);
		buf_adds(&v, "}");
		mutated(f, snap_json, "roots", buf_str(&v), -EBADMSG, "snapshot: 17 roots");
		buf_reset(&v);
		buf_adds(&v, "[\"t\"");
		for (int i = 0; i < 64; i++)
			buf_printf(&v, ",\"t%d\"", i);
		buf_adds(&v, "]");
		mutated(f, snap_json, "tags", buf_str(&v), -EBADMSG, "snapshot: 65 tags");
		buf_free(&v);
	}
	raw_refused(f, "", -EBADMSG, "snapshot: empty input");
	raw_refused(f, "not json", -EBADMSG, "snapshot: not JSON");
	raw_refused(f, "[1,2]", -EBADMSG, "snapshot: a JSON array");
	raw_refused(f, "{\"version\":1}", -EBADMSG, "snapshot: only a version");
	raw_refused(f, "{\"version\":2}", -ENOTSUP, "snapshot: version 2 alone is not supported");
	ok(strstr(err_msg(), "version 2") && strstr(err_msg(), "version 1"),
	   "  the message names the version found and the one supported");
	raw_refused(f, "{\"version\":1,\"version\":1}", -EBADMSG, "snapshot: a duplicate member");
	{
		struct buf t = BUF_INIT;

		buf_adds(&t, snap_json);
		buf_adds(&t, " x");
		raw_refused(f, buf_str(&t), -EBADMSG, "snapshot: trailing garbage");
		buf_reset(&t);
		buf_adds(&t, snap_json);
		buf_setlen(&t, t.len - 2);
		raw_refused(f, buf_str(&t), -EBADMSG, "snapshot: truncated");
		buf_reset(&t);
		buf_adds(&t, snap_json);
		t.data[t.len - 1] = ' ';
		buf_grow(&t, RECORD_MAX_LEN);
		memset(t.data + t.len, ' ', RECORD_MAX_LEN);
		buf_setlen(&t, t.len + RECORD_MAX_LEN);
		t.data[t.len - 1] = '}';
		raw_refused(f, buf_str(&t), -EBADMSG, "snapshot: more than 1 MiB");
		buf_free(&t);
	}
	/* generation overflow: integers past 2^63-1 do not parse */
	{
		const char *tail = strstr(snap_json, "\"generation\":7");
		struct buf t = BUF_INIT;

		buf_add(&t, snap_json, (size_t)(tail - snap_json));
		buf_adds(&t, "\"generation\":9223372036854775808");
		buf_adds(&t, tail + strlen("\"generation\":7"));
		raw_refused(f, buf_str(&t), -EBADMSG, "snapshot: generation 2^63");
		buf_reset(&t);
		buf_add(&t, snap_json, (size_t)(tail - snap_json));
		buf_adds(&t, "\"generation\":18446744073709551616");
		buf_adds(&t, tail + strlen("\"generation\":7"));
		raw_refused(f, buf_str(&t), -EBADMSG, "snapshot: generation 2^64");
		buf_free(&t);
	}
	{
		const char *h = strstr(snap_json, "\"vm-a\"");
		struct buf t = BUF_INIT;

		buf_add(&t, snap_json, (size_t)(h - snap_json));
		buf_adds(&t, "\"vm\\u0000a\"");
		buf_adds(&t, h + 6);
		raw_refused(f, buf_str(&t), -EBADMSG, "snapshot: a NUL escape in a string");
		buf_free(&t);
	}
}

static void test_snapshot_cmp(void)
{
	struct record_snapshot a, b;

	record_snapshot_init(&a);
	record_snapshot_init(&b);
	a.generation = 1;
	b.generation = 2;
	a.time_ns = 5;
	b.time_ns = 1;
	ok(record_snapshot_cmp(&a, &b) < 0 && record_snapshot_cmp(&b, &a) > 0, "cmp: generation first");
	b.generation = 1;
	ok(record_snapshot_cmp(&a, &b) > 0, "cmp: then time");
	b.time_ns = 5;
	snprintf(a.host, sizeof(a.host), "a");
	snprintf(b.host, sizeof(b.host), "b");
	ok(record_snapshot_cmp(&a, &b) < 0, "cmp: then host");
}

/* ---- head ------------------------------------------------------------------ */

static void test_head(void)
{
	struct record_head h = { 0 }, d, n;
	struct buf b = BUF_INIT;
	decode_fn f = dec_head;
	const char *w = "head";

	h.generation = 7;
	snprintf(h.snapshot, sizeof(h.snapshot), SNAP_ID);
	is_int(record_head_encode(&h, &b), 0, "encode a head");
	is_str(buf_str(&b), head_json, "  is the documented JSON");
	is_int(record_head_decode(b.data, b.len, &d), 0, "  decodes");
	ok(d.generation == 7 && strcmp(d.snapshot, SNAP_ID) == 0, "  round trip");

	is_int(record_head_next(NULL, SNAP_ID, &n), 0, "first head");
	ok(n.generation == 1 && strcmp(n.snapshot, SNAP_ID) == 0, "  is generation 1");
	is_int(record_head_next(&d, SNAP_ID2, &n), 0, "next head");
	ok(n.generation == 8 && strcmp(n.snapshot, SNAP_ID2) == 0, "  is generation + 1");
	d.generation = INT64_MAX - 1;
	is_int(record_head_next(&d, SNAP_ID2, &n), 0, "next of 2^63-2");
	is_int(record_head_next(&n, SNAP_ID2, &n), -EOVERFLOW, "next of 2^63-1 overflows (%s)", err_msg());
	is_int(record_head_next(&d, "bad", &n), -EINVAL, "next with a bad id refused");

	buf_reset(&b);
	buf_adds(&b, "keep");
	h.generation = 0;
	is_int(record_head_encode(&h, &b), -EINVAL, "encode refuses generation 0");
	h.generation = (uint64_t)INT64_MAX + 1;
	is_int(record_head_encode(&h, &b), -EINVAL, "encode refuses generation 2^63");
	h.generation = 3;
	h.snapshot[0] = 'X';
	is_int(record_head_encode(&h, &b), -EINVAL, "encode refuses a bad snapshot id");
	is_str(buf_str(&b), "keep", "  buffer untouched");

	mutated(f, head_json, "version", NULL, -EBADMSG, w);
	mutated(f, head_json, "generation", NULL, -EBADMSG, w);
	mutated(f, head_json, "snapshot", NULL, -EBADMSG, w);
	mutated(f, head_json, "version", "3", -ENOTSUP, w);
	mutated(f, head_json, "version", "\"1\"", -EBADMSG, w);
	mutated(f, head_json, "generation", "0", -EBADMSG, w);
	mutated(f, head_json, "generation", "-1", -EBADMSG, w);
	mutated(f, head_json, "generation", "\"7\"", -EBADMSG, w);
	mutated(f, head_json, "generation", "7.0", -EBADMSG, w);
	mutated(f, head_json, "snapshot", "\"" SNAP_ID "0\"", -EBADMSG, w);
	mutated(f, head_json, "snapshot", "\"0123456789abcdef0123456789ABCDEF\"", -EBADMSG, w);
	mutated(f, head_json, "snapshot", "null", -EBADMSG, w);
	mutated(f, head_json, "extra", "{}", -EBADMSG, "head: unknown member");
	raw_refused(f, "{\"version\":1,\"generation\":9223372036854775808,\"snapshot\":\"" SNAP_ID "\"}",
		    -EBADMSG, "head: generation 2^63");
	raw_refused(f, "{\"version\":1,\"generation\":99999999999999999999999,\"snapshot\":\"" SNAP_ID "\"}",
		    -EBADMSG, "head: generation far past 2^64");
	raw_refused(f, "\"head\"", -EBADMSG, "head: a JSON string");
	raw_refused(f, "{\"version\":9}", -ENOTSUP, "head: version 9");
	buf_free(&b);
}

/* ---- lease ------------------------------------------------------------------ */

static void test_lease(void)
{
	struct record_lease l, d, o;
	struct buf b = BUF_INIT;
	decode_fn f = dec_lease;
	const char *w = "lease";

	is_int(record_lease_decode((const uint8_t *)lease_json, strlen(lease_json), &l), 0,
	       "the documented lease decodes (%s)", err_msg());
	ok(l.pid == 4242 && strcmp(l.program, "cairn snapshot") == 0 &&
	   l.expires_ns == 1700000060000000000ull && strcmp(l.nonce, SNAP_ID) == 0, "  with its values");
	is_int(record_lease_encode(&l, &b), 0, "  re-encodes");
	is_str(buf_str(&b), lease_json, "  to the same text");
	is_int(record_lease_decode(b.data, b.len, &d), 0, "round trip");
	ok(record_lease_same_holder(&l, &d), "  same holder");
	o = d;
	o.expires_ns += 5;
	ok(record_lease_same_holder(&l, &o), "  a renewal is the same holder");
	o.pid++;
	ok(!record_lease_same_holder(&l, &o), "  another pid is not");
	o = d;
	o.nonce[0] = 'f';
	ok(!record_lease_same_holder(&l, &o), "  another nonce is not");
	o = d;
	o.boot[0] = 'x';
	ok(!record_lease_same_holder(&l, &o), "  another boot is not");

	o = l;
	o.expires_ns = o.acquired_ns;
	buf_reset(&b);
	is_int(record_lease_encode(&o, &b), 0, "a released lease (expires == acquired) encodes");
	o.program[0] = '\0';
	buf_reset(&b);
	is_int(record_lease_encode(&o, &b), 0, "an empty program is fine");
#define ENC_REFUSES(setup, what) do { \
		o = l; \
		setup; \
		is_int(record_lease_encode(&o, &b), -EINVAL, "encode refuses %s (%s)", what, err_msg()); \
	} while (0)
	ENC_REFUSES(o.pid = 0, "pid 0");
	ENC_REFUSES(o.pid = (uint32_t)INT32_MAX + 1, "pid 2^31");
	ENC_REFUSES(o.host[0] = '\0', "an empty host id");
	ENC_REFUSES(o.boot[3] = ' ', "a boot id with a space");
	ENC_REFUSES(o.nonce[5] = 'Z', "a bad nonce");
	ENC_REFUSES(o.program[2] = '\n', "a program with a newline");
	ENC_REFUSES(o.expires_ns = o.acquired_ns - 1, "expiry before acquisition");
	ENC_REFUSES(o.expires_ns = UINT64_MAX, "an expiry past 2^63-1");
#undef ENC_REFUSES

	mutated(f, lease_json, "version", "2", -ENOTSUP, w);
	mutated(f, lease_json, "extra", "0", -EBADMSG, "lease: unknown member");
	{
		static const char *members[] = { "version", "host", "boot", "pid", "nonce", "program",
						 "acquired", "expires" };

		for (size_t i = 0; i < sizeof(members) / sizeof(*members); i++)
			mutated(f, lease_json, members[i], NULL, -EBADMSG, w);
	}
	mutated(f, lease_json, "host", "\"\"", -EBADMSG, w);
	mutated(f, lease_json, "host", "5", -EBADMSG, w);
	mutated(f, lease_json, "host", "\"vm-b\"", 0, "lease: a short host id is fine");
	mutated(f, lease_json, "boot", "\"a b\"", -EBADMSG, w);
	mutated(f, lease_json, "pid", "0", -EBADMSG, w);
	mutated(f, lease_json, "pid", "2147483648", -EBADMSG, w);
	mutated(f, lease_json, "pid", "2147483647", 0, "lease: pid 2^31-1 is fine");
	mutated(f, lease_json, "pid", "\"4242\"", -EBADMSG, w);
	mutated(f, lease_json, "nonce", "\"abc\"", -EBADMSG, w);
	mutated(f, lease_json, "nonce", "\"0123456789ABCDEF0123456789abcdef\"", -EBADMSG, w);
	mutated(f, lease_json, "program", "\"x\\u0007\"", -EBADMSG, w);
	mutated(f, lease_json, "program",
		"\"12345678901234567890123456789012345678901234567890123456789012345\"", -EBADMSG,
		"lease: a 65-character program");
	mutated(f, lease_json, "acquired", "-1", -EBADMSG, w);
	mutated(f, lease_json, "expires", "1", -EBADMSG, "lease: expiry before acquisition");
	mutated(f, lease_json, "expires", "1.7e18", -EBADMSG, w);
	raw_refused(f, "{}", -EBADMSG, "lease: empty object");
	raw_refused(f, "{\"version\":2,\"anything\":true}", -ENOTSUP, "lease: version 2");
	buf_free(&b);
}

int main(void)
{
	test_ids();
	test_snapshot_round_trip();
	test_snapshot_exact();
	test_snapshot_refusals();
	test_snapshot_cmp();
	test_head();
	test_lease();
	return tap_done();
}
