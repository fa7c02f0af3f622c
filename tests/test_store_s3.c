/*
 * test_store_s3.c - the s3:// store against the R2-like verifying proxy in
 * front of s3rver (tests/s3/server.js, started by tests/s3srv.c): the shared
 * conformance suite, then what only S3 has: multipart, parallel transfers,
 * connection reuse, credentials and signatures the proxy refuses, virtual-
 * host addressing, outages and injected faults, and interop with the AWS SDK.
 *
 * Every check that depends on a count of requests reads the proxy's own
 * counters (POST /__proxy/reset first), never the client's idea of them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "s3srv.h"
#include "store.h"
#include "store_suite.h"
#include "tap.h"

#define MIB ((size_t)1 << 20)

static struct s3srv srv;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


static void ctl(const char *method, const char *path)
{
	int st = s3srv_ctl(&srv, method, path, NULL);

	if (st != 200)
		tap_bail("control request %s %s answered %d", method, path, st);
}

static long long stat_of(const char *name)
{
	long long v = s3srv_stat(&srv, name);

	return v < 0 ? 0 : v;	/* absent counters are zero */
}

static int count_key(const char *key, uint64_t size, void *arg)
{
	(void)key;
	(void)size;
	++*(int *)arg;
	return 0;
}

/* ---- multipart ------------------------------------------------------------ */

static void test_multipart(void)
{
	struct store_opts o;
	struct store *s;
	size_t len = 40 * MIB + 12345;
	uint8_t *data = xmalloc(len);
	struct store_info put = { 0 }, head = { 0 }, got_info = { 0 };
	struct buf got = BUF_INIT;
	int rc;

	s3srv_store_opts(&srv, &o);
	o.part_size = 8 * MIB;
	o.max_parallel = 4;
	s = s3srv_store_open("mp", &o);
	tap_fill_random(data, len, 40);
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "big", data, len, STORE_ALWAYS, NULL, &put);
	is_int(rc, 0, "multipart: put of 40 MiB %s", rc ? err_msg() : "");
	is_int(stat_of("ops.CreateMultipartUpload"), 1, "multipart: one CreateMultipartUpload");
	is_int(stat_of("ops.UploadPart"), 6, "multipart: six UploadPart requests (5 x 8 MiB + rest)");
	is_int(stat_of("ops.CompleteMultipartUpload"), 1, "multipart: one CompleteMultipartUpload");
	is_int(stat_of("ops.PutObject"), 0, "multipart: no single PutObject");
	is_int(stat_of("rejected"), 0, "multipart: the proxy refused nothing");
	ok(strlen(put.etag) > 3 && strstr(put.etag, "-6") != NULL,
	   "multipart: the ETag is md5-of-md5s-6: %s", put.etag);
	rc = store_head(s, "big", &head);
	ok(rc == 0 && head.size == len && !strcmp(head.etag, put.etag),
	   "multipart: head agrees on size and ETag");
	rc = store_get(s, "big", 0, STORE_TO_END, &got, &got_info);
	is_int(rc, 0, "multipart: get %s", rc ? err_msg() : "");
	is_mem(got.data, got.len, data, len, "multipart: 40 MiB read back byte for byte");
	buf_reset(&got);
	rc = store_get(s, "big", 8 * MIB - 3, 6, &got, &got_info);
	ok(rc == 0 && got.len == 6 && !memcmp(got.data, data + 8 * MIB - 3, 6) &&
	   got_info.size == len, "multipart: a range across a part boundary");

	/* A conditional put never goes multipart (servers ignore conditions on
	 * CompleteMultipartUpload): one PUT, whatever its size. */
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "big", data, len, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, -EEXIST, "multipart: create-only put of an existing key is -EEXIST");
	rc = store_put(s, "big", data, len, STORE_IF_MATCH, put.etag, &head);
	ok(rc == 0 && strcmp(head.etag, put.etag) && !strstr(head.etag, "-"),
	   "multipart: compare-and-swap of 40 MiB succeeds, as one PUT %s", rc ? err_msg() : "");
	rc = store_put(s, "big", data, len, STORE_IF_MATCH, "\"0123456789abcdef0123456789abcdef\"",
		       NULL);
	is_int(rc, -ECANCELED, "multipart: compare-and-swap with a stale ETag is -ECANCELED");
	is_int(stat_of("ops.CreateMultipartUpload"), 0, "multipart: no conditional put went multipart");

	/* A part upload that fails for good: the upload is aborted and the
	 * old object stays. */
	ctl("POST", "/__proxy/reset");
	ctl("POST", "/__proxy/fault?kind=status:400&method=PUT&key=mp/big&count=1");
	rc = store_put(s, "big", data, 33 * MIB, STORE_ALWAYS, NULL, NULL);
	ok(rc == -EIO, "multipart: a refused part fails the put (%d: %s)", rc, err_msg());
	is_int(stat_of("ops.AbortMultipartUpload"), 1, "multipart: and the upload is aborted");
	ok(store_head(s, "big", &head) == 0 && head.size == len, "multipart: the old object stays");

	store_del(s, "big");
	store_close(s);
	buf_free(&got);
	free(data);
}

