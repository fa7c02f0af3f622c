/*
 * s3_http.c - one signed S3 request over libcurl, retried within a time
 * budget (see s3_impl.h): the shared connection context, a pool of easy
 * handles, response header parsing, and the error lines.
 *
 * Must stay true: every attempt is signed afresh (new x-amz-date) with the
 * SHA-256 of the exact body sent; a retry starts the caller's output buffer
 * over, so a failed attempt never leaves a partial body behind; messages name
 * the object and the endpoint and never carry the secret key.  Threads share
 * only ctx->share (DNS and TLS sessions, locked per data kind) and the handle
 * pool (pool_lock); each easy handle is used by one thread at a time.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "err.h"
#include "log.h"
#include "s3_impl.h"

/* ---- context ------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct s3_ctx *ctx = arg;

	(void)h;
	(void)access;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&ctx->share_lock[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct s3_ctx *ctx = arg;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&ctx->share_lock[data]);
}

/* Splits scheme://host[:port][/] into ctx's scheme, host and hostport. */
static int parse_endpoint(struct s3_ctx *ctx, const char *url)
{
	const char *p, *host, *end, *port = NULL;
	size_t hostlen;
	long portnum = 0;

	if (!strncasecmp(url, "https://", 8)) {
		ctx->scheme = xstrdup("https");
		host = url + 8;
	} else if (!strncasecmp(url, "http://", 7)) {
		ctx->scheme = xstrdup("http");
		host = url + 7;
	} else {
		return err_set(-EINVAL, "S3 endpoint '%s' must start with https:// or http://", url);
	}
	end = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(end - host)))	/* not echoed: it may hold a secret */
		return err_set(-EINVAL, "the S3 endpoint URL carries credentials; put them in "
			       "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY instead");
	if (*end && strcmp(end, "/") != 0)
		return err_set(-EINVAL, "S3 endpoint '%s' must be scheme://host[:port], without a path",
			       url);
	if (*host == '[') {
		p = memchr(host, ']', (size_t)(end - host));
		if (!p)
			return err_set(-EINVAL, "S3 endpoint '%s': unterminated IPv6 address", url);
		hostlen = (size_t)(p - host) + 1;
		if (p + 1 < end) {
			if (p[1] != ':')
				return err_set(-EINVAL, "S3 endpoint '%s': bad port", url);
			port = p + 2;
		}
	} else {
		p = memchr(host, ':', (size_t)(end - host));
		hostlen = p ? (size_t)(p - host) : (size_t)(end - host);
		if (p)
			port = p + 1;
	}
	if (!hostlen)
		return err_set(-EINVAL, "S3 endpoint '%s': no host", url);
	if (port) {
		char *stop;

		portnum = strtol(port, &stop, 10);
		if (stop != end || portnum <= 0 || portnum > 65535)
			return err_set(-EINVAL, "S3 endpoint '%s': bad port", url);
	}
	ctx->host = xstrndup(host, hostlen);
	for (char *c = ctx->host; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (port && portnum != (strcmp(ctx->scheme, "https") ? 80 : 443))
		ctx->hostport = xasprintf("%s:%ld", ctx->host, portnum);
	else
		ctx->hostport = xstrdup(ctx->host);
	ctx->endpoint = xasprintf("%s://%s", ctx->scheme, ctx->hostport);
	return 0;
}

