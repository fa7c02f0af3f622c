/*
 * sigv4.h - AWS Signature Version 4 (header form), computed in the project
 * with libsodium's SHA-256 and HMAC-SHA-256.
 *
 * What is signed is exactly what is sent: the caller builds the request path
 * with sigv4_encode_path() and the query with sigv4_query(), puts the same
 * strings on the wire, and passes the same path and raw parameters here.
 *
 * S3 rules are the default: the canonical URI is the request path as sent
 * (each segment URI-encoded once, no normalisation).  SIGV4_GENERIC selects
 * the rules every other AWS service uses, which AWS's generic test suite
 * pins: the path is normalised ("." / ".." / empty segments removed) and
 * URI-encoded once more.
 *
 * No function here logs or keeps the secret; derived keys are wiped.
 */
#ifndef CAIRN_SIGV4_H
#define CAIRN_SIGV4_H

#include <stddef.h>

#include "buf.h"

/* Hex SHA-256 of the empty string: the payload hash of GET/HEAD/DELETE. */
#define SIGV4_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* Length of an x-amz-date value ("20130524T000000Z") without terminator. */
#define SIGV4_DATE_LEN 16
#define SIGV4_SHA256_HEX_LEN 64

/* Non-S3 canonical URI: normalise the path and encode it a second time. */
#define SIGV4_GENERIC 1u

struct sigv4_param {
	const char *name;	/* raw (not encoded) */
	const char *value;	/* raw; "" or NULL for "?name" */
};

struct sigv4_header {
	const char *name;	/* any case; signed as lowercase */
	const char *value;	/* trimmed, inner runs of spaces folded */
};

struct sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *region;	/* "auto" for R2 */
	const char *service;	/* "s3" */
};

struct sigv4_request {
	const char *method;	/* "GET", "PUT", ... */
	const char *path;	/* as sent: "/bucket/a%20b"; "/" when empty */
	const struct sigv4_param *query;
	size_t nquery;
	/* Every header to sign, host and x-amz-date included; a name given
	 * twice is signed as one header with the values joined by ','. */
	const struct sigv4_header *headers;
	size_t nheaders;
	/* Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD". */
	const char *payload_hash;
};

/* Appends the URI encoding of s[0..len) (RFC 3986: everything but
 * A-Z a-z 0-9 - . _ ~ becomes %XX, uppercase hex); '/' is kept when
 * keep_slash is set. */
void sigv4_uri_encode(struct buf *out, const char *s, size_t len, int keep_slash);

/* Appends "/" + the key with every segment encoded once, the S3 path of an
 * object; key may be "" (the bucket). */
void sigv4_encode_path(struct buf *out, const char *key);

/* Appends the canonical query string: each name and value encoded, sorted
 * by encoded name then encoded value, "name=value" joined by '&'.  Also the
 * query to send, so that what is sent is what is signed. */
void sigv4_query(struct buf *out, const struct sigv4_param *q, size_t n);

/* Hex SHA-256 of data into hex[SIGV4_SHA256_HEX_LEN + 1]. */
void sigv4_sha256_hex(const void *data, size_t len, char hex[SIGV4_SHA256_HEX_LEN + 1]);

/* The x-amz-date value of a Unix time into date[SIGV4_DATE_LEN + 1]. */
void sigv4_date(long long unix_time, char date[SIGV4_DATE_LEN + 1]);

/*
 * Signs req at amz_date (which must also be the x-amz-date header among
 * req->headers) and appends the Authorization header value to auth.  creq
 * and sts, when not NULL, receive the canonical request and the string to
 * sign (for tests and debugging; they hold no secret).  flags: 0 for S3, or
 * SIGV4_GENERIC.  Returns 0, or -EINVAL for a malformed date or request.
 */
int sigv4_sign(const struct sigv4_creds *creds, const struct sigv4_request *req,
	       const char *amz_date, unsigned flags, struct buf *auth,
	       struct buf *creq, struct buf *sts);

#endif