/* ---- parallel ------------------------------------------------------------- */

struct worker {
	struct store *s;
	int id;
	int errors;
	char msg[256];
};

static void *parallel_worker(void *arg)
{
	struct worker *w = arg;
	size_t len = 300 * 1024;
	uint8_t *data = xmalloc(len);
	struct buf got = BUF_INIT;

	for (int i = 0; i < 8; i++) {
		char key[64];

		snprintf(key, sizeof(key), "par/t%d/o%d", w->id, i);
		tap_fill_random(data, len, (uint64_t)(w->id * 100 + i));
		buf_reset(&got);
		if (store_put(w->s, key, data, len, STORE_ALWAYS, NULL, NULL) ||
		    store_get(w->s, key, 0, STORE_TO_END, &got, NULL) ||
		    got.len != len || memcmp(got.data, data, len)) {
			if (!w->errors++)
				snprintf(w->msg, sizeof(w->msg), "%s: %s", key, err_msg());
		}
	}
	buf_free(&got);
	free(data);
	return NULL;
}

static void test_parallel(struct store *s)
{
	pthread_t tid[4];
	struct worker w[4];
	int errors = 0;

	ctl("POST", "/__proxy/reset");
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ s, i, 0, "" };
		pthread_create(&tid[i], NULL, parallel_worker, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		if (w[i].errors)
			diag("thread %d: %d errors, first %s", i, w[i].errors, w[i].msg);
		errors += w[i].errors;
	}
	is_int(errors, 0, "parallel: 4 threads x 8 puts and gets of 300 KiB");
	is_int(stat_of("ops.PutObject"), 32, "parallel: 32 PutObject reached the store");
	is_int(stat_of("rejected"), 0, "parallel: the proxy refused nothing");
}

/* ---- connection reuse ------------------------------------------------------ */

/* Local ports of this machine's established TCP connections to port. */
static void connected_ports(int port, int *seen, int *nseen, int max)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned lport, rport, st;

		if (sscanf(line, " %*d: %*8x:%x %*8x:%x %x", &lport, &rport, &st) != 3)
			continue;
		if ((int)rport != port || st != 1)	/* 1: ESTABLISHED */
			continue;
		int known = 0;

		for (int i = 0; i < *nseen; i++)
			known |= seen[i] == (int)lport;
		if (!known && *nseen < max)
			seen[(*nseen)++] = (int)lport;
	}
	fclose(f);
}

static void test_reuse(struct store *s)
{
	int before[64], nbefore = 0, seen[64], nseen = 0, fresh = 0, errors = 0;

	store_put(s, "reuse", "x", 1, STORE_ALWAYS, NULL, NULL);
	/* Idle pooled connections of earlier tests are not new ones. */
	connected_ports(srv.port, before, &nbefore, 64);
	for (int i = 0; i < 30; i++) {
		errors += store_head(s, "reuse", NULL) != 0;
		connected_ports(srv.port, seen, &nseen, 64);
	}
	for (int i = 0; i < nseen; i++) {
		int known = 0;

		for (int j = 0; j < nbefore; j++)
			known |= seen[i] == before[j];
		fresh += !known;
	}
	is_int(errors, 0, "reuse: 30 sequential heads");
	ok(nseen >= 1 && fresh <= 1, "reuse: 30 requests opened %d new connection(s)", fresh);
}

/* ---- refused credentials and signatures ------------------------------------- */

