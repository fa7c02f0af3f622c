/*
 * tree.h - one directory as a tree blob: its entries in cairn's own
 * versioned binary encoding (docs/format.md, "Trees").
 *
 * The encoding is canonical: entries sorted by name in byte order, names
 * unique, xattrs sorted by name, fixed-width little-endian integers and no
 * optional fields, so equal directories give equal bytes and so equal blob
 * ids (dedup).  tree_decode() accepts only canonical input: whatever it
 * accepts, tree_encode() turns back into the very same bytes.
 *
 * A struct tree owns everything it points to.  tree_add() deep-copies the
 * entry it is given, so a caller may fill a tree_entry with borrowed
 * pointers.  Every function returns 0 or a negative errno code and leaves
 * one line in err_msg():
 *   -EINVAL   an entry that cannot be stored (bad name, field out of range,
 *             field that does not belong to its type, duplicate name)
 *   -E2BIG    the encoding would exceed BLOB_MAX_RAW
 *   -EBADMSG  tree_decode: malformed, truncated, not canonical
 *   -ENOTSUP  tree_decode: a format version this cairn does not read
 * Not thread-safe per tree; distinct trees are independent.
 */
#ifndef CAIRN_TREE_H
#define CAIRN_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "buf.h"
#include "keys.h"

#define TREE_VERSION 1
#define TREE_MAGIC "cairntre"		/* 8 bytes, no NUL in the blob */
#define TREE_HEADER_LEN 13		/* magic, version, LE32 entry count */
#define TREE_NAME_MAX 255		/* bytes of an entry name */
#define TREE_TARGET_MAX 4095		/* bytes of a symlink target */
#define TREE_XATTR_NAME_MAX 255		/* as Linux's XATTR_NAME_MAX */
#define TREE_XATTR_VALUE_MAX 65536	/* as Linux's XATTR_SIZE_MAX */
#define TREE_XATTRS_MAX 4096		/* xattrs of one entry */
#define TREE_MODE_MASK 07777		/* permissions, setuid, setgid, sticky */
#define TREE_ID_LEN KEYS_BLOB_ID_LEN	/* 32-byte blob ids */
/* The smallest encoded entry: a fifo or socket with a 1-byte name and no
 * xattrs.  Bounds any count read from a blob against the bytes left. */
#define TREE_ENTRY_MIN_LEN 75

/* Entry types; the value is the type byte of the encoding. */
enum tree_type {
	TREE_REG = 1,		/* regular file: data blob ids */
	TREE_DIR = 2,		/* directory: subtree blob id */
	TREE_SYMLINK = 3,	/* symbolic link: target */
	TREE_CHR = 4,		/* character device: rdev */
	TREE_BLK = 5,		/* block device: rdev */
	TREE_FIFO = 6,
	TREE_SOCK = 7,
};

struct tree_xattr {
	char *name;		/* 1..255 bytes, NUL-terminated, no NUL inside */
	uint8_t *value;		/* may be NULL when value_len is 0 */
	size_t value_len;	/* 0..TREE_XATTR_VALUE_MAX, any bytes */
};

struct tree_time {
	int64_t sec;		/* seconds since the epoch; may be negative */
	uint32_t nsec;		/* 0..999999999 */
};

struct tree_entry {
	char *name;		/* 1..255 bytes, no '/' or NUL, not "." or ".." */
	uint8_t type;		/* enum tree_type */
	uint16_t mode;		/* permission bits only: mode & ~07777 == 0 */
	uint32_t uid, gid;
	uint64_t size;		/* st_size as scanned */
	struct tree_time mtime, ctime;
	/* Kept so that the next incremental snapshot can tell an unchanged
	 * file (same size, mtime, ctime, ino, dev) without reading it. */
	uint64_t ino, dev;
	uint32_t nlink;		/* st_nlink as scanned */
	/* Hard-link identity: 0 for no hard link; otherwise equal on every
	 * entry of one snapshot that is a link of the same inode.  Never set
	 * on a directory. */
	uint64_t link_group;
	uint32_t rdev_major, rdev_minor;	/* TREE_CHR and TREE_BLK only */
	char *target;		/* TREE_SYMLINK only: 1..4095 bytes, no NUL */
	uint8_t (*blobs)[TREE_ID_LEN];	/* TREE_REG only: content, in order */
	size_t nblobs;
	uint8_t subtree[TREE_ID_LEN];	/* TREE_DIR only: never all zero */
	struct tree_xattr *xattrs;
	size_t nxattrs;
};

struct tree {
	struct tree_entry *entries;
	size_t count;
	size_t cap;
	int sorted;		/* set by tree_canonicalize/tree_decode, cleared by tree_add */
};

#define TREE_INIT { NULL, 0, 0, 1 }

void tree_init(struct tree *t);

/* Frees every entry and the array; leaves t empty and reusable.  NULL is
 * fine. */
void tree_free(struct tree *t);

/* Frees what e holds but its name (the target, the blob ids, the xattrs)
 * and zeroes it: for an entry filled outside a tree, whose name the
 * caller owns. */
void tree_entry_release(struct tree_entry *e);

/* Fills the stat-derived fields of e (type, mode, uid, gid, size, mtime,
 * ctime, ino, dev, nlink, rdev) from st; leaves name, link_group, target,
 * blobs, subtree and xattrs as they are.  Returns 0, or -EINVAL when st is
 * of a file type a tree cannot hold. */
int tree_entry_from_stat(struct tree_entry *e, const struct stat *st);

/* Checks that e can be stored; returns 0 or -EINVAL naming the problem. */
int tree_entry_check(const struct tree_entry *e);

/* Sets dst->xattrs and dst->nxattrs to a deep copy of src's xattrs
 * (NULL and 0 when it has none); whatever dst held is not freed. */
void tree_xattrs_dup(struct tree_entry *dst, const struct tree_entry *src);

/* Appends a deep copy of e (after tree_entry_check).  Order does not
 * matter; a duplicate name is found by tree_canonicalize or tree_encode.
 * Returns 0 or -EINVAL. */
int tree_add(struct tree *t, const struct tree_entry *e);

/* Sorts the entries by name and each entry's xattrs by name, in byte
 * order.  Returns 0, or -EINVAL when two entries (or two xattrs of one
 * entry) share a name; the order is then sorted anyway. */
int tree_canonicalize(struct tree *t);

/* Appends the canonical encoding of t to out, whatever order its entries
 * and xattrs are in (t is not changed).  Returns 0, -EINVAL (an entry
 * fails tree_entry_check, or a duplicate name) or -E2BIG (more than
 * BLOB_MAX_RAW bytes); on error out is left as it was. */
int tree_encode(const struct tree *t, struct buf *out);

/* Decodes a tree blob into *out (which need not be initialised; on
 * success the caller frees it with tree_free, on error it is empty).
 * Strict: returns -ENOTSUP for another format version (naming the version
 * found and the one supported) and -EBADMSG for anything malformed:
 * truncation, trailing bytes, unsorted or duplicate names or xattrs, bad
 * names, fields out of range or not allowed for the type, counts that do
 * not fit the bytes left.  It never reads outside [data, data+len) and
 * never allocates more than a small multiple of len. */
int tree_decode(const uint8_t *data, size_t len, struct tree *out);

/* The entry called name, or NULL.  Binary search on a sorted tree
 * (after tree_canonicalize or tree_decode), a linear scan otherwise. */
const struct tree_entry *tree_find(const struct tree *t, const char *name);

/* "file", "directory", "symlink", ... for messages; "unknown" otherwise. */
const char *tree_type_name(int type);

#endif
