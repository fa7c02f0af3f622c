/*
 * record.c - JSON plaintext of snapshot records, the head and the lease
 * (see record.h and docs/format.md).
 *
 * What must stay true: a decoder accepts only what docs/format.md allows
 * (types, ranges, id spellings, required members, no unknown members
 * outside "stats"), and every encoder runs the same checks first, so what
 * cairn writes it can always read back.  JSON integers are read as
 * jansson's json_int_t (64-bit signed): larger numbers fail to parse.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "hex.h"
#include "keys.h"
#include "record.h"

/* ---- ids and small validators -------------------------------------------- */

int record_id_valid(const char *s)
{
	return hex_is_lower(s, RECORD_ID_LEN);
}

int record_id_new(char out[RECORD_ID_SIZE])
{
	uint8_t raw[RECORD_ID_LEN / 2];
	int rc = keys_init();

	if (rc < 0)
		return rc;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(out, RECORD_ID_SIZE, raw, sizeof(raw));
	return 0;
}

int record_snapshot_name(const char *id, char *out, size_t size)
{
	if (!record_id_valid(id))
		return err_set(-EINVAL, "snapshot id must be %d lowercase hex digits", RECORD_ID_LEN);
	if ((size_t)snprintf(out, size, "snapshots/%s", id) >= size)
		return err_set(-ERANGE, "snapshot object name does not fit in %zu bytes", size);
	return 0;
}

/* Host names, host ids, boot ids: 1..RECORD_HOST_MAX printable ASCII
 * without spaces. */
static int host_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return i >= 1 && i <= RECORD_HOST_MAX;
}

/* Program labels: 0..RECORD_PROGRAM_MAX printable ASCII, spaces allowed. */
static int program_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return i <= RECORD_PROGRAM_MAX;
}

/* Root names: 1..64 of [a-z0-9-], starting with a letter. */
static int root_name_valid(const char *s)
{
	size_t i;

	if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return i <= RECORD_ROOT_NAME_MAX;
}

/* Tags: 1..128 bytes of valid UTF-8 with no control character and no
 * ','. */
static int tag_valid(const char *s)
{
	json_t *j;
	size_t i;

	if (!s)
		return 0;
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == ',')
			return 0;
	if (i < 1 || i > RECORD_TAG_MAX)
		return 0;
	j = json_string(s);	/* NULL when s is not valid UTF-8 */
	json_decref(j);
	return j != NULL;
}

/* ---- decoding helpers ------------------------------------------------------ */

/* What every decoder shares: the record kind for messages. */
struct dec {
	const char *what;	/* "snapshot record", "head", "lease" */
};

static int dbad(const struct dec *d, const char *fmt, const char *member)
{
	char line[256];

	snprintf(line, sizeof(line), fmt, member);
	return err_set(-EBADMSG, "%s: %s", d->what, line);
}

/* Parses data as one JSON object and checks its version.  *root gets a
 * reference the caller drops. */
static int parse_object(const struct dec *d, const uint8_t *data, size_t len,
			int version, json_t **root)
{
	json_error_t jerr;
	json_t *o, *v;

	*root = NULL;
	if (len > RECORD_MAX_LEN)
		return err_set(-EBADMSG, "%s: %zu bytes, more than %u", d->what, len, RECORD_MAX_LEN);
	o = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return err_set(-EBADMSG, "%s: not valid JSON: %s (at byte %d)", d->what,
			       jerr.text, jerr.position);
	if (!json_is_object(o)) {
		json_decref(o);
		return err_set(-EBADMSG, "%s: not a JSON object", d->what);
	}
	v = json_object_get(o, "version");
	if (!v || !json_is_integer(v)) {
		json_decref(o);
		return err_set(-EBADMSG, "%s: \"version\" missing or not an integer", d->what);
	}
	if (json_integer_value(v) != version) {
		int rc = err_set(-ENOTSUP, "%s: format version %lld is not supported "
				 "(this cairn reads version %d)", d->what,
				 (long long)json_integer_value(v), version);

		json_decref(o);
		return rc;
	}
	*root = o;
	return 0;
}

/* Refuses members of o not in the NULL-terminated list. */
static int only_members(const struct dec *d, json_t *o, const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		size_t i;

		for (i = 0; known[i]; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (!known[i])
			return dbad(d, "unknown member \"%.64s\"", key);
	}
	return 0;
}