static void test_auth(void)
{
	struct store_opts o;
	struct store *s;
	struct buf got = BUF_INIT;
	int rc;

	s3srv_store_opts(&srv, &o);
	o.secret_key = "wrong/secret/key/that/the/proxy/will/refuse";
	s = s3srv_store_open("auth", &o);
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "x", "data", 4, STORE_ALWAYS, NULL, NULL);
	is_int(rc, -EACCES, "auth: a wrong secret key is -EACCES");
	ok(strstr(err_msg(), "SignatureDoesNotMatch") != NULL,
	   "auth: the message has the store's code: %s", err_msg());
	ok(strstr(err_msg(), "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") != NULL,
	   "auth: the message says what to check");
	ok(strstr(err_msg(), o.secret_key) == NULL && strstr(err_msg(), S3SRV_SECRET_KEY) == NULL,
	   "auth: the message carries no secret");
	is_int(stat_of("requests"), 1, "auth: one request, no retry storm");
	store_close(s);

	s3srv_store_opts(&srv, &o);
	o.access_key = "AKIANOTKNOWNTOPROXY9";
	s = s3srv_store_open("auth", &o);
	ctl("POST", "/__proxy/reset");
	rc = store_get(s, "x", 0, STORE_TO_END, &got, NULL);
	ok(rc == -EACCES && strstr(err_msg(), "InvalidAccessKeyId"),
	   "auth: an unknown access key is -EACCES, InvalidAccessKeyId: %s", err_msg());
	is_int(stat_of("requests"), 1, "auth: one request");
	store_close(s);

	/* Signed for another region: the signature itself is wrong for the
	 * proxy, which recomputes it. */
	s3srv_store_opts(&srv, &o);
	o.region = "us-east-1";
	s = s3srv_store_open("auth", &o);
	ctl("POST", "/__proxy/reset");
	rc = store_head(s, "x", NULL);
	is_int(rc, -EACCES, "auth: a request signed for the wrong region is refused");
	ok(stat_of("status.403") == 1 && stat_of("requests") == 1,
	   "auth: the proxy answered 403 once");
	store_close(s);

	/* A session token is signed and sent. */
	s3srv_store_opts(&srv, &o);
	o.session_token = "FwoGZXIvYXdzEXAMPLETOKEN//+=";
	s = s3srv_store_open("auth", &o);
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "token", "t", 1, STORE_ALWAYS, NULL, NULL);
	ok(rc == 0 && stat_of("rejected") == 0,
	   "auth: a request with x-amz-security-token passes the verifier %s", rc ? err_msg() : "");
	store_close(s);
	buf_free(&got);
}

/* ---- options, environment, credentials file ------------------------------- */

