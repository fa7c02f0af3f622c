/*
 * test_store_cond.c - conditional puts on S3 servers that do them their
 * own way, reproduced by the test proxy's modes (tests/s3/README.md, "Server
 * modes"): R2's way, Ceph RGW's (If-Match only without quotes, no ETag in
 * the answer to CompleteMultipartUpload, conditions ignored on it), and
 * plain s3rver's (conditions ignored).  The client learns each store's rules
 * with a probe, keeps them in a cache file, uses the form that works, and
 * refuses a store that honours none unless told to go on.
 *
 * Request counts come from the proxy's own counters, never the client's.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "s3srv.h"
#include "store.h"
#include "store_suite.h"
#include "tap.h"

#define MIB ((size_t)1 << 20)

static struct s3srv srv;

static void ctl(const char *method, const char *path)
{
	int st = s3srv_ctl(&srv, method, path, NULL);

	if (st != 200)
		tap_bail("control request %s %s answered %d", method, path, st);
}

/* Puts the server in mode (a /__proxy/mode query), zeroes its counters,
 * and opens s3://BUCKET/prefix with o, probe results kept in probe_dir. */
static struct store *open_in_mode(const char *mode, const char *prefix,
				  const char *probe_dir, struct store_opts *o)
{
	char *path = xasprintf("/__proxy/mode?%s", mode);

	ctl("POST", path);
	ctl("POST", "/__proxy/reset");
	free(path);
	s3srv_store_opts(&srv, o);
	o->probe_dir = probe_dir;
	return s3srv_store_open(prefix, o);
}

static long long stat_of(const char *name)
{
	long long v = s3srv_stat(&srv, name);

	return v < 0 ? 0 : v;
}


static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static int count_key(const char *key, uint64_t size, void *arg)
{
	(void)size;
	*(int *)arg += strstr(key, "cairn-probe-") != NULL;
	return 0;
}

/* No scratch object of a probe is left anywhere in the bucket. */
static int probe_leftovers(void)
{
	struct store_opts o;
	struct store *s;
	int n = 0;

	s3srv_store_opts(&srv, &o);
	s = s3srv_store_open("", &o);
	store_list(s, "", count_key, &n);
	store_close(s);
	return n;
}

/* Makes every probe result in dir look `seconds` older. */
static void age_probe_results(const char *dir, long seconds)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct buf out = BUF_INIT;
		char line[512];
		FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "r");

		while (f && fgets(line, sizeof(line), f)) {
			long long t;

			if (sscanf(line, "probed %lld", &t) == 1)
				buf_printf(&out, "probed %lld\n", t - seconds);
			else
				buf_adds(&out, line);
		}
		if (f) {
			fclose(f);
			f = fopen(path, "w");
			if (!f || fwrite(out.data, 1, out.len, f) != out.len || fclose(f))
				tap_bail("cannot rewrite %s", path);
		}
		buf_free(&out);
		free(path);
	}
	if (d)
		closedir(d);
}

/* ---- R2's way: the probe, its cache ----------------------------------------- */

static void test_r2(const char *probe_dir)
{
	struct store_opts o;
	struct store_cond_rules rules;
	struct store *s;
	int rc;

	s = open_in_mode("preset=r2", "r2", probe_dir, &o);
	rc = store_cond_probe(s, &rules);
	ok(rc == 0 && rules.create_only && rules.match == STORE_MATCH_QUOTED,
	   "r2: the probe finds create-only and If-Match with the quoted ETag %s",
	   rc ? err_msg() : "");
	ok(store_cond_honoured(&rules), "r2: honoured");
	is_int(stat_of("ops.PutObject"), 4, "r2: the probe is four PUTs");
	is_int(stat_of("ops.DeleteObject"), 1, "r2: and a DELETE of its scratch object");
	is_int(count_files(probe_dir), 1, "r2: what it learned is kept in %s", probe_dir);
	is_int(probe_leftovers(), 0, "r2: the scratch object is gone");
	store_close(s);

	/* Another process on this machine: the cache, no probe. */
	ctl("POST", "/__proxy/reset");
	s = s3srv_store_open("r2", &o);
	rc = store_put(s, "k", "one", 3, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, 0, "r2: a create-only put with the cached rules %s", rc ? err_msg() : "");
	is_int(stat_of("ops.PutObject"), 1, "r2: one PUT, no probe");
	store_close(s);

	/* A result older than a week is probed again. */
	age_probe_results(probe_dir, 8 * 24 * 3600);
	ctl("POST", "/__proxy/reset");
	s = s3srv_store_open("r2", &o);
	rc = store_put(s, "k", "two", 3, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, -EEXIST, "r2: create-only of an existing key is -EEXIST");
	is_int(stat_of("ops.PutObject"), 5, "r2: a result 8 days old is probed again first");
	store_del(s, "k");
	store_close(s);
}

