/*
 * store_s3.c - the s3:// store: struct store_ops over S3's REST API (AWS,
 * Cloudflare R2, any S3-compatible server), with the options and
 * credentials resolved as the AWS tools do.  Requests, signing and retries
 * live in s3_http.c; S3's XML in s3_xml.c.
 *
 * Must stay true: every upload is verified (Content-MD5 checked by the
 * store, the returned ETag compared with our own MD5 / MD5-of-MD5s, or with
 * a HEAD when the store answers none); a get succeeds only with every byte
 * it asked for; a multipart upload is either completed or aborted; keys
 * handed to callers are relative to the prefix; nothing here prints, logs
 * or puts the secret key in a message.
 *
 * Conditional puts: no conditional put is sent before the store's rules are
 * known (the probe, or its cache: store_cond.c), and none is sent to a store
 * that honours no form of them unless the operator said so; each is one
 * PUT, never a multipart upload (servers ignore conditions on its
 * completion); a 412 is believed only after a HEAD shows that the object
 * really changed (a store that refuses its own ETag wants the other form).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "err.h"
#include "log.h"
#include "md5.h"
#include "s3_impl.h"
#include "store.h"

#define MIB ((size_t)1 << 20)
#define S3_MIN_PART (5 * MIB)
#define S3_MAX_PARTS 10000u
#define S3_DELETE_BATCH 1000
#define S3_MAX_PARALLEL 64
/* The largest object one PUT may carry (S3's limit): the largest conditional put. */
#define S3_MAX_SINGLE_PUT ((size_t)5 << 30)
/* Internal to put_single and its callers, never returned by an operation:
 * the store refused If-Match with the object's own ETag (the other form). */
#define S3_REFUSED_OWN_ETAG (-EPROTO)

struct s3_store {
	struct s3_ctx *ctx;
	char *prefix;		/* "" or "base/" */
	size_t threshold;	/* larger objects go multipart */
	size_t part_size;
	int max_parallel;

	/* Conditional puts.  cond_lock guards cond_known, rules and warned (and
	 * serialises probes); match, the If-Match form in use, is atomic. */
	pthread_mutex_t cond_lock;
	int cond_known;
	struct store_cond_rules rules;
	int warned;
	int match;		/* enum store_match_form */
	char *probe_dir;	/* NULL: results not kept */
	bool unsafe_no_cond;
};

static struct s3_store *priv(struct store *s)
{
	return s->priv;
}

/* prefix + key, the object's name in the bucket. */
static char *full_name(struct s3_store *st, const char *key)
{
	return xasprintf("%s%s", st->prefix, key);
}

/* Compares an ETag as S3 sends it ("\"hex\"", any case) with what we expect
 * (unquoted, lowercase hex, maybe "-N"). */
static int etag_is(const char *etag, const char *want)
{
	size_t n = strlen(etag), w = strlen(want);

	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
		etag++;
		n -= 2;
	}
	if (n >= 2 && etag[0] == 'W' && etag[1] == '/')
		return 0;
	return n == w && !strncasecmp(etag, want, n);
}

/* The ETag as If-Match carries it in form (quoted unless BARE). */
static void match_value(const char *etag, enum store_match_form form, char *out, size_t size)
{
	size_t n = strlen(etag);

	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
		etag++;
		n -= 2;
	}
	snprintf(out, size, form == STORE_MATCH_BARE ? "%.*s" : "\"%.*s\"", (int)n, etag);
}

/* Do two ETags name the same object version, quotes and case aside? */
static int etag_same(const char *a, const char *b)
{
	char bare[STORE_ETAG_MAX + 2];

	match_value(b, STORE_MATCH_BARE, bare, sizeof(bare));
	return etag_is(a, bare);
}

static void copy_etag(struct store_info *info, const char *etag)
{
	size_t n = strlen(etag);

	if (n >= sizeof(info->etag))
		n = sizeof(info->etag) - 1;
	memcpy(info->etag, etag, n);
	info->etag[n] = '\0';
}

/* Is this 32 hex digits, quotes allowed: an ETag that is the object's MD5? */
static int etag_is_md5(const char *etag)
{
	size_t n = strlen(etag), i;

	if (n == 34 && etag[0] == '"' && etag[33] == '"') {
		etag++;
		n = 32;
	}
	if (n != 32)
		return 0;
	for (i = 0; i < 32; i++)
		if (!strchr("0123456789abcdefABCDEF", etag[i]))
			return 0;
	return 1;
}

/* ---- head ------------------------------------------------------------------ */

static int head_name(struct s3_store *st, const char *name, struct store_info *info)
{
	struct s3_req rq = { .method = "HEAD", .what = "head", .key = name };
	struct s3_resp rs;
	int rc;

	s3_resp_init(&rs);
	rc = s3_perform(st->ctx, &rq, &rs);
	if (rc == 0 && rs.status >= 200 && rs.status < 300) {
		if (!rs.has_length) {
			struct buf where = BUF_INIT;

			s3_describe(st->ctx, &rq, &where);
			rc = err_set(-EIO, "%s: the answer has no Content-Length", buf_str(&where));
			buf_free(&where);
		} else if (info) {
			info->size = rs.content_length;
			copy_etag(info, rs.etag);
		}
	} else if (rc == 0) {
		rc = s3_fail(st->ctx, &rq, &rs);
	}
	s3_resp_free(&rs);
	return rc;
}

static int s3_head(struct store *s, const char *key, struct store_info *info)
{
	char *name = full_name(priv(s), key);
	int rc = head_name(priv(s), name, info);

	free(name);
	return rc;
}

/* ---- put --------------------------------------------------------------------- */

/* The put of rq was refused by its precondition (412; for If-Match also 404:
 * the object is gone).  Believed only after a look at the object:
 *  - an earlier attempt may have gone through with its answer lost, and the
 *    object holds exactly what we sent: the write was ours, 0.  (Content-
 *    equal writes by someone else are indistinguishable; every conditional
 *    object cairn writes carries a nonce.)
 *  - a 412 to If-Match while the object still has the ETag we sent: the
 *    store refused its own ETag, in the form we sent it: S3_REFUSED_OWN_ETAG.
 *  - otherwise -EEXIST or -ECANCELED, as store.h says. */
static int precondition_failed(struct s3_store *st, const struct s3_req *rq,
			       const struct s3_resp *rs, enum store_cond cond,
			       const char *cond_etag, const char *our_etag,
			       struct store_info *info)
{
	struct store_info now;
	struct buf where = BUF_INIT;
	int rc = -ENOENT;

	if (rs->maybe_applied || cond == STORE_IF_MATCH)
		rc = head_name(st, rq->key, &now);
	if (rc == 0 && rs->maybe_applied && etag_is(now.etag, our_etag)) {
		if (info)
			copy_etag(info, now.etag);
		err_clear();
		return 0;
	}
	if (rc == 0 && cond == STORE_IF_MATCH && rs->status == 412 && etag_same(now.etag, cond_etag))
		return S3_REFUSED_OWN_ETAG;
	if (rc < 0 && rc != -ENOENT)	/* what happened is unknown: say so */
		return err_prefix(rc, "a conditional put answered %ld, and the look at the object that "
				  "would confirm it failed", rs->status);
	s3_describe(st->ctx, rq, &where);
	if (cond == STORE_IF_NONE_MATCH)
		rc = err_set(-EEXIST, "%s: the object already exists (If-None-Match: *)",
			     buf_str(&where));
	else
		rc = err_set(-ECANCELED, "%s: the object %s since it was read with ETag %s (If-Match)",
			     buf_str(&where), rc == -ENOENT ? "was removed" : "changed",
			     cond_etag ? cond_etag : "");
	buf_free(&where);
	return rc;
}