int s3_ctx_new(const struct s3_conf *conf, struct s3_ctx **out)
{
	struct s3_ctx *ctx;
	size_t n;
	int rc, i;

	*out = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return err_set(-EIO, "cannot initialise libcurl: %s", curl_easy_strerror(curl_init_rc));
	if (sodium_init() < 0)
		return err_set(-EIO, "cannot initialise libsodium");
	ctx = xcalloc(1, sizeof(*ctx));
	pthread_mutex_init(&ctx->pool_lock, NULL);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&ctx->share_lock[i], NULL);
	rc = parse_endpoint(ctx, conf->endpoint);
	if (rc < 0) {
		s3_ctx_free(ctx);
		return rc;
	}
	ctx->bucket = xstrdup(conf->bucket);
	ctx->vhost = conf->vhost;
	ctx->region = xstrdup(conf->region);
	ctx->access_key = xstrdup(conf->access_key);
	n = strlen(conf->secret_key);
	ctx->secret_key = sodium_malloc(n + 1);
	if (!ctx->secret_key) {
		s3_ctx_free(ctx);
		return err_set(-ENOMEM, "out of secure memory for the S3 secret key");
	}
	memcpy(ctx->secret_key, conf->secret_key, n + 1);
	ctx->session_token = conf->session_token && *conf->session_token ?
			     xstrdup(conf->session_token) : NULL;
	ctx->ca_bundle = conf->ca_bundle && *conf->ca_bundle ? xstrdup(conf->ca_bundle) : NULL;
	if (conf->connect_to && *conf->connect_to)
		ctx->connect_to = curl_slist_append(NULL, conf->connect_to);
	ctx->retry_seconds = conf->retry_seconds;
	ctx->low_speed_time = (long)(conf->retry_seconds / 3);
	if (ctx->low_speed_time < 3)
		ctx->low_speed_time = 3;
	if (ctx->low_speed_time > 30)
		ctx->low_speed_time = 30;

	ctx->share = curl_share_init();
	if (!ctx->share) {
		s3_ctx_free(ctx);
		return err_set(-ENOMEM, "cannot create a libcurl share");
	}
	curl_share_setopt(ctx->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(ctx->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(ctx->share, CURLSHOPT_USERDATA, ctx);
	curl_share_setopt(ctx->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(ctx->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = ctx;
	return 0;
}

void s3_ctx_free(struct s3_ctx *ctx)
{
	int i;

	if (!ctx)
		return;
	/* Every easy handle goes before the share they use. */
	for (i = 0; i < ctx->npool; i++)
		curl_easy_cleanup(ctx->pool[i]);
	if (ctx->share)
		curl_share_cleanup(ctx->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&ctx->share_lock[i]);
	pthread_mutex_destroy(&ctx->pool_lock);
	free(ctx->scheme);
	free(ctx->host);
	free(ctx->hostport);
	free(ctx->endpoint);
	free(ctx->bucket);
	free(ctx->region);
	free(ctx->access_key);
	if (ctx->secret_key)
		sodium_free(ctx->secret_key);	/* wipes */
	if (ctx->session_token) {
		sodium_memzero(ctx->session_token, strlen(ctx->session_token));
		free(ctx->session_token);
	}
	free(ctx->ca_bundle);
	curl_slist_free_all(ctx->connect_to);
	free(ctx);
}

static CURL *handle_get(struct s3_ctx *ctx)
{
	CURL *h = NULL;

	pthread_mutex_lock(&ctx->pool_lock);
	if (ctx->npool)
		h = ctx->pool[--ctx->npool];
	pthread_mutex_unlock(&ctx->pool_lock);
	if (!h)
		h = curl_easy_init();
	return h;
}

static void handle_put(struct s3_ctx *ctx, CURL *h)
{
	pthread_mutex_lock(&ctx->pool_lock);
	if (ctx->npool < S3_POOL_MAX) {
		ctx->pool[ctx->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&ctx->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- one attempt ---------------------------------------------------------- */

void s3_resp_init(struct s3_resp *resp)
{
	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body);
}

void s3_resp_free(struct s3_resp *resp)
{
	buf_free(&resp->body);
}

/* Forgets what the previous attempt answered; keeps the retry history. */
static void resp_reset(struct s3_resp *resp)
{
	resp->status = 0;
	buf_reset(&resp->body);
	resp->received = 0;
	resp->etag[0] = '\0';
	resp->has_length = 0;
	resp->content_length = 0;
	resp->has_range = 0;
	resp->range_first = resp->range_last = resp->range_total = 0;
	resp->request_id[0] = '\0';
	resp->code[0] = '\0';
	resp->message[0] = '\0';
}

struct xfer {
	struct s3_req *req;
	struct s3_resp *resp;
	size_t read_off;
	size_t out_base;	/* req->out's length before this attempt */
	int overflow;		/* the answer was larger than allowed (2: than
				 * req->whole_max, which is final) */
	int sends;		/* times libcurl sent the request head */
};

static void copy_value(char *dst, size_t size, const char *v, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!n)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "bytes FIRST-LAST/TOTAL" */
static void parse_content_range(struct s3_resp *resp, const char *v, size_t n)
{
	const char *dash, *slash, *end = v + n;

	if (n < 6 || strncasecmp(v, "bytes ", 6))
		return;
	v += 6;
	dash = memchr(v, '-', (size_t)(end - v));
	slash = memchr(v, '/', (size_t)(end - v));
	if (!dash || !slash || slash < dash)
		return;
	if (parse_u64(v, (size_t)(dash - v), &resp->range_first) ||
	    parse_u64(dash + 1, (size_t)(slash - dash - 1), &resp->range_last) ||
	    parse_u64(slash + 1, (size_t)(end - slash - 1), &resp->range_total) ||
	    resp->range_last < resp->range_first)
		return;
	resp->has_range = 1;
}

static size_t on_header(char *b, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	struct s3_resp *resp = x->resp;
	size_t len = size * nmemb, nlen;
	const char *colon, *v, *end = b + len;

	while (end > b && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (end - b >= 5 && !strncmp(b, "HTTP/", 5)) {
		/* A new status line (after a 100 Continue, say): start over. */
		const char *sp = memchr(b, ' ', (size_t)(end - b));
		uint64_t st = 0;

		resp_reset(resp);
		if (x->req->out)
			buf_setlen(x->req->out, x->out_base);
		if (sp && end - sp >= 4 && !parse_u64(sp + 1, 3, &st))
			resp->status = (long)st;
		return len;
	}
	colon = memchr(b, ':', (size_t)(end - b));
	if (!colon)
		return len;
	nlen = (size_t)(colon - b);
	v = colon + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (nlen == 4 && !strncasecmp(b, "etag", 4))
		copy_value(resp->etag, sizeof(resp->etag), v, (size_t)(end - v));
	else if (nlen == 14 && !strncasecmp(b, "content-length", 14))
		resp->has_length = !parse_u64(v, (size_t)(end - v), &resp->content_length);
	else if (nlen == 13 && !strncasecmp(b, "content-range", 13))
		parse_content_range(resp, v, (size_t)(end - v));
	else if (nlen == 16 && !strncasecmp(b, "x-amz-request-id", 16))
		copy_value(resp->request_id, sizeof(resp->request_id), v, (size_t)(end - v));
	return len;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * nmemb;

	if (x->req->out && x->resp->status >= 200 && x->resp->status < 300) {
		if (x->req->whole_max && !x->resp->received) {
			/* the headers are in: a larger object is refused unread */
			uint64_t total = x->resp->has_range ? x->resp->range_total :
					 x->resp->has_length ? x->resp->content_length : 0;

			if (total > x->req->whole_max) {
				x->overflow = 2;
				return 0;
			}
		}
		if ((uint64_t)x->resp->received + len > x->req->out_max) {
			x->overflow = x->req->whole_max ? 2 : 1;
			return 0;
		}
		buf_add(x->req->out, p, len);
		x->resp->received += len;
		return len;
	}
	if (x->resp->body.len + len > S3_MAX_META_BODY) {
		x->overflow = 1;
		return 0;
	}
	buf_add(&x->resp->body, p, len);
	return len;
}

/* libcurl silently sends a request again on a fresh connection when a
 * reused one dies before any answer, even a PUT or POST the store may have
 * carried out already; counting request heads is how we notice. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	struct xfer *x = arg;

	(void)h;
	(void)data;
	(void)size;
	if (type == CURLINFO_HEADER_OUT)
		x->sends++;
	return 0;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t want = size * nmemb, left = x->req->body_len - x->read_off;

	if (want > left)
		want = left;
	if (want)
		memcpy(dst, (const uint8_t *)x->req->body + x->read_off, want);
	x->read_off += want;
	return want;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct xfer *x = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->read_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static void build_path(struct s3_ctx *ctx, const char *key, struct buf *path)
{
	if (ctx->vhost) {
		sigv4_encode_path(path, key);
		return;
	}
	buf_addc(path, '/');
	sigv4_uri_encode(path, ctx->bucket, strlen(ctx->bucket), 0);
	if (*key)
		sigv4_encode_path(path, key);
}

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *value)
{
	char *line = xasprintf("%s: %s", name, value);
	struct curl_slist *n = curl_slist_append(l, line);

	free(line);
	if (!n) {
		fprintf(stderr, "cairn: out of memory (curl header list)\n");
		abort();
	}
	return n;
}

static CURLcode attempt(struct s3_ctx *ctx, struct s3_req *req, struct s3_resp *resp,
			const char *payload_hash, long connect_ms, char *errbuf, int *overflow)
{
	struct buf path = BUF_INIT, query = BUF_INIT, url = BUF_INIT, auth = BUF_INIT;
	struct sigv4_header *hd;
	struct sigv4_creds creds = { ctx->access_key, ctx->secret_key, ctx->region, "s3" };
	struct sigv4_request sr;
	struct curl_slist *hl = NULL;
	struct xfer x = { req, resp, 0, req->out ? req->out->len : 0, 0, 0 };
	char date[SIGV4_DATE_LEN + 1], *host;
	CURL *h;
	CURLcode cc;
	size_t nh = 0, i;

	errbuf[0] = '\0';
	*overflow = 0;
	host = ctx->vhost ? xasprintf("%s.%s", ctx->bucket, ctx->hostport) : xstrdup(ctx->hostport);
	build_path(ctx, req->key ? req->key : "", &path);
	sigv4_query(&query, req->query, req->nquery);
	buf_printf(&url, "%s://%s%s%s%s", ctx->scheme, host, buf_str(&path),
		   query.len ? "?" : "", buf_str(&query));
	sigv4_date((long long)time(NULL), date);

	hd = xcalloc(req->nheaders + 4, sizeof(*hd));
	hd[nh++] = (struct sigv4_header){ "host", host };
	hd[nh++] = (struct sigv4_header){ "x-amz-content-sha256", payload_hash };
	hd[nh++] = (struct sigv4_header){ "x-amz-date", date };
	if (ctx->session_token)
		hd[nh++] = (struct sigv4_header){ "x-amz-security-token", ctx->session_token };
	for (i = 0; i < req->nheaders; i++)
		hd[nh++] = req->headers[i];
	sr = (struct sigv4_request){ req->method, buf_str(&path), req->query, req->nquery,
				     hd, nh, payload_hash };
	if (sigv4_sign(&creds, &sr, date, 0, &auth, NULL, NULL) < 0) {
		snprintf(errbuf, CURL_ERROR_SIZE, "cannot sign the request: %s", err_msg());
		cc = CURLE_BAD_FUNCTION_ARGUMENT;
		goto out_nohandle;
	}
	for (i = 0; i < nh; i++)
		hl = add_header(hl, hd[i].name, hd[i].value);
	hl = add_header(hl, "Authorization", buf_str(&auth));
	hl = curl_slist_append(hl, "Expect:");	/* no 100-continue round trip */

	h = handle_get(ctx);
	if (!h) {
		snprintf(errbuf, CURL_ERROR_SIZE, "cannot create a libcurl handle");
		cc = CURLE_OUT_OF_MEMORY;
		goto out_nohandle;
	}
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_SHARE, ctx->share);
	curl_easy_setopt(h, CURLOPT_URL, buf_str(&url));
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "cairn/" PACKAGE_VERSION);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, &x);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);	/* only feeds on_debug */
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, ctx->low_speed_time);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (ctx->connect_to)
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, ctx->connect_to);
	if (ctx->ca_bundle) {
		/* AWS_CA_BUNDLE is the only trust: not also libcurl's CA dir */
		curl_easy_setopt(h, CURLOPT_CAINFO, ctx->ca_bundle);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}
	if (!strcmp(req->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(req->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(req->method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
	} else if (!strcmp(req->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body_len ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	}
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK) {
		long st = 0;

		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
		resp->status = st;
	}
	*overflow = x.overflow;
	if (x.sends > 1)
		resp->maybe_applied = 1;
	/* Drop the handle's link to this request's buffers before pooling. */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, NULL);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, NULL);
	handle_put(ctx, h);
out_nohandle:
	curl_slist_free_all(hl);
	free(hd);
	free(host);
	buf_free(&path);
	buf_free(&query);
	buf_free(&url);
	buf_free(&auth);
	return cc;
}