/* ---- a 412 is believed only after a HEAD ------------------------------------ */

static void test_confirm_412(void)
{
	struct store_opts o;
	struct store_info a, b;
	struct store *s;
	int rc;

	s = open_in_mode("preset=r2", "c412", NULL, &o);
	store_put(s, "k", "one", 3, STORE_ALWAYS, NULL, &a);
	store_put(s, "k", "two", 3, STORE_ALWAYS, NULL, &b);
	store_cond_probe(s, &(struct store_cond_rules){ 0 });
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "k", "three", 5, STORE_IF_MATCH, a.etag, NULL);
	is_int(rc, -ECANCELED, "412: compare-and-swap with a stale ETag is -ECANCELED");
	ok(strstr(err_msg(), "changed") != NULL, "412: the message says it changed: %s", err_msg());
	is_int(stat_of("ops.HeadObject"), 1, "412: after one HEAD that confirms it");
	store_del(s, "k");
	rc = store_put(s, "k", "four", 4, STORE_IF_MATCH, b.etag, NULL);
	ok(rc == -ECANCELED && strstr(err_msg(), "was removed"),
	   "412: compare-and-swap on a deleted key is -ECANCELED, removed: %s", err_msg());
	store_close(s);
}

/* ---- Ceph RGW's way ----------------------------------------------------------- */

static void test_rgw(const char *probe_dir)
{
	struct store_opts o;
	struct store_cond_rules rules;
	struct store_info put = { 0 }, head = { 0 }, info;
	struct buf got = BUF_INIT;
	size_t len = 40 * MIB + 4321;
	uint8_t *data = xmalloc(len);
	struct store *s;
	int rc;

	s = open_in_mode("preset=rgw", "rgw", NULL, &o);
	rc = store_cond_probe(s, &rules);
	ok(rc == 0 && rules.create_only && rules.match == STORE_MATCH_BARE,
	   "rgw: the probe finds If-Match with the ETag without quotes %s", rc ? err_msg() : "");
	store_suite_run(s, "rgw");

	/* Multipart: no ETag in the answer to CompleteMultipartUpload. */
	tap_fill_random(data, len, 23);
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "big", data, len, STORE_ALWAYS, NULL, &put);
	is_int(rc, 0, "rgw: a multipart put answered without an ETag succeeds %s",
	       rc ? err_msg() : "");
	ok(strstr(put.etag, "-6") != NULL, "rgw: with the ETag HEAD gives (%s)", put.etag);
	is_int(stat_of("ops.HeadObject"), 1, "rgw: one HEAD verified it");
	is_int(stat_of("ops.AbortMultipartUpload"), 0, "rgw: nothing aborted");
	rc = store_get(s, "big", 0, STORE_TO_END, &got, &info);
	ok(rc == 0 && got.len == len && !memcmp(got.data, data, len), "rgw: and it reads back");

	/* Conditions on CompleteMultipartUpload are ignored: a conditional put
	 * never goes multipart. */
	ctl("POST", "/__proxy/reset");
	data[0] ^= 1;
	rc = store_put(s, "big", data, len, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, -EEXIST, "rgw: a create-only 40 MiB put of an existing key is -EEXIST");
	is_int(stat_of("ops.CreateMultipartUpload"), 0, "rgw: it did not go multipart");
	ok(store_head(s, "big", &head) == 0 && !strcmp(head.etag, put.etag),
	   "rgw: the object is unchanged");
	rc = store_put(s, "big", data, len, STORE_IF_MATCH, put.etag, &info);
	ok(rc == 0 && store_head(s, "big", &head) == 0 && !strcmp(head.etag, info.etag),
	   "rgw: compare-and-swap of 40 MiB, as one PUT %s", rc ? err_msg() : "");
	is_int(stat_of("ops.CreateMultipartUpload"), 0, "rgw: still no multipart upload");
	store_del(s, "big");
	store_close(s);

	/* Rules cached for a server since changed (quoted, now bare): the
	 * put that the store refuses with its own ETag is sent bare, and the
	 * cache follows. */
	rules = (struct store_cond_rules){ true, STORE_MATCH_QUOTED };
	store_cond_cache_save(probe_dir, srv.endpoint, S3SRV_BUCKET, &rules);
	s3srv_store_opts(&srv, &o);
	o.probe_dir = probe_dir;
	s = s3srv_store_open("rgw", &o);
	store_put(s, "k", "one", 3, STORE_ALWAYS, NULL, &info);
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "k", "two", 3, STORE_IF_MATCH, info.etag, NULL);
	is_int(rc, 0, "rgw: stale cached rules: the swap succeeds in the other form %s",
	       rc ? err_msg() : "");
	is_int(stat_of("ops.PutObject"), 2, "rgw: two PUTs (quoted refused, bare taken), no probe");
	rc = store_cond_cache_load(probe_dir, srv.endpoint, S3SRV_BUCKET, &rules);
	ok(rc == 0 && rules.match == STORE_MATCH_BARE, "rgw: the cache now says bare");
	store_del(s, "k");
	store_close(s);
	buf_free(&got);
	free(data);
}