/* A required integer member in [min, max]. */
static int get_int(const struct dec *d, json_t *o, const char *name,
		   long long min, long long max, uint64_t *out)
{
	json_t *v = json_object_get(o, name);
	long long x;

	if (!v)
		return dbad(d, "member \"%s\" missing", name);
	if (!json_is_integer(v))
		return dbad(d, "member \"%s\" is not an integer", name);
	x = json_integer_value(v);
	if (x < min || x > max)
		return dbad(d, "member \"%s\" out of range", name);
	*out = (uint64_t)x;
	return 0;
}

/* A required string member; *out points into o. */
static int get_str(const struct dec *d, json_t *o, const char *name, const char **out)
{
	json_t *v = json_object_get(o, name);

	if (!v)
		return dbad(d, "member \"%s\" missing", name);
	if (!json_is_string(v))
		return dbad(d, "member \"%s\" is not a string", name);
	*out = json_string_value(v);
	return 0;
}

static int copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

#define TRY(x) do { rc = (x); if (rc < 0) goto out; } while (0)

/* ---- encoding helpers ---------------------------------------------------- */

/* Adds the compact JSON of o (a new reference, dropped here) to out. */
static int emit(json_t *o, const char *what, struct buf *out)
{
	char *s;

	if (!o)
		return err_set(-ENOMEM, "%s: cannot build JSON", what);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return err_set(-ENOMEM, "%s: cannot write JSON", what);
	buf_adds(out, s);
	free(s);
	return 0;
}

static int einval(const char *what, const char *field)
{
	return err_set(-EINVAL, "%s: %s", what, field);
}

/* ---- snapshot records ------------------------------------------------------ */

void record_snapshot_init(struct record_snapshot *s)
{
	memset(s, 0, sizeof(*s));
}

void record_snapshot_free(struct record_snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ntags; i++)
		free(s->tags[i]);
	free(s->tags);
	record_snapshot_init(s);
}

static int root_cmp(const void *a, const void *b)
{
	return strcmp(((const struct record_root *)a)->name, ((const struct record_root *)b)->name);
}

int record_snapshot_set_root(struct record_snapshot *s, const char *name,
			     const uint8_t tree[KEYS_BLOB_ID_LEN])
{
	if (!root_name_valid(name))
		return err_set(-EINVAL, "snapshot record: root name must be 1..%d of [a-z0-9-], "
			       "starting with a letter", RECORD_ROOT_NAME_MAX);
	for (size_t i = 0; i < s->nroots; i++) {
		if (strcmp(s->roots[i].name, name) == 0) {
			memcpy(s->roots[i].tree, tree, KEYS_BLOB_ID_LEN);
			return 0;
		}
	}
	if (s->nroots == RECORD_ROOTS_MAX)
		return err_set(-ENOSPC, "snapshot record: more than %d roots", RECORD_ROOTS_MAX);
	copy_str(s->roots[s->nroots].name, sizeof(s->roots[0].name), name);
	memcpy(s->roots[s->nroots].tree, tree, KEYS_BLOB_ID_LEN);
	s->nroots++;
	qsort(s->roots, s->nroots, sizeof(s->roots[0]), root_cmp);
	return 0;
}

const uint8_t *record_snapshot_root(const struct record_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->nroots; i++)
		if (strcmp(s->roots[i].name, name) == 0)
			return s->roots[i].tree;
	return NULL;
}

int record_snapshot_add_tag(struct record_snapshot *s, const char *tag)
{
	if (!tag_valid(tag))
		return err_set(-EINVAL, "snapshot record: a tag is 1..%d bytes without ',' or "
			       "control characters", RECORD_TAG_MAX);
	for (size_t i = 0; i < s->ntags; i++)
		if (strcmp(s->tags[i], tag) == 0)
			return 0;
	if (s->ntags == RECORD_TAGS_MAX)
		return err_set(-ENOSPC, "snapshot record: more than %d tags", RECORD_TAGS_MAX);
	s->tags = xrealloc(s->tags, (s->ntags + 1) * sizeof(*s->tags));
	s->tags[s->ntags++] = xstrdup(tag);
	return 0;
}

int record_snapshot_cmp(const struct record_snapshot *a, const struct record_snapshot *b)
{
	if (a->generation != b->generation)
		return a->generation < b->generation ? -1 : 1;
	if (a->time_ns != b->time_ns)
		return a->time_ns < b->time_ns ? -1 : 1;
	return strcmp(a->host, b->host);
}