struct put_check {
	const char *md5hex;	/* the ETag the answer must carry */
};

static int check_put_etag(struct s3_req *rq, struct s3_resp *rs)
{
	struct put_check *pc = rq->arg;

	if (etag_is(rs->etag, pc->md5hex))
		return S3_OK;
	/* The store checked our Content-MD5, so a different ETag means it
	 * does not use MD5 ETags (SSE-KMS, SSE-C) or stored something else. */
	return err_set(-EBADMSG, "%s %s: the store answered ETag %s for data whose MD5 is %s: "
		       "the upload did not verify (buckets with SSE-KMS or SSE-C encryption "
		       "are not supported)", rq->what, rq->key, rs->etag[0] ? rs->etag : "(none)",
		       pc->md5hex);
}

/* One PUT of the whole object; with cond, If-Match carries etag in form.
 * 0, -EEXIST, -ECANCELED, S3_REFUSED_OWN_ETAG, or another code. */
static int put_single(struct s3_store *st, const char *name, const void *data, size_t len,
		      enum store_cond cond, const char *etag, enum store_match_form form,
		      struct store_info *info)
{
	uint8_t digest[MD5_DIGEST_LEN];
	char hex[MD5_HEX_LEN + 1], b64[25], match[STORE_ETAG_MAX + 2];
	struct sigv4_header h[3];
	size_t nh = 0;
	struct put_check pc = { hex };
	struct s3_req rq = { .method = "PUT", .what = "put", .key = name, .body = data,
			     .body_len = len, .validate = check_put_etag, .arg = &pc };
	struct s3_resp rs;
	int rc;

	md5(data, len, digest);
	md5_hex(digest, hex);
	md5_base64(digest, b64);
	h[nh++] = (struct sigv4_header){ "Content-MD5", b64 };
	if (cond == STORE_IF_NONE_MATCH) {
		h[nh++] = (struct sigv4_header){ "If-None-Match", "*" };
	} else if (cond == STORE_IF_MATCH) {
		match_value(etag, form, match, sizeof(match));
		h[nh++] = (struct sigv4_header){ "If-Match", match };
	}
	rq.headers = h;
	rq.nheaders = nh;
	s3_resp_init(&rs);
	rc = s3_perform(st->ctx, &rq, &rs);
	if (rc == 0) {
		if (rs.status >= 200 && rs.status < 300) {
			if (info) {
				info->size = len;
				copy_etag(info, rs.etag);
			}
		} else if ((rs.status == 412 && cond != STORE_ALWAYS) ||
			   (rs.status == 404 && cond == STORE_IF_MATCH)) {
			rc = precondition_failed(st, &rq, &rs, cond, etag, hex, info);
			if (rc == 0 && info)
				info->size = len;
		} else {
			rc = s3_fail(st->ctx, &rq, &rs);
		}
	}
	s3_resp_free(&rs);
	return rc;
}

/* ---- conditional puts: the rules, the probe, the gate ---------------------------- */

static const char *form_words(enum store_match_form form)
{
	return form == STORE_MATCH_BARE ? "the ETag without quotes" : "the quoted ETag";
}

/* "the S3 server at ENDPOINT (bucket B)", for messages. */
static char *server_name(struct s3_store *st)
{
	return xasprintf("the S3 server at %s (bucket %s)", st->ctx->endpoint, st->ctx->bucket);
}

/* Removes the probe's scratch object, keeping the caller's error line. */
static void probe_cleanup(struct s3_store *st, const char *name)
{
	struct s3_req rq = { .method = "DELETE", .what = "delete", .key = name };
	struct s3_resp rs;
	char saved[1024];

	snprintf(saved, sizeof(saved), "%s", err_msg());
	s3_resp_init(&rs);
	if (s3_perform(st->ctx, &rq, &rs) || rs.status >= 300)
		log_warn("cannot remove the probe's scratch object %s/%s at %s; remove it by hand",
			 st->ctx->bucket, name, st->ctx->endpoint);
	s3_resp_free(&rs);
	err_set(0, "%s", saved);
}

/* Learns the store's rules with puts on a scratch object of our own that no
 * one else writes: create it (If-None-Match: *); create it again, which
 * must be refused; swap it with If-Match on its ETag, quoted, and bare if
 * the store refuses the quoted one; swap it with a stale ETag, which must
 * be refused; remove it.  Four PUTs, a HEAD (confirming the last 412) and
 * a DELETE on R2; a PUT and a HEAD more on Ceph RGW. */
static int probe_run(struct s3_store *st, struct store_cond_rules *out)
{
	static const enum store_match_form forms[] = { STORE_MATCH_QUOTED, STORE_MATCH_BARE };
	struct store_cond_rules r = { false, STORE_MATCH_REFUSED };
	struct store_info first, cur, next;
	unsigned char raw[16];
	char nonce[33], *name, *body[4];
	int rc, i;

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(nonce, sizeof(nonce), raw, sizeof(raw));
	name = xasprintf("%scairn-probe-%s", st->prefix, nonce);
	for (i = 0; i < 4; i++)
		body[i] = xasprintf("cairn conditional-write probe %s, write %d\n", nonce, i + 1);
	rc = put_single(st, name, body[0], strlen(body[0]), STORE_IF_NONE_MATCH, NULL,
			STORE_MATCH_QUOTED, &first);
	if (rc) {	/* nothing to remove */
		rc = err_prefix(rc == -EEXIST ? -EIO : rc, "conditional-write probe");
		goto out;
	}
	cur = first;
	rc = put_single(st, name, body[1], strlen(body[1]), STORE_IF_NONE_MATCH, NULL,
			STORE_MATCH_QUOTED, &next);
	if (rc == -EEXIST) {
		r.create_only = true;
		rc = 0;
	} else if (rc == 0) {
		cur = next;
	}
	for (i = 0; rc == 0 && i < 2; i++) {
		rc = put_single(st, name, body[2], strlen(body[2]), STORE_IF_MATCH, cur.etag,
				forms[i], &next);
		if (rc == 0) {
			r.match = forms[i];
			cur = next;
			break;
		}
		if (rc == S3_REFUSED_OWN_ETAG)
			rc = 0;
	}
	if (rc == 0 && r.match != STORE_MATCH_REFUSED) {
		rc = put_single(st, name, body[3], strlen(body[3]), STORE_IF_MATCH, first.etag,
				r.match, &next);
		if (rc == 0)
			r.match = STORE_MATCH_IGNORED;
		else if (rc == -ECANCELED)
			rc = 0;
	}
	if (rc == -ECANCELED || rc == -EEXIST || rc == S3_REFUSED_OWN_ETAG)
		rc = err_set(-EIO, "%s: the probe's scratch object %s changed under it: run it again",
			     st->ctx->endpoint, name);
	else if (rc)
		rc = err_prefix(rc, "conditional-write probe");
	probe_cleanup(st, name);
	if (rc == 0)
		*out = r;
out:
	for (i = 0; i < 4; i++)
		free(body[i]);
	free(name);
	return rc;
}

/* Holds cond_lock.  Probes and keeps what it learned. */
static int probe_locked(struct s3_store *st)
{
	struct store_cond_rules r;
	int rc = probe_run(st, &r);

	if (rc)
		return rc;
	st->rules = r;
	st->cond_known = 1;
	__atomic_store_n(&st->match, (int)r.match, __ATOMIC_RELAXED);
	if (st->probe_dir && store_cond_cache_save(st->probe_dir, st->ctx->endpoint,
						   st->ctx->bucket, &r) < 0)
		log_debug("cannot keep the probe result in %s", st->probe_dir);
	return 0;
}