static void test_open_options(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
		"AWS_REGION", "AWS_DEFAULT_REGION", "CAIRN_S3_ADDRESSING",
	};
	char *dir = tap_mkdtemp("s3creds"), *path, *home = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;
	struct store_opts o;
	struct store *s = NULL;
	FILE *f;
	int rc;

	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++)
		unsetenv(vars[i]);
	setenv("HOME", dir, 1);
	memset(&o, 0, sizeof(o));
	o.endpoint = srv.endpoint;
	rc = store_open("s3://" S3SRV_BUCKET "/opt", &o, &s);
	ok(rc == -EACCES && strstr(err_msg(), "no S3 credentials") &&
	   strstr(err_msg(), "AWS_ACCESS_KEY_ID"),
	   "open: no credentials anywhere is a clear error: %s", err_msg());

	setenv("AWS_ACCESS_KEY_ID", S3SRV_ACCESS_KEY, 1);
	rc = store_open("s3://" S3SRV_BUCKET "/opt", &o, &s);
	ok(rc == -EACCES && strstr(err_msg(), "AWS_SECRET_ACCESS_KEY"),
	   "open: half a key pair is a clear error: %s", err_msg());
	unsetenv("AWS_ACCESS_KEY_ID");

	/* The shared credentials file, profile from AWS_PROFILE. */
	path = xasprintf("%s/creds", dir);
	f = fopen(path, "w");
	fprintf(f, "[default]\naws_access_key_id = WRONGWRONGWRONG\naws_secret_access_key = x\n\n"
		"# cairn's\n[cairn]\naws_access_key_id = %s\n  aws_secret_access_key=%s  \n",
		S3SRV_ACCESS_KEY, S3SRV_SECRET_KEY);
	fclose(f);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	setenv("AWS_PROFILE", "cairn", 1);
	setenv("CAIRN_S3_ADDRESSING", "path", 1);
	setenv("AWS_REGION", S3SRV_REGION, 1);
	rc = store_open("s3://" S3SRV_BUCKET "/opt", &o, &s);
	is_int(rc, 0, "open: credentials from a profile of the shared file %s", rc ? err_msg() : "");
	if (rc == 0) {
		rc = store_put(s, "from-profile", "p", 1, STORE_ALWAYS, NULL, NULL);
		is_int(rc, 0, "open: and the store accepts them %s", rc ? err_msg() : "");
		store_close(s);
	} else {
		tap_skip(1, "no store");
	}
	unsetenv("AWS_PROFILE");
	rc = store_open("s3://" S3SRV_BUCKET "/opt", &o, &s);
	if (rc == 0) {
		rc = store_head(s, "from-profile", NULL);
		is_int(rc, -EACCES, "open: the default profile's (wrong) key is used without AWS_PROFILE");
		store_close(s);
	} else {
		ok(0, "open with the default profile: %s", err_msg());
	}

	/* Endpoint from the environment; region defaults to auto with one. */
	setenv("AWS_ACCESS_KEY_ID", S3SRV_ACCESS_KEY, 1);
	setenv("AWS_SECRET_ACCESS_KEY", S3SRV_SECRET_KEY, 1);
	setenv("AWS_ENDPOINT_URL", srv.endpoint, 1);
	unsetenv("AWS_REGION");
	rc = store_open("s3://" S3SRV_BUCKET "/opt", NULL, &s);
	if (rc == 0) {
		rc = store_head(s, "from-profile", NULL);
		is_int(rc, 0, "open: endpoint and keys from the environment, region auto %s",
		       rc ? err_msg() : "");
		store_close(s);
	} else {
		ok(0, "open from the environment: %s", err_msg());
	}

	o.endpoint = "ftp://example.com";
	is_int(store_open("s3://" S3SRV_BUCKET, &o, &s), -EINVAL, "open: a non-HTTP endpoint is refused");
	o.endpoint = "http://127.0.0.1:99999";
	is_int(store_open("s3://" S3SRV_BUCKET, &o, &s), -EINVAL, "open: a bad port is refused");
	o.endpoint = "http://user:pw@127.0.0.1:9000";
	ok(store_open("s3://" S3SRV_BUCKET, &o, &s) == -EINVAL && !strstr(err_msg(), "pw"),
	   "open: credentials in the endpoint URL are refused, and not repeated");
	o.endpoint = srv.endpoint;
	o.part_size = 1 * MIB;
	ok(store_open("s3://" S3SRV_BUCKET, &o, &s) == -EINVAL && strstr(err_msg(), "5 MiB"),
	   "open: a part size under 5 MiB is refused: %s", err_msg());
	o.part_size = 0;
	setenv("CAIRN_S3_ADDRESSING", "sideways", 1);
	is_int(store_open("s3://" S3SRV_BUCKET, &o, &s), -EINVAL,
	       "open: a bad CAIRN_S3_ADDRESSING is refused");

	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++)
		unsetenv(vars[i]);
	if (home)
		setenv("HOME", home, 1);
	free(home);
	free(path);
	tap_rmtree(dir);
	free(dir);
}

/* ---- virtual-host addressing --------------------------------------------- */


static void test_vhost(void)
{
	struct store_opts o;
	struct store *s;
	char endpoint[128], connect_to[160];
	struct buf got = BUF_INIT;
	int rc, n = 0;

	s3srv_store_opts(&srv, &o);
	snprintf(endpoint, sizeof(endpoint), "http://%s:%d", S3SRV_VHOST_SUFFIX, srv.port);
	snprintf(connect_to, sizeof(connect_to), "%s.%s:%d:127.0.0.1:%d", S3SRV_BUCKET,
		 S3SRV_VHOST_SUFFIX, srv.port, srv.port);
	o.endpoint = endpoint;
	o.addressing = STORE_VIRTUAL_HOST;
	o.connect_to = connect_to;
	s = s3srv_store_open("vhost", &o);
	ctl("POST", "/__proxy/reset");
	rc = store_put(s, "a b+c/ü", "virtual", 7, STORE_ALWAYS, NULL, NULL);
	is_int(rc, 0, "vhost: put via %s.%s %s", S3SRV_BUCKET, S3SRV_VHOST_SUFFIX, rc ? err_msg() : "");
	rc = store_get(s, "a b+c/ü", 0, STORE_TO_END, &got, NULL);
	ok(rc == 0 && got.len == 7 && !memcmp(got.data, "virtual", 7), "vhost: get");
	rc = store_list(s, "", count_key, &n);
	ok(rc == 0 && n == 1, "vhost: list finds the key (%d)", n);
	is_int(stat_of("rejected"), 0, "vhost: the proxy verified every signature");
	store_close(s);

	/* What the vhost store wrote is where path-style finds it. */
	s3srv_store_opts(&srv, &o);
	s = s3srv_store_open("vhost", &o);
	buf_reset(&got);
	rc = store_get(s, "a b+c/ü", 0, STORE_TO_END, &got, NULL);
	ok(rc == 0 && got.len == 7, "vhost: the same object through path-style");
	store_del(s, "a b+c/ü");
	store_close(s);
	buf_free(&got);
}