/* Statistics, in the order they are written. */
static const struct {
	const char *name;
	size_t off;
} stat_fields[] = {
	{ "files", offsetof(struct record_stats, files) },
	{ "dirs", offsetof(struct record_stats, dirs) },
	{ "symlinks", offsetof(struct record_stats, symlinks) },
	{ "others", offsetof(struct record_stats, others) },
	{ "bytes", offsetof(struct record_stats, bytes) },
	{ "new_files", offsetof(struct record_stats, new_files) },
	{ "new_bytes", offsetof(struct record_stats, new_bytes) },
	{ "new_blobs", offsetof(struct record_stats, new_blobs) },
	{ "new_trees", offsetof(struct record_stats, new_trees) },
	{ "stored_bytes", offsetof(struct record_stats, stored_bytes) },
	{ "duration_ns", offsetof(struct record_stats, duration_ns) },
};
#define NSTATS (sizeof(stat_fields) / sizeof(stat_fields[0]))

static uint64_t *stat_ptr(struct record_stats *st, size_t i)
{
	return (uint64_t *)((char *)st + stat_fields[i].off);
}

static const uint64_t *stat_cptr(const struct record_stats *st, size_t i)
{
	return (const uint64_t *)((const char *)st + stat_fields[i].off);
}

/* The checks the decoder makes, on a struct about to be encoded. */
static int snapshot_check(const struct record_snapshot *s)
{
	const char *w = "snapshot record";

	if (s->nroots > RECORD_ROOTS_MAX)
		return einval(w, "too many roots");
	for (size_t i = 0; i < s->nroots; i++) {
		if (!root_name_valid(s->roots[i].name))
			return einval(w, "bad root name");
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->roots[i].name, s->roots[j].name) == 0)
				return einval(w, "two roots with one name");
	}
	if (!record_snapshot_root(s, RECORD_ROOT_WORKSPACE) ||
	    !record_snapshot_root(s, RECORD_ROOT_AGENT_CONFIG))
		return einval(w, "roots \"workspace\" and \"agent-config\" are required");
	if (s->parent[0] && !record_id_valid(s->parent))
		return einval(w, "parent is not a snapshot id");
	if (s->time_ns > RECORD_INT_MAX)
		return einval(w, "time out of range");
	if (!host_valid(s->host))
		return einval(w, "host must be 1..255 printable ASCII characters without spaces");
	if (s->generation < 1 || s->generation > RECORD_INT_MAX)
		return einval(w, "generation out of range (1..2^63-1)");
	if (s->ntags > RECORD_TAGS_MAX)
		return einval(w, "too many tags");
	for (size_t i = 0; i < s->ntags; i++) {
		if (!tag_valid(s->tags[i]))
			return einval(w, "bad tag");
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->tags[i], s->tags[j]) == 0)
				return einval(w, "duplicate tag");
	}
	for (size_t i = 0; i < NSTATS; i++)
		if (*stat_cptr(&s->stats, i) > RECORD_INT_MAX)
			return einval(w, "statistic out of range");
	return 0;
}

int record_snapshot_encode(const struct record_snapshot *s, struct buf *out)
{
	json_t *o, *roots, *tags, *stats;
	char hex[2 * KEYS_BLOB_ID_LEN + 1];
	int rc = snapshot_check(s);

	if (rc < 0)
		return rc;
	roots = json_object();
	for (size_t i = 0; i < s->nroots; i++) {
		hex_encode(s->roots[i].tree, KEYS_BLOB_ID_LEN, hex);
		json_object_set_new(roots, s->roots[i].name, json_string(hex));
	}
	tags = json_array();
	for (size_t i = 0; i < s->ntags; i++)
		json_array_append_new(tags, json_string(s->tags[i]));	/* UTF-8 checked */
	stats = json_object();
	for (size_t i = 0; i < NSTATS; i++)
		json_object_set_new(stats, stat_fields[i].name,
				    json_integer((json_int_t)*stat_cptr(&s->stats, i)));
	o = json_pack("{s:i, s:I, s:s, s:I, s:o, s:o, s:o, s:o}",
		      "version", RECORD_SNAPSHOT_VERSION,
		      "time", (json_int_t)s->time_ns,
		      "host", s->host,
		      "generation", (json_int_t)s->generation,
		      "parent", s->parent[0] ? json_string(s->parent) : json_null(),
		      "roots", roots, "tags", tags, "stats", stats);
	return emit(o, "snapshot record", out);
}