static int s3_cond_probe(struct store *s, struct store_cond_rules *rules)
{
	struct s3_store *st = priv(s);
	int rc;

	pthread_mutex_lock(&st->cond_lock);
	rc = probe_locked(st);
	if (rc == 0)
		*rules = st->rules;
	pthread_mutex_unlock(&st->cond_lock);
	return rc;
}

/* Before a conditional put: the rules known (from the cache, else a
 * probe), and the store refused when it honours no form of conditional
 * put, unless the operator accepted that. */
static int cond_gate(struct s3_store *st)
{
	int rc = 0;

	pthread_mutex_lock(&st->cond_lock);
	if (!st->cond_known && st->probe_dir &&
	    store_cond_cache_load(st->probe_dir, st->ctx->endpoint, st->ctx->bucket,
				  &st->rules) == 0) {
		st->cond_known = 1;
		__atomic_store_n(&st->match, (int)st->rules.match, __ATOMIC_RELAXED);
	}
	if (!st->cond_known)
		rc = probe_locked(st);
	if (rc == 0 && !store_cond_honoured(&st->rules)) {
		char *where = server_name(st);

		if (!st->unsafe_no_cond) {
			rc = store_cond_refuse(where, &st->rules);
		} else if (!st->warned) {
			struct buf why = BUF_INIT;

			store_cond_describe(&st->rules, &why);
			log_warn("%s does not honour conditional writes (%s); going on because "
				 "unsafe_no_conditional_writes (CAIRN_UNSAFE_NO_CONDITIONAL_WRITES) "
				 "is set: two writers at once can overwrite each other's snapshots", where, buf_str(&why));
			buf_free(&why);
			st->warned = 1;
		}
		free(where);
	}
	pthread_mutex_unlock(&st->cond_lock);
	return rc;
}

/* A conditional put in the form the store wants.  A store that refuses
 * its own ETag in that form (cached rules of a server since changed) gets
 * the other form once; the one that works is kept. */
static int put_conditional(struct s3_store *st, const char *name, const void *data, size_t len,
			   enum store_cond cond, const char *etag, struct store_info *info)
{
	enum store_match_form form = __atomic_load_n(&st->match, __ATOMIC_RELAXED);
	enum store_match_form other;
	int rc;

	if (form != STORE_MATCH_BARE)
		form = STORE_MATCH_QUOTED;
	rc = put_single(st, name, data, len, cond, etag, form, info);
	if (rc != S3_REFUSED_OWN_ETAG)
		return rc;
	other = form == STORE_MATCH_BARE ? STORE_MATCH_QUOTED : STORE_MATCH_BARE;
	rc = put_single(st, name, data, len, cond, etag, other, info);
	if (rc == 0) {
		log_info("%s at %s refused If-Match with %s; it takes %s, which cairn uses from now on",
			 st->ctx->bucket, st->ctx->endpoint, form_words(form), form_words(other));
		pthread_mutex_lock(&st->cond_lock);
		st->rules.match = other;
		__atomic_store_n(&st->match, (int)other, __ATOMIC_RELAXED);
		if (st->probe_dir)
			store_cond_cache_save(st->probe_dir, st->ctx->endpoint, st->ctx->bucket,
					      &st->rules);
		pthread_mutex_unlock(&st->cond_lock);
	} else if (rc == S3_REFUSED_OWN_ETAG) {
		char *where = server_name(st);

		rc = err_set(-EIO, "%s refuses If-Match with the object's own ETag %s, quoted or "
			     "bare: it cannot hold cairn's lease and head; `cairn selftest --store "
			     "URL` shows what it honours", where, etag);
		free(where);
	}
	return rc;
}

/* ---- multipart ------------------------------------------------------------------ */

struct mp {
	struct s3_store *st;
	const char *name;
	const uint8_t *data;
	size_t len, part_size;
	unsigned nparts;
	char *upload_id;
	uint8_t (*md5s)[MD5_DIGEST_LEN];
	char (*etags)[STORE_ETAG_MAX];

	pthread_mutex_t lock;	/* guards next, failed, fail_* */
	unsigned next;
	int failed;
	int fail_code;
	char fail_msg[1024];
};

struct xml_pick {
	const char *path;
	struct buf *into;
};

static void pick_text(void *arg, const char *path, const char *text)
{
	struct xml_pick *p = arg;

	if (!strcmp(path, p->path)) {
		buf_reset(p->into);
		buf_adds(p->into, text);
	}
}

static int check_xml_body(struct s3_req *rq, struct s3_resp *rs)
{
	(void)rq;
	/* 200 with an <Error> body (CompleteMultipartUpload does this). */
	if (s3_xml_error(rs->body.data, rs->body.len, rs->code, sizeof(rs->code),
			 rs->message, sizeof(rs->message))) {
		snprintf(rs->why, sizeof(rs->why), "HTTP %ld with error %s: %s", rs->status,
			 rs->code, rs->message);
		if (!strcmp(rs->code, "InternalError") || !strcmp(rs->code, "SlowDown") ||
		    !strcmp(rs->code, "ServiceUnavailable"))
			return S3_RETRY;
		return err_set(-EIO, "%s %s: the store answered error %s: %s", rq->what,
			       rq->key, rs->code, rs->message);
	}
	return S3_OK;
}

static int mp_create(struct mp *m)
{
	struct sigv4_param q[] = { { "uploads", "" } };
	struct sigv4_header h[] = { { "Content-Type", "application/octet-stream" } };
	struct s3_req rq = { .method = "POST", .what = "start multipart upload of",
			     .key = m->name, .query = q, .nquery = 1, .headers = h,
			     .nheaders = 1, .validate = check_xml_body };
	struct s3_resp rs;
	struct buf id = BUF_INIT;
	struct xml_pick pick = { "InitiateMultipartUploadResult/UploadId", &id };
	int rc;

	s3_resp_init(&rs);
	rc = s3_perform(m->st->ctx, &rq, &rs);
	if (rc == 0 && rs.status >= 200 && rs.status < 300) {
		rc = s3_xml_parse(rs.body.data, rs.body.len, pick_text, &pick);
		if (rc == 0 && !id.len)
			rc = err_set(-EIO, "start multipart upload of %s: no UploadId in the answer",
				     m->name);
		if (rc == 0)
			m->upload_id = buf_detach(&id, NULL);
	} else if (rc == 0) {
		rc = s3_fail(m->st->ctx, &rq, &rs);
	}
	buf_free(&id);
	s3_resp_free(&rs);
	return rc;
}

struct part_check {
	struct mp *m;
	unsigned idx;
	const char *md5hex;
};

static int check_part_etag(struct s3_req *rq, struct s3_resp *rs)
{
	struct part_check *pc = rq->arg;

	if (!etag_is(rs->etag, pc->md5hex))
		return err_set(-EBADMSG, "upload part %u of %s: the store answered ETag %s for "
			       "data whose MD5 is %s: the upload did not verify", pc->idx + 1,
			       rq->key, rs->etag[0] ? rs->etag : "(none)", pc->md5hex);
	return S3_OK;
}