/* ---- outages and faults -------------------------------------------------- */

static void test_outage(struct store *s)
{
	size_t len = 2 * MIB;
	uint8_t *data = xmalloc(len);
	struct buf got = BUF_INIT;
	double t0;
	int rc;

	tap_fill_random(data, len, 99);
	store_put(s, "outage/obj", data, len, STORE_ALWAYS, NULL, NULL);

	ctl("POST", "/__proxy/outage?ms=3000");
	usleep(200 * 1000);	/* the proxy goes down once it has answered */
	t0 = now();
	rc = store_get(s, "outage/obj", 0, STORE_TO_END, &got, NULL);
	is_int(rc, 0, "outage: a get during a 3 s outage succeeds %s", rc ? err_msg() : "");
	is_mem(got.data, got.len, data, len, "outage: with the right bytes");
	ok(now() - t0 >= 2.0, "outage: it waited the outage out (%.1f s)", now() - t0);

	data[0] ^= 1;
	ctl("POST", "/__proxy/outage?ms=3000");
	usleep(200 * 1000);	/* the proxy goes down once it has answered */
	t0 = now();
	rc = store_put(s, "outage/obj", data, len, STORE_ALWAYS, NULL, NULL);
	is_int(rc, 0, "outage: a put during a 3 s outage succeeds %s", rc ? err_msg() : "");
	ok(now() - t0 >= 2.0, "outage: it waited the outage out (%.1f s)", now() - t0);
	buf_reset(&got);
	store_get(s, "outage/obj", 0, STORE_TO_END, &got, NULL);
	is_mem(got.data, got.len, data, len, "outage: the put landed");
	buf_free(&got);
	free(data);
}

static void test_faults(struct store *s)
{
	size_t len = 1 * MIB + 77;
	uint8_t *data = xmalloc(len);
	struct store_info info;
	struct buf got = BUF_INIT;
	int rc;

	tap_fill_random(data, len, 5);
	store_put(s, "fault/obj", data, len, STORE_ALWAYS, NULL, NULL);

	ctl("POST", "/__proxy/reset");
	ctl("POST", "/__proxy/fault?kind=status:503&count=2&method=GET");
	rc = store_get(s, "fault/obj", 0, STORE_TO_END, &got, NULL);
	ok(rc == 0 && got.len == len && !memcmp(got.data, data, len),
	   "fault: two 503 SlowDown, then the get succeeds %s", rc ? err_msg() : "");
	ok(stat_of("status.503") == 2 && stat_of("get.count") == 3,
	   "fault: three GETs reached the proxy, two refused");

	ctl("POST", "/__proxy/reset");
	ctl("POST", "/__proxy/fault?kind=status:500&count=2&method=PUT");
	rc = store_put(s, "fault/put", data, 1000, STORE_ALWAYS, NULL, NULL);
	ok(rc == 0 && stat_of("put.count") == 3, "fault: two 500 InternalError, then the put succeeds");

	ctl("POST", "/__proxy/reset");
	ctl("POST", "/__proxy/fault?kind=short&method=GET");
	buf_reset(&got);
	rc = store_get(s, "fault/obj", 0, STORE_TO_END, &got, NULL);
	ok(rc == 0 && got.len == len && !memcmp(got.data, data, len),
	   "fault: a short body is retried, never a truncated success %s", rc ? err_msg() : "");
	ok(stat_of("faults") == 1 && stat_of("get.count") == 2, "fault: one short answer, one retry");

	ctl("POST", "/__proxy/reset");
	ctl("POST", "/__proxy/fault?kind=short&method=GET");
	buf_reset(&got);
	rc = store_get(s, "fault/obj", 1000, 300000, &got, &info);
	ok(rc == 0 && got.len == 300000 && !memcmp(got.data, data + 1000, 300000) &&
	   info.size == len, "fault: a short range body is retried too");

	ctl("POST", "/__proxy/reset");
	ctl("POST", "/__proxy/fault?kind=reset&method=PUT");
	rc = store_put(s, "fault/reset", data, len, STORE_ALWAYS, NULL, NULL);
	ok(rc == 0 && stat_of("put.count") == 2, "fault: a reset connection is retried %s",
	   rc ? err_msg() : "");

	ctl("POST", "/__proxy/reset");
	ctl("POST", "/__proxy/fault?kind=reset&method=HEAD&count=3");
	rc = store_head(s, "fault/obj", &info);
	ok(rc == 0 && info.size == len, "fault: three resets on HEAD, then an answer");

	/* The store applies a create-only put but the answer is lost: the
	 * retry meets 412, sees its own bytes, and reports success. */
	store_del(s, "fault/cond");
	ctl("POST", "/__proxy/reset");
	ctl("POST", "/__proxy/fault?kind=reset-after&method=PUT");
	rc = store_put(s, "fault/cond", "mine-1234", 9, STORE_IF_NONE_MATCH, NULL, &info);
	ok(rc == 0 && info.etag[0], "fault: a create-only put whose answer was lost succeeds %s",
	   rc ? err_msg() : "");
	rc = store_put(s, "fault/cond", "theirs", 6, STORE_IF_NONE_MATCH, NULL, NULL);
	is_int(rc, -EEXIST, "fault: and the key then exists");

	/* A stalled answer (no byte for 8 s) is dropped by the low-speed
	 * limit (a third of a 9 s budget) and retried. */
	{
		struct store_opts o;
		struct store *quick;
		double t0;

		s3srv_store_opts(&srv, &o);
		o.retry_seconds = 9;
		quick = s3srv_store_open("t1", &o);
		ctl("POST", "/__proxy/reset");
		ctl("POST", "/__proxy/fault?kind=delay:8000&method=GET");
		buf_reset(&got);
		t0 = now();
		rc = store_get(quick, "fault/obj", 0, 10, &got, NULL);
		ok(rc == 0 && got.len == 10 && !memcmp(got.data, data, 10) && now() - t0 < 7.5,
		   "fault: a stalled answer times out and is retried (%.1f s) %s", now() - t0,
		   rc ? err_msg() : "");
		store_close(quick);
	}
	ctl("POST", "/__proxy/reset");
	buf_free(&got);
	free(data);
}

