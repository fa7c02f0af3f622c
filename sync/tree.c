/*
 * tree.c - the encoding of one directory as a tree blob (see tree.h and
 * docs/format.md, "Trees").
 *
 * What must stay true: the encoding is a function of the set of entries
 * (canonical), and tree_decode() accepts exactly the byte strings that
 * tree_encode() can produce, so decode-then-encode gives the input back.
 * The decoder reads through a bounds-checked cursor only, and checks every
 * count against the bytes left before it allocates anything from it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "blob.h"
#include "buf.h"
#include "err.h"
#include "tree.h"

#define NSEC_PER_SEC 1000000000u

/* ---- small helpers ------------------------------------------------------- */

const char *tree_type_name(int type)
{
	switch (type) {
	case TREE_REG: return "file";
	case TREE_DIR: return "directory";
	case TREE_SYMLINK: return "symlink";
	case TREE_CHR: return "character device";
	case TREE_BLK: return "block device";
	case TREE_FIFO: return "fifo";
	case TREE_SOCK: return "socket";
	default: return "unknown";
	}
}

/* A name made printable for a message: non-printable bytes as \xNN, cut
 * after 64 bytes.  out must hold 64 * 4 + 4 bytes. */
#define SHOWN_SIZE (64 * 4 + 4)
static const char *shown(const char *s, char out[SHOWN_SIZE])
{
	size_t o = 0;

	for (size_t i = 0; s[i] && o + 5 < SHOWN_SIZE; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 64) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '"') {
			snprintf(out + o, 5, "\\x%02x", c);
			o += 4;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

static int id_is_zero(const uint8_t id[TREE_ID_LEN])
{
	uint8_t acc = 0;

	for (size_t i = 0; i < TREE_ID_LEN; i++)
		acc |= id[i];
	return acc == 0;
}

/* 0 when name (len bytes, may hold anything) is a valid entry name, else
 * a static reason. */
static const char *name_problem(const uint8_t *name, size_t len)
{
	if (len == 0)
		return "empty name";
	if (len > TREE_NAME_MAX)
		return "name longer than 255 bytes";
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return "name \".\" or \"..\"";
	if (memchr(name, '/', len))
		return "name with '/'";
	if (memchr(name, '\0', len))
		return "name with a NUL byte";
	return NULL;
}

static const char *xattr_name_problem(const uint8_t *name, size_t len)
{
	if (len == 0)
		return "empty xattr name";
	if (len > TREE_XATTR_NAME_MAX)
		return "xattr name longer than 255 bytes";
	if (memchr(name, '\0', len))
		return "xattr name with a NUL byte";
	return NULL;
}

/* 1 when n data blobs can hold a file of size bytes: none for an empty
 * file; otherwise at least one byte and at most BLOB_MAX_RAW bytes each. */
static int blobs_fit(uint64_t size, uint64_t n)
{
	if (size == 0 || n == 0)
		return size == 0 && n == 0;
	return n <= size && n >= size / BLOB_MAX_RAW + (size % BLOB_MAX_RAW != 0);
}

/* ---- building ------------------------------------------------------------ */

void tree_init(struct tree *t)
{
	t->entries = NULL;
	t->count = 0;
	t->cap = 0;
	t->sorted = 1;
}

void tree_entry_release(struct tree_entry *e)
{
	free(e->target);
	free(e->blobs);
	for (size_t i = 0; i < e->nxattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	memset(e, 0, sizeof(*e));
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->count; i++) {
		free(t->entries[i].name);
		tree_entry_release(&t->entries[i]);
	}
	free(t->entries);
	tree_init(t);
}

int tree_entry_from_stat(struct tree_entry *e, const struct stat *st)
{
	switch (st->st_mode & S_IFMT) {
	case S_IFREG: e->type = TREE_REG; break;
	case S_IFDIR: e->type = TREE_DIR; break;
	case S_IFLNK: e->type = TREE_SYMLINK; break;
	case S_IFCHR: e->type = TREE_CHR; break;
	case S_IFBLK: e->type = TREE_BLK; break;
	case S_IFIFO: e->type = TREE_FIFO; break;
	case S_IFSOCK: e->type = TREE_SOCK; break;
	default:
		return err_set(-EINVAL, "tree: file type 0%o cannot be stored",
			       (unsigned)(st->st_mode & S_IFMT));
	}
	e->mode = (uint16_t)(st->st_mode & TREE_MODE_MASK);
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->size = st->st_size < 0 ? 0 : (uint64_t)st->st_size;
	e->mtime.sec = st->st_mtim.tv_sec;
	e->mtime.nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->ctime.sec = st->st_ctim.tv_sec;
	e->ctime.nsec = (uint32_t)st->st_ctim.tv_nsec;
	e->ino = st->st_ino;
	e->dev = st->st_dev;
	e->nlink = st->st_nlink > UINT32_MAX ? UINT32_MAX : (uint32_t)st->st_nlink;
	if (e->type == TREE_CHR || e->type == TREE_BLK) {
		e->rdev_major = major(st->st_rdev);
		e->rdev_minor = minor(st->st_rdev);
	} else {
		e->rdev_major = 0;
		e->rdev_minor = 0;
	}
	return 0;
}

/* The rules every stored entry obeys; the decoder enforces the same ones
 * on what it reads (see decode_entry). */
int tree_entry_check(const struct tree_entry *e)
{
	char nm[SHOWN_SIZE];
	const char *why;

	if (!e->name)
		return err_set(-EINVAL, "tree: entry without a name");
	why = name_problem((const uint8_t *)e->name, strlen(e->name));
	if (why)
		return err_set(-EINVAL, "tree: entry \"%s\": %s", shown(e->name, nm), why);
	shown(e->name, nm);
	if (e->type < TREE_REG || e->type > TREE_SOCK)
		return err_set(-EINVAL, "tree: entry \"%s\": unknown type %u", nm, e->type);
	if (e->mode & ~TREE_MODE_MASK)
		return err_set(-EINVAL, "tree: entry \"%s\": mode 0%o has bits beyond 07777",
			       nm, (unsigned)e->mode);
	if (e->mtime.nsec >= NSEC_PER_SEC || e->ctime.nsec >= NSEC_PER_SEC)
		return err_set(-EINVAL, "tree: entry \"%s\": nanoseconds out of range", nm);
	if (e->type == TREE_DIR && e->link_group)
		return err_set(-EINVAL, "tree: entry \"%s\": a directory cannot be a hard link", nm);
	if (e->type != TREE_CHR && e->type != TREE_BLK && (e->rdev_major || e->rdev_minor))
		return err_set(-EINVAL, "tree: entry \"%s\": device numbers on a %s", nm,
			       tree_type_name(e->type));
	if (e->type == TREE_SYMLINK) {
		size_t n = e->target ? strlen(e->target) : 0;

		if (n == 0 || n > TREE_TARGET_MAX)
			return err_set(-EINVAL, "tree: symlink \"%s\": target must be 1..%d bytes",
				       nm, TREE_TARGET_MAX);
	} else if (e->target) {
		return err_set(-EINVAL, "tree: entry \"%s\": symlink target on a %s", nm,
			       tree_type_name(e->type));
	}
	if (e->type == TREE_REG) {
		if (e->nblobs && !e->blobs)
			return err_set(-EINVAL, "tree: file \"%s\": blob count without blobs", nm);
		if (!blobs_fit(e->size, e->nblobs))
			return err_set(-EINVAL, "tree: file \"%s\": %zu blobs cannot hold %llu bytes",
				       nm, e->nblobs, (unsigned long long)e->size);
		if (e->nblobs > UINT32_MAX)
			return err_set(-EINVAL, "tree: file \"%s\": too many blobs", nm);
		for (size_t i = 0; i < e->nblobs; i++)
			if (id_is_zero(e->blobs[i]))
				return err_set(-EINVAL, "tree: file \"%s\": blob %zu has the all-zero id",
					       nm, i);
	} else if (e->nblobs) {
		return err_set(-EINVAL, "tree: entry \"%s\": data blobs on a %s", nm,
			       tree_type_name(e->type));
	}
	if (e->type == TREE_DIR) {
		if (id_is_zero(e->subtree))
			return err_set(-EINVAL, "tree: directory \"%s\": no subtree id", nm);
	} else if (!id_is_zero(e->subtree)) {
		return err_set(-EINVAL, "tree: entry \"%s\": subtree id on a %s", nm,
			       tree_type_name(e->type));
	}
	if (e->nxattrs > TREE_XATTRS_MAX)
		return err_set(-EINVAL, "tree: entry \"%s\": %zu xattrs (at most %d)", nm,
			       e->nxattrs, TREE_XATTRS_MAX);
	if (e->nxattrs && !e->xattrs)
		return err_set(-EINVAL, "tree: entry \"%s\": xattr count without xattrs", nm);
	for (size_t i = 0; i < e->nxattrs; i++) {
		const struct tree_xattr *x = &e->xattrs[i];

		if (!x->name)
			return err_set(-EINVAL, "tree: entry \"%s\": xattr without a name", nm);
		why = xattr_name_problem((const uint8_t *)x->name, strlen(x->name));
		if (why)
			return err_set(-EINVAL, "tree: entry \"%s\": %s", nm, why);
		if (x->value_len > TREE_XATTR_VALUE_MAX)
			return err_set(-EINVAL, "tree: entry \"%s\": xattr value of %zu bytes (at most %d)",
				       nm, x->value_len, TREE_XATTR_VALUE_MAX);
		if (x->value_len && !x->value)
			return err_set(-EINVAL, "tree: entry \"%s\": xattr value missing", nm);
	}
	return 0;
}

static void *dup_mem(const void *p, size_t n)
{
	void *q;

	if (n == 0)
		return NULL;
	q = xmalloc(n);
	memcpy(q, p, n);
	return q;
}

static void tree_grow(struct tree *t, size_t want)
{
	size_t cap;

	if (want <= t->cap)
		return;
	cap = t->cap ? t->cap : 16;
	while (cap < want)
		cap *= 2;
	t->entries = xrealloc(t->entries, cap * sizeof(*t->entries));
	t->cap = cap;
}

void tree_xattrs_dup(struct tree_entry *dst, const struct tree_entry *src)
{
	dst->xattrs = NULL;
	dst->nxattrs = src->nxattrs;
	if (!src->nxattrs)
		return;
	dst->xattrs = xcalloc(src->nxattrs, sizeof(*dst->xattrs));
	for (size_t i = 0; i < src->nxattrs; i++) {
		dst->xattrs[i].name = xstrdup(src->xattrs[i].name);
		dst->xattrs[i].value = dup_mem(src->xattrs[i].value, src->xattrs[i].value_len);
		dst->xattrs[i].value_len = src->xattrs[i].value_len;
	}
}

int tree_add(struct tree *t, const struct tree_entry *e)
{
	struct tree_entry *d;
	int rc = tree_entry_check(e);

	if (rc < 0)
		return rc;
	tree_grow(t, t->count + 1);
	d = &t->entries[t->count];
	*d = *e;
	d->name = xstrdup(e->name);
	d->target = e->target ? xstrdup(e->target) : NULL;
	d->blobs = dup_mem(e->blobs, e->nblobs * sizeof(*e->blobs));
	tree_xattrs_dup(d, e);
	if (t->count && t->sorted && strcmp(t->entries[t->count - 1].name, d->name) >= 0)
		t->sorted = 0;
	t->count++;
	return 0;
}

/* ---- ordering ------------------------------------------------------------ */

/* strcmp compares as unsigned char: byte order, as the format requires. */
static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tree_entry *)a)->name, ((const struct tree_entry *)b)->name);
}