static int mp_upload_part(struct mp *m, unsigned i)
{
	size_t off = (size_t)i * m->part_size;
	size_t n = m->len - off < m->part_size ? m->len - off : m->part_size;
	char num[16], hex[MD5_HEX_LEN + 1], b64[25], what[64];
	struct sigv4_param q[2];
	struct sigv4_header h[1];
	struct part_check pc = { m, i, hex };
	struct s3_req rq = { .method = "PUT", .what = what, .key = m->name, .query = q,
			     .nquery = 2, .headers = h, .nheaders = 1, .body = m->data + off,
			     .body_len = n, .validate = check_part_etag, .arg = &pc };
	struct s3_resp rs;
	int rc;

	snprintf(num, sizeof(num), "%u", i + 1);
	snprintf(what, sizeof(what), "upload part %u of %u of", i + 1, m->nparts);
	q[0] = (struct sigv4_param){ "partNumber", num };
	q[1] = (struct sigv4_param){ "uploadId", m->upload_id };
	md5(m->data + off, n, m->md5s[i]);
	md5_hex(m->md5s[i], hex);
	md5_base64(m->md5s[i], b64);
	h[0] = (struct sigv4_header){ "Content-MD5", b64 };
	s3_resp_init(&rs);
	rc = s3_perform(m->st->ctx, &rq, &rs);
	if (rc == 0) {
		if (rs.status >= 200 && rs.status < 300) {
			snprintf(m->etags[i], sizeof(m->etags[i]), "\"%s\"", hex);
		} else {
			rc = s3_fail(m->st->ctx, &rq, &rs);
			if (rc == -ENOENT)	/* NoSuchUpload: someone aborted it */
				rc = -EIO;
		}
	}
	s3_resp_free(&rs);
	return rc;
}

static void *mp_worker(void *arg)
{
	struct mp *m = arg;

	for (;;) {
		unsigned i;
		int rc;

		pthread_mutex_lock(&m->lock);
		if (m->failed || m->next >= m->nparts) {
			pthread_mutex_unlock(&m->lock);
			break;
		}
		i = m->next++;
		pthread_mutex_unlock(&m->lock);
		rc = mp_upload_part(m, i);
		if (rc < 0) {
			/* The error line is per thread: carry it to the caller's. */
			pthread_mutex_lock(&m->lock);
			if (!m->failed) {
				m->failed = 1;
				m->fail_code = rc;
				snprintf(m->fail_msg, sizeof(m->fail_msg), "%s", err_msg());
			}
			pthread_mutex_unlock(&m->lock);
			break;
		}
	}
	return NULL;
}

struct complete_check {
	const char *want;	/* md5-of-md5s "-N" */
	struct buf etag;
	int completed;		/* the store answered that it completed the upload */
};

static int check_complete(struct s3_req *rq, struct s3_resp *rs)
{
	struct complete_check *cc = rq->arg;
	struct xml_pick pick = { "CompleteMultipartUploadResult/ETag", &cc->etag };
	int v = check_xml_body(rq, rs);

	if (v != S3_OK)
		return v;
	buf_reset(&cc->etag);
	if (s3_xml_parse(rs->body.data, rs->body.len, pick_text, &pick) < 0) {
		snprintf(rs->why, sizeof(rs->why), "the answer is not well-formed XML");
		return S3_RETRY;
	}
	cc->completed = 1;
	/* No ETag in the answer (Ceph RGW): mp_complete asks HEAD instead. */
	if (cc->etag.len && !etag_is(buf_str(&cc->etag), cc->want))
		return err_set(-EBADMSG, "complete multipart upload of %s: the store answered "
			       "ETag %s, expected \"%s\": the upload did not verify", rq->key,
			       cc->etag.len ? buf_str(&cc->etag) : "(none)", cc->want);
	return S3_OK;
}

/* Completes the upload and verifies the object's ETag; *completed tells
 * whether the store completed it (there is nothing left to abort then). */