static void test_del_many(struct store *s)
{
	enum { N = 2300 };
	char **keys = xcalloc(N, sizeof(*keys));
	int bad = 0, count = 0, rc;

	for (int i = 0; i < N; i++) {
		keys[i] = xasprintf("dm/k%05d", i);
		if (i % 10 == 0)	/* most do not exist: that is fine */
			bad |= store_put(s, keys[i], "d", 1, STORE_ALWAYS, NULL, NULL);
	}
	ctl("POST", "/__proxy/reset");
	rc = store_del_many(s, (const char *const *)keys, N);
	is_int(rc, 0, "del_many: %d keys %s", N, rc ? err_msg() : "");
	is_int(stat_of("ops.DeleteObjects"), 3, "del_many: in batches of 1000");
	is_int(stat_of("rejected"), 0, "del_many: Content-MD5 accepted");
	rc = store_list(s, "dm/", count_key, &count);
	ok(rc == 0 && count == 0 && !bad, "del_many: every object is gone (%d left)", count);
	for (int i = 0; i < N; i++)
		free(keys[i]);
	free(keys);
}

/* ---- AWS SDK interop ------------------------------------------------------- */

static int run_sdk(const char *cmd, const char *key, const char *file)
{
	const char *node = getenv("NODE") && *getenv("NODE") ? getenv("NODE") : "node";
	const char *src = getenv("CAIRN_SRCDIR") && *getenv("CAIRN_SRCDIR") ? getenv("CAIRN_SRCDIR") : ".";
	char *script = xasprintf("%s/tests/s3/sdk-interop.js", src);
	pid_t pid = fork();
	int status = -1;

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, 1);	/* the ETag it prints is not TAP */
		execlp(node, node, script, "--endpoint", srv.endpoint, "--bucket", S3SRV_BUCKET,
		       cmd, key, file, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
	free(script);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = f && fwrite(data, 1, len, f) == len ? 0 : -1;

	if (f && fclose(f))
		rc = -1;
	return rc;
}

static int read_file(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;

	if (!f)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(out, chunk, n);
	fclose(f);
	return 0;
}