/* ---- R2, but conditions on CompleteMultipartUpload ignored -------------------- */

static void test_complete_ignored(void)
{
	struct store_opts o;
	struct store_info first, head;
	size_t len = 33 * MIB;
	uint8_t *data = xmalloc(len);
	struct store *s;
	int rc;

	s = open_in_mode("preset=r2&complete-cond=ignore", "cmpl", NULL, &o);
	tap_fill_random(data, len, 5);
	store_put(s, "big", data, len, STORE_ALWAYS, NULL, &first);
	data[1] ^= 1;
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "big", data, len, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, -EEXIST, "complete ignores conditions: create-only of 33 MiB is still -EEXIST");
	ok(store_head(s, "big", &head) == 0 && !strcmp(head.etag, first.etag),
	   "complete ignores conditions: the object is unchanged");
	rc = store_put(s, "big", data, len, STORE_IF_MATCH, "\"0123456789abcdef0123456789abcdef\"",
		       NULL);
	is_int(rc, -ECANCELED, "complete ignores conditions: a stale compare-and-swap is -ECANCELED");
	is_int(stat_of("ops.CreateMultipartUpload"), 0, "complete ignores conditions: no multipart");
	/* a put too large for one request is refused, not sent multipart */
	rc = store_put(s, "huge", data, (size_t)6 << 30, STORE_IF_NONE_MATCH, NULL, NULL);
	ok(rc == -EFBIG && strstr(err_msg(), "5 GiB"),
	   "a conditional put over 5 GiB is refused: %s", err_msg());
	store_del(s, "big");
	store_close(s);
	free(data);
}

/* ---- plain s3rver's way: refused, unless the operator says otherwise ---------- */