int record_snapshot_decode(const uint8_t *data, size_t len, struct record_snapshot *out)
{
	static const char *const known[] = {
		"version", "time", "host", "generation", "parent", "roots", "tags", "stats", NULL
	};
	const struct dec d = { "snapshot record" }, ds = { "snapshot record: stats" };
	json_t *o, *v, *r;
	const char *key, *str;
	int rc;

	record_snapshot_init(out);
	rc = parse_object(&d, data, len, RECORD_SNAPSHOT_VERSION, &o);
	if (rc < 0)
		return rc;
	TRY(only_members(&d, o, known));
	TRY(get_int(&d, o, "time", 0, RECORD_INT_MAX, &out->time_ns));
	TRY(get_int(&d, o, "generation", 1, RECORD_INT_MAX, &out->generation));
	TRY(get_str(&d, o, "host", &str));
	if (!host_valid(str) || copy_str(out->host, sizeof(out->host), str) < 0) {
		rc = dbad(&d, "member \"%s\" is not a valid host name", "host");
		goto out;
	}

	v = json_object_get(o, "parent");
	if (!v) {
		rc = dbad(&d, "member \"%s\" missing", "parent");
		goto out;
	}
	if (!json_is_null(v)) {
		if (!json_is_string(v) || !record_id_valid(json_string_value(v))) {
			rc = dbad(&d, "member \"%s\" is neither null nor a snapshot id", "parent");
			goto out;
		}
		copy_str(out->parent, sizeof(out->parent), json_string_value(v));
	}

	v = json_object_get(o, "roots");
	if (!v || !json_is_object(v)) {
		rc = dbad(&d, "member \"%s\" missing or not an object", "roots");
		goto out;
	}
	if (json_object_size(v) > RECORD_ROOTS_MAX) {
		rc = dbad(&d, "member \"%s\" has too many roots", "roots");
		goto out;
	}
	json_object_foreach(v, key, r) {
		uint8_t id[KEYS_BLOB_ID_LEN];

		if (!root_name_valid(key)) {
			rc = dbad(&d, "root name \"%.64s\" is not valid", key);
			goto out;
		}
		if (!json_is_string(r) || !hex_is_lower(json_string_value(r), 2 * sizeof(id)) ||
		    hex_decode(json_string_value(r), id, sizeof(id)) < 0) {
			rc = dbad(&d, "root \"%.64s\" is not a 64-digit lowercase hex tree id", key);
			goto out;
		}
		record_snapshot_set_root(out, key, id);
	}
	if (!record_snapshot_root(out, RECORD_ROOT_WORKSPACE) ||
	    !record_snapshot_root(out, RECORD_ROOT_AGENT_CONFIG)) {
		rc = dbad(&d, "%s: \"workspace\" and \"agent-config\" are required", "roots");
		goto out;
	}

	v = json_object_get(o, "tags");
	if (!v || !json_is_array(v)) {
		rc = dbad(&d, "member \"%s\" missing or not an array", "tags");
		goto out;
	}
	if (json_array_size(v) > RECORD_TAGS_MAX) {
		rc = dbad(&d, "member \"%s\" has too many tags", "tags");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *t = json_array_get(v, i);

		if (!json_is_string(t) || !tag_valid(json_string_value(t))) {
			rc = dbad(&d, "%s: a tag is not a string of 1..128 bytes without ',' "
				  "or control characters", "tags");
			goto out;
		}
		for (size_t j = 0; j < out->ntags; j++) {
			if (strcmp(out->tags[j], json_string_value(t)) == 0) {
				rc = dbad(&d, "%s: a tag appears twice", "tags");
				goto out;
			}
		}
		record_snapshot_add_tag(out, json_string_value(t));
	}

	v = json_object_get(o, "stats");
	if (!v || !json_is_object(v)) {
		rc = dbad(&d, "member \"%s\" missing or not an object", "stats");
		goto out;
	}
	/* Unknown statistics are ignored: a newer writer may count more. */
	for (size_t i = 0; i < NSTATS; i++)
		TRY(get_int(&ds, v, stat_fields[i].name, 0, RECORD_INT_MAX,
			    stat_ptr(&out->stats, i)));
	rc = 0;
out:
	json_decref(o);
	if (rc < 0)
		record_snapshot_free(out);
	return rc;
}

/* ---- head ------------------------------------------------------------------ */

int record_head_encode(const struct record_head *h, struct buf *out)
{
	if (h->generation < 1 || h->generation > RECORD_INT_MAX)
		return einval("head", "generation out of range (1..2^63-1)");
	if (!record_id_valid(h->snapshot))
		return einval("head", "snapshot is not a snapshot id");
	return emit(json_pack("{s:i, s:I, s:s}", "version", RECORD_HEAD_VERSION,
			      "generation", (json_int_t)h->generation,
			      "snapshot", h->snapshot), "head", out);
}

