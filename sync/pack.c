/*
 * pack.c - pack writer and pack header reader (layout in docs/format.md,
 * "Packs").
 *
 * What must stay true: a header a reader accepts describes blobs that lie
 * back to back from offset 0 up to the sealed header, all of the pack's
 * type; the header is sealed under the pack's own name, so a pack copied to
 * another name fails to open; a writer's state changes only on success.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hex.h"
#include "le.h"
#include "pack.h"

/* entry layout: id 32 | type 1 | compression 1 | offset 8 | length 4 |
 * raw_length 4 | key id 8 */
#define E_ID 0
#define E_TYPE 32
#define E_COMP 33
#define E_OFF 34
#define E_LEN 42
#define E_RAW 46
#define E_KEY 50

struct pack_writer {
	enum keys_blob_type type;
	struct buf body;		/* the sealed blobs back to back */
	struct pack_entry *entries;
	size_t count, cap;
};

/* ---- little helpers ----------------------------------------------------- */

static const char *type_dir(enum keys_blob_type type)
{
	return type == KEYS_BLOB_DATA ? "data" : type == KEYS_BLOB_TREE ? "tree" : NULL;
}

/* ---- names and entries -------------------------------------------------- */

int pack_name_make(enum keys_blob_type type, const char *id, char out[PACK_NAME_SIZE])
{
	const char *dir = type_dir(type);

	if (!dir)
		return err_set(-EINVAL, "pack of unknown blob type %d", (int)type);
	if (!id || strnlen(id, PACK_ID_SIZE) != PACK_ID_LEN || !hex_is_lower(id, PACK_ID_LEN))
		return err_set(-EINVAL, "bad pack id '%.40s': want %d lowercase hex digits",
			       id ? id : "", PACK_ID_LEN);
	memcpy(out, dir, 4);
	out[4] = '/';
	out[5] = id[0];
	out[6] = id[1];
	out[7] = '/';
	memcpy(out + 8, id, PACK_ID_LEN + 1);
	return 0;
}

int pack_name_parse(const char *name, enum keys_blob_type *type)
{
	enum keys_blob_type t;

	if (!name || strnlen(name, PACK_NAME_SIZE) != PACK_NAME_LEN)
		goto bad;
	if (memcmp(name, "data/", 5) == 0)
		t = KEYS_BLOB_DATA;
	else if (memcmp(name, "tree/", 5) == 0)
		t = KEYS_BLOB_TREE;
	else
		goto bad;
	if (name[7] != '/' || name[5] != name[8] || name[6] != name[9] ||
	    !hex_is_lower(name + 8, PACK_ID_LEN))
		goto bad;
	if (type)
		*type = t;
	return 0;
bad:
	return err_set(-EINVAL, "'%.80s' is not a pack name (data/<xx>/<32 hex> or tree/<xx>/<32 hex>)",
		       name ? name : "");
}

void pack_entry_encode(const struct pack_entry *e, uint8_t out[PACK_ENTRY_SIZE])
{
	memcpy(out + E_ID, e->ref.id, KEYS_BLOB_ID_LEN);
	out[E_TYPE] = e->ref.type;
	out[E_COMP] = e->ref.compression;
	le_put64(out + E_OFF, e->offset);
	le_put32(out + E_LEN, e->ref.length);
	le_put32(out + E_RAW, e->ref.raw_length);
	if (hex_decode(e->ref.key_id, out + E_KEY, 8))
		memset(out + E_KEY, 0, 8);	/* callers pass valid key ids */
}

void pack_entry_decode(const uint8_t in[PACK_ENTRY_SIZE], struct pack_entry *e)
{
	memcpy(e->ref.id, in + E_ID, KEYS_BLOB_ID_LEN);
	e->ref.type = in[E_TYPE];
	e->ref.compression = in[E_COMP];
	e->offset = le_get64(in + E_OFF);
	e->ref.length = le_get32(in + E_LEN);
	e->ref.raw_length = le_get32(in + E_RAW);
	hex_encode(in + E_KEY, 8, e->ref.key_id);
}

