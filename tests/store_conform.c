/*
 * store_conform.c - the store conformance suite (tests/store_suite.c), the
 * conditional-write probe and multipart uploads, against whatever S3 server
 * the environment names: CAIRN_TEST_STORE=s3://BUCKET/PREFIX and the usual
 * AWS_* variables.  tests/test_rgw.sh runs it against Ceph RGW.  Prints TAP.
 *
 *   CAIRN_TEST_MATCH=quoted|bare   the If-Match form the probe must find
 *
 * Built by `make check` (check_DATA), never run on its own by it: without
 * CAIRN_TEST_STORE it skips.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "store.h"
#include "store_suite.h"
#include "tap.h"

#define MIB ((size_t)1 << 20)

static void check_probe(struct store *s, const char *label)
{
	const char *want = getenv("CAIRN_TEST_MATCH");
	struct store_cond_rules rules = { false, STORE_MATCH_UNKNOWN };
	struct buf what = BUF_INIT;
	int rc = store_cond_probe(s, &rules);

	store_cond_describe(&rules, &what);
	ok(rc == 0 && store_cond_honoured(&rules), "%s: the probe finds conditional writes honoured: %s",
	   label, rc ? err_msg() : buf_str(&what));
	if (want && *want)
		ok(rc == 0 && rules.match == (strcmp(want, "bare") ? STORE_MATCH_QUOTED :
					      STORE_MATCH_BARE),
		   "%s: with If-Match in the %s form", label, want);
	buf_free(&what);
}

/* Multipart, and conditional puts too large for one part: never multipart. */
static void check_large(struct store *s, const char *label)
{
	size_t len = 40 * MIB + 777;
	uint8_t *data = xmalloc(len);
	struct store_info put = { 0 }, head = { 0 }, info;
	struct buf got = BUF_INIT;
	int rc;

	tap_fill_random(data, len, 40);
	rc = store_put(s, "conform/big", data, len, STORE_ALWAYS, NULL, &put);
	is_int(rc, 0, "%s: a multipart put of 40 MiB %s", label, rc ? err_msg() : "");
	rc = store_head(s, "conform/big", &head);
	ok(rc == 0 && head.size == len && !strcmp(head.etag, put.etag) && strstr(put.etag, "-6"),
	   "%s: HEAD agrees on its size and multipart ETag (%s, %s)", label, put.etag, head.etag);
	rc = store_get(s, "conform/big", 0, STORE_TO_END, &got, NULL);
	ok(rc == 0 && got.len == len && !memcmp(got.data, data, len),
	   "%s: it reads back byte for byte", label);
	buf_reset(&got);
	rc = store_get(s, "conform/big", 8 * MIB - 5, 10, &got, NULL);
	ok(rc == 0 && got.len == 10 && !memcmp(got.data, data + 8 * MIB - 5, 10),
	   "%s: a range across a part boundary", label);

	data[0] ^= 1;
	rc = store_put(s, "conform/big", data, len, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, -EEXIST, "%s: a create-only 40 MiB put of an existing key is -EEXIST", label);
	ok(store_head(s, "conform/big", &head) == 0 && !strcmp(head.etag, put.etag),
	   "%s: and the object is unchanged", label);
	rc = store_put(s, "conform/big", data, len, STORE_IF_MATCH, put.etag, &info);
	ok(rc == 0 && store_head(s, "conform/big", &head) == 0 && !strcmp(head.etag, info.etag),
	   "%s: a 40 MiB compare-and-swap %s", label, rc ? err_msg() : "");
	rc = store_put(s, "conform/big", data, len, STORE_IF_MATCH, put.etag, NULL);
	is_int(rc, -ECANCELED, "%s: a 40 MiB compare-and-swap with a stale ETag is -ECANCELED", label);
	store_del(s, "conform/big");
	buf_free(&got);
	free(data);
}

int main(void)
{
	const char *url = getenv("CAIRN_TEST_STORE");
	const char *label = getenv("CAIRN_TEST_LABEL");
	struct store *s;

	if (!url || !*url) {
		printf("1..0 # SKIP no CAIRN_TEST_STORE\n");
		return 0;
	}
	if (!label || !*label)
		label = "s3";
	if (store_open(url, NULL, &s))
		tap_bail("cannot open %s: %s", url, err_msg());
	diag("store %s at %s", url, getenv("AWS_ENDPOINT_URL") ? getenv("AWS_ENDPOINT_URL") : "AWS");
	check_probe(s, label);
	store_suite_run(s, label);
	check_large(s, label);
	store_close(s);
	return tap_done();
}
