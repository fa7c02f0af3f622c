/*
 * sigv4.c - AWS Signature Version 4 for S3 (and, for the test suite, the
 * generic service rules), see sigv4.h.
 *
 * Must stay true: the canonical query is built by the same function as the
 * query that is sent; header values are trimmed exactly once; the secret and
 * every derived key live only on this stack frame and are wiped before
 * return.  Checked against AWS's published vectors in tests/test_sigv4.c.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "err.h"
#include "sigv4.h"

static const char hexdig[] = "0123456789ABCDEF";

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

void sigv4_uri_encode(struct buf *out, const char *s, size_t len, int keep_slash)
{
	size_t i;

	buf_grow(out, len * 3);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c) || (keep_slash && c == '/')) {
			out->data[out->len++] = c;
		} else {
			out->data[out->len++] = '%';
			out->data[out->len++] = (uint8_t)hexdig[c >> 4];
			out->data[out->len++] = (uint8_t)hexdig[c & 15];
		}
	}
	out->data[out->len] = '\0';
}

void sigv4_encode_path(struct buf *out, const char *key)
{
	buf_addc(out, '/');
	sigv4_uri_encode(out, key, strlen(key), 1);
}

struct enc_param {
	char *name;
	char *value;
};

static int enc_param_cmp(const void *a, const void *b)
{
	const struct enc_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

void sigv4_query(struct buf *out, const struct sigv4_param *q, size_t n)
{
	struct enc_param *e;
	struct buf tmp = BUF_INIT;
	size_t i;

	if (!n)
		return;
	e = xcalloc(n, sizeof(*e));
	for (i = 0; i < n; i++) {
		const char *v = q[i].value ? q[i].value : "";

		buf_reset(&tmp);
		sigv4_uri_encode(&tmp, q[i].name, strlen(q[i].name), 0);
		e[i].name = xstrdup(buf_str(&tmp));
		buf_reset(&tmp);
		sigv4_uri_encode(&tmp, v, strlen(v), 0);
		e[i].value = xstrdup(buf_str(&tmp));
	}
	/* strcmp orders by unsigned byte value, which is what AWS specifies. */
	qsort(e, n, sizeof(*e), enc_param_cmp);
	for (i = 0; i < n; i++) {
		if (i)
			buf_addc(out, '&');
		buf_adds(out, e[i].name);
		buf_addc(out, '=');
		buf_adds(out, e[i].value);
		free(e[i].name);
		free(e[i].value);
	}
	free(e);
	buf_free(&tmp);
}

void sigv4_sha256_hex(const void *data, size_t len, char hex[SIGV4_SHA256_HEX_LEN + 1])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(hex, SIGV4_SHA256_HEX_LEN + 1, h, sizeof(h));
}

void sigv4_date(long long unix_time, char date[SIGV4_DATE_LEN + 1])
{
	time_t t = (time_t)unix_time;
	struct tm tm;

	gmtime_r(&t, &tm);
	if (strftime(date, SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) != SIGV4_DATE_LEN)
		memcpy(date, "19700101T000000Z", SIGV4_DATE_LEN + 1);
}

static int date_valid(const char *d)
{
	int i;

	if (!d || strlen(d) != SIGV4_DATE_LEN || d[8] != 'T' || d[15] != 'Z')
		return 0;
	for (i = 0; i < 15; i++)
		if (i != 8 && (d[i] < '0' || d[i] > '9'))
			return 0;
	return 1;
}

/* The non-S3 canonical URI: remove empty, "." and ".." segments, keep a
 * trailing slash, then encode the result (which encodes '%' again). */
static void generic_path(struct buf *out, const char *path)
{
	const char **seg;
	size_t nseg = 0, cap = 8, i;
	char *copy = xstrdup(path), *p, *save = NULL;
	size_t plen = strlen(path);
	int trailing = plen > 0 && path[plen - 1] == '/';
	struct buf norm = BUF_INIT;

	seg = xcalloc(cap, sizeof(*seg));
	for (p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (!strcmp(p, "."))
			continue;
		if (!strcmp(p, "..")) {
			if (nseg)
				nseg--;
			continue;
		}
		if (nseg == cap) {
			cap *= 2;
			seg = xrealloc(seg, cap * sizeof(*seg));
		}
		seg[nseg++] = p;
	}
	for (i = 0; i < nseg; i++) {
		buf_addc(&norm, '/');
		buf_adds(&norm, seg[i]);
	}
	if (!nseg || trailing)
		buf_addc(&norm, '/');
	sigv4_uri_encode(out, (const char *)norm.data, norm.len, 1);
	buf_free(&norm);
	free(seg);
	free(copy);
}

struct canon_header {
	char *name;		/* lowercase */
	const char *value;
	size_t order;		/* position given, so equal names keep it */
};