int pack_entry_check(const struct pack_entry *e, enum keys_blob_type type,
		     const char *where, size_t i)
{
	const struct blob_ref *r = &e->ref;

	if (r->type != type)
		return err_set(-EBADMSG, "%s: blob %zu is of type %u (%s), the pack holds %s blobs",
			       where, i, r->type, keys_blob_type_name(r->type),
			       keys_blob_type_name(type));
	if (r->compression != BLOB_RAW && r->compression != BLOB_ZSTD)
		return err_set(-EBADMSG, "%s: blob %zu has unknown compression %u",
			       where, i, r->compression);
	if (r->length < KEYS_BLOB_OVERHEAD)
		return err_set(-EBADMSG, "%s: blob %zu is %u bytes, shorter than a sealed blob",
			       where, i, r->length);
	if (r->raw_length > BLOB_MAX_RAW)
		return err_set(-EBADMSG, "%s: blob %zu claims %u plaintext bytes (at most %u)",
			       where, i, r->raw_length, BLOB_MAX_RAW);
	if (r->compression == BLOB_RAW && r->raw_length != r->length - KEYS_BLOB_OVERHEAD)
		return err_set(-EBADMSG, "%s: blob %zu is stored raw but its lengths disagree (%u sealed, %u raw)",
			       where, i, r->length, r->raw_length);
	if (!keys_id_valid(r->key_id))
		return err_set(-EBADMSG, "%s: blob %zu has a malformed key id", where, i);
	if (e->offset > UINT64_MAX - r->length)
		return err_set(-EBADMSG, "%s: blob %zu ends past 2^64", where, i);
	return 0;
}

void pack_header_free(struct pack_header *h)
{
	if (!h)
		return;
	free(h->entries);
	memset(h, 0, sizeof(*h));
}

/* ---- writer ------------------------------------------------------------- */

int pack_writer_new(enum keys_blob_type type, struct pack_writer **out)
{
	struct pack_writer *w;

	if (!type_dir(type))
		return err_set(-EINVAL, "pack writer for unknown blob type %d", (int)type);
	w = xcalloc(1, sizeof(*w));
	w->type = type;
	buf_init(&w->body);
	*out = w;
	return 0;
}

void pack_writer_free(struct pack_writer *w)
{
	if (!w)
		return;
	buf_free(&w->body);
	free(w->entries);
	free(w);
}

int pack_writer_add(struct pack_writer *w, const struct blob_ref *ref,
		    const uint8_t *sealed, size_t len)
{
	struct pack_entry e;

	if (w->count >= PACK_MAX_BLOBS)
		return err_set(-ENOSPC, "pack writer is full (%u blobs): finish it first",
			       PACK_MAX_BLOBS);
	if (len != ref->length)
		return err_set(-EINVAL, "blob of %zu sealed bytes added with a length of %u",
			       len, ref->length);
	e.ref = *ref;
	e.offset = w->body.len;
	if (pack_entry_check(&e, w->type, "pack writer", w->count))
		return -EINVAL;		/* the check recorded what is wrong */
	if (w->count == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 64;
		w->entries = xrealloc(w->entries, w->cap * sizeof(*w->entries));
	}
	w->entries[w->count++] = e;
	buf_add(&w->body, sealed, len);
	return 0;
}

static size_t header_plain_len(size_t count)
{
	return PACK_HEADER_FIXED + count * PACK_ENTRY_SIZE;
}

uint64_t pack_writer_size(const struct pack_writer *w)
{
	return (uint64_t)w->body.len + KEYS_OBJECT_OVERHEAD + header_plain_len(w->count) + 4;
}

size_t pack_writer_count(const struct pack_writer *w)
{
	return w->count;
}

int pack_writer_full(const struct pack_writer *w)
{
	return pack_writer_size(w) >= PACK_TARGET_SIZE || w->count >= PACK_MAX_BLOBS;
}

static int random_pack_id(char out[PACK_ID_SIZE])
{
	char half[KEYS_ID_SIZE];
	int rc;

	for (int i = 0; i < 2; i++) {
		rc = keys_random_id(half);
		if (rc)
			return rc;
		memcpy(out + i * KEYS_ID_LEN, half, KEYS_ID_LEN);
	}
	out[PACK_ID_LEN] = '\0';
	return 0;
}