static int entry_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct tree_entry *const *)a)->name,
		      (*(const struct tree_entry *const *)b)->name);
}

static int xattr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tree_xattr *)a)->name, ((const struct tree_xattr *)b)->name);
}

static int xattr_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct tree_xattr *const *)a)->name,
		      (*(const struct tree_xattr *const *)b)->name);
}

static int dup_entry(const char *name)
{
	char nm[SHOWN_SIZE];

	return err_set(-EINVAL, "tree: two entries named \"%s\"", shown(name, nm));
}

static int dup_xattr(const char *entry, const char *name)
{
	char nm[SHOWN_SIZE], xn[SHOWN_SIZE];

	return err_set(-EINVAL, "tree: entry \"%s\" has two xattrs named \"%s\"",
		       shown(entry, nm), shown(name, xn));
}

int tree_canonicalize(struct tree *t)
{
	int rc = 0;

	if (t->count > 1)
		qsort(t->entries, t->count, sizeof(*t->entries), entry_cmp);
	for (size_t i = 0; i < t->count; i++) {
		struct tree_entry *e = &t->entries[i];

		if (rc == 0 && i && strcmp(t->entries[i - 1].name, e->name) == 0)
			rc = dup_entry(e->name);
		if (e->nxattrs > 1)
			qsort(e->xattrs, e->nxattrs, sizeof(*e->xattrs), xattr_cmp);
		for (size_t j = 1; rc == 0 && j < e->nxattrs; j++)
			if (strcmp(e->xattrs[j - 1].name, e->xattrs[j].name) == 0)
				rc = dup_xattr(e->name, e->xattrs[j].name);
	}
	t->sorted = 1;
	return rc;
}