static int canon_header_cmp(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Appends value trimmed, with each inner run of spaces/tabs folded to one
 * space.  -EINVAL for a CR or LF, which no header value may carry. */
static int add_trimmed(struct buf *out, const char *v)
{
	const char *end;
	int space = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (; v < end; v++) {
		if (*v == '\r' || *v == '\n')
			return -EINVAL;
		if (*v == ' ' || *v == '\t') {
			space = 1;
			continue;
		}
		if (space)
			buf_addc(out, ' ');
		space = 0;
		buf_addc(out, *v);
	}
	return 0;
}

static int header_name_valid(const char *n)
{
	if (!*n)
		return 0;
	for (; *n; n++)
		if ((unsigned char)*n <= ' ' || *n == ':' || (unsigned char)*n >= 0x7f)
			return 0;
	return 1;
}

static void hmac(unsigned char out[crypto_auth_hmacsha256_BYTES],
		 const void *key, size_t keylen, const char *msg)
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

int sigv4_sign(const struct sigv4_creds *creds, const struct sigv4_request *req,
	       const char *amz_date, unsigned flags, struct buf *auth,
	       struct buf *creq_out, struct buf *sts_out)
{
	struct buf creq = BUF_INIT, signed_names = BUF_INIT, sts = BUF_INIT;
	struct canon_header *h = NULL;
	unsigned char k[crypto_auth_hmacsha256_BYTES], sig[crypto_auth_hmacsha256_BYTES];
	char date8[9], hash[SIGV4_SHA256_HEX_LEN + 1], sighex[2 * sizeof(sig) + 1];
	unsigned char *ksecret;
	size_t i, j, slen;
	int rc = 0;

	if (!date_valid(amz_date))
		return err_set(-EINVAL, "sigv4: bad x-amz-date \"%s\"",
			       amz_date ? amz_date : "(null)");
	if (!creds->access_key || !creds->secret_key || !creds->region ||
	    !creds->service || !req->method || !req->payload_hash)
		return err_set(-EINVAL, "sigv4: incomplete request or credentials");
	memcpy(date8, amz_date, 8);
	date8[8] = '\0';

	/* 1. Canonical request. */
	buf_adds(&creq, req->method);
	buf_addc(&creq, '\n');
	if (flags & SIGV4_GENERIC)
		generic_path(&creq, req->path && *req->path ? req->path : "/");
	else
		buf_adds(&creq, req->path && *req->path ? req->path : "/");
	buf_addc(&creq, '\n');
	sigv4_query(&creq, req->query, req->nquery);
	buf_addc(&creq, '\n');

	h = xcalloc(req->nheaders ? req->nheaders : 1, sizeof(*h));
	for (i = 0; i < req->nheaders; i++) {
		char *n;

		if (!req->headers[i].name || !header_name_valid(req->headers[i].name)) {
			rc = err_set(-EINVAL, "sigv4: bad header name");
			goto out;
		}
		n = xstrdup(req->headers[i].name);
		for (j = 0; n[j]; j++)
			if (n[j] >= 'A' && n[j] <= 'Z')
				n[j] = (char)(n[j] - 'A' + 'a');
		h[i].name = n;
		h[i].value = req->headers[i].value ? req->headers[i].value : "";
		h[i].order = i;
	}
	qsort(h, req->nheaders, sizeof(*h), canon_header_cmp);
	for (i = 0; i < req->nheaders; i++) {
		if (i && !strcmp(h[i].name, h[i - 1].name)) {
			buf_addc(&creq, ',');
		} else {
			if (i) {
				buf_addc(&creq, '\n');
				buf_addc(&signed_names, ';');
			}
			buf_adds(&creq, h[i].name);
			buf_addc(&creq, ':');
			buf_adds(&signed_names, h[i].name);
		}
		if (add_trimmed(&creq, h[i].value) < 0) {
			rc = err_set(-EINVAL, "sigv4: header %s carries a line break", h[i].name);
			goto out;
		}
	}
	if (req->nheaders)
		buf_addc(&creq, '\n');
	buf_addc(&creq, '\n');
	buf_add(&creq, signed_names.data, signed_names.len);
	buf_addc(&creq, '\n');
	buf_adds(&creq, req->payload_hash);

	/* 2. String to sign. */
	sigv4_sha256_hex(creq.data, creq.len, hash);
	buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
		   amz_date, date8, creds->region, creds->service, hash);

	/* 3. Signing key, then the signature. */
	slen = strlen(creds->secret_key);
	ksecret = sodium_malloc(slen + 4);
	if (!ksecret) {
		rc = err_set(-ENOMEM, "sigv4: out of secure memory");
		goto out;
	}
	memcpy(ksecret, "AWS4", 4);
	memcpy(ksecret + 4, creds->secret_key, slen);
	hmac(k, ksecret, slen + 4, date8);
	sodium_free(ksecret);
	hmac(k, k, sizeof(k), creds->region);
	hmac(k, k, sizeof(k), creds->service);
	hmac(k, k, sizeof(k), "aws4_request");
	hmac(sig, k, sizeof(k), (const char *)sts.data);
	sodium_memzero(k, sizeof(k));
	sodium_bin2hex(sighex, sizeof(sighex), sig, sizeof(sig));

	buf_printf(auth, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
		   "SignedHeaders=%s, Signature=%s", creds->access_key, date8,
		   creds->region, creds->service, buf_str(&signed_names), sighex);
	if (creq_out)
		buf_add(creq_out, creq.data, creq.len);
	if (sts_out)
		buf_add(sts_out, sts.data, sts.len);
out:
	for (i = 0; i < req->nheaders; i++)
		free(h[i].name);
	free(h);
	buf_free(&creq);
	buf_free(&signed_names);
	buf_free(&sts);
	return rc;
}
