/*
 * blob.c - encoding and decoding of one blob: keyed id of the plaintext,
 * zstd when it pays, sealed under a data key (docs/format.md "Blob
 * encoding").
 *
 * Invariants: decoding never hands out bytes whose keyed id differs from
 * ref->id, and never allocates more than ref->raw_length (at most
 * BLOB_MAX_RAW) for a decompressed blob, whatever a zstd frame declares.
 * Threads: each thread has its own zstd contexts and scratch buffer (a
 * pthread key frees them at thread exit); nothing else here is shared.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "blob.h"
#include "err.h"
#include "hex.h"
#include "keys.h"

#define ZSTD_MAGIC "\x28\xb5\x2f\xfd"	/* a zstd frame, little-endian 0xFD2FB528 */
#define SCRATCH_KEEP (16u << 20)	/* scratch larger than this is freed after use */

/* What one thread keeps between calls. */
struct blob_tls {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	struct buf scratch;	/* compressed bytes on their way in or out */
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

static void tls_destroy(void *p)
{
	struct blob_tls *t = p;

	if (!t)
		return;
	ZSTD_freeCCtx(t->cctx);
	ZSTD_freeDCtx(t->dctx);
	buf_free(&t->scratch);
	free(t);
}

static void tls_make_key(void)
{
	tls_key_ok = pthread_key_create(&tls_key, tls_destroy) == 0;
}

/* This thread's state, made on first use.  Returns NULL when out of memory
 * or thread keys (the message says so). */
static struct blob_tls *tls_get(void)
{
	struct blob_tls *t;

	pthread_once(&tls_once, tls_make_key);
	if (!tls_key_ok) {
		err_set(-ENOMEM, "blob: cannot make a thread key for zstd contexts");
		return NULL;
	}
	t = pthread_getspecific(tls_key);
	if (t)
		return t;
	t = xcalloc(1, sizeof(*t));
	buf_init(&t->scratch);
	t->cctx = ZSTD_createCCtx();
	t->dctx = ZSTD_createDCtx();
	if (!t->cctx || !t->dctx ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(t->cctx, ZSTD_c_compressionLevel,
						BLOB_ZSTD_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(t->cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(t->cctx, ZSTD_c_checksumFlag, 0)) ||
	    pthread_setspecific(tls_key, t) != 0) {
		tls_destroy(t);
		err_set(-ENOMEM, "blob: out of memory for zstd contexts");
		return NULL;
	}
	return t;
}

/* Drops a scratch buffer that a huge blob left behind. */
static void scratch_done(struct blob_tls *t)
{
	if (t->scratch.cap > SCRATCH_KEEP)
		buf_free(&t->scratch);
	else
		buf_reset(&t->scratch);
}

void blob_thread_cleanup(void)
{
	pthread_once(&tls_once, tls_make_key);
	if (!tls_key_ok)
		return;
	tls_destroy(pthread_getspecific(tls_key));
	pthread_setspecific(tls_key, NULL);
}

void blob_id_hex(const uint8_t id[KEYS_BLOB_ID_LEN], char out[BLOB_ID_HEX_SIZE])
{
	hex_encode(id, KEYS_BLOB_ID_LEN, out);
}

int blob_id_parse(const char *hex, uint8_t id[KEYS_BLOB_ID_LEN])
{
	uint8_t tmp[KEYS_BLOB_ID_LEN];

	if (!hex || strnlen(hex, BLOB_ID_HEX_SIZE) != 2 * KEYS_BLOB_ID_LEN)
		return err_set(-EINVAL, "invalid blob id: want %d lowercase hex digits",
			       2 * KEYS_BLOB_ID_LEN);
	if (hex_decode(hex, tmp, KEYS_BLOB_ID_LEN))
		return err_set(-EINVAL, "invalid blob id '%.64s': want %d lowercase "
			       "hex digits", hex, 2 * KEYS_BLOB_ID_LEN);
	memcpy(id, tmp, sizeof(tmp));
	return 0;
}

/* Compresses plain into t->scratch when that pays (see blob.h).  Returns 1
 * when it did, 0 when the blob is to be stored raw, or -ENOMEM/-EIO. */
static int try_compress(struct blob_tls *t, const void *plain, size_t len, const char *hex)
{
	size_t limit = len - len / BLOB_ZSTD_MIN_SAVING, r;

	if (len == 0)
		return 0;
	if (limit >= len)
		limit = len - 1;	/* and at least one byte shorter */
	if (limit == 0)
		return 0;
	buf_reset(&t->scratch);
	buf_grow(&t->scratch, limit);
	r = ZSTD_compress2(t->cctx, t->scratch.data, limit, plain, len);
	if (!ZSTD_isError(r)) {
		buf_setlen(&t->scratch, r);
		return 1;
	}
	if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
		return 0;	/* did not pay */
	if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
		return err_set(-ENOMEM, "blob %.16s: out of memory compressing it", hex);
	return err_set(-EIO, "blob %.16s: zstd cannot compress it: %s", hex,
		       ZSTD_getErrorName(r));
}

int blob_encode(const struct keys_ring *ring, enum keys_blob_type type,
		const void *plain, size_t len, struct buf *sealed_out,
		struct blob_ref *ref)
{
	uint8_t id[KEYS_BLOB_ID_LEN];
	char hex[BLOB_ID_HEX_SIZE];
	const struct keys_key *dk;
	struct blob_tls *t;
	int rc, zstd;