static int mp_complete(struct mp *m, struct store_info *info, int *completed)
{
	struct buf body = BUF_INIT;
	struct md5_ctx mc;
	uint8_t all[MD5_DIGEST_LEN];
	char hex[MD5_HEX_LEN + 1];
	struct complete_check cc = { NULL, BUF_INIT, 0 };
	struct sigv4_param q[] = { { "uploadId", m->upload_id } };
	struct sigv4_header h[] = { { "Content-Type", "application/xml" } };
	struct s3_req rq = { .method = "POST", .what = "complete multipart upload of",
			     .key = m->name, .query = q, .nquery = 1, .headers = h,
			     .nheaders = 1, .validate = check_complete, .arg = &cc };
	struct s3_resp rs;
	char *want;
	unsigned i;
	int rc;

	buf_adds(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload "
		 "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	md5_init(&mc);
	for (i = 0; i < m->nparts; i++) {
		buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
		s3_xml_escape(&body, m->etags[i]);
		buf_adds(&body, "</ETag></Part>");
		md5_update(&mc, m->md5s[i], MD5_DIGEST_LEN);
	}
	buf_adds(&body, "</CompleteMultipartUpload>");
	md5_final(&mc, all);
	md5_hex(all, hex);
	want = xasprintf("%s-%u", hex, m->nparts);
	cc.want = want;

	rq.body = body.data;
	rq.body_len = body.len;
	s3_resp_init(&rs);
	rc = s3_perform(m->st->ctx, &rq, &rs);
	*completed = cc.completed;
	if (rc == 0) {
		if (rs.status >= 200 && rs.status < 300 && cc.etag.len) {
			if (info) {
				info->size = m->len;
				copy_etag(info, buf_str(&cc.etag));
			}
		} else if ((rs.status >= 200 && rs.status < 300) ||
			   (rs.status == 404 && !strcmp(rs.code, "NoSuchUpload") &&
			    rs.maybe_applied)) {
			/* Completed without an ETag in the answer, or by an earlier
			 * attempt whose answer was lost: the object must have ours. */
			struct store_info now;

			*completed = 1;
			rc = head_name(m->st, m->name, &now);
			if (rc == 0 && !etag_is(now.etag, want))
				rc = rs.status == 404 ? s3_fail(m->st->ctx, &rq, &rs) :
				     err_set(-EBADMSG, "complete multipart upload of %s at %s: the "
					     "store answered no ETag, and HEAD says %s, expected \"%s\": "
					     "the upload did not verify", m->name, m->st->ctx->endpoint,
					     now.etag[0] ? now.etag : "(none)", want);
			else if (rc == 0 && info)
				*info = now;
		} else {
			rc = s3_fail(m->st->ctx, &rq, &rs);
		}
	}
	s3_resp_free(&rs);
	buf_free(&cc.etag);
	buf_free(&body);
	free(want);
	return rc;
}

/* Best effort: an upload left behind costs storage until a lifecycle rule
 * removes it, never correctness. */
static void mp_abort(struct mp *m)
{
	struct sigv4_param q[] = { { "uploadId", m->upload_id } };
	struct s3_req rq = { .method = "DELETE", .what = "abort multipart upload of",
			     .key = m->name, .query = q, .nquery = 1 };
	struct s3_resp rs;
	double budget = m->st->ctx->retry_seconds;

	rq.budget = budget < 10 ? budget : 10;
	s3_resp_init(&rs);
	s3_perform(m->st->ctx, &rq, &rs);
	s3_resp_free(&rs);
}

static int put_multipart(struct s3_store *st, const char *name, const void *data, size_t len,
			 struct store_info *info)
{
	struct mp m;
	pthread_t tid[S3_MAX_PARALLEL];
	int nthreads = 0, completed = 0, rc, i;
	size_t ps = st->part_size;

	/* Equal parts of at least part_size, at most 10,000 of them. */
	if ((len + ps - 1) / ps > S3_MAX_PARTS) {
		ps = (len + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
		ps = (ps + MIB - 1) / MIB * MIB;
	}
	memset(&m, 0, sizeof(m));
	m.st = st;
	m.name = name;
	m.data = data;
	m.len = len;
	m.part_size = ps;
	m.nparts = (unsigned)((len + ps - 1) / ps);
	m.md5s = xcalloc(m.nparts, sizeof(*m.md5s));
	m.etags = xcalloc(m.nparts, sizeof(*m.etags));
	pthread_mutex_init(&m.lock, NULL);

	rc = mp_create(&m);
	if (rc < 0)
		goto out;
	for (i = 0; i < st->max_parallel - 1 && (unsigned)i + 1 < m.nparts; i++) {
		if (pthread_create(&tid[nthreads], NULL, mp_worker, &m) != 0)
			break;
		nthreads++;
	}
	mp_worker(&m);
	for (i = 0; i < nthreads; i++)
		pthread_join(tid[i], NULL);
	if (m.failed)
		rc = err_set(m.fail_code, "%s", m.fail_msg);
	else
		rc = mp_complete(&m, info, &completed);
	if (rc < 0 && !completed) {
		char saved[1024];

		snprintf(saved, sizeof(saved), "%s", err_msg());
		mp_abort(&m);
		err_set(rc, "%s", saved);
	}
out:
	pthread_mutex_destroy(&m.lock);
	free(m.upload_id);
	free(m.md5s);
	free(m.etags);
	return rc;
}

static int s3_put(struct store *s, const char *key, const void *data, size_t len,
		  enum store_cond cond, const char *etag, struct store_info *info)
{
	struct s3_store *st = priv(s);
	char *name = full_name(st, key);
	int rc;

	if (cond == STORE_IF_MATCH && (!etag || !*etag || strpbrk(etag, "\r\n"))) {
		free(name);
		return err_set(-EINVAL, "put %s: If-Match needs a valid ETag", key);
	}
	if (cond == STORE_ALWAYS && len > st->threshold)
		rc = put_multipart(st, name, data, len, info);
	else if (cond == STORE_ALWAYS)
		rc = put_single(st, name, data, len, cond, NULL, STORE_MATCH_QUOTED, info);
	else if (len > S3_MAX_SINGLE_PUT)
		rc = err_set(-EFBIG, "a conditional put of %zu bytes is larger than one PUT may "
			     "carry (5 GiB), and servers ignore conditions on multipart uploads", len);
	else if (!(rc = cond_gate(st)))
		rc = put_conditional(st, name, data, len, cond, etag, info);
	free(name);
	return rc;
}

/* ---- get ---------------------------------------------------------------------- */

struct get_check {
	uint64_t off, len;	/* as asked */
	int ranged;		/* a Range header was sent */
};

/* The whole object arrived: its bytes must have the MD5 of an MD5 ETag. */
static int check_md5(struct s3_req *rq, struct s3_resp *rs)
{
	uint8_t d[MD5_DIGEST_LEN];
	char hex[MD5_HEX_LEN + 1];

	if (!etag_is_md5(rs->etag))
		return S3_OK;
	md5(rq->out->data + rq->out->len - rs->received, rs->received, d);
	md5_hex(d, hex);
	if (!etag_is(rs->etag, hex)) {
		snprintf(rs->why, sizeof(rs->why), "the %zu bytes received do not match "
			 "ETag %s (MD5 %s)", rs->received, rs->etag, hex);
		rs->invalid_code = -EBADMSG;
		return S3_RETRY;
	}
	return S3_OK;
}

static int check_get(struct s3_req *rq, struct s3_resp *rs)
{
	struct get_check *g = rq->arg;

	if (rs->status == 206) {
		uint64_t last;

		if (!rs->has_range) {
			snprintf(rs->why, sizeof(rs->why), "206 without a valid Content-Range");
			return S3_RETRY;
		}
		last = g->len == STORE_TO_END || g->off + g->len - 1 < g->off ||
		       g->off + g->len - 1 >= rs->range_total ?
		       rs->range_total - 1 : g->off + g->len - 1;
		if (rs->range_first != g->off || rs->range_last != last) {
			snprintf(rs->why, sizeof(rs->why), "asked for bytes %llu-%llu, the store "
				 "sent %llu-%llu/%llu", (unsigned long long)g->off,
				 (unsigned long long)last, (unsigned long long)rs->range_first,
				 (unsigned long long)rs->range_last,
				 (unsigned long long)rs->range_total);
			return S3_RETRY;
		}
		if (rs->received != rs->range_last - rs->range_first + 1) {
			snprintf(rs->why, sizeof(rs->why), "short body: %zu of %llu bytes",
				 rs->received,
				 (unsigned long long)(rs->range_last - rs->range_first + 1));
			return S3_RETRY;
		}
		/* a range that is the whole object: verified like a plain GET */
		if (rs->range_first == 0 && rs->range_last + 1 == rs->range_total)
			return check_md5(rq, rs);
		return S3_OK;
	}
	/* 200: the whole object. */
	if (rs->has_length && rs->received != rs->content_length) {
		snprintf(rs->why, sizeof(rs->why), "short body: %zu of %llu bytes",
			 rs->received, (unsigned long long)rs->content_length);
		return S3_RETRY;
	}
	if (!g->ranged)
		return check_md5(rq, rs);
	return S3_OK;
}

/* get, and get_max when whole_max is not 0 (see s3_req.whole_max). */
static int get_object(struct store *s, const char *key, uint64_t off, uint64_t len,
		      uint64_t whole_max, struct buf *out, struct store_info *info)
{
	struct s3_store *st = priv(s);
	char *name = full_name(st, key), range[64];
	struct get_check g = { off, len, !(off == 0 && len == STORE_TO_END) };
	struct sigv4_header h[1];
	struct s3_req rq = { .method = "GET", .what = "get", .key = name, .out = out,
			     .validate = check_get, .arg = &g, .whole_max = whole_max };
	struct s3_resp rs;
	size_t base = out->len;
	int rc;

	if (len == 0) {
		struct store_info hi;

		rc = head_name(st, name, &hi);
		if (rc == 0 && off >= hi.size && !(off == 0 && hi.size == 0))
			rc = err_set(-ERANGE, "get %s: offset %llu is past the end (%llu bytes)",
				     name, (unsigned long long)off, (unsigned long long)hi.size);
		if (rc == 0 && info)
			*info = hi;
		free(name);
		return rc;
	}
	if (g.ranged) {
		if (len == STORE_TO_END || off + len - 1 < off)
			snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)off);
		else
			snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
				 (unsigned long long)(off + len - 1));
		h[0] = (struct sigv4_header){ "Range", range };
		rq.headers = h;
		rq.nheaders = 1;
		/* A store that ignores Range sends the whole object (200);
		 * take it when it is small, refuse a flood. */
		rq.out_max = len == STORE_TO_END ? UINT64_MAX :
			     off + len < off ? UINT64_MAX : off + len;
	}
	s3_resp_init(&rs);
	rc = s3_perform(st->ctx, &rq, &rs);
	if (rc == -EFBIG && info) {
		info->size = rs.has_range ? rs.range_total : rs.has_length ? rs.content_length :
			     whole_max + 1;
		copy_etag(info, rs.etag);
	}
	if (rc < 0)
		goto out;
	if (rs.status == 206 || rs.status == 200) {
		uint64_t total = rs.status == 206 ? rs.range_total : (uint64_t)rs.received;

		if (rs.status == 200 && g.ranged) {
			/* The whole object arrived: keep [off, off+len). */
			uint64_t end = len == STORE_TO_END || off + len < off || off + len > total ?
				       total : off + len;

			if (off >= total && !(off == 0 && total == 0)) {
				buf_setlen(out, base);
				rc = err_set(-ERANGE, "get %s: offset %llu is past the end (%llu bytes)",
					     name, (unsigned long long)off,
					     (unsigned long long)total);
				goto out;
			}
			memmove(out->data + base, out->data + base + off, (size_t)(end - off));
			buf_setlen(out, base + (size_t)(end - off));
		}
		if (info) {
			info->size = total;
			copy_etag(info, rs.etag);
		}
		if (whole_max && total > whole_max) {
			buf_setlen(out, base);
			rc = err_set(-EFBIG, "larger than %llu bytes", (unsigned long long)whole_max);
			goto out;
		}
	} else if (rs.status == 416 && off == 0) {
		/* Any range of an empty object is unsatisfiable; reading
		 * [0, ...) of an empty object reads nothing. */
		struct store_info hi;

		rc = head_name(st, name, &hi);
		if (rc == 0 && hi.size != 0)
			rc = s3_fail(st->ctx, &rq, &rs);
		else if (rc == 0 && info)
			*info = hi;
	} else {
		rc = s3_fail(st->ctx, &rq, &rs);
	}