const struct tree_entry *tree_find(const struct tree *t, const char *name)
{
	if (!t->sorted) {
		for (size_t i = 0; i < t->count; i++)
			if (strcmp(t->entries[i].name, name) == 0)
				return &t->entries[i];
		return NULL;
	}
	size_t lo = 0, hi = t->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->entries[mid].name, name);

		if (c == 0)
			return &t->entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- encoding ------------------------------------------------------------ */

static void put8(struct buf *b, uint8_t v)
{
	buf_add(b, &v, 1);
}

static void put16(struct buf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	buf_add(b, p, 2);
}

static void put32(struct buf *b, uint32_t v)
{
	uint8_t p[4];

	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	buf_add(b, p, 4);
}

static void put64(struct buf *b, uint64_t v)
{
	uint8_t p[8];

	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	buf_add(b, p, 8);
}

/* Encodes one checked entry; its xattrs in name order (sorting pointers
 * when they are not in order already).  Returns 0 or -EINVAL (duplicate
 * xattr). */
static int encode_entry(const struct tree_entry *e, struct buf *b)
{
	size_t n = strlen(e->name);
	const struct tree_xattr **xs = NULL;
	int in_order = 1;

	put8(b, (uint8_t)n);
	buf_add(b, e->name, n);
	put8(b, e->type);
	put16(b, e->mode);
	put32(b, e->uid);
	put32(b, e->gid);
	put64(b, e->size);
	put64(b, (uint64_t)e->mtime.sec);
	put32(b, e->mtime.nsec);
	put64(b, (uint64_t)e->ctime.sec);
	put32(b, e->ctime.nsec);
	put64(b, e->ino);
	put64(b, e->dev);
	put32(b, e->nlink);
	put64(b, e->link_group);
	switch (e->type) {
	case TREE_REG:
		put32(b, (uint32_t)e->nblobs);
		buf_add(b, e->blobs, e->nblobs * TREE_ID_LEN);
		break;
	case TREE_DIR:
		buf_add(b, e->subtree, TREE_ID_LEN);
		break;
	case TREE_SYMLINK:
		n = strlen(e->target);
		put16(b, (uint16_t)n);
		buf_add(b, e->target, n);
		break;
	case TREE_CHR:
	case TREE_BLK:
		put32(b, e->rdev_major);
		put32(b, e->rdev_minor);
		break;
	default:
		break;
	}
	put16(b, (uint16_t)e->nxattrs);
	if (e->nxattrs == 0)
		return 0;
	for (size_t i = 1; i < e->nxattrs; i++)
		if (strcmp(e->xattrs[i - 1].name, e->xattrs[i].name) >= 0)
			in_order = 0;
	xs = xmalloc(e->nxattrs * sizeof(*xs));
	for (size_t i = 0; i < e->nxattrs; i++)
		xs[i] = &e->xattrs[i];
	if (!in_order)
		qsort(xs, e->nxattrs, sizeof(*xs), xattr_ptr_cmp);
	for (size_t i = 0; i < e->nxattrs; i++) {
		if (i && strcmp(xs[i - 1]->name, xs[i]->name) == 0) {
			int rc = dup_xattr(e->name, xs[i]->name);

			free(xs);
			return rc;
		}
		n = strlen(xs[i]->name);
		put8(b, (uint8_t)n);
		buf_add(b, xs[i]->name, n);
		put32(b, (uint32_t)xs[i]->value_len);
		buf_add(b, xs[i]->value, xs[i]->value_len);
	}
	free(xs);
	return 0;
}