int pack_writer_finish(struct pack_writer *w, const struct keys_key *dk,
		       const char *ws_id, struct buf *bytes_out,
		       char name_out[PACK_NAME_SIZE], struct pack_header *hdr_out)
{
	char id[PACK_ID_SIZE], name[PACK_NAME_SIZE];
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	uint8_t *p, trailer[4];
	int rc;

	if (w->count == 0)
		return err_set(-EINVAL, "cannot finish an empty pack");
	rc = random_pack_id(id);
	if (!rc)
		rc = pack_name_make(w->type, id, name);
	if (rc)
		return rc;

	buf_grow(&plain, header_plain_len(w->count));
	p = plain.data;
	p[0] = PACK_VERSION;
	le_put32(p + 1, (uint32_t)w->count);
	for (size_t i = 0; i < w->count; i++)
		pack_entry_encode(&w->entries[i], p + PACK_HEADER_FIXED + i * PACK_ENTRY_SIZE);
	buf_setlen(&plain, header_plain_len(w->count));

	rc = keys_seal_object(dk, KEYS_OBJ_PACK_HEADER, name, ws_id, plain.data, plain.len,
			      &sealed);
	buf_free(&plain);
	if (rc) {
		buf_free(&sealed);
		return err_prefix(rc, "pack %s: cannot seal its header", name);
	}
	le_put32(trailer, (uint32_t)sealed.len);

	if (hdr_out) {
		memset(hdr_out, 0, sizeof(*hdr_out));
		memcpy(hdr_out->name, name, sizeof(name));
		hdr_out->type = w->type;
		hdr_out->count = w->count;
		hdr_out->blobs_end = w->body.len;
		hdr_out->entries = xrealloc(w->entries, w->count * sizeof(*w->entries));
		w->entries = NULL;
		w->cap = 0;
	}
	if (bytes_out->len == 0) {
		buf_free(bytes_out);
		*bytes_out = w->body;
		buf_init(&w->body);
	} else {
		buf_add(bytes_out, w->body.data, w->body.len);
		buf_reset(&w->body);
	}
	buf_add(bytes_out, sealed.data, sealed.len);
	buf_add(bytes_out, trailer, sizeof(trailer));
	buf_free(&sealed);
	memcpy(name_out, name, sizeof(name));
	w->count = 0;
	return 0;
}

/* ---- reader ------------------------------------------------------------- */

int pack_header_parse(const char *name, enum keys_blob_type type,
		      const uint8_t *p, size_t len, uint64_t blobs_end,
		      struct pack_header *out)
{
	struct pack_entry *entries;
	uint64_t end = 0;
	uint32_t count;
	char where[PACK_NAME_SIZE + 16];
	int rc = 0;

	snprintf(where, sizeof(where), "pack %s", name);
	if (len < PACK_HEADER_FIXED)
		return err_set(-EBADMSG, "%s: header of %zu bytes is too short", where, len);
	if (p[0] != PACK_VERSION)
		return err_set(-ENOTSUP, "%s: header version %u is not supported (this cairn reads version %d)",
			       where, p[0], PACK_VERSION);
	count = le_get32(p + 1);
	if (count == 0 || count > PACK_MAX_BLOBS)
		return err_set(-EBADMSG, "%s: header lists %u blobs (1 to %u allowed)",
			       where, count, PACK_MAX_BLOBS);
	if (len != header_plain_len(count))
		return err_set(-EBADMSG, "%s: header of %zu bytes does not hold %u entries",
			       where, len, count);
	entries = xmalloc(count * sizeof(*entries));
	for (uint32_t i = 0; i < count && !rc; i++) {
		struct pack_entry *e = &entries[i];

		pack_entry_decode(p + PACK_HEADER_FIXED + (size_t)i * PACK_ENTRY_SIZE, e);
		rc = pack_entry_check(e, type, where, i);
		if (!rc && e->offset != end)
			rc = err_set(-EBADMSG, "%s: blob %u starts at %llu, not at %llu where the previous one ends",
				     where, i, (unsigned long long)e->offset, (unsigned long long)end);
		if (!rc && e->ref.length > blobs_end - end)
			rc = err_set(-EBADMSG, "%s: blob %u runs into the header", where, i);
		end += e->ref.length;
	}
	if (!rc && end != blobs_end)
		rc = err_set(-EBADMSG, "%s: blobs end at %llu but the header starts at %llu",
			     where, (unsigned long long)end, (unsigned long long)blobs_end);
	if (rc) {
		free(entries);
		return rc;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out->name, name, PACK_NAME_SIZE);
	out->type = type;
	out->count = count;
	out->entries = entries;
	out->blobs_end = blobs_end;
	return 0;
}

