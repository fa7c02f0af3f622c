/*
 * s3_impl.h - private to the S3 store (store_s3.c, s3_http.c, s3_xml.c): the
 * connection context shared by every thread, one request and its answer,
 * and the small XML reader for S3's answers.
 *
 * Must stay true: struct s3_ctx is immutable after s3_ctx_new() except the
 * handle pool and the curl share, each behind its own lock; a request never
 * puts the secret key anywhere but into the signer.
 */
#ifndef CAIRN_S3_IMPL_H
#define CAIRN_S3_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "buf.h"
#include "sigv4.h"
#include "store.h"

/* Idle easy handles kept for reuse (each keeps its own open connections). */
#define S3_POOL_MAX 32
/* Largest answer body read into memory for anything but an object GET. */
#define S3_MAX_META_BODY (64u << 20)

struct s3_ctx {
	/* Where and who; set once at open. */
	char *scheme;		/* "http" or "https" */
	char *host;		/* endpoint host, "[::1]" for IPv6 */
	char *hostport;		/* host[:port], the port only when not the default */
	char *endpoint;		/* scheme://hostport, for messages */
	char *bucket;
	int vhost;		/* 1: bucket.host/key; 0: host/bucket/key */
	char *region;
	char *access_key;
	char *secret_key;	/* sodium_malloc'd, wiped on free */
	char *session_token;	/* NULL when none; sent as x-amz-security-token */
	char *ca_bundle;	/* NULL: the system's CAs */
	struct curl_slist *connect_to;
	double retry_seconds;	/* budget per operation */
	long low_speed_time;	/* seconds below 1 KiB/s before a transfer is dropped */

	/* Shared DNS and TLS session caches (not connections: libcurl does
	 * not support sharing its connection cache between threads). */
	CURLSH *share;
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];

	/* Idle easy handles; pool_lock guards pool and npool. */
	pthread_mutex_t pool_lock;
	CURL *pool[S3_POOL_MAX];
	int npool;
};

/* The options store_s3_open() resolved, for s3_ctx_new(). */
struct s3_conf {
	const char *endpoint;	/* scheme://host[:port] */
	const char *bucket;
	int vhost;
	const char *region;
	const char *access_key;
	const char *secret_key;
	const char *session_token;
	const char *ca_bundle;
	const char *connect_to;
	double retry_seconds;
};

int s3_ctx_new(const struct s3_conf *conf, struct s3_ctx **out);
void s3_ctx_free(struct s3_ctx *ctx);

/* What a validator says about an answer that arrived (status and body). */
enum s3_verdict {
	S3_OK = 0,
	S3_RETRY = 1,		/* transient: try again within the budget */
};

struct s3_resp;
struct s3_req;

/* Looks at a complete answer.  Returns S3_OK, S3_RETRY (after writing why
 * into resp->why), or a negative errno that ends the request. */
typedef int (*s3_validate_fn)(struct s3_req *req, struct s3_resp *resp);

struct s3_req {
	const char *method;	/* GET PUT POST DELETE HEAD */
	const char *what;	/* for messages: "get", "put part 3 of", ... */
	const char *key;	/* object name in the bucket, prefix included; "" for the bucket */
	const struct sigv4_param *query;
	size_t nquery;
	const struct sigv4_header *headers;	/* extra headers, all signed */
	size_t nheaders;
	const void *body;
	size_t body_len;
	/* A 2xx body goes here when not NULL (appended, cut back on retry);
	 * at most out_max bytes are accepted.  Otherwise into resp->body. */
	struct buf *out;
	uint64_t out_max;
	/* Non-zero: the caller takes the whole object only up to this many
	 * bytes.  An answer whose Content-Length or Content-Range says the
	 * object is larger (or that runs past out_max) ends the request
	 * there, unread and not retried: -EFBIG, resp's headers kept. */
	uint64_t whole_max;
	s3_validate_fn validate;	/* NULL: any final status is handed back */
	void *arg;			/* for validate */
	double budget;		/* retry budget in seconds; 0: the context's */
};

struct s3_resp {
	long status;		/* 0 when no answer arrived */
	struct buf body;	/* non-2xx bodies and 2xx bodies without req->out */
	size_t received;	/* bytes written to req->out by the last attempt */
	char etag[STORE_ETAG_MAX];
	int has_length;
	uint64_t content_length;
	int has_range;		/* Content-Range: bytes first-last/total */
	uint64_t range_first, range_last, range_total;
	char request_id[80];
	char code[80];		/* S3 <Code> of an error answer */
	char message[256];	/* S3 <Message> */
	char why[400];		/* the last transient failure, for messages */
	/* Code to give up with when the validator's S3_RETRY was the last
	 * word (-EBADMSG for a body that does not match its ETag); 0: -EAGAIN. */
	int invalid_code;
	int attempts;
	/* A failed attempt may have been carried out by the store (the answer
	 * was lost): a precondition failure afterwards may be our own write. */
	int maybe_applied;
};

void s3_resp_init(struct s3_resp *resp);
void s3_resp_free(struct s3_resp *resp);

/*
 * Performs req, retrying transient failures (connection refused or reset,
 * timeouts, 5xx, 429, SlowDown, RequestTimeout, short bodies, validator
 * S3_RETRY) with exponential backoff and full jitter until the context's
 * retry budget is spent.  Returns 0 when a final answer arrived (any status:
 * the caller maps it), or a negative errno with the error line set:
 * -ETIMEDOUT (no answer), -EAGAIN (answers, all transient), -EIO (transport
 * failure that retrying cannot fix, e.g. TLS verification), or the
 * validator's code.
 */
int s3_perform(struct s3_ctx *ctx, struct s3_req *req, struct s3_resp *resp);

/* Sets the error line for an answer the caller did not expect and returns
 * the matching code: 403 -EACCES (with a credentials hint), 404 -ENOENT,
 * 416 -ERANGE, anything else -EIO.  Names the object and the endpoint. */
int s3_fail(struct s3_ctx *ctx, const struct s3_req *req, const struct s3_resp *resp);

/* "GET bucket/key at endpoint" for messages. */
void s3_describe(struct s3_ctx *ctx, const struct s3_req *req, struct buf *out);

/* ---- XML ---------------------------------------------------------------- */

/* Called at the end of every element with its path from the root
 * ("ListBucketResult/Contents/Key") and its text. */
typedef void (*s3_xml_fn)(void *arg, const char *path, const char *text);

/* Parses an S3 XML answer; 0, or -EBADMSG when it is not well-formed. */
int s3_xml_parse(const void *data, size_t len, s3_xml_fn fn, void *arg);

/* Fills code/message from an <Error> answer; leaves them empty otherwise.
 * Returns 1 when the root element is <Error>. */
int s3_xml_error(const void *data, size_t len, char *code, size_t code_size,
		 char *message, size_t message_size);

/* Appends s with & < > " ' escaped. */
void s3_xml_escape(struct buf *out, const char *s);

#endif
