/*
 * store.h - the object store interface: one struct of operations, several
 * implementations (file://, s3://), and layers that wrap another store.
 *
 * Keys are relative to the store's base (the path of a file:// URL, the
 * prefix of an s3:// URL) and use '/' as separator; they never start with
 * '/' and never contain "." or ".." components, NUL or control characters
 * (store_key_valid() says so).  Every operation is safe to call from several
 * threads at once on the same store; that is how callers run transfers in
 * parallel.  Every operation returns 0 or a negative errno-style code and
 * leaves one line in the thread's error context (lib/err.h):
 *   -ENOENT     the object does not exist
 *   -EEXIST     put with STORE_IF_NONE_MATCH: the object already exists
 *   -ECANCELED  put with STORE_IF_MATCH: the object's ETag differs, or it is gone
 *   -EACCES     the store refused the credentials or the signature
 *   -ERANGE     get: the range starts past the end of the object
 *   -EAGAIN     transient failure that outlived the retry budget
 *   -ETIMEDOUT  the store did not answer within the retry budget
 *   -EBADMSG    an upload or download did not verify (length, MD5/ETag)
 *   -EIO        anything else the store answered; the message says what
 *   -EINVAL     bad key or argument
 *   -ENOTSUP    put with a condition: the store honours no form of
 *               conditional put (store_cond_probe) and nothing overrides that
 *   -EFBIG      put with a condition: larger than one request may carry;
 *               get_max: the object is larger than the caller takes
 */
#ifndef CAIRN_STORE_H
#define CAIRN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Longest ETag kept, quotes included, plus the terminator. */
#define STORE_ETAG_MAX 96

/* Length meaning "to the end of the object" in store_get(). */
#define STORE_TO_END UINT64_MAX

enum store_cond {
	STORE_ALWAYS = 0,	/* plain put: create or replace */
	STORE_IF_NONE_MATCH,	/* create only: -EEXIST when the key exists */
	STORE_IF_MATCH,		/* replace only if the current ETag is etag */
};

/* How a store honours If-Match.  S3 servers differ: AWS and R2 compare the
 * ETag as RFC 7232 writes it, in quotes; Ceph RGW 16.2 compares it without
 * them (and refuses the quoted one); s3rver ignores conditions. */
enum store_match_form {
	STORE_MATCH_UNKNOWN = 0,
	STORE_MATCH_QUOTED,	/* If-Match: "etag" */
	STORE_MATCH_BARE,	/* If-Match: etag */
	STORE_MATCH_IGNORED,	/* a stale ETag is not refused */
	STORE_MATCH_REFUSED,	/* the current ETag is refused in every form */
	STORE_MATCH_NATIVE,	/* the store compares itself, atomically (file://) */
};

/* What a probe learned about a store's conditional puts. */
struct store_cond_rules {
	bool create_only;		/* If-None-Match: * refuses an existing key */
	enum store_match_form match;	/* the If-Match form that works, or why none */
};

/* True when both create-only and compare-and-swap work, in some form:
 * what the lease and the head need. */
bool store_cond_honoured(const struct store_cond_rules *rules);

struct store_info {
	uint64_t size;
	char etag[STORE_ETAG_MAX];	/* opaque; compare with strcmp */
};

/* Called once per key of a listing, in byte order of the key.  A non-zero
 * return stops the listing and becomes its result. */
typedef int (*store_list_fn)(const char *key, uint64_t size, void *arg);

struct store;