int tree_encode(const struct tree *t, struct buf *out)
{
	const struct tree_entry **es;
	size_t start = out->len;
	int in_order = t->sorted, rc = 0;

	if (t->count > UINT32_MAX || t->count > BLOB_MAX_RAW / TREE_ENTRY_MIN_LEN)
		return err_set(-E2BIG, "tree: %zu entries do not fit in one tree blob", t->count);
	for (size_t i = 0; i < t->count; i++) {
		rc = tree_entry_check(&t->entries[i]);
		if (rc < 0)
			return rc;
		if (i && strcmp(t->entries[i - 1].name, t->entries[i].name) >= 0)
			in_order = 0;
	}
	es = xmalloc((t->count ? t->count : 1) * sizeof(*es));
	for (size_t i = 0; i < t->count; i++)
		es[i] = &t->entries[i];
	if (!in_order && t->count > 1)
		qsort(es, t->count, sizeof(*es), entry_ptr_cmp);

	buf_add(out, TREE_MAGIC, 8);
	put8(out, TREE_VERSION);
	put32(out, (uint32_t)t->count);
	for (size_t i = 0; i < t->count; i++) {
		if (i && strcmp(es[i - 1]->name, es[i]->name) == 0) {
			rc = dup_entry(es[i]->name);
			break;
		}
		rc = encode_entry(es[i], out);
		if (rc < 0)
			break;
		if (out->len - start > BLOB_MAX_RAW) {
			rc = err_set(-E2BIG, "tree: directory of %zu entries exceeds %u bytes, "
				     "the largest tree blob", t->count, BLOB_MAX_RAW);
			break;
		}
	}
	free(es);
	if (rc < 0)
		buf_setlen(out, start);
	return rc;
}