static void test_sdk_interop(struct store *s)
{
	char *dir = tap_mkdtemp("sdk"), *in = xasprintf("%s/in", dir), *outp = xasprintf("%s/out", dir);
	size_t len = 3 * MIB + 5, big = 12 * MIB + 1;
	uint8_t *data = xmalloc(big);
	struct buf got = BUF_INIT;
	struct store_info info;
	int rc;

	tap_fill_random(data, big, 77);
	/* cairn writes, the SDK reads (plain and multipart). */
	rc = store_put(s, "interop/cairn wrote+ü", data, len, STORE_ALWAYS, NULL, NULL);
	is_int(rc, 0, "interop: cairn puts %zu bytes", len);
	rc = run_sdk("get", "t1/interop/cairn wrote+ü", outp);
	is_int(rc, 0, "interop: the AWS SDK gets it");
	read_file(outp, &got);
	is_mem(got.data, got.len, data, len, "interop: the SDK reads cairn's bytes");

	/* The SDK writes, cairn reads. */
	write_file(in, data + 1, len);
	rc = run_sdk("put", "t1/interop/sdk wrote", in);
	is_int(rc, 0, "interop: the AWS SDK puts %zu bytes", len);
	buf_reset(&got);
	rc = store_get(s, "interop/sdk wrote", 0, STORE_TO_END, &got, &info);
	ok(rc == 0 && got.len == len && !memcmp(got.data, data + 1, len),
	   "interop: cairn reads the SDK's bytes %s", rc ? err_msg() : "");

	write_file(in, data, big);
	rc = run_sdk("mput", "t1/interop/sdk multipart", in);
	is_int(rc, 0, "interop: the AWS SDK uploads %zu bytes in 5 MiB parts", big);
	buf_reset(&got);
	rc = store_get(s, "interop/sdk multipart", 0, STORE_TO_END, &got, &info);
	ok(rc == 0 && got.len == big && !memcmp(got.data, data, big) && strstr(info.etag, "-3"),
	   "interop: cairn reads the SDK's multipart object (ETag %s) %s", info.etag,
	   rc ? err_msg() : "");
	buf_free(&got);
	free(data);
	unlink(in);
	unlink(outp);
	tap_rmtree(dir);
	free(dir);
	free(in);
	free(outp);
}

/* ---- TLS ------------------------------------------------------------------- */

/* A self-signed certificate for IP 127.0.0.1, valid until 2126, and its key:
 * test material only, made with
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
 *     -days 36500 -subj "/CN=cairn test 127.0.0.1" -addext subjectAltName=IP:127.0.0.1 */
static const char test_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBpjCCAUygAwIBAgIUFVT+geUR/yBI5oTrdeENxiGo5m8wCgYIKoZIzj0EAwIw\n"
	"HzEdMBsGA1UEAwwUY2Fpcm4gdGVzdCAxMjcuMC4wLjEwIBcNMjYxMTI0MTcyNzEy\n"
	"WhgPMjEyNjEwMzExNzI3MTJaMB8xHTAbBgNVBAMMFGNhaXJuIHRlc3QgMTI3LjAu\n"
	"MC4xMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbL7FyYgS8sZUffU+0fhOwRW8\n"
	"+EtoWWwwF+WQSWpjYVU5HhFxR4s9YVeBJw/v4tFN5EuMmUXKMdkh793yS18Qj6Nk\n"
	"MGIwHQYDVR0OBBYEFEWHUOsWB6Z78qlWBL7L3rSYjaBvMB8GA1UdIwQYMBaAFEWH\n"
	"UOsWB6Z78qlWBL7L3rSYjaBvMA8GA1UdEwEB/wQFMAMBAf8wDwYDVR0RBAgwBocE\n"
	"fwAAATAKBggqhkjOPQQDAgNIADBFAiAvokT98n0at76TsIZmJsWFaqH+AhQ0++wL\n"
	"3uqaKJIMjQIhAIPFzL8ooVeBcBn/2XsJGgZbF6/9Jy+qeI2b6UYiOs9U\n"
	"-----END CERTIFICATE-----\n";
static const char test_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2eaDvjR+7r9nJ2QD\n"
	"L+rLk5lzm5eMrGgKwRXmm1koWrOhRANCAARsvsXJiBLyxlR99T7R+E7BFbz4S2hZ\n"
	"bDAX5ZBJamNhVTkeEXFHiz1hV4EnD+/i0U3kS4yZRcox2SHv3fJLXxCP\n"
	"-----END PRIVATE KEY-----\n";

/* An HTTPS server that answers every request 404 NoSuchKey. */
static const char tls_server_js[] =
	"const https = require('https'), fs = require('fs');"
	"const body = '<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
	"<Message>tls test</Message></Error>';"
	"const s = https.createServer({ cert: fs.readFileSync(process.argv[1]),"
	"  key: fs.readFileSync(process.argv[2]) }, (q, r) => {"
	"  r.writeHead(404, { 'content-type': 'application/xml',"
	"    'content-length': Buffer.byteLength(body) }); r.end(body); });"
	"s.listen(0, '127.0.0.1', () => console.log(s.address().port));"
	"process.stdin.on('end', () => process.exit(0)); process.stdin.resume();";