struct store_ops {
	/* Writes len bytes under key, atomically: a reader sees the old object
	 * or the whole new one, never a part.  cond/etag make it conditional.
	 * On success copies the new ETag into info->etag when info is not NULL. */
	int (*put)(struct store *s, const char *key, const void *data, size_t len,
		   enum store_cond cond, const char *etag, struct store_info *info);
	/* Appends to out the bytes [off, off+len) of the object (fewer when
	 * the object ends sooner; len may be STORE_TO_END).  A range that starts
	 * past the end is -ERANGE, except off == 0 on an empty object, which
	 * reads nothing.  Fills info (whole-object size and ETag) when not NULL. */
	int (*get)(struct store *s, const char *key, uint64_t off, uint64_t len,
		   struct buf *out, struct store_info *info);
	/* Optional (NULL: a get of [0, max] stands in, which reads max + 1
	 * bytes of a larger object).  Appends the whole object to out, as
	 * get(s, key, 0, STORE_TO_END, ...) does, when it is at most max
	 * bytes.  A larger one is -EFBIG, nothing appended, with info->size
	 * its size (when info is not NULL), read no further than the store
	 * needs to tell its size: never more than max + 1 bytes. */
	int (*get_max)(struct store *s, const char *key, uint64_t max, struct buf *out,
		       struct store_info *info);
	/* Size and ETag of key. */
	int (*head)(struct store *s, const char *key, struct store_info *info);
	/* Every key that starts with prefix ("" for all), in byte order. */
	int (*list)(struct store *s, const char *prefix, store_list_fn fn, void *arg);
	/* Removes key; removing a key that does not exist succeeds. */
	int (*del)(struct store *s, const char *key);
	/* Removes n keys, as few requests as the store allows; keys that do
	 * not exist are not an error. */
	int (*del_many)(struct store *s, const char *const *keys, size_t n);
	/* Optional (NULL: the store does conditional puts itself, atomically,
	 * as file:// does).  Learns afresh how the store honours conditional
	 * puts, with a few requests on a scratch object that it removes, uses
	 * the form that works from then on, and fills rules.  0, or the code
	 * of a request that failed; a store that honours no form is not an
	 * error here (rules say so). */
	int (*cond_probe)(struct store *s, struct store_cond_rules *rules);
	/* Releases the store and everything it holds. */
	void (*close)(struct store *s);
};

struct store {
	const struct store_ops *ops;
	char *url;		/* as given, for messages; holds no secret */
	void *priv;		/* the implementation's own state */
};

/* Options for store_open(); zero means "the default" for every field.
 * Strings are copied.  Anything left NULL is taken from the environment
 * as the AWS tools do (see cairn(1), ENVIRONMENT). */
struct store_opts {
	const char *endpoint;	/* S3: https://host[:port]; AWS_ENDPOINT_URL */
	const char *region;	/* S3: AWS_REGION, else "auto" (R2) */
	const char *access_key;	/* S3: AWS_ACCESS_KEY_ID */
	const char *secret_key;	/* S3: AWS_SECRET_ACCESS_KEY */
	const char *session_token; /* S3: AWS_SESSION_TOKEN */
	const char *ca_bundle;	/* S3: AWS_CA_BUNDLE */
	int addressing;		/* S3: 0 auto, 1 path-style, 2 virtual-host */
	const char *connect_to;	/* S3: CURLOPT_CONNECT_TO entry, for tests */
	double retry_seconds;	/* total retry budget per operation; 0: 60 s */
	size_t multipart_threshold; /* S3: objects larger go multipart; 0: 32 MiB */
	size_t part_size;	/* S3: multipart part size; 0: 8 MiB (>= 5 MiB) */
	int max_parallel;	/* S3: parallel part uploads; 0: 4 */
	/* S3: where probe results are kept, one file per endpoint and bucket
	 * (store_cond.c); NULL: not kept, each process probes once */
	const char *probe_dir;
	/* S3: go on, with a warning, on a store that honours no form of
	 * conditional put; also CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1 */
	bool unsafe_no_cond;
	int create;		/* file: make DIR when it does not exist (the
				 * commands that make stores: init, selftest);
				 * else a missing DIR is -ENOENT */
};

#define STORE_PATH_STYLE 1
#define STORE_VIRTUAL_HOST 2

/* Opens the store named by url: file:///DIR or s3://BUCKET[/PREFIX].
 * opts may be NULL.  Opening writes nothing: a file:// DIR that does not
 * exist is -ENOENT unless opts->create. */
int store_open(const char *url, const struct store_opts *opts, struct store **out);
void store_close(struct store *s);

/* Wrappers that check the key, then call the implementation, and prefix
 * errors with the store URL and key. */
int store_put(struct store *s, const char *key, const void *data, size_t len,
	      enum store_cond cond, const char *etag, struct store_info *info);
int store_get(struct store *s, const char *key, uint64_t off, uint64_t len,
	      struct buf *out, struct store_info *info);
/* The whole object key, as store_get(s, key, 0, STORE_TO_END, out, info)
 * reads it, if it is at most max bytes: a bound per kind of object, well
 * above what cairn writes, so that a hostile or damaged store cannot make
 * a reader allocate what it likes.  A larger object is -EFBIG ("<url>: get
 * <key>: 2147483648 bytes, more than any <what> cairn writes (at most
 * 65536): not read; ..."), nothing appended, at most max + 1 bytes of it
 * read.  what names the kind of object for the message ("head", "pack"). */