int record_head_decode(const uint8_t *data, size_t len, struct record_head *out)
{
	static const char *const known[] = { "version", "generation", "snapshot", NULL };
	const struct dec d = { "head" };
	const char *str;
	json_t *o;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = parse_object(&d, data, len, RECORD_HEAD_VERSION, &o);
	if (rc < 0)
		return rc;
	TRY(only_members(&d, o, known));
	TRY(get_int(&d, o, "generation", 1, RECORD_INT_MAX, &out->generation));
	TRY(get_str(&d, o, "snapshot", &str));
	if (!record_id_valid(str)) {
		rc = dbad(&d, "member \"%s\" is not a snapshot id", "snapshot");
		goto out;
	}
	copy_str(out->snapshot, sizeof(out->snapshot), str);
	rc = 0;
out:
	json_decref(o);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int record_head_next(const struct record_head *cur, const char *id, struct record_head *next)
{
	uint64_t g = cur ? cur->generation : 0;

	if (!record_id_valid(id))
		return einval("head", "snapshot is not a snapshot id");
	if (g >= RECORD_INT_MAX)
		return err_set(-EOVERFLOW, "head: generation %llu cannot grow any more",
			       (unsigned long long)g);
	next->generation = g + 1;
	copy_str(next->snapshot, sizeof(next->snapshot), id);
	return 0;
}

/* ---- lease ----------------------------------------------------------------- */

int record_lease_encode(const struct record_lease *l, struct buf *out)
{
	const char *w = "lease";

	if (!host_valid(l->host))
		return einval(w, "host id must be 1..255 printable ASCII characters without spaces");
	if (!host_valid(l->boot))
		return einval(w, "boot id must be 1..255 printable ASCII characters without spaces");
	if (l->pid < 1 || l->pid > INT32_MAX)
		return einval(w, "pid out of range");
	if (!record_id_valid(l->nonce))
		return einval(w, "nonce must be 32 lowercase hex digits");
	if (!program_valid(l->program))
		return einval(w, "program must be 0..64 printable ASCII characters");
	if (l->acquired_ns > RECORD_INT_MAX || l->expires_ns > RECORD_INT_MAX ||
	    l->expires_ns < l->acquired_ns)
		return einval(w, "times out of range, or expiry before acquisition");
	return emit(json_pack("{s:i, s:s, s:s, s:I, s:s, s:s, s:I, s:I}",
			      "version", RECORD_LEASE_VERSION, "host", l->host, "boot", l->boot,
			      "pid", (json_int_t)l->pid, "nonce", l->nonce,
			      "program", l->program,
			      "acquired", (json_int_t)l->acquired_ns,
			      "expires", (json_int_t)l->expires_ns), w, out);
}

int record_lease_decode(const uint8_t *data, size_t len, struct record_lease *out)
{
	static const char *const known[] = {
		"version", "host", "boot", "pid", "nonce", "program", "acquired", "expires", NULL
	};
	const struct dec d = { "lease" };
	const char *str;
	uint64_t pid;
	json_t *o;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = parse_object(&d, data, len, RECORD_LEASE_VERSION, &o);
	if (rc < 0)
		return rc;
	TRY(only_members(&d, o, known));
	TRY(get_str(&d, o, "host", &str));
	if (!host_valid(str) || copy_str(out->host, sizeof(out->host), str) < 0) {
		rc = dbad(&d, "member \"%s\" is not a valid host id", "host");
		goto out;
	}
	TRY(get_str(&d, o, "boot", &str));
	if (!host_valid(str) || copy_str(out->boot, sizeof(out->boot), str) < 0) {
		rc = dbad(&d, "member \"%s\" is not a valid boot id", "boot");
		goto out;
	}
	TRY(get_int(&d, o, "pid", 1, INT32_MAX, &pid));
	out->pid = (uint32_t)pid;
	TRY(get_str(&d, o, "nonce", &str));
	if (!record_id_valid(str)) {
		rc = dbad(&d, "member \"%s\" is not 32 lowercase hex digits", "nonce");
		goto out;
	}
	copy_str(out->nonce, sizeof(out->nonce), str);
	TRY(get_str(&d, o, "program", &str));
	if (!program_valid(str) || copy_str(out->program, sizeof(out->program), str) < 0) {
		rc = dbad(&d, "member \"%s\" is not 0..64 printable ASCII characters", "program");
		goto out;
	}
	TRY(get_int(&d, o, "acquired", 0, RECORD_INT_MAX, &out->acquired_ns));
	TRY(get_int(&d, o, "expires", 0, RECORD_INT_MAX, &out->expires_ns));
	if (out->expires_ns < out->acquired_ns) {
		rc = dbad(&d, "member \"%s\" is before \"acquired\"", "expires");
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int record_lease_same_holder(const struct record_lease *a, const struct record_lease *b)
{
	return strcmp(a->host, b->host) == 0 && strcmp(a->boot, b->boot) == 0 &&
	       a->pid == b->pid && strcmp(a->nonce, b->nonce) == 0;
}
