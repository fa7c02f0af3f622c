/*
 * cmd-diff.c - `cairn diff SNAP1 SNAP2`: what changed between two
 * snapshots, one path per line: `+` added, `-` removed, `M` content,
 * `m` metadata only (mode, owner, mtime, xattrs), `T` type.
 *
 * Both trees are walked in parallel, their entries merged by name (tree
 * blobs are sorted by name in byte order); a directory is entered only when
 * its subtree ids differ: equal ids mean identical subtrees.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd-common.h"
#include "err.h"
#include "fetch.h"
#include "tree.h"

struct diff {
	const struct cmd_common *c;
	struct repo *r;
	struct index *idx;
	uint64_t added, removed, modified, metadata, type_changed;
};

static void emit(struct diff *d, char code, const char *path, const struct tree_entry *e,
		 const struct tree_entry *old)
{
	switch (code) {
	case '+': d->added++; break;
	case '-': d->removed++; break;
	case 'M': d->modified++; break;
	case 'm': d->metadata++; break;
	case 'T': d->type_changed++; break;
	}
	if (d->c->json) {
		char change[2] = { code, '\0' };
		json_t *o = json_pack("{s:s, s:s, s:s}", "change", change, "path", path,
				      "type", tree_type_name(e->type));

		if (old)
			json_object_set_new(o, "old_type", json_string(tree_type_name(old->type)));
		cmd_json_line(o);
	} else {
		printf("%c %s%s\n", code, path, e->type == TREE_DIR ? "/" : "");
	}
}

/* Emits code for every entry of tree id and below (an added or removed
 * directory's contents). */
static int emit_all(struct diff *d, char code, const uint8_t id[KEYS_BLOB_ID_LEN],
		    const char *path)
{
	struct tree t;
	int rc = fetch_tree(d->r, d->idx, id, &t);

	for (size_t i = 0; !rc && i < t.count; i++) {
		const struct tree_entry *e = &t.entries[i];
		char *child = xasprintf("%s/%s", path, e->name);

		emit(d, code, child, e, NULL);
		if (e->type == TREE_DIR)
			rc = emit_all(d, code, e->subtree, child);
		free(child);
	}
	tree_free(&t);
	return rc;
}

static int same_content(const struct tree_entry *a, const struct tree_entry *b)
{
	switch (a->type) {
	case TREE_REG:
		return a->nblobs == b->nblobs &&
		       (!a->nblobs || !memcmp(a->blobs, b->blobs, a->nblobs * sizeof(*a->blobs)));
	case TREE_SYMLINK:
		return !strcmp(a->target, b->target);
	case TREE_CHR:
	case TREE_BLK:
		return a->rdev_major == b->rdev_major && a->rdev_minor == b->rdev_minor;
	default:
		return 1;	/* directories: compared by subtree; fifos, sockets */
	}
}

/* Mode, owner, mtime and xattrs; not ctime, inode, device or link count,
 * which change with every restore and say nothing about the file. */
static int same_metadata(const struct tree_entry *a, const struct tree_entry *b)
{
	if (a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	    a->mtime.sec != b->mtime.sec || a->mtime.nsec != b->mtime.nsec ||
	    a->nxattrs != b->nxattrs)
		return 0;
	for (size_t i = 0; i < a->nxattrs; i++) {
		const struct tree_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];

		if (strcmp(x->name, y->name) || x->value_len != y->value_len ||
		    (x->value_len && memcmp(x->value, y->value, x->value_len)))
			return 0;
	}
	return 1;
}

static int diff_trees(struct diff *d, const uint8_t a_id[KEYS_BLOB_ID_LEN],
		      const uint8_t b_id[KEYS_BLOB_ID_LEN], const char *path);

static int diff_entries(struct diff *d, const struct tree_entry *a, const struct tree_entry *b,
			const char *path)
{
	if (a->type != b->type) {
		emit(d, 'T', path, b, a);
		return 0;
	}
	if (a->type == TREE_DIR) {
		if (!same_metadata(a, b))
			emit(d, 'm', path, b, NULL);
		return diff_trees(d, a->subtree, b->subtree, path);
	}
	if (!same_content(a, b))
		emit(d, 'M', path, b, NULL);
	else if (!same_metadata(a, b))
		emit(d, 'm', path, b, NULL);
	return 0;
}