int store_get_max(struct store *s, const char *key, uint64_t max, const char *what,
		  struct buf *out, struct store_info *info);
/* store_get_max's refusal, for an object a listing says is size bytes,
 * larger than max: sets the same line and returns -EFBIG. */
int store_refuse_size(struct store *s, const char *key, uint64_t size, uint64_t max,
		      const char *what);
/* For layers: s's own get_max, or the stand-in, without store_get_max's
 * key check, counting and message. */
int store_get_max_op(struct store *s, const char *key, uint64_t max, struct buf *out,
		     struct store_info *info);
int store_head(struct store *s, const char *key, struct store_info *info);
int store_list(struct store *s, const char *prefix, store_list_fn fn, void *arg);
/* The keys store_list_names gathers ({ 0 } is an empty list). */
struct store_names {
	char **v;
	size_t n;
};
/* Appends every key under prefix to *names, in store_list's order; after
 * an error, what was listed before it stays.  0 or store_list's code. */
int store_list_names(struct store *s, const char *prefix, struct store_names *names);
/* Frees the keys of names and empties it. */
void store_names_free(struct store_names *names);
int store_del(struct store *s, const char *key);
int store_del_many(struct store *s, const char *const *keys, size_t n);

/* Learns afresh how s honours conditional puts (store_ops.cond_probe); a
 * store without a probe of its own reports STORE_MATCH_NATIVE.  0 or a
 * negative code, with the error line set. */
int store_cond_probe(struct store *s, struct store_cond_rules *rules);
/* What works, or what the store ignores, for messages: "create-only and
 * compare-and-swap (If-Match with the ETag without quotes)". */
void store_cond_describe(const struct store_cond_rules *rules, struct buf *out);
/* For a store (where: its URL and endpoint) whose rules are not honoured:
 * sets the one-line refusal (what, where, what to do) and returns
 * -ENOTSUP.  0 when they are honoured. */
int store_cond_refuse(const char *where, const struct store_cond_rules *rules);

/* For implementations: the probe results of a server (endpoint and
 * bucket) kept in a file under dir.  load: 0 with rules, or -ENOENT when
 * there is none younger than a week that honours conditional puts.  save:
 * writes rules, or removes the file when they are not honoured; 0 or
 * -errno (a cache that cannot be written is only slower). */
int store_cond_cache_load(const char *dir, const char *endpoint, const char *bucket,
			  struct store_cond_rules *out);
int store_cond_cache_save(const char *dir, const char *endpoint, const char *bucket,
			  const struct store_cond_rules *rules);

/* Process-wide figures of every store, for `cairn status`: requests made
 * through the wrappers above, those that failed (not counting "not found"
 * and failed preconditions, which are answers), retried attempts, and the
 * bytes moved.  Updated atomically; read with store_counters_get. */
struct store_counters {
	uint64_t requests, errors, retries, bytes_in, bytes_out;
};
void store_counters_get(struct store_counters *out);
/* Counts one retried attempt (the S3 client calls it). */
void store_count_retry(void);

/* Whether to read again store data that did not verify: a range read has
 * no checksum to compare, so a body damaged on the way fails
 * authentication like a damaged object.  After attempt ATTEMPT ended in RC:
 * true, with a warning logged (err_msg() names what failed) and a retry
 * counted, when RC is -EBADMSG and fewer than STORE_BADMSG_TRIES reads were
 * made; false otherwise. */
#define STORE_BADMSG_TRIES 3
bool store_read_again(int rc, int attempt);

/* 1 when key is acceptable to every store, else 0. */
int store_key_valid(const char *key);

/* A layer that maps every key k to prefix+k in base (prefix ends with '/');
 * listings give keys without the prefix.  base must outlive the layer;
 * closing the layer does not close base. */
int store_prefix_open(struct store *base, const char *prefix, struct store **out);

/* The implementations, for store_open() and tests. */
int store_file_open(const char *url, const char *dir, int create, struct store **out);
int store_s3_open(const char *url, const char *bucket, const char *prefix,
		  const struct store_opts *opts, struct store **out);

#endif