	if (type != KEYS_BLOB_DATA && type != KEYS_BLOB_TREE)
		return err_set(-EINVAL, "cannot encode a blob of unknown type %d", (int)type);
	if (len > BLOB_MAX_RAW || (!plain && len))
		return err_set(-EINVAL, "cannot encode a %s blob of %zu bytes: the limit "
			       "is %u", keys_blob_type_name(type), len, BLOB_MAX_RAW);
	rc = keys_blob_id_typed(ring, type, plain, len, id);
	if (rc)
		return rc;
	rc = keys_ring_current(ring, &dk);
	if (rc)
		return rc;
	t = tls_get();
	if (!t)
		return -ENOMEM;
	blob_id_hex(id, hex);
	zstd = try_compress(t, plain, len, hex);
	if (zstd < 0) {
		scratch_done(t);
		return zstd;
	}
	if (zstd)
		rc = keys_seal_blob(dk, type, id, t->scratch.data, t->scratch.len, sealed_out);
	else
		rc = keys_seal_blob(dk, type, id, plain, len, sealed_out);
	if (!rc) {
		memset(ref, 0, sizeof(*ref));
		memcpy(ref->id, id, sizeof(id));
		ref->type = (uint8_t)type;
		ref->compression = zstd ? BLOB_ZSTD : BLOB_RAW;
		ref->raw_length = (uint32_t)len;
		ref->length = (uint32_t)((zstd ? t->scratch.len : len) + KEYS_BLOB_OVERHEAD);
		memcpy(ref->key_id, keys_key_id(dk), KEYS_ID_SIZE);
	}
	scratch_done(t);
	return rc;
}

/* Decompresses the one zstd frame src[0 .. slen), which must declare
 * exactly raw bytes of content and hold exactly that, onto out. */
static int decompress(struct blob_tls *t, const uint8_t *src, size_t slen, size_t raw,
		      struct buf *out, const char *hex)
{
	unsigned long long fcs;
	size_t r;