static int diff_trees(struct diff *d, const uint8_t a_id[KEYS_BLOB_ID_LEN],
		      const uint8_t b_id[KEYS_BLOB_ID_LEN], const char *path)
{
	struct tree a, b;
	size_t i = 0, j = 0;
	int rc;

	if (!memcmp(a_id, b_id, KEYS_BLOB_ID_LEN))
		return 0;
	tree_init(&b);
	rc = fetch_tree(d->r, d->idx, a_id, &a);
	if (!rc)
		rc = fetch_tree(d->r, d->idx, b_id, &b);
	while (!rc && (i < a.count || j < b.count)) {
		const struct tree_entry *ea = i < a.count ? &a.entries[i] : NULL;
		const struct tree_entry *eb = j < b.count ? &b.entries[j] : NULL;
		int cmp = !ea ? 1 : !eb ? -1 : strcmp(ea->name, eb->name);
		char *child = xasprintf("%s/%s", path, cmp <= 0 ? ea->name : eb->name);

		if (cmp < 0) {
			emit(d, '-', child, ea, NULL);
			if (ea->type == TREE_DIR)
				rc = emit_all(d, '-', ea->subtree, child);
			i++;
		} else if (cmp > 0) {
			emit(d, '+', child, eb, NULL);
			if (eb->type == TREE_DIR)
				rc = emit_all(d, '+', eb->subtree, child);
			j++;
		} else {
			rc = diff_entries(d, ea, eb, child);
			i++;
			j++;
		}
		free(child);
	}
	tree_free(&a);
	tree_free(&b);
	return rc;
}

static int load_root(struct repo *r, const char *arg, const char *root, char id[RECORD_ID_SIZE],
		     uint8_t tree[KEYS_BLOB_ID_LEN])
{
	struct record_snapshot rec;
	const uint8_t *t;
	int rc = cmd_resolve_snapshot(r, arg, id);

	record_snapshot_init(&rec);
	if (!rc)
		rc = fetch_snapshot(r, id, &rec);
	if (!rc) {
		t = record_snapshot_root(&rec, root);
		if (t)
			memcpy(tree, t, KEYS_BLOB_ID_LEN);
		else
			rc = err_set(-ENOENT, "snapshot %.8s has no root '%s'", id, root);
	}
	record_snapshot_free(&rec);
	return rc;
}

static int cmd_diff_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ "root", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	struct diff d = { 0 };
	struct repo *r = NULL;
	const char *root = RECORD_ROOT_WORKSPACE;
	char id1[RECORD_ID_SIZE], id2[RECORD_ID_SIZE];
	uint8_t t1[KEYS_BLOB_ID_LEN], t2[KEYS_BLOB_ID_LEN];
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if (cmd_common_opt(&c, opt, optarg))
			continue;
		if (opt != 'R')
			return cmd_usage(&cmd_diff_entry);
		root = optarg;
	}
	if (optind + 2 != argc)
		return cmd_usage(&cmd_diff_entry);
	rc = cmd_open_repo(&cmd_diff_entry, &c, &r);
	if (rc) {
		cmd_common_free(&c);
		return rc;
	}
	d.c = &c;
	d.r = r;
	rc = load_root(r, argv[optind], root, id1, t1);
	if (!rc)
		rc = load_root(r, argv[optind + 1], root, id2, t2);
	if (!rc)
		rc = fetch_index(r, &d.idx);
	if (!rc)
		rc = diff_trees(&d, t1, t2, "");
	if (rc)
		rc = cmd_fail(&cmd_diff_entry, NULL);
	else if (c.json)
		cmd_json_line(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "from", id1, "to", id2,
					"added", (json_int_t)d.added,
					"removed", (json_int_t)d.removed,
					"modified", (json_int_t)d.modified,
					"metadata", (json_int_t)d.metadata,
					"type_changed", (json_int_t)d.type_changed));
	else if (!c.quiet)
		printf("%.8s..%.8s: %llu added, %llu removed, %llu modified, %llu metadata only, %llu type changed\n",
		       id1, id2, (unsigned long long)d.added, (unsigned long long)d.removed,
		       (unsigned long long)d.modified, (unsigned long long)d.metadata,
		       (unsigned long long)d.type_changed);
	index_free(d.idx);
	repo_close(r);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_diff_entry = {
	.name = "diff",
	.usage = "SNAP1 SNAP2 [--root NAME] " CMD_COMMON_USAGE,
	.summary = "what changed between two snapshots (+ - M m T per path)",
	.exec = cmd_diff_exec,
};