int pack_read_header(const struct keys_ring *ring, const char *ws_id,
		     const char *pack_name, const uint8_t *tail, size_t tail_len,
		     uint64_t pack_size, struct pack_header *out, size_t *need)
{
	enum keys_blob_type type;
	struct buf plain = BUF_INIT;
	uint64_t blobs_end;
	uint32_t hlen;
	const uint8_t *sealed;
	int rc;

	if (need)
		*need = 0;
	rc = pack_name_parse(pack_name, &type);
	if (rc)
		return rc;
	if (tail_len > pack_size)
		return err_set(-EINVAL, "pack %s: tail of %zu bytes given for a pack of %llu",
			       pack_name, tail_len, (unsigned long long)pack_size);
	if (pack_size < 4 + KEYS_OBJECT_OVERHEAD + PACK_HEADER_FIXED)
		return err_set(-EBADMSG, "pack %s: %llu bytes is too short for a pack (truncated?)",
			       pack_name, (unsigned long long)pack_size);
	if (tail_len < 4) {
		if (!need)
			return err_set(-EINVAL, "pack %s: no tail given", pack_name);
		*need = PACK_TAIL_GUESS < pack_size ? PACK_TAIL_GUESS : (size_t)pack_size;
		return PACK_NEED_MORE;
	}
	hlen = le_get32(tail + tail_len - 4);
	if (hlen < KEYS_OBJECT_OVERHEAD + PACK_HEADER_FIXED || hlen > PACK_HEADER_SEALED_MAX ||
	    hlen > pack_size - 4)
		return err_set(-EBADMSG, "pack %s: its trailer gives a header of %u bytes in a pack of %llu (truncated or damaged)",
			       pack_name, hlen, (unsigned long long)pack_size);
	if ((size_t)hlen + 4 > tail_len) {
		if (!need)
			return err_set(-EINVAL, "pack %s: the header needs the last %zu bytes, %zu given",
				       pack_name, (size_t)hlen + 4, tail_len);
		*need = (size_t)hlen + 4;
		return PACK_NEED_MORE;
	}
	blobs_end = pack_size - 4 - hlen;
	sealed = tail + tail_len - 4 - hlen;
	rc = keys_ring_open_object(ring, KEYS_OBJ_PACK_HEADER, pack_name, ws_id, sealed, hlen, &plain);
	if (rc) {
		buf_free(&plain);
		return err_prefix(rc, "pack %s: header", pack_name);
	}
	rc = pack_header_parse(pack_name, type, plain.data, plain.len, blobs_end, out);
	buf_free(&plain);
	return rc;
}

int pack_load_header(struct store *s, const struct keys_ring *ring, const char *ws_id,
		     const char *pack_name, uint64_t pack_size, struct pack_header *out)
{
	struct store_info info;
	struct buf tail = BUF_INIT, more = BUF_INIT;
	size_t want, need = 0;
	int rc;

	rc = pack_name_parse(pack_name, NULL);
	if (rc)
		return rc;
	if (pack_size == 0) {
		rc = store_head(s, pack_name, &info);
		if (rc)
			return rc;
		pack_size = info.size;
	}
	want = pack_size < PACK_TAIL_GUESS ? (size_t)pack_size : PACK_TAIL_GUESS;
	rc = store_get(s, pack_name, pack_size - want, want, &tail, &info);
	if (rc == -ERANGE)
		rc = err_set(-EBADMSG, "pack %s is shorter than its %llu bytes (truncated?)",
			     pack_name, (unsigned long long)pack_size);
	if (rc)
		goto out;
	if (info.size != pack_size || tail.len != want) {
		rc = err_set(-EBADMSG, "pack %s is %llu bytes, expected %llu (truncated or replaced?)",
			     pack_name, (unsigned long long)info.size, (unsigned long long)pack_size);
		goto out;
	}
	rc = pack_read_header(ring, ws_id, pack_name, tail.data, tail.len, pack_size, out, &need);
	if (rc != PACK_NEED_MORE)
		goto out;
	/* the header is longer than the first guess: fetch what precedes it */
	rc = store_get(s, pack_name, pack_size - need, need - tail.len, &more, &info);
	if (rc)
		goto out;
	if (info.size != pack_size || more.len != need - tail.len) {
		rc = err_set(-EBADMSG, "pack %s changed size while it was read", pack_name);
		goto out;
	}
	buf_add(&more, tail.data, tail.len);
	rc = pack_read_header(ring, ws_id, pack_name, more.data, more.len, pack_size, out, &need);
	if (rc == PACK_NEED_MORE)	/* cannot happen: the trailer is the same */
		rc = err_set(-EBADMSG, "pack %s: header length changed while it was read", pack_name);
out:
	buf_free(&tail);
	buf_free(&more);
	return rc;
}