/* ---- decoding ------------------------------------------------------------ */

/* A cursor over untrusted bytes: every read checks what is left first. */
struct cur {
	const uint8_t *p;
	size_t left;
	size_t off;		/* offset from the start of the blob, for messages */
	size_t entry;		/* index of the entry being read */
};

static int bad(const struct cur *c, const char *what)
{
	return err_set(-EBADMSG, "tree blob: entry %zu at offset %zu: %s", c->entry, c->off, what);
}

/* *out is the start of the n bytes, or NULL (and an error) when fewer are
 * left; the getters below likewise always set their output. */
static int take(struct cur *c, size_t n, const uint8_t **out)
{
	if (c->left < n) {
		*out = NULL;
		return bad(c, "truncated");
	}
	*out = c->p;
	c->p += n;
	c->left -= n;
	c->off += n;
	return 0;
}

static int get8(struct cur *c, uint8_t *v)
{
	const uint8_t *p;
	int rc = take(c, 1, &p);

	*v = p ? p[0] : 0;
	return rc;
}

static int get16(struct cur *c, uint16_t *v)
{
	const uint8_t *p;
	int rc = take(c, 2, &p);

	*v = p ? (uint16_t)(p[0] | p[1] << 8) : 0;
	return rc;
}

static int get32(struct cur *c, uint32_t *v)
{
	const uint8_t *p;
	int rc = take(c, 4, &p);

	*v = p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		 (uint32_t)p[3] << 24 : 0;
	return rc;
}

static int get64(struct cur *c, uint64_t *v)
{
	const uint8_t *p;
	int rc = take(c, 8, &p);

	*v = 0;
	for (int i = 7; p && i >= 0; i--)
		*v = *v << 8 | p[i];
	return rc;
}

#define TRY(x) do { int rc_ = (x); if (rc_ < 0) return rc_; } while (0)

static int decode_xattrs(struct cur *c, struct tree_entry *e)
{
	uint16_t n;

	TRY(get16(c, &n));
	if (n > TREE_XATTRS_MAX)
		return bad(c, "too many xattrs");
	/* each xattr is at least 1 + 1 + 4 bytes */
	if (n > c->left / 6)
		return bad(c, "xattr count larger than the bytes left");
	if (n == 0)
		return 0;
	e->xattrs = xcalloc(n, sizeof(*e->xattrs));
	for (size_t i = 0; i < n; i++) {
		struct tree_xattr *x = &e->xattrs[i];
		const uint8_t *p;
		const char *why;
		uint8_t nl;
		uint32_t vl;

		TRY(get8(c, &nl));
		TRY(take(c, nl, &p));
		why = xattr_name_problem(p, nl);
		if (why)
			return bad(c, why);
		x->name = xstrndup((const char *)p, nl);
		e->nxattrs = i + 1;	/* from here on tree_free frees it */
		if (i && strcmp(e->xattrs[i - 1].name, x->name) >= 0)
			return bad(c, "xattrs not sorted by name, or a duplicate");
		TRY(get32(c, &vl));
		if (vl > TREE_XATTR_VALUE_MAX)
			return bad(c, "xattr value too long");
		TRY(take(c, vl, &p));
		x->value = dup_mem(p, vl);
		x->value_len = vl;
	}
	return 0;
}