/* ---- retries -------------------------------------------------------------- */

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]. */
static double backoff(int attempt)
{
	const uint32_t base_ms = 100, cap_ms = 5000;
	uint32_t ceil_ms = base_ms;

	for (int i = 1; i < attempt && ceil_ms < cap_ms; i++)
		ceil_ms *= 2;
	if (ceil_ms > cap_ms)
		ceil_ms = cap_ms;
	return (double)randombytes_uniform(ceil_ms + 1) / 1000.0;
}

static int curl_transient(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:	/* network not up yet, at boot */
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

/* Could the store have carried out a request whose attempt failed so? */
static int curl_maybe_applied(CURLcode cc)
{
	return cc != CURLE_COULDNT_RESOLVE_HOST && cc != CURLE_COULDNT_CONNECT &&
	       cc != CURLE_SSL_CONNECT_ERROR;
}

static int status_transient(const struct s3_resp *r)
{
	if (r->status >= 500 || r->status == 429)
		return 1;
	if (!strcmp(r->code, "SlowDown") || !strcmp(r->code, "RequestTimeout") ||
	    !strcmp(r->code, "InternalError") || !strcmp(r->code, "ServiceUnavailable") ||
	    !strcmp(r->code, "ConditionalRequestConflict") || !strcmp(r->code, "OperationAborted"))
		return 1;
	return 0;
}

void s3_describe(struct s3_ctx *ctx, const struct s3_req *req, struct buf *out)
{
	if (req->key && *req->key)
		buf_printf(out, "%s %s/%s at %s", req->what ? req->what : req->method,
			   ctx->bucket, req->key, ctx->endpoint);
	else
		buf_printf(out, "%s bucket %s at %s", req->what ? req->what : req->method,
			   ctx->bucket, ctx->endpoint);
}

static void why_status(struct s3_resp *resp)
{
	snprintf(resp->why, sizeof(resp->why), "HTTP %ld%s%s%s%s", resp->status,
		 resp->code[0] ? " " : "", resp->code, resp->message[0] ? ": " : "",
		 resp->message);
}

enum last_kind { LAST_NONE, LAST_NO_ANSWER, LAST_ANSWER, LAST_INVALID };

int s3_perform(struct s3_ctx *ctx, struct s3_req *req, struct s3_resp *resp)
{
	char hash[SIGV4_SHA256_HEX_LEN + 1], errbuf[CURL_ERROR_SIZE];
	size_t base = req->out ? req->out->len : 0;
	double start = now_seconds();
	double deadline = start + (req->budget > 0 ? req->budget : ctx->retry_seconds);
	enum last_kind last = LAST_NONE;
	int fail_code = 0, attempt_no;
	struct buf where = BUF_INIT;

	if (!req->out_max)
		req->out_max = UINT64_MAX;
	sigv4_sha256_hex(req->body_len ? req->body : "", req->body_len, hash);
	resp->why[0] = '\0';
	resp->maybe_applied = 0;
	resp->invalid_code = 0;
	for (attempt_no = 1;; attempt_no++) {
		double left = deadline - now_seconds(), pause;
		long connect_ms = left > 10 ? 10000 : left < 1 ? 1000 : (long)(left * 1000);
		int overflow, transient = 0, v;
		CURLcode cc;

		resp_reset(resp);
		if (req->out)
			buf_setlen(req->out, base);
		cc = attempt(ctx, req, resp, hash, connect_ms, errbuf, &overflow);
		resp->attempts = attempt_no;
		if (cc != CURLE_OK) {
			if (overflow == 2) {
				fail_code = err_set(-EFBIG, "larger than %llu bytes",
						    (unsigned long long)req->whole_max);
				break;
			}
			if (overflow) {
				snprintf(resp->why, sizeof(resp->why),
					 "the store sent a longer answer than asked for");
				last = LAST_INVALID;
				transient = 1;
			} else if (curl_transient(cc)) {
				snprintf(resp->why, sizeof(resp->why), "%s",
					 errbuf[0] ? errbuf : curl_easy_strerror(cc));
				last = LAST_NO_ANSWER;
				resp->maybe_applied |= curl_maybe_applied(cc);
				transient = 1;
			} else {
				s3_describe(ctx, req, &where);
				fail_code = err_set(-EIO, "%s: %s%s", buf_str(&where),
						    errbuf[0] ? errbuf : curl_easy_strerror(cc),
						    cc == CURLE_PEER_FAILED_VERIFICATION ||
						    cc == CURLE_SSL_CACERT_BADFILE ?
						    "; if the store uses a private CA, point AWS_CA_BUNDLE at its certificate" :
						    "");
				break;
			}
		} else {
			if (resp->status >= 300)
				s3_xml_error(resp->body.data, resp->body.len, resp->code,
					     sizeof(resp->code), resp->message, sizeof(resp->message));
			if (status_transient(resp)) {
				why_status(resp);
				last = LAST_ANSWER;
				if (resp->status != 503 && resp->status != 429 &&
				    strcmp(resp->code, "SlowDown"))
					resp->maybe_applied = 1;
				transient = 1;
			} else if (resp->status >= 200 && resp->status < 300 && req->validate) {
				v = req->validate(req, resp);
				if (v < 0) {
					fail_code = v;
					break;
				}
				if (v == S3_RETRY) {
					last = LAST_INVALID;
					transient = 1;
				}
			}
		}
		if (!transient) {
			buf_free(&where);
			return 0;
		}
		left = deadline - now_seconds();
		if (left <= 0)
			break;
		pause = backoff(attempt_no);
		if (pause > left)
			pause = left;
		log_debug("s3: %s %s: %s; retrying in %.2f s", req->method,
			  req->key && *req->key ? req->key : ctx->bucket, resp->why, pause);
		store_count_retry();
		sleep_seconds(pause);
	}
	if (!fail_code) {
		const char *advice;

		s3_describe(ctx, req, &where);
		switch (last) {
		case LAST_NO_ANSWER:
			fail_code = -ETIMEDOUT;
			advice = "check that the endpoint is up and reachable (AWS_ENDPOINT_URL), "
				 "or allow more time with CAIRN_S3_RETRY_SECONDS";
			break;
		case LAST_INVALID:
			fail_code = resp->invalid_code ? resp->invalid_code : -EAGAIN;
			advice = "the answers were cut short or malformed: check the network "
				 "path to the store (proxies, MTU) and try again";
			break;
		default:
			fail_code = -EAGAIN;
			advice = "the store is overloaded or failing: try again later, "
				 "or allow more time with CAIRN_S3_RETRY_SECONDS";
			break;
		}
		err_set(fail_code, "%s: gave up after %d attempts in %.1f s; last: %s; %s",
			buf_str(&where), resp->attempts, now_seconds() - start, resp->why, advice);
	}
	if (req->out)
		buf_setlen(req->out, base);
	buf_free(&where);
	return fail_code;
}

int s3_fail(struct s3_ctx *ctx, const struct s3_req *req, const struct s3_resp *resp)
{
	struct buf where = BUF_INIT, said = BUF_INIT, id = BUF_INIT;
	size_t klen = strlen(ctx->access_key);
	int rc;

	s3_describe(ctx, req, &where);
	buf_printf(&said, "HTTP %ld%s%s%s%s", resp->status, resp->code[0] ? " " : "",
		   resp->code, resp->message[0] ? ": " : "", resp->message);
	if (resp->request_id[0])
		buf_printf(&id, " (request id %s)", resp->request_id);
	if (resp->status == 403) {
		const char *hint;

		if (!strcmp(resp->code, "RequestTimeTooSkewed"))
			hint = "the clock of this machine is off: sync it (NTP) and retry";
		else if (!strcmp(resp->code, "SignatureDoesNotMatch"))
			hint = "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (the secret key "
			       "looks wrong) and AWS_REGION";
		else if (!strcmp(resp->code, "InvalidAccessKeyId"))
			hint = "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (the store does "
			       "not know this access key)";
		else
			hint = "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and that this key "
			       "may use the bucket";
		/* The key id is not secret, but show only its ends. */
		rc = err_set(-EACCES, "%s: access denied: %s%s; access key %.4s...%s; %s",
			     buf_str(&where), buf_str(&said), buf_str(&id), ctx->access_key,
			     klen > 8 ? ctx->access_key + klen - 4 : "", hint);
	} else if (resp->status == 404 && !strcmp(resp->code, "NoSuchBucket")) {
		rc = err_set(-EIO, "%s: %s%s; the bucket does not exist at this endpoint: create "
			     "it, or check the store URL and AWS_ENDPOINT_URL", buf_str(&where),
			     buf_str(&said), buf_str(&id));
	} else if (resp->status == 404) {
		rc = err_set(-ENOENT, "%s: no such object (%s)%s", buf_str(&where),
			     buf_str(&said), buf_str(&id));
	} else if (resp->status == 416) {
		rc = err_set(-ERANGE, "%s: the range starts past the end of the object (%s)",
			     buf_str(&where), buf_str(&said));
	} else if (resp->status == 301 || resp->status == 307 ||
		   !strcmp(resp->code, "AuthorizationHeaderMalformed") ||
		   !strcmp(resp->code, "PermanentRedirect")) {
		rc = err_set(-EIO, "%s: %s%s; the bucket lives in another region or behind "
			     "another endpoint: set AWS_REGION and AWS_ENDPOINT_URL",
			     buf_str(&where), buf_str(&said), buf_str(&id));
	} else {
		rc = err_set(-EIO, "%s: the store answered %s%s", buf_str(&where), buf_str(&said),
			     buf_str(&id));
	}
	buf_free(&where);
	buf_free(&said);
	buf_free(&id);
	return rc;
}