out:
	if (rc < 0)
		buf_setlen(out, base);
	s3_resp_free(&rs);
	free(name);
	return rc;
}

static int s3_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		  struct buf *out, struct store_info *info)
{
	return get_object(s, key, off, len, 0, out, info);
}

/* One GET of [0, max], as for any range, but an answer whose headers say
 * the object is larger ends it unread (s3_req.whole_max); a range that
 * turns out to be the whole object is verified against its ETag like a
 * plain GET (check_get). */
static int s3_get_max(struct store *s, const char *key, uint64_t max, struct buf *out,
		      struct store_info *info)
{
	if (max >= UINT64_MAX - 1)
		return get_object(s, key, 0, STORE_TO_END, 0, out, info);
	return get_object(s, key, 0, max + 1, max, out, info);
}

/* ---- list --------------------------------------------------------------------- */

struct entry {
	char *key;
	uint64_t size;
};

struct page {
	struct entry *e;
	size_t n, cap;
	struct buf key;
	uint64_t size;
	int has_key;
	int truncated;
	struct buf token;
	int bad_size;
};

static void page_xml(void *arg, const char *path, const char *text)
{
	struct page *p = arg;

	if (!strcmp(path, "ListBucketResult/Contents/Key")) {
		buf_reset(&p->key);
		buf_adds(&p->key, text);
		p->has_key = 1;
	} else if (!strcmp(path, "ListBucketResult/Contents/Size")) {
		char *end;

		p->size = strtoull(text, &end, 10);
		if (end == text || *end)
			p->bad_size = 1;
	} else if (!strcmp(path, "ListBucketResult/Contents")) {
		if (p->has_key) {
			if (p->n == p->cap) {
				p->cap = p->cap ? p->cap * 2 : 1024;
				p->e = xrealloc(p->e, p->cap * sizeof(*p->e));
			}
			p->e[p->n].key = xstrdup(buf_str(&p->key));
			p->e[p->n].size = p->size;
			p->n++;
		}
		p->has_key = 0;
		p->size = 0;
	} else if (!strcmp(path, "ListBucketResult/IsTruncated")) {
		p->truncated = !strcmp(text, "true");
	} else if (!strcmp(path, "ListBucketResult/NextContinuationToken")) {
		buf_reset(&p->token);
		buf_adds(&p->token, text);
	}
}