static int decode_entry(struct cur *c, struct tree_entry *e, const char *prev)
{
	const uint8_t *p;
	const char *why;
	uint8_t nl;
	uint64_t v;

	TRY(get8(c, &nl));
	TRY(take(c, nl, &p));
	why = name_problem(p, nl);
	if (why)
		return bad(c, why);
	e->name = xstrndup((const char *)p, nl);
	if (prev && strcmp(prev, e->name) >= 0)
		return bad(c, "names not sorted, or a duplicate");
	TRY(get8(c, &e->type));
	if (e->type < TREE_REG || e->type > TREE_SOCK)
		return bad(c, "unknown entry type");
	TRY(get16(c, &e->mode));
	if (e->mode & ~TREE_MODE_MASK)
		return bad(c, "mode has bits beyond 07777");
	TRY(get32(c, &e->uid));
	TRY(get32(c, &e->gid));
	TRY(get64(c, &e->size));
	TRY(get64(c, &v));
	e->mtime.sec = (int64_t)v;
	TRY(get32(c, &e->mtime.nsec));
	TRY(get64(c, &v));
	e->ctime.sec = (int64_t)v;
	TRY(get32(c, &e->ctime.nsec));
	if (e->mtime.nsec >= NSEC_PER_SEC || e->ctime.nsec >= NSEC_PER_SEC)
		return bad(c, "nanoseconds out of range");
	TRY(get64(c, &e->ino));
	TRY(get64(c, &e->dev));
	TRY(get32(c, &e->nlink));
	TRY(get64(c, &e->link_group));
	if (e->type == TREE_DIR && e->link_group)
		return bad(c, "directory with a hard-link group");

	switch (e->type) {
	case TREE_REG: {
		uint32_t n;

		TRY(get32(c, &n));
		if (n > c->left / TREE_ID_LEN)
			return bad(c, "blob list longer than the bytes left");
		if (!blobs_fit(e->size, n))
			return bad(c, "blob count does not fit the file size");
		TRY(take(c, (size_t)n * TREE_ID_LEN, &p));
		for (size_t i = 0; i < n; i++)
			if (id_is_zero(p + i * TREE_ID_LEN))
				return bad(c, "all-zero blob id");
		e->blobs = dup_mem(p, (size_t)n * TREE_ID_LEN);
		e->nblobs = n;
		break;
	}
	case TREE_DIR:
		TRY(take(c, TREE_ID_LEN, &p));
		if (id_is_zero(p))
			return bad(c, "directory without a subtree id");
		memcpy(e->subtree, p, TREE_ID_LEN);
		break;
	case TREE_SYMLINK: {
		uint16_t n;

		TRY(get16(c, &n));
		if (n == 0 || n > TREE_TARGET_MAX)
			return bad(c, "symlink target length out of range");
		TRY(take(c, n, &p));
		if (memchr(p, '\0', n))
			return bad(c, "symlink target with a NUL byte");
		e->target = xstrndup((const char *)p, n);
		break;
	}
	case TREE_CHR:
	case TREE_BLK:
		TRY(get32(c, &e->rdev_major));
		TRY(get32(c, &e->rdev_minor));
		break;
	default:
		break;
	}
	return decode_xattrs(c, e);
}

int tree_decode(const uint8_t *data, size_t len, struct tree *out)
{
	struct cur c = { data, len, 0, 0 };
	uint32_t count;
	int rc;

	tree_init(out);
	if (len < 9 || memcmp(data, TREE_MAGIC, 8) != 0)
		return err_set(-EBADMSG, "tree blob: not a tree (no \"%s\" magic)", TREE_MAGIC);
	if (data[8] != TREE_VERSION)
		return err_set(-ENOTSUP, "tree blob: format version %u is not supported "
			       "(this cairn reads version %d)", data[8], TREE_VERSION);
	if (len > BLOB_MAX_RAW)
		return err_set(-EBADMSG, "tree blob: %zu bytes, more than the largest blob (%u)",
			       len, BLOB_MAX_RAW);
	c.p += 9;
	c.left -= 9;
	c.off = 9;
	rc = get32(&c, &count);
	if (rc < 0)
		return rc;
	if (count > c.left / TREE_ENTRY_MIN_LEN)
		return err_set(-EBADMSG, "tree blob: %u entries cannot fit in %zu bytes",
			       count, c.left);
	if (count) {
		out->entries = xcalloc(count, sizeof(*out->entries));
		out->cap = count;
	}
	for (size_t i = 0; i < count; i++) {
		c.entry = i;
		out->count = i + 1;	/* tree_free frees what was read so far */
		rc = decode_entry(&c, &out->entries[i], i ? out->entries[i - 1].name : NULL);
		if (rc < 0) {
			tree_free(out);
			return rc;
		}
	}
	if (c.left) {
		tree_free(out);
		return err_set(-EBADMSG, "tree blob: %zu trailing bytes after %u entries",
			       c.left, count);
	}
	out->sorted = 1;
	return 0;
}