static void test_tls(void)
{
	const char *node = getenv("NODE") && *getenv("NODE") ? getenv("NODE") : "node";
	char *dir = tap_mkdtemp("tls"), *crt = xasprintf("%s/crt.pem", dir);
	char *key = xasprintf("%s/key.pem", dir), endpoint[64], line[32];
	int in[2], outp[2], port = 0, status, rc;
	struct store_opts o;
	struct store *s;
	struct buf got = BUF_INIT;
	FILE *f;
	pid_t pid;
	double t0;

	if (write_file(crt, test_cert, strlen(test_cert)) || write_file(key, test_key, strlen(test_key)) ||
	    pipe(in) < 0 || pipe(outp) < 0)
		tap_bail("tls: cannot set up: %m");
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(in[0], 0);
		dup2(outp[1], 1);
		close(in[1]);
		close(outp[0]);
		execlp(node, node, "-e", tls_server_js, crt, key, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(outp[1]);
	f = fdopen(outp[0], "r");
	if (!f || !fgets(line, sizeof(line), f) || sscanf(line, "%d", &port) != 1)
		tap_bail("tls: the HTTPS test server did not start");
	snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d", port);

	s3srv_store_opts(&srv, &o);
	o.endpoint = endpoint;
	s = s3srv_store_open("tls", &o);
	t0 = now();
	rc = store_get(s, "x", 0, STORE_TO_END, &got, NULL);
	ok(rc == -EIO && strstr(err_msg(), "AWS_CA_BUNDLE") && now() - t0 < 5,
	   "tls: a certificate the system does not trust is refused at once: %s", err_msg());
	store_close(s);

	o.ca_bundle = crt;
	s = s3srv_store_open("tls", &o);
	rc = store_get(s, "x", 0, STORE_TO_END, &got, NULL);
	is_int(rc, -ENOENT, "tls: with ca_bundle the server is trusted (its answer: %s)", err_msg());
	store_close(s);

	setenv("AWS_CA_BUNDLE", crt, 1);
	o.ca_bundle = NULL;
	s = s3srv_store_open("tls", &o);
	rc = store_get(s, "x", 0, STORE_TO_END, &got, NULL);
	is_int(rc, -ENOENT, "tls: AWS_CA_BUNDLE does the same");
	store_close(s);
	unsetenv("AWS_CA_BUNDLE");

	close(in[1]);		/* the server exits on EOF */
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	fclose(f);
	buf_free(&got);
	unlink(crt);
	unlink(key);
	tap_rmtree(dir);
	free(dir);
	free(crt);
	free(key);
}

/* ---- the server gone for good ----------------------------------------------- */

static void test_server_gone(void)
{
	struct store_opts o;
	struct store *s;
	struct buf got = BUF_INIT;
	char endpoint[sizeof(srv.endpoint)];
	double t0;
	int rc;

	s3srv_store_opts(&srv, &o);
	o.retry_seconds = 4;
	s = s3srv_store_open("gone", &o);
	store_put(s, "obj", "x", 1, STORE_ALWAYS, NULL, NULL);
	memcpy(endpoint, srv.endpoint, sizeof(endpoint));
	s3srv_stop(&srv);
	t0 = now();
	rc = store_get(s, "obj", 0, STORE_TO_END, &got, NULL);
	ok(rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EIO,
	   "gone: a get with the server gone fails (%d, %s)", rc, err_kind(rc));
	ok(now() - t0 >= 3.0 && now() - t0 < 15.0,
	   "gone: after the 4 s retry budget (%.1f s)", now() - t0);
	ok(strstr(err_msg(), "gone/obj") && strstr(err_msg(), endpoint),
	   "gone: the message names the object and the endpoint: %s", err_msg());
	ok(strstr(err_msg(), "CAIRN_S3_RETRY_SECONDS") || strstr(err_msg(), "reachable"),
	   "gone: and says what to do");
	rc = store_put(s, "obj", "y", 1, STORE_ALWAYS, NULL, NULL);
	ok(rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EIO, "gone: a put fails the same way");
	store_close(s);
	buf_free(&got);
}

int main(void)
{
	struct store_opts o;
	struct store *s;

	s3srv_start(&srv);
	diag("S3 test server on %s", srv.endpoint);
	s3srv_store_opts(&srv, &o);
	s = s3srv_store_open("t1", &o);
	store_suite_run(s, "s3");
	test_multipart();
	test_parallel(s);
	test_reuse(s);
	test_auth();
	test_open_options();
	test_vhost();
	test_faults(s);
	test_outage(s);
	test_del_many(s);
	test_sdk_interop(s);
	test_tls();
	store_close(s);
	test_server_gone();
	s3srv_stop(&srv);
	return tap_done();
}