static int check_list(struct s3_req *rq, struct s3_resp *rs)
{
	struct page *p = rq->arg;
	size_t n0 = p->n;
	char why[128];

	p->truncated = 0;
	buf_reset(&p->token);
	if (s3_xml_parse(rs->body.data, rs->body.len, page_xml, p) < 0 || p->bad_size) {
		snprintf(why, sizeof(why), "%s", p->bad_size ? "bad <Size>" : err_msg());
		err_clear();
		/* Forget this attempt's entries; a retry lists the page again. */
		while (p->n > n0)
			free(p->e[--p->n].key);
		p->bad_size = 0;
		snprintf(rs->why, sizeof(rs->why), "listing page: %s", why);
		return S3_RETRY;
	}
	return S3_OK;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

static int s3_list(struct store *s, const char *prefix, store_list_fn fn, void *arg)
{
	struct s3_store *st = priv(s);
	char *full = full_name(st, prefix);
	size_t plen = strlen(st->prefix), i, pages = 0;
	struct page p;
	char *prev_token = NULL;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	for (;;) {
		struct sigv4_param q[3];
		size_t nq = 0;
		struct s3_req rq = { .method = "GET", .what = "list", .key = "", .query = q,
				     .validate = check_list, .arg = &p };
		struct s3_resp rs;

		q[nq++] = (struct sigv4_param){ "list-type", "2" };
		q[nq++] = (struct sigv4_param){ "prefix", full };
		if (prev_token)
			q[nq++] = (struct sigv4_param){ "continuation-token", prev_token };
		rq.nquery = nq;
		s3_resp_init(&rs);
		rc = s3_perform(st->ctx, &rq, &rs);
		if (rc == 0 && (rs.status < 200 || rs.status >= 300))
			rc = s3_fail(st->ctx, &rq, &rs);
		s3_resp_free(&rs);
		if (rc < 0)
			break;
		pages++;
		if (!p.truncated)
			break;
		if (!p.token.len || (prev_token && !strcmp(prev_token, buf_str(&p.token)))) {
			rc = err_set(-EIO, "list '%s' at %s: page %zu is truncated but carries no "
				     "new continuation token", full, st->ctx->endpoint, pages);
			break;
		}
		free(prev_token);
		prev_token = xstrdup(buf_str(&p.token));
	}
	/* Byte order whatever the server's order, without duplicates. */
	if (rc == 0) {
		if (p.n)
			qsort(p.e, p.n, sizeof(*p.e), entry_cmp);
		for (i = 0; i < p.n && rc == 0; i++) {
			if (i && !strcmp(p.e[i].key, p.e[i - 1].key))
				continue;
			if (strncmp(p.e[i].key, full, strlen(full)))
				continue;	/* not ours: a confused server */
			rc = fn(p.e[i].key + plen, p.e[i].size, arg);
		}
	}
	for (i = 0; i < p.n; i++)
		free(p.e[i].key);
	free(p.e);
	buf_free(&p.key);
	buf_free(&p.token);
	free(prev_token);
	free(full);
	return rc;
}

/* ---- delete ------------------------------------------------------------------- */

static int s3_del(struct store *s, const char *key)
{
	struct s3_store *st = priv(s);
	char *name = full_name(st, key);
	struct s3_req rq = { .method = "DELETE", .what = "delete", .key = name };
	struct s3_resp rs;
	int rc;

	s3_resp_init(&rs);
	rc = s3_perform(st->ctx, &rq, &rs);
	if (rc == 0 && !(rs.status >= 200 && rs.status < 300) &&
	    !(rs.status == 404 && strcmp(rs.code, "NoSuchBucket")))
		rc = s3_fail(st->ctx, &rq, &rs);
	s3_resp_free(&rs);
	free(name);
	return rc;
}

struct del_result {
	struct buf key, code, message;
	char **retry;		/* keys to send again (transient per-key errors) */
	size_t nretry;
	int failed;		/* a permanent per-key error */
	struct buf fail;	/* its description */
};

static void del_xml(void *arg, const char *path, const char *text)
{
	struct del_result *d = arg;

	if (!strcmp(path, "DeleteResult/Error/Key")) {
		buf_reset(&d->key);
		buf_adds(&d->key, text);
	} else if (!strcmp(path, "DeleteResult/Error/Code")) {
		buf_reset(&d->code);
		buf_adds(&d->code, text);
	} else if (!strcmp(path, "DeleteResult/Error/Message")) {
		buf_reset(&d->message);
		buf_adds(&d->message, text);
	} else if (!strcmp(path, "DeleteResult/Error")) {
		const char *code = buf_str(&d->code);

		if (!strcmp(code, "NoSuchKey")) {
			/* gone already: what we wanted */
		} else if (!strcmp(code, "InternalError") || !strcmp(code, "SlowDown") ||
			   !strcmp(code, "ServiceUnavailable")) {
			d->retry = xrealloc(d->retry, (d->nretry + 1) * sizeof(*d->retry));
			d->retry[d->nretry++] = xstrdup(buf_str(&d->key));
		} else if (!d->failed) {
			d->failed = 1;
			buf_printf(&d->fail, "%s: %s: %s", buf_str(&d->key), code,
				   buf_str(&d->message));
		}
		buf_reset(&d->key);
		buf_reset(&d->code);
		buf_reset(&d->message);
	}
}

/* One DeleteObjects request for names[0..n); transient per-key failures
 * come back in d->retry. */
static int delete_batch(struct s3_store *st, char *const *names, size_t n, struct del_result *d)
{
	struct buf body = BUF_INIT;
	uint8_t digest[MD5_DIGEST_LEN];
	char b64[25];
	struct sigv4_param q[] = { { "delete", "" } };
	struct sigv4_header h[2];
	struct s3_req rq = { .method = "POST", .what = "delete objects in", .key = "",
			     .query = q, .nquery = 1, .headers = h, .nheaders = 2,
			     .validate = check_xml_body };
	struct s3_resp rs;
	size_t i;
	int rc;

	buf_adds(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete xmlns="
		 "\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
	for (i = 0; i < n; i++) {
		buf_adds(&body, "<Object><Key>");
		s3_xml_escape(&body, names[i]);
		buf_adds(&body, "</Key></Object>");
	}
	buf_adds(&body, "</Delete>");
	md5(body.data, body.len, digest);
	md5_base64(digest, b64);
	h[0] = (struct sigv4_header){ "Content-MD5", b64 };
	h[1] = (struct sigv4_header){ "Content-Type", "application/xml" };
	rq.body = body.data;
	rq.body_len = body.len;
	s3_resp_init(&rs);
	rc = s3_perform(st->ctx, &rq, &rs);
	if (rc == 0 && rs.status >= 200 && rs.status < 300) {
		rc = s3_xml_parse(rs.body.data, rs.body.len, del_xml, d);
		if (rc < 0)
			err_prefix(rc, "delete objects at %s", st->ctx->endpoint);
	} else if (rc == 0) {
		rc = s3_fail(st->ctx, &rq, &rs);
	}
	s3_resp_free(&rs);
	buf_free(&body);
	return rc;
}

static int s3_del_many(struct store *s, const char *const *keys, size_t n)
{
	struct s3_store *st = priv(s);
	size_t at, i;
	int rc = 0;

	for (at = 0; at < n && rc == 0; at += S3_DELETE_BATCH) {
		size_t cnt = n - at < S3_DELETE_BATCH ? n - at : S3_DELETE_BATCH;
		char **names = xcalloc(cnt, sizeof(*names));
		struct del_result d;
		int round;

		memset(&d, 0, sizeof(d));
		for (i = 0; i < cnt; i++)
			names[i] = full_name(st, keys[at + i]);
		rc = delete_batch(st, names, cnt, &d);
		/* Keys the store could not delete just now: again, a few times. */
		for (round = 0; rc == 0 && !d.failed && d.nretry && round < 5; round++) {
			char **again = d.retry;
			size_t nagain = d.nretry;

			d.retry = NULL;
			d.nretry = 0;
			rc = delete_batch(st, again, nagain, &d);
			for (i = 0; i < nagain; i++)
				free(again[i]);
			free(again);
		}
		if (rc == 0 && d.failed)
			rc = err_set(-EIO, "delete objects at %s: the store refused %s",
				     st->ctx->endpoint, buf_str(&d.fail));
		else if (rc == 0 && d.nretry)
			rc = err_set(-EAGAIN, "delete objects at %s: %zu keys still failing "
				     "with transient errors, %s among them", st->ctx->endpoint,
				     d.nretry, d.retry[0]);
		for (i = 0; i < cnt; i++)
			free(names[i]);
		free(names);
		for (i = 0; i < d.nretry; i++)
			free(d.retry[i]);
		free(d.retry);
		buf_free(&d.key);
		buf_free(&d.code);
		buf_free(&d.message);
		buf_free(&d.fail);
	}
	return rc;
}

/* ---- open / close --------------------------------------------------------------- */

static void s3_close(struct store *s)
{
	struct s3_store *st = priv(s);

	if (st) {
		s3_ctx_free(st->ctx);
		pthread_mutex_destroy(&st->cond_lock);
		free(st->probe_dir);
		free(st->prefix);
		free(st);
	}
	free(s->url);
	free(s);
}

static const struct store_ops s3_ops = {
	.put = s3_put,
	.get = s3_get,
	.get_max = s3_get_max,
	.head = s3_head,
	.list = s3_list,
	.del = s3_del,
	.del_many = s3_del_many,
	.cond_probe = s3_cond_probe,
	.close = s3_close,
};

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static void trim(char **s, char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

static void wipe_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* Reads one profile of an AWS shared credentials file.  Returns 0 (with
 * the key id and secret set, the token maybe), 1 when the file or profile is not there, or a
 * negative code.  The file's bytes are wiped after parsing. */
static int read_profile(const char *path, const char *profile, char **ak, char **sk,
			char **tok)
{
	FILE *f = fopen(path, "r");
	struct buf text = BUF_INIT;
	char chunk[4096], *line, *next;
	size_t n;
	int in = 0, found = 0;

	if (!f)
		return errno == ENOENT ? 1 : err_set(-EACCES, "cannot read AWS credentials file %s: %m",
						     path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && text.len < MIB)
		buf_add(&text, chunk, n);
	sodium_memzero(chunk, sizeof(chunk));
	fclose(f);
	for (line = (char *)text.data; line && *line; line = next) {
		char *end = strchr(line, '\n'), *eq, *ks, *ke, *vs, *ve;

		next = end ? end + 1 : NULL;
		if (!end)
			end = line + strlen(line);
		trim(&line, &end);
		if (line == end || *line == '#' || *line == ';')
			continue;
		if (*line == '[' && end[-1] == ']') {
			char *ns = line + 1, *ne = end - 1;

			trim(&ns, &ne);
			in = (size_t)(ne - ns) == strlen(profile) && !strncmp(ns, profile, (size_t)(ne - ns));
			found |= in;
			continue;
		}
		eq = memchr(line, '=', (size_t)(end - line));
		if (!in || !eq)
			continue;
		ks = line;
		ke = eq;
		vs = eq + 1;
		ve = end;
		trim(&ks, &ke);
		trim(&vs, &ve);
#define KEY_IS(k) ((size_t)(ke - ks) == strlen(k) && !strncasecmp(ks, k, (size_t)(ke - ks)))
		if (KEY_IS("aws_access_key_id")) {
			wipe_free(*ak);
			*ak = xstrndup(vs, (size_t)(ve - vs));
		} else if (KEY_IS("aws_secret_access_key")) {
			wipe_free(*sk);
			*sk = xstrndup(vs, (size_t)(ve - vs));
		} else if (KEY_IS("aws_session_token")) {
			wipe_free(*tok);
			*tok = xstrndup(vs, (size_t)(ve - vs));
		}
#undef KEY_IS
	}
	if (text.data)
		sodium_memzero(text.data, text.cap);
	buf_free(&text);
	return found && *ak && *sk ? 0 : 1;
}

struct creds {
	char *ak, *sk, *tok;
	const char *source;	/* for messages */
};

static int resolve_creds(const struct store_opts *o, struct creds *c)
{
	const char *ak = o->access_key ? o->access_key : env("AWS_ACCESS_KEY_ID");
	const char *sk = o->secret_key ? o->secret_key : env("AWS_SECRET_ACCESS_KEY");
	const char *profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
	char *path;
	int rc;

	memset(c, 0, sizeof(*c));
	if (ak || sk) {
		if (!ak || !sk)
			return err_set(-EACCES, "S3 credentials are incomplete: %s is set but %s "
				       "is not", ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
				       ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		c->ak = xstrdup(ak);
		c->sk = xstrdup(sk);
		if (o->session_token || env("AWS_SESSION_TOKEN"))
			c->tok = xstrdup(o->session_token ? o->session_token :
					 env("AWS_SESSION_TOKEN"));
		c->source = o->access_key ? "the store options" : "the environment";
		return 0;
	}
	if (env("AWS_SHARED_CREDENTIALS_FILE"))
		path = xstrdup(env("AWS_SHARED_CREDENTIALS_FILE"));
	else if (env("HOME"))
		path = xasprintf("%s/.aws/credentials", env("HOME"));
	else
		path = NULL;
	rc = path ? read_profile(path, profile, &c->ak, &c->sk, &c->tok) : 1;
	if (rc == 1)
		rc = err_set(-EACCES, "no S3 credentials: set AWS_ACCESS_KEY_ID and "
			     "AWS_SECRET_ACCESS_KEY, or add a [%s] profile with "
			     "aws_access_key_id and aws_secret_access_key to %s (AWS_PROFILE "
			     "and AWS_SHARED_CREDENTIALS_FILE choose others)", profile,
			     path ? path : "~/.aws/credentials");
	if (rc < 0) {
		wipe_free(c->ak);
		wipe_free(c->sk);
		wipe_free(c->tok);
		memset(c, 0, sizeof(*c));
	} else {
		c->source = "the shared credentials file";
	}
	free(path);
	return rc;
}

static int host_is_aws(const char *endpoint)
{
	const char *h = strstr(endpoint, "://");
	size_t n;

	h = h ? h + 3 : endpoint;
	n = strcspn(h, ":/");
	return (n >= 14 && !strncasecmp(h + n - 14, ".amazonaws.com", 14)) ||
	       (n >= 17 && !strncasecmp(h + n - 17, ".amazonaws.com.cn", 17));
}

int store_s3_open(const char *url, const char *bucket, const char *prefix,
		  const struct store_opts *opts, struct store **out)
{
	static const struct store_opts no_opts;
	const struct store_opts *o = opts ? opts : &no_opts;
	struct s3_conf conf;
	struct creds c;
	struct s3_store *st;
	struct store *s;
	const char *endpoint, *region, *addr;
	char *aws_endpoint = NULL;
	bool unsafe;
	int rc;

	*out = NULL;
	memset(&conf, 0, sizeof(conf));
	if (!bucket || !*bucket)
		return err_set(-EINVAL, "store URL '%s': no bucket", url);
	endpoint = o->endpoint ? o->endpoint :
		   env("AWS_ENDPOINT_URL_S3") ? env("AWS_ENDPOINT_URL_S3") : env("AWS_ENDPOINT_URL");
	region = o->region ? o->region :
		 env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
	if (!region)
		region = endpoint ? "auto" : "us-east-1";
	if (!*region || strpbrk(region, "/ \t\r\n"))
		return err_set(-EINVAL, "S3 region '%s' is not valid (AWS_REGION)", region);
	if (!endpoint)
		endpoint = aws_endpoint = xasprintf("https://s3.%s.amazonaws.com", region);

	conf.endpoint = endpoint;
	conf.bucket = bucket;
	conf.region = region;
	conf.vhost = host_is_aws(endpoint) && !strchr(bucket, '.');
	addr = env("CAIRN_S3_ADDRESSING");
	if (o->addressing == STORE_PATH_STYLE) {
		conf.vhost = 0;
	} else if (o->addressing == STORE_VIRTUAL_HOST) {
		conf.vhost = 1;
	} else if (o->addressing) {
		free(aws_endpoint);
		return err_set(-EINVAL, "S3 addressing %d is not valid", o->addressing);
	} else if (addr && !strcmp(addr, "path")) {
		conf.vhost = 0;
	} else if (addr && !strcmp(addr, "virtual")) {
		conf.vhost = 1;
	} else if (addr) {
		free(aws_endpoint);
		return err_set(-EINVAL, "CAIRN_S3_ADDRESSING='%s': use path or virtual", addr);
	}
	conf.ca_bundle = o->ca_bundle ? o->ca_bundle : env("AWS_CA_BUNDLE");
	conf.connect_to = o->connect_to;
	conf.retry_seconds = o->retry_seconds > 0 ? o->retry_seconds : 0;
	if (conf.retry_seconds <= 0 && env("CAIRN_S3_RETRY_SECONDS")) {
		char *end;
		double v = strtod(env("CAIRN_S3_RETRY_SECONDS"), &end);

		if (*end || v <= 0) {
			free(aws_endpoint);
			return err_set(-EINVAL, "CAIRN_S3_RETRY_SECONDS='%s' is not a positive number",
				       env("CAIRN_S3_RETRY_SECONDS"));
		}
		conf.retry_seconds = v;
	}
	if (conf.retry_seconds <= 0)
		conf.retry_seconds = 60;
	if (o->part_size && o->part_size < S3_MIN_PART) {
		free(aws_endpoint);
		return err_set(-EINVAL, "S3 part size %zu is below the 5 MiB S3 requires",
			       o->part_size);
	}
	unsafe = o->unsafe_no_cond;
	if (!unsafe && env("CAIRN_UNSAFE_NO_CONDITIONAL_WRITES")) {
		const char *v = env("CAIRN_UNSAFE_NO_CONDITIONAL_WRITES");

		if (!strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "true")) {
			unsafe = true;
		} else if (strcmp(v, "0") && strcasecmp(v, "no") && strcasecmp(v, "false")) {
			free(aws_endpoint);
			return err_set(-EINVAL, "CAIRN_UNSAFE_NO_CONDITIONAL_WRITES='%s': use 1 (yes) or 0 (no)",
				       v);
		}
	}

	rc = resolve_creds(o, &c);
	if (rc < 0) {
		free(aws_endpoint);
		return err_prefix(rc, "store %s", url);
	}
	conf.access_key = c.ak;
	conf.secret_key = c.sk;
	conf.session_token = c.tok;
	st = xcalloc(1, sizeof(*st));
	rc = s3_ctx_new(&conf, &st->ctx);
	wipe_free(c.sk);
	wipe_free(c.tok);
	free(c.ak);
	free(aws_endpoint);
	if (rc < 0) {
		free(st);
		return err_prefix(rc, "store %s", url);
	}
	st->prefix = prefix && *prefix ? xasprintf("%s/", prefix) : xstrdup("");
	st->threshold = o->multipart_threshold ? o->multipart_threshold : 32 * MIB;
	st->part_size = o->part_size ? o->part_size : 8 * MIB;
	st->max_parallel = o->max_parallel > 0 ? o->max_parallel : 4;
	if (st->max_parallel > S3_MAX_PARALLEL)
		st->max_parallel = S3_MAX_PARALLEL;
	pthread_mutex_init(&st->cond_lock, NULL);
	st->probe_dir = o->probe_dir && *o->probe_dir ? xstrdup(o->probe_dir) : NULL;
	st->unsafe_no_cond = unsafe;
	s = xcalloc(1, sizeof(*s));
	s->ops = &s3_ops;
	s->url = xstrdup(url);
	s->priv = st;
	*out = s;
	return 0;
}