static void test_s3rver(const char *probe_dir)
{
	struct store_opts o;
	struct store_cond_rules rules;
	struct store *s;
	int rc;

	s = open_in_mode("preset=s3rver", "plain", probe_dir, &o);
	rc = store_put(s, "lease", "mine", 4, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, -ENOTSUP, "s3rver: a conditional put is refused");
	ok(strstr(err_msg(), "does not honour conditional writes") &&
	   strstr(err_msg(), "ignores If-None-Match") && strstr(err_msg(), "ignores If-Match") &&
	   strstr(err_msg(), srv.endpoint) && strstr(err_msg(), "unsafe_no_conditional_writes") &&
	   strstr(err_msg(), "CAIRN_UNSAFE_NO_CONDITIONAL_WRITES") && !strchr(err_msg(), '\n'),
	   "s3rver: one line: what, where, what to do: %s", err_msg());
	is_int(store_head(s, "lease", NULL), -ENOENT, "s3rver: nothing was written");
	is_int(probe_leftovers(), 0, "s3rver: the probe's scratch object is gone");
	is_int(count_files(probe_dir), 0, "s3rver: a store found wanting is not cached");
	rc = store_put(s, "lease", "mine", 4, STORE_IF_MATCH, "\"abc\"", NULL);
	is_int(rc, -ENOTSUP, "s3rver: a compare-and-swap is refused too");
	rc = store_put(s, "plain", "x", 1, STORE_ALWAYS, NULL, NULL);
	is_int(rc, 0, "s3rver: plain puts go on");
	rc = store_cond_probe(s, &rules);
	ok(rc == 0 && !rules.create_only && rules.match == STORE_MATCH_IGNORED &&
	   !store_cond_honoured(&rules), "s3rver: the probe says both are ignored");
	store_close(s);

	o.unsafe_no_cond = true;
	s = s3srv_store_open("plain", &o);
	rc = store_put(s, "lease", "mine", 4, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, 0, "s3rver: with unsafe_no_cond the conditional put goes through %s",
	       rc ? err_msg() : "");
	store_close(s);

	o.unsafe_no_cond = false;
	setenv("CAIRN_UNSAFE_NO_CONDITIONAL_WRITES", "1", 1);
	s = s3srv_store_open("plain", &o);
	rc = store_put(s, "lease", "again", 5, STORE_IF_MATCH, "\"stale\"", NULL);
	is_int(rc, 0, "s3rver: CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1 does the same %s",
	       rc ? err_msg() : "");
	store_del(s, "lease");
	store_del(s, "plain");
	store_close(s);
	setenv("CAIRN_UNSAFE_NO_CONDITIONAL_WRITES", "maybe", 1);
	ok(store_open("s3://" S3SRV_BUCKET "/plain", &o, &s) == -EINVAL &&
	   strstr(err_msg(), "CAIRN_UNSAFE_NO_CONDITIONAL_WRITES"),
	   "s3rver: a bad CAIRN_UNSAFE_NO_CONDITIONAL_WRITES is refused: %s", err_msg());
	unsetenv("CAIRN_UNSAFE_NO_CONDITIONAL_WRITES");

	/* If-None-Match honoured, If-Match ignored: still refused. */
	s = open_in_mode("preset=r2&if-match=ignore", "plain", NULL, &o);
	rc = store_put(s, "lease", "mine", 4, STORE_IF_NONE_MATCH, NULL, NULL);
	ok(rc == -ENOTSUP && strstr(err_msg(), "ignores If-Match") &&
	   !strstr(err_msg(), "ignores If-None-Match"),
	   "if-match ignored alone: refused, and said so: %s", err_msg());
	store_close(s);
}

/* ---- file:// does conditional puts itself ------------------------------------- */

static void test_file(void)
{
	char *dir = tap_mkdtemp("condfile"), *url = xasprintf("file://%s", dir);
	struct store_cond_rules rules;
	struct store *s;
	int rc = store_open(url, NULL, &s);

	if (rc)
		tap_bail("cannot open %s: %s", url, err_msg());
	rc = store_cond_probe(s, &rules);
	ok(rc == 0 && rules.match == STORE_MATCH_NATIVE && store_cond_honoured(&rules),
	   "file: conditional puts are the store's own, atomic");
	store_close(s);
	tap_rmtree(dir);
	free(dir);
	free(url);
}

int main(void)
{
	char *probe_dir = tap_mkdtemp("probes");

	s3srv_start(&srv);
	diag("S3 test server on %s", srv.endpoint);
	test_r2(probe_dir);
	test_confirm_412();
	test_rgw(probe_dir);
	test_complete_ignored();
	tap_rmtree(probe_dir);
	free(probe_dir);
	probe_dir = tap_mkdtemp("probes");
	test_s3rver(probe_dir);
	test_file();
	s3srv_stop(&srv);
	tap_rmtree(probe_dir);
	free(probe_dir);
	return tap_done();
}