	if (slen < 4 || memcmp(src, ZSTD_MAGIC, 4) != 0)
		return err_set(-EBADMSG, "blob %.16s: not a zstd frame", hex);
	fcs = ZSTD_getFrameContentSize(src, slen);
	if (fcs == ZSTD_CONTENTSIZE_ERROR)
		return err_set(-EBADMSG, "blob %.16s: malformed zstd frame header", hex);
	if (fcs == ZSTD_CONTENTSIZE_UNKNOWN)
		return err_set(-EBADMSG, "blob %.16s: zstd frame declares no content size",
			       hex);
	if (fcs != raw)
		return err_set(-EBADMSG, "blob %.16s: zstd frame declares %llu bytes, its "
			       "reference says %zu", hex, fcs, raw);
	r = ZSTD_findFrameCompressedSize(src, slen);
	if (ZSTD_isError(r) || r != slen)
		return err_set(-EBADMSG, "blob %.16s: zstd frame is truncated or followed "
			       "by other bytes", hex);
	buf_grow(out, raw);
	r = ZSTD_decompressDCtx(t->dctx, out->data + out->len, raw, src, slen);
	if (ZSTD_isError(r) || r != raw) {
		out->data[out->len] = '\0';
		return err_set(-EBADMSG, "blob %.16s: zstd frame does not decompress to "
			       "%zu bytes: %s", hex, raw,
			       ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short");
	}
	buf_setlen(out, out->len + raw);
	return 0;
}

static int ref_check(const struct blob_ref *ref, size_t len, const char *hex)
{
	if (ref->type != KEYS_BLOB_DATA && ref->type != KEYS_BLOB_TREE)
		return err_set(-EINVAL, "blob %.16s: unknown type %d", hex, ref->type);
	if (!memchr(ref->key_id, '\0', sizeof(ref->key_id)) || !keys_id_valid(ref->key_id))
		return err_set(-EINVAL, "blob %.16s: invalid key id in its reference", hex);
	if (ref->compression != BLOB_RAW && ref->compression != BLOB_ZSTD)
		return err_set(-ENOTSUP, "blob %.16s: compression %d is not supported "
			       "(this version reads 0 raw and 1 zstd)", hex, ref->compression);
	if (ref->raw_length > BLOB_MAX_RAW)
		return err_set(-EBADMSG, "blob %.16s: raw length %u is over the limit of "
			       "%u bytes", hex, (unsigned)ref->raw_length, BLOB_MAX_RAW);
	if (len != ref->length || len < KEYS_BLOB_OVERHEAD)
		return err_set(-EBADMSG, "blob %.16s: %zu sealed bytes, its reference "
			       "says %u", hex, len, (unsigned)ref->length);
	if (ref->compression == BLOB_RAW && len - KEYS_BLOB_OVERHEAD != ref->raw_length)
		return err_set(-EBADMSG, "blob %.16s: raw blob of %zu bytes, its reference "
			       "says %u", hex, len - KEYS_BLOB_OVERHEAD,
			       (unsigned)ref->raw_length);
	return 0;
}

int blob_decode(const struct keys_ring *ring, const struct blob_ref *ref,
		const uint8_t *sealed, size_t len, struct buf *plain_out)
{
	enum keys_blob_type type = (enum keys_blob_type)ref->type;
	uint8_t id[KEYS_BLOB_ID_LEN];
	char hex[BLOB_ID_HEX_SIZE];
	const struct keys_key *dk;
	size_t old = plain_out->len;
	struct blob_tls *t = NULL;
	int rc;

	blob_id_hex(ref->id, hex);
	rc = ref_check(ref, len, hex);
	if (rc)
		return rc;
	rc = keys_ring_find(ring, ref->key_id, &dk);
	if (rc)
		return err_prefix(rc, "blob %.16s", hex);
	if (ref->compression == BLOB_RAW) {
		rc = keys_open_blob(dk, type, ref->id, sealed, len, plain_out);
	} else {
		t = tls_get();
		if (!t)
			return -ENOMEM;
		buf_reset(&t->scratch);
		rc = keys_open_blob(dk, type, ref->id, sealed, len, &t->scratch);
		if (!rc)
			rc = decompress(t, t->scratch.data, t->scratch.len, ref->raw_length,
					plain_out, hex);
		scratch_done(t);
	}
	if (rc)
		return rc;
	rc = keys_blob_id_typed(ring, type, plain_out->data + old, plain_out->len - old, id);
	if (!rc && memcmp(id, ref->id, sizeof(id)) != 0)
		rc = err_set(-EBADMSG, "blob %s: content does not match its id", hex);
	if (rc)
		buf_setlen(plain_out, old);
	return rc;
}
